//! The Python contextvars guide's FastAPI section on actix-web: `POST /orders` creates an order, reserves stock in a
//! blocking job and starts a background notification that runs after the response is sent.
//! Every log line, from the handler, the blocking job and the background task, carries the
//! request's id, through `ContextMiddleware` and the `log` integration.
//!
//! `cargo run --example actix_orders --features actix-web,log`
//!
//! It starts the server on a free port of 127.0.0.1, sends three requests (two with an
//! `x-request-id`, one without, which gets a generated id), waits for the background
//! notifications, stops the server and exits.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use contextvars::actix_web::{block_with_context, spawn_with_context, ContextMiddleware};
use contextvars::log::ContextLogger;
use contextvars::propagation::{Propagation, Trust};

/// Runs after the response has been sent; `request_id` is still in its context.
async fn send_notification(user_id: String, done: mpsc::Sender<()>) {
    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    log::info!("sending notification to {user_id}");
    done.send(()).unwrap();
}

/// Blocking work (a database driver without async, say), on actix's blocking pool.
fn reserve_stock(sku: &str) -> u32 {
    log::info!("reserving stock for {sku}");
    3
}

async fn create_order(done: web::Data<mpsc::Sender<()>>) -> HttpResponse {
    log::info!("creating order");
    // The counterpart of `create_task_with_context`: a plain `actix_web::rt::spawn` would log
    // without the id.
    spawn_with_context(send_notification("user-123".into(), done.get_ref().clone()));
    // The counterpart of `run_in_executor_with_context`, for `web::block`.
    let reserved = block_with_context(|| reserve_stock("sku-42"))
        .await
        .unwrap();
    HttpResponse::Ok()
        .content_type("application/json")
        .body(format!(r#"{{"status":"created","reserved":{reserved}}}"#))
}

/// A minimal HTTP/1.1 client: one request per connection. Returns the response's head.
fn post_order(addr: SocketAddr, request_id: Option<&str>) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    let id_header = request_id.map_or(String::new(), |id| format!("x-request-id: {id}\r\n"));
    write!(
        stream,
        "POST /orders HTTP/1.1\r\nhost: {addr}\r\n{id_header}content-length: 0\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn main() {
    // `request_id=...` after every line's message: env_logger prints the key-values that
    // `ContextLogger` adds from the context.
    let inner = env_logger::Builder::new()
        .filter_module("actix_orders", log::LevelFilter::Info)
        .format_timestamp(None)
        .target(env_logger::Target::Stdout)
        .build();
    ContextLogger::new(inner).install().unwrap();

    // The server, on a system thread of its own as `#[actix_web::main]` would run it.
    let (notified, notifications) = mpsc::channel::<()>();
    let (started, server) = mpsc::channel();
    let system = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let done = web::Data::new(notified);
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(done.clone())
                    .route("/orders", web::post().to(create_order))
                    // A fresh context per request. This service sits behind the company's gateway,
                    // so it believes its callers' request ids; an internet-facing one keeps the
                    // default (`ContextMiddleware::default()`: untrusted callers, fresh ids).
                    .wrap(ContextMiddleware::new(
                        Propagation::builder().inbound(Trust::Trusted).build(),
                    ))
            })
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
            let addr = server.addrs()[0];
            let server = server.run();
            started.send((addr, server.handle())).unwrap();
            server.await.unwrap();
        })
    });
    let (addr, handle) = server.recv().unwrap();
    println!("listening on http://{addr}");

    for request_id in [Some("req-abc"), Some("req-def"), None] {
        let response = post_order(addr, request_id);
        let status = response.lines().next().unwrap_or_default();
        let echoed = response
            .lines()
            .find_map(|line| line.strip_prefix("x-request-id: "))
            .unwrap_or("-");
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        println!("-> {status}, x-request-id: {echoed}, {body}");
    }

    // Each background notification reports when it has logged.
    for _ in 0..3 {
        notifications
            .recv_timeout(Duration::from_secs(10))
            .expect("every notification is sent");
    }
    actix_web::rt::System::new().block_on(handle.stop(true));
    system.join().unwrap();
    println!("server stopped");
}
