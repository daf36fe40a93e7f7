//! [OpenTelemetry](https://docs.rs/opentelemetry): its `Context` (current span, baggage, values)
//! follows the work into every spawn, and with `tower`, W3C Trace Context and baggage cross
//! services (feature `opentelemetry`, built against `opentelemetry` 0.33, the newest minor when
//! this was written; `opentelemetry_sdk` 0.33 for its `TraceContextPropagator`).
//!
//! # What it propagates
//!
//! Every spawn path of every adapter (`spawn_with_context` and its relatives on tokio,
//! async-std, smol, `futures` and async-task, the blocking pools, [`thread`](crate::thread), rayon's
//! entry points, [`JobHandle`](crate::JobHandle) jobs, `par_iter().with_current_context()`,
//! `#[preserve_context]`, and `contextvars::tower`'s request future) captures
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
//! # W3C Trace Context and baggage on the wire (with `tower`)
//!
//! - **Server:** `ContextLayer` extracts the request's trace context (`traceparent`,
//!   `tracestate`) into a fresh OTel context, current while the service is called and around
//!   every poll of its response future, and so in everything the handler spawns through this
//!   crate. Extraction goes through the global text-map propagator
//!   (`opentelemetry::global::set_text_map_propagator`)
//!   when one has been set (one that declares any field), so B3 or Jaeger propagators work too;
//!   until then, through OpenTelemetry's W3C `TraceContextPropagator`. Invalid or missing
//!   headers give a context with no remote span (a new trace starts at the first span).
//! - **Baggage** is always read and written by this crate's W3C Baggage parser and writer (the
//!   `baggage` field of the propagator is never used, so the two never fight over the header):
//!   the members accepted from the request (the registered keys whose value parsed, and the
//!   forwarded ones) are also put into the request's OTel [`Baggage`](::opentelemetry::baggage::Baggage).
//! - **Client:** `ClientContextLayer` and `inject_headers` write the current OTel context's trace
//!   context through the same propagator, and merge its baggage into `baggage`.
//! - **Agreement**, both directions: a value set in code through either API reaches the next
//!   service. For each key, the value that changed since the request brought it wins: a
//!   registered variable set (or removed) with this crate's API, or an OTel baggage member set
//!   with OTel's API (`Context::current_with_baggage(..)`). If both changed the same key, the
//!   variable wins. A member absent from the OTel baggage is not a removal (OTel code often
//!   replaces the whole baggage), and OTel baggage metadata is not sent. In-process, each API
//!   reads its own store: a value set through one is not visible through the other's getter.
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

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context as TaskContext, Poll};

use ::opentelemetry::Context as OtelContext;
use pin_project_lite::pin_project;

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
// Wire helpers, transport-neutral: called by the HTTP layers through closures and the small
// `OutgoingBaggage` trait, so that any carrier (HTTP headers, gRPC metadata, message headers)
// can use them. Only the `tower` layers call them so far.
#[cfg_attr(not(feature = "tower"), allow(dead_code, unused_imports))]
pub(crate) use wire::{extract_remote, inject_current, merge_baggage, OutgoingBaggage};

#[cfg_attr(not(feature = "tower"), allow(dead_code))]
mod wire {
    use std::sync::OnceLock;

    use ::opentelemetry::baggage::{Baggage as OtelBaggage, BaggageExt};
    use ::opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use ::opentelemetry::Context as OtelContext;

    use crate::{Context, ContextVar};

    /// The propagator field this crate reads and writes itself.
    const BAGGAGE_FIELD: &str = "baggage";

    /// Runs `f` with the global text-map propagator if one has been set (the default no-op one
    /// declares no field), else with OpenTelemetry's W3C `TraceContextPropagator`.
    fn with_propagator<R>(f: impl FnOnce(&dyn TextMapPropagator) -> R) -> R {
        static DEFAULT: OnceLock<::opentelemetry_sdk::propagation::TraceContextPropagator> =
            OnceLock::new();
        let mut f = Some(f);
        let global = ::opentelemetry::global::get_text_map_propagator(|propagator| {
            if propagator.fields().next().is_some() {
                // Taken once: this branch runs at most once per call.
                f.take().map(|f| f(propagator))
            } else {
                None
            }
        });
        match (global, f) {
            (Some(result), _) => result,
            (None, Some(f)) => f(DEFAULT.get_or_init(Default::default)),
            (None, None) => unreachable!("the closure is taken only when it runs"),
        }
    }

