//! The knobs of one load run, and the goose command line they become.

use std::time::Duration;

use super::{Policy, ScenarioKind};

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Base URL of the server, e.g. `http://127.0.0.1:3000` (with several
    /// replicas: the first; see `replicas`).
    pub target: String,
    /// Every replica's base URL when the embedded balancer spreads load
    /// (empty: everything goes to `target`).
    pub replicas: Vec<String>,
    pub policy: Policy,
    /// Per-connection policy: requests before a user "reconnects".
    pub reconnect_every: u32,
    pub scenario: ScenarioKind,
    pub users: usize,
    /// Users started per second (the ramp).
    pub increase_rate: f64,
    pub run_time: Duration,
    /// Requests per second across all users (`None`: closed loop, no limit).
    pub throttle: Option<usize>,
    /// Coordinated-omission mitigation (`average`, `minimum`, `maximum`).
    pub co_mitigation: Option<String>,
    /// Reset goose's metrics once every user runs. Off keeps the ramp and
    /// the on-start requests (logins, connects) in the figures, so they can
    /// be checked against the servers' own counters.
    pub reset_metrics: bool,
    /// Cart size for the `cart` scenario.
    pub cart_items: usize,
    /// Members per chat room (ws-chat).
    pub room_size: usize,
    /// Pause between one user's chat messages (ws-chat).
    pub chat_interval: Duration,
    /// Absolute limits passed to goose (`--threshold`-style), if any.
    pub extra_goose_args: Vec<String>,
    /// Where goose writes its own report (`.html`, `.json` or `.md`).
    pub report_file: Option<std::path::PathBuf>,
}

impl LoadConfig {
    pub fn new(target: impl Into<String>, scenario: ScenarioKind) -> Self {
        Self {
            target: target.into(),
            replicas: Vec::new(),
            policy: Policy::RoundRobin,
            reconnect_every: 100,
            scenario,
            users: 4,
            increase_rate: 100.0,
            run_time: Duration::from_secs(10),
            throttle: None,
            co_mitigation: None,
            reset_metrics: true,
            cart_items: 10,
            room_size: 4,
            chat_interval: Duration::from_millis(100),
            extra_goose_args: Vec::new(),
            report_file: None,
        }
    }

    pub(crate) fn goose_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--host",
            &self.target,
            "--users",
            &self.users.to_string(),
            "--increase-rate",
            &self.increase_rate.to_string(),
            "--run-time",
            &format!("{}s", self.run_time.as_secs().max(1)),
            "--quiet",
            "--no-print-metrics",
            "--no-error-summary",
            "--no-telnet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(t) = self.throttle {
            args.extend(["--throttle-requests".into(), t.to_string()]);
        }
        if let Some(co) = &self.co_mitigation {
            args.extend(["--co-mitigation".into(), co.clone()]);
        }
        if let Some(f) = &self.report_file {
            args.extend(["--report-file".into(), f.display().to_string()]);
        }
        if !self.reset_metrics {
            args.push("--no-reset-metrics".into());
        }
        args.extend(self.extra_goose_args.iter().cloned());
        args
    }
}
