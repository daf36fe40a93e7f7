//! Context fields on every log line, and spans that travel with the context.
#![cfg(all(feature = "tracing", feature = "tokio", feature = "rayon"))]

mod common;

use std::sync::{Arc, OnceLock};

use common::buffer::Buffer;
use contextvars::tracing::{ContextFields, ContextFieldsConfig, ContextFormat};
use contextvars::{Context, ContextVar};
use tracing::{info, info_span, Instrument};

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id").with_display();
static USER_ID: ContextVar<u64> = ContextVar::new("user_id");

/// A plain-text fmt subscriber with context fields, writing into `captured`.
fn text_subscriber(
    captured: &Buffer,
    config: ContextFieldsConfig,
) -> impl tracing::Subscriber + Send + Sync + 'static {
    tracing_subscriber::fmt()
        .with_ansi(false)
        .map_fmt_fields(ContextFields::new)
        .map_event_format(|format| ContextFormat::new(format).with_config(config))
        .with_writer(captured.clone())
        .finish()
}

/// A JSON fmt subscriber with context fields, writing into `captured`.
fn json_subscriber(captured: &Buffer) -> impl tracing::Subscriber + Send + Sync + 'static {
    tracing_subscriber::fmt()
        .json()
        .map_event_format(ContextFormat::new)
        .with_writer(captured.clone())
        .finish()
}

/// The process-wide text subscriber (worker threads of every runtime log through it).
fn global() -> &'static Buffer {
    static GLOBAL: OnceLock<Buffer> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let captured = Buffer::default();
        let subscriber = text_subscriber(&captured, ContextFieldsConfig::new());
        tracing::subscriber::set_global_default(subscriber).unwrap();
        captured
    })
}

/// The value of `name=` in a text line (up to the next space).
fn field<'a>(line: &'a str, name: &str) -> Vec<&'a str> {
    let key = format!(" {name}=");
    line.match_indices(&key)
        .map(|(at, _)| {
            let rest = &line[at + key.len()..];
            rest.split(' ').next().unwrap()
        })
        .collect()
}

