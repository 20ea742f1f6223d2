//! `statebench compare`: the scaling comparison. It starts replicas as
//! separate `statebench serve` processes on loopback ports (Redis and
//! HAProxy as child processes when a matrix needs them and they are
//! installed), runs the load matrices, stops everything it started, and
//! writes `results/load/<run>/` and `results/REPORT.md`.
//!
//! - [`cell`]: what a cell records, named by typed values;
//! - [`runner`]: the one recipe every load cell follows, and the
//!   measurements around it;
//! - [`usage`]: the processes' CPU over the part of a load when requests
//!   were in flight;
//! - [`matrices`]: the matrices, one module each;
//! - [`fleet`]: the replicas (`statebench serve` child processes);
//! - [`elastic`]: a replica killed, added, restarted or scaled down
//!   under load;
//! - [`autoscaler`]: the HPA rule over the replicas' CPU, adding and
//!   removing them under a load ramp;
//! - [`budget`]: which cores they run on and the CPU each may use;
//! - [`contention`]: what else held a cell back: its budgets' throttling and
//!   the hypervisor's steal;
//! - [`external`]: servers it did not start (`--target`), and the probe
//!   of their contract;
//! - [`progress`]: the live bar and the per-cell lines;
//! - [`revocation`]: how long a logged-out credential keeps working;
//! - [`report`]: the claims, the markdown and the charts of REPORT.md;
//! - [`plan`]: the fleet a workload needs under each design, from the
//!   capacity cells (`statebench plan`, and a section of REPORT.md);
//! - [`vs`]: `statebench vs`, the servers side by side on a core each.

pub mod autoscaler;
pub mod budget;
pub mod cell;
pub mod contention;
pub mod elastic;
pub mod external;
pub mod fleet;
pub mod matrices;
pub mod plan;
pub mod progress;
pub mod report;
pub mod revocation;
pub mod runner;
pub mod usage;
pub mod vs;

pub use cell::{Balancer, Cell, Event, Server};

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The matrices `--only` can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Matrix {
    /// Users 1 → 256 closed-loop and fixed-rate runs; every architecture.
    Concurrency,
    /// 1, 2, 4 replicas × routing policy (embedded and HAProxy).
    Horizontal,
    /// A replica killed, added, and a rolling restart, with 3 replicas.
    Failures,
    /// The cart at 0, 10, 100 items: bytes and CPU per request.
    StateSize,
    /// WebSocket memory per connection and chat across replicas.
    Websocket,
    /// Capacity at an SLO vs replicas, each replica under a CPU budget.
    Capacity,
    /// A load ramp (low, high, low) with a CPU-based autoscaler adding and
    /// removing budgeted replicas (not in `--quick` unless asked with
    /// `--only`).
    Autoscale,
}

impl Matrix {
    /// In the order they run. Capacity and autoscaling come last: they
    /// pin the load generator to cores of its own, which the others must
    /// not inherit.
    pub const ALL: [Matrix; 7] = [
        Self::Concurrency,
        Self::Horizontal,
        Self::Failures,
        Self::StateSize,
        Self::Websocket,
        Self::Capacity,
        Self::Autoscale,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Concurrency => "concurrency",
            Self::Horizontal => "horizontal",
            Self::Failures => "failures",
            Self::StateSize => "state-size",
            Self::Websocket => "websocket",
            Self::Capacity => "capacity",
            Self::Autoscale => "autoscale",
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
    /// Cores and CPU budgets (`--replica-cpu`, `--store-cpu`,
    /// `--generator-cpus`); nothing is placed without them.
    pub budgets: budget::BudgetOptions,
    /// Retries of a failed request on another replica, by either balancer
    /// (`--retries`).
    pub retries: u32,
    /// The latency objective of the capacity search (`--slo-p99`).
    pub slo_p99: Duration,
}

impl Options {
    pub fn cell_time(&self) -> Duration {
        Duration::from_secs(self.run_time.unwrap_or(if self.quick { 2 } else { 5 }))
    }

