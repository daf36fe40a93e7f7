//! The Python contextvars guide's `run_in_executor_with_context`, on tokio: sync work on the blocking pool sees the
//! caller's context.
//!
//! `cargo run --example run_in_executor --features tokio`

use contextvars::tokio::{spawn_blocking_with_context, RuntimeExt};
use contextvars::ContextVar;

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");

fn sync_work(label: &str) {
    println!(
        "{label:<40} thread={:<24?} request_id={:?}",
        std::thread::current().name().unwrap_or("?"),
        REQUEST_ID.get()
    );
}

#[tokio::main]
async fn main() {
    let handle = tokio::runtime::Handle::current();
    let (default_pool, via_handle, plain) = REQUEST_ID.scope("req-456".into(), || {
        (
            spawn_blocking_with_context(|| sync_work("spawn_blocking_with_context")),
            handle.spawn_blocking_with_context(|| sync_work("Handle::spawn_blocking_with_context")),
            tokio::task::spawn_blocking(|| sync_work("tokio::task::spawn_blocking (no helper)")),
        )
    });
    default_pool.await.unwrap();
    via_handle.await.unwrap();
    plain.await.unwrap();
}
