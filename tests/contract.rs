//! The HTTP contract of the stateless, stateful and hybrid servers, through
//! their Routers (`oneshot`, no socket) and over real loopback sockets.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, header};
use proptest::prelude::*;
use statebench::server::Lifecycle;
use statebench::session::{MemoryStore, RedisStore, StoreConfig};

/// How a client proves who it is.
#[derive(Debug, Clone)]
enum Cred {
    None,
    Token(String),
    Cookie(String),
}

enum Transport {
    Router(Router),
    Socket(reqwest::Client, String),
}

/// A client that keeps whatever credential the server hands it.
struct Client {
    cred: Cred,
    transport: Transport,
}

impl Client {
    fn router(app: Router) -> Self {
        Self {
            cred: Cred::None,
            transport: Transport::Router(app),
        }
    }

    fn socket(base: String) -> Self {
        Self {
            cred: Cred::None,
            transport: Transport::Socket(reqwest::Client::new(), base),
        }
    }

    async fn send(&mut self, method: Method, path: &str, body: &str) -> (u16, String) {
        let mut req = Request::builder().method(method).uri(path);
        match &self.cred {
            Cred::None => {}
            Cred::Token(t) => req = req.header(header::AUTHORIZATION, t.as_str()),
            Cred::Cookie(c) => req = req.header(header::COOKIE, format!("other=1; sid={c}")),
        }
        let req = req.body(body.to_owned()).unwrap();
        let (status, set_cookie, body) = match &self.transport {
            Transport::Router(app) => {
                let (status, headers, body) = common::call(app, req.map(Body::from)).await;
                (status, headers.get(header::SET_COOKIE).cloned(), body)
            }
            Transport::Socket(client, base) => {
                let (parts, body) = req.into_parts();
                let url = format!("{base}{}", parts.uri);
                let res = client
                    .request(parts.method, url)
                    .headers(parts.headers)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let set_cookie = res.headers().get(header::SET_COOKIE).cloned();
                (status, set_cookie, res.bytes().await.unwrap().to_vec())
            }
        };
        assert!(status < 500, "{status} for {path}");
        let body = String::from_utf8(body).unwrap();
        if let Some(c) = set_cookie.as_ref().and_then(|v| v.to_str().ok()) {
            let sid = c.split(';').next().unwrap().strip_prefix("sid=").unwrap();
            if !sid.is_empty() {
                assert!(
                    c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/"),
                    "{c}"
                );
                assert_eq!(sid.len(), 32, "128-bit id as hex");
                self.cred = Cred::Cookie(sid.to_owned());
            }
        }
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
            && let Some(t) = v.get("token").and_then(|t| t.as_str())
        {
            self.cred = Cred::Token(t.to_owned());
        }
        (status, body)
    }
}

/// The same user script on any server. Returns what a user can observe:
/// statuses everywhere, and the bodies of the reads.
async fn script(c: &mut Client) -> Vec<(u16, Option<String>)> {
    let mut seen = Vec::new();
    let (s, _) = c.send(Method::POST, "/login", "").await;
    seen.push((s, None));
    for item in [
        r#"{"sku":"a","qty":1}"#,
        r#"{"sku":"b","qty":2}"#,
        r#"{"sku":"a","qty":3}"#,
    ] {
        let (s, _) = c.send(Method::POST, "/cart/items", item).await;
        seen.push((s, None));
    }
    for path in ["/cart", "/profile"] {
        let (s, b) = c.send(Method::GET, path, "").await;
        seen.push((s, Some(b)));
    }
    let (s, _) = c.send(Method::POST, "/logout", "").await;
    seen.push((s, None));
    let (s, b) = c.send(Method::GET, "/profile", "").await;
    seen.push((s, Some(b)));
    seen
}

