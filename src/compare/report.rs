//! `results/REPORT.md` and its charts, from the cells of one run. The
//! report opens with the claims table: each usual claim about stateless vs
//! stateful, and what this run measured for or against it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{Cell, RunRecord};
use crate::report::charts::{self, LineChart, Scale, Series};
use crate::report::env::Environment;

/// Writes the report and charts; returns the report's path.
pub fn write(
    record: &RunRecord,
    env: &Environment,
    results: &Path,
    run_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let charts_dir = run_dir.join("charts");
    std::fs::create_dir_all(&charts_dir)?;
    let caption = env.one_line();
    let drawn = draw(&record.cells, &charts_dir, &caption)
        .map_err(|e| anyhow::anyhow!("drawing charts: {e}"))?;
    for name in &drawn {
        charts::stamp(
            &charts_dir.join(name),
            &format!("{caption} | crates: {}", env.crates_line()),
        )?;
    }
    // A run against external servers reports beside its raw data, so it
    // never replaces the reference servers' report.
    let (path, rel) = if record.external.is_empty() {
        let rel = run_dir
            .strip_prefix(results)
            .unwrap_or(run_dir)
            .to_path_buf();
        (results.join("REPORT.md"), rel)
    } else {
        (run_dir.join("REPORT.md"), PathBuf::from("."))
    };
    let md = markdown(record, env, &rel, &drawn);
    std::fs::write(&path, md)?;
    Ok(path)
}

/// The one-line legend printed above a table.
fn legend(md: &mut String, text: &str) {
    let _ = writeln!(md, "{text}\n");
}

fn cells<'a>(all: &'a [Cell], matrix: &'a str) -> impl Iterator<Item = &'a Cell> + 'a {
    all.iter().filter(move |c| c.matrix == matrix)
}

fn us(v: Option<u64>) -> String {
    v.map_or("–".into(), |v| v.to_string())
}

fn f1(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// The cell of `server` in the concurrency matrix at `users` (closed loop).
fn at_users<'a>(all: &'a [Cell], server: &str, users: usize) -> Option<&'a Cell> {
    cells(all, "concurrency")
        .find(|c| c.server == server && c.users == users && c.offered_rps.is_none())
}

/// The users level used for latency comparisons: the highest level run,
/// at most 16 (the generator is not yet the bottleneck there on 2 cores).
fn cpu_level(all: &[Cell]) -> usize {
    let mut levels: Vec<usize> = cells(all, "concurrency")
        .filter(|c| c.offered_rps.is_none())
        .map(|c| c.users)
        .collect();
    levels.sort_unstable();
    levels.dedup();
    levels.into_iter().filter(|&u| u <= 16).max().unwrap_or(1)
}

/// Server CPU per request at the equal offered rate (every HTTP server
/// under the same load), else at the comparison users level.
fn cpu_of(all: &[Cell], server: &str) -> Option<f64> {
    let repeats: Vec<f64> = equal_rate(all, server)
        .filter_map(|c| c.server_cpu_us_per_request)
        .collect();
    if repeats.is_empty() {
        return at_users(all, server, cpu_level(all))?.server_cpu_us_per_request;
    }
    Some(crate::stats::median(&repeats))
}

/// The equal-rate cells of one server (one per repeat).
fn equal_rate<'a>(all: &'a [Cell], server: &'a str) -> impl Iterator<Item = &'a Cell> + 'a {
    cells(all, "concurrency").filter(move |c| c.server == server && c.id.contains("/equal-rate"))
}

/// Credential and body bytes per request of `server` with a cart of `items`.
fn bytes_at(all: &[Cell], server: &str, items: usize) -> Option<f64> {
    cells(all, "state-size")
        .find(|c| c.server == server && c.cart_items == Some(items))
        .and_then(|c| c.bytes_per_request)
}

struct Claim {
    claim: &'static str,
    verdict: String,
    evidence: String,
}

