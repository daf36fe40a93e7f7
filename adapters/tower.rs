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
//!   [`Context::new`], never from [`Context::current`].
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
//! With the `opentelemetry` feature, the request's W3C Trace Context (`traceparent`,
//! `tracestate`) is also extracted into a fresh OpenTelemetry context, current around the
//! service's `call` and every poll of the response future, its baggage is mirrored in OTel's
//! `Baggage`, and the client side writes both; see the `contextvars::opentelemetry` module.
//!
//! Background work keeps all of it when it is started with this crate's spawn helpers
//! ([`spawn_with_context`](crate::tokio::spawn_with_context) and its relatives), even after the
//! response has been sent.
//!
//! On the client, [`ClientContextLayer`] (for any `tower::Service<http::Request<B>>`, such as
//! hyper-util's client) and [`inject_headers`] / [`inject_headers_with`] (for clients that are
//! not tower, such as reqwest) write the current context into the outgoing headers: the request
//! id header, and `baggage` with the registered variables that are set plus the forwarded
//! members. The registration is a [`Propagation`], shared by both sides.
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
//! # Bad input
//!
//! Bad input never fails the request and never panics. Exactly:
//!
//! | Input | What happens |
//! |---|---|
//! | request id header missing | a new id is generated |
//! | request id empty, longer than [`PropagationBuilder::max_request_id_len`] (128 bytes by default), or with a byte that is not visible ASCII (`!`..=`~`; this covers spaces and non-UTF-8 bytes) | the header is ignored and replaced by a generated id; the bad value is never echoed |
//! | several request id headers | the first is read; if it is valid the others are left alone, if not they are all replaced by the generated id |
//! | the generator returns `None` or an id that is empty or not visible ASCII | the request runs with no request id set and no response header |
//! | a `baggage` header line with bytes that are not visible ASCII, space or tab (for example non-UTF-8) | that line is ignored whole; other `baggage` lines are still read |
//! | several `baggage` lines | read in order, as one list joined by `,` (an empty line too) |
//! | an empty member (`a=1,,b=2`, trailing `,`) | skipped |
//! | a malformed member: no `=`, a key that is not an HTTP token, a value with a character outside the spec's `baggage-octet`s, a bad `%` escape (`%ZZ`, `%4` at the end), a malformed property, a `;` with no property after it (`a=1;`, `a=1; `, `a=1;;p`) | that member is dropped, the others are kept |
//! | spaces and tabs around keys, values, properties and their `=`, `;` and `,` (the spec's optional whitespace) | accepted and removed: what is forwarded has none |
//! | a value whose `%` escapes decode to bytes that are not valid UTF-8 (`a=%FF`) | the member is kept, each invalid sequence replaced by U+FFFD `�`, as the spec requires; forwarded with the escapes it came with (`a=%FF`) |
//! | a registered member whose value the parse function rejects (`None`) | that member is dropped and not forwarded, and does not count towards the member limit: the variable keeps the value of an earlier member of that key that parsed, or stays unset |
//! | the same key twice | the last value that parses wins (at the position of the first); a later member of a key already kept does not count again towards the member limit |
//! | more than 64 distinct keys ([`MAX_BAGGAGE_MEMBERS`]) | the first 64 keys accepted (valid, and for registered keys parsed) are kept; members with other keys after them are dropped, while later members of the kept keys still replace their values |
//! | more than 8,192 bytes ([`MAX_BAGGAGE_BYTES`], all lines read, empty ones included, and their joining `,` counted; ignored lines are not) | members that end past byte 8,192 are dropped, those before kept |
//!
//! On output the same limits apply: members are written registered variables first (in
//! registration order), then the forwarded ones, and a member that would take the header past
//! 64 members or 8,192 bytes is left out. Nothing the service did not change grows on the way
//! out, so what was accepted on the way in is forwarded: a forwarded member, and a registered
//! variable whose value still formats to the value received, are written with their value as it
//! came in (escapes, even needless or lowercase ones, included), and without the optional
//! whitespace. New values are percent-encoded only where the grammar requires it: `%` and the
//! bytes that are not `baggage-octet`s (controls, space, `"`, `,`, `;`, `\`, non-ASCII). `=` is
//! written as is, as the grammar allows; note that OpenTelemetry's Rust `BaggagePropagator`
//! (0.33) cuts a value at its first `=`, so a value meant for it should not hold one. No control
//! character (tab included) is ever written.
//!
//! # Examples
//!
//! ```
//! use axum::{routing::get, Router};
//! use contextvars::tower::{ContextLayer, Propagation, REQUEST_ID};
//! use contextvars::ContextVar;
//! use tower::ServiceExt;
//!
//! static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let propagation = Propagation::builder().baggage_str(&TENANT, "tenant").build();
//! let app = Router::new()
//!     .route("/", get(|| async { format!("{:?} {:?}", REQUEST_ID.get(), TENANT.get()) }))
//!     .layer(ContextLayer::new(propagation));
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
//! - **Server-streaming methods:** the returned stream is polled after the handler has returned,
//!   outside the request's context: return `Response::new(Box::pin(stream.with_current_context()))`
//!   (see [what bypasses it](#what-bypasses-it)).
//!
//! Here tonic-health's generated server and client stand in for your own; the crate's
//! `examples/grpc_orders.rs` writes a service with a unary and a server-streaming method by hand
//! (no `protoc`) and calls it both ways.
//!
//! ```
//! use contextvars::tower::{inject_headers_with, ClientContextLayer, ContextLayer, Propagation};
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
//! let propagation = Propagation::builder().baggage_str(&TENANT, "tenant").build();
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

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};

