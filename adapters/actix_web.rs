//! [actix-web](https://docs.rs/actix-web) 4: a fresh context for every request with its request
//! id and W3C Baggage, and spawns on actix's own paths that keep it (feature `actix-web`).
//!
//! # What it propagates
//!
//! [`ContextMiddleware`] (an actix-web [`Transform`], for `App::wrap`, `Scope::wrap` or
//! `Resource::wrap`) runs each request's inner service (its `call` and the whole response
//! future, including its drop) inside a context built from nothing but that request's headers,
//! by [`Propagation::extract_with`]: the rules of [`crate::propagation`], the same code the
//! `tower` feature's `ContextLayer` runs (that feature is not needed).
//!
//! - **A fresh context.** Nothing from the worker thread, the connection or an earlier request
//!   on the same connection is visible: the context starts from
//!   [`Context::new`](crate::Context::new).
//! - **The request id**, read from the `x-request-id` header (configurable on the
//!   [`Propagation`]) or generated when the header is missing or invalid (by
//!   [`unique_request_id`], or your generator: [`ContextMiddleware::make_request_id`]), is set
//!   into [`REQUEST_ID`](crate::propagation::REQUEST_ID) (or the variable configured on the
//!   [`Propagation`]). A generated id is also written into the request's header, in place of the
//!   bad ones, so extractors that read the header see the id the context has. The id is echoed
//!   on the response unless the inner service already set that header.
//! - **W3C Baggage.** Members whose keys were registered on the [`Propagation`] set their
//!   variables; the other members are kept to be forwarded
//!   ([`Baggage::forwarded`](crate::propagation::Baggage::forwarded)) by whatever sends the next
//!   request: [`Propagation::inject`] writes into actix's [`HeaderMap`] (awc's
//!   `ClientRequest::headers_mut`), `http::HeaderMap`s (feature `tower`) and any
//!   [`Injector`].
//!
//! **Trust.** All of the above is for [trusted](crate::propagation::Trust) callers. From an
//! untrusted one (the [`Propagation`]'s default), the request runs under a fresh id (the
//! caller's, if valid, is kept in
//! [`CALLER_REQUEST_ID`](crate::propagation::CALLER_REQUEST_ID) and the generated id is the one
//! written into the request and echoed), only baggage keys allowed from untrusted callers set
//! variables, and nothing is kept to be forwarded; see
//! [Security](crate::propagation#security). One server for both sides decides per request with
//! [`ContextMiddleware::trust_callers_if`] (a header your gateway sets, the peer address).
//!
//! Bad input never fails the request and never panics, with exactly the results of the
//! [bad-input table](crate::propagation#bad-input): a bad request id is replaced by a generated
//! one and never echoed, malformed or oversized baggage members are dropped and the others kept.
//! The tests replay the tower layer's bad-input rows against a real actix-web server.
//!
//! Work the handler starts keeps the request's context when it goes through this module:
//!
//! - [`spawn_with_context`]: `actix_web::rt::spawn` (the same as `actix_rt::spawn`, a tokio
//!   `spawn_local` on the worker's own thread), for `!Send` futures too. The task keeps the
//!   context after the response has been sent.
//! - [`block_with_context`]: `actix_web::web::block`, the blocking pool, with the closure run
//!   inside the caller's context.
//!
//! With the `tracing` feature, both also carry the `tracing::Span` current at the call.
//!
//! With the `opentelemetry` feature, a trusted caller's W3C Trace Context (`traceparent`,
//! `tracestate`) is extracted into a fresh OpenTelemetry context, current around the service's
//! `call` and every poll of the response future (an untrusted caller's is not read: the request
//! starts a new trace), and the baggage accepted is mirrored in OTel's `Baggage`; see the
//! `contextvars::opentelemetry` module.
//!
//! # What bypasses it
//!
//! | Path | What it sees | Do instead |
//! |---|---|---|
//! | `actix_web::rt::spawn` / `actix_rt::spawn` / `tokio::spawn` / `tokio::task::spawn_local` called directly | the worker's (empty) context | [`spawn_with_context`] |
//! | `web::block` / `actix_rt::task::spawn_blocking` / `tokio::task::spawn_blocking` called directly | the blocking thread's (empty) context | [`block_with_context`] |
//! | `Arbiter::spawn`, `Arbiter::spawn_fn`, `ArbiterHandle::spawn`: the future or closure runs on another arbiter's thread | that thread's (empty) context | wrap it: `arbiter.spawn(fut.with_current_context())`, `arbiter.spawn_fn(Context::current().wrap(f))` |
//! | actors (actix): a message's handler runs in the actor's own task | the actor task's context, normally empty | send the values in the message, or run the handler's work inside `Context::run` with a context sent in it |
//! | routes and default services outside the middleware (an `App` without `.wrap(..)`, a `Scope` whose sibling is wrapped) | the worker's (empty) context | wrap the `App` itself |
//! | streaming response bodies (`HttpResponse::streaming`): the body is polled by the connection after the response future has returned | the worker's (empty) context | capture the values before building the stream, or build it with [`with_current_context`](crate::ContextExt::with_current_context): `HttpResponse::Ok().streaming(stream.with_current_context())` |
//! | middleware registered *after* this one with `.wrap(..)` (actix runs the last registered first, outside the earlier ones) | the worker's (empty) context | register [`ContextMiddleware`] last, so it runs first |
//! | `poll_ready` of the inner service | the caller's context: no request exists yet | — |
//!
//! A `set` in any of those places, outside every frame of this crate, is refused, as on tokio:
//! actix's workers are tokio current-thread runtimes whose request handling runs in tokio tasks,
//! and `web::block` jobs run on tokio's blocking pool, so the value would otherwise stay on the
//! thread for the next request. Inside the middleware's request future, and inside the helpers
//! above, `set` works as in any frame: it changes that request's (or that task's) context only.
//! The future given to `System::block_on` (or `#[actix_web::main]`'s body) is not a task: as with
//! tokio's `block_on`, it runs on the thread's own context.
//!
//! # Examples
//!
//! ```
//! use actix_web::{web, App, HttpResponse};
//! use contextvars::actix_web::{block_with_context, spawn_with_context, ContextMiddleware};
//! use contextvars::propagation::{Propagation, Trust, REQUEST_ID};
//!
//! async fn create_order() -> HttpResponse {
//!     // Runs after the response has been sent, still with the request's id.
//!     spawn_with_context(async { println!("notify for {:?}", REQUEST_ID.get()) });
//!     let total = block_with_context(|| format!("total for {:?}", REQUEST_ID.get())).await.unwrap();
//!     HttpResponse::Ok().body(total)
//! }
//!
//! # #[actix_web::main]
//! # async fn main() {
//! // A service behind the company's gateway: it trusts its callers' request ids.
//! let internal = Propagation::builder().inbound(Trust::Trusted).build();
//! let app = actix_web::test::init_service(
//!     App::new()
//!         .route("/orders", web::post().to(create_order))
//!         .wrap(ContextMiddleware::new(internal)),
//! )
//! .await;
//! let request = actix_web::test::TestRequest::post()
//!     .uri("/orders")
//!     .insert_header(("x-request-id", "req-abc"))
//!     .to_request();
//! let response = actix_web::test::call_service(&app, request).await;
//! assert_eq!(response.headers().get("x-request-id").unwrap(), "req-abc");
//! let body = actix_web::test::read_body(response).await;
//! assert_eq!(body, r#"total for Some("req-abc")"#);
//! # }
//! ```
//!
//! [`Transform`]: ::actix_web::dev::Transform

