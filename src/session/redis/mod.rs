//! The Redis [`SessionStore`]: sessions shared by every replica that points
//! at the same Redis server, or at the same Redis Cluster.
//!
//! Layout under a key prefix `P` (so tests and runs can share a server):
//! - `P:s:<id>`: the session as JSON, with a Redis TTL equal to the idle TTL
//!   (a safety net that frees memory even if no replica ever sweeps);
//! - `P:idx`: a sorted set of ids scored by last-seen time. Expiry is decided
//!   from this score and the caller's clock, so tests can model time and the
//!   semantics match [`super::MemoryStore`] exactly.
//!
//! In a cluster ([`conn`]), a script may only touch keys of one hash slot,
//! and one index would put every session on one master. So sessions are
//! spread over [`BUCKETS`] buckets by id, each with its own index, and a
//! session's key and its bucket's index share a hash tag:
//! `P:{b}:s:<id>` and `P:{b}:idx`. The cap on live sessions is then kept
//! by a counter, `P:count`, raised before a create and lowered by every
//! removal (one more round trip on login, logout and sweeps; none on reads).
//!
//! Every read is one round trip (a Lua script). The connection reconnects
//! by itself: while Redis is away, calls fail fast with
//! [`StoreError::Unavailable`] (answered with 503).

pub mod conn;
pub(crate) mod pubsub;
mod scripts;

use futures_util::future::try_join_all;
use redis::{AsyncCommands, Value};

use self::conn::{Conn, unavailable};
use self::scripts::Scripts;
use super::{Session, SessionId, SessionStore, StoreConfig, StoreError};
use crate::clock::Millis;

pub(crate) use self::conn::{client, connect_client};

/// Buckets of sessions in a cluster: enough that their hash tags spread
/// evenly over the masters' slots.
pub const BUCKETS: u32 = 128;

/// Compare-and-set rounds [`SessionStore::update_atomic`] tries before it
/// gives up on a session that other writers keep changing. Every lost
/// round is another writer's won one, so this bounds only starvation: with
/// four writers on one key, 32 rounds were lost in a row about once in
/// 8,000 updates.
const MAX_SWAP_ROUNDS: usize = 1_000;

/// Sessions in a Redis server or a Redis Cluster.
pub struct RedisStore {
    conn: Conn,
    /// Every index with its sessions' key prefix, named once at open: one,
    /// or one per bucket in a cluster (a request formats only its key).
    shards: Vec<Shard>,
    /// The cluster's count of live sessions (the cap's counter).
    counter: String,
    config: StoreConfig,
    scripts: Scripts,
}

/// Where one session lives: its key and its index.
struct Keys<'a> {
    session: String,
    index: &'a str,
}

/// One index and the key prefix of its sessions (the sweep's unit).
struct Shard {
    sessions: String,
    index: String,
}

impl RedisStore {
    /// Connects lazily to `url`: `redis://host:port[/db]` for one server,
    /// `redis-cluster://host:port[,host:port...]` for a cluster. The store
    /// may be down at start-up; calls fail with `Unavailable` until it is
    /// reachable. Must be called within a Tokio runtime.
    pub fn open(url: &str, prefix: &str, config: StoreConfig) -> Result<Self, StoreError> {
        let conn = Conn::open(url)?;
        let shards = if conn.is_cluster() {
            (0..BUCKETS)
                .map(|b| Shard {
                    sessions: format!("{prefix}:{{{b}}}:s:"),
                    index: format!("{prefix}:{{{b}}}:idx"),
                })
                .collect()
        } else {
            vec![Shard {
                sessions: format!("{prefix}:s:"),
                index: format!("{prefix}:idx"),
            }]
        };
        Ok(Self {
            conn,
            shards,
            counter: format!("{prefix}:count"),
            config,
            scripts: Scripts::new(),
        })
    }

