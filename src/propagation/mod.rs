//! What crosses process boundaries, whatever carries it: the request id, W3C Baggage and the
//! baggage members to forward, a trusted caller's W3C Trace Context, read from and written into
//! any carrier of string headers (HTTP, gRPC metadata, NATS message headers, a `HashMap`).
//! Needs no feature and no `http`.
//!
//! A [`Propagation`] says which header carries the request id, which variable holds it, and which
//! context variables travel as which baggage keys. Built once, it is shared by every side:
//!
//! - [`Propagation::extract`] builds the context an incoming request or message brings, from
//!   nothing but its headers: a fresh context (never the caller's) with the request id and the
//!   baggage;
//! - [`Propagation::inject`] writes the current context into outgoing headers.
//!
//! The integrations are thin users of it: `contextvars::tower` (axum, hyper, tonic, server and
//! client), `contextvars::reqwest` (a `reqwest-middleware` middleware) and
//! `contextvars::async_nats` (publish, request and subscribe with context), each behind the
//! feature of the same name. Your own transport implements [`Extractor`] and [`Injector`] for
//! its message headers, the shape of OpenTelemetry's traits of the same names.
//!
//! # What it propagates
//!
//! - **The request id**, in the `x-request-id` header unless configured otherwise
//!   ([`PropagationBuilder::request_id_header`]), set into [`REQUEST_ID`] (or the variable given
//!   to [`PropagationBuilder::request_id_var`]). On the way in, an id that is missing or invalid
//!   is replaced by a generated one ([`Propagation::extract`] uses [`unique_request_id`];
//!   [`Propagation::extract_with`] takes your own generator, or none).
//! - **W3C Baggage.** The `baggage` header is parsed by the
//!   [W3C Baggage](https://www.w3.org/TR/baggage/) rules. Members whose keys were registered with
//!   [`PropagationBuilder::baggage`] (or `baggage_str`, `baggage_with`) set their context
//!   variables, parsed by the function given at registration; the other members are kept in the
//!   context untouched ([`Baggage::forwarded`]) so the sending side writes them on.
//!
//! - **W3C Trace Context**, from a trusted caller, forwarded as it came: a valid
//!   `traceparent` and its `tracestate` are kept in the context (the trace id in [`TRACE_ID`],
//!   for log lines) and written on by [`Propagation::inject`], as the spec asks of a participant
//!   that does not trace. See [W3C Trace Context](#w3c-trace-context).
//! - **With the `opentelemetry` feature**, W3C Trace Context too: [`Propagation::inject`] writes
//!   the current OpenTelemetry context's `traceparent`/`tracestate` (through the global
//!   propagator when one is set) and merges its baggage into `baggage`;
//!   [`Propagation::extract_with`] (and so the server and consumer integrations) extracts them
//!   into the request's OpenTelemetry context, which [`Extracted::run`] and
//!   [`Extracted::scope`] make current beside the context. See `contextvars::opentelemetry`.
//!
//! All of this is for [trusted](Trust::Trusted) callers and destinations. From and to anyone
//! else (the default), much less crosses: see [Security](#security).
//!
//! # What bypasses it
//!
//! - Anything that is not a registered variable, the request id or a forwarded member: other
//!   context variables stay in the process.
//! - Headers are only read and written where an integration (or your code) calls
//!   [`Propagation::extract`] and [`Propagation::inject`]: messages sent or received without
//!   them carry nothing.
//! - Binary metadata (gRPC `-bin` keys, header values that are not text) is never read.
//!
//! # Bad input
//!
//! Bad input never fails the request or message and never panics. Exactly:
//!
//! | Input | What happens |
//! |---|---|
//! | request id header missing | a new id is generated |
//! | request id empty, longer than [`PropagationBuilder::max_request_id_len`] (128 bytes by default), or with a byte that is not visible ASCII (`!`..=`~`; this covers spaces and non-UTF-8 bytes) | the header is ignored and replaced by a generated id; the bad value is never echoed |
//! | several request id headers | the first is read; if it is valid the others are left alone, if not they are all replaced by the generated id |
//! | the generator returns `None` or an id that is empty or not visible ASCII | the request runs with no request id set and no response header |
//! | a `baggage` header line with bytes that are not visible ASCII, space or tab (for example non-UTF-8) | that line is ignored whole; other `baggage` lines are still read |
//! | several `baggage` lines | read in order, as one list joined by `,` (an empty line too) |
//! | an empty member (`a=1,,b=2`, trailing `,`) | skipped |
//! | a malformed member: no `=`, a key that is not an HTTP token, a value with a character outside the spec's `baggage-octet`s, a bad `%` escape (`%ZZ`, `%4` at the end), a malformed property, a `;` with no property after it (`a=1;`, `a=1; `, `a=1;;p`) | that member is dropped, the others are kept |
//! | spaces and tabs around keys, values, properties and their `=`, `;` and `,` (the spec's optional whitespace) | accepted and removed: what is forwarded has none |
//! | a value whose `%` escapes decode to bytes that are not valid UTF-8 (`a=%FF`) | the member is kept, each invalid sequence replaced by U+FFFD `�`, as the spec requires; forwarded with the escapes it came with (`a=%FF`) |
//! | a registered member whose value the parse function rejects (`None`) | that member is dropped and not forwarded, and does not count towards the member limit: the variable keeps the value of an earlier member of that key that parsed, or stays unset |
//! | the same key twice | the last value that parses wins (at the position of the first); a later member of a key already kept does not count again towards the member limit |
//! | more than 64 distinct keys ([`MAX_BAGGAGE_MEMBERS`]) | the first 64 keys accepted (valid, and for registered keys parsed) are kept; members with other keys after them are dropped, while later members of the kept keys still replace their values |
//! | more than 8,192 bytes ([`MAX_BAGGAGE_BYTES`], all lines read, empty ones included, and their joining `,` counted; ignored lines are not) | members that end past byte 8,192 are dropped, those before kept |
//!
//! On output the same limits apply: members are written registered variables first (in
//! registration order), then the forwarded ones, then those already in the carrier under other
//! keys, and a member that would take the header past 64 members or 8,192 bytes is left out.
//! Nothing the service did not change grows on the way out, so what was accepted on the way in
//! is forwarded: a forwarded member, and a registered variable whose value still formats to the
//! value received, are written with their value as it came in (escapes, even needless or
//! lowercase ones, included), and without the optional whitespace. New values are
//! percent-encoded only where the grammar requires it: `%` and the bytes that are not
//! `baggage-octet`s (controls, space, `"`, `,`, `;`, `\`, non-ASCII). `=` is written as is, as
//! the grammar allows; note that OpenTelemetry's Rust `BaggagePropagator` (0.33) cuts a value at
//! its first `=`, so a value meant for it should not hold one. No control character (tab
//! included) is ever written in `baggage`; a request id with a control character other than tab
//! is not written at all.
//!
//! # W3C Trace Context
//!
//! This crate creates no spans. Without OpenTelemetry (or outside any OpenTelemetry context), a
//! service built on it is the [W3C Trace Context](https://www.w3.org/TR/trace-context-2/)'s
//! participant that does not trace: [`Propagation::extract`] reads a trusted caller's
//! `traceparent` and `tracestate` ([`TraceContext::from_headers`], level 2, strict) into the
//! context, its trace id into [`TRACE_ID`], and [`Propagation::inject`] writes them on
//! unchanged (the flags whole, so level 2's random flag survives; a future version as `00`, the
//! spec's downgrade). From an untrusted caller nothing is read. What goes out is sent to every
//! destination, as OpenTelemetry sends its own: ids, flags and the vendors' `tracestate`,
//! none of your values.
//!
//! With the `opentelemetry` feature, the same codec reads the trace context into the request's
//! OpenTelemetry context (the caller's span as the remote parent, the flags whole) and writes
//! the current OpenTelemetry context's: the span your code started for the request, else the
//! caller's remote one. Within the same trace, level 2's random flag is kept even where the SDK
//! keeps only the sampled one, and a `tracestate` that OpenTelemetry's older key grammar refuses
//! goes on as received. When OpenTelemetry's context wrote a `traceparent`, the forwarded trace
//! context is not written at all, so `traceparent` and `tracestate` always come from the same
//! side. A global text-map propagator you set (`opentelemetry::global::set_text_map_propagator`,
//! one that declares any field) wins: it reads and writes the trace context in its format, gets
//! every line of a repeated header (`get_all`), and this crate then neither reads
//! `traceparent`/`tracestate` (no [`TRACE_ID`]) nor forwards them. To trace, start one span per
//! hop: a server span inside each handler (where the request's OpenTelemetry context is
//! current) and a client span around each call.
//!
//! Repeated lines: every `traceparent` and `tracestate` line is read ([`Extractor::get_all`]).
//! More than one `traceparent` line makes it invalid; `tracestate` lines are combined as RFC
//! 9110 combines them (joined by `,`). Bad input never fails the request:
//!
//! | Input | What happens |
//! |---|---|
//! | no `traceparent`, more than one `traceparent` line, or one that is malformed | no trace context: nothing is kept or sent on, and `tracestate` is not read |
//! | `traceparent` malformed: a version that is not 2 lowercase hex digits or is `ff`; a trace id not 32 or parent id not 16 lowercase hex digits, or all zeros; flags not 2 lowercase hex digits; a `-` missing; anything after version `00`'s 55 characters; a future version shorter than 55 characters or not followed by the end or a `-` | as above |
//! | spaces and tabs around `traceparent` | ignored |
//! | a future version (`01`..`fe`) with the fields of `00` | read; what follows them is not; sent as version `00` |
//! | `tracestate` with no valid `traceparent` | ignored |
//! | empty `tracestate` lines or members, spaces and tabs around members | skipped; what is sent has none; an empty list is not sent |
//! | a malformed `tracestate` member: no `=`; a key not of the grammar (`a`-`z` or a digit, then up to 255 of `a`-`z`, digits, `_-*/@`); an empty value; a value longer than 256 characters or with a character outside `0x20`..`0x7E`, a `,` or a `=` | the whole `tracestate` is dropped; `traceparent` is kept |
//! | more than [`MAX_TRACESTATE_MEMBERS`] (32) members, all lines together | the whole `tracestate` is dropped |
//! | the same key twice | the first (left-most) member is kept, later ones dropped |
//! | spaces at the start of a value | part of the value, kept |
//!
//! What is kept is bounded by the grammar: at most 32 members of at most 256-character keys and
//! values.
//!
//! Why this codec is the default, rather than OpenTelemetry's `TraceContextPropagator` (0.33),
//! which the `opentelemetry` feature used before: where the W3C test suite (level 2, strict)
//! checks the spec, this codec passes every case (`tests/trace_context*.rs` replay them) and
//! OpenTelemetry's departs from it. It does not check the field lengths (versions, ids and flags of other
//! lengths are read, a short trace id padded), keeps only the sampled flag, reads `tracestate`
//! keys by the older grammar (one `@`, tenant and system limits), cuts more than 32 members to 32
//! rather than dropping them, and accepts and sends an empty value (`foo=`); and its carrier
//! reads only the first line of each header.
//!
//! # Security
//!
//! **Request ids and baggage are chosen by the caller.** Anyone who can send a request can put
//! any `x-request-id` and any `baggage: tenant=other-customer` in it. Never authorize on them,
//! and decide where callers stop being your own system: a [`Propagation`] reads a carrier as
//! coming from a [trusted or an untrusted](Trust) caller, and writes for a trusted or an
//! untrusted destination.
//!
//! | | trusted (your own services) | untrusted (everyone else; the default) |
//! |---|---|---|
//! | caller's request id | becomes [`REQUEST_ID`] and is echoed | never used as the request id: a fresh one is generated; the caller's (if valid) is kept in [`CALLER_REQUEST_ID`] for correlation |
//! | registered baggage keys | set their variables | set their variables only if [allowed from untrusted callers](PropagationBuilder::accept_from_untrusted) (none by default) |
//! | other baggage members | kept and forwarded on the way out | dropped |
//! | outbound: request id | sent | sent (it is your id: a generated one, or a trusted caller's) |
//! | outbound: registered variables | sent | only the [public](PropagationBuilder::public) ones |
//! | outbound: forwarded members | sent | never |
//! | outbound: a trusted caller's trace context (when OpenTelemetry wrote none) | sent | sent (ids, flags and vendors' `tracestate`, no value of yours) |
//! | caller's `traceparent`/`tracestate` | kept in the context ([`TRACE_ID`]) and forwarded unchanged | not read |
//! | with `opentelemetry`: caller's `traceparent`/`tracestate` | the request's remote parent | not read: a new trace |
//! | with `opentelemetry`: caller's baggage in OTel `Baggage` | what was accepted above | what was accepted above (allowed keys only) |
//! | with `opentelemetry`: outbound trace context | sent | sent (a trace and span id, no value of yours) |
//! | with `opentelemetry`: outbound OTel baggage | every member | only public keys |
//!
//! **The default is untrusted both ways**, so that a service exposed to the internet, or one
//! calling a third-party API, leaks and believes nothing until someone decides otherwise: a
//! forgotten setting costs a trace that restarts at the service (a fresh request id, baggage
//! not carried on), never a spoofed tenant or an internal value sent to a stranger. Internal
//! services say so: [`PropagationBuilder::inbound`] and [`PropagationBuilder::outbound`] for
//! the whole propagation, or per request where one server or client serves both sides (the
//! tower layer's `trust_callers_if`, the clients' `trusted_hosts`). A client of a third-party
//! API keeps the default outbound setting: the API sees the request id and the public variables
//! only, so mark a variable [public](PropagationBuilder::public) only if you would show it to
//! them.
//!
//! An edge service (reachable from outside) keeps the defaults and lets through only what a
//! stranger may choose:
//!
//! ```
//! use contextvars::propagation::{Propagation, Trust};
//! use contextvars::ContextVar;
//!
//! static LOCALE: ContextVar<String> = ContextVar::new("locale").with_display();
//! static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
//!
//! let edge = Propagation::builder()
//!     .baggage_str(&LOCALE, "locale")
//!     .baggage_str(&TENANT, "tenant") // set by the service itself after authentication
//!     .accept_from_untrusted("locale")
//!     .public("locale")
//!     .build();
//! // Its calls to your own services carry everything:
//! let to_backends = edge.with_outbound(Trust::Trusted);
//! # let _ = to_backends;
//! ```
//!
//! **Seeing what the rules did.** Nothing fails when trust holds something back, so two
//! services configured apart (one side trusted, the other not) lose their id or baggage
//! silently. Two ways to see it:
//!
//! - With the `tracing` or `log` feature, a debug event of target `contextvars::trust` names
//!   what was held back and why: an untrusted caller's request id or baggage members set aside,
//!   members or private variables withheld from an untrusted destination (with the client
//!   layer, its host and why it is untrusted: `host 127.0.0.1:3000 matches none of
//!   ["localhost"]`). Each is reported once per [`Propagation`] (and, for a client layer, per
//!   host), not per request; with the target's debug level off it costs one check per request
//!   that holds something back.
//! - [`Propagation::explain_outbound`] and [`Propagation::explain_inbound`] (and the layers'
//!   `explain`, which apply their own per-request rules) say what would be sent or accepted,
//!   and why, as an [`Explanation`]: for tests, and for a chain that loses its id.
//!
//! ```
//! use contextvars::propagation::{Propagation, Trust};
//! use std::collections::HashMap;
//!
//! let inventory = Propagation::default(); // forgot `.inbound(Trust::Trusted)`
//! let from_edge = HashMap::from([("x-request-id".to_string(), "ext-1".to_string())]);
//! let explanation = inventory.explain_inbound(&from_edge);
//! assert_eq!(explanation.trust, Trust::Untrusted);
//! assert_eq!(explanation.held_back(), ["x-request-id"]);
//! ```
//!
//! What the limits protect: the sizes and counts (a request id of at most
//! [`max_request_id_len`](PropagationBuilder::max_request_id_len) bytes, at most
//! [`MAX_BAGGAGE_MEMBERS`] members and [`MAX_BAGGAGE_BYTES`] bytes of baggage, each read and
//! written) bound the memory and time one request can cost and the size of what is sent on,
//! whatever a caller sends. They do not make a value true, do not hide a value from logs
//! (variables registered with `with_display` are printed), and do not stop a trusted caller
//! from sending what it was sent.
//!
//! # Examples
//!
//! One hop between two of your own services, through a `HashMap` standing in for any message's
//! headers:
//!
//! ```
//! use std::collections::HashMap;
//!
//! use contextvars::propagation::{Propagation, Trust, REQUEST_ID};
//! use contextvars::ContextVar;
//!
//! static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
//!
//! let propagation = Propagation::builder()
//!     .baggage_str(&TENANT, "tenant")
//!     .inbound(Trust::Trusted)
//!     .outbound(Trust::Trusted)
//!     .build();
//!
//! // The receiving side: a fresh context from the headers alone.
//! let incoming = HashMap::from([
//!     ("x-request-id".to_string(), "req-1".to_string()),
//!     ("baggage".to_string(), "tenant=acme,other=kept".to_string()),
//! ]);
//! let context = propagation.extract(&incoming);
//! assert_eq!(context.get(&REQUEST_ID).as_deref(), Some("req-1"));
//! assert_eq!(context.get(&TENANT).as_deref(), Some("acme"));
//!
//! // The sending side, inside that context: the same id and baggage go on.
//! let mut outgoing = HashMap::new();
//! context.run(|| propagation.inject(&mut outgoing));
//! assert_eq!(outgoing["x-request-id"], "req-1");
//! assert_eq!(outgoing["baggage"], "tenant=acme,other=kept");
//!
//! // The same headers from a stranger: nothing they chose is believed or passed on.
//! let context = Propagation::builder().baggage_str(&TENANT, "tenant").build().extract(&incoming);
//! assert_ne!(context.get(&REQUEST_ID).as_deref(), Some("req-1"));
//! assert_eq!(context.get(&TENANT), None);
//! ```

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use crate::ambient::{self, Ambient as _, BaggageChange};
use crate::{integrations, Context, ContextExt, ContextVar, WithContext};

