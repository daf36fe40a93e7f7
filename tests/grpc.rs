//! The tower layer on a real tonic (gRPC) server over loopback: the server layer for every
//! service and for one service, the client layer on a `Channel`, `inject_headers` from an
//! interceptor, a server stream, errors sent as trailers-only responses, binary (`-bin`)
//! metadata, and a burst of concurrent calls.
//!
//! The service is written by hand with tonic's lower-level API (what `tonic-build` generates),
//! so the tests need no `.proto` file and no `protoc`.
#![cfg(all(feature = "tower", feature = "tokio"))]

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use common::propagation::{standard, TENANT};
use contextvars::tower::{
    inject_headers_with, Baggage, ClientContextLayer, ContextLayer, Propagation, Trust, REQUEST_ID,
};
use contextvars::{Context, ContextExt};
use futures::{Stream, StreamExt};
use http::uri::PathAndQuery;
use tokio::sync::{oneshot, Barrier};
use tonic::body::Body;
use tonic::client::Grpc as GrpcClient;
use tonic::metadata::MetadataValue;
use tonic::server::{Grpc as GrpcServer, NamedService};
use tonic::service::interceptor::InterceptedService;
use tonic::service::LayerExt;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;
use tower::{service_fn, Layer, Service, ServiceExt};

// ---------------------------------------------------------------------------------------------
// Messages and the hand-written service.

/// What the caller asks: wait at the service's barrier first, and how many stream items.
#[derive(Clone, PartialEq, prost::Message)]
struct Ask {
    #[prost(bool, tag = "1")]
    wait: bool,
    #[prost(uint32, tag = "2")]
    items: u32,
}

/// What a handler (or a stream item) saw in its context.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
struct Seen {
    #[prost(string, optional, tag = "1")]
    request_id: Option<String>,
    #[prost(string, optional, tag = "2")]
    tenant: Option<String>,
    #[prost(string, tag = "3")]
    forwarded: String,
}

/// What the `Bin` method saw: its context and the binary metadata it received.
#[derive(Clone, PartialEq, prost::Message)]
struct BinSeen {
    #[prost(string, optional, tag = "1")]
    request_id: Option<String>,
    #[prost(string, optional, tag = "2")]
    tenant: Option<String>,
    #[prost(bytes = "vec", tag = "3")]
    trace_bin: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    baggage_bin: Vec<u8>,
}

/// What the `Trace` method would send on from its context: the `traceparent` and `tracestate`
/// lines.
#[derive(Clone, PartialEq, prost::Message)]
struct TraceSent {
    #[prost(string, repeated, tag = "1")]
    traceparent: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    tracestate: Vec<String>,
}

/// `Trace`: the trace context a call made from the handler would carry on.
async fn trace(_: Request<Ask>) -> Result<Response<TraceSent>, Status> {
    let mut headers = http::HeaderMap::new();
    contextvars::tower::inject_headers_with(&standard(), &mut headers);
    let lines = |name| {
        let values = headers.get_all(name).iter();
        values.map(|v| v.to_str().unwrap().to_string()).collect()
    };
    Ok(Response::new(TraceSent {
        traceparent: lines("traceparent"),
        tracestate: lines("tracestate"),
    }))
}

/// Binary metadata that is not valid text, as a `-bin` value may be.
const BINARY: &[u8] = &[0x00, 0xFF, b',', b'=', b'%', 0x80, b'\n'];

fn seen() -> Seen {
    Seen {
        request_id: REQUEST_ID.get(),
        tenant: TENANT.get(),
        forwarded: Baggage::forwarded().to_string(),
    }
}

/// `Ask`: the context at the start of the call and after the await points, which must agree.
async fn ask(request: Request<Ask>, barrier: Arc<Barrier>) -> Result<Response<Seen>, Status> {
    let before = seen();
    if request.get_ref().wait {
        barrier.wait().await;
    }
    tokio::task::yield_now().await;
    let after = seen();
    if before != after {
        return Err(Status::internal(format!("{before:?} became {after:?}")));
    }
    Ok(Response::new(after))
}

