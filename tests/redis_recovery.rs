//! The stateful server survives Redis going away: 503 while it is gone,
//! service again once it is back, with no restart. Runs its own
//! `redis-server` (skipped when the program is not installed).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use statebench::session::{RedisStore, StoreConfig};

fn start_redis(port: u16) -> Option<Child> {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Some(mut redis) = start_redis(port) else {
        eprintln!(
            "skipped answers_503_while_redis_is_down_and_recovers: redis-server is not installed"
        );
        return;
    };
    let url = format!("redis://127.0.0.1:{port}");
    let store = RedisStore::open(&url, "recovery", StoreConfig::default()).unwrap();
    let app = common::stateful_with(store, &common::base());
    wait_for(&app, 200).await;

    redis.kill().unwrap();
    redis.wait().unwrap();
    wait_for(&app, 503).await;

    let mut redis = start_redis(port).expect("redis-server restarts");
    wait_for(&app, 200).await;
    redis.kill().unwrap();
    redis.wait().unwrap();
}
