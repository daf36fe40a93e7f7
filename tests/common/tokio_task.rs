//! Awaiting a tokio task (or an actix one: actix runs on tokio) as the shared scenarios want it.

use tokio::task::JoinHandle;

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
