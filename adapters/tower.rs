//! HTTP services on [tower](https://docs.rs/tower) (axum, hyper, tonic): a fresh context for
//! every request, its request id, and W3C Baggage across services (feature `tower`).
//!
//! # What it propagates
//!
//! On the server, [`ContextLayer`] runs each request's service (its `call` and the whole
//! response future, including its drop) inside a context built from nothing but that request.
//! The response *body* is not included: a body that produces its data after the response has
//! been returned (a stream) is polled by the connection outside that context; see
//! [what bypasses it](#what-bypasses-it) for the workaround.
//!
//! - **A fresh context.** Nothing from the connection task, the runtime's worker thread or an
//!   earlier request on the same connection is visible: the context starts from
//!   [`Context::new`](crate::Context::new), never from
//!   [`Context::current`](crate::Context::current).
//! - **The request id**, read from the `x-request-id` header (the name is configurable with
//!   [`PropagationBuilder::request_id_header`]) or generated when the header is missing or
//!   invalid, is set into [`REQUEST_ID`] (or the variable given to
//!   [`PropagationBuilder::request_id_var`]). It is also written back into the request's header,
//!   stored as tower-http's [`RequestId`] in the request's extensions (so tower-http's
//!   `PropagateRequestIdLayer` and handlers that extract `RequestId` see it), and echoed on the
//!   response unless the inner service already set that header. Generation goes through
//!   tower-http's [`MakeRequestId`]: [`MakeUniqueRequestId`] by default, any other
//!   (`MakeRequestUuid`, your own) with [`ContextLayer::make_request_id`].
//! - **W3C Baggage.** The `baggage` header is parsed by the
//!   [W3C Baggage](https://www.w3.org/TR/baggage/) rules. Members whose keys were registered
//!   with [`PropagationBuilder::baggage`] (or `baggage_str`, `baggage_with`) set their context
//!   variables, parsed by the function given at registration; the other members are kept in
//!   the context untouched ([`Baggage::forwarded`]) so the client side sends them on.
//!
//! With the `opentelemetry` feature, a trusted caller's W3C Trace Context (`traceparent`,
//! `tracestate`) is also extracted into a fresh OpenTelemetry context, current around the
//! service's `call` and every poll of the response future (an untrusted caller's is not read:
//! the request starts a new trace), the baggage accepted is mirrored in OTel's `Baggage`, and
//! the client side writes both, OTel baggage by the destination's trust; see the
//! `contextvars::opentelemetry` module.
//!
//! Background work keeps all of it when it is started with this crate's spawn helpers
//! ([`spawn_with_context`](crate::tokio::spawn_with_context) and its relatives), even after the
//! response has been sent.
//!
//! On the client, [`ClientContextLayer`] (for any `tower::Service<http::Request<B>>`, such as
//! hyper-util's client) and [`inject_headers`] / [`inject_headers_with`] (for clients that are
//! not tower, such as ureq) write the current context into the outgoing headers: the request
//! id header, and `baggage` with the registered variables that are set plus the forwarded
//! members. For reqwest, the `reqwest` feature has a middleware (`contextvars::reqwest`).
//! OpenTelemetry's `BaggagePropagator` reads the `baggage` written here, and the layer reads what
//! it writes.
//!
//! The registration is a [`Propagation`], shared by both sides and by the other transports
//! (NATS with the `async-nats` feature): the request id rules, W3C Baggage and its limits live
//! in [`crate::propagation`], which needs no `http`; this module is the tower layer on top of it
//! and re-exports its types, so `contextvars::tower::Propagation` and
//! `contextvars::propagation::Propagation` are the same type.
//!
//! # What bypasses it
//!
//! - Routes and services outside the layer (for axum: routes added after `.layer(...)`, or a
//!   fallback service not wrapped by it) run in whatever context the connection task has, which
//!   is normally empty.
//! - Work the handler starts with plain `tokio::spawn`, `tokio::task::spawn_blocking` or
//!   `std::thread::spawn` runs in the empty context: use this crate's spawn helpers.
//! - Outgoing requests made without [`ClientContextLayer`] or [`inject_headers`] carry nothing.
//! - `poll_ready` of the inner service runs in the caller's context, not the request's: no
//!   request exists yet.
//! - **Streaming response bodies.** Only the response *future* runs in the request's context.
//!   The body it returns is polled afterwards by the connection task, outside it: a stream
//!   behind the body (for axum, `Body::from_stream`; for tonic, the stream a server-streaming
//!   or bidirectional method returns) that reads [`REQUEST_ID`] or any other variable while
//!   producing its items sees the empty context. Either capture what you need in the handler
//!   before building the stream (`let id = REQUEST_ID.get();` and move `id` into it), or wrap
//!   the stream in the handler with
//!   [`.with_current_context()`](crate::ContextExt::with_current_context): a `futures`
//!   `Stream` wrapped in [`WithContext`] runs every `poll_next` inside the context it captured,
//!   e.g. `Body::from_stream(stream.with_current_context())` in axum, or
//!   `Ok(Response::new(Box::pin(stream.with_current_context())))` in a tonic handler.
//!
//! # Trust
//!
//! Request ids and baggage are chosen by whoever sends the request. Callers and destinations are
//! [untrusted](Trust::Untrusted) unless the [`Propagation`] says otherwise
//! ([`PropagationBuilder::inbound`](crate::propagation::PropagationBuilder::inbound),
//! [`outbound`](crate::propagation::PropagationBuilder::outbound)): from an untrusted caller,
//! the request runs under a fresh request id (the caller's is kept in [`CALLER_REQUEST_ID`], and
//! the generated id is the one written into the request and echoed), only baggage keys
//! [allowed from untrusted callers](crate::propagation::PropagationBuilder::accept_from_untrusted)
//! set variables and nothing is forwarded; to an untrusted destination, only the request id
//! and [public](crate::propagation::PropagationBuilder::public) variables are sent. One server
//! can serve both sides with [`ContextLayer::trust_callers_if`] (a header your gateway sets, the
//! peer address), one client with [`ClientContextLayer::trusted_hosts`]. See
//! [the propagation's Security section](crate::propagation#security) for the table and the
//! reasons for the default. What the rules hold back is reported once as a debug event of
//! target `contextvars::trust` (features `tracing`, `log`), and
//! [`ContextLayer::explain`] / [`ClientContextLayer::explain`] say what a request would carry
//! and why.
//!
//! # Bad input
//!
//! Bad input never fails the request and never panics. The rules are the transport-neutral
//! ones of [`crate::propagation`] (its [bad input table](crate::propagation#bad-input)), the same
//! for NATS messages and every other carrier: a missing or invalid request id is replaced by one
//! from the layer's generator (and the bad value is never echoed), a generator that returns
//! `None` or an unusable id leaves the request without an id and the response without the
//! header, malformed `baggage` members are dropped and the others kept, within the W3C limits.
//!
//! # Examples
//!
//! First, the services behind your edge: trusted both ways, each keeps the request id its
//! caller sent and the baggage, and sends them on to the next (both sides must say so: an
//! internal service left at the default restarts the id, a client left at the default withholds
//! the baggage). The same `Propagation` serves the layer and the client:
//!
//! ```
//! use axum::{routing::get, Router};
//! use contextvars::tower::{ClientContextLayer, ContextLayer, Propagation, Trust, REQUEST_ID};
//! use contextvars::ContextVar;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{Layer, ServiceExt};
//!
//! static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let propagation = Propagation::builder()
//!     .baggage_str(&TENANT, "tenant")
//!     .inbound(Trust::Trusted)
//!     .outbound(Trust::Trusted)
//!     .build();
//! let app = Router::new()
//!     .route("/", get(|| async { format!("{:?} {:?}", REQUEST_ID.get(), TENANT.get()) }))
//!     .layer(ContextLayer::new(propagation.clone()));
//! // Its calls to the next service carry the same id and baggage:
//! let client = ClientContextLayer::new(propagation)
//!     .layer(Client::builder(TokioExecutor::new()).build_http::<axum::body::Body>());
//! # let _ = client;
//!
//! let request = http::Request::get("/")
//!     .header("x-request-id", "req-1")
//!     .header("baggage", "tenant=acme,other=kept")
//!     .body(axum::body::Body::empty())
//!     .unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! assert_eq!(response.headers()["x-request-id"], "req-1");
//! let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
//! assert_eq!(body, r#"Some("req-1") Some("acme")"#);
//! # }
//! ```
//!
//! Then the edge, reachable from the internet, calling those services: strangers choose nothing
//! but the locale, and only calls to your own hosts carry more than the request id (the edge's
//! own, generated for each request, which the services behind it keep).
//!
//! ```
//! use axum::{routing::post, Router};
//! use contextvars::tower::{ClientContextLayer, ContextLayer, Propagation};
//! use contextvars::ContextVar;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::Layer;
//!
//! static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
//! static LOCALE: ContextVar<String> = ContextVar::new("locale").with_display();
//!
//! async fn create_order() -> &'static str {
//!     r#"{"status":"created"}"#
//! }
//!
//! let propagation = Propagation::builder()
//!     .baggage_str(&TENANT, "tenant") // set after authentication; never taken from a caller here
//!     .baggage_str(&LOCALE, "locale")
//!     .accept_from_untrusted("locale") // harmless for a stranger to choose
//!     .build(); // callers and destinations untrusted: the safe default for an edge
//! let app: Router = Router::new()
//!     .route("/orders", post(create_order))
//!     .layer(ContextLayer::new(propagation.clone()));
//! // Calls to our own services carry everything; calls anywhere else only the request id.
//! let client = ClientContextLayer::new(propagation)
//!     .trusted_hosts(["*.svc.cluster.local"])
//!     .layer(Client::builder(TokioExecutor::new()).build_http::<axum::body::Body>());
//! # let _ = (app, client);
//! ```
//!
//! # gRPC with tonic
//!
//! tonic's server and its `Channel` are tower services over `http` requests, and gRPC metadata
//! travels as HTTP/2 headers, so both layers work with tonic 0.14 as they are:
//!
//! - **Every service on a server:** `Server::builder().layer(ContextLayer::new(..))`.
//! - **One service only:** `ContextLayer::new(..).named_layer(service)`, from tonic's
//!   `tonic::service::LayerExt`. `add_service` routes by the service's gRPC name, which it reads
//!   from tonic's `NamedService` trait; [`ContextService`] does not implement it, so a plain
//!   `ContextLayer::new(..).layer(service)` is rejected with `error[E0277]: the trait bound
//!   ContextService<...>: NamedService is not satisfied` (below). `named_layer` wraps the layered
//!   service in tonic's `Layered`, which takes its name from the inner service.
//! - **The client:** [`ClientContextLayer`] on the `Channel`, handed to the generated client's
//!   `new`; or an interceptor that calls [`inject_headers_with`] (or [`inject_headers`]) on
//!   `request.metadata_mut().as_mut()`, the metadata's [`HeaderMap`].
//! - **Trust:** the requests a `Channel` is called with carry a path but no host (the channel
//!   adds its origin inside), so [`ClientContextLayer::trusted_hosts`] finds no host and treats
//!   them as untrusted: a channel talks to one server, so say whether it is yours with the
//!   propagation's [`outbound`](crate::propagation::PropagationBuilder::outbound) setting.
//! - **Server-streaming methods:** the returned stream is polled after the handler has returned,
//!   outside the request's context: return `Response::new(Box::pin(stream.with_current_context()))`
//!   (see [what bypasses it](#what-bypasses-it)).
//! - **Binary metadata and errors:** binary (`-bin`) metadata is never read or changed, in either
//!   direction, and an error status (a trailers-only response) still carries the echoed id.
//!
//! Here tonic-health's generated server and client stand in for your own; the crate's
//! `examples/grpc_orders.rs` writes a service with a unary and a server-streaming method by hand
//! (no `protoc`) and calls it both ways.
//!
//! ```
//! use contextvars::tower::{inject_headers_with, ClientContextLayer, ContextLayer, Propagation, Trust};
//! use contextvars::ContextVar;
//! use tonic::service::LayerExt as _;
//! use tonic::transport::{Endpoint, Server};
//! use tonic_health::pb::health_client::HealthClient;
//! use tower::ServiceBuilder;
//!
//! static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Between our own services: trusted both ways.
//! let propagation = Propagation::builder()
//!     .baggage_str(&TENANT, "tenant")
//!     .inbound(Trust::Trusted)
//!     .outbound(Trust::Trusted)
//!     .build();
//! let (_, health) = tonic_health::server::health_reporter();
//!
//! // Server: the layer for every service...
//! let every_service = Server::builder()
//!     .layer(ContextLayer::new(propagation.clone()))
//!     .add_service(health.clone());
//! // ...or for one service.
//! let one_service = Server::builder()
//!     .add_service(ContextLayer::new(propagation.clone()).named_layer(health));
//!
//! // Client: the layer on a `Channel`...
//! let channel = Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
//! let client = HealthClient::new(
//!     ServiceBuilder::new()
//!         .layer(ClientContextLayer::new(propagation.clone()))
//!         .service(channel.clone()),
//! );
//! // ...or an interceptor.
//! let intercepted = HealthClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
//!     inject_headers_with(&propagation, request.metadata_mut().as_mut());
//!     Ok(request)
//! });
//! # let _ = (every_service, one_service, client, intercepted);
//! # }
//! ```
//!
//! A plain `.layer(..)` on one service does not compile:
//!
//! ```compile_fail,E0277
//! use contextvars::tower::ContextLayer;
//! use tower::Layer;
//!
//! let (_, health) = tonic_health::server::health_reporter();
//! tonic::transport::Server::builder()
//!     .add_service(ContextLayer::default().layer(health)); // not a `NamedService`
//! ```

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};

