//! `statebench compare`: the scaling comparison's flags, and the run.

use std::path::PathBuf;

use clap::Args;

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
    /// run two and a half times as long).
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
    /// stateless, stateful, hybrid, ws (repeatable; any subset). Its contract is probed
    /// first, and only the matrices that make sense for one server run
    /// (concurrency, equal rate, state size). The report goes to
    /// <DIR>/load/<run>/REPORT.md (run name `external` by default).
    #[arg(long, value_name = "NAME=URL", value_parser = crate::compare::external::parse_target)]
    pub target: Vec<(crate::server::Arch, String)>,
    /// The process id of a --target server, as NAME=PID, for its CPU and
    /// memory (without it they are n/a).
    #[arg(long, value_name = "NAME=PID", value_parser = crate::compare::external::parse_target_pid, requires = "target")]
    pub target_pid: Vec<(crate::server::Arch, u32)>,
    /// Give every replica this much CPU, in cores (0.2 is a fifth of a
    /// core), through a cgroup CPU quota in 20 ms periods (--cpu-period), and run the
    /// servers on the cores the load generator does not use. Without a
    /// writable cgroup controller (not root) the servers are only pinned,
    /// and the report says so.
    #[arg(long, value_name = "CORES")]
    pub replica_cpu: Option<f64>,
    /// The same budget for Redis and HAProxy.
    #[arg(long, value_name = "CORES")]
    pub store_cpu: Option<f64>,
    /// The quota period of every budget, in milliseconds (1 to 1000;
    /// default 20). A process that runs out of its quota waits for the rest
    /// of the period, so keep that wait clear of --slo-p99. A budget too
    /// small for a 1 ms quota in it gets a longer period (the kernel's
    /// minimum quota is 1 ms).
    #[arg(long, value_name = "MS", value_parser = parse_period_ms)]
    pub cpu_period: Option<std::time::Duration>,
    /// The cores the load generator runs on (comma-separated; default with a
    /// budget: the last core). The servers get the others.
    #[arg(long, value_name = "CORES", value_delimiter = ',')]
    pub generator_cpus: Vec<usize>,
    /// How many times a balancer (embedded or HAProxy) sends a request
    /// again to another replica after a refused connection, or after a
    /// reset or empty answer to a GET. 0 shows every failure as it is.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=3))]
    pub retries: u32,
    /// The capacity matrix's objective: the highest offered rate whose p99
    /// stays under this many milliseconds, with under 0.1% errors.
    #[arg(long, value_name = "MS", default_value_t = crate::compare::DEFAULT_SLO_P99.as_secs_f64() * 1e3)]
    pub slo_p99: f64,
}

/// A quota period in milliseconds: 1 to 1000, as the kernel takes it.
fn parse_period_ms(s: &str) -> Result<std::time::Duration, String> {
    let ms: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of milliseconds"))?;
    if ms.is_finite() && (1.0..=1000.0).contains(&ms) {
        Ok(std::time::Duration::from_secs_f64(ms / 1000.0))
    } else {
        Err(format!("the period must be 1 to 1000 ms, not {s}"))
    }
}

/// `statebench compare`: the matrices, then the report.
pub async fn compare(args: CompareArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.slo_p99.is_finite() && (0.1..=10_000.0).contains(&args.slo_p99),
        "--slo-p99 must be 0.1 to 10000 milliseconds, not {}",
        args.slo_p99
    );
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
        retries: args.retries,
        slo_p99: std::time::Duration::from_secs_f64(args.slo_p99 / 1000.0),
        budgets: crate::compare::budget::BudgetOptions {
            replica_cpu: args.replica_cpu,
            store_cpu: args.store_cpu,
            generator_cpus: args.generator_cpus,
            period: args.cpu_period,
        },
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
