//! `statebench micro`: the micro-benchmarks through cargo, then
//! `results/micro/`.

use std::path::PathBuf;

use clap::Args;

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

/// The criterion benchmarks and the memory measurement.
const TIMED: [&str; 5] = [
    "token",
    "session_map",
    "request",
    "refresh",
    "session_memory",
];

/// `statebench micro`: runs the benchmarks with cargo, then the report.
pub fn micro(args: MicroArgs) -> anyhow::Result<()> {
    use crate::benchrun::{Bench, Output};
    let root = std::env::current_dir()?;
    anyhow::ensure!(
        crate::benchrun::is_checkout(&root),
        "run `statebench micro` from the statebench checkout (benches/ not found here)"
    );
    let target = crate::benchrun::target_dir(&root);
    let mut since = None;
    if !args.report_only {
        crate::stop::eprintln(&format!(
            "running: cargo bench ({}){}",
            TIMED.join(", "),
            if args.quick { " in quick mode" } else { "" }
        ));
        let timed = Bench {
            benches: &TIMED,
            args: &[],
            features: None,
            env: &[],
            quick: args.quick,
            output: Output::Inherit,
            target_dir: None,
        };
        since = Some(timed.run(&root)?);
        if args.no_instructions {
            crate::stop::eprintln("instruction counts skipped (--no-instructions)");
        } else if let Some(missing) = crate::benchrun::instruction_tools_missing() {
            crate::stop::eprintln(&format!(
                "instruction counts skipped: {missing} is not installed (see README)"
            ));
        } else {
            Bench {
                benches: &["instructions"],
                args: &["--save-summary=json"],
                // The path this CPU runs in production, not the gate's pin.
                env: &[(crate::benchrun::dispatch::MODE_VAR, "native")],
                ..timed
            }
            .run(&root)?;
        }
    }
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
