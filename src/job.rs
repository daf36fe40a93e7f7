//! A one-shot, runtime-free handle on the result of a job sent to a thread or a pool.
//!
//! The job side (`Completer`) and the waiting side (`JobHandle`) share a mutex-protected slot.
//! Whoever finishes the job stores its result (or its panic) there, then wakes both kinds of
//! waiter: a thread blocked in `join` (through the condition variable) and a task awaiting the
//! handle (through the stored `Waker`). No executor is involved, so the handle can be awaited on
//! any of them, or waited for from plain threads.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context as TaskContext, Poll, Waker};
use std::thread;

use crate::capture::Captured;
use crate::{state, Context};

/// The panic payload a [`JobHandle`] reports when its job was dropped without running.
const DROPPED: &str = "contextvars: the job was dropped before it ran (its pool shut down)";
const TAKEN: &str = "contextvars: the job's result was already taken from this handle";

/// The result of a job sent to a thread or a pool: wait for it with [`join`](JobHandle::join)
/// or `.await` it.
///
/// Returned by the `run_in_pool_with_context` functions of [`thread`](crate::thread) and, with
/// the `rayon` feature, of `contextvars::rayon`. It needs no async runtime: an `async` caller
/// awaits it on any executor without blocking a thread, a synchronous caller blocks in `join`,
/// like [`std::thread::JoinHandle::join`].
///
/// Dropping the handle detaches the job: it still runs, but its result (or panic) is dropped.
///
/// # Errors
///
/// Both ways of waiting give a [`std::thread::Result`]: `Ok` with the job's return value, or
/// `Err` with the payload of the panic that ended the job (pass it to
/// [`std::panic::resume_unwind`] to continue unwinding in the caller). The thread that ran the
/// job is unharmed: the panic is caught there, after the job's context was taken off it.
///
/// Should a job be dropped without ever running (its pool gone before the job started; neither
/// std threads nor rayon pools do this, but other pools may), the handle does not hang: it
/// reports `Err` with the `&'static str` payload
/// `"contextvars: the job was dropped before it ran (its pool shut down)"`.
///
/// # Examples
///
/// Waiting synchronously, and seeing a panic:
///
/// ```
/// use contextvars::{thread, ContextVar};
///
/// static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");
///
/// REQUEST_ID.scope("req-456", || {
///     let handle = thread::run_in_pool_with_context(|| REQUEST_ID.get());
///     assert_eq!(handle.join().unwrap(), Some("req-456"));
///
///     let failed = thread::run_in_pool_with_context(|| -> u32 { panic!("job failed") });
///     let payload = failed.join().unwrap_err();
///     assert_eq!(payload.downcast_ref::<&str>(), Some(&"job failed"));
/// });
/// ```
///
/// Awaiting, on any executor:
///
/// ```
/// use contextvars::{thread, ContextVar};
///
/// static USER_ID: ContextVar<u64> = ContextVar::new("user_id");
///
/// let task = USER_ID.scope_future(789, async {
///     thread::run_in_pool_with_context(|| USER_ID.get()).await
/// });
/// assert_eq!(futures::executor::block_on(task).unwrap(), Some(789));
/// ```
#[must_use = "dropping a JobHandle detaches the job: its result and any panic are lost"]
pub struct JobHandle<T> {
    shared: Arc<Shared<T>>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    finished: Condvar,
}

enum State<T> {
    /// The job has not finished.
    Running {
        /// The waker of the task awaiting the handle, if any.
        waker: Option<Waker>,
        /// Whether a thread is blocked in `join` (the condition variable is notified only
        /// then: a notification costs a system call).
        joining: bool,
    },
    Finished(thread::Result<T>),
    /// The result went to the caller.
    Taken,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing that can panic runs under the lock except a waker's `clone`; the state is
        // consistent at every point anyway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn finish(&self, result: thread::Result<T>) {
        let previous = mem::replace(&mut *self.lock(), State::Finished(result));
        // Woken after the lock is released, so that the waiter can take the result at once.
        if let State::Running { waker, joining } = previous {
            if joining {
                self.finished.notify_one();
            }
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// The job's side: stores the result, or reports the job dropped if it never gets to.
pub(crate) struct Completer<T> {
    shared: Option<Arc<Shared<T>>>,
}

impl<T> Completer<T> {
    /// Stores the result. A result nobody waits for any more is dropped here, in the job's
    /// outer frame (the empty context), and caught if its destructor panics: it never reaches
    /// the pool.
    fn finish(mut self, result: thread::Result<T>) {
        if let Some(shared) = self.shared.take() {
            shared.finish(result);
            if let Some(unwaited) = Arc::into_inner(shared) {
                let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(unwaited)));
            }
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            let payload: Box<dyn Any + Send> = Box::new(DROPPED);
            shared.finish(Err(payload));
        }
    }
}

/// A job that runs `f` inside `context`, catching its panic, and the handle on its result.
///
/// The panic is caught inside the job's frame, which then restores the running thread's context
/// as every frame does; a panic of a context value's destructor is caught as well.
pub(crate) fn new_job<F, T>(context: Captured, f: F) -> (impl FnOnce() + Send, JobHandle<T>)
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let shared = Arc::new(Shared {
        state: Mutex::new(State::Running {
            waker: None,
            joining: false,
        }),
        finished: Condvar::new(),
    });
    let completer = Completer {
        shared: Some(shared.clone()),
    };
    let job = move || {
        // An empty frame around the whole job holds what the job leaves behind (an unwaited
        // result, a panic payload), so that nothing their destructors set reaches the thread.
        state::run_in(Context::new(), move || {
            // The job's context is dropped inside the outer `catch_unwind`: a value whose
            // destructor panics is reported like a panic of the job, never to the pool.
            let outcome = panic::catch_unwind(AssertUnwindSafe(move || {
                context.run(move || panic::catch_unwind(AssertUnwindSafe(f)))
            }));
            completer.finish(outcome.unwrap_or_else(Err));
        })
    };
    (job, JobHandle { shared })
}

