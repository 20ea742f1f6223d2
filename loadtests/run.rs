//! Running one load: goose configured from a [`LoadConfig`], a watchdog
//! that ends the run on time whatever the target does, and the result
//! read back with the counters goose does not keep.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use goose::prelude::*;

use super::{LoadConfig, LoadResult, ScenarioKind, Shared};

/// Runs one load test; returns its per-request results.
pub async fn run(config: &LoadConfig) -> anyhow::Result<LoadResult> {
    run_shared(config, Shared::new(config)).await
}

/// Why a run could not measure its target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{0} refused every connection (is the server running?)")]
    Refused(String),
    #[error("{0} answered no request in {1} s (it accepts connections but never responds)")]
    Silent(String, u64),
    #[error("no target can be measured: {0}")]
    Unusable(String),
}

/// How long a target may refuse every connection before the run gives up.
pub const REFUSED_FOR: Duration = Duration::from_secs(2);
/// How long past its planned end a run may go before requests in flight
/// are abandoned.
pub const OVERRUN: Duration = Duration::from_secs(1);

/// Runs one load test with a [`Shared`] the caller keeps (to change the
/// replica set mid-run and read the counters afterwards).
///
/// The run ends by itself whatever the target does: a watchdog stops it
/// on a stop request ([`crate::stop`]), when it overruns its planned time,
/// and when the target has refused every connection for 2 s
/// ([`TargetError::Refused`]).
pub async fn run_shared(config: &LoadConfig, shared: Arc<Shared>) -> anyhow::Result<LoadResult> {
    let goose_config = goose::config::GooseConfiguration::parse_args_default(&config.goose_args())
        .map_err(|e| anyhow::anyhow!("goose configuration: {e}"))?;
    let attack = GooseAttack::initialize_with_config(goose_config)
        .and_then(super::client::start_shared)
        .map_err(|e| anyhow::anyhow!("goose: {e}"))?
        .register_scenario((config.scenario.spec().build)(&shared));
    let deadline = Instant::now() + config.planned() + OVERRUN;
    let watchdog = tokio::spawn(watch(Arc::clone(&shared), deadline));
    let outcome = attack.execute().await;
    watchdog.abort();
    shared.cancel.cancel();
    let (mut result, failed) = match outcome {
        Ok(metrics) => (LoadResult::from_goose(config, &metrics), Vec::new()),
        // The run happened; a rule given with --threshold failed.
        Err(GooseError::ThresholdsFailed { failed, metrics }) => {
            (LoadResult::from_goose(config, &metrics), failed)
        }
        Err(GooseError::InvalidOption {
            option,
            value,
            detail,
        }) => {
            return Err(anyhow::anyhow!(
                "load test failed: goose refused {option} = {value:?}: {detail}"
            ));
        }
        Err(e) => return Err(anyhow::anyhow!("load test failed: {e}")),
    };
    if !shared.answered.load(Ordering::Relaxed) && crate::stop::requested().is_none() {
        if shared.refused.load(Ordering::Relaxed) {
            return Err(TargetError::Refused(config.target.clone()).into());
        }
        return Err(TargetError::Silent(config.target.clone(), config.planned().as_secs()).into());
    }
    result.threshold_failures = failed
        .iter()
        .map(|f| format!("{}: observed {}", f.rule, f.observed))
        .collect();
    result.sessions_lost = shared.sessions_lost.load(Ordering::Relaxed);
    result.retried = shared.retried.load(Ordering::Relaxed);
    result.active_secs = shared.active_secs();
    result.routed = shared.balancer.routed();
    result.request_bytes = shared.request_bytes.load(Ordering::Relaxed);
    result.requests_sent = shared.requests_sent.load(Ordering::Relaxed);
    if let Some(p) = &shared.pacer {
        (result.paced_sends, result.late_sends) = p.sends();
    }
    if config.scenario == ScenarioKind::WsChat {
        shared.chat.add_to(&mut result);
    }
    if let Some(t) = &shared.timeline {
        result.timeline = t.seconds();
    }
    if let Ok(setup) = shared.setup.lock() {
        result.setup = setup.clone();
    }
    if let Ok(errors) = shared.errors.lock() {
        for (kind, n) in errors.iter() {
            *result.errors.entry(kind.clone()).or_default() += n;
        }
    }
    Ok(result)
}

/// [`run_shared`] on a runtime of its own with `threads` workers, in a
/// thread of its own (which inherits this thread's cores). A load
/// generator pinned to k cores runs k workers, so a user whose answer has
/// come never waits for another of the generator's threads to use up its
/// time slice on the same core.
pub async fn run_shared_on(
    threads: usize,
    config: &LoadConfig,
    shared: Arc<Shared>,
) -> anyhow::Result<LoadResult> {
    let config = config.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("load".into())
        .spawn(move || {
            let outcome = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .enable_all()
                .build()
                .map_err(|e| anyhow::anyhow!("cannot start the load generator's runtime: {e}"))
                .and_then(|rt| rt.block_on(run_shared(&config, shared)));
            let _ = tx.send(outcome);
        })
        .map_err(|e| anyhow::anyhow!("cannot start the load generator's thread: {e}"))?;
    rx.await
        .map_err(|_| anyhow::anyhow!("the load generator's thread ended without a result"))?
}

/// Ends the run early when it must (see [`run_shared`]). goose clears its
/// killswitch when a run starts, so the switch is tripped again on every
/// tick until the run is over and this task is aborted.
async fn watch(shared: Arc<Shared>, deadline: Instant) {
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let dead = started.elapsed() >= REFUSED_FOR
            && !shared.answered.load(Ordering::Relaxed)
            && shared.refused.load(Ordering::Relaxed);
        let why = if let Some(r) = crate::stop::requested() {
            format!("stopped by {r}")
        } else if dead {
            "the target refused every connection".into()
        } else if Instant::now() >= deadline {
            "the run overran its time".into()
        } else {
            continue;
        };
        shared.cancel.cancel();
        goose::trigger_killswitch(&why);
    }
}
