//! The diagnostics seam: debug events that say, once, what a trust rule did silently (members
//! withheld from a destination, a caller's request id or baggage set aside). The core names no
//! logger: `integrations::Diagnostics` lists the sinks compiled in (a `tracing` event, a `log`
//! record), each implemented in its adapter's file, `()` when none is.
//!
//! Each fact is reported once per [`Reported`] set (one per [`Propagation`] configuration) and
//! key (a destination's host, or none), so that a service that keeps doing it logs it once, and
//! nothing is formatted or locked unless a sink is enabled.
//!
//! [`Propagation`]: crate::propagation::Propagation

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::integrations;

/// The target of the trust rules' debug events (with the `tracing` feature, a `tracing` event;
/// with `log`, a `log` record): `contextvars::trust`. Enable it to see, once each, what the trust
/// rules withheld or set aside, e.g. `RUST_LOG=contextvars::trust=debug`.
///
/// ```
/// assert_eq!(contextvars::propagation::TRUST_DIAGNOSTICS_TARGET, "contextvars::trust");
/// ```
pub const TARGET: &str = "contextvars::trust";

/// Where diagnostics go: a logger, asked first whether it takes debug events of [`TARGET`].
pub(crate) trait Sink {
    /// Whether a debug event of [`TARGET`] would be recorded.
    fn enabled() -> bool;
    /// Records `message` as a debug event of [`TARGET`].
    fn report(message: &str);
}

impl Sink for () {
    #[inline]
    fn enabled() -> bool {
        false
    }

    fn report(_: &str) {}
}

impl<A: Sink, B: Sink> Sink for (A, B) {
    #[inline]
    fn enabled() -> bool {
        A::enabled() || B::enabled()
    }

    fn report(message: &str) {
        if A::enabled() {
            A::report(message);
        }
        if B::enabled() {
            B::report(message);
        }
    }
}

/// Whether any sink compiled in takes diagnostics now: the only cost on a request's path.
#[inline]
pub(crate) fn enabled() -> bool {
    <integrations::Diagnostics as Sink>::enabled()
}

/// What a diagnostic is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Baggage members or private variables withheld from an untrusted destination.
    Withheld,
    /// An untrusted caller's request id kept apart, not used as the request id.
    CallerIdSetAside,
    /// An untrusted caller's baggage members not read or not forwarded.
    CallerBaggageSetAside,
}

/// The facts already reported, by kind and key; bounded, so that a client calling endless
/// distinct hosts keeps a fixed amount of memory (after [`Reported::MAX`] keys, nothing more
/// is reported).
#[derive(Debug, Default)]
pub(crate) struct Reported {
    seen: Mutex<Vec<(Kind, Box<str>)>>,
    full: AtomicBool,
}

impl Reported {
    const MAX: usize = 64;

    /// Reports the message `describe` makes, unless `(kind, key)` was reported before or no
    /// sink is enabled.
    pub(crate) fn once(&self, kind: Kind, key: &str, describe: impl FnOnce() -> String) {
        if !enabled() || self.full.load(Ordering::Relaxed) {
            return;
        }
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.iter().any(|(k, s)| *k == kind && **s == *key) {
                return;
            }
            if seen.len() >= Reported::MAX {
                self.full.store(true, Ordering::Relaxed);
                return;
            }
            seen.push((kind, key.into()));
        }
        <integrations::Diagnostics as Sink>::report(&describe());
    }
}
