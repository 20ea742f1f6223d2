//! Capacity vs replicas: each replica under the same CPU budget (Redis
//! under its own), the load generator on cores of its own, and for 1, 2
//! and 4 replicas of each design (8 more of stateful Redis, to show its
//! one store's ceiling) the highest offered rate whose p99 stays under the
//! SLO with under 0.1% errors. Scaling efficiency is
//! capacity(n) ÷ (n × capacity(1)): 1.0 is perfect scale-out.
//!
//! The search is bounded: a closed-loop probe finds the peak, then
//! fixed-rate steps bracket the boundary and then bisect between the
//! highest rate that met the SLO and the lowest that did not. Capacity is
//! the rate achieved at the highest step that met it.

mod budgets;
mod search;
pub(crate) mod verdict;

use std::time::Duration;

use super::super::Matrix;
use super::super::budget::{Placement, Role};
use super::super::cell::{Balancer, Cell, Server, Step};
use super::super::fleet::watched;
use super::super::runner::Runner;
use crate::host::services::RedisCluster;
use crate::host::tools::installed;
use crate::keys::TokenAlg;
use crate::loadtests::Policy;
pub use budgets::REPLICA_CPU;
pub(super) use budgets::budgeted;
use search::{Bisection, Rounds, decided_by_generator};
pub use search::{FIRST_SHARE, FLOOR_SHARE, ratio};
use verdict::{as_step, decides, marginal, suspect};

/// Masters of the Redis Cluster, each under the store budget: the
/// sharded way past the single store's ceiling.
pub const CLUSTER_MASTERS: usize = 3;
/// Users of the closed-loop probe, per replica.
pub const USERS_PER_REPLICA: usize = 128;
/// Users of a fixed-rate step: one per this many requests/s offered
/// (each sends every 64 ms on average), at least [`MIN_USERS`], at most
/// [`USERS_PER_REPLICA`] per replica. A user waits for its answer before
/// it sends again, so users bound the requests a stalled replica can
/// queue: with one total for every replica count, each of four replicas
/// would see a quarter of the users, its queue would stay shorter than
/// one replica's at the same rate per replica, and its latency would look
/// better than it is. In proportion to the rate, every replica count
/// offers the same open load per replica, with room for a stall's queue
/// (a 13 ms stall holds a fifth of them), and the users' logins stay a
/// small part of a step.
const USER_SECS: f64 = 0.064;
const MIN_USERS: usize = 32;
/// The routing of the designs that need no affinity (stateless, shared
/// stores): per connection, as an L4 balancer or a Kubernetes Service
/// does, each user on one replica until it reconnects. Per request, every
/// user would hold a keep-alive connection to every replica, and each of
/// four replicas would serve its requests over four times the connections
/// of one: a cost of that client layout, not of the design.
pub const NO_AFFINITY: Policy = Policy::PerConnection;
const REPLICAS_FULL: [usize; 3] = [1, 2, 4];
const REPLICAS_QUICK: [usize; 2] = [1, 2];
/// Fixed-rate steps after the first ([`Bisection`]): four bracket a
/// capacity at a fifth to two fifths of the closed-loop peak to within
/// 4% to 9% of it, about a step's own noise near the SLO, and leave time
/// to run the marginal steps again.
const BISECT_FULL: usize = 4;
/// With `--quick`, two: from 30% of the peak to 52% or 17%, then the
/// middle of the bracket or a step further on (by [`search::ratio`]), so
/// that a quick search meets the SLO somewhere for any capacity above a
/// tenth of the peak.
const BISECT_QUICK: usize = 2;
/// Fixed-rate steps of a full search.
pub(crate) const FULL_STEPS: usize = BISECT_FULL + 1;
/// Fixed-rate steps of a `--quick` search.
pub(crate) const QUICK_STEPS: usize = BISECT_QUICK + 1;

/// The designs whose scaling is measured, each under the routing it needs.
/// `--quick` keeps the two pure designs (stateless, in-memory sessions
/// behind sticky routing); the hash ring and the Redis stores need the
/// full run.
pub fn cases(r: &Runner) -> Vec<(Server, Policy)> {
    let mut v = vec![
        (Server::Stateless(TokenAlg::HS256), NO_AFFINITY),
        (Server::StatefulMemory, Policy::Sticky),
    ];
    if r.quick() {
        return v;
    }
    v.push((Server::StatefulMemory, Policy::ConsistentHash));
    if r.redis.is_some() {
        v.push((Server::StatefulRedis, NO_AFFINITY));
        v.push((Server::HybridRedis, NO_AFFINITY));
    }
    if wants_cluster(r) {
        v.push((Server::StatefulRedisCluster, NO_AFFINITY));
    }
    v
}

