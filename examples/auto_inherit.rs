//! Automatic inheritance on tokio: plain `tokio::spawn`, as any library writes it, keeps the
//! request's context. Run with
//! `RUSTFLAGS="--cfg tokio_unstable" cargo run --example auto_inherit --features tokio`.

#[cfg(tokio_unstable)]
fn main() {
    use contextvars::tokio::RuntimeBuilderExt;
    use contextvars::ContextVar;

    static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");

    /// Stands for code in a crate you do not control: it knows nothing of contexts.
    async fn library_code() -> Option<String> {
        tokio::spawn(async {
            tokio::task::yield_now().await;
            // Two levels down, still the caller's request.
            tokio::spawn(async { REQUEST_ID.get() }).await.unwrap()
        })
        .await
        .unwrap()
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .propagate_context()
        .build()
        .unwrap();
    runtime.block_on(async {
        let requests: Vec<_> = (1..=3)
            .map(|n| {
                REQUEST_ID.scope(format!("req-{n}"), || {
                    tokio::spawn(async move {
                        let seen = library_code().await;
                        println!("request req-{n}: the library's nested spawn saw {seen:?}");
                        assert_eq!(seen, Some(format!("req-{n}")));
                    })
                })
            })
            .collect();
        for request in requests {
            request.await.unwrap();
        }
    });
}

#[cfg(not(tokio_unstable))]
fn main() {
    eprintln!(
        "this example needs tokio's task hooks: run it with \
         RUSTFLAGS=\"--cfg tokio_unstable\" cargo run --example auto_inherit --features tokio"
    );
    std::process::exit(2);
}