/// `Stream`: one item per requested item, each reading the context when the body is polled.
async fn stream(
    request: Request<Ask>,
    wrapped: bool,
) -> Result<Response<Pin<Box<dyn Stream<Item = Result<Seen, Status>> + Send>>>, Status> {
    let items = futures::stream::iter(0..request.get_ref().items).then(|_| async {
        tokio::task::yield_now().await;
        Ok(seen())
    });
    Ok(Response::new(if wrapped {
        Box::pin(items.with_current_context())
    } else {
        Box::pin(items)
    }))
}

/// `Fail`: a handler that returns an error: tonic sends it as a trailers-only response (the
/// status in the response headers, no body). Its message says what the handler saw, and it
/// carries binary metadata; with `items: 1` it also sets its own `x-request-id`.
async fn fail(request: Request<Ask>) -> Result<Response<Seen>, Status> {
    let mut status =
        Status::failed_precondition(format!("{:?} {:?}", REQUEST_ID.get(), TENANT.get()));
    status
        .metadata_mut()
        .insert_bin("detail-bin", MetadataValue::from_bytes(BINARY));
    if request.get_ref().items == 1 {
        status
            .metadata_mut()
            .insert("x-request-id", "set-by-handler".parse().unwrap());
    }
    Err(status)
}

/// `Bin`: what the context holds and the binary metadata received, which it also sends back.
async fn bin(request: Request<Ask>) -> Result<Response<BinSeen>, Status> {
    let get = |key: &str| {
        request
            .metadata()
            .get_bin(key)
            .map(|value| value.to_bytes().unwrap().to_vec())
            .unwrap_or_default()
    };
    let seen = BinSeen {
        request_id: REQUEST_ID.get(),
        tenant: TENANT.get(),
        trace_bin: get("trace-bin"),
        baggage_bin: get("baggage-bin"),
    };
    let mut response = Response::new(seen);
    response
        .metadata_mut()
        .insert_bin("reply-bin", MetadataValue::from_bytes(BINARY));
    Ok(response)
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A gRPC service, `contextvars.test.Whoami`, with methods `Ask`, `Stream` (items wrapped with
/// `.with_current_context()`) and `StreamBare` (not wrapped).
#[derive(Clone)]
struct Whoami {
    barrier: Arc<Barrier>,
}

impl Whoami {
    fn new(waiters: usize) -> Whoami {
        Whoami {
            barrier: Arc::new(Barrier::new(waiters)),
        }
    }
}

impl NamedService for Whoami {
    const NAME: &'static str = "contextvars.test.Whoami";
}

impl Service<http::Request<Body>> for Whoami {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let method = request.uri().path().rsplit('/').next().unwrap_or("");
        let method = method.to_owned();
        let barrier = self.barrier.clone();
        Box::pin(async move {
            let codec = ProstCodec::<Seen, Ask>::default();
            let mut grpc = GrpcServer::new(codec);
            Ok(match method.as_str() {
                "Ask" => {
                    let handler = service_fn(move |r| ask(r, barrier.clone()));
                    grpc.unary(handler, request).await
                }
                "Stream" => {
                    let handler = service_fn(|r| stream(r, true));
                    grpc.server_streaming(handler, request).await
                }
                "StreamBare" => {
                    let handler = service_fn(|r| stream(r, false));
                    grpc.server_streaming(handler, request).await
                }
                "Fail" => grpc.unary(service_fn(fail), request).await,
                "Bin" => {
                    let mut grpc = GrpcServer::new(ProstCodec::<BinSeen, Ask>::default());
                    grpc.unary(service_fn(bin), request).await
                }
                "Trace" => {
                    let mut grpc = GrpcServer::new(ProstCodec::<TraceSent, Ask>::default());
                    grpc.unary(service_fn(trace), request).await
                }
                _ => Status::unimplemented(method).into_http(),
            })
        })
    }
}

/// The same methods under another gRPC name, for a server that layers one service only.
#[derive(Clone)]
struct Unlayered(Whoami);

impl NamedService for Unlayered {
    const NAME: &'static str = "contextvars.test.Unlayered";
}

impl Service<http::Request<Body>> for Unlayered {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        self.0.call(request)
    }
}

