//! actix-web in process: one request through an `App` (actix's `test::call_service`), bare, with
//! `contextvars::actix_web::ContextMiddleware`, and with a hand-written `wrap_fn` middleware that
//! only echoes the incoming `x-request-id`; then actix's own spawn paths (`rt::spawn`,
//! `web::block`) beside this crate's `spawn_with_context` and `block_with_context`.

mod shared;

use std::hint::black_box;

use actix_web::dev::Service as _;
use actix_web::http::header::HeaderName;
use actix_web::test::{call_service, init_service, TestRequest};
use actix_web::{web, App};
use contextvars::actix_web::{block_with_context, spawn_with_context, ContextMiddleware};
use contextvars::propagation::{Propagation, Trust, REQUEST_ID};
use criterion::{criterion_group, criterion_main, Criterion};

async fn handler() -> &'static str {
    "ok"
}

fn request(id: bool) -> TestRequest {
    let request = TestRequest::get().uri("/");
    if id {
        request.insert_header(("x-request-id", "req-0123456789abcdef"))
    } else {
        request
    }
}

fn actix_request(c: &mut Criterion) {
    let system = actix_web::rt::System::new();
    let bare = system.block_on(init_service(App::new().route("/", web::get().to(handler))));
    let ours = system.block_on(init_service(
        App::new()
            .route(
                "/",
                web::get().to(|| async {
                    black_box(REQUEST_ID.with(|id| id.is_some()));
                    "ok"
                }),
            )
            // Trusted callers: the id sent is kept, as the hand-written echo does.
            .wrap(ContextMiddleware::new(
                Propagation::builder().inbound(Trust::Trusted).build(),
            )),
    ));
    let hand_written = system.block_on(init_service(
        App::new()
            .route("/", web::get().to(handler))
            .wrap_fn(|request, service| {
                let id = request.headers().get("x-request-id").cloned();
                let response = service.call(request);
                async move {
                    let mut response = response.await?;
                    if let Some(id) = id {
                        let name = HeaderName::from_static("x-request-id");
                        response.headers_mut().insert(name, id);
                    }
                    Ok(response)
                }
            }),
    ));

    let mut group = c.benchmark_group("actix_request");
    for (label, id) in [("id sent", true), ("no id", false)] {
        group.bench_function(format!("bare App, {label}"), |b| {
            b.iter(|| system.block_on(call_service(&bare, request(id).to_request())))
        });
        group.bench_function(format!("ContextMiddleware, {label}"), |b| {
            b.iter(|| system.block_on(call_service(&ours, request(id).to_request())))
        });
        group.bench_function(format!("wrap_fn echo, {label}"), |b| {
            b.iter(|| system.block_on(call_service(&hand_written, request(id).to_request())))
        });
    }
    group.finish();
}

fn actix_spawn(c: &mut Criterion) {
    let system = actix_web::rt::System::new();
    let mut group = c.benchmark_group("actix_spawn");
    group.bench_function("1,000 rt::spawn + join", |b| {
        b.iter(|| {
            system.block_on(async {
                let tasks: Vec<_> = (0..1_000)
                    .map(|i| actix_web::rt::spawn(async move { black_box(i) }))
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            })
        })
    });
    group.bench_function("1,000 spawn_with_context + join", |b| {
        b.iter(|| {
            system.block_on(REQUEST_ID.scope_future("req-1".into(), async {
                let tasks: Vec<_> = (0..1_000)
                    .map(|i| spawn_with_context(async move { black_box(i) }))
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            }))
        })
    });
    group.bench_function("100 web::block + await", |b| {
        b.iter(|| {
            system.block_on(async {
                let jobs: Vec<_> = (0..100).map(|i| web::block(move || black_box(i))).collect();
                for job in jobs {
                    job.await.unwrap();
                }
            })
        })
    });
    group.bench_function("100 block_with_context + await", |b| {
        b.iter(|| {
            system.block_on(REQUEST_ID.scope_future("req-1".into(), async {
                let jobs: Vec<_> = (0..100)
                    .map(|i| block_with_context(move || black_box(i)))
                    .collect();
                for job in jobs {
                    job.await.unwrap();
                }
            }))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = shared::criterion();
    targets = actix_request, actix_spawn
}
criterion_main!(benches);
