//! Helpers shared by the integration tests: building each server's state,
//! serving a Router on a loopback port, and finding Redis.
#![allow(dead_code)]

pub mod procs;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use statebench::clock::{ManualClock, SharedClock};
use statebench::keys::{KeyPair, TokenAlg};
use statebench::revocation::Denylist;
use statebench::server::ws::{WsConfig, WsState};
use statebench::server::{Base, Lifecycle, Local, ServeOptions, hybrid, stateful, stateless, ws};
use statebench::session::{MemoryStore, SessionStore, StoreConfig};
use statebench::token::TokenService;
use tower::ServiceExt;

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A server running on a loopback port until dropped (or shut down).
pub type Running = Local;

/// What the tests build servers with: the system clock, fresh counters,
/// [`TIMEOUT`] per request, no background sweeps.
pub fn base() -> Base {
    Base {
        request_timeout: TIMEOUT,
        ..Base::default()
    }
}

/// `base()` on another clock.
pub fn base_at(clock: SharedClock) -> Base {
    Base { clock, ..base() }
}

/// An HS256 token service with a random key, tokens valid 15 minutes.
pub fn tokens() -> Arc<TokenService> {
    Arc::new(TokenService::new(
        KeyPair::generate(TokenAlg::HS256).unwrap(),
        900,
        0,
    ))
}

/// A stateless server over `tokens`, with or without the denylist.
pub fn stateless_with(tokens: Arc<TokenService>, denylist: bool, base: &Base) -> Router {
    let denylist = denylist.then(|| Arc::new(Denylist::new(1000)));
    stateless::build(
        stateless::Config { tokens, denylist },
        base,
        &Lifecycle::default(),
    )
}

pub fn stateless_app(denylist: bool) -> Router {
    stateless_with(tokens(), denylist, &base())
}

/// A stateful server over `store`.
pub fn stateful_with<S: SessionStore>(store: S, base: &Base) -> Router {
    let config = stateful::Config {
        store: Arc::new(store),
        cookie_secure: false,
    };
    stateful::build(config, base, &Lifecycle::default())
}

/// A hybrid server over `store` and `tokens` (their TTL is the access TTL),
/// with or without the denylist.
pub fn hybrid_with<S: SessionStore>(
    store: S,
    tokens: Arc<TokenService>,
    denylist: bool,
    base: &Base,
) -> Router {
    let denylist = denylist.then(|| Arc::new(Denylist::new(1000)));
    hybrid_over(store, tokens, denylist, base)
}

/// A hybrid server over `store` and `tokens`, with `denylist` if any.
pub fn hybrid_over<S: SessionStore>(
    store: S,
    tokens: Arc<TokenService>,
    denylist: Option<Arc<Denylist>>,
    base: &Base,
) -> Router {
    let config = hybrid::Config {
        tokens,
        store: Arc::new(store),
        denylist,
    };
    hybrid::build(config, base, &Lifecycle::default())
}

/// A hybrid server on an in-memory store, access tokens living 15 minutes.
pub fn hybrid_app(denylist: bool) -> Router {
    hybrid_with(
        MemoryStore::new(StoreConfig::default()),
        tokens(),
        denylist,
        &base(),
    )
}

pub fn stateful_app() -> Router {
    stateful_with(MemoryStore::new(StoreConfig::default()), &base())
}

/// A WebSocket server with `limits` (and a backplane as `(url, prefix)`):
/// its Router, its state (to watch the registry) and the lifecycle to serve
/// it with, so its connection tasks see the drain.
pub fn ws_app(
    limits: WsConfig,
    backplane: Option<(String, String)>,
) -> (Router, WsState, Lifecycle) {
    let lifecycle = Lifecycle::default();
    let (app, state) = ws::build(ws::Config { limits, backplane }, &base(), &lifecycle).unwrap();
    (app, state, lifecycle)
}

pub fn manual_clock() -> (ManualClock, SharedClock) {
    let c = ManualClock::new(1_800_000_000_000);
    (c.clone(), Arc::new(c))
}

/// Serves `app` on a loopback port with a 5 s drain.
pub async fn serve(app: Router, lifecycle: Lifecycle) -> Running {
    let options = ServeOptions {
        drain_timeout: Duration::from_secs(5),
        ..ServeOptions::default()
    };
    serve_with(app, lifecycle, options).await
}

pub async fn serve_with(app: Router, lifecycle: Lifecycle, options: ServeOptions) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    statebench::server::spawn(listener, app, lifecycle, options).unwrap()
}

/// Waits until `done()` holds, polling every 5 ms; fails the test if it
/// does not within 10 s, so no test can hang on a condition.
pub async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within 10 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Drains `server`, failing the test if that takes longer than [`TIMEOUT`].
pub async fn shutdown(server: Running) {
    tokio::time::timeout(TIMEOUT, server.shutdown())
        .await
        .expect("drain finished in time")
        .expect("server result");
}

/// `REDIS_URL`, or `None` after printing why the test is skipped.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "skipped {test}: REDIS_URL is not set (start redis-server and set it to run this test)"
            );
            None
        }
    }
}

/// `REDIS_CLUSTER_URL` (`redis-cluster://host:port,...`), or `None` after
/// printing why the test is skipped.
pub fn redis_cluster_url(test: &str) -> Option<String> {
    match std::env::var("REDIS_CLUSTER_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "skipped {test}: REDIS_CLUSTER_URL is not set (start a Redis Cluster and set it \
                 to redis-cluster://host:port,... to run this test)"
            );
            None
        }
    }
}

/// A current-thread runtime, for tests that drive async stores from a
/// proptest runner.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A key prefix no other test or run uses.
pub fn unique_prefix() -> String {
    format!("sbtest:{:016x}", rand::random::<u64>())
}

/// Sends one request through a Router without a socket.
pub async fn call(app: &Router, req: Request<Body>) -> (u16, axum::http::HeaderMap, Vec<u8>) {
    let res: Response<Body> = app.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, body.to_vec())
}

/// Deletes every key under `prefix` (tests share one Redis server, or one
/// cluster: there on every node, one key at a time, as a node refuses a
/// DEL across slots).
pub async fn redis_cleanup(url: &str, prefix: &str) {
    let nodes = match statebench::session::redis::conn::cluster_nodes(url) {
        Some(nodes) => nodes.unwrap(),
        None => vec![url.to_owned()],
    };
    for node in nodes {
        let client = redis::Client::open(node.as_str()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut c)
            .await
            .unwrap();
        for key in keys {
            let _: () = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut c)
                .await
                .unwrap();
        }
    }
}

/// Runs `statebench compare` with `args` into a fresh directory (run name
/// `t`), checks that it succeeded, and reads back its record. The
/// directory lives as long as the returned handle.
pub fn compare(args: &[&str]) -> (tempfile::TempDir, statebench::compare::RunRecord) {
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_statebench"))
        .arg("compare")
        .args(args)
        .args(["--run-name", "t", "--out"])
        .arg(out.path())
        .status()
        .expect("statebench runs");
    assert!(status.success(), "compare {args:?}: {status}");
    let record = serde_json::from_slice(
        &std::fs::read(out.path().join("load/t/cells.json")).expect("cells.json"),
    )
    .expect("a compare record");
    (out, record)
}
