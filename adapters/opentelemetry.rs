//! [OpenTelemetry](https://docs.rs/opentelemetry): its `Context` (current span, baggage, values)
//! follows the work into every spawn, and W3C Trace Context and baggage cross services over
//! every transport of [`crate::propagation`], within its trust boundaries (feature
//! `opentelemetry`, built against `opentelemetry` 0.33, the newest minor when this was written;
//! the SDK is not needed).
//!
//! # What it propagates
//!
//! Every spawn path of every adapter (`spawn_with_context` and its relatives on tokio,
//! async-std, smol, `futures` and async-task, the blocking pools, [`thread`](crate::thread), rayon's
//! entry points, [`JobHandle`](crate::JobHandle) jobs, `par_iter().with_current_context()`,
//! `#[preserve_context]`, the request futures of `contextvars::tower` and
//! `contextvars::actix_web`, and NATS's `ContextMessage::handle`) captures
//! [`opentelemetry::Context::current()`](::opentelemetry::Context::current) at the call, beside
//! this crate's context, and makes it current around every poll of the child (and while the child
//! is dropped), or for the whole closure. So a span started in a spawned task, a blocking job, a
//! rayon job or a thread is a child of the span that was current where it was spawned, and
//! [`Baggage`](::opentelemetry::baggage::Baggage) and values put there with OTel's own API
//! (`Context::current_with_value(..).attach()`) are visible inside it, exactly as with
//! OpenTelemetry's `fut.with_context(cx)` written on every spawn.
//!
//! It is captured by the same crate-private code as the context (and, with `tracing`, the
//! span), never stored in [`Context`](crate::Context): with the feature off nothing changes and
//! nothing is paid. OpenTelemetry's guard is `!Send`: it is attached inside each poll and
//! detached before the poll returns, never held across an `.await`.
//!
//! For a future of your own on another executor, [`OtelContextExt::with_current_context_and_otel`]
//! does what the spawn helpers do (without the span).
//!
//! # What bypasses it
//!
//! - The runtime's own spawns (`tokio::spawn`, `rayon::spawn`, ...) and
//!   [`ContextExt::with_current_context`], which carries
//!   this crate's context only, and likewise [`Context::wrap`](crate::Context::wrap); with
//!   `tracing`, `SpanContextExt::with_current_context_and_span` and `wrap_with_current_span`
//!   carry the context and the span only.
//! - tokio's automatic inheritance (`RuntimeBuilderExt::propagate_context`, `tokio_unstable`):
//!   it carries this crate's context, not the OTel context.
//! - A `tower` response body polled after the response future (see `contextvars::tower`).
//! - [`Propagation::extract`](crate::propagation::Propagation::extract) called directly, the
//!   `context` field of what [`Propagation::extract_with`](crate::propagation::Propagation::extract_with)
//!   returns, and NATS's `ContextMessage::into_parts`: this crate's context only (run in the
//!   whole [`Extracted`] instead; for NATS, take `ContextMessage::otel_context()` first).
//!
//! # Beside OpenTelemetry's `FutureExt`
//!
//! OpenTelemetry's [`FutureExt`](::opentelemetry::context::FutureExt) and this crate's
//! [`ContextExt`] (also in [`prelude`](crate::prelude)) both give every type a `with_context`
//! and a `with_current_context`. With both traits in scope, `fut.with_context(cx)` is ambiguous
//! (error E0034, "multiple applicable items in scope"), whichever context `cx` is:
//!
//! ```compile_fail,E0034
//! use contextvars::prelude::*;
//! use opentelemetry::context::FutureExt;
//!
//! let fut = async {}.with_context(Context::new()); // error[E0034]
//! ```
//!
//! Call the one you mean by its trait, or use [`OtelContextExt::with_otel_context`], which
//! carries an OpenTelemetry context under a name of its own; the spawn helpers carry both
//! contexts without either call.
//!
//! ```
//! use contextvars::opentelemetry::OtelContextExt;
//! use contextvars::prelude::*;
//! use opentelemetry::context::FutureExt;
//!
//! static TENANT: ContextVar<&'static str> = ContextVar::new("tenant");
//!
//! let ours = Context::new().with_value(&TENANT, "acme");
//! let otel = opentelemetry::Context::current();
//! // This crate's context, then OpenTelemetry's, each by its trait:
//! let fut = ContextExt::with_context(async { TENANT.get() }, ours.clone());
//! let fut = FutureExt::with_context(fut, otel.clone());
//! assert_eq!(futures::executor::block_on(fut), Some("acme"));
//! // Or with no clash at all:
//! let fut = ContextExt::with_context(async { TENANT.get() }.with_otel_context(otel), ours);
//! assert_eq!(futures::executor::block_on(fut), Some("acme"));
//! ```
//!
//! # With `tracing` and tracing-opentelemetry
//!
//! With both features, a child is run as if, at its start, the captured OTel context were
//! attached and *then* the captured tracing span entered: nesting, outermost first, is this
//! crate's context, the OTel context, the span. With tracing-opentelemetry's context activation
//! (on by default in tracing-opentelemetry 0.34, the release for `opentelemetry` 0.33), entering a
//! span makes the span's OTel context current, so **the entered span's OTel context wins**: the
//! child's `opentelemetry::Context::current()` has the span's trace id and span id, even if the
//! spawning code had attached another OTel context after entering the span. With activation on,
//! that also replaces the values and baggage of the captured OTel context while the span is
//! entered in the child (the span's context is the one captured when the span was created), as
//! it does whenever a span is re-entered; attach such values before creating the span, or inside
//! the child. Without a current span (or without tracing-opentelemetry), the captured OTel context
//! is current as is.
//!
//! # W3C Trace Context and baggage on the wire
//!
//! The wire side lives in [`crate::propagation`], so every transport built on it gets it:
//!
//! - **Receiving:** `contextvars::tower`'s `ContextLayer`, `contextvars::actix_web`'s
//!   `ContextMiddleware` and `contextvars::async_nats`'s `ContextSubscriber` extract the request's
//!   or message's trace context (`traceparent`, `tracestate`) into a fresh OTel context, current
//!   while the service is called and around every poll of its response future (for NATS, of the
//!   future `ContextMessage::handle` returns), and so in everything the handler spawns through
//!   this crate. Extraction goes through the global text-map propagator
//!   (`opentelemetry::global::set_text_map_propagator`)
//!   when one has been set (one that declares any field), so B3 or Jaeger propagators work too
//!   (they get every line of a repeated header through the carrier's `get_all`); until then,
//!   through this crate's strict W3C Trace Context codec (see
//!   [W3C Trace Context](crate::propagation#w3c-trace-context)): invalid or missing headers give
//!   a context with no remote span (a new trace starts at the first span), the flags are kept
//!   whole (level 2's random flag included), and a `tracestate` that OpenTelemetry's older key
//!   grammar refuses is still sent on unchanged within the same trace. The crate creates no
//!   spans: create one per hop yourself (a server span inside the handler, where the extracted
//!   context is current, and a client span around each outgoing call).
//!   A transport of your own gets the same from
//!   [`Propagation::extract_with`](crate::propagation::Propagation::extract_with): its
//!   [`Extracted`] holds the request's OTel context ([`Extracted::otel_context`]) beside the
//!   context, both current in [`Extracted::run`] and [`Extracted::scope`];
//!   [`Propagation::extract`](crate::propagation::Propagation::extract) returns this crate's
//!   context only.
//! - **Baggage** is always read and written by this crate's W3C Baggage parser and writer (the
//!   `baggage` field of the propagator is never used, so the two never fight over the header):
//!   the members accepted from the request (the registered keys whose value parsed, and the
//!   forwarded ones) are also put into the request's OTel [`Baggage`](::opentelemetry::baggage::Baggage).
//! - **Sending:** [`Propagation::inject`](crate::propagation::Propagation::inject) and
//!   `inject_context` write the current OTel context's trace context through the same
//!   propagator, and merge its baggage into `baggage`; so do all the clients and publishers
//!   built on them (`ClientContextLayer`, `inject_headers`, the reqwest middleware, NATS
//!   publishes). `inject_context` uses the *current* OTel context whatever context it is given.
//! - **Agreement**, both directions: a value set in code through either API reaches the next
//!   service. For each key, the value that changed since the request brought it wins: a
//!   registered variable set (or removed) with this crate's API, or an OTel baggage member set
//!   with OTel's API (`Context::current_with_baggage(..)`). If both changed the same key, the
//!   variable wins. A member absent from the OTel baggage is not a removal (OTel code often
//!   replaces the whole baggage), and OTel baggage metadata is not sent. In-process, each API
//!   reads its own store: a value set through one is not visible through the other's getter.
//!
//! # Trust
//!
//! The OTel side obeys the [trust boundaries](crate::propagation#security) exactly as this
//! crate's side does:
//!
//! | | trusted | untrusted (the default) |
//! |---|---|---|
//! | caller's `traceparent`/`tracestate` | the parent of the request's spans | not read (the propagator is not called): the request starts a new trace, as it gets a new request id |
//! | caller's baggage in OTel `Baggage` | every member accepted (registered and forwarded) | only the keys [accepted from untrusted callers](crate::propagation::PropagationBuilder::accept_from_untrusted), as this crate accepted them; nothing else, so nothing else is sent on |
//! | outbound `traceparent`/`tracestate` | sent | sent: they name a trace and a span, which lets a third party correlate with you, and carry no value of yours |
//! | outbound OTel baggage members | sent (every W3C-valid key) | only keys registered as [public](crate::propagation::PropagationBuilder::public); keys only OTel code knows are never sent |
//!
//! A global propagator of your own writes its fields to every destination (it never sees
//! `baggage`); if it writes anything private, decide per destination yourself.
//!
//! # Examples
//!
//! A value set with OpenTelemetry's own API before a spawn is visible inside it:
//!
//! ```
//! use opentelemetry::Context as OtelContext;
//!
//! #[derive(Debug, PartialEq)]
//! struct TenantId(u32);
//!
//! let _guard = OtelContext::current_with_value(TenantId(7)).attach();
//! let seen = contextvars::thread::spawn_with_context(|| {
//!     OtelContext::current().get::<TenantId>().map(|t| t.0)
//! });
//! assert_eq!(seen.join().unwrap(), Some(7));
//! ```
//!
//! A remote span and OTel baggage reach a thread beside this crate's context, and from there the
//! wire: everything to one of your own services, the trace context alone to a stranger (neither
//! `tenant`, which is not public, nor `region`, which only OTel code set). A `HashMap` stands in
//! for any carrier's headers.
//!
//! ```
//! use std::collections::HashMap;
//!
//! use contextvars::propagation::{Propagation, Trust};
//! use contextvars::ContextVar;
//! use opentelemetry::baggage::BaggageExt;
//! use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
//! use opentelemetry::{Context, KeyValue};
//!
//! static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
//!
//! let remote = SpanContext::new(
//!     TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
//!     SpanId::from_hex("00f067aa0ba902b7").unwrap(),
//!     TraceFlags::SAMPLED,
//!     true,
//!     TraceState::default(),
//! );
//! let cx = Context::current_with_baggage([KeyValue::new("region", "eu")])
//!     .with_remote_span_context(remote);
//! let _attached = cx.attach();
//!
//! let to_our_services = Propagation::builder()
//!     .baggage_str(&TENANT, "tenant")
//!     .outbound(Trust::Trusted)
//!     .build();
//! let to_strangers = to_our_services.with_outbound(Trust::Untrusted);
//! let headers = TENANT.scope("acme".into(), || {
//!     contextvars::thread::spawn_with_context(move || {
//!         let mut headers = HashMap::<String, String>::new();
//!         to_our_services.inject(&mut headers);
//!         headers
//!     })
//!     .join()
//!     .unwrap()
//! });
//! assert_eq!(headers["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
//! assert_eq!(headers["baggage"], "tenant=acme,region=eu");
//!
//! let mut external = HashMap::<String, String>::new();
//! TENANT.scope("acme".into(), || to_strangers.inject(&mut external));
//! assert!(external.contains_key("traceparent") && !external.contains_key("baggage"));
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context as TaskContext, Poll};

