//! The one-call set-up of context fields that mirrored `tracing_subscriber`'s builder options,
//! deprecated: made of [`ContextFields`] and [`ContextFormat`], to be removed with its mirrors.

use std::sync::Arc;

use ::tracing::Subscriber;
use ::tracing_subscriber::fmt::format::{Compact, FmtSpan, Format, Full, Json, JsonFields};
use ::tracing_subscriber::fmt::time::FormatTime;
use ::tracing_subscriber::fmt::{
    FormatEvent, FormatFields, Layer as FmtLayer, MakeWriter, SubscriberBuilder,
};
use ::tracing_subscriber::registry::LookupSpan;
use ::tracing_subscriber::Registry;

use super::{ContextFields, ContextFieldsConfig, ContextFormat, ContextStyle};

mod sealed {
    use super::{FmtSpan, FormatTime};

    /// The format options of a builder or layer with context fields.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` has no such option here",
        note = "after `with_context_fields()`, the options of the `Full`, `Compact` and `Json` \
                formats are there; a custom `event_format`/`fmt_fields` goes before it"
    )]
    pub trait Options: Sized {
        type WithTimer<T2>;
        type WithoutTime;
        type Compact;
        type Json;
        fn with_timer<T2: FormatTime + 'static>(self, timer: T2) -> Self::WithTimer<T2>;
        fn without_time(self) -> Self::WithoutTime;
        fn compact(self) -> Self::Compact;
        fn json(self) -> Self::Json;
        fn with_span_events(self, kind: FmtSpan) -> Self;
        fn with_ansi(self, ansi: bool) -> Self;
        fn with_ansi_sanitization(self, ansi_sanitization: bool) -> Self;
        fn log_internal_errors(self, log_internal_errors: bool) -> Self;
        fn with_target(self, display_target: bool) -> Self;
        fn with_file(self, display_filename: bool) -> Self;
        fn with_line_number(self, display_line_number: bool) -> Self;
        fn with_level(self, display_level: bool) -> Self;
        fn with_thread_names(self, display_thread_names: bool) -> Self;
        fn with_thread_ids(self, display_thread_ids: bool) -> Self;
    }

    /// The options of the JSON format, on a builder or layer with context fields.
    #[diagnostic::on_unimplemented(
        message = "`flatten_event`, `with_current_span` and `with_span_list` are options of the \
                   JSON format",
        note = "call `.json()` first"
    )]
    pub trait JsonOptions: Sized {
        fn flatten_event(self, flatten_event: bool) -> Self;
        fn with_current_span(self, display_current_span: bool) -> Self;
        fn with_span_list(self, display_span_list: bool) -> Self;
    }
}

/// A deprecated mirror of one of the builder's and the layer's own options, with its docs: the
/// option's name, the sealed trait that has it, and the lines of its example.
macro_rules! mirrored_options {
    ($(
        $bound:ident: $method:ident($($arg:ident: $ty:ty)?) -> $ret:ty = $before:literal $example:literal;
    )*) => {$(
        #[doc = concat!(
            "The builder's and the layer's own `", stringify!($method),
            "`, still there once context fields are on."
        )]
        #[doc = ""]
        #[doc = "Deprecated: the builder's or layer's own method, before the context fields:"]
        #[doc = ""]
        #[doc = "```"]
        #[doc = "use contextvars::tracing::{ContextFields, ContextFormat};"]
        #[doc = ""]
        #[doc = "let _subscriber = tracing_subscriber::fmt()"]
        #[doc = concat!($before, "    .", stringify!($method), "(", $example, ")")]
        #[doc = "    .map_fmt_fields(ContextFields::new)"]
        #[doc = "    .map_event_format(ContextFormat::new)"]
        #[doc = "    .finish();"]
        #[doc = "```"]
        #[deprecated(
            since = "0.1.0",
            note = "call the builder's or layer's own method before \
                    `map_fmt_fields(ContextFields::new)` and `map_event_format(ContextFormat::new)`"
        )]
        fn $method(self $(, $arg: $ty)?) -> $ret
        where
            Self: sealed::$bound,
        {
            sealed::$bound::$method(self $(, $arg)?)
        }
    )*};
}

