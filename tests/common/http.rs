//! Real HTTP on loopback for the transport tests: an axum server on a free port, a hyper client,
//! and the runtime they run on.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::Request;
use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A multi-thread tokio runtime with `workers` workers, time and I/O enabled.
pub(crate) fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// Serves `app` on a free loopback port, in a task of the current runtime, until the returned
/// [`Stop`] is used or dropped.
pub(crate) async fn serve(app: Router) -> (SocketAddr, Stop) {
    serve_as(app, false).await
}

/// [`serve`], with each request's peer address in its extensions as axum's
/// `ConnectInfo<SocketAddr>`.
pub(crate) async fn serve_with_connect_info(app: Router) -> (SocketAddr, Stop) {
    serve_as(app, true).await
}

async fn serve_as(app: Router, connect_info: bool) -> (SocketAddr, Stop) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (signal, stopped) = oneshot::channel::<()>();
    let stopped = async move {
        let _ = stopped.await;
    };
    let server = tokio::spawn(async move {
        match connect_info {
            true => {
                let app = app.into_make_service_with_connect_info::<SocketAddr>();
                let serve = axum::serve(listener, app).with_graceful_shutdown(stopped);
                serve.await.unwrap()
            }
            false => {
                let serve = axum::serve(listener, app).with_graceful_shutdown(stopped);
                serve.await.unwrap()
            }
        }
    });
    (addr, Stop { signal, server })
}

/// Stops a server of [`serve`] gracefully (it ends once its open connections are closed); so
/// does dropping it.
pub(crate) struct Stop {
    signal: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl Stop {
    /// Starts the shutdown.
    pub(crate) fn now(self) {
        let _ = self.signal.send(());
    }

    /// Starts the shutdown and waits for the server's end (a panic of the server is re-raised
    /// as a failed join). Close the clients' connections first.
    pub(crate) async fn and_wait(self) {
        let _ = self.signal.send(());
        self.server.await.unwrap();
    }
}

pub(crate) type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// A client that keeps at most `max_idle` idle connections per host.
pub(crate) fn client(max_idle: usize) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(max_idle)
        .build_http()
}

/// `GET http://{addr}{path}` with these headers.
pub(crate) fn get_request(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Request<Empty<Bytes>> {
    let mut request = Request::get(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Empty::new()).unwrap()
}

/// The `x-request-id` a response echoed.
pub(crate) fn echoed_id<B>(response: &axum::http::Response<B>) -> String {
    let id = response.headers()["x-request-id"].to_str().unwrap();
    id.to_owned()
}

/// The whole body, as UTF-8.
pub(crate) async fn body_text(
    body: impl axum::body::HttpBody<Data = Bytes, Error = impl std::fmt::Debug>,
) -> String {
    String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
}
