//! The stateful server: the same routes as [`super::stateless`], but the
//! state lives on the server, found through the `sid` cookie.
//!
//! - `POST /login` creates a session and sets `sid` (128 random bits,
//!   `HttpOnly; SameSite=Lax; Path=/`), body `{"session":"ok"}`;
//! - `/profile`, `/cart`, `/cart/items` read or change that session; an
//!   unknown or expired `sid` gets 403;
//! - `POST /logout` deletes the session at once.
//!
//! A full store answers 503 with `Retry-After`; an unreachable store answers
//! 503 with a one-line reason (and counts a store error).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};

use super::counted::Counted;
use super::{Lifecycle, input_error, reject};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::model::{CartItem, CartView, LoginRequest, parse_body};
use crate::session::{Session, SessionId, SessionStore, StoreError};

/// The cookie that carries the session id.
pub const COOKIE: &str = "sid";

/// Everything the stateful handlers share.
pub struct StatefulState<S> {
    pub store: Arc<S>,
    pub clock: SharedClock,
    pub metrics: Arc<Metrics>,
    /// Adds `Secure` to the cookie (behind TLS).
    pub cookie_secure: bool,
}

impl<S> Clone for StatefulState<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
            cookie_secure: self.cookie_secure,
        }
    }
}

/// What the stateful server is built from.
pub struct Config<S> {
    pub store: Arc<S>,
    /// Adds `Secure` to the cookie (behind TLS).
    pub cookie_secure: bool,
}

/// The stateful server over any store: its state, its sweeper (when `base`
/// asks for sweeps), its routes.
pub fn build<S: SessionStore>(
    config: Config<S>,
    base: &super::Base,
    lifecycle: &Lifecycle,
) -> Router {
    let state = StatefulState {
        store: Arc::new(Counted::new(config.store, base.metrics.store_calls.clone())),
        clock: base.clock.clone(),
        metrics: base.metrics.clone(),
        cookie_secure: config.cookie_secure,
    };
    if let Some(every) = base.sweep_interval {
        spawn_sweeper(&state.store, &state.clock, &state.metrics, every, lifecycle);
    }
    app(state, base.request_timeout)
}

/// The stateful server's routes over any store. Handlers share one
/// `Arc<StatefulState>`: one reference-count increment per request.
fn app<S: SessionStore>(state: StatefulState<S>, request_timeout: Duration) -> Router {
    let metrics = state.metrics.clone();
    let router = Router::new()
        .route("/login", post(login::<S>))
        .route("/profile", get(profile::<S>))
        .route("/cart", get(cart::<S>))
        .route("/cart/items", post(add_item::<S>))
        .route("/logout", post(logout::<S>))
        .route("/metrics", get(metrics_handler::<S>))
        .with_state(Arc::new(state));
    super::finish(router, &metrics, request_timeout)
}

/// The `sid` of a request, if it carries a well-formed one.
pub struct Sid(pub SessionId);

/// No well-formed `sid` cookie, or no live session behind it: 403.
pub struct Forbidden;

impl IntoResponse for Forbidden {
    fn into_response(self) -> Response {
        (StatusCode::FORBIDDEN, "Forbidden").into_response()
    }
}

/// Finds `sid` among the request's `Cookie` headers.
pub fn sid_from_headers(headers: &HeaderMap) -> Option<SessionId> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| value.trim_matches('"').parse().ok())
}

impl<S: Send + Sync> FromRequestParts<S> for Sid {
    type Rejection = Forbidden;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        sid_from_headers(&parts.headers).map(Sid).ok_or(Forbidden)
    }
}

/// 503 for a store that failed: with `Retry-After` when it is full, and a
/// counted store error when it is unreachable.
pub(crate) fn store_error(metrics: &Metrics, e: StoreError) -> Response {
    match e {
        StoreError::Full => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "session store is full",
        )
            .into_response(),
        StoreError::Unavailable(reason) => {
            metrics.store_errors.inc();
            tracing::warn!(%reason, "session store unavailable");
            reject(StatusCode::SERVICE_UNAVAILABLE, "session store unavailable")
        }
    }
}

/// Looks a live session up through `f`: 403 if none, 503 if the store fails.
async fn with_session<S: SessionStore, R: Send>(
    state: &StatefulState<S>,
    id: SessionId,
    f: impl FnOnce(&Session) -> R + Send,
) -> Result<R, Response> {
    match state.store.get(id, state.clock.now_ms(), f).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(Forbidden.into_response()),
        Err(e) => Err(store_error(&state.metrics, e)),
    }
}