// ---------------------------------------------------------------------------------------------
// Server and client helpers.

/// A server running on a free loopback port until `stop`.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Running {
    async fn start<F, Fut>(serve: F) -> Running
    where
        F: FnOnce(TcpIncoming, oneshot::Receiver<()>) -> Fut,
        Fut: Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(TcpIncoming::from(listener), stopped));
        Running { addr, stop, task }
    }

    async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Graceful shutdown: the server's task ends, without error.
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

fn path(service: &str, method: &str) -> PathAndQuery {
    PathAndQuery::try_from(format!("/{service}/{method}")).unwrap()
}

/// Calls `service`'s `Ask` through `client`, in the caller's current context.
async fn call_ask<S>(client: S, service: &str, request: Request<Ask>) -> Response<Seen>
where
    S: tonic::client::GrpcService<Body>,
    S::ResponseBody: Send + 'static,
    <S::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut grpc = GrpcClient::new(client);
    grpc.ready().await.map_err(Into::into).unwrap();
    let codec = ProstCodec::<Ask, Seen>::default();
    grpc.unary(request, path(service, "Ask"), codec)
        .await
        .unwrap()
}

fn ask_request() -> Request<Ask> {
    Request::new(Ask {
        wait: false,
        items: 0,
    })
}

/// The caller's context for a call: a request id and a tenant.
fn caller(id: &str, tenant: &str) -> Context {
    Context::new()
        .with_value(&REQUEST_ID, id.to_owned())
        .with_value(&TENANT, tenant.to_owned())
}

fn echoed<T>(response: &Response<T>) -> Option<&str> {
    response
        .metadata()
        .get("x-request-id")
        .map(|id| id.to_str().unwrap())
}

