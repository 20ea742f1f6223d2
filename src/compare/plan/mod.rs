//! Capacity at internet scale, on paper, from measurements: the cores,
//! replicas, Redis shards, memory and network a workload needs under each
//! design, computed from a `compare` run's capacity cells and the
//! micro-benchmarks' memory figures. Every input is a measured figure,
//! and the output cites it ([`render`]).
//!
//! The model, per design:
//! - one replica core serves **K = capacity(1) ÷ budget** requests per
//!   second within the SLO, where capacity(1) is the measured capacity of
//!   one replica under a CPU budget of `budget` cores;
//! - one store core serves **1,000,000 ÷ s** store requests per second at
//!   full use, where `s` is the store's measured CPU per request (µs, all
//!   nodes together) on one replica; a shared store holds
//!   `nodes × store budget` cores, which caps the design at
//!   **ceiling = nodes × store budget × 1,000,000 ÷ s**;
//! - so **capacity(n) = min(n × capacity(1), ceiling)**.
//!
//! [`validate`] checks the model against the capacity measured on 2 and 4
//! replicas, whose cells the model does not read. The plan for a workload
//! sizes replicas from K and shards from the store's CPU per request at a
//! planned utilisation, since a shard is one Redis process, one core.

pub mod render;

use super::cell::{Cell, Server};
use super::report::Cells;
use crate::loadtests::Policy;
use crate::server::Arch;

/// What to plan for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    /// Requests per second at peak.
    pub rps: f64,
    /// Live sessions (or refresh tokens) at once.
    pub sessions: u64,
    /// Open WebSocket connections at once.
    pub ws: u64,
    /// Cores per replica in the planned fleet.
    pub replica_cores: f64,
    /// Share of a store core the plan uses (headroom for bursts).
    pub store_utilisation: f64,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            rps: 200_000.0,
            sessions: 5_000_000,
            ws: 100_000,
            replica_cores: 1.0,
            store_utilisation: 0.7,
        }
    }
}

/// A model agrees with a measurement when within this share of it.
pub const TOLERANCE: f64 = 0.15;

/// The measured inputs of one design.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub server: Server,
    pub policy: Policy,
    /// The capacity cell on one replica (id, capacity, budget).
    pub one_id: String,
    pub capacity_one: f64,
    pub replica_budget: f64,
    /// The shared store, if the design has one.
    pub store: Option<StoreInputs>,
    /// Credential and body bytes per request (state-size matrix, empty cart).
    pub bytes_per_request: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct StoreInputs {
    pub nodes: usize,
    pub budget: f64,
    /// The store's CPU per request, all nodes together, on one replica (µs).
    pub us_per_request: f64,
}

impl Inputs {
    /// Requests per second one replica core serves within the SLO.
    pub fn per_core(&self) -> f64 {
        self.capacity_one / self.replica_budget
    }

    /// The most the shared store serves under its budget.
    pub fn ceiling(&self) -> Option<f64> {
        let s = self.store.as_ref()?;
        Some(s.nodes as f64 * s.budget * 1e6 / s.us_per_request)
    }

    /// The model's capacity on `n` replicas.
    pub fn predict(&self, n: usize) -> f64 {
        let linear = n as f64 * self.capacity_one;
        self.ceiling().map_or(linear, |c| linear.min(c))
    }
}

/// The inputs of every design the capacity matrix measured with a budget
/// and a capacity on one replica.
pub fn inputs(cells: Cells) -> Vec<Inputs> {
    cells
        .capacity_cases()
        .into_iter()
        .filter_map(|(server, policy)| {
            let one = cells.capacity(server, policy, 1).filter(|c| c.valid)?;
            let capacity_one = one.capacity_rps.filter(|&c| c > 0.0)?;
            let replica_budget = one.replica_budget?;
            let store = match (
                one.store_nodes,
                one.store_budget,
                one.store_cpu_us_per_request,
            ) {
                (Some(nodes), Some(budget), Some(us)) if us > 0.0 => Some(StoreInputs {
                    nodes,
                    budget,
                    us_per_request: us,
                }),
                _ => None,
            };
            Some(Inputs {
                server,
                policy,
                one_id: one.id.clone(),
                capacity_one,
                replica_budget,
                store,
                bytes_per_request: wire_bytes(cells, server),
            })
        })
        .collect()
}

