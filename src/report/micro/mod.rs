//! `results/micro/`: tables, figures and charts from a `cargo bench` run.
//!
//! The figures come from the files the benchmarks wrote, read by
//! [`crate::benchrun::read`] (criterion, gungraun) and from
//! `target/statebench/` (the non-criterion benchmarks). Nothing here
//! measures. The rows follow the registries: token algorithms
//! ([`TokenAlg::ALL`]), stores ([`store_names`]), sizes and mixes
//! ([`crate::workload`]).
//!
//! - this file: the data and the markdown;
//! - `charts`: the SVG charts;
//! - [`findings()`]: the headline findings, from ratios measured in one run.

mod charts;
mod findings;

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

pub use findings::findings;

use super::env::Environment;
use crate::benchrun::read::{Figure, Instructions, criterion_figures, instruction_counts};
use crate::keys::TokenAlg;
use crate::session::memory::store_names;

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

    pub(crate) fn ns(&self, id: &str) -> Option<f64> {
        self.get(id).map(|f| f.median_ns)
    }

    pub(crate) fn cell(&self, id: &str) -> String {
        self.get(id).map_or("–".into(), |f| {
            format!(
                "{} ± {}",
                fmt_ns(f.median_ns),
                fmt_ns(f.mad_ns).replace(' ', "\u{a0}")
            )
        })
    }

    pub(crate) fn token_bytes(&self, alg: &str, claims: &str) -> Option<u64> {
        self.token_sizes
            .iter()
            .find(|v| v["alg"] == alg && v["claims"] == claims)
            .and_then(|v| v["token_bytes"].as_u64())
    }
}

/// Every signing algorithm, by name.
fn algs() -> Vec<&'static str> {
    TokenAlg::ALL.iter().map(|a| a.name()).collect()
}

/// The verify floor measured for an algorithm (`benches/token.rs`).
fn floor_of(alg: &str) -> Option<&'static str> {
    match alg {
        "HS256" => Some("hmac-floor"),
        "RS256" => Some("rs256-floor"),
        "ES256" => Some("es256-floor"),
        "EdDSA" => Some("eddsa-floor"),
        _ => None,
    }
}

/// The claim sets of the token benchmarks (`cart-N`).
fn claims() -> Vec<String> {
    crate::workload::CART_SIZES
        .iter()
        .map(|n| format!("cart-{n}"))
        .collect()
}

/// The live-session counts of the session benchmarks.
fn sizes() -> Vec<String> {
    crate::workload::SIZES
        .iter()
        .map(|n| n.to_string())
        .collect()
}

/// The named operation mixes.
fn mixes() -> Vec<&'static str> {
    crate::workload::MIXES.iter().map(|m| m.name).collect()
}

/// The single operations of `benches/session_map.rs`.
const OPS: [&str; 7] = [
    "get_hit",
    "get_hit_chained",
    "get_miss",
    "touch",
    "insert",
    "remove",
    "sweep",
];

/// The floors `benches/session_map.rs` measures beside the stores' reads.
const FLOORS: [&str; 2] = ["hashmap-floor", "boxed-floor"];

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
        "`verify` is the servers' verifier (key prepared once, one parse of each part); \
         `jsonwebtoken::decode` is the same rules as most services call them (key material \
         re-read, header and claims parsed twice); the floor is a minimal full verify with a \
         key prepared once (split, signature, claims, `exp`) and no other rule.\n"
    )?;
    writeln!(
        md,
        "| algorithm | claims | token bytes | sign | verify | jsonwebtoken::decode | floor | verify ÷ floor |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    for alg in algs() {
        for claims in claims() {
            let verify = data.ns(&format!("token/verify/{alg}/{claims}"));
            let floor = floor_of(alg).and_then(|f| data.ns(&format!("token/verify/{f}/{claims}")));
            let ratio = match (verify, floor) {
                (Some(v), Some(f)) => format!("{:.2}×", v / f),
                _ => "–".into(),
            };
            let floor_cell = floor_of(alg).map_or("–".into(), |f| {
                data.cell(&format!("token/verify/{f}/{claims}"))
            });
            let bytes = data
                .token_bytes(alg, &claims)
                .map_or("–".into(), |b| b.to_string());
            writeln!(
                md,
                "| {alg} | {claims} | {bytes} | {} | {} | {} | {floor_cell} | {ratio} |",
                data.cell(&format!("token/sign/{alg}/{claims}")),
                data.cell(&format!("token/verify/{alg}/{claims}")),
                data.cell(&format!("token/verify-jsonwebtoken/{alg}/{claims}")),
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
        let mut rows: Vec<&str> = store_names();
        if op.starts_with("get_hit") {
            rows.splice(0..0, FLOORS);
        }
        for store in rows {
            let cells: Vec<String> = sizes()
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
    for mix in mixes() {
        write!(md, " {mix} 1 thread | {mix} 2 threads |")?;
    }
    writeln!(md, "\n|---|{}", "---|".repeat(mixes().len() * 2))?;
    for store in store_names() {
        write!(md, "| {store} |")?;
        for mix in mixes() {
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
        "\n## Refresh-token rotation (`benches/refresh.rs`)\n\n\
         The hybrid server's store write per refresh, without HTTP or signing: read the family, \
         compare the presented secret's SHA-256, store the next one's by the store's \
         compare-and-set. The floor is the same work on an unlocked `HashMap`.\n"
    )?;
    writeln!(md, "| rotation | time | ÷ floor |\n|---|---|---|")?;
    let floor = data.ns("refresh/rotate/hashmap-floor");
    for f in data.figures.iter().filter(|f| f.id.starts_with("refresh/")) {
        let ratio = floor.map_or("–".into(), |h| format!("{:.2}×", f.median_ns / h));
        writeln!(
            md,
            "| `{}` | {} | {ratio} |",
            f.id.trim_start_matches("refresh/rotate/"),
            data.cell(&f.id)
        )?;
    }

    writeln!(
        md,
        "\n## Instruction counts (`benches/instructions.rs`, Callgrind, AWS-LC's native CPU dispatch)\n"
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

    charts::draw(data, out, &caption).map_err(|e| anyhow::anyhow!("drawing charts: {e}"))?;
    for chart in ["token_verify.svg", "session_map.svg", "request.svg"] {
        crate::report::charts::stamp(
            &out.join(chart),
            &format!("{caption} | crates: {}", env.crates_line()),
        )?;
    }
    Ok(findings)
}
