use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::{map, raw, state, Context};

pin_project! {
    /// A future or stream that runs inside a [`Context`], on any executor. With the `rayon`
    /// feature, a parallel iterator too (see `contextvars::rayon`).
    ///
    /// Made by [`ContextExt::with_context`] and [`ContextExt::with_current_context`]. The
    /// context is installed around every poll and while the inner future is dropped, so
    /// destructors (cancellation, `abort`, runtime shutdown) see it too. Installing it swaps a
    /// pointer in and out: no allocation and no reference-count change per poll.
    ///
    /// The wrapper owns its context: what the inner future [`set`](crate::ContextVar::set)s
    /// persists across its `.await`s and never escapes it.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::{Context, ContextExt, ContextVar};
    ///
    /// static REQUEST_ID: ContextVar<u64> = ContextVar::new("request_id");
    ///
    /// let task = async {
    ///     REQUEST_ID.set(REQUEST_ID.get().unwrap() + 1);
    ///     std::future::ready(()).await;
    ///     REQUEST_ID.get() // the set survived the await
    /// }
    /// .with_context(Context::new().with_value(&REQUEST_ID, 41));
    ///
    /// assert_eq!(futures::executor::block_on(task), Some(42));
    /// assert_eq!(REQUEST_ID.get(), None); // and never escaped the task
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct WithContext<F> {
        // The context and the future; the future is dropped inside the context (`raw`).
        #[pin]
        slot: raw::TaskSlot<F, state::Frames>,
    }
}

impl<F> WithContext<F> {
    pub(crate) fn new(inner: F, context: Context) -> WithContext<F> {
        WithContext {
            slot: raw::TaskSlot::new(inner, context),
        }
    }

    /// Replaces the context (before the first poll, by [`ScopedFuture`]).
    fn set_context(self: Pin<&mut Self>, context: Context) {
        *self.project().slot.project().0 = context;
    }

    /// The context this future runs in (including what it has set so far).
    ///
    /// ```
    /// use contextvars::{Context, ContextExt, ContextVar};
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let fut = async {}.with_context(Context::new().with_value(&A, 1));
    /// assert_eq!(fut.context().get(&A), Some(1));
    /// ```
    pub fn context(&self) -> &Context {
        self.slot.context()
    }

    /// A reference to the wrapped future.
    ///
    /// ```
    /// use contextvars::{Context, ContextExt};
    /// let fut = std::future::ready(5).with_context(Context::new());
    /// let _inner: &std::future::Ready<i32> = fut.inner();
    /// ```
    pub fn inner(&self) -> &F {
        self.slot.inner()
    }

    /// A mutable reference to the wrapped future.
    ///
    /// ```
    /// use contextvars::{Context, ContextExt};
    /// let mut fut = std::future::ready(5).with_context(Context::new());
    /// let _inner: &mut std::future::Ready<i32> = fut.inner_mut();
    /// ```
    pub fn inner_mut(&mut self) -> &mut F {
        self.slot.inner_mut()
    }

    /// A pinned mutable reference to the wrapped future.
    ///
    /// ```
    /// use std::pin::pin;
    /// use contextvars::{Context, ContextExt};
    /// let mut fut = pin!(std::future::ready(5).with_context(Context::new()));
    /// let _inner = fut.as_mut().inner_pin_mut();
    /// ```
    pub fn inner_pin_mut(self: Pin<&mut Self>) -> Pin<&mut F> {
        self.project().slot.project().1
    }

    /// Unwraps the future, dropping the context.
    ///
    /// ```
    /// use contextvars::{Context, ContextExt};
    /// let fut = std::future::ready(5).with_context(Context::new());
    /// assert_eq!(futures::executor::block_on(fut.into_inner()), 5);
    /// ```
    pub fn into_inner(self) -> F {
        self.slot.into_inner()
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let (context, inner) = this.slot.project();
        let frame = state::enter(context);
        let output = inner.poll(cx);
        if let Some(frame) = frame {
            frame.leave();
        }
        output
    }
}

impl<S: Stream> Stream for WithContext<S> {
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let (context, inner) = this.slot.project();
        let frame = state::enter(context);
        let output = inner.poll_next(cx);
        if let Some(frame) = frame {
            frame.leave();
        }
        output
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner().size_hint()
    }
}

impl<F: Clone> Clone for WithContext<F> {
    fn clone(&self) -> Self {
        WithContext::new(self.inner().clone(), self.context().clone())
    }
}

impl<F: fmt::Debug> fmt::Debug for WithContext<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithContext")
            .field("context", self.context())
            .field("inner", self.inner())
            .finish()
    }
}

/// Attaches a [`Context`] to any future or stream. Implemented for every type.
///
/// # Examples
///
/// The context travels with the future to whatever executor runs it:
///
/// ```
/// # mod tokio { pub fn spawn(_: impl std::future::Future) {} }
/// use contextvars::{ContextExt, ContextVar};
///
/// static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
///
/// async fn background_work() {
///     println!("background task for {:?}", REQUEST_ID.get());
/// }
///
/// REQUEST_ID.scope("req-123".into(), || {
///     tokio::spawn(background_work().with_current_context());
/// });
/// ```
pub trait ContextExt: Sized {
    /// Runs `self` inside `context` (see [`WithContext`]).
    ///
    /// ```
    /// use contextvars::{Context, ContextExt, ContextVar};
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let fut = async { A.get() }.with_context(Context::new().with_value(&A, 1));
    /// assert_eq!(futures::executor::block_on(fut), Some(1));
    /// ```
    fn with_context(self, context: Context) -> WithContext<Self> {
        WithContext::new(self, context)
    }

