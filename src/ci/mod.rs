//! `statebench ci`: a latency regression gate that CI can trust.
//!
//! - [`gate`]: the deterministic part. Instruction counts (gungraun under
//!   Callgrind) do not drift with machine load, so each is compared with the
//!   committed baseline in `results/baseline/instructions.json` and fails
//!   beyond a threshold (2% by default, per benchmark if set).
//! - [`latency`]: the wall-clock trend. A pinned set of criterion ids and
//!   short load runs, repeated and interleaved; each figure is divided by a
//!   calibration measured in the same repeat (the raw HMAC floor, `/healthz`),
//!   and a change counts only when it exceeds the threshold *and* leaves the
//!   spread of the repeats. It warns unless `--fail-on-latency`.
//! - [`base`]: `--base REV`, the reference measured on this machine in the
//!   same run (base and head built by one toolchain, counted on one CPU),
//!   instead of the committed baseline; the trend's criterion ids run for
//!   base and head in turn (A/B/A/B).
//! - [`export`]: Bencher Metric Format, github-action-benchmark JSON and a
//!   markdown summary.
//!
//! The counts run with AWS-LC's CPU dispatch pinned to one path
//! ([`crate::benchrun::dispatch`]), so that they do not depend on which
//! CPU the runner has.
//!
//! A committed baseline holds only on the machine it was made on: the
//! gate refuses one made with another rustc or another set of CPU features
//! (exit 2, one line) unless `--allow-foreign-baseline`, which turns its
//! failures into warnings.
//!
//! Exit codes: 0 no regression, 1 regression, 2 could not measure.

pub mod base;
pub mod export;
pub mod gate;
pub mod latency;

use std::path::{Path, PathBuf};

use crate::report::env::Environment;

/// Reads a baseline file; a missing one is an empty baseline.
fn load_json<T: serde::de::DeserializeOwned + Default>(path: &Path) -> anyhow::Result<T> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{} is not a statebench baseline: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// Writes a baseline file as pretty JSON with a final newline.
fn save_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    std::fs::write(path, text)?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The checkout (benches/ and Cargo.toml).
    pub root: PathBuf,
    pub baseline_dir: PathBuf,
    pub out_dir: PathBuf,
    /// Default instruction-count threshold, percent.
    pub threshold_pct: Option<f64>,
    /// Per-benchmark overrides (`id=percent`).
    pub thresholds_for: Vec<(String, f64)>,
    /// Latency: normalised change that counts, percent.
    pub latency_threshold_pct: f64,
    pub repeats: usize,
    pub latency: bool,
    pub fail_on_latency: bool,
    /// goose `--threshold` rules for the load runs (absolute limits).
    pub goose_thresholds: Vec<String>,
    pub update_baseline: bool,
    /// Cargo features to build the benchmarks with (the head only, with
    /// `base`).
    pub cargo_features: Option<String>,
    /// Gate against this commit, measured now, instead of the committed
    /// baseline.
    pub base: Option<String>,
    /// Gate against a baseline from another toolchain or CPU, failures
    /// turned into warnings.
    pub allow_foreign_baseline: bool,
}

/// Why a committed baseline does not hold here, if it does not: it was
/// made with another compiler, on a CPU with other dispatch features, or
/// with AWS-LC's dispatch pinned where this run counts it native (or the
/// other way round).
pub fn foreign(
    baseline: &gate::Baseline,
    here: &Environment,
    dispatch: crate::benchrun::dispatch::Dispatch,
) -> Option<String> {
    let made = &baseline.provenance;
    if made.rustc != here.rustc {
        return Some(format!(
            "made with {:?}, this is {:?}",
            made.rustc, here.rustc
        ));
    }
    if made.cpu_features != here.cpu_features {
        return Some(format!(
            "made on a CPU with features [{}], this one has [{}]",
            made.cpu_features.join(" "),
            here.cpu_features.join(" ")
        ));
    }
    if baseline.dispatch != dispatch.name() {
        return Some(format!(
            "counted with AWS-LC's dispatch {}, this run counts it {}",
            baseline.dispatch,
            dispatch.name()
        ));
    }
    None
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass,
    Regression(Vec<String>),
    CannotMeasure(String),
}

impl Verdict {
    pub fn code(&self) -> u8 {
        match self {
            Self::Pass => 0,
            Self::Regression(_) => 1,
            Self::CannotMeasure(_) => 2,
        }
    }
}

/// Runs the gate (and the trend unless disabled), writes the exports.
pub fn run(opts: &Options) -> Verdict {
    match run_inner(opts) {
        Ok(v) => v,
        Err(e) => Verdict::CannotMeasure(format!("{e:#}")),
    }
}

