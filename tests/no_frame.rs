//! A `set` made where no frame of the crate is active, on a thread that runs a runtime's or a
//! pool's units of work, is refused: it would otherwise stay on the worker thread and reach the
//! next, unrelated task. The thread's own top level, on threads the user owns, keeps working.

use contextvars::{Context, ContextVar};

static RID: ContextVar<String> = ContextVar::new("rid");

/// How errors name the `blocking` crate's threads.
#[allow(dead_code)]
const BLOCKING: &str = "the blocking pool (async-std's spawn_blocking, smol's unblock)";

/// What a stray `set` must produce: an error naming the variable, the executor that runs the
/// thread, and the fix.
#[allow(dead_code)]
fn assert_refused(result: Result<(), contextvars::AccessError>, executor: &str) {
    let message = refusal(result, executor);
    assert!(message.starts_with("cannot set `rid` here: "), "{message}");
}

/// The same for an attach, which sets no single variable: its error names none.
#[allow(dead_code)]
fn assert_attach_refused(result: Result<(), contextvars::AccessError>, executor: &str) {
    let message = refusal(result, executor);
    assert!(!message.contains("cannot set"), "{message}");
}

#[allow(dead_code)]
fn refusal(result: Result<(), contextvars::AccessError>, executor: &str) -> String {
    let error = result.expect_err("a set outside any frame on a worker is refused");
    assert!(error.is_outside_any_frame());
    let message = error.to_string();
    assert!(message.contains(&format!(" of {executor}: ")), "{message}");
    assert!(message.contains("spawn_with_context"), "{message}");
    assert!(message.contains("Context::run"), "{message}");
    message
}

#[test]
fn the_thread_top_level_of_a_thread_the_user_owns_accepts_values() {
    std::thread::spawn(|| {
        RID.try_set("mine".into()).unwrap();
        RID.get()
    })
    .join()
    .map(|seen| assert_eq!(seen.as_deref(), Some("mine")))
    .unwrap();
}

#[cfg(feature = "tokio")]
mod tokio_paths {
    use super::*;

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .build()
            .unwrap()
    }

    #[test]
    fn a_plain_task_cannot_set_into_the_worker() {
        current_thread().block_on(async {
            let refused = tokio::spawn(async { RID.try_set("leak".into()) })
                .await
                .unwrap();
            assert_refused(refused, "tokio");
            let panicked = tokio::spawn(async { RID.set("leak".into()) })
                .await
                .unwrap_err();
            let payload = panicked.into_panic();
            let message = payload.downcast_ref::<String>().unwrap();
            assert!(
                message.starts_with("contextvars: cannot set `rid` here: "),
                "{message}"
            );
            assert!(message.contains(" of tokio: "), "{message}");
            assert!(message.contains("spawn_with_context"), "{message}");
            // The next, unrelated task on the same (only) thread sees nothing.
            assert_eq!(tokio::spawn(async { RID.get() }).await.unwrap(), None);
        });
    }

    #[test]
    fn a_plain_blocking_job_cannot_set_into_the_blocking_thread() {
        current_thread().block_on(async {
            let refused = tokio::task::spawn_blocking(|| RID.try_set("leak".into()))
                .await
                .unwrap();
            assert_refused(refused, "tokio");
            // One blocking thread: the next job runs on the same one.
            let seen = tokio::task::spawn_blocking(|| RID.get()).await.unwrap();
            assert_eq!(seen, None);
        });
    }

    #[test]
    fn a_task_with_a_frame_sets_as_before() {
        current_thread().block_on(async {
            let seen = contextvars::tokio::spawn_with_context(async {
                RID.set("framed".into());
                tokio::task::yield_now().await;
                RID.get()
            })
            .await
            .unwrap();
            assert_eq!(seen.as_deref(), Some("framed"));
            let blocking = contextvars::tokio::spawn_blocking_with_context(|| {
                RID.set("framed".into());
                RID.get()
            })
            .await
            .unwrap();
            assert_eq!(blocking.as_deref(), Some("framed"));
            // Context::run inside a plain task gives it a frame as well.
            let run = tokio::spawn(async {
                Context::new().run(|| {
                    RID.set("in-run".into());
                    RID.get()
                })
            })
            .await
            .unwrap();
            assert_eq!(run.as_deref(), Some("in-run"));
        });
    }
}

#[cfg(feature = "async-std")]
mod async_std_paths {
    use super::*;

