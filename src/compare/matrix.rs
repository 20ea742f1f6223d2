//! The matrices, cell by cell. Each cell starts its own replicas (fresh
//! state, a fresh Redis key prefix), runs one goose load, reads the
//! servers' CPU, memory and request counters around it, and stops them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use super::external::{self, External, Kind};
use super::fleet::{Launcher, Replica, ServerSpec, Watched, watched};
use super::{BalancerChoice, Cell, Matrix, Options};
use crate::host::proc::cpu_time as proc_cpu;
use crate::host::services::{Haproxy, RedisServer};
use crate::host::tools::installed;
use crate::keys::TokenAlg;
use crate::loadtests::{self, LoadConfig, LoadResult, Policy, ScenarioKind, Shared};

/// Concurrency sweep (pinned lists).
const USERS_FULL: [usize; 6] = [1, 4, 16, 64, 256, 512];
const USERS_QUICK: [usize; 3] = [1, 16, 64];
/// Fixed-rate runs at these fractions of the measured peak.
const RATE_FRACTIONS: [f64; 3] = [0.25, 0.5, 0.75];
const REPLICAS_FULL: [usize; 3] = [1, 2, 4];
const REPLICAS_QUICK: [usize; 1] = [2];
const CART_SIZES: [usize; 3] = [0, 10, 100];
const WS_CONNECTIONS_FULL: [usize; 3] = [100, 1_000, 10_000];
const WS_CONNECTIONS_QUICK: [usize; 2] = [100, 1_000];
/// Users in the horizontal and failure matrices.
const SCALE_USERS: usize = 32;
/// The same, for the report's prose.
pub const SCALE_USERS_DOC: usize = SCALE_USERS;
/// Users in the concurrency matrix's fixed-rate runs.
const RATE_USERS: usize = 64;
/// One offered rate for every HTTP server: CPU per request compared at
/// equal load (a busier server batches more work per wake-up).
pub const EQUAL_RATE: usize = 8_000;
/// The concurrency level whose cells also get goose's HTML report.
const HTML_USERS: usize = 16;
/// Users offering it.
pub const EQUAL_RATE_USERS: usize = 16;

/// One server flavour in the comparison.
#[derive(Clone)]
struct Flavour {
    label: String,
    spec: ServerSpec,
    scenario: ScenarioKind,
}

