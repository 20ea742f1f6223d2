//! A denylist shared by replicas through one Redis server.
//!
//! A revocation is written twice in one transaction: a key
//! `P:revoked:<jti>` holding its `exp` and expiring with it, for replicas
//! that start later, and a message `<exp> <jti>` on the channel
//! `P:revoked`, for those running now. Each replica subscribes first and
//! then scans the keys, so nothing published in between is missed; it does
//! the same after it reconnects, which brings in what was revoked while it
//! was cut off. Requests never wait on Redis: they read the local map.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Denylist;
use crate::session::StoreError;
use crate::session::redis::conn::unavailable;
use crate::session::redis::pubsub::{self, Channels};
use crate::session::redis::{client, connect_client};
use crate::token::MAX_TOKEN_LEN;

/// How a shared denylist reaches Redis.
pub(super) struct Relay {
    conn: ConnectionManager,
    /// `P:revoked:`, before each revoked id.
    key_prefix: String,
    /// `P:revoked`.
    channel: String,
    ready: watch::Receiver<bool>,
}

impl Relay {
    /// Writes the key and publishes the message, in one transaction.
    pub(super) async fn publish(&self, jti: &str, exp: u64) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(format!("{}{jti}", self.key_prefix))
            .arg(exp)
            .arg("EXAT")
            .arg(exp + 1)
            .ignore()
            .cmd("PUBLISH")
            .arg(&self.channel)
            .arg(format!("{exp} {jti}"))
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }
}

impl Denylist {
    /// A denylist of at most `cap` ids, shared through the Redis server at
    /// `url` under the key prefix `prefix`. Its listener runs on `tasks`
    /// until `stop` is cancelled (a server's lifecycle);
    /// [`Denylist::ready`] resolves once it has loaded the revocations in
    /// force.
    pub fn shared(
        cap: usize,
        url: &str,
        prefix: &str,
        stop: &CancellationToken,
        tasks: &TaskTracker,
    ) -> Result<Arc<Self>, StoreError> {
        if crate::session::redis::conn::cluster_nodes(url).is_some() {
            return Err(StoreError::Unavailable(format!(
                "a shared denylist needs one Redis server (redis://), not a cluster: {url}"
            )));
        }
        let client = client(url)?;
        let conn = connect_client(client.clone())?;
        let (ready_tx, ready) = watch::channel(false);
        let channel = format!("{prefix}:revoked");
        let key_prefix = format!("{channel}:");
        let mut list = Self::new(cap);
        list.relay = Some(Relay {
            conn: conn.clone(),
            key_prefix: key_prefix.clone(),
            channel: channel.clone(),
            ready,
        });
        let list = Arc::new(list);

        let listener = list.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            let caught_up = || {
                let (mut conn, key_prefix, list) = (conn.clone(), key_prefix.clone(), listener.clone());
                async move { load(&mut conn, &key_prefix, &list).await }
            };
            let deliver = |_: &str, payload: &[u8]| {
                let parsed = std::str::from_utf8(payload).ok().and_then(parse);
                match parsed {
                    Some((exp, jti)) => listener.remember(jti, exp),
                    None => tracing::warn!("ignored a malformed revocation message"),
                }
            };
            let failed = |_: &redis::RedisError| {};
            tokio::select! {
                () = pubsub::listen(client, Channels::Exact(channel), ready_tx, caught_up, deliver, failed) => {}
                () = stop.cancelled() => {}
            }
        });
        Ok(list)
    }

    /// Resolves once the revocations in force are loaded (at once for a
    /// denylist of this process only). A replica should not serve before.
    pub async fn ready(&self) {
        if let Some(relay) = &self.relay {
            let mut ready = relay.ready.clone();
            let _ = ready.wait_for(|r| *r).await;
        }
    }

    /// Records a revocation heard from another replica.
    fn remember(&self, jti: &str, exp: u64) {
        if self.insert(jti, exp).is_err() {
            tracing::warn!("denylist full: a revocation from another replica was not recorded");
        }
    }
}

/// `<exp> <jti>`, as published.
fn parse(message: &str) -> Option<(u64, &str)> {
    let (exp, jti) = message.split_once(' ')?;
    let exp = exp.parse().ok()?;
    (!jti.is_empty() && jti.len() <= MAX_TOKEN_LEN).then_some((exp, jti))
}

/// Loads every revocation key under `key_prefix` into `list`.
async fn load(
    conn: &mut ConnectionManager,
    key_prefix: &str,
    list: &Denylist,
) -> redis::RedisResult<()> {
    let pattern = format!("{}*", glob_escape(key_prefix));
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            let exps: Vec<Option<u64>> = redis::cmd("MGET").arg(&keys).query_async(conn).await?;
            for (key, exp) in keys.iter().zip(exps) {
                // A key that expired between SCAN and MGET is gone: skip it.
                if let (Some(jti), Some(exp)) = (key.strip_prefix(key_prefix), exp) {
                    list.remember(jti, exp);
                }
            }
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// `s` with Redis glob metacharacters escaped, to match it literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_or_are_refused() {
        assert_eq!(parse("1700000000 abc"), Some((1_700_000_000, "abc")));
        assert_eq!(parse("1700000000 "), None);
        assert_eq!(parse("soon abc"), None);
        assert_eq!(parse("abc"), None);
        let long = format!("1 {}", "x".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(parse(&long), None);
    }

    #[test]
    fn globs_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(glob_escape("statebench:revoked:"), "statebench:revoked:");
    }
}
