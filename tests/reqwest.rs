//! The reqwest middleware (`contextvars::reqwest`) against our own axum server with
//! `ContextLayer` on 127.0.0.1: the id and baggage arrive, concurrent requests from different
//! contexts each carry their own, and a client without the middleware carries nothing.
#![cfg(all(feature = "reqwest", feature = "tower"))]

mod common;

use std::net::SocketAddr;

use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use common::http::{serve, Stop};
use common::propagation::{standard, TENANT};
use contextvars::propagation::{Baggage, Propagation, Trust, REQUEST_ID};
use contextvars::reqwest::ContextMiddleware;
use contextvars::tower::ContextLayer;
use contextvars::{Context, ContextExt, ContextVar};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

/// A server between our own services (both sides trusted: the untrusted side is checked below
/// and in `tests/trust.rs`) that answers with what the request's context holds, and the
/// `baggage` header as it arrived. Stopped when the returned [`Stop`] is dropped.
async fn serve_seen() -> (SocketAddr, Stop) {
    let app = Router::new()
        .route(
            "/seen",
            get(|headers: HeaderMap| async move {
                format!(
                    "{}|{}|{}|{}",
                    REQUEST_ID.get().unwrap_or_default(),
                    TENANT.get().unwrap_or_default(),
                    Baggage::forwarded(),
                    headers
                        .get("baggage")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default(),
                )
            }),
        )
        .layer(ContextLayer::new(standard()));
    serve(app).await
}

fn client() -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(ContextMiddleware::new(standard()))
        .build()
}

async fn fetch(client: &ClientWithMiddleware, addr: SocketAddr) -> Vec<String> {
    let response = client
        .get(format!("http://{addr}/seen"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let echoed = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    let mut parts: Vec<String> = body.split('|').map(str::to_owned).collect();
    parts.push(echoed);
    parts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_id_and_baggage_arrive() {
    let (addr, _stop) = serve_seen().await;
    let client = client();
    // A context as a service receives it, with a member to forward.
    let incoming = std::collections::HashMap::from([
        ("x-request-id".to_string(), "req-1".to_string()),
        (
            "baggage".to_string(),
            "tenant=acme%20corp,other=kept".to_string(),
        ),
    ]);
    let ctx = standard().extract(&incoming);
    let seen = fetch(&client, addr).with_context(ctx).await;
    assert_eq!(
        seen,
        [
            "req-1",
            "acme corp",
            "other=kept",
            "tenant=acme%20corp,other=kept",
            "req-1"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_already_on_the_request_are_kept_after_the_contexts() {
    let (addr, _stop) = serve_seen().await;
    let client = client();
    let ctx = Context::new()
        .with_value(&REQUEST_ID, "req-2".to_string())
        .with_value(&TENANT, "acme".to_string());
    let body = async {
        client
            .get(format!("http://{addr}/seen"))
            .header("baggage", "mine=1,tenant=overridden")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
    .with_context(ctx)
    .await;
    assert_eq!(body, "req-2|acme|mine=1|tenant=acme,mine=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_from_different_contexts_each_carry_their_own() {
    const REQUESTS: usize = 200;
    let (addr, _stop) = serve_seen().await;
    let client = client();
    let calls: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let client = client.clone();
            let id = format!("conc-{i:03}");
            let ctx = Context::new()
                .with_value(&REQUEST_ID, id.clone())
                .with_value(&TENANT, format!("tenant-{}", i % 7));
            tokio::spawn(
                async move {
                    tokio::task::yield_now().await;
                    fetch(&client, addr).await
                }
                .with_context(ctx),
            )
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        let seen = call.await.unwrap();
        let (id, tenant) = (format!("conc-{i:03}"), format!("tenant-{}", i % 7));
        assert_eq!(
            seen,
            [
                id.clone(),
                tenant.clone(),
                String::new(),
                format!("tenant={tenant}"),
                id
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_middleware_or_outside_a_context_nothing_is_carried() {
    let (addr, _stop) = serve_seen().await;
    let ctx = Context::new().with_value(&REQUEST_ID, "req-3".to_string());

    // A plain client: the server generates an id of its own.
    let plain = ClientBuilder::new(reqwest::Client::new()).build();
    let seen = fetch(&plain, addr).with_context(ctx.clone()).await;
    assert_ne!(seen[0], "req-3");
    assert_eq!(seen[0].len(), 32, "{seen:?}");

    // The middleware, in the empty context: nothing to send.
    let seen = fetch(&client(), addr).await;
    assert_eq!(seen[0].len(), 32, "{seen:?}");
    assert_eq!(&seen[1..4], ["", "", ""]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_host_gets_the_request_id_and_public_variables_only() {
    static LOCALE: ContextVar<String> = ContextVar::new("locale").with_display();
    let (addr, _stop) = serve_seen().await;
    let configured = || {
        Propagation::builder()
            .baggage_str(&TENANT, "tenant")
            .baggage_str(&LOCALE, "locale")
            .public("locale")
    };
    // A context as an internal service receives it, with a member to forward.
    let incoming = std::collections::HashMap::from([
        ("x-request-id".to_string(), "req-4".to_string()),
        (
            "baggage".to_string(),
            "tenant=acme,locale=fr,other=kept".to_string(),
        ),
    ]);
    let ctx = configured()
        .inbound(Trust::Trusted)
        .build()
        .extract(&incoming);
    let send = |middleware: ContextMiddleware| {
        let client = ClientBuilder::new(reqwest::Client::new())
            .with(middleware)
            .build();
        let ctx = ctx.clone();
        async move { fetch(&client, addr).with_context(ctx).await }
    };

    let cases = [
        (
            "default (untrusted)",
            ContextMiddleware::new(configured().build()),
            "locale=fr",
        ),
        (
            "another host",
            ContextMiddleware::new(configured().build()).trusted_hosts(["api.internal"]),
            "locale=fr",
        ),
        (
            "this host",
            ContextMiddleware::new(configured().build()).trusted_hosts(["127.0.0.1"]),
            "tenant=acme,locale=fr,other=kept",
        ),
        (
            "a predicate",
            ContextMiddleware::new(configured().build())
                .trust_destinations_if(move |url| url.port() == Some(addr.port())),
            "tenant=acme,locale=fr,other=kept",
        ),
    ];
    for (case, middleware, expected) in cases {
        let seen = send(middleware).await;
        assert_eq!(seen[0], "req-4", "{case}");
        assert_eq!(seen[3], expected, "{case}");
    }
}
