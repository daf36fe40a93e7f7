//! The Python contextvars guide's "Context Isolation": each task gets a copy; what a child sets never reaches the
//! parent.
//!
//! `cargo run --example isolation --features tokio`

use contextvars::tokio::spawn_with_context;
use contextvars::ContextVar;

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");

async fn child_task() {
    // This modification is local to the child.
    REQUEST_ID.set("child-override".into());
    println!("child sees  {:?}", REQUEST_ID.get());
}

#[tokio::main]
async fn main() {
    // `#[tokio::main]` runs this body with `block_on` on the main thread, outside any frame:
    // `set` changes the main thread's own context.
    REQUEST_ID.set("parent-value".into());
    spawn_with_context(child_task()).await.unwrap();
    println!("parent sees {:?}", REQUEST_ID.get());
    assert_eq!(REQUEST_ID.get().as_deref(), Some("parent-value"));
}