use ::http::header::{HeaderMap, HeaderName, HeaderValue};
use ::http::{Request, Response};
use ::tower::{Layer, Service};
use ::tower_http::request_id::{MakeRequestId, RequestId};
use pin_project_lite::pin_project;

use crate::propagation::{Destination, Explanation, ExtractedFuture, Extractor};
#[cfg(doc)]
use crate::WithContext;

pub use crate::propagation::{is_private_address, Trust, TrustedHosts, CALLER_REQUEST_ID};
/// Moved to [`crate::propagation`], which needs no `http`; re-exported here so that code written
/// against this module keeps compiling.
pub use crate::propagation::{
    Baggage, BaggageMember, Propagation, PropagationBuilder, DEFAULT_MAX_REQUEST_ID_LEN,
    DEFAULT_REQUEST_ID_HEADER, MAX_BAGGAGE_BYTES, MAX_BAGGAGE_MEMBERS, REQUEST_ID,
};

/// Whether the request's peer (the connection's remote address, which the server put in the
/// request's extensions as an `A`) is a loopback or private-network address
/// ([`is_private_address`]): an opt-in predicate for [`ContextLayer::trust_callers_if`], for a
/// service whose private network holds only your own services, as Envoy treats such peers as
/// internal by default. `A` is the extension holding the address: axum's
/// `ConnectInfo<SocketAddr>` when the server was started with
/// `into_make_service_with_connect_info::<SocketAddr>()`, or any type of yours that
/// dereferences to a [`SocketAddr`](std::net::SocketAddr). A request without it is untrusted.
///
/// A peer address is where the connection came from: behind a proxy or load balancer on the
/// same network every caller is private, so there trust a header the proxy sets instead.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
///
/// use axum::extract::ConnectInfo;
/// use contextvars::tower::{peer_is_private, ContextLayer, Propagation};
///
/// let layer = ContextLayer::new(Propagation::default())
///     .trust_callers_if(peer_is_private::<ConnectInfo<SocketAddr>>);
///
/// let from = |peer: [u8; 4]| {
///     let mut request = http::Request::builder().header("x-request-id", "req-1").body(()).unwrap();
///     request.extensions_mut().insert(ConnectInfo(SocketAddr::from((peer, 50000))));
///     request
/// };
/// assert!(layer.explain(&from([10, 0, 0, 7])).trust.is_trusted());
/// assert!(layer.explain(&from([127, 0, 0, 1])).trust.is_trusted());
/// assert!(!layer.explain(&from([203, 0, 113, 7])).trust.is_trusted());
/// // Served without connect info: no address, so untrusted.
/// assert!(!layer.explain(&http::Request::new(())).trust.is_trusted());
/// ```
pub fn peer_is_private<A>(head: &::http::request::Parts) -> bool
where
    A: std::ops::Deref<Target = std::net::SocketAddr> + Send + Sync + 'static,
{
    let peer = head.extensions.get::<A>();
    peer.is_some_and(|peer| is_private_address(peer.ip()))
}

