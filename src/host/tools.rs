//! External programs statebench can use when they are installed.

use std::process::{Command, Stdio};

/// Whether a program can be run (it answers `--version`, or `-v` for
/// HAProxy and wrk; wrk prints its version and exits 1, so for it starting
/// is enough).
pub fn installed(program: &str) -> bool {
    let status = Command::new(program)
        .arg(if matches!(program, "haproxy" | "wrk") {
            "-v"
        } else {
            "--version"
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match program {
        "wrk" => status.is_ok(),
        _ => status.is_ok_and(|s| s.success()),
    }
}

/// The first of `programs` that is not installed.
pub fn first_missing<'a>(programs: &[&'a str]) -> Option<&'a str> {
    programs.iter().copied().find(|p| !installed(p))
}

/// What the instruction-count benchmarks need.
pub const INSTRUCTION_COUNTERS: [&str; 2] = ["valgrind", "gungraun-runner"];
