//! The `log` integration: the context's fields on every record as key-values.
//!
//! `log` has one logger per process. Most tests call `ContextLogger::log` on an instance of
//! their own; the tests that need `log::info!` from other tasks and threads share one global
//! logger, installed once, and find their records by a marker in the message.
#![cfg(feature = "log")]

mod common;

use std::fmt;
use std::sync::OnceLock;

use common::buffer::Buffer;
use common::logger::{pairs, Capture, Seen};
use contextvars::log::ContextLogger;
use contextvars::ContextVar;
use log::{Level, Log, Metadata, Record};

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id").with_display();
static USER_ID: ContextVar<u64> = ContextVar::new("user_id");
static NAME: ContextVar<String> = ContextVar::new("name");

struct Secret;
static SECRET: ContextVar<Secret> = ContextVar::opaque("secret");

/// Logs `message` through `logger` with no key-values of its own.
fn log_to(logger: &impl Log, message: &str) {
    logger.log(
        &Record::builder()
            .level(Level::Info)
            .target("test")
            .args(format_args!("{message}"))
            .build(),
    );
}

fn new_logger() -> (Capture, ContextLogger<Capture>) {
    let capture = Capture::default();
    (capture.clone(), ContextLogger::new(capture))
}

#[test]
fn adds_the_context_fields() {
    let (capture, logger) = new_logger();
    REQUEST_ID.scope("req-1".into(), || {
        USER_ID.scope(7, || log_to(&logger, "in"));
    });
    log_to(&logger, "out");
    assert_eq!(
        capture.kvs_of("in"),
        pairs(&[("request_id", "req-1"), ("user_id", "7")])
    );
    assert_eq!(capture.kvs_of("out"), pairs(&[]));
}

#[test]
fn keeps_the_record_as_it_was() {
    let (capture, logger) = new_logger();
    REQUEST_ID.scope("req-1".into(), || {
        logger.log(
            &Record::builder()
                .level(Level::Warn)
                .target("my_target")
                .args(format_args!("kept {}", 1))
                .module_path_static(Some("my::module"))
                .line(Some(42))
                .build(),
        );
    });
    let seen = capture.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].level, Level::Warn);
    assert_eq!(seen[0].target, "my_target");
    assert_eq!(seen[0].message, "kept 1");
    assert_eq!(seen[0].module_path.as_deref(), Some("my::module"));
    assert_eq!(seen[0].line, Some(42));
    assert_eq!(seen[0].kvs, pairs(&[("request_id", "req-1")]));
}

#[test]
fn opaque_variables_are_never_added() {
    let (capture, logger) = new_logger();
    SECRET.scope(Secret, || {
        REQUEST_ID.scope("req-2".into(), || log_to(&logger, "opaque"));
    });
    assert_eq!(capture.kvs_of("opaque"), pairs(&[("request_id", "req-2")]));
}

#[test]
fn display_where_offered_else_debug_or_debug_everywhere() {
    let (capture, logger) = new_logger();
    let debug_capture = Capture::default();
    let debug_logger = ContextLogger::new(debug_capture.clone()).debug_values();
    REQUEST_ID.scope("req-3".into(), || {
        NAME.scope("ann".into(), || {
            log_to(&logger, "default");
            log_to(&debug_logger, "debug");
        });
    });
    assert_eq!(
        capture.kvs_of("default"),
        pairs(&[("request_id", "req-3"), ("name", "\"ann\"")])
    );
    assert_eq!(
        debug_capture.kvs_of("debug"),
        pairs(&[("request_id", "\"req-3\""), ("name", "\"ann\"")])
    );
}

#[test]
fn only_the_chosen_variables() {
    let capture = Capture::default();
    let logger = ContextLogger::new(capture.clone()).only([USER_ID.key()]);
    REQUEST_ID.scope("req-4".into(), || {
        USER_ID.scope(9, || log_to(&logger, "only"));
    });
    assert_eq!(capture.kvs_of("only"), pairs(&[("user_id", "9")]));
}

#[test]
fn long_values_are_cut_at_a_char_boundary() {
    let capture = Capture::default();
    let logger = ContextLogger::new(capture.clone()).max_value_len(5);
    // Five two-byte characters: byte 5 falls inside the third one.
    REQUEST_ID.scope("ééééé".into(), || log_to(&logger, "cut"));
    REQUEST_ID.scope("abcde".into(), || log_to(&logger, "fits"));
    assert_eq!(capture.kvs_of("cut"), pairs(&[("request_id", "éé…")]));
    assert_eq!(capture.kvs_of("fits"), pairs(&[("request_id", "abcde")]));

    let (capture, logger) = new_logger();
    REQUEST_ID.scope("x".repeat(5000), || log_to(&logger, "default cap"));
    let kvs = capture.kvs_of("default cap");
    assert_eq!(kvs[0].1, format!("{}…", "x".repeat(4096)));
}

