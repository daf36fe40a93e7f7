//! The guide's scenarios, stress, panics and cancellation on tokio: the shared scenarios
//! (`tests/common/scenarios.rs`) through [`Tokio`], then what only tokio has (handles, join sets,
//! local sets, runtime shutdown, named tasks).
#![cfg(feature = "tokio")]

mod common;

use std::future::Future;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::report::ReportOnDrop;
use common::scenarios;
use common::stress::{Blocking, BoxFuture, Runtime};
use common::tokio_task::{abort_after, join};
use contextvars::tokio::{
    spawn_blocking_with_context, spawn_local_with_context, spawn_with_context, JoinSetExt,
    RuntimeExt,
};
use contextvars::ContextVar;

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

// ---------------------------------------------------------------------------------------------
// The shared scenarios.

/// A tokio runtime of the test's own; spawns go to it through the free functions (the runtime
/// is current inside `block_on`).
#[derive(Clone)]
struct Tokio(Arc<tokio::runtime::Runtime>);

impl Tokio {
    fn multi_thread(workers: usize) -> Tokio {
        Tokio(Arc::new(multi_thread(workers)))
    }

    /// One worker, the `block_on` thread, and one blocking thread: a later task (or job) runs on
    /// the very thread of the earlier one.
    fn current_thread() -> Tokio {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .enable_time()
            .build()
            .unwrap();
        Tokio(Arc::new(runtime))
    }
}

impl Runtime for Tokio {
    fn block_on<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        self.0.block_on(future)
    }

    fn spawn_with_context<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<T> {
        Box::pin(join(spawn_with_context(task)))
    }

    fn spawn_plain<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<T> {
        Box::pin(join(tokio::spawn(task)))
    }

    fn spawn_and_cancel(
        &self,
        task: impl Future<Output = ()> + Send + 'static,
        started: impl Future<Output = ()> + Send + 'static,
    ) -> BoxFuture {
        abort_after(spawn_with_context(task), started)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture {
        Box::pin(tokio::time::sleep(duration))
    }

    fn yield_now(&self) -> BoxFuture {
        Box::pin(tokio::task::yield_now())
    }
}

impl Blocking for Tokio {
    fn spawn_blocking_with_context<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> BoxFuture<T> {
        Box::pin(join(spawn_blocking_with_context(job)))
    }

    fn spawn_blocking_plain<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> BoxFuture<T> {
        Box::pin(join(tokio::task::spawn_blocking(job)))
    }
}

#[test]
fn a_spawned_task_keeps_the_callers_context_and_a_plain_one_has_none() {
    scenarios::a_spawned_task_keeps_the_callers_context_and_a_plain_one_has_none(
        Tokio::multi_thread(2),
    );
}

#[test]
fn a_blocking_job_keeps_the_callers_context_and_a_plain_one_has_none() {
    scenarios::a_blocking_job_keeps_the_callers_context_and_a_plain_one_has_none(
        Tokio::multi_thread(2),
    );
}

#[test]
fn isolation_both_ways() {
    scenarios::isolation_both_ways(Tokio::multi_thread(2));
}

#[test]
fn a_value_set_in_a_task_stays_in_it() {
    scenarios::a_value_set_in_a_task_stays_in_it(Tokio::current_thread());
}

#[test]
fn what_a_value_destructor_sets_never_reaches_the_worker() {
    scenarios::what_a_value_destructor_sets_never_reaches_the_worker(Tokio::current_thread());
}

#[test]
fn what_a_value_destructor_sets_never_reaches_the_blocking_thread() {
    scenarios::what_a_value_destructor_sets_never_reaches_the_blocking_thread(
        Tokio::current_thread(),
    );
}

#[test]
fn an_aborted_task_is_dropped_inside_its_context() {
    scenarios::a_cancelled_task_is_dropped_inside_its_context(Tokio::multi_thread(2));
}

#[test]
fn a_panicking_task_reaches_the_caller_and_leaves_the_worker_clean() {
    scenarios::a_panicking_task_reaches_the_caller_and_leaves_the_worker_clean(
        Tokio::multi_thread(1),
    );
}

#[test]
fn a_panicking_blocking_job_reaches_the_caller_and_leaves_the_thread_clean() {
    scenarios::a_panicking_blocking_job_reaches_the_caller_and_leaves_the_thread_clean(
        Tokio::current_thread(),
    );
}

#[test]
fn stress_ten_thousand_request_trees_on_four_workers() {
    scenarios::stress(Tokio::multi_thread(4), 10_000);
}

// ---------------------------------------------------------------------------------------------
// Only on tokio.

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
fn runtime_shutdown_drops_pending_tasks_inside_their_context() {
    let runtime = multi_thread(2);
    let (tx, rx) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    REQUEST_ID.scope("req-shutdown".into(), || {
        runtime.spawn_with_context(async move {
            let _report = ReportOnDrop::new(tx, || REQUEST_ID.get());
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

/// `block_in_place` runs its closure on the task's own thread, inside the poll: it is part of the
/// task's frame, not a spawn. It sees the request's context, and a `set` there stays for the rest
/// of that task, never reaching its parent or the next task on the worker.
#[test]
fn a_block_in_place_closure_runs_in_the_tasks_frame() {
    multi_thread(2).block_on(async {
        let request = REQUEST_ID.scope_future("req-1".into(), async {
            let task = spawn_with_context(async {
                let seen = tokio::task::block_in_place(|| {
                    let seen = REQUEST_ID.get();
                    REQUEST_ID.set("set-in-place".into());
                    seen
                });
                tokio::task::yield_now().await; // perhaps another worker now
                (seen, REQUEST_ID.get())
            });
            let in_task = task.await.unwrap();
            (in_task, REQUEST_ID.get())
        });
        let (in_task, parent) = request.await;
        assert_eq!(in_task.0.as_deref(), Some("req-1"), "seen in the closure");
        assert_eq!(
            in_task.1.as_deref(),
            Some("set-in-place"),
            "the rest of the task"
        );
        assert_eq!(parent.as_deref(), Some("req-1"), "not the parent");
        for _ in 0..4 {
            let next = tokio::spawn(async { REQUEST_ID.get() }).await.unwrap();
            assert_eq!(next, None, "not the next task on a worker");
        }
        // In a plain task there is no frame: the closure's `set` is refused, as at its top level.
        let refused = tokio::spawn(async {
            tokio::task::block_in_place(|| REQUEST_ID.try_set("leak".into()))
        })
        .await
        .unwrap();
        assert!(refused.unwrap_err().is_outside_any_frame());
    });
}