pub(crate) mod baggage;
pub(crate) mod carrier;
pub(crate) mod explain;
pub(crate) mod trace_context;
pub(crate) mod trust;

pub use self::baggage::{Baggage, BaggageMember, MAX_BAGGAGE_BYTES, MAX_BAGGAGE_MEMBERS};
pub(crate) use self::carrier::is_token;
pub use self::carrier::{Extractor, Injector};
pub use self::explain::{Decision, Direction, Explanation, Part};
pub use self::trace_context::{
    TraceContext, TraceParent, TraceState, MAX_TRACESTATE_MEMBERS, TRACE_ID,
};
pub use self::trust::{is_private_address, Trust, TrustedHosts};
pub use crate::diagnostics::TARGET as TRUST_DIAGNOSTICS_TARGET;

use self::baggage::{parse_lines, Writer, BAGGAGE, FORWARDED};
use self::explain::{Flags, Notes};
use self::trace_context::Watched;
use crate::diagnostics::{Kind, Reported};

/// The request id of the current request or message, set by [`Propagation::extract`] (and so by
/// every server and consumer integration) unless another variable was chosen with
/// [`PropagationBuilder::request_id_var`]. Printed with `Display` by logging integrations.
///
/// # Examples
///
/// ```
/// use contextvars::propagation::REQUEST_ID;
///
/// REQUEST_ID.scope("req-1".into(), || assert_eq!(REQUEST_ID.get().as_deref(), Some("req-1")));
/// ```
pub static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id").with_display();

