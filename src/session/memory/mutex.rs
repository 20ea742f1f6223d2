//! `std::sync::Mutex<HashMap>` with foldhash: the simplest correct map.
//! A std mutex (not tokio's) because no lock is held across an `.await`:
//! every operation is a short critical section.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::sync::{Mutex, MutexGuard};

use super::{Entry, MapAdapter};
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

    fn new(_: &StoreConfig) -> Self {
        Self(Mutex::new(HashMap::with_hasher(
            foldhash::fast::RandomState::default(),
        )))
    }

    fn read<R>(&self, id: &SessionId, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        self.lock().get(id).map(|e| f(e))
    }

    fn write<R>(&self, id: &SessionId, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        self.lock().get_mut(id).map(|e| f(e))
    }

    fn insert_new(&self, id: SessionId, entry: Entry) -> Result<(), Entry> {
        match self.lock().entry(id) {
            MapEntry::Vacant(v) => {
                v.insert(Box::new(entry));
                Ok(())
            }
            MapEntry::Occupied(_) => Err(entry),
        }
    }

    fn remove(&self, id: &SessionId) -> bool {
        self.lock().remove(id).is_some()
    }

    fn remove_if(&self, id: &SessionId, pred: impl Fn(&Entry) -> bool) -> bool {
        let mut map = self.lock();
        if map.get(id).is_some_and(|e| pred(e)) {
            map.remove(id);
            true
        } else {
            false
        }
    }

    fn retain(&self, keep: impl Fn(&Entry) -> bool + Sync) -> usize {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, e| keep(e));
        before - map.len()
    }
}
