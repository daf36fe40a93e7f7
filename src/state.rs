//! The per-thread state: which context is current, in which frame, and the attach guards.
//!
//! A *frame* is one activation that installs a context for a while and then puts the previous
//! one back: a `Context::run`/`ContextVar::scope` closure, one poll of a `WithContext`, or the
//! drop of a context's values. Frames nest strictly (they follow the call stack), so each one
//! saves the outer context on the Rust stack and restores it when it ends, panics included.
//! Depth 0 is the thread's own top level.
//!
//! Guards ([`attach`]/[`detach`]) live in a per-thread stack of slots, each remembering the frame
//! it was attached in and the context it replaced. Because frames nest, the stack is ordered by
//! frame: the slots of the innermost frame are on top. Two rules keep every frame isolated:
//!
//! - a guard dropped in an inner frame cannot touch its own frame's context (that context is
//!   saved on the stack of the inner frame), so its slot is only marked dropped, and the drop
//!   takes effect when its frame is innermost again (see [`Frame`]'s `Drop`);
//! - when a frame ends, the slots attached in it go with it: the frame's own context becomes
//!   what it was before its first guard, and a guard outliving its frame does nothing when
//!   dropped.
//!
//! At thread exit the slot list is destroyed with the thread's other thread-locals; the guards
//! still alive end with it (see [`GuardList`]), and later ones are refused.
//!
//! Context values run arbitrary code (`Clone`, `Drop`, `Debug`) that may itself use this module,
//! so no user code ever runs while the state is borrowed: readers clone out of a snapshot of
//! the current context, and every context replaced here is dropped after the borrows end, and
//! after the frame it belonged to has ended: a destructor that panics finds the thread already
//! back in the outer frame. A context's values are dropped in a frame of their own, with the
//! empty context current ([`release`]), so that what their destructors set ends with
//! them.
//!
//! The current context itself is kept by `crate::raw`, which every change goes through; `get`
//! reads it there, through a per-thread cache (see that module).

use std::cell::{Cell, RefCell};
use std::mem;
use std::panic::{self, AssertUnwindSafe};

use crate::executor::{self, Executor, TaskDrops};
use crate::map::Root;
use crate::raw::count::Counted;
use crate::{integrations, raw, Context};

struct GuardSlot {
    id: u64,
    /// Depth of the frame the guard was attached in.
    frame: usize,
    /// The frame's context before this guard was attached.
    previous: Context,
    /// Dropped from an inner frame: takes effect when its frame is innermost again.
    dropped: bool,
}

thread_local! {
    // Plain integers have no destructor: reading them needs no liveness check.
    /// Depth of the innermost active frame; 0 is the thread's own top level.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// Which frame has guard slots to settle when it ends, so that a frame can tell in one
    /// comparison: the depth of the newest slot's frame (the slots of a frame are the newest
    /// while it is innermost), [`PENDING`] while some guard dropped in an inner frame waits for
    /// its own frame, or [`NO_SLOT`].
    static ATTENTION: Cell<usize> = const { Cell::new(NO_SLOT) };
    /// How many slots are marked dropped, waiting for their frame.
    static PENDING_DROPS: Cell<usize> = const { Cell::new(0) };
    static NEXT_GUARD: Cell<u64> = const { Cell::new(0) };
    /// Set when [`GUARDS`] is destroyed at thread exit: from then on guards are refused.
    static GUARDS_GONE: Cell<bool> = const { Cell::new(false) };
    static GUARDS: GuardList = const { GuardList(RefCell::new(Vec::new())) };
}

/// The guard slots of the thread, oldest first.
struct GuardList(RefCell<Vec<GuardSlot>>);

