//! Any `futures` spawner, wrapped or extended, propagates the caller's context.
#![cfg(feature = "futures")]

use std::sync::mpsc;

use contextvars::futures::{ContextSpawner, LocalSpawnExt, SpawnExt};
use contextvars::ContextVar;
use futures::executor::{LocalPool, ThreadPool};
use futures::task::{LocalSpawnExt as _, SpawnExt as _};

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");

#[test]
fn a_wrapped_thread_pool_propagates_and_the_bare_one_does_not() {
    let bare = ThreadPool::builder().pool_size(4).create().unwrap();
    let wrapped = ContextSpawner::new(bare.clone());
    let (tx, rx) = mpsc::channel();
    REQUEST_ID.scope("req-123".into(), || {
        for i in 0..100 {
            let (tx1, tx2) = (tx.clone(), tx.clone());
            wrapped
                .spawn(async move { tx1.send((i, true, REQUEST_ID.get())).unwrap() })
                .unwrap();
            bare.spawn(async move { tx2.send((i, false, REQUEST_ID.get())).unwrap() })
                .unwrap();
        }
    });
    drop(tx);
    let results: Vec<_> = rx.iter().collect();
    assert_eq!(results.len(), 200);
    for (_, wrapped, seen) in results {
        assert_eq!(seen.as_deref(), wrapped.then_some("req-123"));
    }
}

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
