//! The guide's scenarios, stress, panics and cancellation on async-std.
#![cfg(feature = "async-std")]

#[path = "common/stress.rs"]
mod stress;

use std::sync::mpsc;
use std::sync::Once;
use std::time::Duration;

use contextvars::async_std::{
    spawn_blocking_with_context, spawn_local_with_context, spawn_with_context, BuilderExt,
};
use contextvars::{Context, ContextExt, ContextVar};

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");

/// async-std sizes its global executor once, from the environment: ask for four workers before
/// any test of this file touches it.
fn four_workers() {
    static INIT: Once = Once::new();
    INIT.call_once(|| std::env::set_var("ASYNC_STD_THREAD_COUNT", "4"));
}

async fn background_work() -> Option<String> {
    async_std::task::yield_now().await;
    REQUEST_ID.get()
}

#[test]
fn a_background_task_sees_the_request_id_and_a_plain_one_does_not() {
    four_workers();
    async_std::task::block_on(async {
        let (with_helper, without) = REQUEST_ID.scope("req-123".into(), || {
            (
                spawn_with_context(background_work()),
                async_std::task::spawn(background_work()),
            )
        });
        assert_eq!(with_helper.await.as_deref(), Some("req-123"));
        assert_eq!(without.await, None);
    });
}

#[test]
fn blocking_work_local_tasks_and_named_tasks() {
    four_workers();
    async_std::task::block_on(async {
        let item = String::from("item-123");
        let job = REQUEST_ID.scope("req-456".into(), || {
            spawn_blocking_with_context(move || (item, 1, REQUEST_ID.get()))
        });
        assert_eq!(job.await, ("item-123".into(), 1, Some("req-456".into())));

        let rc = std::rc::Rc::new(());
        let local = REQUEST_ID.scope("local".into(), || {
            spawn_local_with_context(async move {
                let _not_send = rc;
                background_work().await
            })
        });
        assert_eq!(local.await.as_deref(), Some("local"));

        let named = REQUEST_ID.scope("named".into(), || {
            async_std::task::Builder::new()
                .name("process-order-123".into())
                .spawn_with_context(async {
                    let name = async_std::task::current().name().map(String::from);
                    (name, background_work().await)
                })
                .unwrap()
        });
        let (name, seen) = named.await;
        assert_eq!(name.as_deref(), Some("process-order-123"));
        assert_eq!(seen.as_deref(), Some("named"));
    });
}

#[test]
fn isolation_both_ways() {
    four_workers();
    async_std::task::block_on(
        async {
            let (release, released) = async_std::channel::bounded::<()>(1);
            let child = Context::new().run(|| {
                REQUEST_ID.set("parent-value".into());
                spawn_with_context(async move {
                    released.recv().await.unwrap();
                    let inherited = REQUEST_ID.get();
                    REQUEST_ID.set("child-override".into());
                    (inherited, REQUEST_ID.get())
                })
            });
            REQUEST_ID.set("parent-later".into());
            release.send(()).await.unwrap();
            let (inherited, overridden) = child.await;
            assert_eq!(inherited.as_deref(), Some("parent-value"));
            assert_eq!(overridden.as_deref(), Some("child-override"));
            assert_eq!(REQUEST_ID.get().as_deref(), Some("parent-later"));
        }
        // async-std runs the future given to `block_on` as a task: it needs a frame to set in.
        .with_context(Context::new()),
    );
}

#[derive(Clone)]
struct AsyncStd;

impl stress::Runtime for AsyncStd {
    fn spawn_with_context(&self, task: stress::BoxFuture) -> stress::BoxFuture {
        Box::pin(spawn_with_context(task))
    }

    fn spawn_plain(&self, task: stress::BoxFuture) -> stress::BoxFuture {
        Box::pin(async_std::task::spawn(task))
    }

    fn sleep(&self, duration: Duration) -> stress::BoxFuture {
        Box::pin(async_std::task::sleep(duration))
    }

    fn yield_now(&self) -> stress::BoxFuture {
        Box::pin(async_std::task::yield_now())
    }
}

#[test]
fn stress_ten_thousand_request_trees() {
    four_workers();
    async_std::task::block_on(stress::run(AsyncStd, 10_000));
}

struct ReportOnDrop(mpsc::Sender<Option<String>>);

impl Drop for ReportOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(REQUEST_ID.get());
    }
}

#[test]
fn a_cancelled_task_drops_its_values_inside_its_context() {
    four_workers();
    async_std::task::block_on(async {
        let (tx, rx) = mpsc::channel();
        let (started_tx, started) = async_std::channel::bounded(1);
        let task = REQUEST_ID.scope("req-cancel".into(), || {
            spawn_with_context(async move {
                let _report = ReportOnDrop(tx);
                started_tx.send(()).await.unwrap();
                std::future::pending::<()>().await;
            })
        });
        started.recv().await.unwrap();
        assert_eq!(task.cancel().await, None);
        assert_eq!(rx.recv().unwrap().as_deref(), Some("req-cancel"));
    });
}

#[test]
fn a_panicking_blocking_job_reaches_the_caller() {
    four_workers();
    // async-std re-raises a task's panic in the awaiting task: catch it there.
    let result = std::panic::catch_unwind(|| {
        async_std::task::block_on(async {
            let job = REQUEST_ID.scope("doomed".into(), || {
                spawn_blocking_with_context(|| -> () { panic!("job failed") })
            });
            job.await
        })
    });
    assert!(result.is_err());
    let later = async_std::task::block_on(async_std::task::spawn_blocking(|| REQUEST_ID.get()));
    assert_eq!(later, None);
}
