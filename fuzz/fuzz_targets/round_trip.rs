//! Reading, writing and reading again, directly and through `ContextLayer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contextvars_fuzz::round_trip(data));
