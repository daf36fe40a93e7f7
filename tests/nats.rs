//! NATS (`contextvars::async_nats`) against a real `nats-server` started on 127.0.0.1 by the
//! test: concurrent publishers whose messages are each handled in their own context, a
//! request/reply hop that keeps the id both ways, and malformed headers handled by the rules of
//! the HTTP layer. The server binary must be installed (`.ci/test` installs it): without it the
//! tests fail, they never skip.
#![cfg(all(feature = "async-nats", feature = "tower", feature = "tokio"))]

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use common::nats_server::NatsServer;
use common::propagation::{standard, TENANT};
use contextvars::async_nats::{ContextClient, ContextMessage};
use contextvars::propagation::{Baggage, Propagation, Trust, REQUEST_ID};
use contextvars::tower::ContextLayer;
use contextvars::{Context, ContextExt, ContextVar};
use futures::StreamExt;
use tokio::sync::mpsc;
use tower::{Layer, ServiceExt};

static LEAK: ContextVar<&'static str> = ContextVar::new("leak");

fn server() -> NatsServer {
    NatsServer::start().unwrap_or_else(|error| panic!("{error}"))
}

async fn connect(server: &NatsServer) -> async_nats::Client {
    async_nats::connect(&server.url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", server.url))
}

/// What a handler saw: the request id, the tenant variable, the forwarded baggage, and whether
/// anything from the subscriber's own task leaked in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    request_id: Option<String>,
    tenant: Option<String>,
    forwarded: String,
    leak: Option<&'static str>,
}

fn seen() -> Seen {
    Seen {
        request_id: REQUEST_ID.get(),
        tenant: TENANT.get(),
        forwarded: Baggage::forwarded().to_string(),
        leak: LEAK.get(),
    }
}

/// Subscribes to `subject` and, in a task whose own context holds `LEAK`, handles each message
/// in a task of its own inside the message's context (`spawn_handle`), reporting
/// `(payload, what it saw)`.
async fn handle_all(
    client: &ContextClient,
    subject: &'static str,
) -> mpsc::UnboundedReceiver<(String, Seen)> {
    let mut messages = client.subscribe(subject).await.unwrap();
    // The server has the subscription once the flush returns: nothing published after is lost.
    client.client().flush().await.unwrap();
    let (report, reports) = mpsc::unbounded_channel();
    let subscriber_task = async move {
        while let Some(message) = messages.next().await {
            let report = report.clone();
            // `spawn_handle`: `tokio::spawn(message.handle(..))` without a raw spawn.
            message.spawn_handle(move |message| async move {
                tokio::task::yield_now().await;
                let payload = String::from_utf8(message.payload.to_vec()).unwrap();
                report.send((payload, seen())).unwrap();
            });
        }
    };
    tokio::spawn(LEAK.scope_future("subscriber task", subscriber_task));
    reports
}

async fn collect(
    reports: &mut mpsc::UnboundedReceiver<(String, Seen)>,
    n: usize,
) -> HashMap<String, Vec<Seen>> {
    let mut all: HashMap<String, Vec<Seen>> = HashMap::new();
    for received in 0..n {
        let (payload, seen) = tokio::time::timeout(Duration::from_secs(60), reports.recv())
            .await
            .unwrap_or_else(|_| panic!("only {received} of {n} messages were handled"))
            .expect("the subscriber is alive");
        all.entry(payload).or_default().push(seen);
    }
    all
}

