//! Spawning on [smol](https://docs.rs/smol) with the caller's context (feature `smol`).
//!
//! # What it propagates
//!
//! Every function here captures [`Context::current`](crate::Context::current) at the call and runs the task or closure in
//! a copy of it. Tasks are wrapped in a [`WithContext`](crate::WithContext): the context is
//! installed around every poll and while the task's future is dropped (completion,
//! `Task::cancel`, dropping the `Task`, dropping the executor). This covers smol's global
//! executor ([`spawn_with_context`]), any [`Executor`] or [`LocalExecutor`] ([`ExecutorExt`]),
//! and the blocking pool ([`unblock_with_context`]).
//!
//! With the `tracing` feature, the child also runs inside the `tracing::Span` that was current
//! at the call, as if `.in_current_span()` had been written by hand; see
//! [`crate::tracing`] for how to opt out for one spawn.
//!
//! # What bypasses it
//!
//! `smol::spawn`, `Executor::spawn`, `Executor::spawn_many`, `LocalExecutor::spawn`,
//! `smol::unblock` and `smol::block_on` know nothing of this crate: a future spawned through them
//! runs in whatever context the thread has when it polls, normally the empty context.
//!
//! A plain `smol::unblock` job, or a plain task on smol's global executor (`smol::spawn`), may
//! not [`set`](crate::ContextVar::set) a variable: it runs on a thread of the `blocking` crate or
//! of smol's executor (recognised by their names, `blocking-N` and `smol-N`), where the value
//! would stay for the next, unrelated job or task, so `set` panics and `try_set` returns an
//! error naming the fix. The one case this crate cannot tell: an [`Executor`] or
//! [`LocalExecutor`] that *you* drive on your own thread (`smol::block_on(ex.run(..))`). smol
//! gives a running task no identity a library can read, so a plain task's `set` there looks like
//! one made at the thread's own top level, which is accepted, and the value stays on that
//! thread for the tasks polled after it. Spawn with [`ExecutorExt`] / [`LocalExecutorExt`] (each
//! task then has its own frame), or wrap the future with
//! [`with_current_context`](crate::ContextExt::with_current_context).
//!
//! # Examples
//!
//! ```
//! use contextvars::smol::{spawn_with_context, unblock_with_context};
//! use contextvars::ContextVar;
//!
//! static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
//!
//! smol::block_on(async {
//!     let (task, job) = REQUEST_ID.scope("req-123".into(), || {
//!         (
//!             spawn_with_context(async { REQUEST_ID.get() }),
//!             unblock_with_context(|| REQUEST_ID.get()),
//!         )
//!     });
//!     assert_eq!(task.await.as_deref(), Some("req-123"));
//!     assert_eq!(job.await.as_deref(), Some("req-123"));
//! });
//! ```

use std::future::Future;

use ::smol::{Executor, LocalExecutor, Task};

/// [`smol::spawn`] (the global executor) inside a copy of the caller's context.
///
/// ```
/// use contextvars::smol::spawn_with_context;
/// use contextvars::ContextVar;
///
/// static USER: ContextVar<u32> = ContextVar::new("user");
///
/// let task = USER.scope(7, || spawn_with_context(async { USER.get() }));
/// assert_eq!(smol::block_on(task), Some(7));
/// ```
pub fn spawn_with_context<F>(future: F) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    ::smol::spawn(crate::capture::task(future))
}

/// [`smol::unblock`] (the blocking pool) inside a copy of the caller's context:
/// Python's `run_in_executor_with_context`.
///
/// ```
/// use contextvars::smol::unblock_with_context;
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");
///
/// let job = REQUEST_ID.scope("req-4", || unblock_with_context(|| REQUEST_ID.get()));
/// assert_eq!(smol::block_on(job), Some("req-4"));
/// ```
pub fn unblock_with_context<F, R>(f: F) -> Task<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    ::smol::unblock(crate::capture::job(f))
}

/// Context-keeping spawns on an [`Executor`] or a [`LocalExecutor`].
///
/// # Examples
///
/// ```
/// use contextvars::smol::ExecutorExt;
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<u32> = ContextVar::new("request_id");
///
/// let executor = smol::Executor::new();
/// let task = REQUEST_ID.scope(3, || executor.spawn_with_context(async { REQUEST_ID.get() }));
/// assert_eq!(smol::block_on(executor.run(task)), Some(3));
///
/// let local = smol::LocalExecutor::new();
/// let task = REQUEST_ID.scope(4, || local.spawn_with_context(async { REQUEST_ID.get() }));
/// assert_eq!(smol::block_on(local.run(task)), Some(4));
/// ```
pub trait ExecutorExt<'a> {
    /// Spawns `future` on this executor inside a copy of the caller's context.
    ///
    /// ```
    /// # use contextvars::smol::ExecutorExt;
    /// let executor = smol::Executor::new();
    /// let task = executor.spawn_with_context(async { 1 });
    /// assert_eq!(smol::block_on(executor.run(task)), 1);
    /// ```
    fn spawn_with_context<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'a,
        F::Output: Send + 'a;
}

impl<'a> ExecutorExt<'a> for Executor<'a> {
    fn spawn_with_context<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'a,
        F::Output: Send + 'a,
    {
        self.spawn(crate::capture::task(future))
    }
}

/// Context-keeping spawns of `!Send` futures on a [`LocalExecutor`].
///
/// ```
/// use std::rc::Rc;
/// use contextvars::smol::LocalExecutorExt;
/// use contextvars::ContextVar;
///
/// static USER: ContextVar<u32> = ContextVar::new("user");
///
/// let local = smol::LocalExecutor::new();
/// let not_send = Rc::new(2);
/// let task = USER.scope(5, || local.spawn_local_with_context(async move { (*not_send, USER.get()) }));
/// assert_eq!(smol::block_on(local.run(task)), (2, Some(5)));
/// ```
pub trait LocalExecutorExt<'a> {
    /// Spawns the `!Send` `future` on this executor inside a copy of the caller's context.
    ///
    /// ```
    /// # use contextvars::smol::LocalExecutorExt;
    /// let local = smol::LocalExecutor::new();
    /// let task = local.spawn_local_with_context(async { 1 });
    /// assert_eq!(smol::block_on(local.run(task)), 1);
    /// ```
    fn spawn_local_with_context<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + 'a,
        F::Output: 'a;
}

impl<'a> LocalExecutorExt<'a> for LocalExecutor<'a> {
    fn spawn_local_with_context<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + 'a,
        F::Output: 'a,
    {
        self.spawn(crate::capture::task(future))
    }
}

impl<'a> ExecutorExt<'a> for LocalExecutor<'a> {
    fn spawn_with_context<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'a,
        F::Output: Send + 'a,
    {
        self.spawn(crate::capture::task(future))
    }
}

/// smol's units of work, for the executor seam (`crate::executor`): a task of smol's global
/// executor. smol gives a running task no identity a library can read, but its global executor
/// runs on threads of its own, named `smol-N`, and nothing else runs there. Its `unblock` jobs run
/// on the `blocking` crate's threads, recognised by `adapters/blocking.rs`.
pub(crate) struct Smol;

impl crate::executor::Executor for Smol {
    fn name(&self) -> &'static str {
        "smol"
    }

    fn in_unit_of_work(&self) -> bool {
        std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with("smol-"))
    }
}
