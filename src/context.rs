use std::any::Any;
use std::fmt;
use std::marker::PhantomData;

use crate::map::{self, Map};
use crate::{state, ContextVar};

/// An immutable snapshot of context variables.
///
/// A `Context` maps [`ContextVar`]s to values. It never changes once made:
/// [`with_value`](Context::with_value) and [`without`](Context::without) return new contexts
/// that share everything they did not change with the old one. Capturing the current context
/// ([`Context::current`]) and cloning one are a single reference-count increment, whatever the
/// number of variables, so it is cheap to hand one to every task you spawn.
///
/// Each thread has a *current* context, which is what [`ContextVar::get`] reads. A context
/// becomes current for the duration of [`run`](Context::run), of an
/// [`attach`](Context::attach) guard, or of every poll of a future wrapped with
/// [`with_context`](crate::ContextExt::with_context).
///
/// # Destructors of values
///
/// When the last snapshot holding a value goes, the value is dropped in a frame of its own,
/// with the empty context current: a destructor sees no context variable, may use the whole
/// API, and whatever it sets (or attaches) ends with it. It never reaches the frame, task or
/// worker thread that happened to drop the context.
///
/// # Examples
///
/// ```
/// use contextvars::{Context, ContextVar};
///
/// static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
///
/// let ctx = Context::new().with_value(&REQUEST_ID, "req-123".to_string());
/// assert_eq!(ctx.get(&REQUEST_ID).as_deref(), Some("req-123"));
/// assert_eq!(REQUEST_ID.get(), None); // not current yet
///
/// ctx.run(|| {
///     assert_eq!(REQUEST_ID.get().as_deref(), Some("req-123"));
/// });
/// ```
#[derive(Clone, Default)]
pub struct Context {
    map: Map,
}

impl Drop for Context {
    /// The drop policy of a snapshot (see "Destructors of values" above): `state::release`.
    #[inline]
    fn drop(&mut self) {
        if let Some(root) = self.map.take_root() {
            state::release(root);
        }
    }
}

impl Context {
    /// An empty context: no variable is set in it.
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = contextvars::Context::new();
    /// assert!(ctx.is_empty());
    /// ```
    pub const fn new() -> Context {
        Context { map: Map::EMPTY }
    }

    /// Captures the current context of this thread.
    ///
    /// This is one thread-local read and a reference to the context's root: no allocation and
    /// no copy, however many variables are set. On the thread whose context it is, the
    /// reference usually comes from a batch the thread already holds, so no shared atomic
    /// operation is needed either (and a snapshot dropped there gives it back the same way). From a thread-local destructor, after this
    /// thread's context storage is gone, it returns an empty context.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// static USER: ContextVar<u32> = ContextVar::new("user");
    ///
    /// USER.scope(7, || {
    ///     let captured = Context::current();
    ///     // Later, on any thread:
    ///     std::thread::spawn(move || {
    ///         captured.run(|| assert_eq!(USER.get(), Some(7)));
    ///     })
    ///     .join()
    ///     .unwrap();
    /// });
    /// ```
    #[inline]
    pub fn current() -> Context {
        state::capture()
    }

    /// The value of `var` in this context, or the variable's default when it is not set here.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// static RETRIES: ContextVar<u8> = ContextVar::new("retries").with_default(|| 3);
    ///
    /// let ctx = Context::new();
    /// assert_eq!(ctx.get(&RETRIES), Some(3));
    /// assert_eq!(ctx.with_value(&RETRIES, 5).get(&RETRIES), Some(5));
    /// ```
    pub fn get<T>(&self, var: &ContextVar<T>) -> Option<T>
    where
        T: Clone + Send + Sync + 'static,
    {
        match self.get_ref(var) {
            Some(value) => Some(value.clone()),
            None => var.default_value(),
        }
    }

