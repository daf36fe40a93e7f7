//! The frame and guard machine, checked against a small reference model.
//!
//! Random programs of `attach`, guard drops (in order, out of order, in nested frames, never:
//! `mem::forget`), `run`, `scope`, `set`, `remove`, polls of several `WithContext` futures
//! (nested in one another), panics, and destructors that panic while a frame ends or a guard's
//! context is discarded (a forgotten guard whose context holds a [`Bomb`]), run on the real
//! crate and on the model below; after every step the current context must be the model's.
//!
//! The model is declarative: each active frame has a *base* context and a list of live guards,
//! each with its own context. The current context of a frame is that of its newest live guard,
//! else its base; `set` and `remove` change that one. Dropping a guard removes it from its
//! frame's list wherever the drop happens, and does nothing once its frame has ended. A frame
//! that ends takes its guards with it; a `WithContext` keeps its frame's base for its next poll.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

mod common;

use common::{Bomb, Boom};
use contextvars::{Context, ContextExt, ContextGuard, ContextVar, WithContext};
use proptest::prelude::*;

static A: ContextVar<u32> = ContextVar::new("a");
static B: ContextVar<u32> = ContextVar::new("b");
static C: ContextVar<u32> = ContextVar::new("c");
static VARS: [&ContextVar<u32>; 3] = [&A, &B, &C];

const GUARD_SLOTS: usize = 6;
const FUTURES: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    /// Attach the current context with variable `.0` set to `.1`.
    Attach(usize, u32),
    DropGuard(usize),
    ForgetGuard(usize),
    Set(usize, u32),
    Remove(usize),
    /// `Context::run` with a copy of the current context with variable `.0` set to `.1`.
    Run(usize, u32, Vec<Op>),
    /// `Context::new().run(..)`.
    RunEmpty(Vec<Op>),
    Scope(usize, u32, Vec<Op>),
    /// Poll future `.0` once (made on first use, with the empty context), running `.1` in it.
    Poll(usize, Vec<Op>),
    DropFuture(usize),
    /// Run the ops in a `run` frame that then panics; the panic is caught outside it.
    Panic(Vec<Op>),
    /// Attach the current context plus a [`Bomb`] and forget the guard: whoever discards the
    /// last context holding it (the frame's end, a guard's drop) gets its panic. The model sees
    /// an attach that changes no variable. Skipped inside `Panic`, whose frame ends while
    /// unwinding: a destructor that panics then aborts the process, as everywhere in Rust.
    ArmBomb,
}

static BOMB: ContextVar<Bomb> = ContextVar::opaque("bomb");

/// Runs `f`; a [`Boom`] it panics with is caught (any other panic goes on).
fn boom_ok<R>(f: impl FnOnce() -> R) -> Option<R> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => Some(result),
        Err(payload) if payload.is::<Boom>() => None,
        Err(payload) => panic::resume_unwind(payload),
    }
}

type Ctx = BTreeMap<usize, u32>;

struct ModelFrame {
    uid: u64,
    base: Ctx,
    guards: Vec<(u64, Ctx)>,
}

impl ModelFrame {
    fn current(&mut self) -> &mut Ctx {
        match self.guards.last_mut() {
            Some((_, ctx)) => ctx,
            None => &mut self.base,
        }
    }
}

#[derive(Default)]
struct Model {
    frames: Vec<ModelFrame>,
    next_uid: u64,
    /// Guard id to the uid of the frame it was attached in.
    home: HashMap<u64, u64>,
    alive: HashSet<u64>,
    futures: [Option<Ctx>; FUTURES],
    busy: [bool; FUTURES],
}

impl Model {
    fn current(&mut self) -> Ctx {
        self.frames.last_mut().expect("a frame").current().clone()
    }

    fn push(&mut self, base: Ctx) {
        self.next_uid += 1;
        self.alive.insert(self.next_uid);
        self.frames.push(ModelFrame {
            uid: self.next_uid,
            base,
            guards: Vec::new(),
        });
    }

    /// Ends the innermost frame; returns its base.
    fn pop(&mut self) -> Ctx {
        let frame = self.frames.pop().expect("a frame");
        self.alive.remove(&frame.uid);
        frame.base
    }

    fn drop_guard(&mut self, id: u64) {
        let home = self.home[&id];
        if !self.alive.contains(&home) {
            return;
        }
        let frame = self
            .frames
            .iter_mut()
            .find(|frame| frame.uid == home)
            .expect("alive frames are on the stack");
        frame.guards.retain(|(guard, _)| *guard != id);
    }
}

#[derive(Default)]
struct Env {
    guards: Vec<Option<(u64, ContextGuard)>>,
    futures: Vec<Option<Pin<Box<WithContext<Script>>>>>,
    next_guard: u64,
}

