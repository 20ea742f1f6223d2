//! Autoscaling: each design starts on one budgeted replica under a low
//! load; a goose test plan ramps the users up to a high load and back
//! down, each user sending at a fixed mean rate, so the offered load
//! follows the users. The [`Autoscaler`] watches the replicas' CPU every
//! second and adds or removes replicas by the Kubernetes HPA rule. The
//! cell records the replicas and p99 second by second, errors, the
//! sessions on every replica a scale-down removed, and the time the climb
//! took to absorb.
//!
//! The ramp is sized from one replica's closed-loop peak, measured just
//! before on the same budget: [`LOW`] of it at first and last, [`HIGH`]
//! at the top, so every design needs several replicas at the top however
//! fast one replica is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::super::Matrix;
use super::super::autoscaler::{Autoscaler, Record, Rule};
use super::super::budget::Placement;
use super::super::cell::{Balancer, Cell, Server};
use super::super::fleet::watched;
use super::super::runner::Runner;
use super::capacity::{NO_AFFINITY, REPLICA_CPU};
use crate::keys::TokenAlg;
use crate::loadtests::{self, Policy, Shared};

/// Offered load at the bottom and the top of the ramp, as shares of one
/// replica's closed-loop peak.
pub const LOW: f64 = 0.2;
pub const HIGH: f64 = 1.5;
/// Users at the top of the ramp; the bottom has LOW ÷ HIGH of them. A
/// user waits for its answer before it sends again: enough of them that,
/// at the top, each of the most replicas still has 32 (see
/// `capacity::USERS_PER_REPLICA`).
pub const HIGH_USERS: usize = 256;
/// The rule: a 60% CPU target, at most 8 replicas.
pub const RULE: Rule = Rule {
    target: 0.6,
    tolerance: 0.1,
    min: 1,
    max: 8,
    down_window: 5,
    warm_up: 1,
};

/// The phases of the ramp, seconds: start, low, climb, high, fall, low.
const PHASES_FULL: [u64; 6] = [1, 8, 4, 16, 4, 14];
const PHASES_QUICK: [u64; 6] = [1, 3, 2, 8, 2, 8];
/// The closed-loop probe that sizes the ramp.
const PROBE: Duration = Duration::from_secs(3);

/// The designs, each under the routing it needs.
pub fn cases(r: &Runner) -> Vec<(Server, Policy)> {
    let mut v = vec![
        (Server::Stateless(TokenAlg::HS256), NO_AFFINITY),
        (Server::StatefulMemory, Policy::Sticky),
    ];
    if r.redis.is_some() {
        v.push((Server::StatefulRedis, NO_AFFINITY));
        v.push((Server::HybridRedis, NO_AFFINITY));
    }
    v
}

fn phases(r: &Runner) -> [u64; 6] {
    if r.quick() { PHASES_QUICK } else { PHASES_FULL }
}

fn rule(r: &Runner) -> Rule {
    Rule {
        down_window: if r.quick() { 3 } else { RULE.down_window },
        ..RULE
    }
}

/// The goose test plan of the ramp, and when the climb and the fall begin.
fn test_plan(phases: [u64; 6], low: usize, high: usize) -> (String, f64, f64) {
    let [start, low_t, climb, high_t, fall, tail] = phases;
    let plan = format!(
        "{low},{start}s;{low},{low_t}s;{high},{climb}s;{high},{high_t}s;{low},{fall}s;{low},{tail}s;0,1s"
    );
    let up_at = (start + low_t) as f64;
    let down_at = up_at + (climb + high_t) as f64;
    (plan, up_at, down_at)
}

pub async fn run(r: &mut Runner) -> anyhow::Result<()> {
    let (base, placement) = super::capacity::budgeted(r, "autoscale")?;
    let mut outcome = Ok(());
    for (server, policy) in cases(r) {
        outcome = one(r, &placement, server, policy).await.map(|cell| {
            r.record(cell);
            r.progress.advance(cell_secs(r));
        });
        if outcome.is_err() {
            break;
        }
    }
    r.launcher.placement = Some(base);
    outcome
}

