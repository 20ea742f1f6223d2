//! The hybrid server's properties over HTTP: rotation (every refresh token
//! works once), reuse detection (a replayed token ends the family, its
//! newest pair included, across replicas sharing Redis too), expiry of
//! access tokens and of families, logout, and races between replicas.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use statebench::clock::ManualClock;
use statebench::keys::{KeyPair, TokenAlg};
use statebench::session::memory::{MapAdapter, StoreVisitor, for_each_store};
use statebench::session::refresh::{self, RefreshError};
use statebench::session::{MapStore, MemoryStore, RedisStore, SessionStore, StoreConfig};
use statebench::token::TokenService;

/// Access tokens live 60 s, families 600 s unused.
const ACCESS_TTL: u64 = 60;
const REFRESH_TTL_MS: u64 = 600_000;

fn tokens() -> Arc<TokenService> {
    Arc::new(TokenService::new(
        KeyPair::generate(TokenAlg::HS256).unwrap(),
        ACCESS_TTL,
        0,
    ))
}

fn store_config() -> StoreConfig {
    StoreConfig {
        idle_ttl_ms: REFRESH_TTL_MS,
        max_sessions: 1000,
    }
}

/// A hybrid server on a manual clock (memory store), and the clock.
fn at_manual_clock(denylist: bool) -> (Router, ManualClock) {
    behind_by(0, denylist)
}

/// The same, its clock `secs` behind the wall clock. Tokens are signed on
/// the server's clock and their `exp` checked on the wall clock (as
/// `jsonwebtoken` does), so a token signed `ACCESS_TTL + 1` seconds behind
/// is expired when it arrives.
fn behind_by(secs: u64, denylist: bool) -> (Router, ManualClock) {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let clock = ManualClock::new(wall - secs * 1000);
    let shared: statebench::clock::SharedClock = Arc::new(clock.clone());
    let app = common::hybrid_with(
        MemoryStore::new(store_config()),
        tokens(),
        denylist,
        &common::base_at(shared),
    );
    (app, clock)
}

#[derive(Debug, Clone)]
struct Pair {
    token: String,
    refresh: String,
}

async fn post(app: &Router, path: &str, auth: Option<&str>, body: &str) -> (u16, String) {
    let mut req = Request::post(path);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let (status, _, body) = common::call(app, req.body(Body::from(body.to_owned())).unwrap()).await;
    assert!(status < 500, "{status} for {path}");
    (status, String::from_utf8(body).unwrap())
}

async fn get(app: &Router, path: &str, token: &str) -> (u16, String) {
    let req = Request::get(path)
        .header(header::AUTHORIZATION, token)
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = common::call(app, req).await;
    (status, String::from_utf8(body).unwrap())
}

fn pair(body: &str) -> Pair {
    let v: serde_json::Value = serde_json::from_str(body).expect(body);
    Pair {
        token: v["token"].as_str().expect(body).to_owned(),
        refresh: v["refresh_token"].as_str().expect(body).to_owned(),
    }
}

