//! What a comparison records: one [`Cell`] per measured configuration,
//! named by typed values — the [`Matrix`], the [`Server`], the routing
//! [`Policy`] and [`Balancer`], the failure [`Event`]. Display labels are
//! made from them only when rendering (and as the stable names in
//! `cells.json`), never used to look a cell up.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Matrix;
use crate::keys::TokenAlg;
use crate::loadtests::{LoadResult, Policy, ScenarioKind};
use crate::server::Arch;

/// A server as the comparison names it: an architecture, set up one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Server {
    /// `/healthz` on a server of this architecture: the floor of a request.
    Healthz(Arch),
    /// The stateless server signing with this algorithm.
    Stateless(TokenAlg),
    /// The stateful server, sessions in process memory.
    StatefulMemory,
    /// The stateful server, sessions in a Redis shared by the replicas.
    StatefulRedis,
    /// The stateful server, sessions spread over a Redis Cluster's masters.
    StatefulRedisCluster,
    /// The hybrid server, refresh families in process memory.
    HybridMemory,
    /// The hybrid server, refresh families in a Redis shared by the replicas.
    HybridRedis,
    /// The WebSocket server's echo.
    WsEcho,
    /// The WebSocket server's chat rooms.
    WsChat,
    /// A server this run did not start (`compare --target`).
    External(Arch),
}

impl Server {
    /// Every server the comparison can name (for reading `cells.json`).
    pub fn all() -> impl Iterator<Item = Server> {
        let fixed = [
            Server::Healthz(Arch::Stateless),
            Server::Healthz(Arch::Stateful),
            Server::StatefulMemory,
            Server::StatefulRedis,
            Server::StatefulRedisCluster,
            Server::HybridMemory,
            Server::HybridRedis,
            Server::WsEcho,
            Server::WsChat,
        ];
        fixed
            .into_iter()
            .chain(TokenAlg::ALL.into_iter().map(Server::Stateless))
            .chain(Arch::ALL.into_iter().map(Server::External))
    }

    /// The name in the report, the charts and `cells.json`.
    pub fn label(self) -> String {
        match self {
            Server::Healthz(arch) => format!("healthz ({} server)", arch.name()),
            Server::Stateless(alg) => format!("stateless {}", alg.name()),
            Server::StatefulMemory => "stateful memory".into(),
            Server::StatefulRedis => "stateful Redis".into(),
            Server::StatefulRedisCluster => "stateful Redis Cluster".into(),
            Server::HybridMemory => "hybrid memory".into(),
            Server::HybridRedis => "hybrid Redis".into(),
            Server::WsEcho => "ws echo".into(),
            Server::WsChat => "ws chat".into(),
            Server::External(arch) => format!("{} (external)", arch.name()),
        }
    }

    /// The label as a path segment of cell ids (`stateless-hs256`).
    pub fn slug(self) -> String {
        self.label()
            .chars()
            .filter_map(|c| match c {
                'a'..='z' | '0'..='9' => Some(c),
                'A'..='Z' => Some(c.to_ascii_lowercase()),
                ' ' | '-' => Some('-'),
                _ => None,
            })
            .collect()
    }

    /// The architecture behind it.
    pub fn arch(self) -> Arch {
        match self {
            Server::Healthz(arch) | Server::External(arch) => arch,
            Server::Stateless(_) => Arch::Stateless,
            Server::StatefulMemory | Server::StatefulRedis | Server::StatefulRedisCluster => {
                Arch::Stateful
            }
            Server::HybridMemory | Server::HybridRedis => Arch::Hybrid,
            Server::WsEcho | Server::WsChat => Arch::Ws,
        }
    }

    /// The load scenario that measures it.
    pub fn scenario(self) -> ScenarioKind {
        match self {
            Server::Healthz(_) => ScenarioKind::Healthz,
            Server::WsEcho => ScenarioKind::WsEcho,
            Server::WsChat => ScenarioKind::WsChat,
            s => match s.arch() {
                Arch::Stateless => ScenarioKind::Stateless,
                Arch::Hybrid => ScenarioKind::Hybrid,
                Arch::Stateful => ScenarioKind::Stateful,
                Arch::Ws => ScenarioKind::WsEcho,
            },
        }
    }
}

