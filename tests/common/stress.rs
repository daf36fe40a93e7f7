//! The [`Runtime`] trait every runtime's tests implement, and the runtime-independent stress
//! run: many requests, each a tree of tasks three levels deep, yielding and sleeping at
//! pseudo-random points; plain tasks interleaved.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use contextvars::ContextVar;

pub(crate) type BoxFuture<T = ()> = Pin<Box<dyn Future<Output = T> + Send>>;

static REQUEST_ID: ContextVar<u64> = ContextVar::new("stress_request_id");
static LEVEL: ContextVar<u32> = ContextVar::new("stress_level");

/// A runtime as the stress run and the shared scenarios (`scenarios.rs`) drive it: how it runs a
/// future, spawns (with or without context), cancels, sleeps and yields. A new runtime implements
/// it (and [`Blocking`] when it has a pool for blocking jobs), then its test file calls the
/// scenarios.
pub(crate) trait Runtime: Clone + Send + Sync + 'static {
    /// Runs `future` to its end from the calling (test) thread, as the runtime's entry point.
    fn block_on<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T;
    /// Spawns with this crate's helper; the returned future waits for the task and gives its
    /// output, or resumes its panic (with the task's payload).
    fn spawn_with_context<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<T>;
    /// Spawns with the runtime's plain spawn; awaited as above.
    fn spawn_plain<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<T>;
    /// Spawns `task` with this crate's helper now; the returned future waits for `started`,
    /// then cancels the task the runtime's way (abort, cancel, dropping its handle), waiting for
    /// the cancellation where the runtime reports it, and asserting the task did not complete.
    fn spawn_and_cancel(
        &self,
        task: impl Future<Output = ()> + Send + 'static,
        started: impl Future<Output = ()> + Send + 'static,
    ) -> BoxFuture;
    /// Sleeps; by default a sleeping thread wakes the task, for executors without a timer. A
    /// runtime with a timer uses its own.
    fn sleep(&self, duration: Duration) -> BoxFuture {
        thread_sleep(duration)
    }
    /// Yields once; by default the task wakes itself and returns `Pending` once, which any
    /// executor handles. A runtime with a yield of its own uses it.
    fn yield_now(&self) -> BoxFuture {
        Box::pin(super::Yield(1))
    }
}

/// A runtime with a pool for blocking jobs.
pub(crate) trait Blocking: Runtime {
    /// Runs `job` on the pool with this crate's helper; awaited as [`Runtime::spawn_with_context`].
    fn spawn_blocking_with_context<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> BoxFuture<T>;
    /// Runs `job` on the pool with the runtime's plain call; awaited as above.
    fn spawn_blocking_plain<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> BoxFuture<T>;
}

/// [`Runtime::spawn_and_cancel`] for executors whose handle cancels its task when dropped
/// (async-task's `Task`, futures' `RemoteHandle`): waits for `started`, then drops `task`.
pub(crate) fn drop_after(
    task: BoxFuture,
    started: impl Future<Output = ()> + Send + 'static,
) -> BoxFuture {
    Box::pin(async move {
        started.await;
        drop(task);
    })
}

/// A sleep for executors without a timer: a thread that sleeps, then wakes the task.
fn thread_sleep(duration: Duration) -> BoxFuture {
    let (wake, woken) = futures::channel::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(duration);
        let _ = wake.send(());
    });
    Box::pin(async move {
        let _ = woken.await;
    })
}

#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) mismatches: AtomicUsize,
    pub(crate) checks: AtomicUsize,
    pub(crate) finished: AtomicUsize,
    pub(crate) plain_finished: AtomicUsize,
}

impl Tally {
    fn check(&self, ok: bool) {
        self.checks.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.mismatches.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A small deterministic generator, so that every run yields and sleeps at the same points.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

fn pause<R: Runtime>(rt: &R, seed: u64) -> BoxFuture {
    match seed % 4 {
        0 => rt.sleep(Duration::from_micros(seed % 300)),
        1 => rt.yield_now(),
        _ => Box::pin(async {}),
    }
}

fn node<R: Runtime>(rt: R, tally: Arc<Tally>, id: u64, level: u32) -> BoxFuture {
    Box::pin(async move {
        let sees_own = || REQUEST_ID.get() == Some(id);
        tally.check(sees_own() && LEVEL.get() == level.checked_sub(1));
        LEVEL.set(level); // the task's own, never its parent's
        let mut seed = mix(id * 8 + u64::from(level));
        pause(&rt, seed).await;
        tally.check(sees_own() && LEVEL.get() == Some(level));
        if level < 3 {
            let child = rt.spawn_with_context(node(rt.clone(), tally.clone(), id, level + 1));
            seed = mix(seed);
            pause(&rt, seed).await;
            tally.check(sees_own() && LEVEL.get() == Some(level));
            child.await;
        }
        seed = mix(seed);
        pause(&rt, seed).await;
        tally.check(sees_own() && LEVEL.get() == Some(level));
        tally.finished.fetch_add(1, Ordering::Relaxed);
    })
}

fn plain<R: Runtime>(rt: R, tally: Arc<Tally>, seed: u64) -> BoxFuture {
    Box::pin(async move {
        tally.check(REQUEST_ID.get().is_none() && LEVEL.get().is_none());
        pause(&rt, mix(seed)).await;
        tally.check(REQUEST_ID.get().is_none() && LEVEL.get().is_none());
        tally.plain_finished.fetch_add(1, Ordering::Relaxed);
    })
}

/// Runs `requests` request trees (4 tasks each) and as many plain tasks, and asserts that every
/// check passed. Must be awaited from inside the runtime.
pub(crate) async fn run<R: Runtime>(rt: R, requests: u64) {
    let tally = Arc::new(Tally::default());
    let mut waits = Vec::with_capacity(2 * requests as usize);
    for id in 0..requests {
        let root = REQUEST_ID.scope(id, || {
            rt.spawn_with_context(node(rt.clone(), tally.clone(), id, 0))
        });
        waits.push(root);
        // Spawned from inside a scope, but plainly: it must see nothing.
        let stray = REQUEST_ID.scope(id, || rt.spawn_plain(plain(rt.clone(), tally.clone(), id)));
        waits.push(stray);
    }
    for wait in waits {
        wait.await;
    }
    let n = requests as usize;
    assert_eq!(
        tally.finished.load(Ordering::SeqCst),
        4 * n,
        "every request task ran"
    );
    assert_eq!(
        tally.plain_finished.load(Ordering::SeqCst),
        n,
        "every plain task ran"
    );
    assert_eq!(
        tally.checks.load(Ordering::SeqCst),
        4 * 3 * n + 3 * n + 2 * n
    );
    assert_eq!(
        tally.mismatches.load(Ordering::SeqCst),
        0,
        "a task saw another's context"
    );
}
