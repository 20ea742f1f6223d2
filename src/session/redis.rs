//! The Redis [`SessionStore`]: sessions shared by every replica that points
//! at the same Redis server.
//!
//! Layout under a key prefix `P` (so tests and runs can share a server):
//! - `P:s:<id>`: the session as JSON, with a Redis TTL equal to the idle TTL
//!   (a safety net that frees memory even if no replica ever sweeps);
//! - `P:idx`: a sorted set of ids scored by last-seen time. Expiry is decided
//!   from this score and the caller's clock, so tests can model time and the
//!   semantics match [`super::MemoryStore`] exactly.
//!
//! Every operation is one round trip (a Lua script or a single command). The
//! connection is a `ConnectionManager`: when Redis goes away, calls fail fast
//! with [`StoreError::Unavailable`] (answered with 503) and it reconnects by
//! itself when Redis returns.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{Session, SessionId, SessionStore, StoreConfig, StoreError};
use crate::clock::Millis;

/// Creates a session unless the index holds `cap` ids already.
/// KEYS: session key, index. ARGV: value, now, ttl, cap, id.
const CREATE: &str = r"
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3]) then return -1 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
return 1
";

/// Reads a live session and marks it seen; removes it if expired.
/// KEYS: session key, index. ARGV: now, ttl, id, want value ('1' or '0').
const GET: &str = r"
local seen = redis.call('ZSCORE', KEYS[2], ARGV[3])
local v = redis.call('GET', KEYS[1])
if (not seen) or (not v) or (tonumber(ARGV[1]) - tonumber(seen) > tonumber(ARGV[2])) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[3])
  return false
end
redis.call('ZADD', KEYS[2], 'GT', ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[4] == '1' then return v end
return 1
";

/// Writes back an updated session if it still exists.
/// KEYS: session key, index. ARGV: value, ttl, id.
const PUT: &str = r"
if not redis.call('ZSCORE', KEYS[2], ARGV[3]) then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[2]) then return 0 end
return 1
";

/// Deletes a session. KEYS: session key, index. ARGV: id.
const REMOVE: &str = r"
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
";

/// Removes up to 1000 expired sessions. KEYS: index. ARGV: cutoff, key prefix.
const SWEEP: &str = r"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, 1000)
for _, id in ipairs(ids) do redis.call('DEL', ARGV[2] .. id) end
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
return #ids
";

/// Sessions in a Redis server.
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    index: String,
    config: StoreConfig,
    scripts: Scripts,
}

struct Scripts {
    create: Script,
    get: Script,
    put: Script,
    remove: Script,
    sweep: Script,
}

/// How long one Redis call may take before the request gets a 503.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

impl RedisStore {
    /// Connects lazily to `url` (`redis://host:port[/db]`): the server may be
    /// down at start-up; calls fail with `Unavailable` until it is reachable.
    pub fn open(url: &str, prefix: &str, config: StoreConfig) -> Result<Self, StoreError> {
        let conn = connect(url)?;
        Ok(Self {
            conn,
            prefix: format!("{prefix}:s:"),
            index: format!("{prefix}:idx"),
            config,
            scripts: Scripts {
                create: Script::new(CREATE),
                get: Script::new(GET),
                put: Script::new(PUT),
                remove: Script::new(REMOVE),
                sweep: Script::new(SWEEP),
            },
        })
    }

    fn key(&self, id: SessionId) -> String {
        format!("{}{id}", self.prefix)
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
    /// (`want_value`), or just whether it was live.
    async fn get_script<T: redis::FromRedisValue>(
        &self,
        id: SessionId,
        now: Millis,
        want_value: bool,
    ) -> Result<T, StoreError> {
        let mut c = self.conn.clone();
        self.scripts
            .get
            .key(self.key(id))
            .key(&self.index)
            .arg(now)
            .arg(self.config.idle_ttl_ms)
            .arg(id.to_string())
            .arg(if want_value { "1" } else { "0" })
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)
    }

    async fn read(&self, id: SessionId, now: Millis) -> Result<Option<Session>, StoreError> {
        let v: Option<Vec<u8>> = self.get_script(id, now, true).await?;
        v.map(|v| decode(&v)).transpose()
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

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string().lines().next().unwrap_or_default().to_owned())
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
        loop {
            let id = SessionId::random();
            let mut c = self.conn.clone();
            let created: i64 = self
                .scripts
                .create
                .key(self.key(id))
                .key(&self.index)
                .arg(&value)
                .arg(now)
                .arg(self.config.idle_ttl_ms)
                .arg(self.config.max_sessions)
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
        let mut c = self.conn.clone();
        let written: i64 = self
            .scripts
            .put
            .key(self.key(id))
            .key(&self.index)
            .arg(encode(&session))
            .arg(self.config.idle_ttl_ms)
            .arg(id.to_string())
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        // Removed between the read and the write (a concurrent logout).
        Ok((written == 1).then_some(r))
    }

    async fn touch(&self, id: SessionId, now: Millis) -> Result<bool, StoreError> {
        let live: Option<i64> = self.get_script(id, now, false).await?;
        Ok(live.is_some())
    }

    async fn remove(&self, id: SessionId) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let _: i64 = self
            .scripts
            .remove
            .key(self.key(id))
            .key(&self.index)
            .arg(id.to_string())
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn sweep(&self, now: Millis) -> Result<usize, StoreError> {
        let cutoff = now.saturating_sub(self.config.idle_ttl_ms);
        let mut total = 0;
        loop {
            let mut c = self.conn.clone();
            let n: usize = self
                .scripts
                .sweep
                .key(&self.index)
                .arg(cutoff)
                .arg(&self.prefix)
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)?;
            total += n;
            if n < 1000 {
                return Ok(total);
            }
        }
    }

    async fn len(&self) -> Result<usize, StoreError> {
        let mut c = self.conn.clone();
        c.zcard(&self.index).await.map_err(unavailable)
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}
