//! W3C Baggage: reading and writing the `baggage` list, within the spec's limits, with the
//! percent-encoding its values need (written here: the grammar needs only a few lines of it).

use std::borrow::Cow;
use std::fmt;

use super::carrier::{is_token, Extractor};
use crate::ContextVar;

/// The baggage members received and not registered, kept to be forwarded. Opaque: logging
/// integrations do not print it.
pub(crate) static FORWARDED: ContextVar<Baggage> = ContextVar::opaque("baggage");

/// The W3C Baggage limit on list-members, applied when reading and when writing.
///
/// ```
/// use contextvars::propagation::{Baggage, MAX_BAGGAGE_MEMBERS};
///
/// let header: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
/// assert_eq!(Baggage::parse(&header.join(",")).len(), MAX_BAGGAGE_MEMBERS);
/// ```
pub const MAX_BAGGAGE_MEMBERS: usize = 64;

/// The W3C Baggage limit on the header's size in bytes, applied when reading and when writing.
///
/// ```
/// use contextvars::propagation::{Baggage, MAX_BAGGAGE_BYTES};
///
/// let big = format!("a=1,b={},c=3", "x".repeat(MAX_BAGGAGE_BYTES));
/// let baggage = Baggage::parse(&big);
/// assert_eq!(baggage.get("a"), Some("1"));
/// assert_eq!(baggage.get("b"), None); // ends past the limit, like everything after it
/// assert_eq!(baggage.get("c"), None);
/// ```
pub const MAX_BAGGAGE_BYTES: usize = 8192;

/// The carrier key (header name) of W3C Baggage.
pub(crate) const BAGGAGE: &str = "baggage";

/// One list-member of a [`Baggage`]: a key, its decoded value and its properties.
///
/// A member read from a header also remembers its value as it was written there, `%` escapes
/// included, and is written back that way until its value is replaced. Two members are equal
/// when their keys, decoded values and properties are: how the value was escaped is not compared.
///
/// # Examples
///
/// ```
/// use contextvars::propagation::Baggage;
///
/// let baggage = Baggage::parse("user=J%C3%B6rg;secure;ttl=60");
/// let member = baggage.iter().next().unwrap();
/// assert_eq!((member.key(), member.value(), member.properties()), ("user", "Jörg", "secure;ttl=60"));
/// ```
#[derive(Clone, Debug)]
pub struct BaggageMember {
    pub(super) key: Box<str>,
    pub(super) value: Box<str>,
    /// The value as received, when encoding `value` would not give it back.
    pub(super) encoded: Option<Box<str>>,
    pub(super) properties: Box<str>,
}

impl PartialEq for BaggageMember {
    fn eq(&self, other: &BaggageMember) -> bool {
        (&self.key, &self.value, &self.properties) == (&other.key, &other.value, &other.properties)
    }
}

impl Eq for BaggageMember {}

impl BaggageMember {
    /// The member's key, as received (keys are case-sensitive).
    ///
    /// ```
    /// let baggage = contextvars::propagation::Baggage::parse("Tenant=acme");
    /// assert_eq!(baggage.iter().next().unwrap().key(), "Tenant");
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The member's value, percent-decoded.
    ///
    /// ```
    /// let baggage = contextvars::propagation::Baggage::parse("city=S%C3%A3o%20Paulo");
    /// assert_eq!(baggage.iter().next().unwrap().value(), "São Paulo");
    /// ```
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The member's properties, without the first `;` (empty when there are none): each one as
    /// received but for the optional whitespace (spaces, tabs) around it and around its `=`,
    /// which is removed. They are forwarded this way.
    ///
    /// ```
    /// let baggage = contextvars::propagation::Baggage::parse("a=1 ; p1 ;\tp2 = x%20y");
    /// assert_eq!(baggage.iter().next().unwrap().properties(), "p1;p2=x%20y");
    /// ```
    pub fn properties(&self) -> &str {
        &self.properties
    }
}

