//! Auto traits of the public types.

use contextvars::{AccessError, Context, ContextGuard, ContextVar, Entry, WithContext};

fn send_sync<T: Send + Sync>() {}
fn clone_debug_default<T: Clone + std::fmt::Debug + Default>() {}

#[test]
fn public_types_have_the_documented_auto_traits() {
    send_sync::<Context>();
    clone_debug_default::<Context>();
    send_sync::<ContextVar<String>>();
    // A variable of a !Sync type can still be a static (its values never are shared).
    send_sync::<ContextVar<std::cell::Cell<u8>>>();
    send_sync::<WithContext<std::future::Ready<u8>>>();
    send_sync::<AccessError>();
    send_sync::<Entry<'static>>();
    fn is_error<E: std::error::Error + Send + Sync + 'static>() {}
    is_error::<AccessError>();
}

/// `ContextGuard` must stay on its thread: this would not compile.
/// ```compile_fail
/// fn send<T: Send>() {}
/// send::<contextvars::ContextGuard>();
/// ```
#[allow(dead_code)]
fn guard_is_not_send(_: ContextGuard) {}
