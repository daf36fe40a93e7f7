//! [NATS](https://docs.rs/async-nats) messages that carry the context: publish and request with
//! the current context in the message headers, and subscriptions whose messages are each
//! handled in the context they brought (feature `async-nats`).
//!
//! # What it propagates
//!
//! Through a [`Propagation`], the same configuration as the HTTP and gRPC sides, so a request
//! id that came in over HTTP goes on over NATS and back out over HTTP unchanged:
//!
//! - **Sending.** [`ContextClient`] wraps an `async_nats::Client`. Its [`publish`],
//!   [`publish_with_headers`], [`publish_with_reply`], [`request`] and
//!   [`request_with_headers`] write the context current *at the call* into the message
//!   headers: the request id header (`x-request-id` by default) and `baggage` (the registered
//!   variables that are set, the forwarded members, then members the headers already had). The
//!   returned future can be awaited or spawned anywhere: the headers are already written.
//! - **Receiving.** [`ContextClient::subscribe`] and [`queue_subscribe`] return a
//!   [`ContextSubscriber`], a `Stream` of [`ContextMessage`]s: each message paired with the
//!   context extracted from its headers alone (a fresh context: nothing from the subscriber's
//!   task or from another message). [`ContextMessage::handle`] runs your handler (the call and
//!   the whole future it returns) inside that context; spawn the returned future to handle
//!   messages concurrently, each in its own context. A message without a valid request id gets
//!   a generated one ([`unique_request_id`](crate::propagation::unique_request_id)), as an HTTP
//!   request does, so every handler has an id to log.
//! - **Request/reply.** A responder that handles the request in its context and answers with
//!   [`ContextClient::publish`] to the message's `reply` subject sends the same id (and
//!   baggage) back; the requester reads it from the reply with [`ContextClient::context_of`].
//!
//! `async_nats::HeaderMap` implements the carrier traits
//! ([`Extractor`], [`Injector`]),
//! so [`Propagation::extract`] and [`Propagation::inject`] work on headers you build yourself
//! (JetStream publishes, the service API). NATS header names are case-sensitive; they are read
//! in any case and written lowercase.
//!
//! With the `opentelemetry` feature, publishes also carry the current OpenTelemetry context's
//! `traceparent`/`tracestate` and its baggage (merged into `baggage`), and each message's
//! trace context (from a trusted publisher only) and accepted baggage become the OTel context
//! [`ContextMessage::handle`] makes current (`ContextMessage::otel_context` gives it); see the
//! `contextvars::opentelemetry` module.
//!
//! # Trust
//!
//! Both directions obey the [`Propagation`]'s trust settings, as HTTP does (see
//! [Security](crate::propagation#security)): from an [untrusted](crate::propagation::Trust)
//! publisher (the default), a message's request id is kept only as
//! [`CALLER_REQUEST_ID`](crate::propagation::CALLER_REQUEST_ID) and the handler runs under a
//! fresh one, only baggage keys allowed from untrusted callers set variables and nothing is
//! forwarded; to an untrusted subscriber, only the request id and public variables are sent. A
//! bus only your own services can publish on and subscribe to is trusted both ways
//! (`Propagation::builder().inbound(Trust::Trusted).outbound(Trust::Trusted)`). A bus shared
//! with others decides per message and per subject: [`ContextClient::trust_messages_if`] (for
//! example on a header your own publishers set and the account of outsiders cannot) and
//! [`ContextClient::trust_subjects_if`] (for example, everything but `partner.>`).
//!
//! Malformed headers follow the rules of HTTP exactly (the
//! [bad input table](crate::propagation#bad-input)): an oversized or invalid request id is
//! replaced by a generated one, malformed baggage members are dropped and the others kept,
//! within the W3C limits. The message is always delivered and handled; nothing panics.
//!
//! # What bypasses it
//!
//! - Messages published with the plain `async_nats::Client` (or through a JetStream context,
//!   the key-value or object stores, or the service API's `respond`) carry nothing, unless you
//!   inject into their headers yourself.
//! - A plain `async_nats::Subscriber` yields bare messages: whatever handles them runs in the
//!   subscriber task's context. Wrap it with [`ContextSubscriber::new`].
//! - Work a handler starts with a plain `tokio::spawn` runs in the empty context: use this
//!   crate's spawn helpers. The future from [`ContextMessage::handle`] itself carries its
//!   context, so a plain spawn *of it* would be fine, but the clippy recipe cannot tell:
//!   [`ContextMessage::spawn_handle`] spawns it on tokio without a raw spawn.
//! - Only text headers are read (NATS headers are text), and only the request id and baggage:
//!   other context variables stay in the process.
//!
//! [`publish`]: ContextClient::publish
//! [`publish_with_headers`]: ContextClient::publish_with_headers
//! [`publish_with_reply`]: ContextClient::publish_with_reply
//! [`request`]: ContextClient::request
//! [`request_with_headers`]: ContextClient::request_with_headers
//! [`queue_subscribe`]: ContextClient::queue_subscribe
//!
//! # Examples
//!
//! ```no_run
//! use contextvars::async_nats::ContextClient;
//! use contextvars::propagation::{Propagation, Trust, REQUEST_ID};
//! use futures::StreamExt;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let nats = async_nats::connect("127.0.0.1:4222").await?;
//! // Our own bus: only our services publish and subscribe on it.
//! let internal = Propagation::builder().inbound(Trust::Trusted).outbound(Trust::Trusted).build();
//! let client = ContextClient::new(nats, internal);
//!
//! // A worker: every message handled in the context it brought.
//! let mut orders = client.subscribe("orders").await?;
//! contextvars::tokio::spawn_with_context(async move {
//!     while let Some(message) = orders.next().await {
//!         message.spawn_handle(|message| async move {
//!             println!("{:?}: order {:?}", REQUEST_ID.get(), message.payload);
//!         });
//!     }
//! });
//!
//! // Anywhere in a request's context: the id goes with the message.
//! REQUEST_ID.scope("req-1".into(), || client.publish("orders", "42".into())).await?;
//! # Ok(())
//! # }
//! # let _ = run;
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use ::async_nats::client::{PublishError, RequestError, SubscribeError};
use ::async_nats::subject::ToSubject;
use ::async_nats::{Client, HeaderMap, HeaderName, Message, Subscriber};
use ::bytes::Bytes;
use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::propagation::{Extracted, ExtractedFuture, Extractor, Injector, Propagation, Trust};

