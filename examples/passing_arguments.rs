//! The Python contextvars guide's "Passing Arguments": the closure captures them, and the result comes back
//! through the join handle.
//!
//! `cargo run --example passing_arguments --features tokio`

use contextvars::tokio::spawn_blocking_with_context;
use contextvars::ContextVar;

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");

#[derive(Debug)]
struct Status {
    item_id: String,
    priority: u8,
    request_id: Option<String>,
}

fn process_item(item_id: &str, priority: u8) -> Status {
    println!(
        "processing item_id={item_id} request_id={:?}",
        REQUEST_ID.get()
    );
    Status {
        item_id: item_id.to_string(),
        priority,
        request_id: REQUEST_ID.get(),
    }
}

#[tokio::main]
async fn main() {
    let item_id = String::from("item-123");
    let job = REQUEST_ID.scope("req-456".into(), || {
        spawn_blocking_with_context(move || process_item(&item_id, 1))
    });
    let status = job.await.expect("the job panicked");
    println!("result: {status:?}");
    assert_eq!(status.request_id.as_deref(), Some("req-456"));
    assert_eq!((status.item_id.as_str(), status.priority), ("item-123", 1));
}
