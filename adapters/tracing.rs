//! Logging with [tracing](https://docs.rs/tracing): context fields on every event, and spans
//! that travel with the context (feature `tracing`).
//!
//! # Context fields on every event
//!
//! One call on a `tracing_subscriber` fmt builder or layer, [`with_context_fields`], makes every
//! event emitted inside a context print the context's variables:
//!
//! - in the text formats ([`Full`], the default, and
//!   [`Compact`]) as `name=value` after the event's own
//!   fields, colors kept;
//! - in the [`Json`] format as the keys of a `"context"`
//!   object on the event's line.
//!
//! Events outside any context (the context is empty) print no context fields. It works for
//! events from any task, blocking job, pool job or thread that runs in a context through this
//! crate, because formatting happens on the thread that emits the event, inside its context.
//!
//! By default every variable is printed, with `Display` where the variable offers it
//! ([`ContextVar::with_display`](crate::ContextVar::with_display)) and `Debug` otherwise;
//! variables made with [`ContextVar::opaque`](crate::ContextVar::opaque) are skipped. Choose a
//! subset with [`ContextFieldsConfig::only`], force `Debug` with
//! [`ContextFieldsConfig::debug_values`], and bound the length of a value with
//! [`ContextFieldsConfig::max_value_len`] (4 KiB by default: longer values are cut at a character
//! boundary and end with `…`). A value whose formatting panics is skipped; the other fields and
//! the event still print.
//!
//! [`with_context_fields`]: FmtContextExt::with_context_fields
//!
//! # Spans travel with the context
//!
//! With this feature on, every spawn path of every adapter (`spawn_with_context` and its
//! relatives on tokio, async-std, smol, `futures` and async-task, the blocking pools,
//! [`thread`](crate::thread) and rayon) also runs the child inside the
//! [`Span`](::tracing::Span) that was current at the call, as if `.in_current_span()` had been
//! written by hand on every spawn. The span is captured beside the context, never inside it:
//! [`Context`] has no tracing field, and with the feature off nothing costs more.
//!
//! [`WithContext`](crate::WithContext) and [`Context::wrap`] stay span-free; the same behaviour is
//! an opt-in there: [`SpanContextExt::with_current_context_and_span`] for futures,
//! [`wrap_with_current_span`] for closures.
//!
//! To opt out for one spawn, spawn through the runtime itself with the context alone:
//! `tokio::spawn(fut.with_current_context())` carries the context and no span.
//!
//! # Context fields in spans
//!
//! For sinks that only see spans, [`record_in_span`] copies the context's variables into the
//! fields a span declared (with `tracing::field::Empty`).
//!
//! # Examples
//!
//! ```
//! use contextvars::tracing::FmtContextExt;
//! use contextvars::ContextVar;
//!
//! static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id").with_display();
//!
//! let subscriber = tracing_subscriber::fmt()
//!     .with_context_fields() // the one line
//!     .with_writer(std::io::sink)
//!     .finish();
//! tracing::subscriber::with_default(subscriber, || {
//!     REQUEST_ID.scope("req-123".into(), || {
//!         tracing::info!("handling request"); // ... handling request request_id=req-123
//!     });
//! });
//! ```

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use ::tracing::{Event, Subscriber};
use ::tracing_subscriber::field::RecordFields;
use ::tracing_subscriber::fmt::format::{Compact, Format, Full, Json, Writer};
use ::tracing_subscriber::fmt::{
    FmtContext, FormatEvent, FormatFields, Layer as FmtLayer, MakeWriter, SubscriberBuilder,
};
use ::tracing_subscriber::registry::LookupSpan;

use crate::{Context, Entry, VarKey};

/// Which context variables a logging integration prints, and how.
///
/// # Examples
///
/// ```
/// use contextvars::tracing::{ContextFieldsConfig, FmtContextExt};
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
/// static USER_ID: ContextVar<u64> = ContextVar::new("user_id");
///
/// let config = ContextFieldsConfig::new()
///     .only([REQUEST_ID.key()]) // USER_ID is not printed
///     .max_value_len(256);
/// let _subscriber = tracing_subscriber::fmt().with_context_fields_config(config).finish();
/// # let _ = USER_ID.key();
/// # let config = ContextFieldsConfig::new()
///     .max_value_len(256);
/// let _subscriber = tracing_subscriber::fmt().with_context_fields_config(config).finish();
/// ```
#[derive(Clone, Debug)]
pub struct ContextFieldsConfig {
    only: Option<Vec<VarKey>>,
    debug_values: bool,
    max_value_len: usize,
    format_each_event: bool,
}

