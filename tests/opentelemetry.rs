//! The OpenTelemetry bridge: the OTel context follows every spawn path, and W3C Trace Context and
//! baggage cross real services on loopback. Spans go to a tracer provider of each test's own
//! (never the global one) with an in-memory exporter; no global is installed in this binary
//! (the global propagator and tracing subscriber are tested in `opentelemetry_globals.rs`).
#![cfg(all(
    feature = "opentelemetry",
    feature = "tower",
    feature = "tokio",
    feature = "rayon",
    feature = "smol",
    feature = "async-std",
    feature = "futures",
    feature = "async-task",
    feature = "macros"
))]

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::mpsc;

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use axum::routing::get;
use axum::Router;
use common::http::{body_text, client, get_request, runtime, serve};
use common::propagation::{standard, TENANT, USER_ID};
use common::report::ReportOnDrop;
use contextvars::opentelemetry::OtelContextExt;
use contextvars::tower::{
    inject_headers_with, ClientContextLayer, ContextLayer, Propagation, Trust, REQUEST_ID,
};
use contextvars::{preserve_context, thread, ContextExt, ContextVar};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{
    Span, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
    TracerProvider,
};
use opentelemetry::{Context as OtelContext, KeyValue};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracer, SdkTracerProvider, SpanData};
use rayon::prelude::*;
use tower::{Layer, ServiceExt};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const REMOTE_PARENT: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE}-{REMOTE_PARENT}-01")
}

/// A tracer of the test's own, exporting synchronously to memory when a span ends.
fn tracer() -> (SdkTracer, InMemorySpanExporter, SdkTracerProvider) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    (provider.tracer("contextvars-test"), exporter, provider)
}

