//! Reading and forwarding `traceparent` and `tracestate` through `Propagation`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contextvars_fuzz::trace_context(data));
