//! Per-second figures of one run: for each second on the run's clock
//! ([`super::Shared::now_us`]), the requests answered, the requests that
//! failed, and the latency quantiles. goose's own histograms cover a whole
//! run; a run whose load changes (a test plan's ramp, replicas coming and
//! going) needs to be seen second by second.
//!
//! One HDR histogram per second, made when the run starts, so recording
//! allocates nothing; each sits behind its own mutex, held for one
//! increment. A request is filed under the second its answer came.

use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The highest latency recorded as itself (60 s, in µs); slower answers
/// are clamped to it.
const MAX_US: u64 = 60_000_000;

/// One second of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the run's epoch (this second is `[t, t + 1)`).
    pub t: u32,
    /// Requests answered without a server error.
    pub answered: u64,
    /// Requests that failed: no answer, or a 5xx.
    pub failed: u64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

struct Bucket {
    latency: Histogram<u32>,
    failed: u64,
}

/// The per-second record of one run.
pub struct Timeline {
    seconds: Vec<Mutex<Bucket>>,
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeline")
            .field("seconds", &self.seconds.len())
            .finish()
    }
}

impl Timeline {
    /// Room for `secs` seconds; later answers go into the last one.
    pub fn new(secs: usize) -> Self {
        let seconds = (0..secs.max(1))
            .map(|_| {
                Mutex::new(Bucket {
                    latency: Histogram::new_with_bounds(1, MAX_US, 2)
                        .expect("valid histogram bounds"),
                    failed: 0,
                })
            })
            .collect();
        Self { seconds }
    }

    /// A request whose outcome came at `at_us` on the run's clock, after
    /// `latency_us`; `ok` when it was answered without a server error.
    pub fn record(&self, at_us: u64, latency_us: u64, ok: bool) {
        let i = ((at_us / 1_000_000) as usize).min(self.seconds.len() - 1);
        let mut bucket = self.seconds[i].lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            bucket
                .latency
                .saturating_record(latency_us.clamp(1, MAX_US));
        } else {
            bucket.failed += 1;
        }
    }

    /// Every second up to the last one with a request.
    pub fn seconds(&self) -> Vec<Second> {
        let mut out: Vec<Second> = self
            .seconds
            .iter()
            .enumerate()
            .map(|(t, b)| {
                let b = b.lock().unwrap_or_else(|p| p.into_inner());
                let answered = b.latency.len();
                let q = |q: f64| (answered > 0).then(|| b.latency.value_at_quantile(q));
                Second {
                    t: t as u32,
                    answered,
                    failed: b.failed,
                    p50_us: q(0.5),
                    p99_us: q(0.99),
                }
            })
            .collect();
        while out.last().is_some_and(|s| s.answered + s.failed == 0) {
            out.pop();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_land_in_the_second_their_answer_came() {
        let t = Timeline::new(3);
        for i in 0..100 {
            t.record(500_000, 1_000 + i, true);
        }
        t.record(1_200_000, 50_000, true);
        t.record(1_900_000, 0, false);
        // Past the end: kept in the last second, not lost.
        t.record(9_000_000, 7_000, true);
        let s = t.seconds();
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].answered, s[0].failed), (100, 0));
        let p99 = s[0].p99_us.unwrap();
        assert!((1_090..=1_110).contains(&p99), "p99 {p99}");
        assert_eq!((s[1].answered, s[1].failed), (1, 1));
        assert!(s[1].p50_us.unwrap().abs_diff(50_000) <= 500);
        assert_eq!(s[2].answered, 1);
    }

    #[test]
    fn quiet_seconds_at_the_end_are_left_out() {
        let t = Timeline::new(10);
        t.record(0, 10, true);
        t.record(2_100_000, 10, false);
        let s = t.seconds();
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].answered + s[1].failed, 0);
        assert_eq!(s[1].p99_us, None);
    }
}
