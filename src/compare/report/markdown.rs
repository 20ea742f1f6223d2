//! The text of REPORT.md: the run's provenance, the claims and targets,
//! and one section per matrix with a one-line legend above each table.
//! Also the README's summary block, from the same claims.

use std::fmt::Write as _;
use std::path::Path;

use super::claims::{self, Scope};
use super::{Cells, pct};
use crate::compare::cell::{Balancer, Cell, Event, Server};
use crate::compare::matrices::{EQUAL_RATE, EQUAL_RATE_USERS, SCALE_USERS};
use crate::compare::{Matrix, RunRecord};
use crate::keys::TokenAlg;
use crate::loadtests::Policy;
use crate::report::env::Environment;
use crate::server::Arch;

const HS256: Server = Server::Stateless(TokenAlg::HS256);

/// The one-line legend printed above a table.
fn legend(md: &mut String, text: &str) {
    let _ = writeln!(md, "{text}\n");
}

fn us(v: Option<u64>) -> String {
    v.map_or("–".into(), |v| v.to_string())
}

fn f1(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}

/// The whole report.
pub fn report(record: &RunRecord, env: &Environment, rel: &Path, charts: &[String]) -> String {
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
        let _ = writeln!(
            md,
            "**Placement**: {line}. Each cell's notes give the share of quota periods in which a \
             budgeted process was throttled.\n"
        );
    }
    let _ = writeln!(md, "{}", env.markdown());
    let _ = writeln!(
        md,
        "## Claims and evidence\n\n| claim | verdict | evidence |\n|---|---|---|"
    );
    let scope = if record.external.is_empty() {
        Scope::Reference
    } else {
        Scope::External
    };
    md.push_str(&claims_rows(cells, scope));
    let level = cells.level();
    let _ = writeln!(md, "\n## Targets\n");
    for line in targets(cells) {
        let _ = writeln!(md, "{line}");
    }
    let _ = writeln!(
        md,
        "\nServer CPU per request is read from /proc of each replica process over the whole run \
         (ramp-up and on-start logins included, divided by every answered request), every HTTP \
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

    let invalid: Vec<&Cell> = record.cells.iter().filter(|c| !c.valid).collect();
    let _ = writeln!(
        md,
        "\n## Validity\n\nEvery cell compares the requests goose counted (answered ones) with the servers' own `/metrics` counters; a difference above 1% (beyond one request per user, which the run's end may leave in flight: answered by the server, abandoned by goose) marks the cell invalid. So does a cell whose errors by kind do not add up to its failed requests. {} of {} cells invalid{}. Cells where the load generator used more CPU than the servers while the machine was saturated are flagged *generator-bound*: their rates and latencies describe the generator as much as the server.\n",
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

/// One matrix's section of the report: its heading and introduction, its
/// charts, the legend above its table, the columns, and a cell as a row.
struct Section {
    matrix: Matrix,
    intro: fn() -> String,
    charts: &'static [(&'static str, &'static str)],
    legend: &'static str,
    columns: &'static [&'static str],
    row: fn(&Cell) -> Vec<String>,
}

/// The sections, in the order of the matrices.
fn sections() -> [Section; 5] {
    [
        Section {
            matrix: Matrix::Concurrency,
            intro: || {
                "## 1. Concurrency\n\nClosed loop (no think time), one replica; fixed-rate rows are at a fraction of the peak measured just before.\n".into()
            },
            charts: &[
                ("latency_vs_users.svg", "p99 latency vs users"),
                ("cpu_per_request.svg", "server CPU per request"),
            ],
            legend: "*server*: which server and route; *offered*: the fixed rate asked for (or closed loop); *achieved*: answered requests per second of the run's own clock; *p50…max*: latency of the main request, µs; *server CPU µs/req*: user+system CPU of the server process ÷ answered requests; *+ Redis*: Redis's own CPU on top; *cores*: CPU seconds ÷ wall seconds; *errors*: failed requests by kind (HTTP status, `connect`, `reset`, `timeout`, `ws close <code>`), 0 when none failed.",
            columns: &[
                "server",
                "users",
                "offered req/s",
                "achieved req/s",
                "p50 µs",
                "p90 µs",
                "p99 µs",
                "p99.9 µs",
                "max µs",
                "server CPU µs/req",
                "+ Redis µs/req",
                "server cores",
                "generator cores",
                "errors",
                "notes",
            ],
            row: |c| {
                vec![
                    c.server.label(),
                    c.users.to_string(),
                    c.offered_rps
                        .map_or("closed loop".into(), |r| format!("{r:.0}")),
                    format!("{:.0}", c.achieved_rps),
                    us(c.p50_us),
                    us(c.p90_us),
                    us(c.p99_us),
                    us(c.p999_us),
                    us(c.max_us),
                    f1(c.server_cpu_us_per_request),
                    f1(c.store_cpu_us_per_request),
                    c.server_cpu_cores.map_or("–".into(), |v| format!("{v:.2}")),
                    format!("{:.2}", c.generator_cpu_cores),
                    errors(c),
                    notes(c),
                ]
            },
        },
        Section {
            matrix: Matrix::Horizontal,
            intro: || {
                format!(
                    "\n## 2. Horizontal scaling and routing\n\n{SCALE_USERS} users log in once and loop `/profile`. A miss is a 403 after a successful login (the session is not on the replica the request reached); the user then logs in again.\n"
                )
            },
            charts: &[("miss_rate.svg", "session-miss rate by routing policy")],
            legend: "*success*: requests answered below 400 ÷ all requests; *miss rate*: share of `/profile` answered 403 (session not on that replica); *requests per replica*: what the balancer sent to each; *req/s*, *p50*, *p99*: the main request; *server CPU µs/req*: all replicas' CPU ÷ answered requests.",
            columns: &[
                "server",
                "balancer",
                "policy",
                "replicas",
                "success",
                "miss rate",
                "requests per replica",
                "req/s",
                "p50 µs",
                "p99 µs",
                "server CPU µs/req",
                "notes",
            ],
            row: |c| {
                let ok = 1.0 - c.failures as f64 / c.requests.max(1) as f64;
                vec![
                    c.server.label(),
                    c.balancer.map_or("", Balancer::name).into(),
                    c.policy.map_or("", Policy::name).into(),
                    c.replicas.to_string(),
                    pct(ok),
                    pct(c.miss_rate),
                    c.routed
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(" / "),
                    format!("{:.0}", c.achieved_rps),
                    us(c.p50_us),
                    us(c.p99_us),
                    f1(c.server_cpu_us_per_request),
                    notes(c),
                ]
            },
        },
        Section {
            matrix: Matrix::Failures,
            intro: || {
                "\n## 3. Failures and elasticity\n\nThree replicas; a third of the way in, one is SIGKILLed (`kill`), a fourth is added (`add`), each is drained, SIGTERMed and restarted in turn (`rolling-restart`), or one is drained and stopped for good (`scale-down`, as an autoscaler does). A refused connection takes a replica out of the embedded balancer's rotation. As HAProxy with `retry-on conn-failure empty-response` and `option redispatch`, the balancer sends a request once more, to another replica, after a refused connection, or after a reset or empty answer to a `GET` (`--retries 0` turns this off). *Sessions lost* counts users forced to log in again; *recovery* is the time from the event to the last failed or session-less request.\n".into()
            },
            charts: &[("sessions_lost.svg", "sessions lost per failure type")],
            legend: "*requests*: every attempt of the run; *lost*: requests whose user saw them fail; *retried*: failed attempts sent again to another replica (the user did not see them); *errors*: failed attempts by kind (they add up to *lost* + *retried*); *sessions lost*: users that had to log in again; *held*: the in-memory sessions the removed replica held just before it went; *recovery ms*: event to the last failed or session-less request; *remapped*: share of users the hash ring moved; *p99*: the main request.",
            columns: &[
                "server",
                "policy",
                "event",
                "requests",
                "lost",
                "retried",
                "errors",
                "sessions lost",
                "held",
                "recovery ms",
                "remapped by the hash ring",
                "p99 µs",
            ],
            row: |c| {
                vec![
                    c.server.label(),
                    c.policy.map_or("", Policy::name).into(),
                    c.event.map_or("", Event::name).into(),
                    c.requests.to_string(),
                    c.lost().to_string(),
                    c.retried.to_string(),
                    errors(c),
                    c.sessions_lost.to_string(),
                    c.sessions_on_removed.map_or("–".into(), |n| n.to_string()),
                    f1(c.recovery_ms),
                    c.remapped_fraction.map_or("–".into(), pct),
                    us(c.p99_us),
                ]
            },
        },
        Section {
            matrix: Matrix::StateSize,
            intro: || {
                "\n## 4. State size\n\nThe cart scenario: add items one by one up to N, reading `/cart` after each. Bytes are what the client sends as credential and body (the `Authorization` token, or the `sid` cookie, plus the JSON body).\n".into()
            },
            charts: &[("bytes_per_request.svg", "bytes per request vs cart size")],
            legend: "*cart items*: the cart size each user builds; *bytes/request*: credential + body bytes the client sent, averaged over requests; *req/s*, *p50*, *p99*: `GET /cart`; *server CPU µs/req*: server CPU ÷ answered requests.",
            columns: &[
                "server",
                "cart items",
                "bytes/request",
                "req/s",
                "p50 µs",
                "p99 µs",
                "server CPU µs/req",
            ],
            row: |c| {
                vec![
                    c.server.label(),
                    c.cart_items.unwrap_or(0).to_string(),
                    c.bytes_per_request
                        .map_or("–".into(), |b| format!("{b:.0}")),
                    format!("{:.0}", c.achieved_rps),
                    us(c.p50_us),
                    us(c.p99_us),
                    f1(c.server_cpu_us_per_request),
                ]
            },
        },
        Section {
            matrix: Matrix::Websocket,
            intro: || {
                "\n## 5. WebSocket\n\nIdle connections held by one server (RSS growth divided by connections), then chat rooms of 4 members spread over 2 replicas round-robin, without and with the Redis backplane.\n".into()
            },
            charts: &[
                ("ws_rss_per_connection.svg", "RSS per WebSocket connection"),
                ("chat_delivery.svg", "chat delivery ratio"),
            ],
            legend: "*connections*: idle connections held (or chat users); *RSS*: resident memory of each replica after opening them; *RSS per connection*: growth ÷ connections; *delivery ratio*: chat messages received ÷ messages that should have been; *fan-out p50/p99*: send to receipt by another member, µs.",
            columns: &[
                "cell",
                "connections",
                "RSS",
                "RSS per connection",
                "delivery ratio",
                "fan-out p50 µs",
                "fan-out p99 µs",
            ],
            row: |c| {
                vec![
                    c.id.clone(),
                    c.connections.map_or(c.users.to_string(), |n| n.to_string()),
                    c.rss_bytes
                        .iter()
                        .map(|b| format!("{:.1} MiB", *b as f64 / 1048576.0))
                        .collect::<Vec<_>>()
                        .join(" / "),
                    c.rss_per_connection
                        .map_or("–".into(), |b| format!("{:.1} KiB", b / 1024.0)),
                    c.delivery_ratio.map_or("–".into(), pct),
                    us(c.p50_us),
                    us(c.p99_us),
                ]
            },
        },
    ]
}

/// The rows of the claims table for `scope`, after its header.
fn claims_rows(cells: Cells, scope: Scope) -> String {
    let mut md = String::new();
    for c in claims::decide(cells, scope) {
        let _ = writeln!(
            md,
            "| {} | **{}** | {} |",
            c.claim,
            c.verdict.name(),
            c.evidence
        );
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
    let mut md = String::from("| claim | verdict | evidence |\n|---|---|---|\n");
    md.push_str(&claims_rows(cells, Scope::Reference));
    md.push_str("\nTargets:\n\n");
    for line in targets(cells) {
        let _ = writeln!(md, "{line}");
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

fn errors(c: &Cell) -> String {
    if c.errors.is_empty() {
        return "0".into();
    }
    c.errors
        .iter()
        .map(|(k, v)| format!("{v}× {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn notes(c: &Cell) -> String {
    let mut n = Vec::new();
    if c.generator_bound {
        n.push("generator-bound".to_string());
    }
    if !c.valid {
        n.push("INVALID".into());
    }
    n.extend(
        c.notes
            .iter()
            .filter(|s| !s.starts_with("invalid"))
            .cloned(),
    );
    n.join("; ")
}
