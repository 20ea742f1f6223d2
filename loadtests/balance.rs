//! The embedded load balancer: it lives in the load generator, so routing
//! costs no extra network hop, and it picks a replica for every request by
//! one of the policies below. Behind a real balancer (HAProxy) it holds a
//! single backend, the balancer's address, and routes nothing itself.
//!
//! Replicas are slots: a slot keeps its position in the hash ring and its
//! affinity when its process is restarted on a new port ([`Balancer::replace`]).
//! A slot whose connection is refused is marked down (a passive health
//! check) and its users are sent elsewhere.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// How requests are spread over replicas.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Each request to the next replica.
    RoundRobin,
    /// A user stays on one replica until it reconnects (every K requests),
    /// as behind an L4 balancer with keep-alive.
    PerConnection,
    /// Cookie affinity: a user stays on the replica that served its first request.
    Sticky,
    /// A hash ring on the user id: a user always lands on the same replica
    /// while the set of replicas does not change.
    ConsistentHash,
}

impl Policy {
    pub const ALL: [Policy; 4] = [
        Self::RoundRobin,
        Self::PerConnection,
        Self::Sticky,
        Self::ConsistentHash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::RoundRobin => "round-robin",
            Self::PerConnection => "per-connection",
            Self::Sticky => "sticky",
            Self::ConsistentHash => "consistent-hash",
        }
    }
}

/// Virtual nodes per replica on the hash ring (spreads keys evenly).
const VNODES: u64 = 160;

struct Slot {
    url: String,
    up: bool,
}

/// Per-user routing memory (kept in the user's session data).
#[derive(Debug, Clone, Copy, Default)]
pub struct Affinity {
    slot: Option<usize>,
    served: u32,
}

impl Affinity {
    /// The slot this user is bound to, if any (sticky, per-connection).
    pub fn slot(&self) -> Option<usize> {
        self.slot
    }
}

pub struct Balancer {
    policy: Policy,
    reconnect_every: u32,
    slots: RwLock<Vec<Slot>>,
    /// Sorted (hash, slot) pairs, rebuilt when slots come and go.
    ring: RwLock<Vec<(u64, usize)>>,
    next: AtomicUsize,
    routed: RwLock<Vec<AtomicU64>>,
}

impl Balancer {
    pub fn new(urls: Vec<String>, policy: Policy, reconnect_every: u32) -> Self {
        let b = Self {
            policy,
            reconnect_every: reconnect_every.max(1),
            routed: RwLock::new(urls.iter().map(|_| AtomicU64::new(0)).collect()),
            slots: RwLock::new(urls.into_iter().map(|url| Slot { url, up: true }).collect()),
            ring: RwLock::new(Vec::new()),
            next: AtomicUsize::new(0),
        };
        b.rebuild_ring();
        b
    }

