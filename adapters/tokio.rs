//! Spawning on [tokio](https://docs.rs/tokio) with the caller's context (feature `tokio`).
//!
//! # What it propagates
//!
//! Every function here captures [`Context::current`](crate::Context::current) at the call and runs the task (or the
//! blocking closure) inside a copy of it:
//!
//! - [`spawn_with_context`], [`spawn_local_with_context`] (inside a [`LocalSet`]) and
//!   [`RuntimeExt::spawn_with_context`] (on a `Runtime` or a `Handle`) /
//!   [`JoinSetExt::spawn_with_context`] wrap the future in a
//!   [`WithContext`]: the context is installed around every poll, on whichever worker polls it,
//!   and while the future is dropped, so destructors run in it when the task completes, is
//!   aborted or is dropped at runtime shutdown.
//! - [`spawn_blocking_with_context`] and [`RuntimeExt::spawn_blocking_with_context`] run the closure
//!   on the blocking pool inside the context: the counterpart of Python's
//!   `run_in_executor_with_context`. Await the returned [`JoinHandle`] for its result.
//! - `spawn_named_with_context` names the task through `tokio::task::Builder`, which tokio only
//!   offers when built with `RUSTFLAGS="--cfg tokio_unstable"` and its `tracing` feature (this
//!   crate's `tracing` feature turns that on); otherwise the function does not exist. Task names
//!   are a tokio-console feature.
//!
//! What a task sets stays in that task, and what its context values' destructors set stays in
//! them. Panics surface through the [`JoinHandle`] exactly as
//! with tokio's own functions, and the worker thread's context is restored before tokio catches
//! the panic.
//!
//! With the `tracing` feature, the child also runs inside the `tracing::Span` that was current
//! at the call, as if `.in_current_span()` had been written by hand; see
//! [`crate::tracing`] for how to opt out for one spawn.
//!
//! # What bypasses it
//!
//! `tokio::spawn`, `tokio::task::spawn_local`, `spawn_blocking`, `Runtime::spawn`, `Handle::spawn`,
//! `JoinSet::spawn`, `Runtime::block_on`, `#[tokio::main]` bodies and `tokio::task::block_in_place`
//! closures know nothing of this crate: a future spawned through them runs in whatever context
//! the worker thread has when it polls, which is the empty context on a worker. Wrap such a
//! future yourself with [`with_current_context`](crate::ContextExt::with_current_context), or a
//! closure with [`Context::wrap`](crate::Context::wrap).
//!
//! | Path | What it sees | What it may set | Do instead |
//! |---|---|---|---|
//! | plain `tokio::spawn` / `spawn_local` / `JoinSet::spawn` task | the empty context | nothing: [`ContextVar::set`](crate::ContextVar::set) panics and `try_set` returns an error, since the value would stay on the worker for the next task | the `_with_context` functions here, or `.with_context(..)` on the future |
//! | plain `spawn_blocking` job | the empty context | nothing (same refusal) | [`spawn_blocking_with_context`], or [`Context::run`](crate::Context::run) inside the closure |
//! | the future given to `block_on` (`#[tokio::main]`) | the calling thread's context | the calling thread's own context, which tokio does not count as a task | wrap it: `rt.block_on(fut.with_context(ctx))` |
//! | a plain task on a *current-thread* runtime, or a `LocalSet`, while the `block_on` future has set or attached at its top level, or while `block_on` itself runs inside `Context::run` / `ContextVar::scope` | that context, since the task runs on the same thread, between polls of the `block_on` future | nothing at the top level; inside the enclosing `run`/`scope`, tokio gives no hook to tell, so a set goes into that context, for the tasks polled after it | give the `block_on` future its values through `.with_context(..)` (or `ContextVar::scope_future`), not through `set` or `attach` at its top level: then they are installed only while it is polled |
//!
//! Tokio keeps no context of its own between tasks: a worker's context is the thread's top
//! level, which a task can only reach through `attach` guards (each ends with its frame, and
//! at a plain task's top level with its drop; never hold one across `.await`, see
//! [`Context::attach`](crate::Context::attach)). The destructors of a task's context values run
//! in a frame of their own, so nothing they set reaches the worker either.
//!
//! # Examples
//!
//! ```
//! use contextvars::tokio::{spawn_blocking_with_context, spawn_with_context};
//! use contextvars::ContextVar;
//!
//! static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (task, blocking) = REQUEST_ID.scope("req-123".into(), || {
//!     (
//!         spawn_with_context(async { REQUEST_ID.get() }),
//!         spawn_blocking_with_context(|| REQUEST_ID.get()),
//!     )
//! });
//! assert_eq!(task.await.unwrap().as_deref(), Some("req-123"));
//! assert_eq!(blocking.await.unwrap().as_deref(), Some("req-123"));
//! # }
//! ```
//!
//! [`LocalSet`]: ::tokio::task::LocalSet
//! [`WithContext`]: crate::WithContext

