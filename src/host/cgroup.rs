//! CPU budgets: a control group per process with a CPU quota, so that a
//! replica gets a fixed share of a core however many run on the machine.
//!
//! Both layouts Linux offers are supported: cgroup v2 (`cpu.max` in the
//! unified hierarchy) and cgroup v1 (`cpu.cfs_quota_us` under the `cpu`
//! controller). [`Hierarchy::detect`] finds a writable one and says in one
//! line why there is none (not root, no controller); callers then fall back
//! to pinning alone. Every group statebench makes lives under one parent
//! named after its process id (and a counter), removed when the [`Hierarchy`]
//! drops.
//!
//! The quota period is short (20 ms by default): with the kernel's 100 ms,
//! a replica that spends its budget early waits up to 100 ms, which would
//! swamp the p99 the comparison is measuring. Why not shorter is the
//! capacity matrix's (its `REPLICA_CPU`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default quota period (`compare --cpu-period`).
pub const PERIOD: Duration = Duration::from_millis(20);

/// How a budget of `cpus` cores is written: `quota` of CPU time every
/// `period`. The kernel refuses quotas under 1 ms, so a budget too small
/// for one in the period asked for gets a longer period, and is still the
/// budget asked for (0.05 cores: 1 ms every 20 ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub quota: Duration,
    pub period: Duration,
}

impl Slice {
    pub fn new(cpus: f64, period: Duration) -> Self {
        let period_us = (period.as_micros() as u64)
            .max(1000)
            .max((1000.0 / cpus).ceil() as u64);
        let quota_us = ((cpus * period_us as f64).round() as u64).max(1000);
        Self {
            quota: Duration::from_micros(quota_us),
            period: Duration::from_micros(period_us),
        }
    }

    /// The longest a busy process waits once it has spent its quota: the
    /// rest of the period. A request that arrives then waits that long
    /// before any work on it starts.
    pub fn stall(&self) -> Duration {
        self.period.saturating_sub(self.quota)
    }
}

impl fmt::Display for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Milliseconds to a tenth, without a trailing ".0".
        let ms = |d: Duration| {
            let s = format!("{:.1}", d.as_secs_f64() * 1e3);
            s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
        };
        write!(f, "{} ms every {} ms", ms(self.quota), ms(self.period))
    }
}

/// Which cgroup layout a budget is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V1 => "cgroup v1 (cpu.cfs_quota_us)",
            Self::V2 => "cgroup v2 (cpu.max)",
        })
    }
}

/// A place where this process may create CPU-limited groups: the parent
/// group `statebench-<pid>-<n>`, removed (with its children) when dropped.
#[derive(Debug)]
pub struct Hierarchy {
    version: Version,
    /// The mount's root group, where processes still in a group go when
    /// the hierarchy is removed.
    root: PathBuf,
    parent: PathBuf,
}

/// Why no budget can be applied, in a few words for a one-line message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CPU budgets unavailable: {0}")]
pub struct Unavailable(pub String);

/// A cgroup mount, as `/proc/self/mountinfo` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    point: PathBuf,
    version: Version,
}

/// The cgroup mounts usable for CPU budgets: v2 mounts, and v1 mounts
/// whose options include the `cpu` controller.
fn mounts(mountinfo: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // `id parent major:minor root point options [optional…] - fstype source super-options`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(point), Some(fstype)) = (left.get(4), right.first()) else {
            continue;
        };
        let point = PathBuf::from(unescape(point));
        match *fstype {
            "cgroup2" => out.push(Mount {
                point,
                version: Version::V2,
            }),
            "cgroup"
                if right
                    .get(2)
                    .is_some_and(|o| o.split(',').any(|opt| opt == "cpu")) =>
            {
                out.push(Mount {
                    point,
                    version: Version::V1,
                });
            }
            _ => {}
        }
    }
    out
}

