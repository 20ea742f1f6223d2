//! The regression gate catches a real regression and passes unchanged
//! code: it runs `statebench ci` (instruction counts only) against the
//! committed baseline, once as is and once built with the
//! `inject-slowdown` feature, which adds work to every token verification.
//!
//! The gate builds the benchmarks with cargo, in a target directory of its
//! own (the outer `cargo test` holds the main one). Needs valgrind and
//! gungraun-runner; `.ci/run` installs both.

use std::process::Command;

fn gate(features: Option<&str>) -> (i32, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let target = std::path::Path::new(root).join("target/ci-gate-test");
    let out = target.join(format!("out-{}", features.unwrap_or("plain")));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_statebench"));
    cmd.current_dir(root)
        .env("CARGO_TARGET_DIR", &target)
        .args(["ci", "--no-latency", "--out"])
        .arg(&out);
    if let Some(f) = features {
        cmd.args(["--cargo-features", f]);
    }
    let output = cmd.output().expect("run statebench ci");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
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

#[test]
fn the_gate_fails_on_an_injected_slowdown_and_passes_without_it() {
    if tools_missing() {
        return;
    }
    let (code, text) = gate(None);
    assert_eq!(
        code, 0,
        "unchanged code must pass the committed baseline:\n{text}"
    );
    let (code, text) = gate(Some("inject-slowdown"));
    assert_eq!(code, 1, "the slowdown must fail the gate:\n{text}");
    let named = text
        .lines()
        .any(|l| l.contains("token_verify") && l.contains('%') && l.contains('→'));
    assert!(
        named,
        "the failing benchmark must be named with old → new:\n{text}"
    );
}
