//! Generated request ids (`propagation::unique_request_id`): unique, and random-looking, with
//! no run of zeros more often than random hex digits would have one.

use std::collections::HashSet;

use contextvars::propagation::unique_request_id;

const IDS: usize = 100_000;

#[test]
fn a_hundred_thousand_ids_are_distinct_and_look_random() {
    let ids: Vec<String> = (0..IDS).map(|_| unique_request_id()).collect();
    let distinct: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(distinct.len(), IDS);

    let mut digits = [0usize; 16];
    let mut with_zero_run = 0;
    for id in &ids {
        assert_eq!(id.len(), 32, "{id}");
        for digit in id.chars() {
            let value = digit.to_digit(16).filter(|_| !digit.is_ascii_uppercase());
            digits[value.unwrap_or_else(|| panic!("{id}: not lowercase hex")) as usize] += 1;
        }
        with_zero_run += usize::from(id.contains("00000000"));
    }
    // Random hex: 25 places for a run of 8 zeros, each with chance 16^-8, so about 6e-9 per id
    // and 6e-4 expected among all of them. The counter's ids had sixteen zeros in each.
    assert!(
        with_zero_run <= 1,
        "{with_zero_run} ids with 8 zeros in a row"
    );
    // Each digit about 1/16 of the 3.2 million: the standard deviation is about 430.
    let expected = IDS * 32 / 16;
    for (digit, &count) in digits.iter().enumerate() {
        assert!(
            count.abs_diff(expected) < 5_000,
            "digit {digit:x}: {count} times, expected about {expected}"
        );
    }
}

#[test]
fn consecutive_ids_share_no_prefix_or_suffix() {
    // The old ids shared a 16-digit prefix; consecutive mixed ids differ in both halves.
    let (a, b) = (unique_request_id(), unique_request_id());
    assert_ne!(a[..16], b[..16]);
    assert_ne!(a[16..], b[16..]);
}