impl Default for ContextFieldsConfig {
    fn default() -> Self {
        ContextFieldsConfig {
            only: None,
            debug_values: false,
            max_value_len: 4096,
            format_each_event: false,
        }
    }
}

impl ContextFieldsConfig {
    /// Every variable, `Display` where offered, values up to 4 KiB.
    ///
    /// ```
    /// let _config = contextvars::tracing::ContextFieldsConfig::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Prints only these variables (in the context's order).
    ///
    /// ```
    /// # use contextvars::ContextVar;
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let _config = contextvars::tracing::ContextFieldsConfig::new().only([A.key()]);
    /// ```
    pub fn only(mut self, vars: impl IntoIterator<Item = VarKey>) -> Self {
        self.only = Some(vars.into_iter().collect());
        self
    }

    /// Prints every value with `Debug`, even where the variable offers `Display`.
    ///
    /// ```
    /// let _config = contextvars::tracing::ContextFieldsConfig::new().debug_values();
    /// ```
    pub fn debug_values(mut self) -> Self {
        self.debug_values = true;
        self
    }

    /// Cuts printed values longer than `bytes` (at a character boundary, ending with `…`).
    ///
    /// ```
    /// let _config = contextvars::tracing::ContextFieldsConfig::new().max_value_len(64);
    /// ```
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = bytes;
        self
    }

    /// Formats the values again for every event instead of once per context snapshot and thread.
    ///
    /// A context never changes, so by default its fields are formatted once and reused by every
    /// event logged in it on a thread, the way span fields are. Only a value with interior
    /// mutability (a `Mutex`, an atomic) can print differently over time; ask for this then.
    ///
    /// ```
    /// let _config = contextvars::tracing::ContextFieldsConfig::new().format_each_event();
    /// ```
    pub fn format_each_event(mut self) -> Self {
        self.format_each_event = true;
        self
    }

    fn wants(&self, entry: &Entry<'_>) -> bool {
        entry.has_debug()
            && self
                .only
                .as_ref()
                .is_none_or(|keys| keys.contains(&entry.key()))
    }

    /// Formats one value into `out`; `false` (and `out` unchanged) when its formatting panicked.
    fn format_value(&self, entry: &Entry<'_>, out: &mut String) -> bool {
        let start = out.len();
        let formatted = catch_unwind(AssertUnwindSafe(|| {
            if self.debug_values {
                write!(out, "{}", entry.debug())
            } else {
                write!(out, "{}", entry.display())
            }
        }));
        match formatted {
            Ok(Ok(())) => {
                self.truncate(out, start);
                true
            }
            _ => {
                out.truncate(start);
                false
            }
        }
    }

    /// Cuts what was written to `out` after `start` to the configured length.
    fn truncate(&self, out: &mut String, start: usize) {
        if out.len() - start > self.max_value_len {
            let mut end = start + self.max_value_len;
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            out.truncate(end);
            out.push('…');
        }
    }
}

/// The last fields text formatted on this thread: a context never changes, so the same snapshot
/// printed with the same configuration and style gives the same text.
struct Cached {
    context: Context,
    // Held, not just pointed at, so that its address cannot be reused by another configuration.
    config: Arc<ContextFieldsConfig>,
    style: u8,
    text: String,
}

const STYLE_PLAIN: u8 = 0;
const STYLE_ANSI: u8 = 1;
const STYLE_JSON: u8 = 2;

