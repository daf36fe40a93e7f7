use std::error::Error;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::map::{FmtFn, Stored, Value};
use crate::{raw, state, Context, ScopedFuture};

/// A typed context variable: a key into every [`Context`].
///
/// Declare one as a `static` (or create one at run time; each variable is distinct, even when two
/// share a name and a type). Its value lives in the current context, so it follows the work it
/// belongs to: across `.await` inside a [`WithContext`](crate::WithContext) future, into tasks and threads spawned
/// through this crate's adapters, and into closures wrapped with [`Context::wrap`]. So its
/// values are shared between threads: they must be `Send + Sync + 'static`
/// ([`ContextValue`](crate::ContextValue)), which [`new`](ContextVar::new) and
/// [`opaque`](ContextVar::opaque) check where the variable is declared.
///
/// # Examples
///
/// ```
/// use contextvars::ContextVar;
///
/// static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
///
/// assert_eq!(REQUEST_ID.get(), None);
/// REQUEST_ID.scope("req-123".to_string(), || {
///     assert_eq!(REQUEST_ID.get().as_deref(), Some("req-123"));
///     assert_eq!(REQUEST_ID.with(|id| id.map(String::len)), Some(7));
/// });
/// assert_eq!(REQUEST_ID.get(), None);
/// ```
pub struct ContextVar<T> {
    name: &'static str,
    /// Assigned on first use, so that `new` can be `const`; 0 means "not yet".
    id: AtomicU64,
    default: Option<fn() -> T>,
    debug: Option<FmtFn<T>>,
    display: Option<FmtFn<T>>,
}

fn debug_fmt<T: fmt::Debug>(value: &T, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    fmt::Debug::fmt(value, f)
}

