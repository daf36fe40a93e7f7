//! The thread's current context, and the crate's only `unsafe` code: a read path for
//! [`ContextVar::get`] that clones the value in place and keeps a small per-thread cache, and
//! [`TaskSlot`], which holds a `WithContext`'s future without an `Option` around it.
//!
//! # The read path
//!
//! The current context lives in [`CURRENT`]; every change to it goes through this module, and
//! takes a mutable borrow only around a swap or a replace, which run no other code. `get` looks
//! the variable up and clones the value in place, under a shared borrow. Only types whose
//! `Clone` is the standard library's own ([`clone_runs_no_user_code`]) take this path. Most of
//! them run no code at all in their `Clone` (a copy, or an `Arc<str>` count increment): their
//! borrow is *unguarded* (the `RefCell` is checked, not counted), which is sound because nothing
//! can take a mutable borrow meanwhile. `String` and `Box<str>` allocate, and the global
//! allocator is user code that may call back into this crate (a `set` there would free the value
//! being copied): their borrow is counted, so that every change to the current context is
//! refused until the copy is done ([`clone_allocates`]). Any other type takes the path of
//! `crate::var`, which clones the value's `Arc` first.
//!
//! # The read cache
//!
//! Each thread keeps [`SLOTS`] entries, indexed by the variable's id: (root stamp, variable id,
//! address of the value or null for "not set"). Every map root gets a stamp at creation that no
//! other root of the process ever gets (`crate::map`), unlike its address, which the allocator
//! reuses once it is freed. An entry is used only when its stamp is that of the current
//! context's root: then it was filled from that very root, which is alive (the current context
//! holds it) and never changes (maps are persistent), so the address is valid and the value is
//! the one a lookup would find. Entries of roots that are gone are never read again (their
//! stamps never come back); they are overwritten in time. A variable's id belongs to one
//! `ContextVar<T>` for ever (ids come from a counter and are never reused), so an entry filled
//! for id `n` as a `T` is read back as a `T`. Debug builds check every hit against a full
//! lookup, so the whole test suite checks the cache.
//!
//! Nothing here is shared between threads: no concurrent protocol is involved (the stamps come
//! from per-thread blocks of a shared counter, a plain `fetch_add`; a `TaskSlot` moves between
//! threads only as a whole, like any future), so there is no loom model to write. CI runs the
//! core tests under valgrind's memcheck.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::any::TypeId;
use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::Arc;

use crate::map::{Map, Root, Stored};
use crate::{Context, ContextVar};

/// Read cache entries per thread (a power of two).
const SLOTS: usize = 16;

#[derive(Clone, Copy)]
struct Entry {
    /// Stamp of the root the entry was filled from; 0 (never a stamp) when empty.
    stamp: u64,
    id: u64,
    /// The value (a `T` inside a `Stored<T>`) under `id` in that root; null when not set.
    value: *const (),
}

impl Entry {
    const EMPTY: Entry = Entry {
        stamp: 0,
        id: 0,
        value: ptr::null(),
    };
}

/// The atomics [`count`] is written against (`tests/loom_count.rs` gives it loom's).
mod atomic {
    pub(super) use std::sync::atomic::{fence, AtomicUsize, Ordering};
}

mod count;

pub(crate) use count::Counted;

/// The most credits one batch takes (see [`capture`]).
const MAX_BATCH: usize = 64;

/// A thread's context state: the current context, the credits the thread holds for its root,
/// and the read cache.
struct Current {
    context: RefCell<Context>,
    /// References to the current context's root that the thread holds as credits (see
    /// [`count`]): counted in the root's shared count, not yet handed out. Given back (one
    /// `fetch_sub`) before the current context changes to another root, so that they only ever
    /// belong to the current root, which the current context keeps alive meanwhile: a snapshot
    /// lives exactly as long as it did without them.
    credits: Cell<usize>,
    /// How many credits the next batch takes: 1 at first (a capture costs what a clone does),
    /// doubling up to [`MAX_BATCH`] while captures go on under one root.
    batch: Cell<usize>,
    cache: [Cell<Entry>; SLOTS],
}

