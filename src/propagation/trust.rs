//! Trust boundaries: whom a server believes, and what a client tells whom.

use std::fmt;
use std::net::IpAddr;
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

/// Whether `ip` is a loopback or private-network address: IPv4 loopback (`127.0.0.0/8`) and
/// RFC 1918 (`10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`); IPv6 loopback (`::1`) and unique
/// local addresses (`fc00::/7`); and those IPv4 addresses written as IPv6 (`::ffff:10.0.0.7`).
/// Not link-local addresses, carrier-grade NAT (`100.64.0.0/10`) or anything public.
///
/// The set Envoy treats as internal by default: an opt-in for a server whose private network
/// holds only your own services, as a predicate on the caller's address (the tower layer's
/// `peer_is_private` applies it to the connection's peer). It says where a packet came from,
/// not who sent it: behind a proxy or load balancer on the same network, every caller has a
/// private address, so trust the proxy's own header instead.
///
/// # Examples
///
/// ```
/// use contextvars::propagation::is_private_address;
///
/// for private in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "::1", "fd12::1", "::ffff:10.0.0.7"] {
///     assert!(is_private_address(private.parse().unwrap()), "{private}");
/// }
/// for public in ["203.0.113.7", "172.32.0.1", "8.8.8.8", "169.254.169.254", "100.64.0.1", "2001:db8::1", "fe80::1", "0.0.0.0"] {
///     assert!(!is_private_address(public.parse().unwrap()), "{public}");
/// }
/// ```
pub fn is_private_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => ip.is_loopback() || ip.is_private(),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(ip) => is_private_address(IpAddr::V4(ip)),
            None => ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00,
        },
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
/// **Names and addresses are compared as written, never resolved.** The list is matched against
/// the host of the URL a request is made to: `localhost` does not match a request to
/// `http://127.0.0.1:3000`, `127.0.0.1` does not match `http://localhost:3000`, and
/// `orders.internal` does not match the address it resolves to. List each form your code
/// uses (both, when in doubt); an IPv6 address is written in brackets, as in a URL. Ask a
/// client layer what it decides for a URL with its `explain` (see
/// `ClientContextLayer::explain` with feature `tower`), and watch the debug events of target
/// `contextvars::trust`, which name a host that matched nothing.
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
///
/// // Names and IP literals are different hosts: list every form your URLs use.
/// let local = TrustedHosts::new(["localhost"]);
/// assert!(local.contains("localhost", Some(3000)));
/// assert!(!local.contains("127.0.0.1", Some(3000)));
/// let local = TrustedHosts::new(["localhost", "127.0.0.1", "[::1]"]);
/// assert!(local.contains("127.0.0.1", Some(3000)));
/// assert!(local.contains("[::1]", Some(3000)));
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
