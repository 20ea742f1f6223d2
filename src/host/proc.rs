//! Readers of `/proc`: a process's CPU time and memory, the CPU model.

use std::time::Duration;

use procfs_core::FromRead;
use procfs_core::process::{Stat, Status};

/// User + system CPU time of a process (all its threads).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = Stat::from_file(format!("/proc/{pid}/stat")).ok()?;
    let ticks = stat.utime + stat.stime;
    let per_sec = rustix::param::clock_ticks_per_second().max(1);
    Some(Duration::from_micros(ticks * 1_000_000 / per_sec))
}

/// CPU time the hypervisor gave to others while this machine's virtual
/// CPUs wanted to run (`steal` in `/proc/stat`, summed over the CPUs);
/// 0 on bare metal.
pub fn steal_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks = parse_steal(&stat)?;
    let per_sec = rustix::param::clock_ticks_per_second().max(1);
    Some(Duration::from_micros(ticks * 1_000_000 / per_sec))
}

/// The steal ticks of `/proc/stat`'s first line (`cpu user nice system
/// idle iowait irq softirq steal ...`).
fn parse_steal(stat: &str) -> Option<u64> {
    let line = stat.lines().next()?;
    let mut fields = line.split_whitespace();
    (fields.next()? == "cpu").then_some(())?;
    fields.nth(7)?.parse().ok()
}

/// Resident set size of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    Some(status(pid)?.vmrss? * 1024)
}

/// The most resident memory a process has had (VmHWM), in bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    Some(status(pid)?.vmhwm? * 1024)
}

/// Whether a process with this id exists.
pub fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The CPU's model name, as the kernel reports it.
pub fn cpu_model() -> Option<String> {
    let info = procfs_core::CpuInfo::from_file("/proc/cpuinfo").ok()?;
    info.model_name(0).map(str::to_owned)
}

/// The machine's CPUs, as the kernel lists them (not this process's
/// affinity mask, which `statebench vs` narrows to one core).
pub fn cpu_count() -> Option<usize> {
    let info = procfs_core::CpuInfo::from_file("/proc/cpuinfo").ok()?;
    Some(info.num_cores()).filter(|&n| n > 0)
}

/// CPU features that change which code a crypto library runs (AWS-LC
/// picks its AES, SHA and bignum paths from them at run time), so they
/// change instruction counts too.
const DISPATCH_FEATURES: [&str; 16] = [
    "adx",
    "aes",
    "avx",
    "avx2",
    "avx512bw",
    "avx512dq",
    "avx512f",
    "avx512vl",
    "bmi1",
    "bmi2",
    "pclmulqdq",
    "sha_ni",
    "sse4_1",
    "ssse3",
    "vaes",
    "vpclmulqdq",
];

/// Which of the dispatch-relevant CPU features this machine has, sorted.
pub fn cpu_features() -> Vec<String> {
    let Ok(info) = procfs_core::CpuInfo::from_file("/proc/cpuinfo") else {
        return Vec::new();
    };
    let flags = info.flags(0).unwrap_or_default();
    DISPATCH_FEATURES
        .iter()
        .filter(|f| flags.contains(f))
        .map(|f| (*f).to_owned())
        .collect()
}

fn status(pid: u32) -> Option<Status> {
    Status::from_file(format!("/proc/{pid}/status")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_eighth_figure_of_the_cpu_line() {
        let stat = "cpu  3399846 0 429083 1538828 46146 0 112173 106788 0 0\ncpu0 1 2 3\n";
        assert_eq!(parse_steal(stat), Some(106_788));
        assert_eq!(parse_steal("cpu  1 2 3\n"), None);
        assert_eq!(parse_steal("intr 1 2 3 4 5 6 7 8 9\n"), None);
        assert!(steal_time().is_some(), "Linux has /proc/stat");
    }

    #[test]
    fn own_cpu_and_memory_are_readable() {
        let me = std::process::id();
        assert!(rss_bytes(me).is_some_and(|r| r > 0));
        assert!(peak_rss_bytes(me).is_some_and(|p| p >= rss_bytes(me).unwrap_or(0) / 2));
        assert!(cpu_time(me).is_some());
        assert!(exists(me));
    }
}
