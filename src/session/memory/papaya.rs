//! papaya 0.2: lock-free reads with epoch-based reclamation; foldhash.
//! Values are immutable once published, so a write clones the entry,
//! changes the clone and swaps it in (last writer wins, as on Redis);
//! an atomic write swaps it in with `compute`, a compare-and-swap that runs
//! the change again on the entry as it then is when another write won.

use std::sync::atomic::{AtomicUsize, Ordering};

use papaya::Operation;

use super::{Entry, MapAdapter};
use crate::session::{SessionId, StoreConfig};

pub struct PapayaAdapter(papaya::HashMap<SessionId, Entry, foldhash::fast::RandomState>);

impl MapAdapter for PapayaAdapter {
    const NAME: &'static str = "papaya";
    const ABOUT: &'static str = "papaya 0.2 (lock-free reads, epoch reclamation)";

    fn new(_: &StoreConfig) -> Self {
        Self(papaya::HashMap::with_hasher(
            foldhash::fast::RandomState::default(),
        ))
    }

    #[inline]
    fn read<R>(&self, id: &SessionId, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        self.0.pin().get(id).map(f)
    }

    #[inline]
    fn write<R>(&self, id: &SessionId, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        let map = self.0.pin();
        let mut copy = map.get(id)?.clone();
        let r = f(&mut copy);
        // `update` only replaces an existing entry: a concurrent removal wins.
        map.update(*id, |_| copy.clone()).map(|_| r)
    }

    fn write_atomic<R>(&self, id: &SessionId, mut f: impl FnMut(&mut Entry) -> R) -> Option<R> {
        let mut out = None;
        let map = self.0.pin();
        map.compute(*id, |current| match current {
            Some((_, e)) => {
                let mut copy = e.clone();
                out = Some(f(&mut copy));
                Operation::Insert(copy)
            }
            None => {
                out = None;
                Operation::Abort(())
            }
        });
        out
    }

    fn insert_new(&self, id: SessionId, entry: Entry) -> Result<(), Entry> {
        match self.0.pin().try_insert(id, entry) {
            Ok(_) => Ok(()),
            Err(e) => Err(e.not_inserted),
        }
    }

    fn remove(&self, id: &SessionId) -> bool {
        self.0.pin().remove(id).is_some()
    }

    fn remove_if(&self, id: &SessionId, pred: impl Fn(&Entry) -> bool) -> bool {
        matches!(self.0.pin().remove_if(id, |_, e| pred(e)), Ok(Some(_)))
    }

    fn retain(&self, keep: impl Fn(&Entry) -> bool + Sync) -> usize {
        let removed = AtomicUsize::new(0);
        self.0.pin().retain(|_, e| {
            let k = keep(e);
            if !k {
                removed.fetch_add(1, Ordering::Relaxed);
            }
            k
        });
        removed.into_inner()
    }
}
