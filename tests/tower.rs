//! The tower layer on a real axum server over loopback: ids under load, background work after
//! the response, two hops with baggage, bad inputs, and OpenTelemetry interop.
#![cfg(all(feature = "tower", feature = "tokio", feature = "rayon"))]

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
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
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, watch};
use tower::{Layer, ServiceExt};
use tower_http::request_id::{MakeRequestId, RequestId};

static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
static USER_ID: ContextVar<u64> = ContextVar::new("user_id").with_display();
static LEAK: ContextVar<&'static str> = ContextVar::new("leak");

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

fn propagation() -> Propagation {
    Propagation::builder()
        .baggage_str(&TENANT, "tenant")
        .baggage(&USER_ID, "user.id", |s| s.parse().ok())
        .inbound(Trust::Trusted)
        .outbound(Trust::Trusted)
        .build()
}

/// The default layer, for a service whose callers are trusted (these tests check the trusted
/// behaviour; `tests/trust.rs` checks the untrusted one).
fn internal_layer() -> ContextLayer {
    ContextLayer::new(Propagation::builder().inbound(Trust::Trusted).build())
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn client(max_idle: usize) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(max_idle)
        .build_http()
}

fn get_request(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    let mut request = Request::get(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Empty::new()).unwrap()
}

async fn body_text(
    body: impl axum::body::HttpBody<Data = Bytes, Error = impl std::fmt::Debug>,
) -> String {
    String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
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

    runtime().block_on(async {
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
        let addr = serve(app).await;
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
    runtime().block_on(async {
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
        let addr = serve(app).await;
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
    runtime().block_on(async {
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
        let addr = serve(app).await;
        let client = client(1);
        for _ in 0..10 {
            let response = client.request(get_request(addr, "/", &[])).await.unwrap();
            assert_eq!(body_text(response.into_body()).await, "None Err(true)");
        }
    });
}

#[test]
fn work_in_the_inner_services_call_runs_in_the_request_context() {
    runtime().block_on(async {
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
    runtime().block_on(async {
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
            .layer(ContextLayer::new(propagation()));
        let addr_b = serve(service_b).await;

        let outgoing = ClientContextLayer::new(propagation()).layer(client(8));
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
            .layer(ContextLayer::new(propagation()));
        let addr_a = serve(service_a).await;
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
// Bad input: never fails, never panics, does what the docs say.

/// Sends `request` through a router that reports what the handler saw.
async fn seen(
    layer: ContextLayer<impl MakeRequestId + Clone + Send + Sync + 'static>,
    request: Request<Body>,
) -> (Option<HeaderValue>, String) {
    let app = Router::new()
        .route(
            "/",
            post(|| async {
                format!(
                    "{:?}|{:?}|{:?}|{}",
                    REQUEST_ID.get(),
                    TENANT.get(),
                    USER_ID.get(),
                    Baggage::forwarded()
                )
            }),
        )
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

fn assert_generated(echoed: &Option<HeaderValue>, body: &str) {
    let id = echoed.as_ref().unwrap().to_str().unwrap();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(body.starts_with(&format!("Some({id:?})")), "{body}");
}

#[test]
fn bad_request_ids_are_replaced_by_generated_ones() {
    runtime().block_on(async {
        let layer = ContextLayer::new(propagation());
        let long = "x".repeat(129);
        let cases: [&[u8]; 5] = [
            b"",
            long.as_bytes(),
            b"has space",
            b"caf\xc3\xa9",
            b"\xff\xfe",
        ];
        for bad in cases {
            let (echoed, body) = seen(layer.clone(), request_with(&[("x-request-id", bad)])).await;
            assert_generated(&echoed, &body);
            assert_ne!(echoed.unwrap().as_bytes(), bad);
        }
        // Missing.
        let (echoed, body) = seen(layer.clone(), request_with(&[])).await;
        assert_generated(&echoed, &body);
        // Exactly at the limit is fine; a configured limit is honored.
        let at_limit = "y".repeat(128);
        let (echoed, _) = seen(
            layer.clone(),
            request_with(&[("x-request-id", at_limit.as_bytes())]),
        )
        .await;
        assert_eq!(echoed.unwrap(), at_limit.as_str());
        let short = ContextLayer::new(
            Propagation::builder()
                .max_request_id_len(4)
                .inbound(Trust::Trusted)
                .build(),
        );
        let (echoed, body) = seen(short, request_with(&[("x-request-id", b"12345")])).await;
        assert_generated(&echoed, &body);
        // Several headers: the first wins.
        let request = Request::post("/")
            .header("x-request-id", "first")
            .header("x-request-id", "second")
            .body(Body::empty())
            .unwrap();
        let (echoed, _) = seen(layer.clone(), request).await;
        assert_eq!(echoed.unwrap(), "first");
    });
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
fn a_generator_without_an_id_leaves_the_request_without_one() {
    runtime().block_on(async {
        let (echoed, body) = seen(internal_layer().make_request_id(NoIds), request_with(&[])).await;
        assert_eq!(echoed, None);
        assert!(body.starts_with("None|"), "{body}");
        let (echoed, body) =
            seen(internal_layer().make_request_id(BadIds), request_with(&[])).await;
        assert_eq!(echoed, None);
        assert!(body.starts_with("None|"), "{body}");
        // tower-http's own generator plugs in.
        let uuid = internal_layer().make_request_id(tower_http::request_id::MakeRequestUuid);
        let (echoed, _) = seen(uuid, request_with(&[])).await;
        assert_eq!(echoed.unwrap().len(), 36);
    });
}

#[test]
fn bad_baggage_drops_what_is_bad_and_keeps_the_rest() {
    runtime().block_on(async {
        let layer = ContextLayer::new(propagation());
        let id: (&str, &[u8]) = ("x-request-id", b"r");
        let cases: &[(&[&[u8]], &str)] = &[
            // Malformed members among good ones.
            (
                &[b"tenant=acme, nokey, =v, bad key=1, k=a\"b, p=%G1, r=1;bad prop, s=ok"],
                r#"Some("r")|Some("acme")|None|s=ok"#,
            ),
            // Escapes that decode to invalid UTF-8: kept, with U+FFFD, and forwarded as received.
            (
                &[b"q=%FF,tenant=a%FFb"],
                "Some(\"r\")|Some(\"a\u{FFFD}b\")|None|q=%FF",
            ),
            // A registered member that does not parse is dropped, not forwarded.
            (
                &[b"user.id=forty-two,tenant=t"],
                r#"Some("r")|Some("t")|None|"#,
            ),
            // Duplicates: the last wins.
            (
                &[b"user.id=1,x=a,user.id=2,x=b"],
                r#"Some("r")|None|Some(2)|x=b"#,
            ),
            // A non-UTF-8 line is ignored whole; other lines are read.
            (
                &[b"tenant=one", b"x=\xc3\xa9,y=2", b"user.id=7"],
                r#"Some("r")|Some("one")|Some(7)|"#,
            ),
            // Empty members and spaces.
            (
                &[b" , ,tenant = spaced ,\t, x=1 ;  p ,"],
                r#"Some("r")|Some("spaced")|None|x=1;p"#,
            ),
        ];
        for (lines, expected) in cases {
            let mut headers: Vec<(&str, &[u8])> = vec![id];
            headers.extend(lines.iter().map(|line| ("baggage", *line)));
            let (_, body) = seen(layer.clone(), request_with(&headers)).await;
            assert_eq!(&body, expected, "{lines:?}");
        }

        // Over the byte limit: members ending past byte 8192 are dropped.
        let big = format!("tenant=a,x={},user.id=3", "v".repeat(9000));
        let (_, body) = seen(
            layer.clone(),
            request_with(&[id, ("baggage", big.as_bytes())]),
        )
        .await;
        assert_eq!(body, r#"Some("r")|Some("a")|None|"#);

        // Over the member limit: the first 64 are kept.
        let many: Vec<String> = (0..100).map(|i| format!("m{i}={i}")).collect();
        let (_, body) = seen(
            layer.clone(),
            request_with(&[id, ("baggage", many.join(",").as_bytes())]),
        )
        .await;
        let forwarded = Baggage::parse(body.rsplit('|').next().unwrap());
        assert_eq!(forwarded.len(), 64);
        assert_eq!(forwarded.get("m63"), Some("63"));
        assert_eq!(forwarded.get("m64"), None);
    });
}

#[test]
fn the_member_limit_counts_distinct_accepted_keys() {
    runtime().block_on(async {
        // `tenant` parsed as a number (into USER_ID, which `seen` prints third).
        let numeric = ContextLayer::new(
            Propagation::builder()
                .baggage(&USER_ID, "tenant", |s| s.parse().ok())
                .inbound(Trust::Trusted)
                .outbound(Trust::Trusted)
                .build(),
        );
        let id: (&str, &[u8]) = ("x-request-id", b"r");
        let run = |baggage: String| {
            let layer = numeric.clone();
            async move {
                seen(layer, request_with(&[id, ("baggage", baggage.as_bytes())]))
                    .await
                    .1
            }
        };

        // Rejected registered members do not count: what follows them is still read.
        let bad = vec!["tenant=bad"; 70].join(",");
        assert_eq!(
            run(format!("{bad},other=kept")).await,
            r#"Some("r")|None|None|other=kept"#
        );
        // The last value that parses wins; one that does not leaves the earlier one.
        assert_eq!(
            run("tenant=5,tenant=7".into()).await,
            r#"Some("r")|None|Some(7)|"#
        );
        assert_eq!(
            run("tenant=5,tenant=bad".into()).await,
            r#"Some("r")|None|Some(5)|"#
        );
        // Duplicates of accepted keys do not count, and still replace after the limit is
        // reached, for registered and forwarded keys alike; new keys past it are dropped.
        let full: Vec<String> = (1..63).map(|i| format!("m{i}={i}")).collect();
        let header = format!(
            "tenant=1,m0=a,tenant=2,m0=b,{},tenant=3,m0=c,new=x",
            full.join(",")
        );
        let body = run(header).await;
        assert!(body.starts_with(r#"Some("r")|None|Some(3)|"#), "{body}");
        let forwarded = Baggage::parse(body.rsplit('|').next().unwrap());
        assert_eq!(forwarded.len(), 63);
        assert_eq!(forwarded.get("m0"), Some("c"));
        assert_eq!(forwarded.get("m62"), Some("62"));
        assert_eq!(forwarded.get("new"), None);
        // The same rules as `Baggage::parse` on the forwarded members.
        let forwarded_only: Vec<String> = (0..64).map(|i| format!("k{i}=v")).collect();
        let header = format!("{},k0=b,k64=x", forwarded_only.join(","));
        let body = run(header.clone()).await;
        let forwarded = Baggage::parse(body.rsplit('|').next().unwrap());
        assert_eq!(forwarded, Baggage::parse(&header));
        assert_eq!(forwarded.get("k0"), Some("b"));
    });
}

// ---------------------------------------------------------------------------------------------
// Response bodies: polled after the response future, outside the request's context.

#[test]
fn a_streaming_body_sees_the_context_only_when_wrapped() {
    use contextvars::ContextExt;

    runtime().block_on(async {
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
        let addr = serve(app).await;
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
    let propagation = propagation();
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
    let service =
        ContextLayer::new(propagation()).layer(tower::service_fn(|_: Request<()>| async {
            let mut headers = HeaderMap::new();
            inject_headers_with(&propagation(), &mut headers);
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
    let service =
        ContextLayer::new(propagation()).layer(tower::service_fn(|_: Request<()>| async {
            let mut headers = HeaderMap::new();
            inject_headers_with(&propagation(), &mut headers);
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

    let service =
        ContextLayer::new(propagation()).layer(tower::service_fn(|_: Request<()>| async {
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
