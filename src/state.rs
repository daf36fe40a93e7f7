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

use std::cell::RefCell;
use std::mem;

use crate::Context;

struct State {
    current: Context,
    /// Id of the innermost active frame; 0 is the thread's own top-level frame.
    frame: u64,
    next_frame: u64,
    next_guard: u64,
    guards: Vec<GuardSlot>,
}

struct GuardSlot {
    id: u64,
    frame: u64,
    previous: Context,
}

thread_local! {
    static STATE: RefCell<State> = const {
        RefCell::new(State {
            current: Context::new(),
            frame: 0,
            next_frame: 1,
            next_guard: 0,
            guards: Vec::new(),
        })
    };
}

/// Runs `f` with the current context; `None` once the thread's storage is gone.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    STATE
        .try_with(|state| state.try_borrow().ok().map(|state| f(&state.current)))
        .ok()
        .flatten()
}

/// Replaces the current context by `f(current)`. Returns `false` when the thread's storage is
/// gone (or, pathologically, when called from inside a value's `Clone` during a read).
pub(crate) fn update_current(f: impl FnOnce(&Context) -> Option<Context>) -> bool {
    let replaced = STATE.try_with(|state| {
        let new = {
            let state = state.try_borrow().ok()?;
            f(&state.current)
        };
        let Some(new) = new else {
            return Some(None);
        };
        let mut state = state.try_borrow_mut().ok()?;
        Some(Some(mem::replace(&mut state.current, new)))
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
    let outer_frame = STATE
        .try_with(|state| {
            let mut state = state.try_borrow_mut().ok()?;
            let state = &mut *state;
            mem::swap(&mut state.current, slot);
            let outer = state.frame;
            state.frame = state.next_frame;
            state.next_frame = state.next_frame.wrapping_add(1);
            Some(outer)
        })
        .ok()
        .flatten()?;
    Some(Frame { slot, outer_frame })
}

impl Drop for Frame<'_> {
    #[inline]
    fn drop(&mut self) {
        let _ = STATE.try_with(|state| {
            if let Ok(mut state) = state.try_borrow_mut() {
                mem::swap(&mut state.current, self.slot);
                state.frame = self.outer_frame;
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
    let result = STATE.try_with(|state| {
        let Ok(mut state) = state.try_borrow_mut() else {
            return Err(context);
        };
        let state = &mut *state;
        let id = state.next_guard;
        state.next_guard = state.next_guard.wrapping_add(1);
        let previous = mem::replace(&mut state.current, context);
        let frame = state.frame;
        state.guards.push(GuardSlot {
            id,
            frame,
            previous,
        });
        Ok(id)
    });
    match result {
        Ok(Ok(id)) => Some(id),
        // Dropped outside the borrow.
        Ok(Err(context)) => {
            drop(context);
            None
        }
        Err(_) => None,
    }
}

/// Detaches the guard `id` following the rule documented on `ContextGuard`.
pub(crate) fn detach(id: u64) {
    let dropped = STATE.try_with(|state| {
        let mut state = state.try_borrow_mut().ok()?;
        let state = &mut *state;
        let position = state.guards.iter().rposition(|slot| slot.id == id)?;
        let slot = state.guards.remove(position);
        if slot.frame != state.frame {
            // Dropped in another frame than the one it was attached in: leave this frame alone.
            return Some(slot.previous);
        }
        match state.guards[position..]
            .iter_mut()
            .find(|above| above.frame == slot.frame)
        {
            // Out of order: the guard attached after this one will restore what this one saved.
            Some(above) => Some(mem::replace(&mut above.previous, slot.previous)),
            // The newest guard of this frame: restore.
            None => Some(mem::replace(&mut state.current, slot.previous)),
        }
    });
    drop(dropped);
}
