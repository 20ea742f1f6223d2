//! Failures and elasticity under load, as the failures matrix runs them:
//! three `statebench serve` replicas behind the embedded balancer, goose
//! users on them, and a replica killed, restarted or scaled down a third of
//! the way in ([`statebench::compare::elastic`]). With retries on, no
//! request is lost for stateless or Redis-backed sessions; in-memory
//! sessions lost are exactly the sessions the removed replica held, and
//! the only requests lost are the answers saying so.

mod common;

use std::time::Duration;

use statebench::compare::Event;
use statebench::compare::elastic;
use statebench::compare::fleet::{Launcher, ServerSpec};
use statebench::host::services::Haproxy;
use statebench::host::tools::installed;
use statebench::loadtests::{LoadConfig, LoadResult, Policy, ScenarioKind, Shared, run_shared};
use statebench::server::Arch;

const USERS: usize = 12;
const RUN: Duration = Duration::from_secs(3);

/// What one run under an event produced.
struct Outcome {
    result: LoadResult,
    happened: elastic::Happened,
}

impl Outcome {
    /// Requests whose user saw them fail.
    fn lost(&self) -> u64 {
        self.result.total_failures() - self.result.retried
    }
}

/// Which balancer spreads the users over the replicas.
#[derive(Clone, Copy)]
enum Front {
    Embedded(Policy),
    /// HAProxy round-robin, with its health checks and retries.
    Haproxy,
}

async fn under_event(spec: ServerSpec, policy: Policy, event: Event, retries: u32) -> Outcome {
    behind(Front::Embedded(policy), spec, event, retries).await
}

async fn behind(front: Front, spec: ServerSpec, event: Event, retries: u32) -> Outcome {
    let work = tempfile::tempdir().unwrap();
    let launcher = Launcher {
        exe: env!("CARGO_BIN_EXE_statebench").into(),
        work: work.path().to_path_buf(),
        placement: None,
    };
    let mut replicas = Vec::new();
    for i in 0..3 {
        replicas.push(launcher.spawn(&spec, &format!("r{i}")).await.unwrap());
    }
    let scenario = match spec.arch {
        Arch::Stateless => ScenarioKind::Stateless,
        _ => ScenarioKind::Stateful,
    };
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let (proxy, policy) = match front {
        Front::Embedded(policy) => (None, policy),
        Front::Haproxy => {
            let proxy = Haproxy::start(work.path(), Policy::RoundRobin, &urls, retries)
                .await
                .unwrap();
            (Some(proxy), Policy::RoundRobin)
        }
    };
    let config = LoadConfig {
        users: USERS,
        increase_rate: 1000.0,
        run_time: RUN,
        replicas: if proxy.is_some() {
            Vec::new()
        } else {
            urls.clone()
        },
        policy,
        retries,
        reset_metrics: false,
        ..LoadConfig::new(
            proxy.as_ref().map_or(&urls[0], |p| &p.url).clone(),
            scenario,
        )
    };
    let shared = Shared::new(&config);
    let events = {
        let shared = shared.clone();
        let (replicas, launcher, spec) = (&mut replicas, &launcher, &spec);
        async move {
            tokio::time::sleep(RUN / 3).await;
            let spread = Duration::from_millis(200);
            elastic::apply(event, replicas, &shared, launcher, spec, spread).await
        }
    };
    let (result, happened) = tokio::join!(run_shared(&config, shared.clone()), events);
    let (result, happened) = (result.unwrap(), happened.unwrap());
    let outcome = Outcome { result, happened };
    assert!(
        outcome
            .result
            .get("GET profile")
            .is_some_and(|p| p.count() > 100),
        "{event:?}: too few requests\n{}",
        outcome.result.table()
    );
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_loses_no_request_when_a_replica_goes() {
    for event in [Event::Kill, Event::ScaleDown, Event::RollingRestart] {
        let o = under_event(
            ServerSpec::new(Arch::Stateless),
            Policy::RoundRobin,
            event,
            1,
        )
        .await;
        assert_eq!(o.lost(), 0, "{event:?}\n{}", o.result.table());
        assert_eq!(o.result.sessions_lost, 0, "{event:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retries_a_killed_replica_fails_requests() {
    let o = under_event(
        ServerSpec::new(Arch::Stateless),
        Policy::RoundRobin,
        Event::Kill,
        0,
    )
    .await;
    assert_eq!(o.result.retried, 0);
    assert!(o.lost() > 0, "{}", o.result.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_sessions_lost_are_the_removed_replicas() {
    for policy in [Policy::Sticky, Policy::ConsistentHash] {
        for event in [Event::Kill, Event::ScaleDown] {
            let o = under_event(ServerSpec::new(Arch::Stateful), policy, event, 1).await;
            let held = o.happened.sessions_on_removed.expect("sessions_live");
            assert!(
                held > 0,
                "{policy:?} {event:?}: the replica held no session"
            );
            assert_eq!(
                o.result.sessions_lost,
                held,
                "{policy:?} {event:?}\n{}",
                o.result.table()
            );
            // The only requests the users saw fail are the 403s that told
            // them their session was gone.
            assert_eq!(
                o.lost(),
                o.result.sessions_lost,
                "{policy:?} {event:?}\n{}",
                o.result.table()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sessions_survive_every_event() {
    let Some(url) = common::redis_url("redis_sessions_survive_every_event") else {
        return;
    };
    for event in [Event::Kill, Event::ScaleDown, Event::RollingRestart] {
        let mut spec = ServerSpec::new(Arch::Stateful);
        spec.store = url.clone();
        spec.redis_prefix = common::unique_prefix();
        let o = under_event(spec, Policy::RoundRobin, event, 1).await;
        assert_eq!(o.lost(), 0, "{event:?}\n{}", o.result.table());
        assert_eq!(o.result.sessions_lost, 0, "{event:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_retries_hide_a_killed_replica() {
    if !installed("haproxy") {
        eprintln!("skipped haproxy_retries_hide_a_killed_replica: haproxy is not installed");
        return;
    }
    let spec = ServerSpec::new(Arch::Stateless);
    let o = behind(Front::Haproxy, spec, Event::Kill, 1).await;
    assert_eq!(o.result.total_failures(), 0, "{}", o.result.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_without_retries_shows_the_kill() {
    if !installed("haproxy") {
        eprintln!("skipped haproxy_without_retries_shows_the_kill: haproxy is not installed");
        return;
    }
    let spec = ServerSpec::new(Arch::Stateless);
    let o = behind(Front::Haproxy, spec, Event::Kill, 0).await;
    assert!(o.result.total_failures() > 0, "{}", o.result.table());
}
