//! Where `compare`'s processes run and how much CPU each may use: the load
//! generator (this process) on cores of its own, every replica, Redis and
//! HAProxy on the others, each in a cgroup with a CPU quota
//! (`host::cgroup`). Where the server cores outnumber what one budget
//! rounds up to, each budgeted process is pinned to the least-used of them
//! (cores of its own while there are free ones), as a replica of a real
//! fleet has; otherwise every server shares every server core. Without a
//! writable cgroup controller the placement falls back to pinning alone,
//! says so in one line, and every cell notes it.

use std::sync::Mutex;
use std::time::Duration;

use crate::host::affinity;
use crate::host::cgroup::{Budget, CpuStat, Hierarchy, PERIOD, Slice};

/// What the user asked for (`--replica-cpu`, `--store-cpu`,
/// `--generator-cpus`).
#[derive(Debug, Clone, Default)]
pub struct BudgetOptions {
    /// Cores' worth of CPU per replica (0.2 = a fifth of a core).
    pub replica_cpu: Option<f64>,
    /// The same for Redis and HAProxy.
    pub store_cpu: Option<f64>,
    /// The cores the load generator runs on; the servers get the rest.
    pub generator_cpus: Vec<usize>,
    /// The quota period (`--cpu-period`); [`PERIOD`] when not given.
    pub period: Option<Duration>,
}

impl BudgetOptions {
    pub fn any(&self) -> bool {
        self.replica_cpu.is_some() || self.store_cpu.is_some() || !self.generator_cpus.is_empty()
    }
}

/// The placement of one run.
#[derive(Debug)]
pub struct Placement {
    options: BudgetOptions,
    /// Every core this process could use before it was placed.
    allowed: Vec<usize>,
    server_cores: Vec<usize>,
    hierarchy: Option<Hierarchy>,
    /// Why budgets are not applied, when they were asked for and cannot be.
    fallback: Option<String>,
    /// Budgets made so far, by process name, for the cells to read.
    groups: Mutex<Vec<(String, Budget)>>,
    /// The processes placed on cores of their own so far.
    pinned: Mutex<Vec<Pinned>>,
}

/// A process placed on cores of its own (one that has ended frees them).
#[derive(Debug)]
struct Pinned {
    name: String,
    pid: u32,
    role: Role,
    cores: Vec<usize>,
}

/// Which kind of process a budget is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Replica,
    /// Redis or HAProxy.
    Store,
}

impl Placement {
    /// Checks the options against this machine, pins this process (the
    /// load generator) to its cores, and finds a cgroup hierarchy when a
    /// budget is asked for. Without options it places nothing.
    pub fn new(options: BudgetOptions) -> anyhow::Result<Self> {
        Self::within(options, affinity::allowed())
    }

    /// This placement with CPU budgets where it has none: `replica_cpu`
    /// and `store_cpu` fill the quotas the user did not give, on the same
    /// cores (the scaling matrices need budgets to mean anything).
    pub fn with_default_budgets(&self, replica_cpu: f64, store_cpu: f64) -> anyhow::Result<Self> {
        let given = &self.options;
        Self::within(
            BudgetOptions {
                replica_cpu: given.replica_cpu.or(Some(replica_cpu)),
                store_cpu: given.store_cpu.or(Some(store_cpu)),
                generator_cpus: given.generator_cpus.clone(),
                period: given.period,
            },
            self.allowed.clone(),
        )
    }

    /// Whether replicas get a quota (not only cores).
    pub fn budgets_replicas(&self) -> bool {
        self.hierarchy.is_some() && self.options.replica_cpu.is_some()
    }

    /// The quota period asked for, else [`PERIOD`].
    pub fn period(&self) -> Duration {
        self.options.period.unwrap_or(PERIOD)
    }

    /// The replica budget asked for, in cores.
    pub fn replica_cpu(&self) -> Option<f64> {
        self.options.replica_cpu
    }

    /// Runtime workers for a replica: as many as its budget has cores
    /// (at least one), or as the server cores it is pinned to; `None`
    /// when nothing is placed (the runtime's own default).
    pub fn replica_workers(&self) -> Option<u16> {
        if let Some(cpus) = self.options.replica_cpu {
            return Some(cpus.ceil().clamp(1.0, 1024.0) as u16);
        }
        self.options
            .any()
            .then(|| self.server_cores.len().clamp(1, 1024) as u16)
    }

