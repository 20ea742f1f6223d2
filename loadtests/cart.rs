//! The shopper: adds items one at a time up to the cart size, reading
//! `GET /cart` after each addition, then logs in again with an empty cart.
//! On the stateless server every addition returns a larger token, which the
//! next request carries; on the stateful server the request stays the same
//! size. Works against either: it follows whatever `/login` hands out.

use std::sync::atomic::{AtomicUsize, Ordering};

use goose::prelude::*;

use super::{State, authorized, authorized_get, broken, login};

/// The cart size the scenario cycles through (set before the run starts).
static CART_ITEMS: AtomicUsize = AtomicUsize::new(10);

pub fn scenario(items: usize) -> Scenario {
    CART_ITEMS.store(items, Ordering::Relaxed);
    scenario!("cart")
        .register_transaction(transaction!(start).set_on_start().set_name("login"))
        .register_transaction(transaction!(shop).set_name("cart"))
}

async fn start(user: &mut GooseUser) -> TransactionResult {
    login(user).await?;
    Ok(())
}

async fn shop(user: &mut GooseUser) -> TransactionResult {
    let target = CART_ITEMS.load(Ordering::Relaxed);
    let added = user.get_session_data::<State>().map_or(0, |s| s.added);
    if added >= target {
        // Start over: a fresh login has an empty cart.
        login(user).await?;
        return read_cart(user).await;
    }
    let body = format!(r#"{{"sku":"sku-{added:05}","qty":1}}"#);
    let builder = authorized(user, GooseMethod::Post, "/cart/items")?
        .header("content-type", "application/json")
        .body(body);
    let request = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path("/cart/items")
        .name("cart/items")
        .set_request_builder(builder)
        .build();
    let goose = user.request(request).await?;
    let response = goose
        .response
        .map_err(|e| Box::new(TransactionError::Reqwest(e)))?;
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
    read_cart(user).await
}

async fn read_cart(user: &mut GooseUser) -> TransactionResult {
    authorized_get(user, "/cart", "cart").await
}
