//! The basic scenarios, written once for every runtime: each function checks one behaviour
//! through a [`Runtime`] (or a [`Blocking`] one), and each runtime's test file calls it from a
//! `#[test]` with its own implementation. Where a scenario says "the worker", it is the only one
//! when the runtime given has one worker (the strongest check: the later task runs on the very
//! thread of the earlier one).

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use contextvars::{Context, ContextVar};
use futures::channel::oneshot;
use futures::FutureExt;

use super::report::ReportOnDrop;
use super::stress::{self, Blocking, BoxFuture, Runtime};

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
static LEVEL: ContextVar<u32> = ContextVar::new("level");

/// What a task sees after a pause (made before the spawn: the task holds no runtime).
async fn seen_after(pause: BoxFuture) -> Option<String> {
    pause.await;
    REQUEST_ID.get()
}

/// What a later plain task sees: no value, an empty context.
async fn what_a_plain_task_sees() -> (Option<String>, usize) {
    (REQUEST_ID.get(), Context::current().len())
}

/// A task spawned with the helper sees the caller's value after a pause; one spawned plainly
/// from the same scope sees nothing.
pub(crate) fn a_spawned_task_keeps_the_callers_context_and_a_plain_one_has_none<R: Runtime>(rt: R) {
    rt.clone().block_on(async move {
        let (with_helper, plain) = REQUEST_ID.scope("req-123".into(), || {
            (
                rt.spawn_with_context(seen_after(rt.yield_now())),
                rt.spawn_plain(seen_after(rt.yield_now())),
            )
        });
        assert_eq!(with_helper.await.as_deref(), Some("req-123"));
        assert_eq!(plain.await, None);
    });
}

/// The child sees the value the parent had when it spawned it, not what the parent set later;
/// what the child sets stays in the child.
pub(crate) fn isolation_both_ways<R: Runtime>(rt: R) {
    rt.clone().block_on(async move {
        let (release, released) = oneshot::channel::<()>();
        let (started, wait_started) = oneshot::channel::<()>();
        let child = Context::new().run(|| {
            REQUEST_ID.set("parent-value".into());
            rt.spawn_with_context(async move {
                started.send(()).unwrap();
                released.await.unwrap(); // the parent has changed its value by now
                let inherited = REQUEST_ID.get();
                REQUEST_ID.set("child-override".into());
                (inherited, REQUEST_ID.get())
            })
        });
        wait_started.await.unwrap();
        REQUEST_ID.set("parent-later".into());
        release.send(()).unwrap();
        let (inherited, overridden) = child.await;
        assert_eq!(inherited.as_deref(), Some("parent-value"));
        assert_eq!(overridden.as_deref(), Some("child-override"));
        assert_eq!(REQUEST_ID.get().as_deref(), Some("parent-later"));
    });
}

/// A value a task sets is there across its awaits, and only there: the next plain task on the
/// worker, and the caller, see an empty context.
pub(crate) fn a_value_set_in_a_task_stays_in_it<R: Runtime>(rt: R) {
    rt.clone().block_on(async move {
        let pause = rt.yield_now();
        let seen = rt
            .spawn_with_context(async move {
                REQUEST_ID.set("set-in-task".into());
                pause.await;
                REQUEST_ID.get()
            })
            .await;
        assert_eq!(seen.as_deref(), Some("set-in-task"));
        assert_eq!(rt.spawn_plain(what_a_plain_task_sees()).await, (None, 0));
        assert_eq!(REQUEST_ID.get(), None);
    });
}

/// Sets `REQUEST_ID` when dropped.
struct SetsOnDrop;

impl Drop for SetsOnDrop {
    fn drop(&mut self) {
        REQUEST_ID.set("set-by-destructor".into());
    }
}

static SETS_ON_DROP: ContextVar<SetsOnDrop> = ContextVar::opaque("sets_on_drop");

/// What the destructor of a task's value sets (when the task ends and its context goes) never
/// reaches the worker: the next plain task there, and the caller, see nothing.
pub(crate) fn what_a_value_destructor_sets_never_reaches_the_worker<R: Runtime>(rt: R) {
    rt.clone().block_on(async move {
        rt.spawn_with_context(async { SETS_ON_DROP.set(SetsOnDrop) })
            .await;
        assert_eq!(rt.spawn_plain(async { REQUEST_ID.get() }).await, None);
        assert_eq!(REQUEST_ID.get(), None);
    });
}

