//! Context while a future is dropped, and the lifetime of stored values.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use contextvars::{Context, ContextExt, ContextVar};

use common::{DropCounter, Yield};

static ID: ContextVar<u32> = ContextVar::new("id");

/// Reports the context it sees when dropped.
struct ReportOnDrop(mpsc::Sender<Option<u32>>);

impl Drop for ReportOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(ID.get());
    }
}

#[test]
fn the_inner_future_is_dropped_inside_the_context() {
    let (tx, rx) = mpsc::channel();
    let mut task = Box::pin(
        async move {
            let _report = ReportOnDrop(tx);
            ID.set(2); // what the task set is what its destructors see
            Yield(1).await;
            unreachable!("dropped before completion");
        }
        .with_context(Context::new().with_value(&ID, 1)),
    );
    assert!(common::poll_once(task.as_mut()).is_pending());
    Context::new().with_value(&ID, 99).run(|| drop(task));
    assert_eq!(rx.recv().unwrap(), Some(2));
    assert_eq!(ID.get(), None);
}

#[test]
fn a_never_polled_future_is_also_dropped_inside_the_context() {
    let (tx, rx) = mpsc::channel();
    let report = ReportOnDrop(tx);
    let task = async move {
        let _report = report;
    }
    .with_context(Context::new().with_value(&ID, 5));
    drop(task);
    assert_eq!(rx.recv().unwrap(), Some(5));
}

#[test]
fn values_are_dropped_with_the_last_context_holding_them() {
    static HELD: ContextVar<DropCounter> = ContextVar::new("held");
    let drops = Arc::new(AtomicUsize::new(0));
    let ctx = Context::new().with_value(&HELD, DropCounter(drops.clone()));
    let clone = ctx.clone();
    let derived = ctx.with_value(&ID, 1);
    let captured = ctx.run(Context::current);
    drop(ctx);
    drop(clone);
    drop(captured);
    assert_eq!(drops.load(Ordering::SeqCst), 0, "still held by `derived`");
    let replaced = derived.with_value(&HELD, DropCounter(Arc::new(AtomicUsize::new(0))));
    let removed = derived.without(&HELD);
    drop(derived);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "no context holds it any more"
    );
    drop((replaced, removed));
}

#[test]
fn values_set_in_a_frame_are_dropped_when_the_frame_ends() {
    static HELD: ContextVar<DropCounter> = ContextVar::new("held");
    let drops = Arc::new(AtomicUsize::new(0));
    Context::new().run(|| {
        HELD.set(DropCounter(drops.clone()));
        HELD.set(DropCounter(drops.clone()));
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the overwritten value");
    });
    assert_eq!(drops.load(Ordering::SeqCst), 2);

    let task = async {
        HELD.set(DropCounter(drops.clone()));
        Yield(1).await;
    }
    .with_context(Context::new());
    futures::executor::block_on(task);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

#[test]
fn a_destructor_may_use_the_api_while_a_context_is_replaced() {
    struct SetsOnDrop;
    impl Drop for SetsOnDrop {
        fn drop(&mut self) {
            // Runs while `set` replaces the context holding this value.
            ID.set(ID.get().unwrap_or(0) + 100);
        }
    }
    static GUARDED: ContextVar<SetsOnDrop> = ContextVar::opaque("guarded");
    Context::new().run(|| {
        GUARDED.set(SetsOnDrop);
        ID.set(1);
        GUARDED.remove();
        assert_eq!(ID.get(), Some(101));
    });
}
