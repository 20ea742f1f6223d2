//! `statebench load` (one goose run against a target or an in-process
//! server) and `statebench merge` (saved results added together).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::server::Arch;

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
    /// How long to measure, in goose's format: 30, 30s, 1m30s, 1h (the run
    /// stops by itself).
    #[arg(long, value_name = "TIME", default_value = "10s", value_parser = parse_time)]
    pub run_time: Duration,
    /// A goose test plan in place of --users, --increase-rate and
    /// --run-time: `users,time` steps separated by `;`, each moving to that
    /// many users over that time, e.g. "16,10s;16,30s;64,10s;64,30s;0,5s"
    /// (a ramp with plateaus).
    #[arg(long, value_name = "PLAN", value_parser = parse_plan,
          conflicts_with_all = ["users", "increase_rate", "run_time"])]
    pub test_plan: Option<String>,
    /// Also write goose's own report here: .html, .json or .md by the
    /// file's extension (repeatable).
    #[arg(long, value_name = "PATH")]
    pub report_file: Vec<PathBuf>,
    /// Cap on requests per second across all users (fixed-rate runs).
    #[arg(long, value_name = "RPS")]
    pub throttle: Option<usize>,
    /// Each user's mean rate, requests per second, as Poisson arrivals
    /// (HTTP scenarios): with --test-plan the offered load follows the
    /// users running. Ignored with --throttle.
    #[arg(long, value_name = "RPS", value_parser = parse_rate, conflicts_with = "throttle")]
    pub user_rate: Option<f64>,
    /// Coordinated-omission mitigation: average, minimum or maximum.
    #[arg(long, value_name = "KIND")]
    pub co_mitigation: Option<String>,
    /// Items per cart in the cart scenario.
    #[arg(long, default_value_t = 10)]
    pub cart_items: usize,
    /// Write the raw results (histograms included) to this JSON file.
    #[arg(long, value_name = "PATH")]
    pub save: Option<PathBuf>,
    /// Goose options, after `--`, passed to goose as they are (for example
    /// `-- --request-log requests.json`); `statebench goose` takes goose's
    /// whole command line.
    #[arg(last = true, value_name = "GOOSE OPTIONS")]
    pub goose: Vec<String>,
}

/// A time span as goose reads one (`30`, `30s`, `1m30s`, `2h`), at least
/// one second.
pub(crate) fn parse_time(s: &str) -> Result<Duration, String> {
    match goose::util::parse_timespan(s) {
        Some(0) => Err("must be at least 1 second".into()),
        Some(secs) => Ok(Duration::from_secs(secs as u64)),
        None => Err(format!(
            "{s:?} is not a time span: use seconds (30) or h/m/s units (30s, 1m30s, 2h)"
        )),
    }
}

/// A rate in requests per second: a positive, finite number.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
        _ => Err(format!(
            "{s:?} is not a rate: give requests per second above 0 (e.g. 20 or 0.5)"
        )),
    }
}

/// A goose test plan, checked as goose checks it.
fn parse_plan(s: &str) -> Result<String, String> {
    crate::loadtests::config::plan_steps(s).map_err(|why| {
        format!("{s:?} is not a test plan: {why} (write users,time steps separated by ;, e.g. \"10,30s;10,1m;0,10s\")")
    })?;
    Ok(s.to_owned())
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

/// `statebench load`: one goose run, against --target or an in-process server.
pub async fn load(args: LoadArgs) -> anyhow::Result<()> {
    use crate::loadtests::LoadConfig;
    anyhow::ensure!(args.users > 0, "--users must be at least 1");
    let mut local = None;
    let target = match &args.target {
        Some(t) => {
            crate::loadtests::config::base_url(t).map_err(|e| anyhow::anyhow!("--target: {e}"))?
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
        run_time: args.run_time,
        test_plan: args.test_plan.clone(),
        throttle: args.throttle,
        user_rate: args.user_rate,
        co_mitigation: args.co_mitigation.clone(),
        cart_items: args.cart_items,
        report_files: args.report_file.clone(),
        extra_goose_args: args.goose.clone(),
        ..LoadConfig::new(target, args.scenario)
    };
    crate::stop::eprintln(&match &args.test_plan {
        Some(plan) => format!(
            "running {} on the test plan {plan:?} (up to {} users, {} s)…",
            args.scenario.name(),
            config.peak_users(),
            config.planned().as_secs()
        ),
        None => format!(
            "running {} with {} users for {} s…",
            args.scenario.name(),
            args.users,
            args.run_time.as_secs()
        ),
    });
    let result = crate::loadtests::run(&config).await?;
    drop(local);
    if let Some(r) = crate::stop::requested() {
        crate::stop::eprintln(&format!("stopped by {r}: the figures cover the run so far"));
    }
    crate::stop::print(&result.table());
    for path in &args.report_file {
        crate::stop::eprintln(&format!("goose wrote {}", path.display()));
    }
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
