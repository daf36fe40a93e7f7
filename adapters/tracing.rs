//! Logging with [tracing](https://docs.rs/tracing): context fields on every event, and spans
//! that travel with the context (feature `tracing`).
//!
//! # Context fields on every event
//!
//! Two types go to `tracing_subscriber`'s own fmt builder or fmt layer: [`ContextFields`] wraps
//! its field formatter (`map_fmt_fields`) and [`ContextFormat`] its event format
//! (`map_event_format`). Every event emitted inside a context then prints the context's
//! variables:
//!
//! - in the text formats ([`Full`], the default, and [`Compact`]) as `name=value` after the
//!   event's own fields, colors kept;
//! - in the [`Json`] format as the keys of a `"context"` object on the event's line (strings,
//!   numbers and booleans keep their JSON types).
//!
//! ```
//! use contextvars::tracing::{ContextFields, ContextFormat};
//! use contextvars::ContextVar;
//!
//! static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id").with_display();
//!
//! let subscriber = tracing_subscriber::fmt()
//!     .with_target(false) // the format's own options first
//!     .map_fmt_fields(ContextFields::new)
//!     .map_event_format(ContextFormat::new)
//!     .with_writer(std::io::sink) // the others anywhere
//!     .finish();
//! tracing::subscriber::with_default(subscriber, || {
//!     REQUEST_ID.scope("req-123".into(), || {
//!         tracing::info!("handling request"); // ... handling request request_id=req-123
//!     });
//! });
//! ```
//!
//! Every option stays `tracing_subscriber`'s own. Those of the format (`with_target`,
//! `without_time`, `with_ansi`, `compact`, `json`, `flatten_event`, ...) go before the two calls,
//! since they belong to the format that [`ContextFormat`] wraps; the others (`with_writer`,
//! `with_max_level`, `with_env_filter`, ...) go anywhere. [`ContextFields`] goes before
//! [`ContextFormat`]: in a text format it is what writes the fields, and [`ContextFormat`] is an
//! event format only over it, so that forgetting it fails to compile instead of printing
//! nothing. In JSON, [`ContextFormat`] alone is enough. The `Pretty` format is not supported: it
//! prints an event's fields itself, with no place for more.
//!
//! Events outside any context (the context is empty) print no context fields. It works for
//! events from any task, blocking job, pool job or thread that runs in a context through this
//! crate, because formatting happens on the thread that emits the event, inside its context;
//! an event from a task or thread the context did not reach (a plain `std::thread::spawn`, or a
//! plain `tokio::spawn` on a runtime without automatic inheritance) prints none.
//!
//! By default every variable is printed, with `Display` where the variable offers it
//! ([`ContextVar::with_display`](crate::ContextVar::with_display)) and `Debug` otherwise;
//! variables made with [`ContextVar::opaque`](crate::ContextVar::opaque) are skipped. A
//! [`ContextFieldsConfig`] given to [`ContextFormat::with_config`] chooses a subset
//! ([`only`](ContextFieldsConfig::only)), forces `Debug`
//! ([`debug_values`](ContextFieldsConfig::debug_values)), and bounds the length of a value
//! ([`max_value_len`](ContextFieldsConfig::max_value_len), 4 KiB by default: longer values are
//! cut at a character boundary and end with `…`). A value whose formatting panics is skipped;
//! the other fields and the event still print. In the text formats, control characters in a
//! value are escaped (`\n`, `\u{1b}`), so that a value can neither split a line nor send escape
//! codes to a terminal. When an event has a field with the name of a context variable,
//! [the event's field wins][own-field-wins] and the variable is left out of that line, in every
//! format. No key appears twice: of two variables with the same name, the second prints as
//! [`name#2`](ContextFormat#two-variables-with-the-same-name).
//!
//! [`FmtContextExt`], the one-call set-up of earlier versions that mirrored the builder's
//! options, is deprecated and made of these types.
//!
//! [own-field-wins]: ContextFormat#an-events-own-field-wins
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
//! `tokio::spawn(fut.with_current_context())` carries the context and no span. Tokio's automatic
//! inheritance (`propagate_context`, `tokio_unstable`) carries the context alone too: its task
//! hooks cannot enter a span.
//!
//! # Context fields in spans
//!
//! For sinks that only see spans, [`record_in_span`] copies the context's variables into the
//! fields a span declared (with `tracing::field::Empty`).
//!
//! # Examples
//!
//! JSON lines from a fmt layer on a registry:
//!
//! ```
//! use contextvars::tracing::ContextFormat;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let layer = tracing_subscriber::fmt::layer()
//!     .json()
//!     .flatten_event(true)
//!     .map_event_format(ContextFormat::new) // "context":{"request_id":"req-123"}
//!     .with_writer(std::io::sink);
//! let _subscriber = tracing_subscriber::registry().with(layer);
//! ```

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::sync::Arc;