use std::fmt;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use ::actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use ::actix_web::error::BlockingError;
use ::actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use ::actix_web::rt::task::JoinHandle;
use pin_project_lite::pin_project;

use crate::propagation::{
    unique_request_id, ExtractedFuture, Extractor, Injector, Propagation, Trust,
    DEFAULT_REQUEST_ID_HEADER,
};

/// Generates a request id for a request whose own is missing or invalid.
type MakeId = dyn Fn(&ServiceRequest) -> Option<String> + Send + Sync;

/// An actix-web middleware that runs every request in a fresh context with its request id and
/// baggage; see the [module docs](self).
///
/// Register it last (`.wrap(..)` calls run from the last to the first), so that every other
/// middleware runs inside the request's context too.
///
/// # Examples
///
/// ```
/// use actix_web::{web, App, HttpServer};
/// use contextvars::actix_web::ContextMiddleware;
/// use contextvars::propagation::{Propagation, REQUEST_ID};
/// use contextvars::ContextVar;
///
/// static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
///
/// let propagation = Propagation::builder().baggage_str(&TENANT, "tenant").build();
/// let server = HttpServer::new(move || {
///     App::new()
///         .route("/", web::get().to(|| async { REQUEST_ID.get().unwrap_or_default() }))
///         .wrap(ContextMiddleware::new(propagation.clone()))
/// });
/// # let _ = server;
/// ```
#[derive(Clone)]
pub struct ContextMiddleware {
    propagation: Propagation,
    header: HeaderName,
    make_id: Arc<MakeId>,
    trust: Option<Arc<TrustCaller>>,
}

