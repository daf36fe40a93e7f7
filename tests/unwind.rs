//! Destructors and `Clone`s that panic while a frame ends or a context is replaced: the frame
//! still ends, the thread's context is the one it found, and nothing a panicking value held
//! reaches the code around it (the audit of issue #23, holes 1 to 3).
//!
//! Each test makes a context holding a [`Bomb`], a value whose destructor panics, makes it the
//! frame's current context through a guard that is never dropped (`mem::forget`), and lets the
//! frame end: the frame discards that context, the bomb goes off. The panic is caught around the
//! frame; the thread must then be exactly as before, at the same frame depth.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context as TaskContext, Poll};

use common::{Bomb, Boom};
use contextvars::{Context, ContextExt, ContextGuard, ContextVar};

static SECRET: ContextVar<u32> = ContextVar::new("secret");
static BOMB: ContextVar<Bomb> = ContextVar::opaque("bomb");

fn quiet_booms() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Boom>().is_none() {
                default(info);
            }
        }));
    });
}

/// A context whose only handle is the one returned: dropping it sets the bomb off.
fn armed() -> Context {
    Context::new().with_value(&BOMB, Bomb)
}

/// Attaches `armed()` in the current frame and never detaches it: the frame's end discards it.
fn forget_an_armed_guard() {
    mem::forget(armed().attach());
}

/// Runs `f`, which must panic with a [`Boom`].
fn expect_boom(f: impl FnOnce()) {
    quiet_booms();
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    match outcome {
        Err(payload) => assert!(payload.is::<Boom>(), "the bomb's panic, not another one"),
        Ok(()) => panic!("the bomb did not go off"),
    }
}

/// The thread is back where it was: nothing set, and the frame depth is the top level again
/// (a guard attached now and dropped restores the empty context, and a value set inside a
/// fresh frame ends with it).
fn assert_clean() {
    assert_eq!(
        SECRET.get(),
        None,
        "the ended frame's value stayed on the thread"
    );
    assert!(!BOMB.is_set());
    Context::new().run(|| SECRET.set(9));
    assert_eq!(SECRET.get(), None);
    let guard = Context::new().with_value(&SECRET, 1).attach();
    assert_eq!(SECRET.get(), Some(1));
    drop(guard);
    assert_eq!(SECRET.get(), None);
}

#[test]
fn a_scope_ends_when_a_forgotten_guards_context_panics_on_drop() {
    std::thread::spawn(|| {
        expect_boom(|| SECRET.scope(42, forget_an_armed_guard));
        assert_clean();
    })
    .join()
    .unwrap();
}

#[test]
fn a_run_ends_when_a_forgotten_guards_context_panics_on_drop() {
    std::thread::spawn(|| {
        let outer = Context::new().with_value(&SECRET, 7).attach();
        expect_boom(|| {
            Context::new()
                .with_value(&SECRET, 42)
                .run(forget_an_armed_guard)
        });
        assert_eq!(SECRET.get(), Some(7), "the caller's own context is back");
        drop(outer);
        assert_clean();
    })
    .join()
    .unwrap();
}

/// Several forgotten guards in one frame, the bomb under the oldest: every discarded context
/// goes, and the frame still ends first.
#[test]
fn a_frame_with_several_forgotten_guards_ends_before_the_bomb_goes_off() {
    std::thread::spawn(|| {
        expect_boom(|| {
            SECRET.scope(42, || {
                forget_an_armed_guard();
                mem::forget(Context::current().with_value(&SECRET, 43).attach());
                SECRET.set(44);
                mem::forget(Context::new().with_value(&SECRET, 45).attach());
            })
        });
        assert_clean();
    })
    .join()
    .unwrap();
}

/// A guard of an outer frame dropped inside an inner one takes effect when the inner frame ends
/// (a pending drop); the context it discards then holds the bomb.
#[test]
fn a_pending_guard_drop_that_panics_leaves_both_frames_consistent() {
    std::thread::spawn(|| {
        SECRET.scope(1, || {
            let guard = armed().with_value(&SECRET, 2).attach();
            assert_eq!(SECRET.get(), Some(2));
            expect_boom(|| {
                Context::new().with_value(&SECRET, 3).run(move || {
                    drop(guard);
                    assert_eq!(SECRET.get(), Some(3), "the inner frame is left alone");
                })
            });
            assert_eq!(SECRET.get(), Some(1), "the guard's drop took effect");
            assert!(!BOMB.is_set());
        });
        assert_clean();
    })
    .join()
    .unwrap();
}

/// A `WithContext` whose poll forgets an armed guard: the poll panics, and the thread is left as
/// it was found (the next poll on the thread, of an unrelated future, does not see the task's
/// value).
#[test]
fn a_poll_ends_when_a_forgotten_guards_context_panics_on_drop() {
    std::thread::spawn(|| {
        let mut task = Box::pin(
            std::future::poll_fn(|_| {
                forget_an_armed_guard();
                Poll::Ready(())
            })
            .with_context(Context::new().with_value(&SECRET, 42)),
        );
        expect_boom(|| {
            let _ = common::poll_once(task.as_mut());
        });
        assert_clean();
        let mut plain = std::pin::pin!(async { SECRET.get() });
        assert_eq!(common::poll_once(plain.as_mut()), Poll::Ready(None));
    })
    .join()
    .unwrap();
}