    /// Whether `replicas` replica budgets and `store_nodes` store budgets
    /// add up to no more than the servers' cores (false without budgets).
    pub fn fits(&self, replicas: usize, store_nodes: usize) -> bool {
        match (self.options.replica_cpu, self.options.store_cpu) {
            (Some(replica), Some(store)) if self.budgets_replicas() => budgets_fit(
                replicas as f64 * replica + store_nodes as f64 * store,
                self.server_cores.len(),
            ),
            _ => false,
        }
    }

    /// The Redis and HAProxy budget asked for, in cores.
    pub fn store_cpu(&self) -> Option<f64> {
        self.options.store_cpu
    }

    /// The cores the servers share.
    pub fn server_cores(&self) -> &[usize] {
        &self.server_cores
    }

    /// How many cores the load generator has to itself (`None` when
    /// nothing is placed).
    pub fn generator_cores(&self) -> Option<usize> {
        self.options
            .any()
            .then_some(self.options.generator_cpus.len())
    }

    fn within(options: BudgetOptions, allowed: Vec<usize>) -> anyhow::Result<Self> {
        for (flag, v) in [
            ("--replica-cpu", options.replica_cpu),
            ("--store-cpu", options.store_cpu),
        ] {
            if let Some(v) = v {
                anyhow::ensure!(
                    v.is_finite() && v > 0.0 && v <= 64.0,
                    "{flag} must be a number of cores above 0 (0.2 is a fifth of a core), not {v}"
                );
            }
        }

        let generator = if options.generator_cpus.is_empty() && options.any() {
            // Default: the last core for the generator, the rest for servers.
            allowed.last().map(|&c| vec![c]).unwrap_or_default()
        } else {
            options.generator_cpus.clone()
        };
        for c in &generator {
            anyhow::ensure!(
                allowed.contains(c),
                "--generator-cpus {c}: this process may only use cores {allowed:?}"
            );
        }
        let server_cores: Vec<usize> = allowed
            .iter()
            .copied()
            .filter(|c| !generator.contains(c))
            .collect();
        if options.any() {
            anyhow::ensure!(
                !server_cores.is_empty(),
                "--generator-cpus {generator:?} leaves no core for the servers (cores {allowed:?})"
            );
            affinity::pin_self(&generator).map_err(|e| {
                anyhow::anyhow!("cannot pin the load generator to {generator:?}: {e}")
            })?;
        }
        let wants_quota = options.replica_cpu.is_some() || options.store_cpu.is_some();
        let (hierarchy, fallback) = if wants_quota {
            match Hierarchy::detect() {
                Ok(h) => (Some(h), None),
                Err(e) => (None, Some(format!("{e}; pinning only"))),
            }
        } else {
            (None, None)
        };
        let options = BudgetOptions {
            generator_cpus: generator,
            ..options
        };
        Ok(Self {
            options,
            allowed,
            server_cores,
            hierarchy,
            fallback,
            groups: Mutex::new(Vec::new()),
            pinned: Mutex::new(Vec::new()),
        })
    }

    /// Why budgets are not applied, if they were asked for and cannot be.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// One line for the run's header and each cell's notes.
    pub fn describe(&self) -> Option<String> {
        if !self.options.any() {
            return None;
        }
        let cores = |v: &[usize]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let applied = self.hierarchy.is_some();
        let quota = |what: &str, v: Option<f64>| {
            v.map(|c| {
                if applied {
                    format!(", {c} cores per {what} ({})", Slice::new(c, self.period()))
                } else {
                    format!(", {c} cores per {what}")
                }
            })
            .unwrap_or_default()
        };
        let how = match (&self.hierarchy, &self.fallback) {
            (Some(h), _) => format!(" ({})", h.version()),
            (None, Some(why)) => format!(" (budgets not applied: {why})"),
            (None, None) => String::new(),
        };
        let own = [self.options.replica_cpu, self.options.store_cpu]
            .into_iter()
            .any(|c| self.own_cores(c).is_some());
        Some(format!(
            "load generator on core {}, servers on core {}{}{}{}{how}",
            cores(&self.options.generator_cpus),
            cores(&self.server_cores),
            quota("replica", self.options.replica_cpu),
            quota("store or balancer", self.options.store_cpu),
            if own {
                ", each budgeted process on the least-used of them"
            } else {
                ""
            },
        ))
    }