/// Whether the run measures the Redis Cluster (not with `--quick`, and
/// only where Redis and redis-cli are installed).
fn wants_cluster(r: &Runner) -> bool {
    !r.quick() && r.redis.is_some() && installed("redis-cli")
}

/// Starts the cluster, each master under the store budget. A cluster that
/// cannot start is a note, not the end of the run.
async fn start_cluster(r: &mut Runner, placement: &Placement) -> anyhow::Result<()> {
    r.progress.say(format!(
        "capacity: starting a Redis Cluster of {CLUSTER_MASTERS} masters"
    ));
    match RedisCluster::start(&r.launcher.work, CLUSTER_MASTERS).await {
        Ok(cluster) => {
            for (i, pid) in cluster.pids().enumerate() {
                placement.place(&format!("redis-cluster-{i}"), pid, Role::Store)?;
            }
            r.redis_cluster = Some(cluster);
        }
        Err(e) => {
            let why = format!("Redis Cluster capacity cells: {e:#}");
            r.progress.say(format!("note: skipping {why}"));
            r.skipped.push(why);
        }
    }
    Ok(())
}

/// The replica count at which one shared Redis shows its ceiling. A
/// Redis under a replica's budget served about three to four replicas'
/// capacity here (its CPU per request falls as it batches more commands
/// per wake-up), so four replicas only reach it and eight are past it.
const REPLICAS_STORE: usize = 8;

/// The replica counts measured for `server`: 1, 2 and 4 (1 and 2 with
/// `--quick`), and [`REPLICAS_STORE`] for stateful Redis, whose single
/// store is the limit this matrix is there to show, when eight replica
/// budgets and the store's fit in the servers' cores ([`Placement::fits`]).
fn replica_counts(r: &Runner, server: Server) -> Vec<usize> {
    let mut counts = r.sizes(&REPLICAS_QUICK, &REPLICAS_FULL).to_vec();
    let placement = r.launcher.placement.as_deref();
    if wants_store_count(r, server) && placement.is_some_and(|p| p.fits(REPLICAS_STORE, 1)) {
        counts.push(REPLICAS_STORE);
    }
    counts
}

/// Whether `server` is measured on [`REPLICAS_STORE`] replicas too,
/// budgets allowing.
fn wants_store_count(r: &Runner, server: Server) -> bool {
    !r.quick() && server == Server::StatefulRedis
}

fn bisections(r: &Runner) -> usize {
    if r.quick() { BISECT_QUICK } else { BISECT_FULL }
}

/// Seconds per step.
fn step_time(r: &Runner) -> Duration {
    r.opts.cell_time().min(Duration::from_secs(3))
}

/// Whether steps near the SLO are run again for longer, and misses the
/// machine may have caused tried again (not with `--quick`, whose search
/// is a sketch).
fn extends(r: &Runner) -> bool {
    !r.quick()
}

pub async fn run(r: &mut Runner) -> anyhow::Result<()> {
    let (base, placement) = budgeted(r, "capacity")?;
    let mut outcome = Ok(());
    if wants_cluster(r) {
        outcome = start_cluster(r, &placement).await;
    }
    if outcome.is_ok() {
        outcome = run_cases(r, &placement).await;
    }
    r.redis_cluster = None;
    r.launcher.placement = Some(base);
    outcome
}

async fn run_cases(r: &mut Runner, placement: &Placement) -> anyhow::Result<()> {
    for (server, policy) in cases(r) {
        if r.spec(server, false).is_none() {
            continue; // its store did not start (noted in the run's skips)
        }
        let cells = search(r, server, policy, placement).await?;
        let one = cells.iter().find(|c| c.replicas == 1);
        let efficiency = |of: Option<f64>, one: Option<f64>, n: usize| match (of, one) {
            // A capacity of 0 is one below the lowest rate tried: its
            // ratio is unknown, not 0.
            (Some(c), Some(one)) if c > 0.0 && one > 0.0 => Some(c / (n as f64 * one)),
            _ => None,
        };
        let (one_capacity, one_peak) = (
            one.and_then(|c| c.capacity_rps),
            one.and_then(verdict::peak_rps),
        );
        for mut cell in cells {
            let n = cell.replicas;
            cell.scaling_efficiency = efficiency(cell.capacity_rps, one_capacity, n);
            cell.peak_efficiency = efficiency(verdict::peak_rps(&cell), one_peak, n);
            if !placement.budgets_replicas() {
                cell.notes
                    .push("no CPU budget: the replicas shared their cores freely".into());
            }
            r.record(cell);
            r.progress.advance(cell_secs(r));
        }
    }
    Ok(())
}