#[test]
fn a_thousand_concurrent_requests_log_their_own_id_from_every_kind_of_child() {
    let captured = global();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    const REQUESTS: usize = 1000;
    runtime.block_on(async {
        let mut handles = Vec::new();
        for n in 0..REQUESTS {
            let span = info_span!("request", n);
            let request = async move {
                info!(origin = "parent", "stress event");
                let child = contextvars::tokio::spawn_with_context(async {
                    tokio::task::yield_now().await;
                    info!(origin = "child", "stress event");
                });
                let blocking = contextvars::tokio::spawn_blocking_with_context(|| {
                    info!(origin = "blocking", "stress event");
                });
                let rayon = contextvars::rayon::run_in_global_pool_with_context(|| {
                    info!(origin = "rayon", "stress event");
                });
                // Without the helper: neither the request id nor the span.
                let plain = tokio::spawn(async {
                    info!(origin = "plain", "stress event");
                });
                child.await.unwrap();
                blocking.await.unwrap();
                rayon.await.unwrap();
                plain.await.unwrap();
            }
            .instrument(span);
            handles.push(REQUEST_ID.scope(format!("req-{n}"), || {
                contextvars::tokio::spawn_with_context(request)
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
    });

    let lines: Vec<String> = captured
        .lines()
        .into_iter()
        .filter(|line| line.contains("stress event"))
        .collect();
    assert_eq!(lines.len(), REQUESTS * 5);
    let mut seen = vec![[0usize; 4]; REQUESTS];
    let mut plain = 0;
    for line in &lines {
        let origin = field(line, "origin");
        assert_eq!(origin.len(), 1, "{line}");
        if origin[0] == "\"plain\"" {
            assert!(field(line, "request_id").is_empty(), "leaked: {line}");
            assert!(!line.contains("request{"), "span leaked: {line}");
            plain += 1;
            continue;
        }
        let ids = field(line, "request_id");
        assert_eq!(ids.len(), 1, "exactly one request id: {line}");
        let n: usize = ids[0].strip_prefix("req-").unwrap().parse().unwrap();
        assert!(
            line.contains(&format!("request{{n={n}}}")),
            "the parent's span, for request {n}: {line}"
        );
        let slot = ["\"parent\"", "\"child\"", "\"blocking\"", "\"rayon\""]
            .iter()
            .position(|o| *o == origin[0])
            .unwrap_or_else(|| panic!("unexpected origin: {line}"));
        seen[n][slot] += 1;
    }
    assert_eq!(plain, REQUESTS);
    assert!(seen.iter().all(|counts| *counts == [1, 1, 1, 1]));
}

#[test]
fn events_outside_a_context_print_no_context_fields() {
    let captured = global();
    std::thread::spawn(|| info!("outside any context marker"))
        .join()
        .unwrap();
    Context::new().run(|| info!("empty context marker"));
    let lines = captured.lines();
    for marker in ["outside any context marker", "empty context marker"] {
        let line = lines.iter().find(|l| l.contains(marker)).unwrap();
        assert!(!line.contains("request_id"), "{line}");
    }
}

#[test]
fn json_lines_parse_and_hold_the_context_fields() {
    let captured = Buffer::default();
    let subscriber = json_subscriber(&captured);
    tracing::subscriber::with_default(subscriber, || {
        REQUEST_ID.scope("req-\"quoted\"\n".into(), || {
            USER_ID.scope(7, || info!(answer = 42, "in context"));
        });
        info!("outside");
    });
    let lines = captured.lines();
    assert_eq!(lines.len(), 2);
    let inside: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(inside["context"]["request_id"], "req-\"quoted\"\n");
    assert_eq!(inside["context"]["user_id"], 7);
    assert_eq!(inside["fields"]["answer"], 42);
    assert_eq!(inside["fields"]["message"], "in context");
    let outside: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert!(outside.get("context").is_none());
}

struct PanicsOnDebug;

impl std::fmt::Debug for PanicsOnDebug {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("Debug of PanicsOnDebug")
    }
}

#[test]
fn a_panicking_value_and_a_huge_value_do_not_break_other_fields() {
    static BAD: ContextVar<PanicsOnDebug> = ContextVar::new("bad");
    static HUGE: ContextVar<String> = ContextVar::new("huge").with_display();
    for json in [false, true] {
        let captured = Buffer::default();
        let config = ContextFieldsConfig::new().max_value_len(100);
        let ctx = Context::new()
            .with_value(&REQUEST_ID, "req-1".into())
            .with_value(&BAD, PanicsOnDebug)
            .with_value(&HUGE, "é".repeat(100_000));
        if json {
            let subscriber = tracing_subscriber::fmt()
                .json()
                .map_event_format(|format| ContextFormat::new(format).with_config(config))
                .with_writer(captured.clone())
                .finish();
            tracing::subscriber::with_default(subscriber, || ctx.run(|| info!("survives")));
            let line: serde_json::Value = serde_json::from_str(&captured.lines()[0]).unwrap();
            assert_eq!(line["context"]["request_id"], "req-1");
            assert!(line["context"].get("bad").is_none());
            let huge = line["context"]["huge"].as_str().unwrap();
            assert!(huge.len() <= 100 + 'é'.len_utf8() * 2 + 3 && huge.ends_with('…'));
        } else {
            let subscriber = text_subscriber(&captured, config);
            tracing::subscriber::with_default(subscriber, || ctx.run(|| info!("survives")));
            let line = &captured.lines()[0];
            assert!(line.contains("survives"), "{line}");
            assert_eq!(field(line, "request_id"), ["req-1"]);
            assert!(field(line, "bad").is_empty(), "{line}");
            assert!(line.len() < 400, "{line}");
        }
    }
}

#[test]
fn a_subset_of_variables_and_debug_values() {
    let captured = Buffer::default();
    let subscriber = text_subscriber(
        &captured,
        ContextFieldsConfig::new()
            .only([REQUEST_ID.key()])
            .debug_values(),
    );
    tracing::subscriber::with_default(subscriber, || {
        REQUEST_ID.scope("req-2".into(), || USER_ID.scope(9, || info!("subset")));
    });
    let line = &captured.lines()[0];
    assert_eq!(field(line, "request_id"), ["\"req-2\""]); // Debug, by request
    assert!(field(line, "user_id").is_empty(), "{line}");
}

#[test]
fn context_fields_are_not_added_to_span_fields() {
    let captured = Buffer::default();
    let subscriber = text_subscriber(&captured, ContextFieldsConfig::new());
    tracing::subscriber::with_default(subscriber, || {
        REQUEST_ID.scope("req-3".into(), || {
            let span = info_span!("handler", route = "/orders");
            span.in_scope(|| info!("inside span"));
        });
    });
    let line = &captured.lines()[0];
    assert_eq!(
        field(line, "request_id"),
        ["req-3"],
        "once, on the event: {line}"
    );
    assert!(line.contains("handler{route=\"/orders\"}"), "{line}");
}

#[test]
fn record_in_span_copies_context_fields_into_declared_span_fields() {
    let captured = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        REQUEST_ID.scope("req-4".into(), || {
            let span = info_span!("handler", request_id = tracing::field::Empty);
            contextvars::tracing::record_in_span(&span);
            span.in_scope(|| info!("plain subscriber"));
        });
    });
    let line = &captured.lines()[0];
    assert!(line.contains("handler{request_id=req-4}"), "{line}");
}

#[test]
fn fields_are_formatted_once_per_snapshot_unless_asked_otherwise() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: ContextVar<Arc<AtomicU64>> = ContextVar::new("counter");
    for each_event in [false, true] {
        let captured = Buffer::default();
        let config = match each_event {
            true => ContextFieldsConfig::new().format_each_event(),
            false => ContextFieldsConfig::new(),
        };
        let subscriber = text_subscriber(&captured, config);
        let counter = Arc::new(AtomicU64::new(1));
        tracing::subscriber::with_default(subscriber, || {
            COUNTER.scope(counter.clone(), || {
                info!("first");
                counter.store(2, Ordering::SeqCst);
                info!("second");
                COUNTER.set(Arc::new(AtomicU64::new(3))); // a new snapshot is formatted anew
                info!("third");
            });
        });
        let values: Vec<Vec<String>> = captured
            .lines()
            .iter()
            .map(|l| field(l, "counter").into_iter().map(String::from).collect())
            .collect();
        let second = if each_event { "2" } else { "1" };
        assert_eq!(values, [vec!["1"], vec![second], vec!["3"]]);
    }
}

