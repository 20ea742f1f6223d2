//! The `statebench` command line. Definitions (with every flag documented
//! for `--help`) and the wiring from flags to servers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio::net::TcpListener;

use crate::keys::{KeyPair, TokenAlg};
use crate::revocation::Denylist;
use crate::server::ws::{self, WsConfig};
use crate::server::{Arch, Base, Lifecycle, ServeOptions, stateful, stateless};
use crate::session::{MemoryStore, RedisStore, StoreConfig};
use crate::token::TokenService;

/// Stateless (JWT) vs stateful (sessions, WebSocket): reference servers and
/// measurements.
#[derive(Debug, Parser)]
#[command(name = "statebench", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing buys nothing
pub enum Command {
    /// Run the scaling comparison (replicas, routing, failures, WebSocket)
    /// and write results/REPORT.md.
    Compare(CompareArgs),
    /// Serve one reference server until SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// The CI regression gate: instruction counts against results/baseline/,
    /// a noise-controlled latency trend, dashboard exports. Exit 0 = no
    /// regression, 1 = regression, 2 = could not measure.
    Ci(CiArgs),
    /// Run the micro-benchmarks (`cargo bench`) and write results/micro/.
    Micro(MicroArgs),
    /// Run one load scenario (goose) against a server and print its results.
    Load(LoadArgs),
    /// Merge saved load results (from several load machines) exactly.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// A first look in about 5 minutes: fewer users, replica counts and
    /// connection counts, 2 s per cell (the full run takes about 30).
    #[arg(long)]
    pub quick: bool,
    /// Run only these matrices (repeat or comma-separate).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<crate::compare::Matrix>,
    /// Balancer for the horizontal matrix.
    #[arg(long, value_enum, default_value = "both")]
    pub balancer: crate::compare::BalancerChoice,
    /// Seconds per cell (default 2 with --quick, 5 otherwise; failure cells
    /// run three times as long).
    #[arg(long, value_name = "SECS")]
    pub run_time: Option<u64>,
    /// Results directory: the report goes to <DIR>/REPORT.md, raw data to
    /// <DIR>/load/<run>/.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,
    /// Name of this run's raw-data directory (default: `quick`, `full`, or `external` with --target).
    #[arg(long, value_name = "NAME")]
    pub run_name: Option<String>,
    /// Do not measure: rewrite REPORT.md and the charts from the run's saved
    /// cells.json.
    #[arg(long)]
    pub report_only: bool,
    /// Measure a server this run did not start, as NAME=URL with NAME one of
    /// stateless, stateful, ws (repeatable; any subset). Its contract is probed
    /// first, and only the matrices that make sense for one server run
    /// (concurrency, equal rate, state size). The report goes to
    /// <DIR>/load/<run>/REPORT.md (run name `external` by default).
    #[arg(long, value_name = "NAME=URL", value_parser = crate::compare::external::parse_target)]
    pub target: Vec<(crate::server::Arch, String)>,
    /// The process id of a --target server, as NAME=PID, for its CPU and
    /// memory (without it they are n/a).
    #[arg(long, value_name = "NAME=PID", value_parser = crate::compare::external::parse_target_pid, requires = "target")]
    pub target_pid: Vec<(crate::server::Arch, u32)>,
}

#[derive(Debug, Args)]
pub struct CiArgs {
    /// Fail when an instruction count grows more than this many percent
    /// (default: the baseline file's, 2).
    #[arg(long, value_name = "PCT")]
    pub threshold: Option<f64>,
    /// A threshold for one benchmark, as ID=PCT (repeatable), e.g.
    /// `instructions::token_verify=5`.
    #[arg(long, value_name = "ID=PCT", value_parser = parse_override)]
    pub threshold_for: Vec<(String, f64)>,
    /// Skip the latency trend (instruction counts only: the fast, deterministic gate).
    #[arg(long)]
    pub no_latency: bool,
    /// Make latency regressions fail the gate (they only warn by default).
    #[arg(long)]
    pub fail_on_latency: bool,
    /// Normalised latency growth that counts as a regression, percent
    /// (it must also fall outside the spread of the repeats).
    #[arg(long, value_name = "PCT", default_value_t = 15.0)]
    pub latency_threshold: f64,
    /// Repeats of the latency set (interleaved).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub repeats: usize,
    /// An absolute goose rule for the load runs, e.g. "p99<5ms" (repeatable;
    /// a failing rule fails the gate).
    #[arg(long = "goose-threshold", value_name = "RULE")]
    pub goose_threshold: Vec<String>,
    /// Rewrite the baseline files from this run (commit, toolchain and
    /// machine are recorded in them).
    #[arg(long)]
    pub update_baseline: bool,
    /// Baseline directory.
    #[arg(long, value_name = "DIR", default_value = "results/baseline")]
    pub baseline: PathBuf,
    /// Where to write bmf.json, github-action-benchmark.json and summary.md.
    #[arg(long, value_name = "DIR", default_value = "target/statebench-ci")]
    pub out: PathBuf,
    /// Cargo features to build the benchmarks with (`inject-slowdown`
    /// proves the gate catches a regression).
    #[arg(long, value_name = "FEATURES")]
    pub cargo_features: Option<String>,
}