/// A W3C Baggage list: what a `baggage` header carries, parsed.
///
/// Parsing never fails: malformed members are dropped and the others kept, and the spec's limits
/// ([`MAX_BAGGAGE_MEMBERS`], [`MAX_BAGGAGE_BYTES`]) are applied; see the
/// [module docs](super#bad-input) for each case. Duplicate keys: the last value wins, and a
/// duplicate does not count towards the member limit. Values whose escapes are not valid UTF-8
/// are kept, with U+FFFD in place of the invalid sequences.
///
/// Formatting (`Display`) applies the same limits and writes no whitespace. A value given by
/// [`insert`](Baggage::insert) is percent-encoded where the W3C grammar requires it: `%`, and
/// every byte that is not a `baggage-octet` (controls, space, `"`, `,`, `;`, `\`, non-ASCII); `=`
/// and the other visible ASCII characters are written as they are. A member read from a header
/// and not replaced since is written back with its value exactly as received, so a list that was
/// read within the limits is written within them.
///
/// # Examples
///
/// ```
/// use contextvars::propagation::Baggage;
///
/// let mut baggage = Baggage::parse("tenant=acme, bad key=1, user=J%C3%B6rg;secure");
/// assert_eq!(baggage.get("tenant"), Some("acme"));
/// assert_eq!(baggage.get("user"), Some("Jörg"));
/// assert_eq!(baggage.len(), 2); // the malformed member was dropped
/// baggage.insert("region", "eu west");
/// assert_eq!(baggage.to_string(), "tenant=acme,user=J%C3%B6rg;secure,region=eu%20west");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baggage {
    members: Vec<BaggageMember>,
}

impl Baggage {
    /// An empty list.
    ///
    /// ```
    /// assert!(contextvars::propagation::Baggage::new().is_empty());
    /// ```
    pub const fn new() -> Baggage {
        Baggage {
            members: Vec::new(),
        }
    }

    /// Parses one `baggage` header value. Never fails; see the type's docs.
    ///
    /// ```
    /// use contextvars::propagation::Baggage;
    ///
    /// let baggage = Baggage::parse("a=1,,a=2,b=%ZZ");
    /// assert_eq!(baggage.get("a"), Some("2"));
    /// assert_eq!(baggage.get("b"), None);
    /// ```
    pub fn parse(header: &str) -> Baggage {
        let mut baggage = Baggage::new();
        let mut budget = Budget::default();
        parse_line(header, &mut budget, |member| baggage.accept(member));
        baggage
    }

    /// Parses every `baggage` value of a carrier (HTTP headers, NATS headers, a map; see
    /// [`Extractor`]), in order, as one list. Lines that are not visible ASCII (with spaces and
    /// tabs) are ignored.
    ///
    /// ```
    /// use contextvars::propagation::Baggage;
    /// use std::collections::HashMap;
    ///
    /// let headers = HashMap::from([("Baggage".to_string(), "a=1,b=%C3%A9".to_string())]);
    /// let baggage = Baggage::from_headers(&headers);
    /// assert_eq!((baggage.get("a"), baggage.get("b")), (Some("1"), Some("é")));
    /// ```
    pub fn from_headers<C: Extractor + ?Sized>(headers: &C) -> Baggage {
        let mut baggage = Baggage::new();
        parse_lines(headers.get_all(BAGGAGE), |member| baggage.accept(member));
        baggage
    }

    /// The unregistered members that arrived with the current request or message (the context
    /// made by [`Propagation::extract`](super::Propagation::extract) and the layers built on it),
    /// kept to be forwarded by the sending side (empty elsewhere).
    ///
    /// ```
    /// use contextvars::propagation::{Baggage, Propagation, Trust};
    /// use std::collections::HashMap;
    ///
    /// let headers = HashMap::from([("baggage".to_string(), "k=v;p".to_string())]);
    /// let internal = Propagation::builder().inbound(Trust::Trusted).build();
    /// let context = internal.extract(&headers);
    /// assert_eq!(context.run(|| Baggage::forwarded().to_string()), "k=v;p");
    /// ```
    pub fn forwarded() -> Baggage {
        FORWARDED.get().unwrap_or_default()
    }

    /// The decoded value of `key`, if present.
    ///
    /// ```
    /// assert_eq!(contextvars::propagation::Baggage::parse("a=%2C").get("a"), Some(","));
    /// ```
    pub fn get(&self, key: &str) -> Option<&str> {
        self.member(key).map(|member| &*member.value)
    }