/// Decides per request whether its caller is trusted: see [`ContextLayer::trust_callers_if`].
#[derive(Clone)]
struct CallerTrust(Arc<dyn Fn(&::http::request::Parts) -> bool + Send + Sync>);

impl fmt::Debug for CallerTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallerTrust(..)")
    }
}

/// Decides per request whether its destination is trusted: see
/// [`ClientContextLayer::trusted_hosts`] and [`ClientContextLayer::trust_destinations_if`].
type DestinationTrust = crate::http::Destinations<::http::Uri>;

/// The host and port of a request's URI (the scheme's default port when it names none).
fn host_and_port(uri: &::http::Uri) -> Option<(&str, Option<u16>)> {
    let port = uri.port_u16().or(match uri.scheme_str() {
        Some("http") => Some(80),
        Some("https") => Some(443),
        _ => None,
    });
    Some((uri.host()?, port))
}

/// A request's headers as the propagation reads them, with the names it asks for on every
/// request already parsed: looking a header up by `&str` parses the name each time.
struct RequestHeaders<'a> {
    headers: &'a HeaderMap,
    /// The request id header, the propagation's `request_id_header()`.
    id: &'a HeaderName,
    /// The request id header's value, once read: the layer keeps it without a second lookup.
    found: Cell<Option<&'a HeaderValue>>,
}

