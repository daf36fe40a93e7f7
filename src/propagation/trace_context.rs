//! W3C Trace Context (level 2): reading and writing `traceparent` and `tracestate` to the
//! letter of the spec, for a participant that creates no spans of its own and forwards what a
//! trusted caller sent. What is done with each malformed input is in the
//! [propagation docs](super#w3c-trace-context).

use std::fmt;

use super::carrier::{Extractor, Injector};
use crate::ContextVar;

/// The trace id of the current request or message, as 32 lowercase hex digits: set by
/// [`Propagation::extract`](super::Propagation::extract) (and so by every server and consumer
/// integration) when a [trusted](super::Trust::Trusted) caller sent a valid `traceparent`, so
/// that log lines carry it. Printed with `Display` by logging integrations. Setting it yourself
/// sends nothing: what is forwarded is the [`TraceContext`] that came in.
///
/// # Examples
///
/// ```
/// use contextvars::propagation::{Propagation, Trust, TRACE_ID};
/// use std::collections::HashMap;
///
/// let headers = HashMap::from([(
///     "traceparent".to_string(),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
/// )]);
/// let context = Propagation::builder().inbound(Trust::Trusted).build().extract(&headers);
/// assert_eq!(context.get(&TRACE_ID).as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
/// ```
pub static TRACE_ID: ContextVar<String> = ContextVar::new("trace_id").with_display();

/// The trace context a trusted caller sent, kept to be forwarded unchanged. Opaque: logging
/// integrations print [`TRACE_ID`] instead.
pub(crate) static RECEIVED: ContextVar<TraceContext> = ContextVar::opaque("trace_context");

/// The W3C Trace Context limit on `tracestate` list-members: a list with more is malformed and
/// dropped whole.
///
/// ```
/// use contextvars::propagation::{TraceState, MAX_TRACESTATE_MEMBERS};
///
/// let members: Vec<String> = (0..=MAX_TRACESTATE_MEMBERS).map(|i| format!("k{i}=v")).collect();
/// assert!(TraceState::parse(&members[..MAX_TRACESTATE_MEMBERS].join(",")).is_some());
/// assert!(TraceState::parse(&members.join(",")).is_none());
/// ```
pub const MAX_TRACESTATE_MEMBERS: usize = 32;

/// The carrier keys (header names).
pub(crate) const TRACEPARENT: &str = "traceparent";
pub(crate) const TRACESTATE: &str = "tracestate";

/// The longest `tracestate` key and value, in bytes.
const MAX_KEY_LEN: usize = 256;
const MAX_VALUE_LEN: usize = 256;

/// The length of a version 00 `traceparent`, and the least a future version may have.
const TRACEPARENT_LEN: usize = 55;

/// The sampled flag (`0x01`) and the level 2 random trace id flag (`0x02`) of `trace-flags`.
const SAMPLED: u8 = 0x01;
pub(crate) const RANDOM: u8 = 0x02;

// ---------------------------------------------------------------------------------------------
// traceparent

/// A valid `traceparent`: the trace id, the caller's span id (parent id) and the trace flags,
/// kept whole (the sampled flag, level 2's random flag, and any other bit as received).
///
/// [`parse`](TraceParent::parse) accepts exactly what the spec does (see the
/// [table](super#w3c-trace-context)); [`Display`](fmt::Display) writes the header as this crate
/// sends it: version `00`, the ids and the flags as received.
///
/// # Examples
///
/// ```
/// use contextvars::propagation::TraceParent;
///
/// let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03").unwrap();
/// assert_eq!(parent.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!(parent.is_sampled() && parent.is_random());
/// assert_eq!(parent.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03");
/// assert_eq!(TraceParent::parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    version: u8,
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