use ::http::header::{HeaderMap, HeaderName, HeaderValue};
use ::http::{Request, Response};
use ::tower::{Layer, Service};
use ::tower_http::request_id::{MakeRequestId, RequestId};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use pin_project_lite::pin_project;

use crate::{Context, ContextExt, ContextVar, WithContext};

/// The request id of the current request, set by [`ContextLayer`] unless another variable was
/// chosen with [`PropagationBuilder::request_id_var`]. Printed with `Display` by logging
/// integrations.
///
/// # Examples
///
/// ```
/// use contextvars::tower::REQUEST_ID;
///
/// REQUEST_ID.scope("req-1".into(), || assert_eq!(REQUEST_ID.get().as_deref(), Some("req-1")));
/// ```
pub static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id").with_display();

/// The baggage members received and not registered, kept to be forwarded. Opaque: logging
/// integrations do not print it.
static FORWARDED: ContextVar<Baggage> = ContextVar::opaque("baggage");

/// The registered members received with escapes that encoding their value would not give back,
/// as received: a variable whose value still formats to the decoded value is sent on with the
/// same escapes, so it takes no more room than it did on the way in. Opaque, and only set when
/// there is such a member.
static REGISTERED_AS_RECEIVED: ContextVar<Baggage> = ContextVar::opaque("baggage_as_received");

/// The header the request id travels in unless configured otherwise: `x-request-id`.
///
/// ```
/// assert_eq!(contextvars::tower::DEFAULT_REQUEST_ID_HEADER, "x-request-id");
/// ```
pub const DEFAULT_REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest request id accepted from a request unless configured otherwise, in bytes.
///
/// ```
/// assert_eq!(contextvars::tower::DEFAULT_MAX_REQUEST_ID_LEN, 128);
/// ```
pub const DEFAULT_MAX_REQUEST_ID_LEN: usize = 128;

/// The W3C Baggage limit on list-members, applied when reading and when writing.
///
/// ```
/// use contextvars::tower::{Baggage, MAX_BAGGAGE_MEMBERS};
///
/// let header: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
/// assert_eq!(Baggage::parse(&header.join(",")).len(), MAX_BAGGAGE_MEMBERS);
/// ```
pub const MAX_BAGGAGE_MEMBERS: usize = 64;

/// The W3C Baggage limit on the header's size in bytes, applied when reading and when writing.
///
/// ```
/// use contextvars::tower::{Baggage, MAX_BAGGAGE_BYTES};
///
/// let big = format!("a=1,b={},c=3", "x".repeat(MAX_BAGGAGE_BYTES));
/// let baggage = Baggage::parse(&big);
/// assert_eq!(baggage.get("a"), Some("1"));
/// assert_eq!(baggage.get("b"), None); // ends past the limit, like everything after it
/// assert_eq!(baggage.get("c"), None);
/// ```
pub const MAX_BAGGAGE_BYTES: usize = 8192;

const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

// ---------------------------------------------------------------------------------------------
// Baggage: parse and format.

