//! Refresh-token rotation, the hybrid server's one store write per refresh,
//! on its own (no HTTP, no signing):
//!
//! - `refresh/rotate/<store>` for every registered in-memory store: one
//!   [`refresh::rotate`] of one of 10,000 live families in turn (read the
//!   family, compare the presented secret's SHA-256, store the next one's,
//!   by the store's compare-and-set);
//! - `refresh/rotate/redis` the same on Redis (one round trip for the
//!   read, one for the compare-and-set), only when `REDIS_URL` is set;
//! - `refresh/rotate/hashmap-floor`: the same work on an unlocked
//!   `HashMap` of digests (two SHA-256s, a constant-time compare, a
//!   replace, a random secret): what any rotation costs before a store.

mod support;

use std::collections::HashMap;
use std::hint::black_box;

use criterion::Criterion;
use statebench::model::User;
use statebench::session::memory::{MapAdapter, StoreVisitor, for_each_store};
use statebench::session::refresh::{self, RefreshToken};
use statebench::session::{MapStore, RedisStore, SessionStore, StoreConfig};

const FAMILIES: usize = 10_000;
const NOW: u64 = 1_700_000_000_000;

fn config() -> StoreConfig {
    StoreConfig {
        idle_ttl_ms: 3_600_000,
        max_sessions: usize::MAX,
    }
}

/// Rotates the families of `tokens` in turn on `store`, one per iteration.
fn bench_store<S: SessionStore>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    store: &S,
) {
    let mut tokens: Vec<RefreshToken> = rt.block_on(async {
        let mut tokens = Vec::with_capacity(FAMILIES);
        for _ in 0..FAMILIES {
            tokens.push(refresh::start(store, User::default(), NOW).await.unwrap());
        }
        tokens
    });
    // Checked once before timing: a rotation works, and its old token no more.
    let first = tokens[0];
    tokens[0] = rt
        .block_on(refresh::rotate(store, first, NOW))
        .unwrap()
        .refresh;
    assert!(tokens[0] != first);
    let mut i = 0;
    c.benchmark_group("refresh")
        .bench_function(format!("rotate/{name}"), |b| {
            b.iter(|| {
                let slot = &mut tokens[i % FAMILIES];
                i += 1;
                let grant = rt
                    .block_on(refresh::rotate(store, black_box(*slot), NOW))
                    .unwrap();
                *slot = grant.refresh;
            })
        });
}

/// The floor: the same digests on a plain `HashMap`.
fn bench_floor(c: &mut Criterion) {
    let sha = |secret: u128| {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &secret.to_be_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    };
    let mut secrets: Vec<u128> = (0..FAMILIES).map(|_| rand::random()).collect();
    let mut map: HashMap<u128, [u8; 32], foldhash::fast::RandomState> = (0..FAMILIES)
        .map(|f| (f as u128, sha(secrets[f])))
        .collect();
    let mut i = 0;
    c.benchmark_group("refresh")
        .bench_function("rotate/hashmap-floor", |b| {
            b.iter(|| {
                let f = i % FAMILIES;
                i += 1;
                let shown = sha(black_box(secrets[f]));
                let current = map.get_mut(&(f as u128)).unwrap();
                assert!(aws_lc_rs::constant_time::verify_slices_are_equal(current, &shown).is_ok());
                let next: u128 = rand::random();
                *current = sha(next);
                secrets[f] = next;
            })
        });
}

struct EveryStore<'a> {
    c: &'a mut Criterion,
    rt: &'a tokio::runtime::Runtime,
}

impl StoreVisitor for EveryStore<'_> {
    fn visit<A: MapAdapter>(&mut self) {
        bench_store(self.c, self.rt, A::NAME, &MapStore::<A>::new(config()));
    }
}

fn main() {
    let mut c = support::criterion();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    bench_floor(&mut c);
    for_each_store(&mut EveryStore { c: &mut c, rt: &rt });
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let prefix = format!("sbbench:{:016x}", rand::random::<u64>());
            let store = rt.block_on(async { RedisStore::open(&url, &prefix, config()) });
            let store = store.expect("REDIS_URL opens");
            bench_store(&mut c, &rt, "redis", &store);
            rt.block_on(async {
                let n = store.sweep(NOW + 2 * config().idle_ttl_ms).await;
                assert_eq!(n.ok(), Some(FAMILIES), "the families are removed");
            });
        }
        _ => eprintln!("refresh/rotate/redis skipped: REDIS_URL is not set"),
    }
    c.final_summary();
}
