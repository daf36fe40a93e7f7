//! The threads of the `blocking` crate, which run async-std's `spawn_blocking` and smol's
//! `unblock` jobs, for the executor seam (`crate::executor`).
//!
//! The pool gives a running job no identity a library can read, but it names its threads
//! `blocking-N` and runs nothing but its jobs there: a `set` on such a thread outside any frame
//! of this crate is refused, as on a runtime's worker. A thread of your own named `blocking-N`
//! is taken for one of the pool's.

/// The `blocking` crate's threads.
pub(crate) struct Blocking;

impl crate::executor::Executor for Blocking {
    fn name(&self) -> &'static str {
        "the blocking pool (async-std's spawn_blocking, smol's unblock)"
    }

    fn in_unit_of_work(&self) -> bool {
        std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with("blocking-"))
    }
}
