//! Measures the server's resident memory per idle WebSocket connection.
//!
//! Starts `statebench serve --arch ws` (the release binary next to this
//! example), reads its RSS from /proc, opens N idle connections, reads it
//! again and prints the difference per connection. Raise the file-descriptor
//! limit first: `ulimit -n 65536; cargo run --release --example ws_idle_rss -- 10000`.
//! Arguments after N go to the server (e.g. `--ws-read-buffer 131072`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc is readable");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS present")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map_or(10_000, |a| a.parse().expect("N is a number"));
    let extra: Vec<String> = args.collect();
    let exe = std::env::current_exe().unwrap();
    let server_bin = exe.parent().unwrap().parent().unwrap().join("statebench");
    let mut server = Command::new(&server_bin)
        .args([
            "serve",
            "--arch",
            "ws",
            "--addr",
            "127.0.0.1:0",
            "--ws-idle-timeout",
            "600",
        ])
        .args(&extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (build it with cargo build --release)",
                server_bin.display()
            )
        });
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .last()
        .unwrap()
        .replace("http://", "ws://")
        + "/ws";
    let pid = server.id();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (before, after) = rt.block_on(async {
        // Warm the server up with one connection so allocator arenas exist.
        let warm = tokio_tungstenite::connect_async(&url).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_kib(pid);
        let mut conns = Vec::with_capacity(n);
        for i in 0..n {
            match tokio_tungstenite::connect_async(&url).await {
                Ok((c, _)) => conns.push(c),
                Err(e) => panic!("connection {i} failed: {e} (raise ulimit -n)"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib(pid);
        drop(conns);
        drop(warm);
        (before, after)
    });
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = server.wait();
    let per_conn = (after.saturating_sub(before) as f64 * 1024.0) / n as f64;
    println!("connections: {n}");
    println!("server RSS before: {before} KiB, after: {after} KiB");
    println!("RSS per idle connection: {per_conn:.0} bytes");
}
