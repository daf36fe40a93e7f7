//! Generating a request id (`propagation::unique_request_id`): the mixed ids beside the
//! previous generator (a random prefix, then the bare counter), both formatted as 32 hex
//! digits.

use std::hash::{BuildHasher, RandomState};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

mod shared;

use contextvars::propagation::unique_request_id;
use criterion::{criterion_group, criterion_main, Criterion};

/// The generator before 0.1.0's ids were mixed: `2d6a6d23ed1f3c8b0000000000000000`, then `..01`.
fn prefix_then_counter() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| RandomState::new().hash_one(std::process::id()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix:016x}{n:016x}")
}

fn request_id(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_id");
    group.bench_function("unique_request_id (mixed counter)", |b| {
        b.iter(|| black_box(unique_request_id()))
    });
    group.bench_function("previous: prefix then counter", |b| {
        b.iter(|| black_box(prefix_then_counter()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = shared::criterion();
    targets = request_id
}
criterion_main!(benches);
