//! gRPC with tonic: an `Orders` service behind `ContextLayer`, called through the client layer
//! on a `Channel` and through an interceptor; the request id and a baggage variable cross the
//! hop, into a unary call and into every item of a server stream.
//!
//! `cargo run --example grpc_orders --features tower,tokio`
//!
//! The service and its client are written by hand with tonic's lower-level API, the way
//! `tonic-build` generates them from a `.proto` file, so the example needs no `protoc`. With
//! generated code, only the marked lines of `main` matter.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use contextvars::tower::{
    inject_headers_with, ClientContextLayer, ContextLayer, Propagation, Trust, REQUEST_ID,
};
use contextvars::{Context, ContextExt, ContextVar};
use futures::{Stream, StreamExt};
use http::uri::PathAndQuery;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;
use tower::{service_fn, Service, ServiceBuilder};

static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();

/// Both sides agree on what travels: the request id, and `TENANT` as baggage `tenant`.
fn propagation() -> Propagation {
    Propagation::builder()
        .baggage_str(&TENANT, "tenant")
        .inbound(Trust::Trusted)
        .outbound(Trust::Trusted)
        .build()
}

// ---------------------------------------------------------------------------------------------
// What `tonic-build` would generate from:
//
//     service Orders {
//       rpc Create(CreateOrder) returns (OrderCreated);
//       rpc Track(TrackOrder) returns (stream OrderStep);
//     }

#[derive(Clone, PartialEq, prost::Message)]
struct CreateOrder {
    #[prost(string, tag = "1")]
    item: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OrderCreated {
    #[prost(string, tag = "1")]
    order_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TrackOrder {
    #[prost(string, tag = "1")]
    order_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OrderStep {
    #[prost(string, tag = "1")]
    step: String,
    /// The request id and tenant the server saw while producing this item.
    #[prost(string, tag = "2")]
    seen: String,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type StepStream = Pin<Box<dyn Stream<Item = Result<OrderStep, Status>> + Send>>;

/// The server side of `orders.Orders`: routes each call to its handler.
#[derive(Clone, Debug)]
struct OrdersServer;

impl NamedService for OrdersServer {
    const NAME: &'static str = "orders.Orders";
}

impl Service<http::Request<Body>> for OrdersServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        Box::pin(async move {
            Ok(match path.as_str() {
                "/orders.Orders/Create" => {
                    let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                    grpc.unary(service_fn(create), request).await
                }
                "/orders.Orders/Track" => {
                    let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                    grpc.server_streaming(service_fn(track), request).await
                }
                _ => Status::unimplemented(path).into_http(),
            })
        })
    }
}

/// The client side of `orders.Orders`, over any transport: a `Channel`, or one with layers.
struct OrdersClient<T> {
    grpc: tonic::client::Grpc<T>,
}

impl<T> OrdersClient<T>
where
    T: tonic::client::GrpcService<Body>,
    T::ResponseBody: Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn new(transport: T) -> OrdersClient<T> {
        OrdersClient {
            grpc: tonic::client::Grpc::new(transport),
        }
    }

    async fn create(&mut self, request: CreateOrder) -> Result<Response<OrderCreated>, Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unknown(e.into().to_string()))?;
        let path = PathAndQuery::from_static("/orders.Orders/Create");
        let codec = ProstCodec::default();
        self.grpc.unary(Request::new(request), path, codec).await
    }

    async fn track(
        &mut self,
        request: TrackOrder,
    ) -> Result<Response<tonic::Streaming<OrderStep>>, Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unknown(e.into().to_string()))?;
        let path = PathAndQuery::from_static("/orders.Orders/Track");
        let codec = ProstCodec::default();
        self.grpc
            .server_streaming(Request::new(request), path, codec)
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// The handlers: plain code reading context variables.

fn seen() -> String {
    format!(
        "request_id={:?} tenant={:?}",
        REQUEST_ID.get(),
        TENANT.get()
    )
}

async fn create(request: Request<CreateOrder>) -> Result<Response<OrderCreated>, Status> {
    let item = request.into_inner().item;
    println!("server: Create({item:?}) {}", seen());
    Ok(Response::new(OrderCreated {
        order_id: format!("order-{item}"),
    }))
}

async fn track(request: Request<TrackOrder>) -> Result<Response<StepStream>, Status> {
    println!("server: Track({:?}) {}", request.get_ref().order_id, seen());
    let steps = futures::stream::iter(["packed", "shipped", "delivered"]).map(|step| {
        Ok(OrderStep {
            step: step.into(),
            seen: seen(),
        })
    });
    // The connection polls the stream after this handler has returned, outside the request's
    // context: the stream takes it along.
    Ok(Response::new(Box::pin(steps.with_current_context())))
}

/// The caller's context: what a handler behind `ContextLayer` would have.
fn caller(request_id: &str, tenant: &str) -> Context {
    Context::current()
        .with_value(&REQUEST_ID, request_id.to_owned())
        .with_value(&TENANT, tenant.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Server: `ContextLayer` for every service on it (marked line).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .layer(ContextLayer::new(propagation())) // <-- the layer
            .add_service(OrdersServer)
            // For one service only: `.add_service(ContextLayer::new(..).named_layer(OrdersServer))`
            // with `tonic::service::LayerExt` in scope.
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                stopped.await.ok();
            }),
    );

    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;

    // Client, first way: `ClientContextLayer` on the `Channel` (marked line).
    let transport = ServiceBuilder::new()
        .layer(ClientContextLayer::new(propagation())) // <-- the client layer
        .service(channel.clone());
    let mut client = OrdersClient::new(transport);

    let calls = async {
        let created = client
            .create(CreateOrder {
                item: "book".into(),
            })
            .await?;
        let id = created.metadata().get("x-request-id").cloned();
        let id = id.as_ref().and_then(|id| id.to_str().ok()).unwrap_or("-");
        let order_id = created.into_inner().order_id;
        println!("client: created {order_id}, x-request-id: {id}");

        let mut steps = client.track(TrackOrder { order_id }).await?.into_inner();
        while let Some(step) = steps.message().await? {
            println!("client: step {:<9} (server saw {})", step.step, step.seen);
        }
        Ok::<_, Status>(())
    };
    calls.with_context(caller("req-abc", "acme")).await?;

    // Client, second way: `inject_headers_with` from an interceptor (marked line); generated
    // clients take it with `XxxClient::with_interceptor(channel, interceptor)`.
    let outgoing = propagation();
    let interceptor = move |mut request: Request<()>| {
        inject_headers_with(&outgoing, request.metadata_mut().as_mut()); // <-- the headers
        Ok(request)
    };
    let mut client = OrdersClient::new(InterceptedService::new(channel, interceptor));
    let call = client.create(CreateOrder { item: "pen".into() });
    let created = call.with_context(caller("req-def", "globex")).await?;
    println!(
        "client: created {} through the interceptor",
        created.into_inner().order_id
    );

    drop(client);
    stop.send(()).ok();
    server.await??;
    Ok(())
}
