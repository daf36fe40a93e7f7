//! [Rayon](https://docs.rs/rayon) with context: pool jobs, rayon's entry points and parallel
//! iterators that see the caller's context on every worker thread (feature `rayon`).
//!
//! Everything here captures [`Context::current`] when it is called and runs each closure it
//! hands to rayon inside a copy of that context, on whichever worker runs it.
//! When the closure returns, or panics, the worker's context is exactly what it was before
//! (normally empty): nothing leaks from one job into the next one on the same thread.
//!
//! | Plain rayon | With context |
//! |---|---|
//! | `pool.spawn(f)` and a channel back | [`run_in_pool_with_context(&pool, f)`](run_in_pool_with_context): a [`JobHandle`] to join or `.await` |
//! | `rayon::spawn(f)` and a channel back | [`run_in_global_pool_with_context(f)`](run_in_global_pool_with_context) |
//! | `rayon::spawn`, `rayon::spawn_fifo` | [`spawn_with_context`], [`spawn_fifo_with_context`] |
//! | `rayon::join(a, b)` | [`join_with_context(a, b)`](join_with_context) |
//! | `rayon::scope(\|s\| s.spawn(..))` | [`scope_with_context`] and [`ScopeExt::spawn_with_context`] (and the `_fifo` pair) |
//! | `pool.install`, `pool.spawn`, `pool.join`, `pool.scope` | the same with `_with_context`, from [`ThreadPoolExt`] |
//! | `v.par_iter().map(..)` | `v.par_iter().with_current_context().map(..)` ([`ContextExt`](crate::ContextExt), see below) |
//!
//! [`run_in_pool_with_context`] is Python's `run_in_executor_with_context` for rayon: arguments
//! are captured by the closure, the result may be of any `Send` type, and a panic in the job is
//! reported by the handle as `Err(payload)`, like [`std::thread::JoinHandle::join`]. An `async`
//! caller awaits the handle on any executor, without blocking a thread.
//!
//! # Examples
//!
//! ```
//! use contextvars::rayon::{self as cv_rayon, ThreadPoolExt};
//! use contextvars::{ContextExt, ContextVar};
//! use rayon::prelude::*;
//!
//! static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
//!
//! fn process_item(item_id: &str, priority: u8) -> String {
//!     format!("{item_id}:{priority}:{}", REQUEST_ID.get().unwrap_or_default())
//! }
//!
//! let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
//! REQUEST_ID.scope("req-456".to_string(), || {
//!     // One job, waited for (or awaited).
//!     let job = cv_rayon::run_in_pool_with_context(&pool, || process_item("item-123", 1));
//!     assert_eq!(job.join().unwrap(), "item-123:1:req-456");
//!
//!     // Parallel iterators: every closure after the adaptor, on every worker.
//!     let ids: Vec<String> = pool.install_with_context(|| {
//!         (0..4u8)
//!             .into_par_iter()
//!             .with_current_context()
//!             .map(|i| process_item("item", i))
//!             .collect()
//!     });
//!     assert_eq!(ids[3], "item:3:req-456");
//!
//!     // join, with both sides in the caller's context.
//!     let (a, b) = cv_rayon::join_with_context(|| REQUEST_ID.get(), || REQUEST_ID.get());
//!     assert_eq!((a.as_deref(), b.as_deref()), (Some("req-456"), Some("req-456")));
//! });
//! ```
//!
//! # Parallel iterators
//!
//! With this feature, the [`WithContext`] that
//! [`with_current_context`](crate::ContextExt::with_current_context) (or
//! [`with_context`](crate::ContextExt::with_context)) makes of a parallel iterator is a parallel
//! iterator too: the same method as for futures, so one `use contextvars::ContextExt` serves
//! both. It keeps an indexed iterator indexed: `collect` into a `Vec` keeps the order, `zip`,
//! `enumerate`, `rev` and `len` work as before.
//!
//! The context is the one current where `.with_current_context()` is called. Inside a plain
//! `pool.install(|| ..)` closure that is the worker's own, normally empty: use
//! [`ThreadPoolExt::install_with_context`], or call it from the thread that has the context
//! (rayon then runs the iterator on its global pool).
//!
//! Every closure of an adaptor *after* `.with_current_context()` runs in the context, on
//! whichever worker runs it: `map`, `filter`, `for_each`, `inspect`, `flat_map_iter`, `fold`,
//! `reduce` and the others, and the work of `sum`, `collect` or `count`, also behind `zip`,
//! `enumerate`, `rev`, `step_by`, `skip` or `take`. The context is installed once per batch of
//! items a worker processes (a leaf of rayon's splitting), not once per item, so its cost does
//! not grow with the number of items. Limits:
//!
//! - Closures *before* the adaptor are not promised the context: put it first, right after
//!   `par_iter()`/`into_par_iter()`.
//! - Put it after the adaptors that bring in items from elsewhere (`chain`, `interleave`) or
//!   regroup them (`chunks`, `fold_chunks`, `fold_chunks_with`): for example
//!   `par_iter().chunks(64).with_current_context()`.
//! - The closures rayon calls once per split rather than per item (the identity of `fold` and
//!   `reduce`, the `init` of `map_init`, the combining step of `reduce`) see the context only
//!   when no `zip`, `enumerate`, `rev`, `step_by`, `skip`, `take` or `chunks` stands between
//!   them and the adaptor.
//! - Parallel work started *inside* a closure (an inner `par_iter()`, the parallel iterators
//!   `flat_map` flattens, a `rayon::join`) is new work: give it its own
//!   `.with_current_context()`, or use [`join_with_context`] or `flat_map_iter`. The closure
//!   already runs in the context, so that is the one the inner call captures.
//! - What a closure [`set`](crate::ContextVar::set)s stays visible to the rest of its batch and
//!   never reaches the caller; use [`ContextVar::scope`](crate::ContextVar::scope) inside the
//!   closure for a value meant for one item only.
//!
//! # Spans
//!
//! With the `tracing` feature, every entry point here also runs its closures inside the
//! `tracing::Span` that was current at the call, and the parallel-iterator adaptor inside the
//! span current where the iterator is driven (where `collect`, `sum` and the like are called).
//!
//! # What bypasses it
//!
//! Plain rayon: `rayon::spawn`, `rayon::join`, `rayon::scope` and `Scope::spawn`,
//! `pool.install`, `pool.spawn`, `pool.broadcast`, and `par_iter()` without the adaptor. Their
//! closures see the context of the worker thread that runs them, which is normally empty, and
//! may not [`set`](crate::ContextVar::set) a variable: outside any frame of this crate, on a
//! worker, the value would stay on the thread for the next, unrelated job, so `set` panics and
//! `try_set` returns an error naming the fix. (Under an [`attach`](Context::attach) guard, or
//! inside [`Context::run`], a set is confined and allowed.)
//!
//! One case no library can close, because rayon offers no hook around the jobs it runs: a
//! worker that waits inside *your* closure (a plain `rayon::join`, `scope` or `install` called
//! from a job or iterator closure that runs in a context) runs other queued jobs meanwhile, on
//! the same stack, and a *plain* job run then sees that context, and may set into it. Jobs and
//! iterators made here are immune: each installs its own context. So is
//! [`JobHandle::join`](crate::JobHandle::join) called on a worker: it runs each job it helps
//! with in the empty context. To keep plain jobs out of a context, make them with this module.
//! For a pool this module does not cover, wrap the job with [`Context::wrap`].

