//! One connection type for a single Redis server and for a Redis Cluster,
//! so that the store's scripts run unchanged on either.
//!
//! - `redis://host:port[/db]` (or `rediss://`): one server, through a
//!   `ConnectionManager` that reconnects by itself;
//! - `redis-cluster://host:port[,host:port…]`: a cluster, through the
//!   `redis` crate's cluster client, which learns the slot map from any
//!   node given and routes each script to the master of its keys' slot.
//!
//! Both connect lazily: the server may be down at start-up, and calls fail
//! fast with [`StoreError::Unavailable`] until it is reachable.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::super::StoreError;

/// The URL scheme of a Redis Cluster store.
pub const CLUSTER_SCHEME: &str = "redis-cluster://";

/// How long one Redis call may take before the request gets a 503.
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether `url` names a Redis store (one server or a cluster).
pub fn is_redis_url(url: &str) -> bool {
    ["redis://", "rediss://", CLUSTER_SCHEME]
        .iter()
        .any(|scheme| url.starts_with(scheme))
}

/// The nodes of a `redis-cluster://` URL as `redis://` URLs, or `None`
/// for any other URL.
pub fn cluster_nodes(url: &str) -> Option<Result<Vec<String>, StoreError>> {
    let rest = url.strip_prefix(CLUSTER_SCHEME)?;
    let nodes: Vec<String> = rest
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| format!("redis://{n}"))
        .collect();
    if nodes.is_empty() {
        return Some(Err(StoreError::Unavailable(format!(
            "invalid Redis Cluster URL {url:?}: expected {CLUSTER_SCHEME}host:port[,host:port...]"
        ))));
    }
    for n in &nodes {
        if let Err(e) = client(n) {
            return Some(Err(e));
        }
    }
    Some(Ok(nodes))
}

/// A connection to one server or to a cluster.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Connects lazily to `url` (a `redis://` or `redis-cluster://` URL).
    /// Must be called within a Tokio runtime.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        match cluster_nodes(url) {
            Some(nodes) => Ok(Conn::Cluster(connect_cluster(&nodes?)?)),
            None => Ok(Conn::Single(connect(url)?)),
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A lazily connecting, self-reconnecting connection with short timeouts.
pub(crate) fn connect(url: &str) -> Result<ConnectionManager, StoreError> {
    connect_client(client(url)?)
}

/// A client for `url` (parsing only; nothing is connected yet).
pub(crate) fn client(url: &str) -> Result<redis::Client, StoreError> {
    redis::Client::open(url)
        .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL {url:?}: {e}")))
}

/// [`connect`] for a client already made.
pub(crate) fn connect_client(client: redis::Client) -> Result<ConnectionManager, StoreError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)
}

/// A cluster connection that learns the slot map in the background.
fn connect_cluster(nodes: &[String]) -> Result<ClusterConnection, StoreError> {
    let client = ClusterClient::builder(nodes.iter().map(String::as_str))
        .retries(1)
        .build()
        .map_err(unavailable)?;
    let config = ClusterConfig::new()
        .set_connection_timeout(RESPONSE_TIMEOUT)
        .set_response_timeout(RESPONSE_TIMEOUT);
    Ok(client.get_pending_async_connection_with_config(config))
}

/// A Redis error as a store error, on one line.
pub(crate) fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string().lines().next().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_list_their_nodes() {
        let nodes = cluster_nodes("redis-cluster://127.0.0.1:7000, 127.0.0.1:7001")
            .unwrap()
            .unwrap();
        assert_eq!(nodes, ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]);
        assert!(cluster_nodes("redis://127.0.0.1:6379").is_none());
        assert!(cluster_nodes("redis-cluster://").unwrap().is_err());
        assert!(cluster_nodes("redis-cluster://,").unwrap().is_err());
    }

    #[test]
    fn store_urls_are_recognised() {
        for url in ["redis://h:1", "rediss://h:1", "redis-cluster://h:1,h:2"] {
            assert!(is_redis_url(url), "{url}");
        }
        for url in ["memory", "http://h:1", "redis:/h"] {
            assert!(!is_redis_url(url), "{url}");
        }
    }
}
