//! What every spawn helper of the adapters captures at the call and carries into the child: the
//! current context and what is current beside it ([`integrations::Ambient`]: with the `tracing`
//! feature, the current span, with the `opentelemetry` feature, OpenTelemetry's current
//! `Context`). Not to be confused with [`crate::propagation`], what crosses processes.
//!
//! With those features off these are exactly `with_current_context()` and `Context::wrap`, so
//! the adapters cost nothing more. `Context` itself never carries the span or the OTel context.
//!
//! Nesting, outermost first: our context, the OTel context, the span. The span is entered last so
//! that, with tracing-opentelemetry's context activation, the span's OTel context (which entering
//! it makes current) wins over the captured one; see the `opentelemetry` module docs.

use std::future::Future;

use crate::ambient::{self, Ambient as _};
use crate::{integrations, state, Context, ContextExt, WithContext};

/// The future type the adapters hand to executors.
pub(crate) type Task<F> = WithContext<ambient::Scoped<F>>;

/// Wraps `future` to run in the caller's context (and span, and OTel context).
#[inline]
pub(crate) fn task<F: Future>(future: F) -> Task<F> {
    integrations::Ambient::current()
        .scope(future)
        .with_current_context()
}

/// Wraps `f` to run in the caller's context (and span, and OTel context), wherever it is called.
#[inline]
pub(crate) fn job<F, R>(f: F) -> impl FnOnce() -> R
where
    F: FnOnce() -> R,
{
    Captured::now().wrap(f)
}

/// What a spawn carries into its child: the context and what was current beside it (with the
/// `tracing` feature, the span, with the `opentelemetry` feature, the OTel context), all current
/// at the capture.
#[derive(Clone)]
pub(crate) struct Captured {
    pub(crate) context: Context,
    pub(crate) ambient: integrations::Ambient,
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
            ambient: integrations::Ambient::current(),
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
        let ambient = self.ambient;
        state::run_in(self.context, move || {
            let _entered = ambient.entered();
            f()
        })
    }
}
