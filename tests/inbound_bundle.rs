//! The inbound bundle: what a transport extracts from a carrier (the context and, with the
//! `opentelemetry` feature, the request's OpenTelemetry context) is one `Extracted`, handled
//! inside with `run` (a closure) and `scope` (a future). With the feature off, the OTel columns
//! of what a handler sees are `None` on both sides of every assertion.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use common::propagation::{standard_builder, TENANT};
use common::report::ReportOnDrop;
use contextvars::propagation::{
    unique_request_id, Extracted, Propagation, Trust, CALLER_REQUEST_ID, REQUEST_ID,
};
use contextvars::ContextVar;
#[cfg(feature = "opentelemetry")]
use opentelemetry::{baggage::BaggageExt, trace::TraceContextExt, Context as OtelContext};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A request from a caller: its request id, trace context and baggage.
fn headers() -> HashMap<String, String> {
    HashMap::from([
        ("x-request-id".to_string(), "req-1".to_string()),
        ("traceparent".to_string(), TRACEPARENT.to_string()),
        ("baggage".to_string(), "tenant=acme".to_string()),
    ])
}

/// The shared propagation (`tenant` into `TENANT`), with callers trusted or not.
fn propagation(inbound: Trust) -> Propagation {
    standard_builder().inbound(inbound).build()
}

fn extract(inbound: Trust) -> Extracted {
    propagation(inbound).extract_with(&headers(), || Some(unique_request_id()))
}

/// What a handler sees of the request where it runs.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    request_id: Option<String>,
    tenant: Option<String>,
    /// The trace id of the current OTel context's span, when it has a valid one.
    trace_id: Option<String>,
    /// The `tenant` member of the current OTel context's baggage.
    otel_tenant: Option<String>,
}

fn seen() -> Seen {
    #[cfg(feature = "opentelemetry")]
    let (trace_id, otel_tenant) = {
        let cx = OtelContext::current();
        let span = cx.span();
        let span_context = span.span_context();
        let trace_id = span_context
            .is_valid()
            .then(|| span_context.trace_id().to_string());
        (trace_id, cx.baggage().get("tenant").map(|v| v.to_string()))
    };
    #[cfg(not(feature = "opentelemetry"))]
    let (trace_id, otel_tenant) = (None, None);
    Seen {
        request_id: REQUEST_ID.get(),
        tenant: TENANT.get(),
        trace_id,
        otel_tenant,
    }
}

/// What a trusted caller's request shows its handler.
fn from_trusted_caller() -> Seen {
    let with_otel = cfg!(feature = "opentelemetry");
    Seen {
        request_id: Some("req-1".into()),
        tenant: Some("acme".into()),
        trace_id: with_otel.then(|| TRACE.into()),
        otel_tenant: with_otel.then(|| "acme".into()),
    }
}

fn nothing() -> Seen {
    Seen {
        request_id: None,
        tenant: None,
        trace_id: None,
        otel_tenant: None,
    }
}

#[test]
fn run_sees_all_a_trusted_caller_sent_and_leaves_nothing_behind() {
    let extracted = extract(Trust::Trusted);
    assert_eq!(extracted.request_id(), Some("req-1"));
    assert_eq!(extracted.run(seen), from_trusted_caller());
    assert_eq!(seen(), nothing());
    // By reference: again, and through a clone.
    assert_eq!(extracted.run(seen), from_trusted_caller());
    assert_eq!(extracted.clone().run(seen), from_trusted_caller());
    assert_eq!(seen(), nothing());
}

#[cfg(feature = "opentelemetry")]
#[test]
fn the_otel_context_is_the_callers_trace_and_the_baggage_accepted() {
    let extracted = extract(Trust::Trusted);
    let cx = extracted.otel_context();
    assert_eq!(cx.span().span_context().trace_id().to_string(), TRACE);
    assert!(cx.span().span_context().is_remote());
    assert_eq!(
        cx.baggage().get("tenant").map(|v| v.to_string()).as_deref(),
        Some("acme")
    );
}

/// The request's context and OTel context replace what is current around the handler (a
/// request comes from nowhere), and what was current is back afterwards.
#[test]
fn run_replaces_what_is_current_and_puts_it_back() {
    static OUTER: ContextVar<u8> = ContextVar::new("outer");
    let extracted = extract(Trust::Trusted);
    #[cfg(feature = "opentelemetry")]
    let _outer_otel =
        OtelContext::current_with_baggage([opentelemetry::KeyValue::new("tenant", "outer")])
            .attach();
    let outside = || (OUTER.get(), seen());
    let before = OUTER.scope(1, outside);
    let (inside, after) = OUTER.scope(1, || (extracted.run(outside), outside()));
    assert_eq!(inside, (None, from_trusted_caller()));
    assert_eq!(after, before);
    assert_eq!(before.0, Some(1));
    assert_eq!(
        before.1.otel_tenant.as_deref(),
        cfg!(feature = "opentelemetry").then_some("outer")
    );
}

