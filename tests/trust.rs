//! Trust boundaries: an edge service takes no identity from strangers and leaks none to them.
//! Real axum servers on loopback under load, a client choosing by destination, and a property
//! test of the transport-neutral rules against every combination of policies.
#![cfg(all(feature = "tower", feature = "tokio", feature = "tracing"))]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use common::buffer::Buffer;
use common::http::{body_text, client, get_request, runtime, serve};
use contextvars::propagation::{Baggage, Propagation, Trust, CALLER_REQUEST_ID, REQUEST_ID};
use contextvars::tokio::spawn_with_context;
use contextvars::tower::{ClientContextLayer, ContextLayer};
use contextvars::tracing::ContextFormat;
use contextvars::ContextVar;
use futures::StreamExt;
use proptest::prelude::*;
use tower::{Layer, Service, ServiceExt};

static TENANT: ContextVar<String> = ContextVar::new("tenant").with_display();
static LOCALE: ContextVar<String> = ContextVar::new("locale").with_display();
static USER: ContextVar<String> = ContextVar::new("user").with_display();

/// The edge's configuration: `tenant` (private, never from strangers) and `locale` (a stranger
/// may choose it, and it may be shown to anyone).
fn edge() -> Propagation {
    Propagation::builder()
        .baggage_str(&TENANT, "tenant")
        .baggage_str(&LOCALE, "locale")
        .accept_from_untrusted("locale")
        .public("locale")
        .build()
}