/// mountinfo escapes spaces and a few other bytes as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Hierarchy {
    /// Finds a writable cgroup layout with the CPU controller and creates
    /// this process's parent group in it. cgroup v2 is preferred when its
    /// `cpu` controller is available.
    pub fn detect() -> Result<Self, Unavailable> {
        let info = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Unavailable(format!("cannot read /proc/self/mountinfo: {e}")))?;
        let mut found = mounts(&info);
        found.sort_by_key(|m| m.version == Version::V1);
        let mut reasons = Vec::new();
        for m in found {
            match Self::create_in(&m) {
                Ok(h) => return Ok(h),
                Err(e) => reasons.push(format!("{}: {e}", m.point.display())),
            }
        }
        if reasons.is_empty() {
            return Err(Unavailable(
                "no cgroup mount with the cpu controller".into(),
            ));
        }
        Err(Unavailable(reasons.join("; ")))
    }

    fn create_in(m: &Mount) -> std::io::Result<Self> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let parent = m
            .point
            .join(format!("statebench-{}-{n}", std::process::id()));
        if m.version == Version::V2 {
            let controllers = std::fs::read_to_string(m.point.join("cgroup.controllers"))?;
            if !controllers.split_whitespace().any(|c| c == "cpu") {
                return Err(std::io::Error::other("the cpu controller is not enabled"));
            }
            // The root group may delegate to children although it has
            // processes; the parent below holds none, so it may too.
            write(&m.point.join("cgroup.subtree_control"), "+cpu")?;
        }
        ensure_dir(&parent)?;
        let h = Self {
            version: m.version,
            root: m.point.clone(),
            parent,
        };
        if m.version == Version::V2 {
            write(&h.parent.join("cgroup.subtree_control"), "+cpu")?;
        }
        Ok(h)
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// A new group named `name` limited to `cpus` cores' worth of time
    /// (0.25 is a quarter of one core) per `period`, or per a longer period
    /// when the quota would be under the kernel's 1 ms minimum.
    pub fn budget(&self, name: &str, cpus: f64, period: Duration) -> std::io::Result<Budget> {
        if !(cpus > 0.0 && cpus.is_finite()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("a CPU budget must be a positive number of cores, not {cpus}"),
            ));
        }
        let path = self.parent.join(name);
        ensure_dir(&path)?;
        let slice = Slice::new(cpus, period);
        let (quota_us, period_us) = (slice.quota.as_micros(), slice.period.as_micros());
        match self.version {
            Version::V2 => write(&path.join("cpu.max"), &format!("{quota_us} {period_us}"))?,
            Version::V1 => {
                // The period first: a quota above the old period is fine,
                // but the pair must be valid after each write.
                write(&path.join("cpu.cfs_period_us"), &period_us.to_string())?;
                write(&path.join("cpu.cfs_quota_us"), &quota_us.to_string())?;
            }
        }
        Ok(Budget {
            path,
            version: self.version,
            cpus: quota_us as f64 / period_us as f64,
        })
    }
}

impl Drop for Hierarchy {
    fn drop(&mut self) {
        // Children first. A process still in a group (one whose handle
        // outlives the hierarchy) moves to the root group, so that no
        // directory is left behind.
        if let Ok(dir) = std::fs::read_dir(&self.parent) {
            for e in dir.flatten() {
                if !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                // A process killed just before is still exiting: the
                // kernel keeps the group busy until it is gone, so wait
                // for it (up to 2 s) rather than leave the directory.
                for _ in 0..40 {
                    let procs = std::fs::read_to_string(e.path().join("cgroup.procs"));
                    for pid in procs.iter().flat_map(|p| p.lines()) {
                        let _ = std::fs::write(self.root.join("cgroup.procs"), pid);
                    }
                    if std::fs::remove_dir(e.path()).is_ok() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
        }
        let _ = std::fs::remove_dir(&self.parent);
    }
}

/// One CPU-limited group.
#[derive(Debug)]
pub struct Budget {
    path: PathBuf,
    version: Version,
    cpus: f64,
}

/// Throttling and usage counters of a group (`cpu.stat`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuStat {
    /// Quota periods in which the group had runnable work.
    pub periods: u64,
    /// Periods in which it used its whole quota and was held back.
    pub throttled: u64,
    /// Time held back.
    pub throttled_time: Duration,
    /// CPU time the group used, where the controller counts it (cgroup
    /// v2's `usage_usec`; under v1 usage is another controller's).
    pub usage: Option<Duration>,
}

impl CpuStat {
    /// Reads `cpu.stat` text (v1 gives `throttled_time` in ns, v2
    /// `throttled_usec`).
    fn parse(text: &str) -> Self {
        let mut s = Self::default();
        for line in text.lines() {
            let mut kv = line.split_whitespace();
            let (Some(k), Some(v)) = (kv.next(), kv.next().and_then(|v| v.parse::<u64>().ok()))
            else {
                continue;
            };
            match k {
                "nr_periods" => s.periods = v,
                "nr_throttled" => s.throttled = v,
                "throttled_time" => s.throttled_time = Duration::from_nanos(v),
                "throttled_usec" => s.throttled_time = Duration::from_micros(v),
                "usage_usec" => s.usage = Some(Duration::from_micros(v)),
                _ => {}
            }
        }
        s
    }

