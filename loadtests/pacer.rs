//! Open-loop arrivals for fixed-rate HTTP runs: every request waits for a
//! send time of its own, drawn so that the run's requests, across all
//! users, arrive as a Poisson process at the asked mean rate (independent
//! exponential gaps), as requests from many independent clients do.
//!
//! goose's own `--throttle-requests` releases a batch of tokens every
//! 10 ms instead. Batches that size line up with CPU quota periods of the
//! same length: two batches in one period throttle a replica where the
//! same mean rate, spread out, would not, so capacities under CPU budgets
//! came out by the beat of two clocks. goose's throttle still paces the
//! WebSocket scenarios, whose messages do not go through [`super::send`].
//!
//! The schedule never runs in the past: when every user was busy (the
//! servers fell behind), the next request goes at once and the gaps start
//! again from now, so a stall is not followed by a burst that makes up
//! for it. The offered rate is then lower than asked, which the achieved
//! rate shows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Send times for one run, shared by every user.
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    /// The mean gap between two requests, in nanoseconds.
    mean_gap_ns: f64,
    /// The next free send time, nanoseconds after `start`.
    next_ns: AtomicU64,
}

impl Pacer {
    /// Arrivals at `rate` requests per second on average.
    pub fn new(rate: f64) -> Self {
        Self {
            start: Instant::now(),
            mean_gap_ns: 1e9 / rate.max(1e-3),
            next_ns: AtomicU64::new(0),
        }
    }

    /// Claims the next send time: the later of the schedule and now, and
    /// moves the schedule one exponential gap past it.
    pub fn claim(&self) -> Instant {
        let now = self.start.elapsed().as_nanos() as u64;
        // 1 - U lies in (0, 1]: its logarithm is finite.
        let u: f64 = 1.0 - rand::random::<f64>();
        let gap = (-u.ln() * self.mean_gap_ns) as u64;
        let mut current = self.next_ns.load(Ordering::Relaxed);
        loop {
            let at = current.max(now);
            match self.next_ns.compare_exchange_weak(
                current,
                at + gap,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return self.start + Duration::from_nanos(at),
                Err(seen) => current = seen,
            }
        }
    }

    /// Waits for this request's send time.
    pub async fn wait(&self) {
        let at = self.claim();
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_average_the_rate_and_vary_like_a_poisson_process() {
        // Claimed faster than the schedule moves: times follow the schedule.
        let pacer = Pacer::new(1000.0);
        pacer.next_ns.store(1 << 50, Ordering::Relaxed); // far ahead of now
        let times: Vec<Instant> = (0..20_000).map(|_| pacer.claim()).collect();
        let gaps: Vec<f64> = times
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        // Mean 1 ms; an exponential's standard deviation equals its mean.
        assert!((mean - 1.0).abs() < 0.05, "mean gap {mean} ms");
        assert!((var.sqrt() - 1.0).abs() < 0.1, "sd {} ms", var.sqrt());
    }

    #[test]
    fn a_schedule_behind_now_does_not_burst() {
        let pacer = Pacer::new(1000.0);
        std::thread::sleep(Duration::from_millis(20));
        // 20 ms behind: the next request goes now, not 20 at once.
        let first = pacer.claim();
        assert!(first + Duration::from_millis(1) >= Instant::now());
        let scheduled = pacer.next_ns.load(Ordering::Relaxed);
        assert!(scheduled >= pacer.start.elapsed().as_nanos() as u64 - 1_000_000);
    }
}
