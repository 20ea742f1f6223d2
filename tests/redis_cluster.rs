//! The Redis Cluster store on a cluster that `compare` itself starts
//! (`RedisCluster`, 3 masters on loopback): sessions land on every master,
//! two replicas share them, and the cap holds across replicas. Skipped
//! when redis-server or redis-cli is not installed.

use statebench::host::services::RedisCluster;
use statebench::host::tools::installed;
use statebench::model::User;
use statebench::session::redis::conn::cluster_nodes;
use statebench::session::{RedisStore, Session, SessionStore, StoreConfig, StoreError};

const NOW: u64 = 1_700_000_000_000;

fn user() -> User {
    User {
        id: 1,
        name: "John Doe".into(),
    }
}

/// Keys each master holds.
async fn keys_per_node(url: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for node in cluster_nodes(url).unwrap().unwrap() {
        let client = redis::Client::open(node.as_str()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        out.push(redis::cmd("DBSIZE").query_async(&mut c).await.unwrap());
    }
    out
}

#[tokio::test]
async fn sessions_spread_over_the_masters_and_replicas_share_them() {
    if !installed("redis-server") || !installed("redis-cli") {
        eprintln!("skipped: redis-server or redis-cli is not installed");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let cluster = RedisCluster::start(work.path(), 3).await.unwrap();
    let config = StoreConfig {
        idle_ttl_ms: 60_000,
        max_sessions: 200,
    };
    let a = RedisStore::open(&cluster.url, "t", config).unwrap();
    let b = RedisStore::open(&cluster.url, "t", config).unwrap();
    assert!(a.is_cluster() && a.name() == "redis-cluster");

    let mut ids = Vec::new();
    for i in 0..100 {
        let store = if i % 2 == 0 { &a } else { &b };
        ids.push(store.create(Session::new(user(), NOW), NOW).await.unwrap());
    }
    // Every session is readable from the other replica.
    for (i, id) in ids.iter().enumerate() {
        let other = if i % 2 == 0 { &b } else { &a };
        let name = other.get(*id, NOW, |s| s.user.name.clone()).await.unwrap();
        assert_eq!(name.as_deref(), Some("John Doe"), "session {i}");
    }
    assert_eq!(a.len().await.unwrap(), 100);
    let per_node = keys_per_node(&cluster.url).await;
    assert!(
        per_node.iter().all(|&n| n >= 20),
        "sessions should land on every master: {per_node:?}"
    );

    // A logout on one replica is seen by the other at once.
    b.remove(ids[0]).await.unwrap();
    assert_eq!(a.get(ids[0], NOW, |_| ()).await.unwrap(), None);
    assert_eq!(a.len().await.unwrap(), 99);

    // The cap holds across replicas: 200 in all, whichever one creates.
    for i in 0..101 {
        let store = if i % 2 == 0 { &a } else { &b };
        store.create(Session::new(user(), NOW), NOW).await.unwrap();
    }
    assert_eq!(
        a.create(Session::new(user(), NOW), NOW).await,
        Err(StoreError::Full)
    );
    assert_eq!(
        b.create(Session::new(user(), NOW), NOW).await,
        Err(StoreError::Full)
    );
    assert_eq!(b.len().await.unwrap(), 200);

    // Expired sessions are swept from every bucket, and free their places.
    let later = NOW + 61_000;
    assert_eq!(a.sweep(later).await.unwrap(), 200);
    assert_eq!(b.len().await.unwrap(), 0);
    b.create(Session::new(user(), later), later).await.unwrap();
    assert_eq!(a.len().await.unwrap(), 1);
}