/// A started task, cancelled, is dropped inside its context: its destructors see what it
/// inherited and what it set.
pub(crate) fn a_cancelled_task_is_dropped_inside_its_context<R: Runtime>(rt: R) {
    rt.clone().block_on(async move {
        let (report, reports) = mpsc::channel();
        let (started, wait_started) = oneshot::channel::<()>();
        let cancelled = REQUEST_ID.scope("req-cancel".into(), || {
            rt.spawn_and_cancel(
                async move {
                    let _report = ReportOnDrop::new(report, || (REQUEST_ID.get(), LEVEL.get()));
                    LEVEL.set(1);
                    started.send(()).unwrap();
                    std::future::pending::<()>().await;
                },
                async move { wait_started.await.unwrap() },
            )
        });
        cancelled.await;
        assert_eq!(
            reports.recv().unwrap(),
            (Some("req-cancel".into()), Some(1))
        );
    });
}

/// A task that panics after a `set`: the caller gets the panic with its payload, and the next
/// plain task on the worker, and the caller, see an empty context.
pub(crate) fn a_panicking_task_reaches_the_caller_and_leaves_the_worker_clean<R: Runtime>(rt: R) {
    rt.clone().block_on(async move {
        let task = REQUEST_ID.scope("doomed".into(), || {
            rt.spawn_with_context(async {
                REQUEST_ID.set("set-before-panic".into());
                panic!("task failed");
            })
        });
        let payload = AssertUnwindSafe(task).catch_unwind().await.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"task failed"));
        assert_eq!(rt.spawn_plain(what_a_plain_task_sees()).await, (None, 0));
        assert_eq!(REQUEST_ID.get(), None);
    });
}

fn process_item(item_id: &str, priority: u8) -> (String, u8, Option<String>) {
    (item_id.to_string(), priority, REQUEST_ID.get())
}

/// A blocking job run with the helper sees the caller's value, takes its arguments and gives its
/// result; one run plainly from the same scope sees nothing.
pub(crate) fn a_blocking_job_keeps_the_callers_context_and_a_plain_one_has_none<R: Blocking>(
    rt: R,
) {
    rt.clone().block_on(async move {
        let item = String::from("item-123");
        let job = REQUEST_ID.scope("req-456".into(), || {
            rt.spawn_blocking_with_context(move || process_item(&item, 1))
        });
        assert_eq!(job.await, ("item-123".into(), 1, Some("req-456".into())));
        let plain = REQUEST_ID.scope("req-456".into(), || {
            rt.spawn_blocking_plain(|| process_item("x", 2))
        });
        assert_eq!(plain.await.2, None);
    });
}

/// What the destructor of a blocking job's value sets never reaches the pool's thread: the next
/// plain job there sees nothing.
pub(crate) fn what_a_value_destructor_sets_never_reaches_the_blocking_thread<R: Blocking>(rt: R) {
    rt.clone().block_on(async move {
        rt.spawn_blocking_with_context(|| SETS_ON_DROP.set(SetsOnDrop))
            .await;
        assert_eq!(rt.spawn_blocking_plain(|| REQUEST_ID.get()).await, None);
    });
}

/// A blocking job that panics after a `set`: the caller gets the panic with its payload, and
/// the next plain job on the pool's thread sees an empty context.
pub(crate) fn a_panicking_blocking_job_reaches_the_caller_and_leaves_the_thread_clean<
    R: Blocking,
>(
    rt: R,
) {
    rt.clone().block_on(async move {
        let job = REQUEST_ID.scope("doomed".into(), || {
            rt.spawn_blocking_with_context(|| -> () {
                REQUEST_ID.set("set-before-panic".into());
                panic!("job failed");
            })
        });
        let payload = AssertUnwindSafe(job).catch_unwind().await.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"job failed"));
        let later = rt.spawn_blocking_plain(|| (REQUEST_ID.get(), Context::current().len()));
        assert_eq!(later.await, (None, 0));
    });
}

/// [`stress::run`] with `requests` request trees.
pub(crate) fn stress<R: Runtime>(rt: R, requests: u64) {
    rt.clone().block_on(stress::run(rt, requests));
}