use ::rayon::iter::plumbing::{
    Consumer, Folder, Producer, ProducerCallback, Reducer, UnindexedConsumer,
};
use ::rayon::iter::{IndexedParallelIterator, ParallelIterator};
use ::rayon::{Scope, ScopeFifo, ThreadPool};

use crate::ambient::Ambient;
#[cfg(doc)]
use crate::Context;
use crate::{job, JobHandle, WithContext};

/// Runs `f` on `pool` inside a copy of the caller's context; the result comes back through a
/// [`JobHandle`], to [`join`](JobHandle::join) or to `.await`.
///
/// This is Python's `run_in_executor_with_context(executor, fn, *args)` for a rayon
/// [`ThreadPool`]: the closure captures the arguments and may return any `Send` type. The job is
/// queued with [`ThreadPool::spawn`] and this call returns at once. A panic in `f` is caught on
/// the worker (whose context is restored first) and reported by the handle as `Err(payload)`;
/// it never reaches the pool's panic handler.
///
/// # Examples
///
/// Waiting from synchronous code:
///
/// ```
/// use contextvars::rayon::run_in_pool_with_context;
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
///
/// fn process_item(item_id: &str, priority: u8) -> (String, u8, Option<String>) {
///     (item_id.to_string(), priority, REQUEST_ID.get())
/// }
///
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
/// REQUEST_ID.scope("req-456".into(), || {
///     let handle = run_in_pool_with_context(&pool, || process_item("item-123", 1));
///     let (item, priority, seen) = handle.join().unwrap();
///     assert_eq!((item.as_str(), priority, seen.as_deref()), ("item-123", 1, Some("req-456")));
/// });
/// ```
///
/// Awaiting from async code, on any executor:
///
/// ```
/// use contextvars::rayon::run_in_pool_with_context;
/// use contextvars::{ContextExt, ContextVar};
///
/// static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");
///
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
/// let handler = async {
///     // The task is parked, not blocked, while the pool works.
///     run_in_pool_with_context(&pool, || REQUEST_ID.get()).await.unwrap()
/// };
/// let task = REQUEST_ID.scope("req-789", || handler.with_current_context());
/// assert_eq!(futures::executor::block_on(task), Some("req-789"));
/// ```
pub fn run_in_pool_with_context<F, T>(pool: &ThreadPool, f: F) -> JobHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (job, handle) = job::new_job(crate::capture::Captured::now(), f);
    pool.spawn(job);
    handle
}

