//! `scc::HashMap` 3: buckets with their own small locks and incremental
//! resizing; foldhash. Values boxed as in the other adapters.

use super::{Entry, MapAdapter};
use crate::session::{SessionId, StoreConfig};

pub struct SccAdapter(scc::HashMap<SessionId, Box<Entry>, foldhash::fast::RandomState>);

impl MapAdapter for SccAdapter {
    const NAME: &'static str = "scc";
    const ABOUT: &'static str = "`scc::HashMap` 3 (bucket-level locks), foldhash";

    fn new(_: &StoreConfig) -> Self {
        Self(scc::HashMap::with_hasher(
            foldhash::fast::RandomState::default(),
        ))
    }

    #[inline]
    fn read<R>(&self, id: &SessionId, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        self.0.read_sync(id, |_, e| f(e))
    }

    #[inline]
    fn write<R>(&self, id: &SessionId, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        self.0.update_sync(id, |_, e| f(e))
    }

    fn insert_new(&self, id: SessionId, entry: Entry) -> Result<(), Entry> {
        self.0.insert_sync(id, Box::new(entry)).map_err(|(_, e)| *e)
    }

    fn remove(&self, id: &SessionId) -> bool {
        self.0.remove_sync(id).is_some()
    }

    fn remove_if(&self, id: &SessionId, pred: impl Fn(&Entry) -> bool) -> bool {
        self.0.remove_if_sync(id, |e| pred(e)).is_some()
    }

    fn retain(&self, keep: impl Fn(&Entry) -> bool + Sync) -> usize {
        let before = self.0.len();
        self.0.retain_sync(|_, e| keep(e));
        before - self.0.len()
    }
}
