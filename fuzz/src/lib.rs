//! What the fuzz targets check on the W3C Baggage reader and writer of `contextvars::tower`, and
//! on the W3C Trace Context reader and writer of `contextvars::propagation`.
//!
//! One place for both users: the `cargo fuzz` targets in `fuzz_targets/` call [`parse`],
//! [`round_trip`] and [`trace_context`] on every input, and `tests/fuzz_corpus.rs` in the main crate includes this file
//! and replays the committed corpus through them, which is how CI runs the corpus.
//!
//! An input is `baggage` header lines separated by `\n`; lines that are not valid header values
//! are left out. So that short inputs reach the 8,192-byte limit, a `\0` followed by two bytes
//! `n` (little-endian) and a unit up to the next `\0` (or the end) stands for the unit repeated
//! to 8,193 − `n` bytes (`x` when the unit is empty): `a=\0\x03\0\0` is `a=` and 8,190 `x`s. Two
//! such markers at most are expanded.
//!
//! For [`trace_context`], an input is header lines separated by `\n`: those starting with `>`
//! are `traceparent` lines (without the `>`), the others `tracestate` lines; lines that are not
//! valid header values are left out, and there are no markers.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::convert::Infallible;

use contextvars::propagation::{TraceContext, TraceParent, TraceState, MAX_TRACESTATE_MEMBERS};
use contextvars::tower::{
    inject_headers_with, Baggage, ContextLayer, Propagation, Trust, MAX_BAGGAGE_BYTES,
    MAX_BAGGAGE_MEMBERS,
};
use contextvars::ContextVar;
use http::{HeaderMap, HeaderValue, Request, Response};
use tower::{Layer, ServiceExt};

/// A registered key whose values are kept as they are.
static TEXT: ContextVar<String> = ContextVar::new("fuzz_text");
/// A registered key whose values must parse as a `u8` (others are dropped, not forwarded).
static NUMBER: ContextVar<u8> = ContextVar::new("fuzz_number");

/// One input, expanded.
struct Input {
    /// Its lines that are valid header values, as `baggage` headers.
    headers: HeaderMap,
    /// Those of them that are text (the ones the reader reads) joined by `,`.
    joined: String,
    /// The whole input when it is UTF-8, for `Baggage::parse`, which takes any string.
    text: Option<String>,
}

impl Input {
    fn new(data: &[u8]) -> Input {
        let data = expand(data);
        let mut headers = HeaderMap::new();
        let mut readable = Vec::new();
        for line in data.split(|&b| b == b'\n') {
            if let Ok(value) = HeaderValue::from_bytes(line) {
                if let Ok(text) = value.to_str() {
                    readable.push(text.to_owned());
                }
                headers.append("baggage", value);
            }
        }
        Input {
            headers,
            joined: readable.join(","),
            text: String::from_utf8(data).ok(),
        }
    }
}