// ---------------------------------------------------------------------------------------------
// Load.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_messages_from_four_publishers_are_each_handled_in_their_own_context() {
    const PUBLISHERS: usize = 4;
    const PER_PUBLISHER: usize = 250;
    let server = server();
    let subscriber = ContextClient::new(connect(&server).await, standard());
    let mut reports = handle_all(&subscriber, "orders").await;

    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let url = server.url.clone();
            tokio::spawn(async move {
                let client =
                    ContextClient::new(async_nats::connect(&url).await.unwrap(), standard());
                // Each publisher's messages forward a member of their own, received as a
                // service receives it: through `extract`.
                let incoming = HashMap::from([("baggage".to_string(), format!("publisher=p{p}"))]);
                let base = standard().extract(&incoming);
                for i in 0..PER_PUBLISHER {
                    let id = format!("p{p}-m{i:03}");
                    let ctx = base
                        .with_value(&REQUEST_ID, id.clone())
                        .with_value(&TENANT, format!("tenant-{p}"));
                    if i % 2 == 0 {
                        // The headers are written at the call, inside the context...
                        let publish = ctx.run(|| client.publish("orders", id.into()));
                        publish.await.unwrap();
                    } else {
                        // ...or the whole publish runs in it.
                        let client = &client;
                        async move { client.publish("orders", id.into()).await }
                            .with_context(ctx)
                            .await
                            .unwrap();
                    }
                    if i % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                client.client().flush().await.unwrap();
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }

    let all = collect(&mut reports, PUBLISHERS * PER_PUBLISHER).await;
    assert_eq!(
        all.len(),
        PUBLISHERS * PER_PUBLISHER,
        "distinct ids handled"
    );
    let mut mixed = Vec::new();
    for p in 0..PUBLISHERS {
        for i in 0..PER_PUBLISHER {
            let id = format!("p{p}-m{i:03}");
            let expected = Seen {
                request_id: Some(id.clone()),
                tenant: Some(format!("tenant-{p}")),
                forwarded: format!("publisher=p{p}"),
                leak: None,
            };
            match all.get(&id).map(Vec::as_slice) {
                Some([seen]) if *seen == expected => {}
                other => mixed.push((id, other.map(<[Seen]>::to_vec))),
            }
        }
    }
    assert!(mixed.is_empty(), "mixed or missing: {mixed:?}");
}

// ---------------------------------------------------------------------------------------------
// Request/reply.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_reply_hop_keeps_the_id_and_baggage_both_ways() {
    const REQUESTS: usize = 32;
    let server = server();
    let responder = ContextClient::new(connect(&server).await, standard());
    let mut requests = responder.subscribe("prices").await.unwrap();
    responder.client().flush().await.unwrap();
    let answering = responder.clone();
    tokio::spawn(LEAK.scope_future("responder task", async move {
        while let Some(message) = requests.next().await {
            let responder = answering.clone();
            tokio::spawn(message.handle(move |message| async move {
                tokio::task::yield_now().await;
                // The answer says what the responder saw, and carries its context back.
                let seen = format!("{:?} {:?} {:?}", REQUEST_ID.get(), TENANT.get(), LEAK.get());
                let reply = message.reply.expect("a request has a reply subject");
                responder.publish(reply, seen.into()).await.unwrap();
            }));
        }
    }));

    let requester = ContextClient::new(connect(&server).await, standard());
    let calls: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let requester = requester.clone();
            let id = format!("rr-{i:02}");
            let tenant = format!("tenant-{}", i % 3);
            let ctx = Context::new()
                .with_value(&REQUEST_ID, id.clone())
                .with_value(&TENANT, tenant.clone());
            tokio::spawn(async move {
                let reply = ctx
                    .run(|| requester.request("prices", "sku-9".into()))
                    .await
                    .unwrap();
                let payload = String::from_utf8(reply.payload.to_vec()).unwrap();
                assert_eq!(payload, format!("{:?} {:?} None", Some(&id), Some(&tenant)));
                let back = requester.context_of(&reply);
                assert_eq!(back.get(&REQUEST_ID), Some(id.clone()), "the id came back");
                assert_eq!(back.get(&TENANT), Some(tenant));
                let headers = reply.headers.as_ref().unwrap();
                assert_eq!(headers.get("x-request-id").unwrap().as_str(), id);
                id
            })
        })
        .collect();
    let mut answered = Vec::new();
    for call in calls {
        answered.push(call.await.unwrap());
    }
    assert_eq!(answered.len(), REQUESTS);
}

