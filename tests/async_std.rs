//! The guide's scenarios, stress, panics and cancellation on async-std: the shared scenarios
//! (`tests/common/scenarios.rs`) through [`AsyncStd`], then what only async-std has (local and
//! named tasks).
#![cfg(feature = "async-std")]

mod common;

use std::future::Future;
use std::sync::Once;
use std::time::Duration;

use common::scenarios;
use common::stress::{Blocking, BoxFuture, Runtime};
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

// ---------------------------------------------------------------------------------------------
// The shared scenarios.

/// async-std's global executor (four workers) and blocking pool.
#[derive(Clone)]
struct AsyncStd;

impl Runtime for AsyncStd {
    fn block_on<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        four_workers();
        // async-std runs the future given to `block_on` as a task: it needs a frame to set in.
        async_std::task::block_on(future.with_context(Context::new()))
    }

    fn spawn_with_context<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<T> {
        Box::pin(spawn_with_context(task))
    }

    fn spawn_plain<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<T> {
        Box::pin(async_std::task::spawn(task))
    }

    fn spawn_and_cancel(
        &self,
        task: impl Future<Output = ()> + Send + 'static,
        started: impl Future<Output = ()> + Send + 'static,
    ) -> BoxFuture {
        let task = spawn_with_context(task);
        Box::pin(async move {
            started.await;
            assert_eq!(task.cancel().await, None);
        })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture {
        Box::pin(async_std::task::sleep(duration))
    }

    fn yield_now(&self) -> BoxFuture {
        Box::pin(async_std::task::yield_now())
    }
}

impl Blocking for AsyncStd {
    fn spawn_blocking_with_context<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> BoxFuture<T> {
        Box::pin(spawn_blocking_with_context(job))
    }

    fn spawn_blocking_plain<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> BoxFuture<T> {
        Box::pin(async_std::task::spawn_blocking(job))
    }
}

#[test]
fn a_spawned_task_keeps_the_callers_context_and_a_plain_one_has_none() {
    scenarios::a_spawned_task_keeps_the_callers_context_and_a_plain_one_has_none(AsyncStd);
}

#[test]
fn a_blocking_job_keeps_the_callers_context_and_a_plain_one_has_none() {
    scenarios::a_blocking_job_keeps_the_callers_context_and_a_plain_one_has_none(AsyncStd);
}

#[test]
fn isolation_both_ways() {
    scenarios::isolation_both_ways(AsyncStd);
}

#[test]
fn a_value_set_in_a_task_stays_in_it() {
    scenarios::a_value_set_in_a_task_stays_in_it(AsyncStd);
}

#[test]
fn what_a_value_destructor_sets_never_reaches_the_worker() {
    scenarios::what_a_value_destructor_sets_never_reaches_the_worker(AsyncStd);
}

#[test]
fn what_a_value_destructor_sets_never_reaches_the_blocking_thread() {
    scenarios::what_a_value_destructor_sets_never_reaches_the_blocking_thread(AsyncStd);
}

#[test]
fn a_cancelled_task_is_dropped_inside_its_context() {
    scenarios::a_cancelled_task_is_dropped_inside_its_context(AsyncStd);
}

#[test]
fn a_panicking_task_reaches_the_caller_and_leaves_the_worker_clean() {
    scenarios::a_panicking_task_reaches_the_caller_and_leaves_the_worker_clean(AsyncStd);
}

#[test]
fn a_panicking_blocking_job_reaches_the_caller_and_leaves_the_thread_clean() {
    scenarios::a_panicking_blocking_job_reaches_the_caller_and_leaves_the_thread_clean(AsyncStd);
}

#[test]
fn stress_ten_thousand_request_trees() {
    scenarios::stress(AsyncStd, 10_000);
}

// ---------------------------------------------------------------------------------------------
// Only on async-std.

#[test]
fn local_tasks_and_named_tasks() {
    four_workers();
    async_std::task::block_on(async {
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
