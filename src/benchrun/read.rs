//! Typed readers of what the benchmarks wrote under the target dir:
//! criterion's `criterion/**/new/{benchmark,estimates}.json` and gungraun's
//! `gungraun/**/summary.json`. Nothing here measures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// One criterion benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub id: String,
    pub median_ns: f64,
    /// Median absolute deviation of the samples.
    pub mad_ns: f64,
    pub ci_low_ns: f64,
    pub ci_high_ns: f64,
    /// Operations per iteration, when the benchmark declared a throughput.
    pub elements: Option<u64>,
}

impl Figure {
    /// Operations per second at the median.
    pub fn ops_per_sec(&self) -> Option<f64> {
        self.elements.map(|e| e as f64 * 1e9 / self.median_ns)
    }
}

/// One instruction-count benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct Instructions {
    pub id: String,
    pub instructions: u64,
}

#[derive(Deserialize)]
struct BenchmarkJson {
    full_id: String,
    throughput: Option<BTreeMap<String, u64>>,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
    confidence_interval: Option<Interval>,
}

#[derive(Deserialize)]
struct Interval {
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Deserialize)]
struct EstimatesJson {
    median: Estimate,
    median_abs_dev: Estimate,
}

fn walk(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, name, out);
        } else if p.file_name().is_some_and(|n| n == name) {
            out.push(p);
        }
    }
}

fn modified(p: &Path) -> SystemTime {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// criterion results under `target_dir`, newer than `since` if given.
pub fn criterion_figures(
    target_dir: &Path,
    since: Option<SystemTime>,
) -> anyhow::Result<Vec<Figure>> {
    let mut files = Vec::new();
    walk(&target_dir.join("criterion"), "benchmark.json", &mut files);
    let mut out = Vec::new();
    for f in files {
        if f.parent()
            .and_then(Path::file_name)
            .is_none_or(|n| n != "new")
        {
            continue;
        }
        if since.is_some_and(|s| modified(&f) < s) {
            continue;
        }
        let b: BenchmarkJson = serde_json::from_slice(&std::fs::read(&f)?)?;
        let e: EstimatesJson =
            serde_json::from_slice(&std::fs::read(f.with_file_name("estimates.json"))?)?;
        let ci = e.median.confidence_interval.as_ref();
        out.push(Figure {
            id: b.full_id,
            median_ns: e.median.point_estimate,
            mad_ns: e.median_abs_dev.point_estimate,
            ci_low_ns: ci.map_or(f64::NAN, |c| c.lower_bound),
            ci_high_ns: ci.map_or(f64::NAN, |c| c.upper_bound),
            elements: b.throughput.and_then(|t| t.get("Elements").copied()),
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// gungraun instruction counts under `target_dir`.
pub fn instruction_counts(
    target_dir: &Path,
    since: Option<SystemTime>,
) -> anyhow::Result<Vec<Instructions>> {
    let mut files = Vec::new();
    walk(&target_dir.join("gungraun"), "summary.json", &mut files);
    let mut out = Vec::new();
    for f in files {
        if since.is_some_and(|s| modified(&f) < s) {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f)?)?;
        let ir = v["profiles"][0]["data"]["parts"][0]["metrics"]["Ir"]["values"]["new"].as_u64();
        let (Some(func), Some(id), Some(ir)) = (v["function_name"].as_str(), v["id"].as_str(), ir)
        else {
            continue;
        };
        out.push(Instructions {
            id: format!("{func}/{id}"),
            instructions: ir,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}
