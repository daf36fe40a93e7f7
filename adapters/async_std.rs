//! Spawning on [async-std](https://docs.rs/async-std) with the caller's context (feature
//! `async-std`).
//!
//! async-std is discontinued upstream; its maintainers point to [smol](crate::smol). This adapter
//! stays for the users still on it.
//!
//! # What it propagates
//!
//! Every function here captures [`Context::current`](crate::Context::current) at the call and runs the task or closure in
//! a copy of it. Tasks are wrapped in a [`WithContext`](crate::WithContext): the context is
//! installed around every poll and while the task's future is dropped (completion,
//! `JoinHandle::cancel`, executor shutdown). [`spawn_blocking_with_context`] runs the closure on
//! async-std's blocking pool inside the context. [`BuilderExt`] names tasks through
//! `async_std::task::Builder`.
//!
//! With the `tracing` feature, the child also runs inside the `tracing::Span` that was current
//! at the call, as if `.in_current_span()` had been written by hand; see
//! [`crate::tracing`] for how to opt out for one spawn.
//!
//! # What bypasses it
//!
//! `async_std::task::spawn`, `spawn_local`, `spawn_blocking`, `Builder::spawn` and `block_on`
//! know nothing of this crate: a future spawned through them runs in whatever context the
//! executor thread has when it polls, normally the empty context. async-std's own `task_local!`
//! values are separate from context variables and are not propagated by this crate.
//!
//! Such a plain task or blocking job may not [`set`](crate::ContextVar::set) a variable: with no
//! frame of this crate around it, the value would stay on the executor thread for the next,
//! unrelated task, so `set` panics and `try_set` returns an error naming the fix. async-std runs
//! the future given to `block_on` (and so the body of `#[async_std::main]`) as a task too, with
//! local tasks polled beside it on the same thread, so it is no exception: give it a context
//! with `block_on(fut.with_context(Context::new()))` (or `ContextVar::scope_future`) before
//! setting in it. Blocking jobs are recognised by the name of the `blocking` crate's threads
//! (`blocking-N`).
//!
//! # Examples
//!
//! ```
//! use contextvars::async_std::{spawn_blocking_with_context, spawn_with_context};
//! use contextvars::ContextVar;
//!
//! static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
//!
//! async_std::task::block_on(async {
//!     let (task, job) = REQUEST_ID.scope("req-123".into(), || {
//!         (
//!             spawn_with_context(async { REQUEST_ID.get() }),
//!             spawn_blocking_with_context(|| REQUEST_ID.get()),
//!         )
//!     });
//!     assert_eq!(task.await.as_deref(), Some("req-123"));
//!     assert_eq!(job.await.as_deref(), Some("req-123"));
//! });
//! ```

use std::future::Future;
use std::io;

use ::async_std::task::{Builder, JoinHandle};

/// [`async_std::task::spawn`] inside a copy of the caller's context.
///
/// ```
/// use contextvars::async_std::spawn_with_context;
/// use contextvars::ContextVar;
///
/// static USER: ContextVar<u32> = ContextVar::new("user");
///
/// let task = USER.scope(7, || spawn_with_context(async { USER.get() }));
/// assert_eq!(async_std::task::block_on(task), Some(7));
/// ```
pub fn spawn_with_context<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    ::async_std::task::spawn(crate::capture::task(future))
}

/// [`async_std::task::spawn_local`] (a `!Send` task on the
/// current thread) inside a copy of the caller's context.
///
/// ```
/// use std::rc::Rc;
/// use contextvars::async_std::spawn_local_with_context;
/// use contextvars::ContextVar;
///
/// static USER: ContextVar<u32> = ContextVar::new("user");
///
/// async_std::task::block_on(async {
///     let not_send = Rc::new(1);
///     let task = USER.scope(7, || spawn_local_with_context(async move { (*not_send, USER.get()) }));
///     assert_eq!(task.await, (1, Some(7)));
/// });
/// ```
pub fn spawn_local_with_context<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    ::async_std::task::spawn_local(crate::capture::task(future))
}

/// [`async_std::task::spawn_blocking`] inside a copy of the
/// caller's context: Python's `run_in_executor_with_context`.
///
/// ```
/// use contextvars::async_std::spawn_blocking_with_context;
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");
///
/// let job = REQUEST_ID.scope("req-4", || spawn_blocking_with_context(|| REQUEST_ID.get()));
/// assert_eq!(async_std::task::block_on(job), Some("req-4"));
/// ```
pub fn spawn_blocking_with_context<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    ::async_std::task::spawn_blocking(crate::capture::job(f))
}

/// Named tasks through [`async_std::task::Builder`], inside a copy of the caller's
/// context.
///
/// ```
/// use contextvars::async_std::BuilderExt;
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");
///
/// let task = REQUEST_ID.scope("req-5", || {
///     async_std::task::Builder::new()
///         .name("process-order-123".into())
///         .spawn_with_context(async {
///             (async_std::task::current().name().map(String::from), REQUEST_ID.get())
///         })
///         .unwrap()
/// });
/// assert_eq!(
///     async_std::task::block_on(task),
///     (Some("process-order-123".into()), Some("req-5"))
/// );
/// ```
pub trait BuilderExt {
    /// [`Builder::spawn`] inside a copy of the caller's context.
    ///
    /// ```
    /// # use contextvars::async_std::BuilderExt;
    /// let task = async_std::task::Builder::new().spawn_with_context(async { 1 }).unwrap();
    /// assert_eq!(async_std::task::block_on(task), 1);
    /// ```
    fn spawn_with_context<F>(self, future: F) -> io::Result<JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// [`Builder::local`] inside a copy of the caller's context.
    ///
    /// ```
    /// # use contextvars::async_std::BuilderExt;
    /// async_std::task::block_on(async {
    ///     let task = async_std::task::Builder::new().local_with_context(async { 2 }).unwrap();
    ///     assert_eq!(task.await, 2);
    /// });
    /// ```
    fn local_with_context<F>(self, future: F) -> io::Result<JoinHandle<F::Output>>
    where
        F: Future + 'static,
        F::Output: 'static;
}

impl BuilderExt for Builder {
    fn spawn_with_context<F>(self, future: F) -> io::Result<JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(crate::capture::task(future))
    }

    fn local_with_context<F>(self, future: F) -> io::Result<JoinHandle<F::Output>>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.local(crate::capture::task(future))
    }
}

/// async-std's units of work, for the executor seam (`crate::executor`): a task (including the
/// future given to `block_on`, which async-std runs as a task: local tasks run beside it on the
/// same thread). Its `spawn_blocking` jobs run on the `blocking` crate's threads, recognised by
/// `adapters/blocking.rs`.
pub(crate) struct AsyncStd;

impl crate::executor::Executor for AsyncStd {
    fn name(&self) -> &'static str {
        "async-std"
    }

    fn in_unit_of_work(&self) -> bool {
        ::async_std::task::try_current().is_some()
    }
}
