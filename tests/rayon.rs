#![cfg(feature = "rayon")]
//! The guide's scenarios on rayon (`contextvars::rayon`): jobs, entry points, parallel
//! iterators, isolation and panics.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Barrier, Mutex};

use contextvars::rayon::{
    join_with_context, run_in_global_pool_with_context, run_in_pool_with_context,
    scope_fifo_with_context, scope_with_context, spawn_fifo_with_context, spawn_with_context,
    ScopeExt, ScopeFifoExt, ThreadPoolExt,
};
use contextvars::{Context, ContextExt, ContextVar};
use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
static COUNT: ContextVar<usize> = ContextVar::new("count");

fn pool(threads: usize) -> ThreadPool {
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn request(id: &str) -> Context {
    Context::new().with_value(&REQUEST_ID, id.to_string())
}

fn id() -> Option<String> {
    REQUEST_ID.get()
}

/// Every worker of `pool` holds an empty context.
fn assert_workers_clean(pool: &ThreadPool) {
    let clean = pool.broadcast(|_| Context::current().is_empty());
    assert_eq!(clean, vec![true; pool.current_num_threads()]);
}

fn process_item(item_id: &str, priority: u8) -> (String, u8, Option<String>) {
    (item_id.to_string(), priority, id())
}

#[test]
fn run_in_pool_with_context_sees_the_request_id_with_arguments_and_a_result() {
    let pool = pool(2);
    request("req-456").run(|| {
        let item_id = String::from("item-123");
        let handle = run_in_pool_with_context(&pool, move || process_item(&item_id, 1));
        assert_eq!(
            handle.join().unwrap(),
            ("item-123".into(), 1, Some("req-456".into()))
        );
        // The default pool, like `run_in_executor_with_context(None, ...)`.
        let handle = run_in_global_pool_with_context(|| process_item("item-124", 2));
        assert_eq!(handle.join().unwrap().2.as_deref(), Some("req-456"));
        // Without the helper, the job sees the worker's empty context.
        let (tx, rx) = mpsc::channel();
        pool.spawn(move || tx.send(id()).unwrap());
        assert_eq!(rx.recv().unwrap(), None);
    });
    assert_workers_clean(&pool);
}

#[test]
fn run_in_pool_with_context_can_be_awaited_on_any_executor_without_blocking_it() {
    let pool = pool(2);
    // futures' executor.
    let seen = futures::executor::block_on(
        async { run_in_pool_with_context(&pool, id).await.unwrap() }
            .with_context(request("req-futures")),
    );
    assert_eq!(seen.as_deref(), Some("req-futures"));

    // A single-threaded tokio runtime: the job waits for a message from another task on the
    // same runtime, which could never run if awaiting the handle blocked the thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let seen = runtime.block_on(
        async {
            let (go, wait) = mpsc::channel::<()>();
            let handle = run_in_pool_with_context(&pool, move || {
                wait.recv().unwrap();
                id()
            });
            let sender = tokio::spawn(async move { go.send(()).unwrap() });
            let seen = handle.await.unwrap();
            sender.await.unwrap();
            seen
        }
        .with_context(request("req-tokio")),
    );
    assert_eq!(seen.as_deref(), Some("req-tokio"));
    assert_workers_clean(&pool);
}

#[test]
fn jobs_are_isolated_both_ways() {
    let pool = pool(1);
    request("parent").run(|| {
        // What the job sets stays in the job, and the next job on the same thread starts
        // from its own caller's context.
        let handle = run_in_pool_with_context(&pool, || {
            REQUEST_ID.set("child-override".into());
            id()
        });
        assert_eq!(handle.join().unwrap().as_deref(), Some("child-override"));
        assert_eq!(id().as_deref(), Some("parent"));
        let next = run_in_pool_with_context(&pool, id);
        assert_eq!(next.join().unwrap().as_deref(), Some("parent"));

        // What the caller sets after submitting never reaches the job.
        let (go, wait) = mpsc::channel::<()>();
        let handle = run_in_pool_with_context(&pool, move || {
            wait.recv().unwrap();
            id()
        });
        REQUEST_ID.set("changed-later".into());
        go.send(()).unwrap();
        assert_eq!(handle.join().unwrap().as_deref(), Some("parent"));
    });
    assert_workers_clean(&pool);
}

