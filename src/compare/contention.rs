//! What else held a cell back besides the design: its CPU budgets'
//! throttling (every group's, and the busiest one's) and the hypervisor's
//! steal. Read before and after each measured run.

use std::time::{Duration, Instant};

use super::budget::Placement;
use super::cell::Cell;
use crate::host::cgroup::CpuStat;
use crate::host::proc::{cpu_count, steal_time};

/// A run in which the hypervisor took this share of the machine's CPU
/// time or more stalled every process visibly (idle, this machine loses
/// under 1%); its cell says so.
pub const STOLEN: f64 = 0.03;

/// Quota periods of work a group needs in a run before its throttled
/// share counts (a few periods say nothing).
pub const MIN_PERIODS: u64 = 20;

/// The counters at the start of a run.
pub struct Snapshot {
    groups: Option<Vec<(String, CpuStat)>>,
    steal: Option<Duration>,
    at: Instant,
}

impl Snapshot {
    pub fn take(placement: Option<&Placement>) -> Self {
        Self {
            groups: placement.and_then(Placement::throttling_by_group),
            steal: steal_time(),
            at: Instant::now(),
        }
    }

    /// Records in `cell` what happened since: quota periods and throttled
    /// ones over every group, the busiest group's share, and the steal,
    /// with a note for each that mattered.
    pub fn record(self, cell: &mut Cell, placement: Option<&Placement>) {
        let wall = self.at.elapsed();
        let after = placement.and_then(Placement::throttling_by_group);
        if let (Some(before), Some(after)) = (&self.groups, &after) {
            cell.busiest_throttled = busiest_throttled(before, after);
            let d = sum(after).since(&sum(before));
            cell.quota_periods = Some(d.periods);
            cell.throttled_periods = Some(d.throttled);
            if d.periods > 0 {
                cell.notes.push(format!(
                    "throttled in {:.0}% of quota periods",
                    100.0 * d.throttled as f64 / d.periods as f64
                ));
            }
        }
        if let (Some(a), Some(b), Some(cpus)) = (self.steal, steal_time(), cpu_count()) {
            let share = b.saturating_sub(a).as_secs_f64() / (wall.as_secs_f64() * cpus as f64);
            cell.steal_share = Some(share);
            if share >= STOLEN {
                cell.notes.push(format!(
                    "the hypervisor took {:.0}% of the machine's CPU time (steal)",
                    share * 100.0
                ));
            }
        }
    }
}

/// The largest share of its CPU budget any budgeted process used in
/// `cell`: each replica's CPU (the replicas' together, split as their
/// routed requests were) over its budget, and the store's over its
/// nodes' budgets. Near 1 when a budget was what held the cell back; well
/// under 1 when something else did. Read from the processes' own CPU
/// time, not from the quota's throttled periods: while the hypervisor
/// took CPU time away, a group was seen throttled in most of its periods
/// while its processes used a fraction of its budget. `None` without
/// budgets.
pub fn budget_used(cell: &Cell) -> Option<f64> {
    let replicas = match (cell.server_cpu_cores, cell.replica_budget) {
        (Some(cores), Some(budget)) if budget > 0.0 && cell.replicas > 0 => {
            let n = cell.replicas as f64;
            let total: u64 = cell.routed.iter().sum();
            let busiest = cell.routed.iter().copied().max().unwrap_or(0);
            let skew = if total > 0 {
                busiest as f64 * n / total as f64
            } else {
                1.0
            };
            Some(cores * skew / (n * budget))
        }
        _ => None,
    };
    let store = match (cell.store_cpu_cores, cell.store_budget) {
        (Some(cores), Some(budget)) if budget > 0.0 => {
            Some(cores / (budget * cell.store_nodes.unwrap_or(1).max(1) as f64))
        }
        _ => None,
    };
    replicas.into_iter().chain(store).max_by(f64::total_cmp)
}

fn sum(groups: &[(String, CpuStat)]) -> CpuStat {
    let mut total = CpuStat::default();
    for (_, stat) in groups {
        total += *stat;
    }
    total
}

/// The largest throttled share among the groups of `before` that also
/// appear in `after` with at least [`MIN_PERIODS`] periods between them.
pub fn busiest_throttled(before: &[(String, CpuStat)], after: &[(String, CpuStat)]) -> Option<f64> {
    after
        .iter()
        .filter_map(|(name, b)| {
            let (_, a) = before.iter().find(|(n, _)| n == name)?;
            let d = b.since(a);
            (d.periods >= MIN_PERIODS).then(|| d.throttled as f64 / d.periods as f64)
        })
        .max_by(f64::total_cmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_group_is_the_one_throttled_most_with_enough_periods() {
        let stat = |periods, throttled| CpuStat {
            periods,
            throttled,
            ..CpuStat::default()
        };
        let before = vec![
            ("r0".to_owned(), stat(100, 10)),
            ("redis".to_owned(), stat(50, 0)),
            ("tiny".to_owned(), stat(0, 0)),
        ];
        let after = vec![
            ("r0".to_owned(), stat(200, 30)),    // 20 of 100
            ("redis".to_owned(), stat(150, 80)), // 80 of 100
            ("tiny".to_owned(), stat(5, 5)),     // too few periods
            ("new".to_owned(), stat(100, 100)),  // not there before
        ];
        assert_eq!(busiest_throttled(&before, &after), Some(0.8));
        assert_eq!(busiest_throttled(&before, &before), None);
    }

    #[test]
    fn the_budget_used_is_the_busiest_process_share_of_its_own() {
        let mut c = Cell::new(
            crate::compare::Matrix::Capacity,
            crate::compare::Server::StatefulRedis,
            "t".into(),
        );
        // No budgets, nothing to judge.
        c.server_cpu_cores = Some(0.3);
        assert_eq!(budget_used(&c), None);
        // Two replicas of 0.1 cores used 0.12 together, routed evenly:
        // each used 60% of its budget.
        c.replicas = 2;
        c.replica_budget = Some(0.1);
        c.server_cpu_cores = Some(0.12);
        c.routed = vec![500, 500];
        assert!((budget_used(&c).unwrap() - 0.6).abs() < 1e-9);
        // Routed 3 to 1, the busier one used 90% of its budget.
        c.routed = vec![750, 250];
        assert!((budget_used(&c).unwrap() - 0.9).abs() < 1e-9);
        // A store nearer its budget decides: 0.045 of 0.05 cores.
        c.store_budget = Some(0.05);
        c.store_cpu_cores = Some(0.045);
        assert!((budget_used(&c).unwrap() - 0.9).abs() < 1e-9);
        c.store_cpu_cores = Some(0.048);
        assert!((budget_used(&c).unwrap() - 0.96).abs() < 1e-9);
        // Over three cluster masters, the same CPU is a third as much.
        c.store_nodes = Some(3);
        assert!((budget_used(&c).unwrap() - 0.9).abs() < 1e-9);
    }
}
