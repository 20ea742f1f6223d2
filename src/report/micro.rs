//! `results/micro/`: tables, figures and charts from a `cargo bench` run.
//!
//! Reads criterion's `target/criterion/**/new/{benchmark,estimates}.json`,
//! gungraun's `target/gungraun/**/summary.json` and the files the
//! non-criterion benchmarks write to `target/statebench/`. Nothing here
//! measures: every figure comes from those files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::charts::{self, LineChart, Scale, Series};
use super::env::Environment;
use crate::workload::STORES;

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

/// Human-readable duration.
pub fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

/// Everything the report is built from.
pub struct MicroData {
    pub figures: Vec<Figure>,
    pub instructions: Vec<Instructions>,
    pub memory: Vec<serde_json::Value>,
    pub token_sizes: Vec<serde_json::Value>,
}

impl MicroData {
    pub fn load(target_dir: &Path, since: Option<SystemTime>) -> anyhow::Result<Self> {
        let read_json = |name: &str| -> Vec<serde_json::Value> {
            std::fs::read(target_dir.join("statebench").join(name))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default()
        };
        Ok(Self {
            figures: criterion_figures(target_dir, since)?,
            instructions: instruction_counts(target_dir, since)?,
            memory: read_json("session_memory.json"),
            token_sizes: read_json("token_sizes.json"),
        })
    }

    pub fn get(&self, id: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.id == id)
    }

    fn ns(&self, id: &str) -> Option<f64> {
        self.get(id).map(|f| f.median_ns)
    }

    fn cell(&self, id: &str) -> String {
        self.get(id).map_or("–".into(), |f| {
            format!(
                "{} ± {}",
                fmt_ns(f.median_ns),
                fmt_ns(f.mad_ns).replace(' ', "\u{a0}")
            )
        })
    }

    fn token_bytes(&self, alg: &str, claims: &str) -> Option<u64> {
        self.token_sizes
            .iter()
            .find(|v| v["alg"] == alg && v["claims"] == claims)
            .and_then(|v| v["token_bytes"].as_u64())
    }
}

const ALGS: [&str; 6] = ["HS256", "HS384", "HS512", "RS256", "ES256", "EdDSA"];
const CLAIMS: [&str; 3] = ["cart-0", "cart-10", "cart-100"];
const SIZES: [&str; 3] = ["1000", "100000", "1000000"];
const OPS: [&str; 6] = ["get_hit", "get_miss", "touch", "insert", "remove", "sweep"];
const MIXES: [&str; 3] = ["read-heavy", "churn", "cart"];