/// The request id an untrusted caller sent, kept for correlation only: set by
/// [`Propagation::extract`] when the caller is [`Trust::Untrusted`] and its request id header is
/// valid (same length and character rules as a trusted one), while [`REQUEST_ID`] gets a fresh
/// id. Never sent on by [`Propagation::inject`]. Another variable can be chosen with
/// [`PropagationBuilder::caller_request_id_var`]. Printed with `Display` by logging integrations,
/// under the name `caller_request_id`: a log reader sees at once that it is the caller's claim.
///
/// # Examples
///
/// ```
/// use contextvars::propagation::{Propagation, CALLER_REQUEST_ID, REQUEST_ID};
/// use std::collections::HashMap;
///
/// let headers = HashMap::from([("x-request-id".to_string(), "chosen-by-caller".to_string())]);
/// let context = Propagation::default().extract(&headers); // untrusted by default
/// assert_eq!(context.get(&CALLER_REQUEST_ID).as_deref(), Some("chosen-by-caller"));
/// assert_ne!(context.get(&REQUEST_ID).as_deref(), Some("chosen-by-caller"));
/// ```
pub static CALLER_REQUEST_ID: ContextVar<String> =
    ContextVar::new("caller_request_id").with_display();

/// The registered members received with escapes that encoding their value would not give back,
/// as received: a variable whose value still formats to the decoded value is sent on with the
/// same escapes, so it takes no more room than it did on the way in. Opaque, and only set when
/// there is such a member.
static REGISTERED_AS_RECEIVED: ContextVar<Baggage> = ContextVar::opaque("baggage_as_received");

/// The header the request id travels in unless configured otherwise: `x-request-id`.
///
/// ```
/// assert_eq!(contextvars::propagation::DEFAULT_REQUEST_ID_HEADER, "x-request-id");
/// ```
pub const DEFAULT_REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest request id accepted from a request unless configured otherwise, in bytes.
///
/// ```
/// assert_eq!(contextvars::propagation::DEFAULT_MAX_REQUEST_ID_LEN, 128);
/// ```
pub const DEFAULT_MAX_REQUEST_ID_LEN: usize = 128;

// ---------------------------------------------------------------------------------------------
// Propagation: what travels, shared by both sides.

type ExtractFn = dyn Fn(&str, Context) -> Result<Context, Context> + Send + Sync;
type InjectFn = dyn Fn(&Context, &mut dyn FnMut(&str)) + Send + Sync;
type IsSetFn = dyn Fn(&Context) -> bool + Send + Sync;

struct Registered {
    key: Box<str>,
    extract: Box<ExtractFn>,
    inject: Box<InjectFn>,
    /// Whether the context has the variable (asked only to report what is withheld).
    is_set: Box<IsSetFn>,
    /// Read from untrusted callers too ([`PropagationBuilder::accept_from_untrusted`]).
    from_untrusted: bool,
    /// Sent to untrusted destinations too ([`PropagationBuilder::public`]).
    public: bool,
}

struct Config {
    request_id_header: Box<str>,
    request_id_var: &'static ContextVar<String>,
    caller_request_id_var: Option<&'static ContextVar<String>>,
    max_request_id_len: usize,
    registered: Vec<Registered>,
    /// What the diagnostics said already, for every clone and trust of this configuration.
    reported: Reported,
}

/// What crosses the network: the request id's header and variable, and which context variables
/// travel as which baggage keys. Built once with [`Propagation::builder`], cheap to clone, and
/// shared by the receiving side ([`extract`](Propagation::extract), and the server and consumer
/// integrations) and the sending side ([`inject`](Propagation::inject), and the client
/// integrations) so both agree.
///
/// # Examples
///
/// ```
/// use contextvars::propagation::{Propagation, Trust};
/// use contextvars::ContextVar;
///
/// static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
/// static USER_ID: ContextVar<u64> = ContextVar::new("user_id").with_display();
///
/// let propagation = Propagation::builder()
///     .baggage_str(&TENANT, "tenant")
///     .baggage(&USER_ID, "user.id", |s| s.parse().ok())
///     .outbound(Trust::Trusted)
///     .build();
/// let mut headers = std::collections::HashMap::new();
/// USER_ID.scope(42, || propagation.inject(&mut headers));
/// assert_eq!(headers["baggage"], "user.id=42");
/// ```
#[derive(Clone)]
pub struct Propagation {
    config: Arc<Config>,
    inbound: Trust,
    outbound: Trust,
}

impl fmt::Debug for Propagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = |filter: fn(&Registered) -> bool| -> Vec<&str> {
            let registered = self.config.registered.iter().filter(|r| filter(r));
            registered.map(|r| &*r.key).collect()
        };
        f.debug_struct("Propagation")
            .field("request_id_header", &self.config.request_id_header)
            .field("request_id_var", &self.config.request_id_var.name())
            .field(
                "caller_request_id_var",
                &self.config.caller_request_id_var.map(ContextVar::name),
            )
            .field("max_request_id_len", &self.config.max_request_id_len)
            .field("baggage_keys", &keys(|_| true))
            .field("accepted_from_untrusted", &keys(|r| r.from_untrusted))
            .field("public", &keys(|r| r.public))
            .field("inbound", &self.inbound)
            .field("outbound", &self.outbound)
            .finish()
    }
}

impl Default for Propagation {
    /// `x-request-id` into [`REQUEST_ID`], no registered baggage keys, callers and destinations
    /// [untrusted](Trust::Untrusted).
    fn default() -> Propagation {
        Propagation::builder().build()
    }
}

/// What [`Propagation::extract_with`] read from a carrier: the context, what travels beside it
/// (with the `opentelemetry` feature, the request's OpenTelemetry context), and the request id
/// with where it came from, for transports that echo it or write it back into the message.
///
/// It is the whole of what a request or message brings: handle it inside it with
/// [`run`](Extracted::run) (a closure) and [`scope`](Extracted::scope) (a future), as every
/// server and consumer integration of this crate does.
///
/// # Examples
///
/// ```
/// use contextvars::propagation::Propagation;
/// use std::collections::HashMap;
///
/// let headers = HashMap::from([("x-request-id".to_string(), "bad id".to_string())]);
/// let extracted = Propagation::default().extract_with(&headers, || Some("new-1".into()));
/// assert_eq!(extracted.request_id(), Some("new-1"));
/// assert!(!extracted.received);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Extracted {
    /// The fresh context: the request id (when there is one) and the baggage.
    pub context: Context,
    /// Whether the request id was the one received. When `false`, the carrier's own request id
    /// header (if any) was missing, invalid or not trusted, and should not be echoed.
    pub received: bool,
    /// Whether the carrier was read as coming from a trusted caller.
    pub trust: Trust,
    request_id_var: &'static ContextVar<String>,
    caller_request_id_var: Option<&'static ContextVar<String>>,
    /// What travels beside the context, as the carrier brought it (`()` without such a feature).
    pub(crate) remote: ambient::Remote,
}

impl fmt::Debug for Extracted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extracted")
            .field("context", &self.context)
            .field("received", &self.received)
            .field("trust", &self.trust)
            .field("request_id_var", &self.request_id_var)
            .field("caller_request_id_var", &self.caller_request_id_var)
            .finish_non_exhaustive()
    }
}