// ---------------------------------------------------------------------------------------------
// Bad input: the rules of the HTTP layer.

/// A message's headers: `(name, value)` pairs, repeated names appended in order.
type Lines = Vec<(&'static str, String)>;

fn cases() -> Vec<(&'static str, Option<Lines>)> {
    let big = "x".repeat(9_000);
    let many: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
    vec![
        ("no headers", None),
        ("empty headers", Some(vec![])),
        (
            "oversized baggage",
            Some(vec![(
                "baggage",
                format!("tenant=acme,a=1,big={big},after=2"),
            )]),
        ),
        (
            "bad percent-encoding",
            Some(vec![("baggage", "tenant=%ZZ,ok=%41,bad=%4,p=1;".into())]),
        ),
        (
            "invalid UTF-8 escapes",
            Some(vec![("baggage", "tenant=%FF%FE,k=%C3%28".into())]),
        ),
        (
            "oversized request id",
            Some(vec![("x-request-id", "r".repeat(129))]),
        ),
        (
            "longest request id",
            Some(vec![("x-request-id", "r".repeat(128))]),
        ),
        (
            "request id with a space",
            Some(vec![("x-request-id", "bad id".into())]),
        ),
        (
            "request id not ASCII",
            Some(vec![("x-request-id", "req-é".into())]),
        ),
        (
            "several baggage lines, one not ASCII",
            Some(vec![
                ("baggage", "tenant=Jörg".into()),
                ("baggage", "ok=1".into()),
                ("baggage", "".into()),
                ("baggage", "tenant=t2".into()),
            ]),
        ),
        ("too many members", Some(vec![("baggage", many.join(","))])),
        (
            "whitespace and properties",
            Some(vec![
                ("x-request-id", "ok-1".into()),
                ("baggage", " tenant = acme ; p ,other=1;q= x".into()),
            ]),
        ),
        (
            "mixed case names",
            Some(vec![
                ("X-Request-Id", "case-1".into()),
                ("Baggage", "tenant=case".into()),
            ]),
        ),
    ]
}

/// What the HTTP layer makes of the same header lines.
async fn over_http(lines: &Option<Lines>) -> (Seen, bool) {
    let service =
        ContextLayer::new(standard()).layer(tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(seen()))
        }));
    let mut request = http::Request::new(());
    for (name, value) in lines.iter().flatten() {
        request.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
    }
    let sent = request
        .headers()
        .get("x-request-id")
        .map(|v| v.as_bytes().to_vec());
    let seen = service.oneshot(request).await.unwrap().into_body();
    let generated = seen.request_id.as_ref().map(|id| id.as_bytes().to_vec()) != sent;
    (seen, generated)
}

