//! Capturing the current context allocates nothing and copies nothing, whatever its size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;

use contextvars::{Context, ContextVar};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` unchanged; counting touches no memory it hands out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn capture_allocates_nothing_at_any_size() {
    let vars: Vec<ContextVar<usize>> = (0..1024).map(|_| ContextVar::new("v")).collect();
    for size in [0, 1, 8, 64, 1024] {
        let mut ctx = Context::new();
        for (i, var) in vars.iter().take(size).enumerate() {
            ctx = ctx.with_value(var, i);
        }
        ctx.run(|| {
            let mut captured = Vec::with_capacity(100);
            let n = allocations_during(|| {
                for _ in 0..100 {
                    captured.push(Context::current());
                }
            });
            assert_eq!(n, 0, "capture allocated at {size} vars");
            assert!(captured.iter().all(|c| c.ptr_eq(&ctx) && c.len() == size));
        });
    }
}

#[test]
fn polling_a_with_context_future_allocates_nothing() {
    use contextvars::ContextExt;
    static ID: ContextVar<u64> = ContextVar::new("id");
    let mut fut = Box::pin(
        async {
            for _ in 0..100 {
                let mut yielded = false;
                std::future::poll_fn(|cx| {
                    if yielded {
                        std::task::Poll::Ready(())
                    } else {
                        yielded = true;
                        cx.waker().wake_by_ref();
                        std::task::Poll::Pending
                    }
                })
                .await;
                assert_eq!(ID.get(), Some(9));
            }
        }
        .with_context(Context::new().with_value(&ID, 9)),
    );
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut polls = 0;
    let n = allocations_during(|| {
        while fut.as_mut().poll(&mut cx).is_pending() {
            polls += 1;
        }
    });
    assert_eq!(polls, 100);
    assert_eq!(n, 0);
}