impl Extracted {
    /// Runs `f` inside what the carrier brought: the context (as [`Context::run`]) and, with the
    /// `opentelemetry` feature, the request's OpenTelemetry context. The context and the OTel
    /// context are left as they were when `f` returns.
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, Trust, REQUEST_ID};
    /// use std::collections::HashMap;
    ///
    /// let headers = HashMap::from([("x-request-id".to_string(), "req-1".to_string())]);
    /// let internal = Propagation::builder().inbound(Trust::Trusted).build();
    /// let extracted = internal.extract_with(&headers, || None);
    /// assert_eq!(extracted.run(|| REQUEST_ID.get()).as_deref(), Some("req-1"));
    /// assert_eq!(REQUEST_ID.get(), None);
    /// ```
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        self.context.run(|| {
            let _entered = self.remote.enter();
            f()
        })
    }

    /// Runs `future` inside what the carrier brought: the context around every poll and the
    /// drop (as [`ContextExt::with_context`]) and, with the `opentelemetry` feature, the
    /// request's OpenTelemetry context inside it. To call a handler inside it too, call it in
    /// [`run`](Extracted::run):
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, Trust, REQUEST_ID};
    /// use std::collections::HashMap;
    ///
    /// async fn handler(payload: &str) -> String {
    ///     format!("{payload} for {}", REQUEST_ID.get().unwrap_or_default())
    /// }
    ///
    /// let headers = HashMap::from([("x-request-id".to_string(), "req-1".to_string())]);
    /// let internal = Propagation::builder().inbound(Trust::Trusted).build();
    /// let extracted = internal.extract_with(&headers, || None);
    /// let future = extracted.run(|| handler("order 42"));
    /// let handled = extracted.scope(future); // sent to any executor: it keeps its context
    /// assert_eq!(futures::executor::block_on(handled), "order 42 for req-1");
    /// ```
    pub fn scope<F: Future>(self, future: F) -> ExtractedFuture<F> {
        ExtractedFuture {
            inner: self.remote.scope(future).with_context(self.context),
        }
    }

    /// The request id set into the context: the one received if it was valid (and trusted),
    /// else the generated one if the generator gave a valid one, else `None`. Read from
    /// [`context`](Extracted::context): nothing is copied.
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, Trust};
    /// use std::collections::HashMap;
    ///
    /// let headers = HashMap::from([("x-request-id".to_string(), "req-1".to_string())]);
    /// let internal = Propagation::builder().inbound(Trust::Trusted).build();
    /// assert_eq!(internal.extract_with(&headers, || None).request_id(), Some("req-1"));
    /// ```
    pub fn request_id(&self) -> Option<&str> {
        self.context
            .get_ref(self.request_id_var)
            .map(String::as_str)
    }

    /// The request id an untrusted caller sent, when it was valid and is kept: in
    /// [`CALLER_REQUEST_ID`] (or the variable of
    /// [`PropagationBuilder::caller_request_id_var`]; `None` when that is turned off) for
    /// correlation, never used as the request id. `None` from trusted callers (their id *is*
    /// the request id).
    ///
    /// ```
    /// use contextvars::propagation::Propagation;
    /// use std::collections::HashMap;
    ///
    /// let headers = HashMap::from([("x-request-id".to_string(), "theirs".to_string())]);
    /// let extracted = Propagation::default().extract_with(&headers, || Some("ours".into()));
    /// assert_eq!((extracted.request_id(), extracted.caller_request_id()), (Some("ours"), Some("theirs")));
    /// ```
    pub fn caller_request_id(&self) -> Option<&str> {
        let var = self.caller_request_id_var?;
        self.context.get_ref(var).map(String::as_str)
    }
}

pin_project! {
    /// The future of [`Extracted::scope`]: a future polled and dropped inside what a carrier
    /// brought (the context, and with the `opentelemetry` feature the OpenTelemetry context).
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::propagation::{ExtractedFuture, Propagation, REQUEST_ID};
    /// use std::collections::HashMap;
    ///
    /// let extracted = Propagation::default().extract_with(&HashMap::new(), || Some("gen-1".into()));
    /// let future: ExtractedFuture<_> = extracted.scope(async { REQUEST_ID.get() });
    /// assert_eq!(futures::executor::block_on(future).as_deref(), Some("gen-1"));
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ExtractedFuture<F> {
        #[pin]
        inner: WithContext<ambient::RemoteScoped<F>>,
    }
}

impl<F: Future> Future for ExtractedFuture<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

impl<F: fmt::Debug> fmt::Debug for ExtractedFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtractedFuture")
            .field("inner", &self.inner)
            .finish()
    }
}

impl Propagation {
    /// Starts a configuration: `x-request-id` into [`REQUEST_ID`], ids up to 128 bytes, no
    /// registered baggage keys.
    ///
    /// ```
    /// let propagation = contextvars::propagation::Propagation::builder().build();
    /// # let _ = propagation;
    /// ```
    pub fn builder() -> PropagationBuilder {
        PropagationBuilder {
            config: Config {
                request_id_header: DEFAULT_REQUEST_ID_HEADER.into(),
                request_id_var: &REQUEST_ID,
                caller_request_id_var: Some(&CALLER_REQUEST_ID),
                max_request_id_len: DEFAULT_MAX_REQUEST_ID_LEN,
                registered: Vec::new(),
                reported: Reported::default(),
            },
            inbound: Trust::Untrusted,
            outbound: Trust::Untrusted,
        }
    }

