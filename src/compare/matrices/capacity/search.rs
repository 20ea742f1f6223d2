//! Where a capacity search goes next: the bisection between the rates
//! that met the SLO and missed it ([`Bisection`]), and whether the load
//! generator may have decided the result ([`decided_by_generator`]).

use super::super::super::cell::Step;

/// Whether the load generator may have decided a capacity found at
/// `capacity` (its offered rate). The closed-loop probe may run the
/// generator flat out; that only sets where the search starts. The step
/// that decided the capacity may not: the lowest rate above it that missed
/// the SLO (a step that met it was not generator-bound). A miss at a
/// higher rate decided nothing once a lower one had missed without the
/// generator running out. Of misses at one rate, the last decided: each
/// before it was set aside ([`super::verdict::decides`]) and its rate tried
/// again.
pub(super) fn decided_by_generator(steps: &[Step], capacity: Option<f64>) -> bool {
    steps
        .iter()
        .rev()
        .filter(|s| s.offered_rps.is_some() && !s.met_slo && s.offered_rps > capacity)
        .min_by(|a, b| {
            let rate = |s: &Step| s.offered_rps.unwrap_or(f64::INFINITY);
            rate(a).total_cmp(&rate(b))
        })
        .is_some_and(|s| s.generator_bound)
}

/// The rates a search tries. The first is [`FIRST_SHARE`] of the
/// closed-loop peak. Until one step has met the SLO and another missed it,
/// each step moves away from the last by [`ratio`] (up after a step that
/// met, down after a miss, never past 110% of the peak), which reaches
/// down to a tenth of the peak within the search's steps; once the
/// boundary is bracketed, each step takes the middle of the bracket.
///
/// Under 20 ms quota periods a replica's capacity sat at 20% to 40% of its
/// closed-loop peak (batching: at the peak a replica served its requests
/// for a third of the CPU each). Bisecting from 0 to 110% of the peak
/// spent the first step at 80% on a certain miss and left a bracket of
/// 11% to 20% of the capacity after five steps, as wide as the model's
/// tolerance; bracketing from 30% closes in on a boundary in that range
/// within three steps, and five steps leave 4% of it in the middle of the
/// range and under 9% at its ends. A ratio that grew with each step
/// reached farther, but jumped from 53% to 95% of the peak, where the
/// generator ran out of CPU and the miss made the cell invalid.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bisection {
    /// The highest rate that met the SLO, if any.
    lo: Option<f64>,
    /// The lowest rate that missed it, if any.
    hi: Option<f64>,
    ceiling: f64,
    /// The ratio between steps while the boundary is open ([`ratio`]).
    ratio: f64,
    /// The rate to try next.
    pub(super) next: f64,
}

/// Where the search starts, as a share of the closed-loop peak.
pub const FIRST_SHARE: f64 = 0.3;
/// The least ratio between steps while the boundary is not bracketed.
pub const RATIO: f64 = 4.0 / 3.0;
/// The lowest share of the peak a search that misses at every step must
/// reach by its last step.
pub const FLOOR_SHARE: f64 = 0.1;

/// The ratio between the steps of a search of `steps` fixed-rate steps
/// while the boundary is open: [`RATIO`], or more where the steps would
/// not otherwise reach from [`FIRST_SHARE`] down to [`FLOOR_SHARE`] of the
/// peak. Five steps reach it by 4/3; `--quick`'s three need √3 (on a host
/// whose hypervisor took 10% to 23% of the CPU time, one replica missed
/// the SLO at 17% of its peak, the lowest of the three steps 4/3 gives).
pub fn ratio(steps: usize) -> f64 {
    let moves = steps.saturating_sub(1).max(1) as f64;
    RATIO.max((FIRST_SHARE / FLOOR_SHARE).powf(1.0 / moves))
}

impl Bisection {
    /// A search of `steps` fixed-rate steps below a closed-loop `peak`.
    pub(super) fn new(peak: f64, steps: usize) -> Self {
        Self {
            lo: None,
            hi: None,
            ceiling: peak * 1.1,
            ratio: ratio(steps),
            next: peak * FIRST_SHARE,
        }
    }