/// [`run_in_pool_with_context`] on rayon's default pool, the counterpart of Python's
/// `run_in_executor_with_context(None, fn)`.
///
/// Like [`rayon::spawn`], it queues the job on the current pool when called
/// from one of a pool's worker threads, and on the global pool otherwise.
///
/// # Examples
///
/// ```
/// use contextvars::rayon::run_in_global_pool_with_context;
/// use contextvars::ContextVar;
///
/// static USER_ID: ContextVar<u64> = ContextVar::new("user_id");
///
/// let handle = USER_ID.scope(789, || run_in_global_pool_with_context(|| USER_ID.get()));
/// assert_eq!(handle.join().unwrap(), Some(789));
/// ```
pub fn run_in_global_pool_with_context<F, T>(f: F) -> JobHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (job, handle) = job::new_job(crate::capture::Captured::now(), f);
    ::rayon::spawn(job);
    handle
}

/// [`rayon::spawn`], running `f` inside a copy of the caller's context.
///
/// Fire and forget, as rayon's: a panic in `f` goes to the pool's panic handler (rayon aborts
/// the process when there is none). Use [`run_in_global_pool_with_context`] to get a result or
/// the panic back.
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
/// use contextvars::{rayon::spawn_with_context, ContextVar};
///
/// static REQUEST_ID: ContextVar<u32> = ContextVar::new("request_id");
///
/// let (tx, rx) = mpsc::channel();
/// REQUEST_ID.scope(7, || spawn_with_context(move || tx.send(REQUEST_ID.get()).unwrap()));
/// assert_eq!(rx.recv().unwrap(), Some(7));
/// ```
pub fn spawn_with_context<F>(f: F)
where
    F: FnOnce() + Send + 'static,
{
    ::rayon::spawn(crate::capture::job(f));
}

/// [`rayon::spawn_fifo`], running `f` inside a copy of the caller's
/// context.
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
/// use contextvars::{rayon::spawn_fifo_with_context, ContextVar};
///
/// static REQUEST_ID: ContextVar<u32> = ContextVar::new("request_id");
///
/// let (tx, rx) = mpsc::channel();
/// REQUEST_ID.scope(8, || spawn_fifo_with_context(move || tx.send(REQUEST_ID.get()).unwrap()));
/// assert_eq!(rx.recv().unwrap(), Some(8));
/// ```
pub fn spawn_fifo_with_context<F>(f: F)
where
    F: FnOnce() + Send + 'static,
{
    ::rayon::spawn_fifo(crate::capture::job(f));
}

/// [`rayon::join`], running both closures inside copies of the caller's context,
/// whichever threads run them.
///
/// Each side gets its own copy: what one sets, the other and the caller never see. A panic on
/// either side reaches the caller, as with rayon's `join`.
///
/// While one side waits for the other, rayon lets the waiting worker run other queued jobs on
/// the same stack. Jobs made with this module install their own context; a *plain* job
/// (`rayon::spawn`, `pool.spawn`, a `par_iter()` without the adaptor) run then sees the waiting
/// side's context and may set into it. Rayon offers no hook to prevent this: make such jobs
/// with this module (see "What bypasses it" in the [module docs](crate::rayon)).
///
/// # Examples
///
/// ```
/// use contextvars::{rayon::join_with_context, ContextVar};
///
/// static DEPTH: ContextVar<u32> = ContextVar::new("depth");
///
/// fn sum(values: &[u32]) -> u32 {
///     assert_eq!(DEPTH.get(), Some(1)); // on every worker
///     match values {
///         [] => 0,
///         [one] => *one,
///         _ => {
///             let (left, right) = values.split_at(values.len() / 2);
///             let (a, b) = join_with_context(|| sum(left), || sum(right));
///             a + b
///         }
///     }
/// }
///
/// let values: Vec<u32> = (1..=100).collect();
/// assert_eq!(DEPTH.scope(1, || sum(&values)), 5050);
/// ```
pub fn join_with_context<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let captured = crate::capture::Captured::now();
    ::rayon::join(captured.clone().wrap(a), captured.wrap(b))
}