    /// Sets `key` to `value` (any string: it is percent-encoded on output), without properties.
    /// An existing member of that key keeps its position and gets the new value.
    ///
    /// # Panics
    ///
    /// When `key` is not an HTTP token (empty, or with spaces, `=`, `,`, `;` and the like).
    ///
    /// ```
    /// let mut baggage = contextvars::propagation::Baggage::parse("a=1;p");
    /// baggage.insert("a", "x y");
    /// assert_eq!(baggage.to_string(), "a=x%20y");
    /// ```
    #[track_caller]
    pub fn insert(&mut self, key: &str, value: impl Into<String>) {
        assert!(is_token(key), "baggage key {key:?} is not an HTTP token");
        self.push(key, value.into(), None, "");
    }

    /// Removes `key`, returning its value.
    ///
    /// ```
    /// let mut baggage = contextvars::propagation::Baggage::parse("a=1,b=2");
    /// assert_eq!(baggage.remove("a").as_deref(), Some("1"));
    /// assert_eq!(baggage.to_string(), "b=2");
    /// ```
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let index = self.members.iter().position(|m| &*m.key == key)?;
        Some(self.members.remove(index).value.into())
    }

    /// The members, in order.
    ///
    /// ```
    /// let baggage = contextvars::propagation::Baggage::parse("a=1,b=2");
    /// let keys: Vec<&str> = baggage.iter().map(|m| m.key()).collect();
    /// assert_eq!(keys, ["a", "b"]);
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, BaggageMember> {
        self.members.iter()
    }

    /// The number of members.
    ///
    /// ```
    /// assert_eq!(contextvars::propagation::Baggage::parse("a=1,b=2").len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members.
    ///
    /// ```
    /// assert!(contextvars::propagation::Baggage::parse(",,").is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub(crate) fn write(&self) -> Writer {
        let mut out = Writer::default();
        for m in &self.members {
            out.member(&m.key, &m.value, m.encoded.as_deref(), &m.properties);
        }
        out
    }

    /// Takes a member read from a header: a key already present gets the new value, a new key is
    /// added only while there are fewer than [`MAX_BAGGAGE_MEMBERS`].
    fn accept(&mut self, member: RawMember<'_>) {
        if self.members.len() < MAX_BAGGAGE_MEMBERS || self.member(member.key).is_some() {
            self.push_received(member);
        }
    }

    /// Adds or replaces a member read from a header, remembering how its value was written.
    pub(super) fn push_received(&mut self, member: RawMember<'_>) {
        let encoded = member.escaped();
        self.push(
            member.key,
            member.value.into_owned(),
            encoded,
            &member.properties,
        );
    }

    fn push(&mut self, key: &str, value: String, encoded: Option<&str>, properties: &str) {
        let (value, encoded, properties) =
            (value.into(), encoded.map(Into::into), properties.into());
        match self.members.iter_mut().find(|m| &*m.key == key) {
            Some(member) => {
                member.value = value;
                member.encoded = encoded;
                member.properties = properties;
            }
            None => self.members.push(BaggageMember {
                key: key.into(),
                value,
                encoded,
                properties,
            }),
        }
    }

    pub(super) fn member(&self, key: &str) -> Option<&BaggageMember> {
        self.members.iter().find(|member| &*member.key == key)
    }
}

impl fmt::Display for Baggage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.write().text)
    }
}

impl<'a> IntoIterator for &'a Baggage {
    type Item = &'a BaggageMember;
    type IntoIter = std::slice::Iter<'a, BaggageMember>;

    fn into_iter(self) -> Self::IntoIter {
        self.members.iter()
    }
}

/// A member as found in the header: its key, its value decoded and as written, its properties
/// without optional whitespace.
pub(super) struct RawMember<'a> {
    pub(super) key: &'a str,
    pub(super) value: Cow<'a, str>,
    encoded: &'a str,
    properties: Cow<'a, str>,
}