/// Decides whether a received message comes from a trusted publisher.
type TrustMessage = Arc<dyn Fn(&Message) -> bool + Send + Sync>;
/// Decides whether the subscribers of a subject are trusted.
type TrustSubject = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The trust predicates of a client or subscriber, shown by `Debug` as present or not.
#[derive(Clone, Default)]
struct Predicates {
    messages: Option<TrustMessage>,
    subjects: Option<TrustSubject>,
}

impl fmt::Debug for Predicates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Predicates")
            .field("messages", &self.messages.as_ref().map(|_| ".."))
            .field("subjects", &self.subjects.as_ref().map(|_| ".."))
            .finish()
    }
}

impl Predicates {
    /// The propagation to write a message to `subject` with.
    fn for_subject(&self, propagation: &Propagation, subject: &str) -> Propagation {
        match &self.subjects {
            Some(trusted) => propagation.with_outbound(Trust::from_bool(trusted(subject))),
            None => propagation.clone(),
        }
    }

    /// The context `message` brings, read with the trust the predicate gives it.
    fn extract(&self, propagation: &Propagation, message: &Message) -> Extracted {
        match &self.messages {
            Some(trusted) => {
                let trust = Trust::from_bool(trusted(message));
                extract(&propagation.with_inbound(trust), message)
            }
            None => extract(propagation, message),
        }
    }
}
use crate::Context;

// ---------------------------------------------------------------------------------------------
// The carrier.

/// NATS header names keep their case: an exact match first, then any ASCII case.
impl Extractor for HeaderMap {
    fn get(&self, key: &str) -> Option<&str> {
        if let Some(value) = HeaderMap::get(self, key) {
            return Some(value.as_str());
        }
        self.iter()
            .find(|(name, _)| AsRef::<str>::as_ref(*name).eq_ignore_ascii_case(key))
            .and_then(|(_, values)| values.first())
            .map(|value| value.as_str())
    }