/// [`rayon::scope`], running `op` inside a copy of the caller's context.
///
/// `op` may run on a pool thread (always, when called from outside the pool). Jobs spawned in
/// the scope see the context when spawned with [`ScopeExt::spawn_with_context`]; a plain
/// [`Scope::spawn`] bypasses it. As with [`join_with_context`], a plain job that the worker runs
/// while the scope waits for its jobs sees the scope's context.
///
/// # Examples
///
/// ```
/// use std::sync::Mutex;
/// use contextvars::rayon::{scope_with_context, ScopeExt};
/// use contextvars::ContextVar;
///
/// static TENANT: ContextVar<&'static str> = ContextVar::new("tenant");
///
/// let seen = Mutex::new(Vec::new());
/// TENANT.scope("acme", || {
///     scope_with_context(|s| {
///         seen.lock().unwrap().push(TENANT.get()); // the scope's body
///         s.spawn_with_context(|s| {
///             seen.lock().unwrap().push(TENANT.get());
///             s.spawn_with_context(|_| seen.lock().unwrap().push(TENANT.get())); // nested
///         });
///     });
/// });
/// assert_eq!(seen.into_inner().unwrap(), [Some("acme"); 3]);
/// ```
pub fn scope_with_context<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R + Send,
    R: Send,
{
    let captured = crate::capture::Captured::now();
    ::rayon::scope(move |s| captured.wrap(|| op(s))())
}

/// [`rayon::scope_fifo`], running `op` inside a copy of the caller's
/// context; spawn inside it with [`ScopeFifoExt::spawn_fifo_with_context`].
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use contextvars::rayon::{scope_fifo_with_context, ScopeFifoExt};
/// use contextvars::ContextVar;
///
/// static TENANT: ContextVar<&'static str> = ContextVar::new("tenant");
///
/// let in_acme = AtomicUsize::new(0);
/// TENANT.scope("acme", || {
///     scope_fifo_with_context(|s| {
///         for _ in 0..4 {
///             s.spawn_fifo_with_context(|_| {
///                 if TENANT.get() == Some("acme") {
///                     in_acme.fetch_add(1, Ordering::Relaxed);
///                 }
///             });
///         }
///     });
/// });
/// assert_eq!(in_acme.into_inner(), 4);
/// ```
pub fn scope_fifo_with_context<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&ScopeFifo<'scope>) -> R + Send,
    R: Send,
{
    let captured = crate::capture::Captured::now();
    ::rayon::scope_fifo(move |s| captured.wrap(|| op(s))())
}

/// Context-keeping spawns for [`rayon::Scope`].
///
/// A job spawned this way runs in a copy of the context current *where it is spawned*. So
/// spawn from a scope whose body sees the caller's context: one made by
/// [`scope_with_context`] or [`ThreadPoolExt::scope_with_context`], or by
/// [`rayon::in_place_scope`], whose body runs on the calling thread. A plain [`rayon::scope`]
/// called from outside a pool runs its body on a worker, whose context is normally empty.
///
/// The spawned closure receives the plain `&Scope`: spawn nested jobs with
/// `spawn_with_context` again (inside the closure, the current context is the caller's copy).
///
/// # Examples
///
/// ```
/// use contextvars::rayon::{scope_with_context, ScopeExt};
/// use contextvars::ContextVar;
///
/// static JOB: ContextVar<u32> = ContextVar::new("job");
///
/// let (mut with, mut without) = (None, None);
/// JOB.scope(3, || {
///     scope_with_context(|s| {
///         s.spawn_with_context(|_| with = JOB.get());
///         s.spawn(|_| without = JOB.get()); // plain spawn: the worker's context
///     });
/// });
/// assert_eq!((with, without), (Some(3), None));
/// ```
pub trait ScopeExt<'scope> {
    /// [`Scope::spawn`], running `body` inside a copy of the caller's context.
    ///
    /// ```
    /// use contextvars::{rayon::ScopeExt, ContextVar};
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let mut seen = None;
    /// A.scope(1, || rayon::in_place_scope(|s| s.spawn_with_context(|_| seen = A.get())));
    /// assert_eq!(seen, Some(1));
    /// ```
    fn spawn_with_context<BODY>(&self, body: BODY)
    where
        BODY: FnOnce(&Scope<'scope>) + Send + 'scope;
}

impl<'scope> ScopeExt<'scope> for Scope<'scope> {
    fn spawn_with_context<BODY>(&self, body: BODY)
    where
        BODY: FnOnce(&Scope<'scope>) + Send + 'scope,
    {
        let captured = crate::capture::Captured::now();
        self.spawn(move |s| captured.wrap(|| body(s))());
    }
}