impl Drop for GuardList {
    /// At thread exit, the guards still alive (kept in a thread-local, or forgotten) end with
    /// the list: the thread's context becomes what it was before the oldest of them, so that
    /// the thread-local destructors that run later never see a guard's context that nothing
    /// can detach any more; and guards attached from then on are refused.
    fn drop(&mut self) {
        GUARDS_GONE.set(true);
        let slots = mem::take(self.0.get_mut());
        PENDING_DROPS.set(0);
        ATTENTION.set(NO_SLOT);
        let depth = DEPTH.get();
        // The oldest slot of the thread's top level (at thread exit, no frame is active) holds
        // what was current before any guard: current again. The context it displaces (or this
        // one, once the storage is gone) is dropped with the rest.
        let oldest = slots.iter().position(|slot| slot.frame == depth);
        let mut discarded: Vec<Context> = slots.into_iter().map(|slot| slot.previous).collect();
        if let Some(oldest) = oldest {
            let before = discarded.remove(oldest);
            discarded.push(raw::replace_current(before).unwrap_or_else(|kept| kept));
        }
        // Dropped after the change. A panic in a thread-local destructor would abort the
        // process: a destructor's panic (reported by the panic hook) stops here.
        if let Some(payload) = drop_each_caught(discarded) {
            mem::forget(payload);
        }
    }
}

const NO_SLOT: usize = usize::MAX;
const PENDING: usize = usize::MAX - 1;

/// Sets [`ATTENTION`] from the slots as they are now.
fn refresh_attention(guards: &[GuardSlot]) {
    ATTENTION.set(if PENDING_DROPS.get() > 0 {
        PENDING
    } else {
        guards.last().map_or(NO_SLOT, |slot| slot.frame)
    });
}

/// Why the current context cannot be changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The thread's storage is gone (thread-local destructors are running).
    Destroyed,
    /// No frame of this crate is active and the thread is running a runtime's or pool's unit of
    /// work: a value set here would stay on the worker thread for the next, unrelated one.
    NoFrame {
        /// The runtime or pool that recognised the thread (its [`Executor::name`]).
        executor: &'static str,
    },
    /// The current context kept changing while a `set` built the new one (code run by the
    /// build, the global allocator, changed it every time), or is being read by the crate
    /// itself (which runs no code of the user's meanwhile, so this is not expected).
    Busy,
}

/// Runs `f` with the current context; `None` once the thread's storage is gone.
///
/// `f` must not run user code (the state is borrowed meanwhile): clone what it needs out.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    if let Some(context) = dropped_task_context() {
        return Some(f(&context));
    }
    raw::with_current(f)
}

/// A snapshot of the current context (see [`with_current`]); the empty context once the
/// thread's storage is gone.
#[inline]
pub(crate) fn capture() -> Context {
    if let Some(context) = dropped_task_context() {
        return context;
    }
    raw::capture()
}

/// A task of a runtime with automatic inheritance, dropped at shutdown outside any poll: no
/// hook installed its context, but the runtime tells which task is being dropped. Nothing (and
/// no code) without such a runtime compiled in (see `integrations::TaskDrops`).
#[inline(always)]
fn dropped_task_context() -> Option<Context> {
    if !<integrations::TaskDrops as TaskDrops>::IN_USE || !at_top_level() {
        return None;
    }
    <integrations::TaskDrops as TaskDrops>::context_of_task_outside_poll()
}

/// Whether a value may be read in place from the thread's current context: always, but on a
/// thread's top level where a runtime may be dropping a task outside its poll (whose context is
/// then found by [`capture`], the slow path).
#[inline(always)]
pub(crate) fn may_read_in_place() -> bool {
    !<integrations::TaskDrops as TaskDrops>::IN_USE || !at_top_level()
}

/// Whether no frame of this crate is active on this thread.
#[inline]
fn at_top_level() -> bool {
    DEPTH.try_with(Cell::get).unwrap_or(0) == 0
}