use std::future::Future;

use ::tokio::runtime::{Handle, Runtime};
use ::tokio::task::{AbortHandle, JoinHandle, JoinSet};

/// [`tokio::spawn`] that runs the task inside a copy of the caller's context.
///
/// # Panics
///
/// Like `tokio::spawn`, panics when called outside a tokio runtime.
///
/// # Examples
///
/// ```
/// use contextvars::tokio::spawn_with_context;
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let task = REQUEST_ID.scope("req-1", || spawn_with_context(async { REQUEST_ID.get() }));
/// let plain = REQUEST_ID.scope("req-1", || tokio::spawn(async { REQUEST_ID.get() }));
/// assert_eq!(task.await.unwrap(), Some("req-1"));
/// assert_eq!(plain.await.unwrap(), None); // the plain spawn lost it
/// # }
/// ```
#[track_caller]
pub fn spawn_with_context<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    ::tokio::spawn(crate::propagate::task(future))
}

/// [`tokio::task::spawn_local`] that runs the `!Send` task inside a
/// copy of the caller's context.
///
/// # Panics
///
/// Like `spawn_local`, panics when called outside a [`LocalSet`](::tokio::task::LocalSet).
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use contextvars::tokio::spawn_local_with_context;
/// use contextvars::ContextVar;
///
/// static USER: ContextVar<u32> = ContextVar::new("user");
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let local = tokio::task::LocalSet::new();
/// let seen = local
///     .run_until(async {
///         let not_send = Rc::new(5);
///         let task = USER.scope(7, || spawn_local_with_context(async move { (*not_send, USER.get()) }));
///         task.await.unwrap()
///     })
///     .await;
/// assert_eq!(seen, (5, Some(7)));
/// # }
/// ```
#[track_caller]
pub fn spawn_local_with_context<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    ::tokio::task::spawn_local(crate::propagate::task(future))
}

/// [`tokio::task::spawn_blocking`] that runs the closure inside a
/// copy of the caller's context: Python's `run_in_executor_with_context`.
///
/// Pass arguments by capturing them; the closure's return value comes back through the
/// [`JoinHandle`], and a panic in it as a [`JoinError`](::tokio::task::JoinError).
///
/// # Panics
///
/// Like `spawn_blocking`, panics when called outside a tokio runtime.
///
/// # Examples
///
/// ```
/// use contextvars::tokio::spawn_blocking_with_context;
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
///
/// fn process_item(item_id: &str, priority: u8) -> String {
///     format!("{item_id}/{priority}/{}", REQUEST_ID.get().unwrap_or_default())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let job = REQUEST_ID.scope("req-456".into(), || {
///     spawn_blocking_with_context(|| process_item("item-123", 1))
/// });
/// assert_eq!(job.await.unwrap(), "item-123/1/req-456");
/// # }
/// ```
#[track_caller]
pub fn spawn_blocking_with_context<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    ::tokio::task::spawn_blocking(crate::propagate::job(f))
}

/// Names the task (as seen by tokio-console) and runs it inside a copy of the caller's context.
///
/// Only available when tokio is built with `RUSTFLAGS="--cfg tokio_unstable"` and this crate's
/// `tracing` feature is on (it turns on tokio's own `tracing` feature): that is when tokio offers
/// named tasks (`tokio::task::Builder`). Fails only as the builder does.
///
/// ```ignore
/// let task = contextvars::tokio::spawn_named_with_context("process-order-123", work())?;
/// ```
#[cfg(all(tokio_unstable, feature = "tracing"))]
#[track_caller]
pub fn spawn_named_with_context<F>(name: &str, future: F) -> std::io::Result<JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    ::tokio::task::Builder::new()
        .name(name)
        .spawn(crate::propagate::task(future))
}

