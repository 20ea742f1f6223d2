//! What a load run measured, per named request, in a form that can be saved,
//! loaded and merged exactly.
//!
//! Latency is kept as goose's microsecond histogram (bucket → count), so
//! merging runs from several load machines adds bucket counts: the merged
//! percentiles are exactly those of one run holding the union of samples.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One named request's results.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestStats {
    pub successes: u64,
    pub failures: u64,
    pub status_codes: BTreeMap<u16, u64>,
    /// Response time buckets in microseconds (bucket's time → count).
    pub histogram_us: BTreeMap<u64, u64>,
    pub min_us: u64,
    pub max_us: u64,
    pub total_us: u64,
}

impl RequestStats {
    pub fn count(&self) -> u64 {
        self.histogram_us.values().sum()
    }

    /// The `q`-quantile (0..=1) in microseconds, from the histogram.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (&t, &c) in &self.histogram_us {
            seen += c;
            if seen >= rank {
                return Some(t);
            }
        }
        self.histogram_us.keys().next_back().copied()
    }

    /// Adds one sample taken outside goose (a setup request).
    pub fn record(&mut self, us: u64, ok: bool, status: Option<u16>) {
        let empty = self.count() == 0;
        if ok {
            self.successes += 1;
        } else {
            self.failures += 1;
        }
        if let Some(code) = status {
            *self.status_codes.entry(code).or_default() += 1;
        }
        *self.histogram_us.entry(us).or_default() += 1;
        self.min_us = if empty { us } else { self.min_us.min(us) };
        self.max_us = self.max_us.max(us);
        self.total_us += us;
    }

    pub fn merge(&mut self, other: &RequestStats) {
        let empty = self.count() == 0;
        self.successes += other.successes;
        self.failures += other.failures;
        for (code, n) in &other.status_codes {
            *self.status_codes.entry(*code).or_default() += n;
        }
        for (t, n) in &other.histogram_us {
            *self.histogram_us.entry(*t).or_default() += n;
        }
        self.min_us = if empty {
            other.min_us
        } else {
            self.min_us.min(other.min_us)
        };
        self.max_us = self.max_us.max(other.max_us);
        self.total_us += other.total_us;
    }
}

/// A whole load run (or several merged).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadResult {
    pub scenario: String,
    pub target: String,
    pub users: usize,
    /// Measured seconds (after ramp-up); merged runs keep the longest.
    pub duration_secs: f64,
    /// Keyed by `METHOD name`, e.g. `GET profile`.
    pub requests: BTreeMap<String, RequestStats>,
    /// What each user did once before its loop (`POST login`, `WS
    /// connect`), timed by statebench: goose drops these when it resets
    /// its metrics after the ramp. Same keys and histograms as `requests`.
    #[serde(default)]
    pub setup: BTreeMap<String, RequestStats>,
    /// How many runs were merged into this one.
    pub runs: usize,
    /// Users that logged in again because their session was gone.
    #[serde(default)]
    pub sessions_lost: u64,
    /// Seconds from the first request sent to the last answer: the time
    /// the load ran, without goose's start and stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_secs: Option<f64>,
    /// Failed attempts the embedded balancer sent again to another
    /// replica (counted among the failures; the user never saw them).
    #[serde(default)]
    pub retried: u64,
    /// Requests the embedded balancer sent to each replica.
    #[serde(default)]
    pub routed: Vec<u64>,
    /// Credential and body bytes sent, and the requests that sent them.
    #[serde(default)]
    pub request_bytes: u64,
    #[serde(default)]
    pub requests_sent: u64,
    /// Chat messages that should have reached a member, and that did.
    #[serde(default)]
    pub chat_expected: u64,
    #[serde(default)]
    pub chat_delivered: u64,
    /// Paced sends (fixed-rate runs), and those that went more than
    /// `pacer::LATE` after their send time: the generator's own delay.
    #[serde(default)]
    pub paced_sends: u64,
    #[serde(default)]
    pub late_sends: u64,
    /// goose `--threshold` rules that failed (rule: observed).
    #[serde(default)]
    pub threshold_failures: Vec<String>,
    /// Failed requests by kind: an HTTP status (`403`), or for a request
    /// that got none `connect`, `reset`, `timeout`, `body`, `other`, or a
    /// WebSocket outcome (`ws close 1011`, `ws closed`, `ws error`). The
    /// counts add up to the failures.
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// Which commit, toolchain and machine produced it (one line per
    /// machine once merged).
    #[serde(default)]
    pub provenance: Vec<String>,
    /// Per-second figures, when the run kept them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<super::timeline::Second>,
}

