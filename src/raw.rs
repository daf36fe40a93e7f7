//! The thread's current context, and the crate's only `unsafe` code: the storage of the current
//! context, a read path for [`ContextVar::get`] that clones the value in place through a small
//! per-thread cache, reference *credits* that let a thread capture its current context without a
//! shared atomic operation, and [`TaskSlot`], which holds a `WithContext`'s future without an
//! `Option` around it.
//!
//! # The storage
//!
//! The current context lives in [`THREAD`], a thread-local without a destructor (the context is
//! in a `ManuallyDrop`), so that every access is a plain thread-relative address rather than the
//! registration check a thread-local with a destructor costs on each access. [`Reaper`], a
//! thread-local with a destructor registered before the thread's first change, drops the
//! context at thread exit; from then on every change is refused and reads see the empty
//! context. Every change goes through this module (`swap_current`, `replace_current`,
//! `update_current`) and runs no code outside this module and the standard library while it
//! holds the mutable reference. The one reader that holds a shared reference across code it
//! does not control, `with_current`'s closure, is counted in [`Thread::gate`], and every change
//! is refused while one is (its callers in the crate run no code of the user's in it). Other
//! reads (`get` of a type whose `Clone` runs no code, a capture, a snapshot's drop) run no such
//! code and need no count. Where code of the user's may call back into the crate, what is read
//! is kept alive by other means, and meanwhile every change stays possible, frames included, so
//! that such code runs in the frames it opens (issue #23, hole 4): `get` clones a value whose
//! `Clone` may run such code out of a *snapshot* of the current context ([`get_ref`]), and
//! `set` builds its new map, allocating, from a *pinned* view of it ([`update_current`],
//! [`Pin`]).
//!
//! # The read path
//!
//! `get` looks the variable up and clones the value in place. Only types whose `Clone` is the
//! standard library's own and runs no code at all, not even the allocator
//! ([`clone_runs_no_user_code`]: a copy, or an `Arc<str>` count increment), take this path. Any
//! other type (`String` and `Box<str>` included: the global allocator is user code) is cloned
//! out of a snapshot ([`get_ref`]): one capture, from the thread's credits, and its drop, which
//! gives the credit back.
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
//! # Credits
//!
//! A map root is counted by [`Counted`] (`count.rs`): an `Arc` whose references a thread can
//! also hold as credits. A capture on the thread whose current context it is takes a reference
//! from the thread's credits (one `fetch_add` per batch of up to [`MAX_BATCH`]), and a snapshot
//! of the current context dropped on that thread becomes a credit again, so that capturing and
//! dropping snapshots there touches no shared cache line: the spawning core and the core that
//! finishes the task no longer bounce one count between them on every capture. Credits belong
//! to the current context's root only and are given back (one `fetch_sub`) before the current
//! context changes to another root, and at thread exit; the current context holds a handle
//! meanwhile, so a snapshot lives exactly as long as it would without them (`tests/credits.rs`
//! checks this against a model). The count itself is the one protocol between threads here:
//! `tests/loom_count.rs` checks it with loom. CI runs the core tests under valgrind's memcheck.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::any::TypeId;
use std::cell::{Cell, UnsafeCell};
use std::mem::ManuallyDrop;
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

pub(crate) mod count;

pub(crate) use count::Counted;

/// The most credits one batch takes (see [`capture`]).
const MAX_BATCH: usize = 64;

/// [`Thread::gate`]: set until the thread's storage has a destructor registered.
const UNREGISTERED: usize = 1 << (usize::BITS - 1);
/// [`Thread::gate`]: set once the thread's context has been dropped at thread exit.
const DEAD: usize = 1 << (usize::BITS - 2);
/// [`Thread::gate`]: the bits that count readers.
const READERS: usize = DEAD - 1;

/// A thread's context state: the current context, the credits the thread holds for its root,
/// and the read cache.
///
/// It has no destructor (the context is in a `ManuallyDrop`), so that every access is a plain
/// thread-relative address, without the check a thread-local with a destructor needs on each
/// access; [`Reaper`], registered before the first change, drops the context at thread exit.
struct Thread {
    /// The current context. A mutable reference to it exists only inside this module's
    /// changes (`swap_current`, `replace_current`, `update_current`, `Reaper::drop`), which run
    /// no code outside this module and the standard library, and only while no reader is
    /// counted in `gate`; shared references, only while no change runs (the thread is inside a
    /// reader, never inside a change).
    context: UnsafeCell<ManuallyDrop<Context>>,
    /// 0 when the context may change. Otherwise: [`UNREGISTERED`] until [`Reaper`] is
    /// registered, [`DEAD`] once it has run, and in the low bits the number of readers that may
    /// run code outside this module (the allocator, a caller's closure) while they hold a shared
    /// reference to the context: every change is refused while one is counted, so that what
    /// they read stays alive.
    gate: Cell<usize>,
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
    /// The innermost [`update_current`] under way on this thread (null: none), whose root a
    /// change that replaces the context holding it must keep alive ([`Thread::keep_pinned`]).
    pin: Cell<*const Pin>,
}

