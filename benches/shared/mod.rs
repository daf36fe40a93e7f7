//! Helpers shared by the benchmarks: contexts of a given size, for us and for our peers.
#![allow(dead_code, unreachable_pub)]
// `seq!` expands `N + 1 < n` with N = 0, among others.
#![allow(clippy::identity_op)]

use std::sync::OnceLock;
use std::time::Duration;

use contextvars::{Context, ContextVar};
use criterion::Criterion;

/// The context sizes every per-size benchmark is run at.
pub const SIZES: [usize; 4] = [1, 8, 64, 1024];

/// The variable the benchmarks read; always one of the `n` set.
pub static TARGET: ContextVar<u64> = ContextVar::new("target");

fn fillers() -> &'static [ContextVar<u64>] {
    static FILLERS: OnceLock<Vec<ContextVar<u64>>> = OnceLock::new();
    FILLERS.get_or_init(|| (0..1024).map(|_| ContextVar::new("filler")).collect())
}

/// Our context with `n` variables set, `TARGET` among them.
pub fn our_context(n: usize) -> Context {
    let mut ctx = Context::new();
    for (i, var) in fillers().iter().take(n - 1).enumerate() {
        ctx = ctx.with_value(var, i as u64);
    }
    ctx.with_value(&TARGET, 42)
}

/// A filler variable that is not yet set in `our_context(n)` for any `n` < 1024.
pub fn unset_filler() -> &'static ContextVar<u64> {
    &fillers()[1023]
}

/// OpenTelemetry keys its context by type: `n` values need `n` distinct types.
#[derive(Clone, Copy)]
pub struct OtelFiller<const N: usize>(pub u64);

#[derive(Clone, Copy)]
pub struct OtelTarget(pub u64);

/// An OpenTelemetry context holding `n` values, `OtelTarget` among them.
pub fn otel_context(n: usize) -> opentelemetry::Context {
    let mut cx = opentelemetry::Context::new();
    seq_macro::seq!(N in 0..1023 {
        if N + 1 < n {
            cx = cx.with_value(OtelFiller::<N>(N));
        }
    });
    cx.with_value(OtelTarget(42))
}

/// Short but stable settings: the figures are nanoseconds, not milliseconds.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}
