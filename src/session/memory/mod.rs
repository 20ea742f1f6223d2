//! In-memory [`SessionStore`]s: one generic store, [`MapStore`], over one
//! adapter per concurrent map. The expiry, capacity and counting logic is
//! written once, below, so every adapter has exactly the same semantics.
//!
//! [`for_each_store`] is the registry: the one list of adapters that the
//! benchmarks, the model-based test, the micro-benchmark report and the
//! docs all derive from. Adding a contender is one file here implementing
//! [`MapAdapter`] (its `NAME` and `ABOUT` included) and one line in
//! [`for_each_store`]; it is then benchmarked, tested against the model and
//! reported like the others.
//!
//! Each entry keeps its last-seen time in an `AtomicU64`, so a read refreshes
//! it without a write lock. The live count is a separate atomic, incremented
//! *before* an insert, so the capacity check is O(1) and never overshoots.

pub mod dashmap;
pub mod hashindex;
pub mod moka;
pub mod mutex;
pub mod papaya;
pub mod rwlock;
pub mod scc;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::{Session, SessionId, SessionStore, StoreConfig, StoreError, is_expired};
use crate::clock::Millis;

/// What a map holds per session.
#[derive(Debug)]
pub struct Entry {
    pub last_seen: AtomicU64,
    pub session: Session,
}

impl Entry {
    pub fn new(session: Session, now: Millis) -> Self {
        Self {
            last_seen: AtomicU64::new(now),
            session,
        }
    }

    fn seen(&self) -> Millis {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// Marks the entry seen at `now`. A load and a plain store rather than
    /// `fetch_max`: a locked read-modify-write is a full barrier on x86 and
    /// would keep the CPU from overlapping independent lookups' cache
    /// misses. Two racing refreshes may leave the older `now` (they differ
    /// by the race's duration, far below any TTL).
    fn refresh(&self, now: Millis) {
        if now > self.seen() {
            self.last_seen.store(now, Ordering::Relaxed);
        }
    }
}

impl Clone for Entry {
    fn clone(&self) -> Self {
        Self::new(self.session.clone(), self.seen())
    }
}

/// `HashMap` operations shared by the adapters that wrap one behind a lock
/// ([`mutex`], [`rwlock`]); the caller holds the (write) lock.
pub(crate) mod locked {
    use std::collections::HashMap;
    use std::collections::hash_map::Entry as MapEntry;
    use std::hash::BuildHasher;

    use super::Entry;
    use crate::session::SessionId;

    pub type Map<S> = HashMap<SessionId, Box<Entry>, S>;

    pub fn insert_new<S: BuildHasher>(
        map: &mut Map<S>,
        id: SessionId,
        entry: Entry,
    ) -> Result<(), Entry> {
        match map.entry(id) {
            MapEntry::Vacant(v) => {
                v.insert(Box::new(entry));
                Ok(())
            }
            MapEntry::Occupied(_) => Err(entry),
        }
    }

    pub fn remove_if<S: BuildHasher>(
        map: &mut Map<S>,
        id: &SessionId,
        pred: impl Fn(&Entry) -> bool,
    ) -> bool {
        if map.get(id).is_some_and(|e| pred(e)) {
            map.remove(id);
            true
        } else {
            false
        }
    }

    pub fn retain<S: BuildHasher>(map: &mut Map<S>, keep: impl Fn(&Entry) -> bool) -> usize {
        let before = map.len();
        map.retain(|_, e| keep(e));
        before - map.len()
    }
}

/// Something to do once per registered store type (see [`for_each_store`]).
pub trait StoreVisitor {
    fn visit<A: MapAdapter>(&mut self);
}

/// The registry of in-memory stores, in report order.
pub fn for_each_store(v: &mut impl StoreVisitor) {
    v.visit::<dashmap::DashMapAdapter>();
    v.visit::<mutex::MutexAdapter>();
    v.visit::<rwlock::RwLockFoldhash>();
    v.visit::<rwlock::RwLockSiphash>();
    v.visit::<scc::SccAdapter>();
    v.visit::<hashindex::HashIndexAdapter>();
    v.visit::<papaya::PapayaAdapter>();
    v.visit::<moka::MokaAdapter>();
}

/// Every registered store as `(NAME, ABOUT)`, in registry order.
pub fn stores() -> Vec<(&'static str, &'static str)> {
    struct Names(Vec<(&'static str, &'static str)>);
    impl StoreVisitor for Names {
        fn visit<A: MapAdapter>(&mut self) {
            self.0.push((A::NAME, A::ABOUT));
        }
    }
    let mut names = Names(Vec::new());
    for_each_store(&mut names);
    names.0
}

/// The report names of every registered store, in registry order.
pub fn store_names() -> Vec<&'static str> {
    stores().into_iter().map(|(name, _)| name).collect()
}

