//! The deterministic gate: instruction counts against the baseline.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::benchrun::read::{Instructions, instruction_counts};
use crate::report::env::Environment;

pub const FILE: &str = "instructions.json";

/// `results/baseline/instructions.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    pub provenance: Environment,
    /// AWS-LC's CPU dispatch while counting: `pinned` or `native`
    /// ([`crate::benchrun::dispatch`]); files without it were native.
    #[serde(default = "native")]
    pub dispatch: String,
    /// Growth that fails the gate, in percent.
    pub default_threshold_pct: f64,
    /// Per-benchmark thresholds, in percent (kept across updates).
    #[serde(default)]
    pub thresholds_pct: BTreeMap<String, f64>,
    /// Instructions (Ir) per benchmark id.
    pub instructions: BTreeMap<String, u64>,
}

impl Default for Baseline {
    fn default() -> Self {
        Self {
            provenance: Environment::default(),
            dispatch: native(),
            default_threshold_pct: 2.0,
            thresholds_pct: BTreeMap::new(),
            instructions: BTreeMap::new(),
        }
    }
}

fn native() -> String {
    crate::benchrun::dispatch::Dispatch::Native.name().into()
}

impl Baseline {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        super::load_json(&dir.join(FILE))
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        super::save_json(&dir.join(FILE), self)
    }

    pub fn threshold(&self, id: &str) -> f64 {
        self.thresholds_pct
            .get(id)
            .copied()
            .unwrap_or(self.default_threshold_pct)
    }
}

/// One benchmark's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: String,
    pub baseline: Option<u64>,
    pub new: Option<u64>,
    pub change_pct: Option<f64>,
    pub threshold_pct: f64,
    pub regressed: bool,
}

impl Row {
    pub fn describe(&self) -> String {
        format!(
            "{}: {} → {} instructions ({:+.2}%, threshold {}%)",
            self.id,
            self.baseline.map_or("–".into(), |v| v.to_string()),
            self.new.map_or("missing".into(), |v| v.to_string()),
            self.change_pct.unwrap_or(0.0),
            self.threshold_pct
        )
    }
}

/// Runs the instruction-count benchmarks of the checkout at `root` into
/// `target` (with `features`); returns their counts.
pub fn measure(
    root: &Path,
    features: Option<&str>,
    target: &Path,
) -> anyhow::Result<Vec<Instructions>> {
    let started = crate::benchrun::Bench {
        benches: &["instructions"],
        args: &["--save-summary=json"],
        features,
        env: &[],
        quick: false,
        // Keep stdout for the summary: the benchmark's own report goes to stderr.
        output: crate::benchrun::Output::Stderr,
        target_dir: Some(target),
    }
    .run(root)?;
    let counts = instruction_counts(target, Some(started))?;
    anyhow::ensure!(
        !counts.is_empty(),
        "the instruction-count benchmarks wrote no summary under {}",
        target.join("gungraun").display()
    );
    Ok(counts)
}

/// Compares counts with the baseline. A benchmark missing from the run is
/// a regression (the gate cannot vouch for it); a new one is not.
pub fn compare(baseline: &Baseline, counts: &[Instructions]) -> Vec<Row> {
    let mut rows: Vec<Row> = counts
        .iter()
        .map(|c| {
            let old = baseline.instructions.get(&c.id).copied();
            let threshold = baseline.threshold(&c.id);
            let change = old.map(|o| (c.instructions as f64 - o as f64) / o.max(1) as f64 * 100.0);
            Row {
                id: c.id.clone(),
                baseline: old,
                new: Some(c.instructions),
                change_pct: change,
                threshold_pct: threshold,
                regressed: change.is_some_and(|ch| ch > threshold),
            }
        })
        .collect();
    for (id, old) in &baseline.instructions {
        if !counts.iter().any(|c| &c.id == id) {
            rows.push(Row {
                id: id.clone(),
                baseline: Some(*old),
                new: None,
                change_pct: None,
                threshold_pct: baseline.threshold(id),
                regressed: true,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(v: &[(&str, u64)]) -> Vec<Instructions> {
        v.iter()
            .map(|(id, n)| Instructions {
                id: (*id).into(),
                instructions: *n,
            })
            .collect()
    }

    #[test]
    fn fails_beyond_the_threshold_only() {
        let mut b = Baseline::default();
        b.instructions.insert("a".into(), 1000);
        b.instructions.insert("b".into(), 1000);
        b.thresholds_pct.insert("b".into(), 10.0);
        let rows = compare(&b, &counts(&[("a", 1021), ("b", 1090), ("c", 5)]));
        let by = |id: &str| rows.iter().find(|r| r.id == id).unwrap();
        assert!(by("a").regressed, "2.1% > 2%");
        assert!(!by("b").regressed, "9% within its own 10%");
        assert!(!by("c").regressed, "new benchmarks do not fail");
        let rows = compare(&b, &counts(&[("a", 1020)]));
        assert!(
            !rows.iter().find(|r| r.id == "a").unwrap().regressed,
            "exactly 2%"
        );
        assert!(
            rows.iter().find(|r| r.id == "b").unwrap().regressed,
            "missing"
        );
    }
}