/// Context-keeping spawns for [`rayon::ScopeFifo`].
///
/// As with [`ScopeExt`], spawn from a scope whose body sees the caller's context:
/// [`scope_fifo_with_context`], [`ThreadPoolExt::scope_fifo_with_context`] or
/// [`rayon::in_place_scope_fifo`].
///
/// # Examples
///
/// ```
/// use contextvars::rayon::{scope_fifo_with_context, ScopeFifoExt};
/// use contextvars::ContextVar;
///
/// static JOB: ContextVar<u32> = ContextVar::new("job");
///
/// let mut seen = None;
/// JOB.scope(4, || scope_fifo_with_context(|s| s.spawn_fifo_with_context(|_| seen = JOB.get())));
/// assert_eq!(seen, Some(4));
/// ```
pub trait ScopeFifoExt<'scope> {
    /// [`ScopeFifo::spawn_fifo`], running `body` inside a copy of the caller's context.
    ///
    /// ```
    /// use contextvars::{rayon::ScopeFifoExt, ContextVar};
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let mut seen = None;
    /// A.scope(2, || rayon::in_place_scope_fifo(|s| s.spawn_fifo_with_context(|_| seen = A.get())));
    /// assert_eq!(seen, Some(2));
    /// ```
    fn spawn_fifo_with_context<BODY>(&self, body: BODY)
    where
        BODY: FnOnce(&ScopeFifo<'scope>) + Send + 'scope;
}

impl<'scope> ScopeFifoExt<'scope> for ScopeFifo<'scope> {
    fn spawn_fifo_with_context<BODY>(&self, body: BODY)
    where
        BODY: FnOnce(&ScopeFifo<'scope>) + Send + 'scope,
    {
        let captured = crate::capture::Captured::now();
        self.spawn_fifo(move |s| captured.wrap(|| body(s))());
    }
}

/// Context-keeping versions of [`ThreadPool`]'s entry points.
///
/// # Examples
///
/// ```
/// use contextvars::rayon::ThreadPoolExt;
/// use contextvars::{ContextExt, ContextVar};
/// use rayon::prelude::*;
///
/// static REQUEST_ID: ContextVar<u32> = ContextVar::new("request_id");
///
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
/// let total = REQUEST_ID.scope(10, || {
///     pool.install_with_context(|| {
///         (1..=4u32)
///             .into_par_iter()
///             .with_current_context()
///             .map(|x| x * REQUEST_ID.get().unwrap())
///             .sum::<u32>()
///     })
/// });
/// assert_eq!(total, 100);
/// ```
pub trait ThreadPoolExt {
    /// [`ThreadPool::install`], running `op` inside a copy of the caller's context.
    ///
    /// Blocks until `op` is done and returns its result; a panic in `op` reaches the caller.
    ///
    /// ```
    /// use contextvars::{rayon::ThreadPoolExt, ContextVar};
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    /// assert_eq!(A.scope(1, || pool.install_with_context(|| A.get())), Some(1));
    /// assert_eq!(A.scope(1, || pool.install(|| A.get())), None); // plain install
    /// ```
    fn install_with_context<OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce() -> R + Send,
        R: Send;

    /// [`ThreadPool::spawn`], running `f` inside a copy of the caller's context.
    ///
    /// Fire and forget; see [`run_in_pool_with_context`] to get the result back.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use contextvars::{rayon::ThreadPoolExt, ContextVar};
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    /// let (tx, rx) = mpsc::channel();
    /// A.scope(1, || pool.spawn_with_context(move || tx.send(A.get()).unwrap()));
    /// assert_eq!(rx.recv().unwrap(), Some(1));
    /// ```
    fn spawn_with_context<F>(&self, f: F)
    where
        F: FnOnce() + Send + 'static;

    /// [`ThreadPool::spawn_fifo`], running `f` inside a copy of the caller's context.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use contextvars::{rayon::ThreadPoolExt, ContextVar};
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    /// let (tx, rx) = mpsc::channel();
    /// A.scope(2, || pool.spawn_fifo_with_context(move || tx.send(A.get()).unwrap()));
    /// assert_eq!(rx.recv().unwrap(), Some(2));
    /// ```
    fn spawn_fifo_with_context<F>(&self, f: F)
    where
        F: FnOnce() + Send + 'static;

    /// [`ThreadPool::join`], running both closures inside copies of the caller's context.
    ///
    /// ```
    /// use contextvars::{rayon::ThreadPoolExt, ContextVar};
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    /// let both = A.scope(3, || pool.join_with_context(|| A.get(), || A.get()));
    /// assert_eq!(both, (Some(3), Some(3)));
    /// ```
    fn join_with_context<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send;

    /// [`ThreadPool::scope`], running `op` inside a copy of the caller's context; spawn inside
    /// it with [`ScopeExt::spawn_with_context`].
    ///
    /// ```
    /// use contextvars::rayon::{ScopeExt, ThreadPoolExt};
    /// use contextvars::ContextVar;
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    /// let mut seen = None;
    /// A.scope(4, || pool.scope_with_context(|s| s.spawn_with_context(|_| seen = A.get())));
    /// assert_eq!(seen, Some(4));
    /// ```
    fn scope_with_context<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&Scope<'scope>) -> R + Send,
        R: Send;

