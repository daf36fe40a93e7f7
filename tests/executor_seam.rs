//! The executor seam, as a third-party pool uses it (`contextvars::executor`): once registered,
//! its workers get the stray-`set` refusal the crate's own runtimes get, named after it, and a
//! join on one of its workers runs the pool's queued work in empty frames instead of blocking it.
//! Needs no feature: the pool here is a plain thread with a queue.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;

use contextvars::executor::{self, Executor};
use contextvars::{thread, Context, ContextVar};

static RID: ContextVar<String> = ContextVar::new("rid");

thread_local! {
    /// Set on the worker thread while it runs the pool's work.
    static ON_WORKER: Cell<bool> = const { Cell::new(false) };
    /// The work queued on this worker, run one by one (and while a join waits).
    static QUEUE: RefCell<VecDeque<Box<dyn FnOnce()>>> = RefCell::new(VecDeque::new());
}

/// A pool of one worker: whatever runs on it is the pool's work.
struct TestPool;

impl Executor for TestPool {
    fn name(&self) -> &'static str {
        "test-pool"
    }

    fn in_unit_of_work(&self) -> bool {
        ON_WORKER.with(Cell::get)
    }

    fn run_one_while_waiting(&self) -> Option<bool> {
        if !ON_WORKER.with(Cell::get) {
            return None;
        }
        let next = QUEUE.with(|queue| queue.borrow_mut().pop_front());
        Some(next.map(|work| work()).is_some())
    }
}

static POOL: TestPool = TestPool;

/// Runs `f` as the pool's work on a new worker thread (the pool registered first), returning
/// what it returns.
fn on_worker<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    executor::register(&POOL);
    std::thread::spawn(move || {
        ON_WORKER.with(|flag| flag.set(true));
        f()
    })
    .join()
    .unwrap()
}

#[test]
fn a_stray_set_on_a_registered_pools_worker_is_refused_naming_the_pool() {
    let (refused, panicked, attach, after) = on_worker(|| {
        let refused = RID.try_set("leak".into()).unwrap_err();
        let panicked = panic::catch_unwind(|| RID.set("leak".into())).unwrap_err();
        let attach = Context::new()
            .with_value(&RID, "leak".into())
            .try_attach()
            .map(drop)
            .unwrap_err();
        (
            refused.to_string(),
            *panicked.downcast::<String>().unwrap(),
            attach,
            RID.get(),
        )
    });
    assert!(refused.starts_with("cannot set `rid` here: "), "{refused}");
    assert!(refused.contains(" of test-pool: "), "{refused}");
    assert!(refused.contains("spawn_with_context"), "{refused}");
    assert!(
        panicked.starts_with("contextvars: cannot set `rid` here: "),
        "{panicked}"
    );
    assert!(panicked.contains(" of test-pool: "), "{panicked}");
    // An attach sets no single variable: its error names none.
    assert!(attach.is_outside_any_frame(), "{attach}");
    assert!(!attach.to_string().contains("cannot set"), "{attach}");
    // Nothing stayed on the worker for the next job.
    assert_eq!(after, None);
}

#[test]
fn a_frame_on_the_worker_takes_values_and_ends_with_them() {
    let (inside, after) = on_worker(|| {
        let inside = Context::new().run(|| {
            RID.set("r-1".into());
            RID.get()
        });
        (inside, RID.get())
    });
    assert_eq!(inside.as_deref(), Some("r-1"));
    assert_eq!(after, None);
}

#[test]
fn a_thread_the_pool_does_not_claim_keeps_its_own_top_level() {
    executor::register(&POOL);
    executor::register(&POOL); // twice: still one entry, still the same answer
    let seen = std::thread::spawn(|| {
        RID.try_set("mine".into()).unwrap();
        RID.get()
    })
    .join()
    .unwrap();
    assert_eq!(seen.as_deref(), Some("mine"));
}

#[test]
fn a_join_on_the_worker_runs_queued_work_in_empty_frames_until_the_job_ends() {
    let seen = on_worker(|| {
        let (go, wait) = mpsc::channel::<()>();
        let helped = Arc::new(std::sync::Mutex::new(Vec::new()));
        // Queued on this worker: the job below waits for the first one, which only runs if the
        // join helps (without help, the join would block the only worker forever).
        for i in 0..3 {
            let (go, helped) = (go.clone(), Arc::clone(&helped));
            QUEUE.with(|queue| {
                queue.borrow_mut().push_back(Box::new(move || {
                    let before = RID.get();
                    RID.set(format!("helper-{i}"));
                    helped.lock().unwrap().push(before);
                    let _ = go.send(());
                }))
            });
        }
        drop(go);
        RID.scope("joiner".into(), || {
            let handle = thread::run_in_pool_with_context(move || {
                wait.recv().unwrap();
                RID.get()
            });
            let job = handle.join().unwrap();
            (job, RID.get(), helped.lock().unwrap().clone())
        })
    });
    let (job, joiner, helped) = seen;
    assert_eq!(job.as_deref(), Some("joiner"));
    assert_eq!(joiner.as_deref(), Some("joiner"));
    // At least the first queued work ran, each in a frame of its own with the empty context.
    assert!(!helped.is_empty());
    assert!(helped.iter().all(Option::is_none), "{helped:?}");
}

#[test]
fn work_run_while_waiting_cannot_leak_into_the_joiner_even_when_it_panics() {
    let seen = on_worker(|| {
        let (go, wait) = mpsc::channel::<()>();
        QUEUE.with(|queue| {
            queue.borrow_mut().push_back(Box::new(move || {
                RID.set("helper".into());
                let _ = go.send(());
                panic!("the helped work fails");
            }))
        });
        RID.scope("joiner".into(), || {
            let handle = thread::run_in_pool_with_context(move || wait.recv().is_ok());
            let joined = panic::catch_unwind(AssertUnwindSafe(|| handle.join()));
            (joined.is_err(), RID.get())
        })
    });
    // The panic of the helped work reaches the joiner (as rayon's `yield_now` lets it), and
    // its value does not.
    assert_eq!(seen, (true, Some("joiner".to_string())));
}