impl From<Server> for String {
    fn from(s: Server) -> String {
        s.label()
    }
}

impl TryFrom<String> for Server {
    type Error = String;

    fn try_from(label: String) -> Result<Self, String> {
        Server::all()
            .find(|s| s.label() == label)
            .ok_or_else(|| format!("{label:?} is not a server of the comparison"))
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

/// What happens to the replicas in a failure cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// One replica is SIGKILLed.
    Kill,
    /// A replica joins.
    Add,
    /// Each replica in turn is drained, SIGTERMed and replaced.
    RollingRestart,
    /// One replica is drained, then SIGTERMed, and not replaced: what an
    /// autoscaler does when load falls.
    ScaleDown,
}

impl Event {
    pub const ALL: [Event; 4] = [
        Event::Kill,
        Event::Add,
        Event::RollingRestart,
        Event::ScaleDown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Event::Kill => "kill",
            Event::Add => "add",
            Event::RollingRestart => "rolling-restart",
            Event::ScaleDown => "scale-down",
        }
    }
}

/// What routes requests over several replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Balancer {
    /// The balancer inside the load generator (no extra hop).
    Embedded,
    /// HAProxy, as a child process.
    Haproxy,
}

impl Balancer {
    pub fn name(self) -> &'static str {
        match self {
            Balancer::Embedded => "embedded",
            Balancer::Haproxy => "haproxy",
        }
    }
}

/// One measured cell of a matrix: the figures the report reads, next to
/// the raw goose result saved beside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    pub matrix: Matrix,
    pub id: String,
    pub server: Server,
    pub scenario: String,
    /// The request whose latency is reported (`GET profile`, `WS echo`, …).
    pub request: String,
    pub users: usize,
    pub replicas: usize,
    pub policy: Option<Policy>,
    pub balancer: Option<Balancer>,
    pub event: Option<Event>,
    pub cart_items: Option<usize>,
    pub connections: Option<usize>,
    pub backplane: Option<bool>,
    pub offered_rps: Option<f64>,
    pub achieved_rps: f64,
    pub wall_secs: f64,
    pub p50_us: Option<u64>,
    pub p90_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub p999_us: Option<u64>,
    pub max_us: Option<u64>,
    /// Every request of the run (logins included).
    pub requests: u64,
    pub failures: u64,
    /// Failed requests by kind: HTTP status, `connect`, `reset`, `timeout`, WebSocket close code (they add up to `failures`).
    pub errors: BTreeMap<String, u64>,
    pub server_cpu_us_per_request: Option<f64>,
    pub server_cpu_cores: Option<f64>,
    /// Redis's own CPU, for the cells that use it (not in the server figure).
    pub store_cpu_cores: Option<f64>,
    pub store_cpu_us_per_request: Option<f64>,
    pub generator_cpu_cores: f64,
    /// Paced sends that went over `loadtests::pacer::LATE` late (a share).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_sends: Option<f64>,
    /// The load generator, not the servers, limited the rate.
    pub generator_bound: bool,
    pub rss_bytes: Vec<u64>,
    /// Requests the servers' /metrics counted, and goose's count of answered ones.
    pub server_counted: Option<u64>,
    pub goose_counted: u64,
    /// Goose and the servers agree within 1% (or nothing to check).
    pub valid: bool,
    pub miss_rate: f64,
    pub sessions_lost: u64,
    /// Of the failures, attempts the balancer sent again to another
    /// replica: the user never saw them fail (see [`Cell::lost`]).
    #[serde(default)]
    pub retried: u64,
    /// Calls the servers made to their session store for the run's
    /// requests (their `statebench_store_calls_total`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_calls: Option<u64>,
    /// Sessions the removed replica held just before a kill or a
    /// scale-down (its own `sessions_live`), for in-memory stores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_on_removed: Option<u64>,
    pub routed: Vec<u64>,
    pub recovery_ms: Option<f64>,
    pub remapped_fraction: Option<f64>,
    pub bytes_per_request: Option<f64>,
    pub delivery_ratio: Option<f64>,
    pub rss_per_connection: Option<f64>,
    /// Where the processes ran and their CPU budgets (`--replica-cpu`…),
    /// or why budgets could not be applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    /// Quota periods in which a budgeted process had work, over the run,
    /// summed over every group (replicas, Redis, HAProxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_periods: Option<u64>,
    /// Of those, the periods in which a process used its whole quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_periods: Option<u64>,
    /// The largest share of its periods any one group was throttled in
    /// (groups with at least
    /// [`super::contention::MIN_PERIODS`] periods of work): near 1 when
    /// one budget (a replica's, or Redis's) was the bottleneck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busiest_throttled: Option<f64>,
    /// Share of the machine's CPU time the hypervisor took away during the
    /// run (`steal`): while it does, every process stalls at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal_share: Option<f64>,
    /// Capacity cells: the highest offered rate that met the SLO (the
    /// other figures are those of that step), the SLO, and every step of
    /// the search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_rps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_p99_us: Option<u64>,
    /// capacity ÷ (replicas × the capacity of one replica of the same
    /// design), and the same for the closed-loop peak (the first step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_efficiency: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_efficiency: Option<f64>,
    /// Capacity cells: each replica's CPU budget and each store node's
    /// (cores, when applied), and the store's nodes (a cluster's masters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_budget: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_budget: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_nodes: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// Autoscaling cells: the ramp, the rule, what the autoscaler did and
    /// every second of the load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Box<super::autoscaler::Record>>,
    pub notes: Vec<String>,
}

