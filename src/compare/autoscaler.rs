//! A CPU-based autoscaler, as Kubernetes' Horizontal Pod Autoscaler does
//! it, over the replicas of one running load.
//!
//! Every tick (a second here, 15 s in Kubernetes) it reads each replica's
//! CPU time, from its cgroup where the layout counts it (v2) and from
//! /proc otherwise, and applies the HPA rule:
//!
//! ```text
//! desired = ceil(current × mean utilisation ÷ target)
//! ```
//!
//! where a replica's utilisation is its CPU over the tick ÷ its CPU
//! budget. As in Kubernetes: no change while the ratio is within a
//! tolerance of 1; replicas still warming up are left out of the mean; a
//! scale-up happens at once, at most doubling; a scale-down takes the
//! highest recommendation of a stabilisation window, so a dip does not
//! remove replicas that the next second needs; min and max bound it.
//!
//! A replica added is started, waited for until it listens (its warm-up),
//! and only then put in rotation. A replica removed is the newest: out of
//! rotation first, its requests in flight answered ([`elastic::DRAIN`]),
//! then a graceful stop. The sessions it held just before are recorded.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::elastic;
use super::fleet::{Launcher, Replica, ServerSpec};
use crate::loadtests::Shared;
use crate::loadtests::timeline::Second;

/// The HPA rule and its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// The utilisation the rule steers to (share of each replica's budget).
    pub target: f64,
    /// No change while mean ÷ target is within this of 1.
    pub tolerance: f64,
    pub min: usize,
    pub max: usize,
    /// Ticks whose recommendations a scale-down takes the highest of.
    pub down_window: usize,
    /// Ticks a new replica is left out of the mean (its CPU at start-up
    /// is not load).
    pub warm_up: u32,
}

impl Rule {
    /// The rule's recommendation before stabilisation: `current` replicas
    /// at a mean `utilisation`.
    pub fn desired(&self, current: usize, utilisation: f64) -> usize {
        let current = current.max(1);
        let ratio = utilisation / self.target;
        let wanted = if !ratio.is_finite() || (ratio - 1.0).abs() <= self.tolerance {
            current
        } else {
            (current as f64 * ratio).ceil() as usize
        };
        // Kubernetes' default scale-up policy: at most double.
        wanted.min(current * 2).clamp(self.min, self.max)
    }
}

/// The recommendations of the last ticks, for scale-down stabilisation.
#[derive(Debug, Clone, Default)]
pub struct Stabiliser {
    recent: VecDeque<usize>,
}

impl Stabiliser {
    /// The replica count to move to from `current`, given this tick's
    /// recommendation: up at once, down only to the highest
    /// recommendation of the window.
    pub fn next(&mut self, rule: &Rule, current: usize, recommended: usize) -> usize {
        self.recent.push_back(recommended);
        while self.recent.len() > rule.down_window.max(1) {
            self.recent.pop_front();
        }
        if recommended >= current {
            return recommended;
        }
        let highest = self.recent.iter().copied().max().unwrap_or(recommended);
        highest.min(current)
    }
}

/// One tick of the autoscaler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    /// Seconds on the load's clock.
    pub t: f64,
    /// Replicas in rotation after this tick's decision took effect.
    pub replicas: usize,
    /// Mean utilisation of the replicas measured (not warming up).
    pub utilisation: Option<f64>,
    /// The rule's recommendation, before stabilisation.
    pub recommended: usize,
}

/// A change of the replica count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleEvent {
    /// When it was decided, seconds on the load's clock.
    pub t: f64,
    pub from: usize,
    pub to: usize,
    /// From the decision to the last replica in rotation (up) or stopped
    /// (down), ms.
    pub took_ms: f64,
    /// Scale-downs: the sessions the removed replicas held just before,
    /// when they keep sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_on_removed: Option<u64>,
}

/// What the autoscaler did over one load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub ticks: Vec<Tick>,
    pub events: Vec<ScaleEvent>,
}

impl Trace {
    pub fn peak_replicas(&self) -> usize {
        self.ticks.iter().map(|t| t.replicas).max().unwrap_or(0)
    }

    /// Sessions held by every replica a scale-down removed.
    pub fn sessions_on_removed(&self) -> Option<u64> {
        self.events
            .iter()
            .filter_map(|e| e.sessions_on_removed)
            .reduce(|a, b| a + b)
    }

    pub fn scale_ups(&self) -> usize {
        self.events.iter().filter(|e| e.to > e.from).count()
    }

    pub fn scale_downs(&self) -> usize {
        self.events.iter().filter(|e| e.to < e.from).count()
    }
}

/// An autoscaling cell's own figures: the ramp, the rule, what the
/// autoscaler did, and every second of the load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub rule: Rule,
    /// The goose test plan of the ramp, and each user's mean rate.
    pub test_plan: String,
    pub user_rate: f64,
    /// The load offered at the bottom and the top of the ramp (req/s).
    pub low_rps: f64,
    pub high_rps: f64,
    /// One replica's closed-loop peak, measured just before, which sized
    /// the ramp (req/s).
    pub peak_one: f64,
    /// When the climb to the high load began and when the fall began
    /// (seconds on the load's clock).
    pub up_at: f64,
    pub down_at: f64,
    pub trace: Trace,
    pub seconds: Vec<Second>,
}

