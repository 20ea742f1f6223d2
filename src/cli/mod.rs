//! The `statebench` command line: [`Cli`] and its dispatch. Each command
//! lives in a file of its own with its flags (documented for `--help`) next
//! to its handler: `serve`, `load` (and `merge`), `goose`, `compare`, `ci`,
//! `micro`, `vs`, `plan`.
//! The binary only calls [`main`].

mod ci;
mod compare;
mod goose;
mod load;
mod micro;
mod plan;
mod serve;
mod vs;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use ci::CiArgs;
pub use compare::CompareArgs;
pub use goose::GooseArgs;
pub use load::{LoadArgs, MergeArgs};
pub use micro::MicroArgs;
pub use plan::PlanArgs;
pub use serve::{Revocation, ServeArgs};
pub use vs::VsArgs;

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
    /// Every load scenario in one goose attack, with goose's own command
    /// line (--host, -u, -r, -t, --scenarios, --test-plan, --report-file, …).
    Goose(GooseArgs),
    /// The servers side by side, each pinned to one core with the load
    /// generator (wrk) on another: req/s and server CPU per request for
    /// /healthz, /profile, /login and WebSocket echo, beside any --target.
    Vs(VsArgs),
    /// The fleet a workload needs under each design (cores, replicas,
    /// Redis shards, memory, network), from a comparison's measured
    /// capacities, with the model checked against them.
    Plan(PlanArgs),
}

/// Whether log lines written to `stream` may carry colour codes: only on
/// a terminal, and not when `NO_COLOR` is set (<https://no-color.org>). A
/// log redirected to a file or a pipe stays plain text.
fn colours(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
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
        .with_ansi(colours(&std::io::stderr()))
        .init();
    crate::stop::install();
    let runtime = match &cli.command {
        Command::Serve(ServeArgs {
            workers: Some(n), ..
        }) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(*n))
            .enable_all()
            .build(),
        _ => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Compare(args) => runtime.block_on(compare::compare(args)),
        Command::Serve(args) => runtime.block_on(serve::serve(args)),
        Command::Ci(args) => {
            drop(runtime);
            return ci::ci(args);
        }
        Command::Micro(args) => micro::micro(args),
        Command::Load(args) => runtime.block_on(load::load(args)),
        Command::Merge(args) => load::merge(args),
        Command::Goose(args) => runtime.block_on(goose::goose(args)),
        Command::Vs(args) => runtime.block_on(vs::vs(args)),
        Command::Plan(args) => plan::plan(args),
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

#[cfg(test)]
mod tests {
    /// No two options of a subcommand share a name, goose's flattened ones
    /// and statebench's `--sb-` ones included (clap checks this only in
    /// debug builds; the tests run in release).
    #[test]
    fn no_two_options_share_a_name() {
        let cli = <super::Cli as clap::CommandFactory>::command();
        for sub in cli.get_subcommands() {
            let mut longs = std::collections::HashSet::new();
            let mut shorts = std::collections::HashSet::new();
            for arg in sub.get_arguments() {
                if let Some(long) = arg.get_long() {
                    assert!(longs.insert(long), "--{long} twice in {}", sub.get_name());
                }
                if let Some(short) = arg.get_short() {
                    assert!(shorts.insert(short), "-{short} twice in {}", sub.get_name());
                }
            }
        }
    }
}