/// One load of a capacity search: a closed-loop probe (no offered rate)
/// or a fixed-rate step, and whether it met the SLO.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub offered_rps: Option<f64>,
    pub achieved_rps: f64,
    pub p99_us: Option<u64>,
    /// Failed requests ÷ requests.
    pub error_rate: f64,
    /// Share of the quota periods in which a budgeted process was throttled.
    pub throttled: Option<f64>,
    /// The busiest group's share ([`Cell::busiest_throttled`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busiest_throttled: Option<f64>,
    /// [`Cell::steal_share`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal: Option<f64>,
    /// The busiest budget's used share ([`super::contention::budget_used`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_used: Option<f64>,
    /// The generator's CPU while requests were in flight (cores); and [`Cell::late_sends`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_cores: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_sends: Option<f64>,
    pub generator_bound: bool,
    pub met_slo: bool,
    /// The step was run again for twice as long, because its p99 came
    /// within a third of the SLO or it missed the SLO while no budget was
    /// saturated, and this is the longer run's verdict.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extended: bool,
}

impl Cell {
    /// A cell of `matrix` for `server`, named `id`, on one replica, not yet
    /// measured.
    pub fn new(matrix: Matrix, server: Server, id: String) -> Self {
        Self {
            matrix,
            id,
            server,
            scenario: String::new(),
            request: String::new(),
            users: 0,
            replicas: 1,
            policy: None,
            balancer: None,
            event: None,
            cart_items: None,
            connections: None,
            backplane: None,
            offered_rps: None,
            achieved_rps: 0.0,
            wall_secs: 0.0,
            p50_us: None,
            p90_us: None,
            p99_us: None,
            p999_us: None,
            max_us: None,
            requests: 0,
            failures: 0,
            errors: BTreeMap::new(),
            server_cpu_us_per_request: None,
            server_cpu_cores: None,
            store_cpu_cores: None,
            store_cpu_us_per_request: None,
            generator_cpu_cores: 0.0,
            late_sends: None,
            generator_bound: false,
            rss_bytes: Vec::new(),
            server_counted: None,
            goose_counted: 0,
            valid: false,
            miss_rate: 0.0,
            sessions_lost: 0,
            retried: 0,
            store_calls: None,
            sessions_on_removed: None,
            routed: Vec::new(),
            recovery_ms: None,
            remapped_fraction: None,
            bytes_per_request: None,
            delivery_ratio: None,
            rss_per_connection: None,
            placement: None,
            quota_periods: None,
            throttled_periods: None,
            busiest_throttled: None,
            steal_share: None,
            capacity_rps: None,
            slo_p99_us: None,
            scaling_efficiency: None,
            peak_efficiency: None,
            replica_budget: None,
            store_budget: None,
            store_nodes: None,
            steps: Vec::new(),
            autoscale: None,
            notes: Vec::new(),
        }
    }