    /// Whether the sessions are spread over a cluster.
    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    fn keys(&self, id: SessionId) -> Keys<'_> {
        let shard = &self.shards[(id.0 % self.shards.len() as u128) as usize];
        Keys {
            session: format!("{}{id}", shard.sessions),
            index: &shard.index,
        }
    }

    /// Lowers the cluster's session count by `n` removed sessions.
    async fn removed(&self, n: i64) -> Result<(), StoreError> {
        if n > 0 && self.is_cluster() {
            let mut c = self.conn.clone();
            let _: i64 = c.decr(&self.counter, n).await.map_err(unavailable)?;
        }
        Ok(())
    }

    /// The bytes Redis's allocator holds (`INFO memory`, `used_memory`),
    /// for measuring what sessions cost it. A single Redis only: on a
    /// cluster one node would answer for all.
    pub async fn used_memory(&self) -> Result<u64, StoreError> {
        if self.is_cluster() {
            return Err(StoreError::Unavailable(
                "used_memory is measured on a single Redis, not a cluster".into(),
            ));
        }
        let mut c = self.conn.clone();
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| StoreError::Unavailable("INFO memory has no used_memory".into()))
    }

    /// Round-trips a PING: for start-up checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    /// Runs the GET script: marks a live session seen and returns its record
    /// (`want_value`), `Some(None)` if live and no value was asked, or
    /// `None` if unknown or expired.
    async fn get_script(
        &self,
        id: SessionId,
        now: Millis,
        want_value: bool,
    ) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        let keys = self.keys(id);
        let mut c = self.conn.clone();
        let v: Value = self
            .scripts
            .get
            .key(keys.session)
            .key(keys.index)
            .arg(now)
            .arg(self.config.idle_ttl_ms)
            .arg(id.to_string())
            .arg(if want_value { "1" } else { "0" })
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        match v {
            Value::BulkString(v) => Ok(Some(Some(v))),
            Value::Int(1) => Ok(Some(None)),
            Value::Int(-1) => {
                self.removed(1).await?;
                Ok(None)
            }
            Value::Int(0) | Value::Nil => Ok(None),
            other => Err(StoreError::Unavailable(format!(
                "unexpected reply from the session script: {other:?}"
            ))),
        }
    }

    async fn read(&self, id: SessionId, now: Millis) -> Result<Option<Session>, StoreError> {
        match self.get_script(id, now, true).await? {
            Some(Some(v)) => decode(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// Writes `session` back under `id` through `script`: PUT (if it still
    /// exists), or SWAP (if it is still exactly `read`). The script's answer.
    async fn write_back(
        &self,
        script: &redis::Script,
        id: SessionId,
        read: Option<Vec<u8>>,
        session: &Session,
    ) -> Result<i64, StoreError> {
        let keys = self.keys(id);
        let mut invocation = script.key(keys.session);
        invocation.key(keys.index);
        if let Some(read) = read {
            invocation.arg(read);
        }
        invocation
            .arg(encode(session))
            .arg(self.config.idle_ttl_ms)
            .arg(id.to_string());
        let mut c = self.conn.clone();
        invocation.invoke_async(&mut c).await.map_err(unavailable)
    }

    /// Reserves a place under the cap in a cluster's counter.
    async fn reserve(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let n: i64 = c.incr(&self.counter, 1).await.map_err(unavailable)?;
        if n > self.config.max_sessions as i64 {
            self.removed(1).await?;
            return Err(StoreError::Full);
        }
        Ok(())
    }

    async fn insert(&self, value: &[u8], now: Millis) -> Result<SessionId, StoreError> {
        // In a cluster the counter holds the cap: the script does not.
        let cap = if self.is_cluster() {
            -1
        } else {
            self.config.max_sessions as i64
        };
        loop {
            let id = SessionId::random();
            let keys = self.keys(id);
            let mut c = self.conn.clone();
            let created: i64 = self
                .scripts
                .create
                .key(keys.session)
                .key(keys.index)
                .arg(value)
                .arg(now)
                .arg(self.config.idle_ttl_ms)
                .arg(cap)
                .arg(id.to_string())
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)?;
            match created {
                1 => return Ok(id),
                0 => return Err(StoreError::Full),
                _ => continue, // id collision: draw another
            }
        }
    }
}

fn decode(v: &[u8]) -> Result<Session, StoreError> {
    serde_json::from_slice(v)
        .map_err(|e| StoreError::Unavailable(format!("corrupt session record: {e}")))
}

fn encode(s: &Session) -> Vec<u8> {
    serde_json::to_vec(s).expect("a Session always serializes")
}

impl SessionStore for RedisStore {
    async fn create(&self, session: Session, now: Millis) -> Result<SessionId, StoreError> {
        let value = encode(&session);
        if !self.is_cluster() {
            return self.insert(&value, now).await;
        }
        self.reserve().await?;
        let created = self.insert(&value, now).await;
        if created.is_err() {
            // Give the place back; if Redis is away, this fails too, and the
            // count stays one high until the cluster is cleared.
            let _ = self.removed(1).await;
        }
        created
    }

    async fn get<R, F>(&self, id: SessionId, now: Millis, f: F) -> Result<Option<R>, StoreError>
    where
        F: FnOnce(&Session) -> R + Send,
        R: Send,
    {
        Ok(self.read(id, now).await?.map(|s| f(&s)))
    }

    async fn update<R, F>(&self, id: SessionId, now: Millis, f: F) -> Result<Option<R>, StoreError>
    where
        F: FnOnce(&mut Session) -> R + Send,
        R: Send,
    {
        let Some(mut session) = self.read(id, now).await? else {
            return Ok(None);
        };
        let r = f(&mut session);
        let written = self
            .write_back(&self.scripts.put, id, None, &session)
            .await?;
        // Removed between the read and the write (a concurrent logout).
        Ok((written == 1).then_some(r))
    }

    async fn update_atomic<R, F>(
        &self,
        id: SessionId,
        now: Millis,
        mut f: F,
    ) -> Result<Option<R>, StoreError>
    where
        F: FnMut(&mut Session) -> R + Send,
        R: Send,
    {
        // Each lost round means another write to this session landed, so
        // the loop ends unless writers keep winning this many times over.
        for _ in 0..MAX_SWAP_ROUNDS {
            let Some(Some(read)) = self.get_script(id, now, true).await? else {
                return Ok(None);
            };
            let mut session = decode(&read)?;
            let r = f(&mut session);
            let swapped = self
                .write_back(&self.scripts.swap, id, Some(read), &session)
                .await?;
            match swapped {
                1 => return Ok(Some(r)),
                0 => return Ok(None),
                // Lost to another writer: let the others run before trying
                // again, so that writers in lockstep do not keep colliding.
                _ => tokio::task::yield_now().await,
            }
        }
        Err(StoreError::Unavailable(format!(
            "session changed by other writers {MAX_SWAP_ROUNDS} times in a row"
        )))
    }

    async fn touch(&self, id: SessionId, now: Millis) -> Result<bool, StoreError> {
        Ok(self.get_script(id, now, false).await?.is_some())
    }

    async fn remove(&self, id: SessionId) -> Result<(), StoreError> {
        let keys = self.keys(id);
        let mut c = self.conn.clone();
        let removed: i64 = self
            .scripts
            .remove
            .key(keys.session)
            .key(keys.index)
            .arg(id.to_string())
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        self.removed(removed).await
    }

    async fn sweep(&self, now: Millis) -> Result<usize, StoreError> {
        let cutoff = now.saturating_sub(self.config.idle_ttl_ms);
        let mut total = 0;
        for shard in &self.shards {
            loop {
                let mut c = self.conn.clone();
                let n: usize = self
                    .scripts
                    .sweep
                    .key(&shard.index)
                    .arg(cutoff)
                    .arg(&shard.sessions)
                    .invoke_async(&mut c)
                    .await
                    .map_err(unavailable)?;
                self.removed(n as i64).await?;
                total += n;
                if n < scripts::SWEEP_BATCH {
                    break;
                }
            }
        }
        Ok(total)
    }

    async fn len(&self) -> Result<usize, StoreError> {
        let counts = try_join_all(self.shards.iter().map(|shard| {
            let mut c = self.conn.clone();
            async move { c.zcard::<_, usize>(&shard.index).await }
        }))
        .await
        .map_err(unavailable)?;
        Ok(counts.into_iter().sum())
    }

    fn name(&self) -> &'static str {
        if self.is_cluster() {
            "redis-cluster"
        } else {
            "redis"
        }
    }
}
