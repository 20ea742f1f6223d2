//! CPU time over the part of a load when requests were in flight.
//!
//! A load's wall time also holds goose starting up and shutting down,
//! which grows with the users: on four replicas a 3-second step took
//! 4.6 s of wall time. CPU averaged over the wall then reads a third
//! lower than while the requests ran, and a replica that spent its whole
//! budget looks half idle. So the runner samples every process's CPU
//! time while the load runs ([`sample_every`]), and the cell's CPU
//! figures come from the samples that bracket the first request sent
//! and the last answer ([`Span::active`]).

use std::convert::Infallible;
use std::time::Duration;

/// How often CPU times are sampled while a load runs: a fraction of a
/// step, and a few dozen `/proc` reads a second.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// The CPU times of a cell's processes at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Microseconds since the load's epoch ([`crate::loadtests::Shared::now_us`]).
    pub at_us: u64,
    pub servers: Option<Duration>,
    pub proxy: Option<Duration>,
    pub store: Option<Duration>,
    pub generator: Option<Duration>,
}

/// Two samples and the seconds between them.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub from: Sample,
    pub to: Sample,
}

impl Span {
    /// The span from the first sample taken at or after `first_us` to the
    /// last taken at or before `last_us`, when it covers at least half of
    /// that interval; `None` otherwise (no request was sent, or the load
    /// was too short to sample), and the caller uses the whole run.
    pub fn active(samples: &[Sample], first_us: u64, last_us: u64) -> Option<Self> {
        if first_us == 0 || last_us <= first_us {
            return None;
        }
        let from = *samples.iter().find(|s| s.at_us >= first_us)?;
        let to = *samples.iter().rev().find(|s| s.at_us <= last_us)?;
        (to.at_us > from.at_us && 2 * (to.at_us - from.at_us) >= last_us - first_us)
            .then_some(Self { from, to })
    }

    pub fn secs(&self) -> f64 {
        self.to.at_us.saturating_sub(self.from.at_us) as f64 / 1e6
    }

    /// Cores used over the span by what `part` reads.
    pub fn cores(&self, part: impl Fn(&Sample) -> Option<Duration>) -> Option<f64> {
        let (a, b) = (part(&self.from)?, part(&self.to)?);
        let secs = self.secs();
        (secs > 0.0).then(|| b.saturating_sub(a).as_secs_f64() / secs)
    }
}

/// Calls `sample` every `every`, until the future is dropped.
pub async fn sample_every(every: Duration, mut sample: impl FnMut()) -> Infallible {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sample();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at_us: u64, servers_ms: u64) -> Sample {
        Sample {
            at_us,
            servers: Some(Duration::from_millis(servers_ms)),
            ..Sample::default()
        }
    }

    #[test]
    fn the_active_span_leaves_out_start_up_and_shut_down() {
        // Idle for the first second, 0.4 cores from 1 s to 4 s, idle after.
        let samples = [
            at(0, 0),
            at(500_000, 0),
            at(1_000_000, 0),
            at(2_000_000, 400),
            at(3_000_000, 800),
            at(4_000_000, 1_200),
            at(4_500_000, 1_200),
        ];
        let span = Span::active(&samples, 1_000_000, 4_000_000).unwrap();
        assert_eq!(span.secs(), 3.0);
        let cores = span.cores(|s| s.servers).unwrap();
        assert!((cores - 0.4).abs() < 1e-9, "{cores}");
        // Over the whole run the same load reads lower.
        let whole = Span {
            from: samples[0],
            to: samples[6],
        };
        assert!(whole.cores(|s| s.servers).unwrap() < 0.3);
    }

    #[test]
    fn a_span_is_taken_inside_the_active_interval() {
        let samples = [at(900, 0), at(1_100, 1), at(1_900, 2), at(2_100, 3)];
        let span = Span::active(&samples, 1_000, 2_000).unwrap();
        assert_eq!((span.from.at_us, span.to.at_us), (1_100, 1_900));
    }

    #[test]
    fn no_span_without_requests_or_enough_samples() {
        let samples = [at(0, 0), at(1_000_000, 10), at(2_000_000, 20)];
        assert!(Span::active(&samples, 0, 2_000_000).is_none());
        assert!(Span::active(&samples, 1_500_000, 1_400_000).is_none());
        // One sample inside: no span.
        assert!(Span::active(&samples, 900_000, 1_900_000).is_none());
        // Samples that cover under half of the interval: no span.
        assert!(Span::active(&samples, 100_000, 4_000_000).is_none());
        // A missing reading gives no figure.
        let span = Span::active(&samples, 1, 2_000_000).unwrap();
        assert!(span.cores(|s| s.store).is_none());
    }
}
