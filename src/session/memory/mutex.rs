//! `std::sync::Mutex<HashMap>` with foldhash: the simplest correct map.
//! A std mutex (not tokio's) because no lock is held across an `.await`:
//! every operation is a short critical section.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::{Entry, MapAdapter, locked};
use crate::session::{SessionId, StoreConfig};

type Map = HashMap<SessionId, Box<Entry>, foldhash::fast::RandomState>;

pub struct MutexAdapter(Mutex<Map>);

impl MutexAdapter {
    fn lock(&self) -> MutexGuard<'_, Map> {
        // A panic while holding the lock leaves the map consistent (every
        // change is a single HashMap call), so poisoning is ignored.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl MapAdapter for MutexAdapter {
    const NAME: &'static str = "mutex-foldhash";
    const ABOUT: &'static str = "`Mutex<HashMap>`, foldhash";

    fn new(_: &StoreConfig) -> Self {
        Self(Mutex::new(HashMap::with_hasher(
            foldhash::fast::RandomState::default(),
        )))
    }

    #[inline]
    fn read<R>(&self, id: &SessionId, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        self.lock().get(id).map(|e| f(e))
    }

    #[inline]
    fn write<R>(&self, id: &SessionId, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        self.lock().get_mut(id).map(|e| f(e))
    }

    fn insert_new(&self, id: SessionId, entry: Entry) -> Result<(), Entry> {
        locked::insert_new(&mut self.lock(), id, entry)
    }

    fn remove(&self, id: &SessionId) -> bool {
        self.lock().remove(id).is_some()
    }

    fn remove_if(&self, id: &SessionId, pred: impl Fn(&Entry) -> bool) -> bool {
        locked::remove_if(&mut self.lock(), id, pred)
    }

    fn retain(&self, keep: impl Fn(&Entry) -> bool + Sync) -> usize {
        locked::retain(&mut self.lock(), keep)
    }
}
