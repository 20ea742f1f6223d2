//! The load generators of `statebench vs`: wrk for HTTP (its report
//! parsed), and a closed-loop WebSocket echo client; plus the login that
//! gives a route its token.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::process::Command;

use super::VsConfig;
use crate::host::child::ChildProc;

/// What a load run returned.
pub(super) struct Load {
    pub requests: u64,
    pub seconds: f64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// `POST /login` with an empty body; the token from `{"token": …}`.
pub(super) async fn login_token(url: &str) -> anyhow::Result<String> {
    let res = reqwest::Client::new()
        .post(format!("{url}/login"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = res.status();
    let body: serde_json::Value = res
        .json()
        .await
        .with_context(|| format!("{url}/login answered {status} without JSON"))?;
    body["token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{url}/login answered {status} without a token"))
}

/// The wrk script that makes every request a JSON `POST`.
pub(super) fn login_script(work: &tempfile::TempDir) -> anyhow::Result<PathBuf> {
    let path = work.path().join("login.lua");
    std::fs::write(
        &path,
        "wrk.method = \"POST\"\nwrk.body = \"{}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
    )?;
    Ok(path)
}

/// One wrk run (one thread: it shares the generator core with nothing).
pub(super) async fn wrk(
    config: &VsConfig,
    url: &str,
    header: Option<&str>,
    script: Option<&Path>,
) -> anyhow::Result<Load> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t1".to_owned(),
        format!("-c{}", config.connections),
        format!("-d{}s", config.duration.as_secs().max(1)),
        "--latency".to_owned(),
    ]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    cmd.arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = ChildProc::spawn(&mut cmd, "wrk")?;
    let stdout = child.take_stdout().context("wrk stdout")?;
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::BufReader::new(stdout), &mut text)
        .await?;
    child.kill().await;
    parse_wrk(&text).with_context(|| format!("wrk printed no result for {url}:\n{text}"))
}

/// The figures of wrk's standard report.
fn parse_wrk(text: &str) -> Option<Load> {
    let mut load = Load {
        requests: 0,
        seconds: 0.0,
        errors: 0,
        p50_ms: None,
        p99_ms: None,
    };
    let mut found = false;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [n, "requests", "in", secs, ..] => {
                load.requests = n.parse().ok()?;
                load.seconds = secs.trim_end_matches(',').strip_suffix('s')?.parse().ok()?;
                found = true;
            }
            ["50%", v] => load.p50_ms = wrk_ms(v),
            ["99%", v] => load.p99_ms = wrk_ms(v),
            ["Non-2xx", "or", "3xx", "responses:", n] => load.errors += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                load.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    found.then_some(load)
}

/// A wrk duration (`677.00us`, `1.33ms`, `2.00s`) in milliseconds.
fn wrk_ms(v: &str) -> Option<f64> {
    for (suffix, scale) in [("us", 1e-3), ("ms", 1.0), ("s", 1e3), ("m", 60e3)] {
        if let Some(n) = v.strip_suffix(suffix) {
            return n.parse::<f64>().ok().map(|n| n * scale);
        }
    }
    None
}

/// Closed-loop WebSocket echo: each connection sends a message and waits
/// for its echo, for the configured time.
pub(super) async fn ws_echo(config: &VsConfig, url: String) -> anyhow::Result<Load> {
    let deadline = Instant::now() + config.duration;
    let mut tasks = Vec::new();
    for i in 0..config.connections {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .with_context(|| format!("cannot open {url}"))?;
            let message = format!("echo {i}");
            let expected = format!("Server received: {message}");
            let mut latencies_us: Vec<u32> = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                ws.send(tokio_tungstenite::tungstenite::Message::text(
                    message.clone(),
                ))
                .await?;
                match ws.next().await {
                    Some(Ok(m)) if m.to_text().is_ok_and(|t| t == expected) => {
                        latencies_us.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    Some(Ok(_)) => errors += 1,
                    _ => {
                        errors += 1;
                        break;
                    }
                }
            }
            let _ = ws.close(None).await;
            anyhow::Ok((latencies_us, errors))
        }));
    }
    let start = Instant::now();
    let mut all: Vec<u32> = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await??;
        all.extend(l);
        errors += e;
    }
    let seconds = start
        .elapsed()
        .as_secs_f64()
        .min(config.duration.as_secs_f64());
    all.sort_unstable();
    let pct =
        |p: f64| (!all.is_empty()).then(|| all[((all.len() - 1) as f64 * p) as usize] as f64 / 1e3);
    Ok(Load {
        requests: all.len() as u64,
        seconds,
        errors,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_reports_are_read() {
        let text = "Running 2s test @ http://127.0.0.1:33043/healthz
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   656.60us  254.34us   5.37ms   69.32%
    Req/Sec    76.30k     6.34k   94.92k    75.00%
  Latency Distribution
     50%  677.00us
     75%  827.00us
     90%    0.95ms
     99%    1.33ms
  152142 requests in 2.00s, 17.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  75908.21
";
        let l = parse_wrk(text).unwrap();
        assert_eq!(l.requests, 152_142);
        assert_eq!(l.seconds, 2.0);
        assert_eq!(l.errors, 8);
        assert_eq!(l.p50_ms, Some(0.677));
        assert_eq!(l.p99_ms, Some(1.33));
        assert!(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").is_none());
    }
}