/// How often the autoscaler reads CPU and decides (Kubernetes: 15 s).
const TICK: Duration = Duration::from_secs(1);

/// Seconds in a row within the SLO, just before the fall, that count as
/// the climb absorbed.
pub const SETTLED: usize = 3;

impl Record {
    /// How long the climb took to absorb: from its start to the end of
    /// the last second before the fall whose p99 missed `slo_us` or that
    /// had failures (0 when none did). `None` when the last [`SETTLED`]
    /// seconds before the fall still missed: it never was.
    pub fn absorb_secs(&self, slo_us: u64) -> Option<f64> {
        absorb_secs(&self.seconds, self.up_at, self.down_at, slo_us)
    }
}

fn absorb_secs(seconds: &[Second], from: f64, until: f64, slo_us: u64) -> Option<f64> {
    let window: Vec<&Second> = seconds
        .iter()
        .filter(|s| f64::from(s.t) >= from.floor() && f64::from(s.t + 1) <= until)
        .collect();
    let good = |s: &Second| s.failed == 0 && s.p99_us.is_some_and(|p| p <= slo_us);
    let settled =
        window.len() >= SETTLED && window[window.len() - SETTLED..].iter().all(|s| good(s));
    if !settled {
        return None;
    }
    Some(
        window
            .iter()
            .rev()
            .find(|s| !good(s))
            .map_or(0.0, |s| (f64::from(s.t + 1) - from).max(0.0)),
    )
}

/// A replica the autoscaler runs, with its slot in the balancer.
struct Member {
    replica: Replica,
    slot: usize,
    joined: u32,
    cpu: Option<Duration>,
}

/// The autoscaler of one load: the rule, the replicas, and where new ones
/// come from.
pub struct Autoscaler {
    rule: Rule,
    /// Each replica's CPU budget, cores.
    budget: f64,
    launcher: Launcher,
    spec: ServerSpec,
    shared: Arc<Shared>,
    members: Vec<Member>,
    spawned: usize,
}

impl Autoscaler {
    /// Takes over `replicas`, which are slots 0.. of `shared`'s balancer.
    pub fn new(
        rule: Rule,
        budget: f64,
        launcher: Launcher,
        spec: ServerSpec,
        shared: Arc<Shared>,
        replicas: Vec<Replica>,
    ) -> Self {
        let members = replicas
            .into_iter()
            .enumerate()
            .map(|(slot, replica)| Member {
                replica,
                slot,
                joined: 0,
                cpu: None,
            })
            .collect();
        Self {
            rule,
            budget,
            launcher,
            spec,
            shared,
            members,
            spawned: 0,
        }
    }

    /// CPU time of a replica: its group's usage, or its process's.
    fn cpu(&self, replica: &Replica) -> Option<Duration> {
        self.launcher
            .placement
            .as_ref()
            .and_then(|p| p.usage(&replica.name))
            .or_else(|| replica.cpu())
    }

    /// Runs until `done` is cancelled; every replica it still holds is
    /// stopped when it returns.
    pub async fn run(mut self, done: CancellationToken) -> anyhow::Result<Trace> {
        let mut trace = Trace::default();
        let mut stabiliser = Stabiliser::default();
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Instant::now();
        let mut n: u32 = 0;
        loop {
            tokio::select! {
                () = done.cancelled() => break,
                _ = ticker.tick() => {}
            }
            n += 1;
            let now = Instant::now();
            let dt = now.duration_since(last).as_secs_f64();
            last = now;
            let mut used = Vec::new();
            for i in 0..self.members.len() {
                let cpu = self.cpu(&self.members[i].replica);
                let m = &mut self.members[i];
                if let (Some(before), Some(after)) = (m.cpu, cpu)
                    && n > m.joined + self.rule.warm_up
                    && dt > 0.0
                {
                    used.push(after.saturating_sub(before).as_secs_f64() / dt / self.budget);
                }
                m.cpu = cpu;
            }
            let current = self.members.len();
            let utilisation =
                (!used.is_empty()).then(|| used.iter().sum::<f64>() / used.len() as f64);
            let recommended = utilisation.map_or(current, |u| self.rule.desired(current, u));
            let next = stabiliser.next(&self.rule, current, recommended);
            let t = self.shared.now_us() as f64 / 1e6;
            if next != current && !done.is_cancelled() {
                let started = Instant::now();
                let sessions = if next > current {
                    self.scale_up(next - current, n).await?;
                    None
                } else {
                    self.scale_down(current - next).await
                };
                trace.events.push(ScaleEvent {
                    t,
                    from: current,
                    to: self.members.len(),
                    took_ms: started.elapsed().as_secs_f64() * 1e3,
                    sessions_on_removed: sessions,
                });
            }
            trace.ticks.push(Tick {
                t,
                replicas: self.members.len(),
                utilisation,
                recommended,
            });
        }
        Ok(trace)
    }

