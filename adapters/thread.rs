//! Standard library threads that see the caller's context.
//!
//! No feature is needed. What this module propagates: the [`Context`](crate::Context) current where the thread
//! is spawned; the new thread runs its closure inside a copy of it, and when the closure returns
//! the thread's context is empty again.
//!
//! [`run_in_pool_with_context`] is the counterpart of Python's `run_in_executor_with_context`:
//! it runs a closure on a new thread and gives back a [`JobHandle`] that a synchronous caller
//! [`join`](JobHandle::join)s and an `async` caller `.await`s, on any executor, without blocking
//! a thread of its own. Arguments are captured by the closure; the return value can be any
//! `Send` type. For many small jobs, prefer a pool (`contextvars::rayon`, feature `rayon`): each
//! job here costs a thread spawn.
//!
//! With the `tracing` feature, the thread also runs inside the `tracing::Span` that was current
//! at the spawn (see [`crate::tracing`]).
//!
//! What bypasses it: a thread started with a plain [`std::thread::spawn`],
//! [`std::thread::Builder::spawn`] or [`Scope::spawn`](std::thread::Scope::spawn) starts with an
//! empty context (as every new thread does). Use the functions and extension traits here
//! instead, or [`Context::wrap`](crate::Context::wrap) for any other thread pool.
//!
//! A thread you start yourself is yours: its own top level accepts
//! [`set`](crate::ContextVar::set), and what is set there lasts for the thread.
//! [`run_in_pool_with_context`] starts a fresh thread for each job, so no job ever sees another's
//! values.
//!
//! # Examples
//!
//! ```
//! use contextvars::thread::{self, BuilderExt, ScopeExt};
//! use contextvars::ContextVar;
//!
//! static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
//!
//! REQUEST_ID.scope("req-456".into(), || {
//!     // A plain thread.
//!     let seen = thread::spawn_with_context(|| REQUEST_ID.get()).join().unwrap();
//!     assert_eq!(seen.as_deref(), Some("req-456"));
//!
//!     // A named thread.
//!     let named = std::thread::Builder::new()
//!         .name("worker-1".into())
//!         .spawn_with_context(|| (std::thread::current().name().map(String::from), REQUEST_ID.get()))
//!         .unwrap()
//!         .join()
//!         .unwrap();
//!     assert_eq!(named, (Some("worker-1".into()), Some("req-456".into())));
//!
//!     // A job whose result is waited for (or awaited), like `run_in_executor_with_context`.
//!     let status = thread::run_in_pool_with_context(|| format!("done for {:?}", REQUEST_ID.get()));
//!     assert_eq!(status.join().unwrap(), r#"done for Some("req-456")"#);
//!
//!     // Scoped threads, borrowing from the caller.
//!     let items = [1, 2, 3];
//!     std::thread::scope(|s| {
//!         let total = s.spawn_with_context(|| {
//!             assert_eq!(REQUEST_ID.get().as_deref(), Some("req-456"));
//!             items.iter().sum::<i32>()
//!         });
//!         assert_eq!(total.join().unwrap(), 6);
//!     });
//! });
//! ```

use std::io;
use std::thread::{Builder, JoinHandle, Scope, ScopedJoinHandle};

use crate::{job, JobHandle};

/// Spawns a thread that runs `f` inside a copy of the caller's context.
///
/// Like [`std::thread::spawn`], it panics if the operating system cannot create a thread; use
/// [`BuilderExt::spawn_with_context`] to get that failure as an error.
///
/// # Examples
///
/// ```
/// use contextvars::{thread, ContextVar};
///
/// static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");
///
/// REQUEST_ID.set("req-1");
/// let handle = thread::spawn_with_context(|| {
///     REQUEST_ID.set("changed in the thread"); // isolated: the parent never sees it
///     REQUEST_ID.get()
/// });
/// assert_eq!(handle.join().unwrap(), Some("changed in the thread"));
/// assert_eq!(REQUEST_ID.get(), Some("req-1"));
/// ```
#[track_caller]
pub fn spawn_with_context<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::spawn(crate::capture::job(f))
}

/// Runs `f` on a new thread inside a copy of the caller's context; the result comes back
/// through a [`JobHandle`], to [`join`](JobHandle::join) or to `.await`.
///
/// This is Python's `run_in_executor_with_context` for std threads. The closure captures the
/// arguments (`move || process_item(item_id, 1)`) and may return any `Send` type. A panic in
/// `f` is caught on its thread and reported by the handle as `Err(payload)`, as
/// [`JoinHandle::join`] does. Use [`BuilderExt::run_in_pool_with_context`] for a named thread.
///
/// # Panics
///
/// Like [`std::thread::spawn`], if the operating system cannot create a thread.
///
/// # Examples
///
/// From synchronous code:
///
/// ```
/// use contextvars::{thread, ContextVar};
///
/// static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
///
/// fn process_item(item_id: &str, priority: u8) -> String {
///     format!("{item_id}/{priority} for {}", REQUEST_ID.get().unwrap_or_default())
/// }
///
/// REQUEST_ID.scope("req-456".into(), || {
///     let item_id = String::from("item-123");
///     let handle = thread::run_in_pool_with_context(move || process_item(&item_id, 1));
///     assert_eq!(handle.join().unwrap(), "item-123/1 for req-456");
/// });
/// ```
///
/// From async code, on any executor (here `futures`' `block_on`; tokio, async-std and smol
/// work the same):
///
/// ```
/// use contextvars::{thread, ContextExt, ContextVar};
///
/// static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");
///
/// async fn handler() -> Option<&'static str> {
///     // The handler's task does not block while the job runs.
///     thread::run_in_pool_with_context(|| REQUEST_ID.get()).await.unwrap()
/// }
///
/// let task = REQUEST_ID.scope("req-789", || handler().with_current_context());
/// assert_eq!(futures::executor::block_on(task), Some("req-789"));
/// ```
#[track_caller]
pub fn run_in_pool_with_context<F, T>(f: F) -> JobHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (job, handle) = job::new_job(crate::capture::Captured::now(), f);
    // Detached: the handle, not the thread's `JoinHandle`, carries the result.
    drop(std::thread::spawn(job));
    handle
}