    /// A reference to the value of `var` set in this context (defaults are not consulted).
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// static PATH: ContextVar<Vec<String>> = ContextVar::new("path");
    ///
    /// let ctx = Context::new().with_value(&PATH, vec!["a".into(), "b".into()]);
    /// assert_eq!(ctx.get_ref(&PATH).map(Vec::len), Some(2));
    /// ```
    #[inline]
    pub fn get_ref<T>(&self, var: &ContextVar<T>) -> Option<&T>
    where
        T: Send + Sync + 'static,
    {
        // Upcasting to `dyn Any` reads the vtable without a call: one dynamic call in all.
        let stored: &dyn Any = &**self.map.get(var.id())?;
        stored
            .downcast_ref::<map::Stored<T>>()
            .map(|stored| &stored.value)
    }

    /// Whether `var` is set in this context.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// static FLAG: ContextVar<bool> = ContextVar::new("flag");
    /// assert!(!Context::new().contains(&FLAG));
    /// assert!(Context::new().with_value(&FLAG, true).contains(&FLAG));
    /// ```
    pub fn contains<T>(&self, var: &ContextVar<T>) -> bool {
        self.map.get(var.id()).is_some()
    }

    /// A new context with `var` set to `value`; `self` is unchanged.
    ///
    /// Costs `O(log n)`: one path of the underlying trie is copied, the rest is shared.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// static TENANT: ContextVar<&'static str> = ContextVar::new("tenant");
    ///
    /// let base = Context::new();
    /// let acme = base.with_value(&TENANT, "acme");
    /// assert_eq!(base.get(&TENANT), None);
    /// assert_eq!(acme.get(&TENANT), Some("acme"));
    /// ```
    #[must_use = "a Context is immutable: with_value returns a new one"]
    pub fn with_value<T>(&self, var: &ContextVar<T>, value: T) -> Context
    where
        T: Send + Sync + 'static,
    {
        self.with_stored(var.id(), var.store(value))
    }

    #[inline]
    pub(crate) fn from_map(map: Map) -> Context {
        Context { map }
    }

    #[inline]
    pub(crate) fn map(&self) -> &Map {
        &self.map
    }

    /// `self`, plus the variables of `other` that `self` lacks.
    pub(crate) fn filling_from(&self, other: &Context) -> Context {
        if self.ptr_eq(other) {
            return self.clone();
        }
        let mut filled = self.clone();
        for (id, value) in other.map.iter() {
            if self.map.get(id).is_none() {
                filled = filled.with_stored(id, value.clone());
            }
        }
        filled
    }

    pub(crate) fn with_stored(&self, id: u64, stored: map::Value) -> Context {
        Context {
            map: self.map.insert(id, stored),
        }
    }

    /// A new context without `var`; `self` is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// static TENANT: ContextVar<&'static str> = ContextVar::new("tenant");
    ///
    /// let ctx = Context::new().with_value(&TENANT, "acme");
    /// assert!(ctx.without(&TENANT).is_empty());
    /// assert_eq!(ctx.len(), 1);
    /// ```
    #[must_use = "a Context is immutable: without returns a new one"]
    pub fn without<T>(&self, var: &ContextVar<T>) -> Context {
        match self.map.remove(var.id()) {
            Some(map) => Context { map },
            None => self.clone(),
        }
    }

    /// The number of variables set in this context.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// static B: ContextVar<u8> = ContextVar::new("b");
    /// assert_eq!(Context::new().with_value(&A, 1).with_value(&B, 2).len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no variable is set in this context.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(contextvars::Context::current().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Whether `self` and `other` are the same snapshot (not merely equal contents).
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let ctx = Context::new().with_value(&A, 1);
    /// assert!(ctx.ptr_eq(&ctx.clone()));
    /// assert!(!ctx.ptr_eq(&Context::new().with_value(&A, 1)));
    /// ```
    pub fn ptr_eq(&self, other: &Context) -> bool {
        self.map.ptr_eq(&other.map)
    }

