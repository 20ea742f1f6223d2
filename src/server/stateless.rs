//! The stateless server: every request carries a signed JWT and the server
//! keeps nothing between requests (unless `--revocation denylist`).
//!
//! Routes (the classic Express + `jsonwebtoken` contract):
//! - `POST /login` → `{"token": …}`;
//! - `GET /profile` with `Authorization: <token>` or `Bearer <token>` →
//!   `Welcome back, <name>`; anything wrong with the token → 403;
//! - `GET /cart` → the cart carried in the token; `POST /cart/items` →
//!   `{"token": …}`, a new token carrying the whole cart (it grows with it);
//! - `POST /logout` → 204. Without a denylist the token stays valid until its
//!   `exp`: a JWT cannot be taken back, which is the design's known weakness.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Serialize;

use super::{input_error, reject};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::model::{CartItem, CartView, LoginRequest, parse_body};
use crate::revocation::{Denylist, RevokeError};
use crate::token::{self, Claims, MAX_TOKEN_LEN, TokenError, TokenService};

/// Everything the stateless handlers share.
#[derive(Clone)]
pub struct StatelessState {
    pub tokens: Arc<TokenService>,
    pub clock: SharedClock,
    /// Present with `--revocation denylist`.
    pub denylist: Option<Arc<Denylist>>,
    pub metrics: Arc<Metrics>,
}

/// What handlers receive: one `Arc`, so extracting the state per request is
/// one reference-count increment rather than one per field.
type Shared = Arc<StatelessState>;

/// What the stateless server is built from.
pub struct Config {
    pub tokens: Arc<TokenService>,
    /// Present with `--revocation denylist`.
    pub denylist: Option<Arc<Denylist>>,
}

/// The stateless server: its state, its denylist sweeper (when it has a
/// denylist and `base` asks for sweeps), its routes.
pub fn build(config: Config, base: &super::Base, lifecycle: &super::Lifecycle) -> Router {
    app(state(config, base, lifecycle), base.request_timeout)
}

/// The state tokens are checked with, and its denylist sweeper (when it has
/// a denylist and `base` asks for sweeps): the stateless server's, and the
/// hybrid server's for its access tokens.
pub(crate) fn state(
    config: Config,
    base: &super::Base,
    lifecycle: &super::Lifecycle,
) -> StatelessState {
    let state = StatelessState {
        tokens: config.tokens,
        clock: base.clock.clone(),
        denylist: config.denylist,
        metrics: base.metrics.clone(),
    };
    if let Some(every) = base.sweep_interval {
        spawn_denylist_sweeper(&state, every, lifecycle);
    }
    state
}

/// The stateless server's routes.
fn app(state: StatelessState, request_timeout: std::time::Duration) -> Router {
    let metrics = state.metrics.clone();
    let router = Router::new()
        .route("/login", post(login))
        .route("/profile", get(profile))
        .route("/cart", get(cart))
        .route("/cart/items", post(add_item))
        .route("/logout", post(logout))
        .route("/metrics", get(metrics_handler))
        .with_state(Arc::new(state));
    super::finish(router, &metrics, request_timeout)
}

#[derive(Serialize)]
pub(crate) struct TokenBody {
    pub token: String,
}

/// A request whose `Authorization` header holds a valid, unrevoked token.
pub struct Authenticated(pub Claims);

/// Why authentication failed; always answered 403 `Forbidden`, as in the
/// classic example (the reason is logged at debug level, not sent).
pub struct Forbidden(pub TokenError);

impl IntoResponse for Forbidden {
    fn into_response(self) -> Response {
        tracing::debug!(reason = %self.0, "token refused");
        (StatusCode::FORBIDDEN, "Forbidden").into_response()
    }
}

impl FromRequestParts<Shared> for Authenticated {
    type Rejection = Forbidden;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        authenticate(&parts.headers, state).map(Self)
    }
}

/// The claims of a request's `Authorization` token if it is valid and not
/// revoked: the size cap first, then the signature and claims, then the
/// denylist (the hybrid server authenticates its access tokens here too).
pub(crate) fn authenticate(
    headers: &header::HeaderMap,
    state: &StatelessState,
) -> Result<Claims, Forbidden> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(Forbidden(TokenError::Malformed))?;
    if value.len() > MAX_TOKEN_LEN + 16 {
        return Err(Forbidden(TokenError::TooLarge));
    }
    let value = value
        .to_str()
        .map_err(|_| Forbidden(TokenError::Malformed))?;
    let token = token::from_authorization(value);
    let claims = state.tokens.verify(token).map_err(Forbidden)?;
    if let Some(d) = &state.denylist
        && d.is_revoked(claims.revocation_key(token))
    {
        return Err(Forbidden(TokenError::Revoked));
    }
    Ok(claims)
}

