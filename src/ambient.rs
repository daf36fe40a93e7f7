//! The ambient seam: what is current beside this crate's context and travels with it, without
//! ever being stored in a [`Context`]. The integrations that have such a thing (the tracing span,
//! OpenTelemetry's context) implement [`Ambient`] in their own files; `integrations.rs` names the
//! ones compiled in as one type, [`integrations::Ambient`], and the core uses only that type and
//! this trait:
//!
//! - every spawn helper captures it beside the context and runs the child inside it
//!   (`capture.rs`);
//! - a transport's [`Propagation::extract_with`](crate::propagation::Propagation::extract_with)
//!   reads what a carrier brings of it ([`Ambient::extract`], into [`Remote`]), and
//!   [`Propagation::inject_context`](crate::propagation::Propagation::inject_context) writes
//!   the current one ([`Ambient::inject`], [`Ambient::baggage_changes`]).
//!
//! With no such integration compiled in, [`integrations::Ambient`] is made of `()`s: every type
//! below is then the bare one (a spawned task is exactly a [`WithContext`](crate::WithContext)
//! of the future) and every call does nothing.
//!
//! Nesting: a pair `(A, B)` is entered `A` first and left `B` first, and wraps a future as
//! `A`'s wrapper around `B`'s, so `B` is the innermost and wins where both set the same thing.

use crate::integrations;
use crate::propagation::baggage::Baggage;
use crate::propagation::carrier::{Extractor, Injector};
use crate::propagation::trust::Trust;
use crate::Context;

/// Something current that travels beside the context: captured where work is handed on, made
/// current again where the work runs, and (for those that cross processes) read from and
/// written into carriers.
pub(crate) trait Ambient: Sized {
    /// Keeps `&self` current until dropped (see [`enter`](Ambient::enter)): borrowed, so that a
    /// type that can enter by reference (a span) is not cloned for it.
    type Guard<'a>
    where
        Self: 'a;

    /// Keeps `self` current until dropped (see [`entered`](Ambient::entered)).
    type Entered;

    /// A future `F` run inside `self`: every poll, and the drop of `F` where the type allows.
    /// Every implementation makes it a `Future<Output = F::Output>` whenever `F` is one (the
    /// bound cannot be written on the associated type without `F: Future` on every type that
    /// names it; callers name it for the concrete [`integrations::Ambient`], where it
    /// normalizes to a concrete future).
    type Scoped<F>;

    /// What a carrier can bring of it from another process: `Self` for what crosses the wire,
    /// `()` for what never does (a span).
    type Remote: Ambient;

    /// The one current now.
    fn current() -> Self;

    /// Makes `self` current until the guard drops.
    fn enter(&self) -> Self::Guard<'_>;

    /// Makes `self` current until the guard drops, by value (no clone).
    fn entered(self) -> Self::Entered;

    /// `future`, run inside `self`.
    fn scope<F>(self, future: F) -> Self::Scoped<F>;

    /// What `carrier` brings, read as coming from a caller of `trust`. `context` is this crate's
    /// context freshly extracted from the same carrier, which it may add to;
    /// `accepted_baggage(context)` gives the baggage members that extraction accepted.
    fn extract<C: Extractor + ?Sized>(
        trust: Trust,
        accepted_baggage: &dyn Fn(&Context) -> Baggage,
        context: &mut Context,
        carrier: &C,
    ) -> Self::Remote;

    /// Writes the current one's own fields into an outgoing carrier (all but `baggage`, which
    /// is this crate's to write); `context` is the context being sent. Nothing by default.
    fn inject<C: Injector + ?Sized>(context: &Context, carrier: &mut C) {
        let _ = (context, carrier);
    }

    /// Adds to `changes` the baggage members the current one holds that changed since the
    /// request brought them (per `context`, the context being sent) and that `may_send`
    /// allows: the sending side merges them into the `baggage` it writes. Nothing by default.
    fn baggage_changes<'c>(
        context: &'c Context,
        may_send: &dyn Fn(&str) -> bool,
        changes: &mut Vec<BaggageChange<'c>>,
    ) {
        let _ = (context, may_send, changes);
    }

    /// Whether it reads and writes the W3C trace context itself, in a format of the user's
    /// choosing (OpenTelemetry's global propagator, once one is set): then this crate neither
    /// reads `traceparent`/`tracestate` nor forwards them. No by default.
    fn owns_trace_context() -> bool {
        false
    }
}

/// A baggage member an [`Ambient`] changed: written in place of the member this crate wrote
/// under `key`, unless this crate's side changed that key too (its value is no longer the one
/// `received`), where this crate's value wins.
#[derive(Debug)]
pub(crate) struct BaggageChange<'c> {
    pub(crate) key: String,
    pub(crate) value: String,
    /// The value the request brought for `key`, if any.
    pub(crate) received: Option<&'c str>,
}

/// The future type of the compiled-in ambient: `F` inside the span and OTel context captured
/// with it, or `F` itself with neither feature.
pub(crate) type Scoped<F> = <integrations::Ambient as Ambient>::Scoped<F>;

/// What a transport extracts beside the context (with `opentelemetry`, the OTel context).
pub(crate) type Remote = <integrations::Ambient as Ambient>::Remote;

/// A future run inside a [`Remote`].
pub(crate) type RemoteScoped<F> = <Remote as Ambient>::Scoped<F>;

/// Nothing: the ambient of a build without such integrations, and the remote side of those that
/// never cross the wire.
impl Ambient for () {
    type Guard<'a> = ();
    type Entered = ();
    type Scoped<F> = F;
    type Remote = ();

    #[inline]
    fn current() {}

