//! What happens to a running fleet in a failure or elasticity event, done
//! the way a balancer and an orchestrator do it: a replica killed, one
//! added, all restarted in turn, one removed by a scale-down. The failures
//! matrix runs these beside a load; the tests run them the same way.

use std::time::Duration;

use super::cell::Event;
use super::fleet::{Launcher, Replica, ServerSpec};
use crate::loadtests::Shared;

/// The replica an event removes (kill, scale-down).
pub const REMOVED: usize = 1;

/// How long a drained replica keeps serving the requests already sent to
/// it before it is stopped.
pub const DRAIN: Duration = Duration::from_millis(500);

/// How long a stopped replica may take to finish its requests in flight.
pub const GRACE: Duration = Duration::from_secs(5);

/// What an event did, as the cell reports it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Happened {
    /// When the event began (µs on the run's clock, [`Shared::now_us`]).
    pub at_us: u64,
    /// The sessions the removed replica held just before it went (its own
    /// `sessions_live`), when it has them and they could be read.
    pub sessions_on_removed: Option<u64>,
}

/// Applies `event` to `replicas` while `shared`'s load runs. `spread` is the
/// time a rolling restart spends between two replicas.
pub async fn apply(
    event: Event,
    replicas: &mut Vec<Replica>,
    shared: &Shared,
    launcher: &Launcher,
    spec: &ServerSpec,
    spread: Duration,
) -> anyhow::Result<Happened> {
    let at_us = shared.now_us();
    let mut happened = Happened {
        at_us,
        sessions_on_removed: None,
    };
    match event {
        Event::Kill => {
            happened.sessions_on_removed = sessions_live(&replicas[REMOVED].url).await;
            replicas[REMOVED].kill().await;
        }
        Event::ScaleDown => {
            // As an autoscaler: out of rotation first, the requests sent
            // before that are answered, then a graceful stop.
            happened.sessions_on_removed = sessions_live(&replicas[REMOVED].url).await;
            shared.balancer.mark_down(REMOVED);
            tokio::time::sleep(DRAIN).await;
            replicas[REMOVED].terminate(GRACE).await;
        }
        Event::Add => {
            let added = launcher.spawn(spec, "added").await?;
            shared.balancer.add(added.url.clone());
            replicas.push(added);
        }
        Event::RollingRestart => {
            for (i, replica) in replicas.iter_mut().enumerate() {
                shared.balancer.mark_down(i);
                tokio::time::sleep(DRAIN).await;
                replica.terminate(GRACE).await;
                let fresh = launcher.spawn(spec, &format!("restarted-{i}")).await?;
                shared.balancer.replace(i, fresh.url.clone());
                *replica = fresh;
                tokio::time::sleep(spread).await;
            }
        }
    }
    Ok(happened)
}

/// The sessions a replica holds now, from its `/metrics` (`None` for a
/// server without sessions, or when it cannot be read).
pub async fn sessions_live(url: &str) -> Option<u64> {
    let body = crate::metrics::scrape(&reqwest::Client::new(), url).await?;
    body.lines()
        .any(|l| l.starts_with("statebench_sessions_live"))
        .then(|| crate::metrics::sum(&body, "statebench_sessions_live", None))
}