use ::tracing::field::{Field, Visit};
use ::tracing::span::Record;
use ::tracing::{Event, Subscriber};
use ::tracing_subscriber::field::RecordFields;
use ::tracing_subscriber::fmt::format::{
    Compact, DefaultFields, Format, Full, Json, JsonFields, Writer,
};
use ::tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use ::tracing_subscriber::registry::LookupSpan;

use crate::fields::FieldSelection;
use crate::{Context, VarKey};

/// Which context variables a logging integration prints, and how: given to
/// [`ContextFormat::with_config`].
///
/// Whatever the configuration, a variable is left out of an event's line when the event has a
/// field of the same name: [the event's own field wins](ContextFormat#an-events-own-field-wins),
/// in text and in JSON alike.
///
/// # Examples
///
/// ```
/// use contextvars::tracing::{ContextFields, ContextFieldsConfig, ContextFormat};
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
/// static USER_ID: ContextVar<u64> = ContextVar::new("user_id");
///
/// let config = ContextFieldsConfig::new()
///     .only([REQUEST_ID.key()]) // USER_ID is not printed
///     .max_value_len(256);
/// let _subscriber = tracing_subscriber::fmt()
///     .map_fmt_fields(ContextFields::new)
///     .map_event_format(|format| ContextFormat::new(format).with_config(config))
///     .finish();
/// # let _ = USER_ID.key();
/// ```
#[derive(Clone, Debug, Default)]
pub struct ContextFieldsConfig {
    fields: FieldSelection,
    format_each_event: bool,
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
        self.fields.only = Some(vars.into_iter().collect());
        self
    }

    /// Prints every value with `Debug`, even where the variable offers `Display`.
    ///
    /// ```
    /// let _config = contextvars::tracing::ContextFieldsConfig::new().debug_values();
    /// ```
    pub fn debug_values(mut self) -> Self {
        self.fields.debug_values = true;
        self
    }

    /// Cuts printed values longer than `bytes` (at a character boundary, ending with `…`).
    ///
    /// ```
    /// let _config = contextvars::tracing::ContextFieldsConfig::new().max_value_len(64);
    /// ```
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.fields.max_value_len = bytes;
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
}

