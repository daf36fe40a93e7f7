//! Automatic inheritance on tokio (`RuntimeBuilderExt::propagate_context`): every plain spawn
//! starts in its spawner's context. Needs `RUSTFLAGS="--cfg tokio_unstable"`; CI runs it in a
//! step of its own.
#![cfg(all(feature = "tokio", tokio_unstable))]

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::report::ReportOnDrop;
use common::scenarios;
use common::stress::{BoxFuture, Runtime};
use common::tokio_task::{abort_after, join};
use contextvars::tokio::{RuntimeBuilderExt, TaskHooks};
use contextvars::{Context, ContextVar};

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");
static LEVEL: ContextVar<u32> = ContextVar::new("level");

fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .propagate_context()
        .build()
        .unwrap()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .propagate_context()
        .build()
        .unwrap()
}

fn id() -> Option<String> {
    REQUEST_ID.get()
}

#[test]
fn plain_spawns_three_levels_deep_inherit_and_stay_isolated() {
    multi_thread(2).block_on(async {
        let root = REQUEST_ID.scope("req-1".into(), || {
            tokio::spawn(async {
                LEVEL.set(1);
                let child = tokio::spawn(async {
                    let inherited = LEVEL.get();
                    LEVEL.set(2);
                    let grandchild = tokio::spawn(async {
                        let inherited = (id(), LEVEL.get());
                        LEVEL.set(3);
                        tokio::task::yield_now().await;
                        (inherited, LEVEL.get())
                    });
                    tokio::task::yield_now().await;
                    let grandchild = grandchild.await.unwrap();
                    (inherited, LEVEL.get(), grandchild)
                });
                let child = child.await.unwrap();
                (id(), LEVEL.get(), child)
            })
        });
        let (root_id, root_level, (child_saw, child_level, grandchild)) = root.await.unwrap();
        assert_eq!(root_id.as_deref(), Some("req-1"));
        assert_eq!(
            root_level,
            Some(1),
            "the children's sets never reach the parent"
        );
        assert_eq!(child_saw, Some(1));
        assert_eq!(child_level, Some(2));
        assert_eq!(grandchild, ((Some("req-1".into()), Some(2)), Some(3)));
        assert_eq!(id(), None, "nothing reaches the block_on future");
    });
}

#[test]
fn handle_runtime_and_join_set_spawns_inherit_too() {
    let runtime = multi_thread(2);
    let handle = runtime.handle().clone();
    let (from_handle, from_runtime) = REQUEST_ID.scope("req-2".into(), || {
        (handle.spawn(async { id() }), runtime.spawn(async { id() }))
    });
    runtime.block_on(async {
        assert_eq!(from_handle.await.unwrap().as_deref(), Some("req-2"));
        assert_eq!(from_runtime.await.unwrap().as_deref(), Some("req-2"));
        let mut set = tokio::task::JoinSet::new();
        REQUEST_ID.scope("req-3".into(), || set.spawn(async { id() }));
        assert_eq!(
            set.join_next().await.unwrap().unwrap().as_deref(),
            Some("req-3")
        );
    });
}

#[test]
fn plain_tasks_set_in_their_own_frame_and_the_worker_stays_clean() {
    current_thread().block_on(async {
        let seen = tokio::spawn(async {
            REQUEST_ID.set("set-in-task".into());
            tokio::task::yield_now().await;
            id()
        })
        .await
        .unwrap();
        assert_eq!(seen.as_deref(), Some("set-in-task"));
        // The next task on the only thread starts from its spawner's (empty) context.
        assert_eq!(tokio::spawn(async { id() }).await.unwrap(), None);
    });
}

/// Plain spawns on an inheriting runtime drive the shared scenarios: `spawn_with_context` is a
/// plain `tokio::spawn`, and a "plain" task is spawned from the empty context.
#[derive(Clone)]
struct Inheriting(Arc<tokio::runtime::Runtime>);

