//! Code inside a value's `Clone`, `Debug` or `Drop` that uses the crate again, while the crate is
//! in the middle of reading or replacing that value.

mod common;

use std::fmt;

use contextvars::{Context, ContextExt, ContextVar};

static ID: ContextVar<u32> = ContextVar::new("id");

/// A value whose `Clone` runs `on_clone`.
struct CallsBack(fn() -> Option<u32>);

impl Clone for CallsBack {
    fn clone(&self) -> Self {
        let seen = (self.0)();
        SEEN.with(|cell| cell.set(seen));
        CallsBack(self.0)
    }
}

impl fmt::Debug for CallsBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", (self.0)())
    }
}

thread_local! {
    static SEEN: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

static CALLBACK: ContextVar<CallsBack> = ContextVar::new("callback");

fn get_and_report(callback: fn() -> Option<u32>) -> Option<u32> {
    SEEN.with(|cell| cell.set(None));
    CALLBACK.scope(CallsBack(callback), || {
        let _ = CALLBACK.get();
    });
    SEEN.with(|cell| cell.get())
}

#[test]
fn context_run_inside_a_clone_runs_in_its_own_context() {
    let seen = ID.scope(1, || {
        get_and_report(|| Context::new().with_value(&ID, 5).run(|| ID.get()))
    });
    assert_eq!(seen, Some(5));
}

#[test]
fn a_future_polled_inside_a_clone_runs_in_its_own_context() {
    let seen = ID.scope(1, || {
        get_and_report(|| {
            futures::executor::block_on(
                async { ID.get() }.with_context(Context::new().with_value(&ID, 6)),
            )
        })
    });
    assert_eq!(seen, Some(6));
}

#[test]
fn a_set_inside_a_clone_is_kept_and_try_set_succeeds() {
    let (seen, after) = Context::new().run(|| {
        let seen = get_and_report(|| {
            ID.try_set(7).expect("the thread's storage is alive");
            ID.get()
        });
        (seen, ID.get())
    });
    assert_eq!(seen, Some(7));
    // The `Clone` ran in the `scope` frame of `get_and_report`, so its set ended with it.
    assert_eq!(after, None);
    // Inside one frame, a set made by a `Clone` during `get` lands in that frame.
    Context::new().run(|| {
        CALLBACK.set(CallsBack(|| {
            ID.set(8);
            None
        }));
        let _ = CALLBACK.get();
        assert_eq!(ID.get(), Some(8));
    });
}

#[test]
fn a_clone_that_replaces_the_context_it_is_read_from_is_safe() {
    // The `Clone` removes the very value being cloned: its last reference then belongs to
    // `get`, which must still return a copy and drop the original in a frame of its own.
    Context::new().run(|| {
        CALLBACK.set(CallsBack(|| {
            CALLBACK.remove();
            Some(1)
        }));
        assert!(CALLBACK.get().is_some());
        assert!(!CALLBACK.is_set());
    });
}

#[test]
fn debug_formatting_may_set_and_read() {
    Context::new().run(|| {
        CALLBACK.set(CallsBack(|| {
            ID.set(9);
            ID.get()
        }));
        let printed = format!("{:?}", Context::current());
        assert!(printed.contains("Some(9)"), "{printed}");
        assert_eq!(ID.get(), Some(9));
    });
}