/// Calls `use_text` with the fields text of `context`, built by `build` or reused from the cache.
fn with_fields_text<R>(
    context: &Context,
    config: &Arc<ContextFieldsConfig>,
    style: u8,
    build: impl FnOnce(&mut String),
    use_text: impl FnOnce(&str) -> R,
) -> R {
    let mut use_text = Some(use_text);
    if !config.format_each_event {
        // `use_text` only writes into the formatter's buffer: it cannot re-enter this cache.
        let hit = CACHE.try_with(|cache| {
            let cache = cache.try_borrow().ok()?;
            let cached = cache.as_ref()?;
            let fresh = cached.style == style
                && Arc::ptr_eq(&cached.config, config)
                && cached.context.ptr_eq(context);
            fresh.then(|| use_text.take().map(|use_text| use_text(&cached.text)))?
        });
        if let Ok(Some(result)) = hit {
            return result;
        }
    }
    let mut text = String::new();
    build(&mut text);
    let result = match use_text.take() {
        Some(use_text) => use_text(&text),
        None => unreachable!("used only on a cache hit, which returned"),
    };
    if !config.format_each_event {
        let replaced = CACHE.try_with(|cache| {
            cache.try_borrow_mut().ok().map(|mut cache| {
                cache.replace(Cached {
                    context: context.clone(),
                    config: config.clone(),
                    style,
                    text,
                })
            })
        });
        // The old snapshot (and perhaps its values) drops here, outside the borrow.
        drop(replaced);
    }
    result
}

thread_local! {
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
    /// Set by `ContextFormat` while the text formatter writes an event's fields, so that
    /// `ContextFields` adds context fields to events only, never to span fields.
    static FORMATTING_EVENT: Cell<bool> = const { Cell::new(false) };
    static BUFFER: RefCell<String> = const { RefCell::new(String::new()) };
}

/// How the wrapped format lays out an event. Implemented for the formats this module supports.
pub trait ContextStyle: sealed::Sealed {
    #[doc(hidden)]
    const JSON: bool;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Full {}
    impl Sealed for super::Compact {}
    impl Sealed for super::Json {}
}

impl ContextStyle for Full {
    const JSON: bool = false;
}

impl ContextStyle for Compact {
    const JSON: bool = false;
}

impl ContextStyle for Json {
    const JSON: bool = true;
}

/// A [`FormatEvent`] that adds the current context's fields to each event; made by
/// [`FmtContextExt::with_context_fields`].
#[derive(Debug)]
pub struct ContextFormat<E> {
    inner: E,
    json: bool,
    config: Arc<ContextFieldsConfig>,
}

/// A [`FormatFields`] that appends the current context's fields to an event's own fields (in
/// the text formats); made by [`FmtContextExt::with_context_fields`].
#[derive(Debug)]
pub struct ContextFields<N> {
    inner: N,
    config: Arc<ContextFieldsConfig>,
}

impl<E> ContextFormat<E> {
    fn wrapping(config: Arc<ContextFieldsConfig>, json: bool) -> impl FnOnce(E) -> Self {
        move |inner| ContextFormat {
            inner,
            json,
            config,
        }
    }
}

impl<N> ContextFields<N> {
    fn wrapping(config: Arc<ContextFieldsConfig>) -> impl FnOnce(N) -> Self {
        move |inner| ContextFields { inner, config }
    }
}

impl<S, N, E> FormatEvent<S, N> for ContextFormat<E>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    E: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if !self.json {
            FORMATTING_EVENT.set(true);
            let result = self.inner.format_event(ctx, writer.by_ref(), event);
            FORMATTING_EVENT.set(false);
            return result;
        }
        let context = Context::current();
        if context.iter().all(|entry| !self.config.wants(&entry)) {
            return self.inner.format_event(ctx, writer, event);
        }
        // JSON carries no colors: format into a buffer and splice the context object in.
        let mut spare = String::new();
        let mut reused =
            BUFFER.try_with(|b| b.try_borrow_mut().ok().map(|mut b| std::mem::take(&mut *b)));
        let buffer = match &mut reused {
            Ok(Some(buffer)) => buffer,
            _ => &mut spare,
        };
        buffer.clear();
        let result = self
            .inner
            .format_event(ctx, Writer::new(buffer), event)
            .and_then(|()| {
                with_fields_text(
                    &context,
                    &self.config,
                    STYLE_JSON,
                    |object| json_context_object(object, &context, &self.config),
                    |object| splice_json_object(buffer, object),
                );
                writer.write_str(buffer)
            });
        if let Ok(Some(buffer)) = reused {
            let _ = BUFFER.try_with(|b| {
                if let Ok(mut slot) = b.try_borrow_mut() {
                    *slot = buffer;
                }
            });
        }
        result
    }
}