#[test]
fn parallel_iterator_closures_log_with_the_context_and_the_span() {
    use contextvars::rayon::ThreadPoolExt;
    use contextvars::ContextExt;
    use rayon::prelude::*;
    let captured = global();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    let span = info_span!("par_request");
    span.in_scope(|| {
        REQUEST_ID.scope("req-par".into(), || {
            // A plain `install` would run this closure in the pool thread's empty context.
            pool.install_with_context(|| {
                (0..200)
                    .into_par_iter()
                    .with_current_context()
                    .for_each(|i| {
                        info!(i, "par item event");
                    });
            });
        });
    });
    let lines: Vec<String> = captured
        .lines()
        .into_iter()
        .filter(|l| l.contains("par item event"))
        .collect();
    assert_eq!(lines.len(), 200);
    for line in &lines {
        assert_eq!(field(line, "request_id"), ["req-par"], "{line}");
        assert!(line.contains("par_request:"), "{line}");
    }
}

/// Runs `f` with `dispatch` as the default subscriber.
fn with_dispatch(dispatch: impl Into<tracing::Dispatch>, f: impl FnOnce()) {
    tracing::dispatcher::with_default(&dispatch.into(), f);
}

#[test]
#[allow(deprecated)]
fn with_context_fields_works_anywhere_in_the_builder_chain() {
    use contextvars::tracing::FmtContextExt;
    let captured = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_context_fields()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_target(false)
        .with_level(false)
        .without_time()
        .compact();
    with_dispatch(subscriber, || {
        REQUEST_ID.scope("req-any".into(), || info!(n = 1, "anywhere"));
    });
    assert_eq!(captured.lines(), ["anywhere n=1 request_id=req-any"]);

    let captured = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_context_fields()
        .with_writer(captured.clone())
        .without_time()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false);
    with_dispatch(subscriber, || {
        REQUEST_ID.scope("req-json".into(), || {
            info_span!("ignored").in_scope(|| info!(n = 2, "json anywhere"));
        });
    });
    let lines = captured.lines();
    let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(line["n"], 2, "flattened: {line}");
    assert_eq!(line["message"], "json anywhere");
    assert_eq!(line["context"]["request_id"], "req-json");
    for absent in ["fields", "span", "spans", "timestamp"] {
        assert!(line.get(absent).is_none(), "{absent}: {line}");
    }
}

