//! Logging with the [`log`](https://docs.rs/log) facade: the context's fields on every record,
//! as key-values (feature `log`).
//!
//! [`ContextLogger`] wraps any [`log::Log`] (env_logger, log4rs, fern, a JSON logger, your own)
//! and adds the variables of the current [`Context`] to every record it forwards, as `log`
//! key-values after the record's own. Loggers that print key-values (env_logger with its `kv`
//! feature, structured JSON loggers) then show `request_id=...` on every line, with no
//! thread-local MDC to set or clear: the fields come from the context, which follows the work
//! across `.await`s and through the spawn helpers of this crate.
//!
//! The choices are those of the [tracing integration](crate#feature-flags): by default every
//! variable is added, with `Display` where the variable offers it
//! ([`ContextVar::with_display`](crate::ContextVar::with_display)) and `Debug` otherwise;
//! variables made with [`ContextVar::opaque`](crate::ContextVar::opaque) are never added. Choose
//! a subset with [`ContextLogger::only`], force `Debug` with [`ContextLogger::debug_values`], and
//! bound the length of a value with [`ContextLogger::max_value_len`] (4 KiB by default: longer
//! values are cut at a character boundary and end with `…`). A value whose formatting panics is
//! left out; the other fields and the record still go through. When a record has a key-value
//! with the name of a context variable, the record's own pair wins and the variable is left out
//! of that record. No key is added twice: of two variables with the same name (yours and
//! [`propagation::REQUEST_ID`](crate::propagation::REQUEST_ID), both `request_id`), the one first
//! used in the process is added under it and the other as `request_id#2` (then `#3`, ...).
//!
//! Values are handed to the inner logger as strings, unescaped: escaping is the inner logger's
//! part (JSON loggers escape; a plain text format prints a newline in a value as a newline).
//!
//! # What carries the fields, and what bypasses them
//!
//! The logger reads the context that is *current on the thread that logs*, at the moment it
//! logs. A record carries the request's fields when it is logged:
//!
//! - in code running inside the context (a [`ContextVar::scope`](crate::ContextVar::scope), a
//!   [`Context::run`], a future wrapped with
//!   [`with_current_context`](crate::ContextExt::with_current_context));
//! - inside a task, job or thread started through this crate's helpers (for example
//!   `contextvars::tokio::spawn_with_context`, `spawn_blocking_with_context`, the rayon and
//!   [`thread`](crate::thread) helpers), which run the child in a copy of the caller's context.
//!
//! A record logged in a plain `tokio::spawn`, `std::thread::spawn` or `rayon::spawn` carries no
//! fields: the child starts in an empty context. So does a record logged by a logger's own
//! background thread on someone else's behalf; the fields are attached when [`log`](Log::log) is
//! called, so an asynchronous inner logger that formats later still sees them.
//!
//! # Examples
//!
//! ```
//! use contextvars::log::ContextLogger;
//! use contextvars::ContextVar;
//!
//! static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id").with_display();
//!
//! # struct MyLogger;
//! # impl log::Log for MyLogger {
//! #     fn enabled(&self, _: &log::Metadata<'_>) -> bool { true }
//! #     fn log(&self, _: &log::Record<'_>) {}
//! #     fn flush(&self) {}
//! # }
//! # let inner = MyLogger;
//! // `inner`: any `log::Log`, e.g. `env_logger::Builder::from_default_env().build()`.
//! ContextLogger::new(inner).install().expect("no other logger installed");
//!
//! REQUEST_ID.scope("req-123".into(), || {
//!     log::info!("handling request"); // ... handling request request_id=req-123
//! });
//! ```

use std::borrow::Cow;
use std::cell::Cell;

use ::log::kv::{self, Key, Source, Value, VisitSource};
use ::log::{LevelFilter, Log, Metadata, Record, SetLoggerError};

use crate::fields::FieldSelection;
use crate::{Context, VarKey};

thread_local! {
    /// Set while this thread formats context values, so that a value whose formatting logs
    /// goes through without context fields instead of recursing.
    static FORMATTING: Cell<bool> = const { Cell::new(false) };
}

