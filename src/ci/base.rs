//! `ci --base REV`: the reference measured here and now. The base commit
//! is checked out in a git worktree of its own and built with the same
//! toolchain into the same target dir as the head (so dependencies build
//! once and only the crate itself is rebuilt), on the same machine — the
//! counts compare two builds of one compiler on one CPU, whatever runner
//! the job landed on.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A detached worktree of the base commit, removed when dropped.
pub struct Worktree {
    repo: PathBuf,
    pub path: PathBuf,
    /// The commit, in full.
    pub commit: String,
}

/// Runs git in `dir`; its trimmed stdout, or the first line it said.
fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run git: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    anyhow::bail!(
        "git {}: {}",
        args.join(" "),
        said.lines().next().unwrap_or("failed")
    )
}

impl Worktree {
    /// Checks `rev` of the repository at `repo` out at
    /// `<target>/statebench-base`.
    pub fn add(repo: &Path, rev: &str, target: &Path) -> anyhow::Result<Self> {
        let commit = git(
            repo,
            &["rev-parse", "--verify", &format!("{rev}^{{commit}}")],
        )
        .map_err(|_| anyhow::anyhow!("--base {rev}: no such commit in {}", repo.display()))?;
        let path = target.join("statebench-base");
        if path.exists() {
            // Left by a run that was killed: take it back.
            let _ = git(
                repo,
                &["worktree", "remove", "--force", &path.display().to_string()],
            );
            let _ = std::fs::remove_dir_all(&path);
        }
        let _ = git(repo, &["worktree", "prune"]);
        std::fs::create_dir_all(target)?;
        git(
            repo,
            &[
                "worktree",
                "add",
                "--force",
                "--detach",
                &path.display().to_string(),
                &commit,
            ],
        )?;
        Ok(Self {
            repo: repo.to_path_buf(),
            path,
            commit,
        })
    }

    /// The commit, short.
    pub fn short(&self) -> &str {
        &self.commit[..self.commit.len().min(12)]
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        let _ = git(
            &self.repo,
            &[
                "worktree",
                "remove",
                "--force",
                &self.path.display().to_string(),
            ],
        );
    }
}
