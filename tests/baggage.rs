//! The W3C Baggage parser and formatter of the tower adapter: edge cases.
#![cfg(feature = "tower")]

use contextvars::tower::{Baggage, MAX_BAGGAGE_BYTES, MAX_BAGGAGE_MEMBERS};
use http::{HeaderMap, HeaderValue};

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
fn properties_are_kept_as_received_without_optional_whitespace() {
    let baggage = Baggage::parse("a=1;p;q = v ; r=x%20y");
    assert_eq!(pairs(&baggage), [("a", "1", "p;q=v;r=x%20y")]);
    assert_eq!(baggage.to_string(), "a=1;p;q=v;r=x%20y");
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
    // Written back as received (lowercase hex included) until replaced.
    assert_eq!(baggage.to_string(), "a=%E2%9C%93%20ok%2C%3B%25,b=%c3%a9");
    let mut out = Baggage::new();
    out.insert("a", "✓ ok,;%");
    out.insert("b", "é");
    assert_eq!(out.to_string(), "a=%E2%9C%93%20ok%2C%3B%25,b=%C3%A9");
    assert_eq!(out, baggage);
    let mut out = Baggage::new();
    out.insert("k", "a=b \"c\" \\ d");
    assert_eq!(out.to_string(), "k=a=b%20%22c%22%20%5C%20d");
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

// ---------------------------------------------------------------------------------------------
// Fuzz findings (issue 16, item 7): each failed before its fix.

#[test]
fn a_semicolon_must_be_followed_by_a_property() {
    // `;` starts a property: with nothing after it the member is malformed, like `a=1;;p`.
    for header in ["a=1;", "a=1; \t", "a=1 ;", "a=1;p;", "a=1;;p"] {
        assert!(Baggage::parse(header).is_empty(), "{header:?}");
    }
    assert_eq!(pairs(&Baggage::parse("a=1;,b=2")), [("b", "2", "")]);
    assert_eq!(pairs(&Baggage::parse("a=1;p")), [("a", "1", "p")]);
}

#[test]
fn empty_header_lines_count_their_joining_comma() {
    fn lines(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("baggage", HeaderValue::from_str(line).unwrap());
        }
        headers
    }
    // Joined, `["", m]` is `,m`: one byte more than `m`.
    let fits = format!("a={}", "x".repeat(MAX_BAGGAGE_BYTES - 2));
    let (less1, less2) = (&fits[..fits.len() - 1], &fits[..fits.len() - 2]);
    assert_eq!(Baggage::from_headers(&lines(&[&fits])).len(), 1);
    assert!(Baggage::from_headers(&lines(&["", &fits])).is_empty());
    assert!(Baggage::from_headers(&lines(&["", "", less1])).is_empty());
    assert_eq!(Baggage::from_headers(&lines(&["", less1])).len(), 1);
    assert_eq!(Baggage::from_headers(&lines(&["", "", less2])).len(), 1);
    // Always the same as parsing the lines joined by `,`.
    for set in [
        &["", "", "b=1"][..],
        &["", &fits],
        &["", less1],
        &["", "", less1],
        &[" ", "", less2],
        &["b=1", "", less2],
    ] {
        assert_eq!(
            Baggage::from_headers(&lines(set)),
            Baggage::parse(&set.join(",")),
            "{set:?}"
        );
    }
}

#[test]
fn values_are_encoded_only_where_the_grammar_requires() {
    // `=` is a `baggage-octet` (base64 padding): written as is.
    let mut baggage = Baggage::new();
    baggage.insert("b64", "aGk=");
    baggage.insert("all", "!#$&'()*+-./09:<=>?@AZ[]^_`az{|}~");
    baggage.insert("needs", "a b\"c,d;e\\f%g\té\u{7f}");
    assert_eq!(
        baggage.to_string(),
        "b64=aGk=,all=!#$&'()*+-./09:<=>?@AZ[]^_`az{|}~,needs=a%20b%22c%2Cd%3Be%5Cf%25g%09%C3%A9%7F"
    );
    assert_eq!(Baggage::parse(&baggage.to_string()), baggage);

    // The case: two members that fit on the way in fit on the way out.
    let header = format!("a={},b=x==", "v".repeat(8183));
    assert_eq!(header.len(), MAX_BAGGAGE_BYTES - 1);
    let baggage = Baggage::parse(&header);
    assert_eq!(baggage.len(), 2);
    assert_eq!(baggage.to_string(), header);
}

#[test]
fn a_member_read_and_not_changed_is_written_as_received() {
    // Each `%FF` decodes to U+FFFD (3 bytes, 9 once encoded): the member is written back with
    // the escapes it came with, so it still fits.
    let header = format!("a={}", "%FF".repeat(911));
    assert!(header.len() <= MAX_BAGGAGE_BYTES);
    let baggage = Baggage::parse(&header);
    assert_eq!(baggage.get("a"), Some("\u{FFFD}".repeat(911).as_str()));
    assert_eq!(baggage.to_string(), header);
    assert_eq!(baggage.to_header_value().unwrap(), header.as_str());
    // Escapes that were not needed and lowercase hex are kept too; equality is by value.
    let baggage = Baggage::parse("a=%41%c3%a9,b=%FF");
    assert_eq!(baggage.to_string(), "a=%41%c3%a9,b=%FF");
    let mut same = Baggage::new();
    same.insert("a", "Aé");
    same.insert("b", "\u{FFFD}");
    assert_eq!(baggage, same);
    assert_eq!(same.to_string(), "a=A%C3%A9,b=%EF%BF%BD");
    // A member given a new value is encoded afresh.
    let mut changed = baggage.clone();
    changed.insert("b", "\u{FFFD}");
    assert_eq!(changed.to_string(), "a=%41%c3%a9,b=%EF%BF%BD");
}

#[test]
fn no_control_characters_are_written() {
    // Tabs are optional whitespace on the way in; nothing but the canonical form goes out.
    for (header, expected) in [
        ("a=1;p\t;q", "a=1;p;q"),
        ("a=1;\tp\t=\tv\t;\tq", "a=1;p=v;q"),
        ("a\t=\t1\t;\tp", "a=1;p"),
    ] {
        let baggage = Baggage::parse(header);
        assert_eq!(baggage.to_string(), expected, "{header:?}");
        assert_eq!(baggage.iter().next().unwrap().properties(), &expected[4..]);
    }
    let mut baggage = Baggage::new();
    baggage.insert("a", "\t\r\n\0");
    assert_eq!(baggage.to_string(), "a=%09%0D%0A%00");
}