    #[test]
    fn a_plain_task_cannot_set_into_the_worker() {
        async_std::task::block_on(async {
            let refused = async_std::task::spawn(async { RID.try_set("leak".into()) }).await;
            assert_refused(refused, "async-std");
            assert_eq!(async_std::task::spawn(async { RID.get() }).await, None);
        });
    }

    #[test]
    fn a_plain_blocking_job_cannot_set_into_the_blocking_thread() {
        async_std::task::block_on(async {
            let refused = async_std::task::spawn_blocking(|| RID.try_set("leak".into())).await;
            assert_refused(refused, BLOCKING);
        });
    }

    #[test]
    fn the_block_on_future_is_a_task_and_needs_a_frame_too() {
        // async-std runs local tasks beside the `block_on` future on the same thread.
        assert_refused(
            async_std::task::block_on(async { RID.try_set("leak".into()) }),
            "async-std",
        );
        let framed = async_std::task::block_on(contextvars::ContextExt::with_context(
            async {
                RID.set("framed".into());
                RID.get()
            },
            Context::new(),
        ));
        assert_eq!(framed.as_deref(), Some("framed"));
    }
}

#[cfg(feature = "smol")]
#[test]
fn a_plain_unblock_job_cannot_set_into_the_blocking_thread() {
    let refused = smol::block_on(smol::unblock(|| RID.try_set("leak".into())));
    assert_refused(refused, BLOCKING);
}

#[cfg(feature = "rayon")]
mod rayon_paths {
    use super::*;

    fn one_thread_pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
    }

    #[test]
    fn a_plain_job_cannot_set_into_the_worker() {
        let pool = one_thread_pool();
        assert_refused(pool.install(|| RID.try_set("leak".into())), "rayon");
        let (tx, rx) = std::sync::mpsc::channel();
        pool.spawn(move || tx.send(RID.try_set("leak".into())).unwrap());
        assert_refused(rx.recv().unwrap(), "rayon");
        assert_eq!(pool.install(|| RID.get()), None);
    }

    #[test]
    fn a_plain_job_cannot_attach_but_a_guard_inside_run_is_confined() {
        let pool = one_thread_pool();
        assert_attach_refused(
            pool.install(|| Context::new().try_attach().map(drop)),
            "rayon",
        );
        pool.install(|| {
            Context::new().run(|| {
                let guard = Context::new().attach();
                RID.try_set("guarded".into()).unwrap();
                assert_eq!(RID.get().as_deref(), Some("guarded"));
                drop(guard);
            })
        });
        assert_eq!(pool.install(|| RID.get()), None);
    }

    #[test]
    fn a_set_inside_a_parallel_iterator_with_context_stays_in_its_batch() {
        use contextvars::ContextExt;
        use rayon::prelude::*;
        let pool = one_thread_pool();
        let seen: Vec<Option<String>> = pool.install(|| {
            (0..4)
                .into_par_iter()
                .with_current_context()
                .map(|i| {
                    let before = RID.get();
                    RID.set(format!("item-{i}"));
                    before.filter(|value| !value.starts_with("item-"))
                })
                .collect()
        });
        assert!(seen.iter().all(Option::is_none));
        assert_eq!(pool.install(|| RID.get()), None);
    }
}

#[cfg(feature = "smol")]
#[test]
fn a_plain_task_on_smol_global_executor_cannot_set_into_its_thread() {
    let refused = smol::block_on(smol::spawn(async { RID.try_set("leak".into()) }));
    assert_refused(refused, "smol");
}

#[cfg(feature = "tokio")]
#[test]
fn a_plain_task_cannot_attach_a_guard_that_could_outlive_it() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let refused = tokio::spawn(async {
            Context::new()
                .with_value(&RID, "req-A".into())
                .try_attach()
                .map(drop)
        })
        .await
        .unwrap();
        assert_attach_refused(refused, "tokio");
        let panicked = tokio::spawn(async {
            std::mem::forget(Context::new().with_value(&RID, "req-A".into()).attach());
        })
        .await
        .unwrap_err();
        assert!(panicked.is_panic());
        // Nothing was left on the only worker thread.
        assert_eq!(tokio::spawn(async { RID.get() }).await.unwrap(), None);
        assert_refused(
            tokio::spawn(async { RID.try_set("x".into()) })
                .await
                .unwrap(),
            "tokio",
        );
        // Inside a frame, guards are fine: they end with it.
        let framed = tokio::spawn(async {
            Context::new().run(|| {
                let guard = Context::new().with_value(&RID, "req-B".into()).attach();
                let seen = RID.get();
                drop(guard);
                seen
            })
        })
        .await
        .unwrap();
        assert_eq!(framed.as_deref(), Some("req-B"));
    });
}
