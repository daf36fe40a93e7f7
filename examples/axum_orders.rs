//! The Python contextvars guide's FastAPI section in Rust: `POST /orders` creates an order and starts a background
//! notification that runs after the response is sent; both log lines carry the request id.
//!
//! `cargo run --example axum_orders --features tower,tokio,tracing`, then
//! `curl -si -X POST -H 'x-request-id: req-abc' http://127.0.0.1:3000/orders`
//! (set `PORT` to listen elsewhere). This is an edge service: its callers are not trusted, so
//! every request runs under a fresh id and the caller's `req-abc` is logged beside it as
//! `caller_request_id`.

use std::io::IsTerminal;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use contextvars::tokio::spawn_with_context;
use contextvars::tower::ContextLayer;
use contextvars::tracing::{ContextFields, ContextFormat};
use tracing::info;

async fn send_notification(user_id: &str) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The response is long gone; `request_id` from the request's context is still here.
    info!(user_id, "sending notification");
}

async fn create_order() -> impl IntoResponse {
    info!("creating order");
    // The counterpart of `create_task_with_context`.
    spawn_with_context(send_notification("user-123"));
    (
        [(CONTENT_TYPE, "application/json")],
        r#"{"status":"created"}"#,
    )
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
        .map_fmt_fields(ContextFields::new)
        .map_event_format(ContextFormat::new) // every line prints request_id=...
        .init();

    let app = Router::new()
        .route("/orders", post(create_order))
        .layer(ContextLayer::default()); // a fresh context and a fresh request id per request

    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    info!("listening on http://{}", listener.local_addr().unwrap());
    axum::serve(listener, app).await.unwrap();
}
