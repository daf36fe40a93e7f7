//! `attach` guards, including the rule for out-of-order drops.

use contextvars::{Context, ContextVar};

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
fn a_guard_dropped_in_another_frame_leaves_that_frame_alone() {
    Context::new().run(|| {
        let guard = ctx(1).attach();
        Context::new().with_value(&ID, 7).run(move || {
            drop(guard);
            assert_eq!(ID.get(), Some(7));
        });
        // The frame it was attached in keeps its context until that frame ends.
        assert_eq!(ID.get(), Some(1));
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
