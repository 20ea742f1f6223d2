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
//! A run may instead pace each user on its own ([`Pacer::per_user`]):
//! every user sends as a Poisson process at the same mean rate, so the
//! offered load follows the number of users running, as a goose test plan
//! ramps it up and down. A user whose answers take longer than its gaps
//! sends less, as a real client waiting for a page does.
//!
//! The schedule never runs in the past: when every user was busy (the
//! servers fell behind), the next request goes at once and the gaps start
//! again from now, so a stall is not followed by a burst that makes up
//! for it. The offered rate is then lower than asked, which the achieved
//! rate shows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Send times for one run: one schedule shared by every user, or one per
/// user.
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    /// The mean gap between two requests of one schedule, in nanoseconds.
    mean_gap_ns: f64,
    /// The next free send time of each schedule, nanoseconds after `start`.
    next_ns: Vec<AtomicU64>,
    /// Sends made, and those made more than [`LATE`] after their time.
    sent: AtomicU64,
    late: AtomicU64,
}

/// A send this long after its time was held back by the generator
/// itself: its timer fired, but its core was busy elsewhere. The schedule
/// never runs in the past, so servers that fall behind make sends fewer,
/// not late; a late send is the generator's own delay, a tenth of the
/// capacity matrix's default SLO.
pub const LATE: Duration = Duration::from_millis(1);

/// A fixed-rate run whose generator sent this share of its requests late
/// ([`LATE`]) fell behind its schedule: its p99 may be the generator's.
pub const LATE_SHARE: f64 = 0.01;

impl Pacer {
    /// Arrivals at `rate` requests per second on average, across all users.
    pub fn new(rate: f64) -> Self {
        Self::lanes(rate, 1)
    }

    /// Each of `users` users (by index) sends at `rate` requests per second
    /// on average.
    pub fn per_user(rate: f64, users: usize) -> Self {
        Self::lanes(rate, users.max(1))
    }

    fn lanes(rate: f64, lanes: usize) -> Self {
        Self {
            start: Instant::now(),
            mean_gap_ns: 1e9 / rate.max(1e-3),
            next_ns: (0..lanes).map(|_| AtomicU64::new(0)).collect(),
            sent: AtomicU64::new(0),
            late: AtomicU64::new(0),
        }
    }

    /// Claims user `user`'s next send time: the later of its schedule and
    /// now, and moves the schedule one exponential gap past it.
    pub fn claim(&self, user: usize) -> Instant {
        let next_ns = &self.next_ns[user % self.next_ns.len()];
        let now = self.start.elapsed().as_nanos() as u64;
        // 1 - U lies in (0, 1]: its logarithm is finite.
        let u: f64 = 1.0 - rand::random::<f64>();
        let gap = (-u.ln() * self.mean_gap_ns) as u64;
        let mut current = next_ns.load(Ordering::Relaxed);
        loop {
            let at = current.max(now);
            match next_ns.compare_exchange_weak(
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

    /// Waits for user `user`'s next send time, and counts the send late
    /// if it went more than [`LATE`] after it.
    pub async fn wait(&self, user: usize) {
        let at = self.claim(user);
        super::wake::at(at).await;
        self.sent.fetch_add(1, Ordering::Relaxed);
        if Instant::now().saturating_duration_since(at) > LATE {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends made so far, and how many of them went late ([`LATE`]).
    pub fn sends(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.late.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_average_the_rate_and_vary_like_a_poisson_process() {
        // Claimed faster than the schedule moves: times follow the schedule.
        let pacer = Pacer::new(1000.0);
        pacer.next_ns[0].store(1 << 50, Ordering::Relaxed); // far ahead of now
        // Every user shares the one schedule.
        let times: Vec<Instant> = (0..20_000).map(|i| pacer.claim(i)).collect();
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
        // 20 ms behind: the next request goes now, not 20 at once. Read
        // against a moment taken before the claim, whatever the scheduler
        // does in between.
        let before = Instant::now();
        let before_ns = pacer.start.elapsed().as_nanos() as u64;
        let first = pacer.claim(0);
        assert!(first >= before, "the request was sent in the past");
        let scheduled = pacer.next_ns[0].load(Ordering::Relaxed);
        assert!(scheduled >= before_ns, "the schedule stayed behind now");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_send_held_back_by_a_busy_generator_counts_late() {
        let pacer = Pacer::new(1000.0);
        // The next send time is 50 ms on.
        let ahead = pacer.start.elapsed().as_nanos() as u64 + 50_000_000;
        pacer.next_ns[0].store(ahead, Ordering::Relaxed);
        // Polled once, the send claims its time and waits for it; then the
        // runtime's one thread is busy for 100 ms, as on a generator out of
        // CPU, and the send goes about 50 ms late.
        let mut send = std::pin::pin!(pacer.wait(0));
        std::future::poll_fn(|cx| {
            assert!(send.as_mut().poll(cx).is_pending(), "its time is ahead");
            std::task::Poll::Ready(())
        })
        .await;
        std::thread::sleep(Duration::from_millis(100));
        send.await;
        assert_eq!(pacer.sends(), (1, 1));
    }

    #[test]
    fn per_user_schedules_are_independent() {
        let pacer = Pacer::per_user(100.0, 4);
        for lane in &pacer.next_ns {
            lane.store(1 << 50, Ordering::Relaxed);
        }
        // 2,000 claims by user 1 move only user 1's schedule, by about
        // 2,000 mean gaps of 10 ms.
        for _ in 0..2_000 {
            pacer.claim(1);
        }
        let moved = |i: usize| pacer.next_ns[i].load(Ordering::Relaxed) - (1 << 50);
        assert_eq!([moved(0), moved(2), moved(3)], [0, 0, 0]);
        let mean_ms = moved(1) as f64 / 2_000.0 / 1e6;
        assert!((mean_ms - 10.0).abs() < 1.0, "mean gap {mean_ms} ms");
        // User 5 shares user 1's schedule (indices wrap).
        pacer.claim(5);
        assert!(moved(1) > 0 && moved(0) == 0);
    }
}