pub struct Runner {
    opts: Options,
    dir: PathBuf,
    launcher: Launcher,
    redis: Option<RedisServer>,
    haproxy: bool,
    client: reqwest::Client,
    progress: ProgressBar,
    serial: usize,
    /// Commit, toolchain and machine, written into every raw result.
    provenance: String,
    pub cells: Vec<Cell>,
    pub skipped: Vec<String>,
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
        let progress = ProgressBar::new(0).with_style(
            ProgressStyle::with_template(
                "[{elapsed_precise}] {bar:30} {percent:>3}% ETA {eta:>4} {msg}",
            )
            .expect("progress template"),
        );
        let r = Self {
            opts: opts.clone(),
            dir: dir.to_path_buf(),
            launcher: Launcher {
                exe: opts.exe.clone(),
                work: work.to_path_buf(),
            },
            redis,
            haproxy,
            client: reqwest::Client::new(),
            progress,
            serial: 0,
            provenance,
            cells: Vec::new(),
            skipped,
        };
        let planned = r.plan_secs();
        r.progress.set_length(planned);
        Ok(r)
    }

    pub fn finish_progress(&self) {
        self.progress.finish_and_clear();
    }

    fn quick(&self) -> bool {
        self.opts.quick
    }

    fn use_haproxy(&self) -> bool {
        self.haproxy && self.opts.balancer != BalancerChoice::Embedded
    }

    fn use_embedded(&self) -> bool {
        self.opts.balancer != BalancerChoice::Haproxy
    }

    fn users(&self) -> &'static [usize] {
        if self.quick() {
            &USERS_QUICK
        } else {
            &USERS_FULL
        }
    }

    fn replica_counts(&self) -> &'static [usize] {
        if self.quick() {
            &REPLICAS_QUICK
        } else {
            &REPLICAS_FULL
        }
    }

    fn ws_connections(&self) -> &'static [usize] {
        if self.quick() {
            &WS_CONNECTIONS_QUICK
        } else {
            &WS_CONNECTIONS_FULL
        }
    }

    /// Failure cells run long enough to see before, during and after.
    fn failure_time(&self) -> Duration {
        if self.quick() && self.opts.run_time.is_none() {
            Duration::from_secs(5)
        } else {
            self.opts.cell_time() * 3
        }
    }

    /// Seconds the selected matrices should take (for the ETA).
    fn plan_secs(&self) -> u64 {
        let t = self.opts.cell_time().as_secs() + 1;
        let mut total = 0;
        if !self.opts.external.is_empty() {
            let n = self.opts.external.len() as u64;
            let http = self
                .opts
                .external
                .iter()
                .filter(|e| e.kind != Kind::Ws)
                .count() as u64;
            if self.opts.runs(Matrix::Concurrency) {
                total +=
                    n * self.users().len() as u64 * t + http * self.equal_rate_repeats() as u64 * t;
            }
            if self.opts.runs(Matrix::StateSize) {
                total += http * CART_SIZES.len() as u64 * t;
            }
            return total;
        }
        if self.opts.runs(Matrix::Concurrency) {
            let flavours = self.concurrency_flavours().len() as u64;
            total += flavours * self.users().len() as u64 * t
                + (flavours - 1) * self.equal_rate_repeats() as u64 * t
                + 3 * RATE_FRACTIONS.len() as u64 * t;
        }
        if self.opts.runs(Matrix::Horizontal) {
            let flavours = self.scale_flavours().len() as u64;
            let mut balancers = 0;
            if self.use_embedded() {
                balancers += self.replica_counts().len() as u64 * Policy::ALL.len() as u64;
            }
            if self.use_haproxy() {
                balancers += self.replica_counts().iter().filter(|&&n| n > 1).count() as u64
                    * Policy::ALL.len() as u64;
            }
            total += flavours * balancers * t;
        }
        if self.opts.runs(Matrix::Failures) {
            total +=
                (self.scale_flavours().len() as u64 + 1) * 3 * (self.failure_time().as_secs() + 2);
        }
        if self.opts.runs(Matrix::StateSize) {
            total += 2 * CART_SIZES.len() as u64 * t;
        }
        if self.opts.runs(Matrix::Websocket) {
            total += self.ws_connections().len() as u64 * 3 + 2 * t;
        }
        total
    }

    /// A line above the live bar on a terminal, or a plain line elsewhere;
    /// either way it carries the elapsed time and the ETA.
    fn say(&self, line: String) {
        let (done, total) = (
            self.progress.position(),
            self.progress.length().unwrap_or(0),
        );
        let elapsed = self.progress.elapsed().as_secs();
        let eta = (elapsed * total.saturating_sub(done))
            .checked_div(done)
            .map_or("?".into(), |s| format!("{s} s"));
        let line = format!("[{elapsed:>5} s, ETA {eta:>6}] {line}");
        if self.progress.is_hidden() {
            crate::stop::eprintln(&line);
        } else {
            self.progress.println(line);
        }
    }

    fn tick(&self, secs: u64, what: &str) {
        self.progress.inc(secs);
        self.progress.set_message(what.to_owned());
    }

    fn stateless(&self, alg: TokenAlg) -> Flavour {
        let mut spec = ServerSpec::new("stateless");
        spec.alg = alg;
        Flavour {
            label: format!("stateless {}", alg.name()),
            spec,
            scenario: ScenarioKind::Stateless,
        }
    }

    fn stateful_memory(&self) -> Flavour {
        Flavour {
            label: "stateful memory".into(),
            spec: ServerSpec::new("stateful"),
            scenario: ScenarioKind::Stateful,
        }
    }

    fn stateful_redis(&self) -> Option<Flavour> {
        let redis = self.redis.as_ref()?;
        let mut spec = ServerSpec::new("stateful");
        spec.store = redis.url.clone();
        Some(Flavour {
            label: "stateful Redis".into(),
            spec,
            scenario: ScenarioKind::Stateful,
        })
    }

    fn concurrency_flavours(&self) -> Vec<Flavour> {
        let mut v = vec![
            Flavour {
                label: "healthz (stateless server)".into(),
                spec: ServerSpec::new("stateless"),
                scenario: ScenarioKind::Healthz,
            },
            Flavour {
                label: "healthz (stateful server)".into(),
                spec: ServerSpec::new("stateful"),
                scenario: ScenarioKind::Healthz,
            },
            self.stateless(TokenAlg::HS256),
            self.stateless(TokenAlg::RS256),
            self.stateless(TokenAlg::ES256),
            self.stateful_memory(),
        ];
        v.extend(self.stateful_redis());
        v.push(Flavour {
            label: "ws echo".into(),
            spec: ServerSpec::new("ws"),
            scenario: ScenarioKind::WsEcho,
        });
        v
    }

    fn scale_flavours(&self) -> Vec<Flavour> {
        let mut v = vec![self.stateless(TokenAlg::HS256), self.stateful_memory()];
        v.extend(self.stateful_redis());
        v
    }

    pub async fn all(&mut self) -> anyhow::Result<()> {
        if !self.opts.external.is_empty() {
            return self.external().await;
        }
        for m in Matrix::ALL {
            if !self.opts.runs(m) {
                continue;
            }
            self.say(format!("matrix: {}", m.name()));
            match m {
                Matrix::Concurrency => {
                    self.concurrency().await?;
                    self.equal_rate().await?;
                }
                Matrix::Horizontal => self.horizontal().await?,
                Matrix::Failures => self.failures().await?,
                Matrix::StateSize => self.state_size().await?,
                Matrix::Websocket => self.websocket().await?,
            }
        }
        Ok(())
    }

    /// Servers this run did not start (`--target`): after a probe of their
    /// contract, the matrices that make sense for one server of each kind
    /// — concurrency, equal rate, state size.
    async fn external(&mut self) -> anyhow::Result<()> {
        let mut runnable: Vec<(External, bool)> = Vec::new();
        for target in self.opts.external.clone() {
            let contract = external::probe(&target).await;
            for p in &contract.problems {
                self.say(p.clone());
                self.skipped.push(p.clone());
            }
            if target.pid.is_none() {
                self.say(format!(
                    "target {}: server CPU and memory are n/a (give --target-pid {}=PID)",
                    target.kind.name(),
                    target.kind.name()
                ));
            }
            let usable = match target.kind {
                Kind::Ws => contract.ws_echo,
                _ => contract.profile,
            };
            if usable {
                runnable.push((target, contract.cart));
            }
        }
        if runnable.is_empty() {
            return Err(crate::loadtests::TargetError::Unusable(self.skipped.join("; ")).into());
        }
        if self.opts.runs(Matrix::Concurrency) {
            self.say("matrix: concurrency (external servers)".into());
            let t = self.opts.cell_time().as_secs() + 1;
            for (target, _) in &runnable {
                let scenario = match target.kind {
                    Kind::Stateless => ScenarioKind::Stateless,
                    Kind::Stateful => ScenarioKind::Stateful,
                    Kind::Ws => ScenarioKind::WsEcho,
                };
                for &users in self.users() {
                    let id = format!("concurrency/{}/u{users}", slug(&target.kind.label()));
                    self.tick(0, &id);
                    self.check_stop()?;
                    let config = self.config(&target.url, scenario, users);
                    let cell = Cell {
                        matrix: "concurrency".into(),
                        id,
                        server: target.kind.label(),
                        users,
                        replicas: 1,
                        ..Cell::default()
                    };
                    let cell = self.measure(cell, config, &[watch(target)], None).await?;
                    self.push(cell);
                    self.tick(t, "");
                }
            }
            for rep in 0..self.equal_rate_repeats() {
                for (target, _) in runnable.iter().filter(|(t, _)| t.kind != Kind::Ws) {
                    let id = format!(
                        "concurrency/{}/equal-rate/{rep}",
                        slug(&target.kind.label())
                    );
                    self.tick(0, &id);
                    self.check_stop()?;
                    let scenario = if target.kind == Kind::Stateless {
                        ScenarioKind::Stateless
                    } else {
                        ScenarioKind::Stateful
                    };
                    let mut config = self.config(&target.url, scenario, EQUAL_RATE_USERS);
                    config.throttle = Some(EQUAL_RATE);
                    let cell = Cell {
                        matrix: "concurrency".into(),
                        id,
                        server: target.kind.label(),
                        users: EQUAL_RATE_USERS,
                        replicas: 1,
                        offered_rps: Some(EQUAL_RATE as f64),
                        ..Cell::default()
                    };
                    let cell = self.measure(cell, config, &[watch(target)], None).await?;
                    self.push(cell);
                    self.tick(t, "");
                }
            }
        }
        if self.opts.runs(Matrix::StateSize) {
            self.say("matrix: state-size (external servers)".into());
            let t = self.opts.cell_time().as_secs() + 1;
            for (target, _) in runnable
                .iter()
                .filter(|(t, cart)| *cart && t.kind != Kind::Ws)
            {
                for items in CART_SIZES {
                    let id = format!("state-size/{}/cart{items}", slug(&target.kind.label()));
                    self.tick(0, &id);
                    self.check_stop()?;
                    let mut config = self.config(&target.url, ScenarioKind::Cart, 16);
                    config.cart_items = items;
                    let cell = Cell {
                        matrix: "state-size".into(),
                        id,
                        server: target.kind.label(),
                        users: 16,
                        replicas: 1,
                        cart_items: Some(items),
                        ..Cell::default()
                    };
                    let cell = self.measure(cell, config, &[watch(target)], None).await?;
                    self.push(cell);
                    self.tick(t, "");
                }
            }
        }
        Ok(())
    }

    fn check_stop(&self) -> anyhow::Result<()> {
        if super::stopping() {
            anyhow::bail!(
                "interrupted: every child process stopped; cells so far are in cells.json"
            );
        }
        Ok(())
    }

    async fn fleet(&mut self, spec: &ServerSpec, n: usize) -> anyhow::Result<Vec<Replica>> {
        self.check_stop()?;
        self.serial += 1;
        let mut spec = spec.clone();
        spec.redis_prefix = format!("statebench-compare-{}-{}", std::process::id(), self.serial);
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

    fn config(&self, target: &str, scenario: ScenarioKind, users: usize) -> LoadConfig {
        LoadConfig {
            users,
            // Every user running within about a second.
            increase_rate: (users as f64).max(50.0),
            run_time: self.opts.cell_time(),
            reset_metrics: false,
            ..LoadConfig::new(target, scenario)
        }
    }

    /// Runs one cell against fixed replicas and fills in the measurements.
    async fn measure(
        &mut self,
        mut cell: Cell,
        config: LoadConfig,
        replicas: &[Watched],
        proxy: Option<&Haproxy>,
    ) -> anyhow::Result<Cell> {
        let cpu = |rs: &[Watched]| -> Option<Duration> { rs.iter().map(Watched::cpu).sum() };
        let ws = matches!(config.scenario, ScenarioKind::WsEcho | ScenarioKind::WsChat);
        let counted = self.server_count(replicas, ws).await;
        let server0 = cpu(replicas);
        let proxy0 = proxy.and_then(Haproxy::cpu);
        let redis0 = self.redis.as_ref().and_then(RedisServer::cpu);
        let me = std::process::id();
        let gen0 = proc_cpu(me);
        let started = Instant::now();
        let shared = Shared::new(&config);
        let result = loadtests::run_shared(&config, shared.clone()).await?;
        let wall = started.elapsed();
        let gen1 = proc_cpu(me);
        let server1 = cpu(replicas);
        let proxy1 = proxy.and_then(Haproxy::cpu);
        let redis1 = self.redis.as_ref().and_then(RedisServer::cpu);
        let counted_after = self.server_count(replicas, ws).await;
        cell.rss_bytes = replicas.iter().filter_map(Watched::rss_bytes).collect();
        let wall_s = wall.as_secs_f64();
        cell.wall_secs = wall_s;
        fill_from_result(&mut cell, &result, wall_s);
        let cores = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64() / wall_s),
            _ => None,
        };
        cell.generator_cpu_cores = cores(gen0, gen1).unwrap_or(0.0);
        cell.server_cpu_cores = cores(server0, server1);
        if let Some(proxy_cores) = cores(proxy0, proxy1) {
            cell.notes
                .push(format!("HAProxy used {proxy_cores:.2} cores"));
        }
        // Redis serves only the cells that use it; others leave it idle.
        if let Some(redis_cores) = cores(redis0, redis1).filter(|&c| c >= 0.02) {
            cell.notes
                .push(format!("Redis used {redis_cores:.2} cores"));
            cell.store_cpu_cores = Some(redis_cores);
        }
        let goose_count = if ws {
            result
                .requests
                .iter()
                .filter(|(k, _)| *k == "WS echo" || *k == "WS post")
                .map(|(_, r)| r.count())
                .sum()
        } else {
            result.answered()
        };
        cell.goose_counted = goose_count;
        if let (Some(a), Some(b)) = (counted, counted_after) {
            let server = b.saturating_sub(a);
            cell.server_counted = Some(server);
            let diff = server.abs_diff(goose_count) as f64;
            cell.valid = diff <= 0.01 * (server.max(goose_count).max(1) as f64)
                && result.errors_total() == cell.failures;
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
                    Some(server_cores * wall_s * 1e6 / goose_count as f64);
                cell.store_cpu_us_per_request = cell
                    .store_cpu_cores
                    .map(|c| c * wall_s * 1e6 / goose_count as f64);
            }
            let total = server_cores + cell.generator_cpu_cores;
            let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            cell.generator_bound = cell.generator_cpu_cores >= 0.95
                || (total >= 0.85 * ncpu && cell.generator_cpu_cores > server_cores);
        }
        self.save(&cell, &result)?;
        Ok(cell)
    }

    async fn server_count(&self, replicas: &[Watched], ws: bool) -> Option<u64> {
        let mut total = 0;
        for r in replicas {
            let body = self
                .client
                .get(format!("{}/metrics", r.url))
                .send()
                .await
                .ok()?
                .error_for_status()
                .ok()?
                .text()
                .await
                .ok()?;
            total += if ws {
                metric(&body, "statebench_ws_messages_in_total")
            } else {
                super::fleet::count_requests(&body)
            };
        }
        Some(total)
    }

    fn save(&self, cell: &Cell, result: &LoadResult) -> anyhow::Result<()> {
        let name = cell.id.replace('/', "_");
        let mut result = result.clone();
        result.provenance = vec![self.provenance.clone()];
        std::fs::write(
            self.dir.join("raw").join(format!("{name}.json")),
            serde_json::to_vec_pretty(&result)?,
        )?;
        Ok(())
    }

    fn push(&mut self, cell: Cell) {
        let p99 = cell.p99_us.map_or("-".into(), |v| format!("{v} µs"));
        let cpu = cell
            .server_cpu_us_per_request
            .map_or("-".into(), |v| format!("{v:.1} µs CPU/req"));
        let mut line = format!(
            "  {:<48} {:>9.0} req/s  p99 {:>9}  {}",
            cell.id, cell.achieved_rps, p99, cpu
        );
        if cell.failures > 0 {
            line.push_str(&format!("  {} failed", cell.failures));
        }
        if !cell.valid {
            line.push_str("  INVALID");
        }
        self.say(line);
        self.cells.push(cell);
    }

    async fn concurrency(&mut self) -> anyhow::Result<()> {
        let t = self.opts.cell_time().as_secs() + 1;
        for f in self.concurrency_flavours() {
            let mut peak: f64 = 0.0;
            for &users in self.users() {
                let id = format!("concurrency/{}/u{users}", slug(&f.label));
                self.tick(0, &id);
                let replicas = self.fleet(&f.spec, 1).await?;
                let mut config = self.config(&replicas[0].url, f.scenario, users);
                if users == HTML_USERS {
                    // goose's own HTML report, for one representative level.
                    let name = format!("{}.html", id.replace('/', "_"));
                    config.report_file = Some(self.dir.join("raw").join(name));
                }
                let cell = Cell {
                    matrix: "concurrency".into(),
                    id,
                    server: f.label.clone(),
                    users,
                    replicas: 1,
                    ..Cell::default()
                };
                let cell = self
                    .measure(cell, config, &watched(&replicas), None)
                    .await?;
                peak = peak.max(cell.achieved_rps);
                self.push(cell);
                self.tick(t, "");
            }
            let fixed_rate = matches!(f.scenario, ScenarioKind::Stateless | ScenarioKind::Stateful)
                && f.spec.alg == TokenAlg::HS256;
            if !fixed_rate || peak < 4.0 {
                continue;
            }
            for fraction in RATE_FRACTIONS {
                let rate = (peak * fraction).round() as usize;
                let id = format!(
                    "concurrency/{}/rate{}",
                    slug(&f.label),
                    (fraction * 100.0) as u32
                );
                self.tick(0, &id);
                let replicas = self.fleet(&f.spec, 1).await?;
                let mut config = self.config(&replicas[0].url, f.scenario, RATE_USERS);
                config.throttle = Some(rate);
                let cell = Cell {
                    matrix: "concurrency".into(),
                    id,
                    server: f.label.clone(),
                    users: RATE_USERS,
                    replicas: 1,
                    offered_rps: Some(rate as f64),
                    ..Cell::default()
                };
                let cell = self
                    .measure(cell, config, &watched(&replicas), None)
                    .await?;
                self.push(cell);
                self.tick(t, "");
            }
        }
        Ok(())
    }

    /// Every HTTP server at one offered rate, repeated and interleaved
    /// (server A, B, C, … then again), so drift on a shared machine touches
    /// every server alike; the report takes the median of the repeats.
    async fn equal_rate(&mut self) -> anyhow::Result<()> {
        let t = self.opts.cell_time().as_secs() + 1;
        let flavours: Vec<Flavour> = self
            .concurrency_flavours()
            .into_iter()
            .filter(|f| f.scenario != ScenarioKind::WsEcho)
            .collect();
        for rep in 0..self.equal_rate_repeats() {
            for f in &flavours {
                let id = format!("concurrency/{}/equal-rate/{rep}", slug(&f.label));
                self.tick(0, &id);
                let replicas = self.fleet(&f.spec, 1).await?;
                let mut config = self.config(&replicas[0].url, f.scenario, EQUAL_RATE_USERS);
                config.throttle = Some(EQUAL_RATE);
                let cell = Cell {
                    matrix: "concurrency".into(),
                    id,
                    server: f.label.clone(),
                    users: EQUAL_RATE_USERS,
                    replicas: 1,
                    offered_rps: Some(EQUAL_RATE as f64),
                    ..Cell::default()
                };
                let cell = self
                    .measure(cell, config, &watched(&replicas), None)
                    .await?;
                self.push(cell);
                self.tick(t, "");
            }
        }
        Ok(())
    }

    fn equal_rate_repeats(&self) -> usize {
        if self.quick() { 1 } else { 3 }
    }

    async fn horizontal(&mut self) -> anyhow::Result<()> {
        let t = self.opts.cell_time().as_secs() + 1;
        for f in self.scale_flavours() {
            for &n in self.replica_counts() {
                for policy in Policy::ALL {
                    if self.use_embedded() {
                        let id = format!(
                            "horizontal/{}/embedded/{}/r{n}",
                            slug(&f.label),
                            policy.name()
                        );
                        self.tick(0, &id);
                        let replicas = self.fleet(&f.spec, n).await?;
                        let mut config = self.config(&replicas[0].url, f.scenario, SCALE_USERS);
                        config.replicas = replicas.iter().map(|r| r.url.clone()).collect();
                        config.policy = policy;
                        config.reconnect_every = 50;
                        let cell = Cell {
                            matrix: "horizontal".into(),
                            id,
                            server: f.label.clone(),
                            users: SCALE_USERS,
                            replicas: n,
                            policy: Some(policy.name().into()),
                            balancer: Some("embedded".into()),
                            ..Cell::default()
                        };
                        let cell = self
                            .measure(cell, config, &watched(&replicas), None)
                            .await?;
                        self.push(cell);
                        self.tick(t, "");
                    }
                    if self.use_haproxy() && n > 1 {
                        let id = format!(
                            "horizontal/{}/haproxy/{}/r{n}",
                            slug(&f.label),
                            policy.name()
                        );
                        self.tick(0, &id);
                        let replicas = self.fleet(&f.spec, n).await?;
                        let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
                        let proxy = Haproxy::start(&self.launcher.work, policy, &urls).await?;
                        let config = self.config(&proxy.url, f.scenario, SCALE_USERS);
                        let cell = Cell {
                            matrix: "horizontal".into(),
                            id,
                            server: f.label.clone(),
                            users: SCALE_USERS,
                            replicas: n,
                            policy: Some(policy.name().into()),
                            balancer: Some("haproxy".into()),
                            ..Cell::default()
                        };
                        let mut cell = self
                            .measure(cell, config, &watched(&replicas), Some(&proxy))
                            .await?;
                        // HAProxy routes; read the spread from the servers.
                        cell.routed = Vec::new();
                        for r in watched(&replicas) {
                            if let Some(c) = self.server_count(&[r], false).await {
                                cell.routed.push(c);
                            }
                        }
                        self.push(cell);
                        self.tick(t, "");
                    }
                }
            }
        }
        Ok(())
    }

    async fn failures(&mut self) -> anyhow::Result<()> {
        let total = self.failure_time();
        let mut cases: Vec<(Flavour, Policy)> = Vec::new();
        for f in self.scale_flavours() {
            let policy = if f.label == "stateful memory" {
                Policy::Sticky
            } else {
                Policy::RoundRobin
            };
            cases.push((f, policy));
        }
        cases.push((self.stateful_memory(), Policy::ConsistentHash));
        for (f, policy) in cases {
            for event in ["kill", "add", "rolling-restart"] {
                let id = format!("failures/{}/{}/{event}", slug(&f.label), policy.name());
                self.tick(0, &id);
                let cell = self.failure_cell(&f, policy, event, total, id).await?;
                self.push(cell);
                self.tick(total.as_secs() + 2, "");
            }
        }
        Ok(())
    }

    async fn failure_cell(
        &mut self,
        f: &Flavour,
        policy: Policy,
        event: &'static str,
        total: Duration,
        id: String,
    ) -> anyhow::Result<Cell> {
        const N: usize = 3;
        let mut replicas = self.fleet(&f.spec, N).await?;
        let mut config = self.config(&replicas[0].url, f.scenario, SCALE_USERS);
        config.run_time = total;
        config.replicas = replicas.iter().map(|r| r.url.clone()).collect();
        config.policy = policy;
        let shared = Shared::new(&config);
        let mut spec = f.spec.clone();
        spec.redis_prefix = format!("statebench-compare-{}-{}", std::process::id(), self.serial);
        let launcher = self.launcher.clone();
        let at = total / 3;
        let events = {
            let shared = shared.clone();
            let replicas = &mut replicas;
            async move {
                tokio::time::sleep(at).await;
                let t0 = shared.now_us();
                match event {
                    "kill" => replicas[1].kill().await,
                    "add" => {
                        let r = launcher.spawn(&spec, "added").await?;
                        shared.balancer.add(r.url.clone());
                        replicas.push(r);
                    }
                    _ => {
                        let step = total / 3 / N as u32;
                        for (i, replica) in replicas.iter_mut().enumerate() {
                            // Drain: no new requests, then SIGTERM, then a new process.
                            shared.balancer.mark_down(i);
                            replica.terminate(Duration::from_secs(5)).await;
                            let r = launcher.spawn(&spec, &format!("restarted-{i}")).await?;
                            shared.balancer.replace(i, r.url.clone());
                            *replica = r;
                            tokio::time::sleep(step).await;
                        }
                    }
                }
                anyhow::Ok(t0)
            }
        };
        let started = Instant::now();
        let (result, event_at) =
            tokio::join!(loadtests::run_shared(&config, shared.clone()), events);
        let (result, event_at) = (result?, event_at?);
        let wall = started.elapsed().as_secs_f64();
        let mut cell = Cell {
            matrix: "failures".into(),
            id,
            server: f.label.clone(),
            users: SCALE_USERS,
            replicas: N,
            policy: Some(policy.name().into()),
            balancer: Some("embedded".into()),
            event: Some(event.into()),
            wall_secs: wall,
            ..Cell::default()
        };
        fill_from_result(&mut cell, &result, wall);
        cell.valid = result.errors_total() == cell.failures;
        let last = shared
            .last_trouble_us
            .load(std::sync::atomic::Ordering::Relaxed);
        cell.recovery_ms = Some(if last > event_at {
            (last - event_at) as f64 / 1000.0
        } else {
            0.0
        });
        if policy == Policy::ConsistentHash {
            let scratch = loadtests::Balancer::new(
                (0..N).map(|i| format!("http://127.0.0.1:{i}")).collect(),
                policy,
                1,
            );
            cell.remapped_fraction = Some(match event {
                "add" => loadtests::balance::remapped_by(&scratch, 10_000, |b| {
                    b.add("http://127.0.0.1:9".into());
                }),
                _ => loadtests::balance::remapped_fraction(&scratch, 10_000, 1),
            });
        }
        cell.notes
            .push("server CPU not measured: replicas die or join mid-run".into());
        self.save(&cell, &result)?;
        Ok(cell)
    }

    async fn state_size(&mut self) -> anyhow::Result<()> {
        let t = self.opts.cell_time().as_secs() + 1;
        for f in [self.stateless(TokenAlg::HS256), self.stateful_memory()] {
            for items in CART_SIZES {
                let id = format!("state-size/{}/cart{items}", slug(&f.label));
                self.tick(0, &id);
                let replicas = self.fleet(&f.spec, 1).await?;
                let mut config = self.config(&replicas[0].url, ScenarioKind::Cart, 16);
                config.cart_items = items;
                let cell = Cell {
                    matrix: "state-size".into(),
                    id,
                    server: f.label.clone(),
                    users: 16,
                    replicas: 1,
                    cart_items: Some(items),
                    ..Cell::default()
                };
                let cell = self
                    .measure(cell, config, &watched(&replicas), None)
                    .await?;
                self.push(cell);
                self.tick(t, "");
            }
        }
        Ok(())
    }

    async fn websocket(&mut self) -> anyhow::Result<()> {
        let limit = crate::host::limits::open_files();
        for &n in self.ws_connections() {
            let id = format!("websocket/idle/c{n}");
            self.tick(0, &id);
            if limit < n as u64 + 512 {
                self.skipped.push(format!(
                    "{id}: the open-file limit ({limit}) is below {n} connections"
                ));
                self.tick(3, "");
                continue;
            }
            let cell = self.ws_memory(n, id).await?;
            self.push(cell);
            self.tick(3, "");
        }
        let t = self.opts.cell_time().as_secs() + 1;
        let mut backplanes = vec![None];
        if let Some(r) = &self.redis {
            backplanes.push(Some(r.url.clone()));
        }
        for backplane in backplanes {
            let id = format!(
                "websocket/chat/r2/{}",
                if backplane.is_some() {
                    "redis-backplane"
                } else {
                    "no-backplane"
                }
            );
            self.tick(0, &id);
            let mut spec = ServerSpec::new("ws");
            spec.backplane = backplane.clone();
            let replicas = self.fleet(&spec, 2).await?;
            if backplane.is_some() {
                // Let both replicas subscribe before anyone speaks.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let mut config = self.config(&replicas[0].url, ScenarioKind::WsChat, SCALE_USERS);
            config.replicas = replicas.iter().map(|r| r.url.clone()).collect();
            config.policy = Policy::RoundRobin;
            config.room_size = 4;
            let cell = Cell {
                matrix: "websocket".into(),
                id,
                server: "ws chat".into(),
                users: SCALE_USERS,
                replicas: 2,
                backplane: Some(backplane.is_some()),
                ..Cell::default()
            };
            let cell = self
                .measure(cell, config, &watched(&replicas), None)
                .await?;
            self.push(cell);
            self.tick(t, "");
        }
        Ok(())
    }

    /// RSS of a WebSocket server holding `n` idle connections.
    async fn ws_memory(&mut self, n: usize, id: String) -> anyhow::Result<Cell> {
        let replicas = self.fleet(&ServerSpec::new("ws"), 1).await?;
        let server = &replicas[0];
        let url = server.url.replacen("http://", "ws://", 1) + "/ws";
        // Warm the server (first connections allocate runtime structures).
        let warm = open_many(&url, 10).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = server.rss_bytes().unwrap_or(0);
        let started = Instant::now();
        let conns = open_many(&url, n).await?;
        let opened = started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = server.rss_bytes().unwrap_or(0);
        drop(conns);
        drop(warm);
        let per = after.saturating_sub(before) as f64 / n as f64;
        Ok(Cell {
            matrix: "websocket".into(),
            id,
            server: "ws echo".into(),
            scenario: "idle connections".into(),
            replicas: 1,
            connections: Some(n),
            rss_bytes: vec![after],
            rss_per_connection: Some(per),
            achieved_rps: n as f64 / opened.max(1e-9),
            wall_secs: opened,
            valid: true,
            notes: vec![format!(
                "RSS {before} → {after} bytes; rate = connections opened per second"
            )],
            ..Cell::default()
        })
    }
}

