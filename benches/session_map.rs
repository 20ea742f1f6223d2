//! Session-store operations at pinned sizes, every in-memory store beside
//! the plain-`HashMap` floor, plus mixed workloads at 1 and 2 threads and
//! (with `REDIS_URL`) Redis as the floor for a shared store.
//!
//! `get_hit` visits keys in a fixed random order, so the CPU may overlap one
//! lookup's cache misses with the next one's; `get_hit_chained` makes each
//! key depend on the previous answer, so it is one lookup's latency, the
//! figure a request that makes one lookup sees.
//!
//! Ids: `session_map/<op>/<store>/<size>` and
//! `session_map/mixed-<mix>/<store>/threads-<n>`.

mod support;

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use statebench::session::memory::{Entry, MapAdapter, StoreVisitor, for_each_store};
use statebench::session::{MapStore, Session, SessionId, SessionStore, StoreConfig};
use statebench::workload::{MIXES, Mix, Op, SIZES, THREADS, realistic_session};
use support::Rng;

const NOW: u64 = 1_700_000_000_000;
const TTL: u64 = 3_600_000;

fn config() -> StoreConfig {
    StoreConfig {
        idle_ttl_ms: TTL,
        max_sessions: usize::MAX,
    }
}

fn sizes() -> Vec<usize> {
    if support::quick() {
        SIZES[..2].to_vec()
    } else {
        SIZES.to_vec()
    }
}

/// Prefills `store` with `n` sessions; returns their ids in random order.
fn prefill<M: statebench::session::memory::MapAdapter>(
    store: &MapStore<M>,
    n: usize,
) -> Vec<SessionId> {
    let mut ids: Vec<SessionId> = (0..n)
        .map(|i| {
            let id = SessionId::random();
            assert!(store.insert_with_id(id, realistic_session(i as u64, NOW), NOW));
            id
        })
        .collect();
    let mut rng = Rng::new(7);
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i + 1));
    }
    ids
}

/// Runs `op` for a batch of up to 1024 operations at a time, timing only
/// `op`; `undo` (untimed) restores the store's size after each batch.
fn batched(iters: u64, mut op: impl FnMut(usize), mut undo: impl FnMut(usize)) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let k = left.min(1024);
        let t = Instant::now();
        for i in 0..k {
            op(i);
        }
        total += t.elapsed();
        for i in 0..k {
            undo(i);
        }
        left -= k;
    }
    total
}

fn store_ops<M: MapAdapter>(c: &mut Criterion, name: &str) {
    for &n in &sizes() {
        let store = MapStore::<M>::new(config());
        let ids = prefill(&store, n);
        let id = |op: &str| BenchmarkId::new(format!("{op}/{name}"), n);

        // Checked once before timing: a hit returns the stored user.
        assert_eq!(store.get_now(ids[0], NOW, |s| s.user.id), Some(1));
        let mut g = c.benchmark_group("session_map");
        g.throughput(Throughput::Elements(1));
        let mut i = 0;
        g.bench_function(id("get_hit"), |b| {
            b.iter(|| {
                i = (i + 1) % ids.len();
                black_box(store.get_now(ids[i], NOW, |s| s.user.id))
            })
        });
        g.bench_function(id("get_hit_chained"), |b| {
            b.iter(|| {
                let user = store.get_now(ids[i], NOW, |s| s.user.id).unwrap_or(0);
                i = (i + 1 + chained(user)) % ids.len();
                user
            })
        });
        let misses: Vec<SessionId> = (0..4096).map(|_| SessionId::random()).collect();
        assert_eq!(store.get_now(misses[0], NOW, |s| s.user.id), None);
        g.bench_function(id("get_miss"), |b| {
            b.iter(|| {
                i = (i + 1) % misses.len();
                black_box(store.get_now(misses[i], NOW, |s| s.user.id))
            })
        });
        g.bench_function(id("touch"), |b| {
            b.iter(|| {
                i = (i + 1) % ids.len();
                black_box(store.get_now(ids[i], NOW + 1, |_| ()))
            })
        });
        let fresh: Vec<SessionId> = (0..1024).map(|_| SessionId::random()).collect();
        let values: Vec<_> = (0..1024).map(|k| realistic_session(k, NOW)).collect();
        g.bench_function(id("insert"), |b| {
            b.iter_custom(|iters| {
                batched(
                    iters,
                    |k| {
                        black_box(store.insert_with_id(fresh[k], values[k].clone(), NOW));
                    },
                    |k| store.remove_now(fresh[k]),
                )
            })
        });
        g.bench_function(id("remove"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let k = left.min(1024);
                    for j in 0..k {
                        store.insert_with_id(fresh[j], values[j].clone(), NOW);
                    }
                    let t = Instant::now();
                    for f in &fresh[..k] {
                        store.remove_now(*f);
                    }
                    total += t.elapsed();
                    left -= k;
                }
                total
            })
        });
        assert_eq!(store.len_now(), n, "benchmarks left the size unchanged");
        g.finish();

        // Sweep: 1% of sessions idle past the TTL, the rest live.
        let mut g = c.benchmark_group("session_map");
        g.sample_size(10).throughput(Throughput::Elements(n as u64));
        let stale: Vec<SessionId> = (0..n / 100).map(|_| SessionId::random()).collect();
        g.bench_function(id("sweep"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    for (k, s) in stale.iter().enumerate() {
                        store.insert_with_id(*s, values[k % 1024].clone(), NOW - 2 * TTL);
                    }
                    let t = Instant::now();
                    let removed = store.sweep_now(NOW);
                    total += t.elapsed();
                    assert_eq!(removed, stale.len());
                }
                total
            })
        });
        g.finish();
    }
}