fn id(server: Server, policy: Policy, n: usize) -> String {
    format!("capacity/{}/{}/r{n}", server.slug(), policy.name())
}

/// One replica count's search: its fleet, the steps so far, the best.
struct Search {
    template: Cell,
    replicas: Vec<super::super::fleet::Replica>,
    servers: Vec<super::super::fleet::Watched>,
    probe: Cell,
    steps: Vec<Step>,
    best: Option<Cell>,
    bisection: Bisection,
    /// Steps run again for longer so far.
    repeats: usize,
    rounds: Rounds,
}

impl Search {
    /// Whether the search has a step left: rounds to run, and a rate of at
    /// least one request per second to run them at.
    fn open(&self) -> bool {
        self.rounds.open() && self.bisection.next >= 1.0
    }
}

/// Steps one replica count's search may run again for longer: each costs
/// two steps' time, and a machine that stalls all the time would
/// otherwise double the search.
pub(crate) const MAX_REPEATS: usize = 2;

/// Rounds beyond its bisection a full search may spend on misses it set
/// aside ([`decides`]). The host steals in episodes that can outlast a
/// rate's first retry. With one retry, in a full run on a noisy host, 14
/// of 21 retries missed again, and stateless on four replicas ended at
/// 5,874 requests/s, about half what its one- and two-replica searches
/// put four replicas at. With two, on a host that stole up to 38% of the
/// machine, stateless on one and on four replicas met the SLO on the
/// third try of a rate stolen twice (10.9% then 12.0%; 3.9% then 18.3%),
/// and came out at 2,602 and 11,640 requests/s. A set-aside spends a
/// spare round, not a bisection one; once a search has spent its spare
/// rounds, every step decides. Each costs one step: a host that steals
/// all through the matrix adds about two minutes to the full run.
/// `--quick` has none: its two steps always decide.
pub(crate) const SPARE_ROUNDS: usize = 2;

fn spare_rounds(r: &Runner) -> usize {
    if extends(r) { SPARE_ROUNDS } else { 0 }
}

/// Finds one design's capacity on every replica count. The searches run
/// in lockstep, one step of each count in turn (all fleets stay up, idle
/// between their steps), so that drift on a shared machine touches every
/// count alike and the efficiency ratios compare like with like. Each
/// cell is its count's step at capacity, with every step of its search.
async fn search(
    r: &mut Runner,
    server: Server,
    policy: Policy,
    placement: &Placement,
) -> anyhow::Result<Vec<Cell>> {
    r.progress
        .begin(&format!("capacity/{}/{}", server.slug(), policy.name()));
    r.check_stop()?;
    let spec = r
        .spec(server, false)
        .ok_or_else(|| anyhow::anyhow!("{server} needs Redis, which this run does not have"))?;
    let slo = r.opts.slo_p99;
    let mut fleets = Vec::new();
    for n in replica_counts(r, server) {
        fleets.push((n, r.fleet(&spec, n).await?));
    }
    // Every step knows the budgets, to tell how much of them it used.
    let budgeted = placement.budgets_replicas();
    let mut searches = Vec::new();
    for (n, replicas) in fleets {
        let servers = watched(&replicas);
        let template = Cell {
            replica_budget: placement.replica_cpu().filter(|_| budgeted),
            store_budget: placement.store_cpu().filter(|_| budgeted),
            store_nodes: match server {
                Server::StatefulRedis | Server::HybridRedis => Some(1),
                Server::StatefulRedisCluster => Some(CLUSTER_MASTERS),
                _ => None,
            },
            users: USERS_PER_REPLICA * n,
            replicas: n,
            policy: Some(policy),
            balancer: Some(Balancer::Embedded),
            slo_p99_us: Some(slo.as_micros() as u64),
            ..Cell::new(Matrix::Capacity, server, id(server, policy, n))
        };
        let probe = step(r, &template, &servers, None, step_time(r)).await?;
        searches.push(Search {
            bisection: Bisection::new(probe.achieved_rps, bisections(r) + 1),
            steps: vec![as_step(&probe, slo, None)],
            template,
            replicas,
            servers,
            probe,
            best: None,
            repeats: 0,
            rounds: Rounds::new(bisections(r) + 1, spare_rounds(r)),
        });
    }
    // Each round runs one step of every search still open; a step either
    // decides or spends a spare round, so the rounds are bounded.
    while searches.iter().any(Search::open) {
        for s in searches.iter_mut().filter(|s| s.open()) {
            let rate = s.bisection.next;
            let mut cell = step(r, &s.template, &s.servers, Some(rate), step_time(r)).await?;
            let mut verdict = as_step(&cell, slo, Some(rate));
            let again = marginal(&verdict, slo) || suspect(&verdict, slo);
            if extends(r) && again && s.repeats < MAX_REPEATS {
                s.repeats += 1;
                cell = step(r, &s.template, &s.servers, Some(rate), 2 * step_time(r)).await?;
                verdict = as_step(&cell, slo, Some(rate));
                verdict.extended = true;
            }
            // With no spare round left, a step decides whatever happens, as
            // every step of `--quick` does.
            let (met, decided) = (verdict.met_slo, decides(&verdict, s.rounds.last_try()));
            let used = verdict.budget_used.unwrap_or(0.0);
            let steal = verdict.steal.unwrap_or(0.0);
            s.steps.push(verdict);
            s.rounds.record(decided);
            if !decided {
                r.progress.say(format!(
                    "  {}: the step at {rate:.0} req/s missed using {:.0}% of its busiest budget, \
                     {:.1}% of the machine stolen; trying it again (spare round {} of {})",
                    s.template.id,
                    used * 100.0,
                    steal * 100.0,
                    s.rounds.set_aside,
                    s.rounds.spare
                ));
                continue;
            }
            s.bisection.record(met);
            if met {
                s.best = Some(cell);
            }
        }
    }
    Ok(searches.into_iter().map(finish).collect())
}