/// Writes the report files into `out`; returns the headline findings.
pub fn write(data: &MicroData, env: &Environment, out: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(out)?;
    let caption = env.one_line();
    let findings = findings(data);

    let mut md = String::new();
    writeln!(md, "# Micro-benchmarks\n")?;
    writeln!(
        md,
        "Produced by `cargo run --release -- micro` (criterion, gungraun and the memory measurement in \
         `benches/`). Times are criterion medians ± the median absolute deviation of the samples; \
         every figure is in `figures.csv` / `figures.json` with its 95% confidence interval.\n"
    )?;
    writeln!(md, "{}", env.markdown())?;
    writeln!(md, "## Findings\n")?;
    for f in &findings {
        writeln!(md, "- {f}")?;
    }

    writeln!(md, "\n## Tokens (`benches/token.rs`)\n")?;
    writeln!(md, "![token verify](token_verify.svg)\n")?;
    writeln!(
        md,
        "| algorithm | claims | token bytes | sign | verify | verify ÷ HMAC floor |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    for alg in ALGS.iter().chain(["hmac-floor"].iter()) {
        for claims in CLAIMS {
            let verify = data.ns(&format!("token/verify/{alg}/{claims}"));
            let floor = data.ns(&format!("token/verify/hmac-floor/{claims}"));
            let ratio = match (verify, floor) {
                (Some(v), Some(f)) => format!("{:.1}×", v / f),
                _ => "–".into(),
            };
            let bytes = data
                .token_bytes(if *alg == "hmac-floor" { "HS256" } else { alg }, claims)
                .map_or("–".into(), |b| b.to_string());
            writeln!(
                md,
                "| {alg} | {claims} | {bytes} | {} | {} | {ratio} |",
                data.cell(&format!("token/sign/{alg}/{claims}")),
                data.cell(&format!("token/verify/{alg}/{claims}"))
            )?;
        }
    }
    writeln!(md, "\nRefusals and the size cap (HS256):\n")?;
    writeln!(md, "| case | verify |\n|---|---|")?;
    let at_cap = data
        .token_bytes("HS256", "at-cap")
        .map_or(String::new(), |b| format!(" ({b} bytes)"));
    writeln!(
        md,
        "| largest accepted token{at_cap} | {} |",
        data.cell("token/verify/HS256/at-cap")
    )?;
    writeln!(
        md,
        "| tampered signature (refused) | {} |",
        data.cell("token/verify/HS256/tampered")
    )?;
    writeln!(
        md,
        "| over the 8 KiB cap (refused before decoding) | {} |",
        data.cell("token/verify/HS256/oversize")
    )?;

    writeln!(md, "\n## Session stores (`benches/session_map.rs`)\n")?;
    writeln!(md, "![session-map throughput](session_map.svg)\n")?;
    for op in OPS {
        writeln!(md, "### {op}\n")?;
        writeln!(
            md,
            "| store | 1,000 | 100,000 | 1,000,000 |\n|---|---|---|---|"
        )?;
        let mut rows: Vec<&str> = STORES.to_vec();
        if op == "get_hit" {
            rows.insert(0, "hashmap-floor");
        }
        for store in rows {
            let cells: Vec<String> = SIZES
                .iter()
                .map(|n| data.cell(&format!("session_map/{op}/{store}/{n}")))
                .collect();
            writeln!(md, "| {store} | {} |", cells.join(" | "))?;
        }
        writeln!(md)?;
    }
    let redis: Vec<&Figure> = data
        .figures
        .iter()
        .filter(|f| f.id.contains("/redis/"))
        .collect();
    if !redis.is_empty() {
        writeln!(
            md,
            "### Redis (the shared-store floor: one loopback round trip per operation)\n"
        )?;
        writeln!(md, "| operation | time |\n|---|---|")?;
        for f in redis {
            writeln!(md, "| `{}` | {} |", f.id, data.cell(&f.id))?;
        }
        writeln!(md)?;
    }
    writeln!(
        md,
        "### Mixed workloads at 100,000 sessions (million operations per second)\n"
    )?;
    write!(md, "| store |")?;
    for mix in MIXES {
        write!(md, " {mix} 1 thread | {mix} 2 threads |")?;
    }
    writeln!(md, "\n|---|{}", "---|".repeat(MIXES.len() * 2))?;
    for store in STORES {
        write!(md, "| {store} |")?;
        for mix in MIXES {
            for t in [1, 2] {
                let v = data
                    .get(&format!("session_map/mixed-{mix}/{store}/threads-{t}"))
                    .and_then(Figure::ops_per_sec)
                    .map_or("–".into(), |o| format!("{:.2}", o / 1e6));
                write!(md, " {v} |")?;
            }
        }
        writeln!(md)?;
    }
    writeln!(
        md,
        "\n### Memory per live session (`benches/session_memory.rs`)\n"
    )?;
    writeln!(
        md,
        "Heap bytes requested (exact, from a counting allocator) and growth of resident memory (what the OS \
         gives, with allocator overhead), per session, each store filled in a fresh process.\n"
    )?;
    writeln!(
        md,
        "| store | sessions | heap bytes | RSS bytes |\n|---|---|---|---|"
    )?;
    for m in &data.memory {
        writeln!(
            md,
            "| {} | {} | {:.0} | {:.0} |",
            m["store"].as_str().unwrap_or("?"),
            m["sessions"],
            m["heap_bytes_per_session"].as_f64().unwrap_or(f64::NAN),
            m["rss_bytes_per_session"].as_f64().unwrap_or(f64::NAN)
        )?;
    }

    writeln!(
        md,
        "\n## Per-request cost through the Routers (`benches/request.rs`)\n"
    )?;
    writeln!(md, "![per-request cost](request.svg)\n")?;
    writeln!(md, "| request | time | ÷ /healthz |\n|---|---|---|")?;
    let healthz = data.ns("request/healthz");
    for f in data.figures.iter().filter(|f| f.id.starts_with("request/")) {
        let ratio = healthz.map_or("–".into(), |h| format!("{:.2}×", f.median_ns / h));
        writeln!(
            md,
            "| `{}` | {} | {ratio} |",
            f.id.trim_start_matches("request/"),
            data.cell(&f.id)
        )?;
    }

    writeln!(
        md,
        "\n## Instruction counts (`benches/instructions.rs`, Callgrind)\n"
    )?;
    if data.instructions.is_empty() {
        writeln!(
            md,
            "Not measured in this run (valgrind or gungraun-runner missing)."
        )?;
    } else {
        writeln!(md, "| benchmark | instructions |\n|---|---|")?;
        for i in &data.instructions {
            writeln!(md, "| `{}` | {} |", i.id, i.instructions)?;
        }
    }
    std::fs::write(out.join("README.md"), md)?;

    // Every figure, machine-readable.
    let mut csv = format!(
        "# {caption}\n# crates: {}\nid,median_ns,mad_ns,ci_low_ns,ci_high_ns,ops_per_sec\n",
        env.crates_line()
    );
    for f in &data.figures {
        writeln!(
            csv,
            "{},{:.3},{:.3},{:.3},{:.3},{}",
            f.id,
            f.median_ns,
            f.mad_ns,
            f.ci_low_ns,
            f.ci_high_ns,
            f.ops_per_sec().map_or(String::new(), |o| format!("{o:.1}"))
        )?;
    }
    std::fs::write(out.join("figures.csv"), csv)?;
    let json = serde_json::json!({
        "environment": env,
        "figures": data.figures,
        "instructions": data.instructions,
        "memory_per_session": data.memory,
        "token_sizes": data.token_sizes,
        "findings": findings,
    });
    std::fs::write(out.join("figures.json"), serde_json::to_vec_pretty(&json)?)?;

    draw(data, out, &caption).map_err(|e| anyhow::anyhow!("drawing charts: {e}"))?;
    for chart in ["token_verify.svg", "session_map.svg", "request.svg"] {
        charts::stamp(
            &out.join(chart),
            &format!("{caption} | crates: {}", env.crates_line()),
        )?;
    }
    Ok(findings)
}