    fn get_all(&self, key: &str) -> Vec<&str> {
        // The exact name first, then the others in any case (their order among themselves is
        // the map's).
        let mut values: Vec<&str> = HeaderMap::get_all(self, key)
            .map(|value| value.as_str())
            .collect();
        for (name, others) in self.iter() {
            let name: &str = name.as_ref();
            if name != key && name.eq_ignore_ascii_case(key) {
                values.extend(others.iter().map(|value| value.as_str()));
            }
        }
        values
    }

    fn keys(&self) -> Vec<&str> {
        self.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

impl Injector for HeaderMap {
    fn set(&mut self, key: &str, value: String) {
        let other_case = self.iter().any(|(name, _)| {
            let name: &str = name.as_ref();
            name != key && name.eq_ignore_ascii_case(key)
        });
        if other_case {
            // No `remove` on NATS headers: rebuild them without the key in any case.
            let kept: Vec<(HeaderName, Vec<::async_nats::HeaderValue>)> = self
                .iter()
                .filter(|(name, _)| !AsRef::<str>::as_ref(*name).eq_ignore_ascii_case(key))
                .map(|(name, values)| (name.clone(), values.clone()))
                .collect();
            *self = HeaderMap::new();
            for (name, values) in kept {
                for value in values {
                    self.append(name.clone(), value);
                }
            }
        }
        self.insert(key, value);
    }

    fn existing(&self, key: &str) -> Vec<&str> {
        Extractor::get_all(self, key)
    }
}

// ---------------------------------------------------------------------------------------------
// Sending.

/// An `async_nats::Client` whose messages carry the context current at the call; see the
/// [module docs](self). Cheap to clone, like the client.
///
/// # Examples
///
/// ```no_run
/// use contextvars::async_nats::ContextClient;
/// use contextvars::propagation::{Propagation, REQUEST_ID};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let client = ContextClient::new(async_nats::connect("127.0.0.1:4222").await?, Propagation::default());
/// let reply = REQUEST_ID.scope("req-1".into(), || client.request("prices", "sku-9".into())).await?;
/// // The responder answered in the request's context: the reply carries the id back.
/// assert_eq!(client.context_of(&reply).get(&REQUEST_ID).as_deref(), Some("req-1"));
/// # Ok(())
/// # }
/// # let _ = run;
/// ```
#[derive(Clone, Debug)]
pub struct ContextClient {
    client: Client,
    propagation: Propagation,
    trust: Predicates,
}

impl ContextClient {
    /// Wraps `client`, writing and reading contexts with `propagation`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), async_nats::ConnectError> {
    /// let client = contextvars::async_nats::ContextClient::new(
    ///     async_nats::connect("127.0.0.1:4222").await?,
    ///     contextvars::propagation::Propagation::default(),
    /// );
    /// # let _ = client;
    /// # Ok(())
    /// # }
    /// # let _ = run;
    /// ```
    pub fn new(client: Client, propagation: Propagation) -> ContextClient {
        ContextClient {
            client,
            propagation,
            trust: Predicates::default(),
        }
    }

    /// Decides for each received message (in [`subscribe`](ContextClient::subscribe),
    /// [`queue_subscribe`](ContextClient::queue_subscribe) and
    /// [`context_of`](ContextClient::context_of)) whether its publisher is trusted, in place of
    /// the propagation's [`inbound`](crate::propagation::PropagationBuilder::inbound) setting.
    /// Trust a header only if publishers you do not trust cannot set it (NATS accounts and
    /// permissions decide that, not this crate).
    ///
    /// ```no_run
    /// # async fn _run(nats: async_nats::Client) {
    /// use contextvars::async_nats::ContextClient;
    /// use contextvars::propagation::Propagation;
    ///
    /// // Our publishers write to `internal.>`; the `public.>` subjects are open to partners.
    /// let client = ContextClient::new(nats, Propagation::default())
    ///     .trust_messages_if(|message| message.subject.starts_with("internal."));
    /// # let _ = client;
    /// # }
    /// ```
    pub fn trust_messages_if<F>(mut self, trusted: F) -> ContextClient
    where
        F: Fn(&Message) -> bool + Send + Sync + 'static,
    {
        self.trust.messages = Some(Arc::new(trusted));
        self
    }

    /// Decides for each subject published or requested to whether its subscribers are trusted,
    /// in place of the propagation's
    /// [`outbound`](crate::propagation::PropagationBuilder::outbound) setting: to an untrusted
    /// subject, only the request id and public variables are sent.
    /// [`headers`](ContextClient::headers), which has no subject, keeps the propagation's
    /// setting.
    ///
    /// ```no_run
    /// # async fn _run(nats: async_nats::Client) {
    /// use contextvars::async_nats::ContextClient;
    /// use contextvars::propagation::Propagation;
    ///
    /// let client = ContextClient::new(nats, Propagation::default())
    ///     .trust_subjects_if(|subject| !subject.starts_with("partner."));
    /// # let _ = client;
    /// # }
    /// ```
    pub fn trust_subjects_if<F>(mut self, trusted: F) -> ContextClient
    where
        F: Fn(&str) -> bool + Send + Sync + 'static,
    {
        self.trust.subjects = Some(Arc::new(trusted));
        self
    }

    /// The wrapped client, for everything else (its messages carry no context).
    ///
    /// ```no_run
    /// # async fn run(client: contextvars::async_nats::ContextClient) -> Result<(), async_nats::client::FlushError> {
    /// client.client().flush().await?;
    /// # Ok(())
    /// # }
    /// # let _ = run;
    /// ```
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The configuration this client writes and reads with.
    ///
    /// ```no_run
    /// # fn run(client: contextvars::async_nats::ContextClient) {
    /// assert_eq!(client.propagation().request_id_header(), "x-request-id");
    /// # }
    /// # let _ = run;
    /// ```
    pub fn propagation(&self) -> &Propagation {
        &self.propagation
    }

    /// The headers of a message from the current context.
    ///
    /// ```no_run
    /// # fn run(client: contextvars::async_nats::ContextClient) {
    /// use contextvars::propagation::REQUEST_ID;
    ///
    /// let headers = REQUEST_ID.scope("req-1".into(), || client.headers());
    /// assert_eq!(headers.get("x-request-id").unwrap().as_str(), "req-1");
    /// # }
    /// # let _ = run;
    /// ```
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        self.propagation.inject(&mut headers);
        headers
    }

    /// Publishes `payload` to `subject` with the current context in the headers.
    ///
    /// ```no_run
    /// # async fn run(client: contextvars::async_nats::ContextClient) -> Result<(), async_nats::PublishError> {
    /// client.publish("orders", "42".into()).await?;
    /// # Ok(())
    /// # }
    /// # let _ = run;
    /// ```
    pub fn publish<S: ToSubject>(
        &self,
        subject: S,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), PublishError>> + Send + '_ {
        self.publish_with_headers(subject, HeaderMap::new(), payload)
    }

