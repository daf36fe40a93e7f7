//! Context variables that follow your work: request ids, user ids and trace context that survive
//! `.await`, spawned tasks on any executor, blocking pools and threads.
//!
//! Python has [`contextvars`](https://docs.python.org/3/library/contextvars.html); this is the
//! same idea for Rust, runtime-agnostic and cheap enough to use on every task.
//!
//! # Overview
//!
//! A [`ContextVar<T>`] is a typed key, usually a `static`. Its value lives in a [`Context`], an
//! immutable snapshot that is O(1) to capture and clone. Each thread has a current context;
//! [`ContextVar::get`] reads from it and [`ContextVar::set`] changes it for the current *frame*
//! only.
//!
//! ```
//! use contextvars::ContextVar;
//!
//! static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
//!
//! REQUEST_ID.scope("req-123".to_string(), || {
//!     assert_eq!(REQUEST_ID.get().as_deref(), Some("req-123"));
//! });
//! assert_eq!(REQUEST_ID.get(), None);
//! ```
//!
//! A future carries a context with [`ContextExt::with_current_context`]: the context is
//! installed on every poll, on whichever thread the executor polls it.
//!
//! ```
//! # mod tokio { pub fn spawn(_: impl std::future::Future) {} }
//! use contextvars::{ContextExt, ContextVar};
//!
//! static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
//!
//! async fn background_work() {
//!     assert_eq!(REQUEST_ID.get().as_deref(), Some("req-123"));
//! }
//!
//! REQUEST_ID.scope("req-123".to_string(), || {
//!     tokio::spawn(background_work().with_current_context());
//! });
//! ```
//!
//! Threads spawned through [`thread`] see the caller's context; any other pool gets it through
//! [`Context::wrap`]:
//!
//! ```
//! use contextvars::{thread, ContextVar};
//!
//! static USER_ID: ContextVar<u64> = ContextVar::new("user_id");
//!
//! USER_ID.scope(789, || {
//!     let seen = thread::spawn_with_context(|| USER_ID.get()).join().unwrap();
//!     assert_eq!(seen, Some(789));
//! });
//! ```
//!
//! Children get a copy: what they set never reaches their parent or their siblings.
//!
//! ```
//! use contextvars::{ContextExt, ContextVar};
//!
//! static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");
//!
//! REQUEST_ID.set("parent-value");
//! let child = async { REQUEST_ID.set("child-override") }.with_current_context();
//! futures::executor::block_on(child);
//! assert_eq!(REQUEST_ID.get(), Some("parent-value"));
//! ```
//!
//! # Frames
//!
//! [`ContextVar::set`] changes the innermost of: the [`WithContext`] future being polled, the
//! closure of [`Context::run`] / [`ContextVar::scope`], or else the thread itself. A frame ends by
//! putting back exactly the context it found, even when it panics.
//!
//! # Isolation
//!
//! One request's values never reach another's task:
//!
//! - a [`Context::attach`] guard never outlives the frame it was attached in;
//! - a context's values are dropped in a frame of their own, with the empty context current, so
//!   nothing their destructors set survives them;
//! - a `set` (or `attach`) with no frame of the crate around it, in a runtime's task or a
//!   pool's job, would stay on the worker thread for the next, unrelated task: it is refused
//!   ([`ContextVar::set`] panics, [`ContextVar::try_set`] returns an [`AccessError`] naming
//!   the fix). On a thread you own, outside any runtime's task, the thread's own top level
//!   accepts values.
//!
//! With `RUSTFLAGS="--cfg tokio_unstable"`, a tokio runtime built with
//! `contextvars::tokio::RuntimeBuilderExt::propagate_context` gives every plain `tokio::spawn`
//! its spawner's context; see the `contextvars::tokio` module (feature `tokio`).
//!
//! # Never forget a spawn
//!
//! A task, pool job or thread started with the runtime's own `spawn` runs in the worker's
//! context, normally empty, not in the caller's: one spawn written without its `_with_context`
//! helper and that work loses the request id. Clippy can report every such call in your code. The
//! README's section "Never forget a spawn" has the whole `clippy.toml` to copy (in the
//! repository: `tests/fixtures/clippy-recipe/clippy.toml`, on which CI checks that clippy
//! reports each entry). An excerpt:
//!
//! ```toml
//! disallowed-methods = [
//!     { path = "tokio::task::spawn", reason = "loses the caller's context: use contextvars::tokio::spawn_with_context" },
//!     { path = "std::thread::spawn", reason = "loses the caller's context: use contextvars::thread::spawn_with_context, or run_in_pool_with_context for a result" },
//!     # ... one entry for every raw spawn of tokio, async-std, smol, rayon and std threads
//! ]
//! await-holding-invalid-types = [
//!     { path = "contextvars::ContextGuard", reason = "an attached context must not live across .await: give the future its context with .with_context(..) (contextvars::ContextExt)" },
//! ]
//! ```
//!
//! Clippy then warns at each raw call with the reason as a note, for example
//! `use of a disallowed method tokio::task::spawn` (also when the call is spelled
//! `tokio::spawn`), `note: loses the caller's context: use contextvars::tokio::spawn_with_context`.
//! It sees only your own crates: spawns inside your dependencies are not reported.
//!
//! # Feature flags
//!
//! - `macros` (default): [`#[preserve_context]`](macro@preserve_context) for `async fn`s.
//! - `tokio`, `async-std`, `smol`, `futures`, `async-task`: spawn with context on those runtimes
//!   and executors (modules of the same names, `async_std` and `async_task` with underscores).
//! - `rayon`: rayon pools, entry points and parallel iterators with context
//!   (`run_in_pool_with_context`, `join_with_context`, `par_iter().with_current_context()`).
//! - `tower`: a fresh context for every request on tower servers (axum, hyper, tonic), with its
//!   request id and W3C baggage, and a client layer that carries them to the next service.
//! - `reqwest`: a `reqwest-middleware` middleware that sends the current context's request id
//!   and baggage.
//! - `async-nats`: NATS publish and request with the current context in the message headers,
//!   and subscriptions whose messages are each handled in the context they brought.
//!
//! The request id and W3C Baggage rules themselves need no feature: [`propagation`] reads and
//! writes them over any carrier of string headers, and the three integrations above use it.
//! - `tracing`: context fields on every log line, and spans that travel with the context into
//!   every spawn of every adapter.
//! - `log`: a wrapper around any [`log`](https://docs.rs/log) logger that adds the context's
//!   fields to every record as key-values (env_logger, log4rs, fern, JSON loggers).
//! - `actix-web`: a middleware giving every actix-web request a fresh context with its request
//!   id and W3C baggage (the rules of the `tower` feature, which it does not need), and
//!   `spawn_with_context` / `block_with_context` for `actix_web::rt::spawn` and `web::block`.
//! - `opentelemetry`: OpenTelemetry's current `Context` (span, baggage, values) carried into
//!   every spawn of every adapter beside the context; on every carrier of the propagation
//!   (`tower`, `actix-web`, `reqwest`, `async-nats`), W3C Trace Context (`traceparent`,
//!   `tracestate`) on the wire and OTel baggage in agreement with the registered variables,
//!   within the same trust boundaries.
//!
//! # Minimum supported Rust version
//!
//! Rust 1.86.
//!
//! [`thread`]: crate::thread