fn watch(target: &External) -> Watched {
    Watched {
        url: target.url.clone(),
        pid: target.pid,
    }
}

/// Opens `n` WebSocket connections, 256 at a time.
async fn open_many(url: &str, n: usize) -> anyhow::Result<Vec<loadtests::ws_echo::Socket>> {
    let results: Vec<_> = futures_util::stream::iter(0..n)
        .map(|_| tokio_tungstenite::connect_async(url.to_owned()))
        .buffer_unordered(256)
        .collect()
        .await;
    let mut sockets = Vec::with_capacity(n);
    for r in results {
        sockets.push(
            r.map_err(|e| anyhow::anyhow!("WebSocket connect to {url}: {e}"))?
                .0,
        );
    }
    Ok(sockets)
}

/// Latency, rates, errors and routing from a goose result. Errors are the
/// failed requests by kind; a cell whose kinds do not add up to its
/// failures is noted (and marked invalid by the caller).
fn fill_from_result(cell: &mut Cell, result: &LoadResult, wall_s: f64) {
    cell.scenario.clone_from(&result.scenario);
    cell.request = main_request(&result.scenario).into();
    if let Some(r) = result.get(&cell.request) {
        cell.p50_us = r.quantile_us(0.5);
        cell.p90_us = r.quantile_us(0.9);
        cell.p99_us = r.quantile_us(0.99);
        cell.p999_us = r.quantile_us(0.999);
        cell.max_us = Some(r.max_us);
        // The run's own clock: goose reports whole seconds only.
        cell.achieved_rps = r.count() as f64 / wall_s.max(1e-3);
        cell.miss_rate = result.miss_rate(&cell.request);
    }
    cell.requests = result.total_requests();
    cell.failures = result.total_failures();
    cell.errors.clone_from(&result.errors);
    let classified = result.errors_total();
    if classified != cell.failures {
        cell.notes.push(format!(
            "invalid: {} failures but {classified} errors by kind",
            cell.failures
        ));
    }
    cell.sessions_lost = result.sessions_lost;
    cell.routed.clone_from(&result.routed);
    if result.requests_sent > 0 {
        cell.bytes_per_request = Some(result.request_bytes as f64 / result.requests_sent as f64);
    }
    cell.delivery_ratio = result.delivery_ratio();
}

/// The request whose latency stands for a scenario.
pub fn main_request(scenario: &str) -> &'static str {
    match scenario {
        "healthz" => "GET healthz",
        "cart" => "GET cart",
        "login-storm" => "POST login",
        "ws-echo" => "WS echo",
        "ws-chat" => "WS fanout",
        _ => "GET profile",
    }
}

fn metric(exposition: &str, name: &str) -> u64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn slug(label: &str) -> String {
    label
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            ' ' | '-' => Some('-'),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_path_safe() {
        assert_eq!(
            slug("healthz (stateless server)"),
            "healthz-stateless-server"
        );
        assert_eq!(slug("stateless HS256"), "stateless-hs256");
    }

    #[test]
    fn metric_sums_every_label_set() {
        let text = "statebench_ws_messages_in_total 7\nother 3\n";
        assert_eq!(metric(text, "statebench_ws_messages_in_total"), 7);
    }
}