impl<T> JobHandle<T> {
    /// Blocks until the job has finished and returns its result, or the payload of its panic.
    ///
    /// Do not call it from async code: `.await` the handle instead.
    ///
    /// If the result was already taken by awaiting the handle, returns `Err` with a `&str`
    /// payload saying so. On a rayon worker thread it runs other jobs of the pool while it waits,
    /// so joining from inside the pool that must run the job does not deadlock.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::thread;
    ///
    /// let (item_id, priority) = ("item-123".to_string(), 1);
    /// let handle = thread::run_in_pool_with_context(move || format!("{item_id}@{priority}"));
    /// assert_eq!(handle.join().unwrap(), "item-123@1");
    /// ```
    #[track_caller]
    pub fn join(self) -> thread::Result<T> {
        self.help_until_finished();
        let mut state = self.shared.lock();
        loop {
            match &mut *state {
                State::Running { joining, .. } => {
                    *joining = true;
                    state = self
                        .shared
                        .finished
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                State::Finished(_) => match mem::replace(&mut *state, State::Taken) {
                    State::Finished(result) => return result,
                    _ => unreachable!("the state was finished a moment ago, under the lock"),
                },
                State::Taken => return Err(Box::new(TAKEN)),
            }
        }
    }

    /// On a worker of a pool that can run its other work meanwhile (rayon's; see
    /// [`crate::executor::Executor::run_one_while_waiting`]), blocking could starve the very pool
    /// that must run the job (a one-thread pool, or every worker joining): keep running the
    /// pool's work instead, and sleep briefly only when the pool has nothing to run.
    fn help_until_finished(&self) {
        if self.is_finished() {
            return;
        }
        // Each unit of work run meanwhile gets a frame of its own with the empty context: it
        // must see neither the joiner's context nor what an earlier one set.
        let Some(executor) = state::current_executor() else {
            return;
        };
        let help = || state::run_in(Context::new(), || executor.run_one_while_waiting());
        let Some(mut ran) = help() else {
            return;
        };
        while !self.is_finished() {
            if !ran {
                let mut state = self.shared.lock();
                if let State::Running { joining, .. } = &mut *state {
                    *joining = true;
                    let _ = self
                        .shared
                        .finished
                        .wait_timeout(state, std::time::Duration::from_millis(1));
                }
            }
            ran = help().unwrap_or(false);
        }
    }

    /// Whether the job has finished (returned or panicked), so that [`join`](JobHandle::join)
    /// would not block.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use contextvars::thread;
    ///
    /// let (go, wait) = mpsc::channel::<()>();
    /// let handle = thread::run_in_pool_with_context(move || wait.recv().unwrap());
    /// assert!(!handle.is_finished());
    /// go.send(()).unwrap();
    /// handle.join().unwrap();
    /// ```
    pub fn is_finished(&self) -> bool {
        !matches!(*self.shared.lock(), State::Running { .. })
    }
}

impl<T> Future for JobHandle<T> {
    type Output = thread::Result<T>;

    /// Ready with the job's result once it has finished; the task is woken when it does.
    ///
    /// Polled again after it returned `Ready`, it returns `Ready(Err(..))` with a `&str`
    /// payload saying the result was already taken.
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<thread::Result<T>> {
        let mut state = self.shared.lock();
        if let State::Running { waker, .. } = &mut *state {
            match waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        match mem::replace(&mut *state, State::Taken) {
            State::Finished(result) => Poll::Ready(result),
            _ => Poll::Ready(Err(Box::new(TAKEN))),
        }
    }
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::task::ArcWake;

    use super::*;

    #[test]
    fn a_job_dropped_without_running_reports_an_error_instead_of_hanging() {
        let (job, handle) = new_job(Captured::now(), || 5);
        assert!(!handle.is_finished());
        drop(job);
        assert!(handle.is_finished());
        let payload = handle.join().unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&DROPPED));
    }

    #[test]
    fn a_thread_blocked_in_join_is_woken_when_the_job_finishes() {
        let (job, handle) = new_job(Captured::now(), || 5);
        let shared = handle.shared.clone();
        let joiner = std::thread::spawn(move || handle.join());
        // Run the job only once the joiner is blocked on the condition variable.
        while !matches!(*shared.lock(), State::Running { joining: true, .. }) {
            std::thread::yield_now();
        }
        job();
        assert_eq!(joiner.join().unwrap().unwrap(), 5);
    }

    #[test]
    fn a_dropped_job_wakes_the_awaiting_task() {
        struct CountWakes(AtomicUsize);
        impl ArcWake for CountWakes {
            fn wake_by_ref(arc_self: &Arc<Self>) {
                arc_self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
        let waker = futures::task::waker(wakes.clone());
        let mut cx = TaskContext::from_waker(&waker);

        let (job, mut handle) = new_job(Captured::now(), || 5);
        assert!(Pin::new(&mut handle).poll(&mut cx).is_pending());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        drop(job);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert!(matches!(
            Pin::new(&mut handle).poll(&mut cx),
            Poll::Ready(Err(_))
        ));
    }
}