fn draw(data: &MicroData, out: &Path, caption: &str) -> Result<(), Box<dyn std::error::Error>> {
    let token_series: Vec<Series> = ALGS
        .iter()
        .chain(["hmac-floor"].iter())
        .map(|alg| Series {
            name: alg.to_string(),
            points: CLAIMS
                .iter()
                .filter_map(|c| {
                    let bytes =
                        data.token_bytes(if *alg == "hmac-floor" { "HS256" } else { alg }, c)?;
                    Some((
                        bytes as f64,
                        data.ns(&format!("token/verify/{alg}/{c}"))? / 1e3,
                    ))
                })
                .collect(),
        })
        .collect();
    charts::line_chart(
        &out.join("token_verify.svg"),
        &LineChart {
            title: "Token verify cost vs token size (carts of 0, 10, 100 items)",
            x_label: "token length (bytes)",
            y_label: "verify time (µs, median)",
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            caption,
        },
        &token_series,
    )?;

    let store_series: Vec<Series> = STORES
        .iter()
        .chain(["hashmap-floor"].iter())
        .map(|store| Series {
            name: store.to_string(),
            points: SIZES
                .iter()
                .filter_map(|n| {
                    let ops = data
                        .get(&format!("session_map/get_hit/{store}/{n}"))?
                        .ops_per_sec()?;
                    Some((n.parse().ok()?, ops / 1e6))
                })
                .collect(),
        })
        .collect();
    charts::line_chart(
        &out.join("session_map.svg"),
        &LineChart {
            title: "Session lookup (get-hit) throughput vs live sessions, 1 thread",
            x_label: "live sessions",
            y_label: "million lookups per second",
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            caption,
        },
        &store_series,
    )?;

    let bars: Vec<(String, f64)> = data
        .figures
        .iter()
        .filter(|f| f.id.starts_with("request/"))
        .map(|f| (f.id.trim_start_matches("request/").to_owned(), f.median_ns))
        .collect();
    charts::bar_chart(
        &out.join("request.svg"),
        "Per-request cost through each Router (no network)",
        "ns per request (median)",
        caption,
        &bars,
    )?;
    Ok(())
}