    /// Publishes with headers of your own, to which the current context is added (its request
    /// id replaces one they had; their baggage members are kept after the context's).
    ///
    /// ```no_run
    /// # async fn run(client: contextvars::async_nats::ContextClient) -> Result<(), async_nats::PublishError> {
    /// let mut headers = async_nats::HeaderMap::new();
    /// headers.insert("content-type", "text/plain");
    /// client.publish_with_headers("orders", headers, "42".into()).await?;
    /// # Ok(())
    /// # }
    /// # let _ = run;
    /// ```
    pub fn publish_with_headers<S: ToSubject>(
        &self,
        subject: S,
        mut headers: HeaderMap,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), PublishError>> + Send + '_ {
        let subject = subject.to_subject();
        self.trust
            .for_subject(&self.propagation, &subject)
            .inject(&mut headers);
        self.client.publish_with_headers(subject, headers, payload)
    }

    /// Publishes with a reply subject and the current context in the headers.
    ///
    /// ```no_run
    /// # async fn run(client: contextvars::async_nats::ContextClient) -> Result<(), async_nats::PublishError> {
    /// let inbox = client.client().new_inbox();
    /// client.publish_with_reply("prices", inbox, "sku-9".into()).await?;
    /// # Ok(())
    /// # }
    /// # let _ = run;
    /// ```
    pub fn publish_with_reply<S: ToSubject, R: ToSubject>(
        &self,
        subject: S,
        reply: R,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), PublishError>> + Send + '_ {
        let subject = subject.to_subject();
        let mut headers = HeaderMap::new();
        self.trust
            .for_subject(&self.propagation, &subject)
            .inject(&mut headers);
        self.client
            .publish_with_reply_and_headers(subject, reply.to_subject(), headers, payload)
    }

    /// Sends a request with the current context in the headers and waits for the reply.
    ///
    /// ```no_run
    /// # async fn run(client: contextvars::async_nats::ContextClient) -> Result<(), async_nats::RequestError> {
    /// let reply = client.request("prices", "sku-9".into()).await?;
    /// # let _ = reply;
    /// # Ok(())
    /// # }
    /// # let _ = run;
    /// ```
    pub fn request<S: ToSubject>(
        &self,
        subject: S,
        payload: Bytes,
    ) -> impl Future<Output = Result<Message, RequestError>> + Send + '_ {
        self.request_with_headers(subject, HeaderMap::new(), payload)
    }

    /// [`request`](ContextClient::request) with headers of your own, to which the current
    /// context is added.
    ///
    /// ```no_run
    /// # async fn run(client: contextvars::async_nats::ContextClient) -> Result<(), async_nats::RequestError> {
    /// let mut headers = async_nats::HeaderMap::new();
    /// headers.insert("content-type", "text/plain");
    /// let reply = client.request_with_headers("prices", headers, "sku-9".into()).await?;
    /// # let _ = reply;
    /// # Ok(())
    /// # }
    /// # let _ = run;
    /// ```
    pub fn request_with_headers<S: ToSubject>(
        &self,
        subject: S,
        mut headers: HeaderMap,
        payload: Bytes,
    ) -> impl Future<Output = Result<Message, RequestError>> + Send + '_ {
        let subject = subject.to_subject();
        self.trust
            .for_subject(&self.propagation, &subject)
            .inject(&mut headers);
        self.client.request_with_headers(subject, headers, payload)
    }

    /// The context a message brings (a reply, or a message from elsewhere): a fresh context from
    /// its headers, with a generated request id when it has none; see
    /// [`Propagation::extract`].
    ///
    /// ```no_run
    /// # async fn run(client: contextvars::async_nats::ContextClient) -> Result<(), async_nats::RequestError> {
    /// use contextvars::propagation::REQUEST_ID;
    ///
    /// let reply = client.request("prices", "sku-9".into()).await?;
    /// let context = client.context_of(&reply);
    /// println!("answered for {:?}", context.get(&REQUEST_ID));
    /// # Ok(())
    /// # }
    /// # let _ = run;
    /// ```
    pub fn context_of(&self, message: &Message) -> Context {
        self.trust.extract(&self.propagation, message).context
    }

    // -----------------------------------------------------------------------------------------
    // Receiving.

    /// Subscribes to `subject`: every message comes with the context of its headers.
    ///
    /// ```no_run
    /// # async fn run(client: contextvars::async_nats::ContextClient) -> Result<(), async_nats::SubscribeError> {
    /// use futures::StreamExt;
    ///
    /// let mut orders = client.subscribe("orders").await?;
    /// while let Some(message) = orders.next().await {
    ///     message.handle(|message| async move { println!("{:?}", message.payload) }).await;
    /// }
    /// # Ok(())
    /// # }
    /// # let _ = run;
    /// ```
    pub async fn subscribe<S: ToSubject>(
        &self,
        subject: S,
    ) -> Result<ContextSubscriber, SubscribeError> {
        let subscriber = self.client.subscribe(subject.to_subject()).await?;
        Ok(ContextSubscriber {
            inner: subscriber,
            propagation: self.propagation.clone(),
            trust: Predicates {
                messages: self.trust.messages.clone(),
                subjects: None,
            },
        })
    }

    /// Subscribes to `subject` in a queue group (each message to one member of the group);
    /// every message comes with the context of its headers.
    ///
    /// ```no_run
    /// # async fn run(client: contextvars::async_nats::ContextClient) -> Result<(), async_nats::SubscribeError> {
    /// let workers = client.queue_subscribe("orders", "workers".into()).await?;
    /// # let _ = workers;
    /// # Ok(())
    /// # }
    /// # let _ = run;
    /// ```
    pub async fn queue_subscribe<S: ToSubject>(
        &self,
        subject: S,
        queue_group: String,
    ) -> Result<ContextSubscriber, SubscribeError> {
        let subscriber = self
            .client
            .queue_subscribe(subject.to_subject(), queue_group)
            .await?;
        Ok(ContextSubscriber {
            inner: subscriber,
            propagation: self.propagation.clone(),
            trust: Predicates {
                messages: self.trust.messages.clone(),
                subjects: None,
            },
        })
    }
}