/// One-call set-up of context fields on `tracing_subscriber`'s fmt [`SubscriberBuilder`] and
/// fmt [`Layer`](FmtLayer), in the `Full` (default), `Compact` and `Json` formats, with the
/// format options mirrored after it.
///
/// Deprecated, since the mirrored options lag behind `tracing_subscriber`'s: give
/// [`ContextFields`] and [`ContextFormat`] to the builder's or layer's own `map_fmt_fields` and
/// `map_event_format`, after its format options.
///
/// ```
/// use contextvars::tracing::{ContextFields, ContextFormat};
///
/// // Was `fmt().with_context_fields().with_target(false).json().flatten_event(true)`.
/// let _subscriber = tracing_subscriber::fmt()
///     .with_target(false)
///     .json()
///     .flatten_event(true)
///     .map_fmt_fields(ContextFields::new)
///     .map_event_format(ContextFormat::new)
///     .finish();
/// ```
///
/// The methods work as they did, through those types:
/// [`with_context_fields`](FmtContextExt::with_context_fields) stands anywhere in the chain, and
/// the builder's and the layer's format options (`with_target`, `with_ansi`, `without_time`,
/// `compact`, `json`, `flatten_event`, ...) after it come from this trait, under the same names,
/// and apply beneath the context fields, which keep their configuration. Calling it a second
/// time replaces the configuration. The `Options` and `JsonOptions` bounds in these methods'
/// signatures are sealed: a builder or layer meets them once context fields are on
/// (`JsonOptions` in the JSON format); before, its own methods of the same names are the ones
/// called.
#[deprecated(
    since = "0.1.0",
    note = "give `ContextFields::new` to the builder's or layer's own `map_fmt_fields` and then \
            `ContextFormat::new` to its `map_event_format`, after its format options"
)]
#[allow(deprecated)]
pub trait FmtContextExt: Sized {
    /// The builder or layer, with context fields.
    type Output;

    /// Adds the current context's fields to every event, with the default
    /// [`ContextFieldsConfig`]; the call can stand anywhere in the chain.
    ///
    /// Deprecated: [`ContextFields`] and [`ContextFormat`], after the format's options.
    ///
    /// ```
    /// use contextvars::tracing::{ContextFields, ContextFormat};
    ///
    /// // Was `fmt().compact().with_context_fields()`.
    /// let _subscriber = tracing_subscriber::fmt()
    ///     .compact()
    ///     .map_fmt_fields(ContextFields::new)
    ///     .map_event_format(ContextFormat::new)
    ///     .finish();
    /// ```
    #[deprecated(
        since = "0.1.0",
        note = "use `.map_fmt_fields(ContextFields::new).map_event_format(ContextFormat::new)` \
                after the format's options"
    )]
    fn with_context_fields(self) -> Self::Output {
        #[allow(deprecated)]
        self.with_context_fields_config(ContextFieldsConfig::default())
    }

    /// Adds the current context's fields to every event, as `config` says; on a builder or layer
    /// that has them already, replaces the configuration.
    ///
    /// Deprecated: [`ContextFormat::with_config`].
    ///
    /// ```
    /// use contextvars::tracing::{ContextFields, ContextFieldsConfig, ContextFormat};
    ///
    /// let config = ContextFieldsConfig::new().debug_values();
    /// let _subscriber = tracing_subscriber::fmt()
    ///     .map_fmt_fields(ContextFields::new)
    ///     .map_event_format(|format| ContextFormat::new(format).with_config(config))
    ///     .finish();
    /// ```
    #[deprecated(
        since = "0.1.0",
        note = "use `.map_fmt_fields(ContextFields::new).map_event_format(|format| \
                ContextFormat::new(format).with_config(config))` after the format's options"
    )]
    fn with_context_fields_config(self, config: ContextFieldsConfig) -> Self::Output;

    /// The builder's and the layer's own `with_timer`, still there once context fields are on.
    ///
    /// Deprecated: the builder's or layer's own method, before the context fields.
    ///
    /// ```
    /// use contextvars::tracing::{ContextFields, ContextFormat};
    /// use tracing_subscriber::fmt::time::Uptime;
    ///
    /// let _subscriber = tracing_subscriber::fmt()
    ///     .with_timer(Uptime::default())
    ///     .map_fmt_fields(ContextFields::new)
    ///     .map_event_format(ContextFormat::new)
    ///     .finish();
    /// ```
    #[deprecated(
        since = "0.1.0",
        note = "call the builder's or layer's own method before \
                `map_fmt_fields(ContextFields::new)` and `map_event_format(ContextFormat::new)`"
    )]
    fn with_timer<T2>(self, timer: T2) -> <Self as sealed::Options>::WithTimer<T2>
    where
        Self: sealed::Options,
        T2: FormatTime + 'static,
    {
        sealed::Options::with_timer(self, timer)
    }

    mirrored_options! {
        Options: without_time() -> <Self as sealed::Options>::WithoutTime = "" "";
        Options: compact() -> <Self as sealed::Options>::Compact = "" "";
        Options: json() -> <Self as sealed::Options>::Json = "" "";
        Options: with_span_events(kind: FmtSpan) -> Self = ""
            "tracing_subscriber::fmt::format::FmtSpan::CLOSE";
        Options: with_ansi(ansi: bool) -> Self = "" "false";
        Options: with_ansi_sanitization(ansi_sanitization: bool) -> Self = "" "true";
        Options: log_internal_errors(log_internal_errors: bool) -> Self = "" "false";
        Options: with_target(display_target: bool) -> Self = "" "false";
        Options: with_file(display_filename: bool) -> Self = "" "true";
        Options: with_line_number(display_line_number: bool) -> Self = "" "true";
        Options: with_level(display_level: bool) -> Self = "" "false";
        Options: with_thread_names(display_thread_names: bool) -> Self = "" "true";
        Options: with_thread_ids(display_thread_ids: bool) -> Self = "" "true";
        JsonOptions: flatten_event(flatten_event: bool) -> Self = "    .json()\n" "true";
        JsonOptions: with_current_span(display_current_span: bool) -> Self = "    .json()\n" "false";
        JsonOptions: with_span_list(display_span_list: bool) -> Self = "    .json()\n" "false";
    }
}