use ::opentelemetry::Context as OtelContext;
use pin_project_lite::pin_project;

use crate::ambient::BaggageChange;
use crate::propagation::{Baggage, Extracted, Extractor, Injector, Trust};
use crate::{ContextExt, WithContext};

pin_project! {
    /// A future that runs with an OpenTelemetry [`Context`](::opentelemetry::Context) current
    /// around every poll and while the inner future is dropped, whether it completed (it is
    /// dropped at once then) or is cancelled (OpenTelemetry's own `WithContext` leaves the drop
    /// out). Like most futures, it panics if polled again after it completed.
    ///
    /// Made by [`OtelContextExt`], and by every spawn helper of this crate when the
    /// `opentelemetry` feature is on.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::opentelemetry::OtelContextExt;
    /// use opentelemetry::Context as OtelContext;
    ///
    /// #[derive(Debug, PartialEq)]
    /// struct Region(&'static str);
    ///
    /// let cx = OtelContext::new().with_value(Region("eu"));
    /// let fut = async { OtelContext::current().get::<Region>().map(|r| r.0) }.with_otel_context(cx);
    /// assert_eq!(futures::executor::block_on(fut), Some("eu"));
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct WithOtelContext<F> {
        otel: OtelContext,
        // `None` once completed (dropped then, inside the context) or while being dropped.
        #[pin]
        inner: Option<F>,
    }

    impl<F> PinnedDrop for WithOtelContext<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.inner.is_some() {
                let _guard = this.otel.clone().attach();
                this.inner.set(None);
            }
        }
    }
}