/// What a message brings: its context and what travels beside it (with the `opentelemetry`
/// feature, its OTel context).
fn extract(propagation: &Propagation, message: &Message) -> Extracted {
    let empty = HeaderMap::new();
    let headers = message.headers.as_ref().unwrap_or(&empty);
    propagation.extract_with(headers, || Some(crate::propagation::unique_request_id()))
}

// ---------------------------------------------------------------------------------------------
// Receiving.

/// A `Stream` of [`ContextMessage`]s: an `async_nats::Subscriber` whose messages each come with
/// the context extracted from their headers. Dropping it unsubscribes, as the subscriber does.
///
/// # Examples
///
/// ```no_run
/// use contextvars::async_nats::ContextSubscriber;
/// use contextvars::propagation::{Propagation, REQUEST_ID};
/// use futures::StreamExt;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let nats = async_nats::connect("127.0.0.1:4222").await?;
/// let mut orders = ContextSubscriber::new(nats.subscribe("orders").await?, Propagation::default());
/// while let Some(message) = orders.next().await {
///     // Each message handled in its own task and context.
///     message.spawn_handle(|_| async { println!("{:?}", REQUEST_ID.get()) });
/// }
/// # Ok(())
/// # }
/// # let _ = run;
/// ```
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct ContextSubscriber {
    inner: Subscriber,
    propagation: Propagation,
    trust: Predicates,
}

