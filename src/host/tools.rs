//! External programs statebench can use when they are installed.

use std::process::{Command, Stdio};

/// Whether a program can be run (it answers `--version`, or `-v` for
/// HAProxy).
pub fn installed(program: &str) -> bool {
    Command::new(program)
        .arg(if program == "haproxy" {
            "-v"
        } else {
            "--version"
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The first of `programs` that is not installed.
pub fn first_missing<'a>(programs: &[&'a str]) -> Option<&'a str> {
    programs.iter().copied().find(|p| !installed(p))
}

/// What the instruction-count benchmarks need.
pub const INSTRUCTION_COUNTERS: [&str; 2] = ["valgrind", "gungraun-runner"];
