//! `get` keeps a per-thread read cache: it must never return a value the current context does
//! not hold, whatever happened since the entry was filled (a `set`, a `remove`, an `attach` or a
//! guard drop, a frame that ended, a context freed and another allocated at its address).
//!
//! Random programs over 20 variables (more than the cache has entries, so entries collide),
//! checked against a model after every step; in debug builds the crate also checks every cache
//! hit against a full lookup.

use std::collections::BTreeMap;

use contextvars::{Context, ContextVar};
use proptest::prelude::*;

const VARS: usize = 20;

fn vars() -> &'static [ContextVar<u64>] {
    static CELL: std::sync::OnceLock<Vec<ContextVar<u64>>> = std::sync::OnceLock::new();
    CELL.get_or_init(|| (0..VARS).map(|_| ContextVar::new("v")).collect())
}

type Model = BTreeMap<usize, u64>;

#[derive(Clone, Debug)]
enum Op {
    Get(usize),
    Set(usize, u64),
    Remove(usize),
    /// Make a context from scratch with these values, keep it in slot `.0`, dropping the one there.
    Make(usize, Vec<(usize, u64)>),
    /// Run the ops inside the context of slot `.0` (the empty one if none).
    Enter(usize, Vec<Op>),
    /// Attach the current context plus one value, run the ops, drop the guard.
    Attach(usize, u64, Vec<Op>),
}

fn op() -> impl Strategy<Value = Op> {
    let leaf = prop_oneof![
        4 => (0..VARS).prop_map(Op::Get),
        2 => (0..VARS, any::<u64>()).prop_map(|(v, x)| Op::Set(v, x)),
        1 => (0..VARS).prop_map(Op::Remove),
        2 => (0..4usize, prop::collection::vec((0..VARS, any::<u64>()), 0..6))
            .prop_map(|(slot, values)| Op::Make(slot, values)),
    ];
    leaf.prop_recursive(3, 48, 8, |inner| {
        prop_oneof![
            (0..4usize, prop::collection::vec(inner.clone(), 0..8))
                .prop_map(|(slot, ops)| Op::Enter(slot, ops)),
            (0..VARS, any::<u64>(), prop::collection::vec(inner, 0..8))
                .prop_map(|(v, x, ops)| Op::Attach(v, x, ops)),
        ]
    })
}

struct Slots {
    contexts: Vec<Option<(Context, Model)>>,
}

fn check_all(model: &Model) {
    for (i, var) in vars().iter().enumerate() {
        assert_eq!(var.get(), model.get(&i).copied(), "variable {i}");
    }
}

fn run(ops: &[Op], model: &mut Model, slots: &mut Slots) {
    for op in ops {
        match op {
            Op::Get(v) => assert_eq!(vars()[*v].get(), model.get(v).copied()),
            Op::Set(v, x) => {
                vars()[*v].set(*x);
                model.insert(*v, *x);
            }
            Op::Remove(v) => {
                vars()[*v].remove();
                model.remove(v);
            }
            Op::Make(slot, values) => {
                let mut context = Context::new();
                let mut made = Model::new();
                for &(v, x) in values {
                    context = context.with_value(&vars()[v], x);
                    made.insert(v, x);
                }
                // The old one is freed first, so the new root may well take its address.
                slots.contexts[*slot] = None;
                slots.contexts[*slot] = Some((context, made));
            }
            Op::Enter(slot, inner) => {
                let (context, mut inside) = slots.contexts[*slot].clone().unwrap_or_default();
                context.run(|| {
                    check_all(&inside);
                    run(inner, &mut inside, slots);
                });
            }
            Op::Attach(v, x, inner) => {
                let guard = Context::current().with_value(&vars()[*v], *x).attach();
                let mut inside = model.clone();
                inside.insert(*v, *x);
                check_all(&inside);
                run(inner, &mut inside, slots);
                drop(guard);
            }
        }
        check_all(model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 256 }, ..ProptestConfig::default() })]

    #[test]
    fn get_always_agrees_with_the_model(ops in prop::collection::vec(op(), 1..40)) {
        std::thread::spawn(move || {
            let mut slots = Slots { contexts: vec![None; 4] };
            Context::new().run(|| run(&ops, &mut Model::new(), &mut slots));
            check_all(&Model::new());
        })
        .join()
        .map_err(|_| TestCaseError::fail("a step disagreed with the model"))?;
    }
}

static X: ContextVar<u64> = ContextVar::new("x");

/// A context freed and another made at once: the allocator often hands the new root the old
/// one's address, which must not make the old root's cached value come back.
#[test]
fn a_new_context_at_a_freed_ones_address_is_not_confused_with_it() {
    // Fewer under Miri, which interprets every step (its allocator reuses addresses too).
    const ROUNDS: u64 = if cfg!(miri) { 100 } else { 1_000 };
    for i in 0..ROUNDS {
        let first = Context::new().with_value(&X, i);
        first.run(|| assert_eq!(X.get(), Some(i)));
        drop(first);
        let second = Context::new().with_value(&X, i + 1_000_000);
        second.run(|| assert_eq!(X.get(), Some(i + 1_000_000)));
    }
}

/// Every way the current context changes, each followed by a read of a variable whose entry
/// was filled just before it.
#[test]
fn every_change_of_the_current_context_is_seen_by_the_next_get() {
    Context::new().with_value(&X, 1).run(|| {
        assert_eq!(X.get(), Some(1));
        X.set(2);
        assert_eq!(X.get(), Some(2));
        X.remove();
        assert_eq!(X.get(), None);
        X.set(3);
        let guard = Context::new().with_value(&X, 4).attach();
        assert_eq!(X.get(), Some(4));
        X.scope(5, || assert_eq!(X.get(), Some(5)));
        assert_eq!(X.get(), Some(4));
        Context::new().run(|| assert_eq!(X.get(), None));
        drop(guard);
        assert_eq!(X.get(), Some(3));
    });
    assert_eq!(X.get(), None);
}
