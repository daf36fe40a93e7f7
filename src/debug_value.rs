use std::fmt;

/// What [`ContextVar::new`](crate::ContextVar::new) asks of its values: that they print, with
/// `Debug` (in [`Context`](crate::Context)'s `Debug` output and in logging integrations).
///
/// Implemented for every `T: Debug`, and for nothing else. It exists for the compile error of a
/// value without `Debug`, which then names both ways out: `ContextVar::opaque(name)` for a value
/// that must never be logged (a secret, a token), and a `Debug` implementation for a value that
/// may be, written by hand where some of it must stay out of logs, rather than a blanket
/// `#[derive(Debug)]`.
///
/// # Examples
///
/// ```
/// use contextvars::{ContextVar, DebugValue};
///
/// fn printable<T: DebugValue>(_: &ContextVar<T>) {}
///
/// static USER_ID: ContextVar<u64> = ContextVar::new("user_id");
/// printable(&USER_ID);
/// ```
///
/// A value without `Debug` goes in a variable made with
/// [`ContextVar::opaque`](crate::ContextVar::opaque); `ContextVar::new` does not compile:
///
/// ```compile_fail
/// use contextvars::ContextVar;
///
/// struct ApiKey(String); // no `Debug`: keep it out of logs
///
/// static API_KEY: ContextVar<ApiKey> = ContextVar::new("api_key"); // error: use `opaque`
/// # fn main() { let _ = API_KEY.get().map(|key| key.0); }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement `Debug`, which `ContextVar::new` needs to print values",
    label = "`ContextVar::new` prints its values with `Debug`",
    note = "for a value that must never be logged (a secret, a token), declare the variable with \
            `ContextVar::opaque(name)`: it needs no `Debug`, and nothing prints its values",
    note = "for a value that may be logged, implement `Debug`, by hand if some of it must stay \
            out of logs"
)]
pub trait DebugValue: fmt::Debug {}

impl<T: fmt::Debug + ?Sized> DebugValue for T {}

/// What every [`ContextVar`](crate::ContextVar) asks of its values: `Send + Sync + 'static`.
///
/// A context is shared, not copied: the tasks, pool jobs and threads that a request spawns read
/// the same values, on whichever thread runs them, and may keep them as long as they run. So a
/// value must be `Send` and `Sync`, and borrow nothing. Implemented for every such type, and
/// for nothing else; [`ContextVar::new`](crate::ContextVar::new) and
/// [`ContextVar::opaque`](crate::ContextVar::opaque) ask for it, so that a variable of another
/// type fails to compile where it is declared, with the reason, rather than at each use.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use contextvars::ContextVar;
///
/// static USER: ContextVar<Arc<String>> = ContextVar::new("user"); // `Arc`, not `Rc`
///
/// let seen = USER.scope(Arc::new("ada".into()), || USER.get());
/// assert_eq!(seen.as_deref().map(String::as_str), Some("ada"));
/// ```
///
/// ```compile_fail,E0277
/// use std::rc::Rc;
/// use contextvars::ContextVar;
///
/// static USER: ContextVar<Rc<String>> = ContextVar::new("user"); // error: not `Send + Sync`
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the value of a `ContextVar`: it is not `Send + Sync`",
    label = "the values of this variable must be `Send + Sync`",
    note = "a context is shared by the tasks, jobs and threads it is handed to, on any thread: \
            its values must be `Send + Sync + 'static`",
    note = "use a thread-safe type instead: `Arc` for `Rc`, `Mutex` or an atomic for \
            `Cell`/`RefCell`, an owned value for a borrowed one"
)]
pub trait ContextValue: Send + Sync + 'static {}

impl<T: Send + Sync + 'static> ContextValue for T {}
