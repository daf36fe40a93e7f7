//! Spawn-and-join of a batch of 1,000 trivial tasks, per runtime: the runtime's bare spawn,
//! `spawn_with_context`, and (on tokio) OpenTelemetry's `with_current_context()` wrapper, each
//! with one context value set, in the same run.
//!
//! Then the usual shape: the batch spawned and joined *from inside a task* on a runtime with two
//! worker threads, with an 8-variable context (`* from a task` groups). There the spawning
//! worker and the one finishing a task are often different cores. Each runtime also has
//! `spawn_with_context` from a task whose context is empty: the same wrapper, capture and
//! installs, but no reference count to change, which separates the cost of the count from the
//! rest. Those rows are noisy on a 2-vCPU machine when the variants run one after another, so
//! `paired` also runs the variants interleaved, round by round, and prints the median of the
//! per-round ratios to bare (set `PAIRED=1` to run it:
//! `PAIRED=1 cargo bench --bench spawn --features tokio,async-std,smol -- paired`).

mod shared;

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use contextvars::{Context, ContextVar};
use criterion::{criterion_group, criterion_main, Criterion};

use shared::{otel_context, our_context};

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

/// Spawns and joins `BATCH` trivial tasks with `spawn`, from wherever it is called.
macro_rules! batch {
    ($spawn:expr) => {
        async {
            let handles: Vec<_> = (0..BATCH)
                .map(|i| $spawn(async move { black_box(i) }))
                .collect();
            for handle in handles {
                let _ = black_box(handle.await);
            }
        }
    };
}

/// One variant of a from-a-task row: runs one batch from inside a task, returns its time.
type Variant = (&'static str, Box<dyn FnMut() -> Duration>);

fn tokio_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap()
    })
}

/// `spawn_with_context` from inside a task that runs in `context()`.
fn tokio_ours(context: fn() -> Context) -> Box<dyn FnMut() -> Duration> {
    use contextvars::tokio::spawn_with_context;

    let runtime = tokio_runtime();
    Box::new(move || {
        runtime.block_on(async {
            let start = Instant::now();
            tokio::spawn(contextvars::ContextExt::with_context(
                batch!(spawn_with_context),
                context(),
            ))
            .await
            .unwrap();
            start.elapsed()
        })
    })
}

fn tokio_variants() -> Vec<Variant> {
    let runtime = tokio_runtime();
    vec![
        (
            "tokio::spawn",
            Box::new(move || {
                runtime.block_on(async {
                    let start = Instant::now();
                    tokio::spawn(batch!(tokio::spawn)).await.unwrap();
                    start.elapsed()
                })
            }),
        ),
        (
            "contextvars spawn_with_context",
            tokio_ours(|| our_context(8)),
        ),
        (
            "contextvars spawn_with_context, empty context",
            tokio_ours(Context::new),
        ),
        (
            "opentelemetry with_current_context",
            Box::new(move || {
                runtime.block_on(async {
                    let start = Instant::now();
                    let outer = batch!(|f| tokio::spawn(
                        opentelemetry::context::FutureExt::with_current_context(f)
                    ));
                    tokio::spawn(opentelemetry::context::FutureExt::with_context(
                        outer,
                        otel_context(8),
                    ))
                    .await
                    .unwrap();
                    start.elapsed()
                })
            }),
        ),
    ]
}

/// `spawn_with_context` from inside a task that runs in `context()`.
fn async_std_ours(context: fn() -> Context) -> Box<dyn FnMut() -> Duration> {
    use contextvars::async_std::spawn_with_context;

    Box::new(move || {
        async_std::task::block_on(async {
            let start = Instant::now();
            async_std::task::spawn(contextvars::ContextExt::with_context(
                batch!(spawn_with_context),
                context(),
            ))
            .await;
            start.elapsed()
        })
    })
}

fn async_std_variants() -> Vec<Variant> {
    vec![
        (
            "async_std::task::spawn",
            Box::new(|| {
                async_std::task::block_on(async {
                    let start = Instant::now();
                    async_std::task::spawn(batch!(async_std::task::spawn)).await;
                    start.elapsed()
                })
            }),
        ),
        (
            "contextvars spawn_with_context",
            async_std_ours(|| our_context(8)),
        ),
        (
            "contextvars spawn_with_context, empty context",
            async_std_ours(Context::new),
        ),
    ]
}