    /// Starts `k` replicas; each joins the rotation once it listens.
    async fn scale_up(&mut self, k: usize, tick: u32) -> anyhow::Result<()> {
        for _ in 0..k {
            self.spawned += 1;
            let name = format!("{}-scaled-{}", self.spec.redis_prefix, self.spawned);
            let replica = self.launcher.spawn(&self.spec, &name).await?;
            let slot = self.shared.balancer.add(replica.url.clone());
            let cpu = self.cpu(&replica);
            self.members.push(Member {
                replica,
                slot,
                joined: tick,
                cpu,
            });
        }
        Ok(())
    }

    /// Drains and stops the `k` newest replicas (never the last one);
    /// returns the sessions they held, when they keep sessions.
    async fn scale_down(&mut self, k: usize) -> Option<u64> {
        let k = k.min(self.members.len().saturating_sub(1));
        let removed: Vec<Member> = self.members.split_off(self.members.len() - k);
        let mut sessions = None;
        for m in &removed {
            if let Some(s) = elastic::sessions_live(&m.replica.url).await {
                *sessions.get_or_insert(0) += s;
            }
            self.shared.balancer.mark_down(m.slot);
        }
        tokio::time::sleep(elastic::DRAIN).await;
        for mut m in removed {
            m.replica.terminate(elastic::GRACE).await;
        }
        sessions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Rule = Rule {
        target: 0.6,
        tolerance: 0.1,
        min: 1,
        max: 6,
        down_window: 5,
        warm_up: 1,
    };

    #[test]
    fn the_hpa_rule_scales_with_utilisation() {
        // Kubernetes' example: 1 replica at 200% of a 100% target → 2.
        assert_eq!(RULE.desired(1, 1.2), 2);
        // 2 replicas at 90% against 60%: ceil(2 × 1.5) = 3.
        assert_eq!(RULE.desired(2, 0.9), 3);
        // Within the tolerance: no change.
        assert_eq!(RULE.desired(3, 0.65), 3);
        assert_eq!(RULE.desired(3, 0.55), 3);
        // Idle: down to the minimum.
        assert_eq!(RULE.desired(4, 0.05), 1);
        // At most double per tick, never above the maximum.
        assert_eq!(RULE.desired(1, 5.0), 2);
        assert_eq!(RULE.desired(4, 5.0), 6);
        // No reading (NaN) changes nothing.
        assert_eq!(RULE.desired(3, f64::NAN), 3);
    }

    #[test]
    fn scale_down_waits_for_the_window_scale_up_does_not() {
        let mut s = Stabiliser::default();
        assert_eq!(s.next(&RULE, 1, 3), 3);
        // The load falls: the window still holds the 3.
        for _ in 0..4 {
            assert_eq!(s.next(&RULE, 3, 1), 3);
        }
        // Five ticks of 1: now it goes.
        assert_eq!(s.next(&RULE, 3, 1), 1);
        // A dip inside a busy window is ignored.
        let mut s = Stabiliser::default();
        for r in [4, 4, 2, 4] {
            assert_eq!(s.next(&RULE, 4, r), 4);
        }
    }

    #[test]
    fn the_ramp_is_absorbed_when_p99_stays_within_the_slo() {
        let sec = |t: u32, p99: u64, failed: u64| Second {
            t,
            answered: 100,
            failed,
            p50_us: Some(p99 / 2),
            p99_us: Some(p99),
        };
        // Climb at 9 s; fine at first, slow from 11 s to 13 s, a failure
        // at 15 s, then fine until the fall at 25 s.
        let mut s: Vec<Second> = (0..11).map(|t| sec(t, 2_000, 0)).collect();
        s.extend((11..14).map(|t| sec(t, 40_000, 0)));
        s.push(sec(14, 3_000, 0));
        s.push(sec(15, 3_000, 1));
        s.extend((16..30).map(|t| sec(t, 3_000, 0)));
        // Absorbed at the end of second 15: 7 s after the climb began.
        assert_eq!(absorb_secs(&s, 9.0, 25.0, 10_000), Some(7.0));
        // Still missing just before the fall: never absorbed.
        assert_eq!(absorb_secs(&s, 9.0, 14.0, 10_000), None);
        // A ramp that never hurt is absorbed at once.
        assert_eq!(absorb_secs(&s, 2.0, 9.0, 10_000), Some(0.0));
    }

    #[test]
    fn a_trace_sums_what_scale_downs_removed() {
        let ev = |from, to, s| ScaleEvent {
            t: 0.0,
            from,
            to,
            took_ms: 1.0,
            sessions_on_removed: s,
        };
        let trace = Trace {
            ticks: vec![],
            events: vec![
                ev(1, 2, None),
                ev(2, 1, Some(40)),
                ev(1, 2, None),
                ev(2, 1, Some(2)),
            ],
        };
        assert_eq!(trace.sessions_on_removed(), Some(42));
        assert_eq!((trace.scale_ups(), trace.scale_downs()), (2, 2));
        let stateless = Trace {
            events: vec![ev(1, 2, None), ev(2, 1, None)],
            ..trace
        };
        assert_eq!(stateless.sessions_on_removed(), None);
    }
}