/// The claims that one external server of each kind can support or
/// refute, from their cells (labelled *(external)*).
fn external_claims(all: &[Cell]) -> Vec<Claim> {
    let mut out = Vec::new();
    let (sl, sf) = ("stateless (external)", "stateful (external)");
    if let (Some(a), Some(b)) = (cpu_of(all, sl), cpu_of(all, sf)) {
        out.push(Claim {
            claim: "Verifying a JWT costs more CPU than looking up a session (external servers)",
            verdict: if a > b * 1.05 {
                "supported"
            } else if a < b * 0.95 {
                "refuted"
            } else {
                "within noise"
            }
            .into(),
            evidence: format!(
                "server CPU per request at {} req/s: stateless {a:.1} µs, stateful {b:.1} µs",
                super::matrix::EQUAL_RATE
            ),
        });
    }
    let bytes = |server: &str, items: usize| bytes_at(all, server, items);
    if let (Some(s0), Some(s100), Some(f100)) = (bytes(sl, 0), bytes(sl, 100), bytes(sf, 100)) {
        out.push(Claim {
            claim: "Stateless requests grow with the state they carry; stateful ones do not (external servers)",
            verdict: if s100 > 2.0 * s0 && f100 < s100 { "supported" } else { "mixed" }.into(),
            evidence: format!(
                "credential + body bytes per request: stateless {s0:.0} B at 0 items, {s100:.0} B at 100; stateful {f100:.0} B at 100"
            ),
        });
    }
    let p99 = |server: &str| at_users(all, server, cpu_level(all)).and_then(|c| c.p99_us);
    if let (Some(a), Some(b)) = (p99(sl), p99(sf)) {
        out.push(Claim {
            claim: "Latency: stateless and stateful answer /profile alike (external servers)",
            verdict: if a.max(b) as f64 <= 1.2 * a.min(b) as f64 {
                "supported"
            } else {
                "refuted"
            }
            .into(),
            evidence: format!(
                "p99 at {} users: stateless {a} µs, stateful {b} µs",
                cpu_level(all)
            ),
        });
    }
    out
}