    /// Whether the rate just tried (`next`) met the SLO; moves `next`.
    pub(super) fn record(&mut self, met: bool) {
        let tried = self.next;
        if met {
            self.lo = Some(self.lo.map_or(tried, |lo| lo.max(tried)));
        } else {
            self.hi = Some(self.hi.map_or(tried, |hi| hi.min(tried)));
        }
        self.next = match (self.lo, self.hi) {
            (Some(lo), Some(hi)) => (lo + hi) / 2.0,
            (Some(lo), None) => (lo * self.ratio).min(self.ceiling),
            (None, Some(hi)) => hi / self.ratio,
            (None, None) => unreachable!("a step was just recorded"),
        };
    }
}

/// How far one search has come: the steps that decided (the first
/// fixed-rate step and each bisection), and the spare rounds spent on
/// misses set aside ([`super::verdict::decides`]). Every step either
/// decides or spends a spare round, so a search runs at most
/// `rounds + spare` steps.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rounds {
    rounds: usize,
    /// Spare rounds the search has.
    pub(super) spare: usize,
    decided: usize,
    /// Spare rounds spent so far.
    pub(super) set_aside: usize,
}

impl Rounds {
    pub(super) fn new(rounds: usize, spare: usize) -> Self {
        Self {
            rounds,
            spare,
            decided: 0,
            set_aside: 0,
        }
    }

    /// Whether the search has a step left to run.
    pub(super) fn open(&self) -> bool {
        self.decided < self.rounds
    }

    /// Whether the next step decides whatever happens: no spare round is
    /// left to set it aside.
    pub(super) fn last_try(&self) -> bool {
        self.set_aside >= self.spare
    }