    /// The counters accumulated since `earlier`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            periods: self.periods.saturating_sub(earlier.periods),
            throttled: self.throttled.saturating_sub(earlier.throttled),
            throttled_time: self.throttled_time.saturating_sub(earlier.throttled_time),
            usage: match (self.usage, earlier.usage) {
                (Some(a), Some(b)) => Some(a.saturating_sub(b)),
                _ => None,
            },
        }
    }
}

impl std::ops::AddAssign for CpuStat {
    /// Sums the counters of several groups.
    fn add_assign(&mut self, other: Self) {
        self.periods += other.periods;
        self.throttled += other.throttled;
        self.throttled_time += other.throttled_time;
        self.usage = match (self.usage, other.usage) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }
}

/// Creates directory `path` unless it is there already.
fn ensure_dir(path: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

impl Budget {
    /// Moves process `pid` (all its threads) into the group. Children it
    /// starts afterwards are born in it.
    pub fn add(&self, pid: u32) -> std::io::Result<()> {
        write(&self.path.join("cgroup.procs"), &pid.to_string())
    }

    /// The budget actually written, in cores (the kernel's 1 ms minimum
    /// quota may raise a tiny one).
    pub fn cpus(&self) -> f64 {
        self.cpus
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn stat(&self) -> std::io::Result<CpuStat> {
        Ok(CpuStat::parse(&std::fs::read_to_string(
            self.path.join("cpu.stat"),
        )?))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_under_a_millisecond_per_period_gets_a_longer_period() {
        let ms = Duration::from_millis;
        let at = |cpus| Slice::new(cpus, ms(10));
        assert_eq!(
            at(0.1),
            Slice {
                quota: ms(1),
                period: ms(10)
            }
        );
        assert_eq!(at(0.1).stall(), ms(9));
        assert_eq!(
            at(0.25),
            Slice {
                quota: Duration::from_micros(2500),
                period: ms(10)
            }
        );
        // 0.075 cores: 1 ms every 13.3 ms, a stall longer than a 10 ms SLO.
        let small = at(0.075);
        assert_eq!(small.quota, ms(1));
        assert_eq!(small.period, Duration::from_micros(13_334));
        assert!(small.stall() > ms(10));
        assert_eq!(at(0.05).to_string(), "1 ms every 20 ms");
        assert_eq!(small.to_string(), "1 ms every 13.3 ms");
        // The default period: 0.1 cores is 2 ms every 20 ms.
        assert_eq!(Slice::new(0.1, PERIOD).to_string(), "2 ms every 20 ms");
        assert_eq!(Slice::new(0.1, PERIOD).stall(), ms(18));
    }

    const MOUNTINFO: &str = "\
25 30 0:22 / /sys/fs/cgroup rw,relatime shared:9 - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime shared:10 - cgroup cgroup rw,cpu
27 25 0:24 / /sys/fs/cgroup/cpuacct rw,relatime shared:11 - cgroup cgroup rw,cpuacct
28 25 0:25 / /sys/fs/cgroup/memory rw,relatime shared:12 - cgroup cgroup rw,memory
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/unified rw,relatime shared:13 - cgroup2 cgroup2 rw,nsdelegate
31 1 0:28 / /mnt/with\\040space rw - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_the_cpu_controllers_in_mountinfo() {
        let found = mounts(MOUNTINFO);
        let points: Vec<(String, Version)> = found
            .iter()
            .map(|m| (m.point.display().to_string(), m.version))
            .collect();
        assert_eq!(
            points,
            vec![
                ("/sys/fs/cgroup/cpu".into(), Version::V1),
                ("/sys/fs/cgroup/cpu,cpuacct".into(), Version::V1),
                ("/sys/fs/cgroup/unified".into(), Version::V2),
                ("/mnt/with space".into(), Version::V2),
            ]
        );
    }

    #[test]
    fn reads_both_layouts_of_cpu_stat() {
        let v1 =
            CpuStat::parse("nr_periods 35\nnr_throttled 34\nthrottled_time 2500000\nnr_bursts 0\n");
        assert_eq!(
            v1,
            CpuStat {
                periods: 35,
                throttled: 34,
                throttled_time: Duration::from_micros(2500),
                usage: None,
            }
        );
        let v2 = CpuStat::parse(
            "usage_usec 100\nuser_usec 60\nsystem_usec 40\nnr_periods 7\nnr_throttled 2\nthrottled_usec 900\n",
        );
        assert_eq!(
            (v2.periods, v2.throttled, v2.throttled_time),
            (7, 2, Duration::from_micros(900))
        );
        assert_eq!(v2.usage, Some(Duration::from_micros(100)));
        assert_eq!(v1.since(&v2).periods, 28);
        assert_eq!(v2.since(&v1).periods, 0);
    }
}
