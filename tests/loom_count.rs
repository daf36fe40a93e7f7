//! Loom models of the reference-count protocol of `src/raw/count.rs`: handles made from a
//! thread's credits, handles turned back into credits, credits given back, and handles dropped
//! on other threads. Every interleaving loom explores must free the value exactly once, after
//! its last use, and never while a handle or a credit remains.
//!
//! The file is compiled here against loom's atomics (through the `atomic` module below, which
//! `count.rs` names as `super::atomic`). CI runs it in a step of its own with a deeper
//! preemption bound (`LOOM_MAX_PREEMPTIONS`).

#![allow(dead_code)]

mod atomic {
    pub(super) use loom::sync::atomic::{fence, AtomicUsize, Ordering};
}

#[path = "../src/raw/count.rs"]
mod count;

use count::Counted;
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

/// A value that records its drop and whose contents loom checks for racing accesses: a read
/// through a handle that raced with the free would be reported as a causality violation.
struct Tracked {
    data: UnsafeCell<u64>,
    drops: Arc<AtomicUsize>,
}

impl Tracked {
    fn new(drops: &Arc<AtomicUsize>) -> Tracked {
        Tracked {
            data: UnsafeCell::new(7),
            drops: drops.clone(),
        }
    }

    fn read(&self) -> u64 {
        self.data.with(|data| {
            // SAFETY: only read, and only through a live handle; writes happen only in `drop`,
            // when no handle is left (which loom checks).
            unsafe { *data }
        })
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.data.with_mut(|data| {
            // SAFETY: `&mut self`: no other access.
            unsafe { *data = 0 };
        });
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// The owner's side of the crate's use: it keeps one handle as "the current context", takes
/// credits in a batch, makes handles from them, turns a handle back into a credit, and gives
/// back what is left before dropping its own handle.
#[test]
fn handles_made_from_credits_and_dropped_on_other_threads_free_the_value_once() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let current = Counted::new(Tracked::new(&drops));
        let mut credits = 3;
        current.take_credits(credits);
        // Two handles from credits go to other threads.
        let sent: Vec<_> = (0..2)
            .map(|_| {
                credits -= 1;
                // SAFETY: `credits` counted one more spent.
                let handle = unsafe { current.spend_credit() };
                thread::spawn(move || {
                    assert_eq!(handle.read(), 7);
                    drop(handle);
                })
            })
            .collect();
        // One handle made and turned back into a credit on this thread.
        credits -= 1;
        // SAFETY: as above.
        let local = unsafe { current.spend_credit() };
        assert_eq!(local.read(), 7);
        local.into_credit();
        credits += 1;
        // The owner stops being current: its credits go back, then its handle.
        // SAFETY: the thread holds exactly `credits` credits and counts them spent.
        unsafe { current.return_credits(credits) };
        assert_eq!(current.read(), 7);
        drop(current);
        for thread in sent {
            thread.join().unwrap();
        }
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}

/// Two threads each hold credits for the same value (each made it current in turn) while a
/// third drops a plain clone: the value outlives all of them and is freed once.
#[test]
fn two_threads_with_credits_and_a_clone_free_the_value_once() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let root = Counted::new(Tracked::new(&drops));
        let clone = root.clone();
        let other = root.clone();
        let owner = |handle: Counted<Tracked>| {
            move || {
                handle.take_credits(2);
                // SAFETY: two credits held; one spent here.
                let captured = unsafe { handle.spend_credit() };
                assert_eq!(captured.read(), 7);
                captured.into_credit();
                // SAFETY: the two credits (one spent and given back as a credit) go back.
                unsafe { handle.return_credits(2) };
                drop(handle);
            }
        };
        let a = thread::spawn(owner(root));
        let b = thread::spawn(owner(other));
        let c = thread::spawn(move || {
            assert_eq!(clone.read(), 7);
            drop(clone);
        });
        a.join().unwrap();
        b.join().unwrap();
        c.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}

/// `into_inner` on two threads at once: exactly one of them gets the value.
#[test]
fn into_inner_racing_on_two_threads_gives_the_value_to_one() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let a = Counted::new(Tracked::new(&drops));
        let b = a.clone();
        let other = thread::spawn(move || b.into_inner().map(|value| value.read()));
        let here = a.into_inner().map(|value| value.read());
        let there = other.join().unwrap();
        assert_eq!(
            usize::from(here.is_some()) + usize::from(there.is_some()),
            1
        );
        assert_eq!(here.or(there), Some(7));
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}
