//! Standard library threads that see the caller's context.
//!
//! No feature is needed. What this module propagates: the [`Context`] current where the thread
//! is spawned; the new thread runs its closure inside a copy of it, and when the closure returns
//! the thread's context is empty again.
//!
//! What bypasses it: a thread started with a plain [`std::thread::spawn`],
//! [`std::thread::Builder::spawn`] or [`Scope::spawn`](std::thread::Scope::spawn) starts with an
//! empty context (as every new thread does). Use the functions and extension traits here
//! instead, or [`Context::wrap`] for any other thread pool.
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

use crate::Context;

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
    std::thread::spawn(Context::current().wrap(f))
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
}

impl BuilderExt for Builder {
    fn spawn_with_context<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn(Context::current().wrap(f))
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
        self.spawn_scoped(scope, Context::current().wrap(f))
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
        self.spawn(Context::current().wrap(f))
    }
}
