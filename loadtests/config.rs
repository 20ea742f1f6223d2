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
    /// How many times the embedded balancer sends a request again, to
    /// another replica, after a failure the server cannot have acted on:
    /// a refused connection (any request), or a reset or empty answer (a
    /// `GET` only). 0: every failure reaches the user.
    pub retries: u32,
    pub scenario: ScenarioKind,
    pub users: usize,
    /// Users started per second (the ramp).
    pub increase_rate: f64,
    pub run_time: Duration,
    /// Requests per second across all users (`None`: closed loop, no limit).
    /// HTTP scenarios arrive as a Poisson process at this mean rate
    /// ([`super::pacer`]); WebSocket ones through goose's throttle.
    pub throttle: Option<usize>,
    /// Requests per second of each user (Poisson, [`super::pacer`]), so
    /// the offered load follows the users running (`None`: no pacing per
    /// user). Ignored when `throttle` is set.
    pub user_rate: Option<f64>,
    /// Keep per-second figures ([`super::timeline`]) in the result.
    pub timeline: bool,
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
    /// A goose test plan (`users,time;users,time;…`) in place of `users`,
    /// `increase_rate` and `run_time`.
    pub test_plan: Option<String>,
    /// More goose options, appended as they are (`--threshold` rules, or
    /// anything after `--` on `statebench load`).
    pub extra_goose_args: Vec<String>,
    /// Where goose writes its own reports (`.html`, `.json` or `.md`).
    pub report_files: Vec<std::path::PathBuf>,
}

impl LoadConfig {
    pub fn new(target: impl Into<String>, scenario: ScenarioKind) -> Self {
        Self {
            target: target.into(),
            replicas: Vec::new(),
            policy: Policy::RoundRobin,
            reconnect_every: 100,
            retries: 1,
            scenario,
            users: 4,
            increase_rate: 100.0,
            run_time: Duration::from_secs(10),
            throttle: None,
            user_rate: None,
            timeline: false,
            co_mitigation: None,
            reset_metrics: true,
            cart_items: 10,
            room_size: 4,
            chat_interval: Duration::from_millis(100),
            test_plan: None,
            extra_goose_args: Vec::new(),
            report_files: Vec::new(),
        }
    }

    /// The mean rate the pacer holds HTTP requests to, if any.
    pub fn paced_rate(&self) -> Option<f64> {
        self.throttle
            .filter(|&t| t > 0 && !self.scenario.is_websocket())
            .map(|t| t as f64)
    }

    /// Each user's mean rate when users are paced one by one (HTTP
    /// scenarios; a fixed rate, `throttle`, takes precedence where the
    /// pacer is made).
    pub fn user_rate(&self) -> Option<f64> {
        self.user_rate
            .filter(|&r| r > 0.0 && r.is_finite() && !self.scenario.is_websocket())
    }

    fn plan_steps(&self) -> Option<Vec<(usize, Duration)>> {
        plan_steps(self.test_plan.as_deref()?).ok()
    }

    /// The most users running at once.
    pub fn peak_users(&self) -> usize {
        match self.plan_steps() {
            Some(steps) => steps.iter().map(|s| s.0).max().unwrap_or(0).max(1),
            None => self.users,
        }
    }

    /// How long the run is planned to take, ramp included.
    pub fn planned(&self) -> Duration {
        match self.plan_steps() {
            Some(steps) => steps.iter().map(|s| s.1).sum(),
            None => {
                Duration::from_secs_f64(self.users as f64 / self.increase_rate.max(0.01))
                    + self.run_time
            }
        }
    }

    pub(crate) fn goose_args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec!["--host".into(), self.target.clone()];
        match &self.test_plan {
            Some(plan) => args.extend(["--test-plan".into(), plan.clone()]),
            None => args.extend([
                "--users".into(),
                self.users.to_string(),
                "--increase-rate".into(),
                self.increase_rate.to_string(),
                "--run-time".into(),
                format!("{}s", self.run_time.as_secs().max(1)),
            ]),
        }
        args.extend(
            [
                "--quiet",
                "--no-print-metrics",
                "--no-error-summary",
                "--no-telnet",
            ]
            .map(String::from),
        );
        if let Some(t) = self.throttle.filter(|_| self.scenario.is_websocket()) {
            args.extend(["--throttle-requests".into(), t.to_string()]);
        }
        if let Some(co) = &self.co_mitigation {
            args.extend(["--co-mitigation".into(), co.clone()]);
        }
        for f in &self.report_files {
            args.extend(["--report-file".into(), f.display().to_string()]);
        }
        // A test plan never resets goose's metrics (and refuses the flag).
        if !self.reset_metrics && self.test_plan.is_none() {
            args.push("--no-reset-metrics".into());
        }
        args.extend(self.extra_goose_args.iter().cloned());
        args
    }
}

/// A server's base URL as a run is pointed at it: http(s), without a
/// trailing slash.
pub fn base_url(url: &str) -> Result<String, String> {
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(format!("{url:?} is not an http:// URL"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// A goose test plan's steps (users, time), read as goose reads them:
/// `users,time` steps separated by `;`, each time a goose time span (an
/// empty one is 0). At least one step must start a user.
pub fn plan_steps(plan: &str) -> Result<Vec<(usize, Duration)>, String> {
    let mut steps = Vec::new();
    for step in plan.split(';') {
        let (users, time) = step
            .split_once(',')
            .ok_or_else(|| format!("step {step:?} is not users,time"))?;
        let users: usize = users
            .trim()
            .parse()
            .map_err(|_| format!("step {step:?}: {users:?} is not a number of users"))?;
        let time = time.trim();
        let secs = if time.is_empty() {
            0
        } else {
            goose::util::parse_timespan(time)
                .ok_or_else(|| format!("step {step:?}: {time:?} is not a time span"))?
        };
        steps.push((users, Duration::from_secs(secs as u64)));
    }
    if steps.iter().all(|s| s.0 == 0) {
        return Err("no step starts a user".into());
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_plans_read_as_goose_reads_them() {
        let steps = plan_steps("10,30s; 10 ,1m;0,").unwrap();
        assert_eq!(
            steps,
            [
                (10, Duration::from_secs(30)),
                (10, Duration::from_secs(60)),
                (0, Duration::ZERO)
            ]
        );
        for bad in ["5", "x,1s", "5,1x", "0,1s", "5,1s;"] {
            assert!(plan_steps(bad).is_err(), "{bad}");
            assert_eq!(
                bad.parse::<goose::test_plan::TestPlan>().is_err(),
                plan_steps(bad).is_err(),
                "goose agrees on {bad:?}"
            );
        }
        for good in ["10,30s;10,1m;0,10s", "1,1h2m3s"] {
            let goose: goose::test_plan::TestPlan = good.parse().unwrap();
            let ours = plan_steps(good).unwrap();
            let ms: Vec<(usize, usize)> = ours
                .iter()
                .map(|(u, t)| (*u, t.as_millis() as usize))
                .collect();
            assert_eq!(goose.steps, ms, "{good}");
        }
    }
}
