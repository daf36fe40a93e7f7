//! The tower layer on a real axum server over loopback: ids under load, background work after
//! the response, two hops with baggage, bad inputs, and OpenTelemetry interop.
#![cfg(all(feature = "tower", feature = "tokio", feature = "rayon"))]

mod common;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use contextvars::rayon::run_in_global_pool_with_context;
use contextvars::tokio::{spawn_blocking_with_context, spawn_with_context};
use contextvars::tower::{
    inject_headers_with, Baggage, ClientContextLayer, ContextLayer, Propagation, Trust, REQUEST_ID,
};
use contextvars::{Context, ContextVar};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tower::{Layer, ServiceExt};
use tower_http::request_id::{MakeRequestId, RequestId};

use common::bad_input::{self, Generator};
use common::http::{body_text, client, get_request, runtime, serve};
use common::propagation::{standard, TENANT, USER_ID};

static LEAK: ContextVar<&'static str> = ContextVar::new("leak");

/// The default layer, for a service whose callers are trusted (these tests check the trusted
/// behaviour; `tests/trust.rs` checks the untrusted one).
fn internal_layer() -> ContextLayer {
    ContextLayer::new(Propagation::builder().inbound(Trust::Trusted).build())
}

// ---------------------------------------------------------------------------------------------
// Load: every request, and everything it starts, sees its own id.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Handler,
    Task,
    Blocking,
    Rayon,
}

