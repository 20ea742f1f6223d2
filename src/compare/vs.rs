//! `statebench vs`: the servers side by side, each pinned to one core with
//! the load generator on another, as a reader would measure them by hand.
//!
//! Each route is loaded for a fixed time by `wrk` (HTTP) or by an in-process
//! WebSocket client (echo), both on the generator core. Around each run the
//! server's CPU time (`/proc/<pid>/stat`) and both cores' busy time
//! (`/proc/stat`) are read, so every row gives requests per second, server
//! CPU per request, and which side was the bottleneck. External servers on
//! the contract (`--target NAME=URL`, with `--target-pid NAME=PID` for their
//! CPU) get the login and profile rows beside statebench's.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::process::Command;

use super::fleet::{Launcher, Replica, ServerSpec};
use crate::host::affinity::{self, CoreTimes};
use crate::host::child::ChildProc;
use crate::server::Arch;

/// The routes a side-by-side run can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    /// `GET /healthz` on the stateless server: the floor of the stack.
    Healthz,
    /// `GET /profile` with an HS256 token in `Authorization`.
    StatelessProfile,
    /// `GET /profile` with a session cookie (in-memory store).
    StatefulProfile,
    /// `POST /login` on the stateless server (signs a token).
    StatelessLogin,
    /// `POST /login` on the stateful server (creates a session).
    StatefulLogin,
    /// WebSocket echo: one message and its echo per request.
    WsEcho,
}

impl Route {
    pub const ALL: [Route; 6] = [
        Route::Healthz,
        Route::StatelessProfile,
        Route::StatefulProfile,
        Route::StatelessLogin,
        Route::StatefulLogin,
        Route::WsEcho,
    ];

    fn server(self) -> Arch {
        match self {
            Route::Healthz | Route::StatelessProfile | Route::StatelessLogin => Arch::Stateless,
            Route::StatefulProfile | Route::StatefulLogin => Arch::Stateful,
            Route::WsEcho => Arch::Ws,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::StatelessProfile | Route::StatefulProfile => "/profile",
            Route::StatelessLogin | Route::StatefulLogin => "/login",
            Route::WsEcho => "WebSocket echo",
        }
    }
}

/// A server statebench did not start.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub url: String,
    pub pid: Option<u32>,
}

/// What one side-by-side run does.
#[derive(Debug, Clone)]
pub struct VsConfig {
    pub duration: Duration,
    /// Measurements per row, interleaved across rows.
    pub rounds: usize,
    pub connections: u32,
    pub server_core: usize,
    pub generator_core: usize,
    pub routes: Vec<Route>,
    pub targets: Vec<Target>,
    pub exe: PathBuf,
}

/// One measured row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub server: String,
    pub route: String,
    pub requests: u64,
    pub seconds: f64,
    pub per_sec: f64,
    /// Server CPU per request, µs (when its process is known).
    pub server_cpu_us: Option<f64>,
    /// `server_cpu_us` ÷ the same server's `/healthz` figure.
    pub vs_healthz: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Non-2xx answers, socket errors or wrong echoes.
    pub errors: u64,
    pub server_core_busy: Option<f64>,
    pub generator_core_busy: Option<f64>,
    /// `server`, `generator` or `neither` (the first core at ≥ 90%).
    pub bound: &'static str,
    /// Why the server was not pinned, when it was not.
    pub note: Option<String>,
}

/// The whole run, as written to `vs.json`.
#[derive(Debug, Clone, Serialize)]
pub struct VsResult {
    pub connections: u32,
    pub seconds_per_route: f64,
    /// Measurements per row; each figure is their median.
    pub rounds: usize,
    pub server_core: usize,
    pub generator_core: usize,
    pub rows: Vec<Row>,
}