#[test]
#[allow(deprecated)]
fn with_context_fields_works_anywhere_on_a_layer_and_a_second_call_replaces_the_config() {
    use contextvars::tracing::FmtContextExt;
    use tracing_subscriber::layer::SubscriberExt;
    let captured = Buffer::default();
    let layer = tracing_subscriber::fmt::layer()
        .with_context_fields()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_target(false)
        .with_level(false)
        .without_time()
        .compact()
        .with_context_fields_config(ContextFieldsConfig::new().only([USER_ID.key()]));
    with_dispatch(tracing_subscriber::registry().with(layer), || {
        REQUEST_ID.scope("req-layer".into(), || USER_ID.scope(5, || info!("layer")));
    });
    assert_eq!(captured.lines(), ["layer user_id=5"]);
}

/// A text subscriber in the `Full` or the `Compact` format, writing into `captured`.
fn text_format(captured: &Buffer, compact: bool) -> tracing::Dispatch {
    let builder = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(captured.clone());
    match compact {
        false => builder
            .map_fmt_fields(ContextFields::new)
            .map_event_format(ContextFormat::new)
            .into(),
        true => builder
            .compact()
            .map_fmt_fields(ContextFields::new)
            .map_event_format(ContextFormat::new)
            .into(),
    }
}

/// Events whose fields share names with the context's variables, in a context holding
/// `request_id = "ctx-id"` and `user_id = 7`.
fn log_shared_names() {
    REQUEST_ID.scope("ctx-id".into(), || {
        USER_ID.scope(7, || {
            info!(request_id = "own-id", "shadowed");
            info!("not shadowed");
            info!(request_id = "own-id", user_id = 8, "both shadowed");
        });
    });
}

#[test]
fn an_events_own_field_wins_over_a_context_variable_of_the_same_name_in_text() {
    for compact in [false, true] {
        let captured = Buffer::default();
        with_dispatch(text_format(&captured, compact), log_shared_names);
        let lines = captured.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        fn fields(line: &str) -> (Vec<&str>, Vec<&str>) {
            (field(line, "request_id"), field(line, "user_id"))
        }
        assert_eq!(
            fields(&lines[0]),
            (vec!["\"own-id\""], vec!["7"]),
            "{}",
            lines[0]
        );
        assert_eq!(
            fields(&lines[1]),
            (vec!["ctx-id"], vec!["7"]),
            "{}",
            lines[1]
        );
        assert_eq!(
            fields(&lines[2]),
            (vec!["\"own-id\""], vec!["8"]),
            "{}",
            lines[2]
        );
    }
}

