//! The guide's scenarios, stress, panics and cancellation on tokio.
#![cfg(feature = "tokio")]

mod common;
#[path = "common/stress.rs"]
mod stress;

use std::sync::mpsc;
use std::time::Duration;

use contextvars::tokio::{
    spawn_blocking_with_context, spawn_local_with_context, spawn_with_context, JoinSetExt,
    RuntimeExt,
};
use contextvars::{Context, ContextVar};

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");

fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
        .unwrap()
}

async fn background_work() -> Option<String> {
    tokio::task::yield_now().await;
    REQUEST_ID.get()
}

#[test]
fn a_background_task_sees_the_request_id_and_a_plain_one_does_not() {
    multi_thread(2).block_on(async {
        let (with_helper, without) = REQUEST_ID.scope("req-123".into(), || {
            (
                spawn_with_context(background_work()),
                tokio::spawn(background_work()),
            )
        });
        assert_eq!(with_helper.await.unwrap().as_deref(), Some("req-123"));
        assert_eq!(without.await.unwrap(), None);
    });
}

fn process_item(item_id: &str, priority: u8) -> (String, u8, Option<String>) {
    (item_id.to_string(), priority, REQUEST_ID.get())
}

#[test]
fn blocking_work_sees_the_request_id_with_arguments_and_a_result() {
    multi_thread(2).block_on(async {
        let item = String::from("item-123");
        let job = REQUEST_ID.scope("req-456".into(), || {
            spawn_blocking_with_context(move || process_item(&item, 1))
        });
        assert_eq!(
            job.await.unwrap(),
            ("item-123".into(), 1, Some("req-456".into()))
        );
        let plain = REQUEST_ID.scope("req-456".into(), || {
            tokio::task::spawn_blocking(|| process_item("x", 2))
        });
        assert_eq!(plain.await.unwrap().2, None);
    });
}

#[test]
fn handles_join_sets_and_local_sets() {
    let runtime = multi_thread(2);
    let handle = runtime.handle().clone();
    let (task, job) = REQUEST_ID.scope("from-outside".into(), || {
        (
            handle.spawn_with_context(background_work()),
            handle.spawn_blocking_with_context(|| REQUEST_ID.get()),
        )
    });
    assert_eq!(
        runtime.block_on(task).unwrap().as_deref(),
        Some("from-outside")
    );
    assert_eq!(
        runtime.block_on(job).unwrap().as_deref(),
        Some("from-outside")
    );

    runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..20 {
            REQUEST_ID.scope(format!("req-{i}"), || {
                set.spawn_with_context(async move { (i, background_work().await) });
                set.spawn_blocking_with_context(move || (i, REQUEST_ID.get()));
            });
        }
        let mut seen = 0;
        while let Some(done) = set.join_next().await {
            let (i, id) = done.unwrap();
            assert_eq!(id, Some(format!("req-{i}")));
            seen += 1;
        }
        assert_eq!(seen, 40);

        let local = tokio::task::LocalSet::new();
        let seen = local
            .run_until(async {
                let rc = std::rc::Rc::new(());
                let task = REQUEST_ID.scope("local".into(), || {
                    spawn_local_with_context(async move {
                        let _not_send = rc;
                        background_work().await
                    })
                });
                task.await.unwrap()
            })
            .await;
        assert_eq!(seen.as_deref(), Some("local"));
    });
}

#[test]
fn isolation_both_ways() {
    multi_thread(2).block_on(async {
        let (to_child, child_rx) = tokio::sync::oneshot::channel::<()>();
        let (child_started, started_rx) = tokio::sync::oneshot::channel::<()>();
        let child = Context::new().run(|| {
            REQUEST_ID.set("parent-value".into());
            spawn_with_context(async move {
                child_started.send(()).unwrap();
                child_rx.await.unwrap(); // the parent has changed its value by now
                let inherited = REQUEST_ID.get();
                REQUEST_ID.set("child-override".into());
                (inherited, REQUEST_ID.get())
            })
        });
        started_rx.await.unwrap();
        REQUEST_ID.set("parent-later".into()); // this task's own frame
        to_child.send(()).unwrap();
        let (inherited, overridden) = child.await.unwrap();
        assert_eq!(inherited.as_deref(), Some("parent-value"));
        assert_eq!(overridden.as_deref(), Some("child-override"));
        assert_eq!(REQUEST_ID.get().as_deref(), Some("parent-later"));
    });
}

#[derive(Clone)]
struct Tokio;

impl stress::Runtime for Tokio {
    fn spawn_with_context(&self, task: stress::BoxFuture) -> stress::BoxFuture {
        let handle = spawn_with_context(task);
        Box::pin(async move { handle.await.unwrap() })
    }