/// A server with no layer that answers with the headers it received, as JSON.
fn echo_headers_app() -> Router {
    Router::new().route(
        "/",
        get(|headers: HeaderMap| async move {
            let map: BTreeMap<String, String> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
                .collect();
            serde_json::to_string(&map).unwrap()
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Logs, captured process-wide (the edge's handlers log on the runtime's worker threads).

/// The JSON log lines of this test binary. Only the load test logs.
fn logs() -> &'static Buffer {
    static LOGS: OnceLock<Buffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .map_event_format(ContextFormat::new)
            .with_writer(buffer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buffer
    })
}

// ---------------------------------------------------------------------------------------------
// The edge under load.

#[test]
fn an_edge_under_load_never_believes_logs_or_forwards_what_strangers_sent() {
    const REQUESTS: usize = 2_000;
    const IN_FLIGHT: usize = 64;
    let logs = logs();

    runtime(4).block_on(async {
        // An internal service behind the edge: trusts its callers, reports what reached it.
        let internal = Propagation::builder()
            .baggage_str(&TENANT, "tenant")
            .baggage_str(&LOCALE, "locale")
            .inbound(Trust::Trusted)
            .build();
        let backend = Router::new()
            .route(
                "/",
                get(|headers: HeaderMap| async move {
                    let baggage = headers
                        .get("baggage")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    serde_json::json!({
                        "request_id": REQUEST_ID.get(),
                        "tenant": TENANT.get(),
                        "locale": LOCALE.get(),
                        "forwarded": Baggage::forwarded().to_string(),
                        "baggage_header": baggage,
                    })
                    .to_string()
                }),
            )
            .layer(ContextLayer::new(internal));
        let (backend_addr, stop_backend) = serve(backend).await;

        // The edge: default (untrusted) callers; its calls to 127.0.0.1 are to its own system.
        let downstream = ClientContextLayer::new(edge())
            .trusted_hosts(["127.0.0.1"])
            .layer(client(IN_FLIGHT));
        let edge_app = Router::new()
            .route(
                "/",
                get(move || {
                    let downstream = downstream.clone();
                    async move {
                        tracing::info!("handled");
                        let task = spawn_with_context(async { REQUEST_ID.get() });
                        let request = get_request(backend_addr, "/", &[]);
                        let response = downstream.oneshot(request).await.unwrap();
                        let backend: serde_json::Value =
                            serde_json::from_str(&body_text(response.into_body()).await).unwrap();
                        serde_json::json!({
                            "request_id": REQUEST_ID.get(),
                            "caller_request_id": CALLER_REQUEST_ID.get(),
                            "tenant": TENANT.get(),
                            "locale": LOCALE.get(),
                            "forwarded": Baggage::forwarded().to_string(),
                            "task": task.await.unwrap(),
                            "backend": backend,
                        })
                        .to_string()
                    }
                }),
            )
            .layer(ContextLayer::new(edge()));
        let (edge_addr, stop_edge) = serve(edge_app).await;

        let strangers = client(IN_FLIGHT);
        let results: Vec<(usize, String, serde_json::Value)> = futures::stream::iter(0..REQUESTS)
            .map(|i| {
                let strangers = strangers.clone();
                async move {
                    let spoofed_id = format!("spoof-{i}");
                    let baggage = format!("tenant=victim-{i},evil=x{i},locale=fr-{i}");
                    let request = get_request(
                        edge_addr,
                        "/",
                        &[("x-request-id", &spoofed_id), ("baggage", &baggage)],
                    );
                    let response = strangers.request(request).await.unwrap();
                    let echoed = response.headers()["x-request-id"]
                        .to_str()
                        .unwrap()
                        .to_owned();
                    let body = body_text(response.into_body()).await;
                    (i, echoed, serde_json::from_str(&body).unwrap())
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        stop_edge.now();
        stop_backend.now();

        let mut fresh_ids = HashSet::new();
        for (i, echoed, seen) in &results {
            let fresh = seen["request_id"].as_str().unwrap();
            assert_eq!(
                echoed, fresh,
                "request {i}: the echo is the id it ran under"
            );
            assert!(
                !fresh.starts_with("spoof-"),
                "request {i} ran under {fresh}"
            );
            assert!(fresh_ids.insert(fresh.to_owned()), "id {fresh} reused");
            assert_eq!(seen["caller_request_id"], format!("spoof-{i}"));
            assert_eq!(seen["tenant"], serde_json::Value::Null, "request {i}");
            assert_eq!(seen["locale"], format!("fr-{i}"));
            assert_eq!(seen["forwarded"], "", "request {i}");
            assert_eq!(seen["task"], fresh, "request {i}: the spawned task");

            let backend = &seen["backend"];
            assert_eq!(backend["request_id"], fresh, "request {i}: the next hop");
            assert_eq!(backend["tenant"], serde_json::Value::Null);
            assert_eq!(backend["locale"], format!("fr-{i}"));
            assert_eq!(backend["forwarded"], "");
            assert_eq!(backend["baggage_header"], format!("locale=fr-{i}"));
        }
        assert_eq!(fresh_ids.len(), REQUESTS);

        let text = logs.text();
        let mut handled = HashSet::new();
        for line in text.lines() {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let context = &line["context"];
            if let Some(id) = context.get("request_id") {
                let id = id.as_str().unwrap();
                assert!(fresh_ids.contains(id), "logged under {id}: {line}");
            }
            assert!(context.get("tenant").is_none(), "{line}");
            if line["fields"]["message"] == "handled" {
                let caller = context["caller_request_id"].as_str().unwrap();
                assert!(caller.starts_with("spoof-"), "{line}");
                let id = context["request_id"].as_str().unwrap();
                assert!(handled.insert(id.to_owned()), "{id} logged twice");
            }
        }
        assert_eq!(handled.len(), REQUESTS, "one log line per request");
    });
}

// ---------------------------------------------------------------------------------------------
// One server for both sides.

#[test]
fn one_server_trusts_only_requests_its_gateway_marked() {
    runtime(4).block_on(async {
        let layer = ContextLayer::new(edge())
            .trust_callers_if(|head| head.headers.get("x-from-gateway").is_some());
        let app = Router::new()
            .route(
                "/",
                get(|| async {
                    format!(
                        "{:?}|{:?}|{:?}|{}",
                        REQUEST_ID.get(),
                        CALLER_REQUEST_ID.get(),
                        TENANT.get(),
                        Baggage::forwarded()
                    )
                }),
            )
            .layer(layer);
        let (addr, stop) = serve(app).await;
        let http = client(2);
        let send = |gateway: bool| {
            let mut headers = vec![("x-request-id", "gw-1"), ("baggage", "tenant=acme,k=v")];
            if gateway {
                headers.push(("x-from-gateway", "1"));
            }
            http.request(get_request(addr, "/", &headers))
        };

        let response = send(true).await.unwrap();
        assert_eq!(response.headers()["x-request-id"], "gw-1");
        assert_eq!(
            body_text(response.into_body()).await,
            r#"Some("gw-1")|None|Some("acme")|k=v"#
        );

        let response = send(false).await.unwrap();
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(echoed, "gw-1");
        assert_eq!(
            body_text(response.into_body()).await,
            format!(r#"Some({echoed:?})|Some("gw-1")|None|"#)
        );
        stop.now();
    });
}

/// `peer_is_private`: a caller on the loopback (a real connection to 127.0.0.1) is trusted, one
/// whose peer address is public (given through the same extension) is not.
#[test]
fn callers_with_a_private_peer_address_are_trusted_when_asked() {
    use std::net::SocketAddr;

    use axum::extract::ConnectInfo;
    use contextvars::tower::peer_is_private;

    let layer =
        ContextLayer::new(edge()).trust_callers_if(peer_is_private::<ConnectInfo<SocketAddr>>);
    let app = Router::new()
        .route(
            "/",
            get(|| async { format!("{:?}|{:?}", REQUEST_ID.get(), TENANT.get()) }),
        )
        .layer(layer);
    runtime(2).block_on(async {
        let (addr, stop) = common::http::serve_with_connect_info(app.clone()).await;
        let headers = [("x-request-id", "int-1"), ("baggage", "tenant=acme")];
        let response = client(1)
            .request(get_request(addr, "/", &headers))
            .await
            .unwrap();
        assert_eq!(response.headers()["x-request-id"], "int-1");
        let body = body_text(response.into_body()).await;
        assert_eq!(body, r#"Some("int-1")|Some("acme")"#);
        stop.now();

        for (peer, trusted) in [
            ([203, 0, 113, 7], false),
            ([172, 32, 0, 1], false),
            ([172, 20, 0, 1], true),
            ([192, 168, 0, 9], true),
        ] {
            let mut request = get_request(addr, "/", &headers);
            let peer = SocketAddr::from((peer, 40000));
            request.extensions_mut().insert(ConnectInfo(peer));
            let response = app.clone().oneshot(request).await.unwrap();
            let echoed = common::http::echoed_id(&response);
            let body = body_text(response.into_body()).await;
            match trusted {
                true => assert_eq!(body, r#"Some("int-1")|Some("acme")"#, "{peer}"),
                false => {
                    assert_ne!(echoed, "int-1", "{peer}");
                    assert_eq!(body, format!("Some({echoed:?})|None"), "{peer}");
                }
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// A client and the destination it calls.

#[test]
fn a_client_sends_nothing_private_or_forwarded_to_an_untrusted_host() {
    runtime(4).block_on(async {
        let (addr, stop) = serve(echo_headers_app()).await;
        let port = addr.port();

        // The context of a request that came from a trusted caller with a member to forward.
        let internal = edge().with_inbound(Trust::Trusted);
        let incoming = HashMap::from([
            ("x-request-id".to_string(), "req-1".to_string()),
            (
                "baggage".to_string(),
                "tenant=acme,locale=fr,internal.note=secret".to_string(),
            ),
        ]);
        let context = internal.extract(&incoming);

        let cases: [(&str, Vec<String>, &str); 4] = [
            ("another host", vec!["orders.internal".into()], "locale=fr"),
            (
                "the host on another port",
                vec![format!("127.0.0.1:{}", port.wrapping_add(1))],
                "locale=fr",
            ),
            (
                "the host",
                vec!["127.0.0.1".into()],
                "tenant=acme,locale=fr,internal.note=secret",
            ),
            (
                "the host and port",
                vec![format!("127.0.0.1:{port}")],
                "tenant=acme,locale=fr,internal.note=secret",
            ),
        ];
        for (case, hosts, expected) in cases {
            let mut service = ClientContextLayer::new(edge())
                .trusted_hosts(hosts)
                .layer(client(1));
            let request = get_request(addr, "/", &[]);
            let call = context.run(|| service.call(request));
            let response = call.await.unwrap();
            let received: BTreeMap<String, String> =
                serde_json::from_str(&body_text(response.into_body()).await).unwrap();
            assert_eq!(received["x-request-id"], "req-1", "{case}");
            assert_eq!(received["baggage"], expected, "{case}");
        }

        // No list: the propagation's own setting (untrusted by default).
        let mut service = ClientContextLayer::new(edge()).layer(client(1));
        let call = context.run(|| service.call(get_request(addr, "/", &[])));
        let received: BTreeMap<String, String> =
            serde_json::from_str(&body_text(call.await.unwrap().into_body()).await).unwrap();
        assert_eq!(received["baggage"], "locale=fr");
        stop.now();
    });
}

// ---------------------------------------------------------------------------------------------
// The rules, for every policy: nothing that arrived untrusted is set or sent.

/// Keys a caller may send: three registered, two not.
const KEYS: [&str; 5] = ["tenant", "locale", "user", "x", "y"];

#[derive(Debug, Clone)]
struct Policy {
    inbound: Trust,
    outbound: Trust,
    /// Per registered key (tenant, locale, user): accepted from untrusted callers, public.
    from_untrusted: [bool; 3],
    public: [bool; 3],
}

fn trust() -> impl Strategy<Value = Trust> {
    prop_oneof![Just(Trust::Trusted), Just(Trust::Untrusted)]
}

fn policy() -> impl Strategy<Value = Policy> {
    (trust(), trust(), any::<[bool; 3]>(), any::<[bool; 3]>()).prop_map(
        |(inbound, outbound, from_untrusted, public)| Policy {
            inbound,
            outbound,
            from_untrusted,
            public,
        },
    )
}

fn build(policy: &Policy) -> Propagation {
    let vars = [&TENANT, &LOCALE, &USER];
    let mut builder = Propagation::builder()
        .inbound(policy.inbound)
        .outbound(policy.outbound);
    for (var, key) in vars.into_iter().zip(KEYS) {
        builder = builder.baggage_str(var, key);
    }
    for (i, key) in KEYS[..3].iter().enumerate() {
        if policy.from_untrusted[i] {
            builder = builder.accept_from_untrusted(key);
        }
        if policy.public[i] {
            builder = builder.public(key);
        }
    }
    builder.build()
}

/// Headers as a caller might send them: a request id (valid or not) and baggage lines built from
/// the keys above, values marked `sent-` so they can be recognised wherever they end up.
fn headers() -> impl Strategy<Value = HashMap<String, String>> {
    let member = (0..KEYS.len(), "[a-z0-9]{1,6}", any::<bool>())
        .prop_map(|(k, v, prop)| format!("{}=sent-{v}{}", KEYS[k], if prop { ";p" } else { "" }));
    let id = prop_oneof![
        "sent-[a-z0-9]{1,12}".prop_map(Some),
        Just(Some("sent with space".to_string())),
        Just(None),
    ];
    (id, prop::collection::vec(member, 0..8), any::<bool>()).prop_map(|(id, members, junk)| {
        let mut headers = HashMap::new();
        if let Some(id) = id {
            headers.insert("x-request-id".to_string(), id);
        }
        let mut baggage = members.join(",");
        if junk {
            baggage.push_str(",bad key=sent-junk");
        }
        headers.insert("baggage".to_string(), baggage);
        headers
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn nothing_that_arrived_untrusted_is_set_or_sent(policy in policy(), incoming in headers()) {
        let propagation = build(&policy);
        let extracted = propagation.extract_with(&incoming, || Some("generated".to_string()));
        let context = extracted.context;
        let request_id = context.get(&REQUEST_ID);
        let sent_id = incoming.get("x-request-id");
        let vars = [&TENANT, &LOCALE, &USER];

        if policy.inbound == Trust::Untrusted {
            // The request id is never the caller's.
            prop_assert_eq!(request_id.as_deref(), Some("generated"));
            prop_assert!(!extracted.received);
            // Registered keys only where allowed; nothing kept to forward.
            for (i, var) in vars.iter().enumerate() {
                if !policy.from_untrusted[i] {
                    prop_assert_eq!(context.get(*var), None);
                }
            }
            prop_assert!(context.run(Baggage::forwarded).is_empty());
        } else if let Some(id) = sent_id.filter(|id| !id.contains(' ')) {
            prop_assert_eq!(request_id.as_deref(), Some(id.as_str()));
            prop_assert_eq!(context.get(&CALLER_REQUEST_ID), None);
        }

        // What goes out, to a destination of either trust.
        let mut outgoing = HashMap::new();
        propagation.inject_context(&context, &mut outgoing);
        let baggage = Baggage::parse(outgoing.get("baggage").map_or("", String::as_str));
        for member in &baggage {
            let key = member.key();
            let index = KEYS.iter().position(|k| *k == key).unwrap();
            let registered = index < 3;
            // An untrusted caller's values go out only through registered keys it may set.
            if policy.inbound == Trust::Untrusted {
                prop_assert!(registered && policy.from_untrusted[index], "{} sent on", key);
            }
            // To an untrusted destination, only public registered variables.
            if policy.outbound == Trust::Untrusted {
                prop_assert!(registered && policy.public[index], "{} sent to a stranger", key);
            }
        }
        if let Some(id) = outgoing.get("x-request-id") {
            prop_assert_eq!(Some(id), request_id.as_ref());
            if policy.inbound == Trust::Untrusted {
                prop_assert_eq!(id, "generated");
            }
        }
    }
}