    /// [`ThreadPool::scope_fifo`], running `op` inside a copy of the caller's context; spawn
    /// inside it with [`ScopeFifoExt::spawn_fifo_with_context`].
    ///
    /// ```
    /// use contextvars::rayon::{ScopeFifoExt, ThreadPoolExt};
    /// use contextvars::ContextVar;
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    /// let mut seen = None;
    /// A.scope(5, || {
    ///     pool.scope_fifo_with_context(|s| s.spawn_fifo_with_context(|_| seen = A.get()))
    /// });
    /// assert_eq!(seen, Some(5));
    /// ```
    fn scope_fifo_with_context<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&ScopeFifo<'scope>) -> R + Send,
        R: Send;
}

impl ThreadPoolExt for ThreadPool {
    fn install_with_context<OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce() -> R + Send,
        R: Send,
    {
        self.install(crate::capture::job(op))
    }

    fn spawn_with_context<F>(&self, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.spawn(crate::capture::job(f));
    }

    fn spawn_fifo_with_context<F>(&self, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.spawn_fifo(crate::capture::job(f));
    }

    fn join_with_context<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        let captured = crate::capture::Captured::now();
        self.join(captured.clone().wrap(a), captured.wrap(b))
    }

    fn scope_with_context<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&Scope<'scope>) -> R + Send,
        R: Send,
    {
        let captured = crate::capture::Captured::now();
        self.scope(move |s| captured.wrap(|| op(s))())
    }

    fn scope_fifo_with_context<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&ScopeFifo<'scope>) -> R + Send,
        R: Send,
    {
        let captured = crate::capture::Captured::now();
        self.scope_fifo(move |s| captured.wrap(|| op(s))())
    }
}

// ---------------------------------------------------------------------------------------------
// Parallel iterators.
//
// Rayon runs a parallel iterator by splitting a *producer* (the items) and a *consumer* (what
// the adaptors after it do with them) down to leaves, each of which one worker folds
// sequentially. Adaptors after ours reach us in one of two ways, and we wrap both:
//
// - through `drive`/`drive_unindexed`, with their consumer: we wrap it, so that turning it into a
//   folder, feeding the folder a batch of items, completing it and reducing two results all run
//   in the context (once per leaf or split);
// - through `with_producer` (zip, enumerate, rev, ...), with a callback that wraps our producer
//   in theirs: we wrap the producer, so that folding it runs in the context, and so does the
//   iterator it turns into, from its first item until it is dropped, which covers the folder
//   consuming that iterator.
// ---------------------------------------------------------------------------------------------

/// What the adaptor installs around each batch: the context and, with the `tracing` and
/// `opentelemetry` features, the span and OTel context.
type Carried = crate::capture::Captured;

/// Keeps a [`Carried`] current (see [`Carried::attach`]). Fields drop in declaration order: what
/// travels beside the context (the span exited first, then the OTel context detached), then our
/// context.
struct CarriedGuard {
    _ambient: <crate::integrations::Ambient as Ambient>::Entered,
    _context: Option<crate::ContextGuard>,
}

impl Carried {
    /// Runs `f` with the captured context installed (moved in and out, no reference count
    /// touched), and the span and OTel context entered.
    #[inline]
    fn installed<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let _frame = crate::state::enter(&mut self.context);
        let _ambient = self.ambient.enter();
        f()
    }

    /// Makes the captured context (and span, and OTel context) current until the guard drops.
    fn attach(self) -> CarriedGuard {
        // Refused only at thread exit: then the work runs in whatever is current.
        let context = self.context.attach_unchecked().ok();
        CarriedGuard {
            _ambient: self.ambient.entered(),
            _context: context,
        }
    }
}

/// Splits a `WithContext` into its context and its parallel iterator.
/// Splits the adaptor when it is driven, on the caller's thread: with the `tracing` and
/// `opentelemetry` features the span and OTel context current there are carried with the context.
fn into_parts<I>(with_context: WithContext<I>) -> (Carried, I) {
    let carried = Carried::with_context(with_context.context().clone());
    (carried, with_context.into_inner())
}

/// A parallel iterator whose closures run inside a [`Context`]: see the [module
/// docs](crate::rayon#parallel-iterators).
///
/// ```
/// use contextvars::{ContextExt, ContextVar};
/// use rayon::prelude::*;
///
/// static REQUEST_ID: ContextVar<u32> = ContextVar::new("request_id");
///
/// let v = vec![1, 2, 3];
/// let seen: Vec<(usize, Option<u32>)> = REQUEST_ID.scope(7, || {
///     v.par_iter()
///         .with_current_context()
///         .enumerate()
///         .map(|(i, _)| (i, REQUEST_ID.get()))
///         .collect()
/// });
/// assert_eq!(seen, [(0, Some(7)), (1, Some(7)), (2, Some(7))]);
/// ```
impl<I: ParallelIterator> ParallelIterator for WithContext<I> {
    type Item = I::Item;