#[test]
fn two_thousand_requests_at_64_in_flight_each_see_their_own_id() {
    const REQUESTS: usize = 2_000;
    const IN_FLIGHT: usize = 64;

    runtime(4).block_on(async {
        let (report, mut reports) = mpsc::unbounded_channel::<(String, Kind, Option<String>)>();
        let (release, released) = watch::channel(false);
        let app = Router::new()
            .route(
                "/work",
                get(move |headers: HeaderMap| {
                    let report = report.clone();
                    let mut released = released.clone();
                    async move {
                        let sent = headers["x-request-id"].to_str().unwrap().to_owned();
                        tokio::task::yield_now().await;
                        tokio::time::sleep(Duration::from_micros(50)).await;
                        report
                            .send((sent.clone(), Kind::Handler, REQUEST_ID.get()))
                            .unwrap();

                        // Outlives the response: reports only once the test releases it.
                        let (task_report, task_sent) = (report.clone(), sent.clone());
                        spawn_with_context(async move {
                            released.wait_for(|go| *go).await.unwrap();
                            task_report
                                .send((task_sent, Kind::Task, REQUEST_ID.get()))
                                .unwrap();
                        });
                        let (blocking_report, blocking_sent) = (report.clone(), sent.clone());
                        let blocking = spawn_blocking_with_context(move || {
                            blocking_report
                                .send((blocking_sent, Kind::Blocking, REQUEST_ID.get()))
                                .unwrap();
                        });
                        let (rayon_report, rayon_sent) = (report.clone(), sent.clone());
                        let pooled = run_in_global_pool_with_context(move || {
                            rayon_report
                                .send((rayon_sent, Kind::Rayon, REQUEST_ID.get()))
                                .unwrap();
                        });
                        blocking.await.unwrap();
                        pooled.await.unwrap();
                        REQUEST_ID.get().unwrap_or_default()
                    }
                }),
            )
            .layer(internal_layer());
        let (addr, _stop) = serve(app).await;
        let client = client(IN_FLIGHT);

        let responses: Vec<(String, String, String)> = futures::stream::iter(0..REQUESTS)
            .map(|i| {
                let client = client.clone();
                async move {
                    let id = format!("load-{i:05}");
                    let response = client
                        .request(get_request(addr, "/work", &[("x-request-id", &id)]))
                        .await
                        .unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                    let echoed = response.headers()["x-request-id"]
                        .to_str()
                        .unwrap()
                        .to_owned();
                    (id, echoed, body_text(response.into_body()).await)
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;

        assert_eq!(responses.len(), REQUESTS);
        for (sent, echoed, body) in &responses {
            assert_eq!(echoed, sent);
            assert_eq!(body, sent);
        }

        // All responses are in; only now may the background tasks report.
        release.send(true).unwrap();
        let expected = REQUESTS * 4;
        let mut seen: HashMap<(String, Kind), usize> = HashMap::new();
        let mut mismatches = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while seen.values().sum::<usize>() < expected {
            let (sent, kind, got) = tokio::time::timeout_at(deadline, reports.recv())
                .await
                .expect("every report arrives")
                .unwrap();
            if got.as_deref() != Some(sent.as_str()) {
                mismatches.push((sent.clone(), kind, got));
            }
            *seen.entry((sent, kind)).or_default() += 1;
        }
        assert!(mismatches.is_empty(), "mismatches: {mismatches:?}");
        for i in 0..REQUESTS {
            for kind in [Kind::Handler, Kind::Task, Kind::Blocking, Kind::Rayon] {
                assert_eq!(
                    seen.get(&(format!("load-{i:05}"), kind)),
                    Some(&1),
                    "{i} {kind:?}"
                );
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Isolation.

#[test]
fn nothing_from_the_caller_or_an_earlier_request_on_the_connection_is_visible() {
    runtime(4).block_on(async {
        let app = Router::new()
            .route(
                "/",
                get(|| async {
                    let before = LEAK.get();
                    LEAK.set("set by a handler");
                    format!("{before:?}")
                }),
            )
            .layer(internal_layer());

        // In process, called from a context that has a value.
        let outer = Context::new().with_value(&LEAK, "from the caller");
        let response = outer
            .run(|| {
                app.clone()
                    .oneshot(Request::get("/").body(Body::empty()).unwrap())
            })
            .await
            .unwrap();
        assert_eq!(body_text(response.into_body()).await, "None");

        // Over one kept-alive connection, request after request.
        let (addr, _stop) = serve(app).await;
        let client = client(1);
        for _ in 0..20 {
            let response = client.request(get_request(addr, "/", &[])).await.unwrap();
            assert_eq!(body_text(response.into_body()).await, "None");
        }
    });
}

#[test]
fn a_route_outside_the_layer_cannot_set_into_the_connection_task() {
    // No layer: the handler runs in hyper's plain tokio task for the connection, with no frame
    // of this crate. A set there would stay on the worker for the next request.
    runtime(4).block_on(async {
        let app = Router::new().route(
            "/",
            get(|| async {
                let before = LEAK.get();
                let refused = LEAK
                    .try_set("set by a handler")
                    .map_err(|error| error.is_outside_any_frame());
                format!("{before:?} {refused:?}")
            }),
        );
        let (addr, _stop) = serve(app).await;
        let client = client(1);
        for _ in 0..10 {
            let response = client.request(get_request(addr, "/", &[])).await.unwrap();
            assert_eq!(body_text(response.into_body()).await, "None Err(true)");
        }
    });
}

#[test]
fn work_in_the_inner_services_call_runs_in_the_request_context() {
    runtime(4).block_on(async {
        let service = internal_layer().layer(tower::service_fn(|_: Request<()>| {
            let seen_in_call = REQUEST_ID.get(); // before the future exists
            async move { Ok::<_, Infallible>(axum::http::Response::new(seen_in_call)) }
        }));
        let request = Request::builder()
            .header("x-request-id", "in-call")
            .body(())
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.into_body().as_deref(), Some("in-call"));
    });
}

// ---------------------------------------------------------------------------------------------
// Two hops.

#[test]
fn two_hops_carry_the_request_id_and_baggage() {
    runtime(4).block_on(async {
        let service_b = Router::new()
            .route(
                "/b",
                get(|| async {
                    format!(
                        "{}|{:?}|{:?}|{}",
                        REQUEST_ID.get().unwrap_or_default(),
                        TENANT.get(),
                        USER_ID.get(),
                        Baggage::forwarded()
                    )
                }),
            )
            .layer(ContextLayer::new(standard()));
        let (addr_b, _stop_b) = serve(service_b).await;

        let outgoing = ClientContextLayer::new(standard()).layer(client(8));
        let service_a = Router::new()
            .route(
                "/a",
                get(move || {
                    let outgoing = outgoing.clone();
                    async move {
                        let response = outgoing
                            .oneshot(get_request(addr_b, "/b", &[]))
                            .await
                            .unwrap();
                        body_text(response.into_body()).await
                    }
                }),
            )
            .layer(ContextLayer::new(standard()));
        let (addr_a, _stop_a) = serve(service_a).await;
        let client = client(8);

        let response = client
            .request(get_request(
                addr_a,
                "/a",
                &[
                    ("x-request-id", "hop-1"),
                    (
                        "baggage",
                        "tenant=acme%20corp, user.id=42, extra=x;p=1, n=%C3%A9",
                    ),
                ],
            ))
            .await
            .unwrap();
        assert_eq!(response.headers()["x-request-id"], "hop-1");
        assert_eq!(
            body_text(response.into_body()).await,
            r#"hop-1|Some("acme corp")|Some(42)|extra=x;p=1,n=%C3%A9"#
        );

        // No headers: A generates an id, B sees that one, and no baggage.
        let response = client
            .request(get_request(addr_a, "/a", &[]))
            .await
            .unwrap();
        let generated = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(generated.len(), 32);
        assert_eq!(
            body_text(response.into_body()).await,
            format!("{generated}|None|None|")
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Bad input: never fails, never panics, does what the docs say. The rows are shared with the
// actix-web middleware's tests (`tests/common/bad_input.rs`).

/// Sends `request` through a router whose handler answers what it saw.
async fn seen(
    layer: ContextLayer<impl MakeRequestId + Clone + Send + Sync + 'static>,
    request: Request<Body>,
) -> (Option<HeaderValue>, String) {
    let app = Router::new()
        .route("/", post(|| async { bad_input::handler_body() }))
        .layer(layer);
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echoed = response.headers().get("x-request-id").cloned();
    (echoed, body_text(response.into_body()).await)
}

fn request_with(headers: &[(&str, &[u8])]) -> Request<Body> {
    let mut request = Request::post("/");
    for (name, value) in headers {
        request = request.header(*name, HeaderValue::from_bytes(value).unwrap());
    }
    request.body(Body::empty()).unwrap()
}

#[derive(Clone)]
struct NoIds;

impl MakeRequestId for NoIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        None
    }
}

#[derive(Clone)]
struct BadIds;

impl MakeRequestId for BadIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        Some(RequestId::new(HeaderValue::from_static("not valid")))
    }
}

#[test]
fn the_bad_input_rows_give_what_the_docs_say() {
    runtime(4).block_on(async {
        let rows = bad_input::rows();
        assert!(rows.len() >= 25);
        for row in &rows {
            let headers: Vec<(&str, &[u8])> = row
                .headers
                .iter()
                .map(|(name, value)| (*name, value.as_slice()))
                .collect();
            let request = request_with(&headers);
            let layer = ContextLayer::new(row.config.propagation());
            let (echoed, body) = match row.config.generator() {
                Generator::Default => seen(layer, request).await,
                Generator::Nothing => seen(layer.make_request_id(NoIds), request).await,
                Generator::Invalid => seen(layer.make_request_id(BadIds), request).await,
            };
            row.check(echoed.as_ref().map(HeaderValue::as_bytes), &body);
        }
        // tower-http's own generator plugs in.
        let uuid = internal_layer().make_request_id(tower_http::request_id::MakeRequestUuid);
        let (echoed, _) = seen(uuid, request_with(&[])).await;
        assert_eq!(echoed.unwrap().len(), 36);
    });
}

// ---------------------------------------------------------------------------------------------
// Response bodies: polled after the response future, outside the request's context.

#[test]
fn a_streaming_body_sees_the_context_only_when_wrapped() {
    use contextvars::ContextExt;

    runtime(4).block_on(async {
        let stream = || {
            futures::stream::once(async { Ok::<_, Infallible>(format!("{:?}", REQUEST_ID.get())) })
        };
        let app = Router::new()
            .route(
                "/wrapped",
                get(move || async move { Body::from_stream(stream().with_current_context()) }),
            )
            .route(
                "/bare",
                get(move || async move { Body::from_stream(stream()) }),
            )
            .layer(internal_layer());
        let (addr, _stop) = serve(app).await;
        let client = client(1);

        let response = client
            .request(get_request(addr, "/wrapped", &[("x-request-id", "req-s")]))
            .await
            .unwrap();
        assert_eq!(body_text(response.into_body()).await, r#"Some("req-s")"#);
        // Without the wrapper the connection task polls the stream in its own, empty, context.
        let response = client
            .request(get_request(addr, "/bare", &[("x-request-id", "req-s")]))
            .await
            .unwrap();
        assert_eq!(body_text(response.into_body()).await, "None");
    });
}

// ---------------------------------------------------------------------------------------------
// Client side and OpenTelemetry interop.

#[test]
fn inject_writes_registered_forwarded_and_existing_members() {
    let propagation = standard();
    let ctx = Context::new()
        .with_value(&REQUEST_ID, "req-1".to_string())
        .with_value(&TENANT, "a,b".to_string())
        .with_value(&USER_ID, 5);
    let mut headers = HeaderMap::new();
    headers.insert("baggage", HeaderValue::from_static("tenant=old,mine=1"));
    ctx.run(|| inject_headers_with(&propagation, &mut headers));
    assert_eq!(headers["x-request-id"], "req-1");
    assert_eq!(headers["baggage"], "tenant=a%2Cb,user.id=5,mine=1");

    // Nothing set: nothing written, existing headers untouched.
    let mut headers = HeaderMap::new();
    headers.insert("baggage", HeaderValue::from_static("keep=me"));
    Context::new().run(|| inject_headers_with(&propagation, &mut headers));
    assert_eq!(headers.len(), 1);
    assert_eq!(headers["baggage"], "keep=me");
}

/// What the layer forwards: `inject_headers_with` called in the handler of a request that
/// brought `lines` as its `baggage` headers.
fn forwarded_by_the_layer(lines: &[&str]) -> Option<String> {
    let service = ContextLayer::new(standard()).layer(tower::service_fn(|_: Request<()>| async {
        let mut headers = HeaderMap::new();
        inject_headers_with(&standard(), &mut headers);
        Ok::<_, Infallible>(axum::http::Response::new(headers))
    }));
    let mut request = Request::builder();
    for line in lines {
        request = request.header("baggage", *line);
    }
    let response = futures::executor::block_on(service.oneshot(request.body(()).unwrap())).unwrap();
    let headers = response.into_body();
    assert!(headers.get_all("baggage").iter().count() <= 1);
    headers
        .get("baggage")
        .map(|value| value.to_str().unwrap().to_owned())
}

#[test]
fn members_that_fit_on_the_way_in_fit_on_the_way_out() {
    // `=` is written as is, not as `%3D`.
    let header = format!("a={},b=x==", "v".repeat(8183));
    assert_eq!(header.len(), 8191);
    assert_eq!(forwarded_by_the_layer(&[&header]).unwrap(), header);
    // Values with bad escapes (U+FFFD once decoded) go out as they came, forwarded or registered.
    let forwarded = format!("a={}", "%FF".repeat(911));
    assert_eq!(forwarded_by_the_layer(&[&forwarded]).unwrap(), forwarded);
    let registered = format!("tenant={}", "%FF".repeat(911));
    assert_eq!(forwarded_by_the_layer(&[&registered]).unwrap(), registered);
    // Registered first, then forwarded; canonical spacing; never longer than what came in.
    let lines = ["x=%FF%41 ; p = 1", "tenant = a%FF=;q, user.id=7"];
    let out = forwarded_by_the_layer(&lines).unwrap();
    assert_eq!(out, "tenant=a%FF=,user.id=7,x=%FF%41;p=1");
    assert!(out.len() <= lines.join(",").len());
}

#[test]
fn forwarded_properties_hold_no_control_characters() {
    assert_eq!(
        forwarded_by_the_layer(&["a=1;p\t;q\t=\tv"]).unwrap(),
        "a=1;p;q=v"
    );
}

#[test]
fn what_we_inject_opentelemetry_extracts() {
    use opentelemetry::baggage::BaggageExt;
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry_sdk::propagation::BaggagePropagator;

    let mut headers = HeaderMap::new();
    let forwarded = "extra=x%3Dy;prop=1";
    let service = ContextLayer::new(standard()).layer(tower::service_fn(|_: Request<()>| async {
        let mut headers = HeaderMap::new();
        inject_headers_with(&standard(), &mut headers);
        Ok::<_, Infallible>(axum::http::Response::new(headers))
    }));
    let request = Request::builder()
        .header(
            "baggage",
            format!("tenant=S%C3%A3o%20Paulo, user.id=9, {forwarded}"),
        )
        .body(())
        .unwrap();
    let response = futures::executor::block_on(service.oneshot(request)).unwrap();
    headers.extend(response.into_body());

    let carrier: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    let cx = BaggagePropagator::new().extract(&carrier);
    let baggage = cx.baggage();
    assert_eq!(baggage.get("tenant").map(|v| v.as_str()), Some("São Paulo"));
    assert_eq!(baggage.get("user.id").map(|v| v.as_str()), Some("9"));
    let (value, metadata) = baggage.get_with_metadata("extra").unwrap();
    assert_eq!((value.as_str(), metadata.as_str()), ("x=y", "prop=1"));
}

#[test]
fn what_opentelemetry_injects_we_extract() {
    use opentelemetry::baggage::BaggageExt;
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::KeyValue;
    use opentelemetry_sdk::propagation::BaggagePropagator;

    let cx = opentelemetry::Context::new().with_baggage(vec![
        KeyValue::new("tenant", "acme, inc; é"),
        KeyValue::new("user.id", "12"),
        KeyValue::new("other", "a=b c"),
    ]);
    let mut carrier: HashMap<String, String> = HashMap::new();
    BaggagePropagator::new().inject_context(&cx, &mut carrier);

    let service = ContextLayer::new(standard()).layer(tower::service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(axum::http::Response::new((
            TENANT.get(),
            USER_ID.get(),
            Baggage::forwarded(),
        )))
    }));
    let mut request = Request::builder();
    for (name, value) in &carrier {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = futures::executor::block_on(service.oneshot(request.body(()).unwrap())).unwrap();
    let (tenant, user, forwarded) = response.into_body();
    assert_eq!(tenant.as_deref(), Some("acme, inc; é"));
    assert_eq!(user, Some(12));
    assert_eq!(forwarded.get("other"), Some("a=b c"));
    let keys: HashSet<&str> = forwarded.iter().map(|m| m.key()).collect();
    assert_eq!(keys, HashSet::from(["other"]));
}
