//! The Python contextvars guide's "With Task Names", on tokio.
//!
//! tokio names tasks only when built with `RUSTFLAGS="--cfg tokio_unstable"` and its `tracing`
//! feature (its `task::Builder`); then this example uses `spawn_named_with_context`. Either way, a name that
//! your logs can carry is just one more context variable.
//!
//! `cargo run --example task_names --features tokio`
//! `RUSTFLAGS="--cfg tokio_unstable" cargo run --example task_names --features tokio,tracing`

use contextvars::tokio::spawn_with_context;
use contextvars::ContextVar;

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
static TASK_NAME: ContextVar<&'static str> = ContextVar::new("task_name");

async fn background_work() {
    println!(
        "task_name={:?} request_id={:?}",
        TASK_NAME.get(),
        REQUEST_ID.get()
    );
}

#[tokio::main]
async fn main() {
    let task = REQUEST_ID.scope("req-123".into(), || {
        TASK_NAME.scope(
            "process-order-123",
            || spawn_with_context(background_work()),
        )
    });
    task.await.unwrap();

    #[cfg(all(tokio_unstable, feature = "tracing"))]
    {
        let named = REQUEST_ID.scope("req-124".into(), || {
            contextvars::tokio::spawn_named_with_context("process-order-124", background_work())
        });
        named.expect("spawn").await.unwrap();
        println!("(also named process-order-124 for tokio-console)");
    }
}