impl Runtime for Inheriting {
    fn block_on<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        self.0.block_on(future)
    }

    fn spawn_with_context<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<T> {
        Box::pin(join(tokio::spawn(task)))
    }

    fn spawn_plain<T: Send + 'static>(
        &self,
        task: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<T> {
        Box::pin(join(Context::new().run(|| tokio::spawn(task))))
    }

    fn spawn_and_cancel(
        &self,
        task: impl Future<Output = ()> + Send + 'static,
        started: impl Future<Output = ()> + Send + 'static,
    ) -> BoxFuture {
        abort_after(tokio::spawn(task), started)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture {
        Box::pin(tokio::time::sleep(duration))
    }

    fn yield_now(&self) -> BoxFuture {
        Box::pin(tokio::task::yield_now())
    }
}

#[test]
fn stress_ten_thousand_request_trees_of_plain_spawns_on_four_workers() {
    scenarios::stress(Inheriting(Arc::new(multi_thread(4))), 10_000);
}

#[test]
fn a_panicking_task_leaves_the_worker_clean() {
    // One worker: the later task runs on the very thread that panicked.
    scenarios::a_panicking_task_reaches_the_caller_and_leaves_the_worker_clean(Inheriting(
        Arc::new(current_thread()),
    ));
}

#[test]
fn an_aborted_task_is_dropped_in_its_context_and_forgotten() {
    // Tokio wakes the `JoinHandle` before it calls the terminate hook: wait for the hook.
    let (terminated, wait_terminated) = mpsc::channel();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .propagate_context_with(TaskHooks::new().on_task_terminate(move |meta| {
            let _ = terminated.send(meta.id());
        }))
        .build()
        .unwrap();
    runtime.block_on(async {
        let (tx, rx) = mpsc::channel();
        let (started, wait_started) = tokio::sync::oneshot::channel();
        let task = REQUEST_ID.scope("req-abort".into(), || {
            tokio::spawn(async move {
                let _report = ReportOnDrop::new(tx, id);
                started.send(()).unwrap();
                std::future::pending::<()>().await;
            })
        });
        let task_id = task.id();
        wait_started.await.unwrap();
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(rx.recv().unwrap().as_deref(), Some("req-abort"));
        while wait_terminated.recv().unwrap() != task_id {}
        assert!(!contextvars::tokio::__is_tracked(task_id));
    });
}

#[test]
fn tasks_dropped_at_shutdown_are_forgotten() {
    let runtime = multi_thread(2);
    let ids: Vec<_> = runtime.block_on(async {
        (0..16)
            .map(|i| {
                REQUEST_ID.scope(format!("req-shutdown-{i}"), || {
                    tokio::spawn(std::future::pending::<()>()).id()
                })
            })
            .collect()
    });
    assert!(ids.iter().any(|&id| contextvars::tokio::__is_tracked(id)));
    drop(runtime);
    for id in ids {
        assert!(!contextvars::tokio::__is_tracked(id));
    }
}

#[test]
fn a_spawn_onto_a_closed_runtime_leaves_no_entry() {
    let runtime = current_thread();
    let handle = runtime.handle().clone();
    drop(runtime);
    let task = REQUEST_ID.scope("req-closed".into(), || handle.spawn(async {}));
    assert!(!contextvars::tokio::__is_tracked(task.id()));
}

#[test]
fn the_users_own_hooks_are_still_called_and_see_the_task_context() {
    let spawns = Arc::new(AtomicUsize::new(0));
    let terminations = Arc::new(AtomicUsize::new(0));
    let before = Arc::new(Mutex::new(Vec::new()));
    let after = Arc::new(Mutex::new(Vec::new()));
    let hooks = TaskHooks::new()
        .on_task_spawn({
            let spawns = spawns.clone();
            move |_| {
                spawns.fetch_add(1, Ordering::SeqCst);
            }
        })
        .on_before_task_poll({
            let before = before.clone();
            move |_| before.lock().unwrap().push(id())
        })
        .on_after_task_poll({
            let after = after.clone();
            move |_| after.lock().unwrap().push(id())
        })
        .on_task_terminate({
            let terminations = terminations.clone();
            move |_| {
                terminations.fetch_add(1, Ordering::SeqCst);
            }
        });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .propagate_context_with(hooks)
        .build()
        .unwrap();
    runtime.block_on(async {
        let task = REQUEST_ID.scope("req-hooks".into(), || tokio::spawn(async {}));
        task.await.unwrap();
    });
    drop(runtime);
    assert_eq!(spawns.load(Ordering::SeqCst), 1);
    assert_eq!(terminations.load(Ordering::SeqCst), 1);
    let before = before.lock().unwrap();
    assert!(!before.is_empty());
    assert!(before
        .iter()
        .all(|seen| seen.as_deref() == Some("req-hooks")));
    let after = after.lock().unwrap();
    assert_eq!(after.len(), before.len());
    assert!(after
        .iter()
        .all(|seen| seen.as_deref() == Some("req-hooks")));
}