impl TraceParent {
    /// Parses one `traceparent` value, with the optional whitespace (spaces, tabs) around it;
    /// `None` when it is not valid. Version `00` is exactly 55 characters; a future version
    /// (not `ff`) is read as the spec says: at least the fields of `00`, followed by the end
    /// or a `-` (what follows is not looked at). Hex digits are lowercase only, and neither id
    /// may be all zeros.
    ///
    /// ```
    /// use contextvars::propagation::TraceParent;
    ///
    /// let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
    /// assert_eq!(TraceParent::parse(future).unwrap().version(), 0xcc);
    /// assert_eq!(TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"), None);
    /// assert_eq!(TraceParent::parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), None);
    /// ```
    pub fn parse(value: &str) -> Option<TraceParent> {
        let v = value.trim_matches([' ', '\t']).as_bytes();
        if v.len() < TRACEPARENT_LEN || [v[2], v[35], v[52]] != [b'-'; 3] {
            return None;
        }
        let [version] = hex::<1>(&v[..2])?;
        let fits = match version {
            0xff => false,
            0x00 => v.len() == TRACEPARENT_LEN,
            _ => v.get(TRACEPARENT_LEN).is_none_or(|&b| b == b'-'),
        };
        let trace_id = hex::<16>(&v[3..35])?;
        let parent_id = hex::<8>(&v[36..52])?;
        let [flags] = hex::<1>(&v[53..55])?;
        let valid = fits && trace_id != [0; 16] && parent_id != [0; 8];
        valid.then_some(TraceParent {
            version,
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The version received (`0` but for a future version). What is sent is always version
    /// `00`, the highest this crate knows, as the spec requires.
    ///
    /// ```
    /// let parent = contextvars::propagation::TraceParent::parse(
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    /// );
    /// assert_eq!(parent.unwrap().version(), 0);
    /// ```
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The trace id, 16 bytes, never all zero.
    ///
    /// ```
    /// let parent = contextvars::propagation::TraceParent::parse(
    ///     "00-000000000000000000000000000000ff-00f067aa0ba902b7-01",
    /// );
    /// assert_eq!(parent.unwrap().trace_id()[15], 0xff);
    /// ```
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The trace id as 32 lowercase hex digits, as it travels and as [`TRACE_ID`] holds it.
    ///
    /// ```
    /// let parent = contextvars::propagation::TraceParent::parse(
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    /// );
    /// assert_eq!(parent.unwrap().trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// ```
    pub fn trace_id_hex(&self) -> String {
        HexBytes(&self.trace_id).to_string()
    }

    /// The parent id (the caller's span id), 8 bytes, never all zero.
    ///
    /// ```
    /// let parent = contextvars::propagation::TraceParent::parse(
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00000000000000b7-01",
    /// );
    /// assert_eq!(parent.unwrap().parent_id(), [0, 0, 0, 0, 0, 0, 0, 0xb7]);
    /// ```
    pub fn parent_id(&self) -> [u8; 8] {
        self.parent_id
    }

    /// The parent id as 16 lowercase hex digits.
    ///
    /// ```
    /// let parent = contextvars::propagation::TraceParent::parse(
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    /// );
    /// assert_eq!(parent.unwrap().parent_id_hex(), "00f067aa0ba902b7");
    /// ```
    pub fn parent_id_hex(&self) -> String {
        HexBytes(&self.parent_id).to_string()
    }

    /// The trace flags, whole: every bit as received.
    ///
    /// ```
    /// let parent = contextvars::propagation::TraceParent::parse(
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09",
    /// );
    /// assert_eq!(parent.unwrap().flags(), 0x09);
    /// ```
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the caller may have recorded trace data (the sampled flag, `0x01`).
    ///
    /// ```
    /// let parent = contextvars::propagation::TraceParent::parse(
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02",
    /// );
    /// assert!(!parent.unwrap().is_sampled());
    /// ```
    pub fn is_sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// Whether at least the right-most 7 bytes of the trace id are random (level 2's random
    /// trace id flag, `0x02`).
    ///
    /// ```
    /// let parent = contextvars::propagation::TraceParent::parse(
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02",
    /// );
    /// assert!(parent.unwrap().is_random());
    /// ```
    pub fn is_random(&self) -> bool {
        self.flags & RANDOM != 0
    }
}

impl fmt::Display for TraceParent {
    /// The header value as sent: version `00`, then the ids and the flags as received.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (trace_id, parent_id) = (HexBytes(&self.trace_id), HexBytes(&self.parent_id));
        write!(f, "00-{trace_id}-{parent_id}-{:02x}", self.flags)
    }
}

/// Bytes written as lowercase hex.
struct HexBytes<'a>(&'a [u8]);

impl fmt::Display for HexBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// `2 * N` lowercase hex digits as `N` bytes.
fn hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    fn digit(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// tracestate

/// A valid `tracestate` list: its members in order, without the optional whitespace and the
/// empty members, and with only the first member of a repeated key.
///
/// Parsing is all or nothing, as the W3C test suite expects: a malformed member (a key or value
/// outside the grammar, an empty value) or more than [`MAX_TRACESTATE_MEMBERS`] members makes
/// the whole list invalid (`None`), which is then dropped; the `traceparent` is kept. See the
/// [table](super#w3c-trace-context).
///
/// # Examples
///
/// ```
/// use contextvars::propagation::TraceState;
///
/// let state = TraceState::parse(" rojo=00f067aa0ba902b7 ,, congo=t61rcWkgMzE").unwrap();
/// assert_eq!(state.get("congo"), Some("t61rcWkgMzE"));
/// assert_eq!(state.to_string(), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
/// assert_eq!(TraceState::parse("rojo=1,Congo=2"), None); // an uppercase key
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TraceState {
    /// The members as written: `key=value` joined by `,`. Keys and values hold neither `,` nor
    /// `=`, so it splits back unambiguously.
    header: String,
}

impl TraceState {
    /// An empty list (never sent).
    ///
    /// ```
    /// assert!(contextvars::propagation::TraceState::new().is_empty());
    /// ```
    pub const fn new() -> TraceState {
        TraceState {
            header: String::new(),
        }
    }

    /// Parses one `tracestate` value; `None` when it is malformed. An empty value, or one of
    /// empty members only, is a valid empty list.
    ///
    /// ```
    /// use contextvars::propagation::TraceState;
    ///
    /// assert_eq!(TraceState::parse("foo=1,foo=2").unwrap().to_string(), "foo=1");
    /// assert!(TraceState::parse(" , ").unwrap().is_empty());
    /// assert_eq!(TraceState::parse("foo="), None);
    /// ```
    pub fn parse(value: &str) -> Option<TraceState> {
        TraceState::parse_lines([value])
    }

    /// Parses several `tracestate` lines as one list, combined as RFC 9110 combines repeated
    /// header fields (joined by `,`); `None` when the list is malformed.
    ///
    /// ```
    /// use contextvars::propagation::TraceState;
    ///
    /// let state = TraceState::parse_lines(["foo=1,bar=2", "", "baz=3"]).unwrap();
    /// assert_eq!(state.to_string(), "foo=1,bar=2,baz=3");
    /// ```
    pub fn parse_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<TraceState> {
        let mut state = TraceState::new();
        let mut members = 0;
        for member in lines.into_iter().flat_map(|line| line.split(',')) {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            let (key, value) = member.split_once('=')?;
            members += 1;
            if !is_key(key) || !is_value(value) || members > MAX_TRACESTATE_MEMBERS {
                return None;
            }
            // A repeated key: the first (left-most, the most recent) is kept.
            if state.get(key).is_none() {
                if !state.header.is_empty() {
                    state.header.push(',');
                }
                state.header.extend([key, "=", value]);
            }
        }
        Some(state)
    }

    /// The value of `key`, if present.
    ///
    /// ```
    /// let state = contextvars::propagation::TraceState::parse("tenant@vendor= a b").unwrap();
    /// assert_eq!(state.get("tenant@vendor"), Some(" a b")); // leading spaces are the value's
    /// ```
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The members as `(key, value)`, in order.
    ///
    /// ```
    /// let state = contextvars::propagation::TraceState::parse("a=1,b=2").unwrap();
    /// assert_eq!(state.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "2")]);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let members = self.header.split(',').filter(|m| !m.is_empty());
        members.filter_map(|member| member.split_once('='))
    }

    /// The number of members.
    ///
    /// ```
    /// assert_eq!(contextvars::propagation::TraceState::parse("a=1,,b=2").unwrap().len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are no members.
    ///
    /// ```
    /// assert!(contextvars::propagation::TraceState::parse("").unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.header.is_empty()
    }
}