/// Starts and ends a span named `name` in the current OTel context, with the current request id
/// as an attribute.
fn child_span(tracer: &SdkTracer, name: &'static str) {
    let request_id = REQUEST_ID.get().unwrap_or_default();
    tracer
        .span_builder(name)
        .with_attributes([KeyValue::new("request_id", request_id)])
        .start(tracer);
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

// ---------------------------------------------------------------------------------------------
// One request, every kind of spawn.

#[test]
fn one_request_every_spawn_in_the_request_trace_with_the_right_parent() {
    let (tracer, exporter, _provider) = tracer();
    runtime(2).block_on(async {
        let handler_tracer = tracer.clone();
        let app = Router::new()
            .route(
                "/work",
                get(move || {
                    let tracer = handler_tracer.clone();
                    async move {
                        // A child of the remote parent: the request's OTel context is current.
                        let handler = tracer.start("handler");
                        let cx = OtelContext::current_with_span(handler);
                        let (task, blocking, rayon_job, os_thread) = {
                            let _guard = cx.clone().attach();
                            let (t1, t2, t3, t4, t5) = (
                                tracer.clone(),
                                tracer.clone(),
                                tracer.clone(),
                                tracer.clone(),
                                tracer.clone(),
                            );
                            let task = contextvars::tokio::spawn_with_context(async move {
                                tokio::task::yield_now().await;
                                child_span(&t1, "tokio-task");
                            });
                            let blocking =
                                contextvars::tokio::spawn_blocking_with_context(move || {
                                    child_span(&t2, "blocking-job")
                                });
                            let rayon_job =
                                contextvars::rayon::run_in_global_pool_with_context(move || {
                                    child_span(&t3, "rayon-job")
                                });
                            (0..8).into_par_iter().with_current_context().for_each(|_| {
                                child_span(&t4, "par-iter-item");
                            });
                            let os_thread =
                                thread::spawn_with_context(move || child_span(&t5, "std-thread"));
                            (task, blocking, rayon_job, os_thread)
                        };
                        task.await.unwrap();
                        blocking.await.unwrap();
                        rayon_job.await.unwrap();
                        os_thread.join().unwrap();
                        cx.span().end();
                        "done"
                    }
                }),
            )
            .layer(ContextLayer::new(standard()));
        let (addr, stop) = serve(app).await;
        let response = client(usize::MAX)
            .request(get_request(
                addr,
                "/work",
                &[
                    ("traceparent", &traceparent()),
                    ("x-request-id", "req-otel"),
                ],
            ))
            .await
            .unwrap();
        assert_eq!(body_text(response.into_body()).await, "done");
        stop.now();
    });

    let spans = exporter.get_finished_spans().unwrap();
    let mut names: Vec<&str> = spans.iter().map(|s| &*s.name).collect();
    names.sort_unstable();
    let mut expected = vec![
        "blocking-job",
        "handler",
        "rayon-job",
        "std-thread",
        "tokio-task",
    ];
    expected.extend(["par-iter-item"; 8]);
    expected.sort_unstable();
    assert_eq!(names, expected);

    let trace = TraceId::from_hex(TRACE).unwrap();
    let handler = spans.iter().find(|s| s.name == "handler").unwrap();
    assert_eq!(
        handler.parent_span_id,
        SpanId::from_hex(REMOTE_PARENT).unwrap()
    );
    assert!(handler.parent_span_is_remote);
    for span in &spans {
        assert_eq!(span.span_context.trace_id(), trace, "{}", span.name);
        if span.name != "handler" {
            assert_eq!(
                span.parent_span_id,
                handler.span_context.span_id(),
                "{}",
                span.name
            );
            // Our context came along too.
            assert_eq!(
                attribute(span, "request_id").as_deref(),
                Some("req-otel"),
                "{}",
                span.name
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Two services: trace id and baggage across the hop, both ways between the two APIs.

#[test]
fn a_hop_keeps_the_trace_and_baggage_set_through_either_api() {
    let (tracer, exporter, _provider) = tracer();
    runtime(2).block_on(async {
        let service_b = Router::new()
            .route(
                "/b",
                get(|| async {
                    let cx = OtelContext::current();
                    let span = cx.span();
                    let baggage = cx.baggage();
                    let otel = |key: &str| baggage.get(key).map(|v| v.to_string());
                    format!(
                        "{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
                        span.span_context().trace_id(),
                        span.span_context().span_id(),
                        TENANT.get(),
                        USER_ID.get(),
                        otel("tenant"),
                        otel("user.id"),
                        otel("region"),
                        otel("extra"),
                    )
                }),
            )
            .layer(ContextLayer::new(standard()));
        let (addr_b, stop_b) = serve(service_b).await;

        let outgoing = ClientContextLayer::new(standard()).layer(client(usize::MAX));
        let a_tracer = tracer.clone();
        let service_a = Router::new()
            .route(
                "/a",
                get(move || {
                    let (outgoing, tracer) = (outgoing.clone(), a_tracer.clone());
                    async move {
                        // What A received, through both APIs.
                        let received = OtelContext::current();
                        assert_eq!(TENANT.get().as_deref(), Some("acme"));
                        assert_eq!(
                            received.baggage().get("tenant").map(|v| v.to_string()),
                            Some("acme".to_owned())
                        );
                        // Changed with this crate's API: the next service sees it, in both.
                        TENANT.set("globex".to_owned());
                        // Changed and added with OTel's API: the next service sees them too,
                        // user.id (registered) in its variable.
                        let span = tracer.start("a-handler");
                        let cx = received
                            .with_baggage([
                                KeyValue::new("user.id", "7"),
                                KeyValue::new("region", "eu-west"),
                            ])
                            .with_span(span);
                        let call =
                            {
                                let _guard = cx.clone().attach();
                                contextvars::tokio::spawn_with_context(
                                    outgoing.oneshot(get_request(addr_b, "/b", &[])),
                                )
                            };
                        let response = call.await.unwrap().unwrap();
                        cx.span().end();
                        body_text(response.into_body()).await
                    }
                }),
            )
            .layer(ContextLayer::new(standard()));
        let (addr_a, stop_a) = serve(service_a).await;

        let response = client(usize::MAX)
            .request(get_request(
                addr_a,
                "/a",
                &[
                    ("traceparent", &traceparent()),
                    ("baggage", "tenant=acme, user.id=42, extra=x"),
                ],
            ))
            .await
            .unwrap();
        let seen = body_text(response.into_body()).await;
        let a_span = exporter
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .find(|s| s.name == "a-handler")
            .unwrap();
        let fields: Vec<&str> = seen.split('|').collect();
        // B's request context is the remote side of A's span, in the same trace.
        assert_eq!(fields[0], TRACE);
        assert_eq!(fields[1], a_span.span_context.span_id().to_string());
        assert_eq!(
            a_span.parent_span_id,
            SpanId::from_hex(REMOTE_PARENT).unwrap()
        );
        assert_eq!(
            &fields[2..],
            [
                r#"Some("globex")"#,
                "Some(7)",
                r#"Some("globex")"#,
                r#"Some("7")"#,
                r#"Some("eu-west")"#,
                r#"Some("x")"#,
            ]
        );
        stop_a.now();
        stop_b.now();
    });
}

/// Runs `f` inside a request (through the layer, no network) that brought `baggage`, and
/// returns the `baggage` header `inject_headers_with` writes there afterwards.
fn outgoing_baggage(
    baggage: &str,
    f: impl Fn() -> Option<OtelContext> + Send + Sync + Clone + 'static,
) -> Option<String> {
    let service = ContextLayer::new(standard()).layer(tower::service_fn(move |_: Request<()>| {
        let f = f.clone();
        async move {
            let cx = f();
            let _guard = cx.map(OtelContext::attach);
            let mut headers = HeaderMap::new();
            inject_headers_with(&standard(), &mut headers);
            Ok::<_, Infallible>(axum::http::Response::new(headers))
        }
    }));
    let request = Request::builder()
        .header("baggage", baggage)
        .body(())
        .unwrap();
    let response = futures::executor::block_on(service.oneshot(request)).unwrap();
    response
        .into_body()
        .get("baggage")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[test]
fn baggage_rules_when_both_apis_touch_a_key() {
    // Untouched: sent on as received.
    assert_eq!(
        outgoing_baggage("tenant=acme,k=v", || None).as_deref(),
        Some("tenant=acme,k=v")
    );
    // Both changed it: the variable wins.
    let both = outgoing_baggage("tenant=acme", || {
        TENANT.set("ours".to_owned());
        Some(OtelContext::current_with_baggage([KeyValue::new(
            "tenant", "theirs",
        )]))
    });
    assert_eq!(both.as_deref(), Some("tenant=ours"));
    // Removed through our API, unchanged in OTel: removed.
    let removed = outgoing_baggage("tenant=acme,k=v", || {
        TENANT.remove();
        None
    });
    assert_eq!(removed.as_deref(), Some("k=v"));
    // Replaced whole through OTel's API: absence is not a removal, the new member is added.
    let replaced = outgoing_baggage("tenant=acme,k=v", || {
        Some(OtelContext::current_with_baggage([KeyValue::new(
            "new", "a b",
        )]))
    });
    assert_eq!(replaced.as_deref(), Some("tenant=acme,k=v,new=a%20b"));
    // Changed through OTel's API, on an unregistered (forwarded) key: OTel's value goes.
    let forwarded = outgoing_baggage("k=v;p", || {
        Some(OtelContext::current_with_baggage([KeyValue::new("k", "w")]))
    });
    assert_eq!(forwarded.as_deref(), Some("k=w"));
    // A key OTel accepts but the W3C grammar does not is left out, never a panic.
    let bad_key = outgoing_baggage("", || {
        Some(OtelContext::current_with_baggage([KeyValue::new(
            "bad key", "1",
        )]))
    });
    assert_eq!(bad_key, None);
}

#[test]
fn outside_a_request_both_apis_reach_the_headers() {
    let (tracer, _exporter, _provider) = tracer();
    let span = tracer.start("client-only");
    let span_context = span.span_context().clone();
    let cx = OtelContext::current_with_baggage([KeyValue::new("region", "eu")]).with_span(span);
    let _guard = cx.attach();
    let mut headers = HeaderMap::new();
    TENANT.scope("acme".to_owned(), || {
        inject_headers_with(&standard(), &mut headers)
    });
    assert_eq!(headers["baggage"], "tenant=acme,region=eu");
    assert_eq!(
        headers["traceparent"],
        format!(
            "00-{}-{}-01",
            span_context.trace_id(),
            span_context.span_id()
        )
    );
}

#[test]
fn a_bad_traceparent_starts_no_remote_parent_and_fails_nothing() {
    let service = ContextLayer::new(standard()).layer(tower::service_fn(|_: Request<()>| async {
        let cx = OtelContext::current();
        Ok::<_, Infallible>(axum::http::Response::new((
            cx.span().span_context().is_valid(),
            REQUEST_ID.get(),
        )))
    }));
    for bad in [
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "",
    ] {
        let request = Request::builder()
            .header("traceparent", bad)
            .header("x-request-id", "r1")
            .body(())
            .unwrap();
        let response = futures::executor::block_on(service.clone().oneshot(request)).unwrap();
        assert_eq!(
            response.into_body(),
            (false, Some("r1".to_owned())),
            "{bad:?}"
        );
    }
}

#[test]
fn each_request_starts_from_a_fresh_otel_context() {
    #[derive(Debug)]
    struct Leak;
    let service = ContextLayer::new(standard()).layer(tower::service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(axum::http::Response::new(
            OtelContext::current().get::<Leak>().is_some(),
        ))
    }));
    // The caller's OTel context (a connection task's, a worker's) is not the request's.
    let _guard = OtelContext::current_with_value(Leak).attach();
    let response = futures::executor::block_on(service.oneshot(Request::new(()))).unwrap();
    assert!(!response.into_body());
    assert!(OtelContext::current().get::<Leak>().is_some());
}

// ---------------------------------------------------------------------------------------------
// A value set with OTel's own API before a spawn is visible inside it, on every spawn path.

#[derive(Debug, PartialEq, Clone, Copy)]
struct Marker(u32);

fn marker() -> Option<u32> {
    OtelContext::current().get::<Marker>().map(|m| m.0)
}

#[preserve_context]
async fn preserved() -> Option<u32> {
    marker()
}

#[test]
fn an_otel_value_set_before_a_spawn_is_visible_in_every_kind_of_child() {
    let rt = runtime(2);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let futures_pool = futures::executor::ThreadPool::builder()
        .pool_size(1)
        .create()
        .unwrap();
    let (tx, rx) = mpsc::channel::<(&'static str, Option<u32>)>();

    {
        let _guard = OtelContext::current_with_value(Marker(7)).attach();
        let report = |name: &'static str| {
            let tx = tx.clone();
            move |seen: Option<u32>| tx.send((name, seen)).unwrap()
        };
        // tokio
        let _enter = rt.enter();
        let r = report("tokio::spawn_with_context");
        drop(contextvars::tokio::spawn_with_context(async move {
            r(marker())
        }));
        let r = report("tokio::spawn_blocking_with_context");
        drop(contextvars::tokio::spawn_blocking_with_context(move || {
            r(marker())
        }));
        // rayon
        let r = report("rayon::run_in_pool_with_context");
        drop(contextvars::rayon::run_in_pool_with_context(
            &pool,
            move || r(marker()),
        ));
        let r = report("rayon::spawn_with_context");
        contextvars::rayon::spawn_with_context(move || r(marker()));
        let (a, b) = contextvars::rayon::join_with_context(marker, marker);
        tx.send(("rayon::join_with_context", a.and(b))).unwrap();
        let r = report("rayon::scope_with_context");
        contextvars::rayon::scope_with_context(|s| {
            use contextvars::rayon::ScopeExt;
            s.spawn_with_context(move |_| r(marker()));
        });
        let all: Vec<Option<u32>> = (0..64u32)
            .into_par_iter()
            .with_current_context()
            .map(|_| marker())
            .collect();
        let every = all.iter().all(|seen| *seen == Some(7));
        tx.send(("par_iter().with_current_context()", every.then_some(7)))
            .unwrap();
        // std threads
        let r = report("thread::spawn_with_context");
        thread::spawn_with_context(move || r(marker()));
        let r = report("thread::run_in_pool_with_context");
        drop(thread::run_in_pool_with_context(move || r(marker())));
        // smol, async-std, futures, async-task
        let r = report("smol::spawn_with_context");
        contextvars::smol::spawn_with_context(async move { r(marker()) }).detach();
        let r = report("smol::unblock_with_context");
        contextvars::smol::unblock_with_context(move || r(marker())).detach();
        let r = report("async_std::spawn_with_context");
        drop(contextvars::async_std::spawn_with_context(async move {
            r(marker())
        }));
        let r = report("futures::ContextSpawner");
        {
            use futures::task::SpawnExt;
            contextvars::futures::ContextSpawner::new(futures_pool.clone())
                .spawn(async move { r(marker()) })
                .unwrap();
        }
        let r = report("async_task::spawn_with_context");
        let (runnable, task) =
            contextvars::async_task::spawn_with_context(async move { r(marker()) }, |_| {});
        // Run elsewhere, where the value was never attached.
        std::thread::spawn(move || runnable.run()).join().unwrap();
        task.detach();
        // #[preserve_context]
        let fut = preserved();
        let r = report("#[preserve_context]");
        std::thread::spawn(move || r(futures::executor::block_on(fut)))
            .join()
            .unwrap();
        // tower's request future runs in the request's context, not the caller's: tested above.
    }
    // Set after the spawns: not seen by children already started.
    let _late = OtelContext::current_with_value(Marker(99)).attach();
    drop(tx);
    let mut seen = HashMap::new();
    // Every child has reported (or dropped its sender) once `recv` fails.
    while let Ok((name, value)) = rx.recv() {
        assert_eq!(value, Some(7), "{name}");
        assert!(seen.insert(name, value).is_none(), "{name} twice");
    }
    let mut names: Vec<&str> = seen.into_keys().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "#[preserve_context]",
            "async_std::spawn_with_context",
            "async_task::spawn_with_context",
            "futures::ContextSpawner",
            "par_iter().with_current_context()",
            "rayon::join_with_context",
            "rayon::run_in_pool_with_context",
            "rayon::scope_with_context",
            "rayon::spawn_with_context",
            "smol::spawn_with_context",
            "smol::unblock_with_context",
            "thread::run_in_pool_with_context",
            "thread::spawn_with_context",
            "tokio::spawn_blocking_with_context",
            "tokio::spawn_with_context",
        ]
    );
}

#[test]
fn the_otel_context_is_current_while_the_child_is_dropped_and_gone_after() {
    let (tx, rx) = mpsc::channel();
    let fut = {
        let guard = ReportOnDrop::new(tx, marker);
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }
        .with_otel_context(OtelContext::new().with_value(Marker(3)))
    };
    let mut fut = Box::pin(fut);
    let waker = futures::task::noop_waker();
    assert!(fut
        .as_mut()
        .poll(&mut std::task::Context::from_waker(&waker))
        .is_pending());
    assert_eq!(marker(), None); // detached after the poll
    drop(fut);
    assert_eq!(rx.recv().unwrap(), Some(3));
    assert_eq!(marker(), None);
}

#[test]
fn a_worker_keeps_no_otel_context_after_a_child_ran_on_it() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let attached = {
            let _guard = OtelContext::current_with_value(Marker(5)).attach();
            contextvars::tokio::spawn_with_context(async { marker() })
        };
        assert_eq!(attached.await.unwrap(), Some(5));
        // A plain spawn, polled on the same (only) worker.
        let plain = tokio::spawn(async { marker() });
        assert_eq!(plain.await.unwrap(), None);
    });
}

