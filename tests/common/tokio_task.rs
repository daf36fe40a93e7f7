//! Awaiting a tokio task (or an actix one: actix runs on tokio) as the shared scenarios want it.

use std::future::Future;

use tokio::task::JoinHandle;

use super::stress::BoxFuture;

/// A task's output, or its panic resumed with the task's payload.
pub(crate) async fn join<T>(handle: JoinHandle<T>) -> T {
    match handle.await {
        Ok(output) => output,
        Err(error) => match error.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            Err(error) => panic!("the task failed: {error}"),
        },
    }
}

/// [`Runtime::spawn_and_cancel`](super::stress::Runtime::spawn_and_cancel) for a tokio task:
/// waits for `started`, aborts `task` and asserts it ended cancelled, not completed.
pub(crate) fn abort_after(
    task: JoinHandle<()>,
    started: impl Future<Output = ()> + Send + 'static,
) -> BoxFuture {
    Box::pin(async move {
        started.await;
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
    })
}