thread_local! {
    static THREAD: Thread = const {
        Thread {
            context: UnsafeCell::new(ManuallyDrop::new(Context::new())),
            gate: Cell::new(UNREGISTERED),
            credits: Cell::new(0),
            batch: Cell::new(1),
            cache: [const { Cell::new(Entry::EMPTY) }; SLOTS],
            pin: Cell::new(ptr::null()),
        }
    };
    static REAPER: Reaper = const { Reaper };
}

/// Drops the thread's context at thread exit (its thread-local destructor).
struct Reaper;

impl Drop for Reaper {
    fn drop(&mut self) {
        THREAD.with(|thread| {
            if thread.gate.get() & READERS != 0 {
                // Unreachable (no reader is active while a thread-local destructor starts);
                // were it, leaking the context is the safe way out.
                thread.gate.set(DEAD | thread.gate.get());
                return;
            }
            thread.gate.set(DEAD);
            // SAFETY: no reader is counted and no change is under way (this is a change of its
            // own, and runs none of them): no other reference to the context exists.
            let context = std::mem::take(unsafe { &mut **thread.context.get() });
            thread.settle(&context, &Context::new());
            // Its values' destructors may run any code: from now on changes are refused (the
            // gate is DEAD), reads see the empty context. A panic in a thread-local destructor
            // would abort the process: a destructor's panic (reported by the panic hook) stops
            // here, and its payload is leaked (its own drop could panic too).
            if let Err(payload) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(context)))
            {
                std::mem::forget(payload);
            }
        });
    }
}

impl Thread {
    /// Whether the current context may change now: no reader, storage registered and alive.
    #[inline(always)]
    fn may_change(&self) -> bool {
        self.gate.get() == 0 || self.may_change_slow()
    }

    #[cold]
    #[inline(never)]
    fn may_change_slow(&self) -> bool {
        let gate = self.gate.get();
        if gate & (DEAD | READERS) != 0 {
            return false;
        }
        // First change on this thread: register the reaper (a thread-local with a destructor),
        // unless the thread's thread-local storage is being torn down already.
        if REAPER.try_with(|_| ()).is_ok() {
            self.gate.set(0);
            true
        } else {
            self.gate.set(DEAD);
            false
        }
    }

    /// The current context, shared.
    ///
    /// # Safety
    ///
    /// No change runs while the reference lives: the caller runs no code outside this module
    /// and the standard library meanwhile, or counts itself as a reader ([`Reading`]).
    #[inline(always)]
    unsafe fn context(&self) -> &Context {
        // SAFETY: mutable references exist only inside changes, which the caller rules out.
        unsafe { &*self.context.get() }
    }

    /// Runs `change` on the current context, if it may change now.
    #[inline(always)]
    fn change<R>(&self, change: impl FnOnce(&Thread, &mut Context) -> R) -> Option<R> {
        if !self.may_change() {
            return None;
        }
        // SAFETY: no reader is counted, and no change is under way (changes run no code that
        // could start another, nor hand the reference out): this is the only reference.
        let context = unsafe { &mut **self.context.get() };
        Some(change(self, context))
    }

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

impl Thread {
    /// Called by every change that *replaces* `current` (the current context; a swap keeps it
    /// alive in the frame's slot): when it holds the root of the innermost [`update_current`]
    /// under way, that update keeps a handle of it, so that the root it reads stays alive.
    #[inline(always)]
    fn keep_pinned(&self, current: &Context) {
        let pin = self.pin.get();
        if !pin.is_null() {
            Self::keep_pinned_slow(pin, current);
        }
    }

