//! Routing semantics with real replicas on loopback ports: what each
//! balancing policy means for each architecture, and what losing a replica
//! costs. Embedded balancer always; HAProxy when it is installed.

mod common;

use std::time::Duration;

use statebench::compare::fleet::{Launcher, ServerSpec};
use statebench::host::services::Haproxy;
use statebench::host::tools::installed;
use statebench::loadtests::{
    Affinity, Balancer, LoadConfig, LoadResult, Policy, ScenarioKind, run,
};
use statebench::server::Arch;
use statebench::server::Lifecycle;

/// Two replicas of one architecture, served in this process. Stateless
/// replicas share one key (as deployed replicas must).
async fn two_replicas(stateful: bool) -> Vec<common::Running> {
    let mut out = Vec::new();
    let tokens = common::tokens();
    for _ in 0..2 {
        let app = if stateful {
            common::stateful_app()
        } else {
            common::stateless_with(tokens.clone(), false, &common::base())
        };
        out.push(common::serve(app, Lifecycle::default()).await);
    }
    out
}

async fn load(target: String, replicas: Vec<String>, policy: Policy, stateful: bool) -> LoadResult {
    let config = LoadConfig {
        users: 4,
        run_time: Duration::from_secs(1),
        replicas,
        policy,
        reconnect_every: 1_000_000,
        reset_metrics: false,
        ..LoadConfig::new(
            target,
            if stateful {
                ScenarioKind::Stateful
            } else {
                ScenarioKind::Stateless
            },
        )
    };
    run(&config).await.expect("load run")
}