/// A generated id has no fixed value: both sides must generate one, of the default form.
fn comparable(mut seen: Seen, generated: bool) -> Seen {
    if generated {
        let id = seen.request_id.take().expect("a generated id");
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
        seen.request_id = Some("<generated>".into());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_headers_follow_the_http_rules_and_no_message_is_lost() {
    let server = server();
    let subscriber = ContextClient::new(connect(&server).await, standard());
    let mut reports = handle_all(&subscriber, "bad").await;

    // Published with the plain client: exactly these headers, nothing added.
    let raw = connect(&server).await;
    let cases = cases();
    for (i, (_, lines)) in cases.iter().enumerate() {
        let payload = i.to_string().into();
        match lines {
            None => raw.publish("bad", payload).await.unwrap(),
            Some(lines) => {
                let mut headers = async_nats::HeaderMap::new();
                for (name, value) in lines {
                    headers.append(*name, value.as_str());
                }
                raw.publish_with_headers("bad", headers, payload)
                    .await
                    .unwrap();
            }
        }
    }
    raw.flush().await.unwrap();

    let all = collect(&mut reports, cases.len()).await;
    assert_eq!(all.len(), cases.len(), "every message handled once");
    let mut differences = Vec::new();
    for (i, (name, lines)) in cases.iter().enumerate() {
        let [nats] = all[&i.to_string()].as_slice() else {
            panic!("{name}: handled more than once");
        };
        let sent = lines
            .iter()
            .flatten()
            .find(|(n, _)| n.eq_ignore_ascii_case("x-request-id"))
            .map(|(_, v)| v.clone());
        let nats_generated = nats.request_id != sent;
        let (http, http_generated) = over_http(lines).await;
        let (nats, http) = (
            comparable(nats.clone(), nats_generated),
            comparable(http, http_generated),
        );
        if nats != http {
            differences.push((*name, nats, http));
        }
    }
    assert!(differences.is_empty(), "NATS vs HTTP: {differences:#?}");

    // And the rules themselves, spelled out for a few cases.
    let get = |i: usize| all[&i.to_string()][0].clone();
    let oversized_baggage = get(2);
    assert_eq!(oversized_baggage.tenant.as_deref(), Some("acme"));
    assert_eq!(oversized_baggage.forwarded, "a=1");
    let bad_escapes = get(3);
    assert_eq!(bad_escapes.tenant, None);
    assert_eq!(bad_escapes.forwarded, "ok=%41");
    let oversized_id = get(5).request_id.unwrap();
    assert_eq!(oversized_id.len(), 32, "{oversized_id}");
    assert_eq!(get(6).request_id, Some("r".repeat(128)));
    let lines = get(9);
    assert_eq!(
        (lines.tenant.as_deref(), lines.forwarded.as_str()),
        (Some("t2"), "ok=1")
    );
    assert_eq!(Baggage::parse(&get(10).forwarded).len(), 64);
    let spaced = get(11);
    assert_eq!(spaced.request_id.as_deref(), Some("ok-1"));
    assert_eq!(spaced.forwarded, "other=1;q=x");
    assert_eq!(get(12).request_id.as_deref(), Some("case-1"));
    assert_eq!(get(12).tenant.as_deref(), Some("case"));
    assert!(all.values().flatten().all(|seen| seen.leak.is_none()));
}

// ---------------------------------------------------------------------------------------------
// The carrier itself.

#[test]
fn nats_headers_are_read_in_any_case_and_written_lowercase_replacing_other_cases() {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Request-Id", "old");
    headers.append("Baggage", "mine=1");
    headers.insert("other", "kept");
    let context = Context::new()
        .with_value(&REQUEST_ID, "new".to_string())
        .with_value(&TENANT, "acme".to_string());
    standard().inject_context(&context, &mut headers);
    assert_eq!(headers.get("x-request-id").unwrap().as_str(), "new");
    assert!(headers.get("X-Request-Id").is_none());
    assert_eq!(
        headers.get("baggage").unwrap().as_str(),
        "tenant=acme,mine=1"
    );
    assert!(headers.get("Baggage").is_none());
    assert_eq!(headers.get("other").unwrap().as_str(), "kept");

    let message = async_nats::Message {
        subject: "s".into(),
        reply: None,
        payload: "".into(),
        headers: Some(headers),
        status: None,
        description: None,
        length: 0,
    };
    let message = ContextMessage::new(message, &standard());
    assert_eq!(message.context().get(&REQUEST_ID).as_deref(), Some("new"));
    assert_eq!(message.context().get(&TENANT).as_deref(), Some("acme"));
    assert_eq!(
        message.context().run(|| Baggage::forwarded().to_string()),
        "mine=1"
    );
}

#[test]
fn the_server_binary_is_found_and_stopped() {
    let server = server();
    let address = server.url.trim_start_matches("nats://").to_owned();
    assert!(std::net::TcpStream::connect(&address).is_ok());
    drop(server);
    // Killed and reaped: nothing listens there any more.
    assert!(std::net::TcpStream::connect(&address).is_err());
}

// ---------------------------------------------------------------------------------------------
// Trust: a bus shared with publishers and subscribers that are not ours.

/// What an untrusted publisher's message was handled with, and what the handler's relay to an
/// internal subject carried.
#[derive(Debug)]
struct Handled {
    request_id: Option<String>,
    caller_request_id: Option<String>,
    tenant: Option<String>,
    forwarded: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spoofed_ids_and_baggage_from_untrusted_publishers_are_never_believed_or_passed_on() {
    use contextvars::propagation::CALLER_REQUEST_ID;

    const PUBLISHERS: usize = 4;
    const PER_PUBLISHER: usize = 250;
    const TOTAL: usize = PUBLISHERS * PER_PUBLISHER;
    let server = server();
    // The consumer: untrusted publishers (the default), but its own relays to `internal.>` go
    // to trusted subscribers.
    let edge = Propagation::builder()
        .baggage_str(&TENANT, "tenant")
        .build();
    let consumer = ContextClient::new(connect(&server).await, edge)
        .trust_subjects_if(|subject| subject.starts_with("internal."));
    // Subscribed and flushed before anything is published, so no relay can be missed.
    let internal = connect(&server).await;
    let mut relays = internal.subscribe("internal.relay").await.unwrap();
    internal.flush().await.unwrap();
    let mut incoming = consumer.subscribe("public.orders").await.unwrap();
    consumer.client().flush().await.unwrap();

    let (report, mut reports) = mpsc::unbounded_channel::<(String, Handled)>();
    let relay_client = consumer.clone();
    let handler = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..TOTAL {
            let message = incoming.next().await.unwrap();
            let (report, relay_client) = (report.clone(), relay_client.clone());
            tasks.push(tokio::spawn(message.handle(move |message| async move {
                let n = String::from_utf8(message.payload.to_vec()).unwrap();
                report
                    .send((
                        n.clone(),
                        Handled {
                            request_id: REQUEST_ID.get(),
                            caller_request_id: CALLER_REQUEST_ID.get(),
                            tenant: TENANT.get(),
                            forwarded: Baggage::forwarded().to_string(),
                        },
                    ))
                    .unwrap();
                relay_client
                    .publish("internal.relay", n.into())
                    .await
                    .unwrap();
            })));
        }
        for task in tasks {
            task.await.unwrap();
        }
        relay_client.client().flush().await.unwrap();
    });

    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let url = server.url.clone();
            tokio::spawn(async move {
                let stranger = async_nats::connect(&url).await.unwrap();
                for i in 0..PER_PUBLISHER {
                    let n = format!("{}", p * PER_PUBLISHER + i);
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert("x-request-id", format!("spoof-{n}").as_str());
                    headers.insert("baggage", format!("tenant=victim-{n},evil=x{n}").as_str());
                    stranger
                        .publish_with_headers("public.orders", headers, n.into())
                        .await
                        .unwrap();
                }
                stranger.flush().await.unwrap();
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    handler.await.unwrap();

    let mut fresh = HashMap::new();
    for _ in 0..TOTAL {
        let (n, handled) = reports.recv().await.unwrap();
        let id = handled.request_id.clone().unwrap();
        assert!(!id.starts_with("spoof-"), "message {n} handled under {id}");
        assert_eq!(handled.caller_request_id, Some(format!("spoof-{n}")));
        assert_eq!(handled.tenant, None, "message {n}");
        assert_eq!(handled.forwarded, "", "message {n}");
        assert!(fresh.insert(n, id).is_none(), "handled twice");
    }
    for _ in 0..TOTAL {
        let relay = tokio::time::timeout(Duration::from_secs(30), relays.next())
            .await
            .expect("a relay is missing")
            .unwrap();
        let n = String::from_utf8(relay.payload.to_vec()).unwrap();
        let headers = relay.headers.unwrap();
        assert_eq!(
            headers.get("x-request-id").map(|v| v.as_str()),
            fresh.get(&n).map(String::as_str),
            "relay of {n} carries the id it was handled under"
        );
        assert!(
            headers.get("baggage").is_none(),
            "relay of {n}: {headers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_subscriber_trusts_only_the_messages_its_predicate_accepts() {
    let server = server();
    let consumer = ContextClient::new(
        connect(&server).await,
        Propagation::builder()
            .baggage_str(&TENANT, "tenant")
            .build(),
    )
    .trust_messages_if(|message| message.subject.starts_with("internal."));
    let mut messages = consumer.subscribe("*.orders").await.unwrap();
    consumer.client().flush().await.unwrap();

    let publisher = connect(&server).await;
    for subject in ["internal.orders", "public.orders"] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("x-request-id", "req-1");
        headers.insert("baggage", "tenant=acme");
        publisher
            .publish_with_headers(subject, headers, subject.into())
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();

    for _ in 0..2 {
        let message: ContextMessage = messages.next().await.unwrap();
        let ctx = message.context().clone();
        let (id, tenant) = (ctx.get(&REQUEST_ID), ctx.get(&TENANT));
        match &*message.message().subject {
            "internal.orders" => {
                assert_eq!(id.as_deref(), Some("req-1"));
                assert_eq!(tenant.as_deref(), Some("acme"));
            }
            "public.orders" => {
                assert_ne!(id.as_deref(), Some("req-1"));
                assert_eq!(tenant, None);
            }
            other => panic!("unexpected subject {other}"),
        }
    }
}

/// The subject of [`until_delivered`]'s probes.
const PROBE: &str = "probe.events";

/// Publishes probes (payload `tag`) from `publisher` until `received` gets one of them: then
/// the server routes that connection's messages to the subscription. (Under load, a connection's
/// first messages were seen to miss a subscription that the subscriber's own flush had
/// confirmed; waiting for a delivered probe makes the test depend on delivery, not on timing.)
/// Probes of other tags still in flight are skipped, here and by the reader afterwards.
async fn until_delivered(
    publisher: &async_nats::Client,
    tag: &'static str,
    received: &mut async_nats::Subscriber,
) {
    for _ in 0..100 {
        publisher.publish(PROBE, tag.into()).await.unwrap();
        publisher.flush().await.unwrap();
        let wait = std::time::Duration::from_millis(100);
        while let Ok(Some(message)) = tokio::time::timeout(wait, received.next()).await {
            assert_eq!(message.subject.as_str(), PROBE, "nothing else is sent yet");
            if message.payload == tag.as_bytes() {
                return;
            }
        }
    }
    panic!("no probe delivered from {tag} in 100 tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_sends_nothing_private_or_forwarded_to_an_untrusted_subject() {
    static LOCALE: ContextVar<String> = ContextVar::new("locale").with_display();
    let server = server();
    let configured = Propagation::builder()
        .baggage_str(&TENANT, "tenant")
        .baggage_str(&LOCALE, "locale")
        .public("locale")
        .build();
    let client = ContextClient::new(connect(&server).await, configured.clone())
        .trust_subjects_if(|subject| !subject.starts_with("partner."));
    let listener = connect(&server).await;
    let mut received = listener.subscribe("*.events").await.unwrap();
    listener.flush().await.unwrap();
    // Through a plain client with no subject rule: the propagation's own (untrusted) setting.
    let plain = ContextClient::new(connect(&server).await, configured.clone());
    until_delivered(client.client(), "client", &mut received).await;
    until_delivered(plain.client(), "plain", &mut received).await;

    // A context as an internal service receives it, with a member to forward.
    let incoming = HashMap::from([
        ("x-request-id".to_string(), "req-9".to_string()),
        (
            "baggage".to_string(),
            "tenant=acme,locale=fr,other=kept".to_string(),
        ),
    ]);
    let ctx = configured.with_inbound(Trust::Trusted).extract(&incoming);
    for subject in ["internal.events", "partner.events"] {
        let publish = ctx.run(|| client.publish(subject, "".into()));
        publish.await.unwrap();
    }
    let publish = ctx.run(|| plain.publish("default.events", "".into()));
    publish.await.unwrap();
    plain.client().flush().await.unwrap();
    client.client().flush().await.unwrap();

    let mut seen = HashMap::new();
    while seen.len() < 3 {
        let wait = std::time::Duration::from_secs(30);
        let message = tokio::time::timeout(wait, received.next())
            .await
            .unwrap_or_else(|_| panic!("only {seen:?} arrived"))
            .unwrap();
        if message.subject.as_str() == PROBE {
            continue;
        }
        let headers = message.headers.unwrap();
        assert_eq!(headers.get("x-request-id").unwrap().as_str(), "req-9");
        let baggage = headers.get("baggage").map(|v| v.as_str().to_owned());
        seen.insert(message.subject.to_string(), baggage);
    }
    assert_eq!(
        seen["internal.events"].as_deref(),
        Some("tenant=acme,locale=fr,other=kept")
    );
    assert_eq!(seen["partner.events"].as_deref(), Some("locale=fr"));
    assert_eq!(seen["default.events"].as_deref(), Some("locale=fr"));
}

// ---------------------------------------------------------------------------------------------
// OpenTelemetry (feature `opentelemetry`): the trace context and OTel baggage over NATS, by the
// same trust.

#[cfg(feature = "opentelemetry")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_context_crosses_nats_from_trusted_publishers_only() {
    use opentelemetry::baggage::BaggageExt;
    use opentelemetry::trace::{Span, TraceContextExt, Tracer, TracerProvider};
    use opentelemetry::KeyValue;

    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let tracer = provider.tracer("contextvars-nats-test");
    let server = server();
    let consumer = ContextClient::new(
        connect(&server).await,
        Propagation::builder()
            .baggage_str(&TENANT, "tenant")
            .build(),
    )
    .trust_messages_if(|message| message.subject.starts_with("internal."));
    let mut messages = consumer.subscribe("*.traced").await.unwrap();
    consumer.client().flush().await.unwrap();

    // One publisher of our own, sending with a span and OTel baggage current.
    let publisher = ContextClient::new(connect(&server).await, standard());
    let span = tracer.start("publish");
    let trace_id = span.span_context().trace_id();
    let cx = opentelemetry::Context::current_with_baggage([KeyValue::new("tenant", "acme")])
        .with_span(span);
    for subject in ["internal.traced", "public.traced"] {
        let publish = {
            let _guard = cx.clone().attach();
            publisher.publish(subject, "".into())
        };
        publish.await.unwrap();
    }
    publisher.client().flush().await.unwrap();

    for _ in 0..2 {
        let message: ContextMessage = messages.next().await.unwrap();
        let subject = message.message().subject.to_string();
        let (trace, tenant, otel_tenant) = message
            .handle(|_| async {
                let cx = opentelemetry::Context::current();
                let trace = cx.span().span_context().trace_id();
                let otel_tenant = cx.baggage().get("tenant").map(|v| v.to_string());
                (trace, TENANT.get(), otel_tenant)
            })
            .await;
        match &*subject {
            "internal.traced" => {
                assert_eq!(trace, trace_id);
                assert_eq!(tenant.as_deref(), Some("acme"));
                assert_eq!(otel_tenant.as_deref(), Some("acme"));
            }
            "public.traced" => {
                // Sent (the trace context goes everywhere), but not believed.
                assert_ne!(trace, trace_id);
                assert_eq!((tenant, otel_tenant), (None, None));
            }
            other => panic!("unexpected subject {other}"),
        }
    }
}