impl Extractor for RequestHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = match key == self.id.as_str() {
            true => {
                let value = self.headers.get(self.id);
                self.found.set(value);
                value
            }
            false => self.headers.get(key),
        };
        value.and_then(|value| value.to_str().ok())
    }

    fn get_all(&self, key: &str) -> Vec<&str> {
        static BAGGAGE: HeaderName = HeaderName::from_static("baggage");
        let values = match key == BAGGAGE.as_str() {
            true => self.headers.get_all(&BAGGAGE),
            false => self.headers.get_all(key),
        };
        values
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect()
    }

    fn keys(&self) -> Vec<&str> {
        Extractor::keys(self.headers)
    }
}

/// The default request id generator: [`propagation::unique_request_id`] as a tower-http
/// [`MakeRequestId`]: 32 lowercase hex digits that look random (a per-process counter mixed
/// through a bijection keyed once per process). Unique within the process and, with
/// overwhelming likelihood, across processes; cheaper than a UUID (no system call per
/// request). Not a secret.
///
/// Any other tower-http [`MakeRequestId`] can replace it ([`ContextLayer::make_request_id`]).
///
/// [`propagation::unique_request_id`]: crate::propagation::unique_request_id
///
/// # Examples
///
/// ```
/// use contextvars::tower::MakeUniqueRequestId;
/// use tower_http::request_id::MakeRequestId;
///
/// let request = http::Request::new(());
/// let a = MakeUniqueRequestId.make_request_id(&request).unwrap();
/// let b = MakeUniqueRequestId.make_request_id(&request).unwrap();
/// assert_eq!(a.header_value().len(), 32);
/// assert_ne!(a.header_value(), b.header_value());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct MakeUniqueRequestId;

impl MakeRequestId for MakeUniqueRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let id = crate::propagation::unique_request_id();
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// The request id header of `propagation` as an `http` header name. The propagation keeps it a
/// lowercase HTTP token, which is always one.
///
/// The default name is made from the static string: cloning it (axum clones the layer for every
/// request, and the response future keeps the name to echo the id) then copies a pointer, where a
/// name parsed at run time changes a shared reference count each time.
fn header_name(propagation: &Propagation) -> HeaderName {
    let name = propagation.request_id_header();
    if name == DEFAULT_REQUEST_ID_HEADER {
        return HeaderName::from_static(DEFAULT_REQUEST_ID_HEADER);
    }
    HeaderName::from_bytes(name.as_bytes())
        .unwrap_or(HeaderName::from_static(DEFAULT_REQUEST_ID_HEADER))
}

// ---------------------------------------------------------------------------------------------
// Server side.

/// A tower [`Layer`] that runs every request in a fresh context with its
/// request id and baggage; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use axum::{routing::get, Router};
/// use contextvars::tower::{ContextLayer, REQUEST_ID};
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { REQUEST_ID.get().unwrap_or_default() }))
///     .layer(ContextLayer::default());
/// # let _ = app;
/// ```
#[derive(Clone, Debug)]
pub struct ContextLayer<M = MakeUniqueRequestId> {
    propagation: Propagation,
    header: HeaderName,
    make_id: M,
    trust: Option<CallerTrust>,
}