/// What a load run returned.
struct Load {
    requests: u64,
    seconds: f64,
    errors: u64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

/// Checks the machine and the tools before anything starts.
pub fn preflight(config: &VsConfig) -> anyhow::Result<()> {
    let cores = affinity::allowed();
    for (what, core) in [
        ("--server-core", config.server_core),
        ("--generator-core", config.generator_core),
    ] {
        if !cores.contains(&core) {
            bail!("{what} {core}: this process may only run on cores {cores:?}");
        }
    }
    if config.server_core == config.generator_core {
        bail!(
            "--server-core and --generator-core are both {}: give each its own core",
            config.server_core
        );
    }
    let http = config.routes.iter().any(|r| *r != Route::WsEcho) || !config.targets.is_empty();
    if http && !crate::host::tools::installed("wrk") {
        bail!("wrk is not installed (apt-get install wrk); it generates the HTTP load");
    }
    Ok(())
}

/// What one row loads: wrk on a URL, or the WebSocket echo client.
#[derive(Debug, Clone)]
enum LoadKind {
    Wrk {
        url: String,
        header: Option<String>,
        script: Option<PathBuf>,
    },
    Ws {
        url: String,
    },
}

/// One row of the table, ready to run any number of times.
#[derive(Debug, Clone)]
struct Job {
    server: String,
    route: String,
    pid: Option<u32>,
    load: LoadKind,
    note: Option<String>,
}

impl Job {
    async fn once(&self, config: &VsConfig) -> anyhow::Result<Load> {
        match &self.load {
            LoadKind::Wrk {
                url,
                header,
                script,
            } => wrk(config, url, header.as_deref(), script.as_deref()).await,
            LoadKind::Ws { url } => ws_echo(config, url.clone()).await,
        }
    }
}

/// Runs every route and target; `progress` gets one line per measurement.
pub async fn run(
    config: &VsConfig,
    mut progress: impl FnMut(usize, &Row),
) -> anyhow::Result<VsResult> {
    preflight(config)?;
    let work = tempfile::tempdir()?;
    let launcher = Launcher {
        exe: config.exe.clone(),
        work: work.path().to_owned(),
    };

    // Servers start while this process sits on the server core, so they
    // inherit it; then this process (and wrk, its child) moves over.
    affinity::pin_self(&[config.server_core]).context("cannot pin to --server-core")?;
    let mut servers: Vec<(Arch, Replica)> = Vec::new();
    for arch in [Arch::Stateless, Arch::Stateful, Arch::Ws] {
        if config.routes.iter().any(|r| r.server() == arch) {
            let replica = launcher
                .spawn(&ServerSpec::new(arch), &format!("vs-{}", arch.name()))
                .await?;
            servers.push((arch, replica));
        }
    }
    affinity::pin_self(&[config.generator_core]).context("cannot pin to --generator-core")?;
    // The servers' threads all started on the server core; make sure of it.
    for (_, r) in &servers {
        affinity::pin_process(r.pid, &[config.server_core])?;
    }

    let mut jobs: Vec<Job> = Vec::new();
    for &route in &config.routes {
        let Some((_, server)) = servers.iter().find(|(a, _)| *a == route.server()) else {
            continue;
        };
        jobs.push(own_job(route, &server.url, server.pid, &work).await?);
    }
    for target in &config.targets {
        let mut note = None;
        if let Some(pid) = target.pid
            && let Err(e) = affinity::pin_process(pid, &[config.server_core])
        {
            note = Some(format!("not pinned: {e}"));
        }
        let token = login_token(&target.url)
            .await
            .with_context(|| format!("{}: POST /login did not give a token", target.name))?;
        for (route, header, script) in [
            ("/login", None, Some(login_script(&work)?)),
            ("/profile", Some(format!("Authorization: {token}")), None),
        ] {
            jobs.push(Job {
                server: target.name.clone(),
                route: route.to_owned(),
                pid: target.pid,
                load: LoadKind::Wrk {
                    url: format!("{}{route}", target.url),
                    header,
                    script,
                },
                note: note.clone(),
            });
        }
    }

    // Every job warms up once, then the rounds interleave them, so a
    // slow minute on a shared machine falls on every row alike.
    let warm = warm_up(config);
    for job in &jobs {
        tokio::select! {
            r = job.once(&warm) => { r?; }
            () = crate::stop::wait() => bail!("stopped"),
        }
    }
    let mut samples: Vec<Vec<Row>> = vec![Vec::new(); jobs.len()];
    for round in 0..config.rounds {
        for (i, job) in jobs.iter().enumerate() {
            let mut row = around(config, job.pid, job.once(config)).await?;
            row.server = job.server.clone();
            row.route = job.route.clone();
            row.note = job.note.clone().or(row.note);
            progress(round + 1, &row);
            samples[i].push(row);
        }
    }
    let mut rows: Vec<Row> = samples.into_iter().filter_map(median_row).collect();
    relate_to_healthz(&mut rows);
    for (_, mut r) in servers {
        r.terminate(Duration::from_secs(5)).await;
    }
    Ok(VsResult {
        connections: config.connections,
        seconds_per_route: config.duration.as_secs_f64(),
        rounds: config.rounds,
        server_core: config.server_core,
        generator_core: config.generator_core,
        rows,
    })
}

/// The median of each figure over a job's rounds (errors are summed).
fn median_row(mut rows: Vec<Row>) -> Option<Row> {
    fn median(mut v: Vec<f64>) -> Option<f64> {
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then(|| v[v.len() / 2])
    }
    let of = |f: &dyn Fn(&Row) -> Option<f64>| median(rows.iter().filter_map(f).collect());
    let per_sec = of(&|r| Some(r.per_sec))?;
    let server_cpu_us = of(&|r| r.server_cpu_us);
    let p50_ms = of(&|r| r.p50_ms);
    let p99_ms = of(&|r| r.p99_ms);
    let server_core_busy = of(&|r| r.server_core_busy);
    let generator_core_busy = of(&|r| r.generator_core_busy);
    let requests = rows.iter().map(|r| r.requests).sum();
    let seconds = rows.iter().map(|r| r.seconds).sum();
    let errors = rows.iter().map(|r| r.errors).sum();
    let mut row = rows.swap_remove(0);
    row.requests = requests;
    row.seconds = seconds;
    row.per_sec = per_sec;
    row.server_cpu_us = server_cpu_us;
    row.p50_ms = p50_ms;
    row.p99_ms = p99_ms;
    row.errors = errors;
    row.server_core_busy = server_core_busy;
    row.generator_core_busy = generator_core_busy;
    row.bound = bottleneck(server_core_busy, generator_core_busy);
    Some(row)
}

fn bottleneck(server: Option<f64>, generator: Option<f64>) -> &'static str {
    match (server, generator) {
        (Some(s), _) if s >= 0.9 => "server",
        (_, Some(g)) if g >= 0.9 => "generator",
        _ => "neither",
    }
}