#[test]
fn an_untrusted_caller_gets_its_own_request_id_and_a_new_trace() {
    let extracted = extract(Trust::Untrusted);
    let (seen, caller) = extracted.run(|| (seen(), CALLER_REQUEST_ID.get()));
    assert_eq!(caller.as_deref(), Some("req-1"));
    let request_id = seen.request_id.clone().expect("a generated request id");
    assert_ne!(request_id, "req-1");
    assert_eq!(
        seen,
        Seen {
            request_id: Some(request_id),
            ..nothing()
        }
    );
}

/// Inside the bundle, what is sent on is what came in: the same request id, trace and baggage.
#[test]
fn what_a_handler_sends_on_is_what_came_in() {
    let extracted = extract(Trust::Trusted);
    let mut outgoing = HashMap::new();
    extracted.run(|| propagation(Trust::Trusted).inject(&mut outgoing));
    assert_eq!(outgoing["x-request-id"], "req-1");
    assert_eq!(outgoing["baggage"], "tenant=acme");
    #[cfg(feature = "opentelemetry")]
    {
        let traceparent = &outgoing["traceparent"];
        assert!(
            traceparent.starts_with(&format!("00-{TRACE}-")),
            "{traceparent}"
        );
    }
    #[cfg(not(feature = "opentelemetry"))]
    assert!(!outgoing.contains_key("traceparent"));
}

/// The future form keeps everything across awaits, on whichever worker resumes it, and leaves
/// nothing on the workers.
#[test]
fn scope_keeps_everything_across_awaits_on_any_worker() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let extracted = extract(Trust::Trusted);
    let handler = extracted.run(|| {
        // Called inside: what the handler sees before its first await.
        let at_call = seen();
        async move {
            let mut all = vec![at_call, seen()];
            for round in 0..6 {
                if round % 2 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                } else {
                    tokio::task::yield_now().await;
                }
                all.push(seen());
            }
            all
        }
    });
    let future = extracted.scope(handler);
    runtime.block_on(async {
        // A plain spawn: the future carries all it needs.
        let all = tokio::spawn(future).await.unwrap();
        assert_eq!(all.len(), 8);
        for (i, seen) in all.iter().enumerate() {
            assert_eq!(*seen, from_trusted_caller(), "at step {i}");
        }
        for _ in 0..4 {
            assert_eq!(tokio::spawn(async { seen() }).await.unwrap(), nothing());
        }
    });
}

/// Pending at its first poll, ready at the next.
struct PendingOnce(bool);

impl Future for PendingOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A handler holding a probe from the start (an async block never polled drops what it
/// captured).
fn handler_with_probe(tx: mpsc::Sender<Seen>) -> impl Future<Output = Seen> {
    let probe = ReportOnDrop::new(tx, seen);
    async move {
        let _probe = probe;
        PendingOnce(false).await;
        seen()
    }
}

#[test]
fn the_future_is_dropped_inside_everything_whether_cancelled_finished_or_never_polled() {
    let (tx, rx) = mpsc::channel();

    // Never polled.
    drop(extract(Trust::Trusted).scope(handler_with_probe(tx.clone())));
    assert_eq!(rx.try_recv().unwrap(), from_trusted_caller());

    // Cancelled after a poll.
    let mut future = Box::pin(extract(Trust::Trusted).scope(handler_with_probe(tx.clone())));
    let first = futures::executor::block_on(futures::future::poll_fn(|cx| {
        Poll::Ready(future.as_mut().poll(cx).is_pending())
    }));
    assert!(first, "the handler waits once");
    assert!(rx.try_recv().is_err(), "not dropped yet");
    assert_eq!(seen(), nothing());
    drop(future);
    assert_eq!(rx.try_recv().unwrap(), from_trusted_caller());

    // Finished: the handler's own result, and its drop, inside.
    let done = futures::executor::block_on(extract(Trust::Trusted).scope(handler_with_probe(tx)));
    assert_eq!(done, from_trusted_caller());
    assert_eq!(rx.try_recv().unwrap(), from_trusted_caller());
    assert_eq!(seen(), nothing());
}