impl Default for ContextLayer {
    /// A layer with the default [`Propagation`] and the default id generator: the same as
    /// `ContextLayer::new(Propagation::default())`, for an edge service. Callers are
    /// [untrusted](Trust::Untrusted): every request runs under a fresh id from
    /// [`MakeUniqueRequestId`], set into [`REQUEST_ID`] (a valid `x-request-id` the caller sent
    /// is kept in [`CALLER_REQUEST_ID`]), and no `baggage` member is read or forwarded.
    ///
    /// ```
    /// use contextvars::tower::{Baggage, ContextLayer, CALLER_REQUEST_ID, REQUEST_ID};
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let service = ContextLayer::default().layer(service_fn(|_: http::Request<()>| async {
    ///     let seen = (REQUEST_ID.get(), CALLER_REQUEST_ID.get(), Baggage::forwarded().len());
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(seen))
    /// }));
    /// let request = http::Request::builder()
    ///     .header("x-request-id", "req-1")
    ///     .header("baggage", "tenant=acme")
    ///     .body(())
    ///     .unwrap();
    /// let response = service.oneshot(request).await.unwrap();
    /// let echoed = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    /// let (id, caller_id, forwarded) = response.into_body();
    /// assert_eq!(id.as_deref(), Some(&*echoed));
    /// assert_ne!(echoed, "req-1");
    /// assert_eq!(caller_id.as_deref(), Some("req-1"));
    /// assert_eq!(forwarded, 0);
    /// # }
    /// ```
    fn default() -> ContextLayer {
        ContextLayer::new(Propagation::default())
    }
}

impl ContextLayer {
    /// A layer with this configuration and the default id generator, [`MakeUniqueRequestId`].
    ///
    /// ```
    /// use contextvars::tower::{ContextLayer, Propagation};
    ///
    /// let layer = ContextLayer::new(Propagation::builder().max_request_id_len(64).build());
    /// # let _ = layer;
    /// ```
    pub fn new(propagation: Propagation) -> ContextLayer {
        ContextLayer {
            header: header_name(&propagation),
            propagation,
            make_id: MakeUniqueRequestId,
            trust: None,
        }
    }
}

impl<M> ContextLayer<M> {
    /// Generates missing or invalid request ids with `make_id`, any tower-http
    /// [`MakeRequestId`] (such as its `MakeRequestUuid`).
    ///
    /// ```
    /// use contextvars::tower::ContextLayer;
    /// use tower_http::request_id::MakeRequestUuid;
    ///
    /// let layer = ContextLayer::default().make_request_id(MakeRequestUuid);
    /// # let _ = layer;
    /// ```
    pub fn make_request_id<N: MakeRequestId>(self, make_id: N) -> ContextLayer<N> {
        ContextLayer {
            propagation: self.propagation,
            header: self.header,
            make_id,
            trust: self.trust,
        }
    }

    /// Decides for each request whether its caller is trusted, in place of the propagation's
    /// [`inbound`](crate::propagation::PropagationBuilder::inbound) setting: one server for
    /// both the public and your own services. `trusted` sees the request's head (method, URI,
    /// headers, extensions: axum's `ConnectInfo` with the peer address is there when the
    /// server was started with `into_make_service_with_connect_info`).
    ///
    /// Trust a header only if your gateway sets it and strips it from what strangers send;
    /// trust a peer address only if it cannot be spoofed on your network. For callers on the
    /// loopback or a private network, pass the named predicate [`peer_is_private`]:
    /// `.trust_callers_if(peer_is_private::<ConnectInfo<SocketAddr>>)` with axum.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::tower::{ContextLayer, Propagation, CALLER_REQUEST_ID, REQUEST_ID};
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // The gateway adds `x-from-gateway: 1` to what it forwards and removes it from requests.
    /// let layer = ContextLayer::new(Propagation::default())
    ///     .trust_callers_if(|head| head.headers.contains_key("x-from-gateway"));
    /// let service = layer.layer(service_fn(|_: http::Request<()>| async {
    ///     let ids = format!("{:?} {:?}", REQUEST_ID.get(), CALLER_REQUEST_ID.get());
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(ids))
    /// }));
    ///
    /// let internal = http::Request::builder()
    ///     .header("x-request-id", "gw-1")
    ///     .header("x-from-gateway", "1")
    ///     .body(())
    ///     .unwrap();
    /// let body = service.clone().oneshot(internal).await.unwrap().into_body();
    /// assert_eq!(body, r#"Some("gw-1") None"#);
    ///
    /// let external = http::Request::builder().header("x-request-id", "spoofed").body(()).unwrap();
    /// let body = service.oneshot(external).await.unwrap().into_body();
    /// assert!(body.ends_with(r#"Some("spoofed")"#) && !body.starts_with(r#"Some("spoofed")"#));
    /// # }
    /// ```
    pub fn trust_callers_if<F>(mut self, trusted: F) -> ContextLayer<M>
    where
        F: Fn(&::http::request::Parts) -> bool + Send + Sync + 'static,
    {
        self.trust = Some(CallerTrust(Arc::new(trusted)));
        self
    }

    /// What this layer would accept from `request` and what it would set aside, with its
    /// decision on the caller's trust and why (its [`trust_callers_if`] predicate, or the
    /// propagation's `inbound` setting); see [`Explanation`]. For tests and for debugging a
    /// chain whose id restarts at a hop.
    ///
    /// [`trust_callers_if`]: ContextLayer::trust_callers_if
    ///
    /// ```
    /// use contextvars::tower::{ContextLayer, Propagation, Trust};
    ///
    /// let layer = ContextLayer::new(Propagation::default())
    ///     .trust_callers_if(|head| head.headers.contains_key("x-from-gateway"));
    /// let request = http::Request::builder().header("x-request-id", "ext-1").body(()).unwrap();
    /// let explanation = layer.explain(&request);
    /// assert_eq!(explanation.trust, Trust::Untrusted);
    /// assert_eq!(explanation.held_back(), ["x-request-id"]);
    /// assert_eq!(
    ///     explanation.to_string(),
    ///     "inbound from an untrusted caller (the trust_callers_if predicate returned false)\n  \
    ///      set aside request id `x-request-id`: the caller is untrusted: a fresh id is \
    ///      generated, theirs kept in caller_request_id for correlation"
    /// );
    /// ```
    pub fn explain<B>(&self, request: &Request<B>) -> Explanation {
        let propagation = &self.propagation;
        let (trust, why) = match &self.trust {
            Some(CallerTrust(trusted)) => {
                let mut head = Request::new(()).into_parts().0;
                head.method = request.method().clone();
                head.uri = request.uri().clone();
                head.version = request.version();
                head.headers = request.headers().clone();
                head.extensions = request.extensions().clone();
                let trusted = trusted(&head);
                let why = format!("the trust_callers_if predicate returned {trusted}");
                (Trust::from_bool(trusted), why)
            }
            None => (
                propagation.inbound_trust(),
                "the propagation's inbound setting".to_owned(),
            ),
        };
        let propagation = propagation.with_inbound(trust);
        propagation.explain_inbound_because(request.headers(), why)
    }

    /// The configuration this layer uses.
    ///
    /// ```
    /// let layer = contextvars::tower::ContextLayer::default();
    /// let client = contextvars::tower::ClientContextLayer::new(layer.propagation().clone());
    /// # let _ = client;
    /// ```
    pub fn propagation(&self) -> &Propagation {
        &self.propagation
    }
}

impl<S, M: Clone> Layer<S> for ContextLayer<M> {
    type Service = ContextService<S, M>;

