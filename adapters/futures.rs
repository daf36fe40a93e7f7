//! Make any [`futures`](https://docs.rs/futures) spawner propagate the caller's context
//! (feature `futures`).
//!
//! # What it propagates
//!
//! [`ContextSpawner`] wraps any [`Spawn`] or [`LocalSpawn`] (for example
//! `futures::executor::ThreadPool` or `LocalSpawner`) into one whose every spawn captures
//! [`Context::current`](crate::Context::current) at the call and runs the task inside a copy of
//! it, around every poll and while the task is dropped. Hand it to libraries that take a
//! spawner, and they propagate the context without knowing it. [`SpawnExt::spawn_with_context`]
//! and [`LocalSpawnExt::spawn_local_with_context`] do the same for a single spawn on an
//! unwrapped spawner.
//!
//! With the `tracing` feature, the child also runs inside the `tracing::Span` that was current
//! at the call, as if `.in_current_span()` had been written by hand; see
//! [`crate::tracing`] for how to opt out for one spawn.
//!
//! # What bypasses it
//!
//! Spawning on the unwrapped spawner (`pool.spawn_ok(..)`, `futures::task::SpawnExt::spawn`),
//! and `futures::executor::block_on` / `LocalPool::run_until`, which poll in whatever context the
//! calling thread has. A task spawned that way on a pool thread sees the pool thread's context,
//! normally the empty context.
//!
//! # Examples
//!
//! ```
//! use futures::executor::ThreadPool;
//! use futures::task::SpawnExt as _;
//! use contextvars::futures::ContextSpawner;
//! use contextvars::ContextVar;
//!
//! static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");
//!
//! let pool = ContextSpawner::new(ThreadPool::new().unwrap());
//! let (tx, rx) = std::sync::mpsc::channel();
//! REQUEST_ID.scope("req-123", || {
//!     // Any code that takes a `Spawn` now propagates the context.
//!     pool.spawn(async move { tx.send(REQUEST_ID.get()).unwrap() }).unwrap();
//! });
//! assert_eq!(rx.recv().unwrap(), Some("req-123"));
//! ```

use std::future::Future;

use ::futures_task::{FutureObj, LocalFutureObj, LocalSpawn, Spawn, SpawnError};

/// A [`Spawn`] / [`LocalSpawn`] wrapper whose spawns run inside a copy of the spawner's caller's
/// context. See the [module docs](self).
///
/// Each spawn boxes the wrapped task once more (the spawner API only takes boxed futures).
///
/// ```
/// use futures::executor::LocalPool;
/// use futures::task::LocalSpawnExt as _;
/// use contextvars::futures::ContextSpawner;
/// use contextvars::ContextVar;
///
/// static USER: ContextVar<u32> = ContextVar::new("user");
///
/// let mut pool = LocalPool::new();
/// let spawner = ContextSpawner::new(pool.spawner());
/// let handle = USER
///     .scope(7, || spawner.spawn_local_with_handle(async { USER.get() }))
///     .unwrap();
/// assert_eq!(pool.run_until(handle), Some(7));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ContextSpawner<S> {
    inner: S,
}

impl<S> ContextSpawner<S> {
    /// Wraps `spawner`.
    ///
    /// ```
    /// let spawner = contextvars::futures::ContextSpawner::new(futures::executor::LocalPool::new().spawner());
    /// let _inner = spawner.inner();
    /// ```
    pub fn new(spawner: S) -> ContextSpawner<S> {
        ContextSpawner { inner: spawner }
    }

    /// The wrapped spawner.
    ///
    /// ```
    /// let spawner = contextvars::futures::ContextSpawner::new(5);
    /// assert_eq!(*spawner.inner(), 5);
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the spawner.
    ///
    /// ```
    /// let spawner = contextvars::futures::ContextSpawner::new(5);
    /// assert_eq!(spawner.into_inner(), 5);
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Spawn> Spawn for ContextSpawner<S> {
    fn spawn_obj(&self, future: FutureObj<'static, ()>) -> Result<(), SpawnError> {
        self.inner
            .spawn_obj(FutureObj::new(Box::new(crate::capture::task(future))))
    }

    fn status(&self) -> Result<(), SpawnError> {
        self.inner.status()
    }
}

impl<S: LocalSpawn> LocalSpawn for ContextSpawner<S> {
    fn spawn_local_obj(&self, future: LocalFutureObj<'static, ()>) -> Result<(), SpawnError> {
        self.inner
            .spawn_local_obj(LocalFutureObj::new(Box::new(crate::capture::task(future))))
    }

    fn status_local(&self) -> Result<(), SpawnError> {
        self.inner.status_local()
    }
}

/// One context-keeping spawn on any [`Spawn`].
///
/// ```
/// use contextvars::futures::SpawnExt;
/// use contextvars::ContextVar;
///
/// static USER: ContextVar<u32> = ContextVar::new("user");
///
/// let pool = futures::executor::ThreadPool::new().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel();
/// USER.scope(3, || pool.spawn_with_context(async move { tx.send(USER.get()).unwrap() }))
///     .unwrap();
/// assert_eq!(rx.recv().unwrap(), Some(3));
/// ```
pub trait SpawnExt: Spawn {
    /// Spawns `future` inside a copy of the caller's context.
    ///
    /// ```
    /// # use contextvars::futures::SpawnExt;
    /// let pool = futures::executor::ThreadPool::new().unwrap();
    /// pool.spawn_with_context(async {}).unwrap();
    /// ```
    fn spawn_with_context<F>(&self, future: F) -> Result<(), SpawnError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn_obj(FutureObj::new(Box::new(crate::capture::task(future))))
    }
}

impl<S: Spawn + ?Sized> SpawnExt for S {}

/// One context-keeping spawn on any [`LocalSpawn`].
///
/// ```
/// use contextvars::futures::LocalSpawnExt;
/// use contextvars::ContextVar;
///
/// static USER: ContextVar<u32> = ContextVar::new("user");
///
/// let mut pool = futures::executor::LocalPool::new();
/// let seen = std::rc::Rc::new(std::cell::Cell::new(None));
/// let out = seen.clone();
/// USER.scope(4, || pool.spawner().spawn_local_with_context(async move { out.set(USER.get()) }))
///     .unwrap();
/// pool.run();
/// assert_eq!(seen.get(), Some(4));
/// ```
pub trait LocalSpawnExt: LocalSpawn {
    /// Spawns the `!Send` `future` inside a copy of the caller's context.
    ///
    /// ```
    /// # use contextvars::futures::LocalSpawnExt;
    /// let pool = futures::executor::LocalPool::new();
    /// pool.spawner().spawn_local_with_context(async {}).unwrap();
    /// ```
    fn spawn_local_with_context<F>(&self, future: F) -> Result<(), SpawnError>
    where
        F: Future<Output = ()> + 'static,
    {
        self.spawn_local_obj(LocalFutureObj::new(Box::new(crate::capture::task(future))))
    }
}

impl<S: LocalSpawn + ?Sized> LocalSpawnExt for S {}
