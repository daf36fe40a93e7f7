//! The actix-web middleware and spawn helpers on a real `HttpServer` over loopback: ids under
//! load in the handler, a spawned task and a blocking job (as `log` records), the bad-input
//! rows shared with the tower layer, isolation between requests, and where `set` is refused;
//! then the shared runtime scenarios on an actix system.
#![cfg(all(feature = "actix-web", feature = "log"))]

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc as std_mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use axum::body::Bytes;
use axum::http;
use common::bad_input::{self, Config, Generator};
use common::http::{client, runtime, HttpClient};
use common::logger::Capture;
use common::scenarios;
use common::stress::{Blocking, BoxFuture, Runtime};
use common::tokio_task::{abort_after, join};
use contextvars::actix_web::{block_with_context, spawn_with_context, ContextMiddleware};
use contextvars::log::ContextLogger;
use contextvars::propagation::{Propagation, Trust, CALLER_REQUEST_ID, REQUEST_ID};
use contextvars::{ContextExt, ContextVar};
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use tokio::sync::watch;

/// The middleware for a service whose callers are trusted (these tests check the trusted
/// behaviour; the untrusted one is checked at the end and in `tests/trust.rs`).
fn internal() -> ContextMiddleware {
    ContextMiddleware::new(Propagation::builder().inbound(Trust::Trusted).build())
}

static LEAK: ContextVar<&'static str> = ContextVar::new("leak");

// ---------------------------------------------------------------------------------------------
// A real server on its own actix system thread, and a real HTTP client.

/// A running `HttpServer`: its address, and what stops it.
struct Running {
    addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Stops the server gracefully and waits for its system thread to end.
    async fn stop(mut self) {
        self.handle.stop(true).await;
        let thread = self.thread.take().unwrap();
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that failed before `stop`: do not leave the server running.
        if self.thread.is_some() {
            drop(self.handle.stop(false));
        }
    }
}

/// Starts the server `build` makes on a system thread of its own (as `#[actix_web::main]`
/// would), bound to 127.0.0.1 on a free port.
fn start(build: impl FnOnce() -> (Server, SocketAddr) + Send + 'static) -> Running {
    let (sender, receiver) = std_mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let (server, addr) = build();
            sender.send((addr, server.handle())).unwrap();
            server.await.unwrap();
        })
    });
    let (addr, handle) = receiver.recv().expect("the server starts");
    Running {
        addr,
        handle,
        thread: Some(thread),
    }
}

/// `HttpServer::new(factory)` with `workers` workers, on a free loopback port, no signal
/// handling, started by [`start`].
macro_rules! serve {
    ($workers:expr, $factory:expr) => {
        start(move || {
            let server = HttpServer::new($factory)
                .workers($workers)
                .disable_signals()
                .shutdown_timeout(5)
                .bind(("127.0.0.1", 0))
                .unwrap();
            let addr = server.addrs()[0];
            (server.run(), addr)
        })
    };
}

/// Sends a request with these headers (values as raw bytes); returns the response's
/// `x-request-id` (or `echo_header`) and the body.
async fn send(
    client: &HttpClient,
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    headers: &[(&str, &[u8])],
    echo_header: &str,
) -> (Option<Vec<u8>>, String) {
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, http::HeaderValue::from_bytes(value).unwrap());
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::OK, "{path}");
    let echoed = response
        .headers()
        .get(echo_header)
        .map(|value| value.as_bytes().to_vec());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (echoed, String::from_utf8(body.to_vec()).unwrap())
}

// ---------------------------------------------------------------------------------------------
// Load: 2,000 requests at 64 in flight; every log record carries exactly its own request's id.

/// The process's logger, installed on first use: a `ContextLogger` around a capture of the
/// records of target `actix_load`.
fn load_records() -> &'static Capture {
    static LOAD_RECORDS: OnceLock<Capture> = OnceLock::new();
    LOAD_RECORDS.get_or_init(|| {
        let capture = Capture::only_target("actix_load");
        ContextLogger::new(capture.clone()).install().unwrap();
        capture
    })
}

async fn load_handler(request: HttpRequest, released: web::Data<watch::Receiver<bool>>) -> String {
    let sent = request
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    actix_web::rt::task::yield_now().await;
    log::info!(target: "actix_load", "handler {sent}");

    // Outlives the response: logs only once the test has every response. `!Send` on purpose.
    let mut released = released.get_ref().clone();
    let (task_sent, not_send) = (sent.clone(), Rc::new(()));
    spawn_with_context(async move {
        released.wait_for(|go| *go).await.unwrap();
        let _keep = not_send;
        log::info!(target: "actix_load", "task {task_sent}");
    });
    let blocking_sent = sent.clone();
    block_with_context(move || log::info!(target: "actix_load", "blocking {blocking_sent}"))
        .await
        .unwrap();
    REQUEST_ID.get().unwrap_or_default()
}