thread_local! {
    static MODEL: RefCell<Model> = RefCell::default();
    static ENV: RefCell<Env> = RefCell::default();
    /// The ops the next poll of a `Script` runs.
    static SCRIPT: RefCell<Vec<Op>> = const { RefCell::new(Vec::new()) };
    /// How many `Panic` ops are running (no bombs inside them).
    static IN_PANIC: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A future that runs the ops handed to it through `SCRIPT` on each poll, and never finishes.
struct Script;

impl Future for Script {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<()> {
        let ops = SCRIPT.with(|script| std::mem::take(&mut *script.borrow_mut()));
        exec(&ops);
        Poll::Pending
    }
}

struct ModelPanic;

fn real_current() -> Ctx {
    VARS.iter()
        .enumerate()
        .filter_map(|(i, var)| var.get().map(|value| (i, value)))
        .collect()
}

fn check(op: &Op) {
    let expected = MODEL.with(|model| model.borrow_mut().current());
    assert_eq!(real_current(), expected, "after {op:?}");
}

fn with_value(var: usize, value: u32) -> Context {
    Context::current().with_value(VARS[var], value)
}

fn nested(base: Ctx, ops: &[Op]) {
    MODEL.with(|model| model.borrow_mut().push(base));
    exec(ops);
}

fn exec(ops: &[Op]) {
    for op in ops {
        boom_ok(|| step(op));
        check(op);
    }
}

/// The model's side of an attach of the current context with `change` applied, under `id`.
fn model_attach(id: u64, change: impl FnOnce(&mut Ctx)) {
    MODEL.with(|model| {
        let mut model = model.borrow_mut();
        let mut ctx = model.current();
        change(&mut ctx);
        let frame = model.frames.last_mut().expect("a frame");
        let uid = frame.uid;
        frame.guards.push((id, ctx));
        model.home.insert(id, uid);
    });
}

fn next_guard_id() -> u64 {
    ENV.with(|env| {
        let mut env = env.borrow_mut();
        env.next_guard += 1;
        env.next_guard
    })
}

fn step(op: &Op) {
    match op {
        Op::Attach(var, value) => {
            let guard = with_value(*var, *value).attach();
            let id = next_guard_id();
            ENV.with(|env| {
                let mut env = env.borrow_mut();
                let slot = env.guards.iter().position(Option::is_none);
                match slot {
                    Some(slot) => env.guards[slot] = Some((id, guard)),
                    None if env.guards.len() < GUARD_SLOTS => env.guards.push(Some((id, guard))),
                    // No room: keep the guard alive for good (the frame ends it).
                    None => std::mem::forget(guard),
                }
            });
            model_attach(id, |ctx| {
                ctx.insert(*var, *value);
            });
        }
        Op::ArmBomb => {
            if IN_PANIC.get() > 0 {
                return;
            }
            std::mem::forget(Context::current().with_value(&BOMB, Bomb).attach());
            model_attach(next_guard_id(), |_| ());
        }
        Op::DropGuard(slot) | Op::ForgetGuard(slot) => {
            let taken = ENV.with(|env| {
                let mut env = env.borrow_mut();
                let len = env.guards.len().max(1);
                env.guards.get_mut(slot % len).and_then(Option::take)
            });
            if let Some((id, guard)) = taken {
                if matches!(op, Op::DropGuard(_)) {
                    MODEL.with(|model| model.borrow_mut().drop_guard(id));
                    drop(guard);
                } else {
                    std::mem::forget(guard);
                }
            }
        }
        Op::Set(var, value) => {
            VARS[*var].set(*value);
            MODEL.with(|model| {
                let mut model = model.borrow_mut();
                model
                    .frames
                    .last_mut()
                    .unwrap()
                    .current()
                    .insert(*var, *value);
            });
        }
        Op::Remove(var) => {
            VARS[*var].remove();
            MODEL.with(|model| {
                let mut model = model.borrow_mut();
                model.frames.last_mut().unwrap().current().remove(var);
            });
        }
        Op::Run(var, value, ops) => {
            let base = MODEL.with(|model| {
                let mut ctx = model.borrow_mut().current();
                ctx.insert(*var, *value);
                ctx
            });
            boom_ok(|| with_value(*var, *value).run(|| nested(base, ops)));
            MODEL.with(|model| model.borrow_mut().pop());
        }
        Op::RunEmpty(ops) => {
            boom_ok(|| Context::new().run(|| nested(Ctx::new(), ops)));
            MODEL.with(|model| model.borrow_mut().pop());
        }
        Op::Scope(var, value, ops) => {
            let base = MODEL.with(|model| {
                let mut ctx = model.borrow_mut().current();
                ctx.insert(*var, *value);
                ctx
            });
            boom_ok(|| VARS[*var].scope(*value, || nested(base, ops)));
            MODEL.with(|model| model.borrow_mut().pop());
        }
        Op::Poll(index, ops) => {
            let index = index % FUTURES;
            let base = MODEL.with(|model| {
                let mut model = model.borrow_mut();
                if model.busy[index] {
                    return None;
                }
                model.busy[index] = true;
                Some(model.futures[index].take().unwrap_or_default())
            });
            let Some(base) = base else { return };
            let mut future = ENV.with(|env| {
                let mut env = env.borrow_mut();
                if env.futures.len() <= index {
                    env.futures.resize_with(FUTURES, || None);
                }
                env.futures[index]
                    .take()
                    .unwrap_or_else(|| Box::pin(Script.with_context(Context::new())))
            });
            SCRIPT.with(|script| *script.borrow_mut() = ops.clone());
            MODEL.with(|model| model.borrow_mut().push(base));
            let waker = futures::task::noop_waker();
            let polled = boom_ok(|| future.as_mut().poll(&mut TaskContext::from_waker(&waker)));
            assert!(polled.is_none_or(|polled| polled.is_pending()));
            MODEL.with(|model| {
                let mut model = model.borrow_mut();
                let base = model.pop();
                model.futures[index] = Some(base);
                model.busy[index] = false;
            });
            ENV.with(|env| env.borrow_mut().futures[index] = Some(future));
        }
        Op::DropFuture(index) => {
            let index = index % FUTURES;
            let future = ENV.with(|env| {
                env.borrow_mut()
                    .futures
                    .get_mut(index)
                    .and_then(Option::take)
            });
            if future.is_some() {
                MODEL.with(|model| model.borrow_mut().futures[index] = None);
            }
            boom_ok(|| drop(future));
        }
        Op::Panic(ops) => {
            let base = MODEL.with(|model| model.borrow_mut().current());
            IN_PANIC.set(IN_PANIC.get() + 1);
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                Context::current().run(|| {
                    nested(base, ops);
                    panic::panic_any(ModelPanic);
                })
            }));
            IN_PANIC.set(IN_PANIC.get() - 1);
            // The ModelPanic, or a Boom from the frame's context (dropped after the frame ends).
            assert!(outcome.is_err());
            MODEL.with(|model| model.borrow_mut().pop());
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    let var = 0..VARS.len();
    let value = 0..100u32;
    let slot = 0..GUARD_SLOTS;
    let leaf = prop_oneof![
        3 => (var.clone(), value.clone()).prop_map(|(v, x)| Op::Attach(v, x)),
        3 => slot.clone().prop_map(Op::DropGuard),
        1 => slot.prop_map(Op::ForgetGuard),
        3 => (var.clone(), value.clone()).prop_map(|(v, x)| Op::Set(v, x)),
        1 => var.clone().prop_map(Op::Remove),
        1 => (0..FUTURES).prop_map(Op::DropFuture),
        1 => Just(Op::ArmBomb),
    ];
    leaf.prop_recursive(3, 48, 6, move |inner| {
        let ops = prop::collection::vec(inner, 0..6);
        prop_oneof![
            (var.clone(), value.clone(), ops.clone()).prop_map(|(v, x, ops)| Op::Run(v, x, ops)),
            ops.clone().prop_map(Op::RunEmpty),
            (var.clone(), value.clone(), ops.clone()).prop_map(|(v, x, ops)| Op::Scope(v, x, ops)),
            (0..FUTURES, ops.clone()).prop_map(|(f, ops)| Op::Poll(f, ops)),
            ops.prop_map(Op::Panic),
        ]
    })
}