impl Current {
    /// Gives the thread's credits back before `context`, the current one, is replaced by `next`
    /// (unless both have the same root, which the credits then stay with).
    #[inline(always)]
    fn settle(&self, context: &Context, next: &Context) {
        let credits = self.credits.get();
        if credits == 0 {
            return;
        }
        let Some(root) = context.map().counted_root() else {
            return;
        };
        if next
            .map()
            .counted_root()
            .is_some_and(|next| Counted::ptr_eq(root, next))
        {
            return;
        }
        self.credits.set(0);
        self.batch.set(1);
        // SAFETY: the thread holds `credits` credits of the current context's root (they are
        // taken and kept only for it, and given back here before it changes), and counts them
        // spent (set to 0 above).
        unsafe { root.return_credits(credits) };
    }
}

impl Drop for Current {
    /// At thread exit: the credits are given back before the context drops.
    fn drop(&mut self) {
        if let Ok(context) = self.context.try_borrow() {
            self.settle(&context, &Context::new());
        }
    }
}

thread_local! {
    static CURRENT: Current = const {
        Current {
            context: RefCell::new(Context::new()),
            credits: Cell::new(0),
            batch: Cell::new(1),
            cache: [const { Cell::new(Entry::EMPTY) }; SLOTS],
        }
    };
}

/// A snapshot of the current context (`None` once the thread's storage is gone), from the
/// thread's credits for its root: no shared atomic operation but once per batch.
#[inline]
pub(crate) fn capture() -> Option<Context> {
    CURRENT
        .try_with(|current| {
            // SAFETY: no mutable borrow of the context is taken while `context` lives: nothing
            // below runs code outside this module and the standard library.
            let context = unsafe { current.context.try_borrow_unguarded() }.ok()?;
            let Some(root) = context.map().counted_root() else {
                return Some(Context::new());
            };
            let mut credits = current.credits.get();
            if credits == 0 {
                credits = current.batch.get();
                root.take_credits(credits);
                current.batch.set((credits * 2).min(MAX_BATCH));
            }
            current.credits.set(credits - 1);
            // SAFETY: the thread holds `credits` (≥ 1) credits of the current context's root,
            // and counts one spent (above).
            let handle = unsafe { root.spend_credit() };
            Some(Context::from_map(Map::from_root(handle)))
        })
        .ok()
        .flatten()
}

/// Drops a handle of a map root: kept as one more credit of the thread's when it is the current
/// context's root (no shared atomic operation), given back otherwise. The root, when that was
/// its last handle.
#[inline]
pub(crate) fn release(root: Counted<Root>) -> Option<Root> {
    let kept = CURRENT.try_with(|current| {
        // SAFETY: no mutable borrow of the context is taken while `context` lives: nothing
        // below runs code outside this module and the standard library.
        let context = unsafe { current.context.try_borrow_unguarded() }.ok()?;
        let current_root = context.map().counted_root()?;
        if !Counted::ptr_eq(current_root, &root) {
            return None;
        }
        // The current context holds a handle of this root, so this one was not its last.
        current.credits.set(current.credits.get() + 1);
        Some(())
    });
    match kept {
        Ok(Some(())) => {
            root.into_credit();
            None
        }
        _ => root.into_inner(),
    }
}

/// Whether the thread's context storage is still there (not torn down at thread exit).
#[inline]
pub(crate) fn is_alive() -> bool {
    CURRENT.try_with(|_| ()).is_ok()
}

/// Runs `f` with the current context; `None` once the thread's storage is gone.
///
/// `f` must not run user code (the state is borrowed meanwhile): clone what it needs out.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    CURRENT
        .try_with(|current| current.context.try_borrow().ok().map(|context| f(&context)))
        .ok()
        .flatten()
}

/// Swaps `*slot` with the current context; `false` (nothing swapped) when the thread's storage
/// is gone or borrowed.
#[inline(always)]
pub(crate) fn swap_current(slot: &mut Context) -> bool {
    CURRENT
        .try_with(|current| match current.context.try_borrow_mut() {
            Ok(mut context) => {
                current.settle(&context, slot);
                std::mem::swap(&mut *context, slot);
                true
            }
            Err(_) => false,
        })
        .unwrap_or(false)
}

/// Makes `context` current and returns the one it replaced; gives `context` back when the
/// thread's storage is gone or borrowed.
pub(crate) fn replace_current(context: Context) -> Result<Context, Context> {
    let mut context = Some(context);
    let replaced = CURRENT.try_with(|current| {
        let mut slot = current.context.try_borrow_mut().ok()?;
        let new = context.take()?;
        current.settle(&slot, &new);
        Some(std::mem::replace(&mut *slot, new))
    });
    match replaced {
        Ok(Some(old)) => Ok(old),
        _ => Err(context.expect("not taken unless replaced")),
    }
}

