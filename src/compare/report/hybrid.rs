//! The report's section on what each design pays for its state, where the
//! hybrid design sits between the two pure ones: how long a logged-out
//! credential keeps working, how many store calls a thousand requests
//! make, and the refresh storm.

use std::fmt::Write as _;

use super::super::RunRecord;
use super::super::cell::{Cell, Server};
use super::super::revocation::Revocation;
use super::super::runner::HYBRID_ACCESS_TTL_SECS;
use super::Cells;
use crate::keys::TokenAlg;

/// The designs whose store calls are compared, in order.
const DESIGNS: [Server; 4] = [
    Server::Stateless(TokenAlg::HS256),
    Server::StatefulMemory,
    Server::StatefulRedis,
    Server::HybridMemory,
];

/// Store calls per 1,000 requests the servers answered, over the
/// equal-rate repeats of `server` (all of them together).
pub fn store_calls_per_1000(cells: Cells, server: Server) -> Option<f64> {
    let (mut calls, mut requests) = (0u64, 0u64);
    for c in cells.equal_rate(server) {
        calls += c.store_calls?;
        requests += c.server_counted?;
    }
    (requests > 0).then(|| 1000.0 * calls as f64 / requests as f64)
}

/// Requests each hybrid access token served at the equal rate: answered
/// requests over the logins and refreshes that issued tokens.
fn requests_per_token(cells: Cells) -> Option<f64> {
    let (mut calls, mut requests) = (0u64, 0u64);
    for c in cells.equal_rate(Server::HybridMemory) {
        calls += c.store_calls?;
        requests += c.server_counted?;
    }
    (calls > 0).then(|| requests as f64 / calls as f64)
}

/// The refresh-storm cells, in run order.
fn storms(cells: Cells<'_>) -> impl Iterator<Item = &Cell> {
    cells
        .of(super::super::Matrix::Concurrency)
        .filter(|c| c.id.ends_with("/refresh-storm"))
}

/// The section, or `None` when the run measured none of it.
pub fn section(record: &RunRecord, heading: &str) -> Option<String> {
    let cells = Cells(&record.cells);
    let calls: Vec<(Server, f64)> = DESIGNS
        .into_iter()
        .filter_map(|s| Some((s, store_calls_per_1000(cells, s)?)))
        .collect();
    if record.revocation.is_empty() && calls.is_empty() && storms(cells).next().is_none() {
        return None;
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "{heading} What each design pays for its state\n\n\
         The hybrid design keeps state off the request path: an access token is checked like \
         the stateless design's, and the store is called only to log in, to refresh, to change \
         the cart and to log out. Its replicas here issue access tokens living \
         {HYBRID_ACCESS_TTL_SECS} s, so that a cell of a few seconds sees its users refresh \
         (each one after four fifths of the lifetime)."
    );
    if let Some(table) = decision(record) {
        let _ = writeln!(md, "\n### Which should I pick\n\n{table}");
    }
    if !record.revocation.is_empty() {
        revocation(&mut md, &record.revocation);
    }
    if !calls.is_empty() {
        let _ = writeln!(
            md,
            "\n### Store calls per 1,000 requests\n\n\
             The servers' own count of calls to their session store \
             (`statebench_store_calls_total`) over the requests they answered, at the equal \
             offered rate (all repeats).\n\n| design | store calls per 1,000 requests |\n|---|---|"
        );
        for (server, v) in &calls {
            let _ = writeln!(md, "| {server} | {v:.1} |");
        }
        if let Some(per_token) = requests_per_token(cells) {
            let _ = writeln!(
                md,
                "\nA hybrid access token served {per_token:.0} requests here. The hybrid figure \
                 is 1,000 ÷ requests per access token, and requests per token grow with the \
                 token's lifetime: with 5-minute access tokens, the same users would call the \
                 store {:.0} times less often.",
                300.0 / HYBRID_ACCESS_TTL_SECS as f64
            );
        }
    }
    if storms(cells).next().is_some() {
        let _ = writeln!(
            md,
            "\n### Refresh storm\n\n\
             Every user's access token expires at once (a deploy that changed the key, a clock \
             jump): each user refreshes again and again, closed loop. A refresh is a \
             compare-and-set in the store, two SHA-256s and a signature.\n\n\
             | server | users | refreshes/s | p99 | server CPU per refresh | store CPU per refresh |\n\
             |---|---|---|---|---|---|"
        );
        for c in storms(cells) {
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {} | {} | {} |",
                c.server,
                c.users,
                c.achieved_rps,
                c.p99_us
                    .map_or("–".into(), |us| format!("{:.1} ms", us as f64 / 1e3)),
                c.server_cpu_us_per_request
                    .map_or("–".into(), |us| format!("{us:.1} µs")),
                c.store_cpu_us_per_request
                    .map_or("–".into(), |us| format!("{us:.1} µs")),
            );
        }
    }
    Some(md)
}