impl ContextSubscriber {
    /// Wraps a subscriber made by the plain client.
    ///
    /// ```no_run
    /// # async fn run(nats: async_nats::Client) -> Result<(), async_nats::SubscribeError> {
    /// let subscriber = contextvars::async_nats::ContextSubscriber::new(
    ///     nats.subscribe("orders").await?,
    ///     contextvars::propagation::Propagation::default(),
    /// );
    /// # let _ = subscriber;
    /// # Ok(())
    /// # }
    /// # let _ = run;
    /// ```
    pub fn new(subscriber: Subscriber, propagation: Propagation) -> ContextSubscriber {
        ContextSubscriber {
            inner: subscriber,
            propagation,
            trust: Predicates::default(),
        }
    }

    /// Decides for each message whether its publisher is trusted, in place of the
    /// propagation's [`inbound`](crate::propagation::PropagationBuilder::inbound) setting; see
    /// [`ContextClient::trust_messages_if`].
    ///
    /// ```no_run
    /// # async fn _run(nats: async_nats::Client) -> Result<(), async_nats::SubscribeError> {
    /// use contextvars::async_nats::ContextSubscriber;
    /// use contextvars::propagation::Propagation;
    ///
    /// let orders = ContextSubscriber::new(nats.subscribe("orders.>").await?, Propagation::default())
    ///     .trust_messages_if(|message| message.subject.starts_with("orders.internal."));
    /// # let _ = orders;
    /// # Ok(())
    /// # }
    /// ```
    pub fn trust_messages_if<F>(mut self, trusted: F) -> ContextSubscriber
    where
        F: Fn(&Message) -> bool + Send + Sync + 'static,
    {
        self.trust.messages = Some(Arc::new(trusted));
        self
    }

    /// The wrapped subscriber, for `unsubscribe` and `unsubscribe_after`.
    ///
    /// ```no_run
    /// # async fn run(mut orders: contextvars::async_nats::ContextSubscriber) -> Result<(), async_nats::UnsubscribeError> {
    /// orders.get_mut().unsubscribe_after(10).await?;
    /// # Ok(())
    /// # }
    /// # let _ = run;
    /// ```
    pub fn get_mut(&mut self) -> &mut Subscriber {
        &mut self.inner
    }

