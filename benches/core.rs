//! Core operations at 1, 8, 64 and 1024 variables, each beside its floor and its peers.
//!
//! Floors: a `thread_local!` read plus `Arc::clone` and drop (the least a capture can cost) and
//! a thread-local pointer swap in and out (the least an install can cost). Peers:
//! `opentelemetry::Context` and `tokio::task_local!`.

mod shared;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use contextvars::{Context, ContextExt, ContextVar};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

use shared::{otel_context, our_context, unset_filler, OtelFiller, OtelTarget, SIZES, TARGET};

thread_local! {
    static FLOOR_CAPTURE: RefCell<Option<Arc<[u64; 4]>>> = const { RefCell::new(None) };
    static FLOOR_SLOT: Cell<Option<Arc<[u64; 4]>>> = const { Cell::new(None) };
}

tokio::task_local! {
    static TASK_LOCAL: u64;
}

fn capture(c: &mut Criterion) {
    let mut group = c.benchmark_group("capture");
    FLOOR_CAPTURE.with(|slot| *slot.borrow_mut() = Some(Arc::new([1, 2, 3, 4])));
    for n in SIZES {
        group.bench_function(
            BenchmarkId::new("floor: thread_local + Arc::clone", n),
            |b| b.iter(|| FLOOR_CAPTURE.with(|slot| black_box(slot.borrow().clone()))),
        );
        our_context(n).run(|| {
            group.bench_function(BenchmarkId::new("contextvars::Context::current", n), |b| {
                b.iter(|| black_box(Context::current()))
            });
        });
        let _otel = otel_context(n).attach();
        group.bench_function(
            BenchmarkId::new("opentelemetry::Context::current", n),
            |b| b.iter(|| black_box(opentelemetry::Context::current())),
        );
    }
    group.finish();
}

