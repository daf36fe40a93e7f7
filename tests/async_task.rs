//! `spawn_with_context` for executors built on async-task.
#![cfg(feature = "async-task")]

use std::sync::mpsc;

use contextvars::async_task::{spawn_local_with_context, spawn_with_context};
use contextvars::ContextVar;

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");

struct ReportOnDrop(mpsc::Sender<Option<String>>);

impl Drop for ReportOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(REQUEST_ID.get());
    }
}

#[test]
fn a_hand_written_executor_runs_tasks_in_their_context() {
    let (queue, runnables) = mpsc::channel::<async_task::Runnable>();
    let worker = std::thread::spawn(move || {
        for runnable in runnables {
            runnable.run();
        }
    });
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let queue = queue.clone();
            let (runnable, task) = REQUEST_ID.scope(format!("req-{i}"), || {
                spawn_with_context(
                    async move {
                        // Wakes itself: scheduled again through the queue, onto the worker.
                        let mut yielded = false;
                        std::future::poll_fn(|cx| {
                            if std::mem::replace(&mut yielded, true) {
                                std::task::Poll::Ready(())
                            } else {
                                cx.waker().wake_by_ref();
                                std::task::Poll::Pending
                            }
                        })
                        .await;
                        (i, REQUEST_ID.get())
                    },
                    move |runnable| queue.send(runnable).unwrap(),
                )
            });
            runnable.schedule();
            task
        })
        .collect();
    for task in tasks {
        let (i, seen) = futures::executor::block_on(task);
        assert_eq!(seen, Some(format!("req-{i}")));
    }
    drop(queue);
    worker.join().unwrap();
}

#[test]
fn a_cancelled_task_drops_inside_its_context() {
    let (tx, rx) = mpsc::channel();
    let (runnable, task) = REQUEST_ID.scope("req-cancel".into(), || {
        spawn_with_context(
            async move {
                let _report = ReportOnDrop(tx);
                std::future::pending::<()>().await;
            },
            |_| {},
        )
    });
    runnable.run(); // starts, then waits forever
    drop(task); // cancels
    assert_eq!(rx.recv().unwrap().as_deref(), Some("req-cancel"));
}

#[test]
fn local_tasks() {
    let rc = std::rc::Rc::new(());
    let (runnable, task) = REQUEST_ID.scope("local".into(), || {
        spawn_local_with_context(
            async move {
                let _not_send = rc;
                REQUEST_ID.get()
            },
            |_| {},
        )
    });
    runnable.run();
    assert_eq!(futures::executor::block_on(task).as_deref(), Some("local"));
}
