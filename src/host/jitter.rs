//! How late the machine wakes a sleeping thread: the floor under every
//! latency a run measures. A thread pinned to one core sleeps 1 ms again
//! and again and records how much longer than asked each sleep took.
//! On an idle machine of its own this is tens of microseconds; on a
//! shared virtual machine whose virtual CPUs the host deschedules, it
//! reaches milliseconds, and a p99 near that is the machine's, not the
//! server's.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::affinity;

/// The sleep each probe asks for.
const SLEEP: Duration = Duration::from_millis(1);

/// How late wake-ups came on one core.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Jitter {
    pub core: usize,
    /// Sleeps measured.
    pub samples: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// Wake-ups over 1 ms late, per second of probing.
    pub late_per_sec: f64,
}

/// Probes each core in `cores` for `each`, one after the other, from a
/// thread pinned to it; cores that cannot be pinned to are left out.
pub fn measure(cores: &[usize], each: Duration) -> Vec<Jitter> {
    cores
        .iter()
        .filter_map(|&core| {
            std::thread::spawn(move || probe(core, each))
                .join()
                .ok()
                .flatten()
        })
        .collect()
}

fn probe(core: usize, each: Duration) -> Option<Jitter> {
    // This thread only: pin_self would move the whole process.
    affinity::pin_thread(&[core]).ok()?;
    let mut late = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).ok()?;
    let start = Instant::now();
    while start.elapsed() < each {
        let t = Instant::now();
        std::thread::sleep(SLEEP);
        let over = t.elapsed().saturating_sub(SLEEP).as_micros() as u64;
        late.saturating_record(over.max(1));
    }
    let secs = start.elapsed().as_secs_f64();
    let over_1ms = late.count_between(1_001, late.max());
    Some(Jitter {
        core,
        samples: late.len(),
        p99_us: late.value_at_quantile(0.99),
        p999_us: late.value_at_quantile(0.999),
        max_us: late.max(),
        late_per_sec: over_1ms as f64 / secs,
    })
}

/// The core whose wake-ups came latest (by p99.9), if any was probed.
pub fn worst(found: &[Jitter]) -> Option<&Jitter> {
    found.iter().max_by_key(|j| j.p999_us)
}

impl Jitter {
    /// Whether this core's own delays (p99.9) reach half of `slo`: p99
    /// figures near that SLO then carry the machine's delays.
    pub fn reaches_half_of(&self, slo: Duration) -> bool {
        u128::from(self.p999_us) * 2 >= slo.as_micros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allowed_core_is_probed_and_its_figures_are_ordered() {
        let cores = affinity::allowed();
        let found = measure(&cores, Duration::from_millis(100));
        assert_eq!(
            found.iter().map(|j| j.core).collect::<Vec<_>>(),
            cores,
            "one probe per allowed core"
        );
        for j in &found {
            // 100 ms of 1 ms sleeps: dozens of samples, however late.
            assert!(j.samples >= 10, "{j:?}");
            assert!(j.p99_us <= j.p999_us && j.p999_us <= j.max_us, "{j:?}");
            assert!(j.late_per_sec >= 0.0);
        }
    }

    #[test]
    fn the_worst_core_decides_whether_the_slo_is_in_reach_of_the_machine() {
        let core = |core, p999_us| Jitter {
            core,
            samples: 1000,
            p99_us: 100,
            p999_us,
            max_us: p999_us,
            late_per_sec: 0.0,
        };
        let found = [core(0, 1_200), core(1, 5_000)];
        let w = worst(&found).expect("two cores");
        assert_eq!(w.core, 1);
        assert!(w.reaches_half_of(Duration::from_millis(10)));
        assert!(!found[0].reaches_half_of(Duration::from_millis(10)));
        assert!(worst(&[]).is_none());
    }
}
