use std::cell::Cell;
use std::rc::Rc;

use contextvars::ContextVar;

static USER: ContextVar<Rc<String>> = ContextVar::new("user");

static COUNTER: ContextVar<Cell<u32>> = ContextVar::opaque("counter");

fn main() {
    let _ = (&USER, &COUNTER);
}
