//! The per-thread state: which context is current, in which frame, and the attach guards.
//!
//! A *frame* is one activation that installs a context for a while and then puts the previous
//! one back: a `Context::run`/`ContextVar::scope` closure or one poll of a `WithContext`. Frames
//! nest strictly (they follow the call stack), so each one saves the outer context on the Rust
//! stack and restores it when it ends, panics included.
//!
//! Context values run arbitrary `Drop` code, which may itself read context variables, so no
//! context is ever dropped while the state is borrowed: every function here moves the old
//! context out first and lets it drop after the borrow ends.

use std::cell::{Cell, RefCell};
use std::mem;

use crate::Context;

struct GuardSlot {
    id: u64,
    frame: u64,
    previous: Context,
}

thread_local! {
    static CURRENT: RefCell<Context> = const { RefCell::new(Context::new()) };
    // Plain integers have no destructor: reading them needs no liveness check.
    /// Id of the innermost active frame; 0 is the thread's own top-level frame.
    static FRAME: Cell<u64> = const { Cell::new(0) };
    static NEXT_FRAME: Cell<u64> = const { Cell::new(1) };
    static NEXT_GUARD: Cell<u64> = const { Cell::new(0) };
    static GUARDS: RefCell<Vec<GuardSlot>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with the current context; `None` once the thread's storage is gone.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    CURRENT
        .try_with(|current| current.try_borrow().ok().map(|current| f(&current)))
        .ok()
        .flatten()
}

/// Replaces the current context by `f(current)` (no change when `f` returns `None`). Returns
/// `false` when the thread's storage is gone (or, pathologically, when called from inside a
/// value's `Clone` during a read).
pub(crate) fn update_current(f: impl FnOnce(&Context) -> Option<Context>) -> bool {
    let replaced = CURRENT.try_with(|current| {
        let new = f(&*current.try_borrow().ok()?);
        match new {
            Some(new) => Some(Some(mem::replace(
                &mut *current.try_borrow_mut().ok()?,
                new,
            ))),
            None => Some(None),
        }
    });
    match replaced {
        // The old context drops here, after the borrow.
        Ok(Some(old)) => {
            drop(old);
            true
        }
        _ => false,
    }
}

/// An active frame: `slot` holds the outer context until the frame ends, when the frame's
/// context (with whatever was set inside it) goes back into `slot`.
pub(crate) struct Frame<'a> {
    slot: &'a mut Context,
    outer_frame: u64,
}

/// Installs `*slot` as the current context for the life of the returned frame, without cloning
/// it: the contexts are swapped, not copied. `None` when the thread's storage is gone, in which
/// case nothing is installed.
#[inline]
pub(crate) fn enter(slot: &mut Context) -> Option<Frame<'_>> {
    let swapped = CURRENT.try_with(|current| match current.try_borrow_mut() {
        Ok(mut current) => {
            mem::swap(&mut *current, slot);
            true
        }
        Err(_) => false,
    });
    if swapped != Ok(true) {
        return None;
    }
    let outer_frame = FRAME.get();
    let frame = NEXT_FRAME.get();
    NEXT_FRAME.set(frame.wrapping_add(1));
    FRAME.set(frame);
    Some(Frame { slot, outer_frame })
}

impl Drop for Frame<'_> {
    #[inline]
    fn drop(&mut self) {
        FRAME.set(self.outer_frame);
        let _ = CURRENT.try_with(|current| {
            if let Ok(mut current) = current.try_borrow_mut() {
                mem::swap(&mut *current, self.slot);
            }
        });
    }
}

/// Runs `f` inside `context`, consuming it; what `f` sets is dropped afterwards.
pub(crate) fn run_in<R>(mut context: Context, f: impl FnOnce() -> R) -> R {
    let frame = enter(&mut context);
    let result = f();
    drop(frame);
    result
}

/// Attaches `context` as current and returns the guard's id.
pub(crate) fn attach(context: Context) -> Option<u64> {
    let previous = CURRENT.try_with(|current| match current.try_borrow_mut() {
        Ok(mut current) => Ok(mem::replace(&mut *current, context)),
        Err(_) => Err(context),
    });
    let previous = match previous {
        Ok(Ok(previous)) => previous,
        // Dropped here, outside any borrow.
        Ok(Err(_)) | Err(_) => return None,
    };
    let id = NEXT_GUARD.get();
    NEXT_GUARD.set(id.wrapping_add(1));
    let frame = FRAME.get();
    let pushed = GUARDS.try_with(|guards| {
        guards.borrow_mut().push(GuardSlot {
            id,
            frame,
            previous,
        })
    });
    pushed.ok().map(|()| id)
}

/// Detaches the guard `id` following the rule documented on `Context::attach`.
pub(crate) fn detach(id: u64) {
    let frame = FRAME.get();
    let to_restore = GUARDS.try_with(|guards| {
        let mut guards = guards.borrow_mut();
        let position = guards.iter().rposition(|slot| slot.id == id)?;
        let slot = guards.remove(position);
        if slot.frame != frame {
            // Dropped in another frame than the one it was attached in: leave this frame alone.
            return Some(Err(slot.previous));
        }
        match guards[position..]
            .iter_mut()
            .find(|above| above.frame == slot.frame)
        {
            // Out of order: the guard attached after this one will restore what this one saved.
            Some(above) => Some(Err(mem::replace(&mut above.previous, slot.previous))),
            // The newest guard of this frame: restore.
            None => Some(Ok(slot.previous)),
        }
    });
    // Every context replaced here is dropped after the borrows end.
    match to_restore {
        Ok(Some(Ok(previous))) => {
            let replaced = CURRENT.try_with(|current| match current.try_borrow_mut() {
                Ok(mut current) => Ok(mem::replace(&mut *current, previous)),
                Err(_) => Err(previous),
            });
            drop(replaced);
        }
        other => drop(other),
    }
}