/// The operations [`MapStore`] needs from a concurrent map.
pub trait MapAdapter: Send + Sync + 'static {
    /// A stable short name for reports (`dashmap`, `rwlock-siphash`, …).
    const NAME: &'static str;
    /// The map behind it, in a few words (`DashMap 6 (sharded RwLocks), foldhash`).
    const ABOUT: &'static str;

    fn new(config: &StoreConfig) -> Self;
    /// Reads an entry; `None` if absent.
    fn read<R>(&self, id: &SessionId, f: impl FnOnce(&Entry) -> R) -> Option<R>;
    /// Changes an entry; `None` if absent. Maps without in-place mutation
    /// clone, change and replace (last writer wins).
    fn write<R>(&self, id: &SessionId, f: impl FnOnce(&mut Entry) -> R) -> Option<R>;
    /// Changes an entry atomically: a concurrent write to it is either
    /// seen by `f` or sees `f`'s change. The default is [`Self::write`],
    /// right for every map that holds the entry's lock while `f` runs; a
    /// map that clones and swaps overrides it with a compare-and-swap that
    /// runs `f` again when it loses.
    fn write_atomic<R>(&self, id: &SessionId, f: impl FnMut(&mut Entry) -> R) -> Option<R> {
        self.write(id, f)
    }
    /// Inserts under a new id; gives the entry back if the id exists.
    fn insert_new(&self, id: SessionId, entry: Entry) -> Result<(), Entry>;
    /// Removes an entry; whether it existed.
    fn remove(&self, id: &SessionId) -> bool;
    /// Removes an entry if `pred` holds for it; whether it was removed.
    fn remove_if(&self, id: &SessionId, pred: impl Fn(&Entry) -> bool) -> bool;
    /// Keeps the entries `keep` holds for; returns how many were removed.
    fn retain(&self, keep: impl Fn(&Entry) -> bool + Sync) -> usize;
    /// Entries the map evicted on its own since the last call (caches only).
    fn take_evicted(&self) -> usize {
        0
    }
}

/// A [`SessionStore`] over any [`MapAdapter`].
pub struct MapStore<M> {
    map: M,
    /// Entries in `map`; incremented before an insert so the cap holds.
    count: AtomicUsize,
    config: StoreConfig,
}

/// The default in-memory store.
pub type MemoryStore = MapStore<dashmap::DashMapAdapter>;

impl<M: MapAdapter> MapStore<M> {
    pub fn new(config: StoreConfig) -> Self {
        Self {
            map: M::new(&config),
            count: AtomicUsize::new(0),
            config,
        }
    }

    fn expired(&self, e: &Entry, now: Millis) -> bool {
        is_expired(e.seen(), now, self.config.idle_ttl_ms)
    }