    /// Reads fields through closures, hiding `baggage` from the propagator.
    struct Fields<'a, G, K> {
        get: G,
        keys: K,
        // Ties the fields' lifetime to the extractor's, so `get` may hand them out.
        _fields: std::marker::PhantomData<&'a str>,
    }

    impl<'a, G, K> Extractor for Fields<'a, G, K>
    where
        G: Fn(&str) -> Option<&'a str>,
        K: Fn() -> Vec<&'a str>,
    {
        fn get(&self, key: &str) -> Option<&str> {
            if key.eq_ignore_ascii_case(BAGGAGE_FIELD) {
                return None;
            }
            (self.get)(key)
        }

        fn keys(&self) -> Vec<&str> {
            let mut keys = (self.keys)();
            keys.retain(|key| !key.eq_ignore_ascii_case(BAGGAGE_FIELD));
            keys
        }
    }

    /// Writes fields through a closure, keeping `baggage` from the propagator.
    struct Sink<S>(S);

    impl<S: FnMut(&str, String)> Injector for Sink<S> {
        fn set(&mut self, key: &str, value: String) {
            if !key.eq_ignore_ascii_case(BAGGAGE_FIELD) {
                (self.0)(key, value);
            }
        }
    }

    /// The OTel baggage members a request brought, as put into its OTel context: what tells, on the
    /// way out, a member changed through OTel's API from one that was received. Opaque.
    static RECEIVED: ContextVar<Vec<(String, String)>> =
        ContextVar::opaque("otel_baggage_received");

    /// The OpenTelemetry context of an incoming request, starting from nothing: the trace context
    /// read through the propagator from `get` (and `keys`), and `baggage`, the members this crate
    /// accepted (key, decoded value, properties), as its OTel baggage. Returns our request context
    /// with those members remembered, and the OTel context.
    pub(crate) fn extract_remote<'a, 'b>(
        context: Context,
        get: impl Fn(&str) -> Option<&'a str>,
        keys: impl Fn() -> Vec<&'a str>,
        baggage: impl IntoIterator<Item = (&'b str, &'b str, &'b str)>,
    ) -> (Context, OtelContext) {
        let fields = Fields {
            get,
            keys,
            _fields: std::marker::PhantomData,
        };
        let otel = with_propagator(|p| p.extract_with_context(&OtelContext::new(), &fields));
        let mut otel_baggage = OtelBaggage::new();
        let mut received = Vec::new();
        for (key, value, properties) in baggage {
            // OTel applies the same W3C limits; what it refuses is not remembered either.
            let before = otel_baggage.len();
            let replaced =
                otel_baggage.insert_with_metadata(key.to_owned(), value.to_owned(), properties);
            if replaced.is_some() || otel_baggage.len() > before {
                received.push((key.to_owned(), value.to_owned()));
            }
        }
        if received.is_empty() {
            return (context, otel);
        }
        let otel = otel.with_baggage(otel_baggage);
        (context.with_value(&RECEIVED, received), otel)
    }

    /// Writes the current OpenTelemetry context's trace context through the propagator (every
    /// field but `baggage`).
    pub(crate) fn inject_current(set: impl FnMut(&str, String)) {
        let mut sink = Sink(set);
        OtelContext::map_current(|cx| with_propagator(|p| p.inject_context(cx, &mut sink)));
    }

    /// The outgoing baggage as this crate wrote it, for [`merge_baggage`].
    pub(crate) trait OutgoingBaggage {
        /// The decoded value written for `key`.
        fn get(&self, key: &str) -> Option<&str>;
        /// Sets `key` (an HTTP token) to `value`.
        fn set(&mut self, key: &str, value: &str);
    }

    /// Merges the current OTel context's baggage into the outgoing baggage: a member set through
    /// OTel's API (differing from what the request brought, per `context`) replaces or adds the
    /// member, unless this crate's side changed that key too. `load` reads the outgoing baggage,
    /// called only when there is something to merge; returns it when it changed.
    pub(crate) fn merge_baggage<B: OutgoingBaggage>(
        context: &Context,
        load: impl FnOnce() -> B,
    ) -> Option<B> {
        let changed: Vec<(String, String)> = OtelContext::map_current(|cx| {
            let received = context.get_ref(&RECEIVED);
            cx.baggage()
                .iter()
                .filter(|(key, _)| is_token(key.as_str()))
                .filter_map(|(key, (value, _))| {
                    let was = received
                        .and_then(|r| r.iter().find(|(k, _)| k == key.as_str()))
                        .map(|(_, v)| v.as_str());
                    (was != Some(value.as_str())).then(|| (key.to_string(), value.to_string()))
                })
                .collect()
        });
        if changed.is_empty() {
            return None;
        }
        let received = context.get_ref(&RECEIVED);
        let mut out = load();
        let mut any = false;
        for (key, value) in changed {
            let was = received
                .and_then(|r| r.iter().find(|(k, _)| *k == key))
                .map(|(_, v)| v.as_str());
            // This crate's side left the key as it came (or never had it): OTel's value goes.
            if out.get(&key) == was {
                out.set(&key, &value);
                any = true;
            }
        }
        any.then_some(out)
    }

    /// An HTTP token: the W3C Baggage key syntax.
    fn is_token(s: &str) -> bool {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    }
}