/// Zero for any real user id (they are far below 2^63), but the compiler
/// cannot know that: adding it to the next index makes that index wait for
/// this lookup's answer.
fn chained(user: u64) -> usize {
    (user >> 63) as usize
}

/// The floors: plain single-threaded `HashMap`s with foldhash, same keys,
/// no locking, no expiry. `hashmap-floor` holds the sessions inline;
/// `boxed-floor` holds them boxed as the stores do (one more pointer to
/// follow, and smaller buckets).
fn floor(c: &mut Criterion) {
    for &n in &sizes() {
        let mut inline: HashMap<SessionId, Session, foldhash::fast::RandomState> =
            HashMap::default();
        let mut boxed: HashMap<SessionId, Box<Entry>, foldhash::fast::RandomState> =
            HashMap::default();
        let mut ids: Vec<SessionId> = (0..n).map(|_| SessionId::random()).collect();
        // Both filled in creation order, as the stores are, so neither
        // map's memory follows the (shuffled) order the reads visit.
        for (k, id) in ids.iter().enumerate() {
            inline.insert(*id, realistic_session(k as u64, NOW));
        }
        for (k, id) in ids.iter().enumerate() {
            boxed.insert(
                *id,
                Box::new(Entry::new(realistic_session(k as u64, NOW), NOW)),
            );
        }
        let mut rng = Rng::new(7);
        for i in (1..ids.len()).rev() {
            ids.swap(i, rng.below(i + 1));
        }
        let mut g = c.benchmark_group("session_map");
        g.throughput(Throughput::Elements(1));
        assert_eq!(inline.get(&ids[0]).map(|s| s.user.id), Some(1));
        assert_eq!(boxed.get(&ids[0]).map(|e| e.session.user.id), Some(1));
        floor_reads(&mut g, "hashmap-floor", n, &ids, |id| {
            inline.get(id).map(|s| s.user.id)
        });
        floor_reads(&mut g, "boxed-floor", n, &ids, |id| {
            boxed.get(id).map(|e| e.session.user.id)
        });
        g.finish();
    }
}

/// `get_hit` and `get_hit_chained` for one floor map.
fn floor_reads(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    n: usize,
    ids: &[SessionId],
    get: impl Fn(&SessionId) -> Option<u64>,
) {
    let mut i = 0;
    g.bench_function(BenchmarkId::new(format!("get_hit/{name}"), n), |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            black_box(get(&ids[i]))
        })
    });
    g.bench_function(
        BenchmarkId::new(format!("get_hit_chained/{name}"), n),
        |b| {
            b.iter(|| {
                let user = get(&ids[i]).unwrap_or(0);
                i = (i + 1 + chained(user)) % ids.len();
                user
            })
        },
    );
}

fn mixed_store<M: MapAdapter>(c: &mut Criterion, name: &str, mix: Mix) {
    const N: usize = 100_000;
    let store = MapStore::<M>::new(config());
    let ids = prefill(&store, N);
    let mut g = c.benchmark_group(format!("session_map/mixed-{}", mix.name));
    g.throughput(Throughput::Elements(1));
    for &threads in &THREADS {
        g.bench_function(BenchmarkId::new(name, format!("threads-{threads}")), |b| {
            b.iter_custom(|iters| {
                let per = (iters as usize).div_ceil(threads);
                let start = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..threads {
                        let (store, ids) = (&store, &ids);
                        s.spawn(move || run_mix(store, ids, mix, t as u64, per));
                    }
                });
                start.elapsed()
            })
        });
        // Every login was matched by a logout: the store is back to its size.
        assert_eq!(
            store.len_now(),
            N,
            "mixed-{} left the store at a different size",
            mix.name
        );
    }
    g.finish();
}

