//! Optional token revocation for the stateless server: a denylist of token
//! ids (`jti`) kept until the token would have expired anyway.
//!
//! This is the usual patch for JWT's revocation weakness, and it makes the
//! "stateless" server stateful again: every verified request now also does a
//! map lookup. The benchmarks measure that cost. Entries expire with their
//! token and the map is capped, so a logout flood cannot grow memory without
//! bound (a full denylist answers 503 to logout, never drops a revocation).

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

/// Revoked token ids and the second each can be forgotten (its `exp`).
pub struct Denylist {
    map: DashMap<String, u64, foldhash::fast::RandomState>,
    count: AtomicUsize,
    cap: usize,
}

/// The denylist holds `cap` ids already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("revocation denylist is full")]
pub struct DenylistFull;

impl Denylist {
    pub fn new(cap: usize) -> Self {
        Self {
            map: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            count: AtomicUsize::new(0),
            cap,
        }
    }

    /// Records `jti` as revoked until `exp` (seconds since the epoch).
    pub fn revoke(&self, jti: &str, exp: u64) -> Result<(), DenylistFull> {
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
        d.revoke("a", 10).unwrap();
        d.revoke("a", 10).unwrap();
        d.revoke("b", 20).unwrap();
        assert_eq!(d.revoke("c", 30), Err(DenylistFull));
        assert!(d.is_revoked("a") && d.is_revoked("b") && !d.is_revoked("c"));
        assert_eq!(d.sweep(15), 1);
        assert!(!d.is_revoked("a"));
        d.revoke("c", 30).unwrap();
        assert_eq!(d.len(), 2);
    }
}
