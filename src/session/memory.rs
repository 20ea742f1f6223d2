//! The in-memory [`SessionStore`]: a DashMap (sharded `RwLock`s) with
//! foldhash.
//!
//! Each entry keeps its last-seen time in an `AtomicU64`, so a read refreshes
//! it under the shard's *read* lock: concurrent reads of different sessions in
//! one shard do not serialize. The live count is a separate atomic so the
//! capacity check is O(1) rather than a walk over every shard.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;

use super::{Session, SessionId, SessionStore, StoreConfig, StoreError, is_expired};
use crate::clock::Millis;

struct Entry {
    session: Session,
    last_seen: AtomicU64,
}

/// Sessions in this process's memory.
pub struct MemoryStore {
    map: DashMap<SessionId, Entry, foldhash::fast::RandomState>,
    /// Entries in `map`; incremented before an insert so the cap is never exceeded.
    count: AtomicUsize,
    config: StoreConfig,
}

impl MemoryStore {
    pub fn new(config: StoreConfig) -> Self {
        Self {
            map: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            count: AtomicUsize::new(0),
            config,
        }
    }

    fn remove_if_expired(&self, id: &SessionId, now: Millis) {
        let ttl = self.config.idle_ttl_ms;
        if self
            .map
            .remove_if(id, |_, e| {
                is_expired(e.last_seen.load(Ordering::Relaxed), now, ttl)
            })
            .is_some()
        {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl SessionStore for MemoryStore {
    async fn create(&self, session: Session, now: Millis) -> Result<SessionId, StoreError> {
        if self.count.fetch_add(1, Ordering::Relaxed) >= self.config.max_sessions {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Full);
        }
        let entry = Entry {
            session,
            last_seen: AtomicU64::new(now),
        };
        loop {
            let id = SessionId::random();
            if let MapEntry::Vacant(v) = self.map.entry(id) {
                v.insert(entry);
                return Ok(id);
            }
        }
    }

    async fn get<R, F>(&self, id: SessionId, now: Millis, f: F) -> Result<Option<R>, StoreError>
    where
        F: FnOnce(&Session) -> R + Send,
        R: Send,
    {
        {
            let Some(e) = self.map.get(&id) else {
                return Ok(None);
            };
            if !is_expired(
                e.last_seen.load(Ordering::Relaxed),
                now,
                self.config.idle_ttl_ms,
            ) {
                e.last_seen.fetch_max(now, Ordering::Relaxed);
                return Ok(Some(f(&e.session)));
            }
        }
        self.remove_if_expired(&id, now);
        Ok(None)
    }

    async fn update<R, F>(&self, id: SessionId, now: Millis, f: F) -> Result<Option<R>, StoreError>
    where
        F: FnOnce(&mut Session) -> R + Send,
        R: Send,
    {
        {
            let Some(mut e) = self.map.get_mut(&id) else {
                return Ok(None);
            };
            if !is_expired(
                e.last_seen.load(Ordering::Relaxed),
                now,
                self.config.idle_ttl_ms,
            ) {
                e.last_seen.fetch_max(now, Ordering::Relaxed);
                return Ok(Some(f(&mut e.session)));
            }
        }
        self.remove_if_expired(&id, now);
        Ok(None)
    }

    async fn touch(&self, id: SessionId, now: Millis) -> Result<bool, StoreError> {
        Ok(self.get(id, now, |_| ()).await?.is_some())
    }

    async fn remove(&self, id: SessionId) -> Result<(), StoreError> {
        if self.map.remove(&id).is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn sweep(&self, now: Millis) -> Result<usize, StoreError> {
        let ttl = self.config.idle_ttl_ms;
        let mut removed = 0;
        self.map.retain(|_, e| {
            let keep = !is_expired(e.last_seen.load(Ordering::Relaxed), now, ttl);
            removed += usize::from(!keep);
            keep
        });
        self.count.fetch_sub(removed, Ordering::Relaxed);
        Ok(removed)
    }

    async fn len(&self) -> Result<usize, StoreError> {
        Ok(self.count.load(Ordering::Relaxed))
    }

    fn name(&self) -> &'static str {
        "dashmap"
    }
}
