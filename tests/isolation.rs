//! Children start from a copy: nothing flows between parent, children and siblings.

mod common;

use std::sync::{mpsc, Barrier};

use contextvars::{thread, Context, ContextExt, ContextVar};

use common::Yield;

static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");

#[test]
fn a_child_task_never_changes_the_parent() {
    Context::new().run(|| {
        REQUEST_ID.set("parent-value");
        let child = async {
            assert_eq!(REQUEST_ID.get(), Some("parent-value"));
            REQUEST_ID.set("child-override");
            Yield(1).await;
            REQUEST_ID.get()
        }
        .with_current_context();
        assert_eq!(futures::executor::block_on(child), Some("child-override"));
        assert_eq!(REQUEST_ID.get(), Some("parent-value"));
    });
}

#[test]
fn siblings_do_not_see_each_other() {
    Context::new().run(|| {
        REQUEST_ID.set("parent");
        let mut a = Box::pin(
            async {
                REQUEST_ID.set("a");
                Yield(1).await;
                REQUEST_ID.get()
            }
            .with_current_context(),
        );
        let mut b = Box::pin(
            async {
                let seen_first = REQUEST_ID.get();
                Yield(1).await;
                (seen_first, REQUEST_ID.get())
            }
            .with_current_context(),
        );
        assert!(common::poll_once(a.as_mut()).is_pending());
        assert!(common::poll_once(b.as_mut()).is_pending());
        assert_eq!(
            common::poll_once(a.as_mut()),
            std::task::Poll::Ready(Some("a"))
        );
        assert_eq!(
            common::poll_once(b.as_mut()),
            std::task::Poll::Ready((Some("parent"), Some("parent")))
        );
    });
}

#[test]
fn the_parents_later_sets_never_reach_a_started_child() {
    Context::new().run(|| {
        REQUEST_ID.set("before");
        let mut child = Box::pin(
            async {
                let first = REQUEST_ID.get();
                Yield(1).await;
                (first, REQUEST_ID.get())
            }
            .with_current_context(),
        );
        assert!(common::poll_once(child.as_mut()).is_pending());
        REQUEST_ID.set("after");
        assert_eq!(
            common::poll_once(child.as_mut()),
            std::task::Poll::Ready((Some("before"), Some("before")))
        );
    });
}

#[test]
fn threads_are_isolated_both_ways() {
    let ready = std::sync::Arc::new(Barrier::new(2));
    let (tx, rx) = mpsc::channel();
    Context::new().run(|| {
        REQUEST_ID.set("parent");
        let child_ready = ready.clone();
        let child = thread::spawn_with_context(move || {
            child_ready.wait(); // the parent has set "parent-later" by now
            tx.send(REQUEST_ID.get()).unwrap();
            REQUEST_ID.set("child");
            REQUEST_ID.get()
        });
        REQUEST_ID.set("parent-later");
        ready.wait();
        assert_eq!(rx.recv().unwrap(), Some("parent"));
        assert_eq!(child.join().unwrap(), Some("child"));
        assert_eq!(REQUEST_ID.get(), Some("parent-later"));
    });
}
