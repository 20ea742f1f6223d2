//! The regression gate catches a real regression and passes unchanged
//! code, in both of its modes:
//! - against the committed baseline: `statebench ci` (instruction counts
//!   only) once as is and once built with the `inject-slowdown` feature,
//!   which adds work to every token verification;
//! - base against head (`--base`): a git repository of this crate with a
//!   commit that compiles the slowdown in unconditionally (a code change,
//!   the same features), and one that changes no code.
//!
//! It also refuses a committed baseline from another toolchain, and the
//! instruction counts it gates on do not depend on which CPU features
//! AWS-LC sees once its dispatch is pinned. The gate
//! builds the benchmarks with cargo, in a target directory of its own (the
//! outer `cargo test` holds the main one). Needs valgrind and
//! gungraun-runner; `.ci/run` installs both.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::SystemTime;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// One gate at a time: they share a target dir, and each reads the
/// instruction summaries its own run wrote there.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `statebench ci ARGS` in `dir`: exit code and everything it printed.
fn ci(dir: &Path, args: &[&str]) -> (i32, String) {
    let target = Path::new(ROOT).join("target/ci-gate-test");
    let output = Command::new(env!("CARGO_BIN_EXE_statebench"))
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", &target)
        .arg("ci")
        .args(args)
        .output()
        .expect("run statebench ci");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

fn gate(features: Option<&str>) -> (i32, String) {
    let out = Path::new(ROOT)
        .join("target/ci-gate-test")
        .join(format!("out-{}", features.unwrap_or("plain")));
    let out = out.display().to_string();
    let mut args = vec!["--no-latency", "--out", &out];
    if let Some(f) = features {
        args.extend(["--cargo-features", f]);
    }
    ci(Path::new(ROOT), &args)
}

fn tools_missing() -> bool {
    ["valgrind", "gungraun-runner"].iter().any(|t| {
        let missing = Command::new(t).arg("--version").output().is_err();
        if missing {
            eprintln!("skipped the gate test: {t} is not installed (.ci/run installs it)");
        }
        missing
    })
}

fn names_token_verify(text: &str) -> bool {
    text.lines()
        .any(|l| l.contains("token_verify") && l.contains('%') && l.contains('→'))
}

/// Whether the committed baseline was made with another rustc or on a
/// CPU with other features than this machine's (the gate refuses it then).
fn committed_baseline_is_foreign() -> bool {
    let root = Path::new(ROOT);
    let made = statebench::ci::gate::Baseline::load(&root.join("results/baseline")).unwrap();
    let here = statebench::report::env::Environment::capture(root);
    match statebench::ci::foreign(
        &made,
        &here,
        statebench::benchrun::dispatch::Dispatch::Pinned,
    ) {
        Some(why) => {
            eprintln!(
                "skipped the committed-baseline gate test: the baseline was {why} \
                 (the base-against-head test covers this machine)"
            );
            true
        }
        None => false,
    }
}

#[test]
fn the_gate_fails_on_an_injected_slowdown_and_passes_without_it() {
    if tools_missing() || committed_baseline_is_foreign() {
        return;
    }
    let _serial = serial();
    let (code, text) = gate(None);
    assert_eq!(
        code, 0,
        "unchanged code must pass the committed baseline:\n{text}"
    );
    let (code, text) = gate(Some("inject-slowdown"));
    assert_eq!(code, 1, "the slowdown must fail the gate:\n{text}");
    assert!(
        names_token_verify(&text),
        "the failing benchmark must be named with old → new:\n{text}"
    );
}

#[test]
fn a_baseline_from_another_toolchain_is_refused_in_one_line() {
    if tools_missing() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let committed =
        std::fs::read_to_string(Path::new(ROOT).join("results/baseline/instructions.json"))
            .unwrap();
    let mut baseline: serde_json::Value = serde_json::from_str(&committed).unwrap();
    baseline["provenance"]["rustc"] = "rustc 1.0.0 (a3b1e5c4f 2015-05-13)".into();
    std::fs::write(
        dir.path().join("instructions.json"),
        serde_json::to_vec(&baseline).unwrap(),
    )
    .unwrap();
    let baseline_dir = dir.path().display().to_string();
    let out = dir.path().join("out").display().to_string();
    let (code, text) = ci(
        Path::new(ROOT),
        &["--no-latency", "--baseline", &baseline_dir, "--out", &out],
    );
    assert_eq!(code, 2, "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {text}");
    assert!(
        lines[0].contains("rustc 1.0.0") && lines[0].contains("--allow-foreign-baseline"),
        "{text}"
    );
}

/// Runs git in `dir`, which must succeed.
fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=statebench",
            "-c",
            "user.email=ci@statebench.invalid",
        ])
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

