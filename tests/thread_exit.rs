//! Using the API while a thread's storage is being torn down never panics.

use std::cell::RefCell;
use std::future::Future;
use std::sync::mpsc;

use contextvars::{Context, ContextExt, ContextVar};

static ID: ContextVar<u32> = ContextVar::new("id");

struct UsesApiOnDrop(mpsc::Sender<String>);

impl Drop for UsesApiOnDrop {
    fn drop(&mut self) {
        let get = ID.get();
        let set = ID.try_set(5);
        ID.set(6);
        ID.remove();
        let captured = Context::current();
        let ran = Context::new().with_value(&ID, 1).run(|| ID.get());
        let guard = Context::new().with_value(&ID, 2).attach();
        drop(guard);
        // Polled by hand: an executor's own thread-locals may be gone already.
        let mut task =
            std::pin::pin!(async { ID.get() }.with_context(Context::new().with_value(&ID, 3)));
        let waker = futures::task::noop_waker();
        let polled = match task
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker))
        {
            std::task::Poll::Ready(seen) => seen,
            std::task::Poll::Pending => unreachable!("ready at once"),
        };
        let report = format!(
            "{get:?} {} {} {ran:?} {polled:?}",
            set.is_ok(),
            captured.len()
        );
        let _ = self.0.send(report);
    }
}

thread_local! {
    // Declared before any use of the crate on the thread, and registered again after, so that
    // one of the two runs after the crate's own storage is destroyed whatever the order.
    static EARLY: RefCell<Option<UsesApiOnDrop>> = const { RefCell::new(None) };
    static LATE: RefCell<Option<UsesApiOnDrop>> = const { RefCell::new(None) };
}

#[test]
fn thread_local_destructors_may_use_every_call() {
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        EARLY.with(|slot| *slot.borrow_mut() = Some(UsesApiOnDrop(tx)));
        ID.set(9);
        let _ = Context::current();
        LATE.with(|slot| *slot.borrow_mut() = Some(UsesApiOnDrop(tx2)));
    })
    .join()
    .expect("no panic while the thread exits");
    let reports: Vec<String> = rx.iter().collect();
    assert_eq!(reports.len(), 2);
    for report in &reports {
        // Either the crate's storage was still alive (everything worked as usual), or it was
        // gone and every call degraded to "no context" without panicking.
        assert!(
            report == "Some(9) true 0 Some(1) Some(3)" || report == "None false 0 None None",
            "{report}"
        );
    }
}