fn claims(all: &[Cell]) -> Vec<Claim> {
    let mut out = Vec::new();
    let horizontal: Vec<&Cell> = cells(all, "horizontal")
        .filter(|c| c.replicas > 1)
        .collect();
    let worst = |server: &str, policy: Option<&str>| {
        horizontal
            .iter()
            .filter(|c| c.server == server && policy.is_none_or(|p| c.policy.as_deref() == Some(p)))
            .map(|c| c.miss_rate)
            .fold(None, |a: Option<f64>, m| Some(a.map_or(m, |a| a.max(m))))
    };
    if let Some(m) = worst("stateless HS256", None) {
        out.push(Claim {
            claim: "Stateless needs no stickiness: any replica can serve any request",
            verdict: if m == 0.0 { "supported" } else { "refuted" }.into(),
            evidence: format!(
                "highest session-miss rate of stateless under every policy and replica count: {}",
                pct(m)
            ),
        });
    }
    if let (Some(rr), Some(sticky), Some(hash)) = (
        worst("stateful memory", Some("round-robin")),
        worst("stateful memory", Some("sticky")),
        worst("stateful memory", Some("consistent-hash")),
    ) {
        out.push(Claim {
            claim: "Stateful (in-memory sessions) needs stickiness",
            verdict: if rr > 0.2 && sticky == 0.0 && hash == 0.0 {
                "supported"
            } else {
                "mixed"
            }
            .into(),
            evidence: format!(
                "miss rate without affinity (round-robin) up to {}; sticky {}; consistent hash {}",
                pct(rr),
                pct(sticky),
                pct(hash)
            ),
        });
    }
    if let Some(rr) = worst("stateful Redis", Some("round-robin")) {
        let lat = |s| at_users(all, s, cpu_level(all)).and_then(|c| c.p50_us);
        let mut cost = match (lat("stateful Redis"), lat("stateful memory")) {
            (Some(r), Some(m)) => format!(
                "; p50 {r} µs vs {m} µs in memory at {} users",
                cpu_level(all)
            ),
            _ => String::new(),
        };
        if let (Some(r), Some(m)) = (
            cpu_of(all, "stateful Redis"),
            cpu_of(all, "stateful memory"),
        ) {
            let store: Vec<f64> = equal_rate(all, "stateful Redis")
                .filter_map(|c| c.store_cpu_us_per_request)
                .collect();
            let store = if store.is_empty() {
                String::new()
            } else {
                format!(" + {:.1} µs in Redis", crate::stats::median(&store))
            };
            cost.push_str(&format!(
                "; server CPU per request {r:.1} µs{store} vs {m:.1} µs in memory"
            ));
        }
        out.push(Claim {
            claim: "A shared store (Redis) removes the need for stickiness, at a latency cost",
            verdict: if rr == 0.0 { "supported" } else { "refuted" }.into(),
            evidence: format!("round-robin miss rate with Redis: {}{cost}", pct(rr)),
        });
    }
    let lost = |server: &str, policy: &str| {
        cells(all, "failures")
            .find(|c| {
                c.server == server
                    && c.policy.as_deref() == Some(policy)
                    && c.event.as_deref() == Some("kill")
            })
            .map(|c| c.sessions_lost)
    };
    if let (Some(mem), Some(sl)) = (
        lost("stateful memory", "sticky"),
        lost("stateless HS256", "round-robin"),
    ) {
        let redis = lost("stateful Redis", "round-robin");
        out.push(Claim {
            claim: "Losing a server loses its users' sessions (stateful in memory only)",
            verdict: if mem > 0 && sl == 0 && redis.unwrap_or(0) == 0 {
                "supported"
            } else {
                "mixed"
            }
            .into(),
            evidence: format!(
                "one of 3 replicas SIGKILLed: sessions lost — memory (sticky) {mem}, stateless {sl}{}",
                redis.map_or(String::new(), |r| format!(", Redis {r}"))
            ),
        });
    }
    if let (Some(sl), Some(sf), Some(hz)) = (
        cpu_of(all, "stateless HS256"),
        cpu_of(all, "stateful memory"),
        cpu_of(all, "healthz (stateless server)"),
    ) {
        out.push(Claim {
            claim: "Verifying a JWT costs more CPU than looking up an in-memory session",
            verdict: if sl > sf * 1.05 {
                "supported"
            } else if sl < sf * 0.95 {
                "refuted"
            } else {
                "within noise"
            }
            .into(),
            evidence: format!(
                "server CPU per request: stateless HS256 {sl:.1} µs, stateful memory {sf:.1} µs, /healthz {hz:.1} µs"
            ),
        });
    }
    if let (Some(hs), Some(rs), Some(es)) = (
        cpu_of(all, "stateless HS256"),
        cpu_of(all, "stateless RS256"),
        cpu_of(all, "stateless ES256"),
    ) {
        out.push(Claim {
            claim: "Asymmetric signatures (RS256, ES256) cost more per request than HMAC",
            verdict: if rs > hs && es > hs {
                "supported"
            } else {
                "mixed"
            }
            .into(),
            evidence: format!(
                "server CPU per /profile: HS256 {hs:.1} µs, RS256 {rs:.1} µs, ES256 {es:.1} µs"
            ),
        });
    }
    let bytes = |server: &str, items: usize| bytes_at(all, server, items);
    if let (Some(s0), Some(s100), Some(f100)) = (
        bytes("stateless HS256", 0),
        bytes("stateless HS256", 100),
        bytes("stateful memory", 100),
    ) {
        out.push(Claim {
            claim: "Stateless requests grow with the state they carry; stateful ones do not",
            verdict: if s100 > 2.0 * s0 && f100 < s100 { "supported" } else { "mixed" }.into(),
            evidence: format!(
                "credential + body bytes per request: stateless {s0:.0} B at 0 items, {s100:.0} B at 100; stateful {f100:.0} B at 100"
            ),
        });
    }
    let chat = |bp: bool| {
        cells(all, "websocket")
            .find(|c| c.backplane == Some(bp))
            .and_then(|c| c.delivery_ratio)
    };
    if let Some(without) = chat(false) {
        let with = chat(true);
        out.push(Claim {
            claim: "WebSocket rooms across replicas need a backplane",
            verdict: if without < 0.9 && with.is_none_or(|w| w > 0.95) {
                "supported"
            } else {
                "mixed"
            }
            .into(),
            evidence: format!(
                "chat delivery ratio over 2 replicas: {} without a backplane{}",
                pct(without),
                with.map_or(String::new(), |w| format!(
                    ", {} with Redis pub/sub",
                    pct(w)
                ))
            ),
        });
    }
    if let Some(c) = cells(all, "websocket")
        .filter(|c| c.rss_per_connection.is_some())
        .max_by_key(|c| c.connections)
    {
        let per = c.rss_per_connection.unwrap_or(0.0);
        out.push(Claim {
            claim: "An idle WebSocket connection is cheap to hold",
            verdict: if per < 16.0 * 1024.0 {
                "supported"
            } else {
                "refuted"
            }
            .into(),
            evidence: format!(
                "{:.1} KiB of server RSS per idle connection at {} connections",
                per / 1024.0,
                c.connections.unwrap_or(0)
            ),
        });
    }
    out
}

