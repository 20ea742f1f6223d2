//! `std::sync::RwLock<HashMap>`, generic over the hasher: foldhash, or the
//! standard library's SipHash-1-3 (to show what DoS-resistant hashing costs).
//! Reads share the lock; the last-seen refresh is an atomic, so reads never
//! need the write lock. std's lock (not tokio's): never held across `.await`.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{Entry, MapAdapter, locked};
use crate::session::{SessionId, StoreConfig};

/// Names a hasher in reports.
pub trait HasherName: BuildHasher + Default + Send + Sync + 'static {
    const STORE_NAME: &'static str;
    const STORE_ABOUT: &'static str;
}

impl HasherName for foldhash::fast::RandomState {
    const STORE_NAME: &'static str = "rwlock-foldhash";
    const STORE_ABOUT: &'static str = "`RwLock<HashMap>`, foldhash";
}

impl HasherName for std::hash::RandomState {
    const STORE_NAME: &'static str = "rwlock-siphash";
    const STORE_ABOUT: &'static str = "`RwLock<HashMap>`, SipHash-1-3";
}

pub struct RwLockAdapter<S>(RwLock<HashMap<SessionId, Box<Entry>, S>>);

/// `RwLock<HashMap>` with foldhash.
pub type RwLockFoldhash = RwLockAdapter<foldhash::fast::RandomState>;
/// `RwLock<HashMap>` with SipHash-1-3.
pub type RwLockSiphash = RwLockAdapter<std::hash::RandomState>;

impl<S: HasherName> RwLockAdapter<S> {
    // Poisoning is ignored: every change is a single HashMap call.
    fn read_lock(&self) -> RwLockReadGuard<'_, HashMap<SessionId, Box<Entry>, S>> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, HashMap<SessionId, Box<Entry>, S>> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl<S: HasherName> MapAdapter for RwLockAdapter<S> {
    const NAME: &'static str = S::STORE_NAME;
    const ABOUT: &'static str = S::STORE_ABOUT;

    fn new(_: &StoreConfig) -> Self {
        Self(RwLock::new(HashMap::with_hasher(S::default())))
    }

    #[inline]
    fn read<R>(&self, id: &SessionId, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        self.read_lock().get(id).map(|e| f(e))
    }

    #[inline]
    fn write<R>(&self, id: &SessionId, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        self.write_lock().get_mut(id).map(|e| f(e))
    }

    fn insert_new(&self, id: SessionId, entry: Entry) -> Result<(), Entry> {
        locked::insert_new(&mut self.write_lock(), id, entry)
    }

    fn remove(&self, id: &SessionId) -> bool {
        self.write_lock().remove(id).is_some()
    }

    fn remove_if(&self, id: &SessionId, pred: impl Fn(&Entry) -> bool) -> bool {
        locked::remove_if(&mut self.write_lock(), id, pred)
    }

    fn retain(&self, keep: impl Fn(&Entry) -> bool + Sync) -> usize {
        locked::retain(&mut self.write_lock(), keep)
    }
}
