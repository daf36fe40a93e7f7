//! W3C Trace Context through `Propagation`, without OpenTelemetry: the cases of the W3C test
//! suite (level 2, strict) replayed through `extract` and `inject` with a carrier that keeps
//! repeated header lines, and property tests of what is sent on.
//!
//! The suite's service creates a span per request, so where it expects "a new trace" this crate,
//! which creates none, sends no `traceparent` at all (the spec's participant that does not
//! trace), and where it expects the trace continued, the trace context goes on unchanged.

use contextvars::propagation::{
    Extractor, Injector, Propagation, TraceContext, TraceParent, TraceState, Trust, TRACE_ID,
};
use contextvars::Context;
use proptest::prelude::*;

/// Header lines in order, names as written, repeats kept: an HTTP request as the suite sends it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Lines(Vec<(String, String)>);

impl Lines {
    fn new(lines: &[(&str, &str)]) -> Lines {
        Lines(lines.iter().map(|&(k, v)| (k.into(), v.into())).collect())
    }

    fn values(&self, key: &str) -> Vec<&str> {
        let lines = self.0.iter().filter(|(k, _)| k.eq_ignore_ascii_case(key));
        lines.map(|(_, v)| v.as_str()).collect()
    }
}

impl Extractor for Lines {
    fn get(&self, key: &str) -> Option<&str> {
        self.values(key).first().copied()
    }

    fn get_all(&self, key: &str) -> Vec<&str> {
        self.values(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

impl Injector for Lines {
    fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.0.push((key.into(), value));
    }

    fn existing(&self, key: &str) -> Vec<&str> {
        self.values(key)
    }
}

fn trusted() -> Propagation {
    Propagation::builder()
        .inbound(Trust::Trusted)
        .outbound(Trust::Trusted)
        .build()
}

/// What a service built on `propagation` sends on when called with `incoming`: its
/// `traceparent` and `tracestate` lines, and the trace id its log lines show.
fn hop(propagation: &Propagation, incoming: &Lines) -> (Vec<String>, Vec<String>, Option<String>) {
    let context = propagation.extract(incoming);
    let mut outgoing = Lines::default();
    context.run(|| propagation.inject(&mut outgoing));
    let owned = |key| outgoing.values(key).into_iter().map(String::from).collect();
    (
        owned("traceparent"),
        owned("tracestate"),
        context.get(&TRACE_ID),
    )
}

const TP: &str = "00-12345678901234567890123456789012-1234567890123456-01";
const TP00: &str = "00-12345678901234567890123456789012-1234567890123456-00";
const TRACE: &str = "12345678901234567890123456789012";

/// One request of the suite and what must go on: `None` for no trace context at all, else the
/// `traceparent` and the `tracestate` (`None`: no `tracestate` line).
struct Case {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    sent: Option<(&'static str, Option<String>)>,
}

fn case(name: &'static str, headers: &[(&'static str, &str)]) -> Case {
    let headers = headers.iter().map(|&(k, v)| (k, v.to_string())).collect();
    Case {
        name,
        headers,
        sent: None,
    }
}

impl Case {
    fn incoming(&self) -> Lines {
        let lines = self.headers.iter().map(|(k, v)| (k.to_string(), v.clone()));
        Lines(lines.collect())
    }