    /// Whether [`extract`](Propagation::extract) believes the carriers it reads (default
    /// [`Trust::Untrusted`]; set with [`PropagationBuilder::inbound`] or
    /// [`with_inbound`](Propagation::with_inbound)).
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, Trust};
    ///
    /// assert_eq!(Propagation::default().inbound_trust(), Trust::Untrusted);
    /// ```
    pub fn inbound_trust(&self) -> Trust {
        self.inbound
    }

    /// Whether [`inject`](Propagation::inject) writes for a trusted destination (default
    /// [`Trust::Untrusted`]; set with [`PropagationBuilder::outbound`] or
    /// [`with_outbound`](Propagation::with_outbound)).
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, Trust};
    ///
    /// assert_eq!(Propagation::default().outbound_trust(), Trust::Untrusted);
    /// ```
    pub fn outbound_trust(&self) -> Trust {
        self.outbound
    }

    /// The same configuration, reading carriers as coming from a caller that is (or is not)
    /// trusted. Cheap (no copy of the registrations): integrations that decide trust per
    /// request call it for each one.
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, Trust, REQUEST_ID};
    /// use std::collections::HashMap;
    ///
    /// let propagation = Propagation::default();
    /// let headers = HashMap::from([("x-request-id".to_string(), "gw-1".to_string())]);
    /// let from_gateway = propagation.with_inbound(Trust::Trusted).extract(&headers);
    /// assert_eq!(from_gateway.get(&REQUEST_ID).as_deref(), Some("gw-1"));
    /// ```
    pub fn with_inbound(&self, trust: Trust) -> Propagation {
        Propagation {
            inbound: trust,
            ..self.clone()
        }
    }

    /// The same configuration, writing for a destination that is (or is not) trusted. Cheap:
    /// client integrations that decide per destination call it for each request.
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, Trust};
    /// use contextvars::ContextVar;
    /// use std::collections::HashMap;
    ///
    /// static TENANT: ContextVar<String> = ContextVar::new("tenant");
    ///
    /// let propagation = Propagation::builder().baggage_str(&TENANT, "tenant").build();
    /// let (mut internal, mut external) = (HashMap::new(), HashMap::new());
    /// TENANT.scope("acme".into(), || {
    ///     propagation.with_outbound(Trust::Trusted).inject(&mut internal);
    ///     propagation.inject(&mut external); // untrusted: TENANT is not public
    /// });
    /// assert_eq!(internal["baggage"], "tenant=acme");
    /// assert!(!external.contains_key("baggage"));
    /// ```
    pub fn with_outbound(&self, trust: Trust) -> Propagation {
        Propagation {
            outbound: trust,
            ..self.clone()
        }
    }

    /// The header (carrier key) the request id travels in, lowercase.
    ///
    /// ```
    /// let propagation = contextvars::propagation::Propagation::default();
    /// assert_eq!(propagation.request_id_header(), "x-request-id");
    /// ```
    pub fn request_id_header(&self) -> &str {
        &self.config.request_id_header
    }

    /// The variable the request id is set into and sent from.
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, REQUEST_ID};
    ///
    /// assert!(std::ptr::eq(Propagation::default().request_id_var(), &REQUEST_ID));
    /// ```
    pub fn request_id_var(&self) -> &'static ContextVar<String> {
        self.config.request_id_var
    }

    /// The context a request or message brings, from its headers alone: a fresh context (never
    /// the current one) with the request id, the baggage and, from a trusted caller, the trace
    /// context ([`TRACE_ID`], [`TraceContext::current`]). See the [module docs](self#bad-input)
    /// for what is done with bad input.
    ///
    /// A missing or invalid request id is replaced by a new one from [`unique_request_id`], so
    /// everything handled in the context has an id to log, as on an HTTP server; nothing is
    /// written back into the carrier. So is the id of an [untrusted](Trust::Untrusted) caller,
    /// which is kept in [`CALLER_REQUEST_ID`] instead. For your own generator, or none, and to
    /// learn whether the id was received, use [`extract_with`](Propagation::extract_with).
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, Trust, REQUEST_ID};
    /// use std::collections::HashMap;
    ///
    /// let propagation = Propagation::builder().inbound(Trust::Trusted).build();
    /// let received = propagation.extract(&HashMap::from([("x-request-id".to_string(), "a-1".to_string())]));
    /// assert_eq!(received.get(&REQUEST_ID).as_deref(), Some("a-1"));
    /// let generated = propagation.extract(&HashMap::new());
    /// assert_eq!(generated.get(&REQUEST_ID).unwrap().len(), 32);
    /// ```
    pub fn extract<C: Extractor + ?Sized>(&self, carrier: &C) -> Context {
        self.read(carrier, || Some(unique_request_id())).0
    }

    /// [`extract`](Propagation::extract) with your own request id generator: `make_id` is called
    /// only when the carrier's id is missing or invalid; `None`, or an id that is empty or not
    /// visible ASCII, leaves the context without a request id. `|| None` never generates.
    ///
    /// It also reads what travels beside the context, so that the [`Extracted`] is the whole of
    /// what the carrier brought, to handle the request in with [`Extracted::run`] and
    /// [`Extracted::scope`]: with the `opentelemetry` feature, the request's OpenTelemetry
    /// context (a trusted caller's trace context, and the baggage accepted; see
    /// `contextvars::opentelemetry`), whose baggage members the context remembers (an opaque
    /// variable) to tell, on the way out, those changed through OpenTelemetry's API.
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, REQUEST_ID};
    /// use std::collections::HashMap;
    ///
    /// let extracted = Propagation::default().extract_with(&HashMap::new(), || None);
    /// assert_eq!(extracted.context.get(&REQUEST_ID), None);
    /// assert_eq!(extracted.request_id(), None);
    /// ```
    pub fn extract_with<C: Extractor + ?Sized>(
        &self,
        carrier: &C,
        make_id: impl FnOnce() -> Option<String>,
    ) -> Extracted {
        let (mut context, received) = self.read(carrier, make_id);
        // What travels beside the context (with `opentelemetry`, the OTel context), read by the
        // same trust.
        let accepted_baggage = |context: &Context| self.accepted_baggage(context);
        let remote =
            integrations::Ambient::extract(self.inbound, &accepted_baggage, &mut context, carrier);
        let config = &*self.config;
        Extracted {
            context,
            received,
            trust: self.inbound,
            request_id_var: config.request_id_var,
            caller_request_id_var: config.caller_request_id_var,
            remote,
        }
    }

    /// This crate's context from `carrier`, and whether its request id was the one received;
    /// what the caller's trust set aside is reported once (see `crate::diagnostics`).
    fn read<C: Extractor + ?Sized>(
        &self,
        carrier: &C,
        make_id: impl FnOnce() -> Option<String>,
    ) -> (Context, bool) {
        let mut flags = Flags::default();
        let read = self.read_noting(carrier, make_id, &mut flags);
        if flags.request_id || flags.baggage {
            self.report_inbound(carrier, &flags);
        }
        read
    }

    /// Reports, once per kind, what an untrusted caller's request set aside.
    #[cold]
    fn report_inbound<C: Extractor + ?Sized>(&self, carrier: &C, flags: &Flags) {
        let reported = &self.config.reported;
        let explain = || self.explain_inbound(carrier);
        if flags.request_id {
            reported.once(Kind::CallerIdSetAside, "", || {
                let held = explain().held_back_by_trust(Part::RequestId);
                format!(
                    "request id of an untrusted caller set aside: {held}; trust your own callers \
                     with PropagationBuilder::inbound or the server's trust_callers_if"
                )
            });
        }
        if flags.baggage {
            reported.once(Kind::CallerBaggageSetAside, "", || {
                let held = explain().held_back_by_trust(Part::Baggage);
                format!(
                    "baggage of an untrusted caller set aside: {held}; trust your own callers \
                     with PropagationBuilder::inbound or the server's trust_callers_if, or allow \
                     a harmless key with accept_from_untrusted"
                )
            });
        }
    }

    /// [`read`](Propagation::read), telling `notes` every decision.
    fn read_noting<C: Extractor + ?Sized>(
        &self,
        carrier: &C,
        make_id: impl FnOnce() -> Option<String>,
        notes: &mut impl Notes,
    ) -> (Context, bool) {
        let config = &*self.config;
        let trusted = self.inbound.is_trusted();
        let mut ctx = Context::new();

        let header = &*config.request_id_header;
        let raw = carrier.get(header);
        let sent = raw
            .filter(|id| id.len() <= config.max_request_id_len && is_visible_ascii(id))
            .map(str::to_owned);
        match (raw, &sent, trusted) {
            (None, ..) => notes.note(
                Part::RequestId,
                header,
                false,
                false,
                "missing: a new id is generated",
            ),
            (Some(_), None, _) => notes.note(
                Part::RequestId,
                header,
                false,
                false,
                "invalid (empty, too long or not visible ASCII): replaced by a generated id",
            ),
            (Some(_), Some(_), true) => notes.note(
                Part::RequestId,
                header,
                true,
                true,
                "the caller is trusted: it is the request id",
            ),
            (Some(_), Some(_), false) => notes.note(
                Part::RequestId,
                header,
                false,
                true,
                "the caller is untrusted: a fresh id is generated, theirs kept in \
                 caller_request_id for correlation",
            ),
        }
        // An untrusted caller's id never becomes the request id: it is kept apart, for
        // correlation only.
        let (mut request_id, caller_request_id) = match trusted {
            true => (sent, None),
            false => (None, sent),
        };
        let received = request_id.is_some();
        if !received {
            request_id = make_id().filter(|id| is_visible_ascii(id));
        }
        if let Some(id) = request_id {
            ctx = ctx.with_value(config.request_id_var, id);
        }
        if let (Some(var), Some(id)) = (config.caller_request_id_var, caller_request_id) {
            ctx = ctx.with_value(var, id);
        }
        // A trusted caller's trace context, kept to be forwarded unchanged (an untrusted
        // caller's is not read; nor is any when the user's own propagator reads it).
        let owned = integrations::Ambient::owns_trace_context();
        let trace = (trusted && !owned)
            .then(|| TraceContext::from_headers(carrier))
            .flatten();
        if notes.looking() && !owned && carrier.get(trace_context::TRACEPARENT).is_some() {
            let (passes, reason) = match (trusted, trace.is_some()) {
                (false, _) => (
                    false,
                    "the caller is untrusted: not read, a new trace starts",
                ),
                (true, true) => (true, "the caller is trusted: kept and forwarded unchanged"),
                (true, false) => (false, "malformed: dropped"),
            };
            let name = trace_context::TRACEPARENT;
            notes.note(Part::TraceContext, name, passes, !trusted, reason);
        }
        if let Some(trace) = trace {
            ctx = ctx.with_value(&TRACE_ID, trace.parent().trace_id_hex());
            ctx = ctx.with_value(&trace_context::RECEIVED, trace);
        }

        // The member limit counts distinct keys accepted: a registered member counts once its
        // value has parsed, a later member of an accepted key replaces its value without counting
        // again, and one whose value does not parse leaves the earlier value in place.
        let mut forwarded = Baggage::new();
        let mut as_received = Baggage::new();
        let mut parsed = vec![false; config.registered.len()];
        let mut kept = 0;
        const LIMIT: &str = "past the limit of 64 members: dropped";
        parse_lines(carrier.get_all(BAGGAGE), |member| {
            let key = member.key;
            match config.registered.iter().position(|r| *r.key == *key) {
                Some(index) => {
                    if !parsed[index] && kept >= MAX_BAGGAGE_MEMBERS {
                        return notes.note(Part::Baggage, key, false, false, LIMIT);
                    }
                    let registered = &config.registered[index];
                    if !trusted && !registered.from_untrusted {
                        let reason = "registered, but the caller is untrusted and the key is \
                                      not accepted from untrusted callers";
                        return notes.note(Part::Baggage, key, false, true, reason);
                    }
                    if let Ok(next) = (registered.extract)(&member.value, ctx.clone()) {
                        notes.note(
                            Part::Baggage,
                            key,
                            true,
                            false,
                            "registered: sets its variable",
                        );
                        ctx = next;
                        if member.escaped().is_some() {
                            as_received.push_received(member);
                        } else {
                            as_received.remove(member.key);
                        }
                        if !parsed[index] {
                            parsed[index] = true;
                            kept += 1;
                        }
                    } else {
                        let reason = "registered, but its parse function rejected the value";
                        notes.note(Part::Baggage, key, false, false, reason);
                    }
                }
                // Nothing an untrusted caller sent is passed on.
                None if !trusted => {
                    let reason = "not registered, and the caller is untrusted: not forwarded";
                    notes.note(Part::Baggage, key, false, true, reason);
                }
                None => {
                    let known = forwarded.get(member.key).is_some();
                    if known || kept < MAX_BAGGAGE_MEMBERS {
                        let reason = "not registered: forwarded as received";
                        notes.note(Part::Baggage, key, true, false, reason);
                        forwarded.push_received(member);
                        if !known {
                            kept += 1;
                        }
                    } else {
                        notes.note(Part::Baggage, key, false, false, LIMIT);
                    }
                }
            }
        });
        if !forwarded.is_empty() {
            ctx = ctx.with_value(&FORWARDED, forwarded);
        }
        if !as_received.is_empty() {
            ctx = ctx.with_value(&REGISTERED_AS_RECEIVED, as_received);
        }
        (ctx, received)
    }

    /// Writes the current context into outgoing headers: the request id header, and `baggage`
    /// with the registered variables that are set, then the forwarded members, then members
    /// already in the carrier under other keys (within the limits). Nothing is written for what
    /// is not set, and what the carrier has under other keys is left alone. With the
    /// `opentelemetry` feature, also the current OpenTelemetry context's trace context, and its
    /// baggage merged in (to an untrusted destination, public keys only). The trace context a
    /// trusted caller sent ([`TraceContext::current`]) is written unchanged when nothing else
    /// wrote a `traceparent`; see [W3C Trace Context](self#w3c-trace-context).
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, Trust};
    /// use contextvars::ContextVar;
    /// use std::collections::HashMap;
    ///
    /// static TENANT: ContextVar<String> = ContextVar::new("tenant");
    ///
    /// let propagation = Propagation::builder()
    ///     .baggage_str(&TENANT, "tenant")
    ///     .outbound(Trust::Trusted)
    ///     .build();
    /// let mut headers = HashMap::from([("baggage".to_string(), "mine=1".to_string())]);
    /// TENANT.scope("acme corp".into(), || propagation.inject(&mut headers));
    /// assert_eq!(headers["baggage"], "tenant=acme%20corp,mine=1");
    /// ```
    pub fn inject<C: Injector + ?Sized>(&self, carrier: &mut C) {
        self.inject_context(&Context::current(), carrier);
    }

    /// [`inject`](Propagation::inject) for a context other than the current one. With the
    /// `opentelemetry` feature, the trace context and OTel baggage written are the *current*
    /// OpenTelemetry context's, whatever `ctx` is (attach the OTel context you mean first).
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, REQUEST_ID};
    /// use contextvars::Context;
    /// use std::collections::HashMap;
    ///
    /// let context = Context::new().with_value(&REQUEST_ID, "req-2".to_string());
    /// let mut headers = HashMap::new();
    /// Propagation::default().inject_context(&context, &mut headers);
    /// assert_eq!(headers["x-request-id"], "req-2");
    /// ```
    pub fn inject_context<C: Injector + ?Sized>(&self, ctx: &Context, carrier: &mut C) {
        self.inject_to(ctx, carrier, None);
    }

    /// [`inject_context`](Propagation::inject_context) for a destination a client integration
    /// named (its host, and why it has its trust), so that what is withheld from it is reported
    /// once per host rather than once for the whole propagation.
    pub(crate) fn inject_to<C: Injector + ?Sized>(
        &self,
        ctx: &Context,
        carrier: &mut C,
        destination: Option<Destination<'_>>,
    ) {
        let config = &*self.config;
        if let Some(id) = ctx.get_ref(config.request_id_var) {
            if is_header_text(id) {
                carrier.set(&config.request_id_header, id.clone());
            }
        }
        let mut flags = Flags {
            looking: !self.outbound.is_trusted() && crate::diagnostics::enabled(),
            ..Flags::default()
        };
        let mut out = self.baggage_writer(ctx, &mut flags);
        if flags.baggage {
            self.report_withheld(ctx, destination);
        }
        // What travels beside the context (with the `opentelemetry` feature, the current OTel
        // context): its own fields (the trace context), and the members of its baggage that
        // changed and may go to this destination.
        let mut watched = Watched::new(carrier);
        integrations::Ambient::inject(ctx, &mut watched);
        // The trace context a trusted caller sent goes on unchanged, unless what traces this
        // work wrote one of its own.
        if !watched.wrote_traceparent {
            if let Some(trace) = ctx.get_ref(&trace_context::RECEIVED) {
                trace.inject(carrier);
            }
        }
        let mut changes = Vec::new();
        let may_send = |key: &str| is_token(key) && self.may_send(key);
        integrations::Ambient::baggage_changes(ctx, &may_send, &mut changes);
        if out.is_empty() && changes.is_empty() {
            return;
        }
        // Members the caller put there themselves are kept after ours.
        parse_lines(carrier.existing(BAGGAGE), |m| {
            out.member(m.key, &m.value, m.escaped(), m.properties())
        });
        let value = out.finish();
        let value = match changes.is_empty() {
            true => value,
            false => merge_changes(value, changes),
        };
        if let Some(value) = value {
            carrier.set(BAGGAGE, value);
        }
    }

    /// What [`inject`](Propagation::inject) would write from the current context for a
    /// destination of trust `trust`, and what it would withhold, with the reasons: the request
    /// id, each registered variable that is set, each forwarded member, a trusted caller's
    /// trace context. For tests and debugging; client layers have an `explain` that applies
    /// their own per-destination rules (`ClientContextLayer::explain` with feature `tower`).
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, Trust, REQUEST_ID};
    /// use contextvars::ContextVar;
    ///
    /// static TENANT: ContextVar<String> = ContextVar::new("tenant");
    /// static LOCALE: ContextVar<String> = ContextVar::new("locale");
    ///
    /// let propagation = Propagation::builder()
    ///     .baggage_str(&TENANT, "tenant")
    ///     .baggage_str(&LOCALE, "locale")
    ///     .public("locale")
    ///     .build();
    /// let context = contextvars::Context::new()
    ///     .with_value(&REQUEST_ID, "req-1".to_string())
    ///     .with_value(&TENANT, "acme".to_string())
    ///     .with_value(&LOCALE, "fr".to_string());
    /// let explanation = context.run(|| propagation.explain_outbound(Trust::Untrusted));
    /// assert_eq!(explanation.passed(), ["x-request-id", "locale"]);
    /// assert_eq!(explanation.held_back(), ["tenant"]);
    /// println!("{explanation}");
    /// // outbound to an untrusted destination (as asked)
    /// //   sent      request id `x-request-id`: the request id goes to every destination
    /// //   withheld  baggage `tenant`: private (not made public): sent to trusted destinations only
    /// //   sent      baggage `locale`: public: sent to any destination
    /// let to_our_own = context.run(|| propagation.explain_outbound(Trust::Trusted));
    /// assert_eq!(to_our_own.held_back(), Vec::<&str>::new());
    /// ```
    pub fn explain_outbound(&self, trust: Trust) -> Explanation {
        self.explain_outbound_because(trust, "as asked".to_owned())
    }

    /// [`explain_outbound`](Propagation::explain_outbound), saying `why` the destination has
    /// that trust.
    pub(crate) fn explain_outbound_because(&self, trust: Trust, why: String) -> Explanation {
        let ctx = Context::current();
        let config = &*self.config;
        let mut explanation = Explanation::new(Direction::Outbound, trust, why);
        if ctx.get_ref(config.request_id_var).is_some() {
            let reason = "the request id goes to every destination";
            let header = &*config.request_id_header;
            explanation.note(Part::RequestId, header, true, false, reason);
        }
        self.with_outbound(trust)
            .baggage_writer(&ctx, &mut explanation);
        if ctx.get_ref(&trace_context::RECEIVED).is_some() {
            let reason = "a trusted caller's trace context goes to every destination, unchanged";
            let name = trace_context::TRACEPARENT;
            explanation.note(Part::TraceContext, name, true, false, reason);
        }
        explanation
    }

    /// What [`extract`](Propagation::extract) would accept from `carrier`, by this
    /// propagation's [inbound trust](Propagation::inbound_trust), and what it would set aside,
    /// with the reasons: the request id header, each baggage member, the trace context. For
    /// tests and debugging; the server layers have an `explain` that applies their own
    /// per-request rules (`ContextLayer::explain` with feature `tower`).
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, Trust};
    /// use contextvars::ContextVar;
    /// use std::collections::HashMap;
    ///
    /// static TENANT: ContextVar<String> = ContextVar::new("tenant");
    ///
    /// let propagation = Propagation::builder().baggage_str(&TENANT, "tenant").build();
    /// let headers = HashMap::from([
    ///     ("x-request-id".to_string(), "ext-1".to_string()),
    ///     ("baggage".to_string(), "tenant=acme,other=1".to_string()),
    /// ]);
    /// let explanation = propagation.explain_inbound(&headers);
    /// assert_eq!(explanation.held_back(), ["x-request-id", "tenant", "other"]);
    /// assert!(explanation.to_string().starts_with(
    ///     "inbound from an untrusted caller (the propagation's inbound setting)\n  \
    ///      set aside request id `x-request-id`: the caller is untrusted"
    /// ));
    /// let trusted = propagation.with_inbound(Trust::Trusted).explain_inbound(&headers);
    /// assert_eq!(trusted.passed(), ["x-request-id", "tenant", "other"]);
    /// ```
    pub fn explain_inbound<C: Extractor + ?Sized>(&self, carrier: &C) -> Explanation {
        let why = "the propagation's inbound setting".to_owned();
        self.explain_inbound_because(carrier, why)
    }

    /// [`explain_inbound`](Propagation::explain_inbound), saying `why` the caller has this
    /// propagation's inbound trust.
    pub(crate) fn explain_inbound_because<C: Extractor + ?Sized>(
        &self,
        carrier: &C,
        why: String,
    ) -> Explanation {
        let mut explanation = Explanation::new(Direction::Inbound, self.inbound, why);
        self.read_noting(carrier, || None, &mut explanation);
        explanation
    }

    /// Reports, once per destination, the members withheld from an untrusted one.
    #[cold]
    fn report_withheld(&self, ctx: &Context, destination: Option<Destination<'_>>) {
        let (key, why) = match destination {
            Some(Destination { key, why }) => (key, Some(why)),
            None => ("", None),
        };
        self.config.reported.once(Kind::Withheld, key, || {
            let mut explanation = Explanation::new(Direction::Outbound, self.outbound, "");
            self.baggage_writer(ctx, &mut explanation);
            let held = explanation.held_back_by_trust(Part::Baggage);
            let to = match why {
                Some(why) => format!("destination {key} ({})", why()),
                None => "destination".to_owned(),
            };
            format!(
                "baggage withheld from an untrusted {to}: {held}; trust your own destinations \
                 with PropagationBuilder::outbound or the client's trusted_hosts, or make a \
                 harmless key public"
            )
        });
    }

    /// This crate's members of the outgoing `baggage`, for this propagation's destination: the
    /// registered variables that are set (to an untrusted destination, the public ones), then
    /// (to a trusted one) the forwarded members. `notes` hears of each.
    fn baggage_writer(&self, ctx: &Context, notes: &mut impl Notes) -> Writer {
        let config = &*self.config;
        let trusted = self.outbound.is_trusted();
        let mut out = Writer::default();
        let as_received = ctx.get_ref(&REGISTERED_AS_RECEIVED);
        for registered in &config.registered {
            let key = &*registered.key;
            if !trusted && !registered.public {
                if notes.looking() && (registered.is_set)(ctx) {
                    let reason = "private (not made public): sent to trusted destinations only";
                    notes.note(Part::Baggage, key, false, true, reason);
                }
                continue;
            }
            if notes.looking() && (registered.is_set)(ctx) {
                let reason = match trusted {
                    true => "registered: the destination is trusted",
                    false => "public: sent to any destination",
                };
                notes.note(Part::Baggage, key, true, false, reason);
            }
            (registered.inject)(ctx, &mut |value| {
                // A value that formats to what was received goes out as it came in.
                let encoded = as_received
                    .and_then(|received| received.member(&registered.key))
                    .filter(|received| *received.value == *value)
                    .and_then(|received| received.encoded.as_deref());
                out.member(&registered.key, value, encoded, "");
            });
        }
        if !trusted && !notes.looking() {
            return out;
        }
        if let Some(forwarded) = ctx.get_ref(&FORWARDED) {
            for m in forwarded {
                if trusted {
                    out.member(&m.key, &m.value, m.encoded.as_deref(), &m.properties);
                }
                let reason = match trusted {
                    true => "forwarded: the destination is trusted",
                    false => "forwarded from a trusted caller: sent to trusted destinations only",
                };
                notes.note(Part::Baggage, &m.key, trusted, !trusted, reason);
            }
        }
        out
    }

    /// The baggage members this context holds to send to a trusted destination: the registered
    /// variables that are set, then the forwarded members. Right after
    /// [`extract`](Propagation::extract), exactly what was accepted from the carrier, by its
    /// trust.
    fn accepted_baggage(&self, ctx: &Context) -> Baggage {
        let written = self
            .with_outbound(Trust::Trusted)
            .baggage_writer(ctx, &mut Flags::default())
            .finish();
        Baggage::parse(written.as_deref().unwrap_or_default())
    }

    /// Whether a baggage member `key` may be written for this propagation's destination: any
    /// key to a trusted one, only registered public keys to an untrusted one.
    fn may_send(&self, key: &str) -> bool {
        self.outbound.is_trusted()
            || (self.config.registered.iter()).any(|r| r.public && &*r.key == key)
    }
}

