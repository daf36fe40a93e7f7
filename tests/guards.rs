//! `attach` guards, including the rule for out-of-order drops.

mod common;

use contextvars::{Context, ContextExt, ContextVar};

static ID: ContextVar<u32> = ContextVar::new("id");

fn ctx(n: u32) -> Context {
    Context::new().with_value(&ID, n)
}

#[test]
fn in_order_drops_restore_step_by_step() {
    let a = ctx(1).attach();
    let b = ctx(2).attach();
    assert_eq!(ID.get(), Some(2));
    drop(b);
    assert_eq!(ID.get(), Some(1));
    drop(a);
    assert_eq!(ID.get(), None);
}

#[test]
fn out_of_order_drops_keep_the_newest_guard_current_and_end_where_they_began() {
    Context::new().run(|| {
        ID.set(0);
        let a = ctx(1).attach();
        let b = ctx(2).attach();
        let c = ctx(3).attach();
        drop(b); // middle
        assert_eq!(ID.get(), Some(3));
        drop(c); // newest: back to the newest still alive
        assert_eq!(ID.get(), Some(1));
        drop(a);
        assert_eq!(ID.get(), Some(0));

        // Oldest first.
        let a = ctx(1).attach();
        let b = ctx(2).attach();
        drop(a);
        assert_eq!(ID.get(), Some(2));
        drop(b);
        assert_eq!(ID.get(), Some(0));
    });
}

#[test]
fn sets_made_under_a_guard_are_discarded_with_it() {
    Context::new().run(|| {
        let guard = ctx(1).attach();
        ID.set(5);
        assert_eq!(ID.get(), Some(5));
        drop(guard);
        assert_eq!(ID.get(), None);
    });
}

#[test]
fn a_guard_dropped_in_an_inner_frame_takes_effect_when_its_frame_resumes() {
    Context::new().run(|| {
        let guard = ctx(1).attach();
        Context::new().with_value(&ID, 7).run(move || {
            drop(guard);
            // The inner frame is left alone...
            assert_eq!(ID.get(), Some(7));
        });
        // ...and the guard's own frame is back to what it was before the attach.
        assert_eq!(ID.get(), None);
    });
    assert_eq!(ID.get(), None);
}

#[test]
fn a_guard_leaked_out_of_an_inner_frame_is_harmless() {
    Context::new().run(|| {
        ID.set(0);
        let leaked = ctx(1).run(|| ctx(2).attach());
        assert_eq!(ID.get(), Some(0));
        let a = ctx(3).attach();
        drop(leaked);
        assert_eq!(ID.get(), Some(3));
        drop(a);
        assert_eq!(ID.get(), Some(0));
    });
}

#[test]
fn many_guards_in_shuffled_drop_order() {
    // A fixed permutation of 0..32 (multiplication by 13 modulo 32 is a bijection).
    let order: Vec<usize> = (0..32).map(|i| (i * 13) % 32).collect();
    Context::new().run(|| {
        ID.set(1000);
        let mut guards: Vec<Option<_>> = (0..32).map(|i| Some(ctx(i).attach())).collect();
        let mut alive: Vec<usize> = (0..32).collect();
        for index in order {
            guards[index] = None;
            alive.retain(|&i| i != index);
            let expected = alive.last().map(|&i| i as u32).unwrap_or(1000);
            assert_eq!(ID.get(), Some(expected));
        }
    });
}

// A guard dropped inside a nested frame must not leave its own frame's context behind.

#[test]
fn a_guard_dropped_inside_a_scope_restores_its_frame_when_the_scope_ends() {
    let guard = ctx(1).attach();
    ID.scope(2, move || drop(guard));
    assert_eq!(ID.get(), None);
}

#[test]
fn a_guard_dropped_inside_run_restores_its_frame_when_run_ends() {
    Context::new().run(|| {
        ID.set(0);
        let guard = ctx(1).attach();
        ctx(2).run(move || drop(guard));
        assert_eq!(ID.get(), Some(0));
    });
    assert_eq!(ID.get(), None);
}

#[test]
fn a_guard_dropped_inside_a_with_context_poll_restores_its_frame() {
    let guard = ctx(1).attach();
    let seen = futures::executor::block_on(
        async move {
            drop(guard);
            ID.get()
        }
        .with_context(ctx(2)),
    );
    assert_eq!(seen, Some(2));
    assert_eq!(ID.get(), None);
}

#[test]
fn guards_dropped_deep_inside_nested_frames_settle_frame_by_frame() {
    Context::new().run(|| {
        ID.set(0);
        let outer = ctx(1).attach();
        ctx(10).run(|| {
            let inner = ctx(11).attach();
            ctx(20).run(move || {
                drop(outer);
                drop(inner);
                assert_eq!(ID.get(), Some(20));
            });
            // `inner` belongs to this frame: settled as soon as the frame is innermost again.
            assert_eq!(ID.get(), Some(10));
        });
        assert_eq!(ID.get(), Some(0));
    });
}

#[test]
fn a_forgotten_guard_ends_with_its_frame() {
    Context::new().run(|| {
        std::mem::forget(ctx(1).attach());
        assert_eq!(ID.get(), Some(1));
    });
    assert_eq!(ID.get(), None);
    // And the thread is in a sane state for the next guard.
    let guard = ctx(2).attach();
    assert_eq!(ID.get(), Some(2));
    drop(guard);
    assert_eq!(ID.get(), None);
}

#[test]
fn a_guard_attached_in_a_poll_ends_with_the_poll() {
    // The guard is held across an `.await` (possible in a local task, never `Send`): its
    // context ends with the poll that attached it, and dropping it later changes nothing.
    let mut task = Box::pin(
        async {
            ID.set(5);
            let guard = ctx(1).attach();
            assert_eq!(ID.get(), Some(1));
            common::Yield(1).await;
            let resumed = ID.get();
            drop(guard);
            (resumed, ID.get())
        }
        .with_context(Context::new()),
    );
    assert!(common::poll_once(task.as_mut()).is_pending());
    assert_eq!(ID.get(), None);
    assert_eq!(
        common::poll_once(task.as_mut()),
        std::task::Poll::Ready((Some(5), Some(5)))
    );
}
