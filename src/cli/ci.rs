//! `statebench ci`: the regression gate's flags, and its exit code as the
//! verdict.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct CiArgs {
    /// Fail when an instruction count grows more than this many percent
    /// (default: the baseline file's, 2).
    #[arg(long, value_name = "PCT")]
    pub threshold: Option<f64>,
    /// A threshold for one benchmark, as ID=PCT (repeatable), e.g.
    /// `instructions::token_verify=5`.
    #[arg(long, value_name = "ID=PCT", value_parser = parse_override)]
    pub threshold_for: Vec<(String, f64)>,
    /// Skip the latency trend (instruction counts only: the fast, deterministic gate).
    #[arg(long)]
    pub no_latency: bool,
    /// Make latency regressions fail the gate (they only warn by default).
    #[arg(long)]
    pub fail_on_latency: bool,
    /// Normalised latency growth that counts as a regression, percent
    /// (it must also fall outside the spread of the repeats).
    #[arg(long, value_name = "PCT", default_value_t = 15.0)]
    pub latency_threshold: f64,
    /// Repeats of the latency set (interleaved).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub repeats: usize,
    /// An absolute goose rule for the load runs, e.g. "p99<5ms" (repeatable;
    /// a failing rule fails the gate).
    #[arg(long = "goose-threshold", value_name = "RULE")]
    pub goose_threshold: Vec<String>,
    /// Rewrite the baseline files from this run (commit, toolchain and
    /// machine are recorded in them).
    #[arg(long)]
    pub update_baseline: bool,
    /// Baseline directory.
    #[arg(long, value_name = "DIR", default_value = "results/baseline")]
    pub baseline: PathBuf,
    /// Where to write bmf.json, github-action-benchmark.json and summary.md.
    #[arg(long, value_name = "DIR", default_value = "target/statebench-ci")]
    pub out: PathBuf,
    /// Cargo features to build the benchmarks with (`inject-slowdown`
    /// proves the gate catches a regression; with --base, the head only).
    #[arg(long, value_name = "FEATURES")]
    pub cargo_features: Option<String>,
    /// Gate against this commit (a branch, tag or hash), checked out in a
    /// git worktree and measured now on this machine with this toolchain,
    /// instead of the committed baseline. Pull requests: the merge base.
    #[arg(long, value_name = "REV", conflicts_with = "update_baseline")]
    pub base: Option<String>,
    /// Gate against a committed baseline made with another rustc or on a CPU
    /// with other features (refused otherwise, exit 2); its failures only warn.
    #[arg(long)]
    pub allow_foreign_baseline: bool,
}

fn parse_override(s: &str) -> Result<(String, f64), String> {
    let (id, pct) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("expected ID=PCT, got {s:?}"))?;
    let pct: f64 = pct
        .parse()
        .map_err(|_| format!("{pct:?} is not a number of percent"))?;
    if id.is_empty() || !(0.0..=1000.0).contains(&pct) {
        return Err(format!("expected ID=PCT with PCT in 0..=1000, got {s:?}"));
    }
    Ok((id.to_owned(), pct))
}

/// `statebench ci`: the gate; its exit code is the verdict.
pub fn ci(args: CiArgs) -> ExitCode {
    use crate::ci::{Options, Verdict};
    let root = match std::env::current_dir() {
        Ok(r) => r,
        Err(e) => {
            crate::stop::eprintln(&format!("error: {e}"));
            return ExitCode::from(2);
        }
    };
    let opts = Options {
        root,
        baseline_dir: args.baseline,
        out_dir: args.out,
        threshold_pct: args.threshold,
        thresholds_for: args.threshold_for,
        latency_threshold_pct: args.latency_threshold,
        repeats: args.repeats.max(1),
        latency: !args.no_latency,
        fail_on_latency: args.fail_on_latency,
        goose_thresholds: args.goose_threshold,
        update_baseline: args.update_baseline,
        cargo_features: args.cargo_features,
        base: args.base,
        allow_foreign_baseline: args.allow_foreign_baseline,
    };
    let verdict = crate::ci::run(&opts);
    crate::stop::kill_children();
    if let Some(r) = crate::stop::requested() {
        crate::stop::eprintln(&format!("statebench ci: stopped by {r}; no verdict"));
        return ExitCode::from(r.exit_code());
    }
    match &verdict {
        Verdict::Pass => crate::stop::eprintln("statebench ci: no regression"),
        Verdict::Regression(r) => {
            crate::stop::eprintln(&format!("statebench ci: {} regression(s)", r.len()));
            for line in r {
                crate::stop::eprintln(&format!("  {line}"));
            }
        }
        Verdict::CannotMeasure(why) => {
            crate::stop::eprintln(&format!("statebench ci: could not measure: {why}"));
        }
    }
    ExitCode::from(verdict.code())
}