/// A destination a client integration names: its host (what a diagnostic is reported once
/// for) and why it has the trust it has.
#[derive(Clone, Copy)]
pub(crate) struct Destination<'a> {
    pub(crate) key: &'a str,
    pub(crate) why: &'a dyn Fn() -> String,
}

/// Merges `changes` (members changed beside the context, see [`BaggageChange`]) into the
/// outgoing `baggage` value this crate wrote: a change replaces the member (in place) or adds it
/// (at the end), unless this crate's side changed that key too, where its value wins.
fn merge_changes(written: Option<String>, changes: Vec<BaggageChange<'_>>) -> Option<String> {
    let mut out = Baggage::parse(written.as_deref().unwrap_or_default());
    for change in changes {
        // This crate's side left the key as it came (or never had it): the change goes.
        if out.get(&change.key) == change.received {
            out.insert(&change.key, change.value);
        }
    }
    let text = out.to_string();
    (!text.is_empty()).then_some(text)
}

/// Configures a [`Propagation`]; see [`Propagation::builder`].
///
/// # Examples
///
/// ```
/// use contextvars::propagation::Propagation;
/// use contextvars::ContextVar;
///
/// static CORRELATION_ID: ContextVar<String> = ContextVar::new("correlation_id").with_display();
///
/// let propagation = Propagation::builder()
///     .request_id_header("X-Correlation-Id")
///     .request_id_var(&CORRELATION_ID)
///     .max_request_id_len(64)
///     .build();
/// assert_eq!(propagation.request_id_header(), "x-correlation-id");
/// ```
pub struct PropagationBuilder {
    config: Config,
    inbound: Trust,
    outbound: Trust,
}