fn parse_override(s: &str) -> Result<(String, f64), String> {
    let (id, pct) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("expected ID=PCT, got {s:?}"))?;
    let pct: f64 = pct
        .parse()
        .map_err(|_| format!("{pct:?} is not a number of percent"))?;
    if id.is_empty() || !(0.0..=1000.0).contains(&pct) {
        return Err(format!("expected ID=PCT with PCT in 0..=1000, got {s:?}"));
    }
    Ok((id.to_owned(), pct))
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The kind of simulated user.
    #[arg(long, value_enum)]
    pub scenario: crate::loadtests::ScenarioKind,
    /// Base URL of a server on the statebench contract (any implementation).
    /// Without it, a server is started in this process on a free loopback port.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Which server to start when no --target is given (default: the one the
    /// scenario is written for: stateful for stateful, ws for ws-echo and
    /// ws-chat, stateless otherwise).
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// Concurrent users (closed loop, no think time).
    #[arg(long, default_value_t = 4)]
    pub users: usize,
    /// Users started per second; metrics are reset once all are running.
    #[arg(long, default_value_t = 100.0)]
    pub increase_rate: f64,
    /// Seconds to measure (the run stops by itself).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub run_time: u64,
    /// Cap on requests per second across all users (fixed-rate runs).
    #[arg(long, value_name = "RPS")]
    pub throttle: Option<usize>,
    /// Coordinated-omission mitigation: average, minimum or maximum.
    #[arg(long, value_name = "KIND")]
    pub co_mitigation: Option<String>,
    /// Items per cart in the cart scenario.
    #[arg(long, default_value_t = 10)]
    pub cart_items: usize,
    /// Write the raw results (histograms included) to this JSON file.
    #[arg(long, value_name = "PATH")]
    pub save: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Result files written by `statebench load --save`.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Write the merged result to this JSON file.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MicroArgs {
    /// A first look: 2 of the 3 session-map sizes and short measurements
    /// (about 5 minutes instead of about 15).
    #[arg(long)]
    pub quick: bool,
    /// Do not run benchmarks; rebuild the report from the last run's files.
    #[arg(long)]
    pub report_only: bool,
    /// Where to write the report.
    #[arg(long, default_value = "results/micro")]
    pub out: PathBuf,
    /// Skip the instruction-count benchmarks even if valgrind is installed.
    #[arg(long)]
    pub no_instructions: bool,
}