/// The formats that [`ContextFormat`] wraps: `tracing_subscriber`'s [`Full`] (the default),
/// [`Compact`] and [`Json`].
///
/// ```
/// use contextvars::tracing::ContextFormat;
///
/// let _full = ContextFormat::new(tracing_subscriber::fmt::format());
/// let _compact = ContextFormat::new(tracing_subscriber::fmt::format().compact());
/// let _json = ContextFormat::new(tracing_subscriber::fmt::format().json());
/// ```
#[diagnostic::on_unimplemented(
    message = "context fields do not go into the `{Self}` format",
    note = "they go into the `Full` (default), `Compact` and `Json` formats; `Pretty` prints an \
            event's fields itself"
)]
pub trait ContextStyle: sealed::Sealed {
    #[doc(hidden)]
    const JSON: bool;
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

/// The event format with context fields: one of `tracing_subscriber`'s formats ([`Full`],
/// [`Compact`] or [`Json`], with its options), plus the current context's fields on every event.
///
/// It goes to the fmt builder's or layer's own `map_event_format` (or `event_format`), after the
/// format's options and after [`ContextFields`] in a text format; the JSON format needs nothing
/// else. The [module](self) says what is printed and how.
///
/// # An event's own field wins
///
/// When an event has a field with the name of a context variable (`info!(request_id = ..)` inside
/// a context holding `request_id`), the event's field is printed and the variable is left out of
/// that event's line, so that every key appears once per line. The rule is the same in every
/// format: in the `Full` and `Compact` text, and in JSON, where the variable is left out of the
/// `"context"` object (and where an event field called `context` at the top level of the line,
/// with `flatten_event(true)`, replaces the whole object).
///
/// # Two variables with the same name
///
/// Names need not be unique ([`ContextVar::new`](crate::ContextVar::new)), but a key appears
/// once per line: when two variables of a context share a name, the one first used in the
/// process prints under it and the other under `name#2` (then `#3`, ...), in text and in JSON.
/// A `static REQUEST_ID = ContextVar::new("request_id")` of your own beside the layer's
/// [`propagation::REQUEST_ID`](crate::propagation::REQUEST_ID) prints
/// `request_id=.. request_id#2=..`: the sign to use the layer's variable or to rename yours.
///
/// # Examples
///
/// A text format on a layer, with a configuration:
///
/// ```
/// use contextvars::tracing::{ContextFields, ContextFieldsConfig, ContextFormat};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let config = ContextFieldsConfig::new().debug_values();
/// let layer = tracing_subscriber::fmt::layer()
///     .compact()
///     .without_time()
///     .map_fmt_fields(ContextFields::new)
///     .map_event_format(|format| ContextFormat::new(format).with_config(config));
/// let _subscriber = tracing_subscriber::registry().with(layer);
/// ```
///
/// In a text format, without [`ContextFields`] there is nothing to write the fields: it does not
/// compile.
///
/// ```compile_fail,E0277
/// use contextvars::tracing::ContextFormat;
///
/// let _subscriber = tracing_subscriber::fmt()
///     .map_event_format(ContextFormat::new) // no `map_fmt_fields(ContextFields::new)` before
///     .finish();
/// ```
#[derive(Clone, Debug)]
pub struct ContextFormat<E = Format> {
    inner: E,
    config: Arc<ContextFieldsConfig>,
}

impl<L: ContextStyle, T> ContextFormat<Format<L, T>> {
    /// Wraps `format`, to print every variable of the context with the default
    /// [`ContextFieldsConfig`].
    ///
    /// ```
    /// use contextvars::tracing::{ContextFields, ContextFormat};
    ///
    /// let _subscriber = tracing_subscriber::fmt()
    ///     .with_ansi(false)
    ///     .map_fmt_fields(ContextFields::new)
    ///     .map_event_format(ContextFormat::new)
    ///     .finish();
    /// ```
    pub fn new(format: Format<L, T>) -> Self {
        Self::shared(format, Arc::default())
    }

    /// Prints the variables as `config` says, in place of the default configuration.
    ///
    /// ```
    /// use contextvars::tracing::{ContextFieldsConfig, ContextFormat};
    ///
    /// let config = ContextFieldsConfig::new().max_value_len(64);
    /// let _format = ContextFormat::new(tracing_subscriber::fmt::format()).with_config(config);
    /// ```
    pub fn with_config(self, config: ContextFieldsConfig) -> Self {
        Self::shared(self.inner, Arc::new(config))
    }

