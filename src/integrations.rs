//! The one list of the integrations compiled in, seam by seam (beside the `#[path]` modules
//! declared in `lib.rs`). No other file under `src/` names an integration: the core reaches
//! them only through the seams listed here, each defined in core code and implemented by the
//! adapters in their own files.

// ---------------------------------------------------------------------------------------------
// Runtimes and pools: how each recognises its own units of work (the executor seam).

// ---------------------------------------------------------------------------------------------
// What travels with the context beside it (the tracing span, the OpenTelemetry context):
// captured at spawns, extracted by transports (the ambient seam).