    /// Runs `self` inside the context current at this call ([`Context::current`]).
    ///
    /// With the `rayon` feature, on a parallel iterator, the closures of the adaptors *after*
    /// it run in the context; some shapes of iterator it cannot reach, because rayon gives no
    /// hook there: items that `chain` or `interleave` bring in after it (put it after them),
    /// parallel iterators created inside a closure, such as those `flat_map` flattens (give
    /// each its own `.with_current_context()`, or use `flat_map_iter`), and closures rayon
    /// calls once per split behind `zip`, `enumerate` and the like. The
    /// `contextvars::rayon` module docs list each case with its fix.
    ///
    /// ```
    /// use contextvars::{ContextExt, ContextVar};
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let fut = A.scope(1, || async { A.get() }.with_current_context());
    /// assert_eq!(futures::executor::block_on(fut), Some(1)); // polled outside the scope
    /// ```
    fn with_current_context(self) -> WithContext<Self> {
        WithContext::new(self, Context::current())
    }
}

impl<T> ContextExt for T {}

pin_project! {
    /// A future that runs with one variable set, on top of the context it runs in: made by
    /// [`ContextVar::scope_future`](crate::ContextVar::scope_future).
    ///
    /// Its context is settled when it is first polled (or dropped, if it never is): the context
    /// current there, plus the variables of the context current where it was made that the
    /// first lacks, plus its own variable on top. So nested `scope_future`s compose like nested
    /// [`scope`](crate::ContextVar::scope)s (the innermost wins), a `scope_future` made inside a
    /// `scope` keeps that scope's values wherever it is polled, and one that is spawned keeps
    /// the context it was made in. From then on it is a [`WithContext`]: what it sets persists
    /// across its polls and never escapes it.
    ///
    /// The context it is first polled in wins over the one it was made in. A future made while
    /// serving one request and first polled inside another's context (handed over through a
    /// channel, say) therefore sees the second request's values for the variables both set. For
    /// a future that must keep exactly the context it was made in, wherever it runs, wrap it
    /// with [`with_current_context`](crate::ContextExt::with_current_context) instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use contextvars::ContextVar;
    ///
    /// static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");
    /// static TENANT: ContextVar<&'static str> = ContextVar::new("tenant");
    ///
    /// let inner = TENANT.scope_future("acme", async { (REQUEST_ID.get(), TENANT.get()) });
    /// let outer = REQUEST_ID.scope_future("req-1", inner);
    /// assert_eq!(futures::executor::block_on(outer), (Some("req-1"), Some("acme")));
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct ScopedFuture<F> {
        // Until the context is settled.
        pending: Option<Pending>,
        #[pin]
        inner: WithContext<F>,
    }

    impl<F> PinnedDrop for ScopedFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Never polled: its destructors still run with the variable set.
            this.settle();
        }
    }
}

/// What a [`ScopedFuture`] applies when it settles its context.
struct Pending {
    captured: Context,
    id: u64,
    value: map::Value,
}

impl<F> ScopedFuture<F> {
    pub(crate) fn new(inner: F, id: u64, value: map::Value) -> ScopedFuture<F> {
        ScopedFuture {
            pending: Some(Pending {
                captured: Context::current(),
                id,
                value,
            }),
            inner: WithContext::new(inner, Context::new()),
        }
    }

    #[inline]
    fn settle(self: Pin<&mut Self>) {
        let this = self.project();
        if let Some(pending) = this.pending.take() {
            let context = Context::current()
                .filling_from(&pending.captured)
                .with_stored(pending.id, pending.value);
            this.inner.set_context(context);
        }
    }

    /// A reference to the wrapped future.
    ///
    /// ```
    /// use contextvars::ContextVar;
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let fut = A.scope_future(1, std::future::ready(5));
    /// let _inner: &std::future::Ready<i32> = fut.inner();
    /// ```
    pub fn inner(&self) -> &F {
        self.inner.inner()
    }

    /// A mutable reference to the wrapped future.
    ///
    /// ```
    /// use contextvars::ContextVar;
    /// static A: ContextVar<u8> = ContextVar::new("a");
    /// let mut fut = A.scope_future(1, std::future::ready(5));
    /// let _inner: &mut std::future::Ready<i32> = fut.inner_mut();
    /// ```
    pub fn inner_mut(&mut self) -> &mut F {
        self.inner.inner_mut()
    }
}

impl<F: Future> Future for ScopedFuture<F> {
    type Output = F::Output;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        self.as_mut().settle();
        self.project().inner.poll(cx)
    }
}

impl<F: fmt::Debug> fmt::Debug for ScopedFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedFuture")
            .field("settled", &self.pending.is_none())
            .field("inner", &self.inner)
            .finish()
    }
}
