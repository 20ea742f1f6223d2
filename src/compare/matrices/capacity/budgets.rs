//! The budgets the scaling matrices run under when the user gives none,
//! and why they are what they are.

use std::sync::Arc;
use std::time::Duration;

use crate::compare::budget::{Placement, Role};
use crate::compare::runner::Runner;

/// Each replica's CPU budget when the run gives none (`--replica-cpu`),
/// in cores: small enough that four replicas and Redis share one core and
/// that the load generator, on a core of its own, keeps up with four (it
/// sends about 15,000 requests/s from one core here, at 60 µs each).
///
/// The quota period (`host::cgroup::PERIOD`, 20 ms) is set against the
/// SLO. A replica that has spent its quota waits for the rest of the
/// period, and a request that came meanwhile waits with it; the kernel's
/// smallest quota is 1 ms, so a 0.1-core replica's wait is at least 9 ms.
/// With 1 ms every 10 ms that wait sat just under the default 10 ms SLO: a
/// replica throttled in most periods served its queue in one batch, for
/// about 24 µs of CPU a request against 34–48 µs one at a time, with a p99
/// of 8–11 ms, on either side of the SLO by chance. Its capacity landed
/// anywhere between about 2,000 and 4,500 requests/s, and stateless
/// efficiency on four replicas came out 0.66 to 1.37 in five runs. With
/// 2 ms every 20 ms, a replica that runs out of quota early waits up to
/// 18 ms, past the SLO, so a replica held in that batching misses; a
/// replica keeps its SLO while its quota lasts to near the end of most
/// periods, and a 2 ms quota absorbs twice the burst of a 1 ms one. In two
/// capacity runs with it, one stateless replica's capacity came out 1,945
/// and 2,075 requests/s, and efficiency on four 1.03 and 1.02; in full
/// runs it came out 1.33 (one replica alone paid 57.5 µs of CPU per request
/// against 47.0 µs for each of four) and 1.04 on a host a third slower.
pub const REPLICA_CPU: f64 = 0.1;
/// Redis's budget when the run gives none (`--store-cpu`): a replica's.
/// The single shared store becomes the limit as stateful-Redis replicas
/// are added. Under it, Redis is throttled like a replica (2 ms every
/// 20 ms); half of it (0.05 cores, 1 ms every 20 ms) stalls Redis for up to
/// 19 ms after each millisecond of work, and the capacity found was where
/// the first such stall fell, which moved by half from one run to the next.
pub const STORE_CPU: f64 = 0.1;

/// Puts the run under the scaling matrices' budgets (the user's, else
/// [`REPLICA_CPU`] and [`STORE_CPU`]), Redis included, for the matrix
/// `what`; returns the placement it replaced, to put back when the matrix
/// ends, and the budgeted one.
pub(in super::super) fn budgeted(
    r: &mut Runner,
    what: &str,
) -> anyhow::Result<(Arc<Placement>, Arc<Placement>)> {
    let base = r
        .launcher
        .placement
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the {what} matrix needs a placement"))?;
    let placement = Arc::new(base.with_default_budgets(REPLICA_CPU, STORE_CPU)?);
    if let Some(why) = placement.fallback() {
        r.progress
            .say(format!("{what}: budgets not applied ({why})"));
    }
    let slo = r.opts.slo_p99;
    if let Some(stall) = placement.replica_stall().filter(|&s| astride(s, slo)) {
        r.progress.say(format!(
            "note: {what}: a replica that spends its budget waits up to {} ms for the next \
             period, near the {} ms SLO: whether a throttled replica meets it will be \
             chance (--cpu-period moves the wait)",
            stall.as_millis(),
            slo.as_millis()
        ));
    }
    if let Some(redis) = &r.redis {
        placement.place("redis", redis.pid(), Role::Store)?;
    }
    r.launcher.placement = Some(Arc::clone(&placement));
    Ok((base, placement))
}

/// Whether a replica's longest wait for its next quota period, `stall`,
/// is close enough to the SLO (within a quarter of it) that a throttled
/// replica meets it or not by chance ([`REPLICA_CPU`]).
fn astride(stall: Duration, slo: Duration) -> bool {
    stall.as_secs_f64() > slo.as_secs_f64() * 0.75 && stall.as_secs_f64() < slo.as_secs_f64() * 1.25
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::cgroup::{PERIOD, Slice};

    #[test]
    fn the_default_budget_waits_clear_of_the_default_slo() {
        let slo = crate::compare::DEFAULT_SLO_P99;
        let stall = |period_ms| Slice::new(REPLICA_CPU, Duration::from_millis(period_ms)).stall();
        // 1 ms every 10 ms: a 9 ms wait, just under a 10 ms SLO.
        assert!(astride(stall(10), slo));
        // The default, 2 ms every 20 ms: 18 ms, past it.
        assert!(!astride(Slice::new(REPLICA_CPU, PERIOD).stall(), slo));
        assert!(!astride(Duration::from_millis(4), slo));
    }
}