impl fmt::Display for TraceState {
    /// The header value as sent: the members joined by `,`, with no whitespace around them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header)
    }
}

/// `key = ( lcalpha / DIGIT ) 0*255( keychar )`, `keychar = lcalpha / DIGIT / "_" / "-" / "*" /
/// "/" / "@"`: the current grammar, which takes in the multi-tenant `tenant@system` keys.
fn is_key(key: &str) -> bool {
    let key = key.as_bytes();
    let first = key
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    first
        && key.len() <= MAX_KEY_LEN
        && key
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-*/@".contains(&b))
}

/// `value = 0*255( chr ) nblk-chr`: 1 to 256 printable ASCII characters but `,` and `=`, the
/// last not a space (leading spaces belong to the value).
fn is_value(value: &str) -> bool {
    let printable = |b: &u8| (0x20..=0x7E).contains(b) && *b != b',' && *b != b'=';
    (1..=MAX_VALUE_LEN).contains(&value.len())
        && value.bytes().all(|b| printable(&b))
        && !value.ends_with(' ')
}

// ---------------------------------------------------------------------------------------------
// Both, from and into carriers

/// A valid `traceparent` and the `tracestate` that came with it (empty when there was none, or
/// when it was malformed): what a participant that does not trace forwards unchanged.
///
/// [`Propagation::extract`](super::Propagation::extract) reads it from a
/// [trusted](super::Trust::Trusted) caller into the context (and its trace id into
/// [`TRACE_ID`]); [`Propagation::inject`](super::Propagation::inject) writes it back, unless
/// OpenTelemetry wrote a trace context of its own. See the
/// [propagation docs](super#w3c-trace-context).
///
/// # Examples
///
/// ```
/// use contextvars::propagation::TraceContext;
/// use std::collections::HashMap;
///
/// let incoming = HashMap::from([
///     ("traceparent".to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string()),
///     ("tracestate".to_string(), "congo=t61rcWkgMzE".to_string()),
/// ]);
/// let trace = TraceContext::from_headers(&incoming).unwrap();
/// let mut outgoing = HashMap::new();
/// trace.inject(&mut outgoing);
/// assert_eq!(outgoing, incoming);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TraceContext {
    parent: TraceParent,
    state: TraceState,
}

