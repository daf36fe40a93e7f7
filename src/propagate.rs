//! What every spawn helper of the adapters captures at the call and carries into the child: the
//! current context and, with the `tracing` feature, the current span.
//!
//! With the feature off these are exactly `with_current_context()` and `Context::wrap`, so the
//! adapters cost nothing more. `Context` itself never carries the span.

use std::future::Future;

use crate::{state, Context, ContextExt, WithContext};

/// The future type the adapters hand to executors.
#[cfg(not(feature = "tracing"))]
pub(crate) type Task<F> = WithContext<F>;

/// The future type the adapters hand to executors.
#[cfg(feature = "tracing")]
pub(crate) type Task<F> = WithContext<::tracing::instrument::Instrumented<F>>;

/// A future that runs in the caller's context and span, whatever the features of the adapters.
#[cfg(feature = "tracing")]
pub(crate) fn task_with_span<F>(future: F) -> WithContext<::tracing::instrument::Instrumented<F>> {
    ::tracing::Instrument::instrument(future, ::tracing::Span::current()).with_current_context()
}

/// Wraps `future` to run in the caller's context (and span).
#[inline]
pub(crate) fn task<F: Future>(future: F) -> Task<F> {
    #[cfg(feature = "tracing")]
    return task_with_span(future);
    #[cfg(not(feature = "tracing"))]
    future.with_current_context()
}

/// Wraps `f` to run in the caller's context (and span), wherever it is called.
#[inline]
pub(crate) fn job<F, R>(f: F) -> impl FnOnce() -> R
where
    F: FnOnce() -> R,
{
    Captured::now().wrap(f)
}

/// What a spawn carries into its child: the context and, with the `tracing` feature, the span
/// current at the capture.
#[derive(Clone)]
pub(crate) struct Captured {
    context: Context,
    #[cfg(feature = "tracing")]
    span: ::tracing::Span,
}

impl Captured {
    #[inline]
    pub(crate) fn now() -> Captured {
        Captured {
            context: Context::current(),
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

    /// Runs `f` inside the captured context (and span).
    #[inline]
    pub(crate) fn run<R>(self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "tracing")]
        let span = self.span;
        state::run_in(self.context, move || {
            #[cfg(feature = "tracing")]
            let _entered = span.enter();
            f()
        })
    }
}
