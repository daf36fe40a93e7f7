//! Reading `baggage` headers: `Baggage::parse` and `Baggage::from_headers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| contextvars_fuzz::parse(data));