impl<'writer, N> FormatFields<'writer> for ContextFields<N>
where
    N: for<'w> FormatFields<'w>,
{
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        self.inner.format_fields(writer.by_ref(), fields)?;
        if !FORMATTING_EVENT.replace(false) {
            return Ok(());
        }
        let context = Context::current();
        if context.is_empty() {
            return Ok(());
        }
        let ansi = writer.has_ansi_escapes();
        let style = if ansi { STYLE_ANSI } else { STYLE_PLAIN };
        with_fields_text(
            &context,
            &self.config,
            style,
            |text| {
                let mut value = String::new();
                for entry in &context {
                    if !self.config.wants(&entry) {
                        continue;
                    }
                    value.clear();
                    if self.config.format_value(&entry, &mut value) {
                        let name = entry.name();
                        let _ = if ansi {
                            write!(text, " \x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m{value}")
                        } else {
                            write!(text, " {name}={value}")
                        };
                    }
                }
            },
            |text| writer.write_str(text),
        )
    }
}

/// Inserts `object` before the closing brace of a one-line JSON object.
fn splice_json_object(line: &mut String, object: &str) {
    let body_end = line.trim_end().len();
    if line[..body_end].ends_with('}') {
        line.insert_str(body_end - 1, object);
    } // else not a JSON object: leave the line as the formatter wrote it
}

/// Writes `,"context":{...}` for the wanted variables of `context`.
fn json_context_object(object: &mut String, context: &Context, config: &ContextFieldsConfig) {
    object.push_str(",\"context\":{");
    let mut value = String::new();
    let mut first = true;
    for entry in context {
        if !config.wants(&entry) {
            continue;
        }
        value.clear();
        let raw = json_scalar(entry.value());
        let text = entry
            .value()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| entry.value().downcast_ref::<&'static str>().copied());
        match (&raw, text) {
            (Some(_), _) => {}
            // Strings print raw (a JSON string), within the length limit.
            (None, Some(text)) => {
                value.push_str(text);
                config.truncate(&mut value, 0);
            }
            (None, None) => {
                if !config.format_value(&entry, &mut value) {
                    continue;
                }
            }
        }
        if !first {
            object.push(',');
        }
        first = false;
        push_json_string(object, entry.name());
        object.push(':');
        match raw {
            Some(raw) => object.push_str(&raw),
            None => push_json_string(object, &value),
        }
    }
    object.push('}');
}