#[test]
fn named_pool_threads_see_the_context() {
    let pool = ThreadPoolBuilder::new()
        .num_threads(2)
        .thread_name(|i| format!("process-order-{i}"))
        .build()
        .unwrap();
    let (name, seen) = request("req-7")
        .run(|| {
            run_in_pool_with_context(&pool, || {
                (std::thread::current().name().map(String::from), id())
            })
        })
        .join()
        .unwrap();
    assert!(name.unwrap().starts_with("process-order-"));
    assert_eq!(seen.as_deref(), Some("req-7"));
}

#[test]
fn rayon_entry_points_with_context() {
    let pool = pool(2);
    request("req-entry").run(|| {
        let want = Some("req-entry".to_string());

        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        spawn_with_context(move || tx.send(("spawn", id())).unwrap());
        spawn_fifo_with_context(move || tx2.send(("spawn_fifo", id())).unwrap());
        let mut got: Vec<_> = rx.iter().take(2).collect();
        got.sort();
        assert_eq!(got, [("spawn", want.clone()), ("spawn_fifo", want.clone())]);

        assert_eq!(join_with_context(id, id), (want.clone(), want.clone()));
        assert_eq!(pool.join_with_context(id, id), (want.clone(), want.clone()));
        assert_eq!(pool.install_with_context(id), want);

        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        pool.spawn_with_context(move || tx.send(id()).unwrap());
        pool.spawn_fifo_with_context(move || tx2.send(id()).unwrap());
        assert_eq!(
            rx.iter().take(2).collect::<Vec<_>>(),
            [want.clone(), want.clone()]
        );

        let seen = Mutex::new(Vec::new());
        let record = |what: &'static str| seen.lock().unwrap().push((what, id()));
        scope_with_context(|s| {
            record("scope body");
            s.spawn_with_context(|s| {
                record("scope spawn");
                s.spawn_with_context(|_| record("nested scope spawn"));
            });
        });
        scope_fifo_with_context(|s| {
            record("scope_fifo body");
            s.spawn_fifo_with_context(|_| record("scope_fifo spawn"));
        });
        pool.scope_with_context(|s| {
            record("pool scope body");
            s.spawn_with_context(|_| record("pool scope spawn"));
        });
        pool.scope_fifo_with_context(|s| {
            record("pool scope_fifo body");
            s.spawn_fifo_with_context(|_| record("pool scope_fifo spawn"));
        });
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), 9);
        for (what, value) in seen {
            assert_eq!(value, want, "{what}");
        }
    });
    assert_workers_clean(&pool);
}

#[test]
fn plain_rayon_entry_points_bypass_the_context() {
    let pool = pool(2);
    request("req-plain").run(|| {
        assert_eq!(pool.install(id), None);
        // A plain scope spawn inside a scope with context: the spawned job runs on whatever
        // worker picks it, in that worker's context.
        // A plain spawn inside a scope with context: the job runs in the context of the
        // worker that picks it up, after the scope's body has returned.
        pool.scope_with_context(|s| {
            assert_eq!(id().as_deref(), Some("req-plain"));
            s.spawn(|_| assert_eq!(id(), None));
        });
        // A plain parallel iterator.
        let seen: Vec<Option<String>> =
            pool.install(|| (0..4).into_par_iter().map(|_| id()).collect());
        assert_eq!(seen, [None, None, None, None]);
    });
}

