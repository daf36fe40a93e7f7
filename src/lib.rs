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
//! use contextvars::prelude::*;
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
//! installed on every poll, on whichever thread the executor polls it. The [`prelude`] brings
//! the extension traits such methods come from, with the types.
//!
//! ```
//! # mod tokio { pub fn spawn(_: impl std::future::Future) {} }
//! use contextvars::prelude::*;
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
//! use contextvars::prelude::*;
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
//!   the runtime and the fix). On a thread you own, outside any runtime's task, the thread's own
//!   top level accepts values. A runtime or pool of your own gets the same protection through
//!   [`executor`].
//!
//! # Never forget a spawn
//!
//! A task, pool job or thread started with the runtime's own `spawn` runs in the worker's
//! context, normally empty, not in the caller's: one spawn written without its `_with_context`
//! helper and that work loses the request id. Nothing fails; the log lines just stop carrying it.
//! On tokio, with `RUSTFLAGS="--cfg tokio_unstable"`, a runtime built with
//! `contextvars::tokio::RuntimeBuilderExt::propagate_context` gives every plain `tokio::spawn` its
//! spawner's context (see the `contextvars::tokio` module, feature `tokio`). With any runtime and
//! stable Rust, clippy can report each such call in your code.
//!
//! This `clippy.toml` forbids, through `disallowed-methods`, every raw spawn path that an adapter of
//! this crate covers (tokio, async-std, smol, rayon, std threads), each with a `reason` naming the
//! helper to call instead, and, through `await-holding-invalid-types`, a [`ContextGuard`] held
//! across `.await`. Put it next to your `Cargo.toml` (or at your workspace root), merging its two
//! lists into any you already have; in the repository it is
//! `tests/fixtures/clippy-recipe/clippy.toml`.
//!
//! ```toml
//! # contextvars: never forget a spawn. Every raw spawn below starts its work in the worker's
//! # (empty) context instead of the caller's; clippy points each one at the helper that keeps it.
//! # Paths of crates you do not depend on are skipped silently, so the whole file can be copied.
//! disallowed-methods = [
//!     # tokio (feature `tokio`)
//!     { path = "tokio::task::spawn", reason = "loses the caller's context: use contextvars::tokio::spawn_with_context" },
//!     { path = "tokio::task::spawn_local", reason = "loses the caller's context: use contextvars::tokio::spawn_local_with_context" },
//!     { path = "tokio::task::spawn_blocking", reason = "loses the caller's context: use contextvars::tokio::spawn_blocking_with_context" },
//!     { path = "tokio::runtime::Runtime::spawn", reason = "loses the caller's context: use contextvars::tokio::RuntimeExt::spawn_with_context" },
//!     { path = "tokio::runtime::Runtime::spawn_blocking", reason = "loses the caller's context: use contextvars::tokio::RuntimeExt::spawn_blocking_with_context" },
//!     { path = "tokio::runtime::Handle::spawn", reason = "loses the caller's context: use contextvars::tokio::RuntimeExt::spawn_with_context" },
//!     { path = "tokio::runtime::Handle::spawn_blocking", reason = "loses the caller's context: use contextvars::tokio::RuntimeExt::spawn_blocking_with_context" },
//!     { path = "tokio::task::JoinSet::spawn", reason = "loses the caller's context: use contextvars::tokio::JoinSetExt::spawn_with_context" },
//!     { path = "tokio::task::JoinSet::spawn_blocking", reason = "loses the caller's context: use contextvars::tokio::JoinSetExt::spawn_blocking_with_context" },
//!     { path = "tokio::task::JoinSet::spawn_local", reason = "loses the caller's context: use contextvars::tokio::JoinSetExt::spawn_local_with_context" },
//!     # async-std (feature `async-std`)
//!     { path = "async_std::task::spawn", reason = "loses the caller's context: use contextvars::async_std::spawn_with_context" },
//!     { path = "async_std::task::spawn_local", reason = "loses the caller's context: use contextvars::async_std::spawn_local_with_context" },
//!     { path = "async_std::task::spawn_blocking", reason = "loses the caller's context: use contextvars::async_std::spawn_blocking_with_context" },
//!     { path = "async_std::task::Builder::spawn", reason = "loses the caller's context: use contextvars::async_std::BuilderExt::spawn_with_context" },
//!     { path = "async_std::task::Builder::local", reason = "loses the caller's context: use contextvars::async_std::BuilderExt::local_with_context" },
//!     # smol (feature `smol`)
//!     { path = "smol::spawn", reason = "loses the caller's context: use contextvars::smol::spawn_with_context" },
//!     { path = "smol::unblock", reason = "loses the caller's context: use contextvars::smol::unblock_with_context" },
//!     { path = "smol::Executor::spawn", reason = "loses the caller's context: use contextvars::smol::ExecutorExt::spawn_with_context" },
//!     { path = "smol::LocalExecutor::spawn", reason = "loses the caller's context: use contextvars::smol::LocalExecutorExt::spawn_local_with_context" },
//!     # rayon (feature `rayon`)
//!     { path = "rayon::spawn", reason = "loses the caller's context: use contextvars::rayon::spawn_with_context, or run_in_global_pool_with_context for a result" },
//!     { path = "rayon::spawn_fifo", reason = "loses the caller's context: use contextvars::rayon::spawn_fifo_with_context" },
//!     { path = "rayon::join", reason = "loses the caller's context: use contextvars::rayon::join_with_context" },
//!     { path = "rayon::scope", reason = "loses the caller's context: use contextvars::rayon::scope_with_context" },
//!     { path = "rayon::scope_fifo", reason = "loses the caller's context: use contextvars::rayon::scope_fifo_with_context" },
//!     { path = "rayon::Scope::spawn", reason = "loses the caller's context: use contextvars::rayon::ScopeExt::spawn_with_context" },
//!     { path = "rayon::ScopeFifo::spawn_fifo", reason = "loses the caller's context: use contextvars::rayon::ScopeFifoExt::spawn_fifo_with_context" },
//!     { path = "rayon::ThreadPool::install", reason = "loses the caller's context: use contextvars::rayon::ThreadPoolExt::install_with_context" },
//!     { path = "rayon::ThreadPool::spawn", reason = "loses the caller's context: use contextvars::rayon::ThreadPoolExt::spawn_with_context, or run_in_pool_with_context for a result" },
//!     { path = "rayon::ThreadPool::spawn_fifo", reason = "loses the caller's context: use contextvars::rayon::ThreadPoolExt::spawn_fifo_with_context" },
//!     { path = "rayon::ThreadPool::join", reason = "loses the caller's context: use contextvars::rayon::ThreadPoolExt::join_with_context" },
//!     { path = "rayon::ThreadPool::scope", reason = "loses the caller's context: use contextvars::rayon::ThreadPoolExt::scope_with_context" },
//!     { path = "rayon::ThreadPool::scope_fifo", reason = "loses the caller's context: use contextvars::rayon::ThreadPoolExt::scope_fifo_with_context" },
//!     # std threads (no feature needed)
//!     { path = "std::thread::spawn", reason = "loses the caller's context: use contextvars::thread::spawn_with_context, or run_in_pool_with_context for a result" },
//!     { path = "std::thread::Builder::spawn", reason = "loses the caller's context: use contextvars::thread::BuilderExt::spawn_with_context" },
//!     { path = "std::thread::Builder::spawn_scoped", reason = "loses the caller's context: use contextvars::thread::BuilderExt::spawn_scoped_with_context" },
//!     { path = "std::thread::Scope::spawn", reason = "loses the caller's context: use contextvars::thread::ScopeExt::spawn_with_context" },
//! ]
//! await-holding-invalid-types = [
//!     { path = "contextvars::ContextGuard", reason = "an attached context must not live across .await: give the future its context with .with_context(..) (contextvars::ContextExt)" },
//! ]
//! ```
//!
//! `cargo clippy` then reports each raw call, with its `reason` as a note. A call through a
//! re-export is reported under the path the recipe names:
//!
//! ```text
//! warning: use of a disallowed method `tokio::task::spawn`
//!   --> src/orders.rs:42:5
//!    |
//! 42 |     tokio::spawn(send_receipt(order));
//!    |     ^^^^^^^^^^^^
//!    |
//!    = note: loses the caller's context: use contextvars::tokio::spawn_with_context
//! ```
//!
//! - **One file for every project.** Clippy skips, silently, the entries of crates that are not in
//!   your dependency graph, so the file works as is whichever runtimes you use. An entry of a crate
//!   you *do* depend on that names nothing reachable is reported on `clippy.toml` itself by clippy
//!   1.95 ("does not refer to a reachable function"); older releases may ignore it silently, which
//!   is why CI proves every entry (below). async-std's `spawn_local` and `spawn_blocking` exist only
//!   with its `unstable` feature, which this crate's `async-std` feature turns on; without it, drop
//!   those two lines.
//! - **Make it fail the build**: `disallowed_methods = "deny"` and
//!   `await_holding_invalid_type = "deny"` under `[lints.clippy]` in your `Cargo.toml`, or `-D` for
//!   each in the CI's `cargo clippy` command.
//! - **A raw spawn you mean** (a task that should start with no context, or a future you already
//!   wrapped with `.with_current_context()`): put `#[expect(clippy::disallowed_methods)]` on that
//!   statement or function.
//! - **Start-up spawns**: a server, a subscriber loop or an exporter started in `main`, before
//!   any request, has no request's context to lose. One line above each says so (CI proves that
//!   clippy then reports nothing there):
//!
//!   ```
//!   # async fn start(listener: tokio::net::TcpListener, app: axum::Router) {
//!   #[allow(clippy::disallowed_methods)] // start-up: no request's context to lose
//!   let server = tokio::spawn(async move { axum::serve(listener, app).await });
//!   # drop(server);
//!   # }
//!   # let _ = start;
//!   ```
//!
//!   A NATS message's handler, spawned per message, has a helper of its own:
//!   `message.spawn_handle(handler)` (`contextvars::async_nats::ContextMessage`, with the
//!   `tokio` feature) in place of `tokio::spawn(message.handle(handler))`.
//! - **What it cannot see.** Clippy lints your own crates only: a `tokio::spawn` inside hyper, tower
//!   or sqlx is not reported. Nor are the spawn paths no adapter here covers, which the recipe leaves
//!   out since it has no helper to name: tokio's `LocalSet::spawn_local` and `JoinSet::spawn_on`
//!   (and `spawn_local_on`, `spawn_blocking_on`), smol's `Executor::spawn_many`, rayon's
//!   `broadcast` and `spawn_broadcast`, and the `futures` and `async-task` spawners (use
//!   `ContextSpawner` and `contextvars::async_task`). Give those a future wrapped with
//!   [`.with_current_context()`](ContextExt::with_current_context) or a closure wrapped with
//!   [`Context::current().wrap(..)`](Context::wrap).
//!
//! The recipe is proven, not just shown: in the repository, `tests/fixtures/clippy-recipe` is a
//! small crate whose `src/lib.rs` calls every raw path once, each on a line marked with the path
//! clippy must report there, next to the helper that replaces it, which must not be reported. CI
//! runs `cargo clippy` on it (`cargo test --test clippy_recipe -- --ignored`) and fails unless the
//! reported (line, path) pairs are exactly the marked ones, each with its `reason`, and nothing
//! else is reported. `cargo test --test clippy_recipe` also checks that the block above is that
//! file, byte for byte.
//!
//! # Feature flags
//!
//! Each integration is a module behind a feature named after the crate it supports; the module's
//! docs say what it propagates and what bypasses it.
//!
//! - `macros` (default): [`#[preserve_context]`](macro@preserve_context) for `async fn`s.
//! - `tokio`, `async-std`, `smol`, `futures`, `async-task`: spawn with context on those runtimes
//!   and executors (modules of the same names, `async_std` and `async_task` with underscores).
//! - `rayon`: rayon pools, entry points and parallel iterators with context.
//! - `tower`: a fresh context for every request on tower servers (axum, hyper, tonic), with its
//!   request id and W3C baggage, and a client layer that carries them to the next service.
//! - `actix-web`: the same for actix-web (without `tower`), and spawns on actix's own paths.
//! - `reqwest`: a `reqwest-middleware` middleware that sends the request id and baggage.
//! - `async-nats`: NATS messages that carry the context, each handled in the context it brought.
//! - `tracing`: context fields on every log line, and spans that travel with every spawn.
//! - `log`: context fields on every record of any `log::Log` logger.
//! - `opentelemetry`: OpenTelemetry's `Context` carried into every spawn, and W3C Trace Context on
//!   every transport, within the same trust boundaries.
//!
//! Without any feature: [`thread`] (std threads) and [`propagation`], the request id and W3C
//! Baggage rules over any carrier of string headers, which the transports above use.
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
mod diagnostics;
pub mod executor;
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