impl TraceContext {
    /// A trace context made of its two parts.
    ///
    /// ```
    /// use contextvars::propagation::{TraceContext, TraceParent, TraceState};
    ///
    /// let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    /// let trace = TraceContext::new(parent, TraceState::new());
    /// assert!(trace.state().is_empty());
    /// ```
    pub fn new(parent: TraceParent, state: TraceState) -> TraceContext {
        TraceContext { parent, state }
    }

    /// Reads a carrier's `traceparent` and `tracestate` (every line of each, in any ASCII case;
    /// see [`Extractor::get_all`]). `None` when there is no valid `traceparent`: none, more
    /// than one line, or a malformed one; the `tracestate` is then not read. A malformed
    /// `tracestate` is dropped whole and the `traceparent` kept.
    ///
    /// ```
    /// use contextvars::propagation::TraceContext;
    /// use std::collections::HashMap;
    ///
    /// let headers = HashMap::from([
    ///     ("TraceParent".to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string()),
    ///     ("tracestate".to_string(), "foo=".to_string()),
    /// ]);
    /// let trace = TraceContext::from_headers(&headers).unwrap();
    /// assert!(trace.state().is_empty());
    /// ```
    pub fn from_headers<C: Extractor + ?Sized>(carrier: &C) -> Option<TraceContext> {
        let parent = match carrier.get_all(TRACEPARENT)[..] {
            [line] => TraceParent::parse(line)?,
            _ => return None,
        };
        let state = TraceState::parse_lines(carrier.get_all(TRACESTATE)).unwrap_or_default();
        Some(TraceContext { parent, state })
    }