const POLLED_AFTER_COMPLETION: &str = "WithOtelContext polled after completion";

impl<F> WithOtelContext<F> {
    pub(crate) fn new(inner: F, otel: OtelContext) -> WithOtelContext<F> {
        WithOtelContext {
            otel,
            inner: Some(inner),
        }
    }

    /// The OpenTelemetry context this future runs in (empty once the future has completed).
    ///
    /// ```
    /// use contextvars::opentelemetry::OtelContextExt;
    /// use opentelemetry::trace::TraceContextExt;
    /// let fut = async {}.with_otel_context(opentelemetry::Context::new());
    /// assert!(!fut.otel_context().has_active_span());
    /// ```
    pub fn otel_context(&self) -> &OtelContext {
        &self.otel
    }
}

impl<F: Future> Future for WithOtelContext<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let inner = this
            .inner
            .as_mut()
            .as_pin_mut()
            .expect(POLLED_AFTER_COMPLETION);
        let attached = Attached::new(this.otel);
        let output = ready!(inner.poll(cx));
        // Dropped now, while the context is attached: the wrapper's own drop has nothing left
        // to attach for, and the context is not needed any more.
        this.inner.set(None);
        attached.finish();
        Poll::Ready(output)
    }
}

/// The OTel context of a [`WithOtelContext`], attached for one poll. It is moved into the
/// attachment rather than cloned, and taken back (as the clone `Context::current()` gives) only
/// when the future is still pending or its poll panics: a future that completes in its first
/// poll costs one reference-count change less per `Arc` than a clone per poll.
struct Attached<'a> {
    slot: &'a mut OtelContext,
    guard: Option<::opentelemetry::ContextGuard>,
}

