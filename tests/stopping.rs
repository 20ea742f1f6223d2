//! Every way a run can be stopped, on the real binary: SIGINT, SIGTERM and
//! SIGHUP sent to the whole process group (as a terminal sends them) at
//! several moments, closed output pipes, and targets that refuse, die or
//! never answer. Each stop must come within 5 s, with the conventional exit
//! code, leave no process behind and keep the cells finished so far.
//!
//! The runs are sequential within each test: on a 2-core machine, runs in
//! parallel would measure each other's start-up, not the stop.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::procs::{
    command, dead_port, exit_within, lines, orphans_after, peak_rss, serve, signal_group, tag,
    wait_for,
};

const STOP_WITHIN: Duration = Duration::from_secs(5);

/// One test at a time (see the module docs).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
/// A run that never stops is killed after this, so no test can hang.
const HARD_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
enum Moment {
    /// While Redis starts and the first replica comes up.
    Startup,
    /// Half a second into the second cell's load.
    DuringLoad,
    /// Right after the third cell, as the next one's replicas start.
    BetweenCells,
}

fn read_cells(dir: &std::path::Path) -> Option<serde_json::Value> {
    let bytes = std::fs::read(dir.join("load/t/cells.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `compare` on the state-size matrix (six short cells), stopped by `sig`
/// at `moment`.
fn compare_stopped_by(sig: i32, moment: Moment) {
    let tag = tag();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().to_path_buf();
    let out_s = out.display().to_string();
    let mut child = command(
        &tag,
        &[
            "compare",
            "--only",
            "state-size",
            "--run-time",
            "1",
            "--out",
            &out_s,
            "--run-name",
            "t",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let rx = lines(child.stderr.take().unwrap());
    match moment {
        Moment::Startup => std::thread::sleep(Duration::from_millis(300)),
        Moment::DuringLoad => {
            wait_for(&rx, "state-size/", HARD_LIMIT);
            std::thread::sleep(Duration::from_millis(500));
        }
        Moment::BetweenCells => {
            for _ in 0..3 {
                wait_for(&rx, "state-size/", HARD_LIMIT);
            }
        }
    }
    signal_group(child.id(), sig);
    let (status, took) = exit_within(&mut child, HARD_LIMIT)
        .unwrap_or_else(|| panic!("compare ignored signal {sig} at {moment:?}"));
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        took <= STOP_WITHIN,
        "signal {sig} at {moment:?}: exit took {took:?}; stderr:\n{}",
        rest.join("\n")
    );
    assert_eq!(
        status.code(),
        Some(128 + sig),
        "signal {sig} at {moment:?}: {status}; stderr:\n{}",
        rest.join("\n")
    );
    let left = orphans_after(&tag, Duration::from_secs(2));
    assert!(left.is_empty(), "left behind at {moment:?}: {left:?}");
    if !matches!(moment, Moment::Startup) {
        let record = read_cells(&out).expect("cells.json kept");
        let cells = record["cells"].as_array().unwrap();
        assert!(!cells.is_empty(), "no finished cell kept at {moment:?}");
        assert!(
            record["partial"]
                .as_str()
                .is_some_and(|p| p.contains("stopped by")),
            "cells.json does not say it is partial"
        );
        let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
        assert!(
            report.contains("Partial run"),
            "the report does not say partial"
        );
    }
    assert!(
        !rest.iter().any(|l| l.contains("panicked")),
        "{}",
        rest.join("\n")
    );
}

#[test]
fn compare_stops_cleanly_on_every_signal_at_every_moment() {
    let _serial = serial();
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        for moment in [Moment::Startup, Moment::DuringLoad, Moment::BetweenCells] {
            compare_stopped_by(sig, moment);
        }
    }
}

/// `statebench compare | head -1` with head gone, or a closed terminal:
/// closed stdout or stderr stops the run (141, SIGPIPE's code), no panic.
#[test]
fn compare_stops_when_its_output_is_closed() {
    let _serial = serial();
    for closed in ["stdout", "stderr"] {
        let tag = tag();
        let out_dir = tempfile::tempdir().unwrap();
        let out = out_dir.path().to_path_buf();
        let out_s = out.display().to_string();
        let mut child = command(
            &tag,
            &[
                "compare",
                "--only",
                "state-size",
                "--run-time",
                "1",
                "--out",
                &out_s,
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let stderr = lines(child.stderr.take().unwrap());
        wait_for(&stderr, "state-size/", HARD_LIMIT);
        if closed == "stdout" {
            drop(child.stdout.take());
        } else {
            drop(stderr);
        }
        let (status, took) = exit_within(&mut child, HARD_LIMIT)
            .unwrap_or_else(|| panic!("compare kept running with {closed} closed"));
        assert!(took <= STOP_WITHIN, "{closed} closed: exit took {took:?}");
        assert_eq!(status.code(), Some(141), "{closed} closed: {status}");
        let left = orphans_after(&tag, Duration::from_secs(2));
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

#[test]
fn load_and_serve_stop_on_every_signal() {
    let _serial = serial();
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let tag = tag();
        let mut load = command(
            &tag,
            &[
                "load",
                "--scenario",
                "stateless",
                "--users",
                "4",
                "--run-time",
                "60",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let stdout = lines(load.stdout.take().unwrap());
        let stderr = lines(load.stderr.take().unwrap());
        wait_for(&stderr, "running stateless", HARD_LIMIT);
        std::thread::sleep(Duration::from_millis(1500));
        signal_group(load.id(), sig);
        let (status, took) = exit_within(&mut load, HARD_LIMIT).expect("load ignored the signal");
        assert!(
            took <= STOP_WITHIN,
            "load, signal {sig}: exit took {took:?}"
        );
        assert_eq!(status.code(), Some(128 + sig), "load, signal {sig}");
        // What was measured before the stop is still printed.
        let table: Vec<String> = stdout.try_iter().collect();
        assert!(
            table.iter().any(|l| l.starts_with("GET profile")),
            "no figures after the stop: {table:?}"
        );
        assert!(orphans_after(&tag, Duration::from_secs(2)).is_empty());

        let (mut server, _) = serve(&tag, &["--arch", "stateful"]);
        signal_group(server.id(), sig);
        let (status, took) =
            exit_within(&mut server, HARD_LIMIT).expect("serve ignored the signal");
        assert!(
            took <= STOP_WITHIN,
            "serve, signal {sig}: exit took {took:?}"
        );
        assert_eq!(status.code(), Some(128 + sig), "serve, signal {sig}");
    }
}

/// `ci` runs `cargo bench` in a process group of its own: a Ctrl-C stops
/// cargo and everything it started. (Where gungraun-runner is missing, ci
/// stops before cargo; `micro` then stands in: the same path runs its
/// `cargo bench`.)
#[test]
fn ci_stops_its_cargo_children() {
    let _serial = serial();
    let tag = tag();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().to_path_buf();
    let out_s = out.display().to_string();
    let args: &[&str] = if installed("gungraun-runner") {
        // A baseline made on another CPU or toolchain would end the gate
        // before cargo starts: measure against it anyway.
        &[
            "ci",
            "--no-latency",
            "--allow-foreign-baseline",
            "--out",
            &out_s,
        ]
    } else {
        eprintln!("gungraun-runner is not installed: stopping `micro`'s cargo bench instead");
        &["micro", "--quick", "--no-instructions", "--out", &out_s]
    };
    let mut ci = command(&tag, args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines(ci.stderr.take().unwrap());
    let start = std::time::Instant::now();
    while !tagged_cargo(&tag) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} never started cargo: {:?}",
            args[0],
            stderr.try_iter().collect::<Vec<_>>()
        );
        if let Some(status) = ci.try_wait().unwrap() {
            panic!(
                "{} ended ({status}) before starting cargo: {:?}",
                args[0],
                stderr.try_iter().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    signal_group(ci.id(), libc::SIGINT);
    let (status, took) = exit_within(&mut ci, HARD_LIMIT).expect("Ctrl-C ignored");
    assert!(took <= STOP_WITHIN, "{}: exit took {took:?}", args[0]);
    assert_eq!(
        status.code(),
        Some(130),
        "{}: {:?}",
        args[0],
        stderr.try_iter().collect::<Vec<_>>()
    );
    let left = orphans_after(&tag, Duration::from_secs(3));
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `cargo` (or what it started) runs. Not any `rustc`: the gate
/// runs `rustc --version` for its provenance before it starts cargo.
fn tagged_cargo(tag: &str) -> bool {
    common::procs::tagged(tag)
        .iter()
        .any(|p| p.ends_with(" cargo") || p.contains("instructions"))
}

/// Runs `load` against `target` for 3 s and returns its exit status, the
/// time it took, its peak RSS and its stderr.
fn load_against(target: &str) -> (Option<i32>, Duration, u64, Vec<String>) {
    let tag = tag();
    let mut child = command(
        &tag,
        &[
            "load",
            "--scenario",
            "healthz",
            "--target",
            target,
            "--users",
            "4",
            "--run-time",
            "3",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = lines(child.stderr.take().unwrap());
    let start = std::time::Instant::now();
    let mut peak = 0;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < HARD_LIMIT,
            "load against {target} never ended"
        );
        if let Some(p) = peak_rss(child.id()) {
            peak = peak.max(p);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code(),
        start.elapsed(),
        peak,
        stderr.iter().collect(),
    )
}

const RSS_LIMIT: u64 = 100 * 1024 * 1024;

#[test]
fn a_target_that_refuses_every_connection_is_one_error() {
    let _serial = serial();
    let target = format!("http://127.0.0.1:{}", dead_port());
    let (code, took, peak, stderr) = load_against(&target);
    assert_eq!(code, Some(2), "{stderr:?}");
    assert!(took <= STOP_WITHIN, "took {took:?}");
    assert!(peak < RSS_LIMIT, "peak RSS {peak}");
    let errors: Vec<&String> = stderr.iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors,
        [&format!(
            "error: {target} refused every connection (is the server running?)"
        )],
    );
}

#[test]
fn a_target_that_never_answers_ends_on_time() {
    let _serial = serial();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("http://{}", listener.local_addr().unwrap());
    // Accepts every connection and holds it without a byte of answer.
    let holder = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let mut held = Vec::new();
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok((s, _)) = listener.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let (code, took, peak, stderr) = load_against(&target);
    assert_eq!(code, Some(2), "{stderr:?}");
    assert!(took <= STOP_WITHIN, "took {took:?}");
    assert!(peak < RSS_LIMIT, "peak RSS {peak}");
    assert!(
        stderr.iter().any(|l| l.contains("answered no request")),
        "{stderr:?}"
    );
    drop(holder);
}

#[test]
fn a_target_that_dies_mid_run_ends_on_time_with_counted_failures() {
    let _serial = serial();
    let tag = tag();
    let (mut server, url) = serve(&tag, &["--arch", "stateless"]);
    let killer = {
        let pid = server.id();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1000));
            signal_group(pid, libc::SIGKILL);
        })
    };
    let (code, took, peak, stderr) = load_against(&url);
    killer.join().unwrap();
    let _ = server.wait();
    assert_eq!(code, Some(0), "{stderr:?}");
    assert!(took <= STOP_WITHIN, "took {took:?}");
    assert!(peak < RSS_LIMIT, "peak RSS {peak}");
}