/// Whether a value set now is confined to a frame (`Ok`): a frame of this crate is active, a
/// guard is attached at the thread's top level, or the thread is not running some runtime's unit
/// of work (so it is the thread's own top level, which belongs to whoever owns the thread).
/// Otherwise the refusal, naming the executor whose unit of work the value would outlive.
pub(crate) fn set_is_confined() -> Result<(), Refusal> {
    if <integrations::TaskDrops as TaskDrops>::IN_USE
        && <integrations::TaskDrops as TaskDrops>::dropping_a_task_outside_its_poll()
    {
        // Whatever frame is around, it is not this task's.
        return Err(Refusal::NoFrame {
            executor: <integrations::TaskDrops as TaskDrops>::EXECUTOR,
        });
    }
    if DEPTH.try_with(Cell::get).unwrap_or(0) > 0 {
        return Ok(());
    }
    let guarded = GUARDS
        .try_with(|guards| {
            guards
                .0
                .try_borrow()
                .map_or(true, |guards| !guards.is_empty())
        })
        .unwrap_or(false);
    match current_executor() {
        Some(executor) if !guarded => Err(Refusal::NoFrame {
            executor: executor.name(),
        }),
        _ => Ok(()),
    }
}

/// Replaces the current context by `f(current, failed)` (no change when `f` returns `None`);
/// see `raw::update_current` for when `f` runs again, and what `failed` is.
///
/// `confine`: refuse when the change would land on a worker thread's top level (see
/// [`Refusal::NoFrame`]).
pub(crate) fn update_current(
    confine: bool,
    f: impl FnMut(&Context, Option<Context>) -> Option<Context>,
) -> Result<(), Refusal> {
    if !raw::is_alive() {
        return Err(Refusal::Destroyed);
    }
    if confine {
        set_is_confined()?;
    }
    match raw::update_current(f) {
        // The old context drops here, after the change.
        Ok(old) => {
            drop(old);
            Ok(())
        }
        _ if raw::is_alive() => Err(Refusal::Busy),
        _ => Err(Refusal::Destroyed),
    }
}

/// Gives up a context's handle of a map root (a `Context`'s `Drop`): kept as one more credit of
/// the thread's when it is the current context's root (no shared atomic operation, see
/// `crate::raw`); otherwise, when it is the last handle, the root's values are dropped inside a
/// frame of their own with the empty context current, so that whatever their destructors set
/// (or attach and forget) ends with them and never reaches the frame that happened to drop the
/// context.
///
/// When no destructor of the user's can run (`drop_runs_user_code()` is `false`: every value
/// the root holds is an integer, a `String` or the like), there is nothing to confine, and the
/// frame, a swap of the current context in and out, is skipped: the root is dropped in place.
/// Nothing that runs then can call into this crate but the global allocator, which also frees
/// the root's own allocation outside any frame (in `into_inner`), so a frame would not confine
/// it anyway.
#[inline]
pub(crate) fn release(root: Counted<Root>) {
    if let Some(root) = raw::credit(root) {
        give_up(root);
    }
}

/// Drops a handle of a root that is not the thread's current one.
#[inline(never)]
fn give_up(root: Counted<Root>) {
    if !root.drop_runs_user_code() {
        return drop(root);
    }
    if let Some(root) = root.into_inner() {
        drop_in_frame(root);
    }
}

/// How a [`WithContext`](crate::WithContext)'s future is dropped (`raw::TaskSlot`): in place,
/// inside a frame with the future's context current.
pub(crate) struct Frames;

impl raw::DropInFrame for Frames {
    #[inline]
    fn drop_in_frame(context: &mut Context, drop: impl FnOnce()) {
        let frame = enter(context);
        drop();
        // On a panic of `drop`, the frame still ends (its own `Drop`).
        if let Some(frame) = frame {
            frame.leave();
        }
    }
}

#[inline(never)]
fn drop_in_frame<T>(value: T) {
    let mut empty = Context::new();
    let frame = enter(&mut empty);
    drop(value);
    drop(frame);
    // `empty` now holds what the destructors set, if anything: dropped the same way.
}

