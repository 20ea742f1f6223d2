//! `compare --target`: servers started separately (as a user's own Express,
//! Go or Spring server would be), one of which implements only `/login` and
//! `/profile`. The probe names what is missing, only the matrices that can
//! run do, and the report is written beside the raw data.

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::procs::{lines, run_quiet, serve, tag};

const LIMIT: Duration = Duration::from_secs(120);

/// The example server with only `/login` and `/profile`; its URL.
fn partial_server() -> (Child, String) {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_statebench"))
        .with_file_name("examples")
        .join("partial_server");
    let mut child = std::process::Command::new(&exe)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (cargo test builds the examples)", exe.display()));
    let rx = lines(child.stdout.take().unwrap());
    let line = rx.recv_timeout(Duration::from_secs(15)).unwrap();
    std::thread::spawn(move || while rx.recv().is_ok() {});
    (child, line.split_whitespace().last().unwrap().to_owned())
}

fn cells_of(out: &std::path::Path) -> Vec<serde_json::Value> {
    let bytes = std::fs::read(out.join("load/external/cells.json")).unwrap();
    let record: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    record["cells"].as_array().unwrap().clone()
}

#[test]
fn a_partial_server_and_a_full_one_are_measured_as_far_as_they_go() {
    let tag = tag();
    let (mut partial, partial_url) = partial_server();
    let (mut stateful, stateful_url) = serve(&tag, &["--arch", "stateful"]);
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().to_path_buf();
    let (ended, said) = run_quiet(
        &tag,
        &[
            "compare",
            "--quick",
            "--run-time",
            "1",
            "--out",
            &out.display().to_string(),
            "--target",
            &format!("stateless={partial_url}"),
            "--target",
            &format!("stateful={stateful_url}"),
            "--target-pid",
            &format!("stateful={}", stateful.id()),
        ],
        LIMIT,
    );
    let (status, _) = ended.expect("compare --target finished");
    let _ = partial.kill();
    let _ = stateful.kill();
    assert!(status.success(), "{status}: {said:#?}");
    assert!(
        said.iter().any(|l| l.contains(
            "target stateless does not implement POST /cart/items (404); the state-size matrix is skipped"
        )),
        "{said:#?}"
    );

    let cells = cells_of(&out);
    let of = |server: &str, matrix: &str| -> Vec<&serde_json::Value> {
        cells
            .iter()
            .filter(|c| c["server"] == server && c["matrix"] == matrix)
            .collect()
    };
    // Concurrency and equal rate for both; the cart only where it exists.
    assert_eq!(of("stateless (external)", "concurrency").len(), 4);
    assert_eq!(of("stateful (external)", "concurrency").len(), 4);
    assert!(of("stateless (external)", "state-size").is_empty());
    assert_eq!(of("stateful (external)", "state-size").len(), 3);
    for c in &cells {
        assert_eq!(c["valid"], true, "{c}");
        assert_eq!(c["failures"], 0, "{c}");
        assert!(c["achieved_rps"].as_f64().unwrap() > 0.0, "{c}");
    }
    // CPU only where a pid was given.
    assert!(
        of("stateless (external)", "concurrency")
            .iter()
            .all(|c| c["server_cpu_us_per_request"].is_null())
    );
    assert!(of("stateful (external)", "concurrency").iter().all(|c| {
        c["server_cpu_us_per_request"]
            .as_f64()
            .is_some_and(|v| v > 0.0)
    }));
    let report = std::fs::read_to_string(out.join("load/external/REPORT.md")).unwrap();
    assert!(report.contains("External servers"), "{report}");
    assert!(report.contains("stateful (external)"));
    assert!(report.contains("does not implement POST /cart/items"));
}

#[test]
fn an_external_websocket_server_is_measured() {
    let tag = tag();
    let (mut ws, url) = serve(&tag, &["--arch", "ws"]);
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().to_path_buf();
    let (ended, said) = run_quiet(
        &tag,
        &[
            "compare",
            "--quick",
            "--run-time",
            "1",
            "--only",
            "concurrency",
            "--out",
            &out.display().to_string(),
            "--target",
            &format!("ws={url}"),
        ],
        LIMIT,
    );
    let (status, _) = ended.expect("compare --target ws finished");
    let _ = ws.kill();
    assert!(status.success(), "{status}: {said:#?}");
    let cells = cells_of(&out);
    assert_eq!(cells.len(), 3, "one cell per user level");
    for c in &cells {
        assert_eq!(c["server"], "ws (external)");
        assert_eq!(c["request"], "WS echo");
        assert_eq!(c["failures"], 0, "{c}");
        assert_eq!(c["errors"], serde_json::json!({}), "{c}");
    }
}

#[test]
fn a_target_that_is_not_there_is_named() {
    let tag = tag();
    let port = common::procs::dead_port();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().to_path_buf();
    let (ended, said) = run_quiet(
        &tag,
        &[
            "compare",
            "--quick",
            "--out",
            &out.display().to_string(),
            "--target",
            &format!("stateful=http://127.0.0.1:{port}"),
            "--target",
            &format!("ws=http://127.0.0.1:{port}"),
        ],
        LIMIT,
    );
    let (status, took) = ended.expect("finished");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(status.code(), Some(2), "{said:#?}");
    assert!(
        ["stateful", "ws"]
            .iter()
            .all(|name| said.iter().any(|l| l.contains(&format!(
                "target {name} at http://127.0.0.1:{port} refused the connection (is it running?)"
            )))),
        "{said:#?}"
    );
    assert!(cells_of(&out).is_empty());
}

/// `load --scenario cart` against a server without `/cart`: the run says
/// which route is missing instead of only counting failures.
#[test]
fn load_names_the_route_a_target_lacks() {
    let tag = tag();
    let (mut partial, url) = partial_server();
    let (finished, said) = run_quiet(
        &tag,
        &[
            "load",
            "--scenario",
            "cart",
            "--target",
            &url,
            "--users",
            "2",
            "--run-time",
            "1",
        ],
        LIMIT,
    );
    let _ = partial.kill();
    assert!(finished.is_some(), "load did not finish: {said:#?}");
    assert!(
        said.iter().any(|l| l
            == &format!(
                "warning: {url} does not implement POST /cart/items (404), which the cart scenario needs"
            )),
        "{said:#?}"
    );
}