    #[inline]
    fn enter(&self) {}

    #[inline]
    fn entered(self) {}

    #[inline]
    fn scope<F>(self, future: F) -> F {
        future
    }

    #[inline]
    fn extract<C: Extractor + ?Sized>(
        _: Trust,
        _: &dyn Fn(&Context) -> Baggage,
        _: &mut Context,
        _: &C,
    ) {
    }
}

/// Both: `A` outside, `B` inside. `A` is entered first and left last, and its future wrapper is
/// the outer one; `B`, innermost, wins where both make the same thing current.
impl<A: Ambient, B: Ambient> Ambient for (A, B) {
    // Tuples drop their fields in order: `B`'s guard first.
    type Guard<'a>
        = (B::Guard<'a>, A::Guard<'a>)
    where
        Self: 'a;
    type Entered = (B::Entered, A::Entered);
    type Scoped<F> = A::Scoped<B::Scoped<F>>;
    type Remote = (A::Remote, B::Remote);

    #[inline]
    fn current() -> Self {
        (A::current(), B::current())
    }

    #[inline]
    fn enter(&self) -> Self::Guard<'_> {
        let outer = self.0.enter();
        (self.1.enter(), outer)
    }

    #[inline]
    fn entered(self) -> Self::Entered {
        let (a, b) = self;
        let outer = a.entered();
        (b.entered(), outer)
    }

    #[inline]
    fn scope<F>(self, future: F) -> Self::Scoped<F> {
        let (a, b) = self;
        a.scope(b.scope(future))
    }

    #[inline]
    fn extract<C: Extractor + ?Sized>(
        trust: Trust,
        accepted_baggage: &dyn Fn(&Context) -> Baggage,
        context: &mut Context,
        carrier: &C,
    ) -> Self::Remote {
        let a = A::extract(trust, accepted_baggage, context, carrier);
        (a, B::extract(trust, accepted_baggage, context, carrier))
    }

    #[inline]
    fn owns_trace_context() -> bool {
        A::owns_trace_context() || B::owns_trace_context()
    }

    fn inject<C: Injector + ?Sized>(context: &Context, carrier: &mut C) {
        A::inject(context, carrier);
        B::inject(context, carrier);
    }

    #[inline]
    fn baggage_changes<'c>(
        context: &'c Context,
        may_send: &dyn Fn(&str) -> bool,
        changes: &mut Vec<BaggageChange<'c>>,
    ) {
        A::baggage_changes(context, may_send, changes);
        B::baggage_changes(context, may_send, changes);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    thread_local! {
        static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    fn log(line: String) {
        LOG.with(|log| log.borrow_mut().push(line));
    }

    fn take_log() -> Vec<String> {
        LOG.with(|log| std::mem::take(&mut *log.borrow_mut()))
    }

    /// An ambient that logs its entries and exits.
    struct Named(&'static str);

    struct Exit(&'static str);

    impl Drop for Exit {
        fn drop(&mut self) {
            log(format!("exit {}", self.0));
        }
    }

    impl Ambient for Named {
        type Guard<'a> = Exit;
        type Entered = Exit;
        type Scoped<F> = (&'static str, F);
        type Remote = ();

        fn current() -> Named {
            Named("current")
        }

        fn enter(&self) -> Exit {
            log(format!("enter {}", self.0));
            Exit(self.0)
        }

        fn entered(self) -> Exit {
            self.enter()
        }

        fn scope<F>(self, future: F) -> (&'static str, F) {
            (self.0, future)
        }

        fn extract<C: Extractor + ?Sized>(
            _: Trust,
            _: &dyn Fn(&Context) -> Baggage,
            _: &mut Context,
            _: &C,
        ) {
        }

        fn baggage_changes<'c>(
            _: &'c Context,
            may_send: &dyn Fn(&str) -> bool,
            changes: &mut Vec<BaggageChange<'c>>,
        ) {
            if may_send("k") {
                changes.push(BaggageChange {
                    key: "k".into(),
                    value: "v".into(),
                    received: None,
                });
            }
        }
    }

    /// Outer first in, inner first out, by reference and by value, nested pairs too.
    #[test]
    fn a_pair_enters_outer_first_and_leaves_inner_first() {
        let pair = (Named("outer"), Named("inner"));
        drop(pair.enter());
        drop(pair.entered());
        let nested = (Named("a"), (Named("b"), Named("c")));
        drop(nested.enter());
        assert_eq!(
            take_log(),
            [
                "enter outer",
                "enter inner",
                "exit inner",
                "exit outer",
                "enter outer",
                "enter inner",
                "exit inner",
                "exit outer",
                "enter a",
                "enter b",
                "enter c",
                "exit c",
                "exit b",
                "exit a",
            ]
        );
    }

    #[test]
    fn a_pair_wraps_outer_around_inner_and_nothing_is_nothing() {
        let scoped: (&str, (&str, u8)) = (Named("outer"), Named("inner")).scope(7);
        assert_eq!(scoped, ("outer", ("inner", 7)));
        let bare: u8 = ((), ()).scope(7);
        assert_eq!(bare, 7);
        assert_eq!(std::mem::size_of::<<((), ()) as Ambient>::Entered>(), 0);
    }

    #[test]
    fn a_pair_gathers_both_sides_baggage_changes() {
        let context = Context::new();
        let mut changes = Vec::new();
        <(Named, ((), Named))>::baggage_changes(&context, &|_| true, &mut changes);
        assert_eq!(changes.len(), 2);
        changes.clear();
        <(Named, Named)>::baggage_changes(&context, &|_| false, &mut changes);
        assert!(changes.is_empty());
    }
}
