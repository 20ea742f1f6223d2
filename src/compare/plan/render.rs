//! The plan as Markdown: the fleet per design, the measured inputs it
//! used (with their cells), the formulas, and the model's check against
//! the capacities measured on several replicas. `statebench plan` prints
//! it; REPORT.md carries it for the default workload.

use std::fmt::Write as _;

use super::super::matrices::StoreMemory;
use super::super::report::Cells;
use super::{Workload, inputs, plan, session_bytes, validate, ws_bytes};

/// Where a fleet's sessions live and how much memory they take there.
fn session_memory(f: &super::Fleet) -> String {
    match (f.session_bytes, f.store_session_bytes, f.shards) {
        (Some(b), _, _) => format!(
            "{} in the replicas ({} per replica)",
            bytes(b),
            bytes(b / f.replicas as f64)
        ),
        (None, Some(b), Some(shards)) => format!(
            "{} in Redis ({} per shard)",
            bytes(b),
            bytes(b / shards as f64)
        ),
        _ => "–".into(),
    }
}

/// The whole plan for `w`, or `None` when the run has no capacity cells
/// to plan from. `heading` is the Markdown heading level (`#`, `##`, …).
pub fn markdown(
    w: &Workload,
    cells: Cells,
    micro: Option<&serde_json::Value>,
    store: Option<&StoreMemory>,
    heading: &str,
) -> Option<String> {
    let inputs = inputs(cells);
    if inputs.is_empty() {
        return None;
    }
    let per_session = micro.and_then(session_bytes);
    let fleets = plan(w, &inputs, per_session, store.map(|m| m.bytes_per_session));
    let mut md = String::new();
    let _ = writeln!(
        md,
        "{heading} Capacity at internet scale\n\n\
         For **{} requests/s** at peak, **{} live sessions** and **{} WebSocket connections**, \
         on replicas of {} core{} each, each Redis shard (one process, one core) planned to {:.0}% \
         of its core. Every input is a figure measured in this run (listed below the table); \
         `statebench plan --rps … --sessions … --ws …` computes the same for other figures.\n",
        thousands(w.rps),
        thousands(w.sessions as f64),
        thousands(w.ws as f64),
        w.replica_cores,
        if w.replica_cores == 1.0 { "" } else { "s" },
        100.0 * w.store_utilisation
    );
    let _ = writeln!(
        md,
        "| design | routing | req/s per replica core | replica cores | replicas | Redis shards | session memory | sessions lost with one replica | credential + body bytes/s |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    for (f, i) in fleets.iter().zip(&inputs) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {} |",
            f.server.label(),
            f.policy.name(),
            thousands(i.per_core()),
            f.replica_cores,
            f.replicas,
            f.shards.map_or("–".into(), |s| s.to_string()),
            session_memory(f),
            thousands(f.lost_per_replica as f64),
            f.wire_bytes_per_sec
                .map_or("n/m".into(), |b| format!("{}/s", bytes(b))),
        );
    }
    if let Some((per, id)) = ws_bytes(cells) {
        let _ = writeln!(
            md,
            "\nWebSocket connections: {} × {} of server RSS per idle connection (`{id}`) = **{}**.",
            thousands(w.ws as f64),
            bytes(per),
            bytes(per * w.ws as f64)
        );
    }
    let _ = writeln!(md, "\nInputs (measured):\n");
    for i in &inputs {
        let mut line = format!(
            "- {} ({}): capacity({}) = {} req/s within the SLO on one replica under {} cores (`{}`)",
            i.server.label(),
            i.policy.name(),
            1,
            thousands(i.capacity_one),
            i.replica_budget,
            i.one_id
        );
        if let Some(s) = &i.store {
            let _ = write!(
                line,
                "; the store used {:.1} µs of CPU per request on {} node{} of {} cores (ceiling {} req/s)",
                s.us_per_request,
                s.nodes,
                if s.nodes == 1 { "" } else { "s" },
                s.budget,
                thousands(i.ceiling().unwrap_or(0.0))
            );
        }
        if let Some(b) = i.bytes_per_request {
            let _ = write!(line, "; {b:.0} credential + body bytes per request");
        }
        let _ = writeln!(md, "{line}.");
    }
    match per_session {
        Some(b) => {
            let _ = writeln!(
                md,
                "- One in-process session: {b:.0} bytes of RSS (micro-benchmarks, `results/micro/`, DashMap store)."
            );
        }
        None => {
            let _ = writeln!(
                md,
                "- In-process session memory: not measured (run `statebench micro` for `results/micro/figures.json`)."
            );
        }
    }
    let _ = match store {
        Some(m) => writeln!(
            md,
            "- One session in Redis: {:.0} bytes of `used_memory` ({} realistic sessions written through the store the replicas use, \
             key and expiry-index entry included; `INFO memory` before and after, in the state-size matrix). \
             The shards are sized by CPU; their memory is the sessions' divided among them.\n",
            m.bytes_per_session,
            thousands(m.sessions as f64)
        ),
        None => writeln!(
            md,
            "- Not measured: Redis memory per session, so the shards are sized by CPU only.\n"
        ),
    };
    let _ = writeln!(
        md,
        "Formulas: K = capacity(1) ÷ budget; replica cores = rps ÷ K; replicas = ⌈cores ÷ cores per replica⌉; \
         shards = ⌈rps × store µs per request ÷ 10⁶ ÷ utilisation⌉; session memory = sessions × bytes per session; \
         sessions lost with one replica = ⌈sessions ÷ replicas⌉ (in-process sessions only). \
         The model's capacity on n budgeted replicas is min(n × capacity(1), nodes × store budget × 10⁶ ÷ store µs per request).\n"
    );
    let checks = validate(cells, &inputs);
    if !checks.is_empty() {
        let agree = checks.iter().filter(|c| c.agrees()).count();
        let _ = writeln!(
            md,
            "**The model against the measured capacity** ({agree} of {} within ±{:.0}%; the model reads only the 1-replica cells, so the 2- and 4-replica rows test it):\n\n\
             | design | routing | replicas | model (req/s) | measured (req/s) | error | within ±{:.0}% |\n|---|---|---|---|---|---|---|",
            checks.len(),
            100.0 * super::TOLERANCE,
            100.0 * super::TOLERANCE
        );
        for c in &checks {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:+.0}% | {} |",
                c.server.label(),
                c.policy.name(),
                c.replicas,
                thousands(c.predicted),
                thousands(c.measured),
                100.0 * c.error(),
                if c.agrees() { "yes" } else { "**no**" }
            );
        }
    }
    Some(md)
}

/// A count with thousands separators, rounded.
fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Bytes in binary units.
fn bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_well() {
        assert_eq!(thousands(200_000.0), "200,000");
        assert_eq!(thousands(999.6), "1,000");
        assert_eq!(thousands(12.0), "12");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(5e6 * 261.0), "1.2 GiB");
    }
}
