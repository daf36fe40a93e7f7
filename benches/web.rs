//! One request through an axum `Router` in process (`ServiceExt::oneshot`): bare, with
//! `contextvars::tower::ContextLayer`, and with the hand-written alternative (tower-http's set and
//! propagate request-id layers around a `TraceLayer` span), with and without an incoming id.
//! Then W3C Baggage parse and format of a 10-member header, beside OpenTelemetry's propagator.

mod shared;

use std::collections::HashMap;
use std::hint::black_box;

use axum::body::Body;
use axum::http::{HeaderValue, Request};
use axum::routing::get;
use axum::Router;
use contextvars::tower::{Baggage, ContextLayer, Propagation, Trust, REQUEST_ID};
use criterion::{criterion_group, criterion_main, Criterion};
use tower::{ServiceBuilder, ServiceExt};
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

async fn handler() -> &'static str {
    "ok"
}

fn request(id: bool) -> Request<Body> {
    let mut request = Request::get("/");
    if id {
        request = request.header("x-request-id", "req-0123456789abcdef");
    }
    request.body(Body::empty()).unwrap()
}

fn web_request(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bare = Router::new().route("/", get(handler));
    let ours = Router::new()
        .route(
            "/",
            get(|| async {
                black_box(REQUEST_ID.with(|id| id.is_some()));
                "ok"
            }),
        )
        .layer(ContextLayer::new(
            Propagation::builder().inbound(Trust::Trusted).build(),
        ));
    let hand_written = Router::new().route("/", get(handler)).layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http().make_span_with(|request: &Request<Body>| {
                    let id = request
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!("request", request_id = id)
                }),
            )
            .layer(PropagateRequestIdLayer::x_request_id()),
    );

    for (case, with_id) in [("with x-request-id", true), ("without x-request-id", false)] {
        let mut group = c.benchmark_group(format!("axum request/{case}"));
        for (name, router) in [
            ("bare Router", &bare),
            ("contextvars ContextLayer", &ours),
            ("tower-http request-id + TraceLayer", &hand_written),
        ] {
            group.bench_function(name, |b| {
                b.iter(|| {
                    let response = runtime
                        .block_on(router.clone().oneshot(request(with_id)))
                        .unwrap();
                    black_box(response)
                })
            });
        }
        group.finish();
    }
}

fn ten_members() -> String {
    (0..10)
        .map(|i| format!("key{i}=value%20{i};prop{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn baggage(c: &mut Criterion) {
    use opentelemetry::baggage::BaggageExt;
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry_sdk::propagation::BaggagePropagator;

    let header = ten_members();
    let parsed = Baggage::parse(&header);
    assert_eq!(parsed.len(), 10);
    let mut group = c.benchmark_group("baggage 10 members");
    group.bench_function("contextvars parse", |b| {
        b.iter(|| Baggage::parse(black_box(&header)))
    });
    group.bench_function("contextvars format", |b| {
        b.iter(|| black_box(&parsed).to_header_value())
    });

    let propagator = BaggagePropagator::new();
    let carrier = HashMap::from([("baggage".to_string(), header.clone())]);
    let cx = propagator.extract(&carrier);
    assert_eq!(cx.baggage().len(), 10);
    group.bench_function("opentelemetry extract", |b| {
        b.iter(|| propagator.extract(black_box(&carrier)))
    });
    group.bench_function("opentelemetry inject", |b| {
        b.iter(|| {
            let mut out = HashMap::new();
            propagator.inject_context(black_box(&cx), &mut out);
            out.get("baggage")
                .map(|v| HeaderValue::from_str(v).unwrap())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = shared::criterion();
    targets = web_request, baggage
}
criterion_main!(benches);