fn display_fmt<T: fmt::Display>(value: &T, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    fmt::Display::fmt(value, f)
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl<T> ContextVar<T> {
    /// A new variable called `name`, with no default. Its values print with `Debug` in
    /// [`Context`]'s `Debug` output and in logging integrations; for values that must never be
    /// printed (secrets), use [`ContextVar::opaque`].
    ///
    /// The name is the variable's key on log lines, and it need not be unique: two variables
    /// with the same name stay two variables. On one log line, though, the second of them
    /// prints as `name#2` (see the `tracing` and `log` integrations). Before declaring
    /// `request_id`, look at [`propagation::REQUEST_ID`](crate::propagation::REQUEST_ID): the
    /// HTTP, gRPC and NATS layers set that one, under that very name.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// static USER_ID: ContextVar<u64> = ContextVar::new("user_id");
    ///
    /// // Variables made at run time work the same way.
    /// let local: ContextVar<u64> = ContextVar::new("user_id");
    /// local.scope(1, || assert_eq!(USER_ID.get(), None)); // distinct from USER_ID
    /// ```
    pub const fn new(name: &'static str) -> ContextVar<T>
    where
        T: crate::DebugValue + crate::ContextValue,
    {
        ContextVar {
            name,
            id: AtomicU64::new(0),
            default: None,
            debug: Some(debug_fmt::<T>),
            display: None,
        }
    }
}

impl<T: fmt::Display> ContextVar<T> {
    /// Makes logging integrations print this variable with `Display` instead of `Debug`
    /// (for example `request_id=abc` rather than `request_id="abc"`).
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id").with_display();
    ///
    /// let ctx = Context::new().with_value(&REQUEST_ID, "abc".to_string());
    /// assert_eq!(ctx.iter().next().unwrap().display().to_string(), "abc");
    /// ```
    pub const fn with_display(self) -> ContextVar<T> {
        ContextVar {
            display: Some(display_fmt::<T>),
            ..self
        }
    }
}

impl<T> ContextVar<T> {
    /// A new variable whose values cannot be printed (no `Debug` needed): they show as
    /// `<opaque>` in [`Context`]'s `Debug` output and are skipped by logging integrations.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// struct ApiKey(String); // deliberately not Debug
    ///
    /// static API_KEY: ContextVar<ApiKey> = ContextVar::opaque("api_key");
    ///
    /// let ctx = Context::new().with_value(&API_KEY, ApiKey("secret".into()));
    /// assert_eq!(format!("{ctx:?}"), "{\"api_key\": <opaque>}");
    /// assert_eq!(ctx.get_ref(&API_KEY).map(|key| key.0.len()), Some(6));
    /// ```
    pub const fn opaque(name: &'static str) -> ContextVar<T>
    where
        T: crate::ContextValue,
    {
        ContextVar {
            name,
            id: AtomicU64::new(0),
            default: None,
            debug: None,
            display: None,
        }
    }

    /// Gives the variable a default: what [`get`](ContextVar::get) returns in a context where
    /// it is not set. The default is computed on each such read and never stored.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// static LOCALE: ContextVar<&'static str> = ContextVar::new("locale").with_default(|| "en");
    ///
    /// assert_eq!(LOCALE.get(), Some("en"));
    /// assert!(!LOCALE.is_set());
    /// LOCALE.scope("fr", || assert_eq!(LOCALE.get(), Some("fr")));
    /// ```
    pub const fn with_default(self, default: fn() -> T) -> ContextVar<T> {
        ContextVar {
            default: Some(default),
            ..self
        }
    }

    /// The name this variable was declared with.
    ///
    /// ```
    /// static A: contextvars::ContextVar<u8> = contextvars::ContextVar::new("a");
    /// assert_eq!(A.name(), "a");
    /// ```
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// A copyable key naming this variable, whatever its value type: to select variables in
    /// configurations (for example which ones a logging integration prints).
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// static B: ContextVar<String> = ContextVar::new("b");
    ///
    /// let wanted = [A.key(), B.key()];
    /// let ctx = Context::new().with_value(&A, 1);
    /// assert!(ctx.iter().all(|entry| wanted.contains(&entry.key())));
    /// ```
    pub fn key(&self) -> VarKey {
        VarKey(self.id())
    }

    /// The variable's unique id, assigned on first use.
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        match self.id.load(Ordering::Relaxed) {
            0 => self.assign_id(),
            id => id,
        }
    }

    #[cold]
    fn assign_id(&self) -> u64 {
        let fresh = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        match self
            .id
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            // Another thread assigned one first; `fresh` is simply never used.
            Err(id) => id,
        }
    }

    pub(crate) fn default_value(&self) -> Option<T> {
        self.default.map(|default| default())
    }
}

impl<T: Send + Sync + 'static> ContextVar<T> {
    pub(crate) fn store(&self, value: T) -> Value {
        Arc::new(Stored {
            name: self.name,
            debug: self.debug,
            display: self.display,
            value,
        })
    }

    /// The variable's value in the current context (a clone), or its default, or `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
    ///
    /// assert_eq!(REQUEST_ID.get(), None);
    /// REQUEST_ID.scope("r-1".into(), || assert_eq!(REQUEST_ID.get().as_deref(), Some("r-1")));
    /// ```
    #[inline]
    pub fn get(&self) -> Option<T>
    where
        T: Clone,
    {
        // A task dropped outside its poll at shutdown reads its own context (the slow path).
        if state::may_read_in_place() {
            // Values of the standard library's types whose `Clone` runs no code (not even the
            // allocator), cloned in place.
            if let Ok(value) = raw::get_in_place(self) {
                return value.or_else(|| self.default_value());
            }
        }
        // Any other `Clone` may run code of the user's (its own, or the global allocator's)
        // that calls back into the crate: the value is cloned out of a snapshot of the current
        // context, so that such code finds the thread's state free, the value stays alive
        // whatever it changes, and the value, if the snapshot turns out to be its last holder
        // (also when the `Clone` panics), is dropped in a frame of its own.
        let snapshot = state::capture();
        match raw::get_ref::<T>(&snapshot, self.id()) {
            Some(value) => Some(value.clone()),
            None => self.default_value(),
        }
    }

    /// Calls `f` with a reference to the variable's value in the current context (or to its
    /// default), without cloning the value.
    ///
    /// `f` may freely read and set context variables itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// static PATH: ContextVar<Vec<&'static str>> = ContextVar::new("path");
    ///
    /// PATH.scope(vec!["api", "orders"], || {
    ///     assert_eq!(PATH.with(|path| path.map(|p| p.join("/"))).as_deref(), Some("api/orders"));
    /// });
    /// ```
    pub fn with<R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
        // Hold the snapshot, not the thread's state, while `f` runs, so that `f` can set.
        match Context::current().get_ref(self) {
            Some(value) => f(Some(value)),
            None => match self.default_value() {
                Some(default) => f(Some(&default)),
                None => f(None),
            },
        }
    }

    /// Whether the variable is set in the current context (a default does not count).
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// static FLAG: ContextVar<bool> = ContextVar::new("flag").with_default(|| false);
    /// assert!(!FLAG.is_set());
    /// FLAG.scope(true, || assert!(FLAG.is_set()));
    /// ```
    pub fn is_set(&self) -> bool {
        state::with_current(|current| current.contains(self)).unwrap_or(false)
    }

    /// Sets the variable in the current *frame*: the enclosing [`WithContext`](crate::WithContext) task, the
    /// closure of [`Context::run`] or [`ContextVar::scope`], the context of a live
    /// [`Context::attach`] guard, or else the thread itself.
    ///
    /// The change is invisible to contexts captured before it, to the parent of the frame and
    /// to its siblings, and it ends with the frame. From a thread-local destructor, once this
    /// thread's context storage is gone, the value is dropped; use
    /// [`try_set`](ContextVar::try_set) to find out.
    ///
    /// # Panics
    ///
    /// When no frame of this crate is active and the thread is running a unit of work of a
    /// runtime or pool: a plain `tokio::spawn` task or `spawn_blocking` job, a plain async-std
    /// task or blocking job, a plain rayon job, a smol `unblock` job. There, "the thread
    /// itself" is a worker shared by unrelated tasks, and the value would reach the next one: a
    /// leak of one request's data into another. Give the work a frame instead, by spawning it
    /// with a `spawn_with_context` helper, wrapping its future with
    /// [`with_context`](crate::ContextExt::with_context) or its body with [`Context::run`] /
    /// [`ContextVar::scope`], or serving the request through the crate's layer.
    /// Also when the current context changes under the `set` on every attempt to build the new
    /// one (a global allocator that sets a variable at each allocation).
    /// [`try_set`](ContextVar::try_set) returns the same refusals as an error instead. On a
    /// thread you own (`main`, `std::thread::spawn`) outside any runtime's task, the thread's
    /// own top level accepts values, as in the example below.
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// static STEP: ContextVar<u32> = ContextVar::new("step");
    ///
    /// let before = Context::current();
    /// Context::new().run(|| {
    ///     STEP.set(1);
    ///     STEP.set(2);
    ///     assert_eq!(STEP.get(), Some(2));
    /// });
    /// assert_eq!(STEP.get(), None); // the closure's frame ended
    /// assert_eq!(before.get(&STEP), None);
    /// ```
    #[track_caller]
    pub fn set(&self, value: T) {
        if let Err(error) = self.try_set(value) {
            if error.kind != state::Refusal::Destroyed {
                panic!("contextvars: {error}");
            }
        }
    }

    /// Like [`set`](ContextVar::set), but reports when the value could not be stored because
    /// this thread's context storage is gone (in a thread-local destructor at thread exit).
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// static STEP: ContextVar<u32> = ContextVar::new("step");
    /// std::thread::spawn(|| {
    ///     assert!(STEP.try_set(1).is_ok());
    ///     assert_eq!(STEP.get(), Some(1));
    /// })
    /// .join()
    /// .unwrap();
    /// ```
    pub fn try_set(&self, value: T) -> Result<(), AccessError> {
        let mut value = Some(self.store(value));
        let id = self.id();
        state::update_current(true, move |current, failed| {
            // Built again (the context changed meanwhile): the value is in the failed attempt.
            let value = value.take().or_else(|| failed?.map().get(id).cloned())?;
            Some(current.with_stored(id, value))
        })
        .map_err(|kind| AccessError {
            kind,
            variable: Some(self.name),
        })
    }

    /// Removes the variable from the current frame (see [`set`](ContextVar::set)).
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// static STEP: ContextVar<u32> = ContextVar::new("step");
    /// STEP.scope(1, || {
    ///     STEP.remove();
    ///     assert_eq!(STEP.get(), None);
    /// });
    /// ```
    pub fn remove(&self) {
        // Removing cannot leak a value to another task: allowed in every frame.
        let _ = state::update_current(false, |current, _| {
            current.contains(self).then(|| current.without(self))
        });
    }

    /// Runs `f` with the variable set to `value`, then restores the previous context (also on
    /// panic). Like [`Context::run`], what `f` sets stays inside `f`.
    ///
    /// **For async code, use [`scope_future`](ContextVar::scope_future)**:
    /// `VAR.scope_future(value, async { .. }).await`. Written as
    /// `VAR.scope(value, || async { .. }).await`, it compiles but the closure only *builds* the
    /// future, which then runs outside the scope, without the value (unless the closure wraps
    /// it with [`with_current_context`](crate::ContextExt::with_current_context)).
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// static USER: ContextVar<&'static str> = ContextVar::new("user");
    ///
    /// let greeting = USER.scope("ada", || format!("hello {}", USER.get().unwrap()));
    /// assert_eq!(greeting, "hello ada");
    /// assert_eq!(USER.get(), None);
    /// ```
    pub fn scope<R>(&self, value: T, f: impl FnOnce() -> R) -> R {
        let context = Context::current().with_value(self, value);
        state::run_in(context, f)
    }

    /// Wraps `future` so that it runs (and is dropped) with this variable set to `value`: the
    /// async counterpart of [`scope`](ContextVar::scope).
    ///
    /// It composes like `scope`: nested `scope_future`s see every enclosing value (the innermost
    /// wins), and so does a `scope_future` made inside a `scope` and polled elsewhere. See
    /// [`ScopedFuture`](crate::ScopedFuture) for the exact rule.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// static USER: ContextVar<&'static str> = ContextVar::new("user");
    /// static TENANT: ContextVar<&'static str> = ContextVar::new("tenant");
    ///
    /// let seen = futures::executor::block_on(USER.scope_future("ada", async { USER.get() }));
    /// assert_eq!(seen, Some("ada"));
    ///
    /// // Nested, like nested scopes:
    /// let both = USER.scope_future("ada", TENANT.scope_future("acme", async {
    ///     (USER.get(), TENANT.get())
    /// }));
    /// assert_eq!(futures::executor::block_on(both), (Some("ada"), Some("acme")));
    /// ```
    pub fn scope_future<F: Future>(&self, value: T, future: F) -> ScopedFuture<F> {
        ScopedFuture::new(future, self.id(), self.store(value))
    }
}

