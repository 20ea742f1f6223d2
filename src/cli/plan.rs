//! `statebench plan`: the fleet a workload needs under each design, from a
//! comparison's measured capacities (see [`crate::plan`]).

use std::path::PathBuf;

use clap::Args;

use crate::compare::RunRecord;
use crate::compare::plan::{Workload, render};
use crate::compare::report::Cells;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Requests per second at peak.
    #[arg(long, value_name = "N", default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub rps: u64,
    /// Live sessions at once.
    #[arg(long, value_name = "N", default_value_t = 5_000_000)]
    pub sessions: u64,
    /// Open WebSocket connections at once.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub ws: u64,
    /// Cores per replica in the planned fleet.
    #[arg(long, value_name = "CORES", default_value_t = 1.0)]
    pub replica_cores: f64,
    /// Share of its core each Redis shard is planned to use, in (0, 1].
    #[arg(long, value_name = "SHARE", default_value_t = 0.7)]
    pub store_utilisation: f64,
    /// The comparison to plan from (its cells.json; the capacity matrix
    /// must be in it).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "results/load/full/cells.json"
    )]
    pub cells: PathBuf,
    /// The micro-benchmarks' figures, for the memory of one session
    /// (optional: without it, session memory is left out).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "results/micro/figures.json"
    )]
    pub micro: PathBuf,
}

/// `statebench plan`: prints the plan as Markdown.
pub fn plan(args: PlanArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.replica_cores.is_finite() && args.replica_cores > 0.0,
        "--replica-cores must be above 0, not {}",
        args.replica_cores
    );
    anyhow::ensure!(
        args.store_utilisation > 0.0 && args.store_utilisation <= 1.0,
        "--store-utilisation must be in (0, 1], not {}",
        args.store_utilisation
    );
    let bytes = std::fs::read(&args.cells).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {} (run `statebench compare` first, or give --cells): {e}",
            args.cells.display()
        )
    })?;
    let record: RunRecord = serde_json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a comparison's cells.json: {e}",
            args.cells.display()
        )
    })?;
    let micro: Option<serde_json::Value> = match std::fs::read(&args.micro) {
        Ok(b) => Some(serde_json::from_slice(&b).map_err(|e| {
            anyhow::anyhow!(
                "{} is not the micro-benchmarks' figures.json: {e}",
                args.micro.display()
            )
        })?),
        Err(_) => {
            crate::stop::eprintln(&format!(
                "note: {} not found; session memory is left out (run `statebench micro`)",
                args.micro.display()
            ));
            None
        }
    };
    let workload = Workload {
        rps: args.rps as f64,
        sessions: args.sessions,
        ws: args.ws,
        replica_cores: args.replica_cores,
        store_utilisation: args.store_utilisation,
    };
    let md = render::markdown(&workload, Cells(&record.cells), micro.as_ref(), record.store_memory.as_ref(), "#").ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no capacity cells under a CPU budget to plan from (run `statebench compare --only capacity`)",
            args.cells.display()
        )
    })?;
    print!("{md}");
    Ok(())
}
