//! Snapshot lifetimes with per-thread reference credits (`src/raw.rs`, `src/raw/count.rs`):
//! capturing the current context on its own thread takes references from credits the thread
//! holds, and dropping a snapshot of the current context gives one back, without touching the
//! shared count. That must never change *when* a context's values are dropped: a value is
//! dropped exactly when the last snapshot, frame, guard or current slot holding it is gone, on
//! whichever thread that happens, and exactly once.
//!
//! A property test drives random programs against a model that says, after every step, which
//! values must still be alive, and compares with the values' drop counters.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};

use contextvars::{Context, ContextExt, ContextGuard, ContextVar};
use proptest::prelude::*;

/// A value that counts its drops.
struct Tracked {
    key: usize,
    drops: Arc<Vec<AtomicUsize>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops[self.key].fetch_add(1, Ordering::SeqCst);
    }
}

static VALUE: ContextVar<Tracked> = ContextVar::opaque("value");

/// The key of the value set in `context` (`None` when unset).
fn key_of(context: &Context) -> Option<usize> {
    context.get_ref(&VALUE).map(|value| value.key)
}

#[derive(Clone, Debug)]
enum Op {
    /// A new context holding a new value.
    New,
    /// `Context::current()`, kept.
    Capture,
    /// Several captures on the same root, some dropped at once (credits taken and given back).
    CaptureBurst(usize),
    CloneHeld(usize),
    Drop(usize),
    /// The snapshot is sent to another thread and dropped there.
    DropElsewhere(usize),
    /// Another thread runs in the snapshot, captures there (its own credits), keeps one capture
    /// and sends it back.
    CaptureElsewhere(usize),
    Attach(usize),
    Detach,
    /// `VALUE.set(new value)`: the current root is replaced.
    Set,
    /// `held.run(..)`, capturing inside and keeping one capture.
    Run(usize),
    /// One poll of a `WithContext` future that captures inside and keeps one capture.
    Poll(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let index = 0..64usize;
    prop_oneof![
        2 => Just(Op::New),
        3 => Just(Op::Capture),
        2 => (1..80usize).prop_map(Op::CaptureBurst),
        1 => index.clone().prop_map(Op::CloneHeld),
        3 => index.clone().prop_map(Op::Drop),
        2 => index.clone().prop_map(Op::DropElsewhere),
        2 => index.clone().prop_map(Op::CaptureElsewhere),
        2 => index.clone().prop_map(Op::Attach),
        2 => Just(Op::Detach),
        2 => Just(Op::Set),
        2 => index.clone().prop_map(Op::Run),
        2 => index.prop_map(Op::Poll),
    ]
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `ops` on a fresh thread (so that the thread's exit is part of the program) and checks
/// every value's drop count against the model after every step.
fn check(ops: Vec<Op>) {
    const MAX_VALUES: usize = 512;
    let drops: Arc<Vec<AtomicUsize>> =
        Arc::new((0..MAX_VALUES).map(|_| AtomicUsize::new(0)).collect());
    let (jobs, received) = mpsc::channel::<Job>();
    let other = std::thread::spawn(move || {
        for job in received {
            job();
        }
    });
    let owner_drops = drops.clone();
    let owner = std::thread::spawn(move || {
        let drops = owner_drops;
        let mut next = 0;
        let fresh = |next: &mut usize| {
            let value = Tracked {
                key: *next,
                drops: drops.clone(),
            };
            *next += 1;
            value
        };
        let mut held: Vec<(Context, Option<usize>)> = Vec::new();
        let mut guards: Vec<(ContextGuard, Option<usize>)> = Vec::new();
        let mut current: Option<usize> = None;
        let on_other = |job: Job| {
            let (done, wait) = mpsc::channel();
            jobs.send(Box::new(move || {
                job();
                done.send(()).unwrap();
            }))
            .unwrap();
            wait.recv().unwrap();
        };
        for op in ops {
            match op {
                Op::New => {
                    let value = fresh(&mut next);
                    let key = value.key;
                    held.push((Context::new().with_value(&VALUE, value), Some(key)));
                }
                Op::Capture => held.push((Context::current(), current)),
                Op::CaptureBurst(n) => {
                    let burst: Vec<Context> = (0..n).map(|_| Context::current()).collect();
                    for (i, captured) in burst.into_iter().enumerate() {
                        if i % 3 == 0 {
                            held.push((captured, current));
                        }
                    }
                }
                Op::CloneHeld(i) if !held.is_empty() => {
                    let (context, key) = &held[i % held.len()];
                    held.push((context.clone(), *key));
                }
                Op::Drop(i) if !held.is_empty() => drop(held.swap_remove(i % held.len())),
                Op::DropElsewhere(i) if !held.is_empty() => {
                    let (context, _) = held.swap_remove(i % held.len());
                    on_other(Box::new(move || drop(context)));
                }
                Op::CaptureElsewhere(i) if !held.is_empty() => {
                    let (context, key) = held[i % held.len()].clone();
                    let (send, back) = mpsc::channel();
                    on_other(Box::new(move || {
                        let kept = context.run(|| {
                            let burst: Vec<Context> = (0..5).map(|_| Context::current()).collect();
                            drop(burst);
                            Context::current()
                        });
                        drop(context);
                        send.send(kept).unwrap();
                    }));
                    held.push((back.recv().unwrap(), key));
                }
                Op::Attach(i) if !held.is_empty() => {
                    let (context, key) = held[i % held.len()].clone();
                    guards.push((context.attach(), current));
                    current = key;
                }
                Op::Detach => {
                    if let Some((guard, previous)) = guards.pop() {
                        drop(guard);
                        current = previous;
                    }
                }
                Op::Set => {
                    let value = fresh(&mut next);
                    current = Some(value.key);
                    VALUE.set(value);
                }
                Op::Run(i) if !held.is_empty() => {
                    let (context, key) = held[i % held.len()].clone();
                    let kept = context.run(|| {
                        drop(Context::current());
                        Context::current()
                    });
                    held.push((kept, key));
                }
                Op::Poll(i) if !held.is_empty() => {
                    let (context, key) = held[i % held.len()].clone();
                    let mut future = std::pin::pin!(std::future::poll_fn(|_| {
                        drop(Context::current());
                        Poll::Ready(Context::current())
                    })
                    .with_context(context));
                    let mut cx = TaskContext::from_waker(Waker::noop());
                    let Poll::Ready(kept) = future.as_mut().poll(&mut cx) else {
                        unreachable!("ready at once")
                    };
                    held.push((kept, key));
                }
                _ => {}
            }
            assert_eq!(key_of(&Context::current()), current, "the current context");
            for key in 0..next {
                let alive = current == Some(key)
                    || held.iter().any(|(_, k)| *k == Some(key))
                    || guards.iter().any(|(_, k)| *k == Some(key));
                assert_eq!(
                    drops[key].load(Ordering::SeqCst),
                    usize::from(!alive),
                    "value {key} after {op:?}: alive = {alive}"
                );
            }
        }
        while let Some((guard, _)) = guards.pop() {
            drop(guard);
        }
        drop(held);
        drop(jobs);
        next
        // The thread exits with its current context (a value set at its top level, if any):
        // dropped with the thread's storage, after the credits are given back.
    });
    let made = owner.join().expect("the owner thread");
    other.join().expect("the other thread");
    for key in 0..made {
        assert_eq!(
            drops[key].load(Ordering::SeqCst),
            1,
            "value {key} at the end"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 256 }, ..ProptestConfig::default() })]

    #[test]
    fn values_are_dropped_exactly_when_their_last_holder_is_gone(
        ops in prop::collection::vec(op(), 1..48)
    ) {
        check(ops);
    }
}

/// A thread that captured many times under its current context (so it holds credits) and
/// exits without restoring it: the context's value is dropped once, at thread exit. Both ways a
/// thread's top level gets a context: a forgotten guard, and a `set`.
#[test]
fn credits_held_at_thread_exit_are_given_back() {
    let drops: Arc<Vec<AtomicUsize>> = Arc::new(vec![AtomicUsize::new(0), AtomicUsize::new(0)]);
    let value = |key| Tracked {
        key,
        drops: drops.clone(),
    };
    let context = Context::new().with_value(&VALUE, value(0));
    std::thread::spawn(move || {
        std::mem::forget(context.attach());
        let kept: Vec<Context> = (0..100).map(|_| Context::current()).collect();
        drop(kept);
        assert_eq!(key_of(&Context::current()), Some(0));
    })
    .join()
    .unwrap();
    assert_eq!(drops[0].load(Ordering::SeqCst), 1);
    let set = value(1);
    std::thread::spawn(move || {
        VALUE.set(set);
        let kept: Vec<Context> = (0..100).map(|_| Context::current()).collect();
        drop(kept);
        assert_eq!(key_of(&Context::current()), Some(1));
    })
    .join()
    .unwrap();
    assert_eq!(drops[1].load(Ordering::SeqCst), 1);
}

/// Snapshots captured on one thread (from credits) and dropped on many others, while the
/// capturing thread keeps capturing: the value is dropped once, after the last of them.
#[test]
fn snapshots_taken_from_credits_and_dropped_across_threads_drop_the_value_once() {
    let drops: Arc<Vec<AtomicUsize>> = Arc::new(vec![AtomicUsize::new(0)]);
    let value = Tracked {
        key: 0,
        drops: drops.clone(),
    };
    let (send, receive) = mpsc::sync_channel::<Context>(64);
    let receive = Arc::new(std::sync::Mutex::new(receive));
    let droppers: Vec<_> = (0..4)
        .map(|_| {
            let receive = receive.clone();
            std::thread::spawn(move || loop {
                let next = receive.lock().unwrap().recv();
                match next {
                    Ok(context) => {
                        assert_eq!(key_of(&context), Some(0));
                        drop(context);
                    }
                    Err(_) => break,
                }
            })
        })
        .collect();
    // Fewer under Miri, which interprets every step: still several batches of credits.
    const SNAPSHOTS: usize = if cfg!(miri) { 500 } else { 20_000 };
    Context::new().with_value(&VALUE, value).run(|| {
        for _ in 0..SNAPSHOTS {
            send.send(Context::current()).unwrap();
        }
    });
    drop(send);
    for dropper in droppers {
        dropper.join().unwrap();
    }
    assert_eq!(drops[0].load(Ordering::SeqCst), 1);
}
