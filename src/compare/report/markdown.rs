//! The text of REPORT.md: the run's provenance, the claims and targets,
//! and one section per matrix with a one-line legend above each table.
//! Also the README's summary block, from the same claims.

use std::fmt::Write as _;
use std::path::Path;

use super::Cells;
use super::claims::{self, Scope};
use super::sections::sections;
use crate::compare::cell::{Cell, Server};
use crate::compare::matrices::{EQUAL_RATE, EQUAL_RATE_USERS};
use crate::compare::{Matrix, RunRecord};
use crate::keys::TokenAlg;
use crate::report::env::Environment;
use crate::server::Arch;

const HS256: Server = Server::Stateless(TokenAlg::HS256);

/// The one-line legend printed above a table.
fn legend(md: &mut String, text: &str) {
    let _ = writeln!(md, "{text}\n");
}

/// The whole report.
pub fn report(
    record: &RunRecord,
    env: &Environment,
    rel: &Path,
    charts: &[String],
    micro: Option<&serde_json::Value>,
) -> String {
    let cells = Cells(&record.cells);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# statebench: stateless vs stateful, measured\n\n\
         Produced by `statebench compare{}` ({} cells, {:.0} s). Raw data: \
         [`{}/cells.json`]({}/cells.json) and one goose result per cell in `{}/raw/`. \
         Regenerate with the same command.\n",
        if record.quick { " --quick" } else { "" },
        record.cells.len(),
        record.elapsed_secs,
        rel.display(),
        rel.display(),
        rel.display()
    );
    if let Some(why) = &record.partial {
        let _ = writeln!(
            md,
            "> **Partial run** ({why}): only the cells finished before the stop are below. \
             Rerun the command for the whole report.\n"
        );
    }
    if !record.external.is_empty() {
        let _ = writeln!(
            md,
            "**External servers** (started outside statebench, labelled *(external)*): {}. \
             Only the matrices that make sense for one server run: concurrency, equal rate, state \
             size. Server CPU and memory come from `--target-pid` (n/a without it).\n",
            record
                .external
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(line) = record.cells.iter().find_map(|c| c.placement.as_deref()) {
        let placed = |m: Matrix| {
            record
                .cells
                .iter()
                .any(|c| c.matrix == m && c.placement.is_some())
        };
        let only_budgeted = record
            .cells
            .iter()
            .filter(|c| c.placement.is_some())
            .all(|c| matches!(c.matrix, Matrix::Capacity | Matrix::Autoscale));
        let whose = match (placed(Matrix::Capacity), placed(Matrix::Autoscale)) {
            _ if !only_budgeted => "",
            (true, true) => " of the capacity and autoscaling matrices",
            (true, false) => " of the capacity matrix",
            (false, _) => " of the autoscaling matrix",
        };
        let _ = writeln!(
            md,
            "**Placement{whose}**: {line}. Each cell's notes give the share of quota periods in \
             which a budgeted process was throttled.\n"
        );
    }
    if record.cells.iter().any(|c| c.steal_share.is_some()) {
        let _ = writeln!(
            md,
            "**Steal**: every cell also records the share of the machine's CPU time the \
             hypervisor took during it (`steal` in `/proc/stat`), in its notes from {:.0}%. While it \
             does, a quota's throttled periods overstate what the budget's processes used, so \
             the capacity search judges a budget's use from their own CPU time (section 6).\n",
            crate::compare::contention::STOLEN * 100.0
        );
    }
    let _ = writeln!(md, "{}", env.markdown());
    let _ = writeln!(md, "## Claims and evidence\n");
    let scope = if record.external.is_empty() {
        Scope::Reference
    } else {
        Scope::External
    };
    md.push_str(&claims_table(cells, scope));
    let level = cells.level();
    let _ = writeln!(md, "\n## Targets\n");
    for line in targets(cells) {
        let _ = writeln!(md, "{line}");
    }
    let _ = writeln!(
        md,
        "\nServer CPU per request is read from /proc of each replica process while requests were \
         in flight, from the first sent to the last answer (on-start logins included, goose's \
         start-up and shut-down left out), per answered request, every HTTP \
         server at the same offered rate ({} req/s from {} users; `equal-rate` rows below, \
         repeated and interleaved across servers; the median of the repeats is quoted). \
         It is the figure to trust on this 2-core machine: the load generator competes with the \
         servers for the same cores, so rates and latencies are those of the pair. Latency \
         comparisons in the claims use {level} users, closed loop.\n",
        EQUAL_RATE, EQUAL_RATE_USERS
    );
    if !record.skipped.is_empty() {
        let _ = writeln!(md, "Skipped in this run:\n");
        for s in &record.skipped {
            let _ = writeln!(md, "- {s}");
        }
        md.push('\n');
    }

    let chart = |name: &str| charts.iter().any(|c| c == name);
    for section in sections() {
        let rows: Vec<&Cell> = cells.of(section.matrix).collect();
        // The concurrency section always stands (its table may be empty).
        if rows.is_empty() && section.matrix != Matrix::Concurrency {
            continue;
        }
        let _ = writeln!(md, "{}", (section.intro)());
        for (name, alt) in section.charts {
            if chart(name) {
                let _ = writeln!(md, "\n![{alt}]({}/charts/{name})\n", rel.display());
            }
        }
        legend(&mut md, section.legend);
        let _ = writeln!(
            md,
            "| {} |\n|{}",
            section.columns.join(" | "),
            "---|".repeat(section.columns.len())
        );
        for c in rows {
            let _ = writeln!(md, "| {} |", (section.row)(c).join(" | "));
        }
    }

    let workload = crate::compare::plan::Workload::default();
    if let Some(plan) = crate::compare::plan::render::markdown(
        &workload,
        cells,
        micro,
        record.store_memory.as_ref(),
        "\n## 8.",
    ) {
        md.push_str(&plan);
    }
    if let Some(state) = super::hybrid::section(record, "\n## 9.") {
        md.push_str(&state);
    }

    let invalid: Vec<&Cell> = record.cells.iter().filter(|c| !c.valid).collect();
    let floor = machine_floor(record);
    let _ = writeln!(
        md,
        "\n## Validity\n\nEvery cell compares the requests goose counted (answered ones) with the servers' own `/metrics` counters; a difference above 1% (beyond one request per user, which the run's end may leave in flight: answered by the server, abandoned by goose) marks the cell invalid. So does a cell whose errors by kind do not add up to its failed requests. {} of {} cells invalid{}. Cells where the load generator used more CPU than the servers while the machine was saturated are flagged *generator-bound*: their rates and latencies describe the generator as much as the server.\n{floor}",
        invalid.len(),
        record.cells.len(),
        if invalid.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                invalid
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    md
}

/// The paragraph on the machine's own wake-up delays, measured before the
/// run, if they were.
fn machine_floor(record: &RunRecord) -> String {
    if record.jitter.is_empty() {
        return String::new();
    }
    let ms = |us: u64| us as f64 / 1e3;
    let cores: Vec<String> = record
        .jitter
        .iter()
        .map(|j| {
            format!(
                "core {}: p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms, {:.1} wake-ups a second over 1 ms late",
                j.core,
                ms(j.p99_us),
                ms(j.p999_us),
                ms(j.max_us),
                j.late_per_sec
            )
        })
        .collect();
    let slo = record.cells.iter().find_map(|c| c.slo_p99_us).map_or(
        crate::compare::DEFAULT_SLO_P99,
        std::time::Duration::from_micros,
    );
    let near = crate::host::jitter::worst(&record.jitter).is_some_and(|w| w.reaches_half_of(slo));
    let verdict = if near {
        format!(
            " These reach half the {:.0} ms SLO: on this machine, p99 figures near the SLO (the capacity search's \
             decisions, the autoscaling seconds) carry the machine's own delays, and repeat runs move them.",
            slo.as_secs_f64() * 1e3
        )
    } else {
        String::new()
    };
    format!(
        "\nBefore the run, a thread sleeping 1 ms at a time on each core measured how late the machine woke it, \
         the floor under every latency above ({}).{verdict}\n",
        cores.join("; ")
    )
}

/// The claims table for `scope`, with a column for where the hybrid
/// design lands when the run measured it.
fn claims_table(cells: Cells, scope: Scope) -> String {
    let hybrid = cells.0.iter().any(|c| c.server.arch() == Arch::Hybrid);
    let mut md = if hybrid {
        String::from(
            "| claim | verdict | evidence | hybrid (access JWT + refresh) |\n|---|---|---|---|\n",
        )
    } else {
        String::from("| claim | verdict | evidence |\n|---|---|---|\n")
    };
    for c in claims::decide(cells, scope) {
        let _ = write!(
            md,
            "| {} | **{}** | {} |",
            c.claim,
            c.verdict.name(),
            c.evidence
        );
        if hybrid {
            let _ = write!(md, " {} |", c.hybrid.as_deref().unwrap_or("–"));
        }
        md.push('\n');
    }
    md
}

/// The targets the report checks, one markdown list item each.
fn targets(cells: Cells) -> Vec<String> {
    let mut out = Vec::new();
    let ratio = |s, h| Some(cells.cpu(s)? / cells.cpu(h)?);
    let met = |ok: bool| if ok { "met" } else { "not met" };
    if let Some(r) = ratio(HS256, Server::Healthz(Arch::Stateless)) {
        out.push(format!(
            "- Stateless `/profile` server CPU per request = **{r:.2} ×** `/healthz` on the same server (target ≤ 1.15 ×: {}).",
            met(r <= 1.15)
        ));
    }
    if let Some(r) = ratio(Server::StatefulMemory, Server::Healthz(Arch::Stateful)) {
        out.push(format!(
            "- Stateful-memory `/profile` = **{r:.2} ×** `/healthz` (target ≤ 1.10 ×: {}).",
            met(r <= 1.10)
        ));
    }
    if let Some(c) = cells.cpu(HS256) {
        out.push(format!(
            "- Stateless `/profile`: **{c:.1} µs** of server CPU per request (target ≤ 11.7 µs: {}). These cells share both cores with the load generator and run at a fixed rate; `statebench vs` (`results/vs/`) measures the same routes with the server pinned to a core of its own.",
            met(c <= 11.7)
        ));
    }
    out
}

/// The README's summary of a reference run, between its `<!-- claims -->`
/// markers: the claims table, the targets and three charts under
/// `charts` (a path from the README).
pub fn readme_block(record: &RunRecord, charts: &str) -> String {
    let cells = Cells(&record.cells);
    let mut md = claims_table(cells, Scope::Reference);
    md.push_str("\nTargets:\n\n");
    for line in targets(cells) {
        let _ = writeln!(md, "{line}");
    }
    if let Some(table) = super::hybrid::decision(record) {
        let _ = write!(
            md,
            "\nWhich should I pick (measured in this run):\n\n{table}"
        );
    }
    for (name, alt) in [
        ("cpu_per_request.svg", "server CPU per request"),
        ("miss_rate.svg", "session-miss rate by routing policy"),
        ("sessions_lost.svg", "sessions lost per failure type"),
    ] {
        let _ = writeln!(md, "\n![{alt}]({charts}/{name})");
    }
    md.push('\n');
    md
}

/// Rewrites the block between `<!-- claims -->` and `<!-- /claims -->` in
/// the README at `path` (nothing happens if it has no markers).
pub fn update_readme(path: &Path, record: &RunRecord, charts: &str) -> anyhow::Result<bool> {
    const OPEN: &str = "<!-- claims -->\n";
    const CLOSE: &str = "<!-- /claims -->";
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(false);
    };
    let (Some(a), Some(b)) = (text.find(OPEN), text.find(CLOSE)) else {
        return Ok(false);
    };
    if b < a {
        return Ok(false);
    }
    let new = format!(
        "{}{OPEN}{}{}",
        &text[..a],
        readme_block(record, charts),
        &text[b..]
    );
    if new != text {
        std::fs::write(path, new)?;
    }
    Ok(true)
}

/// The README block the committed text holds now, if any.
pub fn readme_block_in(text: &str) -> Option<&str> {
    let a = text.find("<!-- claims -->\n")? + "<!-- claims -->\n".len();
    let b = text.find("<!-- /claims -->")?;
    text.get(a..b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::jitter::Jitter;

    fn record(p999_us: u64) -> RunRecord {
        RunRecord {
            run: "t".into(),
            quick: false,
            environment: serde_json::Value::Null,
            skipped: Vec::new(),
            cells: Vec::new(),
            elapsed_secs: 1.0,
            external: Vec::new(),
            partial: None,
            store_memory: None,
            revocation: Vec::new(),
            jitter: vec![Jitter {
                core: 1,
                samples: 900,
                p99_us: 800,
                p999_us,
                max_us: 9_500,
                late_per_sec: 2.0,
            }],
        }
    }

    #[test]
    fn the_machine_floor_is_quoted_and_flagged_only_when_it_nears_the_slo() {
        let calm = machine_floor(&record(1_200));
        assert!(
            calm.contains("core 1: p99 0.80 ms, p99.9 1.20 ms, max 9.50 ms, 2.0 wake-ups"),
            "{calm}"
        );
        assert!(!calm.contains("half the"), "{calm}");
        // Half the default 10 ms SLO: the p99 figures near it are flagged.
        let noisy = machine_floor(&record(5_000));
        assert!(noisy.contains("reach half the 10 ms SLO"), "{noisy}");
        // A record from before the probe existed renders as it did.
        let old = RunRecord {
            jitter: Vec::new(),
            ..record(5_000)
        };
        assert_eq!(machine_floor(&old), "");
    }
}
