//! Adversarial tests of `src/raw.rs` (the read path that clones values in place, the read cache,
//! `TaskSlot`): user code that runs while `get` holds a reference into the current context.
//!
//! `String::clone` and `Box<str>::clone` allocate, and the global allocator is user code: it can
//! call back into the crate in the middle of the clone. This binary installs an allocator that,
//! when armed on the current thread, runs a callback (once) from inside an allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};

use contextvars::{Context, ContextVar};

struct Reentrant;

thread_local! {
    /// The callback to run from inside the next allocation of this thread.
    static HOOK: RefCell<Option<Box<dyn FnOnce()>>> = const { RefCell::new(None) };
    /// Set while the hook runs: its own allocations go straight to the system.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
    /// Allocations to let through before the hook runs.
    static SKIP: Cell<usize> = const { Cell::new(0) };
}

fn run_hook() {
    let _ = IN_HOOK.try_with(|in_hook| {
        if in_hook.get() {
            return;
        }
        let armed = HOOK
            .try_with(|hook| hook.try_borrow().is_ok_and(|hook| hook.is_some()))
            .unwrap_or(false);
        if !armed {
            return;
        }
        if let Ok(skip) = SKIP.try_with(|skip| skip.replace(skip.get().saturating_sub(1))) {
            if skip > 0 {
                return;
            }
        }
        let hook = HOOK
            .try_with(|hook| hook.try_borrow_mut().ok().and_then(|mut hook| hook.take()))
            .ok()
            .flatten();
        if let Some(hook) = hook {
            in_hook.set(true);
            hook();
            in_hook.set(false);
        }
    });
}

