//! The wall-clock trend, with noise control. Every repeat measures each
//! figure *and its calibration* back to back (criterion ids in one cargo
//! bench run; load runs in a row), so machine load that slows one slows
//! the other, and their ratio stays put. A figure regresses only when its
//! median ratio grew beyond the threshold *and* every repeat's ratio lies
//! above every baseline repeat's.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Options;
use crate::loadtests::{LoadConfig, ScenarioKind};
use crate::report::env::Environment;
use crate::stats::{max, median, min};

pub const FILE: &str = "latency.json";

/// Pinned criterion ids and the calibration each is divided by.
pub const CRITERION_PAIRS: [(&str, &str); 3] = [
    (
        "token/verify/HS256/cart-0",
        "token/verify/hmac-floor/cart-0",
    ),
    ("request/profile/stateless", "request/healthz"),
    ("request/profile/stateful-memory", "request/healthz"),
];

const CRITERION_FILTER: &str = "^(token/verify/(HS256|hmac-floor)/cart-0|request/(healthz|profile/stateless|profile/stateful-memory))$";

/// Load figures (p50 of the named request) and their calibration.
pub const LOAD_PAIRS: [(&str, &str); 2] = [
    (
        "load/stateless/GET profile/p50",
        "load/healthz/GET healthz/p50",
    ),
    (
        "load/stateful/GET profile/p50",
        "load/healthz/GET healthz/p50",
    ),
];

/// What one `statebench ci` run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trend {
    /// Raw figure per id per repeat, in nanoseconds.
    pub raw_ns: BTreeMap<String, Vec<f64>>,
    /// Figure / calibration per id per repeat.
    pub ratios: BTreeMap<String, Vec<f64>>,
    pub calibration: BTreeMap<String, String>,
    /// goose `--threshold` rules that failed.
    pub threshold_failures: Vec<String>,
}

impl Trend {
    /// An empty trend of these (figure, calibration) pairs.
    fn calibrated<'a>(pairs: impl Iterator<Item = &'a (&'static str, &'static str)>) -> Self {
        Self {
            calibration: pairs
                .map(|(id, cal)| ((*id).into(), (*cal).into()))
                .collect(),
            ..Self::default()
        }
    }
}

/// `results/baseline/latency.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Baseline {
    pub provenance: Environment,
    /// Normalised ratios per id, one per repeat.
    pub ratios: BTreeMap<String, Vec<f64>>,
    pub calibration: BTreeMap<String, String>,
}

impl Baseline {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        super::load_json(&dir.join(FILE))
    }

    pub fn from_trend(t: &Trend, provenance: Environment) -> Self {
        Self {
            provenance,
            ratios: t.ratios.clone(),
            calibration: t.calibration.clone(),
        }
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        super::save_json(&dir.join(FILE), self)
    }
}

/// Measures the pinned set `opts.repeats` times, interleaved.
pub fn measure(opts: &Options) -> anyhow::Result<Trend> {
    let mut t = Trend::calibrated(CRITERION_PAIRS.iter().chain(LOAD_PAIRS.iter()));
    let target = crate::benchrun::target_dir(&opts.root);
    let runtime = tokio::runtime::Runtime::new()?;
    let repeats = opts.repeats.max(1);
    for r in 0..repeats {
        crate::stop::eprintln(&format!(
            "latency trend: repeat {}/{repeats} (criterion)…",
            r + 1
        ));
        let figures = criterion_repeat(&opts.root, opts.cargo_features.as_deref(), &target)?;
        push_criterion(&mut t, &figures)?;
        crate::stop::eprintln(&format!(
            "latency trend: repeat {}/{repeats} (load)…",
            r + 1
        ));
        let load = runtime.block_on(load_repeat(opts, &mut t.threshold_failures))?;
        for (id, cal) in LOAD_PAIRS {
            let (Some(v), Some(c)) = (load.get(id), load.get(cal)) else {
                anyhow::bail!("the load run did not report {id} or {cal}");
            };
            push(&mut t, id, *v, *c, cal);
        }
    }
    Ok(t)
}

/// `--base`: the criterion pairs of the base (built in `base_root`) and of
/// the head, repeat by repeat in A/B order, so that machine load drifting
/// during the run falls on both. Returns the base's trend and the head's.
/// The load pairs are not part of it: they run the servers of the binary
/// that runs the gate, which is the head's.
pub fn measure_against(
    opts: &Options,
    base_root: &Path,
    target: &Path,
) -> anyhow::Result<(Trend, Trend)> {
    let mut base = Trend::calibrated(CRITERION_PAIRS.iter());
    let mut head = Trend::calibrated(CRITERION_PAIRS.iter());
    let repeats = opts.repeats.max(1);
    for r in 0..repeats {
        crate::stop::eprintln(&format!(
            "latency trend: repeat {}/{repeats}, base (criterion)…",
            r + 1
        ));
        push_criterion(&mut base, &criterion_repeat(base_root, None, target)?)?;
        crate::stop::eprintln(&format!(
            "latency trend: repeat {}/{repeats}, head (criterion)…",
            r + 1
        ));
        let figures = criterion_repeat(&opts.root, opts.cargo_features.as_deref(), target)?;
        push_criterion(&mut head, &figures)?;
    }
    Ok((base, head))
}

