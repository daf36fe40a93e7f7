//! Spawn-and-join of a batch of 1,000 trivial tasks, per runtime: the runtime's bare spawn,
//! `spawn_with_context`, and (on tokio) OpenTelemetry's `with_current_context()` wrapper, each
//! with one context value set, in the same run.

mod shared;

use std::hint::black_box;

use contextvars::ContextVar;
use criterion::{criterion_group, criterion_main, Criterion};

const BATCH: usize = 1_000;

static REQUEST_ID: ContextVar<u64> = ContextVar::new("request_id");

#[derive(Clone, Copy)]
struct OtelRequestId(#[allow(dead_code)] u64);

fn tokio_spawn(c: &mut Criterion) {
    use contextvars::tokio::spawn_with_context;
    use opentelemetry::context::FutureExt as _;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("spawn 1000/tokio");
    group.bench_function("tokio::spawn", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let handles: Vec<_> = (0..BATCH)
                    .map(|i| tokio::spawn(async move { black_box(i) }))
                    .collect();
                for handle in handles {
                    handle.await.unwrap();
                }
            })
        })
    });
    group.bench_function("contextvars spawn_with_context", |b| {
        b.iter(|| {
            runtime.block_on(REQUEST_ID.scope_future(7, async {
                let handles: Vec<_> = (0..BATCH)
                    .map(|i| spawn_with_context(async move { black_box(i) }))
                    .collect();
                for handle in handles {
                    handle.await.unwrap();
                }
            }))
        })
    });
    group.bench_function("opentelemetry with_current_context", |b| {
        b.iter(|| {
            let _otel = opentelemetry::Context::current_with_value(OtelRequestId(7)).attach();
            runtime.block_on(async {
                let handles: Vec<_> = (0..BATCH)
                    .map(|i| tokio::spawn(async move { black_box(i) }.with_current_context()))
                    .collect();
                for handle in handles {
                    handle.await.unwrap();
                }
            })
        })
    });
    group.finish();
}

fn async_std_spawn(c: &mut Criterion) {
    use contextvars::async_std::spawn_with_context;

    let mut group = c.benchmark_group("spawn 1000/async-std");
    group.bench_function("async_std::task::spawn", |b| {
        b.iter(|| {
            async_std::task::block_on(async {
                let handles: Vec<_> = (0..BATCH)
                    .map(|i| async_std::task::spawn(async move { black_box(i) }))
                    .collect();
                for handle in handles {
                    handle.await;
                }
            })
        })
    });
    group.bench_function("contextvars spawn_with_context", |b| {
        b.iter(|| {
            async_std::task::block_on(REQUEST_ID.scope_future(7, async {
                let handles: Vec<_> = (0..BATCH)
                    .map(|i| spawn_with_context(async move { black_box(i) }))
                    .collect();
                for handle in handles {
                    handle.await;
                }
            }))
        })
    });
    group.finish();
}

fn smol_spawn(c: &mut Criterion) {
    use contextvars::smol::ExecutorExt;

    let executor = smol::Executor::new();
    let mut group = c.benchmark_group("spawn 1000/smol");
    group.bench_function("Executor::spawn", |b| {
        b.iter(|| {
            smol::block_on(executor.run(async {
                let tasks: Vec<_> = (0..BATCH)
                    .map(|i| executor.spawn(async move { black_box(i) }))
                    .collect();
                for task in tasks {
                    task.await;
                }
            }))
        })
    });
    group.bench_function("contextvars spawn_with_context", |b| {
        b.iter(|| {
            smol::block_on(executor.run(REQUEST_ID.scope_future(7, async {
                let tasks: Vec<_> = (0..BATCH)
                    .map(|i| executor.spawn_with_context(async move { black_box(i) }))
                    .collect();
                for task in tasks {
                    task.await;
                }
            })))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = shared::criterion();
    targets = tokio_spawn, async_std_spawn, smol_spawn
}
criterion_main!(benches);