    /// The longest a replica under its budget can stall once it has spent
    /// its quota (the rest of its period); `None` without a replica budget.
    pub fn replica_stall(&self) -> Option<Duration> {
        self.hierarchy.as_ref()?;
        Some(Slice::new(self.options.replica_cpu?, self.period()).stall())
    }

    /// Places process `pid` (named `name`, unique within the run) on the
    /// server cores and, when its role has a budget, in a group of its own.
    pub fn place(&self, name: &str, pid: u32, role: Role) -> anyhow::Result<()> {
        if !self.options.any() {
            return Ok(());
        }
        let cpus = match role {
            Role::Replica => self.options.replica_cpu,
            Role::Store => self.options.store_cpu,
        };
        let cores = self.cores_for(name, pid, role, cpus);
        affinity::pin_process(pid, &cores)
            .map_err(|e| anyhow::anyhow!("cannot pin {name} to {cores:?}: {e}"))?;
        let (Some(h), Some(cpus)) = (&self.hierarchy, cpus) else {
            return Ok(());
        };
        let budget = h
            .budget(name, cpus, self.period())
            .map_err(|e| anyhow::anyhow!("cannot make a CPU budget for {name}: {e}"))?;
        budget
            .add(pid)
            .map_err(|e| anyhow::anyhow!("cannot put {name} under its CPU budget: {e}"))?;
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups.retain(|(n, _)| n != name);
        groups.push((name.to_owned(), budget));
        Ok(())
    }

    /// How many cores of its own a process with a budget of `cpus` gets:
    /// the budget rounded up, when the server cores outnumber that.
    fn own_cores(&self, cpus: Option<f64>) -> Option<usize> {
        let wanted = cpus?.ceil().max(1.0) as usize;
        (wanted < self.server_cores.len()).then_some(wanted)
    }

    /// The cores process `name` runs on: with a budget of `cpus` cores,
    /// when the server cores outnumber it rounded up, that many of the
    /// least-used ones (no other live process's, while there are free
    /// ones); otherwise every server core. A store's core counts twice:
    /// Redis serves every replica count of a design, while the fleets of
    /// the other counts wait idle, so a replica shares an idle replica's
    /// core before a store's.
    fn cores_for(&self, name: &str, pid: u32, role: Role, cpus: Option<f64>) -> Vec<usize> {
        let Some(wanted) = self.own_cores(cpus) else {
            return self.server_cores.clone();
        };
        let mut pinned = self.pinned.lock().unwrap_or_else(|p| p.into_inner());
        pinned.retain(|p| p.name != name && crate::host::proc::exists(p.pid));
        let taken: Vec<usize> = pinned
            .iter()
            .flat_map(|p| {
                let weight = if p.role == Role::Store { 2 } else { 1 };
                p.cores
                    .iter()
                    .flat_map(move |&core| std::iter::repeat_n(core, weight))
            })
            .collect();
        let cores = least_used(&self.server_cores, &taken, wanted);
        pinned.push(Pinned {
            name: name.to_owned(),
            pid,
            role,
            cores: cores.clone(),
        });
        cores
    }

    /// CPU time used so far by the group of process `name`, where the
    /// cgroup layout counts it (v2); `None` otherwise.
    pub fn usage(&self, name: &str) -> Option<Duration> {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let (_, budget) = groups.iter().find(|(n, _)| n == name)?;
        budget.stat().ok()?.usage
    }

    /// The throttling counters of every group made so far, by name (a
    /// group whose process has ended no longer changes, so the difference
    /// between two readings is the throttling between them).
    pub fn throttling_by_group(&self) -> Option<Vec<(String, CpuStat)>> {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        if groups.is_empty() {
            return None;
        }
        groups
            .iter()
            .map(|(n, b)| Some((n.clone(), b.stat().ok()?)))
            .collect()
    }
}

