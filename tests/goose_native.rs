//! The load scenarios the way goose users run them, against real loopback
//! servers: `statebench goose` with goose's own command line, and
//! `statebench load` with goose's durations, test plans, reports and
//! options after `--`. Every report format is opened and checked.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::procs::{self, serve, tag};
use statebench::loadtests::ScenarioKind;

const LIMIT: Duration = Duration::from_secs(90);

/// Runs the binary to its end (killed past [`LIMIT`]): exit code, stdout,
/// stderr.
fn run(tag: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd: Command = procs::command(tag, args);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(LIMIT);
        procs::signal_group(pid, libc::SIGKILL);
    });
    let out = child.wait_with_output().unwrap();
    drop(watchdog);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The name goose's `--scenarios` selects a scenario by.
fn machine_name(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase()
}

/// Goose's three report formats, checked for what a reader looks for:
/// the per-request table with `request`'s row.
fn check_reports(dir: &Path, request: &str) {
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<table"), "the HTML report has tables");
    assert!(
        html.contains(request),
        "the HTML report has a {request} row"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap())
            .expect("the JSON report parses");
    assert!(
        json.to_string().contains(request),
        "the JSON report names {request}"
    );
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.lines()
            .any(|l| l.starts_with('|') && l.contains(request)),
        "the markdown report has a table row for {request}:\n{md}"
    );
}

fn report_args(dir: &Path) -> Vec<String> {
    ["html", "json", "md"]
        .iter()
        .flat_map(|ext| {
            [
                "--report-file".to_string(),
                dir.join(format!("report.{ext}")).display().to_string(),
            ]
        })
        .collect()
}

#[test]
fn scenarios_list_names_every_registered_scenario() {
    let (code, out, err) = run(&tag(), &["goose", "--scenarios-list"]);
    assert_eq!(code, 0, "{err}");
    for kind in ScenarioKind::ALL {
        let line = format!(" - {}: (\"{}\")", machine_name(kind.name()), kind.name());
        assert!(out.contains(&line), "{line:?} missing from:\n{out}");
    }
    let listed = out.lines().filter(|l| l.starts_with(" - ")).count();
    assert_eq!(listed, ScenarioKind::ALL.len(), "{out}");
}

#[test]
fn goose_without_a_server_to_load_says_so_in_one_line() {
    let (code, out, err) = run(&tag(), &["goose", "-u", "1", "-t", "1s"]);
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("--host"), "{err}");
}

#[test]
fn goose_help_shows_goose_options_ours_and_the_scenarios() {
    let (code, out, _) = run(&tag(), &["goose", "--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--host",
        "--users",
        "--increase-rate",
        "--run-time",
        "--scenarios",
        "--scenarios-list",
        "--test-plan",
        "--throttle-requests",
        "--report-file",
        "--request-log",
        "--co-mitigation",
        "--sb-cart-items",
        "--sb-room-size",
        "--sb-replicas",
        "--sb-policy",
    ] {
        assert!(out.contains(flag), "{flag} missing from goose --help");
    }
    for kind in ScenarioKind::ALL {
        assert!(
            out.contains(&format!("[{}]", machine_name(kind.name()))),
            "{} missing from goose --help",
            kind.name()
        );
    }
}

#[test]
fn goose_runs_chosen_scenarios_with_its_own_flags_and_writes_every_report() {
    let tag = tag();
    let (mut server, url) = serve(&tag, &["--arch", "stateless"]);
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = [
        "goose",
        "--host",
        &url,
        "--scenarios",
        "stateless,cart",
        "-u",
        "4",
        "-r",
        "4",
        "-t",
        "3s",
        "--no-telnet",
        "--no-websocket",
        "--quiet",
    ]
    .map(String::from)
    .to_vec();
    args.extend(report_args(dir.path()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = run(&tag, &args);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(code, 0, "{err}");
    check_reports(dir.path(), "profile");
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        md.contains("| POST | cart/items |"),
        "the cart scenario ran:\n{md}"
    );
    assert!(
        !md.contains("| GET | healthz |"),
        "--scenarios kept healthz out (no request of it):\n{md}"
    );
}

#[test]
fn load_takes_goose_durations_reports_and_options_after_the_separator() {
    let tag = tag();
    let (mut server, url) = serve(&tag, &["--arch", "stateless"]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("requests.json");
    let mut args: Vec<String> = [
        "load",
        "--scenario",
        "stateless",
        "--target",
        &url,
        "--users",
        "2",
        "--run-time",
        "0m2s",
    ]
    .map(String::from)
    .to_vec();
    args.extend(report_args(dir.path()));
    args.extend(["--", "--request-log", &log.display().to_string()].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = run(&tag, &args);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("GET profile"), "{out}");
    check_reports(dir.path(), "profile");
    let requests = std::fs::read_to_string(&log).unwrap();
    assert!(
        requests.lines().count() > 10 && requests.contains("/profile"),
        "goose's request log, asked for after --, has the requests"
    );

    let (code, _, err) = run(
        &tag,
        &["load", "--scenario", "stateless", "--run-time", "1m30x"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a time span"), "{err}");
}

#[test]
fn load_runs_a_two_step_test_plan() {
    let tag = tag();
    let (mut server, url) = serve(&tag, &["--arch", "stateless"]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let (code, out, err) = run(
        &tag,
        &[
            "load",
            "--scenario",
            "stateless",
            "--target",
            &url,
            "--test-plan",
            "2,1s;5,2s;0,1s",
            "--report-file",
            &json.display().to_string(),
        ],
    );
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("GET profile"), "{out}");
    assert!(err.contains("up to 5 users"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let text = report.to_string();
    assert!(text.contains("profile"), "{text}");
    // The plan's user counts as goose's report records them.
    let max_users = max_number_under(&report, "users");
    assert_eq!(max_users, Some(5), "peak users in the report: {text}");

    let (code, _, err) = run(
        &tag,
        &["load", "--scenario", "stateless", "--test-plan", "5;x"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a test plan"), "{err}");
}

/// The largest number found under a key named `key`, anywhere in `v`.
fn max_number_under(v: &serde_json::Value, key: &str) -> Option<u64> {
    match v {
        serde_json::Value::Object(map) => map
            .iter()
            .filter_map(|(k, v)| {
                let own = (k == key).then(|| v.as_u64()).flatten();
                own.into_iter().chain(max_number_under(v, key)).max()
            })
            .max(),
        serde_json::Value::Array(items) => {
            items.iter().filter_map(|i| max_number_under(i, key)).max()
        }
        _ => None,
    }
}
