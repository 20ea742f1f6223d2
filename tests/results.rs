//! The committed results read back: REPORT.md is what the report code
//! renders from the committed cells, and the README's summary block is
//! derived from the same claims table, so neither can drift from the data.

use std::path::Path;

use statebench::compare::RunRecord;
use statebench::compare::report::markdown;
use statebench::report::env::Environment;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn full_run() -> RunRecord {
    let path = Path::new(ROOT).join("results/load/full/cells.json");
    let bytes = std::fs::read(&path).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn report_renders_from_the_committed_cells() {
    let record = full_run();
    let env: Environment = serde_json::from_value(record.environment.clone()).unwrap();
    let mut charts: Vec<String> =
        std::fs::read_dir(Path::new(ROOT).join("results/load/full/charts"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    charts.sort();
    let micro: serde_json::Value = serde_json::from_slice(
        &std::fs::read(Path::new(ROOT).join("results/micro/figures.json")).unwrap(),
    )
    .unwrap();
    let rendered = markdown::report(&record, &env, Path::new("load/full"), &charts, Some(&micro));
    let committed = std::fs::read_to_string(Path::new(ROOT).join("results/REPORT.md")).unwrap();
    assert!(
        rendered == committed,
        "results/REPORT.md differs from what the committed cells render; \
         run `statebench compare --report-only` (first difference near byte {})",
        rendered
            .bytes()
            .zip(committed.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(rendered.len().min(committed.len()))
    );
}

#[test]
fn readme_summary_is_the_committed_runs_claims() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let block = markdown::readme_block_in(&readme).expect("README has a <!-- claims --> block");
    let derived = markdown::readme_block(&full_run(), "results/load/full/charts");
    assert_eq!(
        block, derived,
        "the README's claims block differs from results/load/full; run `statebench compare --report-only`"
    );
}
