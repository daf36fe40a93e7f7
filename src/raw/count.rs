//! [`Counted`]: a shared, reference-counted value (what `Arc` is) whose references a thread can
//! also take and give back in batches, as *credits*.
//!
//! The count is the number of live handles plus the credits that threads hold. A thread that
//! holds credits for a value makes handles out of them ([`Counted::spend_credit`]) and turns its
//! own handles back into credits ([`Counted::into_credit`]) without touching the shared count;
//! it takes credits with one `fetch_add` ([`Counted::take_credits`]) and gives back what is left
//! with one `fetch_sub` ([`Counted::return_credits`]), always while it still holds a handle, so
//! that giving credits back never ends the value's life: only the drop of a handle does, exactly
//! as with `Arc` (release decrement, acquire fence on the last one).
//!
//! This file names its atomics through `super::atomic`, so that `tests/loom_count.rs` can
//! include it with loom's atomics and check the protocol under every interleaving loom explores.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::NonNull;

use super::atomic::{fence, AtomicUsize, Ordering};

/// The most references a value can have (as for `Arc`, far above anything reachable, so that an
/// overflow can be caught before it wraps).
const MAX_REFS: usize = isize::MAX as usize;

struct Inner<T> {
    count: AtomicUsize,
    value: T,
}

/// A handle to a shared value, freed when the last handle drops.
pub(crate) struct Counted<T> {
    ptr: NonNull<Inner<T>>,
    _owns: PhantomData<Inner<T>>,
}

// SAFETY: a handle gives shared access to `T` (`Deref`) from any thread, and the last handle,
// on whatever thread, drops `T`: the same bounds as `Arc<T>`'s.
unsafe impl<T: Send + Sync> Send for Counted<T> {}
// SAFETY: as above: `&Counted<T>` only gives `&T` and lets a thread clone a handle.
unsafe impl<T: Send + Sync> Sync for Counted<T> {}

impl<T> Counted<T> {
    /// A new value with one handle.
    pub(crate) fn new(value: T) -> Counted<T> {
        let inner = Box::new(Inner {
            count: AtomicUsize::new(1),
            value,
        });
        Counted {
            ptr: NonNull::from(Box::leak(inner)),
            _owns: PhantomData,
        }
    }

    #[inline]
    fn inner(&self) -> &Inner<T> {
        // SAFETY: a handle keeps the allocation alive (it counts one reference), and nothing
        // takes a mutable reference to it before the last handle is gone.
        unsafe { self.ptr.as_ref() }
    }

    /// Whether both handles are of the same value.
    #[inline]
    pub(crate) fn ptr_eq(a: &Counted<T>, b: &Counted<T>) -> bool {
        a.ptr == b.ptr
    }

    /// Adds `n` references to the count, which the caller now holds as credits: it must give
    /// them back (`spend_credit` handles, `return_credits`), or the value is never freed.
    #[inline]
    pub(crate) fn take_credits(&self, n: usize) {
        let old = self.inner().count.fetch_add(n, Ordering::Relaxed);
        if old > MAX_REFS - n {
            // As `Arc` does: more references than memory could hold means leaked handles, and
            // wrapping the count around would free a value still in use.
            std::process::abort();
        }
    }

    /// A handle made out of one of the caller's credits for this value.
    ///
    /// # Safety
    ///
    /// The caller holds at least one credit of this value (from `take_credits` or
    /// `into_credit`) and counts it as spent.
    #[inline]
    pub(crate) unsafe fn spend_credit(&self) -> Counted<T> {
        Counted {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }

    /// Turns this handle into a credit of the caller's, without touching the count: the caller
    /// must count it as one more credit it holds (or the value leaks).
    #[inline]
    pub(crate) fn into_credit(self) {
        let _ = ManuallyDrop::new(self);
    }

    /// Gives `n` of the caller's credits back.
    ///
    /// # Safety
    ///
    /// The caller holds `n` credits of this value and counts them as spent. Giving them back
    /// never frees the value, since `self` is a live handle (one more reference than `n`).
    #[inline]
    pub(crate) unsafe fn return_credits(&self, n: usize) {
        // Release: the caller's uses of the value through the handles these credits were
        // happen before the free, whichever thread drops the last handle (it acquires).
        let old = self.inner().count.fetch_sub(n, Ordering::Release);
        debug_assert!(
            old > n,
            "credits given back past the handle that gives them"
        );
    }

    /// The value, if this was its last handle (and it is not freed otherwise).
    #[inline]
    pub(crate) fn into_inner(self) -> Option<T> {
        let this = ManuallyDrop::new(self);
        if this.inner().count.fetch_sub(1, Ordering::Release) != 1 {
            return None;
        }
        // Every other handle's uses of the value happen before this (their decrements
        // released them; this acquires them all).
        fence(Ordering::Acquire);
        // SAFETY: this was the last reference (the count was 1 and no credits are held, since
        // credits are held only beside a live handle): nothing else can reach the allocation,
        // which `new` made with `Box`.
        let inner = unsafe { Box::from_raw(this.ptr.as_ptr()) };
        Some(inner.value)
    }
}

impl<T> Clone for Counted<T> {
    #[inline]
    fn clone(&self) -> Counted<T> {
        self.take_credits(1);
        // SAFETY: the credit was just taken.
        unsafe { self.spend_credit() }
    }
}

impl<T> Drop for Counted<T> {
    #[inline]
    fn drop(&mut self) {
        let this = Counted {
            ptr: self.ptr,
            _owns: PhantomData,
        };
        drop(this.into_inner());
    }
}

impl<T> Deref for Counted<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.inner().value
    }
}
