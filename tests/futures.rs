//! Any `futures` spawner, wrapped or extended, propagates the caller's context: the shared
//! scenarios (`tests/common/scenarios.rs`) on a wrapped thread pool ([`Futures`]), then the
//! extension methods and local spawners.
#![cfg(feature = "futures")]

mod common;

use std::future::Future;
use std::sync::mpsc;

use common::scenarios;
use common::stress::{self, BoxFuture, Runtime};
use contextvars::futures::{ContextSpawner, LocalSpawnExt, SpawnExt};
use contextvars::ContextVar;
use futures::executor::{LocalPool, ThreadPool};
use futures::task::{LocalSpawnExt as _, SpawnExt as _};

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");

// ---------------------------------------------------------------------------------------------
// The shared scenarios.

/// A `futures` thread pool: bare for plain spawns, wrapped in a [`ContextSpawner`] for spawns
/// with context; tasks awaited through their remote handles (which resume a task's panic, and
/// cancel the task when dropped). No timer (the trait's default sleep and yield), no blocking
/// pool.
#[derive(Clone)]
struct Futures {
    bare: ThreadPool,
    wrapped: ContextSpawner<ThreadPool>,
}

impl Futures {
    fn new(threads: usize) -> Futures {
        let bare = ThreadPool::builder().pool_size(threads).create().unwrap();
        Futures {
            wrapped: ContextSpawner::new(bare.clone()),
            bare,
        }
    }
}

impl Runtime for Futures {
    fn block_on<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        futures::executor::block_on(future)
    }

    fn spawn_with_context<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<T> {
        Box::pin(self.wrapped.spawn_with_handle(task).unwrap())
    }

    fn spawn_plain<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<T> {
        Box::pin(self.bare.spawn_with_handle(task).unwrap())
    }

    fn spawn_and_cancel(
        &self,
        task: impl Future<Output = ()> + Send + 'static,
        started: impl Future<Output = ()> + Send + 'static,
    ) -> BoxFuture {
        // Dropping the handle cancels the task: the pool drops the future.
        stress::drop_after(self.spawn_with_context(task), started)
    }
}

#[test]
fn a_spawned_task_keeps_the_callers_context_and_a_plain_one_has_none() {
    scenarios::a_spawned_task_keeps_the_callers_context_and_a_plain_one_has_none(Futures::new(4));
}

#[test]
fn isolation_both_ways() {
    scenarios::isolation_both_ways(Futures::new(4));
}

#[test]
fn a_value_set_in_a_task_stays_in_it() {
    scenarios::a_value_set_in_a_task_stays_in_it(Futures::new(1));
}

#[test]
fn what_a_value_destructor_sets_never_reaches_the_worker() {
    scenarios::what_a_value_destructor_sets_never_reaches_the_worker(Futures::new(1));
}

#[test]
fn a_cancelled_task_is_dropped_inside_its_context() {
    scenarios::a_cancelled_task_is_dropped_inside_its_context(Futures::new(1));
}

#[test]
fn a_panicking_task_reaches_the_caller_and_leaves_the_worker_clean() {
    scenarios::a_panicking_task_reaches_the_caller_and_leaves_the_worker_clean(Futures::new(1));
}

#[test]
fn stress_a_thousand_request_trees_on_four_threads() {
    scenarios::stress(Futures::new(4), 1_000);
}

// ---------------------------------------------------------------------------------------------
// Extension methods, local spawners.

#[test]
fn extension_methods_on_unwrapped_spawners() {
    let pool = ThreadPool::new().unwrap();
    let (tx, rx) = mpsc::channel();
    REQUEST_ID.scope("req-ext".into(), || {
        pool.spawn_with_context(async move { tx.send(REQUEST_ID.get()).unwrap() })
            .unwrap();
    });
    assert_eq!(rx.recv().unwrap().as_deref(), Some("req-ext"));

    let mut local = LocalPool::new();
    let seen = std::rc::Rc::new(std::cell::RefCell::new(None));
    let out = seen.clone();
    REQUEST_ID.scope("req-local".into(), || {
        local
            .spawner()
            .spawn_local_with_context(async move { *out.borrow_mut() = REQUEST_ID.get() })
            .unwrap();
    });
    local.run();
    assert_eq!(seen.borrow().as_deref(), Some("req-local"));

    let wrapped = ContextSpawner::new(local.spawner());
    let handle = REQUEST_ID
        .scope("req-handle".into(), || {
            wrapped.spawn_local_with_handle(async { REQUEST_ID.get() })
        })
        .unwrap();
    assert_eq!(local.run_until(handle).as_deref(), Some("req-handle"));
}