/// The fmt builder once context fields are on.
type Builder<N, L, T, F, W> =
    SubscriberBuilder<ContextFields<N>, ContextFormat<Format<L, T>>, F, W>;

/// The fmt layer once context fields are on.
type Layer<S, N, L, T, W> = FmtLayer<S, ContextFields<N>, ContextFormat<Format<L, T>>, W>;

/// Puts context fields with `config` on a builder.
fn wrap_builder<N, L, T, F, W>(
    builder: SubscriberBuilder<N, Format<L, T>, F, W>,
    config: Arc<ContextFieldsConfig>,
) -> Builder<N, L, T, F, W>
where
    N: for<'w> FormatFields<'w> + 'static,
    L: ContextStyle,
    ContextFormat<Format<L, T>>: FormatEvent<Registry, ContextFields<N>> + 'static,
    W: for<'w> MakeWriter<'w> + 'static,
{
    builder
        .map_fmt_fields(ContextFields::new)
        .map_event_format(|format| ContextFormat::shared(format, config))
}

/// [`wrap_builder`] for the layer.
fn wrap_layer<S, N, L, T, W>(
    layer: FmtLayer<S, N, Format<L, T>, W>,
    config: Arc<ContextFieldsConfig>,
) -> Layer<S, N, L, T, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    L: ContextStyle,
    ContextFormat<Format<L, T>>: FormatEvent<S, ContextFields<N>> + 'static,
    W: for<'w> MakeWriter<'w> + 'static,
{
    layer
        .map_fmt_fields(ContextFields::new)
        .map_event_format(|format| ContextFormat::shared(format, config))
}

#[allow(deprecated)]
impl<N, L, T, F, W> FmtContextExt for SubscriberBuilder<N, Format<L, T>, F, W>
where
    N: for<'w> FormatFields<'w> + 'static,
    L: ContextStyle,
    ContextFormat<Format<L, T>>: FormatEvent<Registry, ContextFields<N>> + 'static,
    W: for<'w> MakeWriter<'w> + 'static,
{
    type Output = Builder<N, L, T, F, W>;

    fn with_context_fields_config(self, config: ContextFieldsConfig) -> Self::Output {
        wrap_builder(self, Arc::new(config))
    }
}