/// An active frame: `slot` holds the outer context until the frame ends, when the frame's
/// context (with whatever was set inside it) goes back into `slot`.
pub(crate) struct Frame<'a> {
    /// `None` only once [`Frame::leave`] has closed the frame.
    slot: Option<&'a mut Context>,
}

impl Frame<'_> {
    /// Closes the frame, as dropping it does: the hot paths call this rather than leave it to
    /// the drop glue, which the compiler may keep out of line (the glue still runs on unwind).
    #[inline(always)]
    pub(crate) fn leave(mut self) {
        let slot = self.slot.take();
        std::mem::forget(self);
        if let Some(slot) = slot {
            leave_slot(slot);
        }
    }
}

/// Installs `*slot` as the current context for the life of the returned frame, without cloning
/// it: the contexts are swapped, not copied. `None` when the thread's storage is gone, in which
/// case nothing is installed.
#[inline]
pub(crate) fn enter(slot: &mut Context) -> Option<Frame<'_>> {
    enter_slot(slot)?;
    Some(Frame { slot: Some(slot) })
}

/// Swaps `*slot` in as the current context and opens a frame.
#[inline]
fn enter_slot(slot: &mut Context) -> Option<()> {
    if !raw::swap_current(slot) {
        return None;
    }
    DEPTH.set(DEPTH.get() + 1);
    Some(())
}

/// Closes the innermost frame, opened by [`enter_slot`]: settles its guards, swaps the outer
/// context (in `*slot`) back in, leaving the frame's context in `*slot`.
#[inline(always)]
fn leave_slot(slot: &mut Context) {
    let depth = DEPTH.get();
    let attention = ATTENTION.get();
    if attention == depth || attention == PENDING {
        return leave_settling(slot, depth);
    }
    DEPTH.set(depth - 1);
    swap_back(slot);
}

#[inline(always)]
fn swap_back(slot: &mut Context) {
    raw::swap_current(slot);
}

/// [`leave_slot`] for a frame with guard slots of its own, or with drops waiting.
///
/// The contexts the frame discards (its guards', and what pending drops displace) are dropped
/// only once the frame has ended and the outer context is back: their values' destructors may
/// panic, and a panic must not leave the frame's context on the thread.
#[cold]
fn leave_settling(slot: &mut Context, depth: usize) {
    let mut discarded = Vec::new();
    settle_guards(depth, &mut discarded);
    DEPTH.set(depth - 1);
    swap_back(slot);
    apply_pending_drops(depth - 1, &mut discarded);
    drop_each(discarded);
}

/// Drops each of `discarded`, whatever the others' destructors do: one that panics does not
/// keep the rest alive, nor abort the process (as a second panic while unwinding would). The
/// first panic goes on once all are dropped, unless the thread is unwinding already (the frame
/// ends because of another panic, which goes on; the destructor's was reported by the panic
/// hook).
#[cold]
fn drop_each(discarded: Vec<Context>) {
    if let Some(payload) = drop_each_caught(discarded) {
        if !std::thread::panicking() {
            panic::resume_unwind(payload);
        }
        // Its own destructor may panic too: leaked rather than risk an abort.
        mem::forget(payload);
    }
}

/// Drops each of `discarded`, catching the panics of their destructors: the first one's payload.
fn drop_each_caught(
    discarded: impl IntoIterator<Item = Context>,
) -> Option<Box<dyn std::any::Any + Send>> {
    let mut first_panic = None;
    for context in discarded {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| drop(context))) {
            match first_panic {
                None => first_panic = Some(payload),
                Some(_) => mem::forget(payload),
            }
        }
    }
    first_panic
}

impl Drop for Frame<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            leave_slot(slot);
        }
    }
}

thread_local! {
    /// Frames opened and closed by separate calls (a runtime's before- and after-poll hooks):
    /// the tag of each (its task) and the outer context it saved.
    static HOOKED: RefCell<Vec<(u64, Context)>> = const { RefCell::new(Vec::new()) };
}

