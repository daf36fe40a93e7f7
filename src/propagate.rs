//! What every spawn helper of the adapters captures at the call and carries into the child: the
//! current context and, with the `tracing` feature, the current span, with the `opentelemetry`
//! feature, OpenTelemetry's current `Context`.
//!
//! With those features off these are exactly `with_current_context()` and `Context::wrap`, so
//! the adapters cost nothing more. `Context` itself never carries the span or the OTel context.
//!
//! Nesting, outermost first: our context, the OTel context, the span. The span is entered last so
//! that, with tracing-opentelemetry's context activation, the span's OTel context (which entering
//! it makes current) wins over the captured one; see the `opentelemetry` module docs.

use std::future::Future;

#[cfg(feature = "rayon")]
use crate::ContextGuard;
use crate::{state, Context, ContextExt, WithContext};

/// The span layer of a [`Task`].
#[cfg(feature = "tracing")]
type Spanned<F> = ::tracing::instrument::Instrumented<F>;
#[cfg(not(feature = "tracing"))]
type Spanned<F> = F;

/// The OpenTelemetry layer of a [`Task`].
#[cfg(feature = "opentelemetry")]
type Traced<F> = crate::opentelemetry::WithOtelContext<F>;
#[cfg(not(feature = "opentelemetry"))]
type Traced<F> = F;

/// The future type the adapters hand to executors.
pub(crate) type Task<F> = WithContext<Traced<Spanned<F>>>;

/// A future that runs in the caller's context and span, whatever the features of the adapters.
#[cfg(feature = "tracing")]
pub(crate) fn task_with_span<F>(future: F) -> WithContext<::tracing::instrument::Instrumented<F>> {
    ::tracing::Instrument::instrument(future, ::tracing::Span::current()).with_current_context()
}

/// Wraps `future` to run in the caller's context (and span, and OTel context).
#[inline]
pub(crate) fn task<F: Future>(future: F) -> Task<F> {
    #[cfg(feature = "tracing")]
    let future = ::tracing::Instrument::instrument(future, ::tracing::Span::current());
    #[cfg(feature = "opentelemetry")]
    let future =
        crate::opentelemetry::WithOtelContext::new(future, ::opentelemetry::Context::current());
    future.with_current_context()
}

/// Wraps `f` to run in the caller's context (and span, and OTel context), wherever it is called.
#[inline]
pub(crate) fn job<F, R>(f: F) -> impl FnOnce() -> R
where
    F: FnOnce() -> R,
{
    Captured::now().wrap(f)
}

/// What a spawn carries into its child: the context and, with the `tracing` feature, the span,
/// with the `opentelemetry` feature, the OTel context, all current at the capture.
#[derive(Clone)]
pub(crate) struct Captured {
    context: Context,
    #[cfg(feature = "opentelemetry")]
    otel: ::opentelemetry::Context,
    #[cfg(feature = "tracing")]
    span: ::tracing::Span,
}

#[cfg(feature = "rayon")]
/// Keeps a [`Captured`] current (see [`Captured::attach`]). Fields drop in declaration order:
/// the span is exited first, then the OTel context detached, then our context.
pub(crate) struct CapturedGuard {
    #[cfg(feature = "tracing")]
    _span: ::tracing::span::EnteredSpan,
    #[cfg(feature = "opentelemetry")]
    _otel: ::opentelemetry::ContextGuard,
    _context: Option<ContextGuard>,
}

impl Captured {
    #[inline]
    pub(crate) fn now() -> Captured {
        Captured::with_context(Context::current())
    }

    /// `context`, with the span and OTel context current now.
    #[inline]
    pub(crate) fn with_context(context: Context) -> Captured {
        Captured {
            context,
            #[cfg(feature = "opentelemetry")]
            otel: ::opentelemetry::Context::current(),
            #[cfg(feature = "tracing")]
            span: ::tracing::Span::current(),
        }
    }

    /// `f`, made to run inside the captured context (and span), wherever it is called.
    #[inline]
    pub(crate) fn wrap<F, R>(self, f: F) -> impl FnOnce() -> R
    where
        F: FnOnce() -> R,
    {
        move || self.run(f)
    }

    /// Runs `f` inside the captured context (and span, and OTel context).
    #[inline]
    pub(crate) fn run<R>(self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "tracing")]
        let span = self.span;
        #[cfg(feature = "opentelemetry")]
        let otel = self.otel;
        state::run_in(self.context, move || {
            #[cfg(feature = "opentelemetry")]
            let _otel = otel.attach();
            #[cfg(feature = "tracing")]
            let _entered = span.enter();
            f()
        })
    }

    #[cfg(feature = "rayon")]
    /// Runs `f` with the captured context installed (moved in and out, no reference count
    /// touched), and the span and OTel context.
    #[inline]
    pub(crate) fn installed<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let _frame = state::enter(&mut self.context);
        #[cfg(feature = "opentelemetry")]
        let _otel = self.otel.clone().attach();
        #[cfg(feature = "tracing")]
        let _entered = self.span.enter();
        f()
    }

    #[cfg(feature = "rayon")]
    /// Makes the captured context (and span, and OTel context) current until the guard drops.
    pub(crate) fn attach(self) -> CapturedGuard {
        // Refused only at thread exit: then the work runs in whatever is current.
        let context = self.context.attach_unchecked().ok();
        #[cfg(feature = "opentelemetry")]
        let otel = self.otel.attach();
        CapturedGuard {
            #[cfg(feature = "tracing")]
            _span: self.span.entered(),
            #[cfg(feature = "opentelemetry")]
            _otel: otel,
            _context: context,
        }
    }
}