/// Why a token was not issued.
#[derive(Debug)]
pub(crate) enum Unsigned {
    /// Longer than [`MAX_TOKEN_LEN`]: its cart is too large to carry (413).
    TooLarge(usize),
    /// The signer failed (500; logged).
    Failed,
}

impl IntoResponse for Unsigned {
    fn into_response(self) -> Response {
        match self {
            Unsigned::TooLarge(len) => reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                format_args!("cart too large for a token ({len} bytes > {MAX_TOKEN_LEN})"),
            ),
            Unsigned::Failed => reject(StatusCode::INTERNAL_SERVER_ERROR, "token signing failed"),
        }
    }
}

/// Signs `claims`, refusing a token over [`MAX_TOKEN_LEN`].
pub(crate) fn sign_capped(state: &StatelessState, claims: &Claims) -> Result<String, Unsigned> {
    match state.tokens.sign(claims) {
        Ok(token) if token.len() > MAX_TOKEN_LEN => Err(Unsigned::TooLarge(token.len())),
        Ok(token) => Ok(token),
        Err(e) => {
            tracing::error!(error = %e, "signing failed");
            Err(Unsigned::Failed)
        }
    }
}

fn signed(state: &StatelessState, claims: &Claims) -> Response {
    match sign_capped(state, claims) {
        Ok(token) => Json(TokenBody { token }).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn login(State(state): State<Shared>, body: Bytes) -> Response {
    let user = match parse_body::<LoginRequest>(&body).and_then(LoginRequest::into_user) {
        Ok(u) => u,
        Err(e) => return input_error(e),
    };
    let claims = Claims::for_login(&user, state.clock.now_secs(), state.tokens.ttl_secs());
    signed(&state, &claims)
}

async fn profile(Authenticated(claims): Authenticated) -> String {
    welcome(&claims)
}

async fn cart(Authenticated(claims): Authenticated) -> Response {
    cart_view(&claims)
}

/// `GET /profile`'s answer to a token's holder (the hybrid server's too).
pub(crate) fn welcome(claims: &Claims) -> String {
    format!("Welcome back, {}", claims.name)
}

/// `GET /cart`'s answer: the cart the token carries.
pub(crate) fn cart_view(claims: &Claims) -> Response {
    Json(CartView {
        items: &claims.cart.0,
    })
    .into_response()
}

async fn add_item(
    State(state): State<Shared>,
    Authenticated(mut claims): Authenticated,
    body: Bytes,
) -> Response {
    let item = match parse_body::<CartItem>(&body).and_then(|i| i.validate().map(|()| i)) {
        Ok(i) => i,
        Err(e) => return input_error(e),
    };
    if let Err(e) = claims.cart.add(item) {
        return input_error(e);
    }
    // Same jti and exp: the cart update does not extend the login.
    claims.iat = state.clock.now_secs();
    signed(&state, &claims)
}

async fn logout(
    State(state): State<Shared>,
    Authenticated(claims): Authenticated,
    headers: header::HeaderMap,
) -> Response {
    // The extractor accepted this header, so it is there and is text.
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map_or("", token::from_authorization);
    if let Some(d) = &state.denylist
        && let Err(e) = d.revoke(claims.revocation_key(token), claims.exp).await
    {
        return revoke_refused(&e);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// 503 with Retry-After for a logout whose revocation was not recorded
/// everywhere (a retry records it; recording one twice is harmless).
pub(crate) fn revoke_refused(e: &RevokeError) -> Response {
    tracing::warn!(error = %e, "logout not recorded everywhere");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        e.to_string(),
    )
        .into_response()
}

async fn metrics_handler(State(state): State<Shared>) -> Response {
    if let Some(d) = &state.denylist {
        state.metrics.revoked_tokens.set(d.len() as i64);
    }
    state.metrics.render()
}

/// Forgets expired revocations every `interval` until `stop` is cancelled.
fn spawn_denylist_sweeper(
    state: &StatelessState,
    interval: std::time::Duration,
    lifecycle: &super::Lifecycle,
) {
    let Some(denylist) = state.denylist.clone() else {
        return;
    };
    let clock = state.clock.clone();
    let stop = lifecycle.stop.clone();
    lifecycle.tasks.spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = tick.tick() => { denylist.sweep(clock.now_secs()); }
                () = stop.cancelled() => return,
            }
        }
    });
}
