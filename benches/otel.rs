//! The OpenTelemetry bridge (feature `opentelemetry`): spawn + join of 1,000 trivial tokio tasks
//! carrying an OTel context (a span and a value), through `spawn_with_context` (which carries
//! this crate's context too) against OpenTelemetry's own `tokio::spawn(fut.with_current_context())`
//! and the bare `tokio::spawn`, in the same run. After criterion's groups, the three are timed
//! again interleaved (each round in another order) so that drift of the machine hits all alike,
//! and the medians and their ratios are printed.
//!
//! Run with only the features it needs: `cargo bench --bench otel --features opentelemetry,tokio`
//! (with `tracing` on too, the spawns also carry the span).

mod shared;

use std::hint::black_box;
use std::time::{Duration, Instant};

use contextvars::tokio::spawn_with_context;
use contextvars::ContextVar;
use criterion::Criterion;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tokio::runtime::Runtime;

const BATCH: usize = 1_000;

static REQUEST_ID: ContextVar<u64> = ContextVar::new("request_id");

#[derive(Clone, Copy)]
struct OtelRequestId(#[allow(dead_code)] u64);

/// A request's OTel context: a remote span and one value.
fn otel_context() -> opentelemetry::Context {
    opentelemetry::Context::new()
        .with_remote_span_context(SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ))
        .with_value(OtelRequestId(7))
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

fn bare(runtime: &Runtime) {
    runtime.block_on(async {
        let handles: Vec<_> = (0..BATCH)
            .map(|i| tokio::spawn(async move { black_box(i) }))
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
    })
}

/// OpenTelemetry's wrapper: the OTel context only.
fn otel(runtime: &Runtime) {
    let _otel = otel_context().attach();
    runtime.block_on(async {
        let handles: Vec<_> = (0..BATCH)
            .map(|i| tokio::spawn(async move { black_box(i) }.with_current_context()))
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
    })
}

/// This crate with the bridge: its own context and the OTel context.
fn ours(runtime: &Runtime) {
    let _otel = otel_context().attach();
    runtime.block_on(REQUEST_ID.scope_future(7, async {
        let handles: Vec<_> = (0..BATCH)
            .map(|i| spawn_with_context(async move { black_box(i) }))
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
    }))
}

fn criterion_groups(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("otel spawn 1000/tokio");
    group.bench_function("tokio::spawn", |b| b.iter(|| bare(&runtime)));
    group.bench_function(
        "tokio::spawn(fut.with_current_context()) (OpenTelemetry)",
        |b| b.iter(|| otel(&runtime)),
    );
    group.bench_function(
        "contextvars spawn_with_context (context + OTel context)",
        |b| b.iter(|| ours(&runtime)),
    );
    group.finish();
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

/// Times `ours`, `otel` and `bare` in turn, each round in another order, and prints the medians.
fn interleaved(rounds: usize) {
    let runtime = runtime();
    let variants: [fn(&Runtime); 3] = [ours, otel, bare];
    let mut times: [Vec<Duration>; 3] = Default::default();
    let time = |f: fn(&Runtime)| {
        let start = Instant::now();
        f(&runtime);
        start.elapsed()
    };
    for _ in 0..20 {
        for f in variants {
            time(f);
        }
    }
    for round in 0..rounds {
        for i in 0..3 {
            // Rotates the order: 012, 120, 201, and back.
            let which = (round + i) % 3;
            times[which].push(time(variants[which]));
        }
    }
    let [ours, otel, bare] = times.map(median);
    println!(
        "interleaved, {rounds} rounds of spawn + join 1,000 tokio tasks, medians: contextvars \
         (context + OTel context) {ours:.1?}; OpenTelemetry with_current_context {otel:.1?}; bare \
         tokio::spawn {bare:.1?}. ours / OTel = {:.3}, ours / bare = {:.3}",
        ours.as_secs_f64() / otel.as_secs_f64(),
        ours.as_secs_f64() / bare.as_secs_f64(),
    );
}

fn main() {
    let mut criterion = shared::criterion().configure_from_args();
    criterion_groups(&mut criterion);
    criterion.final_summary();
    // `cargo test --benches` runs each bench once, briefly: a few rounds are enough there.
    let rounds = if std::env::args().any(|arg| arg == "--bench") {
        2_000
    } else {
        4
    };
    interleaved(rounds);
}