#[test]
fn nested_polls_of_another_runtime_inside_block_in_place_restore_each_level() {
    let outer = multi_thread(2);
    // Kept alive outside: a runtime may not be dropped from inside a task.
    let inner = Arc::new(current_thread());
    let inner_in_task = inner.clone();
    outer.block_on(async move {
        let inner = inner_in_task;
        let task = REQUEST_ID.scope("outer-task".into(), || {
            tokio::spawn(async move {
                let nested = tokio::task::block_in_place(|| {
                    inner.block_on(async {
                        let in_block_on = id();
                        let child = REQUEST_ID.scope("inner-task".into(), || {
                            tokio::spawn(async {
                                tokio::task::yield_now().await;
                                id()
                            })
                        });
                        (in_block_on, child.await.unwrap())
                    })
                });
                tokio::task::yield_now().await;
                (nested, id())
            })
        });
        let ((in_block_on, inner_child), after) = task.await.unwrap();
        // `block_on` runs in the caller's context: here, the outer task's.
        assert_eq!(in_block_on.as_deref(), Some("outer-task"));
        assert_eq!(inner_child.as_deref(), Some("inner-task"));
        assert_eq!(after.as_deref(), Some("outer-task"));
    });
}

#[test]
fn spawn_blocking_is_not_covered_and_refuses_stray_sets() {
    current_thread().block_on(async {
        let (seen, refused) = REQUEST_ID
            .scope("req-blocking".into(), || {
                tokio::task::spawn_blocking(|| (id(), REQUEST_ID.try_set("x".into()).is_err()))
            })
            .await
            .unwrap();
        assert_eq!(seen, None, "tokio has no spawn hook for blocking jobs");
        assert!(refused);
    });
}

#[test]
fn many_tasks_woken_during_their_own_poll_keep_their_context_across_workers() {
    // A task that wakes itself and returns `Pending` is rescheduled before its poll's
    // after-poll hook has run: another worker may pick it up at once.
    const TASKS: usize = 200;
    let runtime = multi_thread(4);
    runtime.block_on(async move {
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                REQUEST_ID.scope(format!("req-{i}"), || {
                    tokio::spawn(async move {
                        let mut bad = 0;
                        for step in 0..50u32 {
                            LEVEL.set(step);
                            tokio::task::yield_now().await;
                            if id().as_deref() != Some(format!("req-{i}").as_str())
                                || LEVEL.get() != Some(step)
                            {
                                bad += 1;
                            }
                        }
                        bad
                    })
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 0);
        }
    });
}