async fn login(app: &Router) -> Pair {
    let (status, body) = post(app, "/login", None, r#"{"name":"Ann"}"#).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["expires_in"], ACCESS_TTL, "{body}");
    pair(&body)
}

/// `POST /refresh` with `token`: the new pair, or the status.
async fn use_refresh(app: &Router, token: &str) -> Result<Pair, u16> {
    let body = serde_json::json!({ "refresh_token": token }).to_string();
    match post(app, "/refresh", None, &body).await {
        (200, body) => Ok(pair(&body)),
        (status, _) => Err(status),
    }
}

#[tokio::test]
async fn every_refresh_token_works_once_and_a_replay_ends_the_family() {
    let (app, _) = at_manual_clock(false);
    let first = login(&app).await;
    assert_eq!(first.refresh.len(), refresh::TOKEN_LEN);
    let second = use_refresh(&app, &first.refresh).await.unwrap();
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(
        second.refresh[..32],
        first.refresh[..32],
        "one family: one id"
    );
    let third = use_refresh(&app, &second.refresh).await.unwrap();
    assert_eq!(get(&app, "/profile", &third.token).await.0, 200);
    // A replay of a rotated token: 401, and the newest token dies with it.
    assert_eq!(use_refresh(&app, &first.refresh).await.unwrap_err(), 401);
    assert_eq!(use_refresh(&app, &third.refresh).await.unwrap_err(), 401);
    // Another login is a family of its own, untouched.
    let other = login(&app).await;
    assert!(use_refresh(&app, &other.refresh).await.is_ok());
}

#[tokio::test]
async fn with_a_denylist_a_replay_also_ends_the_familys_access_tokens() {
    let (app, _) = at_manual_clock(true);
    let first = login(&app).await;
    let second = use_refresh(&app, &first.refresh).await.unwrap();
    assert_eq!(get(&app, "/profile", &second.token).await.0, 200);
    assert_eq!(use_refresh(&app, &first.refresh).await.unwrap_err(), 401);
    assert_eq!(get(&app, "/profile", &second.token).await.0, 403);
    assert_eq!(get(&app, "/profile", &first.token).await.0, 403);
}

#[tokio::test]
async fn access_tokens_expire_and_a_refresh_brings_the_cart_back() {
    let (app, clock) = behind_by(ACCESS_TTL + 1, false);
    let first = login(&app).await;
    assert_eq!(get(&app, "/profile", &first.token).await.0, 403, "expired");
    let (status, _) = post(
        &app,
        "/cart/items",
        Some(&first.token),
        r#"{"sku":"a","qty":1}"#,
    )
    .await;
    assert_eq!(status, 403, "an expired access token writes nothing");
    clock.advance((ACCESS_TTL + 1) * 1000);
    let second = use_refresh(&app, &first.refresh).await.unwrap();
    assert_eq!(
        get(&app, "/profile", &second.token).await.1,
        "Welcome back, Ann"
    );
    let (status, body) = post(
        &app,
        "/cart/items",
        Some(&second.token),
        r#"{"sku":"a","qty":2}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let with_cart = pair_token(&body);
    assert_eq!(
        get(&app, "/cart", &with_cart).await.1,
        r#"{"items":[{"sku":"a","qty":2}]}"#
    );
    let third = use_refresh(&app, &second.refresh).await.unwrap();
    assert_eq!(
        get(&app, "/cart", &third.token).await.1,
        r#"{"items":[{"sku":"a","qty":2}]}"#,
        "the cart was written through to the family"
    );
}

fn pair_token(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).expect(body);
    v["token"].as_str().expect(body).to_owned()
}

#[tokio::test]
async fn an_unused_family_expires_and_a_used_one_lives_on() {
    let (app, clock) = at_manual_clock(false);
    let idle = login(&app).await;
    let mut busy = login(&app).await;
    for _ in 0..3 {
        clock.advance(REFRESH_TTL_MS / 2 + 1);
        busy = use_refresh(&app, &busy.refresh).await.unwrap();
    }
    assert_eq!(use_refresh(&app, &idle.refresh).await.unwrap_err(), 401);
    assert!(use_refresh(&app, &busy.refresh).await.is_ok());
}

#[tokio::test]
async fn logout_ends_the_family_and_the_access_token_lives_on_without_a_denylist() {
    let (app, _) = at_manual_clock(false);
    let p = login(&app).await;
    assert_eq!(post(&app, "/logout", Some(&p.token), "").await.0, 204);
    assert_eq!(use_refresh(&app, &p.refresh).await.unwrap_err(), 401);
    // No denylist: the access token is a JWT, valid until its exp…
    assert_eq!(get(&app, "/profile", &p.token).await.0, 200);
    // …but writes go to the family, which is gone.
    let (status, _) = post(
        &app,
        "/cart/items",
        Some(&p.token),
        r#"{"sku":"a","qty":1}"#,
    )
    .await;
    assert_eq!(status, 403);

    let (app, _) = at_manual_clock(true);
    let p = login(&app).await;
    assert_eq!(post(&app, "/logout", Some(&p.token), "").await.0, 204);
    assert_eq!(
        get(&app, "/profile", &p.token).await.0,
        403,
        "denylisted at once"
    );
    assert_eq!(post(&app, "/logout", Some(&p.token), "").await.0, 403);
}

#[tokio::test]
async fn bad_refresh_requests_get_a_clear_4xx() {
    let (app, _) = at_manual_clock(false);
    let p = login(&app).await;
    for (body, want) in [
        ("{", 400),
        ("{}", 400),
        (r#"{"refresh_token":1}"#, 400),
        (r#"{"refresh_token":"x","more":1}"#, 400),
        ("", 401),
        (r#"{"refresh_token":""}"#, 401),
        (r#"{"refresh_token":"abc"}"#, 401),
    ] {
        assert_eq!(post(&app, "/refresh", None, body).await.0, want, "{body}");
    }
    // The access token is not a refresh token.
    assert_eq!(use_refresh(&app, &p.token).await.unwrap_err(), 401);
    let unknown = format!("{:032x}.{:032x}", 7u128, 9u128);
    assert_eq!(use_refresh(&app, &unknown).await.unwrap_err(), 401);
    assert!(use_refresh(&app, &p.refresh).await.is_ok(), "still alive");
}

/// Two replicas sharing one Redis: a token rotated on one and replayed on
/// the other ends the family on both.
#[tokio::test]
async fn reuse_is_detected_across_two_replicas_sharing_redis() {
    let Some(url) = common::redis_url("reuse_is_detected_across_two_replicas_sharing_redis") else {
        return;
    };
    let prefix = common::unique_prefix();
    let keys = tokens();
    let replica = || {
        let store = RedisStore::open(&url, &prefix, store_config()).unwrap();
        common::hybrid_with(store, keys.clone(), false, &common::base())
    };
    let (a, b) = (replica(), replica());
    let first = login(&a).await;
    assert_eq!(
        get(&b, "/profile", &first.token).await.1,
        "Welcome back, Ann"
    );
    let second = use_refresh(&b, &first.refresh).await.unwrap();
    let third = use_refresh(&a, &second.refresh).await.unwrap();
    assert_eq!(use_refresh(&b, &first.refresh).await.unwrap_err(), 401);
    assert_eq!(use_refresh(&a, &third.refresh).await.unwrap_err(), 401);
    assert_eq!(use_refresh(&b, &third.refresh).await.unwrap_err(), 401);
    common::redis_cleanup(&url, &prefix).await;
}

/// Many uses of one refresh token at once, spread over replicas: exactly
/// one gets a new pair, and the family ends (the others were reuse).
async fn one_racing_refresh_wins(replicas: &[Router]) {
    let first = login(&replicas[0]).await;
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let app = replicas[i % replicas.len()].clone();
            let token = first.refresh.clone();
            tokio::spawn(async move { use_refresh(&app, &token).await })
        })
        .collect();
    let mut won = Vec::new();
    for r in racers {
        match r.await.unwrap() {
            Ok(p) => won.push(p),
            Err(status) => assert_eq!(status, 401),
        }
    }
    assert_eq!(won.len(), 1, "exactly one use of a token rotates it");
    assert_eq!(
        use_refresh(&replicas[0], &won[0].refresh)
            .await
            .unwrap_err(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_refreshes_on_one_replica_let_exactly_one_win() {
    let app = common::hybrid_with(
        MemoryStore::new(store_config()),
        tokens(),
        false,
        &common::base(),
    );
    for _ in 0..20 {
        one_racing_refresh_wins(std::slice::from_ref(&app)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_refreshes_across_replicas_sharing_redis_let_exactly_one_win() {
    let Some(url) =
        common::redis_url("racing_refreshes_across_replicas_sharing_redis_let_exactly_one_win")
    else {
        return;
    };
    let prefix = common::unique_prefix();
    let keys = tokens();
    let replicas: Vec<Router> = (0..3)
        .map(|_| {
            let store = RedisStore::open(&url, &prefix, store_config()).unwrap();
            common::hybrid_with(store, keys.clone(), false, &common::base())
        })
        .collect();
    for _ in 0..20 {
        one_racing_refresh_wins(&replicas).await;
    }
    common::redis_cleanup(&url, &prefix).await;
}

/// The same race straight on every registered in-memory store, threads
/// rotating one token: exactly one wins.
#[test]
fn every_registered_store_lets_one_racing_rotation_win() {
    struct Race;
    impl StoreVisitor for Race {
        fn visit<A: MapAdapter>(&mut self) {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let store = Arc::new(MapStore::<A>::new(store_config()));
                for _ in 0..50 {
                    let token = refresh::start(&*store, Default::default(), 1)
                        .await
                        .unwrap();
                    let racers: Vec<_> = (0..4)
                        .map(|_| {
                            let store = store.clone();
                            tokio::spawn(async move { refresh::rotate(&*store, token, 2).await })
                        })
                        .collect();
                    let mut wins = 0;
                    for r in racers {
                        match r.await.unwrap() {
                            Ok(_) => wins += 1,
                            Err(e) => assert!(
                                matches!(e, RefreshError::Reused | RefreshError::Unknown),
                                "{}: {e}",
                                A::NAME
                            ),
                        }
                    }
                    assert_eq!(wins, 1, "{}", A::NAME);
                    assert_eq!(
                        store.len().await.unwrap(),
                        0,
                        "{}: the family ended",
                        A::NAME
                    );
                }
            });
        }
    }
    for_each_store(&mut Race);
}

/// `statebench_store_calls_total` counts what each design asks of its
/// store: nothing for a hybrid access-token request, one call for a
/// refresh and for a cart write, one for every stateful request.
#[tokio::test]
async fn the_store_is_called_on_refresh_and_writes_only() {
    let base = common::base();
    let metrics = base.metrics.clone();
    let app = common::hybrid_with(MemoryStore::new(store_config()), tokens(), false, &base);
    let p = login(&app).await;
    assert_eq!(metrics.store_calls.get(), 1, "login starts a family");
    for _ in 0..10 {
        assert_eq!(get(&app, "/profile", &p.token).await.0, 200);
    }
    assert_eq!(metrics.store_calls.get(), 1, "access tokens need no store");
    let p = use_refresh(&app, &p.refresh).await.unwrap();
    assert_eq!(metrics.store_calls.get(), 2);
    post(
        &app,
        "/cart/items",
        Some(&p.token),
        r#"{"sku":"a","qty":1}"#,
    )
    .await;
    assert_eq!(metrics.store_calls.get(), 3);
    let (_, text) = get(&app, "/metrics", "").await;
    assert!(text.contains("statebench_store_calls_total 3"), "{text}");
    assert_eq!(metrics.requests("/refresh", 200), 1);

    let base = common::base();
    let metrics = base.metrics.clone();
    let stateful = common::stateful_with(MemoryStore::new(store_config()), &base);
    let (status, headers, _) = common::call(
        &stateful,
        Request::post("/login").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let cookie = headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    for _ in 0..10 {
        let req = Request::get("/profile")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap();
        assert_eq!(common::call(&stateful, req).await.0, 200);
    }
    assert_eq!(
        metrics.store_calls.get(),
        11,
        "one call per stateful request"
    );
}

/// The comparison's revocation probe against real sockets: a stateless
/// token outlives its logout by its remaining lifetime, a session and a
/// denylisted token by nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revocation_probe_measures_what_outlives_a_logout() {
    use statebench::compare::revocation::probe;
    let one_second = || {
        Arc::new(TokenService::new(
            KeyPair::generate(TokenAlg::HS256).unwrap(),
            1,
            0,
        ))
    };
    let stateless = common::serve(
        common::stateless_with(one_second(), false, &common::base()),
        Default::default(),
    )
    .await;
    let (delay, refused) = probe(&stateless.url(""), &stateless.url(""), 1)
        .await
        .unwrap();
    assert!(refused);
    // Valid through the second of its exp: between 1 and 2 s after signing.
    assert!(
        (0.5..2.1).contains(&delay.as_secs_f64()),
        "{delay:?} for a 1-second token"
    );
    let hybrid = common::serve(
        common::hybrid_with(
            MemoryStore::new(store_config()),
            one_second(),
            false,
            &common::base(),
        ),
        Default::default(),
    )
    .await;
    let (delay, refused) = probe(&hybrid.url(""), &hybrid.url(""), 1).await.unwrap();
    assert!(refused && delay.as_secs_f64() > 0.5, "{delay:?}");
    for app in [
        common::stateful_app(),
        common::stateless_app(true),
        common::hybrid_app(true),
    ] {
        let server = common::serve(app, Default::default()).await;
        assert_eq!(
            probe(&server.url(""), &server.url(""), 1).await.unwrap(),
            (std::time::Duration::ZERO, true)
        );
    }
}
