#![cfg(feature = "rayon")]
//! Work stealing: jobs of different contexts running at once on one pool, nested in each other
//! on the same worker, each seeing only its own context.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;

use contextvars::rayon::{join_with_context, ThreadPoolExt};
use contextvars::{Context, ContextExt, ContextVar};
use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");

fn pool(threads: usize) -> ThreadPool {
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn assert_workers_clean(pool: &ThreadPool) {
    let clean = pool.broadcast(|_| Context::current().is_empty());
    assert_eq!(clean, vec![true; pool.current_num_threads()]);
}

/// Counts checks without panicking: a panic in the middle of a choreography of barriers would
/// leave the other participants waiting forever instead of failing the test.
#[derive(Default)]
struct Tally {
    checks: AtomicUsize,
    mismatches: AtomicUsize,
    /// Checks made on a thread that was, further up its stack, running the other request.
    nested_in_other: AtomicUsize,
}

thread_local! {
    /// The requests whose closures are running on this thread, outermost first.
    static RUNNING: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

impl Tally {
    /// Runs `f` as a closure of request `tag`, checking that it sees `tag` before and after.
    fn closure<R>(&self, tag: &'static str, f: impl FnOnce() -> R) -> R {
        self.check(tag);
        let nested = RUNNING.with(|running| {
            let mut running = running.borrow_mut();
            let nested = running.iter().any(|&other| other != tag);
            running.push(tag);
            nested
        });
        if nested {
            self.nested_in_other.fetch_add(1, Ordering::Relaxed);
        }
        let result = f();
        RUNNING.with(|running| running.borrow_mut().pop());
        self.check(tag);
        result
    }

    fn check(&self, tag: &'static str) {
        self.checks.fetch_add(1, Ordering::Relaxed);
        if REQUEST_ID.get() != Some(tag) {
            self.mismatches.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn a_worker_blocked_in_join_steals_a_job_of_another_context_and_each_keeps_its_own() {
    // Two workers. Request A's job joins two halves: the first waits until the second is
    // running on the other worker, then returns, so A's worker blocks in the join and steals
    // whatever is queued. The second half holds the other worker until request B's work is
    // done, so B's work can only run on A's worker, nested inside A's join (and inside A's
    // `zip`, whose context stays attached to the worker while its items are processed).
    let pool = pool(2);
    let tally = Tally::default();
    let second_half_running = Barrier::new(3); // first half, second half, request B's thread
    let b_done = Barrier::new(2); // second half, request B's thread
    let (a_worker, b_worker) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            let request_a = Context::new().with_value(&REQUEST_ID, "A");
            // A plain `install`: A's context comes from the adaptor alone.
            pool.install(|| {
                let worker = AtomicUsize::new(usize::MAX);
                [0u8]
                    .par_iter()
                    .with_context(request_a)
                    .zip([0u8].par_iter())
                    .for_each(|_| {
                        tally.closure("A", || {
                            worker.store(rayon::current_thread_index().unwrap(), Ordering::Relaxed);
                            join_with_context(
                                || tally.closure("A", || second_half_running.wait()),
                                || {
                                    tally.closure("A", || {
                                        second_half_running.wait();
                                        b_done.wait();
                                    })
                                },
                            );
                        })
                    });
                worker.into_inner()
            })
        });
        let b = s.spawn(|| {
            second_half_running.wait();
            let worker = REQUEST_ID.scope("B", || {
                pool.install_with_context(|| {
                    let sum: u32 = (0..200u32)
                        .into_par_iter()
                        .with_current_context()
                        .map(|i| {
                            tally.closure("B", || {
                                let (x, y) = join_with_context(
                                    || tally.closure("B", || i),
                                    || tally.closure("B", || i),
                                );
                                x + y
                            })
                        })
                        .sum();
                    assert_eq!(sum, 2 * (0..200).sum::<u32>());
                    rayon::current_thread_index().unwrap()
                })
            });
            b_done.wait();
            worker
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(
        a_worker, b_worker,
        "B's work ran on A's worker, inside A's join"
    );
    assert_eq!(tally.mismatches.load(Ordering::Relaxed), 0);
    // Three closures of A and 600 of B, each checked twice.
    assert_eq!(tally.checks.load(Ordering::Relaxed), 2 * (3 + 600));
    assert_eq!(tally.nested_in_other.load(Ordering::Relaxed), 600);
    assert_workers_clean(&pool);
}

/// A request's work: a parallel iterator whose every item joins two halves, each running an
/// inner parallel iterator (one through rayon's consumers, one through its producers).
fn request_work(tally: &Tally, tag: &'static str, items: &[u64]) -> u64 {
    items
        .par_iter()
        .with_current_context()
        .map(|&i| {
            tally.closure(tag, || {
                let (left, right) = join_with_context(
                    || {
                        tally.closure(tag, || {
                            (0..32u64)
                                .into_par_iter()
                                .with_current_context()
                                .map(|j| tally.closure(tag, || i * j))
                                .sum::<u64>()
                        })
                    },
                    || {
                        tally.closure(tag, || {
                            items[..32]
                                .par_iter()
                                .with_current_context()
                                .zip(items[..32].par_iter())
                                .enumerate()
                                .map(|(k, (a, b))| tally.closure(tag, || a + b + k as u64))
                                .sum::<u64>()
                        })
                    },
                );
                left + right
            })
        })
        .sum()
}

#[test]
fn two_requests_share_a_pool_with_nested_joins_and_parallel_iterators() {
    let pool = pool(4);
    let tally = Tally::default();
    let items: Vec<u64> = (0..96).collect();
    let expected: u64 = items
        .iter()
        .map(|i| (0..32).map(|j| i * j).sum::<u64>() + (0..32).map(|k| 3 * k).sum::<u64>())
        .sum();
    let start = Barrier::new(2);
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = ["A", "B"]
            .into_iter()
            .map(|tag| {
                let (pool, tally, items, start) = (&pool, &tally, &items, &start);
                s.spawn(move || {
                    REQUEST_ID.scope(tag, || {
                        start.wait();
                        pool.install_with_context(|| request_work(tally, tag, items))
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(results, [expected, expected]);
    assert_eq!(tally.mismatches.load(Ordering::Relaxed), 0);
    // Per item: the item, two halves, 32 + 32 inner items; per request 96 items; two checks each.
    assert_eq!(
        tally.checks.load(Ordering::Relaxed),
        2 * 2 * 96 * (1 + 2 + 64)
    );
    eprintln!(
        "{} closures ran on a worker that was, further up its stack, running the other request",
        tally.nested_in_other.load(Ordering::Relaxed)
    );
    assert_workers_clean(&pool);
}
