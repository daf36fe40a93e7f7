//! The W3C Baggage parser and formatter of the tower adapter: edge cases.
#![cfg(feature = "tower")]

use contextvars::tower::{Baggage, MAX_BAGGAGE_BYTES, MAX_BAGGAGE_MEMBERS};

fn pairs(baggage: &Baggage) -> Vec<(&str, &str, &str)> {
    baggage
        .iter()
        .map(|m| (m.key(), m.value(), m.properties()))
        .collect()
}

#[test]
fn empty_members_and_optional_whitespace() {
    assert!(Baggage::parse("").is_empty());
    assert!(Baggage::parse(" ,\t, ").is_empty());
    let baggage = Baggage::parse("\ta = 1 ,b=2\t,  ,c=");
    assert_eq!(
        pairs(&baggage),
        [("a", "1", ""), ("b", "2", ""), ("c", "", "")]
    );
}

#[test]
fn properties_are_kept_as_received() {
    let baggage = Baggage::parse("a=1;p;q = v ; r=x%20y");
    assert_eq!(pairs(&baggage), [("a", "1", "p;q = v ; r=x%20y")]);
    assert_eq!(baggage.to_string(), "a=1;p;q = v ; r=x%20y");
    // A malformed property makes the member malformed.
    assert!(Baggage::parse("a=1;bad key").is_empty());
    assert!(Baggage::parse("a=1;p=\"q\"").is_empty());
}

#[test]
fn malformed_members_are_dropped_and_the_others_kept() {
    let header = "ok1=1,novalue,=nokey,sp ace=1,q=\"x\",back=a\\b,pct=%4,pct2=%zz,ok2=2";
    assert_eq!(
        pairs(&Baggage::parse(header)),
        [("ok1", "1", ""), ("ok2", "2", "")]
    );
}

#[test]
fn invalid_utf8_after_decoding_becomes_the_replacement_character() {
    let baggage = Baggage::parse("a=%FF,b=2");
    assert_eq!(baggage.get("a"), Some("\u{FFFD}"));
    assert_eq!(baggage.get("b"), Some("2"));
    // Each invalid sequence is replaced, the valid bytes around it kept.
    let baggage = Baggage::parse("utf=%C3%28,mixed=x%E9y%C3%A9");
    assert_eq!(baggage.get("utf"), Some("\u{FFFD}("));
    assert_eq!(baggage.get("mixed"), Some("x\u{FFFD}yé"));
    // Bad escapes still drop the member.
    assert_eq!(pairs(&Baggage::parse("a=%ZZ,b=%F,c=3")), [("c", "3", "")]);
}

#[test]
fn values_are_percent_decoded_and_encoded() {
    let baggage = Baggage::parse("a=%E2%9C%93%20ok%2C%3B%25,b=%c3%a9");
    assert_eq!(baggage.get("a"), Some("✓ ok,;%"));
    assert_eq!(baggage.get("b"), Some("é"));
    assert_eq!(baggage.to_string(), "a=%E2%9C%93%20ok%2C%3B%25,b=%C3%A9");
    let mut out = Baggage::new();
    out.insert("k", "a=b \"c\" \\ d");
    assert_eq!(out.to_string(), "k=a%3Db%20%22c%22%20%5C%20d");
    assert_eq!(
        Baggage::parse(&out.to_string()).get("k"),
        Some("a=b \"c\" \\ d")
    );
}

#[test]
fn duplicate_keys_last_value_wins_at_the_first_position() {
    let baggage = Baggage::parse("a=1,b=2,a=3;p");
    assert_eq!(pairs(&baggage), [("a", "3", "p"), ("b", "2", "")]);
    // Keys are case-sensitive.
    assert_eq!(Baggage::parse("a=1,A=2").len(), 2);
}

#[test]
fn limits_apply_when_reading_and_writing() {
    let many: Vec<String> = (0..MAX_BAGGAGE_MEMBERS + 10)
        .map(|i| format!("k{i}=v"))
        .collect();
    assert_eq!(Baggage::parse(&many.join(",")).len(), MAX_BAGGAGE_MEMBERS);
    // Malformed members do not count towards the member limit.
    let with_bad = format!("bad,{}", many.join(","));
    assert_eq!(Baggage::parse(&with_bad).get("k63"), Some("v"));
    // Nor do duplicates of a key already kept, and they still replace its value after the
    // limit is reached; new keys past it are dropped.
    let full: Vec<String> = (1..MAX_BAGGAGE_MEMBERS)
        .map(|i| format!("k{i}=v"))
        .collect();
    let baggage = Baggage::parse(&format!("k0=a,{},k0=b,new=x", full.join(",")));
    assert_eq!(baggage.len(), MAX_BAGGAGE_MEMBERS);
    assert_eq!(baggage.get("k0"), Some("b"));
    assert_eq!(baggage.get("new"), None);
    let dups = format!("k0=a,k0=b,k0=c,{}", full.join(","));
    assert_eq!(Baggage::parse(&dups).len(), MAX_BAGGAGE_MEMBERS);
    assert_eq!(Baggage::parse(&dups).get("k63"), Some("v"));

    // A member ending exactly at the byte limit is kept; one byte more and it is not.
    let fill = MAX_BAGGAGE_BYTES - "a=".len();
    assert_eq!(Baggage::parse(&format!("a={}", "x".repeat(fill))).len(), 1);
    assert_eq!(
        Baggage::parse(&format!("a={}", "x".repeat(fill + 1))).len(),
        0
    );

    let mut big = Baggage::new();
    for i in 0..MAX_BAGGAGE_MEMBERS + 10 {
        big.insert(&format!("k{i}"), "v");
    }
    assert_eq!(Baggage::parse(&big.to_string()).len(), MAX_BAGGAGE_MEMBERS);
    let mut huge = Baggage::new();
    huge.insert("a", "1");
    huge.insert("b", "x".repeat(MAX_BAGGAGE_BYTES));
    huge.insert("c", "3");
    assert_eq!(huge.to_string(), "a=1,c=3");
    assert!(huge.to_header_value().is_some());
}

#[test]
#[should_panic(expected = "not an HTTP token")]
fn inserting_an_invalid_key_panics() {
    Baggage::new().insert("bad key", "v");
}
