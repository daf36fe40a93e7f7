//! The clippy recipe of the crate docs' "Never forget a spawn" (in `src/lib.rs`): one file,
//! `tests/fixtures/clippy-recipe/clippy.toml`, shown verbatim in the crate docs and proven on the
//! fixture crate next to it, whose `src/lib.rs` uses every raw spawn path once, on a line marked
//! `// flagged: <path>`.
//!
//! The copy and the marks are checked by every `cargo test`. The clippy run itself builds the
//! fixture's dependencies, so it is `#[ignore]`d here and CI runs it on its own:
//! `cargo test --test clippy_recipe -- --ignored`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const CRATE_DOCS_HEADING: &str = "//! # Never forget a spawn";
const MARK: &str = "// flagged: ";
/// The lints the recipe configures; any other diagnostic on the fixture fails the check.
const RECIPE_LINTS: [&str; 2] = [
    "clippy::disallowed_methods",
    "clippy::await_holding_invalid_type",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture() -> PathBuf {
    root().join("tests/fixtures/clippy-recipe")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn recipe() -> String {
    read(&fixture().join("clippy.toml"))
}

/// The recipe's entries, path to reason, in both tables. Each entry is an inline table on a line
/// of its own, `{ path = "..", reason = ".." },`.
fn recipe_entries(recipe: &str) -> BTreeMap<String, String> {
    let quoted = |line: &str, key: &str| -> String {
        let start = line
            .find(key)
            .unwrap_or_else(|| panic!("no `{key}` in {line:?}"))
            + key.len();
        let end = line[start..].find('"').expect("closing quote") + start;
        assert!(
            !line[start..end].contains('\\'),
            "no escapes in the recipe: {line:?}"
        );
        line[start..end].to_owned()
    };
    let mut entries = BTreeMap::new();
    for line in recipe.lines().map(str::trim).filter(|l| l.starts_with('{')) {
        let path = quoted(line, "path = \"");
        let reason = quoted(line, "reason = \"");
        assert!(
            reason.contains("contextvars"),
            "a reason names the helper: {line:?}"
        );
        assert!(
            entries.insert(path.clone(), reason).is_none(),
            "`{path}` listed twice"
        );
    }
    assert_eq!(
        entries.len(),
        recipe.matches("path = ").count(),
        "one entry per line"
    );
    entries
}

/// The fixture's marks: line number (1-based) to the recipe path clippy must report there. A
/// mark ends a line of code (lines that are comments only are documentation).
fn marks() -> BTreeSet<(usize, String)> {
    read(&fixture().join("src/lib.rs"))
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .filter_map(|(i, line)| Some((i + 1, line.split_once(MARK)?.1.trim().to_owned())))
        .collect()
}

/// The first fenced block of `lang` after the line `heading` in `text`, each line stripped of
/// `prefix`, with a final newline.
fn fenced_block(text: &str, heading: &str, prefix: &str, lang: &str) -> String {
    let mut lines = text.lines().skip_while(|l| *l != heading).map(|l| {
        l.strip_prefix(prefix)
            .unwrap_or(l.trim_start_matches(prefix.trim_end()))
    });
    assert!(lines.next().is_some(), "no line {heading:?}");
    let open = format!("```{lang}");
    lines
        .by_ref()
        .find(|l| *l == open)
        .unwrap_or_else(|| panic!("no {open} block after {heading:?}"));
    let mut block = String::new();
    for line in lines.take_while(|l| *l != "```") {
        block.push_str(line);
        block.push('\n');
    }
    block
}

#[test]
fn the_crate_docs_show_the_recipe_file_verbatim() {
    let lib = read(&root().join("src/lib.rs"));
    let shown = fenced_block(&lib, CRATE_DOCS_HEADING, "//! ", "toml");
    assert_eq!(
        shown,
        recipe(),
        "the crate docs' block under {CRATE_DOCS_HEADING:?} in src/lib.rs must be \
         tests/fixtures/clippy-recipe/clippy.toml"
    );
}

#[test]
fn the_fixture_uses_every_recipe_entry_exactly_once() {
    let entries = recipe_entries(&recipe());
    let mut uses = BTreeMap::<String, usize>::new();
    for (_, path) in marks() {
        *uses.entry(path).or_default() += 1;
    }
    let unknown: Vec<_> = uses.keys().filter(|p| !entries.contains_key(*p)).collect();
    assert!(
        unknown.is_empty(),
        "marked in the fixture, not in the recipe: {unknown:?}"
    );
    let unused: Vec<_> = entries
        .keys()
        .filter(|p| uses.get(*p) != Some(&1))
        .collect();
    assert!(
        unused.is_empty(),
        "not marked exactly once in the fixture: {unused:?}"
    );
}

/// What clippy reported on the fixture.
#[derive(Default)]
struct Report {
    /// (line, path) of each diagnostic of a recipe lint.
    flagged: BTreeSet<(usize, String)>,
    /// Diagnostics of a recipe lint whose notes do not carry the recipe's reason.
    wrong_reason: Vec<String>,
    /// Every other diagnostic (unresolved recipe paths, compile errors, other lints).
    unexpected: Vec<String>,
}

fn run_clippy_on_the_fixture(entries: &BTreeMap<String, String>) -> Report {
    let fixture = fixture();
    // The fixture is a workspace of its own; it resolves its dependencies exactly as the crate
    // does (its lock file is not committed but seeded from the crate's).
    std::fs::copy(root().join("Cargo.lock"), fixture.join("Cargo.lock")).expect("seed Cargo.lock");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| root().join(dir))
        .unwrap_or_else(|| root().join("target"))
        .join("clippy-recipe");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let output = Command::new(cargo)
        .args([
            "clippy",
            "--quiet",
            "--message-format=json",
            "--manifest-path",
        ])
        .arg(fixture.join("Cargo.toml"))
        .current_dir(&fixture)
        .env("CARGO_TARGET_DIR", &target)
        // Only the recipe decides what is reported.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .output()
        .expect("run cargo clippy");
    let stdout = String::from_utf8(output.stdout).expect("utf-8 JSON");
    assert!(
        output.status.success(),
        "cargo clippy on the fixture failed ({}):\n{}\n{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    let mut report = Report::default();
    for line in stdout.lines().filter(|l| l.starts_with('{')) {
        let msg: Value = serde_json::from_str(line).expect("cargo JSON message");
        if msg["reason"] != "compiler-message" {
            continue;
        }
        let diag = &msg["message"];
        let rendered = diag["rendered"].as_str().unwrap_or_default().to_owned();
        let code = diag["code"]["code"].as_str().unwrap_or_default();
        if !RECIPE_LINTS.contains(&code) {
            report.unexpected.push(rendered);
            continue;
        }
        let span = diag["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|s| s["is_primary"] == true))
            .expect("a primary span");
        // "use of a disallowed method `tokio::task::spawn`": the recipe's path, as written.
        let text = diag["message"].as_str().unwrap_or_default();
        let path = text.split('`').nth(1).unwrap_or_default().to_owned();
        let line = span["line_start"].as_u64().expect("line_start") as usize;
        if span["file_name"] != "src/lib.rs" {
            report.unexpected.push(rendered);
            continue;
        }
        let reason = entries.get(&path);
        let has_reason = diag["children"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|child| reason.is_some_and(|r| child["message"] == r.as_str()));
        if !has_reason {
            report.wrong_reason.push(rendered);
        }
        report.flagged.insert((line, path));
    }
    report
}

#[test]
#[ignore = "runs cargo clippy on tests/fixtures/clippy-recipe; CI: cargo test --test clippy_recipe -- --ignored"]
fn clippy_reports_every_raw_spawn_of_the_fixture() {
    let entries = recipe_entries(&recipe());
    let expected = marks();
    let report = run_clippy_on_the_fixture(&entries);

    let mut problems = Vec::new();
    if !report.unexpected.is_empty() {
        problems.push(format!(
            "clippy reported something besides the recipe's lints (an unresolved recipe path is \
             reported on clippy.toml):\n{}",
            report.unexpected.join("\n")
        ));
    }
    let missed: Vec<_> = expected.difference(&report.flagged).collect();
    if !missed.is_empty() {
        problems.push(format!(
            "marked lines clippy did not report (the recipe path does not resolve to what the \
             line calls), as (line, path): {missed:?}"
        ));
    }
    let extra: Vec<_> = report.flagged.difference(&expected).collect();
    if !extra.is_empty() {
        problems.push(format!(
            "reported on lines not marked, as (line, path): {extra:?}"
        ));
    }
    if !report.wrong_reason.is_empty() {
        problems.push(format!(
            "reported without the recipe's reason:\n{}",
            report.wrong_reason.join("\n")
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    println!(
        "clippy reported all {} raw uses in the fixture, one per recipe entry ({} entries)",
        report.flagged.len(),
        entries.len()
    );
}
