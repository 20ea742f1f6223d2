//! DashMap 6: a fixed number of shards, each an `RwLock<HashMap>`; foldhash.
//! Values are boxed so the table holds 24 bytes per slot (key + pointer):
//! at 1,000,000 sessions the table is under half full, and a boxed value
//! halves its bytes per session.

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;

use super::{Entry, MapAdapter};
use crate::session::{SessionId, StoreConfig};

pub struct DashMapAdapter(DashMap<SessionId, Box<Entry>, foldhash::fast::RandomState>);

impl MapAdapter for DashMapAdapter {
    const NAME: &'static str = "dashmap";
    const ABOUT: &'static str = "DashMap 6 (sharded `RwLock`s), foldhash";

    fn new(_: &StoreConfig) -> Self {
        Self(DashMap::with_hasher(foldhash::fast::RandomState::default()))
    }

    #[inline]
    fn read<R>(&self, id: &SessionId, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        self.0.get(id).map(|e| f(&e))
    }

    #[inline]
    fn write<R>(&self, id: &SessionId, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        self.0.get_mut(id).map(|mut e| f(&mut e))
    }

    fn insert_new(&self, id: SessionId, entry: Entry) -> Result<(), Entry> {
        match self.0.entry(id) {
            MapEntry::Vacant(v) => {
                v.insert(Box::new(entry));
                Ok(())
            }
            MapEntry::Occupied(_) => Err(entry),
        }
    }

    fn remove(&self, id: &SessionId) -> bool {
        self.0.remove(id).is_some()
    }

    fn remove_if(&self, id: &SessionId, pred: impl Fn(&Entry) -> bool) -> bool {
        self.0.remove_if(id, |_, e| pred(e)).is_some()
    }

    fn retain(&self, keep: impl Fn(&Entry) -> bool + Sync) -> usize {
        let before = self.0.len();
        self.0.retain(|_, e| keep(e));
        before - self.0.len()
    }
}