/// Headline findings computed from the figures (never typed in by hand).
pub fn findings(data: &MicroData) -> Vec<String> {
    let mut out = Vec::new();
    let ns = |id: &str| data.ns(id);
    if let (Some(v), Some(f)) = (
        ns("token/verify/HS256/cart-0"),
        ns("token/verify/hmac-floor/cart-0"),
    ) {
        out.push(format!(
            "An HS256 verify through jsonwebtoken costs {} for the default user's token: {:.1}× the floor of a minimal verify on the same aws-lc-rs HMAC ({}).",
            fmt_ns(v),
            v / f,
            fmt_ns(f)
        ));
    }
    let big = SIZES.last().copied().unwrap_or("1000000");
    if let (Some(v), Some(g)) = (
        ns("token/verify/HS256/cart-0"),
        ns(&format!("session_map/get_hit/dashmap/{big}")),
    ) {
        out.push(format!(
            "One HS256 verify costs as much as {:.0} session lookups in the default store at {} sessions ({} each).",
            v / g,
            big,
            fmt_ns(g)
        ));
    }
    let asym: Vec<String> = ["RS256", "ES256", "EdDSA"]
        .iter()
        .filter_map(|a| {
            ns(&format!("token/verify/{a}/cart-0")).map(|v| format!("{a} {}", fmt_ns(v)))
        })
        .collect();
    if !asym.is_empty() {
        out.push(format!(
            "Asymmetric verify (default user): {}.",
            asym.join(", ")
        ));
    }
    if let (Some(b0), Some(b100), Some(v0), Some(v100)) = (
        data.token_bytes("HS256", "cart-0"),
        data.token_bytes("HS256", "cart-100"),
        ns("token/verify/HS256/cart-0"),
        ns("token/verify/HS256/cart-100"),
    ) {
        out.push(format!(
            "State in the token is paid on every request: a 100-item cart grows the HS256 token from {b0} to {b100} bytes and its verify from {} to {}.",
            fmt_ns(v0),
            fmt_ns(v100)
        ));
    }
    if let Some(t) = ns("token/verify/HS256/tampered") {
        out.push(format!(
            "Refusing a forged HS256 token costs the server {}.",
            fmt_ns(t)
        ));
    }
    if let (Some(g), Some(floor)) = (
        ns(&format!("session_map/get_hit/dashmap/{big}")),
        ns(&format!("session_map/get_hit/hashmap-floor/{big}")),
    ) {
        let verdict = if g <= 100.0 { "meets" } else { "misses" };
        out.push(format!(
            "Default store (dashmap) get-hit at {big} sessions, 1 thread: {} ({verdict} the 100 ns target); an unlocked single-threaded HashMap does {}.",
            fmt_ns(g),
            fmt_ns(floor)
        ));
    }
    let fastest = STORES
        .iter()
        .filter_map(|s| ns(&format!("session_map/get_hit/{s}/{big}")).map(|v| (*s, v)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((s, v)) = fastest {
        out.push(format!(
            "Fastest store for get-hit at {big} sessions: {s} ({}).",
            fmt_ns(v)
        ));
    }
    if let Some(m) = data.memory.iter().find(|m| m["store"] == "dashmap") {
        let rss = m["rss_bytes_per_session"].as_f64().unwrap_or(f64::NAN);
        let heap = m["heap_bytes_per_session"].as_f64().unwrap_or(f64::NAN);
        let verdict = if rss <= 260.0 { "meets" } else { "misses" };
        out.push(format!(
            "Memory per live session in the default store at {} sessions: {heap:.1} B of heap, {rss:.1} B of RSS ({verdict} the 260 B target on RSS).",
            m["sessions"]
        ));
    }
    if let (Some(h), Some(sl), Some(sf)) = (
        ns("request/healthz"),
        ns("request/profile/stateless"),
        ns("request/profile/stateful-memory"),
    ) {
        out.push(format!(
            "Per request through the Router: /healthz {}, stateless /profile {} ({:.2}×), stateful /profile {} ({:.2}×).",
            fmt_ns(h),
            fmt_ns(sl),
            sl / h,
            fmt_ns(sf),
            sf / h
        ));
    }
    out
}