/// The job for one of statebench's routes (logging in first where the
/// route needs a token or a session).
async fn own_job(
    route: Route,
    url: &str,
    pid: u32,
    work: &tempfile::TempDir,
) -> anyhow::Result<Job> {
    let wrk = |path: &str, header: Option<String>, script: Option<PathBuf>| LoadKind::Wrk {
        url: format!("{url}{path}"),
        header,
        script,
    };
    let load = match route {
        Route::Healthz => wrk("/healthz", None, None),
        Route::StatelessProfile => {
            let token = login_token(url).await?;
            wrk("/profile", Some(format!("Authorization: {token}")), None)
        }
        Route::StatefulProfile => {
            let res = reqwest::Client::new()
                .post(format!("{url}/login"))
                .send()
                .await?;
            let cookie = res
                .headers()
                .get(reqwest::header::SET_COOKIE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .context("the stateful login set no cookie")?
                .to_owned();
            wrk("/profile", Some(format!("Cookie: {cookie}")), None)
        }
        Route::StatelessLogin | Route::StatefulLogin => {
            wrk("/login", None, Some(login_script(work)?))
        }
        Route::WsEcho => LoadKind::Ws {
            url: format!("{}/ws", url.replacen("http://", "ws://", 1)),
        },
    };
    Ok(Job {
        server: format!("statebench {}", route.server().name()),
        route: route.label().to_owned(),
        pid: Some(pid),
        load,
        note: None,
    })
}

/// The unmeasured run before each measured one: a third of it, 1 to 3 s.
fn warm_up(config: &VsConfig) -> VsConfig {
    VsConfig {
        duration: (config.duration / 3).clamp(Duration::from_secs(1), Duration::from_secs(3)),
        ..config.clone()
    }
}

/// Measures the cores and the server's CPU around one load run.
async fn around(
    config: &VsConfig,
    pid: Option<u32>,
    load: impl Future<Output = anyhow::Result<Load>>,
) -> anyhow::Result<Row> {
    let cpu0 = pid.and_then(crate::host::proc::cpu_time);
    let cores0 = CoreTimes::now();
    let load = tokio::select! {
        load = load => load?,
        () = crate::stop::wait() => bail!("stopped"),
    };
    let cores1 = CoreTimes::now();
    let cpu1 = pid.and_then(crate::host::proc::cpu_time);
    let server_cpu_us = match (cpu0, cpu1) {
        (Some(a), Some(b)) if load.requests > 0 => {
            Some((b.saturating_sub(a)).as_secs_f64() * 1e6 / load.requests as f64)
        }
        _ => None,
    };
    let server_core_busy = cores1.busy_since(&cores0, config.server_core);
    let generator_core_busy = cores1.busy_since(&cores0, config.generator_core);
    let bound = bottleneck(server_core_busy, generator_core_busy);
    Ok(Row {
        server: String::new(),
        route: String::new(),
        requests: load.requests,
        seconds: load.seconds,
        per_sec: load.requests as f64 / load.seconds.max(1e-9),
        server_cpu_us,
        vs_healthz: None,
        p50_ms: load.p50_ms,
        p99_ms: load.p99_ms,
        errors: load.errors,
        server_core_busy,
        generator_core_busy,
        bound,
        note: pid
            .is_none()
            .then(|| "no --target-pid: server CPU unknown".to_owned()),
    })
}

/// Each server's CPU per request relative to its own `/healthz`.
fn relate_to_healthz(rows: &mut [Row]) {
    let healthz: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.route == "/healthz")
        .filter_map(|r| Some((r.server.clone(), r.server_cpu_us?)))
        .collect();
    // statebench's servers share one stack, so the stateless /healthz is
    // every statebench row's floor.
    let floor_of = |server: &str| {
        healthz
            .iter()
            .find(|(s, _)| {
                s == server || (server.starts_with("statebench") && s.starts_with("statebench"))
            })
            .map(|(_, us)| *us)
    };
    for r in rows.iter_mut() {
        if let (Some(us), Some(floor)) = (r.server_cpu_us, floor_of(&r.server)) {
            r.vs_healthz = Some(us / floor);
        }
    }
}