#[test]
fn a_remote_span_context_attached_before_a_spawn_parents_its_spans() {
    let (tracer, exporter, _provider) = tracer();
    let remote = SpanContext::new(
        TraceId::from_hex(TRACE).unwrap(),
        SpanId::from_hex(REMOTE_PARENT).unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let handle = {
        let _guard = OtelContext::new().with_remote_span_context(remote).attach();
        let tracer = tracer.clone();
        thread::run_in_pool_with_context(move || child_span(&tracer, "in-pool"))
    };
    handle.join().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(
        spans[0].span_context.trace_id(),
        TraceId::from_hex(TRACE).unwrap()
    );
    assert_eq!(
        spans[0].parent_span_id,
        SpanId::from_hex(REMOTE_PARENT).unwrap()
    );
}

#[test]
fn a_request_through_the_layer_without_otel_headers_gets_a_root() {
    // No traceparent: spans in the handler start a new trace, and nothing fails.
    let (tracer, exporter, _provider) = tracer();
    let service =
        ContextLayer::new(standard()).layer(tower::service_fn(move |_: Request<Body>| {
            let tracer = tracer.clone();
            async move {
                child_span(&tracer, "root");
                Ok::<_, Infallible>(axum::http::Response::new(()))
            }
        }));
    // Not `futures::executor::block_on`: the simple exporter blocks on its own executor.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(service.oneshot(Request::new(Body::empty())))
        .unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].parent_span_id, SpanId::INVALID);
}