    /// The wrapped subscriber, whose messages come bare.
    ///
    /// ```no_run
    /// # fn run(orders: contextvars::async_nats::ContextSubscriber) {
    /// let bare: async_nats::Subscriber = orders.into_inner();
    /// # let _ = bare;
    /// # }
    /// # let _ = run;
    /// ```
    pub fn into_inner(self) -> Subscriber {
        self.inner
    }
}

impl Stream for ContextSubscriber {
    type Item = ContextMessage;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<ContextMessage>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(message)) => {
                let received = this.trust.extract(&this.propagation, &message);
                Poll::Ready(Some(ContextMessage { received, message }))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// A NATS message with the context its headers brought: a fresh context with its request id
/// (generated when it has none) and baggage. Hand it to [`handle`](ContextMessage::handle) to run
/// your handler in that context.
///
/// # Examples
///
/// ```
/// use contextvars::async_nats::ContextMessage;
/// use contextvars::propagation::{Propagation, Trust, REQUEST_ID};
///
/// let mut headers = async_nats::HeaderMap::new();
/// headers.insert("x-request-id", "req-1");
/// let message = async_nats::Message {
///     subject: "orders".into(),
///     reply: None,
///     payload: "42".into(),
///     headers: Some(headers),
///     status: None,
///     description: None,
///     length: 0,
/// };
/// // A message from one of our own services.
/// let internal = Propagation::builder().inbound(Trust::Trusted).build();
/// let message = ContextMessage::new(message, &internal);
/// let seen = futures::executor::block_on(message.handle(|message| async move {
///     (REQUEST_ID.get(), message.payload)
/// }));
/// assert_eq!(seen, (Some("req-1".to_string()), "42".into()));
/// ```
pub struct ContextMessage {
    message: Message,
    received: Extracted,
}

impl fmt::Debug for ContextMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextMessage")
            .field("message", &self.message)
            .field("context", &self.received.context)
            .finish()
    }
}

impl ContextMessage {
    /// Pairs `message` with the context extracted from its headers by `propagation`.
    ///
    /// ```
    /// use contextvars::async_nats::ContextMessage;
    /// use contextvars::propagation::{Propagation, REQUEST_ID};
    ///
    /// let message = async_nats::Message {
    ///     subject: "orders".into(), reply: None, payload: "42".into(), headers: None,
    ///     status: None, description: None, length: 0,
    /// };
    /// let message = ContextMessage::new(message, &Propagation::default());
    /// assert!(message.context().get(&REQUEST_ID).is_some()); // generated: it had none
    /// ```
    pub fn new(message: Message, propagation: &Propagation) -> ContextMessage {
        ContextMessage {
            received: extract(propagation, &message),
            message,
        }
    }

    /// The message.
    ///
    /// ```
    /// # let message = async_nats::Message { subject: "orders".into(), reply: None, payload: "42".into(), headers: None, status: None, description: None, length: 0 };
    /// # let message = contextvars::async_nats::ContextMessage::new(message, &Default::default());
    /// assert_eq!(message.message().subject.as_str(), "orders");
    /// ```
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The context the message brought.
    ///
    /// ```
    /// # let message = async_nats::Message { subject: "orders".into(), reply: None, payload: "42".into(), headers: None, status: None, description: None, length: 0 };
    /// # let message = contextvars::async_nats::ContextMessage::new(message, &Default::default());
    /// let request_id = message.context().get(&contextvars::propagation::REQUEST_ID);
    /// # assert!(request_id.is_some());
    /// ```
    pub fn context(&self) -> &Context {
        &self.received.context
    }

    /// The OpenTelemetry context the message brought (feature `opentelemetry`): its trace
    /// context when the publisher is trusted (from an untrusted one, none: the handling starts a
    /// new trace), and the baggage members accepted. [`handle`](ContextMessage::handle) makes it
    /// current; [`into_parts`](ContextMessage::into_parts) leaves it out.
    ///
    /// ```
    /// use contextvars::async_nats::ContextMessage;
    /// use contextvars::propagation::{Propagation, Trust};
    /// use opentelemetry::trace::TraceContextExt;
    ///
    /// let mut headers = async_nats::HeaderMap::new();
    /// headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    /// let message = async_nats::Message {
    ///     subject: "orders".into(), reply: None, payload: "42".into(), headers: Some(headers),
    ///     status: None, description: None, length: 0,
    /// };
    /// let internal = Propagation::builder().inbound(Trust::Trusted).build();
    /// let message = ContextMessage::new(message, &internal);
    /// let trace_id = message.otel_context().span().span_context().trace_id();
    /// assert_eq!(trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// ```
    #[cfg(feature = "opentelemetry")]
    #[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
    pub fn otel_context(&self) -> &::opentelemetry::Context {
        self.received.otel_context()
    }

