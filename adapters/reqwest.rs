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
//! The context is the one current when the middleware runs: when the future returned by
//! `send()` is first polled, which is where it is awaited (the handler's task, or a task
//! started with this crate's spawn helpers, which carries the context).
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
//!     .with(ContextMiddleware::new(propagation))
//!     .build();
//! // Inside a request's context (a `ContextLayer` handler, a NATS message's handler...):
//! // `client.get(url).send().await` carries its request id and tenant.
//! # let _ = client;
//! ```

use ::http::Extensions;
use ::reqwest::{Request, Response};
use ::reqwest_middleware::{Middleware, Next, Result};

use crate::propagation::Propagation;

/// A `reqwest-middleware` [`Middleware`] that writes the current context into every outgoing
/// request's headers; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use contextvars::reqwest::ContextMiddleware;
///
/// // The default propagation: `x-request-id` and the forwarded baggage.
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(ContextMiddleware::default())
///     .build();
/// # let _ = client;
/// ```
#[derive(Clone, Debug, Default)]
pub struct ContextMiddleware {
    propagation: Propagation,
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
        ContextMiddleware { propagation }
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
        self.propagation.inject(request.headers_mut());
        next.run(request, extensions).await
    }
}