impl LoadResult {
    pub fn from_goose(config: &super::LoadConfig, metrics: &goose::metrics::GooseMetrics) -> Self {
        let mut requests = BTreeMap::new();
        for (key, agg) in &metrics.requests {
            let raw = &agg.raw_data;
            let stats = RequestStats {
                successes: agg.success_count as u64,
                failures: agg.fail_count as u64,
                status_codes: agg
                    .status_code_counts
                    .iter()
                    .map(|(c, n)| (*c, *n as u64))
                    .collect(),
                histogram_us: raw.times_us.iter().map(|(t, n)| (*t, *n as u64)).collect(),
                min_us: raw.minimum_time_us,
                max_us: raw.maximum_time_us,
                total_us: raw.total_time_us,
            };
            requests.insert(key.clone(), stats);
        }
        // HTTP statuses that failed; failures without a status are counted
        // by kind as they happen (`Shared::errors`).
        let mut errors = BTreeMap::new();
        for (key, stats) in &requests {
            if key.starts_with("WS ") {
                continue;
            }
            for (&code, &n) in &stats.status_codes {
                if code >= 400 {
                    *errors.entry(code.to_string()).or_default() += n;
                }
            }
        }
        Self {
            scenario: config.scenario.name().to_owned(),
            target: config.target.clone(),
            errors,
            users: config.peak_users(),
            duration_secs: metrics.duration as f64,
            requests,
            runs: 1,
            ..Self::default()
        }
    }

    /// The share of paced sends that went late, for a paced run.
    pub fn late_share(&self) -> Option<f64> {
        (self.paced_sends > 0).then(|| self.late_sends as f64 / self.paced_sends as f64)
    }

    /// Adds another run's samples (e.g. from a second load machine).
    pub fn merge(&mut self, other: &LoadResult) {
        if self.runs == 0 {
            self.scenario.clone_from(&other.scenario);
            self.target.clone_from(&other.target);
        }
        self.users += other.users;
        self.duration_secs = self.duration_secs.max(other.duration_secs);
        for (k, v) in &other.requests {
            self.requests.entry(k.clone()).or_default().merge(v);
        }
        for (k, v) in &other.setup {
            self.setup.entry(k.clone()).or_default().merge(v);
        }
        self.runs += other.runs;
        self.sessions_lost += other.sessions_lost;
        self.retried += other.retried;
        self.active_secs = match (self.active_secs, other.active_secs) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if self.routed.len() < other.routed.len() {
            self.routed.resize(other.routed.len(), 0);
        }
        for (a, b) in self.routed.iter_mut().zip(&other.routed) {
            *a += b;
        }
        self.request_bytes += other.request_bytes;
        self.requests_sent += other.requests_sent;
        self.chat_expected += other.chat_expected;
        self.chat_delivered += other.chat_delivered;
        self.paced_sends += other.paced_sends;
        self.late_sends += other.late_sends;
        self.threshold_failures
            .extend(other.threshold_failures.iter().cloned());
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
        for p in &other.provenance {
            if !self.provenance.contains(p) {
                self.provenance.push(p.clone());
            }
        }
    }

    /// `name`'s stats, if that request was made.
    pub fn get(&self, name: &str) -> Option<&RequestStats> {
        self.requests.get(name)
    }

    /// Share of `GET profile` requests answered 403 (a session not found
    /// where the request landed).
    pub fn miss_rate(&self, name: &str) -> f64 {
        self.get(name).map_or(0.0, |r| {
            let misses = r.status_codes.get(&403).copied().unwrap_or(0);
            misses as f64 / r.count().max(1) as f64
        })
    }

    /// Chat messages delivered / messages that should have been.
    pub fn delivery_ratio(&self) -> Option<f64> {
        (self.chat_expected > 0).then(|| self.chat_delivered as f64 / self.chat_expected as f64)
    }

