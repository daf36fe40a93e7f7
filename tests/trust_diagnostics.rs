//! Trust that explains itself: a debug event (target `contextvars::trust`) when the trust rules
//! set aside a caller's id or baggage or withhold members from a destination, once per
//! propagation (and per host, for a client layer), never once per request.
#![cfg(feature = "log")]

mod common;

use std::collections::HashMap;
use std::sync::OnceLock;

use common::logger::{Capture, Seen};
use contextvars::propagation::{Propagation, Trust, REQUEST_ID};
use contextvars::{Context, ContextVar};

static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
static LOCALE: ContextVar<String> = ContextVar::new("locale").with_display();

/// The process-wide logger, keeping the records of `contextvars::trust` only. Each test builds
/// its own propagation (what is reported once is counted per propagation) and looks for its
/// own names.
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::only_target("contextvars::trust");
        log::set_boxed_logger(Box::new(capture.clone())).unwrap();
        log::set_max_level(log::LevelFilter::Debug);
        #[cfg(feature = "tracing")]
        traced();
        capture
    })
}

/// The process-wide tracing subscriber's lines (a global default: a scoped one races with
/// the other tests' threads over the callsites' cached interest).
#[cfg(feature = "tracing")]
fn traced() -> &'static common::buffer::Buffer {
    static TRACED: OnceLock<common::buffer::Buffer> = OnceLock::new();
    TRACED.get_or_init(|| {
        let buffer = common::buffer::Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(buffer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buffer
    })
}

/// The records whose message contains every one of `words`.
fn records_with(words: &[&str]) -> Vec<Seen> {
    let seen = capture().seen().into_iter();
    let seen = seen.filter(|s| words.iter().all(|w| s.message.contains(w)));
    seen.collect()
}

fn headers(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let pairs = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    pairs.collect()
}

fn edge(key: &str) -> Propagation {
    Propagation::builder()
        .baggage_str(&TENANT, key)
        .baggage_str(&LOCALE, "locale")
        .accept_from_untrusted("locale")
        .public("locale")
        .build()
}

#[test]
fn an_untrusted_callers_id_and_baggage_set_aside_are_reported_once() {
    capture();
    let propagation = edge("tenant-in");
    let sent = headers(&[
        ("x-request-id", "ext-1"),
        ("baggage", "tenant-in=acme,locale=fr,stranger-in=1"),
    ]);
    for _ in 0..100 {
        let context = propagation.extract(&sent);
        assert_eq!(context.get(&LOCALE).as_deref(), Some("fr"));
    }
    let id = records_with(&[
        "request id of an untrusted caller set aside",
        "x-request-id",
    ]);
    assert_eq!(id.len(), 1, "{:?}", capture().seen());
    assert_eq!(id[0].level, log::Level::Debug);
    assert!(
        id[0].message.contains("caller_request_id"),
        "{}",
        id[0].message
    );
    let baggage = records_with(&["baggage of an untrusted caller set aside", "tenant-in ("]);
    assert_eq!(baggage.len(), 1, "{:?}", capture().seen());
    let message = &baggage[0].message;
    assert!(message.contains("stranger-in (not registered"), "{message}");
    assert!(
        message.contains("not accepted from untrusted callers"),
        "{message}"
    );
    assert!(
        !message.contains("locale ("),
        "accepted keys are not listed: {message}"
    );

    // A trusted caller sets nothing aside: nothing more is reported.
    let before = capture().seen().len();
    propagation.with_inbound(Trust::Trusted).extract(&sent);
    let after: Vec<Seen> = capture().seen().into_iter().skip(before).collect();
    assert!(
        after.iter().all(|s| !s.message.contains("tenant-in")),
        "{after:?}"
    );
}

#[test]
fn private_members_withheld_from_an_untrusted_destination_are_reported_once() {
    capture();
    let propagation = edge("tenant-out");
    let context = Context::new()
        .with_value(&REQUEST_ID, "req-1".to_string())
        .with_value(&TENANT, "acme".to_string())
        .with_value(&LOCALE, "fr".to_string());
    for _ in 0..100 {
        let mut carrier = HashMap::new();
        propagation.inject_context(&context, &mut carrier);
        assert_eq!(carrier["baggage"], "locale=fr");
    }
    let withheld = records_with(&[
        "baggage withheld from an untrusted destination",
        "tenant-out (",
    ]);
    assert_eq!(withheld.len(), 1, "{:?}", capture().seen());
    assert!(withheld[0].message.contains("private (not made public)"));
    assert!(
        !withheld[0].message.contains("locale ("),
        "{}",
        withheld[0].message
    );

    // To a trusted destination nothing is withheld, and nothing is reported.
    let mut carrier = HashMap::new();
    let to_our_own = propagation.with_outbound(Trust::Trusted);
    to_our_own.inject_context(&context, &mut carrier);
    assert_eq!(carrier["baggage"], "tenant-out=acme,locale=fr");
    let withheld = records_with(&["withheld", "tenant-out ("]);
    assert_eq!(withheld.len(), 1);
}

#[cfg(all(feature = "tower", feature = "tokio"))]
#[test]
fn a_client_layer_reports_once_per_host_with_why_it_is_untrusted() {
    use contextvars::tower::ClientContextLayer;
    use tower::{service_fn, Layer, ServiceExt};

    capture();
    let propagation = edge("tenant-client");
    let layer = ClientContextLayer::new(propagation).trusted_hosts(["localhost"]);
    let client = layer.layer(service_fn(|request: http::Request<()>| async move {
        Ok::<_, std::convert::Infallible>(request.headers().clone())
    }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for uri in [
        "http://127.0.0.1:3000/a",
        "http://127.0.0.1:3000/b",
        "http://10.0.0.7/",
    ]
    .iter()
    .cycle()
    .take(30)
    {
        let call = client
            .clone()
            .oneshot(http::Request::get(*uri).body(()).unwrap());
        let sent = runtime
            .block_on(TENANT.scope_future("acme".into(), call))
            .unwrap();
        assert!(!sent.contains_key("baggage"));
    }
    let local = records_with(&[
        r#"destination 127.0.0.1 (host 127.0.0.1:3000 matches none of ["localhost"])"#,
        "tenant-client (",
    ]);
    assert_eq!(local.len(), 1, "{:?}", capture().seen());
    let other = records_with(&[r#"host 10.0.0.7:80 matches none"#, "tenant-client ("]);
    assert_eq!(other.len(), 1, "{:?}", capture().seen());
}

/// The same report as a `tracing` event, when a subscriber takes debug events of the target.
#[cfg(feature = "tracing")]
#[test]
fn the_report_is_a_tracing_debug_event_too() {
    capture();
    let propagation = edge("tenant-traced");
    let sent = headers(&[("baggage", "tenant-traced=acme")]);
    for _ in 0..10 {
        propagation.extract(&sent);
    }
    let lines = traced().lines().into_iter();
    let lines: Vec<String> = lines.filter(|l| l.contains("tenant-traced (")).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("DEBUG contextvars::trust:"),
        "{}",
        lines[0]
    );
}