struct Panics;

impl fmt::Debug for Panics {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("Debug panicked")
    }
}

static PANICS: ContextVar<Panics> = ContextVar::new("panics");

#[test]
fn a_value_whose_debug_panics_is_skipped() {
    let (capture, logger) = new_logger();
    REQUEST_ID.scope("req-5".into(), || {
        PANICS.scope(Panics, || {
            USER_ID.scope(3, || log_to(&logger, "panics"));
        });
    });
    assert_eq!(
        capture.kvs_of("panics"),
        pairs(&[("request_id", "req-5"), ("user_id", "3")])
    );
}

#[test]
fn the_records_own_key_wins() {
    let (capture, logger) = new_logger();
    let own = [("request_id", "own")];
    REQUEST_ID.scope("from-context".into(), || {
        USER_ID.scope(4, || {
            logger.log(
                &Record::builder()
                    .args(format_args!("own key"))
                    .key_values(&own)
                    .build(),
            );
        });
    });
    assert_eq!(
        capture.kvs_of("own key"),
        pairs(&[("request_id", "own"), ("user_id", "4")])
    );
}

#[test]
fn the_inner_loggers_filter_is_kept() {
    // Filters everything out, yet keeps what it is given: shows a forwarded record.
    let capture = Capture::off();
    let logger = ContextLogger::new(capture.clone());
    assert!(!logger.enabled(&Metadata::builder().level(Level::Error).build()));
    REQUEST_ID.scope("req-6".into(), || log_to(&logger, "filtered"));
    assert!(capture.seen().is_empty());
}

#[test]
fn env_logger_prints_the_fields() {
    let buffer = Buffer::default();
    let inner = env_logger::Builder::new()
        .filter_level(log::LevelFilter::Info)
        .format_timestamp(None)
        .target(env_logger::Target::Pipe(Box::new(buffer.clone())))
        .build();
    let logger = ContextLogger::new(inner);
    REQUEST_ID.scope("req-env".into(), || {
        USER_ID.scope(12, || log_to(&logger, "handling request"));
    });
    log_to(&logger, "outside");
    logger.flush();
    let text = buffer.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].ends_with("handling request request_id=req-env user_id=12"),
        "{text}"
    );
    assert!(lines[1].ends_with("outside"), "{text}");
}

/// What a structured logger writes of a record: one JSON object, key-values as its keys, through
/// text and back, as a JSON log line is written and read.
fn json_line(seen: &Seen) -> serde_json::Value {
    let fields: serde_json::Map<String, serde_json::Value> = seen
        .kvs
        .iter()
        .map(|(key, value)| (key.clone(), value.clone().into()))
        .collect();
    let line = serde_json::json!({ "message": seen.message, "fields": fields });
    let text = serde_json::to_string(&line).unwrap();
    assert!(!text.contains('\n'), "one line: {text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_json_logger_gets_the_fields_as_keys() {
    let (capture, logger) = new_logger();
    // A value with a quote and a newline: the JSON logger escapes it, the line stays one line.
    REQUEST_ID.scope("req-\"7\"\nnext".into(), || {
        USER_ID.scope(5, || log_to(&logger, "json"));
    });
    let lines: Vec<_> = capture.seen().iter().map(json_line).collect();
    assert_eq!(
        lines,
        vec![serde_json::json!({
            "message": "json",
            "fields": { "request_id": "req-\"7\"\nnext", "user_id": "5" },
        })]
    );
}

/// The process's logger: a `ContextLogger` around a capture, installed on first use.
fn global() -> &'static Capture {
    static GLOBAL: OnceLock<Capture> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let capture = Capture::default();
        ContextLogger::new(capture.clone()).install().unwrap();
        capture
    })
}

#[test]
fn install_makes_it_the_process_logger_once() {
    let capture = global();
    assert_eq!(log::max_level(), log::LevelFilter::Trace);
    REQUEST_ID.scope("req-global".into(), || {
        log::info!(user = 1; "install: macro");
    });
    assert_eq!(
        capture.kvs_of("install: macro"),
        pairs(&[("user", "1"), ("request_id", "req-global")])
    );
    assert!(ContextLogger::new(Capture::default()).install().is_err());
}

/// Logs through the global logger while formatting: that record gets no fields, no recursion.
struct LogsWhenFormatted;