fn run_inner(opts: &Options) -> anyhow::Result<Verdict> {
    if let Some(missing) = crate::benchrun::instruction_tools_missing() {
        return Ok(Verdict::CannotMeasure(format!(
            "{missing} is not installed (the instruction counts need valgrind and gungraun-runner 0.20)"
        )));
    }
    if !crate::benchrun::is_checkout(&opts.root) {
        return Ok(Verdict::CannotMeasure(format!(
            "run `statebench ci` from the statebench checkout ({} has no benches/)",
            opts.root.display()
        )));
    }
    std::fs::create_dir_all(&opts.out_dir)?;
    let provenance = Environment::capture(&opts.root);
    let target = crate::benchrun::target_dir(&opts.root);
    let committed = gate::Baseline::load(&opts.baseline_dir)?;
    let dispatch = crate::benchrun::dispatch::Dispatch::from_env();
    let worktree = match &opts.base {
        Some(rev) => Some(base::Worktree::add(&opts.root, rev, &target)?),
        None => None,
    };
    let mut foreign_baseline = None;
    let mut baseline = match &worktree {
        Some(worktree) => {
            crate::stop::eprintln(&format!(
                "base {} ({}): cargo bench --bench instructions …",
                opts.base.as_deref().unwrap_or_default(),
                worktree.short()
            ));
            let started = std::time::Instant::now();
            let counts = gate::measure(&worktree.path, None, &target)?;
            crate::stop::eprintln(&format!(
                "base measured in {:.0} s",
                started.elapsed().as_secs_f64()
            ));
            gate::Baseline {
                provenance: Environment::capture(&worktree.path),
                dispatch: dispatch.name().into(),
                instructions: counts
                    .iter()
                    .map(|c| (c.id.clone(), c.instructions))
                    .collect(),
                ..committed
            }
        }
        None => {
            let check = !opts.update_baseline && !committed.instructions.is_empty();
            if let Some(why) = check
                .then(|| foreign(&committed, &provenance, dispatch))
                .flatten()
            {
                let line = format!(
                    "the baseline in {} was {why}; gate against a commit with --base, regenerate it here with --update-baseline, or pass --allow-foreign-baseline",
                    opts.baseline_dir.display()
                );
                if !opts.allow_foreign_baseline {
                    return Ok(Verdict::CannotMeasure(line));
                }
                crate::stop::eprintln(&format!("warning: {line}"));
                foreign_baseline = Some(why);
            }
            committed
        }
    };
    if let Some(t) = opts.threshold_pct {
        baseline.default_threshold_pct = t;
    }
    for (id, t) in &opts.thresholds_for {
        baseline.thresholds_pct.insert(id.clone(), *t);
    }
    crate::stop::eprintln(&format!(
        "instruction counts (AWS-LC dispatch {}): cargo bench --bench instructions …",
        dispatch.name()
    ));
    let started = std::time::Instant::now();
    let counts = gate::measure(&opts.root, opts.cargo_features.as_deref(), &target)?;
    if opts.base.is_some() {
        crate::stop::eprintln(&format!(
            "head measured in {:.0} s",
            started.elapsed().as_secs_f64()
        ));
    }
    let rows = gate::compare(&baseline, &counts);

    let (trend, latency_base) = match (&worktree, opts.latency) {
        (_, false) => (None, latency::Baseline::default()),
        (Some(worktree), true) => match latency::measure_against(opts, &worktree.path, &target) {
            Ok((base_trend, head_trend)) => (
                Some(head_trend),
                latency::Baseline::from_trend(&base_trend, baseline.provenance.clone()),
            ),
            Err(e) => {
                crate::stop::eprintln(&format!(
                    "warning: latency trend not measured against the base: {e:#}"
                ));
                (None, latency::Baseline::default())
            }
        },
        (None, true) => (
            Some(latency::measure(opts)?),
            latency::Baseline::load(&opts.baseline_dir)?,
        ),
    };
    let latency_rows = trend
        .as_ref()
        .map(|t| latency::compare(&latency_base, t, opts.latency_threshold_pct))
        .unwrap_or_default();

    let mut regressions: Vec<String> = rows
        .iter()
        .filter(|r| r.regressed)
        .map(gate::Row::describe)
        .collect();
    let latency_regressions: Vec<String> = latency_rows
        .iter()
        .filter(|r| r.regressed)
        .map(latency::Row::describe)
        .collect();
    let goose_failures: Vec<String> = trend
        .as_ref()
        .map(|t| t.threshold_failures.clone())
        .unwrap_or_default();
    if opts.fail_on_latency {
        regressions.extend(latency_regressions.iter().cloned());
    }
    regressions.extend(
        goose_failures
            .iter()
            .map(|f| format!("goose threshold failed: {f}")),
    );

    export::write_all(
        &opts.out_dir,
        &rows,
        trend.as_ref(),
        &latency_rows,
        &regressions,
        &latency_regressions,
        &provenance,
    )?;
    crate::stop::print(&export::markdown(
        &rows,
        &latency_rows,
        &regressions,
        &latency_regressions,
        opts.fail_on_latency,
    ));

    if opts.update_baseline {
        baseline.provenance = provenance.clone();
        baseline.dispatch = dispatch.name().into();
        baseline.instructions = counts
            .iter()
            .map(|c| (c.id.clone(), c.instructions))
            .collect();
        baseline.save(&opts.baseline_dir)?;
        if let Some(t) = &trend {
            latency::Baseline::from_trend(t, provenance).save(&opts.baseline_dir)?;
        }
        crate::stop::eprintln(&format!(
            "baseline updated in {}",
            opts.baseline_dir.display()
        ));
        return Ok(Verdict::Pass);
    }
    if baseline.instructions.is_empty() {
        return Ok(Verdict::CannotMeasure(format!(
            "no baseline in {} (create it with --update-baseline)",
            opts.baseline_dir.display()
        )));
    }
    if let Some(why) = foreign_baseline {
        for r in &regressions {
            crate::stop::eprintln(&format!("warning (foreign baseline, {why}): {r}"));
        }
        return Ok(Verdict::Pass);
    }
    Ok(if regressions.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Regression(regressions)
    })
}