#[allow(deprecated)]
impl<N, L, T, F, W> FmtContextExt for Builder<N, L, T, F, W>
where
    N: for<'w> FormatFields<'w> + 'static,
    L: ContextStyle,
    ContextFormat<Format<L, T>>: FormatEvent<Registry, ContextFields<N>> + 'static,
    W: for<'w> MakeWriter<'w> + 'static,
{
    type Output = Self;

    fn with_context_fields_config(self, config: ContextFieldsConfig) -> Self::Output {
        self.map_event_format(|format| format.with_config(config))
    }
}

#[allow(deprecated)]
impl<S, N, L, T, W> FmtContextExt for FmtLayer<S, N, Format<L, T>, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    L: ContextStyle,
    ContextFormat<Format<L, T>>: FormatEvent<S, ContextFields<N>> + 'static,
    W: for<'w> MakeWriter<'w> + 'static,
{
    type Output = Layer<S, N, L, T, W>;

    fn with_context_fields_config(self, config: ContextFieldsConfig) -> Self::Output {
        wrap_layer(self, Arc::new(config))
    }
}

#[allow(deprecated)]
impl<S, N, L, T, W> FmtContextExt for Layer<S, N, L, T, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    L: ContextStyle,
    ContextFormat<Format<L, T>>: FormatEvent<S, ContextFields<N>> + 'static,
    W: for<'w> MakeWriter<'w> + 'static,
{
    type Output = Self;

    fn with_context_fields_config(self, config: ContextFieldsConfig) -> Self::Output {
        self.map_event_format(|format| format.with_config(config))
    }
}

/// Takes the context fields off a builder, applies one of the builder's own options, and puts
/// them back with the same configuration.
fn rebuild_builder<N, L, T, F, W, N2, L2, T2>(
    builder: Builder<N, L, T, F, W>,
    option: impl FnOnce(
        SubscriberBuilder<N, Format<L, T>, F, W>,
    ) -> SubscriberBuilder<N2, Format<L2, T2>, F, W>,
) -> Builder<N2, L2, T2, F, W>
where
    N: for<'w> FormatFields<'w> + 'static,
    N2: for<'w> FormatFields<'w> + 'static,
    L2: ContextStyle,
    Format<L, T>: FormatEvent<Registry, ContextFields<N>> + 'static,
    ContextFormat<Format<L2, T2>>: FormatEvent<Registry, ContextFields<N2>> + 'static,
    W: for<'w> MakeWriter<'w> + 'static,
{
    let mut config = None;
    let bare = builder
        .map_event_format(|format| {
            config = Some(format.config);
            format.inner
        })
        .map_fmt_fields(|fields| fields.inner);
    let Some(config) = config else {
        unreachable!("`map_event_format` calls its closure")
    };
    wrap_builder(option(bare), config)
}

/// [`rebuild_builder`] for the layer.
fn rebuild_layer<S, N, L, T, W, N2, L2, T2>(
    layer: Layer<S, N, L, T, W>,
    option: impl FnOnce(FmtLayer<S, N, Format<L, T>, W>) -> FmtLayer<S, N2, Format<L2, T2>, W>,
) -> Layer<S, N2, L2, T2, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    N2: for<'w> FormatFields<'w> + 'static,
    L2: ContextStyle,
    Format<L, T>: FormatEvent<S, ContextFields<N>> + 'static,
    ContextFormat<Format<L2, T2>>: FormatEvent<S, ContextFields<N2>> + 'static,
    W: for<'w> MakeWriter<'w> + 'static,
{
    let mut config = None;
    let bare = layer
        .map_event_format(|format| {
            config = Some(format.config);
            format.inner
        })
        .map_fmt_fields(|fields| fields.inner);
    let Some(config) = config else {
        unreachable!("`map_event_format` calls its closure")
    };
    wrap_layer(option(bare), config)
}

/// Options that keep the type, each one line.
macro_rules! same_type_options {
    ($rebuild:ident: $($method:ident($arg:ident: $ty:ty)),* $(,)?) => {$(
        fn $method(self, $arg: $ty) -> Self {
            $rebuild(self, |inner| inner.$method($arg))
        }
    )*};
}

