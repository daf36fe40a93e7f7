use contextvars::preserve_context;

#[preserve_context]
fn handler() -> impl std::future::Future<Output = usize> {
    async { 1 }
}

fn main() {}