impl<'a> Attached<'a> {
    #[inline]
    fn new(slot: &'a mut OtelContext) -> Attached<'a> {
        let guard = Some(std::mem::take(slot).attach());
        Attached { slot, guard }
    }

    /// The future completed: detach, and keep nothing.
    #[inline]
    fn finish(mut self) {
        drop(self.guard.take());
    }
}

impl Drop for Attached<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            // Still ours: the poll detached whatever it attached itself.
            *self.slot = OtelContext::current();
            drop(guard);
        }
    }
}

impl<F: fmt::Debug> fmt::Debug for WithOtelContext<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithOtelContext")
            .field("otel", &self.otel)
            .field("inner", &self.inner)
            .finish()
    }
}

/// Runs any future inside an OpenTelemetry context. Implemented for every type.
///
/// # Examples
///
/// ```
/// # mod tokio { pub fn spawn(_: impl std::future::Future) {} }
/// use contextvars::opentelemetry::OtelContextExt;
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<u32> = ContextVar::new("request_id");
///
/// // Both contexts, on an executor this crate has no adapter for.
/// REQUEST_ID.scope(1, || tokio::spawn(async {}.with_current_context_and_otel()));
/// ```
pub trait OtelContextExt: Sized {
    /// Runs `self` with `otel` current around every poll and its drop.
    ///
    /// ```
    /// use contextvars::opentelemetry::OtelContextExt;
    /// let fut = async {}.with_otel_context(opentelemetry::Context::current());
    /// futures::executor::block_on(fut);
    /// ```
    fn with_otel_context(self, otel: OtelContext) -> WithOtelContext<Self> {
        WithOtelContext::new(self, otel)
    }