    /// Runs `f` with this context as the current one, then restores the previous context.
    ///
    /// `f` runs inside a copy: what it [`set`](ContextVar::set)s is visible inside `f` only.
    /// The previous context is restored even if `f` panics.
    ///
    /// **For async code, use [`with_context`](crate::ContextExt::with_context)**:
    /// `fut.with_context(ctx).await`. Written as `ctx.run(|| async { .. }).await`, it compiles
    /// but the closure only *builds* the future, which then runs outside the context.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// static REQUEST_ID: ContextVar<u64> = ContextVar::new("request_id");
    ///
    /// let ctx = Context::new().with_value(&REQUEST_ID, 42);
    /// let seen = ctx.run(|| {
    ///     REQUEST_ID.set(43); // visible until the closure returns
    ///     REQUEST_ID.get()
    /// });
    /// assert_eq!(seen, Some(43));
    /// assert_eq!(ctx.get(&REQUEST_ID), Some(42));
    /// assert_eq!(REQUEST_ID.get(), None);
    /// ```
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        state::run_in(self.clone(), f)
    }

    /// Makes this context current until the returned guard is dropped.
    ///
    /// Prefer [`run`](Context::run) or [`with_context`](crate::ContextExt::with_context) where
    /// they fit: a guard is for code that cannot be written as a closure. Variables set while
    /// the guard is alive are discarded when it drops.
    ///
    /// # Never across `.await`
    ///
    /// The guard is `!Send`, so a future holding one cannot be spawned on a multi-threaded
    /// runtime; in a local task (`spawn_local`, `block_on`) it can, and then it does not do what
    /// it seems to. Inside a [`WithContext`](crate::WithContext) (or any frame of this crate) the
    /// guard's context ends with the poll that attached it: after the `.await` the task is back
    /// in its own context. At the top level of a *plain* local task, the guard's context stays
    /// on the thread while the task is suspended, and the other tasks polled on that thread see
    /// it. Wrap the future with [`with_context`](crate::ContextExt::with_context) instead. Clippy
    /// can enforce this: put in your `clippy.toml`
    ///
    /// ```toml
    /// await-holding-invalid-types = [{ path = "contextvars::ContextGuard", reason = "use .with_context(..) for async code" }]
    /// ```
    ///
    /// # Order of drops
    ///
    /// Guards are meant to be dropped in reverse order of their creation. When they are not,
    /// the thread's context stays consistent by these rules:
    ///
    /// - the current context of a frame is that of its most recently attached guard still
    ///   alive (with what was set under it), else the frame's own;
    /// - once every guard attached in a frame has been dropped, wherever it was dropped, the
    ///   frame's context is exactly what it was before the first of them;
    /// - a guard dropped inside a nested frame (for example moved into a
    ///   [`run`](Context::run) closure) leaves that nested frame alone, and takes effect in its
    ///   own frame as soon as the nested frame ends;
    /// - a frame that ends takes the guards attached in it along (even forgotten ones, with
    ///   [`std::mem::forget`]): it leaves the thread exactly as it found it, and dropping such a
    ///   guard later does nothing. Its discarded contexts are dropped after it has ended, so a
    ///   destructor that panics there finds the thread already back in the outer frame;
    /// - at thread exit, the guards still alive when the crate's storage is torn down (kept in
    ///   a thread-local, or forgotten) end with it, and a guard attached after that, from a
    ///   later thread-local destructor, does nothing ([`try_attach`](Context::try_attach)
    ///   reports it).
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// static REQUEST_ID: ContextVar<u64> = ContextVar::new("request_id");
    ///
    /// let first = Context::new().with_value(&REQUEST_ID, 1).attach();
    /// let second = Context::new().with_value(&REQUEST_ID, 2).attach();
    /// assert_eq!(REQUEST_ID.get(), Some(2));
    /// drop(first); // out of order: the newest guard still decides
    /// assert_eq!(REQUEST_ID.get(), Some(2));
    /// drop(second);
    /// assert_eq!(REQUEST_ID.get(), None); // back to where we started
    /// ```
    ///
    /// # Panics
    ///
    /// Like [`ContextVar::set`], when no frame of this crate is active and the thread is running
    /// a unit of work of a runtime or pool (a plain `tokio::spawn` task, a plain rayon job, ...):
    /// a guard there that is forgotten, or held across an `.await` in a local task, would leave
    /// the context on the worker for the next, unrelated task. Use [`run`](Context::run) or
    /// [`with_context`](crate::ContextExt::with_context) there, or
    /// [`try_attach`](Context::try_attach) to get the refusal as an error.
    #[must_use = "the context is detached again as soon as the guard is dropped"]
    #[track_caller]
    pub fn attach(self) -> ContextGuard {
        if let Err(refusal) = state::set_is_confined() {
            panic!("contextvars: {}", crate::AccessError::refused(refusal));
        }
        ContextGuard {
            // Refused only at thread exit, once the thread's storage is gone: then a guard that
            // does nothing.
            id: state::attach(self).ok(),
            _not_send: PhantomData,
        }
    }

    /// Like [`attach`](Context::attach), but returns the refusal as an error instead of
    /// panicking (see
    /// [`AccessError::is_outside_any_frame`](crate::AccessError::is_outside_any_frame)).
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// static STAGE: ContextVar<&'static str> = ContextVar::new("stage");
    ///
    /// // On a thread you own, attaching is always accepted.
    /// let guard = Context::new().with_value(&STAGE, "parse").try_attach().unwrap();
    /// assert_eq!(STAGE.get(), Some("parse"));
    /// drop(guard);
    /// ```
    pub fn try_attach(self) -> Result<ContextGuard, crate::AccessError> {
        state::set_is_confined().map_err(crate::AccessError::refused)?;
        self.attach_unchecked().map_err(crate::AccessError::refused)
    }

    /// Attaches without the check of [`try_attach`](Context::try_attach), for the crate's own
    /// guards, which it always drops itself (the rayon adaptor's, around each batch). Refused
    /// only at thread exit, once the thread's storage is gone.
    pub(crate) fn attach_unchecked(self) -> Result<ContextGuard, state::Refusal> {
        Ok(ContextGuard {
            id: Some(state::attach(self)?),
            _not_send: PhantomData,
        })
    }

    /// Turns `f` into a closure that runs inside this context, wherever it is called.
    ///
    /// This is the answer for any thread pool or callback API this crate has no adapter for.
    ///
    /// # Examples
    ///
    /// A plain `std::sync::mpsc` worker:
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use contextvars::{Context, ContextVar};
    ///
    /// static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
    ///
    /// let (jobs, queue) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
    /// let worker = std::thread::spawn(move || queue.into_iter().for_each(|job| job()));
    ///
    /// let (done, result) = mpsc::channel();
    /// REQUEST_ID.scope("req-9".to_string(), || {
    ///     jobs.send(Box::new(Context::current().wrap(move || {
    ///         done.send(REQUEST_ID.get()).unwrap();
    ///     })))
    ///     .unwrap();
    /// });
    /// assert_eq!(result.recv().unwrap().as_deref(), Some("req-9"));
    /// drop(jobs);
    /// worker.join().unwrap();
    /// ```
    pub fn wrap<F, R>(self, f: F) -> impl FnOnce() -> R
    where
        F: FnOnce() -> R,
    {
        move || state::run_in(self, f)
    }

    /// Turns a reusable callback into one that runs each call inside this context (each call
    /// starts from the same snapshot).
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// static PREFIX: ContextVar<&'static str> = ContextVar::new("prefix");
    ///
    /// let label = Context::new()
    ///     .with_value(&PREFIX, "job")
    ///     .wrap_fn(|n: u32| format!("{}-{n}", PREFIX.get().unwrap_or("?")));
    /// let labels: Vec<String> = (1..=2).map(label).collect();
    /// assert_eq!(labels, ["job-1", "job-2"]);
    /// ```
    pub fn wrap_fn<A, R, F>(self, f: F) -> impl Fn(A) -> R
    where
        F: Fn(A) -> R,
    {
        move |arg| self.run(|| f(arg))
    }

    /// Iterates over the variables set in this context, in no particular (but, for a given set
    /// of variables, fixed) order.
    ///
    /// Logging integrations use this to print every field of the context.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextVar};
    ///
    /// static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
    ///
    /// let ctx = Context::new().with_value(&REQUEST_ID, "r-1".to_string());
    /// let fields: Vec<String> = ctx
    ///     .iter()
    ///     .map(|entry| format!("{}={:?}", entry.name(), entry.debug()))
    ///     .collect();
    /// assert_eq!(fields, [r#"request_id="r-1""#]);
    /// ```
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: self.map.iter(),
        }
    }
}