// Used by runtimes with poll hooks (`integrations::TaskDrops`), when one is compiled in.
#[allow(dead_code)]
/// Opens a frame with `context` current, to be closed by [`close_frame`] on this thread; frames
/// opened so must nest with every other frame (a runtime's poll hooks do: a poll runs inside
/// whatever frames are around it and ends before they do).
pub(crate) fn open_frame(tag: u64, mut context: Context) {
    if enter_slot(&mut context).is_some() {
        let pushed = HOOKED.try_with(|hooked| match hooked.try_borrow_mut() {
            Ok(mut hooked) => {
                hooked.push((tag, context));
                None
            }
            Err(_) => Some(context),
        });
        // Could not record it: close it at once rather than leave it open.
        if let Ok(Some(mut outer)) = pushed {
            leave_slot(&mut outer);
        }
    }
}

// Used by runtimes with poll hooks (`integrations::TaskDrops`), when one is compiled in.
#[allow(dead_code)]
/// The tag of the innermost frame opened by [`open_frame`] on this thread, if any.
pub(crate) fn innermost_hook_tag() -> Option<u64> {
    HOOKED
        .try_with(|hooked| Some(hooked.try_borrow().ok()?.last()?.0))
        .ok()
        .flatten()
}

// Used by runtimes with poll hooks (`integrations::TaskDrops`), when one is compiled in.
#[allow(dead_code)]
/// Closes the frame opened last by [`open_frame`] on this thread, if it was opened with `tag`, and
/// returns its context (with what was set in it); `None` when it was not.
pub(crate) fn close_frame(tag: u64) -> Option<Context> {
    let mut slot = HOOKED
        .try_with(|hooked| {
            let mut hooked = hooked.try_borrow_mut().ok()?;
            // Only the frame opened with this tag, and only if it is the innermost.
            match hooked.last() {
                Some((top, _)) if *top == tag => hooked.pop().map(|(_, slot)| slot),
                _ => None,
            }
        })
        .ok()
        .flatten()?;
    leave_slot(&mut slot);
    Some(slot)
}

/// The innermost frame, at `depth`, ends with guard slots of its own: they go with it, and the
/// frame's context becomes what it was before the first of them was attached. What this
/// replaces goes to `discarded`, for the caller to drop once the frame has ended.
#[cold]
fn settle_guards(depth: usize, discarded: &mut Vec<Context>) {
    let _ = GUARDS.try_with(|guards| {
        let Ok(mut guards) = guards.0.try_borrow_mut() else {
            return;
        };
        // Newest first, so that the last `previous` kept is the oldest slot's.
        let mut before_first = None;
        while guards.last().is_some_and(|slot| slot.frame == depth) {
            let slot = guards.pop().expect("checked non-empty");
            if slot.dropped {
                PENDING_DROPS.set(PENDING_DROPS.get() - 1);
            }
            discarded.extend(before_first.replace(slot.previous));
        }
        refresh_attention(&guards);
        if let Some(before_first) = before_first {
            discarded.extend(replace_current(before_first));
        }
    });
}

/// Applies the drops of guards of the frame at `depth` (now innermost) that were dropped while
/// an inner frame was active, newest first, exactly as if they had been dropped here. What they
/// displace goes to `discarded`.
#[cold]
fn apply_pending_drops(depth: usize, discarded: &mut Vec<Context>) {
    let _ = GUARDS.try_with(|guards| {
        let Ok(mut guards) = guards.0.try_borrow_mut() else {
            return;
        };
        let mut position = guards.len();
        while position > 0 && guards[position - 1].frame == depth {
            position -= 1;
            if guards[position].dropped {
                PENDING_DROPS.set(PENDING_DROPS.get() - 1);
                discarded.extend(remove_slot(&mut guards, position));
            }
        }
        refresh_attention(&guards);
    });
}