    fn spawn_plain(&self, task: stress::BoxFuture) -> stress::BoxFuture {
        let handle = tokio::spawn(task);
        Box::pin(async move { handle.await.unwrap() })
    }

    fn sleep(&self, duration: Duration) -> stress::BoxFuture {
        Box::pin(tokio::time::sleep(duration))
    }

    fn yield_now(&self) -> stress::BoxFuture {
        Box::pin(tokio::task::yield_now())
    }
}

#[test]
fn stress_ten_thousand_request_trees_on_four_workers() {
    multi_thread(4).block_on(stress::run(Tokio, 10_000));
}

#[test]
fn a_panicking_task_reports_the_panic_and_leaves_the_worker_clean() {
    // One worker: the later task runs on the very thread that panicked.
    let runtime = multi_thread(1);
    runtime.block_on(async {
        let task = REQUEST_ID.scope("doomed".into(), || {
            spawn_with_context(async {
                REQUEST_ID.set("set-before-panic".into());
                panic!("task failed");
            })
        });
        let error = task.await.unwrap_err();
        assert!(error.is_panic());
        let payload = error.into_panic();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"task failed"));

        let blocking = REQUEST_ID.scope("doomed".into(), || {
            spawn_blocking_with_context(|| -> () { panic!("job failed") })
        });
        assert!(blocking.await.unwrap_err().is_panic());

        let later = tokio::spawn(async {
            (
                std::thread::current().id(),
                REQUEST_ID.get(),
                Context::current().len(),
            )
        });
        let (_, seen, len) = later.await.unwrap();
        assert_eq!((seen, len), (None, 0));
    });
}

struct ReportOnDrop(mpsc::Sender<Option<String>>);

impl Drop for ReportOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(REQUEST_ID.get());
    }
}

#[test]
fn an_aborted_task_drops_its_values_inside_its_context() {
    multi_thread(2).block_on(async {
        let (tx, rx) = mpsc::channel();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let task = REQUEST_ID.scope("req-abort".into(), || {
            spawn_with_context(async move {
                let _report = ReportOnDrop(tx);
                REQUEST_ID.set("set-in-task".into());
                started_tx.send(()).unwrap();
                std::future::pending::<()>().await;
            })
        });
        started.await.unwrap();
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(rx.recv().unwrap().as_deref(), Some("set-in-task"));
    });
}

#[test]
fn runtime_shutdown_drops_pending_tasks_inside_their_context() {
    let runtime = multi_thread(2);
    let (tx, rx) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    REQUEST_ID.scope("req-shutdown".into(), || {
        runtime.spawn_with_context(async move {
            let _report = ReportOnDrop(tx);
            started_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        })
    });
    started.recv().unwrap();
    drop(runtime);
    assert_eq!(rx.recv().unwrap().as_deref(), Some("req-shutdown"));
}

/// Runs only in the CI step built with `RUSTFLAGS="--cfg tokio_unstable"` and `tracing`.
#[cfg(all(tokio_unstable, feature = "tracing"))]
#[test]
fn named_tasks_keep_the_context() {
    multi_thread(2).block_on(async {
        let task = REQUEST_ID
            .scope("named".into(), || {
                contextvars::tokio::spawn_named_with_context("process-order-123", background_work())
            })
            .unwrap();
        assert_eq!(task.await.unwrap().as_deref(), Some("named"));
    });
}

/// Sets `REQUEST_ID` when dropped.
struct SetsOnDrop;

impl Drop for SetsOnDrop {
    fn drop(&mut self) {
        REQUEST_ID.set("set-by-destructor".into());
    }
}

static SETS_ON_DROP: ContextVar<SetsOnDrop> = ContextVar::opaque("sets_on_drop");

#[test]
fn what_a_context_value_destructor_sets_never_reaches_the_worker_or_blocking_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .build()
        .unwrap();
    runtime.block_on(async {
        spawn_with_context(async { SETS_ON_DROP.set(SetsOnDrop) })
            .await
            .unwrap();
        // The only worker thread runs the next, unrelated task.
        assert_eq!(
            tokio::spawn(async { REQUEST_ID.get() }).await.unwrap(),
            None
        );
        assert_eq!(REQUEST_ID.get(), None);

        spawn_blocking_with_context(|| SETS_ON_DROP.set(SetsOnDrop))
            .await
            .unwrap();
        let seen = tokio::task::spawn_blocking(|| REQUEST_ID.get())
            .await
            .unwrap();
        assert_eq!(seen, None);
    });
}
