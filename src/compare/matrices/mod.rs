//! The seven matrices, one module each; every load cell goes through
//! [`Runner::run_cell`](super::runner::Runner::run_cell). This module holds
//! what they share: the servers each compares, the pinned sizes, and the
//! plan that gives the progress bar its ETA.

mod autoscale;
pub(crate) mod capacity;
mod concurrency;
mod failures;
mod horizontal;
mod state_size;
mod websocket;

use super::Matrix;
use super::cell::Server;
use super::runner::Runner;
use crate::keys::TokenAlg;
use crate::server::Arch;

pub use concurrency::{EQUAL_RATE, EQUAL_RATE_USERS};
pub use horizontal::SCALE_USERS;
pub use state_size::StoreMemory;

/// Cart sizes of the state-size matrix.
pub const CART_SIZES: [usize; 3] = [0, 10, 100];

/// Every server of the concurrency matrix: the floors, each signing
/// algorithm, each session store, the hybrid design, the WebSocket echo.
/// `--quick` keeps one floor and one algorithm (the micro-benchmarks
/// compare the algorithms).
pub fn concurrency_servers(r: &Runner) -> Vec<Server> {
    let mut v = vec![Server::Healthz(Arch::Stateless)];
    if !r.quick() {
        v.push(Server::Healthz(Arch::Stateful));
    }
    v.push(Server::Stateless(TokenAlg::HS256));
    if !r.quick() {
        v.extend([
            Server::Stateless(TokenAlg::RS256),
            Server::Stateless(TokenAlg::ES256),
        ]);
    }
    v.push(Server::StatefulMemory);
    if r.redis.is_some() {
        v.push(Server::StatefulRedis);
    }
    v.push(Server::HybridMemory);
    v.push(Server::WsEcho);
    v
}

/// The servers that scale out: stateless, and each session store.
pub fn scale_servers(r: &Runner) -> Vec<Server> {
    let mut v = vec![Server::Stateless(TokenAlg::HS256), Server::StatefulMemory];
    if r.redis.is_some() {
        v.push(Server::StatefulRedis);
    }
    v
}

/// The hybrid server as it scales out: refresh families in the Redis its
/// replicas share, so it needs no stickiness (`None` without Redis).
pub fn hybrid_scaled(r: &Runner) -> Option<Server> {
    r.redis.is_some().then_some(Server::HybridRedis)
}

/// The external servers of this run, as the comparison names them.
pub fn external_servers(r: &Runner) -> Vec<Server> {
    r.opts
        .external
        .iter()
        .map(|e| Server::External(e.kind))
        .collect()
}

/// Runs the selected matrices in order.
pub async fn run_all(r: &mut Runner) -> anyhow::Result<()> {
    if !r.opts.external.is_empty() {
        return external(r).await;
    }
    for m in Matrix::ALL {
        if !r.opts.runs(m) {
            continue;
        }
        r.progress.say(format!("matrix: {}", m.name()));
        match m {
            Matrix::Concurrency => concurrency::run(r).await?,
            Matrix::Horizontal => horizontal::run(r).await?,
            Matrix::Failures => failures::run(r).await?,
            Matrix::StateSize => state_size::run(r, &state_size::servers()).await?,
            Matrix::Websocket => websocket::run(r).await?,
            Matrix::Capacity => capacity::run(r).await?,
            Matrix::Autoscale => autoscale::run(r).await?,
        }
    }
    Ok(())
}

/// Servers this run did not start (`--target`): after a probe of their
/// contract, the matrices that make sense for one server of each kind —
/// concurrency, equal rate, state size.
async fn external(r: &mut Runner) -> anyhow::Result<()> {
    let mut usable = Vec::new();
    let mut with_cart = Vec::new();
    for target in r.opts.external.clone() {
        let contract = super::external::probe(&target).await;
        for p in &contract.problems {
            r.progress.say(p.clone());
            r.skipped.push(p.clone());
        }
        if target.pid.is_none() {
            r.progress.say(format!(
                "target {0}: server CPU and memory are n/a (give --target-pid {0}=PID)",
                target.kind
            ));
        }
        let ok = match target.kind {
            Arch::Ws => contract.ws_echo,
            _ => contract.profile,
        };
        if ok {
            usable.push(Server::External(target.kind));
            if contract.cart && target.kind != Arch::Ws {
                with_cart.push(Server::External(target.kind));
            }
        }
    }
    if usable.is_empty() {
        return Err(crate::loadtests::TargetError::Unusable(r.skipped.join("; ")).into());
    }
    if r.opts.runs(Matrix::Concurrency) {
        r.progress
            .say("matrix: concurrency (external servers)".into());
        concurrency::sweep(r, &usable).await?;
        concurrency::equal_rate(r, &usable).await?;
    }
    if r.opts.runs(Matrix::StateSize) {
        r.progress
            .say("matrix: state-size (external servers)".into());
        state_size::run(r, &with_cart).await?;
    }
    Ok(())
}

/// Seconds the selected matrices should take (for the ETA).
pub fn planned_secs(r: &Runner) -> u64 {
    if !r.opts.external.is_empty() {
        let servers = external_servers(r);
        let mut total = 0;
        if r.opts.runs(Matrix::Concurrency) {
            total += concurrency::planned_secs(r, &servers, false);
        }
        if r.opts.runs(Matrix::StateSize) {
            let http = servers.iter().filter(|s| s.arch() != Arch::Ws).count();
            total += state_size::planned_secs(r, http);
        }
        return total;
    }
    let mut total = 0;
    for m in Matrix::ALL.into_iter().filter(|m| r.opts.runs(*m)) {
        total += match m {
            Matrix::Concurrency => concurrency::planned_secs(r, &concurrency_servers(r), true),
            Matrix::Horizontal => horizontal::planned_secs(r),
            Matrix::Failures => failures::planned_secs(r),
            Matrix::StateSize => state_size::planned_secs(r, state_size::servers().len()),
            Matrix::Websocket => websocket::planned_secs(r),
            Matrix::Capacity => capacity::planned_secs(r),
            Matrix::Autoscale => autoscale::planned_secs(r),
        };
    }
    total
}
