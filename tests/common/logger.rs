//! [`Capture`]: a `log::Log` that keeps the records it is given, for the tests of
//! `contextvars::log::ContextLogger` (as its inner logger) and of what integrations log.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use log::kv::{self, Key, Value, VisitSource};
use log::{Level, Log, Metadata, Record};

/// One record as the logger saw it.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) level: Level,
    pub(crate) target: String,
    pub(crate) message: String,
    pub(crate) line: Option<u32>,
    pub(crate) module_path: Option<String>,
    /// The key-values, in the order the record gives them, as `(key, value.to_string())`.
    pub(crate) kvs: Vec<(String, String)>,
}

impl Seen {
    /// The value of `key`, asserting the record has it at most once.
    pub(crate) fn value_of(&self, key: &str) -> Option<String> {
        let values: Vec<_> = self.kvs.iter().filter(|(k, _)| k == key).collect();
        assert!(values.len() <= 1, "{key} at most once: {self:?}");
        values.first().map(|(_, v)| v.clone())
    }
}

/// Which records a [`Capture`] takes.
#[derive(Clone, Copy, Debug)]
enum Filter {
    /// Enabled for every record; keeps every record.
    All,
    /// Enabled for this target only; keeps the records of this target only.
    Target(&'static str),
    /// Enabled for no record, yet keeps every record it is given: shows whether a wrapper
    /// forwarded a record its inner logger filters out.
    Off,
}

/// A logger that keeps every record it takes (see [`Filter`]); clones share the records.
#[derive(Clone)]
pub(crate) struct Capture(Arc<Shared>);

struct Shared {
    filter: Filter,
    records: Mutex<Vec<Seen>>,
    arrived: Condvar,
}

impl Default for Capture {
    fn default() -> Self {
        Capture::with(Filter::All)
    }
}

impl Capture {
    fn with(filter: Filter) -> Self {
        Capture(Arc::new(Shared {
            filter,
            records: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
        }))
    }

    /// Enabled for (and keeping) the records of `target` only.
    pub(crate) fn only_target(target: &'static str) -> Self {
        Capture::with(Filter::Target(target))
    }

    /// Enabled for no record (a filter that is off), yet keeping what it is given.
    pub(crate) fn off() -> Self {
        Capture::with(Filter::Off)
    }

    /// Every record kept so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.0.records.lock().unwrap().clone()
    }

    /// The only record whose message is `message`.
    pub(crate) fn only(&self, message: &str) -> Seen {
        let mut seen: Vec<Seen> = self
            .seen()
            .into_iter()
            .filter(|s| s.message == message)
            .collect();
        assert_eq!(seen.len(), 1, "one record {message:?}, saw {seen:?}");
        seen.remove(0)
    }

    /// The key-values of the only record whose message is `message`.
    pub(crate) fn kvs_of(&self, message: &str) -> Vec<(String, String)> {
        self.only(message).kvs
    }

    /// Waits until at least `count` records are kept, at most `timeout`, and returns them all.
    pub(crate) fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Seen> {
        let deadline = Instant::now() + timeout;
        let mut records = self.0.records.lock().unwrap();
        while records.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{count} records within {timeout:?}, got {}",
                records.len()
            );
            records = self.0.arrived.wait_timeout(records, left).unwrap().0;
        }
        records.clone()
    }
}

struct Collect(Vec<(String, String)>);

impl<'kvs> VisitSource<'kvs> for Collect {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        self.0.push((key.to_string(), value.to_string()));
        Ok(())
    }
}

impl Log for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        match self.0.filter {
            Filter::All => true,
            Filter::Target(target) => metadata.target() == target,
            Filter::Off => false,
        }
    }

    fn log(&self, record: &Record<'_>) {
        if let Filter::Target(target) = self.0.filter {
            if record.target() != target {
                return;
            }
        }
        let mut kvs = Collect(Vec::new());
        record.key_values().visit(&mut kvs).unwrap();
        self.0.records.lock().unwrap().push(Seen {
            level: record.level(),
            target: record.target().to_string(),
            message: record.args().to_string(),
            line: record.line(),
            module_path: record.module_path().map(str::to_string),
            kvs: kvs.0,
        });
        self.0.arrived.notify_all();
    }

    fn flush(&self) {}
}

/// `(key, value)` pairs as owned strings, to compare with [`Seen::kvs`].
pub(crate) fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