// SAFETY: forwards to `System`; the hook runs no allocator code of its own here.
unsafe impl GlobalAlloc for Reentrant {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        run_hook();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Reentrant = Reentrant;

/// Runs `hook` from inside the next allocation of this thread.
fn arm(hook: impl FnOnce() + 'static) {
    arm_after(0, hook);
}

/// Runs `hook` from inside the allocation after the next `skip` ones of this thread.
fn arm_after(skip: usize, hook: impl FnOnce() + 'static) {
    SKIP.with(|slot| slot.set(skip));
    HOOK.with(|slot| *slot.borrow_mut() = Some(Box::new(hook)));
}

/// Disarms the hook; whether it had run.
fn disarm() -> bool {
    HOOK.with(|slot| slot.borrow_mut().take().is_none())
}

static NAME: ContextVar<String> = ContextVar::new("name");
static BOXED: ContextVar<Box<str>> = ContextVar::new("boxed");

/// The allocation made by `String::clone` replaces the value being cloned (the last reference to
/// the context): the clone must still copy the value it started from, not freed memory.
#[test]
fn a_set_from_the_allocator_during_get_does_not_free_the_value_being_cloned() {
    std::thread::spawn(|| {
        let original = "a".repeat(64);
        NAME.set(original.clone());
        arm(|| NAME.set("b".repeat(64)));
        let seen = NAME.get();
        // The clone reads the value it started from; the old code read freed memory here
        // (valgrind reports it; the bytes read are usually garbage).
        let seen = seen.expect("set");
        assert_eq!(seen, original);
    })
    .join()
    .unwrap();
}

#[test]
fn a_remove_from_the_allocator_during_get_does_not_free_the_value_being_cloned() {
    std::thread::spawn(|| {
        let original: Box<str> = "c".repeat(64).into();
        BOXED.set(original.clone());
        arm(|| BOXED.remove());
        let seen = BOXED.get().expect("set");
        assert_eq!(seen, original);
    })
    .join()
    .unwrap();
}

/// A set from the allocator while `get` copies a `String` is an ordinary set: accepted, and
/// seen by the next read (the copy reads the value it started from, which the copy keeps alive).
#[test]
fn a_set_from_the_allocator_during_get_is_accepted() {
    std::thread::spawn(|| {
        NAME.set("e".repeat(64));
        let (tx, rx) = std::sync::mpsc::channel();
        arm(move || {
            let _ = tx.send(NAME.try_set("f".repeat(64)).is_ok());
        });
        assert_eq!(NAME.get(), Some("e".repeat(64)));
        assert!(
            rx.recv().unwrap(),
            "the set from the allocator was accepted"
        );
        assert_eq!(NAME.get(), Some("f".repeat(64)));
    })
    .join()
    .unwrap();
}

static OTHER: ContextVar<u32> = ContextVar::new("other");

/// What the allocator's hook saw inside a frame of its own: `OTHER` as the frame set it, and
/// `NAME` unset (the caller's context does not reach in).
fn hook_runs_its_own_frame(tx: std::sync::mpsc::Sender<(Option<u32>, bool)>) -> impl FnOnce() {
    move || {
        let seen = Context::new()
            .with_value(&OTHER, 5)
            .run(|| (OTHER.get(), NAME.is_set()));
        let _ = tx.send(seen);
    }
}

/// Hole 4 of issue #23: `other.run(f)` reached from the global allocator while `get` copies a
/// `String` used to run `f` in the caller's context (its frame was refused, silently).
#[test]
fn a_run_from_the_allocator_during_get_runs_in_its_own_frame() {
    std::thread::spawn(|| {
        NAME.set("h".repeat(64));
        let (tx, rx) = std::sync::mpsc::channel();
        arm(hook_runs_its_own_frame(tx));
        assert_eq!(NAME.get(), Some("h".repeat(64)));
        assert_eq!(rx.recv().unwrap(), (Some(5), false));
    })
    .join()
    .unwrap();
}

/// The same, from inside `set` building its new map (its second allocation: the first stores
/// the value), and a set of another variable there is kept, not overwritten by the outer set.
#[test]
fn a_run_and_a_set_from_the_allocator_during_set_are_honoured() {
    std::thread::spawn(|| {
        NAME.set("i".repeat(64));
        let (tx, rx) = std::sync::mpsc::channel();
        let value = "j".repeat(64);
        let copy = value.clone();
        arm_after(1, hook_runs_its_own_frame(tx));
        NAME.set(copy);
        assert!(disarm(), "the hook ran");
        assert_eq!(rx.recv().unwrap(), (Some(5), false));
        assert_eq!(NAME.get(), Some(value));

        let value = "k".repeat(64);
        let copy = value.clone();
        arm_after(1, || OTHER.set(3));
        NAME.set(copy);
        assert!(disarm(), "the hook ran");
        assert_eq!(NAME.get(), Some(value));
        assert_eq!(OTHER.get(), Some(3), "the allocator's set was lost");
    })
    .join()
    .unwrap();
}

/// `set` builds its new context from the current one while it allocates; a set from the
/// allocator meanwhile replaces the current context, whose last handle it held: the build must
/// still read live memory (valgrind and Miri check this), and the allocator's set is kept. At
/// 10 variables the next `set` turns the flat array into a trie (it collects the entries into a
/// `Vec` first); at 40 it copies a trie path, node by node.
#[test]
fn a_set_from_the_allocator_while_set_copies_the_old_context_reads_live_memory() {
    seq_macro::seq!(N in 0..40 {
        static VARS: [ContextVar<u64>; 40] = [#(ContextVar::new("v"),)*];
    });
    for size in [10, 40] {
        for skip in 1..5 {
            std::thread::spawn(move || {
                for (i, var) in VARS.iter().enumerate().take(size) {
                    var.set(i as u64);
                }
                // The thread's top level holds the only handle of the current context.
                arm_after(skip, || OTHER.set(3));
                NAME.set(String::new());
                let ran = disarm();
                assert_eq!(NAME.get().as_deref(), Some(""));
                assert_eq!(OTHER.get(), ran.then_some(3), "size {size}, skip {skip}");
                for (i, var) in VARS.iter().enumerate().take(size) {
                    assert_eq!(var.get(), Some(i as u64));
                }
            })
            .join()
            .unwrap();
        }
    }
}

/// A value dropped from inside the allocator while `get` copies a `String` is dropped in the
/// empty context, like every value.
#[test]
fn a_value_dropped_from_the_allocator_during_get_sees_the_empty_context() {
    struct Reports(std::sync::mpsc::Sender<bool>);
    impl Drop for Reports {
        fn drop(&mut self) {
            let _ = self.0.send(NAME.is_set());
        }
    }
    static REPORTS: ContextVar<Reports> = ContextVar::opaque("reports");
    std::thread::spawn(|| {
        NAME.set("l".repeat(64));
        let (tx, rx) = std::sync::mpsc::channel();
        let context = Context::new().with_value(&REPORTS, Reports(tx));
        arm(move || drop(context));
        assert_eq!(NAME.get(), Some("l".repeat(64)));
        assert!(
            !rx.recv().unwrap(),
            "the destructor saw the caller's variables"
        );
    })
    .join()
    .unwrap();
}

/// Every public entry point, with the allocator calling back into the crate at each of its
/// first allocations: the callback's own frame is honoured, and the caller's context is what
/// the entry point alone would leave.
#[test]
fn every_entry_point_honours_a_frame_opened_from_the_allocator() {
    use contextvars::ContextExt;
    #[derive(Clone)]
    struct User(#[allow(dead_code)] String);
    static USER: ContextVar<User> = ContextVar::opaque("user");
    type Entry = (&'static str, fn());
    let entries: [Entry; 13] = [
        ("get String", || drop(NAME.get())),
        ("get user type", || drop(USER.get())),
        ("set", || NAME.set("m".repeat(40))),
        ("try_set", || NAME.try_set("n".repeat(40)).unwrap()),
        ("remove", || USER.remove()),
        ("scope", || NAME.scope("o".repeat(40), || drop(NAME.get()))),
        ("run", || {
            Context::current().run(|| NAME.set("p".repeat(40)))
        }),
        ("attach", || {
            drop(Context::current().with_value(&NAME, "q".into()).attach())
        }),
        ("current", || drop(Context::current())),
        ("with_value", || {
            drop(Context::new().with_value(&USER, User("r".repeat(40))))
        }),
        ("with", || NAME.with(|name| drop(name.cloned()))),
        ("poll", || {
            let future = async { NAME.get() }.with_context(Context::new());
            assert_eq!(futures::executor::block_on(future), None);
        }),
        ("drop", || {
            drop(
                Context::new()
                    .with_value(&USER, User("s".repeat(40)))
                    .with_value(&OTHER, 1),
            )
        }),
    ];
    std::thread::spawn(move || {
        for (name, entry) in entries {
            for skip in 0..4 {
                Context::new().run(|| {
                    NAME.set("base".repeat(10));
                    USER.set(User("u".repeat(40)));
                    let (tx, rx) = std::sync::mpsc::channel();
                    arm_after(skip, hook_runs_its_own_frame(tx));
                    entry();
                    let ran = disarm();
                    if ran {
                        assert_eq!(
                            rx.recv().unwrap(),
                            (Some(5), false),
                            "{name}: the frame opened from allocation {skip} was not its own"
                        );
                    }
                    assert_eq!(OTHER.get(), None, "{name}: the hook's frame leaked out");
                });
                assert_eq!(NAME.get(), None, "{name}");
            }
        }
    })
    .join()
    .unwrap();
}

/// A `!Unpin` future that records its address at every poll and at its drop: `WithContext`
/// pins it structurally, so the address never changes once it has been polled, and it is
/// dropped exactly once, in place, inside its context.
#[test]
fn the_future_is_pinned_in_place_from_first_poll_to_drop_and_dropped_once() {
    use std::future::Future;
    use std::marker::PhantomPinned;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Context as TaskContext, Poll};

    use contextvars::{Context, ContextExt};

    static IN: ContextVar<u32> = ContextVar::new("in");
    /// Where the future was and what it saw, at each poll and at its drop.
    type Seen = Arc<Mutex<Vec<(usize, Option<u32>)>>>;
    struct Pinned {
        seen: Seen,
        drops: Arc<AtomicUsize>,
        _pin: PhantomPinned,
    }
    impl Future for Pinned {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
            let address = &*self as *const Self as usize;
            let mut seen = self.seen.lock().unwrap();
            seen.push((address, IN.get()));
            if seen.len() < 3 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(())
        }
    }
    impl Drop for Pinned {
        fn drop(&mut self) {
            let address = self as *const Self as usize;
            self.seen.lock().unwrap().push((address, IN.get()));
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let drops = Arc::new(AtomicUsize::new(0));
    let future = Pinned {
        seen: seen.clone(),
        drops: drops.clone(),
        _pin: PhantomPinned,
    }
    .with_context(Context::new().with_value(&IN, 4));
    // Moved before its first poll (allowed), then pinned on the heap and polled to the end.
    let moved = vec![future];
    let mut boxed = Box::pin(moved.into_iter().next().unwrap());
    futures::executor::block_on(boxed.as_mut());
    drop(boxed);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4, "three polls and one drop: {seen:?}");
    assert!(
        seen.iter().all(|&(address, _)| address == seen[0].0),
        "moved: {seen:?}"
    );
    assert!(seen.iter().all(|&(_, value)| value == Some(4)), "{seen:?}");
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(IN.get(), None);
}

/// A context whose root is freed on another thread while this thread's cache still holds an
/// entry for it, then new contexts made here (whose roots may reuse the freed address): `get`
/// never returns the freed root's value.
#[test]
fn a_cached_root_freed_on_another_thread_is_never_read_again() {
    static V: ContextVar<u64> = ContextVar::new("v");
    static S: ContextVar<String> = ContextVar::new("s");
    // Fewer under Miri, which interprets every step (its allocator reuses addresses too).
    const ROUNDS: u64 = if cfg!(miri) { 100 } else { 2_000 };
    std::thread::spawn(|| {
        for round in 0..ROUNDS {
            let context = Context::new()
                .with_value(&V, round)
                .with_value(&S, round.to_string());
            context.run(|| {
                assert_eq!(V.get(), Some(round));
                assert_eq!(S.get(), Some(round.to_string()));
            });
            // Freed on another thread, after this thread cached its entries.
            std::thread::spawn(move || drop(context)).join().unwrap();
            // A fresh context, likely at the same address, without the variables.
            let fresh = Context::new().with_value(&V, u64::MAX - round);
            fresh.run(|| {
                assert_eq!(V.get(), Some(u64::MAX - round));
                assert_eq!(S.get(), None);
            });
        }
    })
    .join()
    .unwrap();
}

/// Values whose destructors read (through the cache) and set while the thread's context
/// storage is being torn down, and a value whose drop replaces the context holding it.
#[test]
fn reads_and_sets_from_destructors_at_thread_exit_and_from_a_replaced_context() {
    static N: ContextVar<u64> = ContextVar::new("n");
    static ON_DROP: ContextVar<Arc<OnDrop>> = ContextVar::opaque("on_drop");
    use std::sync::Arc;
    struct OnDrop(std::sync::mpsc::Sender<Option<u64>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            let before = N.get();
            let _ = N.try_set(99);
            let _ = self.0.send(before);
            let _ = self.0.send(N.get());
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        // Left current at the thread's top level: dropped with the thread's storage.
        N.set(1);
        ON_DROP.set(Arc::new(OnDrop(tx2)));
        assert_eq!(N.get(), Some(1));
    })
    .join()
    .unwrap();
    let first = rx.recv().unwrap();
    let second = rx.recv().unwrap();
    // Values drop in a frame of their own with the empty context, or with no storage at all.
    assert_eq!(first, None);
    assert!(second.is_none() || second == Some(99));

    std::thread::spawn(move || {
        N.set(5);
        ON_DROP.set(Arc::new(OnDrop(tx)));
        // The only reference to the context holding `OnDrop`: replaced, so dropped.
        N.set(6);
        ON_DROP.remove();
        assert_eq!(N.get(), Some(6));
        Context::new().attach().forget_for_test();
        assert_eq!(N.get(), None);
    })
    .join()
    .unwrap();
    assert_eq!(rx.recv().unwrap(), None);
    assert_eq!(rx.recv().unwrap(), Some(99));
}

trait ForgetForTest {
    fn forget_for_test(self);
}
impl<T> ForgetForTest for T {
    fn forget_for_test(self) {
        std::mem::forget(self);
    }
}
