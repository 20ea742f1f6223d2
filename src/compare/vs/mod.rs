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
//!
//! [`generators`] holds the two load generators, [`table`] the medians and
//! the markdown.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use super::fleet::{Launcher, Replica, ServerSpec};
use crate::host::affinity::{self, CoreTimes};
use crate::server::Arch;

mod generators;
mod table;

use generators::{Load, login_script, login_token, wrk, ws_echo};
use table::{bottleneck, median_row, relate_to_healthz};
pub use table::{ratios, table, targets};

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
        placement: None,
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
pub fn warm_up(config: &VsConfig) -> VsConfig {
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
