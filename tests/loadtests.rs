//! Every load scenario runs briefly against real servers on loopback ports
//! with zero errors, on both architectures where it applies.

mod common;

use std::time::Duration;

use statebench::loadtests::{LoadConfig, ScenarioKind, run};

async fn check(app: axum::Router, scenario: ScenarioKind, expect: &[&str]) {
    let server = common::serve(app, Default::default()).await;
    let config = LoadConfig {
        users: 2,
        run_time: Duration::from_secs(2),
        cart_items: 3,
        ..LoadConfig::new(server.url(""), scenario)
    };
    let result = run(&config).await.expect("load run");
    assert_eq!(result.total_failures(), 0, "{}", result.table());
    for name in expect {
        let r = result
            .requests
            .get(*name)
            .unwrap_or_else(|| panic!("no {name} in {}", result.table()));
        assert!(r.count() > 0, "{name}: no samples");
        assert!(
            r.status_codes.keys().all(|c| (200..300).contains(c)),
            "{name}: {:?}",
            r.status_codes
        );
        assert!(r.quantile_us(0.5).is_some());
    }
    // Each user's setup request, kept although goose resets its metrics
    // after the ramp: one per user, timed.
    let setup = match scenario {
        ScenarioKind::Healthz | ScenarioKind::LoginStorm => None,
        ScenarioKind::WsEcho | ScenarioKind::WsChat => Some("WS connect"),
        _ => Some("POST login"),
    };
    if let Some(name) = setup {
        let r = result
            .setup
            .get(name)
            .unwrap_or_else(|| panic!("no setup {name} in {}", result.table()));
        assert_eq!(r.count(), config.users as u64, "{}", result.table());
        assert_eq!(r.failures, 0);
        assert!(r.quantile_us(0.5).is_some_and(|us| us > 0));
        assert!(result.table().contains("setup (logins and connects"));
    } else {
        assert!(result.setup.is_empty(), "{:?}", result.setup.keys());
    }
    common::shutdown(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_scenario_runs_clean() {
    check(
        common::stateless_app(false),
        ScenarioKind::Stateless,
        &["GET profile"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateful_scenario_runs_clean() {
    check(
        common::stateful_app(),
        ScenarioKind::Stateful,
        &["GET profile"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cart_scenario_runs_clean_on_both_designs() {
    check(
        common::stateless_app(false),
        ScenarioKind::Cart,
        &["POST cart/items", "GET cart"],
    )
    .await;
    check(
        common::stateful_app(),
        ScenarioKind::Cart,
        &["POST cart/items", "GET cart"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_storm_runs_clean_on_both_designs() {
    check(
        common::stateless_app(false),
        ScenarioKind::LoginStorm,
        &["POST login"],
    )
    .await;
    check(
        common::stateful_app(),
        ScenarioKind::LoginStorm,
        &["POST login"],
    )
    .await;
}

/// A hybrid server whose access tokens live 2 s, so a 2-second run
/// refreshes (the user refreshes after four fifths of the lifetime).
fn short_lived_hybrid() -> axum::Router {
    let tokens = std::sync::Arc::new(statebench::token::TokenService::new(
        statebench::keys::KeyPair::generate(statebench::keys::TokenAlg::HS256).unwrap(),
        2,
        0,
    ));
    common::hybrid_with(
        statebench::session::MemoryStore::new(Default::default()),
        tokens,
        false,
        &common::base(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_scenario_refreshes_and_runs_clean() {
    check(
        short_lived_hybrid(),
        ScenarioKind::Hybrid,
        &["GET profile", "POST refresh"],
    )
    .await;
    // The stateless user runs unchanged against the hybrid server.
    check(
        common::hybrid_app(false),
        ScenarioKind::Stateless,
        &["GET profile"],
    )
    .await;
}

/// The shopper on a hybrid server whose access tokens expire within the
/// run: it refreshes them, so an empty cart (reads only, never a new
/// login) runs clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shopper_refreshes_on_a_hybrid_server() {
    let server = common::serve(short_lived_hybrid(), Default::default()).await;
    let config = LoadConfig {
        users: 2,
        run_time: Duration::from_secs(3),
        cart_items: 0,
        ..LoadConfig::new(server.url(""), ScenarioKind::Cart)
    };
    let result = run(&config).await.expect("load run");
    assert_eq!(result.total_failures(), 0, "{}", result.table());
    let refreshes = result.requests.get("POST refresh").map_or(0, |r| r.count());
    assert!(refreshes > 0, "{}", result.table());
    common::shutdown(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_storm_runs_clean() {
    check(
        common::hybrid_app(false),
        ScenarioKind::RefreshStorm,
        &["POST refresh"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_echo_runs_clean() {
    let (app, _, lifecycle) = common::ws_app(Default::default(), None);
    let server = common::serve(app, lifecycle).await;
    let config = LoadConfig {
        users: 2,
        run_time: Duration::from_secs(2),
        ..LoadConfig::new(server.url(""), ScenarioKind::WsEcho)
    };
    let result = run(&config).await.expect("load run");
    assert_eq!(result.total_failures(), 0, "{}", result.table());
    let echo = result
        .requests
        .get("WS echo")
        .unwrap_or_else(|| panic!("no WS echo in {}", result.table()));
    assert!(echo.count() > 0, "{}", result.table());
    common::shutdown(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_scenario_runs_clean() {
    check(
        common::stateless_app(false),
        ScenarioKind::Healthz,
        &["GET healthz"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_chat_delivers_without_duplicates_on_one_server() {
    let (app, _, lifecycle) = common::ws_app(Default::default(), None);
    let server = common::serve(app, lifecycle).await;
    let config = LoadConfig {
        users: 4,
        room_size: 2,
        run_time: Duration::from_secs(2),
        chat_interval: Duration::from_millis(20),
        ..LoadConfig::new(server.url(""), ScenarioKind::WsChat)
    };
    let result = run(&config).await.expect("load run");
    assert_eq!(result.total_failures(), 0, "{}", result.table());
    let fanout = result
        .requests
        .get("WS fanout")
        .unwrap_or_else(|| panic!("no WS fanout in {}", result.table()));
    assert!(fanout.count() > 0, "{}", result.table());
    // Delivered copies are counted against the members present when each
    // message was sent: some arrived, and none was duplicated or invented.
    // (How many arrive before the run ends is a measurement, not a test.)
    let ratio = result.delivery_ratio().expect("messages were sent");
    assert!(ratio > 0.0 && ratio <= 1.0, "delivery ratio {ratio}");
    common::shutdown(server).await;
}