/// `wanted` of `cores`, the ones that appear least often in `taken`
/// (ties to the first), in the order of `cores`.
fn least_used(cores: &[usize], taken: &[usize], wanted: usize) -> Vec<usize> {
    let mut by_use: Vec<(usize, usize, usize)> = cores
        .iter()
        .enumerate()
        .map(|(i, &c)| (taken.iter().filter(|&&t| t == c).count(), i, c))
        .collect();
    by_use.sort_unstable();
    let mut chosen: Vec<(usize, usize)> = by_use
        .into_iter()
        .take(wanted)
        .map(|(_, i, c)| (i, c))
        .collect();
    chosen.sort_unstable();
    chosen.into_iter().map(|(_, c)| c).collect()
}

/// Whether budgets of `cores_wanted` in all fit in `cores` whole cores.
fn budgets_fit(cores_wanted: f64, cores: usize) -> bool {
    cores_wanted <= cores as f64 + 1e-9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_five_server_cores(replica_cpu: f64) -> Placement {
        Placement {
            options: BudgetOptions {
                replica_cpu: Some(replica_cpu),
                store_cpu: Some(0.1),
                generator_cpus: vec![5],
                period: None,
            },
            allowed: (0..6).collect(),
            server_cores: (0..5).collect(),
            hierarchy: None,
            fallback: None,
            groups: Mutex::new(Vec::new()),
            pinned: Mutex::new(Vec::new()),
        }
    }

    #[test]
    fn live_processes_keep_their_cores_and_ended_ones_free_them() {
        let p = on_five_server_cores(0.1);
        let live = std::process::id();
        let ended = u32::MAX - 1; // no such process
        let replica = |name: &str, pid: u32| p.cores_for(name, pid, Role::Replica, Some(0.1));
        assert_eq!(p.cores_for("redis", live, Role::Store, Some(0.1)), vec![0]);
        assert_eq!(replica("a", ended), vec![1]);
        // `a` has ended: its core is free again.
        assert_eq!(replica("b", live), vec![1]);
        // `b` placed again (restarted) does not count against itself.
        assert_eq!(replica("b", live), vec![1]);
        for (name, core) in [("c", 2), ("d", 3), ("e", 4)] {
            assert_eq!(replica(name, live), vec![core]);
        }
        // Every core taken: a replica shares another replica's before Redis's.
        assert_eq!(replica("f", live), vec![1]);
        // No budget, or one as large as the server cores: all of them.
        assert_eq!(
            p.cores_for("g", live, Role::Replica, None),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(
            p.cores_for("h", live, Role::Replica, Some(4.5)),
            vec![0, 1, 2, 3, 4]
        );
        assert!(p.describe().unwrap().ends_with("on the least-used of them"));
    }

    #[test]
    fn one_server_core_is_shared_by_all() {
        let mut p = on_five_server_cores(0.1);
        p.server_cores = vec![1];
        let live = std::process::id();
        assert_eq!(p.cores_for("a", live, Role::Replica, Some(0.1)), vec![1]);
        assert_eq!(p.cores_for("b", live, Role::Store, Some(0.1)), vec![1]);
        assert!(!p.describe().unwrap().contains("least-used"));
    }

    #[test]
    fn each_budgeted_process_gets_the_least_used_server_cores() {
        let servers = [0, 1, 2, 3, 4];
        // Free cores first, in order.
        assert_eq!(least_used(&servers, &[], 1), vec![0]);
        assert_eq!(least_used(&servers, &[0, 1], 1), vec![2]);
        // Four replicas beside Redis on core 0: one core each, none shared.
        let mut taken = vec![0];
        for _ in 0..4 {
            let c = least_used(&servers, &taken, 1);
            assert!(!taken.contains(&c[0]), "{c:?} already taken in {taken:?}");
            taken.extend(c);
        }
        // Every core taken once: the next shares the first.
        assert_eq!(least_used(&servers, &taken, 1), vec![0]);
        // A budget of two cores gets two, in core order.
        assert_eq!(least_used(&servers, &[0, 2], 2), vec![1, 3]);
    }

    #[test]
    fn eight_tenth_core_replicas_and_a_store_fit_one_core_and_a_cluster_does_not() {
        assert!(budgets_fit(8.0 * 0.1 + 0.1, 1));
        assert!(budgets_fit(4.0 * 0.1 + 3.0 * 0.1, 1));
        assert!(!budgets_fit(8.0 * 0.1 + 3.0 * 0.1, 1));
        assert!(budgets_fit(8.0 * 0.1 + 3.0 * 0.1, 2));
    }
}
