//! The guide's scenarios on std threads (`contextvars::thread`).

use std::sync::{mpsc, Arc, Barrier};

use contextvars::thread::{self, BuilderExt, ScopeExt};
use contextvars::{Context, ContextVar};

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");

fn process_item(item_id: &str, priority: u8) -> (String, u8, Option<String>) {
    (item_id.to_string(), priority, REQUEST_ID.get())
}

#[test]
fn sync_work_in_a_thread_sees_the_request_id_with_arguments_and_a_result() {
    REQUEST_ID.scope("req-456".into(), || {
        let handle = thread::spawn_with_context(|| process_item("item-123", 1));
        assert_eq!(
            handle.join().unwrap(),
            ("item-123".into(), 1, Some("req-456".into()))
        );
        // Without the helper, the thread starts empty.
        let plain = std::thread::spawn(|| process_item("item-124", 2));
        assert_eq!(plain.join().unwrap().2, None);
    });
}

#[test]
fn named_threads_and_scoped_threads() {
    REQUEST_ID.scope("req-7".into(), || {
        let (name, seen) = std::thread::Builder::new()
            .name("process-order-123".into())
            .spawn_with_context(|| {
                (
                    std::thread::current().name().map(str::to_string),
                    REQUEST_ID.get(),
                )
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(name.as_deref(), Some("process-order-123"));
        assert_eq!(seen.as_deref(), Some("req-7"));

        let local = String::from("borrowed");
        std::thread::scope(|s| {
            let a = s.spawn_with_context(|| format!("{local}:{:?}", REQUEST_ID.get()));
            let b = std::thread::Builder::new()
                .name("scoped".into())
                .spawn_scoped_with_context(s, || REQUEST_ID.get())
                .unwrap();
            assert_eq!(a.join().unwrap(), "borrowed:Some(\"req-7\")");
            assert_eq!(b.join().unwrap().as_deref(), Some("req-7"));
        });
    });
}

#[test]
fn threads_are_isolated_and_end_clean() {
    let barrier = Arc::new(Barrier::new(8));
    let (tx, rx) = mpsc::channel();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (barrier, tx) = (barrier.clone(), tx.clone());
            REQUEST_ID.scope(format!("req-{i}"), || {
                thread::spawn_with_context(move || {
                    barrier.wait(); // all eight run at once
                    REQUEST_ID.set(format!("{}-child", REQUEST_ID.get().unwrap()));
                    barrier.wait();
                    tx.send((i, REQUEST_ID.get())).unwrap();
                })
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    drop(tx);
    let mut seen: Vec<_> = rx.iter().collect();
    seen.sort();
    for (i, value) in seen.into_iter().enumerate() {
        assert_eq!(value, (i, Some(format!("req-{i}-child"))));
    }
    assert!(Context::current().is_empty());
}
