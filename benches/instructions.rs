//! Instruction counts (gungraun + Valgrind Callgrind): the deterministic twin
//! of the criterion benchmarks. Counts do not drift with machine load, so CI
//! can gate on them. Run with `cargo bench --bench instructions` (needs
//! `valgrind` and `gungraun-runner` 0.20 on PATH).
//!
//! `token_verify` is the servers' verifier and `token_verify_jsonwebtoken`
//! the same rules through `jsonwebtoken::decode`.
//!
//! `profile_handler/hybrid_x100` is the hybrid server's access-token path
//! (the stateless one, behind its own Router), and
//! `refresh_handler/hybrid_memory_x100` its refresh: 100 `POST /refresh`,
//! each with the token the previous one returned.
//!
//! Each benchmark repeats its operation so that per-run noise from random
//! hash seeds and ids averages out: 1,000 verifies, 1,000 lookups, 100
//! requests. Setup (building keys, maps, routers) is not counted.

use std::hint::black_box;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use gungraun::{LibraryBenchmarkConfig, library_benchmark, library_benchmark_group, main};
use statebench::benchrun::dispatch::{self, Dispatch};
use statebench::clock::{Clock, SystemClock};
use statebench::keys::{KeyPair, TokenAlg};
use statebench::model::User;
use statebench::server::{Base, Lifecycle, hybrid, stateful, stateless};
use statebench::session::{MemoryStore, SessionId, StoreConfig};
use statebench::token::{Claims, TokenService};
use statebench::workload::realistic_session;
use tower::ServiceExt;

const SECRET: &[u8] = b"benchmark-secret-benchmark-secret-0123456789";
const NOW: u64 = 1_700_000_000_000;
/// Tokens are signed at a fixed time and expire in 2083, so their bytes
/// (and the instructions that parse them) are the same on every run.
const TOKEN_IAT: u64 = 1_700_000_000;
const TOKEN_TTL: u64 = 2_000_000_000;

fn tokens() -> Arc<TokenService> {
    Arc::new(TokenService::new(
        KeyPair::from_secret(TokenAlg::HS256, SECRET).unwrap(),
        3600,
        0,
    ))
}

fn verify_setup() -> &'static (Arc<TokenService>, String) {
    let svc = tokens();
    let token = svc
        .sign(&Claims::for_login(&User::default(), TOKEN_IAT, TOKEN_TTL))
        .unwrap();
    assert!(svc.verify(&token).is_ok());
    Box::leak(Box::new((svc, token)))
}

#[library_benchmark]
#[bench::hs256_cart_0_x1000(verify_setup())]
fn token_verify(input: &'static (Arc<TokenService>, String)) {
    for _ in 0..1000 {
        black_box(input.0.verify(black_box(&input.1)).unwrap());
    }
}

// The same verify through `jsonwebtoken::decode`, as most services call it.
#[library_benchmark]
#[bench::hs256_cart_0_x1000(verify_setup())]
fn token_verify_jsonwebtoken(input: &'static (Arc<TokenService>, String)) {
    for _ in 0..1000 {
        black_box(input.0.verify_reference(black_box(&input.1)).unwrap());
    }
}

fn store_setup(n: usize) -> &'static (MemoryStore, Vec<SessionId>) {
    let store = MemoryStore::new(StoreConfig {
        idle_ttl_ms: 3_600_000,
        max_sessions: usize::MAX,
    });
    let ids: Vec<SessionId> = (0..n)
        .map(|i| {
            store
                .create_now(realistic_session(i as u64, NOW), NOW)
                .unwrap()
        })
        .collect();
    Box::leak(Box::new((store, ids)))
}

#[library_benchmark]
#[bench::dashmap_100000_x1000(store_setup(100_000))]
fn session_get_hit(input: &'static (MemoryStore, Vec<SessionId>)) {
    let (store, ids) = input;
    for id in ids.iter().step_by(100) {
        black_box(store.get_now(*id, NOW, |s| s.user.id).unwrap());
    }
}

struct Handler {
    rt: tokio::runtime::Runtime,
    app: Router,
    cred: (header::HeaderName, String),
}

