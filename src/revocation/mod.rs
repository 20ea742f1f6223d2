//! Optional token revocation for the stateless server: a denylist of token
//! ids (`jti`) kept until the token would have expired anyway.
//!
//! This is the usual patch for JWT's revocation weakness, and it makes the
//! "stateless" server stateful again: every verified request now also does a
//! map lookup. The benchmarks measure that cost. Entries expire with their
//! token and the map is capped, so a logout flood cannot grow memory without
//! bound (a full denylist answers 503 to logout, never drops a revocation).
//!
//! A denylist is per process unless it is [`shared`] through Redis: then a
//! logout on any replica is refused by every replica, and one that starts
//! later loads the revocations still in force. The lookup stays a local map
//! read either way; only a revocation touches Redis.

pub mod shared;

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

use crate::session::StoreError;

/// Revoked token ids and the second each can be forgotten (its `exp`).
pub struct Denylist {
    map: DashMap<String, u64, foldhash::fast::RandomState>,
    count: AtomicUsize,
    cap: usize,
    /// Where revocations are told to, and heard from, the other replicas.
    relay: Option<shared::Relay>,
}

/// The denylist holds `cap` ids already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("revocation denylist is full")]
pub struct DenylistFull;

/// Why a revocation was not recorded everywhere (answered 503: a logout
/// can be retried, and recording one twice is harmless).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevokeError {
    #[error(transparent)]
    Full(#[from] DenylistFull),
    /// Refused here, but the other replicas may not have heard it.
    #[error("revocation not shared with the other replicas: {0}")]
    Unshared(StoreError),
}

impl Denylist {
    /// A denylist of this process only.
    pub fn new(cap: usize) -> Self {
        Self {
            map: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            count: AtomicUsize::new(0),
            cap,
            relay: None,
        }
    }

    /// Records `jti` as revoked until `exp` (seconds since the epoch), here
    /// and, when the denylist is shared, on every replica.
    pub async fn revoke(&self, jti: &str, exp: u64) -> Result<(), RevokeError> {
        self.insert(jti, exp)?;
        if let Some(relay) = &self.relay {
            relay
                .publish(jti, exp)
                .await
                .map_err(RevokeError::Unshared)?;
        }
        Ok(())
    }

    /// Whether revocations reach other replicas.
    pub fn is_shared(&self) -> bool {
        self.relay.is_some()
    }

    /// Records `jti` as revoked until `exp` in this process.
    fn insert(&self, jti: &str, exp: u64) -> Result<(), DenylistFull> {
        if self.map.contains_key(jti) {
            return Ok(());
        }
        if self.count.fetch_add(1, Ordering::Relaxed) >= self.cap {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Err(DenylistFull);
        }
        if self.map.insert(jti.to_owned(), exp).is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    pub fn is_revoked(&self, jti: &str) -> bool {
        self.map.contains_key(jti)
    }

    /// Forgets ids whose tokens have expired by `now` (seconds).
    pub fn sweep(&self, now: u64) -> usize {
        let mut removed = 0;
        self.map.retain(|_, exp| {
            let keep = *exp >= now;
            removed += usize::from(!keep);
            keep
        });
        self.count.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_until_expiry_and_capped() {
        let d = Denylist::new(2);
        d.insert("a", 10).unwrap();
        d.insert("a", 10).unwrap();
        d.insert("b", 20).unwrap();
        assert_eq!(d.insert("c", 30), Err(DenylistFull));
        assert!(d.is_revoked("a") && d.is_revoked("b") && !d.is_revoked("c"));
        assert_eq!(d.sweep(15), 1);
        assert!(!d.is_revoked("a"));
        d.insert("c", 30).unwrap();
        assert_eq!(d.len(), 2);
    }
}