    /// The trace context a trusted caller sent with the current request or message, as
    /// [`Propagation::extract`](super::Propagation::extract) kept it (`None` elsewhere).
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, TraceContext, Trust};
    /// use std::collections::HashMap;
    ///
    /// let headers = HashMap::from([(
    ///     "traceparent".to_string(),
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
    /// )]);
    /// let context = Propagation::builder().inbound(Trust::Trusted).build().extract(&headers);
    /// let sampled = context.run(|| TraceContext::current().map(|t| t.parent().is_sampled()));
    /// assert_eq!(sampled, Some(true));
    /// assert_eq!(TraceContext::current(), None);
    /// ```
    pub fn current() -> Option<TraceContext> {
        RECEIVED.get()
    }

    /// The `traceparent`.
    ///
    /// ```
    /// use contextvars::propagation::{TraceContext, TraceParent, TraceState};
    ///
    /// let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    /// assert_eq!(*TraceContext::new(parent, TraceState::new()).parent(), parent);
    /// ```
    pub fn parent(&self) -> &TraceParent {
        &self.parent
    }

    /// The `tracestate` (empty when none came, or a malformed one was dropped).
    ///
    /// ```
    /// use contextvars::propagation::{TraceContext, TraceParent, TraceState};
    ///
    /// let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    /// let trace = TraceContext::new(parent, TraceState::parse("a=1").unwrap());
    /// assert_eq!(trace.state().get("a"), Some("1"));
    /// ```
    pub fn state(&self) -> &TraceState {
        &self.state
    }

    /// Writes `traceparent` (version `00`, the flags as received) and, when it has members,
    /// `tracestate` into an outgoing carrier, replacing what those keys had.
    ///
    /// ```
    /// use contextvars::propagation::{TraceContext, TraceParent, TraceState};
    /// use std::collections::HashMap;
    ///
    /// let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02-more";
    /// let trace = TraceContext::new(TraceParent::parse(future).unwrap(), TraceState::new());
    /// let mut headers = HashMap::new();
    /// trace.inject(&mut headers);
    /// assert_eq!(headers["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02");
    /// assert!(!headers.contains_key("tracestate"));
    /// ```
    pub fn inject<C: Injector + ?Sized>(&self, carrier: &mut C) {
        carrier.set(TRACEPARENT, self.parent.to_string());
        if !self.state.is_empty() {
            carrier.set(TRACESTATE, self.state.to_string());
        }
    }
}

/// A carrier that remembers whether `traceparent` was written into it: what tells
/// [`Propagation::inject_context`](super::Propagation::inject_context) that OpenTelemetry (or
/// whatever else rides the ambient seam) wrote a trace context of its own.
pub(crate) struct Watched<'a, C: ?Sized> {
    carrier: &'a mut C,
    pub(crate) wrote_traceparent: bool,
}

impl<'a, C: Injector + ?Sized> Watched<'a, C> {
    pub(crate) fn new(carrier: &'a mut C) -> Watched<'a, C> {
        Watched {
            carrier,
            wrote_traceparent: false,
        }
    }
}

impl<C: Injector + ?Sized> Injector for Watched<'_, C> {
    fn set(&mut self, key: &str, value: String) {
        self.wrote_traceparent |= key.eq_ignore_ascii_case(TRACEPARENT);
        self.carrier.set(key, value);
    }