/// The revocation delay of a design served as any of `servers` (without
/// and with its denylist, the one shared by most replicas), as the
/// decision table shows it.
fn delay(rows: &[Revocation], servers: &[Server]) -> String {
    let of = |denylist: bool| {
        rows.iter()
            .filter(|r| servers.contains(&r.server) && r.denylist == denylist)
            .max_by_key(|r| r.replicas)
    };
    let secs = |r: &Revocation| {
        if r.delay_ms == 0.0 {
            "0".to_owned()
        } else if r.delay_ms < 100.0 {
            format!("{:.0} ms", r.delay_ms)
        } else {
            format!("{:.1} s", r.delay_ms / 1e3)
        }
    };
    match (of(false), of(true)) {
        (Some(a), Some(b)) if b.replicas > 1 => format!(
            "{} ({} with a denylist shared by {} replicas)",
            secs(a),
            secs(b),
            b.replicas
        ),
        (Some(a), Some(b)) => format!("{} ({} with a denylist)", secs(a), secs(b)),
        (Some(a), None) => secs(a),
        _ => "–".into(),
    }
}

/// "Which should I pick": each design's measured costs side by side, from
/// the run's cells (`None` before the run probed revocation).
pub fn decision(record: &RunRecord) -> Option<String> {
    use crate::loadtests::Policy;
    if record.revocation.is_empty() {
        return None;
    }
    let cells = Cells(&record.cells);
    let f1 = |v: Option<f64>, unit: &str| v.map_or("–".into(), |v| format!("{v:.1}{unit}"));
    let bytes = |s: Server| match (cells.bytes(s, 0), cells.bytes(s, 10)) {
        (Some(a), Some(b)) => format!("{a:.0} B ({b:.0} B with 10 items)"),
        _ => "–".into(),
    };
    let lost = |s: Server, p: Policy| {
        cells
            .lost_on_kill(s, p)
            .map_or("–".into(), |n| format!("{n} users log in again"))
    };
    let rows = [
        (
            "stateless (JWT)",
            delay(&record.revocation, &[Server::Stateless(TokenAlg::HS256)]),
            Server::Stateless(TokenAlg::HS256),
            lost(Server::Stateless(TokenAlg::HS256), Policy::RoundRobin),
            bytes(Server::Stateless(TokenAlg::HS256)),
        ),
        (
            "stateful, sessions in memory (sticky)",
            delay(&record.revocation, &[Server::StatefulMemory]),
            Server::StatefulMemory,
            lost(Server::StatefulMemory, Policy::Sticky),
            bytes(Server::StatefulMemory),
        ),
        (
            "stateful, sessions in Redis",
            delay(&record.revocation, &[Server::StatefulMemory]),
            Server::StatefulRedis,
            lost(Server::StatefulRedis, Policy::RoundRobin),
            bytes(Server::StatefulMemory),
        ),
        (
            "hybrid (access JWT + refresh families in Redis)",
            delay(
                &record.revocation,
                &[Server::HybridMemory, Server::HybridRedis],
            ),
            Server::HybridMemory,
            lost(Server::HybridRedis, Policy::RoundRobin),
            bytes(Server::HybridMemory),
        ),
    ];
    let mut md = String::from(
        "| design | still works after logout | server CPU per request | store calls per 1,000 requests | a replica killed (of 3) | bytes per request |\n|---|---|---|---|---|---|\n",
    );
    for (name, revoked, server, killed, sent) in rows {
        let store = cells
            .store_cpu(server)
            .map_or(String::new(), |us| format!(" + {us:.1} µs in Redis"));
        let _ = writeln!(
            md,
            "| {name} | {revoked} | {}{store} | {} | {killed} | {sent} |",
            f1(cells.cpu(server), " µs"),
            f1(store_calls_per_1000(cells, server), ""),
        );
    }
    let _ = writeln!(
        md,
        "\nRevocation delays are with {}-second tokens and grow with the lifetime (the stateless \
         default is 15 minutes, the hybrid access token's 5); the Redis design deletes sessions \
         as the in-memory one does. CPU and store calls are at one equal offered rate; the \
         hybrid's store calls fall with the access token's lifetime (section 9).",
        super::super::revocation::TTL_SECS
    );
    Some(md)
}

