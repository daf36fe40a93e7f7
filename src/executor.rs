//! The executor seam: how a runtime or pool tells this crate that the current thread is running
//! one of its units of work (a task, a blocking job, a pool job).
//!
//! The crate needs to know one thing of an executor: whether a value `set` right now would land
//! on a worker thread's top level, outside any frame of this crate, where it would outlive the
//! unit of work that set it and be read by the next, unrelated one (another request's task).
//! [`ContextVar::set`](crate::ContextVar::set) refuses such a `set` (it panics, and
//! [`ContextVar::try_set`](crate::ContextVar::try_set) returns an error), so that one request's
//! values cannot reach another's through a worker thread.
//!
//! Every runtime and pool this crate integrates (tokio and actix-web, async-std, smol and the
//! `blocking` pool, rayon) implements [`Executor`] in its adapter; a runtime or pool of your own
//! gets the same protection by implementing it and calling [`register`] once, at start-up.
//!
//! What it covers and what bypasses it:
//! - Only the threads and moments an executor recognises: a `set` on a thread no executor claims
//!   (the main thread, a thread you spawned and own) is the thread's own business and is
//!   allowed, as is every `set` inside a frame of this crate (a [`WithContext`](crate::WithContext)
//!   future's poll, a [`scope`](crate::ContextVar::scope), a spawn of any adapter, a job run
//!   through [`run`](crate::Context::run)).
//! - It is consulted on the slow path only: when no frame of this crate is active on the thread
//!   and nothing is attached there, so frames and their reads and writes never pay for it.
//! - Nothing here propagates a context: spawning with the context is each adapter's own
//!   `spawn_with_context` (or [`WithContext`](crate::WithContext) around the future).
//!
//! # Examples
//!
//! A pool of your own, whose workers mark themselves with a thread-local flag:
//!
//! ```
//! use std::cell::Cell;
//!
//! use contextvars::executor::{self, Executor};
//! use contextvars::{Context, ContextVar};
//!
//! thread_local! {
//!     static IN_JOB: Cell<bool> = const { Cell::new(false) };
//! }
//!
//! struct MyPool;
//!
//! impl Executor for MyPool {
//!     fn name(&self) -> &'static str {
//!         "my-pool"
//!     }
//!
//!     fn in_unit_of_work(&self) -> bool {
//!         IN_JOB.with(Cell::get)
//!     }
//! }
//!
//! static POOL: MyPool = MyPool;
//! static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
//!
//! executor::register(&POOL);
//!
//! // A job of the pool, run without a context of its own: a stray `set` is refused...
//! IN_JOB.with(|flag| flag.set(true));
//! let refused = REQUEST_ID.try_set("leaked".into()).unwrap_err();
//! assert!(refused.to_string().contains("my-pool"));
//! // ...and allowed in a frame of the job's own.
//! Context::new().run(|| REQUEST_ID.set("r-1".into()));
//! IN_JOB.with(|flag| flag.set(false));
//! assert_eq!(REQUEST_ID.get(), None);
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::Context;

/// A runtime or pool whose worker threads run units of work (tasks, jobs) of unrelated callers.
///
/// Implemented by each runtime and pool adapter of this crate; implement it for an executor of
/// your own and [`register`] it. Both methods are called on the slow path of a `set` (no frame
/// of this crate active on the thread), never while a context is read.
///
/// # Examples
///
/// ```
/// use contextvars::executor::Executor;
///
/// /// Threads named `worker-N` belong to a pool that runs nothing but its jobs on them.
/// struct NamedWorkers;
///
/// impl Executor for NamedWorkers {
///     fn name(&self) -> &'static str {
///         "named-workers"
///     }
///
///     fn in_unit_of_work(&self) -> bool {
///         std::thread::current().name().is_some_and(|name| name.starts_with("worker-"))
///     }
/// }
///
/// assert!(!NamedWorkers.in_unit_of_work());
/// ```
pub trait Executor: Sync {
    /// The executor's name, as errors show it ("tokio", "rayon").
    fn name(&self) -> &'static str;

    /// Whether this thread is running one of the executor's units of work right now (a worker
    /// thread of a pool that runs nothing else counts as always running one).
    ///
    /// It must not panic, and should not call into this crate (a `set` from here is refused
    /// like any other on the thread).
    fn in_unit_of_work(&self) -> bool;

