use contextvars::ContextVar;

struct ApiKey;

static API_KEY: ContextVar<ApiKey> = ContextVar::new("api_key");

fn main() {
    let _local: ContextVar<ApiKey> = ContextVar::new("api_key");
    let _ = &API_KEY;
}