    #[cold]
    #[inline(never)]
    fn keep_pinned_slow(pin: *const Pin, current: &Context) {
        // SAFETY: a non-null `Thread::pin` points to the `Pin` on the stack of the innermost
        // `update_current` of this thread, which resets it before that `Pin` goes (`Pinned`).
        let pin = unsafe { &*pin };
        if root_address(current) != pin.root {
            return;
        }
        let kept = pin.kept.take();
        // A clone runs no code outside this module and the standard library (one increment).
        pin.kept.set(Some(kept.unwrap_or_else(|| current.clone())));
    }
}

/// An [`update_current`] under way, on its stack: the root of the context it builds on, and a
/// handle of that root once a change has replaced the context holding it.
struct Pin {
    root: *const Root,
    kept: Cell<Option<Context>>,
}

/// Makes a [`Pin`] the thread's innermost for its life; on drop (also on unwind) the outer one
/// is innermost again, and takes over a handle kept for the same root.
struct Pinned<'a> {
    thread: &'a Thread,
    pin: &'a Pin,
    outer: *const Pin,
}

impl<'a> Pinned<'a> {
    #[inline(always)]
    fn new(thread: &'a Thread, pin: &'a Pin) -> Pinned<'a> {
        let outer = thread.pin.replace(pin);
        Pinned { thread, pin, outer }
    }
}

impl Drop for Pinned<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.thread.pin.set(self.outer);
        if self.outer.is_null() {
            return;
        }
        // SAFETY: the outer `Pin` is on the stack of an `update_current` further up this
        // thread's stack (pins nest as those calls do), alive until its own `Pinned` drops.
        let outer = unsafe { &*self.outer };
        if outer.root == self.pin.root {
            // The outer update reads the same root: it keeps the handle from now on (a second
            // one is dropped: the first keeps the root alive).
            if let Some(kept) = self.pin.kept.take() {
                let theirs = outer.kept.take();
                outer.kept.set(Some(theirs.unwrap_or(kept)));
            }
        }
    }
}

/// A counted reader of the thread's context (see [`Thread::gate`]): changes are refused until
/// it drops, also on unwind.
struct Reading<'a>(&'a Thread);

impl<'a> Reading<'a> {
    /// `None` once the thread's context is gone (thread exit).
    #[inline]
    fn start(thread: &'a Thread) -> Option<Reading<'a>> {
        let gate = thread.gate.get();
        if gate & DEAD != 0 {
            return None;
        }
        thread.gate.set(gate + 1);
        Some(Reading(thread))
    }

    #[inline]
    fn context(&self) -> &Context {
        // SAFETY: while this reader is counted every change is refused.
        unsafe { self.0.context() }
    }
}

impl Drop for Reading<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.gate.set(self.0.gate.get() - 1);
    }
}

/// A snapshot of the current context (the empty one once the thread's storage is gone), from
/// the thread's credits for its root: no shared atomic operation but once per batch.
#[inline]
pub(crate) fn capture() -> Context {
    THREAD.with(|thread| {
        // SAFETY: nothing below runs code outside this module and the standard library.
        let context = unsafe { thread.context() };
        let Some(root) = context.map().counted_root() else {
            return Context::new();
        };
        let mut credits = thread.credits.get();
        if credits == 0 {
            credits = thread.batch.get();
            root.take_credits(credits);
            thread.batch.set((credits * 2).min(MAX_BATCH));
        }
        thread.credits.set(credits - 1);
        // SAFETY: the thread holds `credits` (≥ 1) credits of the current context's root, and
        // counts one spent (above).
        let handle = unsafe { root.spend_credit() };
        Context::from_map(Map::from_root(handle))
    })
}

/// Gives up a handle of a map root: kept as one more credit of the thread's when it is the
/// current context's root (no shared atomic operation; `None`), handed back otherwise, for the
/// caller to drop.
#[inline]
pub(crate) fn credit(root: Counted<Root>) -> Option<Counted<Root>> {
    let kept = THREAD.with(|thread| {
        // SAFETY: nothing below runs code outside this module and the standard library. (A
        // release never happens inside a change: changes drop nothing.)
        let context = unsafe { thread.context() };
        if !context
            .map()
            .counted_root()
            .is_some_and(|current| Counted::ptr_eq(current, &root))
        {
            return false;
        }
        // The current context holds a handle of this root, so this one was not its last.
        thread.credits.set(thread.credits.get() + 1);
        true
    });
    if kept {
        root.into_credit();
        None
    } else {
        Some(root)
    }
}

/// Whether the thread's context storage is still there (not torn down at thread exit).
#[inline]
pub(crate) fn is_alive() -> bool {
    THREAD.with(|thread| thread.gate.get() & DEAD == 0)
}

/// Runs `f` with the current context; `None` once the thread's storage is gone.
///
/// Every change to the current context is refused while `f` runs.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    THREAD.with(|thread| {
        let reading = Reading::start(thread)?;
        Some(f(reading.context()))
    })
}

