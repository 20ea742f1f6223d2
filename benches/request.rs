//! Per-request cost without the network: each server's Router driven with
//! `oneshot`, so the figures isolate what each architecture adds to a request.
//!
//! Ids: `request/healthz` (the baseline), `request/profile/<server>`,
//! `request/cart/<server>/cart-<n>` with servers `stateless`,
//! `stateless-denylist`, `stateful-memory` and `hybrid` (its access token,
//! checked as the stateless server checks one), and
//! `request/refresh/hybrid-memory`: one `POST /refresh` (a compare-and-set
//! in the store, two SHA-256s, a new access token signed).

mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use criterion::Criterion;
use statebench::clock::{Clock, SystemClock};
use statebench::keys::{KeyPair, TokenAlg};
use statebench::model::User;
use statebench::revocation::Denylist;
use statebench::server::{Base, Lifecycle, hybrid, stateful, stateless};
use statebench::session::{MemoryStore, Session, StoreConfig};
use statebench::token::{Claims, TokenService};
use statebench::workload::{CART_SIZES, cart};
use tower::ServiceExt;

/// No background sweeps: the figures are the requests alone.
fn base() -> Base {
    Base {
        request_timeout: Duration::from_secs(30),
        ..Base::default()
    }
}

fn stateless_app(denylist: bool) -> (Router, Arc<TokenService>) {
    let keys = KeyPair::from_secret(
        TokenAlg::HS256,
        b"benchmark-secret-benchmark-secret-0123456789",
    )
    .unwrap();
    let tokens = Arc::new(TokenService::new(keys, 3600, 0));
    let config = stateless::Config {
        tokens: tokens.clone(),
        denylist: denylist.then(|| Arc::new(Denylist::new(1_000_000))),
    };
    (
        stateless::build(config, &base(), &Lifecycle::default()),
        tokens,
    )
}

fn hybrid_app() -> (Router, Arc<TokenService>) {
    let keys = KeyPair::from_secret(
        TokenAlg::HS256,
        b"benchmark-secret-benchmark-secret-0123456789",
    )
    .unwrap();
    let tokens = Arc::new(TokenService::new(keys, 300, 0));
    let config = hybrid::Config {
        tokens: tokens.clone(),
        store: Arc::new(MemoryStore::new(StoreConfig::default())),
        denylist: None,
    };
    (
        hybrid::build(config, &base(), &Lifecycle::default()),
        tokens,
    )
}

/// `POST path` with a body; the status and the body.
async fn post(app: &Router, path: &str, body: String) -> (u16, axum::body::Bytes) {
    send(app, Request::post(path).body(Body::from(body)).unwrap()).await
}

/// A fresh family's refresh token, as the body of `POST /refresh`.
async fn refresh_body(app: &Router) -> String {
    let (status, body) = post(app, "/login", String::new()).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    serde_json::json!({ "refresh_token": v["refresh_token"] }).to_string()
}

/// One refresh per iteration, each of a fresh family (logged in untimed),
/// so the store holds as many families as iterations ran.
fn bench_refresh(c: &mut Criterion, rt: &tokio::runtime::Runtime, app: &Router) {
    let (status, body) =
        rt.block_on(async { post(app, "/refresh", refresh_body(app).await).await });
    assert_eq!(status, 200, "{body:?}");
    c.benchmark_group("request")
        .bench_function("refresh/hybrid-memory", |b| {
            b.iter_batched(
                || rt.block_on(refresh_body(app)),
                |body| black_box(rt.block_on(post(app, "/refresh", body))),
                criterion::BatchSize::SmallInput,
            )
        });
}

fn stateful_app() -> (Router, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new(StoreConfig::default()));
    let config = stateful::Config {
        store: store.clone(),
        cookie_secure: false,
    };
    (
        stateful::build(config, &base(), &Lifecycle::default()),
        store,
    )
}

/// A request with one credential header.
fn get(path: &str, cred: &(header::HeaderName, String)) -> Request<Body> {
    Request::get(path)
        .header(cred.0.clone(), cred.1.as_str())
        .body(Body::empty())
        .unwrap()
}

async fn send(app: &Router, req: Request<Body>) -> (u16, axum::body::Bytes) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    (
        status,
        axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
}

fn bench_route(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    id: &str,
    app: &Router,
    path: &str,
    cred: &(header::HeaderName, String),
    want: &str,
) {
    // Checked once before timing: the request succeeds with the expected body.
    let (status, body) = rt.block_on(send(app, get(path, cred)));
    assert_eq!(status, 200, "{id:?}");
    assert!(
        std::str::from_utf8(&body).unwrap().starts_with(want),
        "{id:?}: {body:?}"
    );
    c.benchmark_group("request").bench_function(id, |b| {
        b.iter(|| black_box(rt.block_on(send(app, get(path, cred)))))
    });
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now_ms = SystemClock.now_ms();
    let (stateless, tokens) = stateless_app(false);
    let (denylisted, tokens_d) = stateless_app(true);
    let (stateful, store) = stateful_app();
    let (hybrid, tokens_h) = hybrid_app();
    let token_for = |svc: &TokenService, items| {
        let mut claims = Claims::for_login(&User::default(), SystemClock.now_secs(), 3600);
        claims.cart = cart(items, 0);
        (header::AUTHORIZATION, svc.sign(&claims).unwrap())
    };
    let cookie_for = |items| {
        let mut s = Session::new(User::default(), now_ms);
        s.cart = cart(items, 0);
        let id = store.create_now(s, now_ms).unwrap();
        (header::COOKIE, format!("sid={id}"))
    };
    let none = (header::USER_AGENT, "bench".to_owned());

    bench_route(c, &rt, "healthz", &stateless, "/healthz", &none, "ok");
    let welcome = "Welcome back, John Doe";
    bench_route(
        c,
        &rt,
        "profile/stateless",
        &stateless,
        "/profile",
        &token_for(&tokens, 0),
        welcome,
    );
    bench_route(
        c,
        &rt,
        "profile/stateless-denylist",
        &denylisted,
        "/profile",
        &token_for(&tokens_d, 0),
        welcome,
    );
    bench_route(
        c,
        &rt,
        "profile/stateful-memory",
        &stateful,
        "/profile",
        &cookie_for(0),
        welcome,
    );
    bench_route(
        c,
        &rt,
        "profile/hybrid",
        &hybrid,
        "/profile",
        &token_for(&tokens_h, 0),
        welcome,
    );
    bench_refresh(c, &rt, &hybrid);
    for items in CART_SIZES {
        let label = format!("cart-{items}");
        bench_route(
            c,
            &rt,
            &format!("cart/stateless/{label}"),
            &stateless,
            "/cart",
            &token_for(&tokens, items),
            "{\"items\":[",
        );
        bench_route(
            c,
            &rt,
            &format!("cart/stateful-memory/{label}"),
            &stateful,
            "/cart",
            &cookie_for(items),
            "{\"items\":[",
        );
    }
}

fn main() {
    let mut c = support::criterion();
    benches(&mut c);
    c.final_summary();
}
