//! The Python contextvars guide's `@preserve_context` decorator: an `async fn` whose future carries the context of
//! its call site, however it is scheduled.
//!
//! `cargo run --example preserve_context --features tokio`

use contextvars::{preserve_context, ContextVar};

static USER_ID: ContextVar<String> = ContextVar::new("user_id");

#[preserve_context]
async fn worker(n: u32) -> Option<String> {
    tokio::task::yield_now().await;
    println!("worker {n}: user_id={:?}", USER_ID.get());
    USER_ID.get()
}

#[tokio::main]
async fn main() {
    let (a, b, spawned) = USER_ID.scope("user-789".into(), || {
        // Called here, so they carry user-789 wherever they run.
        (worker(1), worker(2), tokio::spawn(worker(3)))
    });
    let (a, b) = tokio::join!(a, b);
    let spawned = spawned.await.unwrap();
    assert!([a, b, spawned]
        .iter()
        .all(|seen| seen.as_deref() == Some("user-789")));
}