/// What the stateless server does on logout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Revocation {
    /// Nothing: a token stays valid until it expires.
    None,
    /// Remember revoked token ids until they expire (makes the server stateful).
    Denylist,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Architecture to serve.
    #[arg(long, value_enum)]
    pub arch: Arch,
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// [stateless] Signing algorithm.
    #[arg(long, value_enum, default_value = "HS256")]
    pub alg: TokenAlg,
    /// [stateless] File holding the HMAC secret (at least 32 bytes). Without it,
    /// STATEBENCH_JWT_SECRET is used; without both, a random secret is generated.
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
    /// [stateless] PEM private key (PKCS#8) for RS256/ES256/EdDSA; generated if absent.
    #[arg(long, value_name = "PATH", requires = "public_key_file")]
    pub private_key_file: Option<PathBuf>,
    /// [stateless] PEM public key (SPKI) matching --private-key-file.
    #[arg(long, value_name = "PATH", requires = "private_key_file")]
    pub public_key_file: Option<PathBuf>,
    /// [stateless] Token lifetime in seconds.
    #[arg(long, value_name = "SECS", default_value_t = crate::token::DEFAULT_TTL_SECS)]
    pub token_ttl: u64,
    /// [stateless] Clock-skew leeway in seconds for exp/nbf checks.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub leeway: u64,
    /// [stateless] Logout behaviour.
    #[arg(long, value_enum, default_value = "none")]
    pub revocation: Revocation,
    /// [stateless] Most revoked token ids remembered (logout answers 503 beyond).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub max_revoked: usize,

    /// [stateful] Session store: `memory`, or a Redis URL (redis://127.0.0.1:6379)
    /// shared by replicas.
    #[arg(long, default_value = "memory")]
    pub store: String,
    /// [stateful] Idle session lifetime in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    pub session_ttl: u64,
    /// [stateful] Most live sessions; login answers 503 with Retry-After beyond.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub max_sessions: usize,
    /// [stateful, stateless] Seconds between sweeps of expired sessions or revocations.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub sweep_interval: u64,
    /// [stateful] Mark the session cookie `Secure` (when served behind TLS).
    #[arg(long)]
    pub cookie_secure: bool,
    /// [stateful, ws] Key prefix in Redis (isolates runs sharing a server).
    #[arg(long, default_value = "statebench")]
    pub redis_prefix: String,

    /// [ws] Redis URL carrying chat rooms across replicas (pub/sub); without it
    /// rooms are per process.
    #[arg(long, value_name = "URL")]
    pub backplane: Option<String>,
    /// [ws] Largest message in bytes; larger ones close the connection with 1009.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub ws_max_message: usize,
    /// [ws] Close a connection that sends nothing for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub ws_idle_timeout: u64,
    /// [ws] Seconds between server pings.
    #[arg(long, value_name = "SECS", default_value_t = 20)]
    pub ws_ping_interval: u64,
    /// [ws] Most open connections; further upgrades get 503.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub ws_max_connections: usize,

    /// [ws] Per-connection read buffer in bytes (tungstenite's default is 131072;
    /// small buffers keep idle connections cheap).
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    pub ws_read_buffer: usize,

    /// Seconds a client has to send a request's headers.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub header_read_timeout: u64,
    /// Seconds a request may take before it is answered 408.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub request_timeout: u64,
    /// Seconds the graceful drain may take on SIGINT/SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub shutdown_timeout: u64,
}

