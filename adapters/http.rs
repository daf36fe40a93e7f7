//! What the HTTP integrations share (features `tower` and `reqwest`): `http::HeaderMap` as a
//! carrier of [`crate::propagation`], [`Baggage::to_header_value`], and how a client decides
//! whether a destination is trusted.

use std::fmt;
use std::sync::Arc;

use ::http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::propagation::{Baggage, Extractor, Injector, Trust, TrustedHosts};

/// HTTP header names are lowercase in a `HeaderMap`, and its lookups lowercase the key.
impl Extractor for HeaderMap {
    fn get(&self, key: &str) -> Option<&str> {
        HeaderMap::get(self, key).and_then(|value| value.to_str().ok())
    }

    fn get_all(&self, key: &str) -> Vec<&str> {
        HeaderMap::get_all(self, key)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect()
    }

    fn keys(&self) -> Vec<&str> {
        HeaderMap::keys(self).map(HeaderName::as_str).collect()
    }
}

impl Injector for HeaderMap {
    fn set(&mut self, key: &str, value: String) {
        // The propagation writes tokens and header text only: neither can fail.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.insert(name, value);
        }
    }

    fn existing(&self, key: &str) -> Vec<&str> {
        Extractor::get_all(self, key)
    }
}

impl Baggage {
    /// The `baggage` header value, or `None` when there is nothing to send (features `tower`
    /// or `reqwest`).
    ///
    /// ```
    /// let baggage = contextvars::propagation::Baggage::parse("a=1");
    /// assert_eq!(baggage.to_header_value().unwrap(), "a=1");
    /// ```
    #[cfg_attr(docsrs, doc(cfg(any(feature = "tower", feature = "reqwest"))))]
    pub fn to_header_value(&self) -> Option<HeaderValue> {
        let text = self.write().finish()?;
        // Only visible ASCII was written: this cannot fail.
        HeaderValue::from_str(&text).ok()
    }
}

/// How a client integration decides whether a destination `D` (a URI, a URL) is trusted: by a
/// list of hosts, or by a predicate of the user's. Shared by the tower and reqwest clients.
pub(crate) enum Destinations<D: ?Sized> {
    /// Trusted when the destination's host (and port) is on the list.
    Hosts(TrustedHosts),
    /// Trusted when the predicate says so.
    If(Arc<dyn Fn(&D) -> bool + Send + Sync>),
}

impl<D: ?Sized> Clone for Destinations<D> {
    fn clone(&self) -> Self {
        match self {
            Destinations::Hosts(hosts) => Destinations::Hosts(hosts.clone()),
            Destinations::If(trusted) => Destinations::If(trusted.clone()),
        }
    }
}

impl<D: ?Sized> fmt::Debug for Destinations<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destinations::Hosts(hosts) => f.debug_tuple("Hosts").field(hosts).finish(),
            Destinations::If(_) => f.write_str("If(..)"),
        }
    }
}

impl<D: ?Sized> Destinations<D> {
    /// The trust of `destination`, whose host and port (the scheme's default when it names
    /// none) `host` gives; a destination without a host is never on a list.
    pub(crate) fn trust_of(
        &self,
        destination: &D,
        host: impl FnOnce(&D) -> Option<(&str, Option<u16>)>,
    ) -> Trust {
        Trust::from_bool(match self {
            Destinations::Hosts(hosts) => {
                host(destination).is_some_and(|(host, port)| hosts.contains(host, port))
            }
            Destinations::If(trusted) => trusted(destination),
        })
    }

    /// Why [`trust_of`](Destinations::trust_of) decides as it does, in words:
    /// `host 127.0.0.1 matches none of ["localhost"]`. The tower client's explanations and
    /// diagnostics use it; reqwest's middleware reports per propagation, not per host, so far.
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn why(
        &self,
        destination: &D,
        host: impl FnOnce(&D) -> Option<(&str, Option<u16>)>,
    ) -> String {
        match self {
            Destinations::Hosts(hosts) => match host(destination) {
                None => format!("no host in the URI, so on no list of {hosts:?}"),
                Some((host, port)) => {
                    let shown = match port {
                        Some(port) => format!("{host}:{port}"),
                        None => host.to_owned(),
                    };
                    match hosts.contains(host, port) {
                        true => format!("host {shown} is on {hosts:?}"),
                        false => format!("host {shown} matches none of {hosts:?}"),
                    }
                }
            },
            Destinations::If(_) => "the trust_destinations_if predicate".to_owned(),
        }
    }
}
