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

/// The rates a search tries: 80% of the closed-loop peak first, then the
/// middle between the highest rate that met the SLO (or 0) and the lowest
/// that missed it (or 110% of the peak).
#[derive(Debug, Clone, Copy)]
pub(super) struct Bisection {
    lo: f64,
    hi: f64,
    /// The rate to try next.
    pub(super) next: f64,
}

impl Bisection {
    pub(super) fn new(peak: f64) -> Self {
        Self {
            lo: 0.0,
            hi: peak * 1.1,
            next: peak * 0.8,
        }
    }

    /// Whether the rate just tried (`next`) met the SLO; moves `next`.
    pub(super) fn record(&mut self, met: bool) {
        if met {
            self.lo = self.next;
        } else {
            self.hi = self.next;
        }
        self.next = (self.lo + self.hi) / 2.0;
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
    use super::super::BISECT_FULL;
    use super::*;

    #[test]
    fn the_search_closes_in_on_the_boundary() {
        // A server that meets the SLO up to 6,180 requests/s.
        let capacity = 6180.0;
        let mut b = Bisection::new(10_000.0);
        let mut tried = Vec::new();
        for _ in 0..=BISECT_FULL {
            tried.push(b.next);
            b.record(b.next <= capacity);
        }
        assert_eq!(tried[0], 8000.0);
        assert!(b.lo <= capacity && capacity < b.hi, "{b:?}");
        // Five steps narrow an 11,000-wide bracket to under 6% of it.
        assert!(b.hi - b.lo < 0.06 * 11_000.0, "{b:?}");
        // Every rate after the first lies inside the bracket known then.
        assert!(tried.iter().all(|&r| r > 0.0 && r < 11_000.0));
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
        let mut b = Bisection::new(1000.0);
        for _ in 0..=BISECT_FULL {
            b.record(false);
        }
        // 800, 400, 200, 100, 50 missed: the next try is 25, a fortieth
        // of the peak.
        assert_eq!(b.lo, 0.0);
        assert!(b.next <= 1000.0 / 40.0, "{b:?}");
    }
}