/// Runs `program` in a frame of its own, on this thread, against a fresh model.
fn run_program(program: &[Op]) {
    MODEL.with(|model| *model.borrow_mut() = Model::default());
    ENV.with(|env| *env.borrow_mut() = Env::default());
    boom_ok(|| {
        Context::new().run(|| {
            nested(Ctx::new(), program);
            // Whatever is still alive goes inside the program's frame.
            let leftovers = ENV.with(|env| std::mem::take(&mut *env.borrow_mut()));
            boom_ok(|| drop(leftovers));
        })
    });
    assert_eq!(
        real_current(),
        Ctx::new(),
        "the program's frame left the thread as it found it"
    );
}

fn quiet_model_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            if !payload.is::<ModelPanic>() && !payload.is::<Boom>() {
                default(info);
            }
        }));
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 512 }, ..ProptestConfig::default() })]

    #[test]
    fn the_frame_machine_agrees_with_the_model(program in prop::collection::vec(op(), 1..24)) {
        quiet_model_panics();
        run_program(&program);
    }
}

#[test]
fn a_guard_of_an_outer_frame_dropped_inside_a_poll_and_one_leaked_out_of_a_panic() {
    use Op::*;
    quiet_model_panics();
    run_program(&[
        Attach(0, 1),
        Poll(0, vec![Set(1, 2), DropGuard(0), Attach(2, 3)]),
        Panic(vec![Attach(0, 9)]),
        DropGuard(1),
        Poll(0, vec![DropGuard(0), Set(1, 4)]),
        Attach(1, 5),
        Scope(0, 6, vec![Attach(2, 7), DropGuard(0), DropGuard(1)]),
        Set(2, 8),
    ]);
}