impl fmt::Debug for Context {
    /// Lists each variable as `name: value` (values that offer no `Debug` print as `<opaque>`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|entry| (entry.name(), entry.debug())))
            .finish()
    }
}

impl<'a> IntoIterator for &'a Context {
    type Item = Entry<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// An iterator over the [`Entry`]s of a [`Context`], from [`Context::iter`].
#[derive(Debug)]
pub struct Iter<'a> {
    inner: map::Iter<'a>,
}

impl fmt::Debug for map::Iter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        self.inner.next().map(|(id, stored)| Entry { id, stored })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// One variable set in a [`Context`]: its name and its value, type-erased.
///
/// # Examples
///
/// ```
/// use contextvars::{Context, ContextVar};
///
/// static ATTEMPT: ContextVar<u32> = ContextVar::new("attempt");
///
/// let ctx = Context::new().with_value(&ATTEMPT, 2);
/// let entry = ctx.iter().next().unwrap();
/// assert_eq!(entry.name(), "attempt");
/// assert_eq!(entry.value().downcast_ref::<u32>(), Some(&2));
/// assert_eq!(entry.debug().to_string(), "2");
/// ```
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    id: u64,
    stored: &'a map::Value,
}

impl<'a> Entry<'a> {
    /// The name the variable was declared with.
    ///
    /// ```
    /// # use contextvars::{Context, ContextVar};
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// assert_eq!(Context::new().with_value(&A, 1).iter().next().unwrap().name(), "a");
    /// ```
    pub fn name(&self) -> &'static str {
        self.stored.name()
    }

    /// The value, to be downcast to the variable's type.
    ///
    /// ```
    /// # use contextvars::{Context, ContextVar};
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let ctx = Context::new().with_value(&A, 1);
    /// assert_eq!(ctx.iter().next().unwrap().value().downcast_ref::<u8>(), Some(&1));
    /// ```
    pub fn value(&self) -> &'a (dyn Any + Send + Sync) {
        self.stored.value()
    }

    /// The key of the variable this entry belongs to.
    ///
    /// ```
    /// # use contextvars::{Context, ContextVar};
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let ctx = Context::new().with_value(&A, 1);
    /// assert_eq!(ctx.iter().next().unwrap().key(), A.key());
    /// ```
    pub fn key(&self) -> crate::VarKey {
        crate::VarKey::from_id(self.id)
    }

    /// Whether this entry belongs to `var` (two variables never share an entry, even with the
    /// same name and type).
    ///
    /// ```
    /// # use contextvars::{Context, ContextVar};
    /// static A: ContextVar<u8> = ContextVar::new("same");
    /// static B: ContextVar<u8> = ContextVar::new("same");
    /// let ctx = Context::new().with_value(&A, 1);
    /// let entry = ctx.iter().next().unwrap();
    /// assert!(entry.is(&A) && !entry.is(&B));
    /// ```
    pub fn is<T>(&self, var: &ContextVar<T>) -> bool {
        self.id == var.id()
    }

    /// Whether the value can be printed with [`debug`](Entry::debug) (its variable was made
    /// with [`ContextVar::new`] rather than [`ContextVar::opaque`]).
    ///
    /// ```
    /// # use contextvars::{Context, ContextVar};
    /// struct Secret;
    /// static KEY: ContextVar<Secret> = ContextVar::opaque("key");
    /// let ctx = Context::new().with_value(&KEY, Secret);
    /// assert!(!ctx.iter().next().unwrap().has_debug());
    /// ```
    pub fn has_debug(&self) -> bool {
        self.stored.has_debug()
    }

    /// Whether the value can be printed with [`display`](Entry::display) (its variable was
    /// declared with [`ContextVar::with_display`]).
    ///
    /// ```
    /// # use contextvars::{Context, ContextVar};
    /// static ID: ContextVar<String> = ContextVar::new("id").with_display();
    /// let ctx = Context::new().with_value(&ID, "x".to_string());
    /// assert!(ctx.iter().next().unwrap().has_display());
    /// ```
    pub fn has_display(&self) -> bool {
        self.stored.has_display()
    }

    /// The value formatted with its `Debug` implementation, or `<opaque>` when it has none.
    ///
    /// ```
    /// # use contextvars::{Context, ContextVar};
    /// static ID: ContextVar<String> = ContextVar::new("id");
    /// let ctx = Context::new().with_value(&ID, "x".to_string());
    /// assert_eq!(ctx.iter().next().unwrap().debug().to_string(), "\"x\"");
    /// ```
    pub fn debug(&self) -> impl fmt::Debug + fmt::Display + 'a {
        Formatted {
            stored: self.stored,
            display: false,
        }
    }

    /// The value formatted with `Display` where the variable offers it, else with `Debug`,
    /// else `<opaque>`.
    ///
    /// ```
    /// # use contextvars::{Context, ContextVar};
    /// static ID: ContextVar<String> = ContextVar::new("id").with_display();
    /// let ctx = Context::new().with_value(&ID, "x".to_string());
    /// assert_eq!(ctx.iter().next().unwrap().display().to_string(), "x");
    /// ```
    pub fn display(&self) -> impl fmt::Debug + fmt::Display + 'a {
        Formatted {
            stored: self.stored,
            display: true,
        }
    }
}