/// Decides whether a request's caller is trusted: [`ContextMiddleware::trust_callers_if`].
type TrustCaller = dyn Fn(&ServiceRequest) -> bool + Send + Sync;

impl fmt::Debug for ContextMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextMiddleware")
            .field("propagation", &self.propagation)
            .finish_non_exhaustive()
    }
}

impl Default for ContextMiddleware {
    /// A middleware with the default [`Propagation`], for an edge service: the request id
    /// travels in `x-request-id` and is set into [`REQUEST_ID`](crate::propagation::REQUEST_ID);
    /// callers are untrusted, so every request runs under an id generated by
    /// [`unique_request_id`] (the caller's is kept in
    /// [`CALLER_REQUEST_ID`](crate::propagation::CALLER_REQUEST_ID)) and no `baggage` member is
    /// read or forwarded.
    ///
    /// ```
    /// let middleware = contextvars::actix_web::ContextMiddleware::default();
    /// # let _ = middleware;
    /// ```
    fn default() -> ContextMiddleware {
        ContextMiddleware::new(Propagation::default())
    }
}

impl ContextMiddleware {
    /// A middleware with this configuration (shared with the tower layers or any other
    /// integration, if you have some) and the default id generator, [`unique_request_id`].
    ///
    /// ```
    /// use contextvars::actix_web::ContextMiddleware;
    /// use contextvars::propagation::Propagation;
    ///
    /// let middleware = ContextMiddleware::new(Propagation::builder().max_request_id_len(64).build());
    /// # let _ = middleware;
    /// ```
    pub fn new(propagation: Propagation) -> ContextMiddleware {
        // The builder accepts HTTP tokens only, which are all valid header names.
        let header = HeaderName::try_from(propagation.request_id_header())
            .unwrap_or(HeaderName::from_static(DEFAULT_REQUEST_ID_HEADER));
        ContextMiddleware {
            propagation,
            header,
            make_id: Arc::new(|_| Some(unique_request_id())),
            trust: None,
        }
    }

