//! moka 0.12 (sync): a concurrent cache with its own time-to-idle eviction.
//!
//! Expiry is still decided by [`super::MapStore`] from the injected clock, so
//! moka behaves like every other store. moka's time-to-idle (the session TTL
//! plus a minute, on the wall clock) is a safety net that frees entries
//! nobody touches; when it evicts one, the listener keeps the live count
//! right. Values are `Arc`s (moka hands out clones); a write clones the
//! entry, changes it and swaps it in atomically with `and_compute_with`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use moka::notification::RemovalCause;
use moka::ops::compute::Op;

use super::{Entry, MapAdapter};
use crate::session::{SessionId, StoreConfig};

pub struct MokaAdapter {
    cache: moka::sync::Cache<SessionId, Arc<Entry>, foldhash::fast::RandomState>,
    /// Entries moka evicted on its own (not through this adapter).
    evicted: Arc<AtomicUsize>,
}

impl MapAdapter for MokaAdapter {
    const NAME: &'static str = "moka";
    const ABOUT: &'static str = "moka 0.12 sync cache with time-to-idle";

    fn new(config: &StoreConfig) -> Self {
        let evicted = Arc::new(AtomicUsize::new(0));
        let counter = evicted.clone();
        let cache = moka::sync::Cache::builder()
            .time_to_idle(Duration::from_millis(config.idle_ttl_ms) + Duration::from_secs(60))
            .eviction_listener(move |_, _, cause| {
                if matches!(cause, RemovalCause::Expired | RemovalCause::Size) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build_with_hasher(foldhash::fast::RandomState::default());
        Self { cache, evicted }
    }

    #[inline]
    fn read<R>(&self, id: &SessionId, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        self.cache.get(id).map(|e| f(&e))
    }

    #[inline]
    fn write<R>(&self, id: &SessionId, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        let mut out = None;
        self.cache
            .entry(*id)
            .and_compute_with(|current| match current {
                Some(e) => {
                    let mut copy = Entry::clone(e.value());
                    out = Some(f(&mut copy));
                    Op::Put(Arc::new(copy))
                }
                None => Op::Nop,
            });
        out
    }

    fn insert_new(&self, id: SessionId, entry: Entry) -> Result<(), Entry> {
        let mut slot = Some(entry);
        self.cache
            .entry(id)
            .or_insert_with(|| Arc::new(slot.take().expect("called once")));
        match slot {
            None => Ok(()),
            Some(back) => Err(back),
        }
    }

    /// Through `and_compute_with`, like every other change: moka's own
    /// `remove` does not always take the key's lock, so a write computing
    /// at the same moment could put the removed entry back (and a second
    /// removal would then count it twice).
    fn remove(&self, id: &SessionId) -> bool {
        self.remove_if(id, |_| true)
    }

    fn remove_if(&self, id: &SessionId, pred: impl Fn(&Entry) -> bool) -> bool {
        let mut removed = false;
        self.cache
            .entry(*id)
            .and_compute_with(|current| match current {
                Some(e) if pred(e.value()) => {
                    removed = true;
                    Op::Remove
                }
                _ => Op::Nop,
            });
        removed
    }

    fn take_evicted(&self) -> usize {
        self.evicted.swap(0, Ordering::Relaxed)
    }

    fn retain(&self, keep: impl Fn(&Entry) -> bool + Sync) -> usize {
        let doomed: Vec<SessionId> = self
            .cache
            .iter()
            .filter(|(_, e)| !keep(e))
            .map(|(id, _)| *id)
            .collect();
        doomed
            .iter()
            .filter(|id| self.remove_if(id, |e| !keep(e)))
            .count()
    }
}
