//! Thread pools with and without context, each figure beside its bare baseline.
//!
//! - Parallel iterators: `(0..n).into_par_iter().map(..).sum()` bare and with
//!   `.with_current_context()`, for n = 10^6 and 10^7 and a cheap map.
//! - Jobs sent to a rayon pool, their results sent back: `pool.spawn` with a channel by hand,
//!   `spawn_with_context` with a channel, `run_in_pool_with_context` (joined and awaited); and
//!   `pool.install` against `install_with_context`.
//! - One std thread: `std::thread::spawn`, `thread::spawn_with_context` and
//!   `thread::run_in_pool_with_context`.
//!
//! Every measurement runs inside a context of 8 variables, so that capturing it is real work.
//!
//! The parallel-iterator rows are noisy on a 2-vCPU machine when the variants run one after
//! another, so `paired` also runs them interleaved, round by round, and prints the median of the
//! per-round ratios to bare (set `PAIRED=1` to run it:
//! `PAIRED=1 cargo bench --bench pools --features rayon -- paired`).

mod shared;

use std::hint::black_box;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use contextvars::rayon::{run_in_pool_with_context, ThreadPoolExt};
use contextvars::{thread, ContextExt};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rayon::prelude::*;

use shared::{our_context, TARGET};

/// The cheap per-item work: a few integer operations.
fn cheap(x: usize) -> usize {
    x.wrapping_mul(3) ^ (x >> 2)
}

fn par_iter(c: &mut Criterion) {
    let mut group = c.benchmark_group("par_iter map sum");
    group.measurement_time(Duration::from_secs(6));
    our_context(8).run(|| {
        for n in [1_000_000usize, 10_000_000] {
            group.bench_function(BenchmarkId::new("rayon bare", n), |b| {
                b.iter(|| (0..black_box(n)).into_par_iter().map(cheap).sum::<usize>())
            });
            group.bench_function(BenchmarkId::new("with_current_context", n), |b| {
                b.iter(|| {
                    (0..black_box(n))
                        .into_par_iter()
                        .with_current_context()
                        .map(cheap)
                        .sum::<usize>()
                })
            });
        }
    });
    group.finish();
}

/// Jobs sent to a rayon pool per measured iteration, so that the figures are the cost of a job
/// rather than the latency of waking a sleeping worker.
const JOBS: usize = 100;

fn pool_jobs(c: &mut Criterion) {
    // One worker, so that it and the submitting thread each have a core of a 2-core machine.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    our_context(8).run(|| {
        let mut group = c.benchmark_group("rayon: 100 jobs, each result sent back");
        group.bench_function("pool.spawn + channel (by hand)", |b| {
            b.iter(|| {
                let (tx, rx) = mpsc::channel();
                for _ in 0..JOBS {
                    let tx = tx.clone();
                    pool.spawn(move || tx.send(TARGET.get()).unwrap());
                }
                drop(tx);
                black_box(rx.iter().count())
            })
        });
        group.bench_function("pool.spawn_with_context + channel", |b| {
            b.iter(|| {
                let (tx, rx) = mpsc::channel();
                for _ in 0..JOBS {
                    let tx = tx.clone();
                    pool.spawn_with_context(move || tx.send(TARGET.get()).unwrap());
                }
                drop(tx);
                black_box(rx.iter().count())
            })
        });
        group.bench_function("run_in_pool_with_context + join", |b| {
            b.iter(|| {
                let handles: Vec<_> = (0..JOBS)
                    .map(|_| run_in_pool_with_context(&pool, || TARGET.get()))
                    .collect();
                for handle in handles {
                    black_box(handle.join().unwrap());
                }
            })
        });
        group.bench_function("run_in_pool_with_context + await", |b| {
            b.iter(|| {
                let handles: Vec<_> = (0..JOBS)
                    .map(|_| run_in_pool_with_context(&pool, || TARGET.get()))
                    .collect();
                futures::executor::block_on(async {
                    for handle in handles {
                        black_box(handle.await.unwrap());
                    }
                })
            })
        });
        group.finish();

        let mut group = c.benchmark_group("rayon: one install");
        group.bench_function("pool.install", |b| {
            b.iter(|| pool.install(|| black_box(TARGET.get())))
        });
        group.bench_function("pool.install_with_context", |b| {
            b.iter(|| pool.install_with_context(|| black_box(TARGET.get())))
        });
        group.finish();
    });
}

fn std_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("std: one thread, joined");
    our_context(8).run(|| {
        group.bench_function("std::thread::spawn", |b| {
            b.iter(|| black_box(std::thread::spawn(|| TARGET.get()).join().unwrap()))
        });
        group.bench_function("thread::spawn_with_context", |b| {
            b.iter(|| black_box(thread::spawn_with_context(|| TARGET.get()).join().unwrap()))
        });
        group.bench_function("thread::run_in_pool_with_context", |b| {
            b.iter(|| {
                black_box(
                    thread::run_in_pool_with_context(|| TARGET.get())
                        .join()
                        .unwrap(),
                )
            })
        });
    });
    group.finish();
}

/// The parallel-iterator rows again, interleaved: each round runs bare and with the adaptor
/// `PER_ROUND` times each, in alternating order; the median over `ROUNDS` rounds of the ratio of
/// the two is printed.
fn paired(_: &mut Criterion) {
    if std::env::var_os("PAIRED").is_none() {
        return;
    }
    const ROUNDS: usize = 41;
    const PER_ROUND: usize = 10;
    let bare = |n: usize| (0..black_box(n)).into_par_iter().map(cheap).sum::<usize>();
    let ours = |n: usize| {
        (0..black_box(n))
            .into_par_iter()
            .with_current_context()
            .map(cheap)
            .sum::<usize>()
    };
    let time = |f: &dyn Fn(usize) -> usize, n: usize| {
        let start = Instant::now();
        for _ in 0..PER_ROUND {
            black_box(f(n));
        }
        start.elapsed().as_secs_f64() / PER_ROUND as f64
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    our_context(8).run(|| {
        for n in [1_000_000usize, 10_000_000] {
            // Warm up both.
            time(&bare, n);
            time(&ours, n);
            let (mut bare_times, mut our_times) = (Vec::new(), Vec::new());
            for round in 0..ROUNDS {
                if round % 2 == 0 {
                    bare_times.push(time(&bare, n));
                    our_times.push(time(&ours, n));
                } else {
                    our_times.push(time(&ours, n));
                    bare_times.push(time(&bare, n));
                }
            }
            let ratios = our_times.iter().zip(&bare_times).map(|(o, b)| o / b).collect();
            println!(
                "paired, par_iter map sum {n}: rayon bare median {:.1} µs; with_current_context median {:.1} µs; median of paired ratios to bare {:.3}",
                median(bare_times) * 1e6,
                median(our_times) * 1e6,
                median(ratios)
            );
        }
    });
}

criterion_group! {
    name = benches;
    config = shared::criterion();
    targets = par_iter, pool_jobs, std_thread, paired
}
criterion_main!(benches);
