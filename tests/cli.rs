//! The `statebench` binary: flags, errors, the start-up line, signals.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_statebench"))
}

/// Starts `statebench serve` with `args` and returns it with its base URL,
/// read from the one line it prints on start.
fn spawn(args: &[&str], envs: &[(&str, &str)]) -> (Child, String) {
    let mut child = bin()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    // Keep the pipe open (and drained): a closed stdout stops the server.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let url = line
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "start-up line: {line:?}"
    );
    (child, url)
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn help_documents_every_flag() {
    let out = bin().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--arch",
        "--addr",
        "--alg",
        "--secret-file",
        "--private-key-file",
        "--public-key-file",
        "--token-ttl",
        "--leeway",
        "--revocation",
        "--max-revoked",
        "--store",
        "--session-ttl",
        "--max-sessions",
        "--sweep-interval",
        "--cookie-secure",
        "--redis-prefix",
        "--backplane",
        "--ws-max-message",
        "--ws-idle-timeout",
        "--ws-ping-interval",
        "--ws-max-connections",
        "--header-read-timeout",
        "--request-timeout",
        "--shutdown-timeout",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn every_subcommand_documents_its_flags() {
    for (cmd, flags) in [
        (
            "load",
            &[
                "--scenario",
                "--target",
                "--arch",
                "--users",
                "--increase-rate",
                "--run-time",
                "--throttle",
                "--co-mitigation",
                "--cart-items",
                "--save",
                "--test-plan",
                "--report-file",
            ][..],
        ),
        ("merge", &["--out"][..]),
        (
            "plan",
            &[
                "--rps",
                "--sessions",
                "--ws",
                "--replica-cores",
                "--store-utilisation",
                "--cells",
                "--micro",
            ][..],
        ),
        (
            "micro",
            &["--quick", "--report-only", "--out", "--no-instructions"][..],
        ),
        (
            "vs",
            &[
                "--duration",
                "--rounds",
                "--connections",
                "--server-core",
                "--generator-core",
                "--routes",
                "--target",
                "--target-pid",
                "--quick",
                "--out",
            ][..],
        ),
    ] {
        let out = bin().args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success(), "{cmd} --help");
        let help = String::from_utf8(out.stdout).unwrap();
        for flag in flags {
            assert!(help.contains(flag), "{flag} missing from {cmd} --help");
        }
    }
}

