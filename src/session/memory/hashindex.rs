//! `scc::HashIndex` 3: the read-optimised sibling of `scc::HashMap`. A read
//! takes no lock: it enters an epoch (one `lock xchg` for the outermost
//! guard) and reads the entry in place, and no write ever blocks it. Entries
//! are immutable once published: a write locks the entry's bucket, clones
//! the entry, changes the clone and publishes it, so concurrent writers of
//! one session are serialised (no lost update) and the old version is freed
//! once no reader can see it. Values are boxed, as in the other adapters:
//! stored inline, a 1,000,000-session index measured 305 B of RSS per
//! session against 247 B boxed. foldhash.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Entry, MapAdapter};
use crate::session::{SessionId, StoreConfig};

pub struct HashIndexAdapter(scc::HashIndex<SessionId, Box<Entry>, foldhash::fast::RandomState>);

impl MapAdapter for HashIndexAdapter {
    const NAME: &'static str = "hashindex";
    const ABOUT: &'static str =
        "`scc::HashIndex` 3 (lock-free reads, copy-on-write, epoch reclamation), foldhash";

    fn new(_: &StoreConfig) -> Self {
        Self(scc::HashIndex::with_hasher(
            foldhash::fast::RandomState::default(),
        ))
    }

    #[inline]
    fn read<R>(&self, id: &SessionId, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        self.0.peek_with(id, |_, e| f(e))
    }

    #[inline]
    fn write<R>(&self, id: &SessionId, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        // The occupied entry holds the bucket's lock until it is dropped.
        let mut occupied = self.0.get_sync(id)?;
        let mut copy = Box::new(Entry::clone(occupied.get()));
        let r = f(&mut copy);
        occupied.update(copy);
        Some(r)
    }

    fn insert_new(&self, id: SessionId, entry: Entry) -> Result<(), Entry> {
        self.0.insert_sync(id, Box::new(entry)).map_err(|(_, e)| *e)
    }

    fn remove(&self, id: &SessionId) -> bool {
        self.0.remove_sync(id)
    }

    fn remove_if(&self, id: &SessionId, pred: impl Fn(&Entry) -> bool) -> bool {
        self.0.remove_if_sync(id, |e| pred(e))
    }

    fn retain(&self, keep: impl Fn(&Entry) -> bool + Sync) -> usize {
        let removed = AtomicUsize::new(0);
        self.0.retain_sync(|_, e| {
            let k = keep(e);
            if !k {
                removed.fetch_add(1, Ordering::Relaxed);
            }
            k
        });
        removed.into_inner()
    }
}