/// Swaps `*slot` with the current context; `false` (nothing swapped) when the thread's storage
/// is gone or being read.
#[inline(always)]
pub(crate) fn swap_current(slot: &mut Context) -> bool {
    THREAD
        .with(|thread| {
            thread.change(|thread, context| {
                thread.settle(context, slot);
                std::mem::swap(context, slot);
            })
        })
        .is_some()
}

/// Makes `context` current and returns the one it replaced; gives `context` back when the
/// thread's storage is gone or being read.
pub(crate) fn replace_current(context: Context) -> Result<Context, Context> {
    THREAD.with(|thread| {
        if !thread.may_change() {
            return Err(context);
        }
        Ok(thread
            .change(|thread, current| {
                thread.keep_pinned(current);
                thread.settle(current, &context);
                std::mem::replace(current, context)
            })
            .expect("checked: may change"))
    })
}

/// How many times [`update_current`] builds the new context before it gives up, when the
/// current context keeps changing under it (code run by the build itself, the global allocator,
/// changing it each time).
const UPDATE_ATTEMPTS: usize = 8;

/// Replaces the current context by `f(current, failed)` (no change when `f` returns `None`).
/// `Ok(old)` with the replaced context, if any; `Err` when the thread's storage is gone, or the
/// current context changed under every attempt.
///
/// `f` may run any code (it allocates, and the global allocator is user code that may call back
/// into this crate): it reads a view of the current context (a copy of its pointer, not a
/// reference into the thread's storage), so that everything stays possible meanwhile, frames
/// included. The view's root is *pinned* ([`Pin`]): a change that replaces the context holding
/// it meanwhile keeps a handle of it, so it stays alive without a reference count taken on the
/// common path. Frames end before `f` returns, leaving the current context as they found it; a
/// change at this level meanwhile (a `set` from the allocator) is not overwritten: `f` runs
/// again on the changed context, and is handed the context it built the time before (`failed`),
/// from which it may take what it consumed.
pub(crate) fn update_current(
    mut f: impl FnMut(&Context, Option<Context>) -> Option<Context>,
) -> Result<Option<Context>, ()> {
    THREAD.with(|thread| {
        let mut failed = None;
        for _ in 0..UPDATE_ATTEMPTS {
            if thread.gate.get() & (DEAD | READERS) != 0 {
                return Err(());
            }
            // SAFETY: nothing here runs code outside this module and the standard library
            // while the reference lives (it ends with the copy).
            let current = unsafe { thread.context() };
            // SAFETY: a bitwise copy that is never dropped (`ManuallyDrop`) and takes no
            // reference count: it only reads the root, which the pin below keeps alive until
            // the view's last use (see `Thread::keep_pinned`; a swap keeps it in a frame's slot).
            let view = ManuallyDrop::new(unsafe { ptr::read(current) });
            let pin = Pin {
                root: root_address(&view),
                kept: Cell::new(None),
            };
            let new = {
                let _pinned = Pinned::new(thread, &pin);
                f(&view, failed.take())
            };
            let Some(new) = new else {
                return Ok(None);
            };
            let outcome = thread.change(|thread, current| {
                if root_address(current) != pin.root {
                    return Err(new);
                }
                thread.keep_pinned(current);
                thread.settle(current, &new);
                Ok(std::mem::replace(current, new))
            });
            // A handle kept meanwhile, dropped after the change (it may be the root's last).
            drop(pin.kept.take());
            match outcome {
                Some(Ok(old)) => return Ok(Some(old)),
                Some(Err(new)) => failed = Some(new),
                None => return Err(()),
            }
        }
        Err(())
    })
}

/// The address of `context`'s root; null for the empty context.
#[inline(always)]
fn root_address(context: &Context) -> *const Root {
    context.map().root().map_or(ptr::null(), ptr::from_ref)
}

/// The variable's value in the current context, cloned in place, for the types of
/// [`clone_runs_no_user_code`] whose `Clone` does not allocate: `Err(())` for any other type
/// (the caller takes the path of [`get_ref`]).
#[inline(always)]
pub(crate) fn get_in_place<T>(var: &ContextVar<T>) -> Result<Option<T>, ()>
where
    T: Clone + Send + Sync + 'static,
{
    if !clone_runs_no_user_code::<T>() {
        return Err(());
    }
    let id = var.id();
    Ok(THREAD.with(|thread| {
        // SAFETY: nothing changes the current context until the value is cloned: nothing here
        // runs code outside this module and the standard library (`T::clone` is a copy or, for
        // `Arc<str>`, a reference count increment; neither allocates).
        let context = unsafe { thread.context() };
        cached_ref::<T>(&thread.cache, context.map().root()?, id).cloned()
    }))
}

