//! Carriers: where a [`Propagation`](super::Propagation) reads a context from and writes it
//! into. Anything with string keys and string values: HTTP headers, gRPC metadata, message
//! headers (NATS, Kafka, AMQP), a map serialized with a job.

use std::collections::HashMap;
use std::hash::BuildHasher;

/// An HTTP token (RFC 9110 `tchar`s), non-empty: the syntax of header names and baggage keys.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A carrier a context is read from: the incoming side. The shape of OpenTelemetry's
/// `Extractor`.
///
/// Keys are compared without regard to ASCII case, as HTTP header names are: the propagation
/// asks for lowercase keys (`x-request-id`, `baggage`), and a carrier that stores keys as
/// written (a `HashMap`, NATS headers) must still find `X-Request-Id`.
///
/// Implemented for `HashMap<String, String>`, for `http::HeaderMap` (features `tower` and
/// `reqwest`; tonic's metadata through `MetadataMap::as_ref`) and for `async_nats::HeaderMap`
/// (feature `async-nats`).
///
/// # Examples
///
/// A carrier of your own: a list of pairs.
///
/// ```
/// use contextvars::propagation::{Extractor, Propagation, Trust, REQUEST_ID};
///
/// struct Pairs(Vec<(String, String)>);
///
/// impl Extractor for Pairs {
///     fn get(&self, key: &str) -> Option<&str> {
///         self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
///     }
///     fn get_all(&self, key: &str) -> Vec<&str> {
///         self.0.iter().filter(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str()).collect()
///     }
///     fn keys(&self) -> Vec<&str> {
///         self.0.iter().map(|(k, _)| k.as_str()).collect()
///     }
/// }
///
/// let message = Pairs(vec![("X-Request-Id".into(), "req-1".into())]);
/// let context = Propagation::default().with_inbound(Trust::Trusted).extract(&message);
/// assert_eq!(context.get(&REQUEST_ID).as_deref(), Some("req-1"));
/// ```
pub trait Extractor {
    /// The first value of `key` (any ASCII case), if there is one and it is text. A carrier
    /// whose values may be bytes (HTTP, NATS) returns `None` when the first one is not text:
    /// it is then as good as missing.
    fn get(&self, key: &str) -> Option<&str>;

    /// Every text value of `key` (any ASCII case), in order. Values that are not text are left
    /// out. Carriers that hold one value per key need not implement it: the default is
    /// [`get`](Extractor::get)'s value. W3C Baggage reads every `baggage` value as one list.
    fn get_all(&self, key: &str) -> Vec<&str> {
        self.get(key).into_iter().collect()
    }

    /// Every key, as stored.
    fn keys(&self) -> Vec<&str>;
}

/// A carrier a context is written into: the outgoing side. The shape of OpenTelemetry's
/// `Injector`.
///
/// # Examples
///
/// ```
/// use contextvars::propagation::{Injector, Propagation, REQUEST_ID};
///
/// #[derive(Default)]
/// struct Pairs(Vec<(String, String)>);
///
/// impl Injector for Pairs {
///     fn set(&mut self, key: &str, value: String) {
///         self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
///         self.0.push((key.to_owned(), value));
///     }
/// }
///
/// let mut message = Pairs::default();
/// REQUEST_ID.scope("req-1".into(), || Propagation::default().inject(&mut message));
/// assert_eq!(message.0, [("x-request-id".to_string(), "req-1".to_string())]);
/// ```
pub trait Injector {
    /// Sets `key` (lowercase, an HTTP token) to `value`, replacing every value the key had in
    /// any ASCII case. Values are never empty and hold no control character but tab.
    fn set(&mut self, key: &str, value: String);

    /// The text values `key` has now, in order. The propagation reads the `baggage` values before
    /// it replaces them, to keep the members the caller put there (after its own). The default,
    /// for write-only carriers, is none.
    fn existing(&self, key: &str) -> Vec<&str> {
        let _ = key;
        Vec::new()
    }
}

impl<S: BuildHasher> Extractor for HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<&str> {
        match HashMap::get(self, key) {
            Some(value) => Some(value),
            None => self
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str()),
        }
    }

    fn keys(&self) -> Vec<&str> {
        HashMap::keys(self).map(String::as_str).collect()
    }
}

impl<S: BuildHasher> Injector for HashMap<String, String, S> {
    fn set(&mut self, key: &str, value: String) {
        self.retain(|k, _| k == key || !k.eq_ignore_ascii_case(key));
        self.insert(key.to_owned(), value);
    }

    fn existing(&self, key: &str) -> Vec<&str> {
        Extractor::get_all(self, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_map_finds_and_replaces_keys_in_any_case() {
        let mut map = HashMap::from([
            ("X-Request-ID".to_string(), "a".to_string()),
            ("x-request-id".to_string(), "c".to_string()),
        ]);
        assert_eq!(Extractor::get(&map, "X-Request-ID"), Some("a"));
        map.set("x-request-id", "b".into());
        assert_eq!(map.len(), 1);
        assert_eq!(map["x-request-id"], "b");
        assert_eq!(Extractor::get_all(&map, "X-REQUEST-ID"), ["b"]);
    }
}