/// The drop of a `WithContext`'s future (in its frame) forgets an armed guard.
#[test]
fn a_task_drop_ends_when_a_forgotten_guards_context_panics_on_drop() {
    struct ForgetsOnDrop;
    impl Future for ForgetsOnDrop {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<()> {
            Poll::Pending
        }
    }
    impl Drop for ForgetsOnDrop {
        fn drop(&mut self) {
            assert_eq!(SECRET.get(), Some(42), "dropped inside its context");
            forget_an_armed_guard();
        }
    }
    std::thread::spawn(|| {
        let mut task = Box::pin(ForgetsOnDrop.with_context(Context::new().with_value(&SECRET, 42)));
        assert!(common::poll_once(task.as_mut()).is_pending());
        expect_boom(|| drop(task));
        assert_clean();
    })
    .join()
    .unwrap();
}

/// A value's destructor (run in a frame of its own) forgets an armed guard.
#[test]
fn a_value_drop_frame_ends_when_a_forgotten_guards_context_panics_on_drop() {
    struct ForgetsOnDrop;
    impl Drop for ForgetsOnDrop {
        fn drop(&mut self) {
            assert_eq!(
                SECRET.get(),
                None,
                "values are dropped in the empty context"
            );
            forget_an_armed_guard();
        }
    }
    static VALUE: ContextVar<ForgetsOnDrop> = ContextVar::opaque("value");
    std::thread::spawn(|| {
        SECRET.scope(5, || {
            let context = Context::new().with_value(&VALUE, ForgetsOnDrop);
            expect_boom(|| drop(context));
            assert_eq!(SECRET.get(), Some(5));
            assert!(!BOMB.is_set());
        });
        assert_clean();
    })
    .join()
    .unwrap();
}

/// A guard dropped at the thread's top level that discards the bomb: the panic comes after the
/// guard's context is detached.
#[test]
fn a_guard_whose_context_panics_on_drop_is_detached_first() {
    std::thread::spawn(|| {
        let outer = Context::new().with_value(&SECRET, 1).attach();
        let guard = armed().with_value(&SECRET, 2).attach();
        expect_boom(|| drop(guard));
        assert_eq!(SECRET.get(), Some(1));
        drop(outer);
        assert_clean();
    })
    .join()
    .unwrap();
}

// Hole 2: a `Clone` that removes its own variable and then panics.

thread_local! {
    /// What the last `Tricky` dropped saw: the value of `SECRET` in the context it was dropped in.
    static DROPPED_IN: Cell<Option<Option<u32>>> = const { Cell::new(None) };
}

/// Its `Clone` removes its own variable from the current context (so that the reader holds
/// the last reference to it), then panics; its `Drop` records where it runs and sets a value.
struct Tricky;

static TRICKY: ContextVar<Tricky> = ContextVar::opaque("tricky");

impl Clone for Tricky {
    fn clone(&self) -> Tricky {
        TRICKY.remove();
        panic::panic_any(Boom);
    }
}

impl Drop for Tricky {
    fn drop(&mut self) {
        DROPPED_IN.set(Some(SECRET.get()));
        SECRET.set(666);
    }
}

#[test]
fn a_clone_that_removes_its_variable_and_panics_drops_the_value_in_the_empty_context() {
    std::thread::spawn(|| {
        SECRET.scope(7, || {
            TRICKY.scope(Tricky, || {
                expect_boom(|| {
                    let _ = TRICKY.get();
                });
                assert_eq!(
                    DROPPED_IN.get(),
                    Some(None),
                    "the value was dropped with the empty context current"
                );
                assert_eq!(
                    SECRET.get(),
                    Some(7),
                    "what its destructor set ended with it"
                );
                assert!(!TRICKY.is_set());
            });
        });
        assert_clean();
    })
    .join()
    .unwrap();
}

// Hole 3: guards at thread teardown, after the crate's guard list is gone.

thread_local! {
    /// Registered early, destroyed late: records what `SECRET` reads during teardown, and
    /// whether the guard was dropped by then.
    static OBSERVER: RefCell<Option<Observer>> = const { RefCell::new(None) };
    /// Keeps a guard until its destructor runs.
    static KEPT: RefCell<Option<Kept>> = const { RefCell::new(None) };
    /// Attaches (and drops) a guard from its destructor.
    static ATTACHER: RefCell<Option<Attacher>> = const { RefCell::new(None) };
    /// Set once the guard's drop has run.
    static GUARD_GONE: Cell<bool> = const { Cell::new(false) };
}

struct Observer(mpsc::Sender<(bool, Option<u32>)>);

impl Drop for Observer {
    fn drop(&mut self) {
        let gone = GUARD_GONE.try_with(Cell::get).unwrap_or(true);
        let _ = self.0.send((gone, SECRET.get()));
    }
}

