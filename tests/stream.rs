//! `WithContext` wraps streams as well as futures.

use contextvars::{Context, ContextExt, ContextVar};
use futures::{Stream, StreamExt};

static ID: ContextVar<u32> = ContextVar::new("id");

#[test]
fn every_item_is_produced_inside_the_context() {
    let stream = futures::stream::iter(0..3)
        .then(|n| async move {
            let seen = ID.get().unwrap();
            ID.set(seen + 1); // persists from item to item, inside the stream only
            n * 10 + seen
        })
        .with_context(Context::new().with_value(&ID, 1));
    let items: Vec<u32> = futures::executor::block_on(stream.collect());
    assert_eq!(items, [1, 12, 23]);
    assert_eq!(ID.get(), None);
}

#[test]
fn size_hint_is_forwarded() {
    let stream = futures::stream::iter(0..5).with_context(Context::new());
    assert_eq!(stream.size_hint(), (5, Some(5)));
}