impl<'a> RawMember<'a> {
    /// The value as written, when encoding the decoded value would not give it back (needless or
    /// lowercase escapes, escapes of bytes that are not UTF-8).
    pub(super) fn escaped(&self) -> Option<&'a str> {
        let Cow::Owned(value) = &self.value else {
            return None; // no escapes at all
        };
        let mut rest = self.encoded.as_bytes();
        for &b in value.as_bytes() {
            let matched = if needs_escape(b) {
                let escape = [b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]];
                rest.strip_prefix(&escape[..])
            } else {
                rest.strip_prefix(&[b][..])
            };
            match matched {
                Some(after) => rest = after,
                None => return Some(self.encoded),
            }
        }
        (!rest.is_empty()).then_some(self.encoded)
    }

    pub(super) fn properties(&self) -> &str {
        &self.properties
    }
}

/// Where the lines read so far end in the list they form joined by `,`.
#[derive(Default)]
struct Budget {
    /// The offset at which the next line starts: past the previous lines and their `,`s.
    next: usize,
    done: bool,
}

/// Calls `f` on every valid member of every `baggage` line, within the byte limit. The member
/// limit is the caller's: later members may still replace earlier ones of the same key.
pub(super) fn parse_lines<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    mut f: impl FnMut(RawMember<'a>),
) {
    let mut budget = Budget::default();
    for line in lines {
        if budget.done {
            return;
        }
        // As HTTP's header values read as text: visible ASCII, space and tab. Anything else
        // makes the whole line unreadable, and it is skipped (and takes no room).
        if line
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7F).contains(&b))
        {
            parse_line(line, &mut budget, &mut f);
        }
    }
}

/// Reads one line, which starts where the previous lines and the `,` joining it to them end
/// (an empty line too takes its `,`).
fn parse_line<'a>(line: &'a str, budget: &mut Budget, mut f: impl FnMut(RawMember<'a>)) {
    let mut start = budget.next;
    for piece in line.split(',') {
        let end = start + piece.len();
        if end > MAX_BAGGAGE_BYTES {
            budget.done = true;
            return;
        }
        if let Some(member) = parse_member(piece) {
            f(member);
        }
        start = end + 1;
    }
    budget.next = start;
}

fn parse_member(piece: &str) -> Option<RawMember<'_>> {
    let piece = trim_ows(piece);
    if piece.is_empty() {
        return None;
    }
    let (pair, properties) = match piece.split_once(';') {
        Some((pair, properties)) => (pair, Some(properties)),
        None => (piece, None),
    };
    let (key, value) = pair.split_once('=')?;
    let (key, encoded) = (trim_ows(key), trim_ows(value));
    if !is_token(key) || !encoded.bytes().all(is_baggage_octet) {
        return None;
    }
    let properties = match properties {
        // A `;` must be followed by a property: `a=1;` is as malformed as `a=1;;p`.
        Some(properties) => canonical_properties(properties)?,
        None => Cow::Borrowed(""),
    };
    Some(RawMember {
        key,
        value: percent_decode(encoded)?,
        encoded,
        properties,
    })
}

/// The properties after a member's first `;`, checked, without the optional whitespace around
/// each one and around its `=` (so none is ever written out): `p;q=v`. `None` when one of them is
/// malformed or empty.
fn canonical_properties(properties: &str) -> Option<Cow<'_, str>> {
    // Without whitespace the input is canonical already: it is only checked.
    let rewrite = properties.contains([' ', '\t']);
    let mut canonical = String::new();
    for (i, property) in properties.split(';').enumerate() {
        let property = trim_ows(property);
        let (key, value) = match property.split_once('=') {
            Some((key, value)) => (trim_ows(key), Some(trim_ows(value))),
            None => (property, None),
        };
        if !is_token(key) || !value.is_none_or(|v| v.bytes().all(is_baggage_octet)) {
            return None;
        }
        if rewrite {
            if i > 0 {
                canonical.push(';');
            }
            canonical.push_str(key);
            if let Some(value) = value {
                canonical.push('=');
                canonical.push_str(value);
            }
        }
    }
    Some(if rewrite {
        Cow::Owned(canonical)
    } else {
        Cow::Borrowed(properties)
    })
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// The W3C Baggage `baggage-octet`: visible ASCII but `"`, `,`, `;` and `\`.
fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// Decodes a value's `%` escapes. A `%` not followed by two hex digits makes the member
/// malformed (`None`); decoded bytes that are not UTF-8 become U+FFFD, as the spec requires.
fn percent_decode(value: &str) -> Option<Cow<'_, str>> {
    if !value.contains('%') {
        return Some(Cow::Borrowed(value)); // already text: nothing to check or decode
    }
    let bytes = value.as_bytes();
    // Decoding only shrinks: one allocation, of the encoded length.
    let mut decoded = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = hex_value(*bytes.get(i + 1)?)?;
            let low = hex_value(*bytes.get(i + 2)?)?;
            decoded.push(high << 4 | low);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    Some(Cow::Owned(String::from_utf8(decoded).unwrap_or_else(
        |invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned(),
    )))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// What the W3C grammar does not let a value hold as is: every byte that is not a
