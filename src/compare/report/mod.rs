//! `results/REPORT.md` and its charts, from the cells of one run.
//!
//! - [`claims`]: the usual claims about stateless vs stateful as data —
//!   each a query over the cells and a verdict rule — which open the report
//!   and the README alike;
//! - [`markdown`]: the report's text; `sections`: one table per matrix;
//!   `hybrid`: what each design pays for its state (revocation delay,
//!   store calls, the refresh storm);
//! - [`charts`]: its SVG charts.
//!
//! [`Cells`] is how all three read a run: typed lookups (a server at a
//! users level, CPU per request at the equal rate, …), never labels.

pub mod charts;
pub mod claims;
mod hybrid;
pub mod markdown;
mod sections;

use std::path::{Path, PathBuf};

use super::cell::{Cell, Event, Server};
use super::{Matrix, RunRecord};
use crate::loadtests::Policy;
use crate::report::env::Environment;

/// Writes the report and charts; returns the report's path.
pub fn write(
    record: &RunRecord,
    env: &Environment,
    results: &Path,
    run_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let charts_dir = run_dir.join("charts");
    std::fs::create_dir_all(&charts_dir)?;
    let caption = env.one_line();
    let drawn = charts::draw(Cells(&record.cells), &charts_dir, &caption)
        .map_err(|e| anyhow::anyhow!("drawing charts: {e}"))?;
    for name in &drawn {
        crate::report::charts::stamp(
            &charts_dir.join(name),
            &format!("{caption} | crates: {}", env.crates_line()),
        )?;
    }
    // A run against external servers reports beside its raw data, so it
    // never replaces the reference servers' report.
    let (path, rel) = if record.external.is_empty() {
        let rel = run_dir
            .strip_prefix(results)
            .unwrap_or(run_dir)
            .to_path_buf();
        (results.join("REPORT.md"), rel)
    } else {
        (run_dir.join("REPORT.md"), PathBuf::from("."))
    };
    // The micro-benchmarks' figures, for the plan's memory per session.
    let micro = std::fs::read(results.join("micro").join("figures.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let md = markdown::report(record, env, &rel, &drawn, micro.as_ref());
    std::fs::write(&path, md)?;
    Ok(path)
}

/// The cells of one run, and the questions the report asks of them.
#[derive(Clone, Copy)]
pub struct Cells<'a>(pub &'a [Cell]);

impl<'a> Cells<'a> {
    /// The cells of one matrix, in run order.
    pub fn of(self, matrix: Matrix) -> impl Iterator<Item = &'a Cell> + 'a {
        self.0.iter().filter(move |c| c.matrix == matrix)
    }

    /// The closed-loop concurrency cells of `server`, by users.
    pub fn closed_loop(self, server: Server) -> impl Iterator<Item = &'a Cell> + 'a {
        self.of(Matrix::Concurrency)
            .filter(move |c| c.server == server && c.offered_rps.is_none())
    }

    /// The closed-loop concurrency cell of `server` at `users`.
    pub fn at_users(self, server: Server, users: usize) -> Option<&'a Cell> {
        self.closed_loop(server).find(|c| c.users == users)
    }

    /// The users level used for latency comparisons: the highest level
    /// run, at most 16 (the generator is not yet the bottleneck there on
    /// 2 cores).
    pub fn level(self) -> usize {
        let mut levels: Vec<usize> = self
            .of(Matrix::Concurrency)
            .filter(|c| c.offered_rps.is_none())
            .map(|c| c.users)
            .collect();
        levels.sort_unstable();
        levels.dedup();
        levels.into_iter().filter(|&u| u <= 16).max().unwrap_or(1)
    }

    /// The equal-rate cells of one server (one per repeat).
    pub fn equal_rate(self, server: Server) -> impl Iterator<Item = &'a Cell> + 'a {
        self.of(Matrix::Concurrency)
            .filter(move |c| c.server == server && c.id.contains("/equal-rate"))
    }

    /// Server CPU per request at the equal offered rate (the median of the
    /// repeats), else at the comparison users level.
    pub fn cpu(self, server: Server) -> Option<f64> {
        let repeats: Vec<f64> = self
            .equal_rate(server)
            .filter_map(|c| c.server_cpu_us_per_request)
            .collect();
        if repeats.is_empty() {
            return self
                .at_users(server, self.level())?
                .server_cpu_us_per_request;
        }
        Some(crate::stats::median(&repeats))
    }

    /// Redis's own CPU per request at the equal rate (median of repeats).
    pub fn store_cpu(self, server: Server) -> Option<f64> {
        let store: Vec<f64> = self
            .equal_rate(server)
            .filter_map(|c| c.store_cpu_us_per_request)
            .collect();
        (!store.is_empty()).then(|| crate::stats::median(&store))
    }

    /// Credential and body bytes per request of `server` with a cart of
    /// `items`.
    pub fn bytes(self, server: Server, items: usize) -> Option<f64> {
        self.of(Matrix::StateSize)
            .find(|c| c.server == server && c.cart_items == Some(items))
            .and_then(|c| c.bytes_per_request)
    }

    /// The highest session-miss rate of `server` over several replicas
    /// (under `policy`, or any).
    pub fn worst_miss(self, server: Server, policy: Option<Policy>) -> Option<f64> {
        self.of(Matrix::Horizontal)
            .filter(|c| c.replicas > 1 && c.server == server)
            .filter(|c| policy.is_none_or(|p| c.policy == Some(p)))
            .map(|c| c.miss_rate)
            .fold(None, |a: Option<f64>, m| Some(a.map_or(m, |a| a.max(m))))
    }

    /// The failure cell of `server` under `policy` for `event`.
    pub fn failure(self, server: Server, policy: Policy, event: Event) -> Option<&'a Cell> {
        self.of(Matrix::Failures)
            .find(|c| c.server == server && c.policy == Some(policy) && c.event == Some(event))
    }

    /// The capacity cell of `server` under `policy` on `n` replicas.
    pub fn capacity(self, server: Server, policy: Policy, n: usize) -> Option<&'a Cell> {
        self.of(Matrix::Capacity)
            .find(|c| c.server == server && c.policy == Some(policy) && c.replicas == n)
    }

    /// Each (server, policy) of the capacity matrix once, in order.
    pub fn capacity_cases(self) -> Vec<(Server, Policy)> {
        let mut out = Vec::new();
        for c in self.of(Matrix::Capacity) {
            if let Some(p) = c.policy
                && !out.contains(&(c.server, p))
            {
                out.push((c.server, p));
            }
        }
        out
    }

    /// The autoscaling cell of `server`.
    pub fn autoscaled(self, server: Server) -> Option<&'a Cell> {
        self.of(Matrix::Autoscale).find(|c| c.server == server)
    }

    /// Sessions lost when one replica of `server` under `policy` was killed.
    pub fn lost_on_kill(self, server: Server, policy: Policy) -> Option<u64> {
        self.failure(server, policy, Event::Kill)
            .map(|c| c.sessions_lost)
    }

    /// The chat delivery ratio over two replicas, with or without the
    /// backplane.
    pub fn delivery(self, backplane: bool) -> Option<f64> {
        self.of(Matrix::Websocket)
            .find(|c| c.backplane == Some(backplane))
            .and_then(|c| c.delivery_ratio)
    }

    /// Each server once, in order of first appearance in `matrix`.
    pub fn servers(self, matrix: Matrix) -> Vec<Server> {
        let mut out: Vec<Server> = Vec::new();
        for c in self.of(matrix) {
            if !out.contains(&c.server) {
                out.push(c.server);
            }
        }
        out
    }
}

/// A share as a percentage with one decimal.
pub fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}
