//! The stateless user: logs in once (on start), keeps the JWT in its session
//! data, then loops `GET /profile` with `Authorization: <token>`. Also the
//! floor every server is measured against: `GET /healthz`, no credential.

use std::sync::Arc;

use goose::prelude::*;

use super::{Shared, authorized_get, broken, login, send, tx};

pub fn scenario(shared: &Arc<Shared>) -> Scenario {
    scenario!("stateless")
        .register_transaction(tx!(shared, start).set_on_start().set_name("login"))
        .register_transaction(tx!(shared, profile).set_name("profile"))
}

pub fn healthz_scenario(shared: &Arc<Shared>) -> Scenario {
    scenario!("healthz").register_transaction(tx!(shared, healthz).set_name("healthz"))
}

async fn start(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    if !login(user, shared).await? {
        return Err(broken("stateless scenario: login returned no token"));
    }
    Ok(())
}

pub(crate) async fn profile(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    authorized_get(user, shared, "/profile", "profile").await
}

async fn healthz(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    send(user, shared, GooseMethod::Get, "/healthz", "healthz", None).await?;
    Ok(())
}
