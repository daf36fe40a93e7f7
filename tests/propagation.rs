//! The transport-neutral propagation (`contextvars::propagation`) over the carriers that need no
//! feature: a `HashMap` and carriers of one's own, read-only and write-only.

mod common;

use std::collections::HashMap;

use common::propagation::{standard, TENANT, USER_ID};
use contextvars::propagation::{
    unique_request_id, Baggage, Extractor, Injector, Propagation, Trust, REQUEST_ID,
};
use contextvars::Context;

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_round_trip_through_a_map_keeps_the_id_registered_and_forwarded_members() {
    let incoming = map(&[
        ("X-Request-Id", "req-1"),
        ("Baggage", "user.id=7, tenant=J%c3%b6rg ,other=a%20b;p"),
    ]);
    let context = standard().extract(&incoming);
    assert_eq!(context.get(&REQUEST_ID).as_deref(), Some("req-1"));
    assert_eq!(context.get(&TENANT).as_deref(), Some("Jörg"));
    assert_eq!(context.get(&USER_ID), Some(7));

    let mut outgoing = HashMap::new();
    context.run(|| standard().inject(&mut outgoing));
    assert_eq!(outgoing["x-request-id"], "req-1");
    // Registered first (in registration order), as received where the value is unchanged
    // (lowercase escapes included), then the forwarded member.
    assert_eq!(
        outgoing["baggage"],
        "tenant=J%c3%b6rg,user.id=7,other=a%20b;p"
    );
}

#[test]
fn the_context_is_fresh_whatever_is_current() {
    let outer = Context::new()
        .with_value(&TENANT, "outer".to_string())
        .with_value(&REQUEST_ID, "outer-id".to_string());
    let context = outer.run(|| standard().extract(&map(&[("x-request-id", "inner")])));
    assert_eq!(context.get(&REQUEST_ID).as_deref(), Some("inner"));
    assert_eq!(context.get(&TENANT), None);
    assert_eq!(context.len(), 1);
}

#[test]
fn missing_or_bad_ids_are_generated_by_extract_and_by_your_generator_with_extract_with() {
    let long = "r".repeat(129);
    for bad in [
        None,
        Some(""),
        Some("has space"),
        Some("é"),
        Some(long.as_str()),
    ] {
        let carrier = match bad {
            Some(bad) => map(&[("x-request-id", bad)]),
            None => map(&[]),
        };
        let id = standard().extract(&carrier).get(&REQUEST_ID).unwrap();
        assert_eq!(id.len(), 32, "{bad:?}: {id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));

        let extracted = standard().extract_with(&carrier, || Some("mine".into()));
        assert_eq!(extracted.request_id(), Some("mine"));
        assert!(!extracted.received);
        assert_eq!(extracted.context.get(&REQUEST_ID).as_deref(), Some("mine"));

        // A generator that gives nothing, or nothing usable: no id at all.
        for generated in [None, Some(String::new()), Some("a b".to_string())] {
            let extracted = standard().extract_with(&carrier, || generated.clone());
            assert_eq!(extracted.request_id(), None);
            assert_eq!(extracted.context.get(&REQUEST_ID), None);
        }
    }
    // A valid id is kept, and the generator is not called.
    let extracted = standard().extract_with(&map(&[("x-request-id", &"r".repeat(128))]), || {
        panic!("not called")
    });
    assert!(extracted.received);
    assert_eq!(extracted.request_id(), Some(&*"r".repeat(128)));
    assert_ne!(unique_request_id(), unique_request_id());
}

#[test]
fn a_configured_header_is_stored_lowercase_and_found_in_any_case() {
    let propagation = Propagation::builder()
        .request_id_header("X-Correlation-ID")
        .inbound(Trust::Trusted)
        .build();
    assert_eq!(propagation.request_id_header(), "x-correlation-id");
    let context = propagation.extract(&map(&[("x-CORRELATION-id", "c-1")]));
    assert_eq!(context.get(&REQUEST_ID).as_deref(), Some("c-1"));
    let mut out = map(&[("X-Correlation-Id", "old")]);
    context.run(|| propagation.inject(&mut out));
    assert_eq!(out, map(&[("x-correlation-id", "c-1")]));
}

#[test]
#[should_panic(expected = "not an HTTP token")]
fn a_header_name_that_is_not_a_token_is_refused() {
    let _ = Propagation::builder().request_id_header("x request id");
}

/// A carrier with repeated keys, as HTTP and NATS headers have.
struct Lines(Vec<(&'static str, &'static str)>);

impl Extractor for Lines {
    fn get(&self, key: &str) -> Option<&str> {
        self.get_all(key).first().copied()
    }
    fn get_all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| *v)
            .collect()
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| *k).collect()
    }
}

#[test]
fn repeated_baggage_values_are_one_list_and_unreadable_lines_are_skipped() {
    let carrier = Lines(vec![
        ("baggage", "a=1"),
        ("baggage", "tenant=J\u{f6}rg"), // not ASCII: the whole line is ignored
        ("baggage", "tenant=acme,b=2"),
    ]);
    let context = standard().extract(&carrier);
    assert_eq!(context.get(&TENANT).as_deref(), Some("acme"));
    assert_eq!(context.run(|| Baggage::forwarded().to_string()), "a=1,b=2");
    assert_eq!(
        Baggage::from_headers(&carrier).to_string(),
        "a=1,tenant=acme,b=2"
    );
}

/// A carrier that can only be written to.
#[derive(Default)]
struct WriteOnly(Vec<(String, String)>);

impl Injector for WriteOnly {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

#[test]
fn a_write_only_carrier_gets_the_context_and_nothing_is_written_for_what_is_not_set() {
    let mut carrier = WriteOnly::default();
    standard().inject(&mut carrier);
    assert!(carrier.0.is_empty(), "{:?}", carrier.0);

    let context = Context::new()
        .with_value(&REQUEST_ID, "req-2".to_string())
        .with_value(&USER_ID, 9);
    standard().inject_context(&context, &mut carrier);
    assert_eq!(
        carrier.0,
        [
            ("x-request-id".to_string(), "req-2".to_string()),
            ("baggage".to_string(), "user.id=9".to_string())
        ]
    );

    // An id with a control character is not written at all.
    let mut carrier = WriteOnly::default();
    let context = Context::new().with_value(&REQUEST_ID, "a\r\nb".to_string());
    standard().inject_context(&context, &mut carrier);
    assert!(carrier.0.is_empty());
}

#[test]
fn members_already_in_the_carrier_are_kept_after_the_contexts_within_the_limits() {
    let mut carrier = map(&[("baggage", "mine=1,tenant=theirs")]);
    let context = Context::new().with_value(&TENANT, "acme corp".to_string());
    standard().inject_context(&context, &mut carrier);
    assert_eq!(carrier["baggage"], "tenant=acme%20corp,mine=1");

    let many: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
    let mut carrier = map(&[("baggage", &many.join(","))]);
    standard().inject_context(&context, &mut carrier);
    assert_eq!(Baggage::parse(&carrier["baggage"]).len(), 64);
    assert!(carrier["baggage"].starts_with("tenant=acme%20corp,k0=v,"));
}