/// Runs `pipeline` on a 4-thread pool with `Context` only reachable through the adaptor: the
/// worker that drives the iterator has an empty context of its own.
fn on_four_workers<R: Send>(pipeline: impl FnOnce(Context) -> R + Send) -> R {
    let pool = pool(4);
    let result = pool.install(|| {
        assert!(Context::current().is_empty());
        pipeline(request("req-par"))
    });
    assert_workers_clean(&pool);
    result
}

/// Four items, one per batch, each blocking until all four run: so they run on the four
/// distinct workers. Returns the worker index and the request id each saw.
fn one_per_worker(barrier: &Barrier) -> (usize, Option<String>) {
    barrier.wait();
    (rayon::current_thread_index().unwrap(), id())
}

fn assert_four_workers_saw_the_context(seen: impl IntoIterator<Item = (usize, Option<String>)>) {
    let mut workers = Vec::new();
    for (worker, value) in seen {
        assert_eq!(value.as_deref(), Some("req-par"));
        workers.push(worker);
    }
    workers.sort();
    assert_eq!(workers, [0, 1, 2, 3]);
}

#[test]
fn every_closure_after_the_adaptor_sees_the_context_on_every_worker() {
    let items: [u32; 4] = [10, 11, 12, 13];
    // map + collect: indexed, in order.
    on_four_workers(|ctx| {
        let barrier = Barrier::new(4);
        let seen: Vec<(u32, (usize, Option<String>))> = items
            .par_iter()
            .with_max_len(1)
            .with_context(ctx)
            .map(|&x| (x, one_per_worker(&barrier)))
            .collect();
        assert_eq!(
            seen.iter().map(|(x, _)| *x).collect::<Vec<_>>(),
            [10, 11, 12, 13]
        );
        assert_four_workers_saw_the_context(seen.into_iter().map(|(_, s)| s));
    });
    // filter + for_each: unindexed.
    on_four_workers(|ctx| {
        let (barrier, filtered, seen) = (
            Barrier::new(4),
            Mutex::new(Vec::new()),
            Mutex::new(Vec::new()),
        );
        items
            .par_iter()
            .with_max_len(1)
            .with_context(ctx)
            .filter(|_| {
                filtered.lock().unwrap().push(id());
                true
            })
            .for_each(|_| {
                let saw = one_per_worker(&barrier); // not while holding the lock
                seen.lock().unwrap().push(saw);
            });
        assert_eq!(
            filtered.into_inner().unwrap(),
            vec![Some("req-par".to_string()); 4]
        );
        assert_four_workers_saw_the_context(seen.into_inner().unwrap());
    });
    // zip + enumerate: through rayon's producers rather than its consumers.
    on_four_workers(|ctx| {
        let barrier = Barrier::new(4);
        let seen: Vec<(usize, u32, (usize, Option<String>))> = items
            .par_iter()
            .with_max_len(1)
            .with_context(ctx)
            .zip(&items)
            .enumerate()
            .map(|(i, (a, b))| (i, a + b, one_per_worker(&barrier)))
            .collect();
        let order: Vec<_> = seen.iter().map(|(i, sum, _)| (*i, *sum)).collect();
        assert_eq!(order, [(0, 20), (1, 22), (2, 24), (3, 26)]);
        assert_four_workers_saw_the_context(seen.into_iter().map(|(_, _, s)| s));
    });
    // sum.
    on_four_workers(|ctx| {
        let (barrier, seen) = (Barrier::new(4), Mutex::new(Vec::new()));
        let total: u32 = items
            .par_iter()
            .with_max_len(1)
            .with_context(ctx)
            .map(|x| {
                let saw = one_per_worker(&barrier);
                seen.lock().unwrap().push(saw);
                x
            })
            .sum();
        assert_eq!(total, 46);
        assert_four_workers_saw_the_context(seen.into_inner().unwrap());
    });
}