fn revocation(md: &mut String, rows: &[Revocation]) {
    let _ = writeln!(
        md,
        "\n### Revocation delay\n\n\
         A user logs in and out at once; a copy of the old credential is then tried every 20 ms \
         until it is refused. The delay runs from the logout's answer to the copy's last \
         answer. Tokens here live {} s; a JWT works through the second of its `exp`, so up to \
         a second more. The delay grows with the lifetime: a 15-minute stateless token stays \
         valid up to 15 minutes after logout, a 5-minute access token up to 5. Where the \
         denylist is shared by replicas (through Redis pub/sub), the logout goes to one replica \
         and the old credential to another: the delay is then the hop between them.\n\n\
         | design | token lifetime | still answered after logout |\n|---|---|---|",
        super::super::revocation::TTL_SECS
    );
    for r in rows {
        let ttl = r
            .ttl_secs
            .map_or("– (a session)".into(), |s| format!("{s} s"));
        let delay = if r.delay_ms == 0.0 {
            "0 (refused at once)".to_owned()
        } else if r.delay_ms < 10.0 {
            format!("{:.3} s", r.delay_ms / 1e3)
        } else {
            format!("{:.2} s", r.delay_ms / 1e3)
        };
        let never = if r.refused { "" } else { " (never refused)" };
        let _ = writeln!(md, "| {} | {ttl} | {delay}{never} |", r.design());
    }
}

/// Where the hybrid design lands on each claim (the claims table's hybrid
/// column): one measured sentence per claim, `None` where the run lacks
/// the cells or the claim is not about it.
pub mod lands {
    use super::super::super::cell::{Event, Server};
    use super::super::Cells;
    use super::super::pct;
    use crate::compare::matrices::capacity::NO_AFFINITY;
    use crate::loadtests::Policy;

    const REDIS: Server = Server::HybridRedis;
    const MEMORY: Server = Server::HybridMemory;

    pub fn no_stickiness(c: Cells) -> Option<String> {
        let m = c.worst_miss(REDIS, None)?;
        Some(format!(
            "needs none either: miss rate {} under round-robin (families in Redis)",
            pct(m)
        ))
    }

    pub fn stickiness(c: Cells) -> Option<String> {
        let m = c.worst_miss(REDIS, None)?;
        Some(format!(
            "needs none: access tokens are checked on any replica, refreshes reach the shared store (miss rate {})",
            pct(m)
        ))
    }

    pub fn shared_store(c: Cells) -> Option<String> {
        let calls = super::store_calls_per_1000(c, MEMORY)?;
        let cpu = c.cpu(MEMORY)?;
        Some(format!(
            "calls its store on {calls:.1} of 1,000 requests instead of 1,000; server CPU per request {cpu:.1} µs"
        ))
    }

    pub fn losing_a_server(c: Cells) -> Option<String> {
        let kill = c.failure(REDIS, Policy::RoundRobin, Event::Kill)?;
        Some(format!(
            "families in Redis: {} users sent back to log in, {} requests lost",
            kill.sessions_lost,
            kill.lost()
        ))
    }

    fn efficiency(c: Cells, n: usize) -> Option<(f64, f64)> {
        let cell = c.capacity(REDIS, NO_AFFINITY, n).filter(|x| x.valid)?;
        Some((cell.scaling_efficiency?, cell.capacity_rps?))
    }

    pub fn scale_out(c: Cells) -> Option<String> {
        let n = [4, 2].into_iter().find(|&n| efficiency(c, n).is_some())?;
        let (e, cap) = efficiency(c, n)?;
        Some(format!(
            "scaling efficiency {e:.2} at {n} replicas ({cap:.0} req/s), families in one Redis"
        ))
    }

    pub fn store_ceiling(c: Cells) -> Option<String> {
        let calls = super::store_calls_per_1000(c, MEMORY)?;
        let store = c
            .capacity(REDIS, NO_AFFINITY, 4)
            .and_then(|x| x.store_cpu_us_per_request)
            .map_or(String::new(), |us| {
                format!(", {us:.1} µs of Redis CPU per request at 4 replicas")
            });
        Some(format!(
            "{calls:.1} store calls per 1,000 requests: one Redis is far from its ceiling{store}"
        ))
    }

    pub fn scale_down(c: Cells) -> Option<String> {
        let x = c.failure(REDIS, Policy::RoundRobin, Event::ScaleDown)?;
        Some(format!(
            "one of 3 replicas drained and stopped: {} requests lost, {} sessions lost",
            x.lost(),
            x.sessions_lost
        ))
    }