    fn sends(mut self, traceparent: &'static str, tracestate: Option<&str>) -> Case {
        self.sent = Some((traceparent, tracestate.map(String::from)));
        self
    }
}

/// A `tracestate` case with the suite's usual `traceparent` (flags `00`) before its lines.
fn state(name: &'static str, lines: &[&str]) -> Case {
    let mut headers = vec![("traceparent", TP00.to_string())];
    headers.extend(lines.iter().map(|line| ("tracestate", line.to_string())));
    Case {
        name,
        headers,
        sent: None,
    }
}

/// A `tracestate` case whose lines go on as `expected`.
fn state_kept(name: &'static str, lines: &[&str], expected: &str) -> Case {
    state(name, lines).sends(TP00, Some(expected))
}

/// A `traceparent` case that must not be continued.
fn refused(name: &'static str, traceparent: &str) -> Case {
    case(name, &[("traceparent", traceparent)])
}

fn suite() -> Vec<Case> {
    let future = "cc-12345678901234567890123456789012-1234567890123456-01";
    let tp_with = |prefix: &str, suffix: &str| format!("{prefix}{TP}{suffix}");
    let lcalpha: String = ('a'..='z').collect();
    let key = format!("{lcalpha}0123456789_-*/");
    let key_with_vendor = format!("{key}@a-z0-9_-*/");
    let value: String = (0x20u8..=0x7E)
        .filter(|b| *b != b',' && *b != b'=')
        .map(char::from)
        .collect();
    let bars = |range: std::ops::RangeInclusive<u32>| {
        range
            .map(|i| format!("bar{i:02}={i:02}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let over4 = |last| [1..=10, 11..=20, 21..=30, 31..=last].map(bars);
    let all32 = over4(32).join(",");
    let long_keys = [
        "z".repeat(256),
        format!("{}@{}", "t".repeat(241), "v".repeat(14)),
        format!("{}@v", "t".repeat(242)),
        format!("t@{}", "v".repeat(15)),
    ];
    let mut cases = vec![
        case("both traceparent and tracestate missing", &[]),
        case(
            "traceparent included, tracestate missing",
            &[("traceparent", TP)],
        )
        .sends(TP, None),
        case(
            "traceparent duplicated",
            &[
                (
                    "traceparent",
                    "00-12345678901234567890123456789011-1234567890123456-01",
                ),
                ("traceparent", TP),
            ],
        ),
        case(
            "traceparent header name trace-parent",
            &[("trace-parent", TP)],
        ),
        case(
            "traceparent header name trace.parent",
            &[("trace.parent", TP)],
        ),
        case("traceparent name TraceParent", &[("TraceParent", TP)]).sends(TP, None),
        case("traceparent name TrAcEpArEnT", &[("TrAcEpArEnT", TP)]).sends(TP, None),
        case("traceparent name TRACEPARENT", &[("TRACEPARENT", TP)]).sends(TP, None),
        refused("version 00 with a trailing .", &tp_with("", ".")),
        refused(
            "version 00 with more fields",
            &tp_with("", "-what-the-future-will-be-like"),
        ),
        case("version cc", &[("traceparent", future)]).sends(TP, None),
        case(
            "version cc with more fields",
            &[(
                "traceparent",
                &format!("{future}-what-the-future-will-be-like"),
            )],
        )
        .sends(TP, None),
        refused(
            "version cc followed by a .",
            &format!("{future}.what-the-future-will-be-like"),
        ),
        refused(
            "version ff",
            "ff-12345678901234567890123456789012-1234567890123456-01",
        ),
        refused(
            "version .0",
            ".0-12345678901234567890123456789012-1234567890123456-01",
        ),
        refused(
            "version 0.",
            "0.-12345678901234567890123456789012-1234567890123456-01",
        ),
        refused(
            "version 000",
            "000-12345678901234567890123456789012-1234567890123456-01",
        ),
        refused(
            "version 0000",
            "0000-12345678901234567890123456789012-1234567890123456-01",
        ),
        refused(
            "version 0",
            "0-12345678901234567890123456789012-1234567890123456-01",
        ),
        refused(
            "trace id all zero",
            "00-00000000000000000000000000000000-1234567890123456-01",
        ),
        refused(
            "trace id starts with .",
            "00-.2345678901234567890123456789012-1234567890123456-01",
        ),
        refused(
            "trace id ends with .",
            "00-1234567890123456789012345678901.-1234567890123456-01",
        ),
        refused(
            "trace id too long",
            "00-123456789012345678901234567890123-1234567890123456-01",
        ),
        refused(
            "trace id too short",
            "00-1234567890123456789012345678901-1234567890123456-01",
        ),
        refused(
            "parent id all zero",
            "00-12345678901234567890123456789012-0000000000000000-01",
        ),
        refused(
            "parent id starts with .",
            "00-12345678901234567890123456789012-.234567890123456-01",
        ),
        refused(
            "parent id ends with .",
            "00-12345678901234567890123456789012-123456789012345.-01",
        ),
        refused(
            "parent id too long",
            "00-12345678901234567890123456789012-12345678901234567-01",
        ),
        refused(
            "parent id too short",
            "00-12345678901234567890123456789012-123456789012345-01",
        ),
        refused(
            "flags .0",
            "00-12345678901234567890123456789012-1234567890123456-.0",
        ),
        refused(
            "flags 0.",
            "00-12345678901234567890123456789012-1234567890123456-0.",
        ),
        refused(
            "flags too long",
            "00-12345678901234567890123456789012-1234567890123456-001",
        ),
        refused(
            "flags too short",
            "00-12345678901234567890123456789012-1234567890123456-1",
        ),
        case("tracestate without traceparent", &[("tracestate", "foo=1")]),
        case(
            "tracestate of two without traceparent",
            &[("tracestate", "foo=1,bar=2")],
        ),
        state_kept(
            "tracestate with traceparent",
            &["foo=1,bar=2"],
            "foo=1,bar=2",
        ),
        case(
            "tracestate name trace-state",
            &[("traceparent", TP00), ("trace-state", "foo=1")],
        )
        .sends(TP00, None),
        case(
            "tracestate name trace.state",
            &[("traceparent", TP00), ("trace.state", "foo=1")],
        )
        .sends(TP00, None),
        case(
            "tracestate name TraceState",
            &[("traceparent", TP00), ("TraceState", "foo=1")],
        )
        .sends(TP00, Some("foo=1")),
        case(
            "tracestate name TrAcEsTaTe",
            &[("traceparent", TP00), ("TrAcEsTaTe", "foo=1")],
        )
        .sends(TP00, Some("foo=1")),
        case(
            "tracestate name TRACESTATE",
            &[("traceparent", TP00), ("TRACESTATE", "foo=1")],
        )
        .sends(TP00, Some("foo=1")),
        state("tracestate empty", &[""]).sends(TP00, None),
        state_kept("tracestate then an empty line", &["foo=1", ""], "foo=1"),
        state_kept("an empty line then tracestate", &["", "foo=1"], "foo=1"),
        state_kept(
            "tracestate over three lines",
            &["foo=1,bar=2", "rojo=1,congo=2", "baz=3"],
            "foo=1,bar=2,rojo=1,congo=2,baz=3",
        ),
        state_kept("duplicated key, same value", &["foo=1,foo=1"], "foo=1"),
        state_kept("duplicated key, other value", &["foo=1,foo=2"], "foo=1"),
        state_kept(
            "duplicated key over two lines",
            &["foo=1", "foo=1"],
            "foo=1",
        ),
        state_kept(
            "duplicated key, other value, two lines",
            &["foo=1", "foo=2"],
            "foo=1",
        ),
        state_kept(
            "all allowed characters",
            &[&format!("{key}={value}")],
            &format!("{key}={value}"),
        ),
        state_kept(
            "all allowed characters, vendor key",
            &[&format!("{key_with_vendor}={value}")],
            &format!("{key_with_vendor}={value}"),
        ),
        state_kept(
            "ows around members",
            &["foo=1 \t , \t bar=2, \t baz=3"],
            "foo=1,bar=2,baz=3",
        ),
        state_kept(
            "ows tabs around members",
            &["foo=1\t \t,\t \tbar=2,\t \tbaz=3"],
            "foo=1,bar=2,baz=3",
        ),
        state_kept("leading space", &[" foo=1"], "foo=1"),
        state_kept("leading tab", &["\tfoo=1"], "foo=1"),
        state_kept("trailing space", &["foo=1 "], "foo=1"),
        state_kept("trailing tab", &["foo=1\t"], "foo=1"),
        state_kept("spaces and tabs both sides", &["\t foo=1 \t"], "foo=1"),
        state("key with a space", &["foo =1"]).sends(TP00, None),
        state("uppercase key", &["FOO=1"]).sends(TP00, None),
        state("key with a dot", &["foo.bar=1"]).sends(TP00, None),
        state_kept("key ending in @", &["foo@=1,bar=2"], "foo@=1,bar=2"),
        state("key starting with @", &["@foo=1,bar=2"]).sends(TP00, None),
        state_kept("key with @@", &["foo@@bar=1,bar=2"], "foo@@bar=1,bar=2"),
        state_kept(
            "key with two @",
            &["foo@bar@baz=1,bar=2"],
            "foo@bar@baz=1,bar=2",
        ),
        state_kept(
            "32 members over 4 lines",
            &over4(32).each_ref().map(String::as_str),
            &all32,
        ),
        state(
            "33 members over 4 lines",
            &over4(33).each_ref().map(String::as_str),
        )
        .sends(TP00, None),
        state(
            "a key of 257 characters",
            &["foo=1", &format!("{}=1", "z".repeat(257))],
        )
        .sends(TP00, None),
        state("value with =", &["foo=bar=baz"]).sends(TP00, None),
        state("empty value", &["foo=,bar=3"]).sends(TP00, None),
        case(
            "random flag",
            &[(
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-02",
            )],
        )
        .sends(
            "00-12345678901234567890123456789012-1234567890123456-02",
            None,
        ),
    ];
    for (name, prefix, suffix) in [
        ("traceparent after a space", " ", ""),
        ("traceparent after a tab", "\t", ""),
        ("traceparent before a space", "", " "),
        ("traceparent before a tab", "", "\t"),
        ("traceparent between tabs and spaces", "\t ", " \t"),
    ] {
        cases.push(case(name, &[("traceparent", &tp_with(prefix, suffix))]).sends(TP, None));
    }
    for (i, key) in long_keys.iter().enumerate() {
        let names = ["a key of 256", "241@14", "242@1", "1@15"];
        cases.push(state_kept(
            names[i],
            &["foo=1", &format!("{key}=1")],
            &format!("foo=1,{key}=1"),
        ));
    }
    cases
}

#[test]
fn every_case_of_the_w3c_suite_passes_from_a_trusted_caller() {
    let propagation = trusted();
    let mut failed = Vec::new();
    for case in suite() {
        let incoming = case.incoming();
        let (traceparent, tracestate, trace_id) = hop(&propagation, &incoming);
        let expected = match &case.sent {
            None => (vec![], vec![], None),
            Some((tp, ts)) => (
                vec![tp.to_string()],
                ts.iter().cloned().collect(),
                Some(TRACE.to_string()),
            ),
        };
        if (traceparent.clone(), tracestate.clone(), trace_id.clone()) != expected {
            failed.push(format!(
                "{}: sent {traceparent:?} {tracestate:?} (trace id {trace_id:?}), expected {expected:?}",
                case.name
            ));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn from_an_untrusted_caller_nothing_is_read_or_sent() {
    let propagation = Propagation::builder().outbound(Trust::Trusted).build();
    for case in suite() {
        let incoming = case.incoming();
        assert_eq!(
            hop(&propagation, &incoming),
            (vec![], vec![], None),
            "{}",
            case.name
        );
    }
}

#[test]
fn a_trusted_callers_trace_context_goes_to_untrusted_destinations_too() {
    let incoming = Lines::new(&[("traceparent", TP), ("tracestate", "congo=t61rcWkgMzE")]);
    let propagation = Propagation::builder().inbound(Trust::Trusted).build();
    let sent = hop(&propagation, &incoming);
    assert_eq!(sent.0, [TP]);
    assert_eq!(sent.1, ["congo=t61rcWkgMzE"]);
}

#[test]
fn every_call_made_in_the_request_forwards_the_same_trace_context() {
    let propagation = trusted();
    let context = propagation.extract(&Lines::new(&[("traceparent", TP), ("tracestate", "a=1")]));
    for _ in 0..3 {
        let mut outgoing = Lines::default();
        propagation.inject_context(&context, &mut outgoing);
        assert_eq!(outgoing.values("traceparent"), [TP]);
        assert_eq!(outgoing.values("tracestate"), ["a=1"]);
    }
    // Outside the request, nothing.
    let mut outgoing = Lines::default();
    propagation.inject_context(&Context::new(), &mut outgoing);
    assert!(outgoing.0.is_empty());
}

#[test]
fn a_hash_map_carrier_works_too() {
    let incoming = std::collections::HashMap::from([
        ("TRACEPARENT".to_string(), TP.to_string()),
        ("tracestate".to_string(), " a=1 ,, b=2".to_string()),
    ]);
    let propagation = trusted();
    let context = propagation.extract(&incoming);
    let mut outgoing = std::collections::HashMap::new();
    context.run(|| propagation.inject(&mut outgoing));
    assert_eq!(outgoing["traceparent"], TP);
    assert_eq!(outgoing["tracestate"], "a=1,b=2");
    assert_eq!(context.get(&TRACE_ID).as_deref(), Some(TRACE));
}

/// With OpenTelemetry, inside the request's OTel context the wire is OpenTelemetry's: it
/// writes `traceparent` (here for the caller's span, with the flags reduced to the sampled
/// bit) and the forwarded trace context is not written over it.
#[cfg(feature = "opentelemetry")]
#[test]
fn with_opentelemetry_its_traceparent_wins() {
    let propagation = trusted();
    let random = "00-12345678901234567890123456789012-1234567890123456-02";
    let incoming = Lines::new(&[("traceparent", random), ("tracestate", "foo@@bar=1")]);
    let extracted = propagation.extract_with(&incoming, || None);
    let mut outgoing = Lines::default();
    extracted.run(|| propagation.inject(&mut outgoing));
    assert_eq!(
        outgoing.values("traceparent"),
        ["00-12345678901234567890123456789012-1234567890123456-00"]
    );
    assert!(outgoing.values("tracestate").is_empty());
    // Outside the OTel context, the forwarded one goes.
    let mut outgoing = Lines::default();
    extracted.context.run(|| propagation.inject(&mut outgoing));
    assert_eq!(outgoing.values("traceparent"), [random]);
    assert_eq!(outgoing.values("tracestate"), ["foo@@bar=1"]);
}

// ---------------------------------------------------------------------------------------------
// Properties

/// A valid `traceparent` as this crate writes it: version 00, lowercase, ids not all zero.
fn traceparent() -> impl Strategy<Value = String> {
    let id = |len: usize| {
        proptest::collection::vec(any::<u8>(), len)
            .prop_filter("all zero", |id| id.iter().any(|&b| b != 0))
            .prop_map(|id| id.iter().map(|b| format!("{b:02x}")).collect::<String>())
    };
    (id(16), id(8), any::<u8>()).prop_map(|(t, p, f)| format!("00-{t}-{p}-{f:02x}"))
}

/// A valid `tracestate` as this crate writes it: distinct keys, at most 32 members.
fn tracestate() -> impl Strategy<Value = String> {
    let key = "[a-z0-9][a-z0-9_*/@-]{0,20}";
    let value = "[ -+\\--<>-~]{0,20}[!-+\\--<>-~]";
    proptest::collection::btree_map(key, value, 1..=32).prop_map(|members| {
        let members = members.into_iter().map(|(k, v)| format!("{k}={v}"));
        members.collect::<Vec<_>>().join(",")
    })
}

/// Lines that are mostly near the grammar: valid headers with a few bytes changed, fragments,
/// and any text.
fn line(valid: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    let mutated = (
        valid.clone(),
        proptest::collection::vec((any::<usize>(), any::<char>()), 1..4),
    )
        .prop_map(|(text, edits)| {
            let mut chars: Vec<char> = text.chars().collect();
            for (at, c) in edits {
                let at = at % (chars.len() + 1);
                match at % 3 {
                    0 if at < chars.len() => chars[at] = c,
                    1 if at < chars.len() => {
                        chars.remove(at);
                    }
                    _ => chars.insert(at, c),
                }
            }
            chars.into_iter().collect()
        });
    prop_oneof![
        3 => mutated,
        2 => valid,
        1 => "[ -~\t]{0,80}",
        1 => any::<String>(),
    ]
}

/// What a hop sent is valid: at most one `traceparent`, which parses and is written as
/// parsed; a `tracestate` only with it, which parses, within the limits, written as parsed.
fn assert_valid(sent: &(Vec<String>, Vec<String>, Option<String>)) {
    let (traceparent, tracestate, trace_id) = sent;
    assert!(traceparent.len() <= 1 && tracestate.len() <= 1, "{sent:?}");
    if let Some(tp) = traceparent.first() {
        let parsed = TraceParent::parse(tp).expect("a valid traceparent");
        assert_eq!(parsed.to_string(), *tp);
        assert_eq!(parsed.version(), 0);
        assert_eq!(trace_id.as_deref(), Some(&*parsed.trace_id_hex()));
    } else {
        assert!(tracestate.is_empty() && trace_id.is_none(), "{sent:?}");
    }
    if let Some(ts) = tracestate.first() {
        let parsed = TraceState::parse(ts).expect("a valid tracestate");
        assert_eq!(parsed.to_string(), *ts);
        assert!(!parsed.is_empty() && parsed.len() <= 32);
        assert!(!ts.contains('\t'), "{ts:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A valid trace context from a trusted caller goes on exactly as it came.
    #[test]
    fn a_valid_trace_context_round_trips_unchanged(tp in traceparent(), ts in proptest::option::of(tracestate())) {
        let mut headers = vec![("traceparent", tp.as_str())];
        headers.extend(ts.as_deref().map(|ts| ("tracestate", ts)));
        let sent = hop(&trusted(), &Lines::new(&headers));
        prop_assert_eq!(&sent.0, std::slice::from_ref(&tp));
        prop_assert_eq!(sent.1, ts.into_iter().collect::<Vec<_>>());
        prop_assert_eq!(sent.2.as_deref(), Some(&tp[3..35]));
    }

    /// Whatever comes in, what goes on is valid, and only when exactly one `traceparent`
    /// line was valid.
    #[test]
    fn nothing_malformed_is_ever_sent_on(
        traceparents in proptest::collection::vec(line(traceparent().boxed()), 0..3),
        tracestates in proptest::collection::vec(line(tracestate().boxed()), 0..4),
    ) {
        let mut incoming = Lines::default();
        incoming.0.extend(traceparents.iter().map(|v| ("traceparent".to_string(), v.clone())));
        incoming.0.extend(tracestates.iter().map(|v| ("tracestate".to_string(), v.clone())));
        let sent = hop(&trusted(), &incoming);
        assert_valid(&sent);
        let one_valid = traceparents.len() == 1 && TraceParent::parse(&traceparents[0]).is_some();
        prop_assert_eq!(!sent.0.is_empty(), one_valid);
        if one_valid {
            let state = TraceState::parse_lines(tracestates.iter().map(String::as_str));
            prop_assert_eq!(sent.1.first().cloned(), state.filter(|s| !s.is_empty()).map(|s| s.to_string()));
        }
        // The codec alone agrees.
        let direct = TraceContext::from_headers(&incoming);
        prop_assert_eq!(direct.is_some(), one_valid);
    }

    /// Random bytes as header values (those that are text) never yield anything malformed.
    #[test]
    fn random_bytes_are_never_sent_on_malformed(
        values in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..70)), 0..5),
    ) {
        let mut incoming = Lines::default();
        for (is_parent, bytes) in values {
            if let Ok(text) = String::from_utf8(bytes) {
                let key = if is_parent { "traceparent" } else { "tracestate" };
                incoming.0.push((key.to_string(), text));
            }
        }
        assert_valid(&hop(&trusted(), &incoming));
    }
}