/// The cell of one finished search: its step at capacity, or the probe
/// when no step met the SLO.
fn finish(s: Search) -> Cell {
    let Search {
        replicas,
        probe,
        steps,
        best,
        ..
    } = s;
    drop(replicas);
    let mut cell = match best {
        Some(mut c) => {
            // What was served within the SLO, not what was asked for.
            c.capacity_rps = Some(c.achieved_rps);
            c
        }
        None => {
            let mut c = probe;
            c.offered_rps = None;
            c.capacity_rps = Some(0.0);
            let lowest = steps
                .iter()
                .filter_map(|s| s.offered_rps)
                .min_by(f64::total_cmp);
            c.notes.push(match lowest {
                Some(r) => format!(
                    "no step met the SLO: capacity below {r:.0} req/s, the lowest rate tried"
                ),
                None => "no step met the SLO".into(),
            });
            c
        }
    };
    if decided_by_generator(&steps, cell.offered_rps) {
        cell.generator_bound = true;
        cell.notes.push(
            "invalid: the load generator was the bottleneck in a step that decided the capacity"
                .into(),
        );
        cell.valid = false;
    } else {
        cell.generator_bound = false;
    }
    cell.steps = steps;
    cell
}

/// One load at `rate` (or closed loop) for `time`, measured on the
/// running replicas.
async fn step(
    r: &mut Runner,
    template: &Cell,
    servers: &[super::super::fleet::Watched],
    rate: Option<f64>,
    time: Duration,
) -> anyhow::Result<Cell> {
    r.check_stop()?;
    let users = match rate {
        Some(rate) => ((rate * USER_SECS).ceil() as usize)
            .clamp(MIN_USERS, USERS_PER_REPLICA * template.replicas),
        None => template.users,
    };
    let mut config = r.config(&servers[0].url, template.server.scenario(), users);
    config.run_time = time;
    // Every user at once: the ramp would count as time without load.
    config.increase_rate = (users * 20) as f64;
    config.replicas = servers.iter().map(|s| s.url.clone()).collect();
    config.policy = template.policy.unwrap_or(Policy::RoundRobin);
    config.throttle = rate.map(|r| r.round().max(1.0) as usize);
    let cell = Cell {
        offered_rps: rate,
        users,
        ..template.clone()
    };
    r.measure(cell, config, servers, None).await
}

/// A search's seconds: the probe and every step, about one and a half
/// steps run again for longer, and one spare round.
fn cell_secs(r: &Runner) -> u64 {
    let step = step_time(r).as_secs() + 1;
    let again = if extends(r) { 4 * step } else { 0 };
    step * (bisections(r) as u64 + 2) + again
}

/// The matrix's seconds, counting [`REPLICAS_STORE`] wherever it may run
/// (the budgets it needs are set when the matrix starts).
pub fn planned_secs(r: &Runner) -> u64 {
    let counts: usize = cases(r)
        .into_iter()
        .map(|(server, _)| {
            r.sizes(&REPLICAS_QUICK, &REPLICAS_FULL).len()
                + usize::from(wants_store_count(r, server))
        })
        .sum();
    counts as u64 * cell_secs(r)
}