/// Replaces the current context by `f(current)` (no change when `f` returns `None`); `f` must not
/// run user code. `Ok(old)` with the replaced context, if any; `Err` when the thread's storage is
/// gone or borrowed.
pub(crate) fn update_current(
    f: impl FnOnce(&Context) -> Option<Context>,
) -> Result<Option<Context>, ()> {
    CURRENT
        .try_with(|current| {
            let new = f(&*current.context.try_borrow().ok()?);
            Some(match new {
                Some(new) => {
                    let mut slot = current.context.try_borrow_mut().ok()?;
                    current.settle(&slot, &new);
                    Some(std::mem::replace(&mut *slot, new))
                }
                None => None,
            })
        })
        .ok()
        .flatten()
        .ok_or(())
}

/// The variable's value in the current context, cloned in place, for the types of
/// [`clone_runs_no_user_code`]: `Err(())` for any other type (the caller takes the safe path).
#[inline(always)]
pub(crate) fn get_in_place<T>(var: &ContextVar<T>) -> Result<Option<T>, ()>
where
    T: Clone + Send + Sync + 'static,
{
    if !clone_runs_no_user_code::<T>() {
        return Err(());
    }
    let id = var.id();
    let read = CURRENT.try_with(|current| {
        if clone_allocates::<T>() {
            // A counted borrow, held until the value is cloned: the clone allocates, and the
            // global allocator is user code, which may call back into this crate. While the
            // borrow lives, every change to the current context (a mutable borrow) is refused,
            // so the value being copied stays alive.
            let context = current.context.try_borrow().ok()?;
            Some(
                context
                    .map()
                    .root()
                    .and_then(|root| read_cached::<T>(&current.cache, root, id)),
            )
        } else {
            // SAFETY: no mutable borrow of the context is taken while `context` lives (until the
            // value is cloned): this module takes them only around a swap or a replace, which
            // run no other code, and nothing here runs code outside this module and the
            // standard library: `T::clone` is a copy or, for `Arc<str>`, a reference count
            // increment; neither allocates (`clone_allocates`).
            let context = unsafe { current.context.try_borrow_unguarded() }.ok()?;
            Some(
                context
                    .map()
                    .root()
                    .and_then(|root| read_cached::<T>(&current.cache, root, id)),
            )
        }
    });
    Ok(read.ok().flatten().flatten())
}

/// The `T` under `id` in `root` (the current context's, kept current by the caller until this
/// returns), cloned, through the thread's read cache.
#[inline(always)]
fn read_cached<T: Clone + Send + Sync + 'static>(
    cache: &[Cell<Entry>; SLOTS],
    root: &Root,
    id: u64,
) -> Option<T> {
    let slot = &cache[id as usize & (SLOTS - 1)];
    let entry = slot.get();
    if entry.stamp == root.stamp() && entry.id == id {
        if entry.value.is_null() {
            debug_assert!(lookup::<T>(root, id).is_none());
            return None;
        }
        // SAFETY: the entry was filled from this very root (stamps are never reused) for
        // this id, which only a `ContextVar<T>` has: `value` points to the `T` stored under
        // `id` in the root, alive as long as the root is, which the caller keeps current
        // (so alive) until the clone below is done.
        let value = unsafe { &*entry.value.cast::<T>() };
        debug_assert!(lookup::<T>(root, id).is_some_and(|found| ptr::eq(value, found)));
        return Some(value.clone());
    }
    fill::<T>(root, id, slot).cloned()
}

/// A cache miss: looks `id` up in `root` and records the outcome in `slot`.
#[cold]
#[inline(never)]
fn fill<'a, T: Send + Sync + 'static>(
    root: &'a Root,
    id: u64,
    slot: &Cell<Entry>,
) -> Option<&'a T> {
    let value = lookup::<T>(root, id);
    slot.set(Entry {
        stamp: root.stamp(),
        id,
        value: value.map_or(ptr::null(), |value| ptr::from_ref(value).cast()),
    });
    value
}

/// The `T` stored under `id` in `root`, with a checked downcast.
#[inline]
fn lookup<T: Send + Sync + 'static>(root: &Root, id: u64) -> Option<&T> {
    let stored: &Arc<dyn crate::map::Erased> = root.get(id)?;
    let stored: &dyn std::any::Any = &**stored;
    stored
        .downcast_ref::<Stored<T>>()
        .map(|stored| &stored.value)
}

