//! `#[preserve_context]` captures the call site's context.
#![cfg(feature = "macros")]

mod common;

use contextvars::{preserve_context, Context, ContextVar};

use common::Yield;

static USER_ID: ContextVar<String> = ContextVar::new("user_id");

#[preserve_context]
async fn worker() -> Option<String> {
    Yield(1).await;
    USER_ID.get()
}

#[preserve_context]
async fn borrows<'a>(prefix: &str, items: &'a [u8], _unused: Vec<u8>) -> (String, &'a [u8]) {
    Yield(1).await;
    (
        format!("{prefix}{}", USER_ID.get().unwrap_or_default()),
        items,
    )
}

#[preserve_context]
async fn fallible(fail: bool) -> Result<u8, String> {
    if fail {
        return Err("failed".into());
    }
    let n: u8 = "7".parse().map_err(|_| "parse")?;
    Ok(n)
}

#[preserve_context]
async fn generic<T: Clone + Send>(value: T, mut count: usize) -> Vec<T> {
    count += 1;
    vec![value; count]
}

struct Service {
    name: String,
}

impl Service {
    #[preserve_context]
    async fn describe(&self, suffix: &str) -> String {
        Yield(1).await;
        format!(
            "{}:{}:{suffix}",
            self.name,
            USER_ID.get().unwrap_or_default()
        )
    }

    #[preserve_context]
    async fn consume(self) -> String {
        self.name
    }
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

#[test]
fn the_future_carries_the_context_of_the_call() {
    let fut = USER_ID.scope("user-789".into(), worker);
    let other = worker();
    assert_eq!(
        futures::executor::block_on(fut).as_deref(),
        Some("user-789")
    );
    assert_eq!(futures::executor::block_on(other), None);
}

#[test]
fn the_future_is_send_and_runs_on_another_thread() {
    let fut = assert_send(USER_ID.scope("user-1".into(), worker));
    let seen = std::thread::spawn(move || futures::executor::block_on(fut))
        .join()
        .unwrap();
    assert_eq!(seen.as_deref(), Some("user-1"));
}

#[test]
fn borrowed_arguments_generics_methods_and_early_returns() {
    let items = [1, 2, 3];
    let service = Service { name: "svc".into() };
    USER_ID.scope("u".into(), || {
        let (text, slice) = futures::executor::block_on(borrows(">", &items, vec![]));
        assert_eq!((text.as_str(), slice), (">u", &items[..]));
        assert_eq!(
            futures::executor::block_on(service.describe("x")),
            "svc:u:x"
        );
    });
    assert_eq!(
        futures::executor::block_on(fallible(true)),
        Err("failed".into())
    );
    assert_eq!(futures::executor::block_on(fallible(false)), Ok(7));
    assert_eq!(futures::executor::block_on(generic('a', 1)), ['a', 'a']);
    assert_eq!(futures::executor::block_on(service.consume()), "svc");
}

#[test]
fn sets_inside_stay_inside() {
    #[preserve_context]
    async fn overrides() -> Option<String> {
        USER_ID.set("child".into());
        Yield(1).await;
        USER_ID.get()
    }
    Context::new().run(|| {
        USER_ID.set("parent".into());
        assert_eq!(
            futures::executor::block_on(overrides()).as_deref(),
            Some("child")
        );
        assert_eq!(USER_ID.get().as_deref(), Some("parent"));
    });
}

#[test]
fn unused_arguments_live_as_long_as_the_future() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[preserve_context]
    async fn holds(_guard: common::DropCounter) {
        Yield(1).await;
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let fut = holds(common::DropCounter(drops.clone()));
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    futures::executor::block_on(fut);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

/// `async fn` in a trait, implemented with `#[preserve_context]`.
trait Greeter {
    async fn greet(&self, suffix: &str) -> String;
    async fn count(&mut self) -> (usize, Option<String>);
}

/// A trait that asks for a `Send` future, implemented with an `async fn`.
trait SendService {
    fn call(&self) -> impl std::future::Future<Output = Option<String>> + Send;
}

/// `#[preserve_context]` on a default body, in the trait.
trait WithDefault {
    #[preserve_context]
    async fn seen(&self) -> Option<String> {
        Yield(1).await;
        USER_ID.get()
    }
}

impl Greeter for Service {
    #[preserve_context]
    async fn greet(&self, suffix: &str) -> String {
        Yield(1).await;
        format!(
            "{}:{}:{suffix}",
            self.name,
            USER_ID.get().unwrap_or_default()
        )
    }

    #[preserve_context]
    async fn count(&mut self) -> (usize, Option<String>) {
        self.name.push('+');
        Yield(1).await;
        (self.name.len(), USER_ID.get())
    }
}

impl SendService for Service {
    #[preserve_context]
    async fn call(&self) -> Option<String> {
        Yield(1).await;
        USER_ID.get()
    }
}

impl WithDefault for Service {}

#[test]
fn trait_methods_taking_self_by_reference_carry_the_context_of_the_call() {
    let mut service = Service { name: "svc".into() };
    let greet = USER_ID.scope("u1".into(), || service.greet("x"));
    assert_eq!(futures::executor::block_on(greet), "svc:u1:x");
    let count = USER_ID.scope("u2".into(), || service.count());
    assert_eq!(
        futures::executor::block_on(count),
        (4, Some("u2".to_string()))
    );
    let seen = USER_ID.scope("u3".into(), || service.seen());
    assert_eq!(futures::executor::block_on(seen).as_deref(), Some("u3"));
    assert_eq!(futures::executor::block_on(service.seen()), None);
}

#[test]
fn a_trait_method_that_promises_send_runs_on_another_thread() {
    let service = Service { name: "svc".into() };
    let call = assert_send(USER_ID.scope("u4".into(), || service.call()));
    let seen = std::thread::scope(|scope| {
        scope
            .spawn(move || futures::executor::block_on(call))
            .join()
            .unwrap()
    });
    assert_eq!(seen.as_deref(), Some("u4"));
}
