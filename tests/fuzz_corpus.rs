//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the checks the
//! `cargo fuzz` targets make (`fuzz/src/lib.rs`): CI runs the corpus, never the fuzzer.
#![cfg(feature = "tower")]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[allow(unreachable_pub)]
#[path = "../fuzz/src/lib.rs"]
mod checks;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every file of `target`'s corpus and reports each file that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let files = corpus(target);
    assert!(
        files.len() >= 10,
        "{target}: only {} corpus files",
        files.len()
    );
    let failed: Vec<String> = files
        .iter()
        .filter(|file| {
            let data = std::fs::read(file).unwrap();
            catch_unwind(AssertUnwindSafe(|| check(&data))).is_err()
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target}: failing inputs: {failed:#?}");
}

#[test]
fn the_parse_corpus_passes() {
    replay("parse", checks::parse);
}

#[test]
fn the_round_trip_corpus_passes() {
    replay("round_trip", checks::round_trip);
}

#[test]
fn the_trace_context_corpus_passes() {
    replay("trace_context", checks::trace_context);
}