    /// Decides for each request whether its caller is trusted, in place of the propagation's
    /// [`inbound`](crate::propagation::PropagationBuilder::inbound) setting: one server for
    /// both the public and your own services. `trusted` sees the request (headers, peer
    /// address, connection info). Trust a header only if your gateway sets it and strips it
    /// from what strangers send.
    ///
    /// ```
    /// use actix_web::{web, App};
    /// use contextvars::actix_web::ContextMiddleware;
    /// use contextvars::propagation::{CALLER_REQUEST_ID, REQUEST_ID};
    ///
    /// # #[actix_web::main]
    /// # async fn main() {
    /// let middleware = ContextMiddleware::default()
    ///     .trust_callers_if(|request| request.headers().contains_key("x-from-gateway"));
    /// let app = actix_web::test::init_service(
    ///     App::new()
    ///         .route("/", web::get().to(|| async {
    ///             format!("{:?} {:?}", REQUEST_ID.get(), CALLER_REQUEST_ID.get())
    ///         }))
    ///         .wrap(middleware),
    /// )
    /// .await;
    /// let from_gateway = actix_web::test::TestRequest::get()
    ///     .insert_header(("x-request-id", "gw-1"))
    ///     .insert_header(("x-from-gateway", "1"))
    ///     .to_request();
    /// let body = actix_web::test::call_and_read_body(&app, from_gateway).await;
    /// assert_eq!(body, r#"Some("gw-1") None"#);
    /// let from_outside = actix_web::test::TestRequest::get()
    ///     .insert_header(("x-request-id", "gw-1"))
    ///     .to_request();
    /// let body = actix_web::test::call_and_read_body(&app, from_outside).await;
    /// assert!(body.ends_with(br#" Some("gw-1")"#));
    /// assert!(!body.starts_with(br#"Some("gw-1")"#));
    /// # }
    /// ```
    pub fn trust_callers_if(
        self,
        trusted: impl Fn(&ServiceRequest) -> bool + Send + Sync + 'static,
    ) -> ContextMiddleware {
        ContextMiddleware {
            trust: Some(Arc::new(trusted)),
            ..self
        }
    }

    /// Generates missing or invalid request ids with `make_id`, which sees the request. An id
    /// it returns that is empty or not visible ASCII, or `None`, leaves the request without a
    /// request id (no variable set, no header echoed), as the module docs' table says.
    ///
    /// ```
    /// use contextvars::actix_web::ContextMiddleware;
    ///
    /// let middleware = ContextMiddleware::default().make_request_id(|request| {
    ///     Some(format!("{}-{}", request.method(), contextvars::propagation::unique_request_id()))
    /// });
    /// # let _ = middleware;
    /// ```
    pub fn make_request_id(
        self,
        make_id: impl Fn(&ServiceRequest) -> Option<String> + Send + Sync + 'static,
    ) -> ContextMiddleware {
        ContextMiddleware {
            make_id: Arc::new(make_id),
            ..self
        }
    }

    /// The configuration this middleware uses.
    ///
    /// ```
    /// let middleware = contextvars::actix_web::ContextMiddleware::default();
    /// assert_eq!(middleware.propagation().request_id_header(), "x-request-id");
    /// ```
    pub fn propagation(&self) -> &Propagation {
        &self.propagation
    }
}

impl<S, B> Transform<S, ServiceRequest> for ContextMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>>,
{
    type Response = ServiceResponse<B>;
    type Error = S::Error;
    type Transform = ContextMiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<ContextMiddlewareService<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ContextMiddlewareService {
            inner: service,
            middleware: self.clone(),
        }))
    }
}

/// The service made by [`ContextMiddleware`] around the inner service.
///
/// # Examples
///
/// ```
/// use actix_web::{web, App};
/// use contextvars::actix_web::ContextMiddleware;
/// use contextvars::propagation::{Propagation, Trust, REQUEST_ID};
///
/// # #[actix_web::main]
/// # async fn main() {
/// // `init_service` builds the `ContextMiddlewareService` around the app's router.
/// let internal = Propagation::builder().inbound(Trust::Trusted).build();
/// let app = actix_web::test::init_service(
///     App::new()
///         .route("/", web::get().to(|| async { REQUEST_ID.get().unwrap_or_default() }))
///         .wrap(ContextMiddleware::new(internal)),
/// )
/// .await;
/// let request = actix_web::test::TestRequest::get().insert_header(("x-request-id", "abc")).to_request();
/// let body = actix_web::test::call_and_read_body(&app, request).await;
/// assert_eq!(body, "abc");
/// # }
/// ```
#[derive(Debug)]
pub struct ContextMiddlewareService<S> {
    inner: S,
    middleware: ContextMiddleware,
}