impl fmt::Debug for LogsWhenFormatted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        log::info!("reentrant: from Debug");
        f.write_str("formatted")
    }
}

static LOGS: ContextVar<LogsWhenFormatted> = ContextVar::new("logs");

#[test]
fn a_value_that_logs_while_formatted_does_not_recurse() {
    let capture = global();
    LOGS.scope(LogsWhenFormatted, || log::info!("reentrant: outer"));
    assert_eq!(capture.kvs_of("reentrant: from Debug"), pairs(&[]));
    assert_eq!(
        capture.kvs_of("reentrant: outer"),
        pairs(&[("logs", "formatted")])
    );
}

#[cfg(all(feature = "tokio", feature = "rayon"))]
mod spawned {
    use super::*;

    const REQUESTS: usize = 16;

    fn request_id_of(capture: &Capture, message: &str) -> Option<String> {
        capture.only(message).value_of("request_id")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_spawn_path_carries_its_own_request_id() {
        let capture = global();
        let mut tasks = Vec::new();
        let mut blocking = Vec::new();
        let mut jobs = Vec::new();
        let mut threads = Vec::new();
        for i in 0..REQUESTS {
            REQUEST_ID.scope(format!("req-{i}"), || {
                tasks.push(contextvars::tokio::spawn_with_context(async move {
                    tokio::task::yield_now().await;
                    log::info!("spawned: task {i}");
                }));
                blocking.push(contextvars::tokio::spawn_blocking_with_context(move || {
                    log::info!("spawned: blocking {i}");
                }));
                jobs.push(contextvars::rayon::run_in_global_pool_with_context(
                    move || log::info!("spawned: rayon {i}"),
                ));
                threads.push(contextvars::thread::spawn_with_context(move || {
                    log::info!("spawned: thread {i}");
                }));
            });
        }
        for task in tasks {
            task.await.unwrap();
        }
        for job in blocking {
            job.await.unwrap();
        }
        for job in jobs {
            job.await.unwrap();
        }
        for thread in threads {
            thread.join().unwrap();
        }
        for i in 0..REQUESTS {
            let id = Some(format!("req-{i}"));
            for path in ["task", "blocking", "rayon", "thread"] {
                assert_eq!(
                    request_id_of(capture, &format!("spawned: {path} {i}")),
                    id,
                    "{path} {i}"
                );
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_plain_spawn_carries_nothing() {
        let capture = global();
        let (task, thread) = REQUEST_ID.scope("req-plain".into(), || {
            log::info!("plain: caller");
            (
                tokio::spawn(async { log::info!("plain: tokio") }),
                std::thread::spawn(|| log::info!("plain: thread")),
            )
        });
        task.await.unwrap();
        thread.join().unwrap();
        assert_eq!(
            request_id_of(capture, "plain: caller").as_deref(),
            Some("req-plain")
        );
        assert_eq!(capture.kvs_of("plain: tokio"), pairs(&[]));
        assert_eq!(capture.kvs_of("plain: thread"), pairs(&[]));
    }
}

#[test]
fn two_variables_with_one_name_are_added_under_distinct_keys() {
    // A `request_id` of the user's beside the layer's: ids taken in this order, `first` keeps
    // the plain name and `second` is `request_id#2`.
    let first: ContextVar<String> = ContextVar::new("request_id").with_display();
    let second = &contextvars::propagation::REQUEST_ID;
    let (capture, logger) = new_logger();
    let own = [("request_id", "own")];
    let context = contextvars::Context::new()
        .with_value(&first, "mine".to_string())
        .with_value(second, "layer's".to_string());
    let first_used_first = first.key() < second.key();
    context.run(|| {
        log_to(&logger, "both");
        logger.log(
            &Record::builder()
                .args(format_args!("own key"))
                .key_values(&own)
                .build(),
        );
    });
    let (plain, numbered) = match first_used_first {
        true => ("mine", "layer's"),
        false => ("layer's", "mine"),
    };
    let mut kvs = capture.kvs_of("both");
    kvs.sort();
    assert_eq!(
        kvs,
        pairs(&[("request_id", plain), ("request_id#2", numbered)])
    );
    let json = json_line(&capture.only("both"));
    assert_eq!(json["fields"]["request_id"], plain);
    assert_eq!(json["fields"]["request_id#2"], numbered);
    // The record's own key takes the plain name; the other variable keeps its own key.
    let mut kvs = capture.kvs_of("own key");
    kvs.sort();
    assert_eq!(
        kvs,
        pairs(&[("request_id", "own"), ("request_id#2", numbered)])
    );
}