    /// Runs `self` inside the current context of this crate and the current OpenTelemetry
    /// context, like the spawn helpers do (without the tracing span).
    ///
    /// ```
    /// use contextvars::opentelemetry::OtelContextExt;
    /// use contextvars::ContextVar;
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let fut = A.scope(1, || async { A.get() }.with_current_context_and_otel());
    /// assert_eq!(futures::executor::block_on(fut), Some(1));
    /// ```
    fn with_current_context_and_otel(self) -> WithContext<WithOtelContext<Self>> {
        WithOtelContext::new(self, OtelContext::current()).with_current_context()
    }
}

impl<T> OtelContextExt for T {}

// ---------------------------------------------------------------------------------------------
// The ambient seam (`crate::ambient`): the OTel context travels beside the context into every
// spawn, and crosses services over every transport of `crate::propagation` (whose
// `extract_with` and `inject_context` call the trait), so every carrier (HTTP headers, gRPC
// metadata, NATS message headers, a map) gets it.

impl crate::ambient::Ambient for OtelContext {
    type Guard<'a> = ::opentelemetry::ContextGuard;
    type Entered = ::opentelemetry::ContextGuard;
    type Scoped<F> = WithOtelContext<F>;
    type Remote = OtelContext;

    #[inline]
    fn current() -> OtelContext {
        OtelContext::current()
    }

    #[inline]
    fn enter(&self) -> ::opentelemetry::ContextGuard {
        self.clone().attach()
    }

    #[inline]
    fn entered(self) -> ::opentelemetry::ContextGuard {
        self.attach()
    }

    #[inline]
    fn scope<F>(self, future: F) -> WithOtelContext<F> {
        WithOtelContext::new(future, self)
    }

    fn extract<C: Extractor + ?Sized>(
        trust: Trust,
        accepted_baggage: &dyn Fn(&crate::Context) -> Baggage,
        context: &mut crate::Context,
        carrier: &C,
    ) -> OtelContext {
        wire::extract_remote(trust, accepted_baggage, context, carrier)
    }

    fn inject<C: Injector + ?Sized>(context: &crate::Context, carrier: &mut C) {
        wire::inject_trace_context(context, carrier);
    }

    fn owns_trace_context() -> bool {
        wire::global_propagator_is_set()
    }

    fn baggage_changes<'c>(
        context: &'c crate::Context,
        may_send: &dyn Fn(&str) -> bool,
        changes: &mut Vec<BaggageChange<'c>>,
    ) {
        wire::baggage_changes(context, may_send, changes);
    }
}

impl Extracted {
    /// The OpenTelemetry context the carrier brought (feature `opentelemetry`): a fresh one
    /// with, from a [trusted](Trust::Trusted) caller, its trace context as the remote parent
    /// (from an untrusted one, none: the work starts a new trace), and in its baggage the
    /// members accepted. [`run`](Extracted::run) and [`scope`](Extracted::scope) make it
    /// current beside the context.
    ///
    /// ```
    /// use std::collections::HashMap;
    ///
    /// use contextvars::propagation::{Propagation, Trust};
    /// use opentelemetry::trace::TraceContextExt;
    ///
    /// let headers = HashMap::from([(
    ///     "traceparent".to_string(),
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
    /// )]);
    /// let internal = Propagation::builder().inbound(Trust::Trusted).build();
    /// let extracted = internal.extract_with(&headers, || None);
    /// let trace_id = extracted.otel_context().span().span_context().trace_id();
    /// assert_eq!(trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// // From a stranger, the trace context is not read.
    /// let extracted = Propagation::default().extract_with(&headers, || None);
    /// assert!(!extracted.otel_context().has_active_span());
    /// ```
    pub fn otel_context(&self) -> &OtelContext {
        // The compiled-in ambient is `(OTel, span)` (see `integrations.rs`): a span never
        // crosses the wire, so what a carrier brings is `(OTel context, ())`.
        &self.remote.0
    }
}

mod wire {
    use ::opentelemetry::baggage::{Baggage as OtelBaggage, BaggageExt};
    use ::opentelemetry::propagation::TextMapPropagator;
    use ::opentelemetry::propagation::{Extractor as OtelExtractor, Injector as OtelInjector};
    use ::opentelemetry::Context as OtelContext;

