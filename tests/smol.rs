//! The guide's scenarios, stress, panics and cancellation on smol: the shared scenarios
//! (`tests/common/scenarios.rs`) through [`Smol`], on smol's global executor and on an executor
//! of the test's own, then what only smol has (local executors, dropping an executor).
#![cfg(feature = "smol")]

mod common;

use std::future::Future;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::report::ReportOnDrop;
use common::scenarios;
use common::stress::{Blocking, BoxFuture, Runtime};
use contextvars::smol::{spawn_with_context, unblock_with_context, ExecutorExt, LocalExecutorExt};
use contextvars::{Context, ContextVar};

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");

async fn background_work() -> Option<String> {
    smol::future::yield_now().await;
    REQUEST_ID.get()
}

// ---------------------------------------------------------------------------------------------
// The shared scenarios.

/// smol: its global executor (the free functions) or an [`smol::Executor`] run by threads of
/// the test's own (the `ExecutorExt` methods); `block_on` on the test thread, the blocking pool
/// through `unblock`.
#[derive(Clone)]
enum Smol {
    Global,
    Executor {
        executor: Arc<smol::Executor<'static>>,
        _workers: Arc<Workers>,
    },
}

/// Stops the executor's threads when the last [`Smol`] holding it is dropped.
struct Workers {
    _stop: smol::channel::Sender<()>,
}

impl Smol {
    /// An executor run by `threads` threads.
    fn executor(threads: usize) -> Smol {
        let executor = Arc::new(smol::Executor::new());
        let (stop, stopped) = smol::channel::unbounded::<()>();
        for _ in 0..threads {
            let (executor, stopped) = (executor.clone(), stopped.clone());
            std::thread::spawn(move || smol::block_on(executor.run(stopped.recv())));
        }
        Smol::Executor {
            executor,
            _workers: Arc::new(Workers { _stop: stop }),
        }
    }
}

/// Turns a task into a future that resumes its panic (with the task's payload) when awaited.
fn boxed<T: Send + 'static>(task: smol::Task<T>) -> BoxFuture<T> {
    Box::pin(task)
}

impl Runtime for Smol {
    fn block_on<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        smol::block_on(future)
    }

    fn spawn_with_context<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<T> {
        match self {
            Smol::Global => boxed(spawn_with_context(task)),
            Smol::Executor { executor, .. } => boxed(executor.spawn_with_context(task)),
        }
    }

    fn spawn_plain<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<T> {
        match self {
            Smol::Global => boxed(smol::spawn(task)),
            Smol::Executor { executor, .. } => boxed(executor.spawn(task)),
        }
    }

    fn spawn_and_cancel(
        &self,
        task: impl Future<Output = ()> + Send + 'static,
        started: impl Future<Output = ()> + Send + 'static,
    ) -> BoxFuture {
        let task = match self {
            Smol::Global => spawn_with_context(task),
            Smol::Executor { executor, .. } => executor.spawn_with_context(task),
        };
        Box::pin(async move {
            started.await;
            assert_eq!(task.cancel().await, None);
        })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture {
        Box::pin(async move {
            smol::Timer::after(duration).await;
        })
    }

    fn yield_now(&self) -> BoxFuture {
        Box::pin(smol::future::yield_now())
    }
}

impl Blocking for Smol {
    fn spawn_blocking_with_context<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> BoxFuture<T> {
        boxed(unblock_with_context(job))
    }

    fn spawn_blocking_plain<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> BoxFuture<T> {
        boxed(smol::unblock(job))
    }
}

/// Every shared scenario, on `$many` (a runtime of several workers when it can have them) and
/// `$one` (one worker: the scenarios that look at the worker after a task).
macro_rules! shared_scenarios {
    (many: $many:expr, one: $one:expr) => {
        use super::*;

        #[test]
        fn a_spawned_task_keeps_the_callers_context_and_a_plain_one_has_none() {
            scenarios::a_spawned_task_keeps_the_callers_context_and_a_plain_one_has_none($many);
        }

        #[test]
        fn a_blocking_job_keeps_the_callers_context_and_a_plain_one_has_none() {
            scenarios::a_blocking_job_keeps_the_callers_context_and_a_plain_one_has_none($many);
        }

        #[test]
        fn isolation_both_ways() {
            scenarios::isolation_both_ways($many);
        }

        #[test]
        fn a_value_set_in_a_task_stays_in_it() {
            scenarios::a_value_set_in_a_task_stays_in_it($one);
        }

        #[test]
        fn what_a_value_destructor_sets_never_reaches_the_worker() {
            scenarios::what_a_value_destructor_sets_never_reaches_the_worker($one);
        }

        #[test]
        fn what_a_value_destructor_sets_never_reaches_the_blocking_thread() {
            scenarios::what_a_value_destructor_sets_never_reaches_the_blocking_thread($one);
        }

        #[test]
        fn a_cancelled_task_is_dropped_inside_its_context() {
            scenarios::a_cancelled_task_is_dropped_inside_its_context($many);
        }

        #[test]
        fn a_panicking_task_reaches_the_caller_and_leaves_the_worker_clean() {
            scenarios::a_panicking_task_reaches_the_caller_and_leaves_the_worker_clean($one);
        }

        #[test]
        fn a_panicking_blocking_job_reaches_the_caller_and_leaves_the_thread_clean() {
            scenarios::a_panicking_blocking_job_reaches_the_caller_and_leaves_the_thread_clean(
                $one,
            );
        }

        #[test]
        fn stress_ten_thousand_request_trees() {
            scenarios::stress($many, 10_000);
        }
    };
}

/// smol's global executor (one thread unless `SMOL_THREADS` says otherwise).
mod global {
    shared_scenarios!(many: Smol::Global, one: Smol::Global);
}

/// An executor of the test's own, run by four threads (one for the one-worker scenarios).
mod executor {
    shared_scenarios!(many: Smol::executor(4), one: Smol::executor(1));
}

// ---------------------------------------------------------------------------------------------
// Only on smol.

#[test]
fn local_executors() {
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
fn a_panicking_task_on_a_local_executor_reaches_the_caller_and_leaves_the_thread_clean() {
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

#[test]
fn a_task_never_polled_is_dropped_with_the_executor_inside_its_context() {
    let executor = smol::Executor::new();
    let (tx, rx) = mpsc::channel();
    let detached = REQUEST_ID.scope("req-shutdown".into(), || {
        // Owned by the future, which is never polled.
        let report = ReportOnDrop::new(tx, || REQUEST_ID.get());
        executor.spawn_with_context(async move {
            let _report = report;
        })
    });
    detached.detach();
    drop(executor);
    assert_eq!(rx.recv().unwrap().as_deref(), Some("req-shutdown"));
}
