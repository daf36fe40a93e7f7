//! The W3C Trace Context suite's cases (level 2, strict; `tests/common/w3c_suite.rs`) through
//! real transports, as the suite's harness drives a service: each case's header lines, repeats
//! kept, sent to a real service that calls the next one, whose received lines are compared with
//! what the suite expects.
//!
//! - HTTP: an axum server with `ContextLayer`, trusted both ways, whose handler calls the next
//!   server through hyper with `ClientContextLayer`; once creating no spans (the trace context
//!   goes on unchanged), and with `opentelemetry`, once creating a server span and a client span
//!   with an SDK tracer, as an instrumented service does (the trace continues under a new parent
//!   id, flags and `tracestate` kept; where the suite expects a new trace, one starts).
//! - NATS: a real `nats-server`; a `ContextSubscriber`'s handler publishes on with a
//!   `ContextClient`.
#![cfg(all(feature = "tower", feature = "tokio"))]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use common::http::{body_text, client, get_request, runtime, serve, HttpClient};
use common::w3c_suite::{suite, Case};
use contextvars::propagation::{Propagation, TraceParent, Trust};
use contextvars::tower::{ClientContextLayer, ClientContextService, ContextLayer};
use tower::{Layer, ServiceExt};

/// Trusted both ways: an internal service of the suite's harness.
fn trusted() -> Propagation {
    Propagation::builder()
        .inbound(Trust::Trusted)
        .outbound(Trust::Trusted)
        .build()
}

/// What the last hop received: its `traceparent` lines and its `tracestate` lines.
type Received = (Vec<String>, Vec<String>);

/// The last hop: answers with the trace context lines it received, one per line.
async fn last_hop(headers: HeaderMap) -> String {
    let mut lines = String::new();
    for name in ["traceparent", "tracestate"] {
        for value in headers.get_all(name) {
            lines.push_str(&format!("{name}: {}\n", value.to_str().unwrap()));
        }
    }
    lines
}

fn parse_received(body: &str) -> Received {
    let mut received = (Vec::new(), Vec::new());
    for line in body.lines() {
        match line.split_once(": ") {
            Some(("traceparent", value)) => received.0.push(value.to_string()),
            Some(("tracestate", value)) => received.1.push(value.to_string()),
            _ => panic!("unexpected line {line:?}"),
        }
    }
    received
}

/// What a case must deliver to the last hop from a service that creates no spans.
fn expected_unchanged(case: &Case) -> Received {
    match &case.sent {
        None => (vec![], vec![]),
        Some((traceparent, tracestate)) => (
            vec![traceparent.to_string()],
            tracestate.iter().cloned().collect(),
        ),
    }
}

/// The service under test's state: the client to the last hop, and with `opentelemetry` the
/// tracer its spans come from (none: it creates no spans).
struct Hop {
    client: ClientContextService<HttpClient>,
    last_hop: SocketAddr,
    #[cfg(feature = "opentelemetry")]
    tracer: Option<opentelemetry_sdk::trace::SdkTracer>,
}

impl Hop {
    async fn call_on(&self) -> String {
        let request = get_request(self.last_hop, "/", &[]);
        let response = self.client.clone().oneshot(request).await.unwrap();
        body_text(response.into_body()).await
    }
}

/// The handler: calls the last hop (with `opentelemetry` and a tracer, inside a server span and
/// around the call a client span, both children of what the layer extracted).
async fn handler(State(hop): State<Arc<Hop>>) -> String {
    #[cfg(feature = "opentelemetry")]
    if let Some(tracer) = &hop.tracer {
        use opentelemetry::trace::{FutureExt as _, TraceContextExt, Tracer};
        use opentelemetry::Context as OtelContext;
        let server = OtelContext::current_with_span(tracer.start("server"));
        let client = server.with_span(tracer.start_with_context("client", &server));
        return hop.call_on().with_context(client).await;
    }
    hop.call_on().await
}

/// Runs every case through a service (spans from `tracer`, if any) and the last hop, and
/// returns what the last hop received for each.
async fn replay(
    #[cfg(feature = "opentelemetry")] tracer: Option<opentelemetry_sdk::trace::SdkTracer>,
) -> Vec<(Case, Received)> {
    let (last_hop_addr, last_hop_stop) = serve(Router::new().route("/", get(last_hop))).await;
    let hop = Arc::new(Hop {
        client: ClientContextLayer::new(trusted()).layer(client(4)),
        last_hop: last_hop_addr,
        #[cfg(feature = "opentelemetry")]
        tracer,
    });
    let app = Router::new()
        .route("/", get(handler))
        .with_state(hop)
        .layer(ContextLayer::new(trusted()));
    let (addr, stop) = serve(app).await;
    let harness = client(4);
    let mut results = Vec::new();
    for case in suite() {
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = harness
            .request(get_request(addr, "/", &headers))
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", case.name);
        let received = parse_received(&body_text(response.into_body()).await);
        results.push((case, received));
    }
    drop(harness);
    stop.now();
    last_hop_stop.now();
    results
}