/// Removes the slot at `position`, of the innermost frame, following the rule documented on
/// `Context::attach`, and returns the context it displaced (to be dropped after the borrows).
fn remove_slot(guards: &mut Vec<GuardSlot>, position: usize) -> Option<Context> {
    let slot = guards.remove(position);
    match guards.get_mut(position) {
        // Out of order: the guard attached after this one, in the same frame (slots above the
        // innermost frame's are its own), will restore what this one saved.
        Some(above) => Some(mem::replace(&mut above.previous, slot.previous)),
        // The newest guard of this frame: restore.
        None => replace_current(slot.previous),
    }
}

/// Makes `context` current and returns the one it replaced, to be dropped by the caller after
/// its borrows end; `None` when the thread's storage is gone.
fn replace_current(context: Context) -> Option<Context> {
    raw::replace_current(context).ok()
}

/// Runs `f` inside `context`, consuming it; what `f` sets is dropped afterwards (in a frame of
/// its own, see [`release`]).
#[inline]
pub(crate) fn run_in<R>(mut context: Context, f: impl FnOnce() -> R) -> R {
    let frame = enter(&mut context);
    let result = f();
    if let Some(frame) = frame {
        frame.leave();
    }
    result
}

/// Attaches `context` as current and returns the guard's id; refused once the thread's
/// storage is being torn down (the guard list or the current context gone), or while the
/// context is being read.
pub(crate) fn attach(context: Context) -> Result<u64, Refusal> {
    if GUARDS_GONE.get() {
        return Err(Refusal::Destroyed);
    }
    let attached = GUARDS.try_with(|guards| {
        let Ok(mut guards) = guards.0.try_borrow_mut() else {
            return Err((Refusal::Busy, Some(context)));
        };
        // Runs no code of the user's: nothing is dropped under the borrow.
        let previous = match raw::replace_current(context) {
            Ok(previous) => previous,
            Err(context) if raw::is_alive() => return Err((Refusal::Busy, Some(context))),
            Err(context) => return Err((Refusal::Destroyed, Some(context))),
        };
        let id = NEXT_GUARD.get();
        NEXT_GUARD.set(id.wrapping_add(1));
        guards.push(GuardSlot {
            id,
            frame: DEPTH.get(),
            previous,
            dropped: false,
        });
        refresh_attention(&guards);
        Ok(id)
    });
    match attached {
        Ok(Ok(id)) => Ok(id),
        // The context is dropped here, after the borrow.
        Ok(Err((refusal, _context))) => Err(refusal),
        // The list is being torn down (the context went with the closure).
        Err(_) => Err(Refusal::Destroyed),
    }
}

/// Detaches the guard `id` following the rule documented on `Context::attach`.
pub(crate) fn detach(id: u64) {
    let depth = DEPTH.get();
    let displaced = GUARDS.try_with(|guards| {
        let mut guards = guards.0.try_borrow_mut().ok()?;
        // Not found: its frame has ended, and the guard with it.
        let position = guards.iter().rposition(|slot| slot.id == id)?;
        if guards[position].frame != depth {
            // Attached in an outer frame, whose context is saved by an inner one meanwhile.
            if !guards[position].dropped {
                guards[position].dropped = true;
                PENDING_DROPS.set(PENDING_DROPS.get() + 1);
            }
            refresh_attention(&guards);
            return None;
        }
        let displaced = remove_slot(&mut guards, position);
        refresh_attention(&guards);
        displaced
    });
    // Every context replaced here is dropped after the borrows end.
    drop(displaced);
}

/// The executor (see `crate::executor`) whose unit of work (a task, a blocking job, a pool job)
/// this thread is running: those compiled in first, then those registered. Where a runtime
/// offers no way to tell, its adapter's docs say so.
pub(crate) fn current_executor() -> Option<&'static dyn Executor> {
    let found = |executor: &&&dyn Executor| executor.in_unit_of_work();
    if let Some(executor) = integrations::EXECUTORS.iter().find(found) {
        return Some(*executor);
    }
    let registered = executor::registered()?;
    registered.iter().find(found).copied()
}