/// Expands the first two `\0 n n unit \0` markers; see the crate docs.
fn expand(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    for _ in 0..2 {
        let Some(at) = rest.iter().position(|&b| b == 0) else {
            break;
        };
        out.extend_from_slice(&rest[..at]);
        let Some((n, tail)) = rest[at + 1..].split_first_chunk::<2>() else {
            rest = &[];
            break;
        };
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        let unit: &[u8] = if end == 0 { b"x" } else { &tail[..end] };
        let len = (MAX_BAGGAGE_BYTES + 1).saturating_sub(usize::from(u16::from_le_bytes(*n)));
        out.extend(unit.iter().cycle().take(len));
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    out.extend_from_slice(rest);
    out
}

/// The parse target: the reader never panics, keeps to the limits and the grammar, accepts a
/// member exactly when the grammar does, and reading several lines is reading them joined by `,`.
pub fn parse(data: &[u8]) {
    let input = Input::new(data);
    if let Some(text) = &input.text {
        check_list(&Baggage::parse(text));
        check_members(text);
    }
    check_members(&input.joined);
    let baggage = Baggage::from_headers(&input.headers);
    check_list(&baggage);
    let joined = Baggage::parse(&input.joined);
    assert!(
        baggage == joined && baggage.to_string() == joined.to_string(),
        "lines read one by one: {}, joined: {}",
        short(&baggage.to_string()),
        short(&joined.to_string())
    );
}

/// The round-trip target: parse, format, parse again gives the same members; what is written is
/// canonical (no whitespace, no control character), within the limits and never longer than what
/// was read; and the same through `ContextLayer` and `inject_headers_with`.
pub fn round_trip(data: &[u8]) {
    let input = Input::new(data);
    if let Some(text) = &input.text {
        check_round_trip(&Baggage::parse(text), text.len());
    }
    let baggage = Baggage::from_headers(&input.headers);
    check_round_trip(&baggage, input.joined.len());
    check_fresh_values(&baggage);
    check_layer(&input);
}

/// Members, keys and properties as the grammar and the limits allow.
fn check_list(baggage: &Baggage) {
    assert!(
        baggage.len() <= MAX_BAGGAGE_MEMBERS,
        "{} members",
        baggage.len()
    );
    let mut keys = HashSet::new();
    for member in baggage {
        assert!(is_token(member.key()), "key {:?}", member.key());
        assert!(keys.insert(member.key()), "key {:?} twice", member.key());
        assert_eq!(baggage.get(member.key()), Some(member.value()));
        if !member.properties().is_empty() {
            assert!(
                member.properties().split(';').all(is_canonical_property),
                "properties {:?}",
                member.properties()
            );
        }
    }
}

/// Each `,`-separated piece of `list` (within the byte limit) is read as a member exactly when
/// [`is_member`] says the grammar allows it.
fn check_members(list: &str) {
    for piece in list
        .split(',')
        .filter(|piece| piece.len() <= MAX_BAGGAGE_BYTES)
    {
        let read = Baggage::parse(piece);
        let member = is_member(piece);
        assert!(
            read.is_empty() != member,
            "member {}: {member}",
            short(piece)
        );
    }
}

/// `baggage`, read from `read` bytes, written and read again.
fn check_round_trip(baggage: &Baggage, read: usize) {
    check_list(baggage);
    let written = baggage.to_string();
    check_written(&written);
    assert!(
        written.len() <= read,
        "{read} bytes read became {} written: {}",
        written.len(),
        short(&written)
    );
    match baggage.to_header_value() {
        Some(value) => assert!(value == written.as_str(), "header value differs"),
        None => assert!(baggage.is_empty() && written.is_empty()),
    }
    let again = Baggage::parse(&written);
    assert!(
        &again == baggage,
        "{} written as {} read as {}",
        short(&format!("{baggage:?}")),
        short(&written),
        short(&format!("{again:?}"))
    );
    assert!(again.to_string() == written, "writing is not stable");
}

/// Every value given anew (so percent-encoded by the writer, not copied as received): what is
/// written is canonical, and reads back as the values given, less members left out for the
/// limits.
fn check_fresh_values(baggage: &Baggage) {
    let mut fresh = Baggage::new();
    for member in baggage {
        fresh.insert(member.key(), member.value());
    }
    let written = fresh.to_string();
    check_written(&written);
    for member in &Baggage::parse(&written) {
        let given = fresh.get(member.key());
        assert!(given == Some(member.value()), "{}", short(&written));
        assert!(member.properties().is_empty());
    }
}

/// Through the server layer and back out of the client side: registered keys `text` (any value)
/// and `number` (a `u8`) first, then the forwarded members, as the reader reads them once the
/// `number` members that do not parse are taken out; nothing longer than what was read.
fn check_layer(input: &Input) {
    let propagation = Propagation::builder()
        .baggage_str(&TEXT, "text")
        .baggage(&NUMBER, "number", |s| s.parse().ok())
        .inbound(Trust::Trusted)
        .outbound(Trust::Trusted)
        .build();
    let outgoing = call(&propagation, &input.headers, HeaderMap::new());

    let written = outgoing
        .get("baggage")
        .map(|value| value.to_str().expect("not text").to_owned())
        .unwrap_or_default();
    assert!(outgoing.get_all("baggage").iter().count() <= 1);
    check_written(&written);
    let read = input.joined.len().min(MAX_BAGGAGE_BYTES);
    assert!(
        written.len() <= read,
        "{read} bytes read became {} forwarded: {}",
        written.len(),
        short(&written)
    );

    // What the layer accepts: the list with the `number` members that do not parse blanked out
    // (same length, so the byte limit falls in the same place).
    let blanked: Vec<String> = input
        .joined
        .split(',')
        .map(|piece| match Baggage::parse(piece).get("number") {
            Some(value) if value.parse::<u8>().is_err() => " ".repeat(piece.len()),
            _ => piece.to_owned(),
        })
        .collect();
    let accepted = Baggage::parse(&blanked.join(","));
    let mut expected = Vec::new();
    if let Some(value) = accepted.get("text") {
        expected.push(("text".to_owned(), value.to_owned(), String::new()));
    }
    if let Some(value) = accepted.get("number") {
        let number: u8 = value.parse().expect("blanked out");
        expected.push(("number".to_owned(), number.to_string(), String::new()));
    }
    for member in &accepted {
        if !matches!(member.key(), "text" | "number") {
            expected.push(members(member));
        }
    }
    let forwarded: Vec<_> = Baggage::parse(&written).iter().map(members).collect();
    assert!(
        forwarded == expected,
        "expected {} forwarded as {}",
        short(&format!("{expected:?}")),
        short(&written)
    );

    // Members already in the outgoing headers are added after ours, within the limits; when we
    // have nothing to add, the headers are left alone.
    let outgoing = call(&propagation, &input.headers, input.headers.clone());
    if written.is_empty() {
        assert_eq!(outgoing.get("baggage"), input.headers.get("baggage"));
        let lines = |headers: &HeaderMap| headers.get_all("baggage").iter().count();
        assert_eq!(lines(&outgoing), lines(&input.headers));
    } else {
        assert_eq!(outgoing.get_all("baggage").iter().count(), 1);
        let merged = outgoing["baggage"].to_str().expect("not text");
        check_written(merged);
        assert!(
            merged.starts_with(&written),
            "{} after {}",
            short(merged),
            short(&written)
        );
    }
}

fn members(member: &contextvars::tower::BaggageMember) -> (String, String, String) {
    let (key, value, properties) = (member.key(), member.value(), member.properties());
    (key.to_owned(), value.to_owned(), properties.to_owned())
}

/// Sends a request with `incoming` headers through `ContextLayer` to a service that returns the
/// headers `inject_headers_with` writes into `outgoing`.
fn call(propagation: &Propagation, incoming: &HeaderMap, outgoing: HeaderMap) -> HeaderMap {
    let client = propagation.clone();
    let service =
        ContextLayer::new(propagation.clone()).layer(tower::service_fn(move |_: Request<()>| {
            let mut headers = outgoing.clone();
            inject_headers_with(&client, &mut headers);
            async move { Ok::<_, Infallible>(Response::new(headers)) }
        }));
    let mut request = Request::new(());
    *request.headers_mut() = incoming.clone();
    let response = futures::executor::block_on(service.oneshot(request)).expect("infallible");
    response.into_body()
}

/// A written `baggage` value: within the limits, and in the grammar's canonical form (no
/// whitespace, so no control character), with escapes that decode.
fn check_written(written: &str) {
    assert!(
        written.len() <= MAX_BAGGAGE_BYTES,
        "{} bytes",
        written.len()
    );
    if written.is_empty() {
        return;
    }
    let members: Vec<&str> = written.split(',').collect();
    assert!(
        members.len() <= MAX_BAGGAGE_MEMBERS,
        "{} members",
        members.len()
    );
    for member in members {
        let mut parts = member.split(';');
        let pair = parts.next().unwrap_or_default();
        let (key, value) = pair
            .split_once('=')
            .unwrap_or_else(|| panic!("no `=` in {}", short(written)));
        assert!(is_token(key), "key {} in {}", short(key), short(written));
        assert!(
            value.bytes().all(is_baggage_octet),
            "value in {}",
            short(written)
        );
        assert!(escapes_decode(value), "value in {}", short(written));
        for property in parts {
            assert!(
                is_canonical_property(property),
                "property in {}",
                short(written)
            );
        }
    }
}

/// The W3C grammar of one list-member, with the optional whitespace around it, written
/// independently of the crate's reader: `OWS key OWS "=" OWS value *(OWS ";" OWS property) OWS`,
/// `property = key OWS "=" OWS value / key OWS`; and the crate's own rule that every `%` in the
/// value starts an escape (`%` and two hex digits).
fn is_member(piece: &str) -> bool {
    let mut at = Cursor {
        bytes: piece.as_bytes(),
        i: 0,
    };
    at.ows();
    if !at.token() {
        return false;
    }
    at.ows();
    if !at.eat(b'=') {
        return false;
    }
    at.ows();
    if !escapes_decode(at.value()) {
        return false;
    }
    loop {
        at.ows();
        if at.i == at.bytes.len() {
            return true;
        }
        if !at.eat(b';') {
            return false;
        }
        at.ows();
        if !at.token() {
            return false;
        }
        at.ows();
        if at.eat(b'=') {
            at.ows();
            at.value();
        }
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        while self.bytes.get(self.i).is_some_and(|&b| f(b)) {
            self.i += 1;
        }
        std::str::from_utf8(&self.bytes[start..self.i]).expect("ASCII")
    }

    fn ows(&mut self) {
        self.take_while(|b| b == b' ' || b == b'\t');
    }

    fn token(&mut self) -> bool {
        !self
            .take_while(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            .is_empty()
    }

    fn value(&mut self) -> &'a str {
        self.take_while(is_baggage_octet)
    }

    fn eat(&mut self, b: u8) -> bool {
        let found = self.bytes.get(self.i) == Some(&b);
        self.i += usize::from(found);
        found
    }
}

/// `s` for a message: its first 100 characters and its length.
fn short(s: &str) -> String {
    match s.char_indices().nth(100) {
        Some((end, _)) => format!("{:?}… ({} bytes)", &s[..end], s.len()),
        None => format!("{s:?}"),
    }
}

/// `key` or `key=value`, without whitespace.
fn is_canonical_property(property: &str) -> bool {
    match property.split_once('=') {
        Some((key, value)) => is_token(key) && value.bytes().all(is_baggage_octet),
        None => is_token(property),
    }
}

/// Every `%` followed by two hex digits.
fn escapes_decode(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}

/// An HTTP token (RFC 9110 `tchar`s), non-empty.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The W3C Baggage `baggage-octet`: visible ASCII but `"`, `,`, `;` and `\`.
fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

// ---------------------------------------------------------------------------------------------
// W3C Trace Context

/// The trace context target: the reader never panics and accepts exactly one valid
/// `traceparent` line; what a trusted hop sends on re-parses to what was read (version `00`),
/// in the canonical form, within the limits; a second hop sends the same; an untrusted caller
/// gets nothing through.
pub fn trace_context(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let (name, value) = match line.strip_prefix(b">") {
            Some(value) => ("traceparent", value),
            None => ("tracestate", line),
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    let text = |name| -> Vec<&str> {
        let values = headers.get_all(name).iter();
        values.filter_map(|v| v.to_str().ok()).collect()
    };
    let (parents, states) = (text("traceparent"), text("tracestate"));
    let read = TraceContext::from_headers(&headers);
    let expected_parent = match parents[..] {
        [line] => TraceParent::parse(line),
        _ => None,
    };
    assert_eq!(
        read.as_ref().map(TraceContext::parent),
        expected_parent.as_ref()
    );
    if let Some(trace) = &read {
        let state = TraceState::parse_lines(states.iter().copied()).unwrap_or_default();
        assert_eq!(*trace.state(), state);
        assert_eq!(
            TraceState::parse(&states.join(",")).unwrap_or_default(),
            state
        );
        assert!(state.len() <= MAX_TRACESTATE_MEMBERS);
    }

    let trusted = Propagation::builder()
        .inbound(Trust::Trusted)
        .outbound(Trust::Trusted)
        .build();
    let sent = hop(&trusted, &headers);
    let again = TraceContext::from_headers(&sent);
    match (&read, &again) {
        (None, None) => assert!(sent.is_empty(), "{sent:?}"),
        (Some(read), Some(again)) => {
            let parent = again.parent();
            assert_eq!(parent.version(), 0);
            assert_eq!(
                (parent.trace_id(), parent.parent_id(), parent.flags()),
                (
                    read.parent().trace_id(),
                    read.parent().parent_id(),
                    read.parent().flags()
                )
            );
            assert_eq!(again.state(), read.state());
            check_trace_written(&sent);
        }
        _ => panic!("read {read:?}, sent {sent:?}"),
    }
    assert_eq!(hop(&trusted, &sent), sent, "a second hop changed it");
    assert!(hop(&Propagation::default(), &headers).is_empty());
}

/// Extracts from `incoming` and injects what the context holds into fresh headers.
fn hop(propagation: &Propagation, incoming: &HeaderMap) -> HeaderMap {
    let context = propagation.extract(incoming);
    let mut outgoing = HeaderMap::new();
    context.run(|| propagation.inject(&mut outgoing));
    outgoing.remove("x-request-id");
    outgoing
}

/// One `traceparent` of 55 characters and at most one non-empty `tracestate`, as written by
/// `Display`: no whitespace around members, no empty member.
fn check_trace_written(sent: &HeaderMap) {
    assert_eq!(sent.get_all("traceparent").iter().count(), 1);
    assert_eq!(sent["traceparent"].len(), 55);
    assert!(sent.get_all("tracestate").iter().count() <= 1);
    if let Some(state) = sent.get("tracestate") {
        let state = state.to_str().expect("not text");
        assert!(!state.is_empty() && !state.contains('\t'));
        for member in state.split(',') {
            assert!(!member.is_empty() && !member.starts_with(' ') && !member.ends_with(' '));
        }
    }
}