fn expected(after_logout: u16) -> Vec<(u16, Option<String>)> {
    let last = if after_logout == 200 {
        "Welcome back, John Doe"
    } else {
        "Forbidden"
    };
    vec![
        (200, None),
        (200, None),
        (200, None),
        (200, None),
        (
            200,
            Some(r#"{"items":[{"sku":"a","qty":4},{"sku":"b","qty":2}]}"#.into()),
        ),
        (200, Some("Welcome back, John Doe".into())),
        (204, None),
        (after_logout, Some(last.into())),
    ]
}

#[tokio::test]
async fn same_script_same_answers_through_routers() {
    // The one documented difference: a JWT stays valid after logout.
    assert_eq!(
        script(&mut Client::router(common::stateless_app(false))).await,
        expected(200)
    );
    assert_eq!(
        script(&mut Client::router(common::stateless_app(true))).await,
        expected(403)
    );
    assert_eq!(
        script(&mut Client::router(common::stateful_app())).await,
        expected(403)
    );
    // The hybrid server's access token, like any JWT, lives to its `exp`
    // (the access TTL) after logout, unless it keeps a denylist.
    assert_eq!(
        script(&mut Client::router(common::hybrid_app(false))).await,
        expected(200)
    );
    assert_eq!(
        script(&mut Client::router(common::hybrid_app(true))).await,
        expected(403)
    );
}

#[tokio::test]
async fn same_script_same_answers_over_sockets() {
    for (app, after_logout) in [
        (common::stateless_app(false), 200),
        (common::stateless_app(true), 403),
        (common::stateful_app(), 403),
        (common::hybrid_app(false), 200),
        (common::hybrid_app(true), 403),
    ] {
        let server = common::serve(app, Lifecycle::default()).await;
        let got = script(&mut Client::socket(server.url(""))).await;
        assert_eq!(got, expected(after_logout));
        common::shutdown(server).await;
    }
}

#[tokio::test]
async fn same_script_on_redis_store() {
    let Some(url) = common::redis_url("same_script_on_redis_store") else {
        return;
    };
    let prefix = common::unique_prefix();
    let store = RedisStore::open(&url, &prefix, StoreConfig::default()).unwrap();
    let app = common::stateful_with(store, &common::base());
    assert_eq!(script(&mut Client::router(app)).await, expected(403));
    let store = RedisStore::open(&url, &prefix, StoreConfig::default()).unwrap();
    let app = common::hybrid_with(store, common::tokens(), true, &common::base());
    assert_eq!(script(&mut Client::router(app)).await, expected(403));
    common::redis_cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn replicas_sharing_redis_share_sessions() {
    let Some(url) = common::redis_url("replicas_sharing_redis_share_sessions") else {
        return;
    };
    let prefix = common::unique_prefix();
    let replica = || {
        let store = RedisStore::open(&url, &prefix, StoreConfig::default()).unwrap();
        common::stateful_with(store, &common::base())
    };
    let (a, b) = (replica(), replica());
    let mut c = Client::router(a);
    assert_eq!(
        c.send(Method::POST, "/login", r#"{"name":"Ann"}"#).await.0,
        200
    );
    c.transport = Transport::Router(b);
    assert_eq!(
        c.send(Method::GET, "/profile", "").await,
        (200, "Welcome back, Ann".into())
    );
    common::redis_cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn login_body_is_optional_and_validated() {
    for app in [
        common::stateless_app(false),
        common::stateful_app(),
        common::hybrid_app(false),
    ] {
        let mut c = Client::router(app.clone());
        assert_eq!(
            c.send(Method::POST, "/login", r#"{"name":"Ann"}"#).await.0,
            200
        );
        assert_eq!(
            c.send(Method::GET, "/profile", "").await.1,
            "Welcome back, Ann"
        );
        let (s, b) = c.send(Method::POST, "/login", r#"{"name":"#).await;
        assert_eq!(s, 400);
        assert!(
            b.starts_with("invalid JSON body") && !b.contains('\n'),
            "{b}"
        );
        assert_eq!(
            c.send(Method::POST, "/login", r#"{"name":""}"#).await.0,
            400
        );
        assert_eq!(
            c.send(Method::POST, "/login", r#"{"nom":"x"}"#).await.0,
            400
        );
        let (s, _) = c
            .send(Method::POST, "/cart/items", r#"{"sku":"a","qty":0}"#)
            .await;
        assert_eq!(s, 400);
        let huge = format!(r#"{{"name":"{}"}}"#, "x".repeat(70 * 1024));
        assert_eq!(c.send(Method::POST, "/login", &huge).await.0, 413);
    }
}

#[tokio::test]
async fn missing_or_wrong_credentials_get_403() {
    let stateless = common::stateless_app(false);
    for auth in ["", "Bearer", "Bearer abc", "a.b.c", "Basic dXNlcjpwdw=="] {
        let req = Request::get("/profile")
            .header(header::AUTHORIZATION, auth)
            .body(Body::empty())
            .unwrap();
        assert_eq!(common::call(&stateless, req).await.0, 403, "{auth:?}");
    }
    let req = Request::get("/profile").body(Body::empty()).unwrap();
    assert_eq!(common::call(&stateless, req).await.0, 403);
    let stateful = common::stateful_app();
    for cookie in [
        "",
        "sid=",
        "sid=zz",
        &format!("sid={}", "0".repeat(32)),
        "sid=00000000000000000000000000000001x",
    ] {
        let req = Request::get("/cart")
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap();
        assert_eq!(common::call(&stateful, req).await.0, 403, "{cookie:?}");
    }
}

#[tokio::test]
async fn stateless_cart_token_grows_until_the_cap() {
    let mut c = Client::router(common::stateless_app(false));
    c.send(Method::POST, "/login", "").await;
    let Cred::Token(first) = c.cred.clone() else {
        panic!()
    };
    let mut last = first.len();
    let mut status = 200;
    for i in 0..300 {
        let item = format!(r#"{{"sku":"sku-{i:04}-padding-padding","qty":1}}"#);
        status = c.send(Method::POST, "/cart/items", &item).await.0;
        if status != 200 {
            break;
        }
        let Cred::Token(t) = &c.cred else { panic!() };
        assert!(t.len() > last, "the token carries the whole cart");
        last = t.len();
    }
    assert_eq!(
        status, 413,
        "a cart too large for a token is refused, not truncated"
    );
    assert!(last <= statebench::token::MAX_TOKEN_LEN);
    // The last good token still works.
    assert_eq!(c.send(Method::GET, "/profile", "").await.0, 200);
}

#[tokio::test]
async fn stateful_sessions_expire_when_idle_and_cap_answers_503() {
    let (clock, shared) = common::manual_clock();
    let store = MemoryStore::new(StoreConfig {
        idle_ttl_ms: 60_000,
        max_sessions: 2,
    });
    let app = common::stateful_with(store, &common::base_at(shared));
    let mut a = Client::router(app.clone());
    let mut b = Client::router(app.clone());
    assert_eq!(a.send(Method::POST, "/login", "").await.0, 200);
    assert_eq!(b.send(Method::POST, "/login", "").await.0, 200);
    // Full: 503 with Retry-After.
    let (status, headers, _) =
        common::call(&app, Request::post("/login").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 503);
    assert_eq!(
        headers.get(header::RETRY_AFTER),
        Some(&HeaderValue::from_static("1"))
    );
    // a stays active, b goes idle.
    clock.advance(40_000);
    assert_eq!(a.send(Method::GET, "/profile", "").await.0, 200);
    clock.advance(40_000);
    assert_eq!(a.send(Method::GET, "/profile", "").await.0, 200);
    assert_eq!(b.send(Method::GET, "/profile", "").await.0, 403);
    // b's slot was freed by the expired read.
    assert_eq!(
        Client::router(app).send(Method::POST, "/login", "").await.0,
        200
    );
}

#[tokio::test]
async fn unreachable_redis_answers_503_with_a_reason() {
    // Nothing listens on port 1.
    let store = RedisStore::open("redis://127.0.0.1:1", "sb", StoreConfig::default()).unwrap();
    let base = common::base();
    let metrics = base.metrics.clone();
    let app = common::stateful_with(store, &base);
    let (status, _, body) =
        common::call(&app, Request::post("/login").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 503);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "session store unavailable"
    );
    let cookie = format!("sid={}", "a".repeat(32));
    let req = Request::get("/profile")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    assert_eq!(common::call(&app, req).await.0, 503);
    let (_, _, text) =
        common::call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("statebench_store_errors_total"), "{text}");
    assert!(metrics.requests("/login", 503) == 1);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let base = common::base();
    let metrics = base.metrics.clone();
    let app = common::stateless_with(common::tokens(), false, &base);
    let mut c = Client::router(app.clone());
    c.send(Method::POST, "/login", "").await;
    c.send(Method::GET, "/profile", "").await;
    c.send(Method::GET, "/profile", "").await;
    common::call(&app, Request::get("/profile").body(Body::empty()).unwrap()).await;
    let (s, _, body) =
        common::call(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!((s, body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(metrics.requests("/profile", 200), 2);
    assert_eq!(metrics.requests("/profile", 403), 1);
    assert_eq!(metrics.requests("/login", 200), 1);
    let (_, _, text) =
        common::call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains(r#"statebench_http_requests_total{route="/profile",status="200"} 2"#),
        "{text}"
    );
}

// ---- bad input never yields a 5xx or a panic ----

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Arbitrary bytes that can still travel in a header (no CR, LF, NUL, DEL).
fn header_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')],
        0..max,
    )
}

#[derive(Debug, Clone)]
struct BadRequest {
    method: Method,
    path: String,
    authorization: Option<Vec<u8>>,
    cookie: Option<Vec<u8>>,
    body: Vec<u8>,
}

fn bad_request() -> impl Strategy<Value = BadRequest> {
    let method = prop::sample::select(vec![Method::GET, Method::POST, Method::PUT, Method::DELETE]);
    let path = prop_oneof![
        prop::sample::select(vec![
            "/login",
            "/profile",
            "/cart",
            "/cart/items",
            "/logout",
            "/refresh",
            "/healthz",
            "/metrics"
        ])
        .prop_map(String::from),
        "/[ -~]{0,40}",
        "/cart/[a-z%0-9]{0,10}",
    ];
    let auth = prop_oneof![
        header_bytes(200),
        "Bearer [ -~]{0,300}".prop_map(String::into_bytes),
        "eyJ[A-Za-z0-9_.-]{0,400}".prop_map(String::into_bytes),
    ];
    let cookie = prop_oneof![
        header_bytes(200),
        "sid=[0-9a-f]{0,40}(; [ -~]{0,20})?".prop_map(String::into_bytes)
    ];
    let body = prop_oneof![
        bytes(300),
        r#"\{"(name|sku|qty|id)":[ -~]{0,30}\}"#.prop_map(String::into_bytes),
        r#"\{"refresh_token":"[0-9a-f.]{0,70}"\}"#.prop_map(String::into_bytes),
        Just(vec![b'x'; 70 * 1024]),
    ];
    (
        method,
        path,
        prop::option::of(auth),
        prop::option::of(cookie),
        body,
    )
        .prop_map(|(method, path, authorization, cookie, body)| BadRequest {
            method,
            path,
            authorization,
            cookie,
            body,
        })
}

fn to_request(r: &BadRequest) -> Option<Request<Body>> {
    let mut req = Request::builder()
        .method(r.method.clone())
        .uri(r.path.as_str());
    if let Some(a) = &r.authorization {
        req = req.header(header::AUTHORIZATION, HeaderValue::from_bytes(a).ok()?);
    }
    if let Some(c) = &r.cookie {
        req = req.header(header::COOKIE, HeaderValue::from_bytes(c).ok()?);
    }
    req.body(Body::from(r.body.clone())).ok()
}

#[test]
fn bad_input_never_yields_5xx() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let apps = rt.block_on(async {
        [
            common::stateless_app(false),
            common::stateless_app(true),
            common::stateful_app(),
            common::hybrid_app(false),
            common::hybrid_app(true),
        ]
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(512));
    let sent = std::cell::Cell::new(0);
    runner
        .run(&bad_request(), |r| {
            let Some(_) = to_request(&r) else {
                return Ok(()); // not a request any client could send
            };
            sent.set(sent.get() + 1);
            for app in &apps {
                let (status, _, _) = rt.block_on(common::call(app, to_request(&r).unwrap()));
                prop_assert!(status < 500, "{} for {:?}", status, r);
            }
            Ok(())
        })
        .unwrap();
    assert!(
        sent.get() >= 256,
        "only {} of 512 generated requests were sendable",
        sent.get()
    );
}
