//! The capacity matrix end to end, in its quick form with 1-second steps:
//! every design gets a search per replica count under a placement, its
//! steps are recorded, and the report carries the section. Figures are not
//! judged here (the machine is shared); the committed report quotes them.

mod common;

use statebench::compare::{Cell, Matrix};

#[test]
fn every_design_gets_a_capacity_search_under_budgets() {
    let (out, record) = common::compare(&[
        "--quick",
        "--only",
        "capacity",
        "--run-time",
        "1",
        "--balancer",
        "embedded",
    ]);
    let cells: Vec<&Cell> = record.cells.iter().collect();
    // --quick: stateless and memory (sticky), on 1 and 2 replicas.
    assert_eq!(cells.len(), 2 * 2, "{:?}", ids(&cells));
    for c in &cells {
        assert_eq!(c.matrix, Matrix::Capacity);
        assert!(c.placement.is_some(), "{}: no placement", c.id);
        assert_eq!(c.slo_p99_us, Some(10_000), "{}", c.id);
        // A closed-loop probe, then fixed-rate steps.
        assert!(c.steps.len() >= 2, "{}: {:?}", c.id, c.steps);
        assert!(c.steps[0].offered_rps.is_none(), "{}", c.id);
        assert!(c.steps[1..].iter().all(|s| s.offered_rps.is_some()));
        // Paced steps say how many of their sends went late.
        assert!(
            c.steps[1..].iter().all(|s| s.late_sends.is_some()),
            "{}: {:?}",
            c.id,
            c.steps
        );
        let capacity = c.capacity_rps.expect("a capacity, 0 if none met the SLO");
        let met = c.steps.iter().filter(|s| s.met_slo).count();
        assert_eq!(capacity > 0.0, met > 0, "{}: {:?}", c.id, c.steps);
        if capacity == 0.0 {
            // Below the lowest rate tried: no ratio, and the note says where.
            assert_eq!(c.scaling_efficiency, None, "{}", c.id);
            assert!(
                c.notes
                    .iter()
                    .any(|n| n.contains("req/s, the lowest rate tried")),
                "{}: {:?}",
                c.id,
                c.notes
            );
        }
        if c.replicas == 1 && capacity > 0.0 {
            assert_eq!(c.scaling_efficiency, Some(1.0), "{}", c.id);
        }
        if c.replicas == 1 {
            assert_eq!(c.peak_efficiency, Some(1.0), "{}", c.id);
        }
    }
    let report = std::fs::read_to_string(out.path().join("REPORT.md")).unwrap();
    assert!(report.contains("## 6. Capacity vs replicas"));
    assert!(report.contains("**Placement of the capacity matrix**"));
}

fn ids(cells: &[&Cell]) -> Vec<String> {
    cells.iter().map(|c| c.id.clone()).collect()
}
