use contextvars::preserve_context;

trait Service {
    #[preserve_context]
    async fn call(&self, request: &str) -> usize;
}

fn main() {}
