//! Which cores a process may run on (`sched_setaffinity`, through rustix),
//! and how busy each core was (`/proc/stat`): what `statebench vs` needs to
//! give a server one core and its load generator another.

use rustix::process::Pid;
use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// The cores this process may run on now, in order.
pub fn allowed() -> Vec<usize> {
    sched_getaffinity(None)
        .map(|set| (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect())
        .unwrap_or_default()
}

/// Pins every thread of process `pid` to `cores`. Threads it starts later
/// inherit the mask from the thread that starts them.
pub fn pin_process(pid: u32, cores: &[usize]) -> std::io::Result<()> {
    let set = cpu_set(cores);
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))?;
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
            .and_then(Pid::from_raw)
        else {
            continue;
        };
        // A thread that ended since the listing is not an error.
        match sched_setaffinity(Some(tid), &set) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Pins the calling thread alone to `cores` (threads it starts inherit it).
pub fn pin_thread(cores: &[usize]) -> std::io::Result<()> {
    Ok(sched_setaffinity(None, &cpu_set(cores))?)
}

fn cpu_set(cores: &[usize]) -> CpuSet {
    let mut set = CpuSet::new();
    for &c in cores {
        set.set(c);
    }
    set
}

/// Pins this whole process (every thread) to `cores`; children started
/// afterwards inherit it.
pub fn pin_self(cores: &[usize]) -> std::io::Result<()> {
    pin_process(std::process::id(), cores)
}

/// Busy and total time of each core since boot, from `/proc/stat`.
#[derive(Debug, Clone, Default)]
pub struct CoreTimes(Vec<(u64, u64)>);

impl CoreTimes {
    pub fn now() -> Self {
        let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let mut cores = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("cpu") else {
                continue;
            };
            let mut fields = rest.split_whitespace();
            let Some(index) = fields.next().and_then(|i| i.parse::<usize>().ok()) else {
                continue; // the "cpu" total line
            };
            let ticks: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
            // user nice system idle iowait irq softirq steal ...
            let total: u64 = ticks.iter().take(8).sum();
            let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
            if cores.len() <= index {
                cores.resize(index + 1, (0, 0));
            }
            cores[index] = (total.saturating_sub(idle), total);
        }
        Self(cores)
    }

    /// How busy `core` was between `earlier` and `self`, 0 to 1.
    pub fn busy_since(&self, earlier: &CoreTimes, core: usize) -> Option<f64> {
        let (b1, t1) = *self.0.get(core)?;
        let (b0, t0) = *earlier.0.get(core)?;
        let dt = t1.checked_sub(t0)?;
        (dt > 0).then(|| (b1.saturating_sub(b0)) as f64 / dt as f64)
    }
}