#[test]
fn adaptors_and_consumers_after_the_adaptor_see_the_context() {
    let misses = AtomicUsize::new(0);
    let check = || {
        if id().as_deref() != Some("req-par") {
            misses.fetch_add(1, Ordering::Relaxed);
        }
    };
    let v: Vec<u64> = (0..20_000).collect();
    on_four_workers(|ctx| {
        let it = || v.par_iter().with_context(ctx.clone());
        let expected: u64 = v.iter().sum();
        let sum: u64 = it()
            .map(|x| {
                check();
                x
            })
            .sum();
        assert_eq!(sum, expected);
        assert_eq!(it().filter(|_| id().is_some()).count(), v.len());
        it().for_each(|_| check());
        it().inspect(|_| check()).for_each(|_| check());
        let collected: Vec<u64> = it().map(|x| x + id().map_or(1_000_000, |_| 0)).collect();
        assert_eq!(collected, v);
        let mut into = Vec::new();
        it().map(|x| {
            check();
            *x
        })
        .collect_into_vec(&mut into);
        assert_eq!(into, v);
        it().zip(&v).for_each(|_| check());
        it().enumerate().for_each(|(i, x)| {
            check();
            assert_eq!(i as u64, *x);
        });
        let reversed: Vec<u64> = it()
            .rev()
            .map(|x| x + id().map_or(1_000_000, |_| 0))
            .collect();
        assert!(reversed.iter().rev().eq(v.iter()));
        assert_eq!(it().step_by(3).map(|_| check()).count(), 6667);
        assert_eq!(it().skip(5).take(100).map(|_| check()).count(), 100);
        it().with_min_len(100).for_each(|_| check());
        it().panic_fuse().for_each(|_| check());
        it().by_exponential_blocks().for_each(|_| check());
        it().by_uniform_blocks(1000).for_each(|_| check());
        it().flat_map_iter(|x| {
            check();
            [*x, *x]
        })
        .for_each(|_| check());
        let folded: u64 = it()
            .fold(
                || {
                    check();
                    0
                },
                |acc, x| {
                    check();
                    acc + x
                },
            )
            .sum();
        assert_eq!(folded, expected);
        let reduced = it().copied().reduce(
            || {
                check();
                0
            },
            |a, b| {
                check();
                a + b
            },
        );
        assert_eq!(reduced, expected);
        it().map_init(check, |_, x| x).for_each(|_| check());
        assert_eq!(
            it().find_any(|&&x| id().is_some() && x == 19_999),
            Some(&19_999)
        );
        assert_eq!(it().positions(|_| id().is_none()).count(), 0);
        let (left, right): (Vec<u64>, Vec<bool>) = it().map(|x| (*x, id().is_some())).unzip();
        assert_eq!(left, v);
        assert!(right.iter().all(|&seen| seen));
        // Owned and range iterators, and an unindexed one underneath.
        v.clone()
            .into_par_iter()
            .with_context(ctx.clone())
            .for_each(|_| check());
        (0..20_000u32)
            .into_par_iter()
            .with_context(ctx.clone())
            .for_each(|_| check());
        v.par_iter()
            .filter(|_| true)
            .with_context(ctx.clone())
            .for_each(|_| check());
        // `chunks` regroups items: the adaptor goes after it.
        v.par_chunks(7)
            .with_context(ctx.clone())
            .for_each(|_| check());
        v.par_iter()
            .chunks(7)
            .with_context(ctx.clone())
            .for_each(|_| check());
    });
    assert_eq!(misses.into_inner(), 0);
}

#[test]
fn the_context_is_installed_once_per_batch_not_per_item() {
    // Each item increments a counter in the context. Installed once per batch, the counter
    // climbs through the batch (a batch here has at least 1000 items); installed per item, it
    // would restart at 1 every time.
    let pool = pool(4);
    let highest = pool.install(|| {
        (0..4000)
            .into_par_iter()
            .with_min_len(1000)
            .with_context(Context::new().with_value(&COUNT, 0))
            .map(|_| {
                let count = COUNT.get().unwrap() + 1;
                COUNT.set(count);
                count
            })
            .max()
    });
    assert!(highest.unwrap() >= 1000, "{highest:?}");
    assert_workers_clean(&pool);
}

