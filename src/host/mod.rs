//! The machine under the measurements: what the rest of statebench needs
//! from Linux, in one place, on well-kept crates instead of raw `libc`.
//!
//! - [`proc`]: CPU time and memory of a process, the CPU model (procfs);
//! - [`limits`]: the open-file limit (rustix);
//! - [`affinity`]: pinning processes to cores, and how busy each core was;
//! - [`cgroup`]: CPU budgets, a control group with a CPU quota per process;
//! - [`jitter`]: how late the machine wakes a sleeping thread, the floor
//!   under every latency measured on it;
//! - [`tools`]: whether an external program is installed;
//! - [`child`]: a child process in a group of its own, killed with
//!   everything it started when its handle drops (see [`crate::stop`]);
//! - [`services`]: the helper servers a comparison starts — Redis and
//!   HAProxy — on free loopback ports.
//!
//! Temporary directories come from `tempfile`, removed when dropped.

pub mod affinity;
pub mod cgroup;
pub mod child;
pub mod jitter;
pub mod limits;
pub mod proc;
pub mod services;
pub mod tools;