/// A [`log::Log`] that adds the current context's fields to every record as key-values, then
/// forwards the record to the logger it wraps.
///
/// See [the module](self) for what it adds and when.
///
/// # Examples
///
/// ```
/// use contextvars::log::ContextLogger;
/// use contextvars::ContextVar;
/// use log::LevelFilter;
///
/// static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
/// static USER_ID: ContextVar<u64> = ContextVar::new("user_id");
///
/// # struct MyLogger;
/// # impl log::Log for MyLogger {
/// #     fn enabled(&self, _: &log::Metadata<'_>) -> bool { true }
/// #     fn log(&self, _: &log::Record<'_>) {}
/// #     fn flush(&self) {}
/// # }
/// let _logger = ContextLogger::new(MyLogger)
///     .only([REQUEST_ID.key()]) // USER_ID is not added
///     .max_value_len(256)
///     .max_level(LevelFilter::Info);
/// # let _ = USER_ID.key();
/// ```
#[derive(Debug)]
pub struct ContextLogger<L> {
    inner: L,
    fields: FieldSelection,
    max_level: LevelFilter,
}

impl<L: Log> ContextLogger<L> {
    /// Wraps `inner`: every variable, `Display` where offered, values up to 4 KiB, and
    /// [`install`](ContextLogger::install) sets the maximum level to `Trace`.
    ///
    /// ```
    /// # struct MyLogger;
    /// # impl log::Log for MyLogger {
    /// #     fn enabled(&self, _: &log::Metadata<'_>) -> bool { true }
    /// #     fn log(&self, _: &log::Record<'_>) {}
    /// #     fn flush(&self) {}
    /// # }
    /// let _logger = contextvars::log::ContextLogger::new(MyLogger);
    /// ```
    pub fn new(inner: L) -> Self {
        ContextLogger {
            inner,
            fields: FieldSelection::default(),
            max_level: LevelFilter::Trace,
        }
    }

    /// Adds only these variables (in the context's order).
    ///
    /// ```
    /// # use contextvars::ContextVar;
    /// # struct MyLogger;
    /// # impl log::Log for MyLogger {
    /// #     fn enabled(&self, _: &log::Metadata<'_>) -> bool { true }
    /// #     fn log(&self, _: &log::Record<'_>) {}
    /// #     fn flush(&self) {}
    /// # }
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let _logger = contextvars::log::ContextLogger::new(MyLogger).only([A.key()]);
    /// ```
    pub fn only(mut self, vars: impl IntoIterator<Item = VarKey>) -> Self {
        self.fields.only = Some(vars.into_iter().collect());
        self
    }

    /// Formats every value with `Debug`, even where the variable offers `Display`.
    ///
    /// ```
    /// # struct MyLogger;
    /// # impl log::Log for MyLogger {
    /// #     fn enabled(&self, _: &log::Metadata<'_>) -> bool { true }
    /// #     fn log(&self, _: &log::Record<'_>) {}
    /// #     fn flush(&self) {}
    /// # }
    /// let _logger = contextvars::log::ContextLogger::new(MyLogger).debug_values();
    /// ```
    pub fn debug_values(mut self) -> Self {
        self.fields.debug_values = true;
        self
    }

