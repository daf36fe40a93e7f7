//! `spawn_with_context` for executors built on async-task: the shared scenarios
//! (`tests/common/scenarios.rs`) on a hand-written executor ([`AsyncTask`]), then local tasks.
#![cfg(feature = "async-task")]

mod common;

use std::future::Future;
use std::sync::{mpsc, Arc, Mutex};

use async_task::Runnable;
use common::scenarios;
use common::stress::{self, BoxFuture, Runtime};
use contextvars::async_task::{spawn_local_with_context, spawn_with_context};
use contextvars::ContextVar;

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");

// ---------------------------------------------------------------------------------------------
// The shared scenarios.

/// A hand-written executor: worker threads running the runnables of one queue, which a task's
/// schedule function feeds (a task that wakes itself is scheduled again through it). No timer
/// (the trait's default sleep and yield), no blocking pool, and a panicking task would take its
/// worker down: async-task leaves panics to the executor.
#[derive(Clone)]
struct AsyncTask {
    queue: mpsc::Sender<Runnable>,
}

impl AsyncTask {
    /// An executor of `workers` threads; they stop once every task and clone of it is gone.
    fn new(workers: usize) -> AsyncTask {
        let (queue, runnables) = mpsc::channel::<Runnable>();
        let runnables = Arc::new(Mutex::new(runnables));
        for _ in 0..workers {
            let runnables = runnables.clone();
            std::thread::spawn(move || loop {
                let next = runnables.lock().unwrap().recv();
                match next {
                    Ok(runnable) => {
                        runnable.run();
                    }
                    Err(_) => break,
                }
            });
        }
        AsyncTask { queue }
    }

    fn schedule(&self) -> impl Fn(Runnable) + Send + Sync + 'static {
        let queue = self.queue.clone();
        move |runnable| {
            let _ = queue.send(runnable);
        }
    }
}

impl Runtime for AsyncTask {
    fn block_on<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        futures::executor::block_on(future)
    }

    fn spawn_with_context<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<T> {
        let (runnable, task) = spawn_with_context(task, self.schedule());
        runnable.schedule();
        Box::pin(task)
    }

    fn spawn_plain<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<T> {
        let (runnable, task) = async_task::spawn(task, self.schedule());
        runnable.schedule();
        Box::pin(task)
    }

    fn spawn_and_cancel(
        &self,
        task: impl Future<Output = ()> + Send + 'static,
        started: impl Future<Output = ()> + Send + 'static,
    ) -> BoxFuture {
        // Dropping the task cancels it: the worker drops the future.
        stress::drop_after(self.spawn_with_context(task), started)
    }
}

#[test]
fn a_spawned_task_keeps_the_callers_context_and_a_plain_one_has_none() {
    scenarios::a_spawned_task_keeps_the_callers_context_and_a_plain_one_has_none(AsyncTask::new(2));
}

#[test]
fn isolation_both_ways() {
    scenarios::isolation_both_ways(AsyncTask::new(2));
}

#[test]
fn a_value_set_in_a_task_stays_in_it() {
    scenarios::a_value_set_in_a_task_stays_in_it(AsyncTask::new(1));
}

#[test]
fn what_a_value_destructor_sets_never_reaches_the_worker() {
    scenarios::what_a_value_destructor_sets_never_reaches_the_worker(AsyncTask::new(1));
}

#[test]
fn a_cancelled_task_is_dropped_inside_its_context() {
    scenarios::a_cancelled_task_is_dropped_inside_its_context(AsyncTask::new(1));
}

#[test]
fn stress_a_thousand_request_trees_on_four_workers() {
    scenarios::stress(AsyncTask::new(4), 1_000);
}

// ---------------------------------------------------------------------------------------------
// Local tasks.

#[test]
fn local_tasks() {
    let rc = std::rc::Rc::new(());
    let (runnable, task) = REQUEST_ID.scope("local".into(), || {
        spawn_local_with_context(
            async move {
                let _not_send = rc;
                REQUEST_ID.get()
            },
            |_| {},
        )
    });
    runnable.run();
    assert_eq!(futures::executor::block_on(task).as_deref(), Some("local"));
}