impl fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name())
            .field("value", &self.debug())
            .finish()
    }
}

struct Formatted<'a> {
    stored: &'a map::Value,
    display: bool,
}

impl fmt::Display for Formatted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.display {
            if let Some(result) = self.stored.fmt_display(f) {
                return result;
            }
        }
        match self.stored.fmt_debug(f) {
            Some(result) => result,
            None => f.write_str("<opaque>"),
        }
    }
}

impl fmt::Debug for Formatted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Restores the previous context when dropped; made by [`Context::attach`].
///
/// `!Send`: it must be dropped on the thread that made it. See [`Context::attach`] for what
/// happens when guards are dropped out of order.
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// send(contextvars::Context::new().attach()); // a guard cannot move to another thread
/// ```
///
/// # Examples
///
/// ```
/// use contextvars::{Context, ContextVar};
///
/// static STAGE: ContextVar<&'static str> = ContextVar::new("stage");
///
/// {
///     let _guard = Context::new().with_value(&STAGE, "parse").attach();
///     assert_eq!(STAGE.get(), Some("parse"));
/// }
/// assert_eq!(STAGE.get(), None);
/// ```
#[must_use = "the context is detached again as soon as the guard is dropped"]
pub struct ContextGuard {
    id: Option<u64>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            state::detach(id);
        }
    }
}

impl fmt::Debug for ContextGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextGuard").finish_non_exhaustive()
    }
}