    use crate::ambient::BaggageChange;
    use ::opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState as OtelTraceState,
    };

    use crate::propagation::trace_context;
    use crate::propagation::{is_token, Baggage, Extractor, Injector, Trust};
    use crate::propagation::{TraceContext, TraceParent, TraceState};
    use crate::{Context, ContextVar};

    /// The propagator field this crate reads and writes itself.
    const BAGGAGE_FIELD: &str = "baggage";

    /// Runs `f` with the global text-map propagator if one has been set (the default no-op one
    /// declares no field); `None` when none has, and this crate's strict W3C Trace Context codec
    /// (`crate::propagation::TraceContext`) reads and writes the trace context.
    fn with_global_propagator<R>(f: impl FnOnce(&dyn TextMapPropagator) -> R) -> Option<R> {
        let mut f = Some(f);
        ::opentelemetry::global::get_text_map_propagator(|propagator| {
            if propagator.fields().next().is_some() {
                // Taken once: this branch runs at most once per call.
                f.take().map(|f| f(propagator))
            } else {
                None
            }
        })
    }

    /// Whether the user has set a global text-map propagator (one that declares any field).
    pub(super) fn global_propagator_is_set() -> bool {
        with_global_propagator(|_| ()).is_some()
    }

    /// A received W3C trace context as OpenTelemetry's remote parent: the flags whole (the
    /// random flag of level 2 included), and the tracestate when OpenTelemetry's own key grammar
    /// takes it (else none there: the received one is written back by [`inject_trace_context`]).
    fn remote_span_context(received: &TraceContext) -> SpanContext {
        let parent = received.parent();
        let state = OtelTraceState::from_key_value(received.state().iter()).unwrap_or_default();
        SpanContext::new(
            TraceId::from_bytes(parent.trace_id()),
            SpanId::from_bytes(parent.parent_id()),
            TraceFlags::new(parent.flags()),
            true,
            state,
        )
    }

    /// A carrier as OpenTelemetry's propagators read it, with `baggage` hidden.
    struct Fields<'a, C: ?Sized>(&'a C);

    impl<C: Extractor + ?Sized> OtelExtractor for Fields<'_, C> {
        fn get(&self, key: &str) -> Option<&str> {
            if key.eq_ignore_ascii_case(BAGGAGE_FIELD) {
                return None;
            }
            self.0.get(key)
        }

        /// Every line of a repeated header, so that a propagator of the user's can combine them.
        fn get_all(&self, key: &str) -> Option<Vec<&str>> {
            if key.eq_ignore_ascii_case(BAGGAGE_FIELD) {
                return None;
            }
            let lines = self.0.get_all(key);
            (!lines.is_empty()).then_some(lines)
        }

        fn keys(&self) -> Vec<&str> {
            let mut keys = self.0.keys();
            keys.retain(|key| !key.eq_ignore_ascii_case(BAGGAGE_FIELD));
            keys
        }
    }

    /// A carrier as OpenTelemetry's propagators write it, keeping `baggage` from them.
    struct Sink<'a, C: ?Sized>(&'a mut C);

    impl<C: Injector + ?Sized> OtelInjector for Sink<'_, C> {
        fn set(&mut self, key: &str, value: String) {
            if !key.eq_ignore_ascii_case(BAGGAGE_FIELD) && is_token(key) && !value.is_empty() {
                self.0.set(&key.to_ascii_lowercase(), value);
            }
        }
    }

    /// The OTel baggage members a request brought, as put into its OTel context: what tells, on
    /// the way out, a member changed through OTel's API from one that was received. Opaque.
    static RECEIVED: ContextVar<Vec<(String, String)>> =
        ContextVar::opaque("otel_baggage_received");

    /// The OpenTelemetry context of an incoming request or message, starting from nothing, with
    /// the baggage members it got remembered in `context` (the one `Propagation::extract_with`
    /// made of the same carrier, read with `trust`).
    ///
    /// - From a trusted caller, the trace context is read through the propagator (every field but
    ///   `baggage`); from an untrusted one, the propagator is not called at all: its
    ///   `traceparent` is not the parent, the request starts a new trace.
    /// - Its OTel baggage holds exactly the members this crate accepted (`accepted_baggage`), by
    ///   the same trust: the registered variables that were set (from an untrusted caller, only
    ///   the keys accepted from untrusted callers) and, from a trusted caller, the forwarded
    ///   members.
    pub(super) fn extract_remote<C: Extractor + ?Sized>(
        trust: Trust,
        accepted_baggage: &dyn Fn(&Context) -> Baggage,
        context: &mut Context,
        carrier: &C,
    ) -> OtelContext {
        let otel = match trust {
            Trust::Trusted => with_global_propagator(|p| {
                p.extract_with_context(&OtelContext::new(), &Fields(carrier))
            })
            .unwrap_or_else(|| {
                // What `Propagation` read with the strict codec (from a trusted caller only).
                match context.get_ref(&trace_context::RECEIVED) {
                    Some(received) => {
                        OtelContext::new().with_remote_span_context(remote_span_context(received))
                    }
                    None => OtelContext::new(),
                }
            }),
            Trust::Untrusted => OtelContext::new(),
        };
        if carrier.get(BAGGAGE_FIELD).is_none() {
            return otel;
        }
        let accepted = accepted_baggage(context);
        let mut otel_baggage = OtelBaggage::new();
        let mut received = Vec::new();
        for member in &accepted {
            let (key, value) = (member.key(), member.value());
            // OTel applies the same W3C limits; what it refuses is not remembered either.
            let before = otel_baggage.len();
            let replaced = otel_baggage.insert_with_metadata(
                key.to_owned(),
                value.to_owned(),
                member.properties(),
            );
            if replaced.is_some() || otel_baggage.len() > before {
                received.push((key.to_owned(), value.to_owned()));
            }
        }
        if received.is_empty() {
            return otel;
        }
        *context = context.with_value(&RECEIVED, received);
        otel.with_baggage(otel_baggage)
    }

    /// Writes the current OpenTelemetry context's trace context (every field but `baggage`), to
    /// trusted and untrusted destinations alike: through the global propagator if one was set,
    /// else with the strict codec. There the `traceparent` is the current span's, with the flags
    /// whole, and with the random flag of the trace context `context` received when the trace is
    /// the same (it describes the trace id, which did not change); the `tracestate` is the span's
    /// when it has one, else the received one of the same trace, unchanged; nothing that does not
    /// pass the codec is written.
    pub(super) fn inject_trace_context<C: Injector + ?Sized>(context: &Context, carrier: &mut C) {
        let mut sink = Sink(carrier);
        let global = OtelContext::map_current(|cx| {
            with_global_propagator(|p| p.inject_context(cx, &mut sink))
        });
        if global.is_some() {
            return;
        }
        let carrier = sink.0;
        OtelContext::map_current(|cx| {
            let span = cx.span();
            let current = span.span_context();
            if !current.is_valid() {
                return;
            }
            let trace_id = current.trace_id().to_bytes();
            let received = context
                .get_ref(&trace_context::RECEIVED)
                .filter(|received| received.parent().trace_id() == trace_id);
            let mut flags = current.trace_flags().to_u8();
            if received.is_some_and(|received| received.parent().is_random()) {
                flags |= trace_context::RANDOM;
            }
            let header = format!(
                "00-{}-{}-{flags:02x}",
                current.trace_id(),
                current.span_id()
            );
            let Some(parent) = TraceParent::parse(&header) else {
                return;
            };
            let own_state = current.trace_state().header();
            let state = match TraceState::parse(&own_state) {
                Some(state) if !state.is_empty() => state,
                _ => received.map_or_else(TraceState::new, |received| received.state().clone()),
            };
            TraceContext::new(parent, state).inject(carrier);
        });
    }

    /// The members of the current OTel context's baggage that were set through OTel's API (they
    /// differ from what the request brought, per `context`) and `may_send` lets go where the
    /// propagation writes (every key to a trusted destination, only keys registered as public
    /// to an untrusted one; keys that are not W3C tokens never), each with the value the request
    /// brought: the propagation merges them into what it wrote, and its own side wins where it
    /// changed the key too.
    pub(super) fn baggage_changes<'c>(
        context: &'c Context,
        may_send: &dyn Fn(&str) -> bool,
        changes: &mut Vec<BaggageChange<'c>>,
    ) {
        OtelContext::map_current(|cx| {
            let baggage = cx.baggage();
            if baggage.is_empty() {
                return;
            }
            let received = context.get_ref(&RECEIVED);
            for (key, (value, _)) in baggage.iter() {
                if !may_send(key.as_str()) {
                    continue;
                }
                let was = received_value(received, key.as_str());
                if was != Some(value.as_str()) {
                    changes.push(BaggageChange {
                        key: key.to_string(),
                        value: value.to_string(),
                        received: was,
                    });
                }
            }
        });
    }

    fn received_value<'a>(
        received: Option<&'a Vec<(String, String)>>,
        key: &str,
    ) -> Option<&'a str> {
        received?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