/// One thread's share of a mixed workload: reads and updates pick from the
/// prefilled ids; logins add, and logouts remove, this thread's own ids.
fn run_mix<M: statebench::session::memory::MapAdapter>(
    store: &MapStore<M>,
    ids: &[SessionId],
    mix: Mix,
    seed: u64,
    ops: usize,
) {
    let mut rng = Rng::new(seed + 1);
    let mut own: Vec<SessionId> = Vec::new();
    let item = statebench::model::CartItem {
        sku: "sku-00001".into(),
        qty: 1,
    };
    for _ in 0..ops {
        match mix.op((rng.next() % 100) as u8) {
            Op::Get => {
                black_box(store.get_now(ids[rng.below(ids.len())], NOW, |s| s.user.id));
            }
            Op::Update => {
                black_box(store.update_now(ids[rng.below(ids.len())], NOW, |s| {
                    // Change a line without growing the cart.
                    let qty = &mut s.cart.0[0].qty;
                    *qty = (*qty % 9) + 1;
                    let _ = &item;
                }));
            }
            Op::Login => {
                if let Ok(id) = store.create_now(realistic_session(seed, NOW), NOW) {
                    own.push(id);
                }
            }
            Op::Logout => {
                if !own.is_empty() {
                    let id = own.swap_remove(rng.below(own.len()));
                    store.remove_now(id);
                }
            }
        }
    }
    for id in own {
        store.remove_now(id);
    }
}

/// Redis, the shared-store floor: one network round trip per operation.
fn redis(c: &mut Criterion) {
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!("session_map/*/redis skipped: REDIS_URL is not set");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prefix = format!("sbbench:{:x}", rand::random::<u32>());
    let store = rt.block_on(async {
        statebench::session::RedisStore::open(&url, &prefix, config()).unwrap()
    });
    let n = 1_000;
    let ids: Vec<SessionId> = (0..n)
        .map(|i| {
            rt.block_on(store.create(realistic_session(i, NOW), NOW))
                .unwrap()
        })
        .collect();
    assert_eq!(
        rt.block_on(store.get(ids[0], NOW, |s| s.user.id)).unwrap(),
        Some(1)
    );
    let mut g = c.benchmark_group("session_map");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function(BenchmarkId::new("get_hit/redis", n), |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            black_box(rt.block_on(store.get(ids[i], NOW, |s| s.user.id)).unwrap())
        })
    });
    g.bench_function(BenchmarkId::new("get_miss/redis", n), |b| {
        b.iter(|| {
            black_box(
                rt.block_on(store.get(SessionId(i as u128), NOW, |s| s.user.id))
                    .unwrap(),
            )
        })
    });
    g.bench_function(BenchmarkId::new("touch/redis", n), |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            black_box(rt.block_on(store.touch(ids[i], NOW + 1)).unwrap())
        })
    });
    g.bench_function(BenchmarkId::new("insert+remove/redis", n), |b| {
        b.iter(|| {
            let id = rt
                .block_on(store.create(realistic_session(1, NOW), NOW))
                .unwrap();
            rt.block_on(store.remove(id)).unwrap();
        })
    });
    g.finish();
    rt.block_on(async {
        for id in ids {
            store.remove(id).await.unwrap();
        }
    });
}

/// Every registered store's operations.
struct Ops<'a>(&'a mut Criterion);

impl StoreVisitor for Ops<'_> {
    fn visit<A: MapAdapter>(&mut self) {
        store_ops::<A>(self.0, A::NAME);
    }
}

/// Every registered store under one mix.
struct Mixed<'a>(&'a mut Criterion, Mix);

impl StoreVisitor for Mixed<'_> {
    fn visit<A: MapAdapter>(&mut self) {
        mixed_store::<A>(self.0, A::NAME, self.1);
    }
}

fn all(c: &mut Criterion) {
    floor(c);
    for_each_store(&mut Ops(c));
    for mix in MIXES {
        for_each_store(&mut Mixed(c, mix));
    }
    redis(c);
}

fn main() {
    let mut c = support::criterion();
    all(&mut c);
    c.final_summary();
}