#[test]
fn an_events_own_field_wins_over_a_context_variable_of_the_same_name_in_json() {
    for flatten in [false, true] {
        let captured = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(flatten)
            .map_event_format(ContextFormat::new)
            .with_writer(captured.clone());
        with_dispatch(subscriber, log_shared_names);
        let lines: Vec<serde_json::Value> = captured
            .lines()
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let own = |line: &serde_json::Value, key: &str| match flatten {
            true => line[key].clone(),
            false => line["fields"][key].clone(),
        };
        assert_eq!(own(&lines[0], "request_id"), "own-id");
        assert!(
            lines[0]["context"].get("request_id").is_none(),
            "{}",
            lines[0]
        );
        assert_eq!(lines[0]["context"]["user_id"], 7);
        assert_eq!(lines[1]["context"]["request_id"], "ctx-id");
        assert_eq!(lines[1]["context"]["user_id"], 7);
        assert_eq!(own(&lines[2], "user_id"), 8);
        // Nothing left for the object: no object.
        assert!(lines[2].get("context").is_none(), "{}", lines[2]);
    }
}

#[test]
fn an_event_field_called_context_wins_over_the_context_object_only_where_they_meet() {
    for flatten in [false, true] {
        let captured = Buffer::default();
        // Over `ContextFields` too: it changes nothing in JSON.
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(flatten)
            .map_fmt_fields(ContextFields::new)
            .map_event_format(ContextFormat::new)
            .with_writer(captured.clone());
        with_dispatch(subscriber, || {
            REQUEST_ID.scope("ctx-id".into(), || info!(context = "mine", "own context"));
        });
        let raw = &captured.lines()[0];
        let line: serde_json::Value = serde_json::from_str(raw).unwrap();
        if flatten {
            // `serde_json` keeps the last of two equal keys: count them in the text.
            assert_eq!(raw.matches("\"context\":").count(), 1, "one key: {raw}");
            assert_eq!(line["context"], "mine", "{line}");
        } else {
            assert_eq!(line["fields"]["context"], "mine", "{line}");
            assert_eq!(line["context"]["request_id"], "ctx-id", "{line}");
        }
    }
}

#[test]
fn control_characters_in_a_value_are_escaped_in_text_lines() {
    let captured = Buffer::default();
    with_dispatch(text_format(&captured, false), || {
        REQUEST_ID.scope("a\nb\x1b[31mc".into(), || info!("controls"));
    });
    let lines = captured.lines();
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    assert!(
        lines[0].ends_with(r"request_id=a\nb\u{1b}[31mc"),
        "{}",
        lines[0]
    );
}

#[test]
fn every_example_with_a_fmt_subscriber_colors_a_terminal_only() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        if source.contains("tracing_subscriber::fmt") {
            for needed in [".with_ansi(color)", "is_terminal()", "\"NO_COLOR\""] {
                assert!(source.contains(needed), "{}: no {needed}", path.display());
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "the logging and axum_orders examples at least"
    );
}

/// Events in a span with a field, inside a context holding `request_id = "req-1"` and
/// `user_id = 7`.
fn log_in_a_span() {
    REQUEST_ID.scope("req-1".into(), || {
        USER_ID.scope(7, || {
            info_span!("handler", route = "/orders").in_scope(|| info!(n = 1, "handling"));
        });
    });
}

