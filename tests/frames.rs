//! `ContextVar::set` changes the current frame only.

mod common;

use contextvars::{thread, Context, ContextExt, ContextVar};

use common::Yield;

static STEP: ContextVar<u32> = ContextVar::new("step");

#[test]
fn set_in_a_run_closure_ends_with_the_closure() {
    Context::new().run(|| {
        STEP.set(1);
        Context::current().run(|| {
            STEP.set(2);
            assert_eq!(STEP.get(), Some(2));
        });
        assert_eq!(STEP.get(), Some(1));
    });
    assert_eq!(STEP.get(), None);
}

#[test]
fn set_in_a_scope_closure_ends_with_the_closure() {
    STEP.scope(1, || {
        STEP.set(5);
        assert_eq!(STEP.get(), Some(5));
    });
    assert_eq!(STEP.get(), None);
}

#[test]
fn set_on_the_thread_itself_lasts_for_the_thread() {
    thread::spawn_with_context(|| {
        STEP.set(3);
        assert_eq!(STEP.get(), Some(3));
        STEP.remove();
        assert_eq!(STEP.get(), None);
        STEP.set(4);
        assert_eq!(Context::current().get(&STEP), Some(4));
    })
    .join()
    .unwrap();
    // A fresh thread starts empty.
    std::thread::spawn(|| assert_eq!(STEP.get(), None))
        .join()
        .unwrap();
}

#[test]
fn set_in_a_task_persists_across_its_awaits_and_stays_in_it() {
    let task = async {
        STEP.set(10);
        Yield(3).await;
        assert_eq!(STEP.get(), Some(10));
        STEP.set(11);
        Yield(1).await;
        STEP.get()
    }
    .with_context(Context::new());
    let outcome = Context::new().run(|| futures::executor::block_on(task));
    assert_eq!(outcome, Some(11));
    assert_eq!(STEP.get(), None);
}

#[test]
fn with_context_reports_the_task_context_including_its_sets() {
    let mut task = Box::pin(
        async {
            STEP.set(7);
            Yield(1).await;
        }
        .with_context(Context::new()),
    );
    assert!(common::poll_once(task.as_mut()).is_pending());
    assert_eq!(task.context().get(&STEP), Some(7));
    assert_eq!(STEP.get(), None);
}

#[test]
fn try_set_succeeds_while_the_thread_lives() {
    Context::new().run(|| {
        assert!(STEP.try_set(1).is_ok());
        assert_eq!(STEP.get(), Some(1));
    });
}

#[test]
fn with_lets_the_closure_set_variables() {
    STEP.scope(1, || {
        let doubled = STEP.with(|step| {
            let doubled = step.copied().unwrap() * 2;
            STEP.set(doubled); // no conflict with the read in progress
            doubled
        });
        assert_eq!(STEP.get(), Some(doubled));
    });
}
