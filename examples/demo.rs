//! The main demo: one request id surviving every kind of boundary this build supports.
//!
//! Run it with `cargo run --example demo --all-features`.

use contextvars::thread::{self, ScopeExt};
use contextvars::{preserve_context, Context, ContextExt, ContextVar};

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id").with_display();

/// A log line carrying the current context, the way a logging integration prints it.
fn log(place: &str, message: &str) {
    let fields: Vec<String> = Context::current()
        .iter()
        .map(|entry| format!("{}={}", entry.name(), entry.display()))
        .collect();
    println!("[{place:<28}] {message:<34} {}", fields.join(" "));
}

#[preserve_context]
async fn decorated_worker() {
    log("#[preserve_context] fn", "decorated function");
}

/// Tasks and blocking pools of every async runtime this build has an adapter for, and rayon.
fn runtimes() {
    #[cfg(feature = "tokio")]
    {
        use contextvars::tokio::{spawn_blocking_with_context, spawn_with_context};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        runtime.block_on(async {
            spawn_with_context(async { log("tokio task", "spawn_with_context") })
                .await
                .unwrap();
            tokio::spawn(async { log("tokio task", "tokio::spawn WITHOUT the helper") })
                .await
                .unwrap();
            spawn_blocking_with_context(|| {
                log("tokio blocking pool", "spawn_blocking_with_context")
            })
            .await
            .unwrap();
        });
    }
    #[cfg(feature = "async-std")]
    {
        use contextvars::async_std::{spawn_blocking_with_context, spawn_with_context};
        async_std::task::block_on(async {
            spawn_with_context(async { log("async-std task", "spawn_with_context") }).await;
            spawn_blocking_with_context(|| {
                log("async-std blocking pool", "spawn_blocking_with_context")
            })
            .await;
        });
    }
    #[cfg(feature = "smol")]
    {
        use contextvars::smol::{spawn_with_context, unblock_with_context};
        smol::block_on(async {
            spawn_with_context(async { log("smol task", "spawn_with_context") }).await;
            unblock_with_context(|| log("smol blocking pool", "unblock_with_context")).await;
        });
    }
    #[cfg(feature = "rayon")]
    {
        use contextvars::ContextExt;
        use rayon::prelude::*;
        let job = contextvars::rayon::run_in_global_pool_with_context(|| {
            log("rayon pool", "run_in_global_pool_with_context");
        });
        job.join().unwrap();
        let seen: Vec<Option<String>> = (0..4)
            .into_par_iter()
            .with_current_context()
            .map(|_| REQUEST_ID.get())
            .collect();
        let all_same = seen.iter().all(|id| id.as_deref() == Some("req-123"));
        log(
            "rayon par_iter",
            &format!("4 parallel items, all see it: {all_same}"),
        );
    }
    #[cfg(not(all(
        feature = "tokio",
        feature = "async-std",
        feature = "smol",
        feature = "rayon"
    )))]
    log("main thread", "(build with --all-features for runtimes)");
}

fn main() {
    REQUEST_ID.scope("req-123".into(), || {
        log("main thread", "handling request");

        // Futures polled on another thread, by an executor that knows nothing about us.
        let with_helper =
            async { log("futures executor", "task with the helper") }.with_current_context();
        let without_helper = async { log("futures executor", "task WITHOUT the helper") };
        let decorated = decorated_worker(); // captures the context here, runs below
        std::thread::spawn(move || {
            futures::executor::block_on(async {
                with_helper.await;
                without_helper.await;
                decorated.await;
            })
        })
        .join()
        .unwrap();

        // Plain threads and scoped threads.
        thread::spawn_with_context(|| log("std thread", "sync work in a thread"))
            .join()
            .unwrap();
        std::thread::scope(|s| {
            s.spawn_with_context(|| log("scoped thread", "borrowing work"));
        });

        // Isolation: the child's change stays in the child.
        thread::spawn_with_context(|| {
            REQUEST_ID.set("child-override".into());
            log("std thread", "child overrides its copy");
        })
        .join()
        .unwrap();
        log("main thread", "parent keeps its value");

        runtimes();
    });
    log("main thread", "after the request");
}
