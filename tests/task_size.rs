//! What a task spawned with its context carries over the bare one: the context's pointer, and
//! nothing else (no `Option` around the future, no flag).

mod common;

use std::mem::size_of_val;

use common::report::ReportOnDrop;
use contextvars::{Context, ContextExt, ContextVar};

static DROPPED_IN: ContextVar<u32> = ContextVar::new("dropped_in");

#[test]
fn a_future_with_its_context_is_one_pointer_bigger() {
    let i = 5usize;
    let bare = async move { std::hint::black_box(i) };
    let size = size_of_val(&bare);
    let wrapped = bare.with_context(Context::new());
    assert_eq!(size_of_val(&wrapped), size + size_of::<usize>());
}

/// The future still drops inside its context, and `into_inner` still hands it back whole.
#[test]
fn the_future_drops_in_its_context_and_into_inner_gives_it_back() {
    let (tx, rx) = std::sync::mpsc::channel();
    let probe = ReportOnDrop::new(tx.clone(), || DROPPED_IN.get());
    let future = async move {
        let _probe = &probe;
    };
    drop(future.with_context(Context::new().with_value(&DROPPED_IN, 7)));
    assert_eq!(rx.recv().unwrap(), Some(7));
    assert_eq!(DROPPED_IN.get(), None);

    let probe = ReportOnDrop::new(tx, || DROPPED_IN.get());
    let future = async move {
        let _probe = &probe;
        3
    };
    let inner = future
        .with_context(Context::new().with_value(&DROPPED_IN, 8))
        .into_inner();
    assert_eq!(DROPPED_IN.get(), None);
    assert_eq!(futures::executor::block_on(inner), 3);
    // Dropped by its own poll's end, with no context around it now.
    assert_eq!(rx.recv().unwrap(), None);
}

/// A future whose drop panics: the frame still ends, and the context and its values are dropped
/// exactly once; `into_inner` drops the context once and never the future.
#[test]
fn a_panicking_drop_still_ends_the_frame_and_nothing_drops_twice() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static VALUE_DROPS: AtomicUsize = AtomicUsize::new(0);
    static FUTURE_DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Counted;
    impl Drop for Counted {
        fn drop(&mut self) {
            VALUE_DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    static COUNTED: ContextVar<Counted> = ContextVar::opaque("counted");
    struct Panics(bool);
    impl Drop for Panics {
        fn drop(&mut self) {
            FUTURE_DROPS.fetch_add(1, Ordering::SeqCst);
            assert_eq!(DROPPED_IN.get(), Some(9));
            if self.0 {
                panic!("the future's drop panics");
            }
        }
    }
    impl std::future::Future for Panics {
        type Output = ();
        fn poll(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            std::task::Poll::Ready(())
        }
    }
    let context = || {
        Context::new()
            .with_value(&DROPPED_IN, 9)
            .with_value(&COUNTED, Counted)
    };

    let wrapped = Panics(true).with_context(context());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(wrapped)));
    assert!(outcome.is_err());
    assert_eq!(DROPPED_IN.get(), None, "the frame ended with the panic");
    assert_eq!(FUTURE_DROPS.load(Ordering::SeqCst), 1);
    assert_eq!(VALUE_DROPS.load(Ordering::SeqCst), 1);

    let inner = Panics(false).with_context(context()).into_inner();
    assert_eq!(
        VALUE_DROPS.load(Ordering::SeqCst),
        2,
        "the context dropped once"
    );
    assert_eq!(
        FUTURE_DROPS.load(Ordering::SeqCst),
        1,
        "the future not dropped yet"
    );
    DROPPED_IN.scope(9, || drop(inner));
    assert_eq!(FUTURE_DROPS.load(Ordering::SeqCst), 2);
    assert_eq!(VALUE_DROPS.load(Ordering::SeqCst), 2);
}