    /// On a worker thread of this executor that may run its other units of work while it waits
    /// (rayon's `yield_now`): runs one, if one is ready, and says whether it did. `None` on any
    /// other thread (the default). Asked only where [`in_unit_of_work`](Executor::in_unit_of_work)
    /// says yes.
    ///
    /// A [`JobHandle::join`](crate::JobHandle::join) called on such a worker calls it
    /// until the joined job has finished, so that joining from inside the pool that must run the
    /// job cannot deadlock it. Each call runs in a frame of its own with the empty context: the
    /// work it runs sees neither the joiner's context nor what earlier work set.
    ///
    /// ```
    /// use contextvars::executor::Executor;
    ///
    /// struct Plain;
    ///
    /// impl Executor for Plain {
    ///     fn name(&self) -> &'static str {
    ///         "plain"
    ///     }
    ///     fn in_unit_of_work(&self) -> bool {
    ///         false
    ///     }
    /// }
    ///
    /// assert_eq!(Plain.run_one_while_waiting(), None);
    /// ```
    fn run_one_while_waiting(&self) -> Option<bool> {
        None
    }
}

/// Makes `executor` known to the crate, for the rest of the process: a `set` on a thread where
/// its [`Executor::in_unit_of_work`] says yes, outside any frame of this crate, is refused.
/// Registering the same executor (the same address) again changes nothing.
///
/// The crate's own adapters need no registration: they are known when their feature is on.
///
/// # Examples
///
/// ```
/// use contextvars::executor::{self, Executor};
///
/// struct Nothing;
///
/// impl Executor for Nothing {
///     fn name(&self) -> &'static str {
///         "nothing"
///     }
///     fn in_unit_of_work(&self) -> bool {
///         false
///     }
/// }
///
/// static NOTHING: Nothing = Nothing;
/// executor::register(&NOTHING);
/// executor::register(&NOTHING); // once is enough; twice is harmless
/// ```
pub fn register(executor: &'static dyn Executor) {
    let mut registered = REGISTERED.lock().unwrap_or_else(PoisonError::into_inner);
    let mut list = registered.as_deref().unwrap_or_default().to_vec();
    if !list.iter().any(|known| std::ptr::addr_eq(*known, executor)) {
        list.push(executor);
        *registered = Some(list.into());
        ANY_REGISTERED.store(true, Ordering::Release);
    }
}

/// The executors registered with [`register`], replaced whole at each registration (so that a
/// reader holds the lock only to clone the list, and calls the executors with it released: one
/// of them may `set`, and so come back here).
static REGISTERED: Mutex<Option<Arc<[&'static dyn Executor]>>> = Mutex::new(None);

/// Whether [`REGISTERED`] holds any: until then (the common case) nobody takes its lock.
static ANY_REGISTERED: AtomicBool = AtomicBool::new(false);

/// The executors registered so far (none: `None`).
pub(crate) fn registered() -> Option<Arc<[&'static dyn Executor]>> {
    if !ANY_REGISTERED.load(Ordering::Acquire) {
        return None;
    }
    REGISTERED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// How a runtime with poll hooks reports a task whose future it drops outside its polls (tokio
/// with automatic inheritance, at runtime shutdown): its context is not installed then, so the
/// crate asks here. Implemented by `()` (no such runtime compiled in); the one implementation
/// in use is chosen in `crate::integrations`, statically, because it is asked on the hot paths.
pub(crate) trait TaskDrops {
    /// Whether such a runtime is compiled in: when not, nothing here is asked.
    const IN_USE: bool;

    /// The runtime's name, as errors show it.
    const EXECUTOR: &'static str;

    /// The context of the task being dropped on this thread outside its polls, if any (asked
    /// only when no frame of this crate is active).
    fn context_of_task_outside_poll() -> Option<Context>;

    /// Whether a task is being dropped on this thread outside its polls, whatever frame is
    /// active (that frame is not the task's).
    fn dropping_a_task_outside_its_poll() -> bool;
}

impl TaskDrops for () {
    const IN_USE: bool = false;
    const EXECUTOR: &'static str = "";

    #[inline(always)]
    fn context_of_task_outside_poll() -> Option<Context> {
        None
    }

    #[inline(always)]
    fn dropping_a_task_outside_its_poll() -> bool {
        false
    }
}