    /// Whether matrix `m` runs: every matrix when none is named, except
    /// the autoscaling one in a quick run (its ramp alone would take a
    /// fifth of the quick run's time).
    pub fn runs(&self, m: Matrix) -> bool {
        if self.only.is_empty() {
            return !(self.quick && m == Matrix::Autoscale);
        }
        self.only.contains(&m)
    }
}

/// The capacity matrix's objective when the run gives none (`--slo-p99`).
pub const DEFAULT_SLO_P99: Duration = Duration::from_millis(10);

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
    /// How late each core woke a sleeping thread just before the run: the
    /// machine's own floor under the latencies measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jitter: Vec<crate::host::jitter::Jitter>,
    /// Redis's memory per session (state-size matrix), if measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_memory: Option<matrices::StoreMemory>,
    /// How long each design's credential kept working after logout
    /// (state-size matrix).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocation: Vec<revocation::Revocation>,
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
    let path = report::write(&record, &env, &options.results, &dir)?;
    summarize_in_readme(options, &record, &dir)?;
    Ok(path)
}

/// A full run of the reference servers into the checkout's `results/`
/// also rewrites the README's summary of it (its `<!-- claims -->` block).
fn summarize_in_readme(
    options: &Options,
    record: &RunRecord,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let in_checkout = options.results == options.root.join("results")
        || options.results == std::path::Path::new("results");
    if !in_checkout || record.quick || !record.external.is_empty() || record.partial.is_some() {
        return Ok(());
    }
    let charts = dir.join("charts");
    let charts = charts.strip_prefix(&options.root).unwrap_or(&charts);
    report::markdown::update_readme(
        &options.root.join("README.md"),
        record,
        &charts.display().to_string(),
    )?;
    Ok(())
}

/// Measures how late each core wakes a sleeping thread before any server
/// starts (a second per core, half with `--quick`), and says so when the
/// machine's own delays reach half the SLO.
async fn probe_jitter(
    runner: &mut runner::Runner,
    options: &Options,
) -> Vec<crate::host::jitter::Jitter> {
    use crate::host::jitter;
    let each = std::time::Duration::from_millis(if options.quick { 500 } else { 1000 });
    let cores = crate::host::affinity::allowed();
    let found = tokio::task::spawn_blocking(move || jitter::measure(&cores, each))
        .await
        .unwrap_or_default();
    let Some(worst) = jitter::worst(&found) else {
        return found;
    };
    let ms = |us: u64| us as f64 / 1e3;
    runner.progress.say(format!(
        "machine: a 1 ms sleep woke up to {:.1} ms late (p99.9 {:.1} ms, core {})",
        ms(worst.max_us),
        ms(worst.p999_us),
        worst.core
    ));
    if worst.reaches_half_of(options.slo_p99) {
        runner.progress.say(format!(
            "note: the machine's own wake-up delays reach half the {} ms SLO: p99 \
             figures near the SLO carry them",
            options.slo_p99.as_millis()
        ));
    }
    found
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
    let mut runner = runner::Runner::new(&options, &dir, work.path(), env.one_line()).await?;
    let jitter = probe_jitter(&mut runner, &options).await;
    // Goose prints a line per run on stdout ("All N users launched."); the
    // progress display and results go to stderr and files instead.
    let quiet = crate::stop::silence_stdout();
    let outcome = matrices::run_all(&mut runner).await;
    drop(quiet);
    runner.progress.finish();
    let stopped = crate::stop::requested();
    let record = RunRecord {
        run: options.run_name.clone(),
        quick: options.quick,
        environment: serde_json::to_value(&env)?,
        skipped: runner.skipped.clone(),
        cells: std::mem::take(&mut runner.cells),
        elapsed_secs: started.elapsed().as_secs_f64(),
        partial: stopped.map(|r| format!("stopped by {r}")),
        jitter,
        store_memory: runner.store_memory.take(),
        revocation: std::mem::take(&mut runner.revocation),
        external: options
            .external
            .iter()
            .map(|e| format!("{}={}", e.kind, e.url))
            .collect(),
    };
    drop(runner); // stops every child process
    drop(work);
    std::fs::write(dir.join("cells.json"), serde_json::to_vec_pretty(&record)?)?;
    if stopped.is_none() {
        outcome?;
    }
    let report = report::write(&record, &env, &options.results, &dir)?;
    summarize_in_readme(&options, &record, &dir)?;
    Ok(Outcome { report, stopped })
}

/// Whether a stop was asked for.
pub fn stopping() -> bool {
    crate::stop::requested().is_some()
}
