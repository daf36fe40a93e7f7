//! The OpenTelemetry bridge with process-wide installs, in a test binary of its own: the global
//! tracing subscriber (tracing-opentelemetry with context activation) and a global text-map
//! propagator. Installed once for the whole binary; each test uses span names of its own.
#![cfg(all(
    feature = "opentelemetry",
    feature = "tracing",
    feature = "tower",
    feature = "tokio",
    feature = "rayon"
))]

use std::convert::Infallible;
use std::sync::OnceLock;

use axum::http::{HeaderMap, Request};
use contextvars::thread;
use contextvars::tower::{inject_headers, inject_headers_with, ContextLayer, Propagation, Trust};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
    TracerProvider as _,
};
use opentelemetry::{Context as OtelContext, KeyValue};
use opentelemetry_sdk::propagation::BaggagePropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracer, SdkTracerProvider, SpanData};
use tower::{Layer, ServiceExt};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// A propagator in a format of its own (`x-test-trace: <trace id>:<span id>`), to tell that the
/// global one is used rather than the W3C default.
#[derive(Debug)]
struct TestPropagator {
    fields: Vec<String>,
}

const FIELD: &str = "x-test-trace";

/// The `tracestate` lines the global propagator was given, request by request.
static TRACESTATE_LINES: std::sync::Mutex<Vec<Vec<String>>> = std::sync::Mutex::new(Vec::new());

impl TextMapPropagator for TestPropagator {
    fn inject_context(&self, cx: &OtelContext, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            injector.set(FIELD, format!("{}:{}", sc.trace_id(), sc.span_id()));
        }
    }

    fn extract_with_context(&self, cx: &OtelContext, extractor: &dyn Extractor) -> OtelContext {
        // Every line of a repeated header reaches the user's propagator.
        if let Some(lines) = extractor.get_all("tracestate") {
            let lines = lines.into_iter().map(String::from).collect();
            TRACESTATE_LINES.lock().unwrap().push(lines);
        }
        let parsed = extractor.get(FIELD).and_then(|value| {
            let (trace, span) = value.split_once(':')?;
            Some(SpanContext::new(
                TraceId::from_hex(trace).ok()?,
                SpanId::from_hex(span).ok()?,
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            ))
        });
        match parsed {
            Some(remote) => cx.with_remote_span_context(remote),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

struct Globals {
    exporter: InMemorySpanExporter,
    tracer: SdkTracer,
    _provider: SdkTracerProvider,
}

/// Installs, once: the tracing subscriber with tracing-opentelemetry (context activation is its
/// default) and, as the global propagator, ours plus OTel's baggage propagator.
fn globals() -> &'static Globals {
    static GLOBALS: OnceLock<Globals> = OnceLock::new();
    GLOBALS.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let tracer = provider.tracer("contextvars-globals");
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracer.clone()));
        tracing::subscriber::set_global_default(subscriber).unwrap();
        opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
            Box::new(TestPropagator {
                fields: vec![FIELD.to_owned()],
            }),
            Box::new(BaggagePropagator::new()),
        ]));
        Globals {
            exporter,
            tracer,
            _provider: provider,
        }
    })
}

fn finished(name: &str) -> Vec<SpanData> {
    globals()
        .exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|span| span.name == name)
        .collect()
}

fn remote(trace: &str, span: &str) -> SpanContext {
    SpanContext::new(
        TraceId::from_hex(trace).unwrap(),
        SpanId::from_hex(span).unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    )
}

fn current_ids() -> (TraceId, SpanId) {
    let cx = OtelContext::current();
    let span = cx.span();
    let sc = span.span_context();
    (sc.trace_id(), sc.span_id())
}

#[derive(Debug)]
struct Marker;

#[test]
fn the_entered_spans_otel_context_wins_in_every_child() {
    let globals = globals();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let span = tracing::info_span!("interplay-outer");
    let outer = span.context().span().span_context().clone();
    assert!(outer.is_valid());
    let elsewhere = OtelContext::new()
        .with_remote_span_context(remote(
            "0af7651916cd43dd8448eb211c80319c",
            "b7ad6b7169203331",
        ))
        .with_value(Marker);

    let (task, blocking, rayon_job, os_thread) = {
        let _entered = span.enter();
        // Attached after entering the span: at the call site this one is current...
        let _attached = elsewhere.attach();
        assert_eq!(
            current_ids().0.to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        let _rt = rt.enter();
        // ...but in each child the entered span's context wins.
        let child = |name: &'static str| {
            move || {
                let ids = current_ids();
                tracing::info_span!("interplay-child", kind = name).in_scope(|| {
                    globals.tracer.start("interplay-otel-child");
                });
                ids
            }
        };
        (
            contextvars::tokio::spawn_with_context({
                let child = child("task");
                async move { child() }
            }),
            contextvars::tokio::spawn_blocking_with_context(child("blocking")),
            contextvars::rayon::run_in_global_pool_with_context(child("rayon")),
            thread::spawn_with_context(child("thread")),
        )
    };
    let expected = (outer.trace_id(), outer.span_id());
    rt.block_on(async {
        assert_eq!(task.await.unwrap(), expected);
        assert_eq!(blocking.await.unwrap(), expected);
        assert_eq!(rayon_job.await.unwrap(), expected);
    });
    assert_eq!(os_thread.join().unwrap(), expected);
    drop(span);

    // Spans made in the children, through either API, are the outer span's children.
    let tracing_children = finished("interplay-child");
    let otel_children = finished("interplay-otel-child");
    assert_eq!((tracing_children.len(), otel_children.len()), (4, 4));
    for child in tracing_children.iter().chain(&otel_children) {
        assert_eq!(child.span_context.trace_id(), outer.trace_id());
    }
    for child in &tracing_children {
        assert_eq!(child.parent_span_id, outer.span_id());
    }
    for child in &otel_children {
        // Started inside the tracing child span, which is entered (activated) there.
        assert!(tracing_children
            .iter()
            .any(|parent| parent.span_context.span_id() == child.parent_span_id));
    }
    assert_eq!(finished("interplay-outer").len(), 1);
}