    fn shared(inner: Format<L, T>, config: Arc<ContextFieldsConfig>) -> Self {
        ContextFormat { inner, config }
    }
}

impl<E> ContextFormat<E> {
    /// Text: hands the configuration to [`ContextFields`], which writes the fields after the
    /// event's own.
    fn format_text<S, N>(
        &self,
        ctx: &FmtContext<'_, S, N>,
        writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
        E: FormatEvent<S, N>,
    {
        let previous = EVENT_CONFIG
            .try_with(|slot| slot.replace(Some(self.config.clone())))
            .ok()
            .flatten();
        let result = self.inner.format_event(ctx, writer, event);
        // Normally taken already; put back what a formatting further out had handed over.
        let _ = EVENT_CONFIG.try_with(|slot| slot.replace(previous));
        result
    }

    /// JSON: formats the line into a buffer and splices the context object in (JSON carries no
    /// colors).
    fn format_json<S, N>(
        &self,
        ctx: &FmtContext<'_, S, N>,
        writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
        E: FormatEvent<S, N>,
    {
        let context = Context::current();
        if context
            .iter()
            .all(|entry| !self.config.fields.wants(&entry))
        {
            return self.inner.format_event(ctx, writer, event);
        }
        let own = OwnFields::of(event, &context, &self.config);
        let mut writer = writer;
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
                // A field of the event called `context` at the top level (`flatten_event`) is
                // the event's own: it wins over the context object, as every own field does.
                if own.has_context_key && has_top_level_key(buffer, CONTEXT_KEY) {
                    // Nothing to add.
                } else if own.shadowed.is_empty() {
                    with_fields_text(
                        &context,
                        &self.config,
                        STYLE_JSON,
                        |object| json_context_object(object, &context, &self.config, &[]),
                        |object| splice_json_object(buffer, object),
                    );
                } else {
                    let mut object = String::new();
                    json_context_object(&mut object, &context, &self.config, &own.shadowed);
                    splice_json_object(buffer, &object);
                }
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

/// Any of the formats, over [`ContextFields`].
impl<S, N, L, T> FormatEvent<S, ContextFields<N>> for ContextFormat<Format<L, T>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    L: ContextStyle,
    Format<L, T>: FormatEvent<S, ContextFields<N>>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, ContextFields<N>>,
        writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match L::JSON {
            true => self.format_json(ctx, writer, event),
            false => self.format_text(ctx, writer, event),
        }
    }
}

/// JSON over the builder's or layer's own JSON fields (`.json()`): nothing else needed.
impl<S, T> FormatEvent<S, JsonFields> for ContextFormat<Format<Json, T>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    Format<Json, T>: FormatEvent<S, JsonFields>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        self.format_json(ctx, writer, event)
    }
}

/// The field formatter with context fields: wraps the builder's or layer's own field formatter
/// and, in the text formats, writes the current context's fields after an event's own fields,
/// as [`ContextFormat`] asks. Span fields stay as the wrapped formatter writes them; in JSON it
/// changes nothing.
///
/// It goes to the fmt builder's or layer's own `map_fmt_fields` (or `fmt_fields`), before
/// [`ContextFormat`].
///
/// ```
/// use contextvars::tracing::{ContextFields, ContextFormat};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let layer = tracing_subscriber::fmt::layer()
///     .with_target(false)
///     .map_fmt_fields(ContextFields::new)
///     .map_event_format(ContextFormat::new);
/// let _subscriber = tracing_subscriber::registry().with(layer);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ContextFields<N = DefaultFields> {
    inner: N,
}

impl<N> ContextFields<N> {
    /// Wraps the field formatter `fields`.
    ///
    /// ```
    /// use contextvars::tracing::{ContextFields, ContextFormat};
    /// use tracing_subscriber::fmt::format::DefaultFields;
    ///
    /// let format = tracing_subscriber::fmt::format().without_time();
    /// let _subscriber = tracing_subscriber::fmt()
    ///     .fmt_fields(ContextFields::new(DefaultFields::new()))
    ///     .event_format(ContextFormat::new(format))
    ///     .finish();
    /// ```
    pub fn new(fields: N) -> Self {
        ContextFields { inner: fields }
    }
}