/// Bytes per request of the design's architecture (the wire format does
/// not depend on where sessions live).
fn wire_bytes(cells: Cells, server: Server) -> Option<f64> {
    match server.arch() {
        Arch::Stateless | Arch::Hybrid => cells.bytes(server, 0),
        Arch::Stateful => [server, Server::StatefulMemory, Server::StatefulRedis]
            .into_iter()
            .find_map(|s| cells.bytes(s, 0)),
        Arch::Ws => None,
    }
}

/// The model against one measured capacity.
#[derive(Debug, Clone)]
pub struct Check {
    pub server: Server,
    pub policy: Policy,
    pub replicas: usize,
    pub predicted: f64,
    pub measured: f64,
}

impl Check {
    /// (predicted − measured) ÷ measured.
    pub fn error(&self) -> f64 {
        (self.predicted - self.measured) / self.measured
    }

    pub fn agrees(&self) -> bool {
        self.error().abs() <= TOLERANCE
    }
}

/// The model's capacity beside every valid measured one.
pub fn validate(cells: Cells, inputs: &[Inputs]) -> Vec<Check> {
    let mut out = Vec::new();
    for i in inputs {
        let mut measured: Vec<&Cell> = cells
            .of(super::Matrix::Capacity)
            .filter(|c| c.server == i.server && c.policy == Some(i.policy) && c.valid)
            .collect();
        measured.sort_by_key(|c| c.replicas);
        for c in measured {
            if let Some(m) = c.capacity_rps.filter(|&m| m > 0.0) {
                out.push(Check {
                    server: i.server,
                    policy: i.policy,
                    replicas: c.replicas,
                    predicted: i.predict(c.replicas),
                    measured: m,
                });
            }
        }
    }
    out
}

/// One design's fleet for a workload.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub server: Server,
    pub policy: Policy,
    pub replica_cores: f64,
    pub replicas: u64,
    /// Redis processes (one core each), for designs with a shared store.
    pub shards: Option<u64>,
    /// Session bytes held in replica memory, in all.
    pub session_bytes: Option<f64>,
    /// Session bytes held in the shared store, in all, if measured.
    pub store_session_bytes: Option<f64>,
    /// Sessions lost when one replica is lost.
    pub lost_per_replica: u64,
    /// Credential and body bytes per second sent to the servers.
    pub wire_bytes_per_sec: Option<f64>,
}

/// Sizes every design for `w`. `session_bytes` is the measured memory of
/// one in-process session (micro-benchmarks), `store_bytes` of one in the
/// shared store (compare's state-size matrix), if known.
pub fn plan(
    w: &Workload,
    inputs: &[Inputs],
    session_bytes: Option<f64>,
    store_bytes: Option<f64>,
) -> Vec<Fleet> {
    inputs
        .iter()
        .map(|i| {
            let cores = w.rps / i.per_core();
            let replicas = (cores / w.replica_cores).ceil().max(1.0) as u64;
            let shards = i.store.as_ref().map(|s| {
                let store_cores = w.rps * s.us_per_request / 1e6 / w.store_utilisation;
                store_cores.ceil().max(1.0) as u64
            });
            let in_memory = i.server == Server::StatefulMemory;
            Fleet {
                server: i.server,
                policy: i.policy,
                replica_cores: cores,
                replicas,
                shards,
                session_bytes: match (in_memory, session_bytes) {
                    (true, Some(b)) => Some(b * w.sessions as f64),
                    _ => None,
                },
                store_session_bytes: match (&i.store, store_bytes) {
                    (Some(_), Some(b)) => Some(b * w.sessions as f64),
                    _ => None,
                },
                lost_per_replica: if in_memory {
                    w.sessions.div_ceil(replicas)
                } else {
                    0
                },
                wire_bytes_per_sec: i.bytes_per_request.map(|b| b * w.rps),
            }
        })
        .collect()
}

