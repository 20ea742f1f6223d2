//! A denylist shared through Redis: a logout on one replica is refused by
//! the others, a replica that starts later loads the revocations in force,
//! and a malformed message on the channel changes nothing. For the
//! stateless server and the hybrid one.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use statebench::revocation::Denylist;
use statebench::server::{Lifecycle, stateless};
use statebench::session::{RedisStore, StoreConfig};
use statebench::token::TokenService;

/// How long a revocation may take to reach another replica here (one
/// pub/sub hop on loopback; generous for a loaded CI machine).
const HOP: Duration = Duration::from_secs(5);

async fn post(app: &Router, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = Request::post(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, t);
    }
    let body = if path == "/login" {
        r#"{"name":"Ann"}"#
    } else {
        ""
    };
    let (status, _, body) = common::call(app, req.body(Body::from(body)).unwrap()).await;
    (status, String::from_utf8(body).unwrap())
}

async fn profile(app: &Router, token: &str) -> u16 {
    let req = Request::get("/profile")
        .header(header::AUTHORIZATION, token)
        .body(Body::empty())
        .unwrap();
    common::call(app, req).await.0
}

async fn login(app: &Router) -> String {
    let (status, body) = post(app, "/login", None).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["token"].as_str().unwrap().to_owned()
}

/// Waits until `app` refuses `token`, failing after [`HOP`].
async fn refused_within_a_hop(app: &Router, token: &str) {
    let start = Instant::now();
    while profile(app, token).await == 200 {
        assert!(
            start.elapsed() < HOP,
            "another replica still accepts a revoked token after {HOP:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(profile(app, token).await, 403);
}

/// A shared denylist under `prefix`, loaded.
async fn shared(url: &str, prefix: &str, lifecycle: &Lifecycle) -> Arc<Denylist> {
    let list = Denylist::shared(1000, url, prefix, &lifecycle.stop, &lifecycle.tasks).unwrap();
    tokio::time::timeout(HOP, list.ready())
        .await
        .expect("the shared denylist loads");
    assert!(list.is_shared());
    list
}

/// A stateless replica signing with `keys`, its denylist shared.
async fn stateless_replica(
    url: &str,
    prefix: &str,
    lifecycle: &Lifecycle,
    keys: &Arc<TokenService>,
) -> Router {
    let config = stateless::Config {
        tokens: keys.clone(),
        denylist: Some(shared(url, prefix, lifecycle).await),
    };
    stateless::build(config, &common::base(), lifecycle)
}

/// What every design must show: logout on `a` is refused on `b`; a
/// replica made afterwards (by `late`) refuses it as soon as it is ready.
async fn logout_reaches_every_replica(a: &Router, b: &Router, late: impl AsyncFnOnce() -> Router) {
    let token = login(a).await;
    let kept = login(a).await;
    assert_eq!(profile(b, &token).await, 200);
    assert_eq!(post(a, "/logout", Some(&token)).await.0, 204);
    assert_eq!(
        profile(a, &token).await,
        403,
        "refused at once where it logged out"
    );
    refused_within_a_hop(b, &token).await;
    let c = late().await;
    assert_eq!(profile(&c, &token).await, 403, "a later replica loads it");
    for app in [a, b, &c] {
        assert_eq!(profile(app, &kept).await, 200, "other tokens still work");
    }
}

#[tokio::test]
async fn a_stateless_logout_is_refused_by_every_replica() {
    let Some(url) = common::redis_url("a_stateless_logout_is_refused_by_every_replica") else {
        return;
    };
    let prefix = common::unique_prefix();
    let lifecycle = Lifecycle::default();
    let keys = common::tokens();
    let replica = async || stateless_replica(&url, &prefix, &lifecycle, &keys).await;
    let (a, b) = (replica().await, replica().await);
    logout_reaches_every_replica(&a, &b, replica).await;
    lifecycle.stop.cancel();
    common::redis_cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn a_hybrid_logout_is_refused_by_every_replica() {
    let Some(url) = common::redis_url("a_hybrid_logout_is_refused_by_every_replica") else {
        return;
    };
    let prefix = common::unique_prefix();
    let lifecycle = Lifecycle::default();
    let keys = common::tokens();
    let replica = async || {
        let store = RedisStore::open(&url, &prefix, StoreConfig::default()).unwrap();
        let denylist = Some(shared(&url, &prefix, &lifecycle).await);
        common::hybrid_over(store, keys.clone(), denylist, &common::base())
    };
    let (a, b) = (replica().await, replica().await);
    logout_reaches_every_replica(&a, &b, replica).await;
    lifecycle.stop.cancel();
    common::redis_cleanup(&url, &prefix).await;
}

/// Garbage published on the channel is ignored: the replica keeps
/// serving, and still hears the revocations that follow.
#[tokio::test]
async fn malformed_messages_on_the_channel_change_nothing() {
    let Some(url) = common::redis_url("malformed_messages_on_the_channel_change_nothing") else {
        return;
    };
    let prefix = common::unique_prefix();
    let lifecycle = Lifecycle::default();
    let keys = common::tokens();
    let a = stateless_replica(&url, &prefix, &lifecycle, &keys).await;
    let b = stateless_replica(&url, &prefix, &lifecycle, &keys).await;
    let token = login(&a).await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    for junk in ["", "x", "12", "soon abc", "1 ", &"9".repeat(40)] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(format!("{prefix}:revoked"))
            .arg(junk)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    assert_eq!(profile(&b, &token).await, 200);
    assert_eq!(post(&a, "/logout", Some(&token)).await.0, 204);
    refused_within_a_hop(&b, &token).await;
    lifecycle.stop.cancel();
    common::redis_cleanup(&url, &prefix).await;
}

/// With Redis unreachable, a logout is still refused where it happened,
/// and answered 503 (not 204) because the others could not be told.
#[tokio::test]
async fn a_logout_that_cannot_be_shared_says_so() {
    let lifecycle = Lifecycle::default();
    // Nothing listens on port 1 of loopback.
    let list = Denylist::shared(
        1000,
        "redis://127.0.0.1:1",
        "sbtest",
        &lifecycle.stop,
        &lifecycle.tasks,
    )
    .unwrap();
    let config = stateless::Config {
        tokens: common::tokens(),
        denylist: Some(list),
    };
    let app = stateless::build(config, &common::base(), &lifecycle);
    let token = login(&app).await;
    let (status, body) = post(&app, "/logout", Some(&token)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not shared"), "{body}");
    assert_eq!(profile(&app, &token).await, 403);
    lifecycle.stop.cancel();
}

/// The comparison's probe across two replicas on sockets: the old
/// credential, tried on the replica that did not see the logout, is
/// refused within a hop (its token would live another minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revocation_probe_sees_the_hop_between_replicas() {
    let Some(url) = common::redis_url("the_revocation_probe_sees_the_hop_between_replicas") else {
        return;
    };
    let prefix = common::unique_prefix();
    let lifecycle = Lifecycle::default();
    let keys = common::tokens();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = RedisStore::open(&url, &prefix, StoreConfig::default()).unwrap();
        let denylist = Some(shared(&url, &prefix, &lifecycle).await);
        let app = common::hybrid_over(store, keys.clone(), denylist, &common::base());
        replicas.push(common::serve(app, Lifecycle::default()).await);
    }
    let (a, b) = (replicas[0].url(""), replicas[1].url(""));
    let (delay, refused) = statebench::compare::revocation::probe(&a, &b, 60)
        .await
        .unwrap();
    assert!(refused && delay < HOP, "{delay:?}");
    lifecycle.stop.cancel();
    for r in replicas {
        common::shutdown(r).await;
    }
    common::redis_cleanup(&url, &prefix).await;
}