/// Runs the command line; errors are printed as one line.
pub fn main(cli: Cli) -> ExitCode {
    // The gate starts and stops servers in-process; their info lines are noise there.
    let default_filter = match cli.command {
        Command::Ci(_) => "warn,goose=error",
        _ => "info,goose=error",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    crate::stop::install();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Compare(args) => runtime.block_on(compare(args)),
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Ci(args) => {
            drop(runtime);
            return ci(args);
        }
        Command::Micro(args) => micro(args),
        Command::Load(args) => runtime.block_on(load(args)),
        Command::Merge(args) => merge(args),
    };
    // Nothing started may outlive the command, whatever ended it.
    crate::stop::kill_children();
    let stopped = crate::stop::requested();
    match (result, stopped) {
        (Ok(()), None) => ExitCode::SUCCESS,
        (Ok(()), Some(r)) => ExitCode::from(r.exit_code()),
        (Err(e), Some(r)) => {
            crate::stop::eprintln(&format!("stopped by {r}: {e:#}"));
            ExitCode::from(r.exit_code())
        }
        (Err(e), None) => {
            crate::stop::eprintln(&format!("error: {e:#}"));
            // A target that cannot be measured is a usage problem: 2.
            if e.downcast_ref::<crate::loadtests::TargetError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `statebench ci`: the gate; its exit code is the verdict.
pub fn ci(args: CiArgs) -> ExitCode {
    use crate::ci::{Options, Verdict};
    let root = match std::env::current_dir() {
        Ok(r) => r,
        Err(e) => {
            crate::stop::eprintln(&format!("error: {e}"));
            return ExitCode::from(2);
        }
    };
    let opts = Options {
        root,
        baseline_dir: args.baseline,
        out_dir: args.out,
        threshold_pct: args.threshold,
        thresholds_for: args.threshold_for,
        latency_threshold_pct: args.latency_threshold,
        repeats: args.repeats.max(1),
        latency: !args.no_latency,
        fail_on_latency: args.fail_on_latency,
        goose_thresholds: args.goose_threshold,
        update_baseline: args.update_baseline,
        cargo_features: args.cargo_features,
    };
    let verdict = crate::ci::run(&opts);
    crate::stop::kill_children();
    if let Some(r) = crate::stop::requested() {
        crate::stop::eprintln(&format!("statebench ci: stopped by {r}; no verdict"));
        return ExitCode::from(r.exit_code());
    }
    match &verdict {
        Verdict::Pass => crate::stop::eprintln("statebench ci: no regression"),
        Verdict::Regression(r) => {
            crate::stop::eprintln(&format!("statebench ci: {} regression(s)", r.len()));
            for line in r {
                crate::stop::eprintln(&format!("  {line}"));
            }
        }
        Verdict::CannotMeasure(why) => {
            crate::stop::eprintln(&format!("statebench ci: could not measure: {why}"));
        }
    }
    ExitCode::from(verdict.code())
}

/// `statebench compare`: the matrices, then the report.
pub async fn compare(args: CompareArgs) -> anyhow::Result<()> {
    if let Some(t) = args.run_time {
        anyhow::ensure!(
            (1..=600).contains(&t),
            "--run-time must be 1 to 600 seconds"
        );
    }
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find the statebench binary: {e}"))?;
    let root = std::env::current_dir()?;
    let mut external = Vec::new();
    for (kind, url) in &args.target {
        anyhow::ensure!(
            !external
                .iter()
                .any(|e: &crate::compare::external::External| e.kind == *kind),
            "--target {} is given twice",
            kind.name()
        );
        external.push(crate::compare::external::External {
            kind: *kind,
            url: url.clone(),
            pid: None,
        });
    }
    for (kind, pid) in &args.target_pid {
        let Some(e) = external.iter_mut().find(|e| e.kind == *kind) else {
            anyhow::bail!("--target-pid {}={pid} names no --target", kind.name());
        };
        e.pid = Some(*pid);
    }
    let default_run = if !external.is_empty() {
        "external"
    } else if args.quick {
        "quick"
    } else {
        "full"
    };
    let options = crate::compare::Options {
        quick: args.quick,
        only: args.only,
        balancer: args.balancer,
        run_time: args.run_time,
        results: args.out,
        run_name: args.run_name.unwrap_or_else(|| default_run.into()),
        exe,
        root,
        external,
    };
    if args.report_only {
        let report = crate::compare::report_only(&options)?;
        crate::stop::println(&format!("wrote {}", report.display()));
        return Ok(());
    }
    crate::stop::eprintln(&format!(
        "statebench compare{}: replicas on 127.0.0.1, every run bounded in time (Ctrl-C stops it and keeps the cells so far)",
        if options.quick { " --quick" } else { "" }
    ));
    let outcome = crate::compare::run(options).await?;
    match outcome.stopped {
        None => crate::stop::println(&format!("wrote {}", outcome.report.display())),
        Some(r) => crate::stop::eprintln(&format!(
            "stopped by {r}: wrote the cells finished so far and a partial {}",
            outcome.report.display()
        )),
    }
    Ok(())
}

/// `statebench load`: one goose run, against --target or an in-process server.
pub async fn load(args: LoadArgs) -> anyhow::Result<()> {
    use crate::loadtests::LoadConfig;
    anyhow::ensure!(args.users > 0, "--users must be at least 1");
    anyhow::ensure!(args.run_time > 0, "--run-time must be at least 1 second");
    let mut local = None;
    let target = match &args.target {
        Some(t) => {
            anyhow::ensure!(
                t.starts_with("http://") || t.starts_with("https://"),
                "--target must be an http:// URL, not {t:?}"
            );
            t.trim_end_matches('/').to_owned()
        }
        None => {
            let arch = args.arch.unwrap_or(args.scenario.spec().arch);
            let server = arch.spawn_local().await?;
            let url = server.url("");
            crate::stop::eprintln(&format!("started an in-process {arch} server at {url}"));
            local = Some(server);
            url
        }
    };
    if args.target.is_some() {
        warn_about_missing_routes(&target, args.scenario).await;
    }
    let config = LoadConfig {
        users: args.users,
        increase_rate: args.increase_rate,
        run_time: secs(args.run_time),
        throttle: args.throttle,
        co_mitigation: args.co_mitigation.clone(),
        cart_items: args.cart_items,
        ..LoadConfig::new(target, args.scenario)
    };
    crate::stop::eprintln(&format!(
        "running {} with {} users for {} s…",
        args.scenario.name(),
        args.users,
        args.run_time
    ));
    let result = crate::loadtests::run(&config).await?;
    drop(local);
    if let Some(r) = crate::stop::requested() {
        crate::stop::eprintln(&format!("stopped by {r}: the figures cover the run so far"));
    }
    crate::stop::print(&result.table());
    if let Some(path) = &args.save {
        let mut result = result;
        let root = std::env::current_dir()?;
        result.provenance = vec![crate::report::env::Environment::capture(&root).one_line()];
        std::fs::write(path, serde_json::to_vec_pretty(&result)?)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        crate::stop::eprintln(&format!("saved {}", path.display()));
    }
    Ok(())
}

/// Before a run against someone else's server: names every route the
/// scenario needs that the target does not implement, so a run of 404s
/// says why. (A target that is not there at all is the run's own error.)
async fn warn_about_missing_routes(target: &str, scenario: crate::loadtests::ScenarioKind) {
    use crate::compare::external::{External, probe};
    let Some((kind, needs)) = scenario.spec().needs else {
        return;
    };
    let contract = probe(&External {
        kind,
        url: target.to_owned(),
        pid: None,
    })
    .await;
    for (route, got) in &contract.missing {
        if needs.contains(route) && got != "connection refused" {
            crate::stop::eprintln(&format!(
                "warning: {target} does not implement {route} ({got}), which the {} scenario needs",
                scenario.name()
            ));
        }
    }
}

/// `statebench merge`: adds saved results together (histograms exactly).
pub fn merge(args: MergeArgs) -> anyhow::Result<()> {
    let mut merged = crate::loadtests::LoadResult::default();
    for f in &args.files {
        let bytes =
            std::fs::read(f).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
        let one: crate::loadtests::LoadResult = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{} is not a statebench load result: {e}", f.display()))?;
        merged.merge(&one);
    }
    crate::stop::print(&merged.table());
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_vec_pretty(&merged)?)?;
        crate::stop::eprintln(&format!("saved {}", path.display()));
    }
    Ok(())
}

/// `statebench micro`: runs the benchmarks with cargo, then the report.
pub fn micro(args: MicroArgs) -> anyhow::Result<()> {
    let root = std::env::current_dir()?;
    if !root.join("benches/session_map.rs").exists() {
        anyhow::bail!(
            "run `statebench micro` from the statebench checkout (benches/ not found here)"
        );
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let started = std::time::SystemTime::now();
    if !args.report_only {
        let mut cmd = std::process::Command::new("cargo");
        cmd.args([
            "bench",
            "--bench",
            "token",
            "--bench",
            "session_map",
            "--bench",
            "request",
            "--bench",
            "session_memory",
        ]);
        if args.quick {
            cmd.env("STATEBENCH_QUICK", "1");
        }
        crate::stop::eprintln(&format!(
            "running: cargo bench (token, session_map, request, session_memory){}",
            if args.quick { " in quick mode" } else { "" }
        ));
        let status = crate::stop::run_to_end(&mut cmd, "cargo bench")?;
        anyhow::ensure!(status.success(), "cargo bench failed ({status})");
        if args.no_instructions {
            crate::stop::eprintln("instruction counts skipped (--no-instructions)");
        } else if let Some(missing) = ["valgrind", "gungraun-runner"]
            .into_iter()
            .find(|t| !crate::host::tools::installed(t))
        {
            crate::stop::eprintln(&format!(
                "instruction counts skipped: {missing} is not installed (see README)"
            ));
        } else {
            let status = crate::stop::run_to_end(
                std::process::Command::new("cargo").args([
                    "bench",
                    "--bench",
                    "instructions",
                    "--",
                    "--save-summary=json",
                ]),
                "cargo bench",
            )?;
            anyhow::ensure!(
                status.success(),
                "instruction-count benchmarks failed ({status})"
            );
        }
    }
    let since = (!args.report_only).then_some(started);
    let data = crate::report::micro::MicroData::load(&target, since)?;
    anyhow::ensure!(
        !data.figures.is_empty(),
        "no criterion results under {}",
        target.display()
    );
    let env = crate::report::env::Environment::capture(&root);
    let findings = crate::report::micro::write(&data, &env, &args.out)?;
    crate::stop::println(&format!(
        "wrote {} ({} figures)",
        args.out.display(),
        data.figures.len()
    ));
    for f in findings {
        crate::stop::println(&format!("- {f}"));
    }
    Ok(())
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// `statebench serve`: builds the chosen server from flags and runs it.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let options = ServeOptions {
        header_read_timeout: secs(args.header_read_timeout.max(1)),
        request_timeout: secs(args.request_timeout.max(1)),
        drain_timeout: secs(args.shutdown_timeout),
    };
    let lifecycle = Lifecycle::default();
    let base = Base {
        request_timeout: options.request_timeout,
        sweep_interval: Some(secs(args.sweep_interval.max(1))),
        ..Base::default()
    };

    let app = match args.arch {
        Arch::Stateless => {
            let env_secret = std::env::var("STATEBENCH_JWT_SECRET").ok();
            let keys = KeyPair::load(
                args.alg,
                args.secret_file.as_deref(),
                env_secret.as_deref(),
                args.private_key_file.as_deref(),
                args.public_key_file.as_deref(),
            )?;
            if keys.generated {
                tracing::warn!(
                    alg = args.alg.name(),
                    "no key given: generated a random one; tokens will not survive a restart \
                     nor be accepted by other replicas unless the key is shared"
                );
            }
            let config = stateless::Config {
                tokens: Arc::new(TokenService::new(keys, args.token_ttl, args.leeway)),
                denylist: (args.revocation == Revocation::Denylist)
                    .then(|| Arc::new(Denylist::new(args.max_revoked))),
            };
            stateless::build(config, &base, &lifecycle)
        }
        Arch::Stateful => {
            let config = StoreConfig {
                idle_ttl_ms: args.session_ttl.saturating_mul(1000),
                max_sessions: args.max_sessions,
            };
            let cookie_secure = args.cookie_secure;
            if args.store == "memory" {
                let store = Arc::new(MemoryStore::new(config));
                stateful::build(
                    stateful::Config {
                        store,
                        cookie_secure,
                    },
                    &base,
                    &lifecycle,
                )
            } else if args.store.starts_with("redis://") || args.store.starts_with("rediss://") {
                let store = RedisStore::open(&args.store, &args.redis_prefix, config)?;
                if let Err(e) = store.ping().await {
                    tracing::warn!(error = %e, "Redis not reachable yet; answering 503 until it is");
                }
                let store = Arc::new(store);
                stateful::build(
                    stateful::Config {
                        store,
                        cookie_secure,
                    },
                    &base,
                    &lifecycle,
                )
            } else {
                anyhow::bail!(
                    "--store must be `memory` or a redis:// URL, not {:?}",
                    args.store
                );
            }
        }
        Arch::Ws => {
            let limits = WsConfig {
                max_message: args.ws_max_message,
                idle_timeout: secs(args.ws_idle_timeout.max(1)),
                ping_interval: secs(args.ws_ping_interval.max(1)),
                max_connections: args.ws_max_connections,
                read_buffer: args.ws_read_buffer.max(256),
                ..WsConfig::default()
            };
            let backplane = args
                .backplane
                .clone()
                .map(|url| (url, args.redis_prefix.clone()));
            ws::build(ws::Config { limits, backplane }, &base, &lifecycle)?.0
        }
    };

    let listener = TcpListener::bind(args.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.addr))?;
    let local = listener.local_addr()?;
    // One line on stdout that harnesses read to learn the port.
    crate::stop::println(&format!(
        "statebench {} listening on http://{local}",
        args.arch
    ));
    crate::server::run(
        listener,
        app,
        lifecycle,
        options,
        crate::server::shutdown_signal(),
    )
    .await?;
    Ok(())
}