#[test]
fn a_panic_in_a_job_reaches_the_caller_and_leaves_the_workers_clean() {
    let pool = pool(2);
    request("req-panic").run(|| {
        // run_in_pool_with_context: joined, then awaited.
        let handle = run_in_pool_with_context(&pool, || -> u32 {
            REQUEST_ID.set("set-before-panicking".into());
            panic!("job failed")
        });
        let payload = handle.join().unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"job failed"));
        let awaited = futures::executor::block_on(run_in_pool_with_context(&pool, || {
            panic!("awaited job failed: {}", id().unwrap())
        }));
        let payload = awaited.unwrap_err();
        assert_eq!(
            payload.downcast_ref::<String>().map(String::as_str),
            Some("awaited job failed: req-panic")
        );
        assert_workers_clean(&pool);
        // The pool still works, and its jobs still see their caller's context.
        let next = run_in_pool_with_context(&pool, id).join().unwrap();
        assert_eq!(next.as_deref(), Some("req-panic"));

        // install, join and scope re-raise the panic in the caller, as rayon's own do.
        let caught = catch_unwind(AssertUnwindSafe(|| {
            pool.install_with_context(|| panic!("install failed"))
        }));
        assert!(caught.is_err());
        let caught = catch_unwind(AssertUnwindSafe(|| {
            pool.join_with_context(id, || panic!("join failed"))
        }));
        assert!(caught.is_err());
        let caught = catch_unwind(AssertUnwindSafe(|| {
            pool.scope_with_context(|s| s.spawn_with_context(|_| panic!("scope job failed")))
        }));
        assert!(caught.is_err());

        // A parallel iterator panicking on one item, through rayon's consumers and through
        // its producers (`zip`).
        let items: Vec<u32> = (0..1000).collect();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            pool.install_with_context(|| {
                items
                    .par_iter()
                    .with_current_context()
                    .for_each(|&x| assert!(x != 500, "item failed"))
            })
        }));
        assert!(caught.is_err());
        let caught = catch_unwind(AssertUnwindSafe(|| {
            pool.install_with_context(|| {
                items
                    .par_iter()
                    .with_current_context()
                    .zip(&items)
                    .for_each(|(&x, _)| assert!(x != 500, "item failed"))
            })
        }));
        assert!(caught.is_err());
        assert_eq!(id().as_deref(), Some("req-panic"));
    });
    assert_workers_clean(&pool);
}

#[test]
fn a_panic_in_a_spawned_job_goes_to_the_panic_handler_and_the_worker_stays_clean() {
    let (panics, handled) = mpsc::channel();
    let pool = ThreadPoolBuilder::new()
        .num_threads(1)
        .panic_handler(move |payload| {
            let message = payload.downcast_ref::<&str>().copied().unwrap_or("?");
            panics.send(message).unwrap();
        })
        .build()
        .unwrap();
    request("req-spawn").run(|| {
        pool.spawn_with_context(|| panic!("spawned job failed"));
        assert_eq!(handled.recv().unwrap(), "spawned job failed");
    });
    assert_workers_clean(&pool);
}

#[test]
fn joining_from_inside_a_one_thread_pool_does_not_deadlock() {
    let pool = std::sync::Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap(),
    );
    let inner_pool = pool.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = inner_pool
            .install(|| contextvars::rayon::run_in_pool_with_context(&inner_pool, || 1).join());
        tx.send(result.unwrap()).unwrap();
    });
    // Bounded: a deadlock fails the test instead of hanging it.
    let got = rx.recv_timeout(std::time::Duration::from_secs(30));
    assert_eq!(got, Ok(1));
}