/// Context-keeping spawns on a given [`Runtime`] or runtime [`Handle`] (for example from outside
/// the runtime).
///
/// # Examples
///
/// ```
/// use contextvars::tokio::RuntimeExt;
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<u64> = ContextVar::new("request_id");
///
/// let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
/// let handle = runtime.handle().clone();
/// // Called from a plain thread, not from inside the runtime.
/// let (task, job) = REQUEST_ID.scope(9, || {
///     (
///         handle.spawn_with_context(async { REQUEST_ID.get() }),
///         handle.spawn_blocking_with_context(|| REQUEST_ID.get()),
///     )
/// });
/// assert_eq!(runtime.block_on(task).unwrap(), Some(9));
/// assert_eq!(runtime.block_on(job).unwrap(), Some(9));
/// ```
pub trait RuntimeExt {
    /// [`Handle::spawn`] inside a copy of the caller's context.
    ///
    /// ```
    /// # use contextvars::tokio::RuntimeExt;
    /// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let task = runtime.handle().spawn_with_context(async { 1 });
    /// assert_eq!(runtime.block_on(task).unwrap(), 1);
    /// ```
    fn spawn_with_context<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// [`Handle::spawn_blocking`] inside a copy of the caller's context.
    ///
    /// ```
    /// # use contextvars::tokio::RuntimeExt;
    /// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let job = runtime.handle().spawn_blocking_with_context(|| 2);
    /// assert_eq!(runtime.block_on(job).unwrap(), 2);
    /// ```
    fn spawn_blocking_with_context<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static;
}

// `Runtime` and `Handle` have the same spawn methods but no common trait.
macro_rules! impl_runtime_ext {
    ($($target:ty),*) => {$(
        impl RuntimeExt for $target {
            #[track_caller]
            fn spawn_with_context<F>(&self, future: F) -> JoinHandle<F::Output>
            where
                F: Future + Send + 'static,
                F::Output: Send + 'static,
            {
                self.spawn(crate::propagate::task(future))
            }

            #[track_caller]
            fn spawn_blocking_with_context<F, R>(&self, f: F) -> JoinHandle<R>
            where
                F: FnOnce() -> R + Send + 'static,
                R: Send + 'static,
            {
                self.spawn_blocking(crate::propagate::job(f))
            }
        }
    )*};
}

impl_runtime_ext!(Runtime, Handle);

/// Context-keeping spawns into a [`JoinSet`].
///
/// # Examples
///
/// ```
/// use contextvars::tokio::JoinSetExt;
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<u32> = ContextVar::new("request_id");
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut set = tokio::task::JoinSet::new();
/// for id in 0..3 {
///     REQUEST_ID.scope(id, || set.spawn_with_context(async move { (id, REQUEST_ID.get()) }));
/// }
/// while let Some(done) = set.join_next().await {
///     let (id, seen) = done.unwrap();
///     assert_eq!(seen, Some(id));
/// }
/// # }
/// ```
pub trait JoinSetExt<T> {
    /// [`JoinSet::spawn`] inside a copy of the caller's context.
    ///
    /// ```
    /// # use contextvars::tokio::JoinSetExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut set = tokio::task::JoinSet::new();
    /// set.spawn_with_context(async { 1 });
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), 1);
    /// # }
    /// ```
    fn spawn_with_context<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send;

    /// [`JoinSet::spawn_blocking`] inside a copy of the caller's context.
    ///
    /// ```
    /// # use contextvars::tokio::JoinSetExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut set = tokio::task::JoinSet::new();
    /// set.spawn_blocking_with_context(|| 2);
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), 2);
    /// # }
    /// ```
    fn spawn_blocking_with_context<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send;

    /// [`JoinSet::spawn_local`] inside a copy of the caller's context.
    ///
    /// ```
    /// # use contextvars::tokio::JoinSetExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let local = tokio::task::LocalSet::new();
    /// local.run_until(async {
    ///     let mut set = tokio::task::JoinSet::new();
    ///     set.spawn_local_with_context(async { 3 });
    ///     assert_eq!(set.join_next().await.unwrap().unwrap(), 3);
    /// }).await;
    /// # }
    /// ```
    fn spawn_local_with_context<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static;
}

impl<T: 'static> JoinSetExt<T> for JoinSet<T> {
    #[track_caller]
    fn spawn_with_context<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send,
    {
        self.spawn(crate::propagate::task(future))
    }

    #[track_caller]
    fn spawn_blocking_with_context<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send,
    {
        self.spawn_blocking(crate::propagate::job(f))
    }

    #[track_caller]
    fn spawn_local_with_context<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        self.spawn_local(crate::propagate::task(future))
    }
}

/// Whether this thread is running a tokio task or blocking job (but not the future given to
/// `block_on`, which tokio does not count as a task).
pub(crate) fn in_unit_of_work() -> bool {
    ::tokio::task::try_id().is_some()
}