#[test]
fn two_thousand_requests_at_64_in_flight_log_their_own_id_everywhere() {
    const REQUESTS: usize = 2_000;
    const IN_FLIGHT: usize = 64;
    let records = load_records();
    let (release, released) = watch::channel(false);
    let released = web::Data::new(released);
    let server = serve!(2, move || {
        App::new()
            .app_data(released.clone())
            .route("/work", web::get().to(load_handler))
            .wrap(internal())
    });

    runtime(2).block_on(async {
        let client = client(IN_FLIGHT);
        let addr = server.addr;
        let responses: Vec<(String, Option<Vec<u8>>, String)> = futures::stream::iter(0..REQUESTS)
            .map(|i| {
                let client = client.clone();
                async move {
                    let id = format!("load-{i:05}");
                    let (echoed, body) = send(
                        &client,
                        addr,
                        http::Method::GET,
                        "/work",
                        &[("x-request-id", id.as_bytes())],
                        "x-request-id",
                    )
                    .await;
                    (id, echoed, body)
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        assert_eq!(responses.len(), REQUESTS);
        for (sent, echoed, body) in &responses {
            assert_eq!(echoed.as_deref(), Some(sent.as_bytes()));
            assert_eq!(body, sent);
        }

        // Every response is in; only now may the spawned tasks log.
        release.send(true).unwrap();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut mismatches = Vec::new();
        for record in records.wait_for(REQUESTS * 3, Duration::from_secs(60)) {
            let id = record.value_of("request_id");
            let (_, sent) = record.message.split_once(' ').unwrap();
            if id.as_deref() != Some(sent) {
                mismatches.push((record.message.clone(), id));
            }
            *seen.entry(record.message).or_default() += 1;
        }
        assert!(mismatches.is_empty(), "mismatches: {mismatches:?}");
        for i in 0..REQUESTS {
            for kind in ["handler", "task", "blocking"] {
                let message = format!("{kind} load-{i:05}");
                assert_eq!(seen.get(&message), Some(&1), "{message}");
            }
        }
        server.stop().await;
    });
}

// ---------------------------------------------------------------------------------------------
// Bad input: the rows of the tower layer, with the same results.

/// The middleware for a row's configuration.
fn middleware(config: Config) -> ContextMiddleware {
    let middleware = ContextMiddleware::new(config.propagation());
    match config.generator() {
        Generator::Default => middleware,
        Generator::Nothing => middleware.make_request_id(|_| None),
        Generator::Invalid => middleware.make_request_id(|_| Some("not valid".into())),
    }
}

#[test]
fn the_bad_input_rows_of_the_tower_layer_give_the_same_results() {
    let server = serve!(1, || {
        let mut app = App::new();
        for config in Config::ALL {
            app = app.service(
                web::scope(&format!("/{config:?}"))
                    .wrap(middleware(config))
                    .route("/", web::post().to(|| async { bad_input::handler_body() })),
            );
        }
        app
    });
    runtime(2).block_on(async {
        let client = client(1);
        let rows = bad_input::rows();
        assert!(rows.len() >= 25);
        for row in &rows {
            let headers: Vec<(&str, &[u8])> = row
                .headers
                .iter()
                .map(|(name, value)| (*name, value.as_slice()))
                .collect();
            let path = format!("/{:?}/", row.config);
            let (echoed, body) = send(
                &client,
                server.addr,
                http::Method::POST,
                &path,
                &headers,
                "x-request-id",
            )
            .await;
            row.check(echoed.as_deref(), &body);
        }
        server.stop().await;
    });
}

#[test]
fn the_request_carries_the_id_the_context_has() {
    // What the handler's extractors see in the header, beside the context's id.
    let server = serve!(1, || {
        App::new()
            .service(
                web::scope("/none")
                    .wrap(internal().make_request_id(|_| None))
                    .route(
                        "/",
                        web::get().to(|request: HttpRequest| async move {
                            format!("{}", request.headers().contains_key("x-request-id"))
                        }),
                    ),
            )
            .service(web::scope("").wrap(internal()).route(
                "/",
                web::get().to(|request: HttpRequest| async move {
                    let headers: Vec<String> = request
                        .headers()
                        .get_all("x-request-id")
                        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                        .collect();
                    format!("{headers:?} {:?}", REQUEST_ID.get())
                }),
            ))
    });
    runtime(2).block_on(async {
        let client = client(1);
        let get = |path: &'static str, headers: &'static [(&'static str, &'static [u8])]| {
            let client = client.clone();
            let addr = server.addr;
            async move {
                send(
                    &client,
                    addr,
                    http::Method::GET,
                    path,
                    headers,
                    "x-request-id",
                )
                .await
            }
        };
        // A valid first id: the request keeps every header as it came.
        let (_, body) = get("/", &[("x-request-id", b"a"), ("x-request-id", b"b")]).await;
        assert_eq!(body, r#"["a", "b"] Some("a")"#);
        // A bad first id: every one is replaced by the generated id.
        let (echoed, body) = get("/", &[("x-request-id", b"bad id"), ("x-request-id", b"b")]).await;
        let echoed = String::from_utf8(echoed.unwrap()).unwrap();
        assert_eq!(body, format!("[{echoed:?}] Some({echoed:?})"));
        // None at all: the generated one is there.
        let (echoed, body) = get("/", &[]).await;
        let echoed = String::from_utf8(echoed.unwrap()).unwrap();
        assert_eq!(body, format!("[{echoed:?}] Some({echoed:?})"));
        // No id from the generator: the bad header is gone from the request too.
        let (echoed, body) = get("/none/", &[("x-request-id", b"bad id")]).await;
        assert_eq!((echoed, body.as_str()), (None, "false"));
        server.stop().await;
    });
}

// ---------------------------------------------------------------------------------------------
// Isolation, and where `set` works.

#[test]
fn what_a_request_sets_stays_in_it_and_the_next_request_on_the_connection_starts_fresh() {
    let server = serve!(1, || {
        App::new()
            .route(
                "/set",
                web::get().to(|| async {
                    LEAK.try_set("from the first request").unwrap();
                    // A task and a blocking job see it; what they set stays with them.
                    let task = spawn_with_context(async {
                        let seen = LEAK.get();
                        LEAK.set("from the task");
                        seen
                    });
                    let job = block_with_context(|| {
                        let seen = LEAK.get();
                        LEAK.set("from the job");
                        seen
                    });
                    let (task, job) = (task.await.unwrap(), job.await.unwrap());
                    format!("{task:?} {job:?} {:?}", LEAK.get())
                }),
            )
            .route(
                "/get",
                web::get().to(|| async { format!("{:?}", LEAK.get()) }),
            )
            .wrap(internal())
    });
    runtime(2).block_on(async {
        // One idle connection at most, one worker: the requests share the connection's task.
        let client = client(1);
        for _ in 0..3 {
            let (_, body) = send(&client, server.addr, http::Method::GET, "/set", &[], "x").await;
            assert_eq!(
                body,
                r#"Some("from the first request") Some("from the first request") Some("from the first request")"#
            );
            let (_, body) = send(&client, server.addr, http::Method::GET, "/get", &[], "x").await;
            assert_eq!(body, "None");
        }
        server.stop().await;
    });
}

/// What `try_set` does in each place a handler can run code, as `ok` or `refused`.
async fn where_set_works() -> String {
    let verdict = |result: Result<(), contextvars::AccessError>| {
        if result.is_ok() {
            "ok"
        } else {
            "refused"
        }
    };
    let handler = verdict(LEAK.try_set("handler"));
    let plain_spawn = actix_web::rt::spawn(async move { verdict(LEAK.try_set("plain spawn")) });
    let plain_block = web::block(move || verdict(LEAK.try_set("plain block")));
    let spawn = spawn_with_context(async move { verdict(LEAK.try_set("spawn")) });
    let block = block_with_context(move || verdict(LEAK.try_set("block")));
    format!(
        "handler={handler} rt::spawn={} web::block={} spawn_with_context={} block_with_context={}",
        plain_spawn.await.unwrap(),
        plain_block.await.unwrap(),
        spawn.await.unwrap(),
        block.await.unwrap(),
    )
}

#[test]
fn a_set_outside_every_frame_on_an_actix_worker_is_refused_as_on_tokio() {
    let server = serve!(1, || {
        App::new()
            .service(
                web::scope("/with")
                    .wrap(internal())
                    .route("/", web::get().to(where_set_works)),
            )
            .route("/without/", web::get().to(where_set_works))
            .route(
                "/leak",
                web::get().to(|| async { format!("{:?}", LEAK.get()) }),
            )
    });
    runtime(2).block_on(async {
        let client = client(1);
        let (_, body) = send(&client, server.addr, http::Method::GET, "/with/", &[], "x").await;
        assert_eq!(
            body,
            "handler=ok rt::spawn=refused web::block=refused spawn_with_context=ok block_with_context=ok"
        );
        // Without the middleware the handler runs in actix's connection task, outside any
        // frame: refused, like a plain tokio task. The helpers give their children a frame.
        let (_, body) = send(&client, server.addr, http::Method::GET, "/without/", &[], "x").await;
        assert_eq!(
            body,
            "handler=refused rt::spawn=refused web::block=refused spawn_with_context=ok block_with_context=ok"
        );
        // Nothing reached the worker.
        let (_, body) = send(&client, server.addr, http::Method::GET, "/leak", &[], "x").await;
        assert_eq!(body, "None");
        server.stop().await;
    });
}

// ---------------------------------------------------------------------------------------------
// Streaming bodies: polled by the connection after the response future, outside the context.

#[test]
fn a_streaming_body_sees_the_context_only_when_wrapped() {
    let server = serve!(1, || {
        App::new()
            .route(
                "/",
                web::get().to(|| async {
                    let item = || async {
                        Ok::<_, actix_web::Error>(Bytes::from(format!("{:?};", REQUEST_ID.get())))
                    };
                    let plain = futures::stream::once(item());
                    let wrapped = futures::stream::once(item()).with_current_context();
                    HttpResponse::Ok().streaming(plain.chain(wrapped))
                }),
            )
            .wrap(internal())
    });
    runtime(2).block_on(async {
        let client = client(1);
        let (_, body) = send(
            &client,
            server.addr,
            http::Method::GET,
            "/",
            &[("x-request-id", b"s-1")],
            "x-request-id",
        )
        .await;
        assert_eq!(body, r#"None;Some("s-1");"#);
        server.stop().await;
    });
}

// ---------------------------------------------------------------------------------------------
// The response header.

#[test]
fn the_id_is_echoed_in_the_configured_header_unless_the_handler_set_it() {
    let custom = Propagation::builder()
        .inbound(Trust::Trusted)
        .request_id_header("x-correlation-id")
        .build();
    let server = serve!(1, move || {
        App::new()
            .service(
                web::scope("/custom")
                    .wrap(ContextMiddleware::new(custom.clone()))
                    .route(
                        "/",
                        web::get().to(|| async { REQUEST_ID.get().unwrap_or_default() }),
                    ),
            )
            .service(web::scope("/own").wrap(internal()).route(
                "/",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .insert_header(("x-request-id", "the handler's"))
                        .body(REQUEST_ID.get().unwrap_or_default())
                }),
            ))
    });
    runtime(2).block_on(async {
        let client = client(1);
        let (echoed, body) = send(
            &client,
            server.addr,
            http::Method::GET,
            "/custom/",
            &[
                ("x-correlation-id", b"corr-1"),
                ("x-request-id", b"ignored"),
            ],
            "x-correlation-id",
        )
        .await;
        assert_eq!(
            (echoed.as_deref(), body.as_str()),
            (Some(&b"corr-1"[..]), "corr-1")
        );
        let (echoed, body) = send(
            &client,
            server.addr,
            http::Method::GET,
            "/own/",
            &[("x-request-id", b"req-1")],
            "x-request-id",
        )
        .await;
        assert_eq!(
            (echoed.as_deref(), body.as_str()),
            (Some(&b"the handler's"[..]), "req-1")
        );
        server.stop().await;
    });
}

// ---------------------------------------------------------------------------------------------
// Trust.

#[test]
fn strangers_get_a_fresh_id_and_only_the_gateways_requests_are_believed() {
    static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
    let server = serve!(1, || {
        let edge = Propagation::builder()
            .baggage_str(&TENANT, "tenant")
            .build();
        App::new()
            .route(
                "/",
                web::get().to(|| async {
                    format!(
                        "{:?} {:?} {:?}",
                        REQUEST_ID.get(),
                        CALLER_REQUEST_ID.get(),
                        TENANT.get()
                    )
                }),
            )
            .wrap(
                ContextMiddleware::new(edge)
                    .trust_callers_if(|request| request.headers().contains_key("x-from-gateway")),
            )
    });
    runtime(2).block_on(async {
        let client = client(1);
        let spoofed: &[(&str, &[u8])] =
            &[("x-request-id", b"spoof-1"), ("baggage", b"tenant=victim")];
        let (echoed, body) = send(
            &client,
            server.addr,
            http::Method::GET,
            "/",
            spoofed,
            "x-request-id",
        )
        .await;
        let echoed = String::from_utf8(echoed.unwrap()).unwrap();
        assert_ne!(echoed, "spoof-1");
        assert_eq!(body, format!(r#"Some({echoed:?}) Some("spoof-1") None"#));

        let from_gateway: &[(&str, &[u8])] = &[
            ("x-request-id", b"gw-1"),
            ("baggage", b"tenant=acme"),
            ("x-from-gateway", b"1"),
        ];
        let (echoed, body) = send(
            &client,
            server.addr,
            http::Method::GET,
            "/",
            from_gateway,
            "x-request-id",
        )
        .await;
        assert_eq!(echoed.as_deref(), Some(&b"gw-1"[..]));
        assert_eq!(body, r#"Some("gw-1") None Some("acme")"#);
        server.stop().await;
    });
}

// ---------------------------------------------------------------------------------------------
// The shared scenarios (`tests/common/scenarios.rs`) on an actix system.

/// A fresh actix system per `block_on`, on a current-thread tokio runtime with one blocking
/// thread: its one worker is the `block_on` thread, so a later task (or job) runs on the very
/// thread of the earlier one.
#[derive(Clone)]
struct Actix;

impl Runtime for Actix {
    fn block_on<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        actix_web::rt::System::with_tokio_rt(|| {
            tokio::runtime::Builder::new_current_thread()
                .max_blocking_threads(1)
                .enable_all()
                .build()
                .unwrap()
        })
        .block_on(future)
    }

    fn spawn_with_context<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<T> {
        Box::pin(join(spawn_with_context(task)))
    }

    fn spawn_plain<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<T> {
        Box::pin(join(actix_web::rt::spawn(task)))
    }

    fn spawn_and_cancel(
        &self,
        task: impl Future<Output = ()> + Send + 'static,
        started: impl Future<Output = ()> + Send + 'static,
    ) -> BoxFuture {
        abort_after(spawn_with_context(task), started)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture {
        Box::pin(actix_web::rt::time::sleep(duration))
    }

    fn yield_now(&self) -> BoxFuture {
        Box::pin(actix_web::rt::task::yield_now())
    }
}

/// `web::block`'s error carries no panic payload: a panicking job fails its awaiter with a panic
/// of its own (so the shared scenario that checks the payload is not run on actix).
impl Blocking for Actix {
    fn spawn_blocking_with_context<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> BoxFuture<T> {
        let job = block_with_context(job);
        Box::pin(async move { job.await.expect("the blocking job panicked") })
    }

    fn spawn_blocking_plain<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> BoxFuture<T> {
        let job = web::block(job);
        Box::pin(async move { job.await.expect("the blocking job panicked") })
    }
}

#[test]
fn a_spawned_task_keeps_the_callers_context_and_a_plain_one_has_none() {
    scenarios::a_spawned_task_keeps_the_callers_context_and_a_plain_one_has_none(Actix);
}

#[test]
fn a_blocking_job_keeps_the_callers_context_and_a_plain_one_has_none() {
    scenarios::a_blocking_job_keeps_the_callers_context_and_a_plain_one_has_none(Actix);
}

#[test]
fn isolation_both_ways() {
    scenarios::isolation_both_ways(Actix);
}

#[test]
fn a_value_set_in_a_task_stays_in_it() {
    scenarios::a_value_set_in_a_task_stays_in_it(Actix);
}

#[test]
fn what_a_value_destructor_sets_never_reaches_the_worker() {
    scenarios::what_a_value_destructor_sets_never_reaches_the_worker(Actix);
}

#[test]
fn what_a_value_destructor_sets_never_reaches_the_blocking_thread() {
    scenarios::what_a_value_destructor_sets_never_reaches_the_blocking_thread(Actix);
}

#[test]
fn an_aborted_task_is_dropped_inside_its_context() {
    scenarios::a_cancelled_task_is_dropped_inside_its_context(Actix);
}

#[test]
fn a_panicking_task_reaches_the_caller_and_leaves_the_worker_clean() {
    scenarios::a_panicking_task_reaches_the_caller_and_leaves_the_worker_clean(Actix);
}

#[test]
fn stress_a_thousand_request_trees() {
    scenarios::stress(Actix, 1_000);
}