/// The `blocking` crate's threads (async-std's `spawn_blocking`, smol's `unblock`).
#[cfg(any(feature = "async-std", feature = "smol"))]
#[path = "../adapters/blocking.rs"]
mod blocking;

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

// What a spawn hands its executor, checked by the compiler: with neither feature, exactly the
// bare `WithContext` (nothing added to every task); with both, the OTel context around the span.
// And what a transport runs a request's future in: without `opentelemetry` the bare future (a
// span never crosses the wire, so `tracing` adds nothing there).
#[cfg(not(feature = "opentelemetry"))]
const _: fn(crate::ambient::RemoteScoped<()>) = |_: ()| {};
#[cfg(not(any(feature = "tracing", feature = "opentelemetry")))]
const _: fn(crate::capture::Task<()>) -> crate::WithContext<()> = |task| task;
#[cfg(all(feature = "tracing", feature = "opentelemetry"))]
const _: fn(
    crate::capture::Task<()>,
) -> crate::WithContext<
    crate::opentelemetry::WithOtelContext<::tracing::instrument::Instrumented<()>>,
> = |task| task;

/// The README's Rust code blocks, compiled and run as doc tests so that they cannot drift from
/// the API. They use the `tokio` and `tracing` adapters, so they are tested when those features
/// are on (`cargo test --all-features`, as CI runs it).
#[cfg(all(doctest, feature = "tokio", feature = "tracing"))]
#[doc(test(attr(allow(unused_variables))))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use crate::context::{Context, ContextGuard, Entry, Iter};
pub use crate::debug_value::{ContextValue, DebugValue};
pub use crate::future::{ContextExt, ScopedFuture, WithContext};
pub use crate::job::JobHandle;
pub use crate::var::{AccessError, ContextVar, VarKey};

