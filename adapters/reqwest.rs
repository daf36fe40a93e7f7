//! Outgoing HTTP requests made with [reqwest](https://docs.rs/reqwest) through
//! [reqwest-middleware](https://docs.rs/reqwest-middleware) carry the current context (feature
//! `reqwest`).
//!
//! # What it propagates
//!
//! [`ContextMiddleware`] writes the context current where the request is sent into its headers,
//! through a [`Propagation`] (the same configuration as the server side): the request id header
//! (`x-request-id` by default, from [`REQUEST_ID`](crate::propagation::REQUEST_ID)), and
//! `baggage` with the registered variables that are set, the members forwarded from the
//! incoming request, then the members the request already had under other keys. Nothing is
//! written for what is not set, and no other header is touched.
//!
//! To a destination that is not [trusted](crate::propagation::Trust) (the default), only the
//! request id and the variables marked [public](crate::propagation::PropagationBuilder::public)
//! are written: no forwarded member, no private variable. Say which destinations are your own
//! with [`ContextMiddleware::trusted_hosts`] (or [`trust_destinations_if`](ContextMiddleware::trust_destinations_if)),
//! or for a client that only calls your own services, with the propagation's
//! [`outbound`](crate::propagation::PropagationBuilder::outbound) setting.
//!
//! The context is the one current when the middleware runs: when the future returned by
//! `send()` is first polled, which is where it is awaited (the handler's task, or a task
//! started with this crate's spawn helpers, which carries the context).
//!
//! With the `opentelemetry` feature, the current OpenTelemetry context's `traceparent` and
//! `tracestate` are written too, and its baggage merged into `baggage` (to an untrusted
//! destination, only keys registered as public); see the `contextvars::opentelemetry` module.
//!
//! # What bypasses it
//!
//! - Requests sent with a plain `reqwest::Client`, or a `ClientWithMiddleware` built without
//!   this middleware, carry nothing.
//! - A `send()` future polled by a plain `tokio::spawn` runs in the worker's (empty) context:
//!   spawn it with `contextvars::tokio::spawn_with_context` or `.with_current_context()`.
//! - Redirects followed by reqwest itself keep the headers reqwest keeps for them; the
//!   middleware runs once per `send()`.
//! - Middlewares added before this one see the request without the context's headers.
//!
//! # Examples
//!
//! ```
//! use contextvars::propagation::Propagation;
//! use contextvars::reqwest::ContextMiddleware;
//! use contextvars::ContextVar;
//!
//! static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
//!
//! let propagation = Propagation::builder().baggage_str(&TENANT, "tenant").build();
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     // The tenant goes to our own services only; a third-party API sees the request id.
//!     .with(ContextMiddleware::new(propagation).trusted_hosts(["*.svc.cluster.local"]))
//!     .build();
//! // Inside a request's context (a `ContextLayer` handler, a NATS message's handler...):
//! // `client.get(url).send().await` carries its request id and tenant.
//! # let _ = client;
//! ```

use std::sync::Arc;

use ::http::Extensions;
use ::reqwest::{Request, Response, Url};
use ::reqwest_middleware::{Middleware, Next, Result};

use crate::propagation::{Propagation, TrustedHosts};

/// How [`ContextMiddleware`] decides whether a destination is trusted.
type Destinations = crate::http::Destinations<Url>;

/// A `reqwest-middleware` [`Middleware`] that writes the current context into every outgoing
/// request's headers; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use contextvars::reqwest::ContextMiddleware;
///
/// // The default propagation: `x-request-id` (and, to trusted destinations only, which by
/// // default are none, the forwarded baggage).
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(ContextMiddleware::default())
///     .build();
/// # let _ = client;
/// ```
#[derive(Clone, Debug, Default)]
pub struct ContextMiddleware {
    propagation: Propagation,
    destinations: Option<Destinations>,
}

impl ContextMiddleware {
    /// A middleware with this configuration (share it with the server side so both agree).
    ///
    /// ```
    /// use contextvars::propagation::Propagation;
    /// use contextvars::reqwest::ContextMiddleware;
    ///
    /// let middleware = ContextMiddleware::new(Propagation::builder().request_id_header("x-correlation-id").build());
    /// assert_eq!(middleware.propagation().request_id_header(), "x-correlation-id");
    /// ```
    pub fn new(propagation: Propagation) -> ContextMiddleware {
        ContextMiddleware {
            propagation,
            destinations: None,
        }
    }

    /// Treats requests to these hosts as going to trusted destinations and every other request
    /// as untrusted, in place of the propagation's
    /// [`outbound`](crate::propagation::PropagationBuilder::outbound) setting; see
    /// [`TrustedHosts`] for the entries' syntax (`host`, `host:port`, `*.domain`).
    ///
    /// ```
    /// use contextvars::reqwest::ContextMiddleware;
    ///
    /// let middleware = ContextMiddleware::default().trusted_hosts(["orders.internal", "*.svc.cluster.local"]);
    /// # let _ = middleware;
    /// ```
    #[track_caller]
    pub fn trusted_hosts<I>(mut self, hosts: I) -> ContextMiddleware
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.destinations = Some(Destinations::Hosts(TrustedHosts::new(hosts)));
        self
    }

    /// Decides for each request whether its destination is trusted, from its URL.
    ///
    /// ```
    /// use contextvars::reqwest::ContextMiddleware;
    ///
    /// let middleware = ContextMiddleware::default()
    ///     .trust_destinations_if(|url| url.scheme() == "https" && url.domain() == Some("api.internal"));
    /// # let _ = middleware;
    /// ```
    pub fn trust_destinations_if<F>(mut self, trusted: F) -> ContextMiddleware
    where
        F: Fn(&Url) -> bool + Send + Sync + 'static,
    {
        self.destinations = Some(Destinations::If(Arc::new(trusted)));
        self
    }

    /// The configuration this middleware uses.
    ///
    /// ```
    /// let middleware = contextvars::reqwest::ContextMiddleware::default();
    /// assert_eq!(middleware.propagation().request_id_header(), "x-request-id");
    /// ```
    pub fn propagation(&self) -> &Propagation {
        &self.propagation
    }
}

#[::async_trait::async_trait]
impl Middleware for ContextMiddleware {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        match &self.destinations {
            Some(destinations) => {
                let trust = destinations.trust_of(request.url(), |url| {
                    Some((url.host_str()?, url.port_or_known_default()))
                });
                let propagation = self.propagation.with_outbound(trust);
                propagation.inject(request.headers_mut());
            }
            None => self.propagation.inject(request.headers_mut()),
        }
        next.run(request, extensions).await
    }
}