/// Context-keeping spawns for [`std::thread::Builder`] (named threads, stack sizes).
///
/// # Examples
///
/// ```
/// use contextvars::thread::BuilderExt;
/// use contextvars::ContextVar;
///
/// static JOB: ContextVar<u32> = ContextVar::new("job");
///
/// JOB.scope(7, || {
///     let handle = std::thread::Builder::new()
///         .name("job-runner".into())
///         .spawn_with_context(|| JOB.get())
///         .expect("spawn");
///     assert_eq!(handle.join().unwrap(), Some(7));
/// });
/// ```
pub trait BuilderExt {
    /// [`Builder::spawn`], running `f` inside a copy of the caller's context.
    ///
    /// ```
    /// use contextvars::thread::BuilderExt;
    /// let handle = std::thread::Builder::new().spawn_with_context(|| 1).unwrap();
    /// assert_eq!(handle.join().unwrap(), 1);
    /// ```
    fn spawn_with_context<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;

    /// [`Builder::spawn_scoped`], running `f` inside a copy of the caller's context.
    ///
    /// ```
    /// use contextvars::thread::BuilderExt;
    /// let data = vec![1, 2];
    /// std::thread::scope(|s| {
    ///     let handle = std::thread::Builder::new()
    ///         .spawn_scoped_with_context(s, || data.len())
    ///         .unwrap();
    ///     assert_eq!(handle.join().unwrap(), 2);
    /// });
    /// ```
    fn spawn_scoped_with_context<'scope, 'env, F, T>(
        self,
        scope: &'scope Scope<'scope, 'env>,
        f: F,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope;

    /// [`run_in_pool_with_context`] on a thread made by this builder: named threads
    /// (Python's `run_in_executor_with_context` with a named worker), custom stack sizes.
    ///
    /// # Errors
    ///
    /// The operating system's error if it cannot create the thread; the job is then dropped
    /// without running.
    ///
    /// ```
    /// use contextvars::thread::BuilderExt;
    /// use contextvars::ContextVar;
    ///
    /// static ORDER: ContextVar<u32> = ContextVar::new("order");
    ///
    /// ORDER.scope(123, || {
    ///     let handle = std::thread::Builder::new()
    ///         .name("process-order-123".into())
    ///         .run_in_pool_with_context(|| {
    ///             (std::thread::current().name().map(String::from), ORDER.get())
    ///         })
    ///         .expect("spawn");
    ///     assert_eq!(
    ///         handle.join().unwrap(),
    ///         (Some("process-order-123".into()), Some(123))
    ///     );
    /// });
    /// ```
    fn run_in_pool_with_context<F, T>(self, f: F) -> io::Result<JobHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;
}

impl BuilderExt for Builder {
    fn spawn_with_context<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn(crate::capture::job(f))
    }

    fn spawn_scoped_with_context<'scope, 'env, F, T>(
        self,
        scope: &'scope Scope<'scope, 'env>,
        f: F,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.spawn_scoped(scope, crate::capture::job(f))
    }

    fn run_in_pool_with_context<F, T>(self, f: F) -> io::Result<JobHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (job, handle) = job::new_job(crate::capture::Captured::now(), f);
        // Detached: the handle, not the thread's `JoinHandle`, carries the result.
        drop(self.spawn(job)?);
        Ok(handle)
    }
}

/// Context-keeping spawns for [`std::thread::scope`]'s [`Scope`].
///
/// # Examples
///
/// ```
/// use contextvars::thread::ScopeExt;
/// use contextvars::ContextVar;
///
/// static TENANT: ContextVar<&'static str> = ContextVar::new("tenant");
///
/// TENANT.scope("acme", || {
///     std::thread::scope(|s| {
///         let a = s.spawn_with_context(|| TENANT.get());
///         let b = s.spawn(|| TENANT.get()); // plain spawn: no context
///         assert_eq!(a.join().unwrap(), Some("acme"));
///         assert_eq!(b.join().unwrap(), None);
///     });
/// });
/// ```
pub trait ScopeExt<'scope> {
    /// [`Scope::spawn`], running `f` inside a copy of the caller's context.
    ///
    /// ```
    /// use contextvars::thread::ScopeExt;
    /// std::thread::scope(|s| assert_eq!(s.spawn_with_context(|| 2).join().unwrap(), 2));
    /// ```
    fn spawn_with_context<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope;
}

impl<'scope> ScopeExt<'scope> for Scope<'scope, '_> {
    #[track_caller]
    fn spawn_with_context<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.spawn(crate::capture::job(f))
    }
}
