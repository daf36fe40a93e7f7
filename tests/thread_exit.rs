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

/// Counts its drops on a channel.
struct DropReport(mpsc::Sender<&'static str>);

impl Drop for DropReport {
    fn drop(&mut self) {
        let _ = self.0.send("dropped");
    }
}

static REPORTED: ContextVar<std::sync::Arc<DropReport>> = ContextVar::opaque("reported");

/// Sets a value, captures and drops snapshots of it (so that the thread holds reference
/// credits), from a thread-local destructor.
struct SetsOnDrop(mpsc::Sender<&'static str>);

impl Drop for SetsOnDrop {
    fn drop(&mut self) {
        let value = std::sync::Arc::new(DropReport(self.0.clone()));
        // Either accepted (the crate's storage is alive or can still be set up) or refused;
        // never lost: refused values come back in the error and drop here.
        let _ = REPORTED.try_set(value);
        let snapshots: Vec<Context> = (0..10).map(|_| Context::current()).collect();
        drop(snapshots);
    }
}

thread_local! {
    static SETS_ON_DROP: RefCell<Option<SetsOnDrop>> = const { RefCell::new(None) };
}

/// A thread whose first use of the crate is a `set` inside a thread-local destructor: the
/// value is dropped exactly once, whether the crate's storage was set up then or not.
#[test]
fn a_value_set_first_during_thread_teardown_is_dropped_once() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        SETS_ON_DROP.with(|slot| *slot.borrow_mut() = Some(SetsOnDrop(tx)));
    })
    .join()
    .expect("no panic while the thread exits");
    let drops: Vec<&str> = rx.iter().collect();
    assert_eq!(drops, ["dropped"]);
}

/// The same after the crate's storage was used (and torn down, or not yet) on that thread.
#[test]
fn a_value_set_during_teardown_after_other_use_is_dropped_once() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        SETS_ON_DROP.with(|slot| *slot.borrow_mut() = Some(SetsOnDrop(tx)));
        ID.set(1);
        let kept: Vec<Context> = (0..10).map(|_| Context::current()).collect();
        drop(kept);
    })
    .join()
    .expect("no panic while the thread exits");
    let drops: Vec<&str> = rx.iter().collect();
    assert_eq!(drops, ["dropped"]);
}
