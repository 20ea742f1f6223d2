//! The shopper: adds items one at a time up to the cart size, reading
//! `GET /cart` after each addition, then logs in again with an empty cart.
//! On the stateless server every addition returns a larger token, which the
//! next request carries; on the stateful server the request stays the same
//! size. Works against any of them: it follows whatever `/login` hands out,
//! and on a hybrid server refreshes its access token as the hybrid user
//! does.

use std::sync::Arc;

use goose::prelude::*;

use super::http::State;
use super::{Shared, Spec, authorized_get, broken, login, send, setup_login, tx};
use crate::server::Arch;

/// What this scenario is (see [`super::Spec`]).
pub const SPEC: Spec = Spec {
    name: "cart",
    main_request: "GET cart",
    websocket: false,
    counted: &[],
    arch: Arch::Stateless,
    needs: Some((
        Arch::Stateful,
        &[
            "POST /login",
            "GET /profile",
            "POST /cart/items",
            "GET /cart",
        ],
    )),
    build: scenario,
};

pub fn scenario(shared: &Arc<Shared>) -> Scenario {
    scenario!("cart")
        .register_transaction(tx!(shared, start).set_on_start().set_name("login"))
        .register_transaction(tx!(shared, shop).set_name("cart"))
}

async fn start(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    setup_login(user, shared).await?;
    Ok(())
}

async fn shop(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    // On a hybrid server, the access token is refreshed as it nears expiry.
    super::hybrid::refresh_if_due(user, shared).await?;
    let target = shared.cart_items;
    if target == 0 {
        // An empty cart: only reads, the credential stays as small as it gets.
        return read_cart(user, shared).await;
    }
    let added = user.get_session_data::<State>().map_or(0, |s| s.added);
    if added >= target {
        // Start over: a fresh login has an empty cart.
        login(user, shared).await?;
        return read_cart(user, shared).await;
    }
    let body = format!(r#"{{"sku":"sku-{added:05}","qty":1}}"#);
    let response = send(
        user,
        shared,
        GooseMethod::Post,
        "/cart/items",
        "cart/items",
        Some(body),
    )
    .await?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| Box::new(TransactionError::Reqwest(e)))?;
    if !status.is_success() {
        return Err(broken(format!("cart/items answered {status}")));
    }
    let mut state = user
        .get_session_data::<State>()
        .cloned()
        .unwrap_or_default();
    if state.token.is_some() {
        #[derive(serde::Deserialize)]
        struct Body {
            token: String,
        }
        let body = serde_json::from_slice::<Body>(&bytes)
            .map_err(|e| broken(format!("cart/items body: {e}")))?;
        state.token = Some(body.token);
    }
    state.added = added + 1;
    user.set_session_data(state);
    read_cart(user, shared).await
}

async fn read_cart(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    authorized_get(user, shared, "/cart", "cart").await
}
