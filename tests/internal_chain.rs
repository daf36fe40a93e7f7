//! The tower module's two configurations at work over real HTTP: an edge, then two internal
//! services behind it, each trusting its callers and destinations. One request id (the edge's,
//! never the stranger's) and the baggage the edge set cross both internal hops.
#![cfg(all(feature = "tower", feature = "tokio"))]

mod common;

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::routing::get;
use axum::Router;
use common::http::{body_text, client, echoed_id, get_request, runtime, serve};
use contextvars::tower::{ClientContextLayer, ContextLayer, Propagation, Trust, REQUEST_ID};
use contextvars::ContextVar;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};

static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
static LOCALE: ContextVar<String> = ContextVar::new("locale").with_display();

/// The services behind the edge: trusted both ways (the module docs' first example).
fn internal() -> Propagation {
    Propagation::builder()
        .baggage_str(&TENANT, "tenant")
        .baggage_str(&LOCALE, "locale")
        .inbound(Trust::Trusted)
        .outbound(Trust::Trusted)
        .build()
}

/// The edge: its callers untrusted, only its own hosts trusted (the module docs' second).
fn edge() -> Propagation {
    Propagation::builder()
        .baggage_str(&TENANT, "tenant")
        .baggage_str(&LOCALE, "locale")
        .accept_from_untrusted("locale")
        .build()
}

/// A service that answers `{name}: id=.. tenant=.. locale=..`, then what `next` answered.
fn service(name: &'static str, propagation: Propagation, next: Option<SocketAddr>) -> Router {
    let http = ClientContextLayer::new(propagation.clone())
        .trusted_hosts(["127.0.0.1"])
        .layer(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    let handler = move || {
        let http = http.clone();
        async move {
            let mut answer = format!(
                "{name}: id={} tenant={} locale={}",
                REQUEST_ID.get().unwrap_or_default(),
                TENANT.get().unwrap_or_default(),
                LOCALE.get().unwrap_or_default(),
            );
            if let Some(next) = next {
                // The edge sets the tenant itself, after authenticating the caller.
                let call = http.oneshot(get_request(next, "/", &[]));
                let response = match name {
                    "edge" => TENANT.scope_future("acme".into(), call).await,
                    _ => call.await,
                };
                answer = format!(
                    "{answer}\n{}",
                    body_text(response.unwrap().into_body()).await
                );
            }
            answer
        }
    };
    Router::new()
        .route("/", get(handler))
        .layer(ContextLayer::new(propagation))
}

#[test]
fn one_request_id_crosses_both_internal_hops_behind_the_edge() {
    runtime(2).block_on(async {
        let (stock, stop_stock) = serve(service("stock", internal(), None)).await;
        let (orders, stop_orders) = serve(service("orders", internal(), Some(stock))).await;
        let (edge_addr, stop_edge) = serve(service("edge", edge(), Some(orders))).await;

        let headers = [
            ("x-request-id", "ext-1"),
            ("baggage", "tenant=spoofed,locale=fr"),
        ];
        let outside = client(1);
        for _ in 0..3 {
            let response = outside
                .request(get_request(edge_addr, "/", &headers))
                .await
                .unwrap();
            let id = echoed_id(&response);
            assert_ne!(id, "ext-1", "a stranger's id is never the request id");
            let body = body_text(response.into_body()).await;
            assert_eq!(
                body,
                format!(
                    "edge: id={id} tenant= locale=fr\n\
                     orders: id={id} tenant=acme locale=fr\n\
                     stock: id={id} tenant=acme locale=fr"
                )
            );
        }
        drop(outside);
        stop_edge.now();
        stop_orders.now();
        stop_stock.now();
    });
}

/// What the trust rules say about each hop, before anything is sent.
#[test]
fn the_layers_explain_each_hop() {
    let stock: SocketAddr = "127.0.0.1:3001".parse().unwrap();
    let to_internal = ClientContextLayer::new(edge()).trusted_hosts(["127.0.0.1"]);
    let uri = format!("http://{stock}/").parse().unwrap();
    let explanation = TENANT.scope("acme".into(), || to_internal.explain(&uri));
    assert!(explanation.trust.is_trusted(), "{explanation}");
    assert_eq!(explanation.passed(), ["tenant"]);

    let misnamed = ClientContextLayer::new(edge()).trusted_hosts(["localhost"]);
    let explanation = TENANT.scope("acme".into(), || misnamed.explain(&uri));
    assert_eq!(
        explanation.why,
        r#"host 127.0.0.1:3001 matches none of ["localhost"]"#
    );
    assert_eq!(explanation.held_back(), ["tenant"]);

    let request = http::Request::builder()
        .header("x-request-id", "edge-1")
        .body(())
        .unwrap();
    let forgot = ContextLayer::new(Propagation::default()).explain(&request);
    assert_eq!(forgot.held_back(), ["x-request-id"]);
    let internal = ContextLayer::new(internal()).explain(&request);
    assert_eq!(internal.passed(), ["x-request-id"]);
}
