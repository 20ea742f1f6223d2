//! Server-side sessions: the stateful design's state.
//!
//! [`SessionStore`] is the seam between the stateful server and where its
//! sessions live. Each implementation is one file in this folder:
//!
//! - [`memory`]: in-process, one generic store over one adapter per
//!   concurrent map (DashMap is the default);
//! - [`redis`]: a Redis server shared by several replicas.
//!
//! [`refresh`] keeps the hybrid server's refresh families in any store.
//!
//! Expiry is *idle* expiry: a session dies when it has not been seen for the
//! store's TTL, by the injected clock (`now` is passed in, never read here).
//! A read of an expired session removes it; [`SessionStore::sweep`] removes
//! the rest. `len` counts sessions not yet removed, and the capacity check in
//! [`SessionStore::create`] uses that same count, so memory stays bounded by
//! the cap however fast sessions are created.
//!
//! The trait uses `impl Future` returns (no boxing, no dynamic dispatch): the
//! in-memory futures are ready at once and cost nothing over a direct call.

pub mod memory;
pub mod redis;
pub mod refresh;

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::model::{Cart, User};

pub use memory::{MapStore, MemoryStore};
pub use redis::RedisStore;

/// A 128-bit session id drawn from a CSPRNG, shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u128);

impl SessionId {
    /// A fresh random id (`rand`'s thread RNG: ChaCha, seeded from the OS).
    pub fn random() -> Self {
        Self(rand::random())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// Returned for a string that is not 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("session id must be 32 lowercase hex digits")]
pub struct InvalidSessionId;

impl FromStr for SessionId {
    type Err = InvalidSessionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(InvalidSessionId);
        }
        u128::from_str_radix(s, 16)
            .map(Self)
            .map_err(|_| InvalidSessionId)
    }
}

/// What a session holds besides its last-seen time (which each store keeps
/// its own way, so that a read can refresh it cheaply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user: User,
    pub cart: Cart,
    /// Creation time, milliseconds since the epoch.
    pub created: Millis,
    /// The hybrid server's refresh family: the digest of the one refresh
    /// token that may be used next ([`crate::refresh`]). Absent on the
    /// stateful server's sessions (one pointer's width, and nothing in
    /// their stored encoding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<Box<refresh::Digest>>,
}

impl Session {
    pub fn new(user: User, now: Millis) -> Self {
        Self {
            user,
            cart: Cart::default(),
            created: now,
            refresh: None,
        }
    }
}

/// Limits every store enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// A session unseen for longer than this is expired.
    pub idle_ttl_ms: Millis,
    /// At most this many sessions exist; `create` answers [`StoreError::Full`].
    pub max_sessions: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            idle_ttl_ms: 30 * 60 * 1000,
            max_sessions: 1_000_000,
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The cap on live sessions is reached (answered with 503 and Retry-After).
    #[error("session store is full")]
    Full,
    /// The backing service cannot be reached (answered with 503).
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

/// Where sessions live. All methods take `now` from the caller's clock.
#[allow(clippy::len_without_is_empty)] // `len` is async and fallible; emptiness is never asked.
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session under a fresh random id, seen at `now`.
    fn create(
        &self,
        session: Session,
        now: Millis,
    ) -> impl Future<Output = Result<SessionId, StoreError>> + Send;

    /// Reads a live session through `f` and marks it seen at `now`.
    /// `Ok(None)` for an unknown or expired id (an expired one is removed).
    fn get<R, F>(
        &self,
        id: SessionId,
        now: Millis,
        f: F,
    ) -> impl Future<Output = Result<Option<R>, StoreError>> + Send
    where
        F: FnOnce(&Session) -> R + Send,
        R: Send;

    /// Changes a live session through `f` and marks it seen at `now`.
    /// Concurrent updates of one session: the last writer wins (as with
    /// express-session and most session middleware).
    fn update<R, F>(
        &self,
        id: SessionId,
        now: Millis,
        f: F,
    ) -> impl Future<Output = Result<Option<R>, StoreError>> + Send
    where
        F: FnOnce(&mut Session) -> R + Send,
        R: Send;

    /// Changes a live session through `f` atomically and marks it seen at
    /// `now`: when two calls race on one session, the second `f` sees the
    /// first one's change (compare-and-set, not last writer wins). A store
    /// that compares and retries may run `f` more than once, each time on
    /// the record as it then is; only the last run's change is kept and its
    /// result returned. `Ok(None)` for an unknown or expired id.
    fn update_atomic<R, F>(
        &self,
        id: SessionId,
        now: Millis,
        f: F,
    ) -> impl Future<Output = Result<Option<R>, StoreError>> + Send
    where
        F: FnMut(&mut Session) -> R + Send,
        R: Send;

    /// Marks a live session seen at `now`; `false` if unknown or expired.
    fn touch(
        &self,
        id: SessionId,
        now: Millis,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes a session at once (logout). Unknown ids are not an error.
    fn remove(&self, id: SessionId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes every session expired at `now`; returns how many.
    fn sweep(&self, now: Millis) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Sessions stored and not yet removed (expired ones count until swept).
    fn len(&self) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// A short name for reports and metrics.
    fn name(&self) -> &'static str;
}

/// Whether a session last seen at `seen` is expired at `now`.
pub fn is_expired(seen: Millis, now: Millis, ttl: Millis) -> bool {
    now.saturating_sub(seen) > ttl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_round_trip_and_reject_junk() {
        let id = SessionId::random();
        assert_eq!(id.to_string().parse::<SessionId>(), Ok(id));
        assert_eq!(SessionId(1).to_string(), "00000000000000000000000000000001");
        for bad in [
            "",
            "xyz",
            &"A".repeat(32),
            &"0".repeat(31),
            &"0".repeat(33),
            "+0000000000000000000000000000001",
        ] {
            assert_eq!(bad.parse::<SessionId>(), Err(InvalidSessionId), "{bad:?}");
        }
    }
}