/// A git repository of this crate's tracked files with two more commits
/// on top of the copy: `plain` (a change that is not code) and `slow` (the
/// slowdown's code compiled in unconditionally).
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let files = Command::new("git")
        .args(["-C", ROOT, "ls-files", "-z"])
        .output()
        .unwrap()
        .stdout;
    for f in files.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let f = std::str::from_utf8(f).unwrap();
        let to = dir.path().join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(Path::new(ROOT).join(f), &to).unwrap();
    }
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-qm", "copy"]);
    std::fs::write(repo.join("NOTE"), "a change that is not code\n").unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-qm", "plain"]);
    git(repo, &["tag", "plain"]);
    // A change to the code, not to the features: the base and the head
    // then build with the same flags into one target dir, and must still
    // not take each other's build for their own.
    for file in ["src/lib.rs", "src/token/verifier.rs"] {
        let code = std::fs::read_to_string(repo.join(file)).unwrap();
        let slowed = code.replace("cfg(feature = \"inject-slowdown\")", "cfg(all())");
        assert_ne!(code, slowed, "{file} has the inject-slowdown code");
        std::fs::write(repo.join(file), slowed).unwrap();
    }
    git(repo, &["commit", "-qam", "slow"]);
    dir
}

#[test]
fn base_against_head_fails_on_a_slowed_commit_and_passes_an_unchanged_one() {
    if tools_missing() {
        return;
    }
    let _serial = serial();
    let repo = repository();
    let out = repo.path().join("ci-out").display().to_string();
    let (code, text) = ci(
        repo.path(),
        &["--no-latency", "--base", "plain", "--out", &out],
    );
    assert_eq!(
        code, 1,
        "the slowed head must fail against its base:\n{text}"
    );
    assert!(names_token_verify(&text), "{text}");
    assert!(text.contains("base plain ("), "{text}");
    git(repo.path(), &["checkout", "-q", "plain"]);
    let (code, text) = ci(
        repo.path(),
        &["--no-latency", "--base", "HEAD~1", "--out", &out],
    );
    assert_eq!(
        code, 0,
        "an unchanged head must pass against its base:\n{text}"
    );
}

/// Instruction counts of one `cargo bench --bench instructions` run with
/// `env` added, by benchmark id.
fn counts(env: &[(&str, &str)]) -> BTreeMap<String, u64> {
    let target = Path::new(ROOT).join("target/ci-gate-test");
    let started = SystemTime::now();
    let status = Command::new("cargo")
        .current_dir(ROOT)
        .args([
            "bench",
            "--bench",
            "instructions",
            "--",
            "--save-summary=json",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("OPENSSL_ia32cap")
        .env_remove("STATEBENCH_DISPATCH")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .status()
        .expect("run cargo bench");
    assert!(status.success(), "cargo bench --bench instructions {env:?}");
    statebench::benchrun::read::instruction_counts(&target, Some(started))
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.instructions))
        .collect()
}

#[test]
fn pinned_dispatch_counts_one_path_whatever_the_cpu_reports() {
    if tools_missing() {
        return;
    }
    let _serial = serial();
    // Two stand-in runners: this CPU as it is, and this CPU without the
    // "Intel" bit AWS-LC keeps in EDX, as an AMD runner shows it (SHA-256
    // on the SSSE3 path instead of AVX). The second value is applied by
    // AWS-LC itself after probing CPUID.
    const AMD_LIKE: (&str, &str) = ("OPENSSL_ia32cap", "~0x40000000");
    const NATIVE: (&str, &str) = ("STATEBENCH_DISPATCH", "native");
    let native = counts(&[NATIVE]);
    let native_amd = counts(&[NATIVE, AMD_LIKE]);
    let pinned = counts(&[]);
    let pinned_amd = counts(&[AMD_LIKE]);
    // The session lookup hashes with a random seed and is left out. The
    // other counts still step by up to 0.33% between runs, whatever the
    // dispatch (random per-process state); a different path moves them by
    // more than 1%.
    let change = |a: u64, b: u64| (b as f64 / a as f64 - 1.0).abs() * 100.0;
    for id in [
        "token_verify/hs256_cart_0_x1000",
        "profile_handler/stateless_x100",
    ] {
        let native_change = change(native[id], native_amd[id]);
        assert!(
            native_change > 1.0,
            "{id}: the native path depends on the CPU features AWS-LC sees: \
             {} → {} ({native_change:.2}%)",
            native[id],
            native_amd[id]
        );
        let pinned_change = change(pinned[id], pinned_amd[id]);
        assert!(
            pinned_change < 0.5,
            "{id}: the pinned path must not depend on them: {} → {} ({pinned_change:.2}%)",
            pinned[id],
            pinned_amd[id]
        );
    }
}