/// The builder's and the layer's options beneath the context fields, for each format.
macro_rules! options_for_styles {
    ($($style:ty),*) => {$(
        impl<N, T, F, W> sealed::Options for Builder<N, $style, T, F, W>
        where
            N: for<'w> FormatFields<'w> + 'static,
            T: FormatTime + 'static,
            W: for<'w> MakeWriter<'w> + 'static,
        {
            type WithTimer<T2> = Builder<N, $style, T2, F, W>;
            type WithoutTime = Builder<N, $style, (), F, W>;
            type Compact = Builder<N, Compact, T, F, W>;
            type Json = Builder<JsonFields, Json, T, F, W>;

            fn with_timer<T2: FormatTime + 'static>(self, timer: T2) -> Self::WithTimer<T2> {
                rebuild_builder(self, |inner| inner.with_timer(timer))
            }

            fn without_time(self) -> Self::WithoutTime {
                rebuild_builder(self, |inner| inner.without_time())
            }

            fn compact(self) -> Self::Compact {
                rebuild_builder(self, |inner| inner.compact())
            }

            fn json(self) -> Self::Json {
                rebuild_builder(self, |inner| inner.json())
            }

            same_type_options!(rebuild_builder:
                with_span_events(kind: FmtSpan),
                with_ansi(ansi: bool),
                with_ansi_sanitization(ansi_sanitization: bool),
                log_internal_errors(log_internal_errors: bool),
                with_target(display_target: bool),
                with_file(display_filename: bool),
                with_line_number(display_line_number: bool),
                with_level(display_level: bool),
                with_thread_names(display_thread_names: bool),
                with_thread_ids(display_thread_ids: bool),
            );
        }

        impl<S, N, T, W> sealed::Options for Layer<S, N, $style, T, W>
        where
            S: Subscriber + for<'a> LookupSpan<'a>,
            N: for<'w> FormatFields<'w> + 'static,
            T: FormatTime + 'static,
            W: for<'w> MakeWriter<'w> + 'static,
        {
            type WithTimer<T2> = Layer<S, N, $style, T2, W>;
            type WithoutTime = Layer<S, N, $style, (), W>;
            type Compact = Layer<S, N, Compact, T, W>;
            type Json = Layer<S, JsonFields, Json, T, W>;

            fn with_timer<T2: FormatTime + 'static>(self, timer: T2) -> Self::WithTimer<T2> {
                rebuild_layer(self, |inner| inner.with_timer(timer))
            }

            fn without_time(self) -> Self::WithoutTime {
                rebuild_layer(self, |inner| inner.without_time())
            }

            fn compact(self) -> Self::Compact {
                rebuild_layer(self, |inner| inner.compact())
            }

            fn json(self) -> Self::Json {
                rebuild_layer(self, |inner| inner.json())
            }

            // The layer has these for any format.
            fn with_ansi(self, ansi: bool) -> Self {
                FmtLayer::with_ansi(self, ansi)
            }

            fn with_ansi_sanitization(self, ansi_sanitization: bool) -> Self {
                FmtLayer::with_ansi_sanitization(self, ansi_sanitization)
            }

            fn log_internal_errors(self, log_internal_errors: bool) -> Self {
                FmtLayer::log_internal_errors(self, log_internal_errors)
            }

            same_type_options!(rebuild_layer:
                with_span_events(kind: FmtSpan),
                with_target(display_target: bool),
                with_file(display_filename: bool),
                with_line_number(display_line_number: bool),
                with_level(display_level: bool),
                with_thread_names(display_thread_names: bool),
                with_thread_ids(display_thread_ids: bool),
            );
        }
    )*};
}

options_for_styles!(Full, Compact, Json);

/// The JSON format's options beneath the context fields.
macro_rules! json_options {
    ($($method:ident($arg:ident)),*) => {$(
        fn $method(self, $arg: bool) -> Self {
            self.map_event_format(|format| ContextFormat {
                inner: format.inner.$method($arg),
                ..format
            })
        }
    )*};
}

impl<N, T, F, W> sealed::JsonOptions for Builder<N, Json, T, F, W>
where
    N: for<'w> FormatFields<'w> + 'static,
    T: FormatTime + 'static,
    W: for<'w> MakeWriter<'w> + 'static,
{
    json_options!(
        flatten_event(flatten_event),
        with_current_span(display_current_span),
        with_span_list(display_span_list)
    );
}

impl<S, N, T, W> sealed::JsonOptions for Layer<S, N, Json, T, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    T: FormatTime + 'static,
    W: for<'w> MakeWriter<'w> + 'static,
{
    json_options!(
        flatten_event(flatten_event),
        with_current_span(display_current_span),
        with_span_list(display_span_list)
    );
}