/// What a user of the crate needs first, in one import: `use contextvars::prelude::*;`.
///
/// It brings [`ContextVar`], [`Context`] and [`ContextExt`] (without which
/// `.with_current_context()` is "no method named ..."), and, anonymously (in scope for their
/// methods, their names left free), the extension traits of the enabled features:
/// `spawn_with_context` on std thread builders and scopes, tokio runtimes, handles and join
/// sets, rayon pools and scopes, smol executors, async-std task builders and `futures`
/// spawners, and the span and OpenTelemetry variants of `with_current_context`.
///
/// ```
/// use contextvars::prelude::*;
///
/// static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
///
/// let fut = REQUEST_ID.scope("req-1".into(), || async { REQUEST_ID.get() }.with_current_context());
/// assert_eq!(futures::executor::block_on(fut).as_deref(), Some("req-1"));
///
/// // An extension trait, in scope through the prelude: `thread::ScopeExt`.
/// let seen = REQUEST_ID.scope("req-2".into(), || {
///     std::thread::scope(|scope| scope.spawn_with_context(|| REQUEST_ID.get()).join().unwrap())
/// });
/// assert_eq!(seen.as_deref(), Some("req-2"));
/// ```
pub mod prelude {
    pub use crate::{Context, ContextExt, ContextVar};

    pub use crate::thread::{BuilderExt as _, ScopeExt as _};

    #[cfg(feature = "async-std")]
    pub use crate::async_std::BuilderExt as _;
    #[cfg(feature = "futures")]
    pub use crate::futures::{LocalSpawnExt as _, SpawnExt as _};
    #[cfg(feature = "opentelemetry")]
    pub use crate::opentelemetry::OtelContextExt as _;
    #[cfg(feature = "rayon")]
    pub use crate::rayon::{ScopeExt as _, ScopeFifoExt as _, ThreadPoolExt as _};
    #[cfg(feature = "smol")]
    pub use crate::smol::{ExecutorExt as _, LocalExecutorExt as _};
    #[cfg(all(feature = "tokio", tokio_unstable))]
    pub use crate::tokio::RuntimeBuilderExt as _;
    #[cfg(feature = "tokio")]
    pub use crate::tokio::{JoinSetExt as _, RuntimeExt as _};
    #[cfg(feature = "tracing")]
    pub use crate::tracing::SpanContextExt as _;
}

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