    fn layer(&self, inner: S) -> ContextService<S, M> {
        ContextService {
            inner,
            propagation: self.propagation.clone(),
            header: self.header.clone(),
            make_id: self.make_id.clone(),
            trust: self.trust.clone(),
        }
    }
}

/// The service made by [`ContextLayer`].
///
/// # Examples
///
/// ```
/// use contextvars::tower::{ContextLayer, Propagation, Trust, REQUEST_ID};
/// use tower::{service_fn, Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let internal = Propagation::builder().inbound(Trust::Trusted).build();
/// let service = ContextLayer::new(internal).layer(service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(REQUEST_ID.get().unwrap()))
/// }));
/// let request = http::Request::builder().header("x-request-id", "abc").body(()).unwrap();
/// assert_eq!(service.oneshot(request).await.unwrap().into_body(), "abc");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ContextService<S, M = MakeUniqueRequestId> {
    inner: S,
    propagation: Propagation,
    header: HeaderName,
    make_id: M,
    trust: Option<CallerTrust>,
}

impl<S, M, ReqBody, ResBody> Service<Request<ReqBody>> for ContextService<S, M>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    M: MakeRequestId,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> ResponseFuture<S::Future> {
        let decided;
        let propagation = match &self.trust {
            Some(CallerTrust(trusted)) => {
                let (head, body) = request.into_parts();
                decided = self
                    .propagation
                    .with_inbound(Trust::from_bool(trusted(&head)));
                request = Request::from_parts(head, body);
                &decided
            }
            None => &self.propagation,
        };
        let make_id = &mut self.make_id;
        // The generated id as a header value, kept to be written without converting it back.
        let mut generated = None;
        let headers = RequestHeaders {
            headers: request.headers(),
            id: &self.header,
            found: Cell::new(None),
        };
        let extracted = propagation.extract_with(&headers, || {
            let id = make_id.make_request_id(&request)?.into_header_value();
            let text = id.to_str().ok()?.to_owned();
            // Kept only when the propagation accepts it (its own test), so that `generated` is
            // the request id exactly when the context got one from here.
            if crate::propagation::is_visible_ascii(&text) {
                generated = Some(id);
            }
            Some(text)
        });
        // The request carries the id the context has: the one received, or the generated one
        // in place of a bad one (or none), also for tower-http's layers and `RequestId`
        // extractors.
        let header = &self.header;
        let id = match extracted.received {
            // A received id is the value of the header, which the extraction read.
            true => headers
                .found
                .get()
                .or_else(|| request.headers().get(header))
                .cloned(),
            false => generated,
        };
        match &id {
            Some(id) => {
                if !extracted.received {
                    request.headers_mut().insert(header.clone(), id.clone());
                }
                request.extensions_mut().insert(RequestId::new(id.clone()));
            }
            None => {
                request.headers_mut().remove(header);
            }
        }
        // The service is called, and its future polled and dropped, inside all the request
        // brought (with `opentelemetry`, its OTel context too).
        let inner = &mut self.inner;
        let future = extracted.run(|| inner.call(request));
        ResponseFuture {
            inner: extracted.scope(future),
            echo: id.map(|id| (header.clone(), id)),
        }
    }
}

pin_project! {
    /// The response future of [`ContextService`]: the inner service's future, polled and dropped
    /// inside the request's context, which echoes the request id on the response.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::tower::{ContextLayer, ResponseFuture};
    /// use tower::{service_fn, Layer, Service};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut service = ContextLayer::default().layer(service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
    /// }));
    /// let future: ResponseFuture<_> = service.call(http::Request::new(()));
    /// assert!(future.await.unwrap().headers().contains_key("x-request-id"));
    /// # }
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: ExtractedFuture<F>,
        echo: Option<(HeaderName, HeaderValue)>,
    }
}