/// Whether `T::clone` is one of the standard library's, which never call back into this crate:
/// such values are cloned in place, without touching their reference count. One comparison of
/// constants per type, folded away by the compiler.
#[inline(always)]
pub(crate) fn clone_runs_no_user_code<T: 'static>() -> bool {
    let t = TypeId::of::<T>();
    macro_rules! one_of {
        ($($ty:ty),* $(,)?) => { false $(|| t == TypeId::of::<$ty>())* };
    }
    one_of!(
        u8,
        u16,
        u32,
        u64,
        u128,
        usize,
        i8,
        i16,
        i32,
        i64,
        i128,
        isize,
        bool,
        char,
        f32,
        f64,
        &'static str,
        String,
        Box<str>,
        Arc<str>,
        std::num::NonZeroU32,
        std::num::NonZeroU64,
        std::net::IpAddr,
        std::net::SocketAddr,
        std::time::Duration,
        std::time::Instant,
        std::time::SystemTime,
    )
}

/// Whether `T::clone` (one of [`clone_runs_no_user_code`]'s) allocates, and so calls the global
/// allocator, which is user code: then `get` holds a counted borrow across the clone.
#[inline(always)]
fn clone_allocates<T: 'static>() -> bool {
    let t = TypeId::of::<T>();
    t == TypeId::of::<String>() || t == TypeId::of::<Box<str>>()
}

/// What a [`WithContext`](crate::WithContext) holds: its context and its future, which is
/// dropped in place inside a frame with the context current, the context after it.
///
/// The future is kept in a `ManuallyDrop` rather than an `Option` (whose discriminant a future
/// usually has no spare value for), so that a task spawned with its context carries only the
/// context's pointer more than the bare future: 8 bytes rather than 16, which on a trivial tokio
/// task was the difference between 1.03× and 1.17× the bare spawn. The future is pinned
/// structurally: it is never moved while pinned (only `into_inner`, which takes the slot by
/// value, moves it out), and it is dropped in place exactly once, by `Drop` or by `into_inner`.
pub(crate) struct TaskSlot<F> {
    context: Context,
    inner: std::mem::ManuallyDrop<F>,
}

impl<F> TaskSlot<F> {
    #[inline]
    pub(crate) fn new(inner: F, context: Context) -> TaskSlot<F> {
        TaskSlot {
            context,
            inner: std::mem::ManuallyDrop::new(inner),
        }
    }

    #[inline]
    pub(crate) fn context(&self) -> &Context {
        &self.context
    }

    #[inline]
    pub(crate) fn inner(&self) -> &F {
        &self.inner
    }

    #[inline]
    pub(crate) fn inner_mut(&mut self) -> &mut F {
        &mut self.inner
    }

    /// The context (unpinned: it is never pinned) and the pinned future.
    #[inline]
    pub(crate) fn project(self: std::pin::Pin<&mut Self>) -> (&mut Context, std::pin::Pin<&mut F>) {
        // SAFETY: nothing is moved out of `this`: the context is not structurally pinned (it is
        // only swapped with the current context, never pinned), and the future is pinned again
        // at once; it stays where it is until it is dropped in place (see the type's docs).
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: structural pinning of `inner`: `self` is pinned, so the future is too, and it
        // is never moved while pinned.
        let inner = unsafe { std::pin::Pin::new_unchecked(&mut *this.inner) };
        (&mut this.context, inner)
    }

    /// The future, unwrapped; the context drops.
    pub(crate) fn into_inner(self) -> F {
        let mut this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped and never used again after these two reads, so each
        // field is taken out exactly once and the future is not dropped by `Drop` as well.
        let (inner, context) = unsafe {
            (
                std::mem::ManuallyDrop::take(&mut this.inner),
                ptr::read(&this.context),
            )
        };
        drop(context);
        inner
    }
}

impl<F> Drop for TaskSlot<F> {
    #[inline]
    fn drop(&mut self) {
        let frame = crate::state::enter(&mut self.context);
        // SAFETY: the future is dropped here, once, in place (as pinning requires), and never
        // used again: `self` is being dropped, and `into_inner` (the only other place that
        // takes it) does not run this.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.inner) };
        // Leaving the frame puts the context (with what the future's drop set) back in
        // `self.context`, dropped after this with the other fields. On a panic of the future's
        // drop, the frame still ends (its own `Drop`) and the context still drops.
        drop(frame);
    }
}