// `unsafe` is denied everywhere but in `raw`, the one module allowed it (see its docs).
#![deny(unsafe_code)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod ambient;
mod capture;
mod context;
mod debug_value;
#[cfg(any(feature = "tracing", feature = "log"))]
mod fields;
mod future;
mod integrations;
mod job;
mod map;
pub mod propagation;
#[allow(unsafe_code)]
mod raw;
mod state;
mod var;

#[path = "../adapters/thread.rs"]
pub mod thread;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[path = "../adapters/tokio.rs"]
pub mod tokio;

#[cfg(feature = "async-std")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-std")))]
#[path = "../adapters/async_std.rs"]
pub mod async_std;

#[cfg(feature = "smol")]
#[cfg_attr(docsrs, doc(cfg(feature = "smol")))]
#[path = "../adapters/smol.rs"]
pub mod smol;

#[cfg(feature = "futures")]
#[cfg_attr(docsrs, doc(cfg(feature = "futures")))]
#[path = "../adapters/futures.rs"]
pub mod futures;

#[cfg(feature = "async-task")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-task")))]
#[path = "../adapters/async_task.rs"]
pub mod async_task;

#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
#[path = "../adapters/tracing.rs"]
pub mod tracing;

#[cfg(feature = "log")]
#[cfg_attr(docsrs, doc(cfg(feature = "log")))]
#[path = "../adapters/log.rs"]
pub mod log;

/// `http::HeaderMap` as a carrier, and what the tower and reqwest clients share.
#[cfg(any(feature = "tower", feature = "reqwest"))]
#[path = "../adapters/http.rs"]
mod http;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
#[path = "../adapters/tower.rs"]
pub mod tower;

