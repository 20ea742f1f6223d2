//! The autoscaling matrix end to end, in its quick form: every design
//! starts on one budgeted replica, a test plan ramps the load up and down,
//! and the autoscaler's trace, the per-second figures and the report's
//! section and chart come out consistent. Figures are not judged here
//! (the machine is shared); the committed report quotes them.

mod common;

use statebench::compare::{Cell, Matrix, Server};

#[test]
fn every_design_is_autoscaled_over_a_ramp() {
    let (out, record) = common::compare(&["--quick", "--only", "autoscale"]);
    let cells: Vec<&Cell> = record.cells.iter().collect();
    // Stateless, in-memory sessions, and Redis where it is installed.
    assert!(cells.len() >= 2, "{:?}", ids(&cells));
    for c in &cells {
        assert_eq!(c.matrix, Matrix::Autoscale);
        assert!(c.placement.is_some(), "{}: no placement", c.id);
        let a = c.autoscale.as_deref().expect("an autoscale record");
        let rule = a.rule;
        // One tick a second over the whole ramp, within the bounds.
        assert!(a.trace.ticks.len() >= 15, "{}: {:?}", c.id, a.trace.ticks);
        assert!(
            a.trace
                .ticks
                .iter()
                .all(|t| (rule.min..=rule.max).contains(&t.replicas)),
            "{}",
            c.id
        );
        // Every change is recorded as an event, from the count before it.
        let mut count = 1;
        for e in &a.trace.events {
            assert_eq!(e.from, count, "{}: {:?}", c.id, a.trace.events);
            assert_ne!(e.to, e.from);
            count = e.to;
        }
        assert_eq!(a.trace.ticks.last().unwrap().replicas, count, "{}", c.id);
        // Six times the bottom's users at the top: the top needs more
        // than one replica on any machine.
        assert!(a.trace.scale_ups() >= 1, "{}: {:?}", c.id, a.trace.events);
        assert!(a.high_rps > 5.0 * a.low_rps, "{}", c.id);
        assert_eq!(c.replicas, a.trace.peak_replicas());
        // The per-second figures account for every request of the run,
        // bar one in flight per user at the end.
        let per_second: u64 = a.seconds.iter().map(|s| s.answered + s.failed).sum();
        assert!(
            per_second.abs_diff(c.requests) <= c.users as u64,
            "{}: {per_second} per second, {} in all",
            c.id,
            c.requests
        );
        assert!(a.up_at < a.down_at);
        // Sessions left with removed replicas: only in-memory stores have
        // any, and only when a replica was removed.
        match c.server {
            Server::StatefulMemory => {
                assert_eq!(
                    c.sessions_on_removed.is_some(),
                    a.trace.scale_downs() > 0,
                    "{}",
                    c.id
                );
            }
            _ => assert_eq!(c.sessions_on_removed, None, "{}", c.id),
        }
        if c.server == Server::Stateless(statebench::keys::TokenAlg::HS256) {
            assert_eq!(c.sessions_lost, 0, "{}", c.id);
        }
    }
    let report = std::fs::read_to_string(out.path().join("REPORT.md")).unwrap();
    assert!(report.contains("## 7. Autoscaling"));
    assert!(report.contains("**Placement of the autoscaling matrix**"));
    assert!(report.contains("autoscale on CPU, up and down"));
    let chart = std::fs::read_to_string(out.path().join("load/t/charts/autoscale.svg")).unwrap();
    assert!(chart.contains("<svg"));
}

fn ids(cells: &[&Cell]) -> Vec<String> {
    cells.iter().map(|c| c.id.clone()).collect()
}