/// `statebench vs` pins a server and wrk to a core each and writes its
/// table; a shared core or a foreign target is refused in one line.
#[test]
fn vs_measures_a_route_side_by_side() {
    let one_line = |args: &[&str], expect: &str| {
        let out = bin().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.starts_with("error: ") && err.contains(expect) && err.trim().lines().count() == 1,
            "{args:?}: {err}"
        );
    };
    one_line(
        &["vs", "--server-core", "0", "--generator-core", "0"],
        "give each its own core",
    );
    one_line(&["vs", "--server-core", "4096"], "may only run on cores");
    if std::thread::available_parallelism().map_or(true, |n| n.get() < 2)
        || Command::new("wrk").arg("-v").output().is_err()
    {
        eprintln!("skipped: needs 2 cores and wrk");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args([
            "vs",
            "--routes",
            "stateless-profile,ws-echo",
            "--duration",
            "1",
            "--rounds",
            "2",
            "--connections",
            "8",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("| statebench stateless | /profile |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| statebench ws | WebSocket echo |"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("vs.json")).unwrap()).unwrap();
    let rows = json["result"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert!(row["requests"].as_u64().unwrap() > 0, "{row}");
        assert_eq!(row["errors"], 0, "{row}");
        assert!(row["server_cpu_us"].as_f64().unwrap() > 0.0, "{row}");
    }
    let readme = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
    assert!(readme.contains("| commit |"), "{readme}");
}

#[test]
fn merge_refuses_a_file_that_is_not_a_result() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-result.json");
    std::fs::write(&path, "{\"hello\": 1}").unwrap();
    let out = bin()
        .args(["merge", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: ") && err.contains("is not a statebench load result"),
        "{err}"
    );
}

#[test]
fn short_secret_is_refused_with_one_line() {
    let out = bin()
        .args(["serve", "--arch", "stateless", "--addr", "127.0.0.1:0"])
        .env("STATEBENCH_JWT_SECRET", "too-short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim(),
        "error: JWT secret is 9 bytes; at least 32 are required"
    );
}

/// Log lines written to a pipe or a file are plain text: no colour codes
/// (a terminal gets them; `tests/terminal.rs`).
#[test]
fn a_piped_log_has_no_colour_codes() {
    let mut child = bin()
        .args(["serve", "--arch", "stateless", "--addr", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("STATEBENCH_JWT_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    terminate(&mut child);
    assert!(line.contains("no key given"), "first log line: {line:?}");
    assert!(
        !line.contains('\x1b'),
        "colour codes in a piped log: {line:?}"
    );
}

/// `statebench plan` sizes every measured design from the committed run,
/// checks its model, and refuses bad input in one line.
#[test]
fn plan_sizes_a_fleet_from_the_committed_run() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = bin()
        .current_dir(root)
        .args(["plan", "--rps", "1000000", "--sessions", "10000000"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.starts_with("# Capacity at internet scale"), "{md}");
    assert!(md.contains("**1,000,000 requests/s**"), "{md}");
    for design in ["stateless HS256", "stateful memory", "stateful Redis"] {
        assert!(
            md.contains(&format!("| {design} |")),
            "{design} missing:\n{md}"
        );
    }
    assert!(
        md.contains("The model against the measured capacity"),
        "{md}"
    );

    for (args, want) in [
        (
            &["plan", "--cells", "/nonexistent/cells.json"][..],
            "error: cannot read /nonexistent/cells.json",
        ),
        (
            &["plan", "--store-utilisation", "1.5"][..],
            "error: --store-utilisation",
        ),
        (
            &["plan", "--replica-cores", "0"][..],
            "error: --replica-cores",
        ),
    ] {
        let out = bin().current_dir(root).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.trim().starts_with(want) && err.trim().lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    let out = bin().args(["plan", "--rps", "0"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn bad_flags_are_one_line_errors() {
    let out = bin()
        .args([
            "serve",
            "--arch",
            "stateful",
            "--addr",
            "127.0.0.1:0",
            "--store",
            "postgres://x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.trim().starts_with("error: --store must be") && err.trim().lines().count() == 1,
        "{err}"
    );
    let out = bin().args(["serve", "--arch", "nope"]).output().unwrap();
    assert!(!out.status.success());
    for (args, want) in [
        (
            &["--denylist-redis", "redis://127.0.0.1:1"][..],
            "error: --denylist-redis needs --revocation denylist",
        ),
        (
            &[
                "--revocation",
                "denylist",
                "--denylist-redis",
                "redis-cluster://127.0.0.1:1",
            ][..],
            "error: --denylist-redis: ",
        ),
    ] {
        let out = bin()
            .args(["serve", "--arch", "stateless", "--addr", "127.0.0.1:0"])
            .args(args)
            .env(
                "STATEBENCH_JWT_SECRET",
                "a-secret-of-at-least-thirty-two-bytes",
            )
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.trim().starts_with(want) && err.trim().lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}

#[test]
fn serves_the_contract_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let secret = dir.join("secret");
    std::fs::write(&secret, "a-secret-of-at-least-thirty-two-bytes\n").unwrap();
    let (mut a, url_a) = spawn(
        &[
            "--arch",
            "stateless",
            "--secret-file",
            secret.to_str().unwrap(),
        ],
        &[],
    );
    let (mut b, url_b) = spawn(
        &[
            "--arch",
            "stateless",
            "--secret-file",
            secret.to_str().unwrap(),
        ],
        &[],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let login: serde_json::Value = http
            .post(format!("{url_a}/login"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["token"].as_str().unwrap();
        // A shared secret: replica b accepts a's token.
        let res = http
            .get(format!("{url_b}/profile"))
            .header("Authorization", token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "Welcome back, John Doe");
    });
    assert_eq!(
        terminate(&mut a).code(),
        Some(143),
        "SIGTERM: a drained stop, exit 128 + 15"
    );
    assert_eq!(
        terminate(&mut b).code(),
        Some(143),
        "SIGTERM: a drained stop, exit 128 + 15"
    );
}

#[test]
fn stateful_and_ws_binaries_answer() {
    let (mut s, url) = spawn(&["--arch", "stateful"], &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap();
        let res = http.post(format!("{url}/login")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let res = http.get(format!("{url}/profile")).send().await.unwrap();
        assert_eq!(res.text().await.unwrap(), "Welcome back, John Doe");
    });
    assert_eq!(
        terminate(&mut s).code(),
        Some(143),
        "SIGTERM: a drained stop, exit 128 + 15"
    );

    let (mut w, url) = spawn(&["--arch", "ws"], &[]);
    rt.block_on(async {
        use futures_util::{SinkExt, StreamExt};
        let ws_url = url.replace("http://", "ws://") + "/ws";
        let (mut c, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
        c.send(tokio_tungstenite::tungstenite::Message::text("hi"))
            .await
            .unwrap();
        let m = c.next().await.unwrap().unwrap();
        assert_eq!(m.into_text().unwrap().as_str(), "Server received: hi");
    });
    assert_eq!(
        terminate(&mut w).code(),
        Some(143),
        "SIGTERM: a drained stop, exit 128 + 15"
    );
}

#[test]
fn slow_headers_are_cut_off() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let options = statebench::server::ServeOptions {
            header_read_timeout: Duration::from_millis(300),
            ..Default::default()
        };
        let server =
            common::serve_with(common::stateless_app(false), Default::default(), options).await;
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "connection closed by the server");
        assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    });
}
