//! Auto traits of the public types.

use contextvars::{AccessError, Context, ContextVar, Entry, WithContext};

fn send_sync<T: Send + Sync>() {}
fn clone_debug_default<T: Clone + std::fmt::Debug + Default>() {}

#[test]
fn public_types_have_the_documented_auto_traits() {
    send_sync::<Context>();
    clone_debug_default::<Context>();
    send_sync::<ContextVar<String>>();
    // The type is, whatever `T`; `ContextVar::new` is what refuses values that are not
    // (`ui-tests/tests/ui/value_not_send_sync.rs`).
    send_sync::<ContextVar<std::cell::Cell<u8>>>();
    send_sync::<WithContext<std::future::Ready<u8>>>();
    send_sync::<AccessError>();
    send_sync::<Entry<'static>>();
    fn is_error<E: std::error::Error + Send + Sync + 'static>() {}
    is_error::<AccessError>();
}

// `ContextGuard` is `!Send`: that is checked by a `compile_fail` doctest on `ContextGuard`
// itself (doc comments in integration tests are never compiled).

/// `HttpServer::new` takes a `Send + Clone` factory: the middleware is built outside it and
/// cloned into every worker's `App`.
#[cfg(feature = "actix-web")]
#[test]
fn the_actix_web_middleware_can_be_shared_by_every_worker() {
    fn send_sync_clone_debug<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    send_sync_clone_debug::<contextvars::actix_web::ContextMiddleware>();
}
