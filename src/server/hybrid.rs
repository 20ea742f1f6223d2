//! The hybrid server: short-lived access JWTs checked without state, and
//! long-lived refresh tokens kept server-side in refresh families
//! ([`crate::session::refresh`]), rotated on every use.
//!
//! Routes (the stateless contract, plus refresh):
//! - `POST /login` → `{"token", "refresh_token", "expires_in"}`: an access
//!   token living `expires_in` seconds and the family's first refresh token;
//! - `GET /profile`, `GET /cart` with the access token in `Authorization`,
//!   exactly as on the stateless server: no store call, 403 when refused;
//! - `POST /cart/items` → `{"token"}`, an access token carrying the new cart
//!   (same `exp`). The cart is written through to the family: reading it is
//!   stateless, changing it is one store write, and a refresh re-issues it;
//! - `POST /refresh` with `{"refresh_token"}` → a new pair. An unknown,
//!   expired or revoked token gets 401; so does a reused one, which revokes
//!   the whole family;
//! - `POST /logout` with the access token → 204: the family is revoked, so
//!   no refresh works again. The access token itself stays valid until its
//!   `exp` (at most the access TTL), unless the server keeps a denylist
//!   (`--revocation denylist`), which refuses it at once (on every replica
//!   when the denylist is [shared](crate::revocation::shared)).
//!
//! An access token's `jti` is its family's id: every access token of one
//! login shares it (as cart updates keep the `jti` on the stateless server),
//! so one denylist entry revokes them all.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::counted::Counted;
use super::stateless::{
    Forbidden, StatelessState, TokenBody, Unsigned, authenticate, cart_view, revoke_refused,
    sign_capped, welcome,
};
use super::{Lifecycle, input_error};
use crate::model::{Cart, CartItem, InputError, LoginRequest, User, parse_body};
use crate::revocation::Denylist;
use crate::session::refresh::{self, RefreshError, RefreshToken};
use crate::session::{SessionId, SessionStore, StoreError};
use crate::token::{Claims, TokenError, TokenService};

/// Default access-token lifetime in seconds (5 minutes).
pub const DEFAULT_ACCESS_TTL_SECS: u64 = 5 * 60;
/// Default refresh-family lifetime in seconds: a family unused this long
/// expires (14 days).
pub const DEFAULT_REFRESH_TTL_SECS: u64 = 14 * 24 * 60 * 60;

/// What the hybrid server is built from.
pub struct Config<S> {
    /// Signs and verifies access tokens; its TTL is the access TTL.
    pub tokens: Arc<TokenService>,
    /// Where refresh families live; its idle TTL is the refresh TTL.
    pub store: Arc<S>,
    /// Present with `--revocation denylist`: family ids refused at once.
    pub denylist: Option<Arc<Denylist>>,
}

/// Everything the hybrid handlers share: the stateless server's state for
/// access tokens, and the store of refresh families.
pub struct HybridState<S> {
    pub access: StatelessState,
    pub store: Arc<S>,
}

type Shared<S> = Arc<HybridState<S>>;

/// The hybrid server: its state, its sweepers (when `base` asks for sweeps),
/// its routes.
pub fn build<S: SessionStore>(
    config: Config<S>,
    base: &super::Base,
    lifecycle: &Lifecycle,
) -> Router {
    let access = super::stateless::Config {
        tokens: config.tokens,
        denylist: config.denylist,
    };
    let state = HybridState {
        access: super::stateless::state(access, base, lifecycle),
        store: Arc::new(Counted::new(config.store, base.metrics.store_calls.clone())),
    };
    if let Some(every) = base.sweep_interval {
        super::stateful::spawn_sweeper(
            &state.store,
            &state.access.clock,
            &state.access.metrics,
            every,
            lifecycle,
        );
    }
    let metrics = base.metrics.clone();
    let router = Router::new()
        .route("/login", post(login::<Counted<S>>))
        .route("/profile", get(profile))
        .route("/cart", get(cart))
        .route("/cart/items", post(add_item::<Counted<S>>))
        .route("/refresh", post(refresh::<Counted<S>>))
        .route("/logout", post(logout::<Counted<S>>))
        .route("/metrics", get(metrics_handler::<Counted<S>>))
        .with_state(Arc::new(state));
    super::finish(router, &metrics, base.request_timeout)
}

/// A request with a valid, unrevoked access token.
struct Access(Claims);

impl<S: SessionStore> FromRequestParts<Shared<S>> for Access {
    type Rejection = Forbidden;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared<S>,
    ) -> Result<Self, Self::Rejection> {
        authenticate(&parts.headers, &state.access).map(Self)
    }
}

/// The family an access token belongs to; `None` for a token without one
/// (signed with the same key by another issuer), which gets 403.
fn family_of(claims: &Claims) -> Option<SessionId> {
    claims.jti.as_deref().and_then(|j| j.parse().ok())
}

/// Why a cart write was refused before anything was stored.
enum CartRefused {
    Input(InputError),
    Unsigned(Unsigned),
}

/// Body of `POST /login` and `POST /refresh`.
#[derive(Serialize)]
struct PairBody {
    token: String,
    refresh_token: String,
    expires_in: u64,
}

/// Body of `POST /refresh`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