/// One list-member of a [`Baggage`]: a key, its decoded value and its properties.
///
/// A member read from a header also remembers its value as it was written there, `%` escapes
/// included, and is written back that way until its value is replaced. Two members are equal
/// when their keys, decoded values and properties are: how the value was escaped is not compared.
///
/// # Examples
///
/// ```
/// use contextvars::tower::Baggage;
///
/// let baggage = Baggage::parse("user=J%C3%B6rg;secure;ttl=60");
/// let member = baggage.iter().next().unwrap();
/// assert_eq!((member.key(), member.value(), member.properties()), ("user", "Jörg", "secure;ttl=60"));
/// ```
#[derive(Clone, Debug)]
pub struct BaggageMember {
    key: Box<str>,
    value: Box<str>,
    /// The value as received, when encoding `value` would not give it back.
    encoded: Option<Box<str>>,
    properties: Box<str>,
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
    /// let baggage = contextvars::tower::Baggage::parse("Tenant=acme");
    /// assert_eq!(baggage.iter().next().unwrap().key(), "Tenant");
    /// ```
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The member's value, percent-decoded.
    ///
    /// ```
    /// let baggage = contextvars::tower::Baggage::parse("city=S%C3%A3o%20Paulo");
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
    /// let baggage = contextvars::tower::Baggage::parse("a=1 ; p1 ;\tp2 = x%20y");
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
/// [module docs](self#bad-input) for each case. Duplicate keys: the last value wins, and a
/// duplicate does not count towards the member limit. Values whose escapes are not valid UTF-8
/// are kept, with U+FFFD in place of the invalid sequences.
///
/// Formatting (`Display`, [`to_header_value`](Baggage::to_header_value)) applies the same limits
/// and writes no whitespace. A value given by [`insert`](Baggage::insert) is percent-encoded
/// where the W3C grammar requires it: `%`, and every byte that is not a `baggage-octet` (controls,
/// space, `"`, `,`, `;`, `\`, non-ASCII); `=` and the other visible ASCII characters are written
/// as they are. A member read from a header and not replaced since is written back with its value
/// exactly as received, so a list that was read within the limits is written within them.
///
/// # Examples
///
/// ```
/// use contextvars::tower::Baggage;
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
    /// assert!(contextvars::tower::Baggage::new().is_empty());
    /// ```
    pub const fn new() -> Baggage {
        Baggage {
            members: Vec::new(),
        }
    }

    /// Parses one `baggage` header value. Never fails; see the type's docs.
    ///
    /// ```
    /// use contextvars::tower::Baggage;
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

    /// Parses every `baggage` header in `headers`, in order, as one list. Lines that are not
    /// visible ASCII (with spaces and tabs) are ignored.
    ///
    /// ```
    /// use contextvars::tower::Baggage;
    /// use http::{HeaderMap, HeaderValue};
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.append("baggage", HeaderValue::from_static("a=1"));
    /// headers.append("baggage", HeaderValue::from_bytes(b"b=\xff").unwrap());
    /// headers.append("baggage", HeaderValue::from_static("c=3"));
    /// let baggage = Baggage::from_headers(&headers);
    /// assert_eq!((baggage.get("a"), baggage.get("b"), baggage.get("c")), (Some("1"), None, Some("3")));
    /// ```
    pub fn from_headers(headers: &HeaderMap) -> Baggage {
        let mut baggage = Baggage::new();
        parse_headers(headers, |member| baggage.accept(member));
        baggage
    }

    /// The unregistered members that arrived with the current request and will be forwarded by
    /// the client side (empty outside a request).
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use contextvars::tower::{Baggage, ContextLayer};
    /// use tower::ServiceExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let app = Router::new()
    ///     .route("/", get(|| async { Baggage::forwarded().to_string() }))
    ///     .layer(ContextLayer::default());
    /// let request = http::Request::get("/").header("baggage", "k=v;p").body(axum::body::Body::empty()).unwrap();
    /// let body = axum::body::to_bytes(app.oneshot(request).await.unwrap().into_body(), 64).await.unwrap();
    /// assert_eq!(body, "k=v;p");
    /// # }
    /// ```
    pub fn forwarded() -> Baggage {
        FORWARDED.get().unwrap_or_default()
    }

    /// The decoded value of `key`, if present.
    ///
    /// ```
    /// assert_eq!(contextvars::tower::Baggage::parse("a=%2C").get("a"), Some(","));
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
    /// let mut baggage = contextvars::tower::Baggage::parse("a=1;p");
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
    /// let mut baggage = contextvars::tower::Baggage::parse("a=1,b=2");
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
    /// let baggage = contextvars::tower::Baggage::parse("a=1,b=2");
    /// let keys: Vec<&str> = baggage.iter().map(|m| m.key()).collect();
    /// assert_eq!(keys, ["a", "b"]);
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, BaggageMember> {
        self.members.iter()
    }

    /// The number of members.
    ///
    /// ```
    /// assert_eq!(contextvars::tower::Baggage::parse("a=1,b=2").len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members.
    ///
    /// ```
    /// assert!(contextvars::tower::Baggage::parse(",,").is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The header value, or `None` when there is nothing to send.
    ///
    /// ```
    /// let baggage = contextvars::tower::Baggage::parse("a=1");
    /// assert_eq!(baggage.to_header_value().unwrap(), "a=1");
    /// ```
    pub fn to_header_value(&self) -> Option<HeaderValue> {
        self.write().finish()
    }

