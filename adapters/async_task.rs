//! `spawn_with_context` for executors written on [async-task](https://docs.rs/async-task)
//! (feature `async-task`).
//!
//! # What it propagates
//!
//! [`spawn_with_context`] and [`spawn_local_with_context`] capture
//! [`Context::current`](crate::Context::current) at the call and make the task's future run
//! inside a copy of it: installed around every poll (every `Runnable::run`) and while the future
//! is dropped (completion, `Task::cancel`, dropping the `Task` or an unrun `Runnable`).
//!
//! With the `tracing` feature, the child also runs inside the `tracing::Span` that was current
//! at the call, as if `.in_current_span()` had been written by hand; see
//! [`crate::tracing`] for how to opt out for one spawn.
//!
//! # What bypasses it
//!
//! `async_task::spawn`, `spawn_local`, `spawn_unchecked` and `async_task::Builder` know nothing of
//! this crate: their tasks run in whatever context the thread calling `Runnable::run` has. The
//! `schedule` function itself is called by async-task wherever the waker is woken, in that
//! thread's context, not the task's.
//!
//! # Examples
//!
//! A minimal executor: a channel of runnables.
//!
//! ```
//! use contextvars::async_task::spawn_with_context;
//! use contextvars::ContextVar;
//!
//! static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");
//!
//! let (queue, runnables) = std::sync::mpsc::channel::<async_task::Runnable>();
//! let schedule = move |runnable| queue.send(runnable).unwrap();
//! let (runnable, task) =
//!     REQUEST_ID.scope("req-123", || spawn_with_context(async { REQUEST_ID.get() }, schedule));
//! runnable.schedule();
//! // The worker runs the task outside the scope.
//! std::thread::spawn(move || runnables.recv().unwrap().run()).join().unwrap();
//! assert_eq!(futures::executor::block_on(task), Some("req-123"));
//! ```

use std::future::Future;

use ::async_task::{Runnable, Schedule, Task};

/// [`async_task::spawn`] whose task runs inside a copy of the caller's
/// context.
///
/// ```
/// use contextvars::async_task::spawn_with_context;
/// use contextvars::ContextVar;
///
/// static USER: ContextVar<u32> = ContextVar::new("user");
///
/// let (runnable, task) = USER.scope(7, || spawn_with_context(async { USER.get() }, |_| {}));
/// runnable.run();
/// assert_eq!(futures::executor::block_on(task), Some(7));
/// ```
pub fn spawn_with_context<F, S>(future: F, schedule: S) -> (Runnable, Task<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule + Send + Sync + 'static,
{
    ::async_task::spawn(crate::capture::task(future), schedule)
}

/// [`async_task::spawn_local`] whose `!Send` task runs inside a copy of
/// the caller's context.
///
/// ```
/// use contextvars::async_task::spawn_local_with_context;
/// use contextvars::ContextVar;
///
/// static USER: ContextVar<u32> = ContextVar::new("user");
///
/// let not_send = std::rc::Rc::new(1);
/// let (runnable, task) =
///     USER.scope(7, || spawn_local_with_context(async move { (*not_send, USER.get()) }, |_| {}));
/// runnable.run();
/// assert_eq!(futures::executor::block_on(task), (1, Some(7)));
/// ```
pub fn spawn_local_with_context<F, S>(future: F, schedule: S) -> (Runnable, Task<F::Output>)
where
    F: Future + 'static,
    F::Output: 'static,
    S: Schedule + Send + Sync + 'static,
{
    ::async_task::spawn_local(crate::capture::task(future), schedule)
}
