//! The hybrid user: logs in once (on start), loops `GET /profile` with its
//! access token, and refreshes the pair (`POST /refresh`) once the access
//! token nears its expiry, as a client library does. A refused refresh
//! (401: the family expired or was revoked) sends it back to `/login`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::prelude::*;

use super::http::{State, TokenBody};
use super::{Shared, Spec, authorized_get, broken, login, send, setup_login, tx};
use crate::server::Arch;

/// What this scenario is (see [`super::Spec`]).
pub const SPEC: Spec = Spec {
    name: "hybrid",
    main_request: "GET profile",
    websocket: false,
    counted: &[],
    arch: Arch::Hybrid,
    needs: Some((
        Arch::Hybrid,
        &["POST /login", "GET /profile", "POST /refresh"],
    )),
    build: scenario,
};

pub fn scenario(shared: &Arc<Shared>) -> Scenario {
    scenario!("hybrid")
        .register_transaction(tx!(shared, start).set_on_start().set_name("login"))
        .register_transaction(tx!(shared, profile).set_name("profile"))
}

/// When, into an access token's lifetime, its holder refreshes it: after
/// four fifths (a 300 s token after 240 s), so a slow refresh still lands
/// before the old token expires.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    lifetime.mul_f64(0.8)
}

async fn start(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    if !setup_login(user, shared).await? {
        return Err(broken("hybrid scenario: login returned no token"));
    }
    Ok(())
}

async fn profile(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    refresh_if_due(user, shared).await?;
    authorized_get(user, shared, "/profile", "profile").await
}

/// Refreshes the pair if the access token nears its expiry (only a hybrid
/// server's login sets when: on other servers this does nothing).
pub(crate) async fn refresh_if_due(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    let due = user
        .get_session_data::<State>()
        .and_then(|s| s.refresh_at)
        .is_some_and(|at| Instant::now() >= at);
    if due {
        refresh(user, shared).await?;
    }
    Ok(())
}

/// `POST /refresh` with the user's refresh token, keeping the new pair. A
/// 401 means the family is gone: the user logs in again, and the loss is
/// counted as a lost session.
pub(crate) async fn refresh(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    let Some(token) = user
        .get_session_data::<State>()
        .and_then(|s| s.refresh.clone())
    else {
        return Err(broken("hybrid scenario: login returned no refresh_token"));
    };
    let body = serde_json::json!({ "refresh_token": token }).to_string();
    let response = send(
        user,
        shared,
        GooseMethod::Post,
        "/refresh",
        "refresh",
        Some(body),
    )
    .await?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        shared
            .sessions_lost
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        shared.trouble();
        login(user, shared).await?;
        return Ok(());
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| Box::new(TransactionError::Reqwest(e)))?;
    if !status.is_success() {
        return Err(broken(format!("refresh answered {status}")));
    }
    let pair: TokenBody = serde_json::from_slice(&bytes)
        .map_err(|e| broken(format!("refresh answered no pair: {e}")))?;
    let mut state = user
        .get_session_data::<State>()
        .cloned()
        .unwrap_or_default();
    pair.keep(&mut state);
    user.set_session_data(state);
    Ok(())
}
