//! The Python contextvars guide's `create_task_with_context`, on tokio: a background task sees the request id only
//! when it is spawned with the helper.
//!
//! `cargo run --example create_task --features tokio`

use contextvars::tokio::spawn_with_context;
use contextvars::ContextVar;

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");

async fn background_work(label: &str) {
    println!("{label:<32} request_id={:?}", REQUEST_ID.get());
}

#[tokio::main]
async fn main() {
    let (task1, task2) = REQUEST_ID.scope("req-123".into(), || {
        println!("{:<32} request_id={:?}", "main task", REQUEST_ID.get());
        // Without the helper: the context is lost.
        let task1 = tokio::spawn(background_work("tokio::spawn (no helper)"));
        // With the helper: the context is explicitly preserved.
        let task2 = spawn_with_context(background_work("spawn_with_context"));
        (task1, task2)
    });
    let (first, second) = tokio::join!(task1, task2);
    first.unwrap();
    second.unwrap();
}
