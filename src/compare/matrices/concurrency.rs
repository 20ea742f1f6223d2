//! Concurrency: each server alone on one replica, closed loop from 1 to 256
//! users; fixed rates at fractions of the peak just measured; and every
//! HTTP server at one equal offered rate, for CPU per request compared at
//! equal load; and the hybrid server's refresh storm.

use super::super::Matrix;
use super::super::cell::{Cell, Server};
use super::super::runner::{Knobs, Runner};
use crate::keys::TokenAlg;
use crate::loadtests::ScenarioKind;

/// Users of the closed-loop sweep (pinned lists).
const USERS_FULL: [usize; 5] = [1, 4, 16, 64, 256];
const USERS_QUICK: [usize; 3] = [1, 16, 64];
/// Fixed-rate runs at these fractions of the measured peak.
const RATE_FRACTIONS: [f64; 2] = [0.5, 0.75];
/// Users in the fixed-rate runs.
const RATE_USERS: usize = 64;
/// The level whose cells also get goose's HTML report.
const HTML_USERS: usize = 16;
/// One offered rate for every HTTP server: CPU per request compared at
/// equal load (a busier server batches more work per wake-up).
pub const EQUAL_RATE: usize = 8_000;
/// Users offering it.
pub const EQUAL_RATE_USERS: usize = 16;

fn users(r: &Runner) -> &'static [usize] {
    r.sizes(&USERS_QUICK, &USERS_FULL)
}

fn repeats(r: &Runner) -> usize {
    if r.quick() { 1 } else { 3 }
}

/// Whether a server also gets the fixed-rate runs.
fn fixed_rate(server: Server) -> bool {
    matches!(
        server,
        Server::Stateless(TokenAlg::HS256) | Server::StatefulMemory | Server::StatefulRedis
    )
}

fn http(servers: &[Server]) -> Vec<Server> {
    servers
        .iter()
        .copied()
        .filter(|s| !s.scenario().is_websocket())
        .collect()
}

/// Whether a server gets the closed-loop sweep. The stateful server's
/// `/healthz` is the stateless server's route in the same binary: it is
/// measured at the equal rate only, for its CPU per request.
fn swept(server: Server) -> bool {
    server != Server::Healthz(crate::server::Arch::Stateful)
}

pub async fn run(r: &mut Runner) -> anyhow::Result<()> {
    let servers = super::concurrency_servers(r);
    for server in servers.iter().filter(|s| swept(**s)) {
        let peak = sweep(r, &[*server]).await?;
        if fixed_rate(*server) && peak >= 4.0 {
            rates(r, *server, peak).await?;
        }
    }
    equal_rate(r, &servers).await?;
    refresh_storm(r).await
}

/// Users of the refresh storm.
pub const STORM_USERS: usize = 64;

/// The hybrid server whose refresh storm is measured: families in the
/// Redis replicas share (its CPU is then measured), or in memory in a run
/// without Redis.
fn storm_servers(r: &Runner) -> Vec<Server> {
    vec![super::hybrid_scaled(r).unwrap_or(Server::HybridMemory)]
}

/// Every user's access token expires at once: [`STORM_USERS`] users
/// refresh again and again, closed loop.
async fn refresh_storm(r: &mut Runner) -> anyhow::Result<()> {
    for server in storm_servers(r) {
        let id = format!("concurrency/{}/refresh-storm", server.slug());
        let cell = Cell {
            users: STORM_USERS,
            ..Cell::new(Matrix::Concurrency, server, id)
        };
        let knobs = Knobs {
            scenario: Some(ScenarioKind::RefreshStorm),
            ..Knobs::default()
        };
        r.run_cell(cell, knobs).await?;
    }
    Ok(())
}

/// The closed-loop sweep of each server; returns the highest rate reached.
pub async fn sweep(r: &mut Runner, servers: &[Server]) -> anyhow::Result<f64> {
    let mut peak: f64 = 0.0;
    for &server in servers {
        for &users in users(r) {
            let id = format!("concurrency/{}/u{users}", server.slug());
            let cell = Cell {
                users,
                ..Cell::new(Matrix::Concurrency, server, id)
            };
            let knobs = Knobs {
                html_report: users == HTML_USERS && !matches!(server, Server::External(_)),
                ..Knobs::default()
            };
            peak = peak.max(r.run_cell(cell, knobs).await?.achieved_rps);
        }
    }
    Ok(peak)
}

/// Fixed offered rates at fractions of `peak`.
async fn rates(r: &mut Runner, server: Server, peak: f64) -> anyhow::Result<()> {
    for fraction in RATE_FRACTIONS {
        let rate = (peak * fraction).round() as usize;
        let id = format!(
            "concurrency/{}/rate{}",
            server.slug(),
            (fraction * 100.0) as u32
        );
        at_rate(r, server, id, RATE_USERS, rate).await?;
    }
    Ok(())
}

/// One cell of `users` offering `rate` requests per second in all.
async fn at_rate(
    r: &mut Runner,
    server: Server,
    id: String,
    users: usize,
    rate: usize,
) -> anyhow::Result<()> {
    let cell = Cell {
        users,
        offered_rps: Some(rate as f64),
        ..Cell::new(Matrix::Concurrency, server, id)
    };
    let knobs = Knobs {
        throttle: Some(rate),
        ..Knobs::default()
    };
    r.run_cell(cell, knobs).await?;
    Ok(())
}

/// Every HTTP server at one offered rate, repeated and interleaved (server
/// A, B, C, … then again), so drift on a shared machine touches every
/// server alike; the report takes the median of the repeats.
pub async fn equal_rate(r: &mut Runner, servers: &[Server]) -> anyhow::Result<()> {
    let servers = http(servers);
    for rep in 0..repeats(r) {
        for &server in &servers {
            let id = format!("concurrency/{}/equal-rate/{rep}", server.slug());
            at_rate(r, server, id, EQUAL_RATE_USERS, EQUAL_RATE).await?;
        }
    }
    Ok(())
}

/// Seconds the sweep (and, for reference servers, the fixed rates) and
/// the equal-rate repeats take.
pub fn planned_secs(r: &Runner, servers: &[Server], with_rates: bool) -> u64 {
    let t = r.cell_secs();
    let n = servers.iter().filter(|s| swept(**s)).count() as u64;
    let mut total =
        n * users(r).len() as u64 * t + http(servers).len() as u64 * repeats(r) as u64 * t;
    if with_rates {
        let fixed = servers.iter().filter(|s| fixed_rate(**s)).count() as u64;
        total += fixed * RATE_FRACTIONS.len() as u64 * t;
        total += storm_servers(r).len() as u64 * t;
    }
    total
}