async fn login<S: SessionStore>(
    State(state): State<Arc<StatefulState<S>>>,
    body: Bytes,
) -> Response {
    let user = match parse_body::<LoginRequest>(&body).and_then(LoginRequest::into_user) {
        Ok(u) => u,
        Err(e) => return input_error(e),
    };
    let now = state.clock.now_ms();
    match state.store.create(Session::new(user, now), now).await {
        Ok(id) => {
            let secure = if state.cookie_secure { "; Secure" } else { "" };
            let cookie = format!("{COOKIE}={id}; HttpOnly; SameSite=Lax; Path=/{secure}");
            let cookie = HeaderValue::from_str(&cookie).expect("hex id makes a valid header");
            (
                [(header::SET_COOKIE, cookie)],
                Json(serde_json::json!({"session": "ok"})),
            )
                .into_response()
        }
        Err(e) => store_error(&state.metrics, e),
    }
}

async fn profile<S: SessionStore>(
    State(state): State<Arc<StatefulState<S>>>,
    Sid(id): Sid,
) -> Response {
    match with_session(&state, id, |s| format!("Welcome back, {}", s.user.name)).await {
        Ok(body) => body.into_response(),
        Err(r) => r,
    }
}

async fn cart<S: SessionStore>(
    State(state): State<Arc<StatefulState<S>>>,
    Sid(id): Sid,
) -> Response {
    let json = with_session(&state, id, |s| {
        serde_json::to_vec(&CartView { items: &s.cart.0 }).expect("a cart always serializes")
    })
    .await;
    match json {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(r) => r,
    }
}

async fn add_item<S: SessionStore>(
    State(state): State<Arc<StatefulState<S>>>,
    Sid(id): Sid,
    body: Bytes,
) -> Response {
    let item = match parse_body::<CartItem>(&body).and_then(|i| i.validate().map(|()| i)) {
        Ok(i) => i,
        Err(e) => return input_error(e),
    };
    match state
        .store
        .update(id, state.clock.now_ms(), |s| s.cart.add(item))
        .await
    {
        Ok(Some(Ok(()))) => Json(serde_json::json!({"session": "ok"})).into_response(),
        Ok(Some(Err(e))) => input_error(e),
        Ok(None) => Forbidden.into_response(),
        Err(e) => store_error(&state.metrics, e),
    }
}

async fn logout<S: SessionStore>(
    State(state): State<Arc<StatefulState<S>>>,
    Sid(id): Sid,
) -> Response {
    // Only a live session can log out, as on the stateless server.
    if let Err(r) = with_session(&state, id, |_| ()).await {
        return r;
    }
    match state.store.remove(id).await {
        Ok(()) => {
            let clear = format!("{COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
            (
                StatusCode::NO_CONTENT,
                [(
                    header::SET_COOKIE,
                    HeaderValue::from_str(&clear).expect("static cookie"),
                )],
            )
                .into_response()
        }
        Err(e) => store_error(&state.metrics, e),
    }
}

async fn metrics_handler<S: SessionStore>(State(state): State<Arc<StatefulState<S>>>) -> Response {
    match state.store.len().await {
        Ok(n) => {
            state.metrics.sessions_live.set(n as i64);
        }
        Err(_) => {
            state.metrics.store_errors.inc();
        }
    }
    state.metrics.render()
}

/// Sweeps `store`'s expired sessions every `interval` until shutdown.
pub(crate) fn spawn_sweeper<S: SessionStore>(
    store: &Arc<S>,
    clock: &SharedClock,
    metrics: &Arc<Metrics>,
    interval: Duration,
    lifecycle: &Lifecycle,
) {
    let store = store.clone();
    let clock = clock.clone();
    let metrics = metrics.clone();
    let stop = lifecycle.stop.clone();
    lifecycle.tasks.spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = tick.tick() => match store.sweep(clock.now_ms()).await {
                    Ok(n) if n > 0 => tracing::debug!(removed = n, "swept expired sessions"),
                    Ok(_) => {}
                    Err(e) => {
                        metrics.store_errors.inc();
                        tracing::warn!(error = %e, "session sweep failed");
                    }
                },
                () = stop.cancelled() => return,
            }
        }
    });
}