    pub fn autoscale(c: Cells) -> Option<String> {
        let x = c.autoscaled(REDIS)?;
        let a = x.autoscale.as_deref()?;
        Some(format!(
            "1 → {} → {} replicas, {} requests lost, {} re-logins",
            a.trace.peak_replicas(),
            a.trace.ticks.last().map_or(0, |t| t.replicas),
            x.lost(),
            x.sessions_lost
        ))
    }

    pub fn verify_cost(c: Cells) -> Option<String> {
        let cpu = c.cpu(MEMORY)?;
        Some(format!(
            "verifies a JWT on every request, as stateless does: {cpu:.1} µs per request"
        ))
    }

    pub fn state_grows(c: Cells) -> Option<String> {
        let b0 = c.bytes(MEMORY, 0)?;
        let b100 = c.bytes(MEMORY, 100)?;
        Some(format!(
            "the cart rides in the access token: {b0:.0} B at 0 items, {b100:.0} B at 100"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::Matrix;

    fn equal_rate(server: Server, calls: u64, requests: u64) -> Cell {
        let mut c = Cell::new(
            Matrix::Concurrency,
            server,
            format!("concurrency/{}/equal-rate/0", server.slug()),
        );
        c.store_calls = Some(calls);
        c.server_counted = Some(requests);
        c
    }

    fn record(cells: Vec<Cell>, revocation: Vec<Revocation>) -> RunRecord {
        RunRecord {
            run: "t".into(),
            quick: false,
            environment: serde_json::Value::Null,
            skipped: Vec::new(),
            cells,
            elapsed_secs: 1.0,
            external: Vec::new(),
            partial: None,
            store_memory: None,
            revocation,
            jitter: Vec::new(),
        }
    }

    #[test]
    fn store_calls_are_counted_per_1000_answered_requests() {
        let cells = vec![
            equal_rate(Server::StatefulMemory, 5_000, 5_000),
            equal_rate(Server::HybridMemory, 10, 4_000),
            equal_rate(Server::HybridMemory, 10, 6_000),
        ];
        let c = Cells(&cells);
        assert_eq!(
            store_calls_per_1000(c, Server::StatefulMemory),
            Some(1000.0)
        );
        assert_eq!(store_calls_per_1000(c, Server::HybridMemory), Some(2.0));
        assert_eq!(requests_per_token(c), Some(500.0));
        assert_eq!(store_calls_per_1000(c, Server::StatefulRedis), None);
    }

    #[test]
    fn the_section_and_the_decision_table_appear_only_with_what_they_quote() {
        // A run from before the hybrid design: no section, no table.
        let old = record(Vec::new(), Vec::new());
        assert!(section(&old, "## 9.").is_none());
        assert!(decision(&old).is_none());
        let probed = |server, denylist, delay_ms| Revocation {
            server,
            denylist,
            replicas: 1,
            ttl_secs: Some(2),
            delay_ms,
            refused: true,
        };
        let run = record(
            vec![equal_rate(Server::HybridMemory, 2, 1_000)],
            vec![
                probed(Server::Stateless(TokenAlg::HS256), false, 2_400.0),
                probed(Server::Stateless(TokenAlg::HS256), true, 0.0),
                probed(Server::HybridMemory, false, 2_900.0),
                probed(Server::HybridMemory, true, 0.0),
                Revocation {
                    replicas: 2,
                    ..probed(Server::HybridRedis, true, 3.0)
                },
            ],
        );
        let table = decision(&run).unwrap();
        assert!(
            table.contains("| stateless (JWT) | 2.4 s (0 with a denylist) |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| hybrid (access JWT + refresh families in Redis) | 2.9 s (3 ms with a denylist \
                 shared by 2 replicas) | – | 2.0 |"
            ),
            "{table}"
        );
        let md = section(&run, "## 9.").unwrap();
        let hybrid = format!("| {} | 2.0 |", Server::HybridMemory);
        assert!(md.contains(&hybrid), "{md}");
        let denylisted = format!(
            "| {} + denylist | 2 s | 0 (refused at once) |",
            Server::Stateless(TokenAlg::HS256)
        );
        assert!(md.contains(&denylisted), "{md}");
        let shared = format!(
            "| {} + denylist shared by 2 replicas | 2 s | 0.003 s |",
            Server::HybridRedis
        );
        assert!(md.contains(&shared), "{md}");
    }
}
