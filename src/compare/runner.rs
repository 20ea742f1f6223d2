//! The one recipe every load cell follows ([`Runner::run_cell`]): start
//! fresh replicas (or use the external server), put HAProxy in front when
//! asked, run one goose load shaped by the cell's [`Knobs`], read the
//! servers' CPU, memory and request counters around it ([`Runner::measure`]),
//! save the raw result, and stop everything.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cell::{Cell, Server};
use super::contention::Snapshot;
use super::fleet::{Launcher, Replica, ServerSpec, Watched, watched};
use super::progress::Progress;
use super::usage::{SAMPLE_EVERY, Sample, Span, sample_every};
use super::{BalancerChoice, Options, matrices};
use crate::host::proc::cpu_time;
use crate::host::services::{Haproxy, RedisCluster, RedisServer};
use crate::host::tools::installed;
use crate::loadtests::{self, LoadConfig, LoadResult, Policy, ScenarioKind, Shared, pacer};
use crate::server::Arch;

/// The access-token lifetime of the comparison's hybrid replicas: short,
/// so that a cell of a few seconds sees its users refresh (each one after
/// four fifths of it). A real deployment's 5 minutes refresh 150 times
/// less often per user; the report scales its store figures to it.
pub const HYBRID_ACCESS_TTL_SECS: u64 = 2;

/// How a cell's load differs from its server's plain scenario.
#[derive(Debug, Clone, Default)]
pub struct Knobs {
    /// Another scenario than the server's own (the cart, for state size).
    pub scenario: Option<ScenarioKind>,
    /// A fixed offered rate, requests per second.
    pub throttle: Option<usize>,
    /// Items per cart (the cart scenario).
    pub cart_items: Option<usize>,
    /// Spread the load over the replicas with the embedded balancer.
    pub policy: Option<Policy>,
    /// Reconnect every this many requests (per-connection routing).
    pub reconnect_every: Option<u32>,
    /// Members per chat room.
    pub room_size: Option<usize>,
    /// Route through HAProxy configured for this policy.
    pub haproxy: Option<Policy>,
    /// Give the replicas a chat backplane on the run's Redis.
    pub backplane: bool,
    /// Also write goose's HTML report for this cell.
    pub html_report: bool,
}

pub struct Runner {
    pub opts: Options,
    dir: PathBuf,
    pub launcher: Launcher,
    pub redis: Option<RedisServer>,
    /// A Redis Cluster, while a matrix that measures it runs.
    pub redis_cluster: Option<RedisCluster>,
    haproxy: bool,
    client: reqwest::Client,
    pub progress: Progress,
    serial: usize,
    /// Commit, toolchain and machine, written into every raw result.
    provenance: String,
    pub cells: Vec<Cell>,
    pub skipped: Vec<String>,
    /// Redis's memory per session, if the run measured it.
    pub store_memory: Option<super::matrices::StoreMemory>,
    /// Each design's revocation delay (state-size matrix).
    pub revocation: Vec<super::revocation::Revocation>,
}

impl Runner {
    pub async fn new(
        opts: &Options,
        dir: &Path,
        work: &Path,
        provenance: String,
    ) -> anyhow::Result<Self> {
        let mut skipped = Vec::new();
        let external = !opts.external.is_empty();
        // First: a bad budget is refused before anything is started.
        let placement = std::sync::Arc::new(super::budget::Placement::new(opts.budgets.clone())?);
        let redis = if external {
            None
        } else if installed("redis-server") {
            Some(RedisServer::start(work).await?)
        } else {
            skipped.push(
                "Redis cells (stateful-Redis, chat backplane): redis-server is not installed"
                    .into(),
            );
            None
        };
        let haproxy = !external && installed("haproxy");
        if !external && !haproxy && opts.balancer != BalancerChoice::Embedded {
            skipped.push("HAProxy cells: haproxy is not installed".into());
        }
        for s in &skipped {
            crate::stop::eprintln(&format!("note: skipping {s}"));
        }
        crate::host::limits::raise_open_files();
        if let Some(line) = placement.describe() {
            crate::stop::eprintln(&format!("placement: {line}"));
        }
        if let Some(redis) = &redis {
            placement.place("redis", redis.pid(), super::budget::Role::Store)?;
        }
        let mut r = Self {
            opts: opts.clone(),
            dir: dir.to_path_buf(),
            launcher: Launcher {
                exe: opts.exe.clone(),
                work: work.to_path_buf(),
                placement: Some(placement),
            },
            redis,
            redis_cluster: None,
            haproxy,
            client: reqwest::Client::new(),
            progress: Progress::new(0),
            serial: 0,
            provenance,
            cells: Vec::new(),
            skipped,
            store_memory: None,
            revocation: Vec::new(),
        };
        r.progress = Progress::new(matrices::planned_secs(&r));
        Ok(r)
    }