#[test]
fn without_a_span_the_captured_otel_context_is_current_in_the_child() {
    globals();
    let cx = OtelContext::new()
        .with_remote_span_context(remote(
            "11111111111111111111111111111111",
            "2222222222222222",
        ))
        .with_value(Marker);
    let seen = {
        let _attached = cx.attach();
        thread::spawn_with_context(|| {
            (
                current_ids(),
                OtelContext::current().get::<Marker>().is_some(),
            )
        })
    };
    let ((trace, span), marker) = seen.join().unwrap();
    assert_eq!(trace.to_string(), "11111111111111111111111111111111");
    assert_eq!(span.to_string(), "2222222222222222");
    assert!(marker);
}

#[test]
fn the_global_propagator_is_used_and_baggage_stays_with_this_crate() {
    globals();
    let service = ContextLayer::new(trusted()).layer(tower::service_fn(|_: Request<()>| async {
        let cx = OtelContext::current();
        let (trace, span) = current_ids();
        let value = cx.baggage().get("k").map(|v| v.to_string());
        // A span of the handler, through tracing: a child of the remote parent.
        let handler = tracing::info_span!("globals-handler");
        let mut out = HeaderMap::new();
        handler.in_scope(|| inject_headers_with(&trusted(), &mut out));
        Ok::<_, Infallible>(axum::http::Response::new((trace, span, value, out)))
    }));
    let request = Request::builder()
        .header(FIELD, "33333333333333333333333333333333:4444444444444444")
        // Not read: the global propagator has no `traceparent` field.
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        // OTel's baggage propagator would cut this value at its `=`; ours keeps it.
        .header("baggage", "k=a=b")
        .body(())
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (trace, span, value, out) = rt.block_on(service.oneshot(request)).unwrap().into_body();
    assert_eq!(trace.to_string(), "33333333333333333333333333333333");
    assert_eq!(span.to_string(), "4444444444444444");
    assert_eq!(value.as_deref(), Some("a=b"));
    // Written through the global propagator, in its format, for the handler's span; the
    // baggage once, by this crate.
    let handler = finished("globals-handler");
    assert_eq!(handler.len(), 1);
    assert_eq!(handler[0].parent_span_id.to_string(), "4444444444444444");
    assert_eq!(
        out[FIELD],
        format!(
            "33333333333333333333333333333333:{}",
            handler[0].span_context.span_id()
        )
    );
    assert!(!out.contains_key("traceparent"));
    assert_eq!(out.get_all("baggage").iter().count(), 1);
    assert_eq!(out["baggage"], "k=a=b");
    // A value set through OTel's API is sent too, to a trusted destination; not to the
    // default, untrusted one (the key is not registered as public), where the trace context
    // still goes.
    let (mut headers, mut untrusted) = (HeaderMap::new(), HeaderMap::new());
    {
        let _attached = OtelContext::current_with_baggage([KeyValue::new("region", "eu")]).attach();
        let handler = tracing::info_span!("globals-client");
        handler.in_scope(|| {
            inject_headers_with(&trusted(), &mut headers);
            inject_headers(&mut untrusted);
        });
    }
    assert_eq!(headers["baggage"], "region=eu");
    assert!(!untrusted.contains_key("baggage"), "{untrusted:?}");
    assert!(untrusted.contains_key(FIELD), "{untrusted:?}");
}

/// With a global propagator, the trace context is its business: it gets every line of a repeated
/// header (`get_all`), and this crate neither reads `traceparent` (no `TRACE_ID`) nor forwards it.
#[test]
fn the_global_propagator_gets_every_line_and_owns_the_trace_context() {
    globals();
    let service = ContextLayer::new(trusted()).layer(tower::service_fn(|_: Request<()>| async {
        let mut out = HeaderMap::new();
        inject_headers_with(&trusted(), &mut out);
        Ok::<_, Infallible>(axum::http::Response::new((
            contextvars::propagation::TRACE_ID.get(),
            out,
        )))
    }));
    let request = Request::builder()
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("tracestate", "marker-first=1")
        .header("tracestate", "marker-second=2")
        .body(())
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (trace_id, out) = rt.block_on(service.oneshot(request)).unwrap().into_body();
    let seen = TRACESTATE_LINES.lock().unwrap().clone();
    assert!(
        seen.contains(&vec![
            "marker-first=1".to_string(),
            "marker-second=2".to_string()
        ]),
        "{seen:?}"
    );
    assert_eq!(trace_id, None);
    assert!(!out.contains_key("traceparent"), "{out:?}");
    assert!(!out.contains_key("tracestate"), "{out:?}");
}

/// Between services of one's own: callers and destinations trusted.
fn trusted() -> Propagation {
    Propagation::builder()
        .inbound(Trust::Trusted)
        .outbound(Trust::Trusted)
        .build()
}