#[test]
fn full_text_lines_through_the_builders_own_options() {
    let captured = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .map_fmt_fields(ContextFields::new)
        .map_event_format(ContextFormat::new)
        .with_writer(captured.clone());
    with_dispatch(subscriber, log_in_a_span);
    assert_eq!(
        captured.lines(),
        [r#" INFO handler{route="/orders"}: handling n=1 request_id=req-1 user_id=7"#]
    );
}

#[test]
fn compact_text_lines_on_a_layer_put_the_context_after_the_events_own_fields() {
    use tracing_subscriber::layer::SubscriberExt;
    let captured = Buffer::default();
    let layer = tracing_subscriber::fmt::layer()
        .compact()
        .with_ansi(false)
        .without_time()
        .with_level(false)
        .map_fmt_fields(ContextFields::new)
        .map_event_format(|format| {
            ContextFormat::new(format).with_config(ContextFieldsConfig::new().only([USER_ID.key()]))
        })
        .with_writer(captured.clone());
    with_dispatch(tracing_subscriber::registry().with(layer), log_in_a_span);
    // The span's own field comes after the event's fields and the context's.
    assert_eq!(
        captured.lines(),
        [r#"handler: tracing: handling n=1 user_id=7 route="/orders""#]
    );
}

#[test]
fn colored_text_lines_keep_their_colors_and_style_the_context_fields_like_the_events() {
    let captured = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(true)
        .without_time()
        .with_target(false)
        .with_level(false)
        .map_fmt_fields(ContextFields::new)
        .map_event_format(ContextFormat::new)
        .with_writer(captured.clone());
    with_dispatch(subscriber, || {
        REQUEST_ID.scope("req-1".into(), || info!(n = 1, "colored"));
    });
    let italic = |name: &str| format!("\x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m");
    assert_eq!(
        captured.lines(),
        [format!(
            "colored {}1 {}req-1",
            italic("n"),
            italic("request_id")
        )]
    );
}

#[test]
fn json_lines_through_the_builders_own_options_need_only_the_event_format() {
    let captured = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .without_time()
        .with_target(false)
        .with_current_span(false)
        .with_span_list(false)
        .map_event_format(ContextFormat::new)
        .with_writer(captured.clone());
    with_dispatch(subscriber, log_in_a_span);
    assert_eq!(
        captured.lines(),
        [concat!(
            r#"{"level":"INFO","fields":{"message":"handling","n":1},"#,
            r#""context":{"request_id":"req-1","user_id":7}}"#
        )]
    );
}

#[test]
fn json_span_fields_recorded_later_stay_one_object_over_context_fields() {
    use tracing_subscriber::layer::SubscriberExt;
    let captured = Buffer::default();
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .without_time()
        .with_target(false)
        .with_span_list(false)
        .map_fmt_fields(ContextFields::new)
        .map_event_format(ContextFormat::new)
        .with_writer(captured.clone());
    with_dispatch(tracing_subscriber::registry().with(layer), || {
        REQUEST_ID.scope("req-5".into(), || {
            let span = info_span!(
                "handler",
                route = "/orders",
                request_id = tracing::field::Empty
            );
            contextvars::tracing::record_in_span(&span);
            span.in_scope(|| info!("recorded"));
        });
    });
    assert_eq!(
        captured.lines(),
        [concat!(
            r#"{"level":"INFO","fields":{"message":"recorded"},"#,
            r#""span":{"request_id":"req-5","route":"/orders","name":"handler"},"#,
            r#""context":{"request_id":"req-5"}}"#
        )]
    );
}

#[test]
fn the_deprecated_set_up_prints_what_the_new_types_print() {
    #![allow(deprecated)]
    use contextvars::tracing::FmtContextExt;
    let config = || ContextFieldsConfig::new().debug_values();
    let log = || {
        log_in_a_span();
        log_shared_names();
        info!("outside");
    };
    let run = |dispatch: tracing::Dispatch, captured: &Buffer| {
        with_dispatch(dispatch, log);
        captured.lines()
    };
    let (old, new) = (Buffer::default(), Buffer::default());
    let builder = |captured: &Buffer| {
        tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_writer(captured.clone())
    };
    let old_lines = run(
        builder(&old).with_context_fields_config(config()).into(),
        &old,
    );
    let new_lines = run(
        builder(&new)
            .map_fmt_fields(ContextFields::new)
            .map_event_format(|format| ContextFormat::new(format).with_config(config()))
            .into(),
        &new,
    );
    assert_eq!(old_lines.len(), 5);
    assert_eq!(old_lines, new_lines);

    let (old, new) = (Buffer::default(), Buffer::default());
    let old_lines = run(builder(&old).with_context_fields().compact().into(), &old);
    let new_lines = run(
        builder(&new)
            .compact()
            .map_fmt_fields(ContextFields::new)
            .map_event_format(ContextFormat::new)
            .into(),
        &new,
    );
    assert_eq!(old_lines.len(), 5);
    assert_eq!(old_lines, new_lines);

    let (old, new) = (Buffer::default(), Buffer::default());
    let old_lines = run(
        builder(&old)
            .with_context_fields()
            .json()
            .flatten_event(true)
            .into(),
        &old,
    );
    let new_lines = run(
        builder(&new)
            .json()
            .flatten_event(true)
            .map_event_format(ContextFormat::new)
            .into(),
        &new,
    );
    assert_eq!(old_lines.len(), 5);
    assert_eq!(old_lines, new_lines);
}

/// Two variables named `request_id`, ids taken in this order: `first` keeps the plain name.
fn two_request_ids() -> (ContextVar<String>, ContextVar<String>) {
    let first = ContextVar::new("request_id").with_display();
    let second = ContextVar::new("request_id").with_display();
    let _ = (first.key(), second.key());
    (first, second)
}

#[test]
fn two_variables_with_one_name_never_write_the_same_key_twice() {
    let (first, second) = two_request_ids();
    let context = Context::new()
        .with_value(&first, "mine".to_string())
        .with_value(&second, "layer's".to_string());
    let text = Buffer::default();
    let json = Buffer::default();
    with_dispatch(text_subscriber(&text, ContextFieldsConfig::new()), || {
        context.run(|| info!("text"));
    });
    with_dispatch(json_subscriber(&json), || context.run(|| info!("json")));

    let line = &text.lines()[0];
    assert_eq!(field(line, "request_id"), ["mine"], "{line}");
    assert_eq!(field(line, "request_id#2"), ["layer's"], "{line}");
    // JSON parsers keep one of two equal keys silently: the raw line must not have them.
    let line = &json.lines()[0];
    assert_eq!(line.matches("\"request_id\":").count(), 1, "{line}");
    let parsed: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(parsed["context"]["request_id"], "mine");
    assert_eq!(parsed["context"]["request_id#2"], "layer's");
}

#[test]
fn an_events_own_field_takes_the_plain_key_of_two_same_named_variables() {
    let (first, second) = two_request_ids();
    let captured = Buffer::default();
    with_dispatch(
        text_subscriber(&captured, ContextFieldsConfig::new()),
        || {
            first.scope("mine".into(), || {
                second.scope("layer's".into(), || info!(request_id = "own", "shadowed"));
            });
        },
    );
    let line = &captured.lines()[0];
    assert_eq!(field(line, "request_id"), ["\"own\""], "{line}");
    assert_eq!(field(line, "request_id#2"), ["layer's"], "{line}");
}

#[test]
fn a_request_id_of_your_own_beside_the_layers_prints_both_under_distinct_keys() {
    // The issue's set-up: the README's `static REQUEST_ID = ContextVar::new("request_id")` and
    // the layer's `propagation::REQUEST_ID`, both set in a request's context.
    let captured = Buffer::default();
    let subscriber = json_subscriber(&captured);
    with_dispatch(subscriber, || {
        contextvars::propagation::REQUEST_ID.scope("from-layer".into(), || {
            REQUEST_ID.scope("mine".into(), || info!("both"));
        });
    });
    let line = &captured.lines()[0];
    let object = &serde_json::from_str::<serde_json::Value>(line).unwrap()["context"];
    let mut keys: Vec<&String> = object.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["request_id", "request_id#2"], "{line}");
    let mut values = [&object["request_id"], &object["request_id#2"]];
    values.sort_by_key(|value| value.to_string());
    assert_eq!(values, ["from-layer", "mine"], "{line}");
    assert_eq!(line.matches("\"request_id\":").count(), 1, "{line}");
}