    /// Responses that carried an HTTP status (goose counts connection
    /// errors too; a server can only count these).
    pub fn answered(&self) -> u64 {
        self.requests
            .iter()
            .filter(|(k, _)| !k.starts_with("WS "))
            .flat_map(|(_, r)| r.status_codes.iter())
            .filter(|(c, _)| **c != 0)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn total_requests(&self) -> u64 {
        self.requests.values().map(RequestStats::count).sum()
    }

    pub fn total_failures(&self) -> u64 {
        self.requests.values().map(|r| r.failures).sum()
    }

    /// A plain-text table: requests, failures, rate and percentiles.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} against {} — {} users, {:.0} s, {} runs\n{:<18} {:>9} {:>7} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9}\n",
            self.scenario,
            self.target,
            self.users,
            self.duration_secs,
            self.runs,
            "request",
            "count",
            "fail",
            "req/s",
            "p50 µs",
            "p90 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs"
        );
        for (name, r) in &self.requests {
            out.push_str(&row(name, r, Some(self.duration_secs)));
        }
        if !self.setup.is_empty() {
            out.push_str(
                "setup (logins and connects before each user's loop, not in the rows above):\n",
            );
            for (name, r) in &self.setup {
                out.push_str(&row(name, r, None));
            }
        }
        if !self.errors.is_empty() {
            let kinds: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{n}× {k}"))
                .collect();
            out.push_str(&format!("errors: {}\n", kinds.join(", ")));
        }
        out
    }

    /// Failed requests counted by kind (equal to the failures when every
    /// failure was classified).
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// One line of [`LoadResult::table`]; a rate only over a measured time.
fn row(name: &str, r: &RequestStats, secs: Option<f64>) -> String {
    let q = |x| r.quantile_us(x).map_or("-".into(), |v| v.to_string());
    let rate = secs.map_or("-".into(), |s| {
        format!("{:.0}", r.count() as f64 / s.max(1.0))
    });
    format!(
        "{:<18} {:>9} {:>7} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9}\n",
        name,
        r.count(),
        r.failures,
        rate,
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        r.max_us
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(samples: &[u64]) -> RequestStats {
        let mut r = RequestStats {
            min_us: u64::MAX,
            ..Default::default()
        };
        for &s in samples {
            *r.histogram_us.entry(s).or_default() += 1;
            r.successes += 1;
            r.min_us = r.min_us.min(s);
            r.max_us = r.max_us.max(s);
            r.total_us += s;
        }
        r
    }

    #[test]
    fn merge_equals_one_run_with_the_union_of_samples() {
        let a: Vec<u64> = (0..1000).map(|i| 50 + (i * 7919) % 900).collect();
        let b: Vec<u64> = (0..700).map(|i| 20 + (i * 104_729) % 5000).collect();
        let mut merged = stats(&a);
        merged.merge(&stats(&b));
        let union: Vec<u64> = a.iter().chain(&b).copied().collect();
        let whole = stats(&union);
        assert_eq!(merged, whole);
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(merged.quantile_us(q), whole.quantile_us(q));
        }
    }

    #[test]
    fn recorded_samples_equal_a_histogram_of_them() {
        let samples = [300, 120, 120, 4_000];
        let mut recorded = RequestStats::default();
        for s in samples {
            recorded.record(s, true, None);
        }
        assert_eq!(recorded, stats(&samples));
    }

    #[test]
    fn setup_merges_like_the_measured_requests() {
        let one = |us: &[u64]| LoadResult {
            setup: [("POST login".to_string(), stats(us))].into(),
            runs: 1,
            ..LoadResult::default()
        };
        let mut merged = one(&[100, 200]);
        merged.merge(&one(&[300]));
        assert_eq!(merged.setup["POST login"], stats(&[100, 200, 300]));
        assert!(merged.table().contains("setup (logins and connects"));
    }

    #[test]
    fn quantiles_follow_the_nearest_rank() {
        let r = stats(&[10, 20, 30, 40]);
        assert_eq!(r.quantile_us(0.5), Some(20));
        assert_eq!(r.quantile_us(0.75), Some(30));
        assert_eq!(r.quantile_us(1.0), Some(40));
        assert_eq!(RequestStats::default().quantile_us(0.5), None);
    }
}