fn markdown(record: &RunRecord, env: &Environment, rel: &Path, charts: &[String]) -> String {
    let all = &record.cells;
    let mut md = String::new();
    let chart = |md: &mut String, name: &str, alt: &str| {
        if charts.iter().any(|c| c == name) {
            let _ = writeln!(md, "\n![{alt}]({}/charts/{name})\n", rel.display());
        }
    };
    let _ = writeln!(
        md,
        "# statebench: stateless vs stateful, measured\n\n\
         Produced by `statebench compare{}` ({} cells, {:.0} s). Raw data: \
         [`{}/cells.json`]({}/cells.json) and one goose result per cell in `{}/raw/`. \
         Regenerate with the same command.\n",
        if record.quick { " --quick" } else { "" },
        all.len(),
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
    let _ = writeln!(md, "{}", env.markdown());
    let _ = writeln!(
        md,
        "## Claims and evidence\n\n| claim | verdict | evidence |\n|---|---|---|"
    );
    let claims = if record.external.is_empty() {
        claims(all)
    } else {
        external_claims(all)
    };
    for c in claims {
        let _ = writeln!(md, "| {} | **{}** | {} |", c.claim, c.verdict, c.evidence);
    }
    let level = cpu_level(all);
    let _ = writeln!(md, "\n## Targets\n");
    let ratio = |s: &str, h: &str| Some(cpu_of(all, s)? / cpu_of(all, h)?);
    if let Some(r) = ratio("stateless HS256", "healthz (stateless server)") {
        let _ = writeln!(
            md,
            "- Stateless `/profile` server CPU per request = **{r:.2} ×** `/healthz` on the same server (target ≤ 1.25 ×: {}).",
            if r <= 1.25 { "met" } else { "not met" }
        );
    }
    if let Some(r) = ratio("stateful memory", "healthz (stateful server)") {
        let _ = writeln!(
            md,
            "- Stateful-memory `/profile` = **{r:.2} ×** `/healthz` (target ≤ 1.10 ×: {}).",
            if r <= 1.10 { "met" } else { "not met" }
        );
    }
    if let Some(c) = cpu_of(all, "stateless HS256") {
        let _ = writeln!(
            md,
            "- Stateless `/profile`: **{c:.1} µs** of server CPU per request (reference points measured elsewhere on this machine: ~690 µs for Express + npm jsonwebtoken, ~180 µs with a KeyObject, ~14 µs for a minimal axum server; target ≤ 14 µs: {}).",
            if c <= 14.0 { "met" } else { "not met" }
        );
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
        super::matrix::EQUAL_RATE,
        super::matrix::EQUAL_RATE_USERS
    );
    if !record.skipped.is_empty() {
        let _ = writeln!(md, "Skipped in this run:\n");
        for s in &record.skipped {
            let _ = writeln!(md, "- {s}");
        }
        md.push('\n');
    }

    // 1. Concurrency
    let _ = writeln!(
        md,
        "## 1. Concurrency\n\nClosed loop (no think time), one replica; fixed-rate rows are at a fraction of the peak measured just before.\n"
    );
    chart(&mut md, "latency_vs_users.svg", "p99 latency vs users");
    chart(&mut md, "cpu_per_request.svg", "server CPU per request");
    legend(
        &mut md,
        "*server*: which server and route; *offered*: the fixed rate asked for (or closed loop); *achieved*: answered requests per second of the run's own clock; *p50…max*: latency of the main request, µs; *server CPU µs/req*: user+system CPU of the server process ÷ answered requests; *+ Redis*: Redis's own CPU on top; *cores*: CPU seconds ÷ wall seconds; *errors*: failed requests by kind (HTTP status, `connect`, `reset`, `timeout`, `ws close <code>`), 0 when none failed.",
    );
    let _ = writeln!(
        md,
        "| server | users | offered req/s | achieved req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | server CPU µs/req | + Redis µs/req | server cores | generator cores | errors | notes |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for c in cells(all, "concurrency") {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {} |",
            c.server,
            c.users,
            c.offered_rps
                .map_or("closed loop".into(), |r| format!("{r:.0}")),
            c.achieved_rps,
            us(c.p50_us),
            us(c.p90_us),
            us(c.p99_us),
            us(c.p999_us),
            us(c.max_us),
            f1(c.server_cpu_us_per_request),
            f1(c.store_cpu_us_per_request),
            c.server_cpu_cores.map_or("–".into(), |v| format!("{v:.2}")),
            c.generator_cpu_cores,
            errors(c),
            notes(c)
        );
    }

    if cells(all, "horizontal").next().is_some() {
        // 2. Horizontal
        let _ = writeln!(
            md,
            "\n## 2. Horizontal scaling and routing\n\n{} users log in once and loop `/profile`. A miss is a 403 after a successful login (the session is not on the replica the request reached); the user then logs in again.\n",
            super::matrix::SCALE_USERS_DOC
        );
        chart(
            &mut md,
            "miss_rate.svg",
            "session-miss rate by routing policy",
        );
        legend(
            &mut md,
            "*success*: requests answered below 400 ÷ all requests; *miss rate*: share of `/profile` answered 403 (session not on that replica); *requests per replica*: what the balancer sent to each; *req/s*, *p50*, *p99*: the main request; *server CPU µs/req*: all replicas' CPU ÷ answered requests.",
        );
        let _ = writeln!(
            md,
            "| server | balancer | policy | replicas | success | miss rate | requests per replica | req/s | p50 µs | p99 µs | server CPU µs/req | notes |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for c in cells(all, "horizontal") {
            let ok = 1.0 - c.failures as f64 / c.requests.max(1) as f64;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} |",
                c.server,
                c.balancer.as_deref().unwrap_or(""),
                c.policy.as_deref().unwrap_or(""),
                c.replicas,
                pct(ok),
                pct(c.miss_rate),
                c.routed
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" / "),
                c.achieved_rps,
                us(c.p50_us),
                us(c.p99_us),
                f1(c.server_cpu_us_per_request),
                notes(c)
            );
        }
    }

    if cells(all, "failures").next().is_some() {
        // 3. Failures
        let _ = writeln!(
            md,
            "\n## 3. Failures and elasticity\n\nThree replicas; a third of the way in, one is SIGKILLed (`kill`), a fourth is added (`add`), or each is drained, SIGTERMed and restarted in turn (`rolling-restart`). A refused connection takes a replica out of the embedded balancer's rotation. *Sessions lost* counts users forced to log in again; *recovery* is the time from the event to the last failed or session-less request.\n"
        );
        chart(
            &mut md,
            "sessions_lost.svg",
            "sessions lost per failure type",
        );
        legend(
            &mut md,
            "*requests*: every request of the run; *failed*: requests that failed; *errors*: the same failures by kind (they add up to *failed*); *sessions lost*: users that had to log in again; *recovery ms*: event to the last failed or session-less request; *remapped*: share of users the hash ring moved; *p99*: the main request.",
        );
        let _ = writeln!(
            md,
            "| server | policy | event | requests | failed | errors | sessions lost | recovery ms | remapped by the hash ring | p99 µs |\n|---|---|---|---|---|---|---|---|---|---|"
        );
        for c in cells(all, "failures") {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                c.server,
                c.policy.as_deref().unwrap_or(""),
                c.event.as_deref().unwrap_or(""),
                c.requests,
                c.failures,
                errors(c),
                c.sessions_lost,
                f1(c.recovery_ms),
                c.remapped_fraction.map_or("–".into(), pct),
                us(c.p99_us)
            );
        }
    }

    if cells(all, "state-size").next().is_some() {
        // 4. State size
        let _ = writeln!(
            md,
            "\n## 4. State size\n\nThe cart scenario: add items one by one up to N, reading `/cart` after each. Bytes are what the client sends as credential and body (the `Authorization` token, or the `sid` cookie, plus the JSON body).\n"
        );
        chart(
            &mut md,
            "bytes_per_request.svg",
            "bytes per request vs cart size",
        );
        legend(
            &mut md,
            "*cart items*: the cart size each user builds; *bytes/request*: credential + body bytes the client sent, averaged over requests; *req/s*, *p50*, *p99*: `GET /cart`; *server CPU µs/req*: server CPU ÷ answered requests.",
        );
        let _ = writeln!(
            md,
            "| server | cart items | bytes/request | req/s | p50 µs | p99 µs | server CPU µs/req |\n|---|---|---|---|---|---|---|"
        );
        for c in cells(all, "state-size") {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} | {} | {} | {} |",
                c.server,
                c.cart_items.unwrap_or(0),
                c.bytes_per_request
                    .map_or("–".into(), |b| format!("{b:.0}")),
                c.achieved_rps,
                us(c.p50_us),
                us(c.p99_us),
                f1(c.server_cpu_us_per_request)
            );
        }
    }

    if cells(all, "websocket").next().is_some() {
        // 5. WebSocket
        let _ = writeln!(
            md,
            "\n## 5. WebSocket\n\nIdle connections held by one server (RSS growth divided by connections), then chat rooms of 4 members spread over 2 replicas round-robin, without and with the Redis backplane.\n"
        );
        chart(
            &mut md,
            "ws_rss_per_connection.svg",
            "RSS per WebSocket connection",
        );
        chart(&mut md, "chat_delivery.svg", "chat delivery ratio");
        legend(
            &mut md,
            "*connections*: idle connections held (or chat users); *RSS*: resident memory of each replica after opening them; *RSS per connection*: growth ÷ connections; *delivery ratio*: chat messages received ÷ messages that should have been; *fan-out p50/p99*: send to receipt by another member, µs.",
        );
        let _ = writeln!(
            md,
            "| cell | connections | RSS | RSS per connection | delivery ratio | fan-out p50 µs | fan-out p99 µs |\n|---|---|---|---|---|---|---|"
        );
        for c in cells(all, "websocket") {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                c.id,
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
                us(c.p99_us)
            );
        }
    }

    let invalid: Vec<&Cell> = all.iter().filter(|c| !c.valid).collect();
    let _ = writeln!(
        md,
        "\n## Validity\n\nEvery cell compares the requests goose counted (answered ones) with the servers' own `/metrics` counters; a difference above 1% marks the cell invalid. So does a cell whose errors by kind do not add up to its failed requests. {} of {} cells invalid{}. Cells where the load generator used more CPU than the servers while the machine was saturated are flagged *generator-bound*: their rates and latencies describe the generator as much as the server.\n",
        invalid.len(),
        all.len(),
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

type DrawResult = Result<Vec<String>, Box<dyn std::error::Error>>;

/// Each value once, in order of first appearance.
fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

fn draw(all: &[Cell], dir: &Path, caption: &str) -> DrawResult {
    let mut drawn = Vec::new();
    let servers = distinct(cells(all, "concurrency").map(|c| c.server.as_str()));
    let series: Vec<Series> = servers
        .iter()
        .map(|s| Series {
            name: (*s).to_owned(),
            points: cells(all, "concurrency")
                .filter(|c| c.server == *s && c.offered_rps.is_none())
                .filter_map(|c| Some((c.users as f64, c.p99_us? as f64)))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if !series.is_empty() {
        charts::line_chart(
            &dir.join("latency_vs_users.svg"),
            &LineChart {
                title: "p99 latency vs concurrent users (closed loop, 1 replica)",
                x_label: "users",
                y_label: "p99 µs",
                x_scale: Scale::Log,
                y_scale: Scale::Log,
                caption,
            },
            &series,
        )?;
        drawn.push("latency_vs_users.svg".into());
    }
    let bars: Vec<(String, f64)> = servers
        .iter()
        .filter_map(|s| Some(((*s).to_owned(), cpu_of(all, s)?)))
        .collect();
    if !bars.is_empty() {
        charts::bar_chart(
            &dir.join("cpu_per_request.svg"),
            &format!(
                "Server CPU per request at {} req/s offered (µs, from /proc)",
                super::matrix::EQUAL_RATE
            ),
            "µs of CPU per request",
            caption,
            &bars,
        )?;
        drawn.push("cpu_per_request.svg".into());
    }
    let bars: Vec<(String, f64)> = cells(all, "horizontal")
        .filter(|c| c.replicas > 1)
        .map(|c| {
            (
                format!(
                    "{} · {} · {} · {} replicas",
                    c.server,
                    c.balancer.as_deref().unwrap_or(""),
                    c.policy.as_deref().unwrap_or(""),
                    c.replicas
                ),
                c.miss_rate * 100.0,
            )
        })
        .collect();
    if !bars.is_empty() {
        charts::bar_chart(
            &dir.join("miss_rate.svg"),
            "Session-miss rate (% of /profile answered 403)",
            "% of requests",
            caption,
            &bars,
        )?;
        drawn.push("miss_rate.svg".into());
    }
    let bars: Vec<(String, f64)> = cells(all, "failures")
        .map(|c| {
            (
                format!(
                    "{} · {} · {}",
                    c.server,
                    c.policy.as_deref().unwrap_or(""),
                    c.event.as_deref().unwrap_or("")
                ),
                c.sessions_lost as f64,
            )
        })
        .collect();
    if !bars.is_empty() {
        charts::bar_chart(
            &dir.join("sessions_lost.svg"),
            "Sessions lost (users forced to log in again), 3 replicas",
            "sessions",
            caption,
            &bars,
        )?;
        drawn.push("sessions_lost.svg".into());
    }
    let sizes = distinct(cells(all, "state-size").map(|c| c.server.as_str()));
    let series: Vec<Series> = sizes
        .iter()
        .map(|s| Series {
            name: (*s).to_owned(),
            points: cells(all, "state-size")
                .filter(|c| c.server == *s)
                .filter_map(|c| Some((c.cart_items? as f64, c.bytes_per_request?)))
                .collect(),
        })
        .collect();
    if series.iter().any(|s| !s.points.is_empty()) {
        charts::line_chart(
            &dir.join("bytes_per_request.svg"),
            &LineChart {
                title: "Credential + body bytes per request vs cart size",
                x_label: "items in the cart",
                y_label: "bytes",
                x_scale: Scale::Linear,
                y_scale: Scale::Linear,
                caption,
            },
            &series,
        )?;
        drawn.push("bytes_per_request.svg".into());
    }
    let points: Vec<(f64, f64)> = cells(all, "websocket")
        .filter_map(|c| Some((c.connections? as f64, c.rss_per_connection? / 1024.0)))
        .collect();
    if !points.is_empty() {
        charts::line_chart(
            &dir.join("ws_rss_per_connection.svg"),
            &LineChart {
                title: "Server RSS per idle WebSocket connection",
                x_label: "connections",
                y_label: "KiB per connection",
                x_scale: Scale::Log,
                y_scale: Scale::Linear,
                caption,
            },
            &[Series {
                name: "ws server".into(),
                points,
            }],
        )?;
        drawn.push("ws_rss_per_connection.svg".into());
    }
    let bars: Vec<(String, f64)> = cells(all, "websocket")
        .filter_map(|c| {
            let name = if c.backplane? {
                "Redis backplane"
            } else {
                "no backplane"
            };
            Some((format!("2 replicas, {name}"), c.delivery_ratio? * 100.0))
        })
        .collect();
    if !bars.is_empty() {
        charts::bar_chart(
            &dir.join("chat_delivery.svg"),
            "Chat delivery ratio across 2 replicas (%)",
            "% of messages delivered",
            caption,
            &bars,
        )?;
        drawn.push("chat_delivery.svg".into());
    }
    Ok(drawn)
}