// ---------------------------------------------------------------------------------------------
// Server side.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_on_the_server_builder_reads_the_id_and_baggage_from_the_metadata() {
    let server = Running::start(|incoming, stop| {
        Server::builder()
            .layer(ContextLayer::new(standard()))
            .add_service(Whoami::new(1))
            .serve_with_incoming_shutdown(incoming, async {
                stop.await.ok();
            })
    })
    .await;
    let channel = server.channel().await;

    // A caller that is not this crate: plain metadata.
    let mut request = ask_request();
    let metadata = request.metadata_mut();
    metadata.insert("x-request-id", "req-grpc-1".parse().unwrap());
    metadata.insert("baggage", "tenant=acme,other=kept;p".parse().unwrap());
    let response = call_ask(channel.clone(), Whoami::NAME, request).await;
    assert_eq!(echoed(&response), Some("req-grpc-1"));
    assert_eq!(
        response.into_inner(),
        Seen {
            request_id: Some("req-grpc-1".into()),
            tenant: Some("acme".into()),
            forwarded: "other=kept;p".into(),
        }
    );

    // Nothing sent: a generated id, echoed, and nothing else.
    let response = call_ask(channel.clone(), Whoami::NAME, ask_request()).await;
    let generated = echoed(&response).unwrap().to_owned();
    assert_eq!(generated.len(), 32);
    assert_eq!(
        response.into_inner(),
        Seen {
            request_id: Some(generated),
            tenant: None,
            forwarded: String::new(),
        }
    );

    drop(channel);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_layer_puts_the_context_on_one_service_only() {
    let whoami = Whoami::new(1);
    let unlayered = Unlayered(whoami.clone());
    let server = Running::start(|incoming, stop| {
        Server::builder()
            // `named_layer` keeps `Whoami::NAME`, which `add_service` needs to route.
            .add_service(ContextLayer::new(standard()).named_layer(whoami))
            .add_service(unlayered)
            .serve_with_incoming_shutdown(incoming, async {
                stop.await.ok();
            })
    })
    .await;
    let channel = server.channel().await;
    let client = ClientContextLayer::new(standard()).layer(channel);
    let ctx = caller("req-named", "acme");

    let layered = call_ask(client.clone(), Whoami::NAME, ask_request())
        .with_context(ctx.clone())
        .await;
    assert_eq!(echoed(&layered), Some("req-named"));
    assert_eq!(layered.get_ref().request_id.as_deref(), Some("req-named"));
    assert_eq!(layered.get_ref().tenant.as_deref(), Some("acme"));

    // The headers arrive, but nothing reads them into a context, and nothing is echoed.
    let plain = call_ask(client, Unlayered::NAME, ask_request())
        .with_context(ctx)
        .await;
    assert_eq!(echoed(&plain), None);
    assert_eq!(plain.into_inner(), Seen::default());

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stream_sees_the_request_context_only_when_wrapped() {
    let server = Running::start(|incoming, stop| {
        Server::builder()
            .layer(ContextLayer::new(standard()))
            .add_service(Whoami::new(1))
            .serve_with_incoming_shutdown(incoming, async {
                stop.await.ok();
            })
    })
    .await;
    let client = ClientContextLayer::new(standard()).layer(server.channel().await);

    let stream_items = |method: &'static str| {
        let client = client.clone();
        async move {
            let mut grpc = GrpcClient::new(client);
            grpc.ready().await.unwrap();
            let request = Request::new(Ask {
                wait: false,
                items: 3,
            });
            let codec = ProstCodec::<Ask, Seen>::default();
            let response = grpc
                .server_streaming(request, path(Whoami::NAME, method), codec)
                .await
                .unwrap();
            let items: Vec<Seen> = response.into_inner().map(Result::unwrap).collect().await;
            items
        }
        .with_context(caller("req-stream", "acme"))
    };

    let expected = Seen {
        request_id: Some("req-stream".into()),
        tenant: Some("acme".into()),
        forwarded: String::new(),
    };
    assert_eq!(stream_items("Stream").await, vec![expected; 3]);
    // Polled by the connection after the handler returned: outside the request's context.
    assert_eq!(stream_items("StreamBare").await, vec![Seen::default(); 3]);

    drop(client);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Client side.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_layer_on_a_channel_carries_the_callers_context_across_the_hop() {
    let server = Running::start(|incoming, stop| {
        Server::builder()
            .layer(ContextLayer::new(standard()))
            .add_service(Whoami::new(1))
            .serve_with_incoming_shutdown(incoming, async {
                stop.await.ok();
            })
    })
    .await;
    let client = ClientContextLayer::new(standard()).layer(server.channel().await);

    let response = call_ask(client.clone(), Whoami::NAME, ask_request())
        .with_context(caller("req-hop", "acme"))
        .await;
    assert_eq!(echoed(&response), Some("req-hop"));
    assert_eq!(
        response.into_inner(),
        Seen {
            request_id: Some("req-hop".into()),
            tenant: Some("acme".into()),
            forwarded: String::new(),
        }
    );

    // A caller that is itself a handler behind the layer (here in process) forwards the
    // unregistered baggage it received, along with its id and the registered variables.
    let relay = ContextLayer::new(standard()).layer(service_fn(|_: http::Request<()>| {
        let client = client.clone();
        async move {
            let response = call_ask(client, Whoami::NAME, ask_request()).await;
            Ok::<_, Infallible>(http::Response::new(response.into_inner()))
        }
    }));
    let inbound = http::Request::builder()
        .header("x-request-id", "req-relay")
        .header("baggage", "tenant=acme,other=kept;p")
        .body(())
        .unwrap();
    assert_eq!(
        relay.oneshot(inbound).await.unwrap().into_body(),
        Seen {
            request_id: Some("req-relay".into()),
            tenant: Some("acme".into()),
            forwarded: "other=kept;p".into(),
        }
    );

    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interceptor_calling_inject_headers_carries_the_callers_context() {
    let server = Running::start(|incoming, stop| {
        Server::builder()
            .layer(ContextLayer::new(standard()))
            .add_service(Whoami::new(1))
            .serve_with_incoming_shutdown(incoming, async {
                stop.await.ok();
            })
    })
    .await;
    let outgoing = standard();
    let interceptor = move |mut request: Request<()>| {
        inject_headers_with(&outgoing, request.metadata_mut().as_mut());
        Ok(request)
    };
    let client = InterceptedService::new(server.channel().await, interceptor);

    let response = call_ask(client, Whoami::NAME, ask_request())
        .with_context(caller("req-intercepted", "acme"))
        .await;
    assert_eq!(echoed(&response), Some("req-intercepted"));
    assert_eq!(
        response.into_inner(),
        Seen {
            request_id: Some("req-intercepted".into()),
            tenant: Some("acme".into()),
            forwarded: String::new(),
        }
    );

    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Load.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_calls_at_32_in_flight_each_see_their_own_id() {
    const CALLS: usize = 200;
    const IN_FLIGHT: usize = 32;

    // The first 32 calls wait for each other inside their handlers: all 32 are in flight at
    // once, on the same connection, before any of them reads its context again.
    let server = Running::start(|incoming, stop| {
        Server::builder()
            .layer(ContextLayer::new(standard()))
            .add_service(Whoami::new(IN_FLIGHT))
            .serve_with_incoming_shutdown(incoming, async {
                stop.await.ok();
            })
    })
    .await;
    let client = ClientContextLayer::new(standard()).layer(server.channel().await);

    let results: Vec<(String, Response<Seen>)> = futures::stream::iter(0..CALLS)
        .map(|i| {
            let client = client.clone();
            let id = format!("burst-{i:03}");
            let request = Request::new(Ask {
                wait: i < IN_FLIGHT,
                items: 0,
            });
            let ctx = caller(&id, &format!("tenant-{i:03}"));
            async move {
                let response = call_ask(client, Whoami::NAME, request)
                    .with_context(ctx)
                    .await;
                (id, response)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;

    assert_eq!(results.len(), CALLS);
    for (id, response) in &results {
        assert_eq!(echoed(response), Some(id.as_str()));
        let seen = response.get_ref();
        assert_eq!(seen.request_id.as_deref(), Some(id.as_str()));
        let tenant = id.replace("burst", "tenant");
        assert_eq!(seen.tenant.as_deref(), Some(tenant.as_str()));
    }

    drop(client);
    server.stop().await;
}

/// The W3C Trace Context suite's cases (`tests/common/w3c_suite.rs`) as gRPC metadata, repeated
/// entries kept: the handler would send each on as the suite expects of a participant that
/// creates no spans (unchanged, or nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_w3c_trace_context_suite_passes_over_grpc_metadata() {
    let server = layered_server().await;
    let channel = server.channel().await;
    let mut failed = Vec::new();
    for case in common::w3c_suite::suite() {
        let mut request = ask_request();
        for (name, value) in &case.headers {
            let value = tonic::metadata::MetadataValue::try_from(value.as_str()).unwrap();
            // Names in any case, as the suite sends them (metadata keys are lowercase).
            let key = tonic::metadata::MetadataKey::from_bytes(name.as_bytes()).unwrap();
            request.metadata_mut().append(key, value);
        }
        let mut grpc = GrpcClient::new(channel.clone());
        grpc.ready().await.unwrap();
        let codec = ProstCodec::<Ask, TraceSent>::default();
        let sent = grpc
            .unary(request, path(Whoami::NAME, "Trace"), codec)
            .await
            .unwrap()
            .into_inner();
        let expected = match &case.sent {
            None => (vec![], vec![]),
            Some((tp, ts)) => (vec![tp.to_string()], ts.iter().cloned().collect()),
        };
        if (sent.traceparent.clone(), sent.tracestate.clone()) != expected {
            failed.push(format!(
                "{}: sent {sent:?}, expected {expected:?}",
                case.name
            ));
        }
    }
    drop(channel);
    server.stop().await;
    assert!(failed.is_empty(), "{failed:#?}");
}

// ---------------------------------------------------------------------------------------------
// Errors and binary metadata.

/// A server with both layers' counterpart: `ContextLayer` on every service.
async fn layered_server() -> Running {
    Running::start(|incoming, stop| {
        Server::builder()
            .layer(ContextLayer::new(standard()))
            .add_service(Whoami::new(1))
            .serve_with_incoming_shutdown(incoming, async {
                stop.await.ok();
            })
    })
    .await
}

/// Calls `method` expecting an error status.
async fn call_failing<S>(client: S, method: &str, items: u32) -> Status
where
    S: tonic::client::GrpcService<Body>,
    S::ResponseBody: Send + 'static,
    <S::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut grpc = GrpcClient::new(client);
    grpc.ready().await.map_err(Into::into).unwrap();
    let codec = ProstCodec::<Ask, Seen>::default();
    let request = Request::new(Ask { wait: false, items });
    grpc.unary(request, path(Whoami::NAME, method), codec)
        .await
        .expect_err("the method fails")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_status_is_a_trailers_only_response_that_still_echoes_the_id() {
    let server = layered_server().await;
    let client = ClientContextLayer::new(standard()).layer(server.channel().await);

    // The handler ran in the caller's context, and its status arrives whole, with the id
    // echoed beside it and its binary metadata intact.
    let status = call_failing(client.clone(), "Fail", 0)
        .with_context(caller("req-fail", "acme"))
        .await;
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert_eq!(status.message(), r#"Some("req-fail") Some("acme")"#);
    let metadata = status.metadata();
    assert_eq!(metadata.get("x-request-id").unwrap(), "req-fail");
    assert_eq!(
        metadata.get_bin("detail-bin").unwrap().to_bytes().unwrap(),
        BINARY
    );

    // An id the handler put on its status itself is not overwritten.
    let status = call_failing(client.clone(), "Fail", 1)
        .with_context(caller("req-fail-2", "acme"))
        .await;
    assert_eq!(status.message(), r#"Some("req-fail-2") Some("acme")"#);
    assert_eq!(
        status.metadata().get("x-request-id").unwrap(),
        "set-by-handler"
    );

    // A method that does not exist: tonic's own trailers-only `Unimplemented`, through the
    // layer, with the id.
    let status = call_failing(client.clone(), "NoSuchMethod", 0)
        .with_context(caller("req-missing", "acme"))
        .await;
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert_eq!(
        status.metadata().get("x-request-id").unwrap(),
        "req-missing"
    );

    // No id sent: the generated one is echoed on the error too.
    let status = call_failing(server.channel().await, "Fail", 0).await;
    let generated = status
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(generated.len(), 32);
    assert_eq!(status.message(), format!("Some({generated:?}) None"));

    // The server is still healthy after the errors.
    let response = call_ask(client.clone(), Whoami::NAME, ask_request())
        .with_context(caller("req-after", "acme"))
        .await;
    assert_eq!(echoed(&response), Some("req-after"));

    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_metadata_is_neither_read_nor_corrupted_in_either_direction() {
    let server = layered_server().await;
    let client = ClientContextLayer::new(standard()).layer(server.channel().await);

    // Binary keys beside the text ones, including binary keys named like ours: the context
    // comes from the text keys only, and every binary value arrives as sent.
    let mut request = ask_request();
    let metadata = request.metadata_mut();
    metadata.insert_bin("trace-bin", MetadataValue::from_bytes(BINARY));
    metadata.insert_bin("baggage-bin", MetadataValue::from_bytes(b"tenant=evil"));
    metadata.insert_bin("x-request-id-bin", MetadataValue::from_bytes(b"evil"));
    metadata.insert("baggage", "other=kept".parse().unwrap());
    let mut grpc = GrpcClient::new(client.clone());
    grpc.ready().await.unwrap();
    let response = grpc
        .unary(
            request,
            path(Whoami::NAME, "Bin"),
            ProstCodec::<Ask, BinSeen>::default(),
        )
        .with_context(caller("req-bin", "acme"))
        .await
        .unwrap();
    assert_eq!(echoed(&response), Some("req-bin"));
    assert_eq!(
        response
            .metadata()
            .get_bin("reply-bin")
            .unwrap()
            .to_bytes()
            .unwrap(),
        BINARY
    );
    assert_eq!(
        response.into_inner(),
        BinSeen {
            request_id: Some("req-bin".into()),
            tenant: Some("acme".into()),
            trace_bin: BINARY.to_vec(),
            baggage_bin: b"tenant=evil".to_vec(),
        }
    );

    drop(client);
    server.stop().await;
}

#[test]
#[should_panic(expected = "binary")]
fn a_binary_key_cannot_carry_the_request_id() {
    let _ = Propagation::builder().request_id_header("x-request-id-bin");
}

// ---------------------------------------------------------------------------------------------
// Trust: an edge gRPC server, and a client calling a server that is not ours.

/// The default configuration: callers and destinations untrusted.
fn edge_propagation() -> Propagation {
    Propagation::builder()
        .baggage_str(&TENANT, "tenant")
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_edge_server_under_load_never_believes_spoofed_metadata() {
    const CALLS: usize = 500;
    const IN_FLIGHT: usize = 32;
    let server = Running::start(|incoming, stop| {
        Server::builder()
            .layer(ContextLayer::new(edge_propagation()))
            .add_service(Whoami::new(1))
            .serve_with_incoming_shutdown(incoming, async {
                stop.await.ok();
            })
    })
    .await;
    let channel = server.channel().await;

    let results: Vec<(usize, Option<String>, Seen)> = futures::stream::iter(0..CALLS)
        .map(|i| {
            let channel = channel.clone();
            async move {
                let mut request = ask_request();
                let metadata = request.metadata_mut();
                metadata.insert("x-request-id", format!("spoof-{i}").parse().unwrap());
                let baggage = format!("tenant=victim-{i},evil=x{i}");
                metadata.insert("baggage", baggage.parse().unwrap());
                let response = call_ask(channel, Whoami::NAME, request).await;
                let echoed = echoed(&response).map(str::to_owned);
                (i, echoed, response.into_inner())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;

    let mut ids = std::collections::HashSet::new();
    for (i, echoed, seen) in results {
        let id = seen.request_id.clone().unwrap();
        assert!(!id.starts_with("spoof-"), "call {i} ran under {id}");
        assert_eq!(echoed.as_deref(), Some(&*id), "call {i}");
        assert_eq!(seen.tenant, None, "call {i}");
        assert_eq!(seen.forwarded, "", "call {i}");
        assert!(ids.insert(id), "an id was reused");
    }
    assert_eq!(ids.len(), CALLS);
    drop(channel);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sends_nothing_private_or_forwarded_to_an_untrusted_server() {
    // The server trusts its callers, so what it saw is what was sent.
    let server = Running::start(|incoming, stop| {
        Server::builder()
            .layer(ContextLayer::new(standard()))
            .add_service(Whoami::new(1))
            .serve_with_incoming_shutdown(incoming, async {
                stop.await.ok();
            })
    })
    .await;
    let channel = server.channel().await;
    // The caller's context, as an internal service received it, with a member to forward.
    let incoming = std::collections::HashMap::from([
        ("x-request-id".to_string(), "req-out".to_string()),
        ("baggage".to_string(), "tenant=acme,other=kept".to_string()),
    ]);
    let ctx = standard().extract(&incoming);

    let cases = [
        // A channel is bound to one server: its trust is the propagation's outbound setting.
        (
            "untrusted (the default)",
            ClientContextLayer::new(edge_propagation()),
            None,
            "",
        ),
        (
            "trusted",
            ClientContextLayer::new(edge_propagation().with_outbound(Trust::Trusted)),
            Some("acme"),
            "other=kept",
        ),
        // The requests a channel sees carry a path, not the server's host: a host list does not
        // apply, so they stay untrusted (as documented on `trusted_hosts`).
        (
            "a host list",
            ClientContextLayer::new(edge_propagation()).trusted_hosts(["127.0.0.1"]),
            None,
            "",
        ),
    ];
    for (case, layer, tenant, forwarded) in cases {
        let client = layer.layer(channel.clone());
        let response = call_ask(client, Whoami::NAME, ask_request())
            .with_context(ctx.clone())
            .await;
        let seen = response.into_inner();
        assert_eq!(seen.request_id.as_deref(), Some("req-out"), "{case}");
        assert_eq!(seen.tenant.as_deref(), tenant, "{case}");
        assert_eq!(seen.forwarded, forwarded, "{case}");
    }
    drop(channel);
    server.stop().await;
}
