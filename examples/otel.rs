//! OpenTelemetry across spawns and services: a request with a W3C `traceparent` reaches a
//! frontend, which calls a backend; the backend spawns a tokio task, a blocking job, a rayon job
//! and a thread through this crate, each starting a span. Every exported span prints with the
//! request's trace id.
//!
//! ```sh
//! cargo run --example otel --features opentelemetry,tower,tokio,rayon
//! ```

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::routing::get;
use axum::Router;
use contextvars::tower::{ClientContextLayer, ContextLayer, Propagation, Trust};
use contextvars::ContextVar;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context as OtelContext, KeyValue};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracer, SdkTracerProvider};
use tower::{Layer, ServiceExt};

static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();

/// Both services are ours: callers and destinations trusted (an edge service would keep the
/// untrusted defaults, and start a new trace for each outside request).
fn propagation() -> Propagation {
    Propagation::builder()
        .baggage_str(&TENANT, "tenant")
        .inbound(Trust::Trusted)
        .outbound(Trust::Trusted)
        .build()
}

/// A span named `name`, child of the current OTel context, ended at once.
fn span(tracer: &SdkTracer, name: &'static str) {
    let tenant = TENANT.get().unwrap_or_default();
    tracer
        .span_builder(name)
        .with_attributes([KeyValue::new("tenant", tenant)])
        .start(tracer);
}

async fn serve(app: Router) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap()
    });
    (addr, stop)
}

fn get_request(url: String, headers: &[(&str, &str)]) -> http::Request<Empty<Bytes>> {
    let mut request = http::Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Empty::new()).unwrap()
}

#[tokio::main]
async fn main() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("otel-example");

    // The backend: one span for the handler, one in each kind of child.
    let backend_tracer = tracer.clone();
    let backend = Router::new()
        .route(
            "/work",
            get(move || {
                let tracer = backend_tracer.clone();
                async move {
                    let cx = OtelContext::current_with_span(tracer.start("backend handler"));
                    let (t1, t2, t3, t4) = (
                        tracer.clone(),
                        tracer.clone(),
                        tracer.clone(),
                        tracer.clone(),
                    );
                    let (task, blocking, rayon_job, thread) = {
                        let _attached = cx.clone().attach(); // dropped before any .await
                        (
                            contextvars::tokio::spawn_with_context(async move {
                                span(&t1, "tokio task")
                            }),
                            contextvars::tokio::spawn_blocking_with_context(move || {
                                span(&t2, "blocking job")
                            }),
                            contextvars::rayon::run_in_global_pool_with_context(move || {
                                span(&t3, "rayon job")
                            }),
                            contextvars::thread::spawn_with_context(move || {
                                span(&t4, "std thread")
                            }),
                        )
                    };
                    task.await.unwrap();
                    blocking.await.unwrap();
                    rayon_job.await.unwrap();
                    thread.join().unwrap();
                    cx.span().end();
                    "done"
                }
            }),
        )
        .layer(ContextLayer::new(propagation()));
    let (backend_addr, stop_backend) = serve(backend).await;

    // The frontend: calls the backend with the client layer, which writes `traceparent`.
    let client = ClientContextLayer::new(propagation())
        .layer(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    let frontend_tracer = tracer.clone();
    let frontend = Router::new()
        .route(
            "/orders",
            get(move || {
                let (client, tracer) = (client.clone(), frontend_tracer.clone());
                async move {
                    let cx = OtelContext::current_with_span(tracer.start("frontend handler"));
                    let call = {
                        let _attached = cx.clone().attach();
                        contextvars::tokio::spawn_with_context(
                            client.oneshot(get_request(format!("http://{backend_addr}/work"), &[])),
                        )
                    };
                    let response = call.await.unwrap().unwrap();
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    cx.span().end();
                    body
                }
            }),
        )
        .layer(ContextLayer::new(propagation()));
    let (frontend_addr, stop_frontend) = serve(frontend).await;

    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    println!("request: traceparent: {traceparent}, baggage: tenant=acme");
    let response = Client::builder(TokioExecutor::new())
        .build_http::<Empty<Bytes>>()
        .request(get_request(
            format!("http://{frontend_addr}/orders"),
            &[("traceparent", traceparent), ("baggage", "tenant=acme")],
        ))
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    println!("response: {}", String::from_utf8_lossy(&body));
    let _ = (stop_frontend.send(()), stop_backend.send(()));

    let mut spans = exporter.get_finished_spans().unwrap();
    spans.sort_by_key(|span| span.start_time);
    println!("exported spans:");
    for span in &spans {
        let tenant = span
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "tenant")
            .map(|kv| kv.value.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "  {:<17} trace_id={} span_id={} parent={} tenant={tenant}",
            span.name,
            span.span_context.trace_id(),
            span.span_context.span_id(),
            span.parent_span_id,
        );
    }
    let expected = "4bf92f3577b34da6a3ce929d0e0e4736";
    assert!(spans
        .iter()
        .all(|span| span.span_context.trace_id().to_string() == expected));
    println!("all {} spans are in trace {expected}", spans.len());
}