    fn write(&self) -> Writer {
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
    fn push_received(&mut self, member: RawMember<'_>) {
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

    fn member(&self, key: &str) -> Option<&BaggageMember> {
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
struct RawMember<'a> {
    key: &'a str,
    value: Cow<'a, str>,
    encoded: &'a str,
    properties: Cow<'a, str>,
}

impl<'a> RawMember<'a> {
    /// The value as written, when encoding the decoded value would not give it back (needless or
    /// lowercase escapes, escapes of bytes that are not UTF-8).
    fn escaped(&self) -> Option<&'a str> {
        let Cow::Owned(value) = &self.value else {
            return None; // no escapes at all
        };
        let mut rest = self.encoded;
        for chunk in utf8_percent_encode(value, VALUE_ESCAPES) {
            match rest.strip_prefix(chunk) {
                Some(after) => rest = after,
                None => return Some(self.encoded),
            }
        }
        (!rest.is_empty()).then_some(self.encoded)
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
fn parse_headers(headers: &HeaderMap, mut f: impl FnMut(RawMember<'_>)) {
    let mut budget = Budget::default();
    for line in headers.get_all(BAGGAGE) {
        if budget.done {
            return;
        }
        // `to_str` accepts exactly visible ASCII, space and tab: anything else (non-UTF-8
        // included) makes the whole line unreadable, and it is skipped.
        if let Ok(line) = line.to_str() {
            parse_line(line, &mut budget, &mut f);
        }
    }
}

/// Reads one line, which starts where the previous lines and the `,` joining it to them end
/// (an empty line too takes its `,`).
fn parse_line(line: &str, budget: &mut Budget, mut f: impl FnMut(RawMember<'_>)) {
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

/// Decodes a value's `%` escapes. A `%` not followed by two hex digits makes the member
/// malformed (`None`); decoded bytes that are not UTF-8 become U+FFFD, as the spec requires.
fn percent_decode(value: &str) -> Option<Cow<'_, str>> {
    if !value.contains('%') {
        return Some(Cow::Borrowed(value)); // already text: nothing to check or decode
    }
    let bytes = value.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    // Decoding only shrinks: one allocation, of the encoded length.
    let mut decoded = Vec::with_capacity(value.len());
    decoded.extend(percent_decode_str(value));
    Some(Cow::Owned(String::from_utf8(decoded).unwrap_or_else(
        |invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned(),
    )))
}

/// What the W3C grammar does not let a value hold as is: every byte that is not a
/// `baggage-octet` (percent-encoding escapes the non-ASCII ones itself), and `%` so that decoding
/// gives the value back. `=` is a `baggage-octet` (base64 padding) and is written as is.
const VALUE_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// Builds a `baggage` header value within the limits, skipping keys already written.
#[derive(Default)]
struct Writer {
    text: String,
    members: usize,
    keys: Vec<Box<str>>,
}

impl Writer {
    /// Writes a member unless it would break a limit or its key was written already: its value
    /// `encoded` as received if given, else percent-encoded from `value`.
    fn member(&mut self, key: &str, value: &str, encoded: Option<&str>, properties: &str) {
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
            None => self.text.extend(utf8_percent_encode(value, VALUE_ESCAPES)),
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

    fn finish(self) -> Option<HeaderValue> {
        if self.text.is_empty() {
            return None;
        }
        // Only visible ASCII was written: this cannot fail.
        HeaderValue::from_str(&self.text).ok()
    }
}

// ---------------------------------------------------------------------------------------------
// Propagation: what travels, shared by both sides.

type Extract = dyn Fn(&str, Context) -> Result<Context, Context> + Send + Sync;
type Inject = dyn Fn(&Context, &mut dyn FnMut(&str)) + Send + Sync;

struct Registered {
    key: Box<str>,
    extract: Box<Extract>,
    inject: Box<Inject>,
}

struct Config {
    request_id_header: HeaderName,
    request_id_var: &'static ContextVar<String>,
    max_request_id_len: usize,
    registered: Vec<Registered>,
}

/// What crosses the network: the request id's header and variable, and which context variables
/// travel as which baggage keys. Built once with [`Propagation::builder`], cheap to clone, and
/// shared by the server ([`ContextLayer`]) and the client ([`ClientContextLayer`],
/// [`inject_headers_with`]) so both sides agree.
///
/// # Examples
///
/// ```
/// use contextvars::tower::{ClientContextLayer, ContextLayer, Propagation};
/// use contextvars::ContextVar;
///
/// static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
/// static USER_ID: ContextVar<u64> = ContextVar::new("user_id").with_display();
///
/// let propagation = Propagation::builder()
///     .baggage_str(&TENANT, "tenant")
///     .baggage(&USER_ID, "user.id", |s| s.parse().ok())
///     .build();
/// let server = ContextLayer::new(propagation.clone());
/// let client = ClientContextLayer::new(propagation);
/// # let _ = (server, client);
/// ```
#[derive(Clone)]
pub struct Propagation {
    config: Arc<Config>,
}

impl fmt::Debug for Propagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.config.registered.iter().map(|r| &*r.key).collect();
        f.debug_struct("Propagation")
            .field("request_id_header", &self.config.request_id_header)
            .field("request_id_var", &self.config.request_id_var.name())
            .field("max_request_id_len", &self.config.max_request_id_len)
            .field("baggage_keys", &keys)
            .finish()
    }
}

impl Default for Propagation {
    /// `x-request-id` into [`REQUEST_ID`], no registered baggage keys (all members forwarded).
    fn default() -> Propagation {
        Propagation::builder().build()
    }
}

impl Propagation {
    /// Starts a configuration: `x-request-id` into [`REQUEST_ID`], ids up to 128 bytes, no
    /// registered baggage keys.
    ///
    /// ```
    /// let propagation = contextvars::tower::Propagation::builder().build();
    /// # let _ = propagation;
    /// ```
    pub fn builder() -> PropagationBuilder {
        PropagationBuilder {
            config: Config {
                request_id_header: HeaderName::from_static(DEFAULT_REQUEST_ID_HEADER),
                request_id_var: &REQUEST_ID,
                max_request_id_len: DEFAULT_MAX_REQUEST_ID_LEN,
                registered: Vec::new(),
            },
        }
    }

    /// The context a request brings: a fresh context with the request id (from the header if
    /// valid, else from `make_id`) and the baggage. Also normalizes the request: the id is
    /// written into its header and extensions. Returns the id to echo.
    fn extract<B, M: MakeRequestId>(
        &self,
        request: &mut Request<B>,
        make_id: &mut M,
    ) -> (Context, Option<HeaderValue>) {
        let config = &*self.config;
        let mut ctx = Context::new();

        let mut id = request
            .headers()
            .get(&config.request_id_header)
            .filter(|v| v.len() <= config.max_request_id_len && visible_ascii(v))
            .cloned();
        if id.is_none() {
            id = make_id
                .make_request_id(request)
                .map(RequestId::into_header_value)
                .filter(visible_ascii);
            if let Some(id) = &id {
                request
                    .headers_mut()
                    .insert(config.request_id_header.clone(), id.clone());
            } else {
                request.headers_mut().remove(&config.request_id_header);
            }
        }
        if let Some(id) = &id {
            if let Ok(text) = id.to_str() {
                ctx = ctx.with_value(config.request_id_var, text.to_owned());
            }
            request.extensions_mut().insert(RequestId::new(id.clone()));
        }

        // The member limit counts distinct keys accepted: a registered member counts once its
        // value has parsed, a later member of an accepted key replaces its value without counting
        // again, and one whose value does not parse leaves the earlier value in place.
        let mut forwarded = Baggage::new();
        let mut as_received = Baggage::new();
        let mut parsed = vec![false; config.registered.len()];
        let mut kept = 0;
        parse_headers(request.headers(), |member| {
            match config.registered.iter().position(|r| *r.key == *member.key) {
                Some(index) => {
                    if !parsed[index] && kept >= MAX_BAGGAGE_MEMBERS {
                        return;
                    }
                    let registered = &config.registered[index];
                    if let Ok(next) = (registered.extract)(&member.value, ctx.clone()) {
                        ctx = next;
                        if member.escaped().is_some() {
                            as_received.push_received(member);
                        } else {
                            as_received.remove(member.key);
                        }
                        if !parsed[index] {
                            parsed[index] = true;
                            kept += 1;
                        }
                    }
                }
                None => {
                    let known = forwarded.get(member.key).is_some();
                    if known || kept < MAX_BAGGAGE_MEMBERS {
                        forwarded.push_received(member);
                        if !known {
                            kept += 1;
                        }
                    }
                }
            }
        });
        if !forwarded.is_empty() {
            ctx = ctx.with_value(&FORWARDED, forwarded);
        }
        if !as_received.is_empty() {
            ctx = ctx.with_value(&REGISTERED_AS_RECEIVED, as_received);
        }
        (ctx, id)
    }

    /// Writes `ctx` into outgoing headers.
    fn inject(&self, ctx: &Context, headers: &mut HeaderMap) {
        let config = &*self.config;
        if let Some(id) = ctx.get_ref(config.request_id_var) {
            if let Ok(value) = HeaderValue::from_str(id) {
                headers.insert(config.request_id_header.clone(), value);
            }
        }
        let mut out = Writer::default();
        let as_received = ctx.get_ref(&REGISTERED_AS_RECEIVED);
        for registered in &config.registered {
            (registered.inject)(ctx, &mut |value| {
                // A value that formats to what was received goes out as it came in.
                let encoded = as_received
                    .and_then(|received| received.member(&registered.key))
                    .filter(|received| *received.value == *value)
                    .and_then(|received| received.encoded.as_deref());
                out.member(&registered.key, value, encoded, "");
            });
        }
        if let Some(forwarded) = ctx.get_ref(&FORWARDED) {
            for m in forwarded {
                out.member(&m.key, &m.value, m.encoded.as_deref(), &m.properties);
            }
        }
        if out.text.is_empty() {
            return;
        }
        // Members the caller put there themselves are kept after ours.
        if headers.contains_key(BAGGAGE) {
            parse_headers(headers, |m| {
                out.member(m.key, &m.value, m.escaped(), &m.properties)
            });
        }
        if let Some(value) = out.finish() {
            headers.insert(BAGGAGE, value);
        }
    }
}

/// Configures a [`Propagation`]; see [`Propagation::builder`].
///
/// # Examples
///
/// ```
/// use contextvars::tower::Propagation;
/// use contextvars::ContextVar;
///
/// static CORRELATION_ID: ContextVar<String> = ContextVar::new("correlation_id").with_display();
///
/// let propagation = Propagation::builder()
///     .request_id_header(http::HeaderName::from_static("x-correlation-id"))
///     .request_id_var(&CORRELATION_ID)
///     .max_request_id_len(64)
///     .build();
/// # let _ = propagation;
/// ```
pub struct PropagationBuilder {
    config: Config,
}

impl fmt::Debug for PropagationBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PropagationBuilder").finish_non_exhaustive()
    }
}

impl PropagationBuilder {
    /// The header the request id is read from, echoed on and sent in (default `x-request-id`).
    ///
    /// ```
    /// let propagation = contextvars::tower::Propagation::builder()
    ///     .request_id_header(http::HeaderName::from_static("x-correlation-id"))
    ///     .build();
    /// # let _ = propagation;
    /// ```
    pub fn request_id_header(mut self, name: HeaderName) -> PropagationBuilder {
        self.config.request_id_header = name;
        self
    }

    /// The variable the request id is set into and sent from (default [`REQUEST_ID`]).
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// static TRACE_ID: ContextVar<String> = ContextVar::new("trace_id").with_display();
    ///
    /// let propagation = contextvars::tower::Propagation::builder().request_id_var(&TRACE_ID).build();
    /// # let _ = propagation;
    /// ```
    pub fn request_id_var(mut self, var: &'static ContextVar<String>) -> PropagationBuilder {
        self.config.request_id_var = var;
        self
    }

    /// The longest request id accepted from a request, in bytes (default 128); a longer one is
    /// replaced by a generated id. Generated ids are not held to it (only to being visible
    /// ASCII), so a short limit cannot leave requests without an id.
    ///
    /// ```
    /// let propagation = contextvars::tower::Propagation::builder().max_request_id_len(36).build();
    /// # let _ = propagation;
    /// ```
    pub fn max_request_id_len(mut self, len: usize) -> PropagationBuilder {
        self.config.max_request_id_len = len;
        self
    }

    /// Carries `var` as the baggage member `key`: received values are parsed with `parse`
    /// (`None` drops the member), sent values are formatted with `Display`.
    ///
    /// Registering a key again replaces the earlier registration.
    ///
    /// # Panics
    ///
    /// When `key` is not an HTTP token (the W3C Baggage key syntax).
    ///
    /// ```
    /// use contextvars::tower::Propagation;
    /// use contextvars::ContextVar;
    ///
    /// static USER_ID: ContextVar<u64> = ContextVar::new("user_id");
    ///
    /// let propagation = Propagation::builder().baggage(&USER_ID, "user.id", |s| s.parse().ok()).build();
    /// # let _ = propagation;
    /// ```
    #[track_caller]
    pub fn baggage<T>(
        self,
        var: &'static ContextVar<T>,
        key: &str,
        parse: impl Fn(&str) -> Option<T> + Send + Sync + 'static,
    ) -> PropagationBuilder
    where
        T: fmt::Display + Send + Sync + 'static,
    {
        self.baggage_with(var, key, parse, |value: &T| value.to_string())
    }

    /// Carries a `String` variable as the baggage member `key`, as is.
    ///
    /// # Panics
    ///
    /// When `key` is not an HTTP token.
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// static TENANT: ContextVar<String> = ContextVar::new("tenant");
    ///
    /// let propagation = contextvars::tower::Propagation::builder().baggage_str(&TENANT, "tenant").build();
    /// # let _ = propagation;
    /// ```
    #[track_caller]
    pub fn baggage_str(self, var: &'static ContextVar<String>, key: &str) -> PropagationBuilder {
        self.baggage_with(
            var,
            key,
            |s| Some(s.to_owned()),
            |value: &String| value.clone(),
        )
    }

    /// Carries `var` as the baggage member `key`, with your own `parse` and `format` (for types
    /// without `Display`, or a wire format of your own).
    ///
    /// # Panics
    ///
    /// When `key` is not an HTTP token.
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// #[derive(Debug, Clone, Copy, PartialEq)]
    /// enum Plan { Free, Pro }
    ///
    /// static PLAN: ContextVar<Plan> = ContextVar::new("plan");
    ///
    /// let propagation = contextvars::tower::Propagation::builder()
    ///     .baggage_with(
    ///         &PLAN,
    ///         "plan",
    ///         |s| match s { "free" => Some(Plan::Free), "pro" => Some(Plan::Pro), _ => None },
    ///         |plan| match plan { Plan::Free => "free".into(), Plan::Pro => "pro".into() },
    ///     )
    ///     .build();
    /// # let _ = propagation;
    /// ```
    #[track_caller]
    pub fn baggage_with<T>(
        mut self,
        var: &'static ContextVar<T>,
        key: &str,
        parse: impl Fn(&str) -> Option<T> + Send + Sync + 'static,
        format: impl Fn(&T) -> String + Send + Sync + 'static,
    ) -> PropagationBuilder
    where
        T: Send + Sync + 'static,
    {
        assert!(is_token(key), "baggage key {key:?} is not an HTTP token");
        self.config.registered.retain(|r| &*r.key != key);
        self.config.registered.push(Registered {
            key: key.into(),
            extract: Box::new(move |value, ctx| match parse(value) {
                Some(parsed) => Ok(ctx.with_value(var, parsed)),
                None => Err(ctx),
            }),
            inject: Box::new(move |ctx, write| {
                if let Some(value) = ctx.get_ref(var) {
                    write(&format(value));
                }
            }),
        });
        self
    }

    /// The finished configuration.
    ///
    /// ```
    /// let propagation = contextvars::tower::Propagation::builder().build();
    /// # let _ = propagation;
    /// ```
    pub fn build(self) -> Propagation {
        Propagation {
            config: Arc::new(self.config),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request ids.

/// A usable request id: non-empty, visible ASCII only.
fn visible_ascii(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.iter().all(|b| (0x21..=0x7E).contains(b))
}

/// The default request id generator: a random 64-bit prefix chosen once per process, then a
/// counter, as 32 lowercase hex digits. Unique within the process and, with overwhelming
/// likelihood, across processes; cheaper than a UUID (no system call per request). Not a
/// secret: ids are predictable from one another.
///
/// Any other tower-http [`MakeRequestId`] can replace it ([`ContextLayer::make_request_id`]).
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
        static PREFIX: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(|| RandomState::new().hash_one(std::process::id()));
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let text = format!("{prefix:016x}{n:016x}");
        HeaderValue::from_str(&text).ok().map(RequestId::new)
    }
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
    make_id: M,
}

impl Default for ContextLayer {
    /// A layer with the default [`Propagation`] and the default id generator: the same as
    /// `ContextLayer::new(Propagation::default())`. The request id travels in `x-request-id` and
    /// is set into [`REQUEST_ID`]; no baggage key is read into a variable, and every `baggage`
    /// member is kept to be forwarded ([`Baggage::forwarded`]); missing ids are generated by
    /// [`MakeUniqueRequestId`].
    ///
    /// ```
    /// use contextvars::tower::{Baggage, ContextLayer, REQUEST_ID};
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let service = ContextLayer::default().layer(service_fn(|_: http::Request<()>| async {
    ///     let seen = format!("{:?} {}", REQUEST_ID.get(), Baggage::forwarded());
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(seen))
    /// }));
    /// let request = http::Request::builder()
    ///     .header("x-request-id", "req-1")
    ///     .header("baggage", "tenant=acme")
    ///     .body(())
    ///     .unwrap();
    /// let response = service.oneshot(request).await.unwrap();
    /// assert_eq!(response.into_body(), r#"Some("req-1") tenant=acme"#);
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
            propagation,
            make_id: MakeUniqueRequestId,
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
            make_id,
        }
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
            make_id: self.make_id.clone(),
        }
    }
}

/// The service made by [`ContextLayer`].
///
/// # Examples
///
/// ```
/// use contextvars::tower::{ContextLayer, REQUEST_ID};
/// use tower::{service_fn, Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let service = ContextLayer::default().layer(service_fn(|_: http::Request<()>| async {
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
    make_id: M,
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
        let (ctx, id) = self.propagation.extract(&mut request, &mut self.make_id);
        // OpenTelemetry hook (feature `opentelemetry`): the request's trace context and baggage.
        #[cfg(feature = "opentelemetry")]
        let (ctx, otel) = otel_hooks::extract(&self.propagation, ctx, request.headers());
        let inner = &mut self.inner;
        #[cfg(feature = "opentelemetry")]
        let future = {
            let _otel = otel.clone().attach();
            crate::opentelemetry::WithOtelContext::new(ctx.run(|| inner.call(request)), otel)
        };
        #[cfg(not(feature = "opentelemetry"))]
        let future = ctx.run(|| inner.call(request));
        ResponseFuture {
            inner: future.with_context(ctx),
            echo: id.map(|id| (self.propagation.config.request_id_header.clone(), id)),
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
        inner: WithContext<OtelScoped<F>>,
        echo: Option<(HeaderName, HeaderValue)>,
    }
}

/// The request future as the layer runs it: with the `opentelemetry` feature, inside the
/// request's OTel context too (OpenTelemetry hook).
#[cfg(feature = "opentelemetry")]
type OtelScoped<F> = crate::opentelemetry::WithOtelContext<F>;
#[cfg(not(feature = "opentelemetry"))]
type OtelScoped<F> = F;

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
/// request id from [`REQUEST_ID`] into `x-request-id`, and the forwarded baggage into `baggage`.
/// For clients that are not tower services (reqwest, ureq...).
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
///
/// # Examples
///
/// ```
/// use contextvars::tower::{inject_headers_with, Propagation};
/// use contextvars::ContextVar;
///
/// static TENANT: ContextVar<String> = ContextVar::new("tenant");
///
/// let propagation = Propagation::builder().baggage_str(&TENANT, "tenant").build();
/// let mut headers = http::HeaderMap::new();
/// TENANT.scope("acme corp".into(), || inject_headers_with(&propagation, &mut headers));
/// assert_eq!(headers["baggage"], "tenant=acme%20corp");
/// ```
pub fn inject_headers_with(propagation: &Propagation, headers: &mut HeaderMap) {
    let ctx = Context::current();
    propagation.inject(&ctx, headers);
    // OpenTelemetry hook (feature `opentelemetry`): trace context, and OTel baggage merged.
    #[cfg(feature = "opentelemetry")]
    otel_hooks::inject(&ctx, headers);
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
        ClientContextLayer { propagation }
    }
}

impl<S> Layer<S> for ClientContextLayer {
    type Service = ClientContextService<S>;