/// Names one [`ContextVar`] whatever its value type; see [`ContextVar::key`].
///
/// ```
/// use contextvars::ContextVar;
/// static A: ContextVar<u8> = ContextVar::new("a");
/// assert_eq!(A.key(), A.key());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VarKey(u64);

impl VarKey {
    pub(crate) fn from_id(id: u64) -> VarKey {
        VarKey(id)
    }
}

impl<T> fmt::Debug for ContextVar<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextVar")
            .field("name", &self.name)
            .field("type", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// Returned by [`ContextVar::try_set`] when the value cannot be stored: either the thread's
/// context storage is gone (the call came from a thread-local destructor while the thread was
/// exiting), or no frame of this crate is active on a thread running a runtime's or pool's
/// unit of work, where the value would leak into the next task
/// ([`is_outside_any_frame`](AccessError::is_outside_any_frame); see [`ContextVar::set`]).
///
/// # Examples
///
/// ```
/// use std::cell::RefCell;
/// use std::sync::mpsc;
/// use contextvars::{AccessError, ContextVar};
///
/// static STEP: ContextVar<u32> = ContextVar::new("step");
///
/// struct OnExit(mpsc::Sender<Result<(), AccessError>>);
/// impl Drop for OnExit {
///     fn drop(&mut self) {
///         // Runs while the thread exits: never panics, whatever the destructor order.
///         let _ = self.0.send(STEP.try_set(1));
///     }
/// }
/// thread_local! {
///     static ON_EXIT: RefCell<Option<OnExit>> = const { RefCell::new(None) };
/// }
///
/// let (tx, rx) = mpsc::channel();
/// std::thread::spawn(move || ON_EXIT.with(|slot| *slot.borrow_mut() = Some(OnExit(tx))))
///     .join()
///     .unwrap();
/// if let Err(error) = rx.recv().unwrap() {
///     assert!(error.to_string().contains("destroyed"));
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AccessError {
    kind: state::Refusal,
    /// The variable being set; `None` for [`Context::try_attach`], which sets no single one.
    variable: Option<&'static str>,
}

impl AccessError {
    pub(crate) fn refused(kind: state::Refusal) -> AccessError {
        AccessError {
            kind,
            variable: None,
        }
    }

    /// Whether the value was refused because no frame of this crate was active on a thread
    /// running some runtime's or pool's unit of work (see [`ContextVar::set`]'s panics), rather
    /// than because the thread's storage is gone.
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// static STEP: ContextVar<u32> = ContextVar::new("step");
    /// // On a thread you own, the thread's own top level accepts values.
    /// assert!(STEP.try_set(1).is_ok());
    /// ```
    pub fn is_outside_any_frame(&self) -> bool {
        matches!(self.kind, state::Refusal::NoFrame { .. })
    }
}

impl fmt::Debug for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessError")
            .field("kind", &self.kind)
            .field("variable", &self.variable)
            .finish()
    }
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.variable {
            write!(f, "cannot set `{name}` here: ")?;
        }
        match self.kind {
            state::Refusal::Destroyed => {
                f.write_str("the thread's context storage has already been destroyed")
            }
            state::Refusal::Busy => f.write_str(
                "the current context kept changing while the new one was being built (code \
                 run by the build, such as a global allocator calling back into contextvars, \
                 changed it on every attempt)",
            ),
            state::Refusal::NoFrame { executor } => write!(
                f,
                "{} outside any context of this crate, in a task or job of {executor}: the value \
                 would stay on the worker thread and reach the \
                 next, unrelated task. Run the work in a context: spawn it with a \
                 `spawn_with_context` helper, wrap its future with `.with_context(..)` / \
                 `.with_current_context()` or its body with `Context::run` / `ContextVar::scope`, \
                 or serve the request through the crate's layer",
                match self.variable {
                    Some(_) => "it is",
                    None => "a context variable was set",
                },
            ),
        }
    }
}

impl Error for AccessError {}