fn push_criterion(t: &mut Trend, figures: &BTreeMap<String, f64>) -> anyhow::Result<()> {
    for (id, cal) in CRITERION_PAIRS {
        let (Some(v), Some(c)) = (figures.get(id), figures.get(cal)) else {
            anyhow::bail!("criterion did not report {id} or {cal}");
        };
        push(t, id, *v, *c, cal);
    }
    Ok(())
}

fn push(t: &mut Trend, id: &str, v: f64, cal_v: f64, cal: &str) {
    t.raw_ns.entry(id.into()).or_default().push(v);
    t.raw_ns.entry(cal.into()).or_default().push(cal_v);
    t.ratios.entry(id.into()).or_default().push(v / cal_v);
}

/// One short criterion run of the pinned ids in the checkout at `root`,
/// built into `target`; medians in ns.
fn criterion_repeat(
    root: &Path,
    features: Option<&str>,
    target: &Path,
) -> anyhow::Result<BTreeMap<String, f64>> {
    let started = crate::benchrun::Bench {
        benches: &["token", "request"],
        args: &[
            "--warm-up-time",
            "0.5",
            "--measurement-time",
            "1.5",
            "--noplot",
            CRITERION_FILTER,
        ],
        features,
        env: &[],
        quick: false,
        output: crate::benchrun::Output::Null,
        target_dir: Some(target),
    }
    .run(root)?;
    Ok(
        crate::benchrun::read::criterion_figures(target, Some(started))?
            .into_iter()
            .map(|f| (f.id, f.median_ns))
            .collect(),
    )
}

/// Short load runs against in-process servers: healthz, then the two
/// architectures; p50 in ns.
async fn load_repeat(
    opts: &Options,
    failures: &mut Vec<String>,
) -> anyhow::Result<BTreeMap<String, f64>> {
    use crate::server::Arch;
    let mut out = BTreeMap::new();
    for (arch, scenario, request) in [
        (Arch::Stateless, ScenarioKind::Healthz, "GET healthz"),
        (Arch::Stateless, ScenarioKind::Stateless, "GET profile"),
        (Arch::Stateful, ScenarioKind::Stateful, "GET profile"),
    ] {
        let server = arch.spawn_local().await?;
        let mut config = LoadConfig {
            users: 4,
            run_time: Duration::from_secs(2),
            ..LoadConfig::new(server.url(""), scenario)
        };
        for rule in &opts.goose_thresholds {
            config
                .extra_goose_args
                .extend(["--threshold".into(), rule.clone()]);
        }
        if !opts.goose_thresholds.is_empty() {
            config.extra_goose_args.push("--no-threshold-abort".into());
        }
        let result = crate::loadtests::run(&config).await?;
        drop(server);
        failures.extend(
            result
                .threshold_failures
                .iter()
                .map(|f| format!("{} ({})", f, scenario.name())),
        );
        let p50 = result
            .get(request)
            .and_then(|r| r.quantile_us(0.5))
            .ok_or_else(|| {
                anyhow::anyhow!("no {request} samples in the {} run", scenario.name())
            })?;
        out.insert(
            format!("load/{}/{request}/p50", scenario.name()),
            p50 as f64 * 1000.0,
        );
    }
    Ok(out)
}

/// One figure's trend.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: String,
    pub calibration: String,
    pub baseline_median: Option<f64>,
    pub new_median: f64,
    pub change_pct: Option<f64>,
    /// Every new repeat above every baseline repeat (or below, for gains).
    pub outside_spread: bool,
    pub regressed: bool,
}

impl Row {
    pub fn describe(&self) -> String {
        format!(
            "{} / {}: ratio {:.3} → {:.3} ({:+.1}%, outside the repeats' spread)",
            self.id,
            self.calibration,
            self.baseline_median.unwrap_or(f64::NAN),
            self.new_median,
            self.change_pct.unwrap_or(0.0)
        )
    }
}

pub fn compare(base: &Baseline, t: &Trend, threshold_pct: f64) -> Vec<Row> {
    t.ratios
        .iter()
        .map(|(id, new)| {
            let old = base.ratios.get(id).filter(|v| !v.is_empty());
            let new_median = median(new);
            let baseline_median = old.map(|o| median(o));
            let change = baseline_median.map(|b| (new_median / b - 1.0) * 100.0);
            let outside = old.is_some_and(|o| min(new) > max(o));
            Row {
                id: id.clone(),
                calibration: t.calibration.get(id).cloned().unwrap_or_default(),
                baseline_median,
                new_median,
                change_pct: change,
                outside_spread: outside,
                regressed: outside && change.is_some_and(|c| c > threshold_pct),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trend(id: &str, ratios: &[f64]) -> Trend {
        let mut t = Trend::default();
        t.ratios.insert(id.into(), ratios.to_vec());
        t
    }

    #[test]
    fn a_change_must_exceed_the_threshold_and_the_spread() {
        let base = Baseline {
            ratios: [("x".to_string(), vec![2.0, 2.1, 2.4])].into(),
            ..Baseline::default()
        };
        // +20% median but overlapping the baseline's spread: noise.
        let rows = compare(&base, &trend("x", &[2.3, 2.5, 2.6]), 10.0);
        assert!(!rows[0].regressed);
        // Above every baseline repeat and +25%: a regression.
        let rows = compare(&base, &trend("x", &[2.5, 2.6, 2.7]), 10.0);
        assert!(rows[0].regressed, "{rows:?}");
        // Outside the spread but under the threshold: not a regression.
        let rows = compare(&base, &trend("x", &[2.41, 2.42, 2.43]), 20.0);
        assert!(!rows[0].regressed);
    }
}