#[cfg(feature = "actix-web")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix-web")))]
#[path = "../adapters/actix_web.rs"]
pub mod actix_web;

#[cfg(feature = "rayon")]
#[cfg_attr(docsrs, doc(cfg(feature = "rayon")))]
#[path = "../adapters/rayon.rs"]
pub mod rayon;

#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
#[path = "../adapters/reqwest.rs"]
pub mod reqwest;

#[cfg(feature = "async-nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-nats")))]
#[path = "../adapters/async_nats.rs"]
pub mod async_nats;

#[cfg(feature = "opentelemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
#[path = "../adapters/opentelemetry.rs"]
pub mod opentelemetry;

/// The README's Rust code blocks, compiled and run as doc tests so that they cannot drift from
/// the API. They use the `tokio`, `tower`, `tracing`, `log`, `actix-web`, `reqwest`,
/// `async-nats` and `opentelemetry` adapters, so they are tested when those features are on
/// (`cargo test --all-features`, as CI runs it).
#[cfg(all(
    doctest,
    feature = "tokio",
    feature = "tower",
    feature = "tracing",
    feature = "log",
    feature = "actix-web",
    feature = "reqwest",
    feature = "async-nats",
    feature = "opentelemetry"
))]
#[doc(test(attr(allow(unused_variables))))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use crate::context::{Context, ContextGuard, Entry, Iter};
pub use crate::debug_value::DebugValue;
pub use crate::future::{ContextExt, ScopedFuture, WithContext};
pub use crate::job::JobHandle;
pub use crate::var::{AccessError, ContextVar, VarKey};

/// Makes an `async fn` carry the context of its call site.
///
/// The function captures [`Context::current`] when it is *called* and runs its body inside that
/// context, so the future keeps it wherever it is spawned or polled later: the counterpart of
/// Python's `@preserve_context` decorator. It is the same as calling
/// [`.with_current_context()`](ContextExt::with_current_context) on every call's future (and,
/// with the `tracing` feature, entering the span current at the call, and with `opentelemetry`,
/// attaching the OTel context current at the call, like the adapters do).
///
/// It works on free functions and methods (`&self`, `&mut self`, `self`, `self: Box<Self>`),
/// generic or not: inherent methods, methods in an `impl Trait for Type` block (for a trait's
/// `async fn` or `fn .. -> impl Future`), and default bodies written in a trait. The future is
/// `Send` whenever the body's future is. A method declared in a trait without a body has nothing
/// to wrap: the attribute goes on each implementation instead, and the compile error says so.
///
/// # Examples
///
/// ```
/// use contextvars::{preserve_context, ContextVar};
///
/// static USER_ID: ContextVar<String> = ContextVar::new("user_id");
///
/// #[preserve_context]
/// async fn worker() -> Option<String> {
///     USER_ID.get()
/// }
///
/// let fut = USER_ID.scope("user-789".into(), worker); // called in the scope...
/// let seen = futures::executor::block_on(fut); // ...polled outside it
/// assert_eq!(seen.as_deref(), Some("user-789"));
/// ```
///
/// On a trait's methods, in the implementation:
///
/// ```
/// use contextvars::{preserve_context, ContextVar};
///
/// static USER_ID: ContextVar<String> = ContextVar::new("user_id");
///
/// trait Handler {
///     fn handle(&self, path: &str) -> impl std::future::Future<Output = String> + Send;
/// }
///
/// struct Orders;
///
/// impl Handler for Orders {
///     #[preserve_context]
///     async fn handle(&self, path: &str) -> String {
///         format!("{path} for {}", USER_ID.get().unwrap_or_default())
///     }
/// }
///
/// let fut = USER_ID.scope("user-789".into(), || Orders.handle("/orders"));
/// assert_eq!(futures::executor::block_on(fut), "/orders for user-789");
/// ```
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use contextvars_macros::preserve_context;

/// Not public API: used by `#[preserve_context]`'s expansion.
#[doc(hidden)]
pub mod __private {
    /// The call site's context (and, with the `tracing` and `opentelemetry` features, its span and
    /// OTel context) for the future.
    #[inline]
    pub fn preserve<F: std::future::Future>(
        future: F,
    ) -> impl std::future::Future<Output = F::Output> {
        crate::capture::task(future)
    }

    /// Lets an `impl Trait` return type capture a lifetime without outliving it.
    pub trait Captures<'a> {}
    impl<T: ?Sized> Captures<'_> for T {}
}
