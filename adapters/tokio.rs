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
//! # Automatic inheritance (`--cfg tokio_unstable`)
//!
//! A runtime built with `RuntimeBuilderExt::propagate_context` (available when the crate is
//! built with `RUSTFLAGS="--cfg tokio_unstable"`, since tokio's task hooks are unstable) needs
//! no wrapper at all: **every** task spawned on it, with plain `tokio::spawn`, `Handle::spawn`,
//! `Runtime::spawn`, `JoinSet::spawn` or `task::Builder`, from any crate (hyper, tower, sqlx, your
//! own), starts in a copy of its spawner's context, with the semantics of
//! [`spawn_with_context`]: what it sets persists across its polls and never escapes it; the
//! worker's context is restored after every poll, panics included; polls nested on one thread
//! (`block_in_place` running another runtime's `block_on`) restore each level.
//!
//! ```ignore
//! // Requires RUSTFLAGS="--cfg tokio_unstable"; #[tokio::main] cannot take hooks, so build the
//! // runtime by hand in `main`:
//! use contextvars::tokio::RuntimeBuilderExt;
//!
//! fn main() {
//!     tokio::runtime::Builder::new_multi_thread()
//!         .enable_all()
//!         .propagate_context() // last: it sets the runtime's task hooks
//!         .build()
//!         .unwrap()
//!         .block_on(serve());
//! }
//! # async fn serve() {}
//! ```
//!
//! How: tokio calls the spawn hook synchronously on the spawning thread, before the first poll,
//! so the spawner's [`Context::current`](crate::Context::current) is captured there, keyed by
//! the task's id; the before- and after-poll hooks install it and save it back (what the task
//! set included); the terminate hook frees it. Tokio keeps one callback per hook: pass your own
//! (tokio-console, profilers) through `TaskHooks` and
//! `propagate_context_with`, which calls them too.
//!
//! The cost: each poll goes through two hooks that take a lock on the task's shard of that
//! registry, which [`spawn_with_context`] (the context carried inside the task) does not pay. Use
//! the hooks for the spawns you do not control and `spawn_with_context` where you write a hot
//! spawn yourself; the repository's `benches/README.md` has the figures.
//!
//! What it does not cover, and what to do instead:
//!
//! | Gap | Why | Do instead |
//! |---|---|---|
//! | the future given to `block_on` | it is not a task: no hook fires | it runs in the calling thread's context: give it values with `.with_context(..)` or `ContextVar::scope_future` |
//! | `spawn_blocking` | tokio has no spawn hook for blocking jobs (it fires terminate only) | [`spawn_blocking_with_context`] |
//! | tasks of a `LocalSet` | `LocalSet` runs no hooks | [`spawn_local_with_context`] |
//! | a runtime built without the call, e.g. by `#[tokio::main]` (which cannot take hooks) | no hooks installed | build the runtime with `Builder` in `main`, as above |
//! | a spawn onto a runtime that has shut down | the task is terminated before the spawn hook runs | nothing to do: no context is kept for it |
//! | a task's future dropped at runtime shutdown, outside any poll | no poll hook fires around that drop | nothing to do for reads: while tokio drops it, [`ContextVar::get`](crate::ContextVar::get) and [`Context::current`](crate::Context::current) find the task's context by its id (`tokio::task::try_id()`); a `set` there is refused, as in any code outside a frame |
//! | hooks set on the `Builder` after `propagate_context` | tokio keeps one callback per hook: the later one replaces ours | call `propagate_context` last; pass your hooks through `TaskHooks` |
//!
//! # What bypasses it
//!
//! `tokio::spawn`, `tokio::task::spawn_local`, `spawn_blocking`, `Runtime::spawn`, `Handle::spawn`,
//! `JoinSet::spawn`, `Runtime::block_on` and `#[tokio::main]` bodies know nothing of this crate:
//! a future spawned through them runs in whatever context the worker thread has when it polls,
//! which is the empty context on a worker. Wrap such a future yourself with
//! [`with_current_context`](crate::ContextExt::with_current_context), or a closure with
//! [`Context::wrap`](crate::Context::wrap).
//!
//! `tokio::task::block_in_place` is not one of them: its closure runs at once, on the task's
//! thread, inside the poll that calls it, so it is part of the task's frame. In a task spawned
//! with context it sees the request's values, and what it sets stays for the rest of that task,
//! like a `set` written just before the call (and, like one, never reaches the parent or the
//! next task on the worker).
//!
//! | Path | What it sees | What it may set | Do instead |
//! |---|---|---|---|
//! | plain `tokio::spawn` / `spawn_local` / `JoinSet::spawn` task | the empty context | nothing: [`ContextVar::set`](crate::ContextVar::set) panics and `try_set` returns an error, since the value would stay on the worker for the next task | the `_with_context` functions here, or `.with_context(..)` on the future |
//! | plain `spawn_blocking` job | the empty context | nothing (same refusal) | [`spawn_blocking_with_context`], or [`Context::run`](crate::Context::run) inside the closure |
//! | a `block_in_place` closure | the calling task's context | what the calling task may: its own frame, for the rest of the task (nothing in a plain task) | nothing: it is not a spawn |
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
    ::tokio::spawn(crate::capture::task(future))
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
    ::tokio::task::spawn_local(crate::capture::task(future))
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
    ::tokio::task::spawn_blocking(crate::capture::job(f))
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
        .spawn(crate::capture::task(future))
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
                self.spawn(crate::capture::task(future))
            }

            #[track_caller]
            fn spawn_blocking_with_context<F, R>(&self, f: F) -> JoinHandle<R>
            where
                F: FnOnce() -> R + Send + 'static,
                R: Send + 'static,
            {
                self.spawn_blocking(crate::capture::job(f))
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
        self.spawn(crate::capture::task(future))
    }

    #[track_caller]
    fn spawn_blocking_with_context<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send,
    {
        self.spawn_blocking(crate::capture::job(f))
    }

    #[track_caller]
    fn spawn_local_with_context<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        self.spawn_local(crate::capture::task(future))
    }
}

