//! What dashboards read: Bencher Metric Format (`bmf.json`),
//! github-action-benchmark's `customSmallerIsBetter` (`github-action-benchmark.json`),
//! and a markdown summary for the CI job page (`summary.md`).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::gate::Row;
use super::latency::{self, Trend};
use crate::report::env::Environment;

/// Bencher Metric Format: `{"<name>": {"<measure>": {"value", "lower_value", "upper_value"}}}`.
/// Instructions are their own measure; latency is in nanoseconds, the
/// median of the repeats with their minimum and maximum as bounds.
pub fn bmf(rows: &[Row], trend: Option<&Trend>) -> Value {
    let mut out = Map::new();
    for r in rows {
        if let Some(n) = r.new {
            out.insert(
                format!("instructions/{}", r.id),
                json!({ "instructions": { "value": n as f64 } }),
            );
        }
    }
    if let Some(t) = trend {
        for (id, v) in &t.raw_ns {
            out.insert(
                id.clone(),
                json!({ "latency": {
                    "value": crate::stats::median(v),
                    "lower_value": v.iter().copied().fold(f64::INFINITY, f64::min),
                    "upper_value": v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                }}),
            );
        }
    }
    Value::Object(out)
}

/// github-action-benchmark `customSmallerIsBetter`: `[{name, unit, value, range?}]`.
pub fn github_action_benchmark(rows: &[Row], trend: Option<&Trend>) -> Value {
    let mut out = Vec::new();
    for r in rows {
        if let Some(n) = r.new {
            out.push(json!({ "name": format!("instructions/{}", r.id), "unit": "instructions", "value": n }));
        }
    }
    if let Some(t) = trend {
        for (id, v) in &t.raw_ns {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            out.push(json!({
                "name": id,
                "unit": "ns",
                "value": crate::stats::median(v),
                "range": format!("{:.1}..{:.1}", lo, hi),
                "extra": format!("{} repeats", v.len()),
            }));
        }
    }
    Value::Array(out)
}

pub fn markdown(
    rows: &[Row],
    latency_rows: &[latency::Row],
    regressions: &[String],
    latency_regressions: &[String],
    fail_on_latency: bool,
) -> String {
    let mut md = String::new();
    let verdict = if regressions.is_empty() {
        "no regression"
    } else {
        "REGRESSION"
    };
    let _ = writeln!(md, "## statebench ci: {verdict}\n");
    for r in regressions {
        let _ = writeln!(md, "- ❌ {r}");
    }
    if !fail_on_latency {
        for r in latency_regressions {
            let _ = writeln!(
                md,
                "- ⚠️ latency (warning only; `--fail-on-latency` makes it fail): {r}"
            );
        }
    }
    let _ = writeln!(
        md,
        "\n### Instruction counts (deterministic gate)\n\n| benchmark | baseline | this run | change | threshold | |\n|---|---|---|---|---|---|"
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {}% | {} |",
            r.id,
            r.baseline.map_or("–".into(), |v| v.to_string()),
            r.new.map_or("missing".into(), |v| v.to_string()),
            r.change_pct.map_or("new".into(), |c| format!("{c:+.2}%")),
            r.threshold_pct,
            if r.regressed { "❌" } else { "✅" }
        );
    }
    if !latency_rows.is_empty() {
        let _ = writeln!(
            md,
            "\n### Latency trend (normalised by an in-run calibration)\n\n| figure | ÷ calibration | baseline ratio | this run | change | outside the spread | |\n|---|---|---|---|---|---|---|"
        );
        for r in latency_rows {
            let _ = writeln!(
                md,
                "| `{}` | `{}` | {} | {:.3} | {} | {} | {} |",
                r.id,
                r.calibration,
                r.baseline_median.map_or("–".into(), |v| format!("{v:.3}")),
                r.new_median,
                r.change_pct.map_or("new".into(), |c| format!("{c:+.1}%")),
                if r.outside_spread { "yes" } else { "no" },
                if r.regressed { "⚠️" } else { "✅" }
            );
        }
    }
    md
}

#[allow(clippy::too_many_arguments)]
pub fn write_all(
    dir: &Path,
    rows: &[Row],
    trend: Option<&Trend>,
    latency_rows: &[latency::Row],
    regressions: &[String],
    latency_regressions: &[String],
    provenance: &Environment,
) -> anyhow::Result<()> {
    std::fs::write(
        dir.join("bmf.json"),
        serde_json::to_vec_pretty(&bmf(rows, trend))?,
    )?;
    std::fs::write(
        dir.join("github-action-benchmark.json"),
        serde_json::to_vec_pretty(&github_action_benchmark(rows, trend))?,
    )?;
    let mut md = markdown(rows, latency_rows, regressions, latency_regressions, false);
    let _ = writeln!(
        md,
        "\n<sub>commit {} · {} · {} · {}</sub>",
        provenance.commit,
        provenance.rustc,
        provenance.machine(),
        provenance.generated_at
    );
    std::fs::write(dir.join("summary.md"), md)?;
    if let Some(t) = trend {
        std::fs::write(dir.join("trend.json"), serde_json::to_vec_pretty(t)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmf_has_the_documented_shape() {
        let rows = vec![Row {
            id: "instructions::token_verify".into(),
            baseline: Some(10),
            new: Some(11),
            change_pct: Some(10.0),
            threshold_pct: 2.0,
            regressed: true,
        }];
        let mut t = Trend::default();
        t.raw_ns
            .insert("token/verify/HS256/cart-0".into(), vec![3.0, 1.0, 2.0]);
        let v = bmf(&rows, Some(&t));
        assert_eq!(
            v["instructions/instructions::token_verify"]["instructions"]["value"],
            11.0
        );
        let l = &v["token/verify/HS256/cart-0"]["latency"];
        assert_eq!(l["value"], 2.0);
        assert_eq!(l["lower_value"], 1.0);
        assert_eq!(l["upper_value"], 3.0);
        let g = github_action_benchmark(&rows, Some(&t));
        assert_eq!(g[0]["unit"], "instructions");
        assert_eq!(g[1]["unit"], "ns");
        assert_eq!(g[1]["value"], 2.0);
    }
}