/// `POST /login` with an empty body; the token from `{"token": …}`.
async fn login_token(url: &str) -> anyhow::Result<String> {
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
fn login_script(work: &tempfile::TempDir) -> anyhow::Result<PathBuf> {
    let path = work.path().join("login.lua");
    std::fs::write(
        &path,
        "wrk.method = \"POST\"\nwrk.body = \"{}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
    )?;
    Ok(path)
}

/// One wrk run (one thread: it shares the generator core with nothing).
async fn wrk(
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
async fn ws_echo(config: &VsConfig, url: String) -> anyhow::Result<Load> {
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

/// The table, as markdown.
pub fn table(result: &VsResult) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| server | route | req/s | server CPU µs/request | ÷ own /healthz | p50 | p99 | errors | busy: server core / generator core | bottleneck |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    let f = |v: Option<f64>, d: usize| v.map_or("–".to_owned(), |v| format!("{v:.d$}"));
    for r in &result.rows {
        let busy = match (r.server_core_busy, r.generator_core_busy) {
            (Some(s), Some(g)) => format!("{:.0}% / {:.0}%", s * 100.0, g * 100.0),
            _ => "–".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {} | {} | {} ms | {} ms | {} | {busy} | {}{} |",
            r.server,
            r.route,
            r.per_sec,
            f(r.server_cpu_us, 1),
            r.vs_healthz.map_or("–".into(), |v| format!("{v:.2}×")),
            f(r.p50_ms, 2),
            f(r.p99_ms, 2),
            r.errors,
            r.bound,
            r.note.as_ref().map_or(String::new(), |n| format!(" ({n})")),
        );
    }
    md
}

/// Throughput ratios of statebench's routes to each external server's same
/// route (the figure the README quotes).
pub fn ratios(result: &VsResult) -> Vec<String> {
    let mut out = Vec::new();
    let ours = |route: &str, server: &str| {
        result
            .rows
            .iter()
            .find(|r| r.server == server && r.route == route)
            .map(|r| r.per_sec)
    };
    for ext in result
        .rows
        .iter()
        .filter(|r| !r.server.starts_with("statebench"))
    {
        let mine = match ext.route.as_str() {
            "/profile" => ours("/profile", "statebench stateless"),
            "/login" => ours("/login", "statebench stateless"),
            _ => None,
        };
        if let Some(m) = mine
            && ext.per_sec > 0.0
        {
            out.push(format!(
                "statebench stateless {} serves {:.1}× the requests per second of {} {} on one core ({:.0} against {:.0}).",
                ext.route,
                m / ext.per_sec,
                ext.server,
                ext.route,
                m,
                ext.per_sec
            ));
        }
    }
    out
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