/// The `T` stored under `id` in `context` (a snapshot the caller holds), through the thread's
/// read cache: for values whose `Clone` may run code of the user's, which the caller runs on
/// the reference with no borrow of the thread's storage held, the snapshot keeping the value
/// alive whatever that code does.
#[inline]
pub(crate) fn get_ref<T: Send + Sync + 'static>(context: &Context, id: u64) -> Option<&T> {
    let root = context.map().root()?;
    THREAD.with(|thread| cached_ref::<T>(&thread.cache, root, id))
}

/// The `T` under `id` in `root` (kept alive by the caller while the reference lives), through
/// the thread's read cache.
#[inline(always)]
fn cached_ref<'a, T: Send + Sync + 'static>(
    cache: &[Cell<Entry>; SLOTS],
    root: &'a Root,
    id: u64,
) -> Option<&'a T> {
    let slot = &cache[id as usize & (SLOTS - 1)];
    let entry = slot.get();
    if entry.stamp == root.stamp() && entry.id == id {
        if entry.value.is_null() {
            debug_assert!(lookup::<T>(root, id).is_none());
            return None;
        }
        // SAFETY: the entry was filled from this very root (stamps are never reused) for
        // this id, which only a `ContextVar<T>` has: `value` points to the `T` stored under
        // `id` in the root, alive as long as the root is, which the caller keeps alive for `'a`
        // (roots never change once built).
        let value = unsafe { &*entry.value.cast::<T>() };
        debug_assert!(lookup::<T>(root, id).is_some_and(|found| ptr::eq(value, found)));
        return Some(value);
    }
    fill::<T>(root, id, slot)
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

/// Whether `T::clone` is one of the standard library's that run no code outside it, not even
/// the global allocator (which is user code, and may call back into this crate): such values
/// are cloned in place, without touching their reference count. One comparison of constants per
/// type, folded away by the compiler.
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

/// What a [`WithContext`](crate::WithContext) holds: its context and its future, which is
/// dropped in place inside a frame with the context current, the context after it.
///
/// The future is kept in a `ManuallyDrop` rather than an `Option` (whose discriminant a future
/// usually has no spare value for), so that a task spawned with its context carries only the
/// context's pointer more than the bare future: 8 bytes rather than 16, which on a trivial tokio
/// task was the difference between 1.03× and 1.17× the bare spawn. The future is pinned
/// structurally: it is never moved while pinned (only `into_inner`, which takes the slot by
/// value, moves it out), and it is dropped in place exactly once, by `Drop` or by `into_inner`.
///
/// How the frame is opened is the layer above's to say (`D`, the frame machine of
/// `crate::state`): this module keeps to the memory.
pub(crate) struct TaskSlot<F, D: DropInFrame> {
    context: Context,
    inner: std::mem::ManuallyDrop<F>,
    frames: std::marker::PhantomData<D>,
}

/// How a [`TaskSlot`] drops its future: `drop` (which drops it in place) is run inside a frame
/// with `context` current, after which `context` holds what the drop set.
pub(crate) trait DropInFrame {
    fn drop_in_frame(context: &mut Context, drop: impl FnOnce());
}

impl<F, D: DropInFrame> TaskSlot<F, D> {
    #[inline]
    pub(crate) fn new(inner: F, context: Context) -> TaskSlot<F, D> {
        TaskSlot {
            context,
            inner: std::mem::ManuallyDrop::new(inner),
            frames: std::marker::PhantomData,
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

impl<F, D: DropInFrame> Drop for TaskSlot<F, D> {
    #[inline]
    fn drop(&mut self) {
        let inner = &mut self.inner;
        D::drop_in_frame(&mut self.context, || {
            // SAFETY: the future is dropped here, once, in place (as pinning requires), and
            // never used again: `self` is being dropped, and `into_inner` (the only other place
            // that takes it) does not run this. (`drop_in_frame` runs this at most once: it is
            // an `FnOnce`.)
            unsafe { std::mem::ManuallyDrop::drop(inner) };
        });
        // The frame put the context (with what the future's drop set) back in `self.context`,
        // dropped after this with the other fields. On a panic of the future's drop, the frame
        // still ends and the context still drops.
    }
}
