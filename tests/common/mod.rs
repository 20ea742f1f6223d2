//! Helpers shared by the integration tests: building each server's state,
//! serving a Router on a loopback port, and finding Redis.
#![allow(dead_code)]

pub mod procs;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use statebench::clock::{ManualClock, SharedClock, SystemClock};
use statebench::keys::{KeyPair, TokenAlg};
use statebench::metrics::Metrics;
use statebench::revocation::Denylist;
use statebench::server::stateful::StatefulState;
use statebench::server::stateless::StatelessState;
use statebench::server::{Lifecycle, ServeOptions};
use statebench::session::{MemoryStore, SessionStore, StoreConfig};
use statebench::token::TokenService;
use tokio::sync::oneshot;
use tower::ServiceExt;

pub const TIMEOUT: Duration = Duration::from_secs(30);

pub fn stateless_state(denylist: bool) -> StatelessState {
    StatelessState {
        tokens: Arc::new(TokenService::new(
            KeyPair::generate(TokenAlg::HS256).unwrap(),
            900,
            0,
        )),
        clock: Arc::new(SystemClock),
        denylist: denylist.then(|| Arc::new(Denylist::new(1000))),
        metrics: Metrics::new(),
    }
}

pub fn stateless_app(denylist: bool) -> Router {
    statebench::server::stateless::app(stateless_state(denylist), TIMEOUT)
}

pub fn stateful_state<S: SessionStore>(store: S, clock: SharedClock) -> StatefulState<S> {
    StatefulState {
        store: Arc::new(store),
        clock,
        metrics: Metrics::new(),
        cookie_secure: false,
    }
}

pub fn stateful_app() -> Router {
    let store = MemoryStore::new(StoreConfig::default());
    statebench::server::stateful::app(stateful_state(store, Arc::new(SystemClock)), TIMEOUT)
}

pub fn manual_clock() -> (ManualClock, SharedClock) {
    let c = ManualClock::new(1_800_000_000_000);
    (c.clone(), Arc::new(c))
}

/// A server running on a loopback port until dropped (or `shutdown`).
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Starts the graceful drain and waits for it to end.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(TIMEOUT, &mut self.done)
            .await
            .expect("drain finished in time")
            .expect("server task")
            .expect("server result");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub async fn serve(app: Router, lifecycle: Lifecycle) -> Running {
    let options = ServeOptions {
        drain_timeout: Duration::from_secs(5),
        ..ServeOptions::default()
    };
    serve_with(app, lifecycle, options).await
}

pub async fn serve_with(app: Router, lifecycle: Lifecycle, options: ServeOptions) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = oneshot::channel();
    let done = tokio::spawn(statebench::server::run(
        listener,
        app,
        lifecycle,
        options,
        async {
            let _ = rx.await;
        },
    ));
    Running {
        addr,
        stop: Some(stop),
        done,
    }
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

/// Deletes every key under `prefix` (tests share one Redis server).
pub async fn redis_cleanup(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut c)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut c)
            .await
            .unwrap();
    }
}