    /// Counts a step that decided, or one set aside.
    pub(super) fn record(&mut self, decided: bool) {
        if decided {
            self.decided += 1;
        } else {
            self.set_aside += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BISECT_FULL, BISECT_QUICK};
    use super::*;

    #[test]
    fn the_search_closes_in_on_the_boundary() {
        // Capacities a fifth to two fifths of the peak, where they sat
        // under 20 ms quota periods.
        for capacity in [2000.0, 2600.0, 3100.0, 3500.0, 4000.0] {
            let mut b = Bisection::new(10_000.0, BISECT_FULL + 1);
            let mut tried = Vec::new();
            for _ in 0..=BISECT_FULL {
                tried.push(b.next);
                b.record(b.next <= capacity);
            }
            assert_eq!(tried[0], 3000.0);
            let (lo, hi) = (b.lo.unwrap(), b.hi.unwrap());
            assert!(lo <= capacity && capacity < hi, "{b:?}");
            // Five steps leave a bracket under 9% of the capacity.
            assert!(hi - lo < 0.09 * capacity, "{capacity}: {tried:?}");
            // Every rate lies under 110% of the peak.
            assert!(tried.iter().all(|&r| r > 0.0 && r <= 11_000.0));
        }
    }

    #[test]
    fn a_capacity_far_from_the_start_is_still_bracketed() {
        for capacity in [1000.0, 6180.0, 9000.0] {
            let mut b = Bisection::new(10_000.0, BISECT_FULL + 1);
            for _ in 0..=BISECT_FULL {
                b.record(b.next <= capacity);
            }
            let (lo, hi) = (b.lo.unwrap(), b.hi.unwrap());
            assert!(lo <= capacity && capacity < hi, "{capacity}: {b:?}");
        }
    }

    #[test]
    fn a_server_that_meets_the_slo_everywhere_brings_the_rate_up_to_the_ceiling() {
        let mut b = Bisection::new(1000.0, BISECT_FULL + 1);
        for _ in 0..=BISECT_FULL {
            b.record(true);
        }
        assert_eq!(b.next, 1100.0);
    }

    #[test]
    fn only_the_lowest_miss_above_capacity_decides() {
        let step = |rate: Option<f64>, met: bool, generator_bound: bool| Step {
            offered_rps: rate,
            achieved_rps: rate.unwrap_or(0.0),
            p99_us: None,
            error_rate: 0.0,
            throttled: None,
            busiest_throttled: None,
            steal: None,
            budget_used: None,
            generator_cores: None,
            late_sends: None,
            generator_bound,
            met_slo: met,
            extended: false,
        };
        let mut steps = vec![
            step(None, false, true), // the probe
            step(Some(12_000.0), false, true),
            step(Some(6_000.0), true, false),
            step(Some(9_000.0), false, false),
            step(Some(7_500.0), true, false),
        ];
        // 9,000 missed on its own: the generator-bound 12,000 decided nothing.
        assert!(!decided_by_generator(&steps, Some(7_500.0)));
        // Had 9,000 been generator-bound, the capacity would be in doubt.
        steps[3].generator_bound = true;
        assert!(decided_by_generator(&steps, Some(7_500.0)));
        // No step met the SLO: the lowest miss decides.
        assert!(!decided_by_generator(&steps[..1], None));
        // A miss at 8,000 set aside with the generator out of CPU, then
        // tried again and missed with the generator to spare (as
        // stateless on four replicas did at 12,127 requests/s): the retry
        // decided, and it was the design's.
        steps[3].generator_bound = false;
        steps.push(step(Some(8_000.0), false, true));
        assert!(decided_by_generator(&steps, Some(7_500.0)));
        steps.push(step(Some(8_000.0), false, false));
        assert!(!decided_by_generator(&steps, Some(7_500.0)));
    }

    #[test]
    fn set_aside_steps_spend_spare_rounds_and_then_every_step_decides() {
        let mut rounds = Rounds::new(5, 2);
        let mut steps = 0;
        // A host that would spoil every miss: the first two are set aside,
        // after that each step decides.
        while rounds.open() {
            let decided = rounds.last_try();
            rounds.record(decided);
            steps += 1;
        }
        assert_eq!(steps, 7);
        assert_eq!(rounds.set_aside, 2);
        // Without spare rounds (`--quick`), the first step decides.
        let quick = Rounds::new(2, 0);
        assert!(quick.last_try());
    }

    #[test]
    fn a_server_that_never_meets_the_slo_brings_the_rate_down() {
        let mut b = Bisection::new(1000.0, BISECT_FULL + 1);
        for _ in 0..=BISECT_FULL {
            b.record(false);
        }
        // 300, 225, 169, 127 and 95 missed: the next try is under a
        // tenth of the peak.
        assert_eq!(b.lo, None);
        assert!(b.next <= 1000.0 / 10.0, "{b:?}");
    }

    #[test]
    fn every_search_reaches_a_tenth_of_the_peak_when_it_misses_everywhere() {
        // The full search keeps 4/3; the quick one moves farther.
        assert_eq!(ratio(BISECT_FULL + 1), RATIO);
        assert!(ratio(BISECT_QUICK + 1) > RATIO);
        for steps in [BISECT_QUICK + 1, BISECT_FULL + 1] {
            let mut b = Bisection::new(1000.0, steps);
            let mut tried = Vec::new();
            for _ in 0..steps {
                tried.push(b.next);
                b.record(false);
            }
            let last = tried[steps - 1];
            assert!(last <= 100.0 + 1e-9, "{steps} steps: {tried:?}");
            // A capacity just above the floor is met by the last step.
            let mut b = Bisection::new(1000.0, steps);
            let mut met = false;
            for _ in 0..steps {
                let rate = b.next;
                met |= rate <= 101.0;
                b.record(rate <= 101.0);
            }
            assert!(met, "{steps} steps never met a capacity of 101");
        }
        // A quick search that meets at once still stays under 110% of the peak.
        let mut b = Bisection::new(1000.0, BISECT_QUICK + 1);
        for _ in 0..=BISECT_QUICK {
            assert!(b.next <= 1100.0);
            b.record(true);
        }
    }
}
