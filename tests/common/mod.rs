//! Helpers shared by the integration tests, one module per topic. Every test file is a crate of
//! its own that uses some of them: dead code is allowed here, and a module that needs a feature
//! is compiled only with it.
#![allow(dead_code)]

pub(crate) mod bad_input;
pub(crate) mod buffer;
#[cfg(any(feature = "tower", feature = "actix-web"))]
pub(crate) mod http;
#[cfg(feature = "log")]
pub(crate) mod logger;
pub(crate) mod nats_server;
pub(crate) mod propagation;
pub(crate) mod report;
pub(crate) mod scenarios;
pub(crate) mod stress;
#[cfg(any(feature = "tokio", feature = "actix-web"))]
pub(crate) mod tokio_task;
pub(crate) mod w3c_suite;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

/// Polls `future` once with a no-op waker.
pub(crate) fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut TaskContext::from_waker(futures::task::noop_waker_ref()))
}

/// A future that returns `Pending` `n` times (waking itself) before completing.
pub(crate) struct Yield(pub usize);

impl Future for Yield {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Counts how many of its clones have been dropped.
#[derive(Debug)]
pub(crate) struct DropCounter(pub Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A value whose destructor panics, with [`Boom`] as the payload (tests that catch it keep it
/// out of their output with a panic hook that skips `Boom`s).
pub(crate) struct Bomb;

/// The payload of a [`Bomb`]'s panic.
pub(crate) struct Boom;

impl Drop for Bomb {
    fn drop(&mut self) {
        std::panic::panic_any(Boom);
    }
}
