//! The one list of the integrations compiled in, seam by seam (beside the `#[path]` modules
//! declared in `lib.rs`). No other file under `src/` names an integration: the core reaches
//! them only through the seams listed here, each defined in core code and implemented by the
//! adapters in their own files.

use crate::executor::Executor;

// ---------------------------------------------------------------------------------------------
// Runtimes and pools: how each recognises its own units of work (the executor seam).

/// The executors compiled in, asked in this order whether the thread runs a unit of work of
/// theirs (before those registered at run time); see `crate::executor`.
pub(crate) static EXECUTORS: &[&dyn Executor] = &[
    #[cfg(feature = "tokio")]
    &crate::tokio::Tokio,
    #[cfg(feature = "actix-web")]
    &crate::actix_web::Actix,
    #[cfg(feature = "async-std")]
    &crate::async_std::AsyncStd,
    #[cfg(feature = "smol")]
    &crate::smol::Smol,
    #[cfg(any(feature = "async-std", feature = "smol"))]
    &crate::blocking::Blocking,
    #[cfg(feature = "rayon")]
    &crate::rayon::Rayon,
];

/// The runtime whose tasks may be dropped outside their polls with a context of their own (tokio
/// with automatic inheritance); `()` without one. Asked on the hot paths, so chosen statically.
#[cfg(all(feature = "tokio", tokio_unstable))]
pub(crate) type TaskDrops = crate::tokio::TaskDrops;
#[cfg(not(all(feature = "tokio", tokio_unstable)))]
pub(crate) type TaskDrops = ();

// ---------------------------------------------------------------------------------------------
// What travels with the context beside it (the tracing span, the OpenTelemetry context):
// captured at spawns, extracted by transports (the ambient seam).

/// What every spawn carries beside the context and every transport reads and writes beside it,
/// outermost first: the OpenTelemetry context, then the tracing span (entered last, so that with
/// tracing-opentelemetry's context activation the span's OTel context wins; see
/// `contextvars::opentelemetry`). `()` for each feature that is off. See `crate::ambient`.
pub(crate) type Ambient = (Otel, Span);

#[cfg(feature = "opentelemetry")]
type Otel = ::opentelemetry::Context;
#[cfg(not(feature = "opentelemetry"))]
type Otel = ();

#[cfg(feature = "tracing")]
type Span = ::tracing::Span;
#[cfg(not(feature = "tracing"))]
type Span = ();

// ---------------------------------------------------------------------------------------------
// Where the trust rules' diagnostics go (the diagnostics seam): a `tracing` event, a `log`
// record, both or neither. See `crate::diagnostics`.

/// The diagnostics sinks compiled in, each `()` when its feature is off.
pub(crate) type Diagnostics = (TracingEvents, LogRecords);

#[cfg(feature = "tracing")]
type TracingEvents = crate::tracing::TrustEvents;
#[cfg(not(feature = "tracing"))]
type TracingEvents = ();

#[cfg(feature = "log")]
type LogRecords = crate::log::TrustRecords;
#[cfg(not(feature = "log"))]
type LogRecords = ();