/// One design's autoscaled ramp.
async fn one(
    r: &mut Runner,
    placement: &Placement,
    server: Server,
    policy: Policy,
) -> anyhow::Result<Cell> {
    let id = format!("autoscale/{}/{}", server.slug(), policy.name());
    r.progress.begin(&id);
    let spec = r
        .spec(server, false)
        .ok_or_else(|| anyhow::anyhow!("{server} needs Redis, which this run does not have"))?;
    let replicas = r.fleet(&spec, 1).await?;
    let template = Cell {
        users: HIGH_USERS,
        replicas: 1,
        policy: Some(policy),
        balancer: Some(Balancer::Embedded),
        slo_p99_us: Some(r.opts.slo_p99.as_micros() as u64),
        replica_budget: placement
            .budgets_replicas()
            .then(|| placement.replica_cpu())
            .flatten(),
        ..Cell::new(Matrix::Autoscale, server, id.clone())
    };

    // One replica's peak, closed loop, on the same budget.
    let mut probe = r.config(&replicas[0].url, server.scenario(), HIGH_USERS);
    probe.run_time = PROBE;
    probe.increase_rate = (HIGH_USERS * 20) as f64;
    let probe = r
        .measure(
            Cell {
                id: format!("{id}/probe"),
                ..template.clone()
            },
            probe,
            &watched(&replicas),
            None,
        )
        .await?;
    let peak = probe.achieved_rps;
    anyhow::ensure!(
        peak > 0.0,
        "{id}: one replica answered nothing in the probe"
    );

    let low_users = ((HIGH_USERS as f64 * LOW / HIGH).round() as usize).max(1);
    let user_rate = HIGH * peak / HIGH_USERS as f64;
    let (plan, up_at, down_at) = test_plan(phases(r), low_users, HIGH_USERS);
    let mut config = r.config(&replicas[0].url, server.scenario(), HIGH_USERS);
    config.test_plan = Some(plan.clone());
    config.user_rate = Some(user_rate);
    config.timeline = true;
    config.replicas = vec![replicas[0].url.clone()];
    config.policy = policy;
    let shared = Shared::new(&config);
    let mut spec = spec;
    spec.redis_prefix = r.prefix();
    let rule = rule(r);
    let scaler = Autoscaler::new(
        rule,
        placement.replica_cpu().unwrap_or(REPLICA_CPU),
        r.launcher.clone(),
        spec,
        Arc::clone(&shared),
        replicas,
    );
    let done = CancellationToken::new();
    let load = {
        let done = done.clone();
        let shared = Arc::clone(&shared);
        let cores = placement.generator_cores();
        let config = config.clone();
        async move {
            let result = match cores {
                Some(cores) => loadtests::run_shared_on(cores, &config, shared).await,
                None => loadtests::run_shared(&config, shared).await,
            };
            done.cancel();
            result
        }
    };
    let started = Instant::now();
    let (result, trace) = tokio::join!(load, scaler.run(done));
    let (result, trace) = (result?, trace?);
    // A ramp cut short by a stop is not a measurement.
    r.check_stop()?;
    let wall = started.elapsed().as_secs_f64();

    let mut cell = Cell {
        offered_rps: Some(HIGH * peak),
        wall_secs: wall,
        ..template
    };
    cell.fill_from(&result, result.active_secs.unwrap_or(wall));
    cell.valid = result.errors_total() == cell.failures;
    cell.replicas = trace.peak_replicas();
    // A Redis replica's `sessions_live` is the shared store's: nothing
    // of it goes with the replica.
    if server == Server::StatefulMemory {
        cell.sessions_on_removed = trace.sessions_on_removed();
    }
    cell.placement = placement.describe();
    cell.notes.push(format!(
        "{low_users} → {HIGH_USERS} → {low_users} users at {user_rate:.1} req/s each, from one replica's closed-loop peak of {peak:.0} req/s"
    ));
    cell.autoscale = Some(Box::new(Record {
        rule,
        test_plan: plan,
        user_rate,
        low_rps: low_users as f64 * user_rate,
        high_rps: HIGH_USERS as f64 * user_rate,
        peak_one: peak,
        up_at,
        down_at,
        seconds: result.timeline.clone(),
        trace,
    }));
    r.save(&cell, &result)?;
    Ok(cell)
}

fn cell_secs(r: &Runner) -> u64 {
    phases(r).iter().sum::<u64>() + 1 + PROBE.as_secs() + 2
}

pub fn planned_secs(r: &Runner) -> u64 {
    cases(r).len() as u64 * cell_secs(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_climbs_and_falls_when_it_says() {
        let (plan, up, down) = test_plan(PHASES_FULL, 10, 64);
        assert_eq!(plan, "10,1s;10,8s;64,4s;64,16s;10,4s;10,14s;0,1s");
        assert_eq!((up, down), (9.0, 29.0));
        let steps = loadtests::config::plan_steps(&plan).unwrap();
        let total: u64 = steps.iter().map(|s| s.1.as_secs()).sum();
        assert_eq!(total, PHASES_FULL.iter().sum::<u64>() + 1);
        // The top needs several replicas at the target; the bottom one.
        let top = RULE.desired(1, HIGH);
        assert!(top >= 2, "{top}");
        assert_eq!(RULE.desired(1, LOW), 1);
    }
}