fn profile(h: &Handler) {
    let req = Request::get("/profile")
        .header(h.cred.0.clone(), h.cred.1.as_str())
        .body(Body::empty())
        .unwrap();
    let res = h.rt.block_on(h.app.clone().oneshot(req)).unwrap();
    assert_eq!(res.status(), 200);
    black_box(
        h.rt.block_on(axum::body::to_bytes(res.into_body(), 1024))
            .unwrap(),
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn stateless_setup() -> &'static Handler {
    let tokens = tokens();
    let token = tokens
        .sign(&Claims::for_login(&User::default(), TOKEN_IAT, TOKEN_TTL))
        .unwrap();
    let config = stateless::Config {
        tokens,
        denylist: None,
    };
    let h = Handler {
        rt: runtime(),
        app: stateless::build(config, &Base::default(), &Lifecycle::default()),
        cred: (header::AUTHORIZATION, token),
    };
    profile(&h); // warm: first-use allocations are not part of the steady state
    Box::leak(Box::new(h))
}

fn stateful_setup() -> &'static Handler {
    let store = Arc::new(MemoryStore::new(StoreConfig::default()));
    let id = store
        .create_now(
            realistic_session(1, SystemClock.now_ms()),
            SystemClock.now_ms(),
        )
        .unwrap();
    let config = stateful::Config {
        store,
        cookie_secure: false,
    };
    let h = Handler {
        rt: runtime(),
        app: stateful::build(config, &Base::default(), &Lifecycle::default()),
        cred: (header::COOKIE, format!("sid={id}")),
    };
    profile(&h);
    Box::leak(Box::new(h))
}

fn hybrid_config() -> hybrid::Config<MemoryStore> {
    hybrid::Config {
        tokens: tokens(),
        store: Arc::new(MemoryStore::new(StoreConfig::default())),
        denylist: None,
    }
}

fn hybrid_setup() -> &'static Handler {
    let config = hybrid_config();
    let token = config
        .tokens
        .sign(&Claims::for_login(&User::default(), TOKEN_IAT, TOKEN_TTL))
        .unwrap();
    let h = Handler {
        rt: runtime(),
        app: hybrid::build(config, &Base::default(), &Lifecycle::default()),
        cred: (header::AUTHORIZATION, token),
    };
    profile(&h);
    Box::leak(Box::new(h))
}

#[library_benchmark]
#[bench::stateless_x100(stateless_setup())]
#[bench::stateful_memory_x100(stateful_setup())]
#[bench::hybrid_x100(hybrid_setup())]
fn profile_handler(h: &'static Handler) {
    for _ in 0..100 {
        profile(h);
    }
}

/// The hybrid server and the body of its next `POST /refresh`.
struct Refresher {
    rt: tokio::runtime::Runtime,
    app: Router,
    next: std::cell::RefCell<String>,
}

/// One refresh; keeps the token it returned for the next.
fn refresh(r: &Refresher) {
    let body = r.next.borrow().clone();
    let req = Request::post("/refresh").body(Body::from(body)).unwrap();
    let res = r.rt.block_on(r.app.clone().oneshot(req)).unwrap();
    assert_eq!(res.status(), 200);
    let bytes =
        r.rt.block_on(axum::body::to_bytes(res.into_body(), 4096))
            .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    *r.next.borrow_mut() = serde_json::json!({ "refresh_token": v["refresh_token"] }).to_string();
}

fn refresh_setup() -> &'static Refresher {
    let rt = runtime();
    let app = hybrid::build(hybrid_config(), &Base::default(), &Lifecycle::default());
    let login = Request::post("/login").body(Body::empty()).unwrap();
    let res = rt.block_on(app.clone().oneshot(login)).unwrap();
    let bytes = rt
        .block_on(axum::body::to_bytes(res.into_body(), 4096))
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let r = Refresher {
        rt,
        app,
        next: std::cell::RefCell::new(
            serde_json::json!({ "refresh_token": v["refresh_token"] }).to_string(),
        ),
    };
    refresh(&r); // warm
    Box::leak(Box::new(r))
}

#[library_benchmark]
#[bench::hybrid_memory_x100(refresh_setup())]
fn refresh_handler(r: &'static Refresher) {
    for _ in 0..100 {
        refresh(r);
    }
}

library_benchmark_group!(
    name = instructions;
    benchmarks = token_verify, token_verify_jsonwebtoken, session_get_hit, profile_handler,
        refresh_handler
);

/// AWS-LC's CPU dispatch pinned to one path (see
/// `statebench::benchrun::dispatch`), or the native one passed through.
fn config() -> LibraryBenchmarkConfig {
    let mut config = LibraryBenchmarkConfig::default();
    match Dispatch::from_env() {
        Dispatch::Pinned => config.env(dispatch::CAP_VAR, dispatch::PIN),
        Dispatch::Native => config.pass_through_env(dispatch::CAP_VAR),
    };
    config
}

main!(config = config(); library_benchmark_groups = instructions);