    fn drop_if_expired(&self, id: &SessionId, now: Millis) {
        if self.map.remove_if(id, |e| self.expired(e, now)) {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Synchronous core of [`SessionStore::get`] (for benchmarks and callers
    /// that know the store is in memory).
    pub fn get_now<R>(
        &self,
        id: SessionId,
        now: Millis,
        f: impl FnOnce(&Session) -> R,
    ) -> Option<R> {
        let hit = self.map.read(&id, |e| {
            (!self.expired(e, now)).then(|| {
                e.refresh(now);
                f(&e.session)
            })
        });
        self.live_or_drop(hit, &id, now)
    }

    /// Synchronous core of [`SessionStore::update`].
    pub fn update_now<R>(
        &self,
        id: SessionId,
        now: Millis,
        f: impl FnOnce(&mut Session) -> R,
    ) -> Option<R> {
        let hit = self.map.write(&id, |e| {
            (!self.expired(e, now)).then(|| {
                e.refresh(now);
                f(&mut e.session)
            })
        });
        self.live_or_drop(hit, &id, now)
    }

    /// Synchronous core of [`SessionStore::update_atomic`].
    pub fn update_atomic_now<R>(
        &self,
        id: SessionId,
        now: Millis,
        mut f: impl FnMut(&mut Session) -> R,
    ) -> Option<R> {
        let hit = self.map.write_atomic(&id, |e| {
            (!self.expired(e, now)).then(|| {
                e.refresh(now);
                f(&mut e.session)
            })
        });
        self.live_or_drop(hit, &id, now)
    }

    /// A read or write's outcome: present and live gives the result;
    /// present but expired removes the entry.
    fn live_or_drop<R>(&self, hit: Option<Option<R>>, id: &SessionId, now: Millis) -> Option<R> {
        if matches!(hit, Some(None)) {
            self.drop_if_expired(id, now);
        }
        hit.flatten()
    }

    /// Synchronous core of [`SessionStore::create`].
    pub fn create_now(&self, session: Session, now: Millis) -> Result<SessionId, StoreError> {
        self.settle_evictions();
        if self.count.fetch_add(1, Ordering::Relaxed) >= self.config.max_sessions {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Full);
        }
        let mut entry = Entry::new(session, now);
        loop {
            let id = SessionId::random();
            match self.map.insert_new(id, entry) {
                Ok(()) => return Ok(id),
                Err(back) => entry = back, // a 2^-128 collision: draw again
            }
        }
    }

    /// Synchronous core of [`SessionStore::remove`].
    pub fn remove_now(&self, id: SessionId) {
        if self.map.remove(&id) {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Synchronous core of [`SessionStore::sweep`].
    pub fn sweep_now(&self, now: Millis) -> usize {
        let removed = self.map.retain(|e| !self.expired(e, now));
        self.count.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    pub fn len_now(&self) -> usize {
        self.settle_evictions();
        self.count.load(Ordering::Relaxed)
    }

    fn settle_evictions(&self) {
        let evicted = self.map.take_evicted();
        if evicted > 0 {
            self.count.fetch_sub(evicted, Ordering::Relaxed);
        }
    }

    /// Inserts a session under a chosen id (for benchmarks that prefill).
    pub fn insert_with_id(&self, id: SessionId, session: Session, now: Millis) -> bool {
        if self.map.insert_new(id, Entry::new(session, now)).is_ok() {
            self.count.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

impl<M: MapAdapter> SessionStore for MapStore<M> {
    async fn create(&self, session: Session, now: Millis) -> Result<SessionId, StoreError> {
        self.create_now(session, now)
    }

    async fn get<R, F>(&self, id: SessionId, now: Millis, f: F) -> Result<Option<R>, StoreError>
    where
        F: FnOnce(&Session) -> R + Send,
        R: Send,
    {
        Ok(self.get_now(id, now, f))
    }

    async fn update<R, F>(&self, id: SessionId, now: Millis, f: F) -> Result<Option<R>, StoreError>
    where
        F: FnOnce(&mut Session) -> R + Send,
        R: Send,
    {
        Ok(self.update_now(id, now, f))
    }

    async fn update_atomic<R, F>(
        &self,
        id: SessionId,
        now: Millis,
        f: F,
    ) -> Result<Option<R>, StoreError>
    where
        F: FnMut(&mut Session) -> R + Send,
        R: Send,
    {
        Ok(self.update_atomic_now(id, now, f))
    }

    async fn touch(&self, id: SessionId, now: Millis) -> Result<bool, StoreError> {
        Ok(self.get_now(id, now, |_| ()).is_some())
    }

    async fn remove(&self, id: SessionId) -> Result<(), StoreError> {
        self.remove_now(id);
        Ok(())
    }

    async fn sweep(&self, now: Millis) -> Result<usize, StoreError> {
        Ok(self.sweep_now(now))
    }

    async fn len(&self) -> Result<usize, StoreError> {
        Ok(self.len_now())
    }

    fn name(&self) -> &'static str {
        M::NAME
    }
}
