//! `ci --base REV`: the reference measured here and now. The base commit
//! is checked out in a git worktree of its own and built with the same
//! toolchain into the same target dir as the head (so dependencies build
//! once and only the crate itself is rebuilt), on the same machine — the
//! counts compare two builds of one compiler on one CPU, whatever runner
//! the job landed on.
//!
//! In the worktree the package is renamed `<name>-base` (its library keeps
//! its name, so the benches compile unchanged). Cargo names a path
//! package's outputs and fingerprints by its name and its path relative to
//! the workspace, which are the same for both checkouts: without the
//! rename, base and head would write the same files in the shared target
//! dir, and each would take the other's build for its own.

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
        let worktree = Self {
            repo: repo.to_path_buf(),
            path,
            commit,
        };
        let manifest = worktree.path.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", manifest.display()))?;
        let renamed = own_package(&text)
            .map_err(|e| anyhow::anyhow!("--base {rev}: {}: {e}", manifest.display()))?;
        std::fs::write(&manifest, renamed)?;
        Ok(worktree)
    }

    /// The commit, short.
    pub fn short(&self) -> &str {
        &self.commit[..self.commit.len().min(12)]
    }
}

/// The manifest `text` with its package renamed `<name>-base` and its
/// library named as before.
fn own_package(text: &str) -> anyhow::Result<String> {
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| anyhow::anyhow!("not a Cargo manifest: {e}"))?;
    let name = doc
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| anyhow::anyhow!("no [package] name"))?
        .to_owned();
    doc["package"]["name"] = toml_edit::value(format!("{name}-base"));
    if doc.get("lib").and_then(|l| l.get("name")).is_none() {
        doc["lib"]["name"] = toml_edit::value(name.replace('-', "_"));
    }
    Ok(doc.to_string())
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

#[cfg(test)]
mod tests {
    use super::own_package;

    #[test]
    fn the_base_package_gets_a_name_of_its_own_and_keeps_its_library_name() {
        let text = "[package]\nname = \"state-bench\"\nversion = \"0.1.0\"\n\n[dependencies]\nserde = \"1\"\n";
        let doc: toml_edit::DocumentMut = own_package(text).unwrap().parse().unwrap();
        assert_eq!(doc["package"]["name"].as_str(), Some("state-bench-base"));
        assert_eq!(doc["lib"]["name"].as_str(), Some("state_bench"));
        assert_eq!(doc["dependencies"]["serde"].as_str(), Some("1"));

        let with_lib = "[package]\nname = \"a\"\n[lib]\nname = \"b\"\n";
        let doc: toml_edit::DocumentMut = own_package(with_lib).unwrap().parse().unwrap();
        assert_eq!(doc["lib"]["name"].as_str(), Some("b"));

        assert!(own_package("[workspace]\n").is_err());
    }
}
