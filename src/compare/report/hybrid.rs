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

fn revocation(md: &mut String, rows: &[Revocation]) {
    let _ = writeln!(
        md,
        "\n### Revocation delay\n\n\
         A user logs in and out at once; a copy of the old credential is then tried every 20 ms \
         until it is refused. The delay runs from the logout's answer to the copy's last \
         answer. Tokens here live {} s; a JWT works through the second of its `exp`, so up to \
         a second more. The delay grows with the lifetime: a 15-minute stateless token stays \
         valid up to 15 minutes after logout, a 5-minute access token up to 5.\n\n\
         | design | token lifetime | still answered after logout |\n|---|---|---|",
        super::super::revocation::TTL_SECS
    );
    for r in rows {
        let ttl = r
            .ttl_secs
            .map_or("– (a session)".into(), |s| format!("{s} s"));
        let delay = if r.delay_ms == 0.0 {
            "0 (refused at once)".to_owned()
        } else {
            format!("{:.2} s", r.delay_ms / 1e3)
        };
        let never = if r.refused { "" } else { " (never refused)" };
        let _ = writeln!(md, "| {} | {ttl} | {delay}{never} |", r.design);
    }
}