impl<F: fmt::Debug> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = match this.inner.poll(cx) {
            Poll::Ready(result) => result,
            Poll::Pending => return Poll::Pending,
        };
        if let (Ok(response), Some((name, id))) = (&mut result, this.echo.take()) {
            if !response.headers().contains_key(&name) {
                response.headers_mut().insert(name, id);
            }
        }
        Poll::Ready(result)
    }
}

// ---------------------------------------------------------------------------------------------
// Client side.

/// Writes the current context into outgoing headers with the default [`Propagation`]: the
/// request id from [`REQUEST_ID`] into `x-request-id`, and nothing else, since the default
/// destination is [untrusted](Trust::Untrusted) (use [`inject_headers_with`] and a trusted
/// propagation to send baggage to your own services); with the `opentelemetry` feature, also
/// the current OpenTelemetry trace context. For clients that are not tower services (ureq,
/// isahc...); the same as `Propagation::default().inject(headers)`.
///
/// # Examples
///
/// ```
/// use contextvars::tower::{inject_headers, REQUEST_ID};
///
/// let mut headers = http::HeaderMap::new();
/// REQUEST_ID.scope("req-7".into(), || inject_headers(&mut headers));
/// assert_eq!(headers["x-request-id"], "req-7");
/// ```
pub fn inject_headers(headers: &mut HeaderMap) {
    static DEFAULT: OnceLock<Propagation> = OnceLock::new();
    inject_headers_with(DEFAULT.get_or_init(Propagation::default), headers);
}

/// Writes the current context into outgoing headers: the request id header, and `baggage` with
/// the registered variables that are set, then the forwarded members, then members already in
/// `headers` under other keys (within the limits). Nothing is written for what is not set.
/// To a destination that is not [trusted](Trust) (the propagation's
/// [`outbound`](crate::propagation::PropagationBuilder::outbound) setting, or
/// `propagation.with_outbound(..)` for this call), only public variables and the request id.
///
/// # Examples
///
/// ```
/// use contextvars::tower::{inject_headers_with, Propagation, Trust};
/// use contextvars::ContextVar;
///
/// static TENANT: ContextVar<String> = ContextVar::new("tenant");
///
/// let propagation = Propagation::builder()
///     .baggage_str(&TENANT, "tenant")
///     .outbound(Trust::Trusted)
///     .build();
/// let mut headers = http::HeaderMap::new();
/// TENANT.scope("acme corp".into(), || inject_headers_with(&propagation, &mut headers));
/// assert_eq!(headers["baggage"], "tenant=acme%20corp");
/// ```
pub fn inject_headers_with(propagation: &Propagation, headers: &mut HeaderMap) {
    propagation.inject(headers);
}

/// A tower [`Layer`] for HTTP clients (any `Service<http::Request<B>>`, such
/// as hyper-util's client) that writes the caller's context into every outgoing request; see
/// [`inject_headers_with`] for what is written.
///
/// The context is the one current when the request is *called* (`Service::call`), which for
/// `ServiceExt::oneshot` is when the returned future is first polled.
///
/// # Examples
///
/// ```
/// use contextvars::tower::{ClientContextLayer, REQUEST_ID};
/// use tower::{service_fn, Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // A stand-in for a real HTTP client: returns the request's headers.
/// let client = ClientContextLayer::default().layer(service_fn(|request: http::Request<()>| async move {
///     Ok::<_, std::convert::Infallible>(request.headers().clone())
/// }));
/// let call = client.oneshot(http::Request::new(()));
/// let headers = REQUEST_ID.scope_future("req-9".into(), call).await.unwrap();
/// assert_eq!(headers["x-request-id"], "req-9");
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ClientContextLayer {
    propagation: Propagation,
    destinations: Option<DestinationTrust>,
}

impl ClientContextLayer {
    /// A client layer with this configuration.
    ///
    /// ```
    /// use contextvars::tower::{ClientContextLayer, Propagation};
    ///
    /// let layer = ClientContextLayer::new(Propagation::default());
    /// # let _ = layer;
    /// ```
    pub fn new(propagation: Propagation) -> ClientContextLayer {
        ClientContextLayer {
            propagation,
            destinations: None,
        }
    }