    fn layer(&self, inner: S) -> ClientContextService<S> {
        ClientContextService {
            inner,
            propagation: self.propagation.clone(),
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
        let ctx = Context::current();
        self.propagation.inject(&ctx, request.headers_mut());
        // OpenTelemetry hook (feature `opentelemetry`): trace context, and OTel baggage merged.
        #[cfg(feature = "opentelemetry")]
        otel_hooks::inject(&ctx, request.headers_mut());
        self.inner.call(request)
    }
}

// ---------------------------------------------------------------------------------------------
// OpenTelemetry hooks (feature `opentelemetry`): the glue between the HTTP headers and the
// transport-neutral helpers of `contextvars::opentelemetry`, which hold the rules.

#[cfg(feature = "opentelemetry")]
mod otel_hooks {
    use super::{Baggage, HeaderMap, HeaderName, HeaderValue, Propagation, BAGGAGE};
    use crate::opentelemetry::{self as otel, OutgoingBaggage};
    use crate::Context;

    /// The request's OTel context (trace context, and the baggage members our side accepted),
    /// and our context with those members remembered.
    pub(super) fn extract(
        propagation: &Propagation,
        ctx: Context,
        headers: &HeaderMap,
    ) -> (Context, ::opentelemetry::Context) {
        // What our side accepted is what it would send on: the registered variables that
        // parsed and the forwarded members.
        let accepted = if headers.contains_key(BAGGAGE) {
            let mut ours = HeaderMap::new();
            propagation.inject(&ctx, &mut ours);
            Baggage::from_headers(&ours)
        } else {
            Baggage::new()
        };
        otel::extract_remote(
            ctx,
            |name| headers.get(name).and_then(|value| value.to_str().ok()),
            || headers.keys().map(HeaderName::as_str).collect(),
            accepted
                .iter()
                .map(|m| (m.key(), m.value(), m.properties())),
        )
    }

    /// Writes the current OTel context's trace context, and merges its baggage.
    pub(super) fn inject(ctx: &Context, headers: &mut HeaderMap) {
        otel::inject_current(|name, value| {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.insert(name, value);
            }
        });
        if let Some(baggage) = otel::merge_baggage(ctx, || Baggage::from_headers(headers)) {
            match baggage.to_header_value() {
                Some(value) => headers.insert(BAGGAGE, value),
                None => headers.remove(BAGGAGE),
            };
        }
    }

    impl OutgoingBaggage for Baggage {
        fn get(&self, key: &str) -> Option<&str> {
            Baggage::get(self, key)
        }

        fn set(&mut self, key: &str, value: &str) {
            self.insert(key, value);
        }
    }
}
