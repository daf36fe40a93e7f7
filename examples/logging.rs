//! The Python contextvars guide's first three sections with `tracing`: every log line inside a request carries its
//! request id, in the parent, in the task spawned with the helper, in the blocking job and in the
//! decorated function; the task spawned without the helper has none.
//!
//! `cargo run --example logging --features tokio,tracing`

use std::io::IsTerminal;

use contextvars::tokio::{spawn_blocking_with_context, spawn_with_context};
use contextvars::tracing::{ContextFields, ContextFormat};
use contextvars::{preserve_context, ContextVar};
use tracing::{info, info_span, Instrument};

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id").with_display();

async fn background_work() {
    info!("background task");
}

fn sync_work(item_id: &str) -> usize {
    info!(item_id, "sync work in the blocking pool");
    item_id.len()
}

#[preserve_context]
async fn worker() {
    info!("decorated worker");
}

#[tokio::main]
async fn main() {
    // Colors on a terminal only, and never with `NO_COLOR` set.
    let color = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    tracing_subscriber::fmt()
        .with_ansi(color)
        .with_target(false)
        .without_time()
        .map_fmt_fields(ContextFields::new) // the set-up: these two lines,
        .map_event_format(ContextFormat::new) // after the format's options
        .init();

    let request = async {
        info!("main task");
        let without = tokio::spawn(background_work()); // context (and span) lost
        let with = spawn_with_context(background_work());
        let blocking = spawn_blocking_with_context(|| sync_work("item-123"));
        let decorated = tokio::spawn(worker());
        let (a, b, c, d) = tokio::join!(without, with, blocking, decorated);
        a.unwrap();
        b.unwrap();
        assert_eq!(c.unwrap(), 8);
        d.unwrap();
    }
    .instrument(info_span!("request", path = "/orders"));

    REQUEST_ID.scope_future("req-123".into(), request).await;
    info!("after the request");
}
