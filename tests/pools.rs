//! `run_in_pool_with_context` on std threads (`contextvars::thread`) and the `JobHandle` it
//! returns: the guide's `run_in_executor_with_context` scenarios, synchronous and async.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context as TaskContext, Poll};

use contextvars::thread::{self, BuilderExt};
use contextvars::{Context, ContextExt, ContextVar, JobHandle};
use futures::task::ArcWake;

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");

fn request(id: &str) -> Context {
    Context::new().with_value(&REQUEST_ID, id.to_string())
}

fn id() -> Option<String> {
    REQUEST_ID.get()
}

fn process_item(item_id: &str, priority: u8) -> (String, u8, Option<String>) {
    (item_id.to_string(), priority, id())
}

#[test]
fn sync_work_sees_the_request_id_with_arguments_and_a_result() {
    request("req-456").run(|| {
        let item_id = String::from("item-123");
        let handle = thread::run_in_pool_with_context(move || process_item(&item_id, 1));
        assert_eq!(
            handle.join().unwrap(),
            ("item-123".into(), 1, Some("req-456".into()))
        );
        // A plain thread starts empty.
        let plain = std::thread::spawn(|| process_item("item-124", 2));
        assert_eq!(plain.join().unwrap().2, None);
    });
}

#[test]
fn named_threads() {
    let (name, seen) = request("req-7")
        .run(|| {
            std::thread::Builder::new()
                .name("process-order-123".into())
                .run_in_pool_with_context(|| {
                    (std::thread::current().name().map(String::from), id())
                })
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(name.as_deref(), Some("process-order-123"));
    assert_eq!(seen.as_deref(), Some("req-7"));
}

#[cfg(target_os = "linux")]
#[test]
fn a_thread_that_cannot_be_created_is_an_error_not_a_hang() {
    let result = std::thread::Builder::new()
        .stack_size(1 << 60)
        .run_in_pool_with_context(|| 1);
    assert!(result.is_err());
}

#[test]
fn jobs_are_isolated_both_ways() {
    request("parent").run(|| {
        let handle = thread::run_in_pool_with_context(|| {
            REQUEST_ID.set("child-override".into());
            id()
        });
        assert_eq!(handle.join().unwrap().as_deref(), Some("child-override"));
        assert_eq!(id().as_deref(), Some("parent"));

        let (go, wait) = mpsc::channel::<()>();
        let handle = thread::run_in_pool_with_context(move || {
            wait.recv().unwrap();
            id()
        });
        REQUEST_ID.set("changed-later".into());
        go.send(()).unwrap();
        assert_eq!(handle.join().unwrap().as_deref(), Some("parent"));
    });
}

#[test]
fn a_panic_reaches_the_caller_through_join_and_await() {
    request("req-panic").run(|| {
        let handle = thread::run_in_pool_with_context(|| -> u32 { panic!("job failed") });
        let payload = handle.join().unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"job failed"));

        let handle =
            thread::run_in_pool_with_context(|| -> u32 { panic!("for {}", id().unwrap()) });
        let payload = futures::executor::block_on(handle).unwrap_err();
        assert_eq!(
            payload.downcast_ref::<String>().map(String::as_str),
            Some("for req-panic")
        );
        assert_eq!(id().as_deref(), Some("req-panic"));
    });
}

/// Counts its wakes and reports each one on a channel, so a test can wait for the wake itself
/// (the job is finished a moment before its waker is called).
struct CountWakes(AtomicUsize, std::sync::Mutex<mpsc::Sender<()>>);

impl ArcWake for CountWakes {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, Ordering::SeqCst);
        let _ = arc_self.1.lock().unwrap().send(());
    }
}

#[test]
fn the_handle_is_pending_until_the_job_finishes_then_wakes_the_task() {
    let (woken, wake_reported) = mpsc::channel();
    let wakes = Arc::new(CountWakes(
        AtomicUsize::new(0),
        std::sync::Mutex::new(woken),
    ));
    let waker = futures::task::waker(wakes.clone());
    let mut cx = TaskContext::from_waker(&waker);

    let (go, wait) = mpsc::channel::<()>();
    let mut handle = request("req-poll").run(|| {
        thread::run_in_pool_with_context(move || {
            wait.recv().unwrap();
            id()
        })
    });
    // Polling returns at once while the job is blocked: an awaiting task never blocks.
    assert!(Pin::new(&mut handle).poll(&mut cx).is_pending());
    assert!(!handle.is_finished());
    assert_eq!(format!("{handle:?}"), "JobHandle { finished: false, .. }");
    go.send(()).unwrap();
    wake_reported.recv().unwrap();
    assert!(handle.is_finished());
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    match Pin::new(&mut handle).poll(&mut cx) {
        Poll::Ready(result) => assert_eq!(result.unwrap().as_deref(), Some("req-poll")),
        Poll::Pending => panic!("finished, but still pending"),
    }
}

#[test]
fn awaiting_on_a_single_threaded_tokio_runtime_does_not_block_it() {
    // The job waits for a message sent by another task of the same single-threaded runtime:
    // if awaiting the handle blocked the thread, that task could never run.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let seen = runtime.block_on(
        async {
            let (go, wait) = mpsc::channel::<()>();
            let handle = thread::run_in_pool_with_context(move || {
                wait.recv().unwrap();
                id()
            });
            let sender = tokio::spawn(async move { go.send(()).unwrap() });
            let seen = handle.await.unwrap();
            sender.await.unwrap();
            seen
        }
        .with_context(request("req-tokio")),
    );
    assert_eq!(seen.as_deref(), Some("req-tokio"));
}

#[test]
fn the_handle_is_send_and_sync_when_the_result_is_send() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<JobHandle<String>>();
    send_sync::<JobHandle<std::cell::Cell<u8>>>(); // Send but not Sync: the handle still is
}