thread_local! {
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
    /// Handed by `ContextFormat` to `ContextFields` while a text format writes an event, so that
    /// `ContextFields` adds context fields to events only, never to span fields.
    static EVENT_CONFIG: Cell<Option<Arc<ContextFieldsConfig>>> = const { Cell::new(None) };
    static BUFFER: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<'writer, N> FormatFields<'writer> for ContextFields<N>
where
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        // Taken before the event's own fields format, so that nothing they log sees it.
        let Some(config) = EVENT_CONFIG.try_with(Cell::take).ok().flatten() else {
            return self.inner.format_fields(writer, fields);
        };
        let context = Context::current();
        if context.is_empty() {
            return self.inner.format_fields(writer, fields);
        }
        let own = OwnFields::of(&fields, &context, &config);
        self.inner.format_fields(writer.by_ref(), fields)?;
        let ansi = writer.has_ansi_escapes();
        if !own.shadowed.is_empty() {
            let mut text = String::new();
            text_fields(&mut text, &context, &config, ansi, &own.shadowed);
            return writer.write_str(&text);
        }
        let style = if ansi { STYLE_ANSI } else { STYLE_PLAIN };
        with_fields_text(
            &context,
            &config,
            style,
            |text| text_fields(text, &context, &config, ansi, &[]),
            |text| writer.write_str(text),
        )
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        if TypeId::of::<N>() != TypeId::of::<JsonFields>() {
            // As `FormatFields` does by default, colors kept.
            if !current.fields.is_empty() {
                current.fields.push(' ');
            }
            return self.inner.format_fields(current.as_writer(), fields);
        }
        // JSON merges the new fields into the span's object (appending would break it): its own
        // `add_fields`, on fields of its own type.
        let mut own = FormattedFields::<N>::new(std::mem::take(&mut current.fields));
        let result = self.inner.add_fields(&mut own, fields);
        current.fields = own.fields;
        result
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

/// The key of the context object in the JSON format.
const CONTEXT_KEY: &str = "context";

/// What an event's own fields mean for its context fields: the names that a wanted variable of
/// the context shares (the event's field wins; the variable is left out of that line), and
/// whether one of them is called `context`. In the common case nothing is shared and nothing is
/// allocated.
struct OwnFields<'a> {
    context: &'a Context,
    config: &'a ContextFieldsConfig,
    shadowed: Vec<&'static str>,
    has_context_key: bool,
}

impl<'a> OwnFields<'a> {
    fn of(
        fields: &impl RecordFields,
        context: &'a Context,
        config: &'a ContextFieldsConfig,
    ) -> Self {
        let mut own = OwnFields {
            context,
            config,
            shadowed: Vec::new(),
            has_context_key: false,
        };
        fields.record(&mut own);
        own
    }
}

impl Visit for OwnFields<'_> {
    fn record_debug(&mut self, field: &Field, _: &dyn fmt::Debug) {
        let name = field.name();
        self.has_context_key |= name == CONTEXT_KEY;
        if !self.shadowed.contains(&name)
            && self
                .config
                .fields
                .keyed(self.context)
                .any(|(key, _)| key.text() == name)
        {
            self.shadowed.push(name);
        }
    }
}

/// Writes ` name=value` for the wanted variables of `context` not named in `skip`.
fn text_fields(
    text: &mut String,
    context: &Context,
    config: &ContextFieldsConfig,
    ansi: bool,
    skip: &[&str],
) {
    let mut value = String::new();
    for (name, entry) in config.fields.keyed(context) {
        if skip.iter().any(|own| name.text() == *own) {
            continue;
        }
        value.clear();
        if config.fields.format_value(&entry, &mut value) {
            escape_controls(&mut value);
            let _ = if ansi {
                write!(text, " \x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m{value}")
            } else {
                write!(text, " {name}={value}")
            };
        }
    }
}

/// Escapes the control characters of a value printed in a text line (`\n`, `\u{1b}`), so that a
/// value cannot end the line early or send escape sequences to a terminal.
fn escape_controls(value: &mut String) {
    if value.chars().any(char::is_control) {
        let mut escaped = String::with_capacity(value.len() + 8);
        for c in value.chars() {
            if c.is_control() {
                escaped.extend(c.escape_default());
            } else {
                escaped.push(c);
            }
        }
        *value = escaped;
    }
}

/// Inserts `object` before the closing brace of a one-line JSON object.
fn splice_json_object(line: &mut String, object: &str) {
    let body_end = line.trim_end().len();
    if line[..body_end].ends_with('}') {
        line.insert_str(body_end - 1, object);
    } // else not a JSON object: leave the line as the formatter wrote it
}

