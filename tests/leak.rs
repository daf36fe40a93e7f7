//! No context leaks between futures sharing a thread, nor stays behind on the thread.

mod common;

use std::task::Poll;

use contextvars::{Context, ContextExt, ContextVar};

use common::Yield;

static ID: ContextVar<u32> = ContextVar::new("id");

#[test]
fn wrapped_and_plain_futures_polled_alternately_never_see_each_other() {
    let before = Context::current();
    let mut wrapped = Box::pin(
        async {
            let mut seen = Vec::new();
            for round in 0..5 {
                seen.push(ID.get());
                ID.set(100 + round); // sets stay in this task
                Yield(1).await;
            }
            seen.push(ID.get());
            seen
        }
        .with_context(Context::new().with_value(&ID, 1)),
    );
    let mut plain = Box::pin(async {
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(ID.get());
            Yield(1).await;
        }
        seen.push(ID.get());
        seen
    });
    let (mut wrapped_out, mut plain_out) = (None, None);
    while wrapped_out.is_none() || plain_out.is_none() {
        if wrapped_out.is_none() {
            if let Poll::Ready(seen) = common::poll_once(wrapped.as_mut()) {
                wrapped_out = Some(seen);
            }
        }
        if plain_out.is_none() {
            if let Poll::Ready(seen) = common::poll_once(plain.as_mut()) {
                plain_out = Some(seen);
            }
        }
    }
    assert_eq!(
        wrapped_out.unwrap(),
        [
            Some(1),
            Some(100),
            Some(101),
            Some(102),
            Some(103),
            Some(104)
        ]
    );
    assert_eq!(plain_out.unwrap(), [None; 6]);
    assert!(Context::current().ptr_eq(&before));
}

#[test]
fn nested_wrapped_futures_restore_the_outer_task() {
    let inner = async {
        ID.set(3);
        Yield(1).await;
        ID.get()
    }
    .with_context(Context::new().with_value(&ID, 2));
    let outer = async move {
        let before = ID.get();
        let inner_saw = inner.await;
        (before, inner_saw, ID.get())
    }
    .with_context(Context::new().with_value(&ID, 1));
    assert_eq!(
        futures::executor::block_on(outer),
        (Some(1), Some(3), Some(1))
    );
    assert!(Context::current().is_empty());
}
