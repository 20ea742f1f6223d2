//! Where a result came from: commit, toolchain, crate versions, machine.
//! Every committed result file carries this one provenance record: the
//! reports, the raw load results and the regression gate's baselines.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// Crates whose versions decide the figures.
const CRATES: [&str; 12] = [
    "jsonwebtoken",
    "aws-lc-rs",
    "axum",
    "hyper",
    "tokio",
    "dashmap",
    "scc",
    "papaya",
    "moka",
    "redis",
    "tungstenite",
    "criterion",
];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Environment {
    pub commit: String,
    pub rustc: String,
    pub cpu_model: String,
    pub cores: usize,
    /// The CPU features that change which code crypto libraries run
    /// ([`crate::host::proc::cpu_features`]).
    pub cpu_features: Vec<String>,
    pub os: String,
    pub crates: Vec<(String, String)>,
    pub generated_at: String,
}

impl Environment {
    /// Reads the environment of the current checkout (`root`) and machine.
    pub fn capture(root: &Path) -> Self {
        let run = |cmd: &str, args: &[&str]| {
            Command::new(cmd)
                .args(args)
                .current_dir(root)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        };
        let mut commit =
            run("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
        if run("git", &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty())
        {
            commit.push_str("-dirty");
        }
        let cpu_model = crate::host::proc::cpu_model().unwrap_or_else(|| "unknown".into());
        let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
        let crates = CRATES
            .iter()
            .filter_map(|name| lock_version(&lock, name).map(|v| ((*name).to_owned(), v)))
            .collect();
        Self {
            commit,
            rustc: run("rustc", &["--version"]).unwrap_or_else(|| "unknown".into()),
            cpu_model,
            cores: crate::host::proc::cpu_count()
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            cpu_features: crate::host::proc::cpu_features(),
            os: run("uname", &["-sr"]).unwrap_or_else(|| std::env::consts::OS.into()),
            crates,
            generated_at: run("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_default(),
        }
    }

    /// A markdown block for the top of a report.
    pub fn markdown(&self) -> String {
        let crates: Vec<String> = self
            .crates
            .iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        format!(
            "| | |\n|---|---|\n| commit | `{}` |\n| toolchain | {} |\n| machine | {} ({} cores), {} |\n| crates | {} |\n| generated | {} |\n",
            self.commit,
            self.rustc,
            self.cpu_model,
            self.cores,
            self.os,
            crates.join(", "),
            self.generated_at
        )
    }

    /// The crate versions as one line (`name version, …`).
    pub fn crates_line(&self) -> String {
        self.crates
            .iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The machine in a few words: CPU model, cores, OS.
    pub fn machine(&self) -> String {
        format!("{} ({} cores), {}", self.cpu_model, self.cores, self.os)
    }

    /// One line, for CSV comments and chart captions.
    pub fn one_line(&self) -> String {
        format!(
            "commit {} | {} | {} ({} cores) | {}",
            self.commit, self.rustc, self.cpu_model, self.cores, self.generated_at
        )
    }
}

/// The highest locked version of `name` in a Cargo.lock text.
fn lock_version(lock: &str, name: &str) -> Option<String> {
    let needle = format!("name = \"{name}\"\nversion = \"");
    lock.match_indices(&needle)
        .filter_map(|(i, _)| {
            lock[i + needle.len()..]
                .split('"')
                .next()
                .map(str::to_owned)
        })
        .max_by(|a, b| cmp_versions(a, b))
}

fn cmp_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |v: &str| {
        v.split(['.', '-'])
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    parts(a).cmp(&parts(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_highest_locked_version() {
        let lock = "[[package]]\nname = \"tungstenite\"\nversion = \"0.28.0\"\n\n[[package]]\nname = \"tungstenite\"\nversion = \"0.29.0\"\n";
        assert_eq!(lock_version(lock, "tungstenite").as_deref(), Some("0.29.0"));
        assert_eq!(lock_version(lock, "axum"), None);
    }
}