/// `baggage-octet` (controls, space, `"`, `,`, `;`, `\`, non-ASCII), and `%` so that decoding
/// gives the value back. `=` is a `baggage-octet` (base64 padding) and is written as is.
fn needs_escape(b: u8) -> bool {
    !is_baggage_octet(b) || b == b'%'
}

/// Appends `value` percent-encoded where the grammar requires it (uppercase hex digits).
fn percent_encode_into(out: &mut String, value: &str) {
    let mut plain = 0; // start of the run of bytes written as they are
    for (i, &b) in value.as_bytes().iter().enumerate() {
        if needs_escape(b) {
            // A run of bytes written as they are is ASCII, so it starts and ends on character
            // boundaries; after an escaped byte in the middle of a character, `plain..i` is empty
            // until the character ends.
            if i > plain {
                out.push_str(&value[plain..i]);
            }
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
            plain = i + 1;
        }
    }
    out.push_str(&value[plain..]);
}

/// Builds a `baggage` header value within the limits, skipping keys already written.
#[derive(Default)]
pub(crate) struct Writer {
    text: String,
    members: usize,
    keys: Vec<Box<str>>,
}

impl Writer {
    /// Writes a member unless it would break a limit or its key was written already: its value
    /// `encoded` as received if given, else percent-encoded from `value`.
    pub(super) fn member(
        &mut self,
        key: &str,
        value: &str,
        encoded: Option<&str>,
        properties: &str,
    ) {
        if self.members >= MAX_BAGGAGE_MEMBERS || self.keys.iter().any(|k| &**k == key) {
            return;
        }
        let before = self.text.len();
        if before > 0 {
            self.text.push(',');
        }
        self.text.push_str(key);
        self.text.push('=');
        match encoded {
            Some(encoded) => self.text.push_str(encoded),
            None => percent_encode_into(&mut self.text, value),
        }
        if !properties.is_empty() {
            self.text.push(';');
            self.text.push_str(properties);
        }
        if self.text.len() > MAX_BAGGAGE_BYTES {
            self.text.truncate(before);
            return;
        }
        self.members += 1;
        self.keys.push(key.into());
    }

    pub(super) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The header value, `None` when nothing was written.
    pub(crate) fn finish(self) -> Option<String> {
        (!self.text.is_empty()).then_some(self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_escapes_exactly_what_the_grammar_requires() {
        let mut all = String::new();
        for c in (0u8..=0x7F).map(char::from).chain(['é', '€', '😀']) {
            all.push(c);
        }
        let mut out = String::new();
        percent_encode_into(&mut out, &all);
        for (i, c) in (0u8..=0x7F).map(char::from).enumerate() {
            let expected = if needs_escape(c as u8) {
                format!("%{:02X}", c as u32)
            } else {
                c.to_string()
            };
            assert!(out.contains(&expected), "{i}: {expected}");
        }
        assert!(out.ends_with("%C3%A9%E2%82%AC%F0%9F%98%80"), "{out}");
        assert!(out.contains("=") && !out.contains(' ') && !out.contains(','));
        // And decoding gives the value back.
        assert_eq!(percent_decode(&out).unwrap(), all);
    }

    #[test]
    fn decoding_rejects_bad_escapes_and_replaces_invalid_utf8() {
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("a%"), None);
        assert_eq!(percent_decode("%41%62").unwrap(), "Ab");
        assert_eq!(percent_decode("%FF").unwrap(), "\u{FFFD}");
    }
}
