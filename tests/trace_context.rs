//! W3C Trace Context through `Propagation`, without OpenTelemetry: the cases of the W3C test
//! suite (level 2, strict) replayed through `extract` and `inject` with a carrier that keeps
//! repeated header lines, and property tests of what is sent on.
//!
//! The suite's service creates a span per request, so where it expects "a new trace" this crate,
//! which creates none, sends no `traceparent` at all (the spec's participant that does not
//! trace), and where it expects the trace continued, the trace context goes on unchanged.

use contextvars::propagation::{
    Propagation, TraceContext, TraceParent, TraceState, Trust, TRACE_ID,
};
use contextvars::Context;
use proptest::prelude::*;

mod common;

use common::w3c_suite::{suite, Lines, TP, TRACE};

fn trusted() -> Propagation {
    Propagation::builder()
        .inbound(Trust::Trusted)
        .outbound(Trust::Trusted)
        .build()
}

/// The `traceparent` and `tracestate` lines sent on, and the trace id in the request's context.
type Sent = (Vec<String>, Vec<String>, Option<String>);

/// What a service built on `propagation` sends on when called with `incoming`: its
/// `traceparent` and `tracestate` lines, and the trace id its log lines show.
fn hop(propagation: &Propagation, incoming: &Lines) -> Sent {
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

#[test]
fn every_case_of_the_w3c_suite_passes_from_a_trusted_caller() {
    assert_suite_passes(hop);
}

/// The same through `extract_with` and `Extracted::run`: with `opentelemetry`, the request's
/// OTel context is current and the OTel bridge writes the trace context.
#[test]
fn every_case_of_the_w3c_suite_passes_inside_the_extracted_bundle() {
    assert_suite_passes(|propagation, incoming| {
        let extracted = propagation.extract_with(incoming, || None);
        let mut outgoing = Lines::default();
        extracted.run(|| propagation.inject(&mut outgoing));
        let owned = |key| outgoing.values(key).into_iter().map(String::from).collect();
        (
            owned("traceparent"),
            owned("tracestate"),
            extracted.context.get(&TRACE_ID),
        )
    });
}

/// Replays every case through `hop` (a service that calls on with what it received).
fn assert_suite_passes(hop: impl Fn(&Propagation, &Lines) -> Sent) {
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

/// With OpenTelemetry and no span created, inside the request's OTel context the trace context
/// goes on as received too: the OTel bridge reads and writes it with the same codec (the flags
/// whole, a `tracestate` OpenTelemetry's own grammar refuses kept).
#[cfg(feature = "opentelemetry")]
#[test]
fn with_opentelemetry_the_trace_context_goes_on_unchanged() {
    let propagation = trusted();
    let random = "00-12345678901234567890123456789012-1234567890123456-02";
    let incoming = Lines::new(&[("traceparent", random), ("tracestate", "foo@@bar=1")]);
    let extracted = propagation.extract_with(&incoming, || None);
    for inside in [true, false] {
        let mut outgoing = Lines::default();
        if inside {
            extracted.run(|| propagation.inject(&mut outgoing));
        } else {
            extracted.context.run(|| propagation.inject(&mut outgoing));
        }
        assert_eq!(outgoing.values("traceparent"), [random], "inside: {inside}");
        assert_eq!(
            outgoing.values("tracestate"),
            ["foo@@bar=1"],
            "inside: {inside}"
        );
    }
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
fn assert_valid(sent: &Sent) {
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