/// Drops its guard, then marks it gone.
struct Kept(Option<ContextGuard>);

impl Drop for Kept {
    fn drop(&mut self) {
        drop(self.0.take());
        let _ = GUARD_GONE.try_with(|gone| gone.set(true));
    }
}

struct Attacher(mpsc::Sender<bool>);

impl Drop for Attacher {
    fn drop(&mut self) {
        let attached = Context::new().with_value(&SECRET, 13).try_attach();
        let _ = self.0.send(attached.is_ok());
        drop(attached);
        let _ = GUARD_GONE.try_with(|gone| gone.set(true));
    }
}

/// Thread-local destructors run in an order that this test sets up by the order of first use
/// (on Linux, the reverse of it); every destructor that runs after the guard is gone must not
/// see the guard's context, whatever the order.
fn observations_after_teardown(setup: impl FnOnce() + Send + 'static) -> Vec<(bool, Option<u32>)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // The crate's storage first (a frame registers its destructor), then the observer,
        // then whatever `setup` does, which uses the guard list last.
        Context::new().run(|| ());
        OBSERVER.with(|slot| *slot.borrow_mut() = Some(Observer(tx)));
        setup();
    })
    .join()
    .unwrap();
    rx.iter().collect()
}

#[test]
fn a_guard_kept_in_a_thread_local_ends_with_the_thread_not_after_it() {
    let seen = observations_after_teardown(|| {
        KEPT.with(|slot| slot.borrow_mut().take());
        GUARD_GONE.set(false);
        // The guard list is used last (by this attach): destroyed before `KEPT`.
        let guard = Context::new().with_value(&SECRET, 12).attach();
        KEPT.with(|slot| *slot.borrow_mut() = Some(Kept(Some(guard))));
        assert_eq!(SECRET.get(), Some(12));
    });
    assert_eq!(seen.len(), 1, "the observer ran");
    for (gone, value) in seen {
        if gone {
            assert_eq!(
                value, None,
                "a destructor after the guard's end saw its context"
            );
        }
    }
}

#[test]
fn a_guard_attached_in_a_thread_local_destructor_never_outlives_its_drop() {
    let (attached_tx, attached_rx) = mpsc::channel();
    let seen = observations_after_teardown(move || {
        ATTACHER.with(|slot| *slot.borrow_mut() = Some(Attacher(attached_tx)));
        // The guard list is used last: destroyed first.
        drop(Context::new().attach());
    });
    let attached = attached_rx.recv().expect("the attacher ran");
    assert_eq!(seen.len(), 1, "the observer ran");
    let (gone, value) = seen[0];
    assert!(gone, "the observer ran after the attacher");
    assert_eq!(
        value, None,
        "a later destructor saw the context of a guard attached (ok: {attached}) and dropped earlier"
    );
}

#[cfg(feature = "tokio")]
#[test]
fn on_a_current_thread_runtime_the_next_plain_task_does_not_see_a_panicked_tasks_context() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    quiet_booms();
    runtime.block_on(async {
        let failed = tokio::spawn(
            async {
                forget_an_armed_guard();
            }
            .with_context(Context::new().with_value(&SECRET, 42)),
        )
        .await;
        assert!(failed.unwrap_err().is_panic());
        let next = tokio::spawn(async { SECRET.get() }).await.unwrap();
        assert_eq!(
            next, None,
            "the next, unrelated task read the panicked task's value"
        );
    });
}

#[cfg(feature = "rayon")]
#[test]
fn on_rayon_a_plain_job_after_a_panicked_one_is_still_refused_a_stray_set() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    quiet_booms();
    let failed =
        pool.install(|| panic::catch_unwind(|| SECRET.scope(42, forget_an_armed_guard)).is_err());
    assert!(failed);
    let (read, refused) = pool.install(|| (SECRET.get(), SECRET.try_set(1).is_err()));
    assert_eq!(read, None);
    assert!(
        refused,
        "a plain job's set was accepted: the worker stayed a frame deep"
    );
    assert_eq!(pool.install(|| SECRET.get()), None);
}

/// Values whose destructors panic, still current at the thread's top level and under a
/// forgotten guard when the thread exits: a panic in a thread-local destructor would abort the
/// process, so the crate's storage stops it (the panic hook reports it). (A guard the user
/// keeps in a thread-local of their own is dropped by that thread-local's destructor, and a
/// panic there is theirs, as with any value.)
#[test]
fn a_value_that_panics_on_drop_at_thread_exit_does_not_abort_the_process() {
    quiet_booms();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        GUARD_GONE.set(true);
        OBSERVER.with(|slot| *slot.borrow_mut() = Some(Observer(tx)));
        BOMB.set(Bomb);
        SECRET.set(1);
        mem::forget(armed().with_value(&SECRET, 2).attach());
        assert_eq!(SECRET.get(), Some(2));
    })
    .join()
    .expect("the thread ended normally");
    // The observer ran after the guard list (registered before it): the forgotten guard had
    // ended with it.
    for (_, value) in rx.iter() {
        assert_ne!(value, Some(2));
    }
}
