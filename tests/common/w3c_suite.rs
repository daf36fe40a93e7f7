//! The cases of the W3C Trace Context test suite (level 2, strict) as data: each request's
//! header lines and what a participant that creates no spans must send on. Their inputs and
//! expected outcomes are the suite's facts; the code is ours. Used by `tests/trace_context.rs`
//! (through `Propagation`) and `tests/trace_context_wire.rs` (through real transports).

use contextvars::propagation::{Extractor, Injector};

/// Header lines in order, names as written, repeats kept: an HTTP request as the suite sends it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Lines(pub(crate) Vec<(String, String)>);

impl Lines {
    pub(crate) fn new(lines: &[(&str, &str)]) -> Lines {
        Lines(lines.iter().map(|&(k, v)| (k.into(), v.into())).collect())
    }

    pub(crate) fn values(&self, key: &str) -> Vec<&str> {
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

pub(crate) const TP: &str = "00-12345678901234567890123456789012-1234567890123456-01";
pub(crate) const TP00: &str = "00-12345678901234567890123456789012-1234567890123456-00";
pub(crate) const TRACE: &str = "12345678901234567890123456789012";

/// One request of the suite and what must go on: `None` for no trace context at all, else the
/// `traceparent` and the `tracestate` (`None`: no `tracestate` line).
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) sent: Option<(&'static str, Option<String>)>,
}

pub(crate) fn case(name: &'static str, headers: &[(&'static str, &str)]) -> Case {
    let headers = headers.iter().map(|&(k, v)| (k, v.to_string())).collect();
    Case {
        name,
        headers,
        sent: None,
    }
}

impl Case {
    pub(crate) fn incoming(&self) -> Lines {
        let lines = self.headers.iter().map(|(k, v)| (k.to_string(), v.clone()));
        Lines(lines.collect())
    }

    pub(crate) fn sends(mut self, traceparent: &'static str, tracestate: Option<&str>) -> Case {
        self.sent = Some((traceparent, tracestate.map(String::from)));
        self
    }
}

/// A `tracestate` case with the suite's usual `traceparent` (flags `00`) before its lines.
pub(crate) fn state(name: &'static str, lines: &[&str]) -> Case {
    let mut headers = vec![("traceparent", TP00.to_string())];
    headers.extend(lines.iter().map(|line| ("tracestate", line.to_string())));
    Case {
        name,
        headers,
        sent: None,
    }
}

/// A `tracestate` case whose lines go on as `expected`.
pub(crate) fn state_kept(name: &'static str, lines: &[&str], expected: &str) -> Case {
    state(name, lines).sends(TP00, Some(expected))
}

/// A `traceparent` case that must not be continued.
pub(crate) fn refused(name: &'static str, traceparent: &str) -> Case {
    case(name, &[("traceparent", traceparent)])
}

pub(crate) fn suite() -> Vec<Case> {
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