    fn drive_unindexed<C>(self, consumer: C) -> C::Result
    where
        C: UnindexedConsumer<Self::Item>,
    {
        let (context, base) = into_parts(self);
        base.drive_unindexed(ContextConsumer { context, consumer })
    }

    fn opt_len(&self) -> Option<usize> {
        self.inner().opt_len()
    }
}

/// Indexed when the inner iterator is: order, `zip`, `enumerate` and `len` work as without
/// the context.
///
/// ```
/// use contextvars::{ContextExt, ContextVar};
/// use rayon::prelude::*;
///
/// static TAG: ContextVar<&'static str> = ContextVar::new("tag");
///
/// let (a, b) = (vec![1, 2, 3], vec![10, 20, 30]);
/// let sums: Vec<String> = TAG.scope("t", || {
///     a.par_iter()
///         .with_current_context()
///         .zip(&b)
///         .map(|(x, y)| format!("{}{}", TAG.get().unwrap(), x + y))
///         .collect()
/// });
/// assert_eq!(sums, ["t11", "t22", "t33"]);
/// ```
impl<I: IndexedParallelIterator> IndexedParallelIterator for WithContext<I> {
    fn len(&self) -> usize {
        self.inner().len()
    }

    fn drive<C>(self, consumer: C) -> C::Result
    where
        C: Consumer<Self::Item>,
    {
        let (context, base) = into_parts(self);
        base.drive(ContextConsumer { context, consumer })
    }

    fn with_producer<CB>(self, callback: CB) -> CB::Output
    where
        CB: ProducerCallback<Self::Item>,
    {
        let (context, base) = into_parts(self);
        base.with_producer(ContextCallback { context, callback })
    }
}

/// Runs `f` with `context` installed (moved in and out, no reference count touched).
#[inline]
fn installed<R>(carried: &mut Carried, f: impl FnOnce() -> R) -> R {
    carried.installed(f)
}

struct ContextConsumer<C> {
    context: Carried,
    consumer: C,
}

impl<T, C: Consumer<T>> Consumer<T> for ContextConsumer<C> {
    type Folder = ContextFolder<C::Folder>;
    type Reducer = ContextReducer<C::Reducer>;
    type Result = C::Result;

    fn split_at(self, index: usize) -> (Self, Self, Self::Reducer) {
        let (left, right, reducer) = self.consumer.split_at(index);
        let left = ContextConsumer {
            context: self.context.clone(),
            consumer: left,
        };
        let reducer = ContextReducer {
            context: self.context.clone(),
            reducer,
        };
        let right = ContextConsumer {
            context: self.context,
            consumer: right,
        };
        (left, right, reducer)
    }

    fn into_folder(self) -> Self::Folder {
        let ContextConsumer {
            mut context,
            consumer,
        } = self;
        // `fold`'s identity, `map_init`'s init and the like run here.
        let folder = installed(&mut context, || consumer.into_folder());
        ContextFolder { context, folder }
    }

    fn full(&self) -> bool {
        self.consumer.full()
    }
}

impl<T, C: UnindexedConsumer<T>> UnindexedConsumer<T> for ContextConsumer<C> {
    fn split_off_left(&self) -> Self {
        ContextConsumer {
            context: self.context.clone(),
            consumer: self.consumer.split_off_left(),
        }
    }

    fn to_reducer(&self) -> Self::Reducer {
        ContextReducer {
            context: self.context.clone(),
            reducer: self.consumer.to_reducer(),
        }
    }
}

struct ContextFolder<F> {
    context: Carried,
    folder: F,
}

impl<T, F: Folder<T>> Folder<T> for ContextFolder<F> {
    type Result = F::Result;

    fn consume(self, item: T) -> Self {
        // Only producers that feed items one at a time get here: most hand a batch to
        // `consume_iter`.
        let ContextFolder {
            mut context,
            folder,
        } = self;
        let folder = installed(&mut context, || folder.consume(item));
        ContextFolder { context, folder }
    }

    fn consume_iter<It>(self, iter: It) -> Self
    where
        It: IntoIterator<Item = T>,
    {
        let ContextFolder {
            mut context,
            folder,
        } = self;
        let folder = installed(&mut context, || folder.consume_iter(iter));
        ContextFolder { context, folder }
    }

    fn complete(self) -> Self::Result {
        let ContextFolder {
            mut context,
            folder,
        } = self;
        installed(&mut context, || folder.complete())
    }

