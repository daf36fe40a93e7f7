//! Frames and guards restore the previous context when the code inside them panics.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use contextvars::{Context, ContextExt, ContextVar};

static ID: ContextVar<u32> = ContextVar::new("id");

fn outer() -> Context {
    Context::new().with_value(&ID, 1)
}

#[test]
fn run_restores_on_panic() {
    outer().run(|| {
        let before = Context::current();
        let result = catch_unwind(|| {
            Context::new().with_value(&ID, 2).run(|| {
                ID.set(3);
                panic!("boom");
            })
        });
        assert!(result.is_err());
        assert!(Context::current().ptr_eq(&before));
        assert_eq!(ID.get(), Some(1));
    });
}

#[test]
fn scope_restores_on_panic() {
    outer().run(|| {
        let result = catch_unwind(|| ID.scope(2, || panic!("boom")));
        assert!(result.is_err());
        assert_eq!(ID.get(), Some(1));
    });
}

#[test]
fn attach_guard_restores_while_unwinding() {
    outer().run(|| {
        let result = catch_unwind(|| {
            let _guard = Context::new().with_value(&ID, 2).attach();
            ID.set(3);
            panic!("boom");
        });
        assert!(result.is_err());
        assert_eq!(ID.get(), Some(1));
    });
}

#[test]
fn with_context_poll_restores_on_panic() {
    outer().run(|| {
        let mut task = Box::pin(
            async {
                ID.set(9);
                panic!("boom");
            }
            .with_context(Context::new().with_value(&ID, 2)),
        );
        let result = catch_unwind(AssertUnwindSafe(|| common::poll_once(task.as_mut())));
        assert!(result.is_err());
        assert_eq!(ID.get(), Some(1));
        drop(task);
        assert_eq!(ID.get(), Some(1));
    });
}

#[test]
fn a_panic_in_a_wrapped_closure_reaches_the_caller_and_leaves_the_thread_clean() {
    let wrapped = outer().wrap(|| panic!("job failed"));
    let payload = catch_unwind(AssertUnwindSafe(wrapped)).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"job failed"));
    assert!(Context::current().is_empty());
}