impl fmt::Debug for PropagationBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PropagationBuilder").finish_non_exhaustive()
    }
}

impl PropagationBuilder {
    /// The header the request id is read from, echoed on and sent in (default `x-request-id`):
    /// any HTTP token (`&str`, `String`, an `http::HeaderName`), stored lowercase, as HTTP/2 and
    /// gRPC require; carriers find it in any case.
    ///
    /// # Panics
    ///
    /// When `name` is not an HTTP token (empty, or with spaces, `:`, `=` and the like), or when
    /// it ends in `-bin`: gRPC sends the values of such keys as base64 of binary data, so a
    /// text id written there would reach the other side garbled.
    ///
    /// ```
    /// let propagation = contextvars::propagation::Propagation::builder()
    ///     .request_id_header("x-correlation-id")
    ///     .build();
    /// # let _ = propagation;
    /// ```
    #[track_caller]
    pub fn request_id_header(mut self, name: impl AsRef<str>) -> PropagationBuilder {
        let name = name.as_ref();
        assert!(
            is_token(name),
            "request id header {name:?} is not an HTTP token"
        );
        let name = name.to_ascii_lowercase();
        assert!(
            !name.ends_with("-bin"),
            "request id header {name:?} is a gRPC binary key (`-bin`): use a text key"
        );
        self.config.request_id_header = name.into();
        self
    }

    /// The variable the request id is set into and sent from (default [`REQUEST_ID`]).
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// static TRACE_ID: ContextVar<String> = ContextVar::new("trace_id").with_display();
    ///
    /// let propagation = contextvars::propagation::Propagation::builder().request_id_var(&TRACE_ID).build();
    /// # let _ = propagation;
    /// ```
    pub fn request_id_var(mut self, var: &'static ContextVar<String>) -> PropagationBuilder {
        self.config.request_id_var = var;
        self
    }