/// The measured RSS of one in-process session (the default store's),
/// from the micro-benchmarks' `figures.json`.
pub fn session_bytes(micro_figures: &serde_json::Value) -> Option<f64> {
    micro_figures["memory_per_session"]
        .as_array()?
        .iter()
        .find(|m| m["store"] == "dashmap")?["rss_bytes_per_session"]
        .as_f64()
}

/// The measured server RSS per idle WebSocket connection, at the most
/// connections the run held, and that cell's id.
pub fn ws_bytes(cells: Cells<'_>) -> Option<(f64, &str)> {
    let cell = cells
        .of(super::Matrix::Websocket)
        .filter(|c| c.rss_per_connection.is_some())
        .max_by_key(|c| c.connections)?;
    Some((cell.rss_per_connection?, cell.id.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(capacity_one: f64, store: Option<StoreInputs>) -> Inputs {
        Inputs {
            server: Server::StatefulRedis,
            policy: Policy::RoundRobin,
            one_id: "capacity/x/r1".into(),
            capacity_one,
            replica_budget: 0.1,
            store,
            bytes_per_request: Some(100.0),
        }
    }

    #[test]
    fn capacity_grows_with_replicas_up_to_the_store_ceiling() {
        let free = inputs(1000.0, None);
        assert_eq!(free.per_core(), 10_000.0);
        assert_eq!(free.predict(4), 4000.0);
        // 0.05 cores at 20 µs a request: 2,500 requests/s at most.
        let shared = inputs(
            1000.0,
            Some(StoreInputs {
                nodes: 1,
                budget: 0.05,
                us_per_request: 20.0,
            }),
        );
        assert_eq!(shared.ceiling(), Some(2500.0));
        assert_eq!(shared.predict(2), 2000.0);
        assert_eq!(shared.predict(4), 2500.0);
    }

    #[test]
    fn a_plan_sizes_replicas_and_shards_from_the_measured_costs() {
        let w = Workload {
            rps: 200_000.0,
            sessions: 1_000_000,
            ws: 0,
            replica_cores: 2.0,
            store_utilisation: 0.5,
        };
        let i = inputs(
            1000.0,
            Some(StoreInputs {
                nodes: 1,
                budget: 0.05,
                us_per_request: 20.0,
            }),
        );
        let f = &plan(&w, std::slice::from_ref(&i), Some(250.0), Some(400.0))[0];
        // 200,000 / 10,000 per core = 20 cores = 10 replicas of 2 cores.
        assert_eq!(f.replica_cores, 20.0);
        assert_eq!(f.replicas, 10);
        // 200,000 × 20 µs = 4 cores of Redis, used to half: 8 shards.
        assert_eq!(f.shards, Some(8));
        // Sessions live in Redis: none in the replicas, none lost with one.
        assert_eq!(f.session_bytes, None);
        assert_eq!(f.lost_per_replica, 0);
        assert_eq!(f.wire_bytes_per_sec, Some(20_000_000.0));
        // 1,000,000 sessions × 400 bytes in Redis.
        assert_eq!(f.store_session_bytes, Some(400_000_000.0));
        // A design without a store holds none there.
        let memory = Inputs {
            server: Server::StatefulMemory,
            store: None,
            ..i
        };
        let f = &plan(&w, &[memory], Some(250.0), Some(400.0))[0];
        assert_eq!(f.store_session_bytes, None);
        assert_eq!(f.session_bytes, Some(250_000_000.0));
    }

    #[test]
    fn a_check_agrees_within_the_tolerance() {
        let c = |predicted: f64| Check {
            server: Server::StatefulMemory,
            policy: Policy::Sticky,
            replicas: 2,
            predicted,
            measured: 1000.0,
        };
        assert!(c(1150.0).agrees() && c(850.0).agrees());
        assert!(!c(1151.0).agrees() && !c(849.0).agrees());
    }
}
