//! Trust boundaries: whom a server believes, and what a client tells whom.

use std::fmt;
use std::sync::Arc;

/// Whether the other side of a hop belongs to your own system.
///
/// A [`Propagation`](super::Propagation) has one for what it reads
/// ([`PropagationBuilder::inbound`](super::PropagationBuilder::inbound)) and one for what it
/// writes ([`PropagationBuilder::outbound`](super::PropagationBuilder::outbound)); integrations
/// can decide per request or per destination (a predicate on the request, a list of trusted
/// hosts). Both default to [`Trust::Untrusted`]: see the [module docs](super#security) for what
/// each means and why.
///
/// # Examples
///
/// An internal service, behind a gateway that already replaced what strangers sent:
///
/// ```
/// use contextvars::propagation::{Propagation, Trust};
///
/// let internal = Propagation::builder()
///     .inbound(Trust::Trusted)
///     .outbound(Trust::Trusted)
///     .build();
/// assert_eq!(internal.inbound_trust(), Trust::Trusted);
/// assert_eq!(Propagation::default().inbound_trust(), Trust::Untrusted);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Trust {
    /// Part of your own system: its request id is used as the request id, its baggage sets
    /// registered variables and its other members are forwarded; and, outbound, everything
    /// registered and forwarded is sent to it.
    Trusted,
    /// Anyone else (the default): its request id is kept only for correlation, only the baggage
    /// keys allowed from untrusted callers are read, nothing it sent is forwarded; and,
    /// outbound, only public variables (and the request id) are sent to it.
    #[default]
    Untrusted,
}

impl Trust {
    /// `Trusted` when `trusted` is true.
    ///
    /// ```
    /// use contextvars::propagation::Trust;
    ///
    /// assert_eq!(Trust::from_bool(true), Trust::Trusted);
    /// assert_eq!(Trust::from_bool(false), Trust::Untrusted);
    /// ```
    pub fn from_bool(trusted: bool) -> Trust {
        if trusted {
            Trust::Trusted
        } else {
            Trust::Untrusted
        }
    }

    /// Whether this is [`Trust::Trusted`].
    ///
    /// ```
    /// assert!(contextvars::propagation::Trust::Trusted.is_trusted());
    /// ```
    pub fn is_trusted(self) -> bool {
        self == Trust::Trusted
    }
}

/// A list of trusted destinations, by host: what client integrations use to decide, per
/// request, whether the destination is part of your system
/// ([`ClientContextLayer::trusted_hosts`](crate::tower::ClientContextLayer::trusted_hosts) and
/// the other clients' methods of the same name).
///
/// An entry is a host (`orders.internal`, `10.0.0.7`, `[::1]`), a host and port
/// (`orders.internal:8443`, matching only that port), or a wildcard for the subdomains of a
/// domain (`*.svc.cluster.local`, which does not match `svc.cluster.local` itself). Hosts
/// compare without regard to ASCII case; a trailing dot is ignored. A destination with no host
/// (a relative URI) is never trusted by a list.
///
/// # Examples
///
/// ```
/// use contextvars::propagation::TrustedHosts;
///
/// let hosts = TrustedHosts::new(["orders.internal", "*.svc.cluster.local", "127.0.0.1:8080"]);
/// assert!(hosts.contains("Orders.Internal", None));
/// assert!(hosts.contains("billing.prod.svc.cluster.local", Some(443)));
/// assert!(hosts.contains("127.0.0.1", Some(8080)));
/// assert!(!hosts.contains("127.0.0.1", Some(9090)));
/// assert!(!hosts.contains("api.partner.example", Some(443)));
/// ```
#[derive(Clone, Default)]
pub struct TrustedHosts {
    entries: Arc<[HostEntry]>,
}

#[derive(Debug)]
enum HostEntry {
    Exact { host: String, port: Option<u16> },
    Suffix(String),
}

impl TrustedHosts {
    /// A list of trusted hosts. Entries that are empty are ignored.
    ///
    /// # Panics
    ///
    /// When an entry's port is not a number (`host:http`).
    ///
    /// ```
    /// let hosts = contextvars::propagation::TrustedHosts::new(["orders.internal"]);
    /// # let _ = hosts;
    /// ```
    #[track_caller]
    pub fn new<I>(hosts: I) -> TrustedHosts
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut entries = Vec::new();
        for host in hosts {
            let host = host.as_ref().trim();
            if host.is_empty() {
                continue;
            }
            if let Some(domain) = host.strip_prefix("*.") {
                entries.push(HostEntry::Suffix(format!(".{}", normalize(domain))));
                continue;
            }
            let (name, port) = split_port(host);
            let port = port.map(|port| match port.parse::<u16>() {
                Ok(port) => port,
                Err(_) => panic!("trusted host {host:?} has a port that is not a number"),
            });
            entries.push(HostEntry::Exact {
                host: normalize(name),
                port,
            });
        }
        TrustedHosts {
            entries: entries.into(),
        }
    }

    /// Whether `host` (with `port`, when the destination names one) is on the list.
    ///
    /// ```
    /// let hosts = contextvars::propagation::TrustedHosts::new(["*.internal"]);
    /// assert!(hosts.contains("orders.internal", Some(80)));
    /// assert!(!hosts.contains("internal", None));
    /// ```
    pub fn contains(&self, host: &str, port: Option<u16>) -> bool {
        let host = normalize(host);
        self.entries.iter().any(|entry| match entry {
            HostEntry::Exact {
                host: name,
                port: wanted,
            } => *name == host && wanted.is_none_or(|wanted| Some(wanted) == port),
            HostEntry::Suffix(suffix) => host.len() > suffix.len() && host.ends_with(&**suffix),
        })
    }

    /// Whether the list is empty (then nothing is trusted by it).
    ///
    /// ```
    /// assert!(contextvars::propagation::TrustedHosts::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for TrustedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|entry| match entry {
                HostEntry::Exact {
                    host,
                    port: Some(port),
                } => format!("{host}:{port}"),
                HostEntry::Exact { host, port: None } => host.clone(),
                HostEntry::Suffix(suffix) => format!("*{suffix}"),
            }))
            .finish()
    }
}

fn normalize(host: &str) -> String {
    let host = host.trim();
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// `host:port` into its parts; a bracketed IPv6 address keeps its brackets, a bare one (more
/// than one `:`) has no port.
fn split_port(entry: &str) -> (&str, Option<&str>) {
    if entry.starts_with('[') {
        return match entry.find("]:") {
            Some(end) => (&entry[..=end], Some(&entry[end + 2..])),
            None => (entry, None),
        };
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (entry, None),
    }
}
