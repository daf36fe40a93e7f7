use contextvars::ContextVar;

static REQUEST_ID: ContextVar<String> = ContextVar::new("request_id");

fn main() {
    let _ = REQUEST_ID.scope("req-1".into(), || async { REQUEST_ID.get() }.with_current_context());
}