/// 401 for a refresh token that does not work, 503 when the store fails.
fn refresh_refused(metrics: &crate::metrics::Metrics, e: RefreshError) -> Response {
    match e {
        RefreshError::Store(e) => store_error(metrics, e),
        e => {
            tracing::debug!(reason = %e, "refresh refused");
            (StatusCode::UNAUTHORIZED, "Unauthorized").into_response()
        }
    }
}

fn store_error(metrics: &crate::metrics::Metrics, e: StoreError) -> Response {
    super::stateful::store_error(metrics, e)
}

/// An access token and refresh token for `user` with `cart`, of `family`.
fn pair(
    state: &HybridState<impl SessionStore>,
    user: &User,
    cart: Cart,
    next: RefreshToken,
) -> Response {
    let tokens = &state.access.tokens;
    let now = state.access.clock.now_secs();
    let mut claims = Claims::with_id(user, now, tokens.ttl_secs(), next.family.to_string());
    claims.cart = cart;
    match sign_capped(&state.access, &claims) {
        Ok(token) => Json(PairBody {
            token,
            refresh_token: next.to_string(),
            expires_in: tokens.ttl_secs(),
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn login<S: SessionStore>(State(state): State<Shared<S>>, body: Bytes) -> Response {
    let user = match parse_body::<LoginRequest>(&body).and_then(LoginRequest::into_user) {
        Ok(u) => u,
        Err(e) => return input_error(e),
    };
    let now = state.access.clock.now_ms();
    match refresh::start(&*state.store, user.clone(), now).await {
        Ok(first) => pair(&state, &user, Cart::default(), first),
        Err(e) => store_error(&state.access.metrics, e),
    }
}

async fn profile(Access(claims): Access) -> String {
    welcome(&claims)
}

async fn cart(Access(claims): Access) -> Response {
    cart_view(&claims)
}

async fn add_item<S: SessionStore>(
    State(state): State<Shared<S>>,
    Access(claims): Access,
    body: Bytes,
) -> Response {
    let item = match parse_body::<CartItem>(&body).and_then(|i| i.validate().map(|()| i)) {
        Ok(i) => i,
        Err(e) => return input_error(e),
    };
    let Some(family) = family_of(&claims) else {
        return Forbidden(TokenError::Malformed).into_response();
    };
    // The family's cart is the truth (an older access token may carry an
    // older cart). The new token is signed before the write is kept, so a
    // cart too large for a token changes nothing.
    let now = state.access.clock.now_ms();
    let written = state
        .store
        .update_atomic(family, now, |session| {
            let mut next = claims.clone();
            next.cart = session.cart.clone();
            next.cart.add(item.clone()).map_err(CartRefused::Input)?;
            next.iat = state.access.clock.now_secs();
            let token = sign_capped(&state.access, &next).map_err(CartRefused::Unsigned)?;
            session.cart = next.cart;
            Ok(token)
        })
        .await;
    match written {
        Ok(Some(Ok(token))) => Json(TokenBody { token }).into_response(),
        Ok(Some(Err(CartRefused::Input(e)))) => input_error(e),
        Ok(Some(Err(CartRefused::Unsigned(e)))) => e.into_response(),
        // Logged out or revoked: nothing left to write to.
        Ok(None) => Forbidden(TokenError::Revoked).into_response(),
        Err(e) => store_error(&state.access.metrics, e),
    }
}

async fn refresh<S: SessionStore>(State(state): State<Shared<S>>, body: Bytes) -> Response {
    let request = match parse_body::<RefreshRequest>(&body) {
        Ok(r) => r,
        Err(e) => return input_error(e),
    };
    let Ok(presented) = request.refresh_token.parse::<RefreshToken>() else {
        return refresh_refused(&state.access.metrics, RefreshError::Unknown);
    };
    let now = state.access.clock.now_ms();
    match refresh::rotate(&*state.store, presented, now).await {
        Ok(grant) => pair(&state, &grant.user, grant.cart, grant.refresh),
        Err(RefreshError::Reused) => {
            // The family's access tokens die with it where a denylist exists;
            // they can live at most the access TTL from now.
            if let Some(d) = &state.access.denylist {
                let until = state.access.clock.now_secs() + state.access.tokens.ttl_secs();
                if let Err(e) = d.revoke(&presented.family.to_string(), until).await {
                    tracing::warn!(
                        error = %e,
                        "a reused family's access tokens may live until they expire"
                    );
                }
            }
            refresh_refused(&state.access.metrics, RefreshError::Reused)
        }
        Err(e) => refresh_refused(&state.access.metrics, e),
    }
}

async fn logout<S: SessionStore>(
    State(state): State<Shared<S>>,
    Access(claims): Access,
) -> Response {
    let Some(family) = family_of(&claims) else {
        return Forbidden(TokenError::Malformed).into_response();
    };
    if let Err(e) = refresh::revoke(&*state.store, family).await {
        return store_error(&state.access.metrics, e);
    }
    if let Some(d) = &state.access.denylist
        && let Err(e) = d.revoke(&family.to_string(), claims.exp).await
    {
        return revoke_refused(&e);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn metrics_handler<S: SessionStore>(State(state): State<Shared<S>>) -> Response {
    let metrics = &state.access.metrics;
    match state.store.len().await {
        Ok(n) => {
            metrics.sessions_live.set(n as i64);
        }
        Err(_) => {
            metrics.store_errors.inc();
        }
    }
    if let Some(d) = &state.access.denylist {
        metrics.revoked_tokens.set(d.len() as i64);
    }
    metrics.render()
}