#[test]
fn the_otel_context_stays_across_awaits_and_after_a_panicking_poll() {
    let waker = futures::task::noop_waker();
    let mut task_cx = std::task::Context::from_waker(&waker);

    // Three polls: the context is there each time, and nowhere in between.
    let mut polls = Box::pin(
        async {
            let mut seen = Vec::new();
            for _ in 0..3 {
                seen.push(marker());
                let mut yielded = false;
                std::future::poll_fn(|_| {
                    if yielded {
                        std::task::Poll::Ready(())
                    } else {
                        yielded = true;
                        std::task::Poll::Pending
                    }
                })
                .await;
            }
            seen
        }
        .with_otel_context(OtelContext::new().with_value(Marker(4))),
    );
    let seen = loop {
        match polls.as_mut().poll(&mut task_cx) {
            std::task::Poll::Ready(seen) => break seen,
            std::task::Poll::Pending => assert_eq!(marker(), None),
        }
    };
    assert_eq!(seen, [Some(4); 3]);

    // A poll that panics: the context is detached, and still there when the future is dropped.
    let (tx, rx) = mpsc::channel();
    let mut panicking = Box::pin(
        {
            let report = ReportOnDrop::new(tx, marker);
            async move {
                let _report = report;
                panic!("poll failed");
            }
        }
        .with_otel_context(OtelContext::new().with_value(Marker(6))),
    );
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = panicking.as_mut().poll(&mut task_cx);
    }));
    assert!(caught.is_err());
    assert_eq!(marker(), None);
    // The async block's locals were dropped by the unwinding itself, inside the context.
    assert_eq!(rx.recv().unwrap(), Some(6));
    assert_eq!(panicking.otel_context().get::<Marker>(), Some(&Marker(6)));
    drop(panicking);
}

