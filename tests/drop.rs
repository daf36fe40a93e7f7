//! Context while a future is dropped, and the lifetime of stored values.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use contextvars::{Context, ContextExt, ContextVar};

use common::report::ReportOnDrop;
use common::{DropCounter, Yield};

static ID: ContextVar<u32> = ContextVar::new("id");

#[test]
fn the_inner_future_is_dropped_inside_the_context() {
    let (tx, rx) = mpsc::channel();
    let mut task = Box::pin(
        async move {
            let _report = ReportOnDrop::new(tx, || ID.get());
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
    let report = ReportOnDrop::new(tx, || ID.get());
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
fn a_destructor_may_use_the_api_while_a_context_is_replaced_and_its_sets_stay_with_it() {
    struct SetsOnDrop(mpsc::Sender<(Option<u32>, bool, Option<u32>)>);
    impl Drop for SetsOnDrop {
        fn drop(&mut self) {
            // Runs while `remove` replaces the context holding this value: in the empty
            // context, in a frame of its own.
            let seen = ID.get();
            let set = ID.try_set(100).is_ok();
            let _ = self.0.send((seen, set, ID.get()));
        }
    }
    static GUARDED: ContextVar<SetsOnDrop> = ContextVar::opaque("guarded");
    let (tx, rx) = mpsc::channel();
    Context::new().run(|| {
        GUARDED.set(SetsOnDrop(tx));
        ID.set(1);
        GUARDED.remove();
        assert_eq!(
            ID.get(),
            Some(1),
            "the destructor's set stayed in its own frame"
        );
    });
    assert_eq!(rx.recv().unwrap(), (None, true, Some(100)));
    assert_eq!(ID.get(), None);
}

/// Sets `ID` when dropped: what it sets must end with it.
struct SetsIdOnDrop;

impl Drop for SetsIdOnDrop {
    fn drop(&mut self) {
        ID.set(666);
    }
}

static SETS_ON_DROP: ContextVar<SetsIdOnDrop> = ContextVar::opaque("sets_on_drop");

#[test]
fn what_a_value_destructor_sets_when_run_ends_stays_with_it() {
    Context::new().run(|| SETS_ON_DROP.set(SetsIdOnDrop));
    assert_eq!(ID.get(), None);
    ID.scope(1, || {
        Context::new().run(|| SETS_ON_DROP.set(SetsIdOnDrop));
        assert_eq!(ID.get(), Some(1));
    });
}

#[test]
fn what_a_value_destructor_sets_when_a_task_is_dropped_stays_with_it() {
    let task = async { SETS_ON_DROP.set(SetsIdOnDrop) }.with_context(Context::new());
    futures::executor::block_on(task);
    assert_eq!(ID.get(), None);
    let pending = async {
        SETS_ON_DROP.set(SetsIdOnDrop);
        Yield(1).await;
    }
    .with_context(Context::new());
    let mut pending = Box::pin(pending);
    assert!(common::poll_once(pending.as_mut()).is_pending());
    ID.scope(1, || {
        drop(pending);
        assert_eq!(ID.get(), Some(1));
    });
}

#[test]
fn what_a_value_destructor_sets_when_a_guard_drops_stays_with_it() {
    Context::new().run(|| {
        let guard = Context::new().attach();
        SETS_ON_DROP.set(SetsIdOnDrop);
        drop(guard);
        assert_eq!(ID.get(), None);
    });
}

/// Records what `ID` it sees when dropped (0 for none, else the id + 1), then sets `ID`.
struct ReportsThenSets(Arc<AtomicUsize>);

impl Drop for ReportsThenSets {
    fn drop(&mut self) {
        self.0
            .store(ID.get().map_or(0, |id| id as usize + 1), Ordering::SeqCst);
        ID.set(666);
    }
}

/// Contexts holding only plain values (integers, strings) are dropped without a frame of their
/// own, as nothing of the user's runs then. A value with a destructor among them must still be
/// dropped in a frame of its own, in the empty context, however the map holding it was made:
/// small or large, the value added first or last, the map shrunk back to its small form, or the
/// value reached only through an older snapshot's shared entries.
#[test]
fn a_destructor_among_plain_values_still_runs_in_a_frame_of_its_own() {
    static PLAIN: [ContextVar<u64>; 24] = [const { ContextVar::new("plain") }; 24];
    static TEXT: ContextVar<String> = ContextVar::new("text");
    static SETS: ContextVar<ReportsThenSets> = ContextVar::opaque("sets");

    fn plain(mut ctx: Context, vars: std::ops::Range<usize>) -> Context {
        for (i, var) in PLAIN[vars].iter().enumerate() {
            ctx = ctx.with_value(var, i as u64);
        }
        ctx
    }

    /// A context holding the value, made some way.
    type Shape = (&'static str, fn(ReportsThenSets) -> Context);

    let shapes: [Shape; 6] = [
        ("small, the value first", |value| {
            plain(Context::new().with_value(&SETS, value), 0..3)
        }),
        ("small, the value last", |value| {
            plain(Context::new(), 0..3)
                .with_value(&TEXT, "t".into())
                .with_value(&SETS, value)
        }),
        ("large, the value first", |value| {
            plain(Context::new().with_value(&SETS, value), 0..24)
        }),
        ("large, the value last", |value| {
            plain(Context::new(), 0..24).with_value(&SETS, value)
        }),
        ("large shrunk back to small", |value| {
            let mut ctx = plain(Context::new().with_value(&SETS, value), 0..24);
            for var in &PLAIN[2..24] {
                ctx = ctx.without(var);
            }
            assert_eq!(ctx.len(), 3);
            ctx
        }),
        ("only an older snapshot held the value's entry", |value| {
            let older = plain(Context::new(), 0..24).with_value(&SETS, value);
            // Shares `older`'s trie nodes, the value's among them.
            let newer = older.with_value(&PLAIN[0], 99);
            drop(older);
            newer
        }),
    ];
    for (shape, build) in shapes {
        let seen = Arc::new(AtomicUsize::new(usize::MAX));
        let ctx = build(ReportsThenSets(seen.clone()));
        // Plain contexts without the value drop (without a frame) next to it.
        let plain_only = plain(Context::new(), 0..3).with_value(&TEXT, "t".into());
        ID.scope(1, || {
            drop(plain_only);
            assert_eq!(seen.load(Ordering::SeqCst), usize::MAX, "{shape}: not yet");
            drop(ctx);
            assert_eq!(
                ID.get(),
                Some(1),
                "{shape}: the destructor's set stayed in its frame"
            );
        });
        assert_eq!(
            seen.load(Ordering::SeqCst),
            0,
            "{shape}: the destructor ran, in the empty context"
        );
        assert_eq!(ID.get(), None);
    }
}
