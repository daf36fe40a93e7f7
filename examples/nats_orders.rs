//! One request id from an HTTP request, through NATS, to a worker and its log lines, and back
//! out over HTTP: `POST /orders` publishes the order on NATS; a worker handles each message in
//! the context it brought (request id and tenant) and calls a notification endpoint with reqwest,
//! which carries them on. Every log line of the three hops prints the same `request_id`.
//!
//! `cargo run --example nats_orders --features async-nats,tower,tokio,tracing,reqwest`
//!
//! It starts its own `nats-server` on 127.0.0.1 at a free port (the Debian package
//! `nats-server`; `.ci/test` installs it) and stops it at the end, or uses the server at
//! `NATS_URL` when that is set.

#[path = "../tests/common/nats_server.rs"]
mod nats_server;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use contextvars::async_nats::ContextClient;
use contextvars::propagation::{Propagation, Trust};
use contextvars::reqwest::ContextMiddleware;
use contextvars::tokio::spawn_with_context;
use contextvars::tower::ContextLayer;
use contextvars::tracing::{ContextFields, ContextFormat};
use contextvars::ContextVar;
use futures::StreamExt;
use nats_server::NatsServer;
use reqwest_middleware::ClientWithMiddleware;
use tokio::sync::mpsc;
use tracing::info;

static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();

/// Every hop agrees on what travels: the request id and the tenant. All three are our own
/// services (behind a gateway that replaced what strangers sent), so they trust each other.
fn propagation() -> Propagation {
    Propagation::builder()
        .baggage_str(&TENANT, "tenant")
        .inbound(Trust::Trusted)
        .outbound(Trust::Trusted)
        .build()
}

/// `POST /orders` (hop 1, HTTP): publishes the order on NATS in the request's context.
async fn create_order(State(nats): State<ContextClient>, body: String) -> &'static str {
    info!(order = %body, "api: order received, publishing");
    nats.publish("orders.created", body.into()).await.unwrap();
    "accepted\n"
}

/// `POST /notifications` (hop 3, HTTP again): reports each notification once it is logged.
async fn notify(State(done): State<mpsc::UnboundedSender<()>>, body: String) -> &'static str {
    info!(order = %body, "notifications: sending e-mail");
    done.send(()).unwrap();
    "sent\n"
}

/// The worker (hop 2, NATS): every message handled in its own task and context.
async fn worker(nats: ContextClient, http: ClientWithMiddleware, notifications: SocketAddr) {
    let mut orders = nats.subscribe("orders.created").await.unwrap();
    nats.client().flush().await.unwrap(); // subscribed before the API publishes
    spawn_with_context(async move {
        while let Some(message) = orders.next().await {
            let http = http.clone();
            message.spawn_handle(move |message| async move {
                let order = String::from_utf8_lossy(&message.payload).into_owned();
                info!(%order, "worker: charging card");
                // Work the handler starts keeps the context too.
                spawn_with_context(async { info!("worker: updating stock") })
                    .await
                    .unwrap();
                http.post(format!("http://{notifications}/notifications"))
                    .body(order)
                    .send()
                    .await
                    .unwrap();
            });
        }
    });
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    #[allow(clippy::disallowed_methods)] // start-up: no request's context to lose
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::main]
async fn main() -> ExitCode {
    let color = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    tracing_subscriber::fmt()
        .with_ansi(color)
        .with_target(false)
        .without_time()
        .map_fmt_fields(ContextFields::new)
        .map_event_format(ContextFormat::new) // every line prints request_id=... tenant=...
        .init();

    // Kept until the end of `main`: dropping it stops the server.
    let (url, _server) = match std::env::var("NATS_URL") {
        Ok(url) => (url, None),
        Err(_) => match NatsServer::start() {
            Ok(server) => (server.url.clone(), Some(server)),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    let nats = match async_nats::connect(&url).await {
        Ok(nats) => ContextClient::new(nats, propagation()),
        Err(error) => {
            eprintln!("error: cannot connect to NATS at {url}: {error}");
            return ExitCode::FAILURE;
        }
    };

    let (done, mut notified) = mpsc::unbounded_channel();
    let notifications = serve(
        Router::new()
            .route("/notifications", post(notify))
            .with_state(done)
            .layer(ContextLayer::new(propagation())),
    )
    .await;
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ContextMiddleware::new(propagation()))
        .build();
    worker(nats.clone(), http, notifications).await;
    let api = serve(
        Router::new()
            .route("/orders", post(create_order))
            .with_state(nats)
            .layer(ContextLayer::new(propagation())),
    )
    .await;

    // Two customers' requests, from a client that knows nothing of this crate.
    let client = reqwest::Client::new();
    for (id, tenant, order) in [
        ("req-1001", "acme", "order-1"),
        ("req-1002", "globex", "order-2"),
    ] {
        let response = client
            .post(format!("http://{api}/orders"))
            .header("x-request-id", id)
            .header("baggage", format!("tenant={tenant}"))
            .body(order)
            .send()
            .await
            .unwrap();
        println!(
            "client: {id} -> {} (echoed x-request-id: {:?})",
            response.status(),
            response.headers()["x-request-id"]
        );
    }
    for _ in 0..2 {
        if tokio::time::timeout(Duration::from_secs(30), notified.recv())
            .await
            .ok()
            .flatten()
            .is_none()
        {
            eprintln!("error: an order did not reach the notifications service");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