    pub fn quick(&self) -> bool {
        self.opts.quick
    }

    /// The quick list with `--quick`, else the full one (pinned lists, so
    /// cell names never depend on the machine).
    pub fn sizes<T>(&self, quick: &'static [T], full: &'static [T]) -> &'static [T] {
        if self.quick() { quick } else { full }
    }

    /// Whether this run routes through HAProxy, and through the embedded balancer.
    pub fn use_haproxy(&self) -> bool {
        self.haproxy && self.opts.balancer != BalancerChoice::Embedded
    }

    pub fn use_embedded(&self) -> bool {
        self.opts.balancer != BalancerChoice::Haproxy
    }

    /// Seconds one ordinary cell takes, setup included.
    pub fn cell_secs(&self) -> u64 {
        self.opts.cell_time().as_secs() + 1
    }

    /// Ends the run early when a stop was asked for.
    pub fn check_stop(&self) -> anyhow::Result<()> {
        if super::stopping() {
            anyhow::bail!(
                "interrupted: every child process stopped; cells so far are in cells.json"
            );
        }
        Ok(())
    }

    /// How the replicas of `server` are started (`None` for an external one).
    pub fn spec(&self, server: Server, backplane: bool) -> Option<ServerSpec> {
        let mut spec = ServerSpec::new(server.arch());
        match server {
            Server::Stateless(alg) => spec.alg = alg,
            Server::StatefulRedis | Server::HybridRedis => {
                spec.store = self.redis.as_ref()?.url.clone();
            }
            Server::StatefulRedisCluster => {
                spec.store = self.redis_cluster.as_ref()?.url.clone();
            }
            Server::External(_) => return None,
            _ => {}
        }
        if server.arch() == Arch::Hybrid {
            spec.extra = vec!["--access-ttl".into(), HYBRID_ACCESS_TTL_SECS.to_string()];
        }
        if backplane {
            spec.backplane = Some(self.redis.as_ref()?.url.clone());
        }
        Some(spec)
    }

    /// `n` fresh replicas of `spec`, on a key prefix of their own.
    pub async fn fleet(&mut self, spec: &ServerSpec, n: usize) -> anyhow::Result<Vec<Replica>> {
        self.check_stop()?;
        self.serial += 1;
        let mut spec = spec.clone();
        spec.redis_prefix = self.prefix();
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            v.push(
                self.launcher
                    .spawn(&spec, &format!("{}-{i}", self.serial))
                    .await?,
            );
        }
        Ok(v)
    }

    /// The Redis key prefix of the current fleet.
    pub fn prefix(&self) -> String {
        format!("statebench-compare-{}-{}", std::process::id(), self.serial)
    }

    /// A load on `target`: every user running within about a second, the
    /// cell's run time, metrics kept from the start.
    pub fn config(&self, target: &str, scenario: ScenarioKind, users: usize) -> LoadConfig {
        LoadConfig {
            users,
            increase_rate: (users as f64).max(50.0),
            run_time: self.opts.cell_time(),
            reset_metrics: false,
            retries: self.opts.retries,
            ..LoadConfig::new(target, scenario)
        }
    }

    /// The recipe of every load cell: servers, load, measurements, record.
    pub async fn run_cell(&mut self, cell: Cell, knobs: Knobs) -> anyhow::Result<Cell> {
        self.progress.begin(&cell.id);
        self.check_stop()?;
        let scenario = knobs.scenario.unwrap_or(cell.server.scenario());
        let (replicas, servers) = match cell.server {
            Server::External(arch) => {
                let target = self
                    .opts
                    .external
                    .iter()
                    .find(|e| e.kind == arch)
                    .ok_or_else(|| anyhow::anyhow!("no --target {arch}"))?;
                let watched = Watched {
                    url: target.url.clone(),
                    pid: target.pid,
                };
                (Vec::new(), vec![watched])
            }
            server => {
                let spec = self.spec(server, knobs.backplane).ok_or_else(|| {
                    anyhow::anyhow!("{server} needs Redis, which this run does not have")
                })?;
                let replicas = self.fleet(&spec, cell.replicas).await?;
                let servers = watched(&replicas);
                (replicas, servers)
            }
        };
        let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
        let proxy = match knobs.haproxy {
            Some(policy) => {
                let proxy =
                    Haproxy::start(&self.launcher.work, policy, &urls, self.opts.retries).await?;
                if let Some(p) = &self.launcher.placement {
                    p.place("haproxy", proxy.pid(), super::budget::Role::Store)?;
                }
                Some(proxy)
            }
            None => None,
        };
        if knobs.backplane {
            // Let every replica subscribe before anyone speaks.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let target = proxy.as_ref().map_or(&urls[0], |p| &p.url);
        let mut config = self.config(target, scenario, cell.users);
        config.throttle = knobs.throttle;
        if let Some(items) = knobs.cart_items {
            config.cart_items = items;
        }
        if let Some(policy) = knobs.policy {
            config.replicas = urls;
            config.policy = policy;
        }
        if let Some(every) = knobs.reconnect_every {
            config.reconnect_every = every;
        }
        if let Some(size) = knobs.room_size {
            config.room_size = size;
        }
        if knobs.html_report {
            let name = format!("{}.html", cell.id.replace('/', "_"));
            config.report_files = vec![self.dir.join("raw").join(name)];
        }
        let mut cell = self.measure(cell, config, &servers, proxy.as_ref()).await?;
        if proxy.is_some() {
            // HAProxy routes; read the spread from the servers.
            cell.routed = Vec::new();
            for s in &servers {
                if let Some(c) = self.server_count(std::slice::from_ref(s), false).await {
                    cell.routed.push(c);
                }
            }
        }
        drop(proxy);
        drop(replicas);
        self.record(cell.clone());
        self.progress.advance(self.cell_secs());
        Ok(cell)
    }

    /// CPU time of the store `server` uses: the cluster's nodes together,
    /// or the one Redis.
    fn store_cpu(&self, server: Server) -> Option<Duration> {
        match server {
            Server::StatefulRedisCluster => self.redis_cluster.as_ref()?.cpu(),
            _ => self.redis.as_ref()?.cpu(),
        }
    }

    /// Runs one load against fixed servers and fills in the measurements.
    pub async fn measure(
        &mut self,
        mut cell: Cell,
        config: LoadConfig,
        servers: &[Watched],
        proxy: Option<&Haproxy>,
    ) -> anyhow::Result<Cell> {
        let cpu = |rs: &[Watched]| -> Option<Duration> { rs.iter().map(Watched::cpu).sum() };
        let ws = config.scenario.is_websocket();
        let counted = self.server_count(servers, ws).await;
        let calls = self.store_calls(servers).await;
        let placement = self.launcher.placement.clone();
        let me = std::process::id();
        let shared = Shared::new(&config);
        let design = cell.server;
        let sample = || Sample {
            at_us: shared.now_us(),
            servers: cpu(servers),
            proxy: proxy.and_then(Haproxy::cpu),
            store: self.store_cpu(design),
            generator: cpu_time(me),
        };
        let mut samples = vec![sample()];
        let contention = Snapshot::take(placement.as_deref());
        let started = Instant::now();
        let load = async {
            match placement.as_ref().and_then(|p| p.generator_cores()) {
                Some(cores) => loadtests::run_shared_on(cores, &config, shared.clone()).await,
                None => loadtests::run_shared(&config, shared.clone()).await,
            }
        };
        let result = tokio::select! {
            biased;
            result = load => result?,
            never = sample_every(SAMPLE_EVERY, || samples.push(sample())) => match never {},
        };
        let wall = started.elapsed();
        contention.record(&mut cell, placement.as_deref());
        samples.push(sample());
        // CPU over the time requests were in flight, else over the run.
        let (first_us, last_us) = shared.active_us();
        let span = Span::active(&samples, first_us, last_us).unwrap_or(Span {
            from: samples[0],
            to: samples[samples.len() - 1],
        });
        let counted_after = self.server_count(servers, ws).await;
        if let (Some(a), Some(b)) = (calls, self.store_calls(servers).await) {
            cell.store_calls = Some(b.saturating_sub(a));
        }
        if let Some(p) = &placement {
            cell.placement = p.describe();
        }
        cell.rss_bytes = servers.iter().filter_map(Watched::rss_bytes).collect();
        let wall_s = wall.as_secs_f64();
        cell.wall_secs = wall_s;
        // Rates and CPU over the time requests were in flight (CPU over
        // the whole run when that time was too short to sample).
        let active_s = result.active_secs.filter(|&s| s > 0.0).unwrap_or(wall_s);
        cell.fill_from(&result, active_s);
        cell.generator_cpu_cores = span.cores(|s| s.generator).unwrap_or(0.0);
        cell.server_cpu_cores = span.cores(|s| s.servers);
        if let Some(proxy_cores) = span.cores(|s| s.proxy) {
            cell.notes
                .push(format!("HAProxy used {proxy_cores:.2} cores"));
        }
        // Redis serves only the cells that use it; others leave it idle.
        let uses_redis = matches!(
            cell.server,
            Server::StatefulRedis | Server::StatefulRedisCluster | Server::HybridRedis
        ) || cell.backplane == Some(true);
        if let Some(redis_cores) = span.cores(|s| s.store).filter(|&c| uses_redis || c >= 0.02) {
            cell.notes
                .push(format!("Redis used {redis_cores:.2} cores"));
            cell.store_cpu_cores = Some(redis_cores);
        }
        let goose_count = if ws {
            config
                .scenario
                .counted_requests()
                .iter()
                .filter_map(|name| result.get(name))
                .map(|r| r.count())
                .sum()
        } else {
            result.answered()
        };
        cell.goose_counted = goose_count;
        if let (Some(a), Some(b)) = (counted, counted_after) {
            let server = b.saturating_sub(a);
            cell.server_counted = Some(server);
            // Each user may leave one request in flight when the run ends:
            // answered by the server, abandoned by goose.
            let diff = server.abs_diff(goose_count) as f64;
            let slack = 0.01 * (server.max(goose_count).max(1) as f64) + cell.users as f64;
            cell.valid = diff <= slack && result.errors_total() == cell.failures;
            if !cell.valid {
                cell.notes.push(format!(
                    "invalid: goose counted {goose_count} requests, the servers {server}"
                ));
            }
        } else if !self.opts.external.is_empty() {
            // A server of someone else's: its own counters may not exist.
            cell.valid = result.errors_total() == cell.failures;
            cell.notes
                .push("external: the server's own request counters were not read".into());
        } else {
            cell.valid = false;
            cell.notes.push("invalid: could not read /metrics".into());
        }
        if let Some(server_cores) = cell.server_cpu_cores {
            if goose_count > 0 {
                cell.server_cpu_us_per_request =
                    Some(server_cores * active_s * 1e6 / goose_count as f64);
                cell.store_cpu_us_per_request = cell
                    .store_cpu_cores
                    .map(|c| c * active_s * 1e6 / goose_count as f64);
            }
            cell.late_sends = result.late_share();
            cell.generator_bound = match placement.as_ref().and_then(|p| p.generator_cores()) {
                // On cores of its own, the generator limited the run when
                // it had no CPU left and (paced) its sends fell behind.
                Some(own) => {
                    cell.generator_cpu_cores >= 0.9 * own as f64
                        && cell.late_sends.is_none_or(|l| l >= pacer::LATE_SHARE)
                }
                None => {
                    let total = server_cores + cell.generator_cpu_cores;
                    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
                    cell.generator_cpu_cores >= 0.95
                        || (total >= 0.85 * ncpu && cell.generator_cpu_cores > server_cores)
                }
            };
        }
        self.save(&cell, &result)?;
        Ok(cell)
    }

    /// What the servers' own /metrics counted: HTTP requests, or WebSocket
    /// messages received.
    pub async fn server_count(&self, servers: &[Watched], ws: bool) -> Option<u64> {
        let mut total = 0;
        for r in servers {
            let body = crate::metrics::scrape(&self.client, &r.url).await?;
            total += if ws {
                crate::metrics::sum(&body, "statebench_ws_messages_in_total", None)
            } else {
                crate::metrics::sum(&body, "statebench_http_requests_total", Some("/metrics"))
            };
        }
        Some(total)
    }

    /// The servers' calls to their session store so far (`None` when one
    /// cannot be read, or for servers with no store).
    async fn store_calls(&self, servers: &[Watched]) -> Option<u64> {
        let mut total = 0;
        for r in servers {
            let body = crate::metrics::scrape(&self.client, &r.url).await?;
            if !body.contains("statebench_store_calls_total") {
                return None;
            }
            total += crate::metrics::sum(&body, "statebench_store_calls_total", None);
        }
        Some(total)
    }

    /// The raw goose result of a cell, beside cells.json.
    pub fn save(&self, cell: &Cell, result: &LoadResult) -> anyhow::Result<()> {
        let name = cell.id.replace('/', "_");
        let mut result = result.clone();
        result.provenance = vec![self.provenance.clone()];
        std::fs::write(
            self.dir.join("raw").join(format!("{name}.json")),
            serde_json::to_vec_pretty(&result)?,
        )?;
        Ok(())
    }

    /// Keeps a measured cell and prints its line.
    pub fn record(&mut self, cell: Cell) {
        self.progress.cell(&cell);
        self.cells.push(cell);
    }
}