impl<S, B> Service<ServiceRequest> for ContextMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>>,
{
    type Response = ServiceResponse<B>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&self, mut request: ServiceRequest) -> ResponseFuture<S::Future> {
        let ContextMiddleware {
            propagation,
            header,
            make_id,
            trust,
        } = &self.middleware;
        let decided;
        let propagation = match trust {
            Some(trusted) => {
                decided = propagation.with_inbound(Trust::from_bool(trusted(&request)));
                &decided
            }
            None => propagation,
        };
        let extracted = propagation.extract_with(request.headers(), || make_id(&request));
        // The request carries the id the context has: the one received, or the generated one
        // in place of a bad one (or none), also for extractors that read the header.
        let id = match (extracted.request_id(), extracted.received) {
            (Some(_), true) => request.headers().get(header).cloned(),
            (Some(id), false) => HeaderValue::from_str(id).ok(),
            (None, _) => None,
        };
        match &id {
            Some(id) if !extracted.received => {
                request.headers_mut().insert(header.clone(), id.clone());
            }
            Some(_) => {}
            None => {
                request.headers_mut().remove(header);
            }
        }
        // The service is called, and its future polled and dropped, inside all the request
        // brought (with `opentelemetry`, its OTel context too).
        let future = extracted.run(|| self.inner.call(request));
        ResponseFuture {
            inner: extracted.scope(future),
            echo: id.map(|id| (header.clone(), id)),
        }
    }
}

pin_project! {
    /// The response future of [`ContextMiddlewareService`]: the inner service's future, polled
    /// and dropped inside the request's context, which echoes the request id on the response.
    ///
    /// # Examples
    ///
    /// ```
    /// use actix_web::dev::{Service as _, Transform as _};
    /// use actix_web::test::{ok_service, TestRequest};
    /// use contextvars::actix_web::{ContextMiddleware, ResponseFuture};
    ///
    /// # #[actix_web::main]
    /// # async fn main() {
    /// let service = ContextMiddleware::default().new_transform(ok_service()).await.unwrap();
    /// let future: ResponseFuture<_> = service.call(TestRequest::default().to_srv_request());
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
    F: Future<Output = Result<ServiceResponse<B>, E>>,
{
    type Output = Result<ServiceResponse<B>, E>;

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
// Carriers: actix's header map (the `http` 0.2 types of actix-http).

/// Reads a [`Propagation`] from actix-web's headers: the request's (`ServiceRequest::headers`,
/// `HttpRequest::headers`) or a response's. Values that are not text (not visible ASCII, space
/// or tab) are skipped, as the bad-input rules require. [`ContextMiddleware`] uses it.
///
/// ```
/// use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
/// use contextvars::propagation::{Propagation, Trust, REQUEST_ID};
///
/// let mut headers = HeaderMap::new();
/// headers.insert(HeaderName::from_static("x-request-id"), HeaderValue::from_static("req-1"));
/// let context = Propagation::builder().inbound(Trust::Trusted).build().extract(&headers);
/// assert_eq!(context.get(&REQUEST_ID).as_deref(), Some("req-1"));
/// ```
impl Extractor for HeaderMap {
    fn get(&self, key: &str) -> Option<&str> {
        HeaderMap::get(self, key)?.to_str().ok()
    }

    fn get_all(&self, key: &str) -> Vec<&str> {
        HeaderMap::get_all(self, key)
            .filter_map(|value| value.to_str().ok())
            .collect()
    }

    fn keys(&self) -> Vec<&str> {
        HeaderMap::keys(self).map(HeaderName::as_str).collect()
    }
}

/// Writes a [`Propagation`] into actix-web's headers, for example those of an awc client request
/// (`ClientRequest::headers_mut`), so the request id and baggage go on to the next service.
///
/// ```
/// use actix_web::http::header::HeaderMap;
/// use contextvars::propagation::{Propagation, REQUEST_ID};
///
/// let mut headers = HeaderMap::new();
/// REQUEST_ID.scope("req-9".into(), || Propagation::default().inject(&mut headers));
/// assert_eq!(headers.get("x-request-id").unwrap(), "req-9");
/// ```
impl Injector for HeaderMap {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(key), HeaderValue::try_from(value)) {
            self.insert(name, value);
        }
    }

    fn existing(&self, key: &str) -> Vec<&str> {
        Extractor::get_all(self, key)
    }
}

