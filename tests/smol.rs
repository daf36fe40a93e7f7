//! The guide's scenarios, stress, panics and cancellation on smol.
#![cfg(feature = "smol")]

#[path = "common/stress.rs"]
mod stress;

use std::sync::{mpsc, Arc};
use std::time::Duration;

use contextvars::smol::{spawn_with_context, unblock_with_context, ExecutorExt, LocalExecutorExt};
use contextvars::{Context, ContextVar};

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");

async fn background_work() -> Option<String> {
    smol::future::yield_now().await;
    REQUEST_ID.get()
}

#[test]
fn a_background_task_sees_the_request_id_and_a_plain_one_does_not() {
    smol::block_on(async {
        let (with_helper, without) = REQUEST_ID.scope("req-123".into(), || {
            (
                spawn_with_context(background_work()),
                smol::spawn(background_work()),
            )
        });
        assert_eq!(with_helper.await.as_deref(), Some("req-123"));
        assert_eq!(without.await, None);
    });
}

#[test]
fn blocking_work_and_local_executors() {
    smol::block_on(async {
        let item = String::from("item-123");
        let job = REQUEST_ID.scope("req-456".into(), || {
            unblock_with_context(move || (item, 1, REQUEST_ID.get()))
        });
        assert_eq!(job.await, ("item-123".into(), 1, Some("req-456".into())));
    });
    let local = smol::LocalExecutor::new();
    let rc = std::rc::Rc::new(());
    let task = REQUEST_ID.scope("local".into(), || {
        local.spawn_local_with_context(async move {
            let _not_send = rc;
            background_work().await
        })
    });
    assert_eq!(smol::block_on(local.run(task)).as_deref(), Some("local"));
}

#[test]
fn isolation_both_ways() {
    smol::block_on(async {
        let (release, released) = smol::channel::bounded::<()>(1);
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
    });
}

#[derive(Clone)]
struct Smol(Arc<smol::Executor<'static>>);

impl stress::Runtime for Smol {
    fn spawn_with_context(&self, task: stress::BoxFuture) -> stress::BoxFuture {
        Box::pin(self.0.spawn_with_context(task))
    }

    fn spawn_plain(&self, task: stress::BoxFuture) -> stress::BoxFuture {
        Box::pin(self.0.spawn(task))
    }

    fn sleep(&self, duration: Duration) -> stress::BoxFuture {
        Box::pin(async move {
            smol::Timer::after(duration).await;
        })
    }

    fn yield_now(&self) -> stress::BoxFuture {
        Box::pin(smol::future::yield_now())
    }
}

#[test]
fn stress_ten_thousand_request_trees_on_four_threads() {
    let executor = Arc::new(smol::Executor::new());
    let (stop, stopped) = smol::channel::unbounded::<()>();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (executor, stopped) = (executor.clone(), stopped.clone());
            std::thread::spawn(move || smol::block_on(executor.run(stopped.recv())))
        })
        .collect();
    let driver = executor.spawn(stress::run(Smol(executor.clone()), 10_000));
    smol::block_on(driver);
    drop(stop);
    for worker in workers {
        let _ = worker.join().unwrap();
    }
}

struct ReportOnDrop(mpsc::Sender<Option<String>>);

impl Drop for ReportOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(REQUEST_ID.get());
    }
}

#[test]
fn cancelled_and_dropped_tasks_drop_their_values_inside_their_context() {
    let executor = smol::Executor::new();
    let (tx, rx) = mpsc::channel();
    let task = REQUEST_ID.scope("req-cancel".into(), || {
        let tx = tx.clone();
        executor.spawn_with_context(async move {
            let _report = ReportOnDrop(tx);
            std::future::pending::<()>().await;
        })
    });
    smol::block_on(executor.run(async {
        smol::future::yield_now().await; // let the task start
        assert_eq!(task.cancel().await, None);
    }));
    assert_eq!(rx.recv().unwrap().as_deref(), Some("req-cancel"));

    // Never polled, dropped with the executor.
    let detached = REQUEST_ID.scope("req-shutdown".into(), || {
        let report = ReportOnDrop(tx); // owned by the future, which is never polled
        executor.spawn_with_context(async move {
            let _report = report;
        })
    });
    detached.detach();
    drop(executor);
    assert_eq!(rx.recv().unwrap().as_deref(), Some("req-shutdown"));
}

#[test]
fn a_panicking_task_reaches_the_caller_and_leaves_the_thread_clean() {
    let executor = smol::LocalExecutor::new();
    let task = REQUEST_ID.scope("doomed".into(), || {
        executor.spawn_with_context(async {
            REQUEST_ID.set("set-before-panic".into());
            panic!("task failed");
        })
    });
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        smol::block_on(executor.run(task))
    }));
    assert!(result.is_err());
    let later = executor.spawn(async { (REQUEST_ID.get(), Context::current().len()) });
    assert_eq!(smol::block_on(executor.run(later)), (None, 0));
}
