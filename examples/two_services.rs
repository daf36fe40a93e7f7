//! Two services on loopback: `frontend` calls `inventory` through the client layer, and the
//! request id and a baggage variable cross the hop.
//!
//! `cargo run --example two_services --features tower,tokio`

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use contextvars::tower::{ClientContextLayer, ContextLayer, Propagation, Trust, REQUEST_ID};
use contextvars::ContextVar;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};

static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();

/// Both services agree on what travels: the request id, and `TENANT` as baggage `tenant`.
fn propagation() -> Propagation {
    Propagation::builder()
        .baggage_str(&TENANT, "tenant")
        .inbound(Trust::Trusted)
        .outbound(Trust::Trusted)
        .build()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn text(
    body: impl axum::body::HttpBody<Data = Bytes, Error = impl std::fmt::Debug>,
) -> String {
    String::from_utf8_lossy(&body.collect().await.unwrap().to_bytes()).into_owned()
}

#[tokio::main]
async fn main() {
    let inventory = Router::new()
        .route(
            "/stock",
            get(|| async {
                let (id, tenant) = (REQUEST_ID.get(), TENANT.get());
                println!("inventory: request_id={id:?} tenant={tenant:?}");
                "42 in stock"
            }),
        )
        .layer(ContextLayer::new(propagation()));
    let inventory_addr = serve(inventory).await;

    // hyper-util's client, with the current context written into every request.
    let client = ClientContextLayer::new(propagation())
        .layer(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    let frontend = Router::new()
        .route(
            "/order",
            get(move || {
                let client = client.clone();
                async move {
                    println!(
                        "frontend:  request_id={:?} tenant={:?}",
                        REQUEST_ID.get(),
                        TENANT.get()
                    );
                    let request = Request::get(format!("http://{inventory_addr}/stock"))
                        .body(Empty::new())
                        .unwrap();
                    let response = client.oneshot(request).await.unwrap();
                    format!("frontend got: {}", text(response.into_body()).await)
                }
            }),
        )
        .layer(ContextLayer::new(propagation()));
    let frontend_addr = serve(frontend).await;

    // A caller from outside, with an id and baggage; then one with no headers at all.
    let outside = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for headers in [
        vec![("x-request-id", "req-abc"), ("baggage", "tenant=acme")],
        vec![],
    ] {
        let mut request = Request::get(format!("http://{frontend_addr}/order"));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = outside
            .request(request.body(Empty::new()).unwrap())
            .await
            .unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        println!(
            "caller:    x-request-id: {id}, body: {}\n",
            text(response.into_body()).await
        );
    }
}