    /// Treats requests to these hosts as going to trusted destinations and every other
    /// request as untrusted, in place of the propagation's
    /// [`outbound`](crate::propagation::PropagationBuilder::outbound) setting; see
    /// [`TrustedHosts`] for the entries' syntax. A request whose URI has no host (a relative
    /// URI, as a tonic `Channel` sees) is untrusted: for a client bound to one destination,
    /// set the propagation's `outbound` instead.
    ///
    /// Hosts are compared as the URL writes them, never resolved: `trusted_hosts(["localhost"])`
    /// does not trust `http://127.0.0.1:3000`. List every form your URLs use
    /// (`["localhost", "127.0.0.1", "[::1]"]`), and check with [`explain`](Self::explain).
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::tower::{ClientContextLayer, Propagation};
    /// use contextvars::ContextVar;
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// static TENANT: ContextVar<String> = ContextVar::new("tenant");
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let propagation = Propagation::builder().baggage_str(&TENANT, "tenant").build();
    /// let layer = ClientContextLayer::new(propagation).trusted_hosts(["*.internal"]);
    /// // A stand-in for a real HTTP client: returns the request's headers.
    /// let client = layer.layer(service_fn(|request: http::Request<()>| async move {
    ///     Ok::<_, std::convert::Infallible>(request.headers().clone())
    /// }));
    /// let send = |uri: &'static str| {
    ///     let call = client.clone().oneshot(http::Request::get(uri).body(()).unwrap());
    ///     TENANT.scope_future("acme".into(), call)
    /// };
    /// assert_eq!(send("http://orders.internal/").await.unwrap()["baggage"], "tenant=acme");
    /// assert!(!send("https://api.partner.example/").await.unwrap().contains_key("baggage"));
    /// # }
    /// ```
    #[track_caller]
    pub fn trusted_hosts<I>(mut self, hosts: I) -> ClientContextLayer
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.destinations = Some(DestinationTrust::Hosts(TrustedHosts::new(hosts)));
        self
    }

    /// Decides for each request whether its destination is trusted, from its URI, in place of
    /// the propagation's [`outbound`](crate::propagation::PropagationBuilder::outbound)
    /// setting.
    ///
    /// ```
    /// use contextvars::tower::{ClientContextLayer, Propagation};
    ///
    /// let layer = ClientContextLayer::new(Propagation::default())
    ///     .trust_destinations_if(|uri| uri.scheme_str() == Some("http") && uri.host() == Some("localhost"));
    /// # let _ = layer;
    /// ```
    pub fn trust_destinations_if<F>(mut self, trusted: F) -> ClientContextLayer
    where
        F: Fn(&::http::Uri) -> bool + Send + Sync + 'static,
    {
        self.destinations = Some(DestinationTrust::If(Arc::new(trusted)));
        self
    }

    /// What a request to `uri`, made now, would carry and what would be withheld from it, with
    /// this layer's decision on the destination's trust and why (its host list, its predicate,
    /// or the propagation's `outbound` setting); see [`Explanation`]. For tests and for
    /// debugging a chain that loses its baggage. A host list matches the URI's host as written:
    /// `localhost` does not match `127.0.0.1`.
    ///
    /// ```
    /// use contextvars::tower::{ClientContextLayer, Propagation, Trust};
    /// use contextvars::ContextVar;
    ///
    /// static TENANT: ContextVar<String> = ContextVar::new("tenant");
    ///
    /// let propagation = Propagation::builder().baggage_str(&TENANT, "tenant").build();
    /// let layer = ClientContextLayer::new(propagation).trusted_hosts(["localhost"]);
    /// let uri: http::Uri = "http://127.0.0.1:3000/stock".parse().unwrap();
    /// let explanation = TENANT.scope("acme".into(), || layer.explain(&uri));
    /// assert_eq!(explanation.trust, Trust::Untrusted);
    /// assert_eq!(explanation.why, r#"host 127.0.0.1:3000 matches none of ["localhost"]"#);
    /// assert_eq!(explanation.held_back(), ["tenant"]);
    /// assert_eq!(
    ///     explanation.to_string(),
    ///     "outbound to an untrusted destination (host 127.0.0.1:3000 matches none of [\"localhost\"])\n  \
    ///      withheld  baggage `tenant`: private (not made public): sent to trusted destinations only"
    /// );
    /// ```
    pub fn explain(&self, uri: &::http::Uri) -> Explanation {
        let propagation = &self.propagation;
        match &self.destinations {
            Some(destinations) => {
                let trust = destinations.trust_of(uri, host_and_port);
                let why = destinations.why(uri, host_and_port);
                propagation.explain_outbound_because(trust, why)
            }
            None => propagation.explain_outbound_because(
                propagation.outbound_trust(),
                "the propagation's outbound setting".to_owned(),
            ),
        }
    }
}

impl<S> Layer<S> for ClientContextLayer {
    type Service = ClientContextService<S>;

    fn layer(&self, inner: S) -> ClientContextService<S> {
        ClientContextService {
            inner,
            propagation: self.propagation.clone(),
            destinations: self.destinations.clone(),
        }
    }
}

/// The service made by [`ClientContextLayer`].
///
/// # Examples
///
/// ```
/// use contextvars::tower::{ClientContextLayer, ClientContextService};
/// use tower::{service_fn, Layer};
///
/// let client: ClientContextService<_> = ClientContextLayer::default().layer(service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(())
/// }));
/// # let _ = client;
/// ```
#[derive(Clone, Debug)]
pub struct ClientContextService<S> {
    inner: S,
    propagation: Propagation,
    destinations: Option<DestinationTrust>,
}

impl<S, B> Service<Request<B>> for ClientContextService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        match &self.destinations {
            Some(destinations) => {
                let (mut head, body) = request.into_parts();
                let uri = &head.uri;
                let trust = destinations.trust_of(uri, host_and_port);
                // Only asked when what is withheld is reported (once per host).
                let why = || destinations.why(uri, host_and_port);
                let destination = Destination {
                    key: uri.host().unwrap_or_default(),
                    why: &why,
                };
                let context = crate::Context::current();
                let propagation = self.propagation.with_outbound(trust);
                propagation.inject_to(&context, &mut head.headers, Some(destination));
                request = Request::from_parts(head, body);
            }
            None => self.propagation.inject(request.headers_mut()),
        }
        self.inner.call(request)
    }
}
