//! `ContextVar::scope_future` composes like `ContextVar::scope`.

mod common;

use std::sync::mpsc;

use common::report::ReportOnDrop;
use contextvars::{Context, ContextExt, ContextVar};

static REQUEST_ID: ContextVar<&'static str> = ContextVar::new("request_id");
static TENANT: ContextVar<&'static str> = ContextVar::new("tenant");

fn both() -> (Option<&'static str>, Option<&'static str>) {
    (REQUEST_ID.get(), TENANT.get())
}

#[test]
fn nested_scope_futures_see_every_enclosing_value() {
    let fut = REQUEST_ID.scope_future("req-1", TENANT.scope_future("acme", async { both() }));
    assert_eq!(
        futures::executor::block_on(fut),
        (Some("req-1"), Some("acme"))
    );
    assert_eq!(both(), (None, None));
}

#[test]
fn the_innermost_value_wins_as_with_nested_scopes() {
    let fut = REQUEST_ID.scope_future("outer", REQUEST_ID.scope_future("inner", async { both() }));
    assert_eq!(futures::executor::block_on(fut), (Some("inner"), None));
}

#[test]
fn an_outer_scope_future_overrides_a_value_the_inner_one_captured() {
    // The inner future was made where TENANT was "old"; the outer one sets it around it.
    let fut = TENANT.scope("old", || {
        TENANT.scope_future("new", REQUEST_ID.scope_future("req-2", async { both() }))
    });
    assert_eq!(
        futures::executor::block_on(fut),
        (Some("req-2"), Some("new"))
    );
}

#[test]
fn a_scope_future_made_inside_a_scope_keeps_its_values_wherever_it_is_polled() {
    let fut = REQUEST_ID.scope("req-3", || TENANT.scope_future("acme", async { both() }));
    assert_eq!(
        futures::executor::block_on(fut),
        (Some("req-3"), Some("acme"))
    );
}

#[test]
fn a_spawned_scope_future_keeps_the_context_it_was_made_in() {
    let pool = futures::executor::ThreadPool::builder()
        .pool_size(1)
        .create()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    REQUEST_ID.scope("req-4", || {
        pool.spawn_ok(TENANT.scope_future("acme", async move {
            tx.send(both()).unwrap();
        }));
    });
    assert_eq!(rx.recv().unwrap(), (Some("req-4"), Some("acme")));
}

#[test]
fn what_the_future_sets_persists_across_polls_and_stays_inside() {
    let fut = REQUEST_ID.scope_future("req-5", async {
        TENANT.set("set-inside");
        common::Yield(2).await;
        both()
    });
    assert_eq!(
        futures::executor::block_on(fut),
        (Some("req-5"), Some("set-inside"))
    );
    assert_eq!(both(), (None, None));
}

#[test]
fn a_never_polled_scope_future_is_dropped_with_its_value_set() {
    let (tx, rx) = mpsc::channel();
    let report = ReportOnDrop::new(tx, both);
    let fut = REQUEST_ID.scope_future("req-6", async move {
        let _report = report;
    });
    TENANT.scope("acme", || drop(fut));
    assert_eq!(rx.recv().unwrap(), (Some("req-6"), Some("acme")));
}

#[test]
fn with_context_keeps_its_snapshot_semantics() {
    // `with_context` installs exactly the context it is given, whatever surrounds it.
    let fut = REQUEST_ID.scope_future(
        "outer",
        async { both() }.with_context(Context::new().with_value(&TENANT, "only")),
    );
    assert_eq!(futures::executor::block_on(fut), (None, Some("only")));
}