fn assert_no_misses(r: &LoadResult, what: &str) {
    assert_eq!(r.miss_rate("GET profile"), 0.0, "{what}\n{}", r.table());
    assert_eq!(r.total_failures(), 0, "{what}\n{}", r.table());
    assert!(
        r.get("GET profile").is_some_and(|p| p.count() > 0),
        "{what}\n{}",
        r.table()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_policies_on_two_stateful_memory_replicas() {
    let servers = two_replicas(true).await;
    let urls: Vec<String> = servers.iter().map(|s| s.url("")).collect();
    let rr = load(urls[0].clone(), urls.clone(), Policy::RoundRobin, true).await;
    let miss = rr.miss_rate("GET profile");
    assert!(
        (0.3..=0.7).contains(&miss),
        "round-robin miss rate {miss}\n{}",
        rr.table()
    );
    assert!(rr.sessions_lost > 0);
    assert!(rr.routed.iter().all(|&n| n > 0), "{:?}", rr.routed);
    for policy in [Policy::Sticky, Policy::ConsistentHash] {
        let r = load(urls[0].clone(), urls.clone(), policy, true).await;
        assert_no_misses(&r, policy.name());
    }
    for s in servers {
        common::shutdown(s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_misses_nothing_under_any_policy() {
    let servers = two_replicas(false).await;
    let urls: Vec<String> = servers.iter().map(|s| s.url("")).collect();
    for policy in Policy::ALL {
        let r = load(urls[0].clone(), urls.clone(), policy, false).await;
        assert_no_misses(&r, policy.name());
    }
    for s in servers {
        common::shutdown(s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_policies_match_the_embedded_ones() {
    if !installed("haproxy") {
        eprintln!("skipped haproxy_policies_match_the_embedded_ones: haproxy is not installed");
        return;
    }
    let work_dir = tempfile::tempdir().unwrap();
    let work = work_dir.path().to_path_buf();
    let stateful = two_replicas(true).await;
    let urls: Vec<String> = stateful.iter().map(|s| s.url("")).collect();
    let proxy = Haproxy::start(&work, Policy::RoundRobin, &urls, 1)
        .await
        .unwrap();
    let rr = load(proxy.url.clone(), Vec::new(), Policy::RoundRobin, true).await;
    let miss = rr.miss_rate("GET profile");
    // HAProxy alternates over every user's requests as they reach it, so
    // the share that lands away from the session depends on how the users
    // interleave (0.29 and 0.5 both seen on a loaded machine): round-robin
    // misses often, where sticky and hash below miss never.
    assert!(
        (0.15..=0.85).contains(&miss),
        "haproxy round-robin miss rate {miss}\n{}",
        rr.table()
    );
    drop(proxy);
    for policy in [Policy::Sticky, Policy::ConsistentHash] {
        let proxy = Haproxy::start(&work, policy, &urls, 1).await.unwrap();
        let r = load(proxy.url.clone(), Vec::new(), policy, true).await;
        assert_no_misses(&r, &format!("haproxy {}", policy.name()));
    }
    let stateless = two_replicas(false).await;
    let urls: Vec<String> = stateless.iter().map(|s| s.url("")).collect();
    let proxy = Haproxy::start(&work, Policy::RoundRobin, &urls, 1)
        .await
        .unwrap();
    let r = load(proxy.url.clone(), Vec::new(), Policy::RoundRobin, false).await;
    assert_no_misses(&r, "haproxy round-robin, stateless");
    drop(proxy);
    for s in stateful.into_iter().chain(stateless) {
        common::shutdown(s).await;
    }
}

/// Logs `users` in through a sticky balancer over `replicas` spawned
/// `statebench serve` processes, SIGKILLs replica 1, then asks every user's
/// `/profile` again. Returns (sessions that lived on the killed replica,
/// users answered 403 afterwards).
async fn kill_one(spec: ServerSpec, users: u64) -> (usize, usize) {
    let work_dir = tempfile::tempdir().unwrap();
    let work = work_dir.path().to_path_buf();
    let launcher = Launcher {
        exe: env!("CARGO_BIN_EXE_statebench").into(),
        work: work.clone(),
        placement: None,
    };
    let mut replicas = Vec::new();
    for i in 0..3 {
        replicas.push(launcher.spawn(&spec, &format!("r{i}")).await.unwrap());
    }
    let balancer = Balancer::new(
        replicas.iter().map(|r| r.url.clone()).collect(),
        Policy::Sticky,
        1,
    );
    let mut clients = Vec::new();
    for u in 0..users {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap();
        let mut affinity = Affinity::default();
        let (_, base) = balancer.pick(u, &mut affinity).unwrap();
        let res = client.post(format!("{base}/login")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let token = res
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["token"].as_str().map(str::to_owned));
        clients.push((client, affinity, token));
    }
    let on_killed = clients
        .iter()
        .filter(|(_, a, _)| a.slot() == Some(1))
        .count();
    replicas[1].kill().await;
    let mut forbidden = 0;
    for (u, (client, affinity, token)) in clients.iter_mut().enumerate() {
        // A refused connection takes the dead replica out of rotation, so a
        // second attempt must land on the live one.
        let mut attempts = 0;
        let status = loop {
            attempts += 1;
            assert!(
                attempts <= 2,
                "user {u}: no live replica after {attempts} tries"
            );
            let (slot, base) = balancer.pick(u as u64, affinity).unwrap();
            let mut req = client.get(format!("{base}/profile"));
            if let Some(t) = token {
                req = req.header("Authorization", t.as_str());
            }
            match req.send().await {
                Ok(res) => break res.status(),
                Err(e) if e.is_connect() => balancer.report_refused(slot, &base),
                Err(e) => panic!("request failed: {e}"),
            }
        };
        if status == 403 {
            forbidden += 1;
        } else {
            assert_eq!(status, 200);
        }
    }
    (on_killed, forbidden)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_loses_exactly_its_in_memory_sessions() {
    let (on_killed, lost) = kill_one(ServerSpec::new(Arch::Stateful), 30).await;
    assert!(on_killed > 0);
    assert_eq!(lost, on_killed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_loses_no_stateless_session() {
    let (on_killed, lost) = kill_one(ServerSpec::new(Arch::Stateless), 30).await;
    assert!(on_killed > 0);
    assert_eq!(lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_loses_no_session_kept_in_redis() {
    let Some(url) = common::redis_url("killing_a_replica_loses_no_session_kept_in_redis") else {
        return;
    };
    let mut spec = ServerSpec::new(Arch::Stateful);
    spec.store = url.clone();
    spec.redis_prefix = common::unique_prefix();
    let (on_killed, lost) = kill_one(spec.clone(), 30).await;
    common::redis_cleanup(&url, &spec.redis_prefix).await;
    assert!(on_killed > 0);
    assert_eq!(lost, 0);
}