// ---------------------------------------------------------------------------------------------
// Trust: the OTel side believes and leaks no more than this crate does.

static LOCALE: ContextVar<String> = ContextVar::new("locale").with_display();

/// An edge service's propagation: callers and destinations untrusted (the defaults); `locale`
/// may come from anyone and go anywhere, `tenant` neither.
fn edge() -> Propagation {
    Propagation::builder()
        .baggage_str(&TENANT, "tenant")
        .baggage_str(&LOCALE, "locale")
        .accept_from_untrusted("locale")
        .public("locale")
        .build()
}

/// Every member of the current OTel baggage, sorted.
fn otel_baggage() -> Vec<String> {
    let cx = OtelContext::current();
    let mut members: Vec<String> = cx
        .baggage()
        .iter()
        .map(|(key, (value, _))| format!("{key}={value}"))
        .collect();
    members.sort_unstable();
    members
}

#[test]
fn an_untrusted_caller_s_traceparent_and_baggage_are_not_believed() {
    let (tracer, exporter, _provider) = tracer();
    runtime(2).block_on(async {
        let handler_tracer = tracer.clone();
        let app = Router::new()
            .route(
                "/edge",
                get(move |headers: HeaderMap| {
                    let tracer = handler_tracer.clone();
                    async move {
                        let from = headers["x-from"].to_str().unwrap().to_owned();
                        tracer.start(format!("edge-{from}")).end();
                        // What the handler would send on to one of our own services.
                        let mut out = HeaderMap::new();
                        inject_headers_with(&edge().with_outbound(Trust::Trusted), &mut out);
                        let sent = out.get("baggage").map(|v| v.to_str().unwrap().to_owned());
                        format!(
                            "{}|{:?}|{:?}|{:?}",
                            otel_baggage().join(","),
                            TENANT.get(),
                            LOCALE.get(),
                            sent,
                        )
                    }
                }),
            )
            // The gateway marks what it forwards; strangers do not get that header through.
            .layer(
                ContextLayer::new(edge()).trust_callers_if(|head| head.headers["x-from"] == "gateway"),
            );
        let (addr, stop) = serve(app).await;
        let spoofed = |from: &'static str| {
            get_request(
                addr,
                "/edge",
                &[
                    ("x-from", from),
                    ("traceparent", &traceparent()),
                    ("tracestate", "vendor=spoofed"),
                    ("baggage", "tenant=other-customer,locale=fr,internal=1"),
                ],
            )
        };
        let stranger = client(usize::MAX).request(spoofed("stranger")).await.unwrap();
        let stranger = body_text(stranger.into_body()).await;
        let gateway = client(usize::MAX).request(spoofed("gateway")).await.unwrap();
        let gateway = body_text(gateway.into_body()).await;

        // From a stranger: only `locale` reached either API, and only it would go on.
        assert_eq!(
            stranger,
            r#"locale=fr|None|Some("fr")|Some("locale=fr")"#
        );
        // The same headers from the gateway: everything is believed and forwarded.
        assert_eq!(
            gateway,
            r#"internal=1,locale=fr,tenant=other-customer|Some("other-customer")|Some("fr")|Some("tenant=other-customer,locale=fr,internal=1")"#
        );
        stop.now();
    });

    let spans = exporter.get_finished_spans().unwrap();
    let span = |name: &str| spans.iter().find(|s| s.name == name).unwrap().clone();
    let trace = TraceId::from_hex(TRACE).unwrap();
    // The stranger's traceparent is not the parent: a new trace, a root span.
    let stranger = span("edge-stranger");
    assert_ne!(stranger.span_context.trace_id(), trace);
    assert_eq!(stranger.parent_span_id, SpanId::INVALID);
    assert!(!stranger.parent_span_is_remote);
    assert_ne!(
        stranger.span_context.trace_state().header(),
        "vendor=spoofed"
    );
    // The gateway's is.
    let gateway = span("edge-gateway");
    assert_eq!(gateway.span_context.trace_id(), trace);
    assert_eq!(
        gateway.parent_span_id,
        SpanId::from_hex(REMOTE_PARENT).unwrap()
    );
    assert_eq!(
        gateway.span_context.trace_state().header(),
        "vendor=spoofed"
    );
}

