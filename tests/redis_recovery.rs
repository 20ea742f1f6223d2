//! The stateful server survives Redis going away: 503 while it is gone,
//! service again once it is back, with no restart. Runs its own
//! `redis-server` (skipped when the program is not installed).

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use statebench::host::services::RedisServer;
use statebench::host::tools::installed;
use statebench::session::{RedisStore, StoreConfig};

async fn login_status(app: &axum::Router) -> u16 {
    common::call(app, Request::post("/login").body(Body::empty()).unwrap())
        .await
        .0
}

async fn wait_for(app: &axum::Router, want: u16) {
    let start = Instant::now();
    loop {
        if login_status(app).await == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never got {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn answers_503_while_redis_is_down_and_recovers() {
    if !installed("redis-server") {
        eprintln!(
            "skipped answers_503_while_redis_is_down_and_recovers: redis-server is not installed"
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(work.path()).await.unwrap();
    let port: u16 = redis.url.rsplit(':').next().unwrap().parse().unwrap();
    let store = RedisStore::open(&redis.url, "recovery", StoreConfig::default()).unwrap();
    let app = common::stateful_with(store, &common::base());
    wait_for(&app, 200).await;

    redis.kill().await;
    wait_for(&app, 503).await;

    let mut redis = RedisServer::start_on(port, work.path())
        .await
        .expect("redis-server restarts on its port");
    wait_for(&app, 200).await;
    redis.kill().await;
}
