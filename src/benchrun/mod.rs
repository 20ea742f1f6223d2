//! Running the benchmarks and reading what they wrote, for every command
//! that does (`micro`, `ci`): the `cargo bench` spawn (in a process group
//! of its own, stopped with the run), the target directory, the tools the
//! instruction counts need, and the typed readers in [`read`].
//!
//! Every result file these runs produce carries one provenance record,
//! [`crate::report::env::Environment`] (commit, toolchain, machine).

pub mod dispatch;
pub mod read;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

/// The benchmarks' target directory: `CARGO_TARGET_DIR`, else `target/`
/// in the checkout.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Whether `root` is a statebench checkout (benches can be run there).
pub fn is_checkout(root: &Path) -> bool {
    root.join("benches/instructions.rs").exists() && root.join("Cargo.toml").exists()
}

/// The first tool the instruction counts need that is not installed.
pub fn instruction_tools_missing() -> Option<&'static str> {
    crate::host::tools::first_missing(&crate::host::tools::INSTRUCTION_COUNTERS)
}

/// Where a benchmark run's own stdout goes.
#[derive(Debug, Clone, Copy)]
pub enum Output {
    /// The terminal's stdout.
    Inherit,
    /// Stderr (stdout stays free for a command's own result).
    Stderr,
    /// Nowhere.
    Null,
}

/// One `cargo bench` run in the checkout.
#[derive(Debug, Clone)]
pub struct Bench<'a> {
    /// `--bench` targets.
    pub benches: &'a [&'a str],
    /// Arguments after `--`, for the benchmark harness.
    pub args: &'a [&'a str],
    /// Cargo features to build with.
    pub features: Option<&'a str>,
    /// Environment variables added to the run.
    pub env: &'a [(&'a str, &'a str)],
    /// `STATEBENCH_QUICK=1`: shorter benchmarks.
    pub quick: bool,
    pub output: Output,
    /// Build into this target dir instead of the checkout's own (a base
    /// worktree shares the head's, so dependencies build once).
    pub target_dir: Option<&'a Path>,
}

impl Bench<'_> {
    /// Runs to the end (a stop kills it with everything it started); an
    /// error unless it succeeded. Returns when it started, so readers can
    /// take only the files this run wrote.
    pub fn run(&self, root: &Path) -> anyhow::Result<SystemTime> {
        let started = SystemTime::now();
        let mut cmd = Command::new("cargo");
        cmd.current_dir(root).arg("bench");
        for b in self.benches {
            cmd.args(["--bench", b]);
        }
        if let Some(f) = self.features {
            cmd.args(["--features", f]);
        }
        if !self.args.is_empty() {
            cmd.arg("--").args(self.args);
        }
        cmd.envs(self.env.iter().copied());
        if self.quick {
            cmd.env("STATEBENCH_QUICK", "1");
        }
        if let Some(t) = self.target_dir {
            cmd.env("CARGO_TARGET_DIR", t);
        }
        match self.output {
            Output::Inherit => {}
            Output::Stderr => {
                cmd.stdout(std::io::stderr());
            }
            Output::Null => {
                cmd.stdout(Stdio::null());
            }
        }
        let status = crate::stop::run_to_end(&mut cmd, "cargo bench")?;
        anyhow::ensure!(
            status.success(),
            "cargo bench {} failed ({status})",
            self.benches.join(", ")
        );
        Ok(started)
    }
}
