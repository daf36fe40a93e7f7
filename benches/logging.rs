//! Logging with context fields against the idiomatic alternative, in the same run:
//! - one event formatted into `io::sink` with 1 and 8 context fields, versus the same fields
//!   recorded on an entered `info_span!` with the plain fmt subscriber;
//! - spawn-and-join of 1,000 tasks carrying the span (`spawn_with_context` with the `tracing`
//!   feature) versus `tokio::spawn(fut.in_current_span())` written by hand.

mod shared;

use std::hint::black_box;

use contextvars::tracing::{ContextFields, ContextFormat};
use contextvars::{Context, ContextVar};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tracing::{info, info_span, Dispatch, Instrument};

static FIELDS: [ContextVar<u64>; 8] = [
    ContextVar::new("f0"),
    ContextVar::new("f1"),
    ContextVar::new("f2"),
    ContextVar::new("f3"),
    ContextVar::new("f4"),
    ContextVar::new("f5"),
    ContextVar::new("f6"),
    ContextVar::new("f7"),
];

fn format_event(c: &mut Criterion) {
    let ours = Dispatch::new(
        tracing_subscriber::fmt()
            .map_fmt_fields(ContextFields::new)
            .map_event_format(ContextFormat::new)
            .with_writer(std::io::sink)
            .finish(),
    );
    let plain = Dispatch::new(
        tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .finish(),
    );
    let mut group = c.benchmark_group("format event");
    for n in [1usize, 8] {
        let mut ctx = Context::new();
        for (i, var) in FIELDS.iter().take(n).enumerate() {
            ctx = ctx.with_value(var, i as u64 * 1000);
        }
        tracing::dispatcher::with_default(&ours, || {
            ctx.run(|| {
                group.bench_function(BenchmarkId::new("contextvars context fields", n), |b| {
                    b.iter(|| info!(answer = black_box(42), "event"))
                });
            })
        });
        tracing::dispatcher::with_default(&plain, || {
            let span = match n {
                1 => info_span!("request", f0 = 0u64),
                _ => info_span!(
                    "request",
                    f0 = 0u64,
                    f1 = 1000u64,
                    f2 = 2000u64,
                    f3 = 3000u64,
                    f4 = 4000u64,
                    f5 = 5000u64,
                    f6 = 6000u64,
                    f7 = 7000u64
                ),
            };
            let _entered = span.enter();
            group.bench_function(BenchmarkId::new("fields on an entered span", n), |b| {
                b.iter(|| info!(answer = black_box(42), "event"))
            });
        });
    }
    group.finish();
}

fn spawn_with_span(c: &mut Criterion) {
    const BATCH: usize = 1_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let dispatch = Dispatch::new(
        tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .finish(),
    );
    let _ = tracing::dispatcher::set_global_default(dispatch);
    let mut group = c.benchmark_group("spawn 1000 carrying the span");
    group.bench_function("tokio::spawn(fut.in_current_span())", |b| {
        b.iter(|| {
            runtime.block_on(
                async {
                    let handles: Vec<_> = (0..BATCH)
                        .map(|i| tokio::spawn(async move { black_box(i) }.in_current_span()))
                        .collect();
                    for handle in handles {
                        handle.await.unwrap();
                    }
                }
                .instrument(info_span!("request")),
            )
        })
    });
    group.bench_function("contextvars spawn_with_context", |b| {
        b.iter(|| {
            runtime.block_on(
                FIELDS[0].scope_future(
                    7,
                    async {
                        let handles: Vec<_> = (0..BATCH)
                            .map(|i| {
                                contextvars::tokio::spawn_with_context(async move { black_box(i) })
                            })
                            .collect();
                        for handle in handles {
                            handle.await.unwrap();
                        }
                    }
                    .instrument(info_span!("request")),
                ),
            )
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = shared::criterion();
    targets = format_event, spawn_with_span
}
criterion_main!(benches);