/// An executor run by two threads of its own.
fn smol_executor() -> &'static smol::Executor<'static> {
    static EXECUTOR: OnceLock<&'static smol::Executor<'static>> = OnceLock::new();
    EXECUTOR.get_or_init(|| {
        let executor: &'static smol::Executor<'static> = Box::leak(Box::new(smol::Executor::new()));
        for _ in 0..2 {
            std::thread::spawn(move || {
                smol::block_on(executor.run(smol::future::pending::<()>()));
            });
        }
        executor
    })
}

/// `spawn_with_context` from inside a task that runs in `context()`.
fn smol_ours(context: fn() -> Context) -> Box<dyn FnMut() -> Duration> {
    use contextvars::smol::ExecutorExt;

    let executor = smol_executor();
    Box::new(move || {
        let start = Instant::now();
        smol::block_on(executor.spawn(contextvars::ContextExt::with_context(
            batch!(|f| executor.spawn_with_context(f)),
            context(),
        )));
        start.elapsed()
    })
}

fn smol_variants() -> Vec<Variant> {
    let executor = smol_executor();
    vec![
        (
            "Executor::spawn",
            Box::new(move || {
                let start = Instant::now();
                smol::block_on(executor.spawn(batch!(|f| executor.spawn(f))));
                start.elapsed()
            }),
        ),
        (
            "contextvars spawn_with_context",
            smol_ours(|| our_context(8)),
        ),
        (
            "contextvars spawn_with_context, empty context",
            smol_ours(Context::new),
        ),
    ]
}

fn from_a_task(c: &mut Criterion) {
    // async-std's executor: two threads, like the others.
    if std::env::var_os("ASYNC_STD_THREAD_COUNT").is_none() {
        std::env::set_var("ASYNC_STD_THREAD_COUNT", "2");
    }
    for (runtime, variants) in [
        ("tokio", tokio_variants()),
        ("async-std", async_std_variants()),
        ("smol", smol_variants()),
    ] {
        let mut group = c.benchmark_group(format!("spawn 1000 from a task/{runtime}"));
        for (name, mut run) in variants {
            group.bench_function(name, |b| {
                b.iter_custom(|iters| (0..iters).map(|_| run()).sum())
            });
        }
        group.finish();
    }
}

/// The from-a-task rows again, interleaved: each round runs every variant `PER_ROUND` batches
/// in turn; the ratio of each variant to the first (bare) is taken per round, and the median
/// over `ROUNDS` rounds is printed.
fn paired(_: &mut Criterion) {
    if std::env::var_os("PAIRED").is_none() {
        return;
    }
    const ROUNDS: usize = 41;
    const PER_ROUND: usize = 20;
    for (runtime, mut variants) in [
        ("tokio", tokio_variants()),
        ("async-std", async_std_variants()),
        ("smol", smol_variants()),
    ] {
        // Warm up every variant.
        for (_, run) in variants.iter_mut() {
            for _ in 0..PER_ROUND {
                run();
            }
        }
        let mut times = vec![Vec::new(); variants.len()];
        for round in 0..ROUNDS {
            // Alternate the order, so that no variant always follows the same one.
            let order: Vec<usize> = if round % 2 == 0 {
                (0..variants.len()).collect()
            } else {
                (0..variants.len()).rev().collect()
            };
            for i in order {
                let total: Duration = (0..PER_ROUND).map(|_| (variants[i].1)()).sum();
                times[i].push(total / PER_ROUND as u32);
            }
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let bare = median(times[0].iter().map(Duration::as_secs_f64).collect());
        println!(
            "paired, from a task/{runtime}: {} median {:.1} µs",
            variants[0].0,
            bare * 1e6
        );
        for i in 1..variants.len() {
            let ratios: Vec<f64> = times[i]
                .iter()
                .zip(&times[0])
                .map(|(t, b)| t.as_secs_f64() / b.as_secs_f64())
                .collect();
            let own = median(times[i].iter().map(Duration::as_secs_f64).collect());
            println!(
                "paired, from a task/{runtime}: {} median {:.1} µs; median of paired ratios to bare {:.3}",
                variants[i].0,
                own * 1e6,
                median(ratios)
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = shared::criterion();
    targets = tokio_spawn, async_std_spawn, smol_spawn, from_a_task, paired
}
criterion_main!(benches);