    /// Cuts values longer than `bytes` (at a character boundary, ending with `…`).
    ///
    /// ```
    /// # struct MyLogger;
    /// # impl log::Log for MyLogger {
    /// #     fn enabled(&self, _: &log::Metadata<'_>) -> bool { true }
    /// #     fn log(&self, _: &log::Record<'_>) {}
    /// #     fn flush(&self) {}
    /// # }
    /// let _logger = contextvars::log::ContextLogger::new(MyLogger).max_value_len(64);
    /// ```
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.fields.max_value_len = bytes;
        self
    }

    /// The level [`install`](ContextLogger::install) passes to [`log::set_max_level`]
    /// (`Trace` by default, leaving the filtering to the inner logger).
    ///
    /// ```
    /// # struct MyLogger;
    /// # impl log::Log for MyLogger {
    /// #     fn enabled(&self, _: &log::Metadata<'_>) -> bool { true }
    /// #     fn log(&self, _: &log::Record<'_>) {}
    /// #     fn flush(&self) {}
    /// # }
    /// let _logger = contextvars::log::ContextLogger::new(MyLogger)
    ///     .max_level(log::LevelFilter::Info);
    /// ```
    pub fn max_level(mut self, level: LevelFilter) -> Self {
        self.max_level = level;
        self
    }

    /// The wrapped logger.
    ///
    /// ```
    /// # struct MyLogger;
    /// # impl log::Log for MyLogger {
    /// #     fn enabled(&self, _: &log::Metadata<'_>) -> bool { true }
    /// #     fn log(&self, _: &log::Record<'_>) {}
    /// #     fn flush(&self) {}
    /// # }
    /// let logger = contextvars::log::ContextLogger::new(MyLogger);
    /// let _inner: &MyLogger = logger.inner();
    /// ```
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// Makes this the process's logger: [`log::set_boxed_logger`], then
    /// [`log::set_max_level`] with [`max_level`](ContextLogger::max_level).
    ///
    /// Fails, changing nothing, when a logger is already installed.
    ///
    /// ```
    /// # struct MyLogger;
    /// # impl log::Log for MyLogger {
    /// #     fn enabled(&self, _: &log::Metadata<'_>) -> bool { true }
    /// #     fn log(&self, _: &log::Record<'_>) {}
    /// #     fn flush(&self) {}
    /// # }
    /// use contextvars::log::ContextLogger;
    ///
    /// ContextLogger::new(MyLogger).install().unwrap();
    /// assert!(ContextLogger::new(MyLogger).install().is_err()); // only one per process
    /// ```
    pub fn install(self) -> Result<(), SetLoggerError>
    where
        L: Send + Sync + 'static,
    {
        let level = self.max_level;
        ::log::set_boxed_logger(Box::new(self))?;
        ::log::set_max_level(level);
        Ok(())
    }

    /// The context's fields for `record`: formatted, capped, without those the record has.
    fn fields(&self, context: &Context, record: &Record<'_>) -> Vec<(Cow<'static, str>, String)> {
        let own = record.key_values();
        let mut fields = Vec::new();
        for (key, entry) in self.fields.keyed(context) {
            let key = key.text();
            if own.get(Key::from_str(&key)).is_some() {
                continue;
            }
            let mut value = String::new();
            if self.fields.format_value(&entry, &mut value) {
                fields.push((key, value));
            }
        }
        fields
    }
}

impl<L: Log> Log for ContextLogger<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.inner.enabled(record.metadata()) {
            return;
        }
        let context = Context::current();
        if context.is_empty() || FORMATTING.with(Cell::get) {
            return self.inner.log(record);
        }
        let fields = {
            let _formatting = Formatting::enter();
            self.fields(&context, record)
        };
        if fields.is_empty() {
            return self.inner.log(record);
        }
        let source = WithFields {
            own: record.key_values(),
            fields: &fields,
        };
        let mut builder = Record::builder();
        builder
            .args(*record.args())
            .metadata(record.metadata().clone())
            .line(record.line())
            .key_values(&source);
        match record.module_path_static() {
            Some(path) => builder.module_path_static(Some(path)),
            None => builder.module_path(record.module_path()),
        };
        match record.file_static() {
            Some(file) => builder.file_static(Some(file)),
            None => builder.file(record.file()),
        };
        self.inner.log(&builder.build());
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// A record's own key-values, then the context's fields.
struct WithFields<'a> {
    own: &'a dyn Source,
    fields: &'a [(Cow<'static, str>, String)],
}

impl Source for WithFields<'_> {
    fn visit<'kvs>(&'kvs self, visitor: &mut dyn VisitSource<'kvs>) -> Result<(), kv::Error> {
        self.own.visit(visitor)?;
        for (name, value) in self.fields {
            visitor.visit_pair(Key::from_str(name), Value::from(value.as_str()))?;
        }
        Ok(())
    }
}

/// Marks this thread as formatting context values until dropped.
struct Formatting;

impl Formatting {
    fn enter() -> Self {
        FORMATTING.with(|f| f.set(true));
        Formatting
    }
}

impl Drop for Formatting {
    fn drop(&mut self) {
        FORMATTING.with(|f| f.set(false));
    }
}

/// The trust rules' diagnostics as `log` debug records of target `contextvars::trust` (see
/// `crate::diagnostics`).
pub(crate) struct TrustRecords;

impl crate::diagnostics::Sink for TrustRecords {
    fn enabled() -> bool {
        ::log::log_enabled!(target: crate::diagnostics::TARGET, ::log::Level::Debug)
    }

    fn report(message: &str) {
        ::log::debug!(target: crate::diagnostics::TARGET, "{message}");
    }
}