    /// The message and its context, apart.
    ///
    /// ```
    /// # let message = async_nats::Message { subject: "orders".into(), reply: None, payload: "42".into(), headers: None, status: None, description: None, length: 0 };
    /// # let message = contextvars::async_nats::ContextMessage::new(message, &Default::default());
    /// let (message, context) = message.into_parts();
    /// # let _ = (message, context);
    /// ```
    pub fn into_parts(self) -> (Message, Context) {
        (self.message, self.received.context)
    }

    /// Runs `handler` on the message inside its context: the call, and every poll and the drop
    /// of the future it returns. Await the result, or spawn it to handle messages concurrently
    /// (any spawn will do, since the future carries its context; on tokio,
    /// [`spawn_handle`](ContextMessage::spawn_handle) does it without a raw spawn).
    ///
    /// ```
    /// # let message = async_nats::Message { subject: "orders".into(), reply: None, payload: "42".into(), headers: None, status: None, description: None, length: 0 };
    /// # let message = contextvars::async_nats::ContextMessage::new(message, &Default::default());
    /// use contextvars::propagation::REQUEST_ID;
    ///
    /// let handled = message.handle(|message| async move {
    ///     format!("{:?} for {:?}", message.payload, REQUEST_ID.get())
    /// });
    /// # let _ = futures::executor::block_on(handled);
    /// ```
    pub fn handle<F, Fut>(self, handler: F) -> Handled<Fut>
    where
        F: FnOnce(Message) -> Fut,
        Fut: Future,
    {
        let ContextMessage { message, received } = self;
        let future = received.run(|| handler(message));
        Handled {
            inner: received.scope(future),
        }
    }

    /// Handles the message in a task of its own on tokio, in the message's context: the same
    /// as `tokio::spawn(message.handle(handler))`, which the crate's clippy recipe reports (it
    /// cannot see that the future carries its context), written without a raw spawn. With the
    /// `tokio` feature.
    ///
    /// ```
    /// # let message = async_nats::Message { subject: "orders".into(), reply: None, payload: "42".into(), headers: None, status: None, description: None, length: 0 };
    /// # let message = contextvars::async_nats::ContextMessage::new(message, &Default::default());
    /// use contextvars::propagation::REQUEST_ID;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let task = message.spawn_handle(|message| async move {
    ///     (message.payload, REQUEST_ID.get()) // the message's id (here generated: it sent none)
    /// });
    /// let (payload, request_id) = task.await.unwrap();
    /// assert_eq!((&payload[..], request_id.is_some()), (&b"42"[..], true));
    /// # });
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn spawn_handle<F, Fut>(self, handler: F) -> ::tokio::task::JoinHandle<Fut::Output>
    where
        F: FnOnce(Message) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        ::tokio::spawn(self.handle(handler))
    }
}

pin_project! {
    /// The future of [`ContextMessage::handle`]: the handler's future, polled and dropped inside
    /// the message's context (and, with the `opentelemetry` feature, its OTel context).
    ///
    /// ```
    /// # let message = async_nats::Message { subject: "orders".into(), reply: None, payload: "42".into(), headers: None, status: None, description: None, length: 0 };
    /// # let message = contextvars::async_nats::ContextMessage::new(message, &Default::default());
    /// use contextvars::async_nats::Handled;
    ///
    /// let handled: Handled<_> = message.handle(|message| async move { message.payload.len() });
    /// assert_eq!(futures::executor::block_on(handled), 2);
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Handled<F> {
        #[pin]
        inner: ExtractedFuture<F>,
    }
}

impl<F: Future> Future for Handled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

impl<F: fmt::Debug> fmt::Debug for Handled<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handled")
            .field("inner", &self.inner)
            .finish()
    }
}
