//! Automatic inheritance on tokio (`RuntimeBuilderExt::propagate_context`), measured beside its
//! baselines in the same run: the per-poll cost of the hooks against a bare poll and against
//! `WithContext`; spawn and join of 1,000 plain tasks against a runtime without hooks; and the
//! concurrent map behind the hooks, a sharded std `Mutex<HashMap>` against a `DashMap`.
//!
//! Needs `RUSTFLAGS="--cfg tokio_unstable"`; without it this bench measures nothing.

#[cfg(tokio_unstable)]
mod measured {
    use std::collections::HashMap;
    use std::hash::{BuildHasherDefault, Hasher};
    use std::hint::black_box;
    use std::sync::{Arc, Barrier, Mutex};

    use contextvars::tokio::RuntimeBuilderExt;
    use contextvars::{Context, ContextExt};
    use criterion::Criterion;

    const YIELDS: u64 = 1_000;
    const BATCH: usize = 1_000;

    fn current_thread(hooks: bool) -> tokio::runtime::Runtime {
        let mut builder = tokio::runtime::Builder::new_current_thread();
        if hooks {
            builder.propagate_context();
        }
        builder.build().unwrap()
    }

    fn multi_thread(hooks: bool) -> tokio::runtime::Runtime {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2);
        if hooks {
            builder.propagate_context();
        }
        builder.build().unwrap()
    }

    /// A task polled `YIELDS + 1` times.
    async fn yielding() {
        for _ in 0..YIELDS {
            tokio::task::yield_now().await;
        }
    }

    /// Per poll: a task that yields 1,000 times, spawned from a context of 8 variables.
    pub(crate) fn poll(c: &mut Criterion) {
        let context = crate::eight_variables();
        let bare = current_thread(false);
        let hooked = current_thread(true);
        let mut group = c.benchmark_group("inherit/1000 polls of one task");
        group.bench_function("bare tokio::spawn", |b| {
            b.iter(|| bare.block_on(async { tokio::spawn(yielding()).await.unwrap() }))
        });
        group.bench_function("WithContext on a runtime without hooks", |b| {
            b.iter(|| {
                bare.block_on(async {
                    tokio::spawn(yielding().with_context(context.clone()))
                        .await
                        .unwrap()
                })
            })
        });
        group.bench_function("plain tokio::spawn with propagate_context", |b| {
            b.iter(|| {
                hooked.block_on(async { context.run(|| tokio::spawn(yielding())).await.unwrap() })
            })
        });
        group.finish();
    }

    /// Spawn and join 1,000 trivial tasks from inside a task, 2 workers, 8 variables set.
    pub(crate) fn spawn(c: &mut Criterion) {
        let context = crate::eight_variables();
        let bare = multi_thread(false);
        let hooked = multi_thread(true);
        let batch = || async {
            let handles: Vec<_> = (0..BATCH)
                .map(|i| tokio::spawn(async move { black_box(i) }))
                .collect();
            for handle in handles {
                handle.await.unwrap();
            }
        };
        let mut group = c.benchmark_group("inherit/spawn 1000 from a task");
        group.bench_function("bare tokio::spawn", |b| {
            b.iter(|| bare.block_on(async { tokio::spawn(batch()).await.unwrap() }))
        });
        group.bench_function("contextvars spawn_with_context, no hooks", |b| {
            b.iter(|| {
                bare.block_on(async {
                    contextvars::tokio::spawn_with_context(
                        async {
                            let handles: Vec<_> = (0..BATCH)
                                .map(|i| {
                                    contextvars::tokio::spawn_with_context(
                                        async move { black_box(i) },
                                    )
                                })
                                .collect();
                            for handle in handles {
                                handle.await.unwrap();
                            }
                        }
                        .with_context(context.clone()),
                    )
                    .await
                    .unwrap()
                })
            })
        });
        group.bench_function("plain tokio::spawn with propagate_context", |b| {
            b.iter(|| {
                hooked.block_on(async { context.run(|| tokio::spawn(batch())).await.unwrap() })
            })
        });
        group.finish();
    }

    // The two candidates for the map behind the hooks, with the access pattern of the hooks:
    // insert at spawn; take at every poll and put back after it; remove at termination.

    #[derive(Default)]
    struct IdHasher(u64);

    impl Hasher for IdHasher {
        fn write(&mut self, _: &[u8]) {
            unreachable!("only u64 keys")
        }
        fn write_u64(&mut self, n: u64) {
            self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        fn finish(&self) -> u64 {
            self.0
        }
    }

    type Hash = BuildHasherDefault<IdHasher>;

    #[repr(align(128))]
    struct Shard(Mutex<HashMap<u64, Option<Context>, Hash>>);

    struct Sharded([Shard; 64]);

    impl Sharded {
        fn new() -> Sharded {
            Sharded(std::array::from_fn(|_| {
                Shard(Mutex::new(HashMap::with_hasher(Hash::default())))
            }))
        }
        fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Option<Context>, Hash>> {
            let h = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            self.0[h as usize % 64].0.lock().unwrap()
        }
    }

    trait Candidate: Send + Sync {
        fn insert(&self, id: u64, context: Context);
        fn take(&self, id: u64) -> Option<Context>;
        fn put_back(&self, id: u64, context: Context);
        fn remove(&self, id: u64);
    }

    impl Candidate for Sharded {
        fn insert(&self, id: u64, context: Context) {
            self.shard(id).insert(id, Some(context));
        }
        fn take(&self, id: u64) -> Option<Context> {
            self.shard(id).get_mut(&id).and_then(Option::take)
        }
        fn put_back(&self, id: u64, context: Context) {
            if let Some(slot) = self.shard(id).get_mut(&id) {
                *slot = Some(context);
            }
        }
        fn remove(&self, id: u64) {
            self.shard(id).remove(&id);
        }
    }

    impl Candidate for dashmap::DashMap<u64, Option<Context>, Hash> {
        fn insert(&self, id: u64, context: Context) {
            dashmap::DashMap::insert(self, id, Some(context));
        }
        fn take(&self, id: u64) -> Option<Context> {
            self.get_mut(&id).and_then(|mut slot| slot.take())
        }
        fn put_back(&self, id: u64, context: Context) {
            if let Some(mut slot) = self.get_mut(&id) {
                *slot = Some(context);
            }
        }
        fn remove(&self, id: u64) {
            dashmap::DashMap::remove(self, &id);
        }
    }

    /// Two threads, each running 1,000 task lifetimes of 10 polls over its own ids.
    fn lifetimes(map: &Arc<dyn Candidate>, context: &Context) {
        let barrier = Arc::new(Barrier::new(2));
        let workers: Vec<_> = (0..2u64)
            .map(|thread| {
                let (map, barrier, context) = (map.clone(), barrier.clone(), context.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    for task in 0..1_000u64 {
                        let id = task * 2 + thread + 1;
                        map.insert(id, context.clone());
                        for _ in 0..10 {
                            let taken = map.take(id).unwrap();
                            map.put_back(id, black_box(taken));
                        }
                        map.remove(id);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
    }

    pub(crate) fn map(c: &mut Criterion) {
        let context = crate::eight_variables();
        let sharded: Arc<dyn Candidate> = Arc::new(Sharded::new());
        let dash: Arc<dyn Candidate> = Arc::new(
            dashmap::DashMap::<u64, Option<Context>, Hash>::with_hasher(Hash::default()),
        );
        let mut group = c.benchmark_group("inherit/map: 2 threads x 1000 tasks x 10 polls");
        group.bench_function("sharded std Mutex<HashMap> (chosen)", |b| {
            b.iter(|| lifetimes(&sharded, &context))
        });
        group.bench_function("DashMap", |b| b.iter(|| lifetimes(&dash, &context)));
        group.finish();
    }
}

#[cfg(tokio_unstable)]
fn eight_variables() -> contextvars::Context {
    use contextvars::{Context, ContextVar};
    static VARS: [ContextVar<u64>; 8] = [const { ContextVar::new("v") }; 8];
    VARS.iter()
        .enumerate()
        .fold(Context::new(), |context, (i, var)| {
            context.with_value(var, i as u64)
        })
}

#[cfg(tokio_unstable)]
criterion::criterion_group!(benches, measured::poll, measured::spawn, measured::map);

#[cfg(not(tokio_unstable))]
fn unavailable(_: &mut criterion::Criterion) {
    eprintln!("benches/inherit.rs measures nothing without RUSTFLAGS=\"--cfg tokio_unstable\"");
}

#[cfg(not(tokio_unstable))]
criterion::criterion_group!(benches, unavailable);

criterion::criterion_main!(benches);