    fn full(&self) -> bool {
        self.folder.full()
    }
}

struct ContextReducer<R> {
    context: Carried,
    reducer: R,
}

impl<T, R: Reducer<T>> Reducer<T> for ContextReducer<R> {
    fn reduce(self, left: T, right: T) -> T {
        let ContextReducer {
            mut context,
            reducer,
        } = self;
        installed(&mut context, || reducer.reduce(left, right))
    }
}

struct ContextCallback<CB> {
    context: Carried,
    callback: CB,
}

impl<T, CB: ProducerCallback<T>> ProducerCallback<T> for ContextCallback<CB> {
    type Output = CB::Output;

    fn callback<P>(self, producer: P) -> Self::Output
    where
        P: Producer<Item = T>,
    {
        self.callback.callback(ContextProducer {
            context: self.context,
            producer,
        })
    }
}

struct ContextProducer<P> {
    context: Carried,
    producer: P,
}

impl<P: Producer> Producer for ContextProducer<P> {
    type Item = P::Item;
    type IntoIter = ContextIter<P::IntoIter>;

    fn into_iter(self) -> Self::IntoIter {
        ContextIter {
            context: Some(self.context),
            guard: None,
            iter: self.producer.into_iter(),
        }
    }

    fn min_len(&self) -> usize {
        self.producer.min_len()
    }

    fn max_len(&self) -> usize {
        self.producer.max_len()
    }

    fn split_at(self, index: usize) -> (Self, Self) {
        let (left, right) = self.producer.split_at(index);
        let left = ContextProducer {
            context: self.context.clone(),
            producer: left,
        };
        let right = ContextProducer {
            context: self.context,
            producer: right,
        };
        (left, right)
    }

    fn fold_with<F>(self, folder: F) -> F
    where
        F: Folder<Self::Item>,
    {
        let ContextProducer {
            mut context,
            producer,
        } = self;
        installed(&mut context, || producer.fold_with(folder))
    }
}

/// The iterator of a [`ContextProducer`], for adaptors that iterate producers themselves
/// (`zip`, `enumerate`, `rev`, ...).
///
/// The items are consumed by code we do not wrap, between calls to `next`, so the context
/// cannot be a frame around each call: it is attached at the first item and stays current
/// until the iterator is dropped. Rayon iterates a producer and drops it within one leaf, on
/// one thread, so the attachment nests with every other frame and guard there, including
/// those of jobs this thread steals meanwhile.
struct ContextIter<I> {
    /// The context, until it is attached.
    context: Option<Carried>,
    guard: Option<CarriedGuard>,
    iter: I,
}

impl<I> ContextIter<I> {
    #[inline]
    fn attach(&mut self) {
        if let Some(context) = self.context.take() {
            self.guard = Some(context.attach());
        }
    }

    /// The guard (to keep alive while iterating) and the bare iterator, for whole-iterator
    /// methods that need not check for attachment at each item.
    fn attached(self) -> (Option<CarriedGuard>, I) {
        let ContextIter {
            context,
            guard,
            iter,
        } = self;
        (guard.or_else(|| context.map(Carried::attach)), iter)
    }
}

impl<I: Iterator> Iterator for ContextIter<I> {
    type Item = I::Item;

    #[inline]
    fn next(&mut self) -> Option<I::Item> {
        self.attach();
        self.iter.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }

    fn fold<B, G>(self, init: B, f: G) -> B
    where
        G: FnMut(B, I::Item) -> B,
    {
        let (_guard, iter) = self.attached();
        iter.fold(init, f)
    }
}

impl<I: DoubleEndedIterator> DoubleEndedIterator for ContextIter<I> {
    #[inline]
    fn next_back(&mut self) -> Option<I::Item> {
        self.attach();
        self.iter.next_back()
    }

    fn rfold<B, G>(self, init: B, f: G) -> B
    where
        G: FnMut(B, I::Item) -> B,
    {
        let (_guard, iter) = self.attached();
        iter.rfold(init, f)
    }
}

impl<I: ExactSizeIterator> ExactSizeIterator for ContextIter<I> {
    fn len(&self) -> usize {
        self.iter.len()
    }
}

/// rayon's units of work, for the executor seam (`crate::executor`): a worker thread runs
/// nothing but jobs of its pool, and may run others while it waits for one.
pub(crate) struct Rayon;

impl crate::executor::Executor for Rayon {
    fn name(&self) -> &'static str {
        "rayon"
    }

    fn in_unit_of_work(&self) -> bool {
        ::rayon::current_thread_index().is_some()
    }

    fn run_one_while_waiting(&self) -> Option<bool> {
        ::rayon::yield_now().map(|ran| matches!(ran, ::rayon::Yield::Executed))
    }
}