    /// One backend (a single server, or a real balancer in front of several).
    pub fn single(url: String) -> Self {
        Self::new(vec![url], Policy::RoundRobin, 1)
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The slot and base URL for a user's next request; `None` when every
    /// replica is down.
    pub fn pick(&self, user: u64, affinity: &mut Affinity) -> Option<(usize, String)> {
        self.pick_avoiding(user, affinity, None)
    }

    /// [`pick`](Self::pick) for the retry of a request that failed on
    /// `avoid`: the same policy, any replica up but that one. `None` when
    /// no other replica is up.
    pub fn pick_other(
        &self,
        user: u64,
        affinity: &mut Affinity,
        avoid: usize,
    ) -> Option<(usize, String)> {
        self.pick_avoiding(user, affinity, Some(avoid))
    }

    fn pick_avoiding(
        &self,
        user: u64,
        affinity: &mut Affinity,
        avoid: Option<usize>,
    ) -> Option<(usize, String)> {
        let slots = self.slots.read().expect("balancer lock");
        let usable = |i: usize| Some(i) != avoid && slots.get(i).is_some_and(|s| s.up);
        let next_up = || {
            let n = slots.len();
            (0..n)
                .map(|_| self.next.fetch_add(1, Ordering::Relaxed) % n)
                .find(|&i| usable(i))
        };
        let slot = match self.policy {
            Policy::RoundRobin => next_up()?,
            Policy::PerConnection => match affinity.slot {
                Some(s) if usable(s) && affinity.served < self.reconnect_every => s,
                _ => {
                    affinity.served = 0;
                    next_up()?
                }
            },
            Policy::Sticky => match affinity.slot {
                Some(s) if usable(s) => s,
                _ => next_up()?,
            },
            Policy::ConsistentHash => self.owner(user, &slots, avoid)?,
        };
        affinity.slot = Some(slot);
        affinity.served += 1;
        if let Some(c) = self.routed.read().expect("balancer lock").get(slot) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        Some((slot, slots[slot].url.clone()))
    }

    /// The first replica up clockwise from the user's point on the ring
    /// (skipping `avoid`).
    fn owner(&self, user: u64, slots: &[Slot], avoid: Option<usize>) -> Option<usize> {
        let ring = self.ring.read().expect("balancer lock");
        let h = hash(user);
        let start = ring.partition_point(|&(p, _)| p < h);
        (0..ring.len())
            .map(|i| ring[(start + i) % ring.len()].1)
            .find(|&s| slots[s].up && Some(s) != avoid)
    }

    /// The replica a user id hashes to with the current membership.
    pub fn ring_owner(&self, user: u64) -> Option<usize> {
        let slots = self.slots.read().expect("balancer lock");
        self.owner(user, &slots, None)
    }

    fn rebuild_ring(&self) {
        let slots = self.slots.read().expect("balancer lock");
        let mut ring: Vec<(u64, usize)> = (0..slots.len())
            // Point keys start at 2^32, apart from every user id below it.
            .flat_map(|s| (0..VNODES).map(move |v| (hash(((s as u64 + 1) << 32) | v), s)))
            .collect();
        ring.sort_unstable();
        *self.ring.write().expect("balancer lock") = ring;
    }

    /// Takes a replica out of rotation (its process died or is draining).
    pub fn mark_down(&self, slot: usize) {
        if let Some(s) = self.slots.write().expect("balancer lock").get_mut(slot) {
            s.up = false;
        }
    }

    /// Marks a slot down if `url` is still its address (a refused
    /// connection). The last slot up stays up: with nowhere else to go,
    /// requests keep going to it and fail (and the users back off), as a
    /// balancer answers 503 rather than nothing when every server is down.
    pub fn report_refused(&self, slot: usize, url: &str) {
        let mut slots = self.slots.write().expect("balancer lock");
        let others_up = slots.iter().enumerate().any(|(i, s)| i != slot && s.up);
        if let Some(s) = slots.get_mut(slot)
            && s.url == url
            && others_up
        {
            s.up = false;
        }
    }

    /// Points a slot at a new address (a restarted replica) and brings it up.
    pub fn replace(&self, slot: usize, url: String) {
        if let Some(s) = self.slots.write().expect("balancer lock").get_mut(slot) {
            s.url = url;
            s.up = true;
        }
    }

    /// Adds a replica; returns its slot.
    pub fn add(&self, url: String) -> usize {
        let slot = {
            let mut slots = self.slots.write().expect("balancer lock");
            slots.push(Slot { url, up: true });
            slots.len() - 1
        };
        self.routed
            .write()
            .expect("balancer lock")
            .push(AtomicU64::new(0));
        self.rebuild_ring();
        slot
    }

    /// Whether a replica other than `slot` is up (somewhere to retry).
    pub fn other_up(&self, slot: usize) -> bool {
        let slots = self.slots.read().expect("balancer lock");
        slots.iter().enumerate().any(|(i, s)| i != slot && s.up)
    }

    /// Requests sent to each slot so far.
    pub fn routed(&self) -> Vec<u64> {
        self.routed
            .read()
            .expect("balancer lock")
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }
}

/// splitmix64's finalizer: consecutive ids spread over the whole ring.
fn hash(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The fraction of `users` (ids 0..users) whose replica changes across `change`.
pub fn remapped_by(balancer: &Balancer, users: u64, change: impl FnOnce(&Balancer)) -> f64 {
    let before: Vec<_> = (0..users).map(|u| balancer.ring_owner(u)).collect();
    change(balancer);
    let moved = (0..users)
        .filter(|&u| balancer.ring_owner(u) != before[u as usize])
        .count();
    moved as f64 / users.max(1) as f64
}

/// The fraction of `users` whose replica changes when `slot` goes down
/// (consistent hashing moves only that replica's share).
pub fn remapped_fraction(balancer: &Balancer, users: u64, slot: usize) -> f64 {
    let was_up = balancer.slots.read().expect("balancer lock")[slot].up;
    let moved = remapped_by(balancer, users, |b| b.mark_down(slot));
    if was_up {
        balancer.slots.write().expect("balancer lock")[slot].up = true;
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("http://127.0.0.1:{}", 1000 + i))
            .collect()
    }

    #[test]
    fn round_robin_alternates_and_skips_down_replicas() {
        let b = Balancer::new(urls(3), Policy::RoundRobin, 1);
        let mut a = Affinity::default();
        let picks: Vec<usize> = (0..6).map(|_| b.pick(0, &mut a).unwrap().0).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        b.mark_down(1);
        assert!((0..10).all(|_| b.pick(0, &mut a).unwrap().0 != 1));
        b.mark_down(0);
        b.mark_down(2);
        assert!(b.pick(0, &mut a).is_none());
    }

    #[test]
    fn sticky_keeps_a_user_until_its_replica_dies() {
        let b = Balancer::new(urls(2), Policy::Sticky, 1);
        let mut a = Affinity::default();
        let first = b.pick(7, &mut a).unwrap().0;
        assert!((0..20).all(|_| b.pick(7, &mut a).unwrap().0 == first));
        b.mark_down(first);
        let other = b.pick(7, &mut a).unwrap().0;
        assert_ne!(other, first);
    }

    #[test]
    fn a_retry_goes_to_another_replica_under_every_policy() {
        for policy in Policy::ALL {
            let b = Balancer::new(urls(3), policy, 100);
            for user in 0..50 {
                let mut a = Affinity::default();
                let first = b.pick(user, &mut a).unwrap().0;
                let (other, url) = b.pick_other(user, &mut a, first).unwrap();
                assert_ne!(other, first, "{policy:?}");
                assert_eq!(url, urls(3)[other]);
                // The user stays where the retry went (sticky, per-connection).
                if matches!(policy, Policy::Sticky | Policy::PerConnection) {
                    assert_eq!(b.pick(user, &mut a).unwrap().0, other, "{policy:?}");
                }
            }
        }
        let b = Balancer::new(urls(2), Policy::RoundRobin, 1);
        b.mark_down(1);
        assert!(!b.other_up(0));
        assert!(b.pick_other(0, &mut Affinity::default(), 0).is_none());
    }

    #[test]
    fn per_connection_moves_every_k_requests() {
        let b = Balancer::new(urls(2), Policy::PerConnection, 3);
        let mut a = Affinity::default();
        let picks: Vec<usize> = (0..9).map(|_| b.pick(0, &mut a).unwrap().0).collect();
        assert_eq!(picks, [0, 0, 0, 1, 1, 1, 0, 0, 0]);
    }

    #[test]
    fn consistent_hash_is_stable_and_moves_only_the_lost_share() {
        let b = Balancer::new(urls(4), Policy::ConsistentHash, 1);
        let mut a = Affinity::default();
        for u in 0..100 {
            let first = b.pick(u, &mut a).unwrap().0;
            assert_eq!(b.pick(u, &mut a).unwrap().0, first);
        }
        let moved = remapped_fraction(&b, 10_000, 2);
        assert!((0.15..0.35).contains(&moved), "moved {moved}");
        // Every replica gets a fair share, even of a few consecutive ids.
        let mut share = [0usize; 4];
        for u in 0..32 {
            share[b.ring_owner(u).unwrap()] += 1;
        }
        assert!(share.iter().all(|&n| n >= 3), "{share:?}");
    }
}