/// An axum server behind `ContextLayer` whose handler only uses plain `tokio::spawn`, as code
/// in a library the user does not control would.
#[cfg(feature = "tower")]
#[test]
fn an_axum_handler_using_only_plain_spawns_keeps_every_request_apart() {
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use common::http::{body_text, client, get_request, serve};
    use contextvars::tower::{ContextLayer, Propagation, Trust, REQUEST_ID as LAYER_ID};
    use futures::StreamExt;
    use tokio::sync::{mpsc, watch};

    const REQUESTS: usize = 2_000;
    const IN_FLIGHT: usize = 64;

    multi_thread(4).block_on(async {
        let (report, mut reports) = mpsc::unbounded_channel::<(String, Option<String>)>();
        let (release, released) = watch::channel(false);
        let app = Router::new()
            .route(
                "/work",
                get(move |headers: HeaderMap| {
                    let report = report.clone();
                    let mut released = released.clone();
                    async move {
                        let sent = headers["x-request-id"].to_str().unwrap().to_owned();
                        // Background work that outlives the response, two plain spawns deep.
                        tokio::spawn(async move {
                            released.wait_for(|go| *go).await.unwrap();
                            tokio::spawn(async move {
                                tokio::task::yield_now().await;
                                report.send((sent, LAYER_ID.get())).unwrap();
                            });
                        });
                        tokio::spawn(async { LAYER_ID.get() })
                            .await
                            .unwrap()
                            .unwrap_or_default()
                    }
                }),
            )
            .layer(ContextLayer::new(
                Propagation::builder().inbound(Trust::Trusted).build(),
            ));
        let (addr, stop) = serve(app).await;
        let client = client(IN_FLIGHT);

        let bodies: Vec<(String, String)> = futures::stream::iter(0..REQUESTS)
            .map(|i| {
                let client = client.clone();
                async move {
                    let id = format!("auto-{i:05}");
                    let request = get_request(addr, "/work", &[("x-request-id", &id)]);
                    let response = client.request(request).await.unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                    (id, body_text(response.into_body()).await)
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        for (sent, body) in &bodies {
            assert_eq!(body, sent, "the handler's plain spawn saw its request");
        }

        release.send(true).unwrap();
        let mut mismatches = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..REQUESTS {
            let (sent, got) = reports.recv().await.unwrap();
            if got.as_deref() != Some(sent.as_str()) {
                mismatches.push((sent.clone(), got));
            }
            assert!(seen.insert(sent), "one line per request");
        }
        assert!(mismatches.is_empty(), "mismatches: {mismatches:?}");
        drop(client);
        stop.and_wait().await;
    });
}

#[test]
fn a_task_dropped_at_shutdown_is_dropped_seeing_its_context() {
    let runtime = multi_thread(2);
    let (tx, rx) = mpsc::channel();
    let (started, wait_started) = std::sync::mpsc::channel();
    REQUEST_ID.scope("req-shutdown-drop".into(), || {
        runtime.spawn(async move {
            let _report = ReportOnDrop::new(tx, id);
            started.send(()).unwrap();
            std::future::pending::<()>().await;
        })
    });
    wait_started.recv().unwrap();
    drop(runtime);
    assert_eq!(rx.recv().unwrap().as_deref(), Some("req-shutdown-drop"));
}

#[test]
fn a_task_dropped_at_shutdown_inside_a_scope_cannot_set_into_it() {
    struct TriesToSet(mpsc::Sender<(Option<String>, bool)>);
    impl Drop for TriesToSet {
        fn drop(&mut self) {
            let refused = LEVEL.try_set(99).is_err();
            let _ = self.0.send((id(), refused));
        }
    }
    let (tx, rx) = mpsc::channel();
    REQUEST_ID.scope("parent".into(), || {
        let runtime = current_thread();
        runtime.block_on(REQUEST_ID.scope_future("child".into(), async move {
            tokio::spawn(async move {
                let _tries = TriesToSet(tx);
                std::future::pending::<()>().await;
            });
            tokio::task::yield_now().await;
        }));
        // Dropped inside the scope: the task's destructor runs on this thread, in this frame.
        drop(runtime);
        assert_eq!(LEVEL.get(), None, "nothing set into the enclosing scope");
        assert_eq!(id().as_deref(), Some("parent"));
    });
    let (_seen, refused) = rx.recv().unwrap();
    assert!(refused, "a set outside the task's own frame is refused");
}

#[test]
fn a_panicking_user_hook_leaves_no_frame_open() {
    for fail_after in [false, true] {
        let hooks = if fail_after {
            TaskHooks::new().on_after_task_poll(|_| panic!("user after-poll hook"))
        } else {
            TaskHooks::new().on_before_task_poll(|_| panic!("user before-poll hook"))
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .propagate_context_with(hooks)
                .build()
                .unwrap();
            runtime.block_on(REQUEST_ID.scope_future("secret".into(), async {
                let _ = tokio::spawn(async {}).await;
            }));
        }));
        assert!(outcome.is_err());
        assert_eq!(id(), None, "the task's context is not left on this thread");
        // And this thread is back at its own top level: a guard attaches and detaches cleanly.
        let guard = Context::new().with_value(&LEVEL, 1).attach();
        assert_eq!(LEVEL.get(), Some(1));
        drop(guard);
        assert_eq!(LEVEL.get(), None);
    }
}
