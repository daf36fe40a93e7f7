//! The one list of the integrations compiled in, seam by seam (beside the `#[path]` modules
//! declared in `lib.rs`). No other file under `src/` names an integration: the core reaches
//! them only through the seams listed here, each defined in core code and implemented by the
//! adapters in their own files.

// ---------------------------------------------------------------------------------------------
// Runtimes and pools: how each recognises its own units of work (the executor seam).

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

// What a spawn hands its executor, checked by the compiler: with neither feature, exactly the
// bare `WithContext` (nothing added to every task); with both, the OTel context around the span.
// And what a transport runs a request's future in: without `opentelemetry` the bare future (a
// span never crosses the wire, so `tracing` adds nothing there).
#[cfg(not(feature = "opentelemetry"))]
const _: fn(crate::ambient::RemoteScoped<()>) = |_: ()| {};
#[cfg(not(any(feature = "tracing", feature = "opentelemetry")))]
const _: fn(crate::capture::Task<()>) -> crate::WithContext<()> = |task| task;
#[cfg(all(feature = "tracing", feature = "opentelemetry"))]
const _: fn(
    crate::capture::Task<()>,
) -> crate::WithContext<
    crate::opentelemetry::WithOtelContext<::tracing::instrument::Instrumented<()>>,
> = |task| task;