/// Booleans and numbers keep their JSON type.
fn json_scalar(value: &(dyn Any + Send + Sync)) -> Option<String> {
    if let Some(b) = value.downcast_ref::<bool>() {
        Some(b.to_string())
    } else if let Some(n) = value.downcast_ref::<u64>() {
        Some(n.to_string())
    } else if let Some(n) = value.downcast_ref::<u32>() {
        Some(n.to_string())
    } else if let Some(n) = value.downcast_ref::<i64>() {
        Some(n.to_string())
    } else if let Some(n) = value.downcast_ref::<i32>() {
        Some(n.to_string())
    } else if let Some(n) = value.downcast_ref::<usize>() {
        Some(n.to_string())
    } else {
        value
            .downcast_ref::<f64>()
            .filter(|n| n.is_finite())
            .map(f64::to_string)
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One-line set-up of context fields on `tracing_subscriber`'s fmt [`SubscriberBuilder`] and
/// fmt [`Layer`](FmtLayer), in the `Full` (default), `Compact` and `Json` formats.
///
/// # Examples
///
/// With a registry and layers, in JSON:
///
/// ```
/// use contextvars::tracing::FmtContextExt;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let subscriber = tracing_subscriber::registry()
///     .with(tracing_subscriber::fmt::layer().json().with_context_fields());
/// # drop(subscriber);
/// ```
pub trait FmtContextExt: Sized {
    /// The builder or layer, with context fields.
    type Output;

    /// Adds the current context's fields to every event, with the default
    /// [`ContextFieldsConfig`].
    ///
    /// ```
    /// use contextvars::tracing::FmtContextExt;
    /// let _subscriber = tracing_subscriber::fmt().compact().with_context_fields().finish();
    /// ```
    fn with_context_fields(self) -> Self::Output {
        self.with_context_fields_config(ContextFieldsConfig::default())
    }

    /// Adds the current context's fields to every event, as `config` says.
    ///
    /// ```
    /// use contextvars::tracing::{ContextFieldsConfig, FmtContextExt};
    /// let config = ContextFieldsConfig::new().debug_values();
    /// let _subscriber = tracing_subscriber::fmt().with_context_fields_config(config).finish();
    /// ```
    fn with_context_fields_config(self, config: ContextFieldsConfig) -> Self::Output;
}

impl<N, L, T, F, W> FmtContextExt for SubscriberBuilder<N, Format<L, T>, F, W>
where
    N: for<'writer> FormatFields<'writer> + 'static,
    L: ContextStyle,
    Format<L, T>: FormatEvent<::tracing_subscriber::Registry, N> + 'static,
    ContextFormat<Format<L, T>>:
        FormatEvent<::tracing_subscriber::Registry, ContextFields<N>> + 'static,
    W: for<'writer> MakeWriter<'writer> + 'static,
{
    type Output = SubscriberBuilder<ContextFields<N>, ContextFormat<Format<L, T>>, F, W>;

    fn with_context_fields_config(self, config: ContextFieldsConfig) -> Self::Output {
        let config = Arc::new(config);
        self.map_fmt_fields(ContextFields::wrapping(config.clone()))
            .map_event_format(ContextFormat::wrapping(config, L::JSON))
    }
}

impl<S, N, L, T, W> FmtContextExt for FmtLayer<S, N, Format<L, T>, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'writer> FormatFields<'writer> + 'static,
    L: ContextStyle,
    Format<L, T>: FormatEvent<S, ContextFields<N>> + 'static,
    W: for<'writer> MakeWriter<'writer> + 'static,
{
    type Output = FmtLayer<S, ContextFields<N>, ContextFormat<Format<L, T>>, W>;

    fn with_context_fields_config(self, config: ContextFieldsConfig) -> Self::Output {
        let config = Arc::new(config);
        self.map_fmt_fields(ContextFields::wrapping(config.clone()))
            .map_event_format(ContextFormat::wrapping(config, L::JSON))
    }
}

/// Spans as an opt-in on any future: the context *and* the current span travel with it.
///
/// ```
/// use contextvars::tracing::SpanContextExt;
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<u32> = ContextVar::new("request_id");
///
/// let span = tracing::info_span!("request");
/// let fut = span.in_scope(|| {
///     REQUEST_ID.scope(1, || async { REQUEST_ID.get() }.with_current_context_and_span())
/// });
/// assert_eq!(futures::executor::block_on(fut), Some(1));
/// ```
pub trait SpanContextExt: Sized {
    /// Runs `self` inside the current context and the current span.
    ///
    /// ```
    /// use contextvars::tracing::SpanContextExt;
    /// let _fut = async {}.with_current_context_and_span();
    /// ```
    fn with_current_context_and_span(
        self,
    ) -> crate::WithContext<::tracing::instrument::Instrumented<Self>>
    where
        Self: std::future::Future,
    {
        crate::propagate::task_with_span(self)
    }
}

impl<T> SpanContextExt for T {}

/// [`Context::wrap`] with the current span too: the closure runs in the captured context and
/// inside the span that was current here.
///
/// ```
/// use contextvars::tracing::wrap_with_current_span;
/// use contextvars::ContextVar;
///
/// static JOB: ContextVar<u32> = ContextVar::new("job");
///
/// let job = JOB.scope(3, || wrap_with_current_span(|| JOB.get()));
/// assert_eq!(std::thread::spawn(job).join().unwrap(), Some(3));
/// ```
pub fn wrap_with_current_span<F, R>(f: F) -> impl FnOnce() -> R
where
    F: FnOnce() -> R,
{
    crate::propagate::job(f)
}

/// Records the current context's variables into `span`'s fields of the same names (printed with
/// `Display` where offered, else `Debug`). Fields the span did not declare are ignored, as
/// `tracing` ignores them.
///
/// ```
/// use contextvars::tracing::record_in_span;
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id").with_display();
///
/// REQUEST_ID.scope("req-9".into(), || {
///     let span = tracing::info_span!("handler", request_id = tracing::field::Empty);
///     record_in_span(&span); // request_id=req-9 on the span, for span-only sinks
/// });
/// ```
pub fn record_in_span(span: &::tracing::Span) {
    let context = Context::current();
    for entry in &context {
        if entry.has_debug() && span.has_field(entry.name()) {
            span.record(entry.name(), ::tracing::field::display(entry.display()));
        }
    }
}