    /// Requests whose user saw them fail: the failures less the attempts
    /// that were retried on another replica.
    pub fn lost(&self) -> u64 {
        self.failures.saturating_sub(self.retried)
    }

    /// Latency, rates, errors and routing from a goose result, rates over
    /// `active_s` seconds of load. Errors are
    /// the failed requests by kind; a cell whose kinds do not add up to its
    /// failures is noted (and marked invalid by the caller).
    pub fn fill_from(&mut self, result: &LoadResult, active_s: f64) {
        self.scenario.clone_from(&result.scenario);
        self.request = main_request(&result.scenario).into();
        if let Some(r) = result.get(&self.request) {
            self.p50_us = r.quantile_us(0.5);
            self.p90_us = r.quantile_us(0.9);
            self.p99_us = r.quantile_us(0.99);
            self.p999_us = r.quantile_us(0.999);
            self.max_us = Some(r.max_us);
            // The run's own clock: goose reports whole seconds only.
            self.achieved_rps = r.count() as f64 / active_s.max(1e-3);
            self.miss_rate = result.miss_rate(&self.request);
        }
        self.requests = result.total_requests();
        self.failures = result.total_failures();
        self.errors.clone_from(&result.errors);
        let classified = result.errors_total();
        if classified != self.failures {
            self.notes.push(format!(
                "invalid: {} failures but {classified} errors by kind",
                self.failures
            ));
        }
        self.sessions_lost = result.sessions_lost;
        self.retried = result.retried;
        self.routed.clone_from(&result.routed);
        if result.requests_sent > 0 {
            self.bytes_per_request =
                Some(result.request_bytes as f64 / result.requests_sent as f64);
        }
        self.delivery_ratio = result.delivery_ratio();
    }
}

/// The request whose latency stands for a scenario (by its saved name).
pub fn main_request(scenario: &str) -> &'static str {
    ScenarioKind::ALL
        .into_iter()
        .find(|s| s.name() == scenario)
        .map_or("GET profile", ScenarioKind::main_request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_reads_back_from_its_label() {
        for s in Server::all() {
            assert_eq!(Server::try_from(s.label()), Ok(s));
        }
        assert_eq!(
            Server::Healthz(Arch::Stateless).slug(),
            "healthz-stateless-server"
        );
        assert_eq!(Server::Stateless(TokenAlg::HS256).slug(), "stateless-hs256");
        assert!(Server::try_from("nginx".to_string()).is_err());
    }

    #[test]
    fn cells_keep_their_json_names() {
        let mut c = Cell::new(Matrix::Failures, Server::StatefulMemory, "x".into());
        c.event = Some(Event::RollingRestart);
        c.balancer = Some(Balancer::Embedded);
        c.policy = Some(Policy::ConsistentHash);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["matrix"], "failures");
        assert_eq!(v["server"], "stateful memory");
        assert_eq!(v["event"], "rolling-restart");
        assert_eq!(v["balancer"], "embedded");
        assert_eq!(v["policy"], "consistent-hash");
        let back: Cell = serde_json::from_value(v).unwrap();
        assert_eq!(back.server, Server::StatefulMemory);
    }
}
