//! `statebench compare`: the scaling comparison. It starts replicas as
//! separate `statebench serve` processes on loopback ports (Redis and
//! HAProxy as child processes when a matrix needs them and they are
//! installed), runs the load matrices, stops everything it started, and
//! writes `results/load/<run>/` and `results/REPORT.md`.
//!
//! - [`external`]: servers it did not start (`--target`), and the probe
//!   of their contract;
//! - [`fleet`]: the child processes and what /proc says about them;
//! - [`matrix`]: the five matrices, cell by cell;
//! - [`report`]: tables, charts and the claims table.

pub mod external;
pub mod fleet;
pub mod matrix;
pub mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The matrices `--only` can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Matrix {
    /// Users 1 → 512 closed-loop and fixed-rate runs; every architecture.
    Concurrency,
    /// 1, 2, 4 replicas × routing policy (embedded and HAProxy).
    Horizontal,
    /// A replica killed, added, and a rolling restart, with 3 replicas.
    Failures,
    /// The cart at 0, 10, 100 items: bytes and CPU per request.
    StateSize,
    /// WebSocket memory per connection and chat across replicas.
    Websocket,
}

impl Matrix {
    pub const ALL: [Matrix; 5] = [
        Self::Concurrency,
        Self::Horizontal,
        Self::Failures,
        Self::StateSize,
        Self::Websocket,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Concurrency => "concurrency",
            Self::Horizontal => "horizontal",
            Self::Failures => "failures",
            Self::StateSize => "state-size",
            Self::Websocket => "websocket",
        }
    }
}

/// Which balancer the horizontal matrix routes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BalancerChoice {
    /// The balancer inside the load generator (no extra hop).
    Embedded,
    /// HAProxy as a child process (skipped when not installed).
    Haproxy,
    /// Both, one after the other.
    Both,
}

/// Options of one comparison run.
#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    pub only: Vec<Matrix>,
    pub balancer: BalancerChoice,
    /// Seconds per cell (default: 2 with --quick, 5 otherwise).
    pub run_time: Option<u64>,
    /// `results/` (the report) — raw data goes under `results/load/<run>/`.
    pub results: PathBuf,
    pub run_name: String,
    /// The `statebench` binary that serves replicas.
    pub exe: PathBuf,
    /// The checkout (commit and crate versions for the environment).
    pub root: PathBuf,
    /// Servers this run did not start (`--target`); when any is given,
    /// only they are measured.
    pub external: Vec<external::External>,
}

impl Options {
    pub fn cell_time(&self) -> Duration {
        Duration::from_secs(self.run_time.unwrap_or(if self.quick { 2 } else { 5 }))
    }

    pub fn runs(&self, m: Matrix) -> bool {
        self.only.is_empty() || self.only.contains(&m)
    }
}

/// One measured cell of a matrix: the figures the report reads, next to
/// the raw goose result saved beside it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cell {
    pub matrix: String,
    pub id: String,
    /// Server flavour: `stateless HS256`, `stateful memory`, `ws`, …
    pub server: String,
    pub scenario: String,
    /// The request whose latency is reported (`GET profile`, `WS echo`, …).
    pub request: String,
    pub users: usize,
    pub replicas: usize,
    pub policy: Option<String>,
    pub balancer: Option<String>,
    pub event: Option<String>,
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
    pub routed: Vec<u64>,
    pub recovery_ms: Option<f64>,
    pub remapped_fraction: Option<f64>,
    pub bytes_per_request: Option<f64>,
    pub delivery_ratio: Option<f64>,
    pub rss_per_connection: Option<f64>,
    pub notes: Vec<String>,
}

/// Everything a run produced, as saved in `cells.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run: String,
    pub quick: bool,
    pub environment: serde_json::Value,
    pub skipped: Vec<String>,
    pub cells: Vec<Cell>,
    pub elapsed_secs: f64,
    /// The external servers measured (`stateless=URL`, …), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external: Vec<String>,
    /// Set when the run was stopped before its end: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
}

/// Rewrites the report from a run's saved `cells.json` (no measuring).
pub fn report_only(options: &Options) -> anyhow::Result<PathBuf> {
    let dir = options.results.join("load").join(&options.run_name);
    let path = dir.join("cells.json");
    let bytes = std::fs::read(&path)
        .map_err(|e| anyhow::anyhow!("cannot read {} (run compare first): {e}", path.display()))?;
    let record: RunRecord = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a compare record: {e}", path.display()))?;
    let env: crate::report::env::Environment =
        serde_json::from_value(record.environment.clone())
            .map_err(|e| anyhow::anyhow!("{}: environment: {e}", path.display()))?;
    report::write(&record, &env, &options.results, &dir)
}

/// How a comparison ended.
pub struct Outcome {
    pub report: PathBuf,
    /// Why it stopped early, if it did (the report says it is partial).
    pub stopped: Option<crate::stop::Reason>,
}

/// Runs the comparison; returns the path of the report. A stop (a signal,
/// closed output) ends the running cell at once; the cells finished so far
/// are kept and the report is written, marked partial.
pub async fn run(options: Options) -> anyhow::Result<Outcome> {
    let started = std::time::Instant::now();
    // Before anything is written: a rerun replaces committed results, and
    // the commit it names must not read as modified because of that.
    let env = crate::report::env::Environment::capture(&options.root);
    let dir = options.results.join("load").join(&options.run_name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(dir.join("raw"))?;
    let work = tempfile::Builder::new().prefix("statebench-").tempdir()?;
    let mut runner = matrix::Runner::new(&options, &dir, work.path(), env.one_line()).await?;
    // Goose prints a line per run on stdout ("All N users launched."); the
    // progress display and results go to stderr and files instead.
    let quiet = crate::stop::silence_stdout();
    let outcome = runner.all().await;
    drop(quiet);
    runner.finish_progress();
    let stopped = crate::stop::requested();
    let record = RunRecord {
        run: options.run_name.clone(),
        quick: options.quick,
        environment: serde_json::to_value(&env)?,
        skipped: runner.skipped.clone(),
        cells: std::mem::take(&mut runner.cells),
        elapsed_secs: started.elapsed().as_secs_f64(),
        partial: stopped.map(|r| format!("stopped by {r}")),
        external: options
            .external
            .iter()
            .map(|e| format!("{}={}", e.kind.name(), e.url))
            .collect(),
    };
    drop(runner); // stops every child process
    drop(work);
    std::fs::write(dir.join("cells.json"), serde_json::to_vec_pretty(&record)?)?;
    if stopped.is_none() {
        outcome?;
    }
    let report = report::write(&record, &env, &options.results, &dir)?;
    Ok(Outcome { report, stopped })
}

/// Whether a stop was asked for.
pub fn stopping() -> bool {
    crate::stop::requested().is_some()
}