#[test]
fn over_http_a_service_creating_no_spans_forwards_every_case_as_the_suite_expects() {
    runtime(2).block_on(async {
        #[cfg(feature = "opentelemetry")]
        let results = replay(None).await;
        #[cfg(not(feature = "opentelemetry"))]
        let results = replay().await;
        let failed: Vec<String> = results
            .iter()
            .filter(|(case, received)| *received != expected_unchanged(case))
            .map(|(case, received)| {
                format!(
                    "{}: received {received:?}, expected {:?}",
                    case.name,
                    expected_unchanged(case)
                )
            })
            .collect();
        assert!(failed.is_empty(), "{failed:#?}");
    });
}

/// With spans, where the suite expects the trace continued: one `traceparent` of version 00 with
/// the same trace id, a new parent id, the sampled and random flags as received, and the
/// `tracestate` as received; where it expects a new trace: a `traceparent` of another trace and
/// no `tracestate`.
#[cfg(feature = "opentelemetry")]
#[test]
fn over_http_an_instrumented_service_passes_every_case_of_the_suite() {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "w3c-suite");
    runtime(2).block_on(async {
        let results = replay(Some(tracer)).await;
        let mut failed = Vec::new();
        for (case, (traceparents, tracestates)) in &results {
            let [sent] = traceparents.as_slice() else {
                failed.push(format!("{}: traceparents {traceparents:?}", case.name));
                continue;
            };
            let sent = TraceParent::parse(sent).expect("a valid traceparent");
            let ok = match &case.sent {
                Some((expected, tracestate)) => {
                    let expected = TraceParent::parse(expected).unwrap();
                    sent.version() == 0
                        && sent.trace_id() == expected.trace_id()
                        && sent.parent_id() != expected.parent_id()
                        && sent.flags() & 0x03 == expected.flags() & 0x03
                        && *tracestates == tracestate.iter().cloned().collect::<Vec<_>>()
                }
                None => {
                    let incoming = case.headers.iter().find(|(k, _)| *k == "traceparent");
                    let continued = incoming
                        .and_then(|(_, v)| TraceParent::parse(v.trim()))
                        .is_some_and(|incoming| incoming.trace_id() == sent.trace_id());
                    !continued && tracestates.is_empty()
                }
            };
            if !ok {
                failed.push(format!(
                    "{}: sent {traceparents:?} {tracestates:?}, expected {:?}",
                    case.name, case.sent
                ));
            }
        }
        assert!(failed.is_empty(), "{failed:#?}");
    });
}

#[cfg(feature = "async-nats")]
mod nats {
    use futures::StreamExt;

    use super::*;
    use common::nats_server::NatsServer;
    use contextvars::async_nats::ContextClient;

    #[test]
    fn over_nats_a_worker_publishing_on_forwards_every_case_as_the_suite_expects() {
        let server = NatsServer::start().unwrap_or_else(|error| panic!("{error}"));
        runtime(2).block_on(async {
            let raw = async_nats::connect(&server.url).await.unwrap();
            let client = ContextClient::new(raw.clone(), trusted());
            // The worker: each message handled in the context it brought, publishing on.
            let mut incoming = client.subscribe("w3c.in").await.unwrap();
            let worker_client = client.clone();
            let worker = tokio::spawn(async move {
                while let Some(message) = incoming.next().await {
                    let client = worker_client.clone();
                    message
                        .handle(move |_| async move {
                            client.publish("w3c.out", "on".into()).await.unwrap();
                        })
                        .await;
                }
            });
            let mut outgoing = raw.subscribe("w3c.out").await.unwrap();
            raw.flush().await.unwrap();
            let mut failed = Vec::new();
            for case in suite() {
                let mut headers = async_nats::HeaderMap::new();
                for (name, value) in &case.headers {
                    headers.append(*name, value.as_str());
                }
                raw.publish_with_headers("w3c.in", headers, "case".into())
                    .await
                    .unwrap();
                let message = outgoing.next().await.unwrap();
                let lines = |name: &str| -> Vec<String> {
                    let headers = message.headers.as_ref();
                    headers
                        .map(|headers| headers.get_all(name).map(|v| v.to_string()).collect())
                        .unwrap_or_default()
                };
                let received = (lines("traceparent"), lines("tracestate"));
                if received != expected_unchanged(&case) {
                    failed.push(format!(
                        "{}: received {received:?}, expected {:?}",
                        case.name,
                        expected_unchanged(&case)
                    ));
                }
            }
            worker.abort();
            assert!(failed.is_empty(), "{failed:#?}");
        });
    }
}