#[test]
fn to_an_untrusted_destination_no_private_otel_baggage_is_sent() {
    let (tracer, _exporter, _provider) = tracer();
    runtime(2).block_on(async {
        // A third party's API: shows what it received.
        let echo = Router::new().route(
            "/echo",
            get(|headers: HeaderMap| async move {
                let header = |name: &str| {
                    let value = headers.get(name).map(|v| v.to_str().unwrap().to_owned());
                    value.unwrap_or_default()
                };
                format!("{}|{}", header("traceparent"), header("baggage"))
            }),
        );
        let (addr, stop) = serve(echo).await;

        let send = |trusted_hosts: &'static [&'static str]| {
            let client = ClientContextLayer::new(edge())
                .trusted_hosts(trusted_hosts)
                .layer(client(usize::MAX));
            let span = tracer.start("client-call");
            let trace_id = span.span_context().trace_id();
            // Set through OTel's API: a registered private key, a public one, and a key
            // only OTel knows; `TENANT` through ours.
            let cx = OtelContext::current_with_baggage([
                KeyValue::new("tenant", "otel-acme"),
                KeyValue::new("locale", "de"),
                KeyValue::new("session", "s3cr3t"),
            ])
            .with_span(span);
            let call = {
                let _guard = cx.attach();
                TENANT.scope("acme".to_owned(), || {
                    contextvars::tokio::spawn_with_context(client.oneshot(get_request(
                        addr,
                        "/echo",
                        &[],
                    )))
                })
            };
            async move {
                let response = call.await.unwrap().unwrap();
                (trace_id, body_text(response.into_body()).await)
            }
        };

        // 127.0.0.1 is not among the trusted hosts: only the public key, and the trace context.
        let (trace_id, untrusted) = send(&["*.internal"]).await;
        let (traceparent, baggage) = untrusted.split_once('|').unwrap();
        assert_eq!(baggage, "locale=de");
        assert!(
            traceparent.starts_with(&format!("00-{trace_id}-")),
            "{traceparent}"
        );

        // The control: trusted, everything goes (the variable wins over OTel's `tenant`).
        let (_, trusted) = send(&["127.0.0.1"]).await;
        let (_, baggage) = trusted.split_once('|').unwrap();
        let mut members: Vec<&str> = baggage.split(',').collect();
        members.sort_unstable();
        assert_eq!(members, ["locale=de", "session=s3cr3t", "tenant=acme"]);
        stop.now();
    });
}