#[test]
fn a_panicking_destructor_of_an_unwaited_result_does_not_reach_the_pool() {
    struct PanicOnDrop(std::sync::mpsc::Sender<Option<String>>);
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            let _ = self.0.send(REQUEST_ID_FOR_DROP.get());
            panic!("destructor panics");
        }
    }
    static REQUEST_ID_FOR_DROP: contextvars::ContextVar<String> =
        contextvars::ContextVar::new("request_id");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = REQUEST_ID_FOR_DROP.scope("req-drop".into(), || {
        contextvars::rayon::run_in_pool_with_context(&pool, move || {
            released.recv().unwrap(); // the handle is dropped before the job finishes
            PanicOnDrop(tx)
        })
    });
    drop(handle);
    release.send(()).unwrap();
    // The destructor ran in a frame of its own with the empty context (as every destructor the
    // crate runs for a job), and the pool survived its panic.
    assert_eq!(rx.recv().unwrap(), None);
    assert_eq!(pool.install(|| 2 + 2), 4);
}

fn one_thread_pool() -> ThreadPool {
    ThreadPoolBuilder::new().num_threads(1).build().unwrap()
}

#[test]
fn a_guard_dropped_in_a_nested_frame_on_a_worker_does_not_reach_the_next_job() {
    let pool = one_thread_pool();
    // At a plain job's top level a guard could outlive the job: it is refused outright.
    assert!(pool
        .install(|| Context::new().try_attach().map(drop))
        .unwrap_err()
        .is_outside_any_frame());
    // Inside a frame, a guard dropped in a nested one settles when that one ends.
    let seen = pool.install(|| {
        Context::new().run(|| {
            let guard = Context::new()
                .with_value(&REQUEST_ID, "req-guard".to_string())
                .attach();
            Context::new().run(move || drop(guard));
            REQUEST_ID.get()
        })
    });
    assert_eq!(seen, None);
    // The only worker runs the next, unrelated job.
    assert_eq!(pool.install(|| REQUEST_ID.get()), None);
}

#[test]
fn jobs_run_while_join_waits_on_a_worker_see_neither_the_joiner_nor_each_other() {
    let pool = one_thread_pool();
    let (tx, rx) = mpsc::channel();
    let plain_ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    pool.install(|| {
        REQUEST_ID.scope("joiner".into(), || {
            let handle = run_in_pool_with_context(&pool, || ());
            // Queued after the context job: the worker's own deque is last in, first out, so
            // the joiner's helping loop runs this plain job before the job it waits for.
            let ran = plain_ran.clone();
            pool.spawn(move || {
                tx.send(REQUEST_ID.get()).unwrap();
                REQUEST_ID
                    .try_set("set-by-plain-job".into())
                    .expect("a frame of the helping loop");
                ran.store(true, Ordering::SeqCst);
            });
            handle.join().unwrap();
            assert!(plain_ran.load(Ordering::SeqCst), "run by the helping loop");
            assert_eq!(REQUEST_ID.get().as_deref(), Some("joiner"));
        });
    });
    assert_eq!(rx.recv().unwrap(), None);
    assert_eq!(pool.install(|| REQUEST_ID.get()), None);
}

#[test]
fn a_context_value_panicking_in_drop_is_reported_by_the_handle_not_the_pool() {
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("value destructor panics");
        }
    }
    static PANICKY: ContextVar<PanicsOnDrop> = ContextVar::opaque("panicky");
    let handler_calls = std::sync::Arc::new(AtomicUsize::new(0));
    let calls = handler_calls.clone();
    let pool = ThreadPoolBuilder::new()
        .num_threads(1)
        .panic_handler(move |_| {
            calls.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let handle = run_in_pool_with_context(&pool, || {
        PANICKY.set(PanicsOnDrop);
        7
    });
    let payload = handle.join().unwrap_err();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"value destructor panics")
    );
    assert_eq!(pool.install(|| 2 + 2), 4);
    assert_eq!(handler_calls.load(Ordering::SeqCst), 0);
}