    fn existing(&self, key: &str) -> Vec<&str> {
        self.carrier.existing(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn with(at: usize, replacement: &str) -> String {
        let mut value = VALID.to_string();
        value.replace_range(at..at + replacement.len(), replacement);
        value
    }

    #[test]
    fn a_valid_traceparent_is_read_whole_and_written_back() {
        let parent = TraceParent::parse(VALID).unwrap();
        assert_eq!(parent.version(), 0);
        assert_eq!(parent.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parent.parent_id_hex(), "00f067aa0ba902b7");
        assert_eq!(parent.trace_id()[0], 0x4b);
        assert_eq!(parent.parent_id()[7], 0xb7);
        assert_eq!(parent.to_string(), VALID);
        for flags in 0..=255u8 {
            let value = format!("{}{flags:02x}", &VALID[..53]);
            let parent = TraceParent::parse(&value).unwrap();
            assert_eq!(parent.flags(), flags);
            assert_eq!(parent.is_sampled(), flags & 1 == 1);
            assert_eq!(parent.is_random(), flags & 2 == 2);
            assert_eq!(parent.to_string(), value);
        }
    }

    #[test]
    fn optional_whitespace_around_traceparent_is_ignored() {
        for value in [
            format!(" {VALID}"),
            format!("{VALID}\t"),
            format!("\t {VALID} \t"),
        ] {
            assert_eq!(TraceParent::parse(&value).unwrap().to_string(), VALID);
        }
    }

    #[test]
    fn every_malformed_traceparent_is_refused() {
        let zero_trace = with(3, &"0".repeat(32));
        let zero_parent = with(36, &"0".repeat(16));
        let bad = [
            "",
            &VALID[..54],
            &format!("{VALID}."),
            &format!("{VALID}-extra"),
            &with(0, "ff"),
            &with(0, "0A"),
            &with(0, ".0"),
            &format!("0{VALID}"),
            &VALID[1..],
            &with(3, "4B"),
            &with(36, "F"),
            &with(53, "0A"),
            &with(53, ".1"),
            &with(2, "_"),
            &with(35, "_"),
            &with(52, "_"),
            &zero_trace,
            &zero_parent,
            &format!("{}-01", &VALID[..51]),
            &format!("{}1-01", &VALID[..52]),
            &format!("{}-001", &VALID[..52]),
            &format!("{}-1", &VALID[..52]),
            &format!("{VALID},{VALID}"),
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        ];
        for value in bad {
            assert_eq!(TraceParent::parse(value), None, "{value:?}");
        }
    }

    #[test]
    fn a_future_version_is_read_by_the_spec_rule_and_sent_as_00() {
        let future = with(0, "cc");
        for value in [
            future.clone(),
            format!("{future}-more-fields"),
            format!("{future}-"),
        ] {
            let parent = TraceParent::parse(&value).unwrap();
            assert_eq!(parent.version(), 0xcc);
            assert_eq!(parent.to_string(), VALID);
        }
        for value in [
            format!("{future}.more"),
            format!("{future}1"),
            with(0, "fe")[..54].to_string(),
        ] {
            assert_eq!(TraceParent::parse(&value), None, "{value:?}");
        }
    }

    #[test]
    fn tracestate_keys_follow_the_current_grammar() {
        let good = [
            "a",
            "0",
            "foo@",
            "foo@@bar",
            "foo@bar@baz",
            "abcdefghijklmnopqrstuvwxyz0123456789_-*/",
            &"z".repeat(256),
            &format!("{}@{}", "t".repeat(241), "v".repeat(14)),
            &format!("{}@v", "t".repeat(242)),
            &format!("t@{}", "v".repeat(15)),
        ];
        for key in good {
            assert!(is_key(key), "{key:?}");
        }
        let bad = [
            "",
            "@foo",
            "_a",
            "Foo",
            "foo.bar",
            "foo ",
            "f\u{e9}",
            &"z".repeat(257),
        ];
        for key in bad {
            assert!(!is_key(key), "{key:?}");
        }
    }

    #[test]
    fn tracestate_values_follow_the_grammar() {
        let every: String = (0x20u8..=0x7E)
            .filter(|b| !b",=".contains(b))
            .map(char::from)
            .collect();
        for value in ["1", " 1", "a b", &every, &"v".repeat(256)] {
            assert!(is_value(value), "{value:?}");
        }
        for value in [
            "",
            " ",
            "1 ",
            "a,b",
            "a=b",
            "a\tb",
            "\u{e9}",
            &"v".repeat(257),
        ] {
            assert!(!is_value(value), "{value:?}");
        }
    }

    #[test]
    fn tracestate_is_all_or_nothing() {
        let state = TraceState::parse_lines(["foo=1 \t , \t bar=2", "", " baz=3"]).unwrap();
        assert_eq!(state.to_string(), "foo=1,bar=2,baz=3");
        assert_eq!(state.len(), 3);
        assert_eq!(state.get("bar"), Some("2"));
        assert_eq!(
            TraceState::parse_lines(["foo=1", "foo=2"])
                .unwrap()
                .to_string(),
            "foo=1"
        );
        for bad in [
            "foo=",
            "foo",
            "=1",
            "foo=bar=baz",
            "foo=1,FOO=2",
            "a=1,@b=2",
            "foo =1",
        ] {
            assert_eq!(TraceState::parse(bad), None, "{bad:?}");
        }
        let members: Vec<String> = (1..=33).map(|i| format!("k{i}={i}")).collect();
        assert_eq!(
            TraceState::parse(&members[..32].join(",")).unwrap().len(),
            32
        );
        assert_eq!(TraceState::parse(&members.join(",")), None);
        // Repeats count as members.
        assert_eq!(
            TraceState::parse(&format!("{},k1=1", members[..32].join(","))),
            None
        );
    }

    #[test]
    fn the_watched_carrier_sees_traceparent_in_any_case() {
        let mut map = std::collections::HashMap::new();
        let mut watched = Watched::new(&mut map);
        watched.set("tracestate", "a=1".into());
        assert!(!watched.wrote_traceparent);
        watched.set("TraceParent", VALID.into());
        assert!(watched.wrote_traceparent);
        assert_eq!(watched.existing("traceparent"), [VALID]);
    }
}