/// Whether the one JSON object on `line` has `key` (written without escapes) at its top level.
fn has_top_level_key(line: &str, key: &str) -> bool {
    let bytes = line.as_bytes();
    let mut depth = 0usize;
    let mut expect_key = false;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                let start = at + 1;
                at = start;
                while at < bytes.len() && bytes[at] != b'"' {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
                if depth == 1 && expect_key && line.get(start..at) == Some(key) {
                    return true;
                }
                expect_key = false;
            }
            b'{' => {
                depth += 1;
                expect_key = depth == 1;
            }
            b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' => expect_key = depth == 1,
            _ => {}
        }
        at += 1;
    }
    false
}

/// Writes `,"context":{...}` for the wanted variables of `context` not named in `skip`, or
/// nothing when none is left.
fn json_context_object(
    object: &mut String,
    context: &Context,
    config: &ContextFieldsConfig,
    skip: &[&str],
) {
    let start = object.len();
    object.push_str(",\"context\":{");
    let mut value = String::new();
    let mut first = true;
    for (key, entry) in config.fields.keyed(context) {
        if skip.iter().any(|own| key.text() == *own) {
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
                config.fields.truncate(&mut value, 0);
            }
            (None, None) => {
                if !config.fields.format_value(&entry, &mut value) {
                    continue;
                }
            }
        }
        if !first {
            object.push(',');
        }
        first = false;
        push_json_string(object, &key.text());
        object.push(':');
        match raw {
            Some(raw) => object.push_str(&raw),
            None => push_json_string(object, &value),
        }
    }
    if first {
        object.truncate(start);
    } else {
        object.push('}');
    }
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

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Full {}
    impl Sealed for super::Compact {}
    impl Sealed for super::Json {}
}

// The one-call set-up that mirrored the builder's options, deprecated and made of the types above.
#[path = "tracing/deprecated.rs"]
mod deprecated;
#[allow(deprecated)]
pub use deprecated::FmtContextExt;

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
        let future = ::tracing::Instrument::instrument(self, ::tracing::Span::current());
        crate::ContextExt::with_current_context(future)
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
    crate::capture::job(f)
}

/// Records the current context's variables into `span`'s fields of the same names (printed with
/// `Display` where offered, else `Debug`). Fields the span did not declare are ignored, as
/// `tracing` ignores them. Of two variables with the same name, the one first used in the
/// process fills the field (the other's key is `name#2`, as on log lines).
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
    for (key, entry) in FieldSelection::default().keyed(&context) {
        let key = key.text();
        if span.has_field(&*key) {
            span.record(&*key, ::tracing::field::display(entry.display()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The ambient seam (`crate::ambient`): the current span travels beside the context into every
// spawn. It never crosses the wire: a transport extracts nothing of it, and injects nothing.

impl crate::ambient::Ambient for ::tracing::Span {
    type Guard<'a> = ::tracing::span::Entered<'a>;
    type Entered = ::tracing::span::EnteredSpan;
    type Scoped<F> = ::tracing::instrument::Instrumented<F>;
    type Remote = ();

    #[inline]
    fn current() -> ::tracing::Span {
        ::tracing::Span::current()
    }

    #[inline]
    fn enter(&self) -> ::tracing::span::Entered<'_> {
        ::tracing::Span::enter(self)
    }

    #[inline]
    fn entered(self) -> ::tracing::span::EnteredSpan {
        ::tracing::Span::entered(self)
    }

    #[inline]
    fn scope<F>(self, future: F) -> ::tracing::instrument::Instrumented<F> {
        ::tracing::Instrument::instrument(future, self)
    }

    #[inline]
    fn extract<C: crate::propagation::Extractor + ?Sized>(
        _: crate::propagation::Trust,
        _: &dyn Fn(&Context) -> crate::propagation::Baggage,
        _: &mut Context,
        _: &C,
    ) {
    }
}

/// The trust rules' diagnostics as `tracing` debug events of target `contextvars::trust` (see
/// `crate::diagnostics`).
pub(crate) struct TrustEvents;

impl crate::diagnostics::Sink for TrustEvents {
    fn enabled() -> bool {
        ::tracing::enabled!(target: crate::diagnostics::TARGET, ::tracing::Level::DEBUG)
    }

    fn report(message: &str) {
        ::tracing::debug!(target: crate::diagnostics::TARGET, "{message}");
    }
}
