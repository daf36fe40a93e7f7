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