// ---------------------------------------------------------------------------------------------
// Spawning on actix's own paths.

/// `actix_web::rt::spawn` (`actix_rt::spawn`) that runs the task inside a copy of the caller's
/// context: the request's, when called from a handler behind [`ContextMiddleware`].
///
/// Like `actix_web::rt::spawn`, the task runs on the current worker's thread (a tokio
/// `spawn_local`), so the future need not be `Send`. It keeps the context after the response
/// has been sent, and is dropped inside it. With the `tracing` feature it also runs inside the
/// caller's current span.
///
/// # Panics
///
/// Like `actix_web::rt::spawn`, panics when called outside an actix (or tokio `LocalSet`)
/// runtime.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use contextvars::actix_web::spawn_with_context;
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");
///
/// # #[actix_web::main]
/// # async fn main() {
/// let not_send = Rc::new(1);
/// let task = REQUEST_ID.scope("req-1", || spawn_with_context(async move { (*not_send, REQUEST_ID.get()) }));
/// let plain = REQUEST_ID.scope("req-1", || actix_web::rt::spawn(async { REQUEST_ID.get() }));
/// assert_eq!(task.await.unwrap(), (1, Some("req-1")));
/// assert_eq!(plain.await.unwrap(), None); // the plain spawn lost it
/// # }
/// ```
#[track_caller]
pub fn spawn_with_context<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    ::actix_web::rt::spawn(crate::capture::task(future))
}

/// `actix_web::web::block` that runs the closure on the blocking pool inside a copy of the
/// caller's context: the request's, when called from a handler behind [`ContextMiddleware`].
///
/// The closure is sent to the pool at the call (as `web::block` does), so the context is the one
/// current at the call, not at the first poll. Its result comes back through the returned
/// future; a panic in it as a [`BlockingError`], as with `web::block`. With the `tracing`
/// feature it also runs inside the caller's current span.
///
/// # Panics
///
/// Like `web::block`, panics when called outside an actix (or tokio) runtime.
///
/// # Examples
///
/// ```
/// use contextvars::actix_web::block_with_context;
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
///
/// fn load_order(order_id: u32) -> String {
///     format!("order {order_id} for {}", REQUEST_ID.get().unwrap_or_default())
/// }
///
/// # #[actix_web::main]
/// # async fn main() {
/// let job = REQUEST_ID.scope("req-7".into(), || block_with_context(|| load_order(3)));
/// assert_eq!(job.await.unwrap(), "order 3 for req-7");
/// # }
/// ```
#[track_caller]
pub fn block_with_context<F, R>(f: F) -> impl Future<Output = Result<R, BlockingError>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    ::actix_web::web::block(crate::capture::job(f))
}

/// actix's units of work, for the executor seam (`crate::executor`): a task or a blocking job of
/// a tokio runtime, which is what actix's workers and `web::block` run on, so that a `set` there
/// outside any frame is refused with or without the `tokio` feature.
pub(crate) struct Actix;

impl crate::executor::Executor for Actix {
    fn name(&self) -> &'static str {
        "actix-web"
    }

    fn in_unit_of_work(&self) -> bool {
        ::tokio::task::try_id().is_some()
    }
}
