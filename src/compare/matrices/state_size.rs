//! State size: the cart scenario at 0, 10 and 100 items. A stateless
//! server's token carries the cart, so its requests grow with it; a
//! stateful server's cookie does not. Where the run has Redis, also the
//! memory one session takes in it ([`redis_memory`]), which the capacity
//! plan multiplies out.

use super::super::Matrix;
use super::super::cell::{Cell, Server};
use super::super::runner::{Knobs, Runner};
use super::CART_SIZES;
use crate::clock::{Clock, SystemClock};
use crate::keys::TokenAlg;
use crate::loadtests::ScenarioKind;
use crate::session::redis::RedisStore;
use crate::session::{SessionStore, StoreConfig};
use serde::{Deserialize, Serialize};

/// Users building carts.
const USERS: usize = 16;
/// Sessions written to measure Redis's memory per session.
pub const MEMORY_SESSIONS: usize = 20_000;
/// Sessions written at once while measuring.
const MEMORY_BATCH: usize = 200;

/// What one session costs a store in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreMemory {
    /// The store measured (`redis`).
    pub store: String,
    /// Sessions written.
    pub sessions: u64,
    /// Growth of the store's own count of the memory it holds, per session.
    pub bytes_per_session: f64,
}

/// The reference servers compared.
pub fn servers() -> [Server; 3] {
    [
        Server::Stateless(TokenAlg::HS256),
        Server::StatefulMemory,
        Server::HybridMemory,
    ]
}

pub async fn run(r: &mut Runner, servers: &[Server]) -> anyhow::Result<()> {
    for &server in servers {
        for items in CART_SIZES {
            let id = format!("state-size/{}/cart{items}", server.slug());
            let cell = Cell {
                users: USERS,
                cart_items: Some(items),
                ..Cell::new(Matrix::StateSize, server, id)
            };
            let knobs = Knobs {
                scenario: Some(ScenarioKind::Cart),
                cart_items: Some(items),
                ..Knobs::default()
            };
            r.run_cell(cell, knobs).await?;
        }
    }
    if servers.contains(&Server::HybridMemory) {
        r.progress
            .say("state-size: revocation delay after logout".into());
        r.revocation = super::super::revocation::run(r).await?;
    }
    let Some(url) = r.redis.as_ref().map(|redis| redis.url.clone()) else {
        return Ok(());
    };
    r.check_stop()?;
    r.progress.say(format!(
        "state-size: Redis memory for {MEMORY_SESSIONS} sessions"
    ));
    match redis_memory(&url, &format!("{}-memory", r.prefix())).await {
        Ok(m) => {
            r.progress.say(format!(
                "  Redis holds {:.0} bytes per session",
                m.bytes_per_session
            ));
            r.store_memory = Some(m);
        }
        Err(e) => {
            let why = format!("Redis memory per session: {e:#}");
            r.progress.say(format!("note: skipping {why}"));
            r.skipped.push(why);
        }
    }
    Ok(())
}

/// Redis's memory per session: its `used_memory` before and after
/// [`MEMORY_SESSIONS`] realistic sessions (those of the in-process memory
/// figure) are written through the store the replicas use, keys, expiry
/// index and all, under `prefix`; the sessions are removed afterwards.
/// Nothing else may write to this Redis meanwhile.
pub async fn redis_memory(url: &str, prefix: &str) -> anyhow::Result<StoreMemory> {
    let store = RedisStore::open(url, prefix, StoreConfig::default())?;
    let now = SystemClock.now_ms();
    let before = store.used_memory().await?;
    let mut ids = Vec::with_capacity(MEMORY_SESSIONS);
    for batch in 0..MEMORY_SESSIONS / MEMORY_BATCH {
        let first = (batch * MEMORY_BATCH) as u64;
        let made = futures_util::future::join_all(
            (first..first + MEMORY_BATCH as u64)
                .map(|i| store.create(crate::workload::realistic_session(i, now), now)),
        )
        .await;
        for id in made {
            ids.push(id?);
        }
    }
    let after = store.used_memory().await?;
    for chunk in ids.chunks(MEMORY_BATCH) {
        for gone in futures_util::future::join_all(chunk.iter().map(|&id| store.remove(id))).await {
            gone?;
        }
    }
    Ok(StoreMemory {
        store: "redis".into(),
        sessions: ids.len() as u64,
        bytes_per_session: after.saturating_sub(before) as f64 / ids.len().max(1) as f64,
    })
}

pub fn planned_secs(r: &Runner, servers: usize) -> u64 {
    servers as u64 * CART_SIZES.len() as u64 * r.cell_secs()
        + super::super::revocation::planned_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs a Redis of its own (`REDIS_URL`); skipped without one.
    #[tokio::test]
    async fn a_session_in_redis_takes_its_bytes_and_leaves_nothing_behind() {
        let Ok(url) = std::env::var("REDIS_URL") else {
            eprintln!("REDIS_URL not set: skipping");
            return;
        };
        let prefix = format!("statebench-test-memory-{}", std::process::id());
        let m = redis_memory(&url, &prefix).await.expect("measured");
        assert_eq!(m.sessions, MEMORY_SESSIONS as u64);
        // A realistic session is about 100 bytes of data; with its key,
        // its expiry-index entry and Redis's own overhead it takes more,
        // but not kilobytes.
        assert!((100.0..2_000.0).contains(&m.bytes_per_session), "{m:?}");
        let store = RedisStore::open(&url, &prefix, StoreConfig::default()).expect("store");
        assert_eq!(store.len().await.expect("len"), 0, "sessions removed");
    }
}