    /// Whether the carriers [`Propagation::extract`] reads come from a trusted caller (default
    /// [`Trust::Untrusted`]). An integration that decides per request (a predicate on the
    /// request) overrides it for that request.
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, Trust};
    ///
    /// // A service only reachable from inside, behind the gateway:
    /// let propagation = Propagation::builder().inbound(Trust::Trusted).build();
    /// assert!(propagation.inbound_trust().is_trusted());
    /// ```
    pub fn inbound(mut self, trust: Trust) -> PropagationBuilder {
        self.inbound = trust;
        self
    }

    /// Whether [`Propagation::inject`] writes for a trusted destination (default
    /// [`Trust::Untrusted`]). Client integrations with a list of trusted hosts decide per
    /// destination instead.
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, Trust};
    ///
    /// // A publisher on the company's own message bus:
    /// let propagation = Propagation::builder().outbound(Trust::Trusted).build();
    /// assert!(propagation.outbound_trust().is_trusted());
    /// ```
    pub fn outbound(mut self, trust: Trust) -> PropagationBuilder {
        self.outbound = trust;
        self
    }

    /// Lets untrusted callers set the registered baggage key `key` (by default only trusted
    /// callers can). For values a stranger may choose without harm, such as a locale or a
    /// client version; never for what you authorize on. Register the key first.
    ///
    /// # Panics
    ///
    /// When `key` has not been registered (with [`baggage`](PropagationBuilder::baggage) or its
    /// relatives) before this call: a typo must not go unnoticed.
    ///
    /// ```
    /// use contextvars::propagation::Propagation;
    /// use contextvars::ContextVar;
    /// use std::collections::HashMap;
    ///
    /// static LOCALE: ContextVar<String> = ContextVar::new("locale");
    /// static TENANT: ContextVar<String> = ContextVar::new("tenant");
    ///
    /// let propagation = Propagation::builder()
    ///     .baggage_str(&LOCALE, "locale")
    ///     .baggage_str(&TENANT, "tenant")
    ///     .accept_from_untrusted("locale")
    ///     .build();
    /// let headers = HashMap::from([("baggage".to_string(), "locale=fr,tenant=other".to_string())]);
    /// let context = propagation.extract(&headers); // an untrusted caller
    /// assert_eq!(context.get(&LOCALE).as_deref(), Some("fr"));
    /// assert_eq!(context.get(&TENANT), None);
    /// ```
    #[track_caller]
    pub fn accept_from_untrusted(mut self, key: &str) -> PropagationBuilder {
        self.registration(key).from_untrusted = true;
        self
    }

    /// Sends the registered baggage key `key` to untrusted destinations too (by default it only
    /// goes to trusted ones). For values you would show a third party; never tenant or user
    /// ids. Register the key first.
    ///
    /// # Panics
    ///
    /// When `key` has not been registered before this call.
    ///
    /// ```
    /// use contextvars::propagation::Propagation;
    /// use contextvars::ContextVar;
    /// use std::collections::HashMap;
    ///
    /// static LOCALE: ContextVar<String> = ContextVar::new("locale");
    /// static TENANT: ContextVar<String> = ContextVar::new("tenant");
    ///
    /// let propagation = Propagation::builder()
    ///     .baggage_str(&LOCALE, "locale")
    ///     .baggage_str(&TENANT, "tenant")
    ///     .public("locale")
    ///     .build();
    /// let mut headers = HashMap::new(); // to an untrusted destination
    /// LOCALE.scope("fr".into(), || TENANT.scope("acme".into(), || propagation.inject(&mut headers)));
    /// assert_eq!(headers["baggage"], "locale=fr");
    /// ```
    #[track_caller]
    pub fn public(mut self, key: &str) -> PropagationBuilder {
        self.registration(key).public = true;
        self
    }

    /// The variable an untrusted caller's request id is kept in for correlation (default
    /// [`CALLER_REQUEST_ID`]), or `None` to drop it.
    ///
    /// ```
    /// use contextvars::propagation::{Propagation, CALLER_REQUEST_ID};
    /// use std::collections::HashMap;
    ///
    /// let propagation = Propagation::builder().caller_request_id_var(None).build();
    /// let headers = HashMap::from([("x-request-id".to_string(), "theirs".to_string())]);
    /// assert_eq!(propagation.extract(&headers).get(&CALLER_REQUEST_ID), None);
    /// ```
    pub fn caller_request_id_var(
        mut self,
        var: Option<&'static ContextVar<String>>,
    ) -> PropagationBuilder {
        self.config.caller_request_id_var = var;
        self
    }

    #[track_caller]
    fn registration(&mut self, key: &str) -> &mut Registered {
        match self.config.registered.iter_mut().find(|r| &*r.key == key) {
            Some(registered) => registered,
            None => panic!(
                "baggage key {key:?} is not registered: register it before setting its trust"
            ),
        }
    }

    /// The longest request id accepted from a request, in bytes (default 128); a longer one is
    /// replaced by a generated id. Generated ids are not held to it (only to being visible
    /// ASCII), so a short limit cannot leave requests without an id.
    ///
    /// ```
    /// let propagation = contextvars::propagation::Propagation::builder().max_request_id_len(36).build();
    /// # let _ = propagation;
    /// ```
    pub fn max_request_id_len(mut self, len: usize) -> PropagationBuilder {
        self.config.max_request_id_len = len;
        self
    }

    /// Carries `var` as the baggage member `key`: received values are parsed with `parse`
    /// (`None` drops the member), sent values are formatted with `Display`.
    ///
    /// Registering a key again replaces the earlier registration.
    ///
    /// # Panics
    ///
    /// When `key` is not an HTTP token (the W3C Baggage key syntax).
    ///
    /// ```
    /// use contextvars::propagation::Propagation;
    /// use contextvars::ContextVar;
    ///
    /// static USER_ID: ContextVar<u64> = ContextVar::new("user_id");
    ///
    /// let propagation = Propagation::builder().baggage(&USER_ID, "user.id", |s| s.parse().ok()).build();
    /// # let _ = propagation;
    /// ```
    #[track_caller]
    pub fn baggage<T>(
        self,
        var: &'static ContextVar<T>,
        key: &str,
        parse: impl Fn(&str) -> Option<T> + Send + Sync + 'static,
    ) -> PropagationBuilder
    where
        T: fmt::Display + Send + Sync + 'static,
    {
        self.baggage_with(var, key, parse, |value: &T| value.to_string())
    }

    /// Carries a `String` variable as the baggage member `key`, as is.
    ///
    /// # Panics
    ///
    /// When `key` is not an HTTP token.
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// static TENANT: ContextVar<String> = ContextVar::new("tenant");
    ///
    /// let propagation = contextvars::propagation::Propagation::builder().baggage_str(&TENANT, "tenant").build();
    /// # let _ = propagation;
    /// ```
    #[track_caller]
    pub fn baggage_str(self, var: &'static ContextVar<String>, key: &str) -> PropagationBuilder {
        self.baggage_with(
            var,
            key,
            |s| Some(s.to_owned()),
            |value: &String| value.clone(),
        )
    }

    /// Carries `var` as the baggage member `key`, with your own `parse` and `format` (for types
    /// without `Display`, or a wire format of your own).
    ///
    /// # Panics
    ///
    /// When `key` is not an HTTP token.
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// #[derive(Debug, Clone, Copy, PartialEq)]
    /// enum Plan { Free, Pro }
    ///
    /// static PLAN: ContextVar<Plan> = ContextVar::new("plan");
    ///
    /// let propagation = contextvars::propagation::Propagation::builder()
    ///     .baggage_with(
    ///         &PLAN,
    ///         "plan",
    ///         |s| match s { "free" => Some(Plan::Free), "pro" => Some(Plan::Pro), _ => None },
    ///         |plan| match plan { Plan::Free => "free".into(), Plan::Pro => "pro".into() },
    ///     )
    ///     .build();
    /// # let _ = propagation;
    /// ```
    #[track_caller]
    pub fn baggage_with<T>(
        mut self,
        var: &'static ContextVar<T>,
        key: &str,
        parse: impl Fn(&str) -> Option<T> + Send + Sync + 'static,
        format: impl Fn(&T) -> String + Send + Sync + 'static,
    ) -> PropagationBuilder
    where
        T: Send + Sync + 'static,
    {
        assert!(is_token(key), "baggage key {key:?} is not an HTTP token");
        self.config.registered.retain(|r| &*r.key != key);
        self.config.registered.push(Registered {
            from_untrusted: false,
            public: false,
            key: key.into(),
            extract: Box::new(move |value, ctx| match parse(value) {
                Some(parsed) => Ok(ctx.with_value(var, parsed)),
                None => Err(ctx),
            }),
            inject: Box::new(move |ctx, write| {
                if let Some(value) = ctx.get_ref(var) {
                    write(&format(value));
                }
            }),
            is_set: Box::new(move |ctx| ctx.contains(var)),
        });
        self
    }

    /// The finished configuration.
    ///
    /// ```
    /// let propagation = contextvars::propagation::Propagation::builder().build();
    /// # let _ = propagation;
    /// ```
    pub fn build(self) -> Propagation {
        Propagation {
            config: Arc::new(self.config),
            inbound: self.inbound,
            outbound: self.outbound,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request ids and tokens.

/// A new request id: 32 lowercase hex digits that look random. Each is a per-process counter
/// passed through a bijection keyed by 128 random bits chosen once per process, so ids are
/// unique within the process (the counter never repeats, and the bijection maps distinct
/// counts to distinct ids) and, with overwhelming likelihood, across processes; cheaper than a
/// UUID (no system call per id). Not a secret: the mixing hides nothing from someone who wants
/// to predict ids. [`Propagation::extract`] generates missing ids with it.
///
/// # Examples
///
/// ```
/// use contextvars::propagation::unique_request_id;
///
/// let (a, b) = (unique_request_id(), unique_request_id());
/// assert_eq!(a.len(), 32);
/// assert!(a.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
/// assert_ne!(a, b);
/// ```
pub fn unique_request_id() -> String {
    static KEYS: OnceLock<[u64; 2]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let [k0, k1] = *KEYS.get_or_init(|| {
        let random = RandomState::new();
        let pid = std::process::id();
        [random.hash_one((pid, 0u8)), random.hash_one((pid, 1u8))]
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // The low half alone is a bijection of the counter: ids never repeat within the process.
    let low = mix64(n ^ k0);
    let high = mix64(n.wrapping_add(k1)) ^ k0.rotate_left(32);
    format!("{high:016x}{low:016x}")
}

/// SplitMix64's finalizer: a bijection on 64 bits (xor-shifts and odd multipliers are each
/// invertible) in which every input bit changes about half the output bits.
fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A usable request id: non-empty, visible ASCII only.
pub(crate) fn is_visible_ascii(id: &str) -> bool {
    // Every byte checked, without an early exit, so that the compiler vectorizes the loop: ids
    // are short (their length is checked first), and most are valid.
    !id.is_empty()
        && id
            .bytes()
            .fold(true, |ok, b| ok & (b.wrapping_sub(0x21) < 0x7E - 0x21 + 1))
}

/// What an HTTP header value may hold (and so what is written as a request id): no control
/// character but tab, not empty.
fn is_header_text(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7F))
}

#[cfg(test)]
mod tests {
    use super::is_visible_ascii;

    /// The branch-free check accepts exactly the visible ASCII bytes, wherever the byte is.
    #[test]
    fn visible_ascii_is_0x21_to_0x7e_at_every_position() {
        for byte in 0..0x80u8 {
            for position in 0..40 {
                let mut id = vec![b'a'; 40];
                id[position] = byte;
                let id = String::from_utf8(id).unwrap();
                assert_eq!(
                    is_visible_ascii(&id),
                    (0x21..=0x7E).contains(&byte),
                    "byte {byte:#x} at {position}"
                );
            }
        }
        assert!(!is_visible_ascii(""));
        assert!(!is_visible_ascii("req-\u{e9}"));
        assert!(is_visible_ascii("~"));
    }
}
