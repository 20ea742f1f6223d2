//! Failures and elasticity: three replicas under load; a third of the way
//! in, one is SIGKILLed, one is added, each in turn is drained, SIGTERMed
//! and replaced, or one is drained and removed ([`elastic`]). Requests
//! lost, sessions lost and the time to recover say what each design loses
//! with a server.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::super::Matrix;
use super::super::cell::{Balancer, Cell, Event, Server};
use super::super::elastic;
use super::super::runner::Runner;
use super::SCALE_USERS;
use crate::loadtests::{self, Policy, Shared};

/// Replicas at the start of each cell.
const N: usize = 3;

/// Each server under the policy it needs (stickiness for in-memory
/// sessions), and in-memory sessions under a hash ring as well (not with
/// `--quick`).
fn cases(r: &Runner) -> Vec<(Server, Policy)> {
    let mut cases: Vec<(Server, Policy)> = super::scale_servers(r)
        .into_iter()
        .map(|s| {
            let policy = if s == Server::StatefulMemory {
                Policy::Sticky
            } else {
                Policy::RoundRobin
            };
            (s, policy)
        })
        .collect();
    if let Some(h) = super::hybrid_scaled(r) {
        cases.push((h, Policy::RoundRobin));
    }
    if !r.quick() {
        cases.push((Server::StatefulMemory, Policy::ConsistentHash));
    }
    cases
}

/// Failure cells run long enough to see before, during and after.
fn duration(r: &Runner) -> Duration {
    if r.quick() && r.opts.run_time.is_none() {
        Duration::from_secs(4)
    } else {
        r.opts.cell_time() * 5 / 2
    }
}

/// The events each case goes through: all of them, except for the
/// hybrid design, whose requests are the stateless design's with a shared
/// store's refresh on top: a kill and a scale-down (`--quick`: the kill).
fn events(r: &Runner, server: Server) -> &'static [Event] {
    if server.arch() != crate::server::Arch::Hybrid {
        &Event::ALL
    } else if r.quick() {
        &[Event::Kill]
    } else {
        &[Event::Kill, Event::ScaleDown]
    }
}

pub async fn run(r: &mut Runner) -> anyhow::Result<()> {
    let total = duration(r);
    for (server, policy) in cases(r) {
        for &event in events(r, server) {
            let id = format!(
                "failures/{}/{}/{}",
                server.slug(),
                policy.name(),
                event.name()
            );
            r.progress.begin(&id);
            let cell = Cell {
                users: SCALE_USERS,
                replicas: N,
                policy: Some(policy),
                balancer: Some(Balancer::Embedded),
                event: Some(event),
                ..Cell::new(Matrix::Failures, server, id)
            };
            let cell = measure(r, cell, total).await?;
            r.record(cell);
            r.progress.advance(total.as_secs() + 2);
        }
    }
    Ok(())
}

/// One failure cell: the load and the event run side by side.
async fn measure(r: &mut Runner, mut cell: Cell, total: Duration) -> anyhow::Result<Cell> {
    let (Some(policy), Some(event)) = (cell.policy, cell.event) else {
        anyhow::bail!("a failure cell needs a policy and an event");
    };
    let spec = r
        .spec(cell.server, false)
        .ok_or_else(|| anyhow::anyhow!("{} needs Redis", cell.server))?;
    let mut replicas = r.fleet(&spec, N).await?;
    let mut config = r.config(&replicas[0].url, cell.server.scenario(), SCALE_USERS);
    config.run_time = total;
    config.replicas = replicas.iter().map(|r| r.url.clone()).collect();
    config.policy = policy;
    let shared = Shared::new(&config);
    let mut spec = spec;
    spec.redis_prefix = r.prefix();
    let launcher = r.launcher.clone();
    let at = total / 3;
    let events = {
        let shared = shared.clone();
        let replicas = &mut replicas;
        async move {
            tokio::time::sleep(at).await;
            let spread = total / 3 / N as u32;
            elastic::apply(event, replicas, &shared, &launcher, &spec, spread).await
        }
    };
    let started = Instant::now();
    let (result, happened) = tokio::join!(loadtests::run_shared(&config, shared.clone()), events);
    let (result, happened) = (result?, happened?);
    let event_at = happened.at_us;
    if cell.server == Server::StatefulMemory {
        cell.sessions_on_removed = happened.sessions_on_removed;
    }
    let wall = started.elapsed().as_secs_f64();
    cell.wall_secs = wall;
    cell.fill_from(&result, result.active_secs.unwrap_or(wall));
    cell.valid = result.errors_total() == cell.failures;
    let last = shared.last_trouble_us.load(Ordering::Relaxed);
    cell.recovery_ms = Some(if last > event_at {
        (last - event_at) as f64 / 1000.0
    } else {
        0.0
    });
    if policy == Policy::ConsistentHash {
        let scratch = loadtests::Balancer::new(
            (0..N).map(|i| format!("http://127.0.0.1:{i}")).collect(),
            policy,
            1,
        );
        cell.remapped_fraction = Some(match event {
            Event::Add => loadtests::balance::remapped_by(&scratch, 10_000, |b| {
                b.add("http://127.0.0.1:9".into());
            }),
            _ => loadtests::balance::remapped_fraction(&scratch, 10_000, 1),
        });
    }
    cell.notes
        .push("server CPU not measured: replicas die or join mid-run".into());
    r.save(&cell, &result)?;
    Ok(cell)
}

pub fn planned_secs(r: &Runner) -> u64 {
    let events: u64 = cases(r)
        .iter()
        .map(|(s, _)| events(r, *s).len() as u64)
        .sum();
    events * (duration(r).as_secs() + 2)
}
