//! `statebench vs`: the servers side by side, each on one core, the load
//! generator on another; writes `<out>/README.md` and `<out>/vs.json`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::compare::external;
use crate::compare::vs::{self, Route, Target, VsConfig};

#[derive(Debug, Args)]
pub struct VsArgs {
    /// Seconds of load per measurement (default 5, or 2 with --quick).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// Measurements per route, interleaved across routes; the table gives
    /// their medians (default 3, or 1 with --quick).
    #[arg(long, value_name = "N")]
    pub rounds: Option<usize>,
    /// Open connections (wrk's -c, and WebSocket clients).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub connections: u32,
    /// The core every server runs on.
    #[arg(long, value_name = "CORE", default_value_t = 0)]
    pub server_core: usize,
    /// The core the load generator (wrk, the WebSocket client) runs on.
    #[arg(long, value_name = "CORE", default_value_t = 1)]
    pub generator_core: usize,
    /// Only these routes (repeat or comma-separate; default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub routes: Vec<Route>,
    /// A server on the contract that statebench did not start, as NAME=URL
    /// (an Express or Go implementation, say): its /login and /profile join
    /// the table (repeatable).
    #[arg(long, value_name = "NAME=URL", value_parser = parse_target)]
    pub target: Vec<(String, String)>,
    /// The process id of a --target server, as NAME=PID: it is pinned to the
    /// server core and its CPU per request measured.
    #[arg(long, value_name = "NAME=PID", value_parser = parse_target_pid, requires = "target")]
    pub target_pid: Vec<(String, u32)>,
    /// A first look: one 2-second measurement per route.
    #[arg(long)]
    pub quick: bool,
    /// Where to write README.md and vs.json.
    #[arg(long, value_name = "DIR", default_value = "results/vs")]
    pub out: PathBuf,
}

fn parse_target(s: &str) -> Result<(String, String), String> {
    external::named(s, "URL", crate::loadtests::config::base_url)
}

fn parse_target_pid(s: &str) -> Result<(String, u32), String> {
    external::named(s, "PID", external::pid)
}

/// `statebench vs`: measures, prints the table, writes the results.
pub async fn vs(args: VsArgs) -> anyhow::Result<()> {
    let secs = args.duration.unwrap_or(if args.quick { 2 } else { 5 });
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 });
    anyhow::ensure!((1..=20).contains(&rounds), "--rounds must be 1 to 20");
    anyhow::ensure!(
        (1..=600).contains(&secs),
        "--duration must be 1 to 600 seconds"
    );
    anyhow::ensure!(
        (1..=10_000).contains(&args.connections),
        "--connections must be 1 to 10000"
    );
    for (name, _) in &args.target_pid {
        anyhow::ensure!(
            args.target.iter().any(|(n, _)| n == name),
            "--target-pid {name}=…: no --target named {name}"
        );
    }
    let targets = args
        .target
        .iter()
        .map(|(name, url)| Target {
            name: name.clone(),
            url: url.clone(),
            pid: args
                .target_pid
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| *p),
        })
        .collect();
    let config = VsConfig {
        duration: Duration::from_secs(secs),
        rounds,
        connections: args.connections,
        server_core: args.server_core,
        generator_core: args.generator_core,
        routes: if args.routes.is_empty() {
            Route::ALL.to_vec()
        } else {
            args.routes.clone()
        },
        targets,
        exe: std::env::current_exe()
            .map_err(|e| anyhow::anyhow!("cannot find the statebench binary: {e}"))?,
    };
    vs::preflight(&config)?;
    let rows = (config.routes.len() + 2 * config.targets.len()) * rounds;
    crate::stop::eprintln(&format!(
        "side by side: {rows} runs of {secs} s ({rounds} per route, interleaved) after a {} s warm-up per route; servers on core {}, load on core {}",
        vs::warm_up(&config).duration.as_secs(),
        config.server_core,
        config.generator_core
    ));
    let mut done = 0;
    let result = vs::run(&config, |round, row| {
        done += 1;
        crate::stop::eprintln(&format!(
            "[{done}/{rows}] round {round}: {} {}: {:.0} req/s, {} µs server CPU per request ({}-bound)",
            row.server,
            row.route,
            row.per_sec,
            row.server_cpu_us
                .map_or("n/a".into(), |u| format!("{u:.1}")),
            row.bound
        ));
    })
    .await?;
    let table = vs::table(&result);
    println!("{table}");
    for line in vs::ratios(&result) {
        println!("{line}");
    }
    for line in vs::targets(&result) {
        println!("{line}");
    }
    write(&args.out, &result, &table)?;
    crate::stop::eprintln(&format!(
        "wrote {}/README.md and vs.json",
        args.out.display()
    ));
    Ok(())
}

fn write(out: &std::path::Path, result: &vs::VsResult, table: &str) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    std::fs::create_dir_all(out)?;
    let env = crate::report::env::Environment::capture(&std::env::current_dir()?);
    let mut md = String::new();
    writeln!(md, "# Side by side: one core per server\n")?;
    writeln!(
        md,
        "Produced by `statebench vs`. Every server ran pinned to core {}, the load generator \
         (wrk with one thread and {} connections; for the WebSocket echo, statebench's own client) \
         on core {}. Each route was measured {} times for {:.0} s, the routes interleaved (after one \
         unmeasured warm-up each), and every figure is the median of its measurements (errors are \
         summed). Server CPU per request is the server process's CPU time (/proc) over the requests \
         answered; \"bottleneck\" names the core that was at least 90% busy.\n",
        result.server_core,
        result.connections,
        result.generator_core,
        result.rounds,
        result.seconds_per_route
    )?;
    writeln!(md, "{}", env.markdown())?;
    writeln!(md, "{table}")?;
    for line in vs::ratios(result) {
        writeln!(md, "- {line}")?;
    }
    let targets = vs::targets(result);
    if !targets.is_empty() {
        writeln!(md, "\n## Targets\n")?;
        for line in targets {
            writeln!(md, "- {line}")?;
        }
    }
    std::fs::write(out.join("README.md"), md)?;
    std::fs::write(
        out.join("vs.json"),
        serde_json::to_vec_pretty(&serde_json::json!({
            "environment": {"commit": env.commit, "rustc": env.rustc, "cpu": env.cpu_model, "cores": env.cores, "generated_at": env.generated_at},
            "result": result,
        }))?,
    )?;
    Ok(())
}