/// tokio's units of work, for the executor seam (`crate::executor`): a task or a blocking job
/// (but not the future given to `block_on`, which tokio does not count as a task).
pub(crate) struct Tokio;

impl crate::executor::Executor for Tokio {
    fn name(&self) -> &'static str {
        "tokio"
    }

    fn in_unit_of_work(&self) -> bool {
        ::tokio::task::try_id().is_some()
    }
}

#[cfg(tokio_unstable)]
pub use self::inherit::{RuntimeBuilderExt, TaskHooks};

#[cfg(tokio_unstable)]
#[doc(hidden)]
pub use self::inherit::__is_tracked;

#[cfg(tokio_unstable)]
pub(crate) use self::inherit::TaskDrops;

/// Automatic inheritance: runtime task hooks that give every task the spawner's context.
#[cfg(tokio_unstable)]
mod inherit {
    use std::collections::HashMap;
    use std::fmt;
    use std::hash::{BuildHasherDefault, Hash, Hasher};
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

    use ::tokio::runtime::{Builder, TaskMeta};
    use ::tokio::task::Id;

    use crate::{state, Context};

    /// A user hook, as tokio takes them.
    type Hook = Arc<dyn Fn(&TaskMeta<'_>) + Send + Sync>;

    /// Spreads task ids (consecutive integers) over the whole hash: the low bits pick the
    /// shard, the high bits the bucket group inside it.
    #[derive(Default)]
    struct IdHasher(u64);

    impl Hasher for IdHasher {
        fn write(&mut self, bytes: &[u8]) {
            for &byte in bytes {
                self.write_u64(self.0.rotate_left(8) ^ u64::from(byte));
            }
        }

        fn write_u64(&mut self, n: u64) {
            self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }

        fn finish(&self) -> u64 {
            self.0
        }
    }

    /// A task's context between its polls; `None` while a poll has it installed.
    type Slot = Option<Context>;

    /// How many recently terminated, untracked task ids a shard remembers (see [`Tasks`]).
    const REMEMBERED: usize = 32;

    /// The tasks of one shard.
    #[derive(Default)]
    struct Tasks {
        slots: HashMap<Id, Slot, BuildHasherDefault<IdHasher>>,
        /// Tasks terminated before they were tracked: tokio terminates a task spawned onto a
        /// runtime that is shutting down before its spawn hook runs (on the spawning thread,
        /// or on the thread shutting the runtime down), and the spawn hook must then not track
        /// it. A small ring: the spawn hook follows within microseconds, and blocking jobs (which
        /// terminate untracked too) must not make it grow.
        terminated: [Option<Id>; REMEMBERED],
        next: usize,
    }

    /// One shard of the registry, alone on its cache lines.
    #[repr(align(128))]
    struct Shard(Mutex<Option<Tasks>>);

    const SHARDS: usize = 64;

    /// Every tracked task's context, keyed by its id (unique across runtimes), in shards so
    /// that polls of different tasks rarely meet on one lock. Chosen by measurement against a
    /// `DashMap`: see `benches/inherit.rs`.
    static REGISTRY: [Shard; SHARDS] = [const { Shard(Mutex::new(None)) }; SHARDS];

    /// The id as a number: the multiplication is a bijection, so the number is unique too.
    fn key(id: Id) -> u64 {
        let mut hasher = IdHasher::default();
        id.hash(&mut hasher);
        hasher.finish()
    }

    /// Runs `f` on the tasks of `id`'s shard, under its lock (no user code runs there).
    fn with_tasks<R>(id: Id, f: impl FnOnce(&mut Tasks) -> R) -> R {
        let mut shard: MutexGuard<'static, Option<Tasks>> = REGISTRY[key(id) as usize % SHARDS]
            .0
            .lock()
            // Plain map operations: poisoning cannot leave it inconsistent.
            .unwrap_or_else(PoisonError::into_inner);
        f(shard.get_or_insert_with(Tasks::default))
    }

    fn on_spawn(id: Id) {
        let context = Context::current();
        let refused = with_tasks(id, |tasks| {
            if let Some(seen) = tasks.terminated.iter_mut().find(|seen| **seen == Some(id)) {
                *seen = None;
                return Some(context);
            }
            tasks.slots.insert(id, Some(context)).flatten()
        });
        drop(refused);
    }

    fn before_poll(id: Id) {
        let mut spins = 0u32;
        let context = loop {
            let taken = with_tasks(id, |tasks| match tasks.slots.get_mut(&id) {
                // Not tracked (spawned before the hooks could see it): a frame of its own.
                None => Some(Context::new()),
                Some(slot) => slot.take(),
            });
            match taken {
                Some(context) => break context,
                // Woken during its previous poll, the task was rescheduled and picked up here
                // before that poll's thread ran its after-poll hook: wait for it, briefly.
                None => {
                    spins += 1;
                    if spins < 64 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
            }
        };
        state::open_frame(key(id), context);
    }

    fn after_poll(id: Id) {
        // Only the frame this task's before-poll hook opened: never another task's.
        let Some(context) = state::close_frame(key(id)) else {
            return;
        };
        let unclaimed = with_tasks(id, |tasks| match tasks.slots.get_mut(&id) {
            Some(slot) => slot.replace(context),
            // Terminated during this poll: the context goes (after the lock is released).
            None => Some(context),
        });
        drop(unclaimed);
    }

    fn on_terminate(id: Id) {
        let removed = with_tasks(id, |tasks| {
            let removed = tasks.slots.remove(&id);
            if removed.is_none() {
                let next = tasks.next;
                tasks.terminated[next] = Some(id);
                tasks.next = (next + 1) % REMEMBERED;
            }
            removed
        });
        drop(removed);
    }

    /// Whether some runtime propagates contexts: until then, nothing looks at the registry.
    static IN_USE: AtomicBool = AtomicBool::new(false);

    /// Tasks dropped outside their polls (at runtime shutdown), for the executor seam (see
    /// `crate::integrations::TaskDrops`).
    pub(crate) struct TaskDrops;

    impl crate::executor::TaskDrops for TaskDrops {
        const IN_USE: bool = true;
        const EXECUTOR: &'static str = "tokio";

        #[inline]
        fn context_of_task_outside_poll() -> Option<Context> {
            context_of_task_outside_poll()
        }

        #[inline]
        fn dropping_a_task_outside_its_poll() -> bool {
            dropping_a_task_outside_its_poll()
        }
    }

    /// The context of the tokio task running on this thread outside any poll hook (its future
    /// being dropped at runtime shutdown), if it is tracked.
    fn context_of_task_outside_poll() -> Option<Context> {
        if !IN_USE.load(Ordering::Relaxed) {
            return None;
        }
        let id = ::tokio::task::try_id()?;
        with_tasks(id, |tasks| tasks.slots.get(&id).cloned().flatten())
    }

    /// Whether tokio is dropping a tracked task's future outside its polls (at shutdown): its
    /// context is not installed, so whatever frame is current belongs to someone else.
    fn dropping_a_task_outside_its_poll() -> bool {
        if !IN_USE.load(Ordering::Relaxed) {
            return false;
        }
        let Some(id) = ::tokio::task::try_id() else {
            return false;
        };
        // Inside its own poll (the common case, with no lock to take).
        if state::innermost_hook_tag() == Some(key(id)) {
            return false;
        }
        // Between polls the slot holds the context; during one, the poll has it.
        with_tasks(id, |tasks| matches!(tasks.slots.get(&id), Some(Some(_))))
    }

    /// Whether the task's context is tracked (for tests of the cleanup).
    #[doc(hidden)]
    pub fn __is_tracked(id: Id) -> bool {
        with_tasks(id, |tasks| tasks.slots.contains_key(&id))
    }

    /// Your own runtime hooks, to be called alongside the ones that propagate the context
    /// (tokio keeps one callback per hook: setting yours on the `Builder` after
    /// [`propagate_context`](RuntimeBuilderExt::propagate_context) would replace ours).
    ///
    /// Your before-poll hook runs after the task's context is installed, and your after-poll
    /// hook before it is taken off, so both see the task's context; your spawn hook sees the
    /// spawner's; your terminate hook runs once the task's context is freed. A panic in your
    /// poll hooks still closes the task's frame before it leaves tokio's poll. Keep the poll
    /// hooks short: until your after-poll hook returns, the task's context is not back in the
    /// registry, and a worker that picks the task up meanwhile waits for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use contextvars::tokio::{RuntimeBuilderExt, TaskHooks};
    ///
    /// let polls = Arc::new(AtomicUsize::new(0));
    /// let counted = polls.clone();
    /// let runtime = tokio::runtime::Builder::new_current_thread()
    ///     .propagate_context_with(TaskHooks::new().on_before_task_poll(move |_| {
    ///         counted.fetch_add(1, Ordering::Relaxed);
    ///     }))
    ///     .build()
    ///     .unwrap();
    /// runtime.block_on(async { tokio::spawn(async {}).await.unwrap() });
    /// assert!(polls.load(Ordering::Relaxed) >= 1);
    /// ```
    #[derive(Clone, Default)]
    pub struct TaskHooks {
        spawn: Option<Hook>,
        before_poll: Option<Hook>,
        after_poll: Option<Hook>,
        terminate: Option<Hook>,
    }

    impl TaskHooks {
        /// No hooks of your own.
        ///
        /// ```
        /// let _hooks = contextvars::tokio::TaskHooks::new();
        /// ```
        pub fn new() -> TaskHooks {
            TaskHooks::default()
        }

        /// Like `Builder::on_task_spawn`.
        ///
        /// ```
        /// let _hooks = contextvars::tokio::TaskHooks::new().on_task_spawn(|meta| {
        ///     let _ = meta.id();
        /// });
        /// ```
        pub fn on_task_spawn(
            mut self,
            f: impl Fn(&TaskMeta<'_>) + Send + Sync + 'static,
        ) -> TaskHooks {
            self.spawn = Some(Arc::new(f));
            self
        }

        /// Like `Builder::on_before_task_poll`; runs with the task's context installed.
        ///
        /// ```
        /// let _hooks = contextvars::tokio::TaskHooks::new().on_before_task_poll(|_| {});
        /// ```
        pub fn on_before_task_poll(
            mut self,
            f: impl Fn(&TaskMeta<'_>) + Send + Sync + 'static,
        ) -> TaskHooks {
            self.before_poll = Some(Arc::new(f));
            self
        }

        /// Like `Builder::on_after_task_poll`; runs with the task's context still installed.
        ///
        /// ```
        /// let _hooks = contextvars::tokio::TaskHooks::new().on_after_task_poll(|_| {});
        /// ```
        pub fn on_after_task_poll(
            mut self,
            f: impl Fn(&TaskMeta<'_>) + Send + Sync + 'static,
        ) -> TaskHooks {
            self.after_poll = Some(Arc::new(f));
            self
        }

        /// Like `Builder::on_task_terminate`.
        ///
        /// ```
        /// let _hooks = contextvars::tokio::TaskHooks::new().on_task_terminate(|_| {});
        /// ```
        pub fn on_task_terminate(
            mut self,
            f: impl Fn(&TaskMeta<'_>) + Send + Sync + 'static,
        ) -> TaskHooks {
            self.terminate = Some(Arc::new(f));
            self
        }
    }

    impl fmt::Debug for TaskHooks {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("TaskHooks")
                .field("on_task_spawn", &self.spawn.is_some())
                .field("on_before_task_poll", &self.before_poll.is_some())
                .field("on_after_task_poll", &self.after_poll.is_some())
                .field("on_task_terminate", &self.terminate.is_some())
                .finish()
        }
    }

    /// Automatic inheritance for a tokio runtime: see the [module docs](crate::tokio).
    ///
    /// Needs `RUSTFLAGS="--cfg tokio_unstable"` (tokio's task hooks are unstable).
    pub trait RuntimeBuilderExt {
        /// Makes every task spawned on the runtime start in a copy of its spawner's context,
        /// whoever spawns it (`tokio::spawn`, `Handle::spawn`, `JoinSet::spawn`, ...), exactly
        /// as if it had been spawned with [`spawn_with_context`](crate::tokio::spawn_with_context).
        ///
        /// Call it last: it sets the runtime's four task hooks, and a hook set on the builder
        /// afterwards replaces one of them. Pass your own hooks through
        /// [`propagate_context_with`](RuntimeBuilderExt::propagate_context_with).
        ///
        /// # Examples
        ///
        /// ```
        /// use contextvars::tokio::RuntimeBuilderExt;
        /// use contextvars::ContextVar;
        ///
        /// static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");
        ///
        /// let runtime = tokio::runtime::Builder::new_multi_thread()
        ///     .worker_threads(2)
        ///     .propagate_context()
        ///     .build()
        ///     .unwrap();
        /// let seen = runtime.block_on(REQUEST_ID.scope_future("req-1", async {
        ///     // A plain spawn, as a library would write it.
        ///     tokio::spawn(async { REQUEST_ID.get() }).await.unwrap()
        /// }));
        /// assert_eq!(seen, Some("req-1"));
        /// ```
        fn propagate_context(&mut self) -> &mut Self {
            self.propagate_context_with(TaskHooks::new())
        }

        /// [`propagate_context`](RuntimeBuilderExt::propagate_context), also calling your own
        /// hooks (see [`TaskHooks`]).
        ///
        /// ```
        /// use contextvars::tokio::{RuntimeBuilderExt, TaskHooks};
        ///
        /// let _runtime = tokio::runtime::Builder::new_current_thread()
        ///     .propagate_context_with(TaskHooks::new().on_task_spawn(|_| {}))
        ///     .build()
        ///     .unwrap();
        /// ```
        fn propagate_context_with(&mut self, hooks: TaskHooks) -> &mut Self;
    }

    impl RuntimeBuilderExt for Builder {
        fn propagate_context_with(&mut self, hooks: TaskHooks) -> &mut Self {
            IN_USE.store(true, Ordering::Relaxed);
            let TaskHooks {
                spawn,
                before_poll: user_before_poll,
                after_poll: user_after_poll,
                terminate,
            } = hooks;
            self.on_task_spawn(move |meta| {
                on_spawn(meta.id());
                if let Some(hook) = &spawn {
                    hook(meta);
                }
            })
            .on_before_task_poll(move |meta| {
                before_poll(meta.id());
                if let Some(hook) = &user_before_poll {
                    // A panic there leaves tokio's poll: close the task's frame first.
                    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| hook(meta))) {
                        after_poll(meta.id());
                        resume_unwind(panic);
                    }
                }
            })
            .on_after_task_poll(move |meta| {
                let outcome = match &user_after_poll {
                    Some(hook) => catch_unwind(AssertUnwindSafe(|| hook(meta))),
                    None => Ok(()),
                };
                after_poll(meta.id());
                if let Err(panic) = outcome {
                    resume_unwind(panic);
                }
            })
            .on_task_terminate(move |meta| {
                on_terminate(meta.id());
                if let Some(hook) = &terminate {
                    hook(meta);
                }
            })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn some_task_id() -> Id {
            let runtime = ::tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let id = runtime.spawn(async {}).id();
            drop(runtime);
            id
        }

        #[test]
        fn a_task_terminated_before_its_spawn_hook_is_never_tracked() {
            // The order a spawn racing a shutdown on another thread produces.
            let id = some_task_id();
            on_terminate(id);
            on_spawn(id);
            assert!(!__is_tracked(id));
            // The usual order tracks, then forgets.
            let other = some_task_id();
            on_spawn(other);
            assert!(__is_tracked(other));
            on_terminate(other);
            assert!(!__is_tracked(other));
        }
    }
}