/// A value type of the user's, with a derived `Clone`.
#[derive(Clone, Copy, Debug)]
struct UserId(#[allow(dead_code)] u64);

static USER_TYPED: ContextVar<UserId> = ContextVar::new("user_typed");
static NAME: ContextVar<String> = ContextVar::new("name");

/// OpenTelemetry's counterpart of `NAME`.
#[derive(Clone)]
struct OtelName(#[allow(dead_code)] String);

fn get(c: &mut Criterion) {
    let mut group = c.benchmark_group("get");
    for n in SIZES {
        TASK_LOCAL.sync_scope(42, || {
            group.bench_function(BenchmarkId::new("tokio::task_local get", n), |b| {
                b.iter(|| black_box(TASK_LOCAL.get()))
            });
            // The same read returning an `Option`, as `ContextVar::get` does.
            group.bench_function(BenchmarkId::new("tokio::task_local try_with", n), |b| {
                b.iter(|| black_box(TASK_LOCAL.try_with(|v| *v).ok()))
            });
        });
        our_context(n).run(|| {
            group.bench_function(BenchmarkId::new("contextvars get", n), |b| {
                b.iter(|| black_box(TARGET.get()))
            });
            group.bench_function(BenchmarkId::new("contextvars get (value)", n), |b| {
                b.iter(|| black_box(TARGET.get().unwrap_or(0)))
            });
        });
        // A type of the user's: its `Clone` may call back into the crate, so `get` clones the
        // value out of a snapshot of the current context. A `String`'s `Clone` allocates, and
        // the global allocator may call back too: the same path.
        our_context(n)
            .with_value(&USER_TYPED, UserId(42))
            .with_value(&NAME, "request-0123456789".to_string())
            .run(|| {
                group.bench_function(BenchmarkId::new("contextvars get (user type)", n), |b| {
                    b.iter(|| black_box(USER_TYPED.get()))
                });
                group.bench_function(BenchmarkId::new("contextvars get (String)", n), |b| {
                    b.iter(|| black_box(NAME.get()))
                });
            });
        let _otel = otel_context(n)
            .with_value(OtelName("request-0123456789".to_string()))
            .attach();
        group.bench_function(BenchmarkId::new("opentelemetry map_current get", n), |b| {
            b.iter(|| {
                black_box(opentelemetry::Context::map_current(|cx| {
                    cx.get::<OtelTarget>().copied()
                }))
            })
        });
        group.bench_function(
            BenchmarkId::new("opentelemetry map_current get (String)", n),
            |b| {
                b.iter(|| {
                    black_box(opentelemetry::Context::map_current(|cx| {
                        cx.get::<OtelName>().cloned()
                    }))
                })
            },
        );
    }
    group.finish();
}

fn set(c: &mut Criterion) {
    let mut group = c.benchmark_group("with_value");
    let new_var = unset_filler();
    for n in SIZES {
        let ours = our_context(n);
        group.bench_function(BenchmarkId::new("contextvars with_value", n), |b| {
            b.iter(|| black_box(ours.with_value(new_var, 7)))
        });
        let otel = otel_context(n);
        group.bench_function(BenchmarkId::new("opentelemetry with_value", n), |b| {
            b.iter(|| black_box(otel.with_value(OtelFiller::<2000>(7))))
        });
        ours.run(|| {
            group.bench_function(BenchmarkId::new("contextvars set (in a frame)", n), |b| {
                b.iter(|| TARGET.set(black_box(7)))
            });
        });
    }
    group.finish();
}

fn attach(c: &mut Criterion) {
    let mut group = c.benchmark_group("attach+drop");
    for n in SIZES {
        let ours = our_context(n);
        group.bench_function(BenchmarkId::new("contextvars attach", n), |b| {
            b.iter(|| drop(black_box(ours.clone().attach())))
        });
        let otel = otel_context(n);
        group.bench_function(BenchmarkId::new("opentelemetry attach", n), |b| {
            b.iter(|| drop(black_box(otel.clone().attach())))
        });
    }
    group.finish();
}

fn run(c: &mut Criterion) {
    let mut group = c.benchmark_group("run");
    for n in SIZES {
        let ours = our_context(n);
        group.bench_function(BenchmarkId::new("contextvars Context::run", n), |b| {
            b.iter(|| ours.run(|| black_box(1)))
        });
        group.bench_function(BenchmarkId::new("tokio::task_local sync_scope", n), |b| {
            b.iter(|| TASK_LOCAL.sync_scope(42, || black_box(1)))
        });
    }
    group.finish();
}

/// A future that never completes: every poll does the same (nothing).
struct Pending;

impl Future for Pending {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// The install floor: swap a pointer into a thread-local and back around the poll.
struct FloorSwap {
    slot: Option<Arc<[u64; 4]>>,
    inner: Pending,
}

impl Future for FloorSwap {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = &mut *self;
        let outer = FLOOR_SLOT.replace(this.slot.take());
        let result = Pin::new(&mut this.inner).poll(cx);
        this.slot = FLOOR_SLOT.replace(outer);
        result
    }
}

fn poll(c: &mut Criterion) {
    let mut group = c.benchmark_group("poll");
    let waker = futures::task::noop_waker();
    let mut task_cx = TaskContext::from_waker(&waker);
    for n in SIZES {
        let mut bare = Box::pin(Pending);
        group.bench_function(BenchmarkId::new("bare poll", n), |b| {
            b.iter(|| black_box(bare.as_mut().poll(&mut task_cx)))
        });
        let mut floor = Box::pin(FloorSwap {
            slot: Some(Arc::new([1, 2, 3, 4])),
            inner: Pending,
        });
        group.bench_function(BenchmarkId::new("floor: thread_local swap", n), |b| {
            b.iter(|| black_box(floor.as_mut().poll(&mut task_cx)))
        });
        let mut ours = Box::pin(ContextExt::with_context(Pending, our_context(n)));
        group.bench_function(BenchmarkId::new("contextvars WithContext", n), |b| {
            b.iter(|| black_box(ours.as_mut().poll(&mut task_cx)))
        });
        let mut otel = Box::pin(opentelemetry::context::FutureExt::with_context(
            Pending,
            otel_context(n),
        ));
        group.bench_function(BenchmarkId::new("opentelemetry WithContext", n), |b| {
            b.iter(|| black_box(otel.as_mut().poll(&mut task_cx)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = shared::criterion();
    targets = capture, get, set, attach, run, poll
}
criterion_main!(benches);
