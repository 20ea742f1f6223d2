//! The stateless user: logs in once (on start), keeps the JWT in its session
//! data, then loops `GET /profile` with `Authorization: <token>`.

use goose::prelude::*;

use super::{authorized_get, broken, login};

pub fn scenario() -> Scenario {
    scenario!("stateless")
        .register_transaction(transaction!(start).set_on_start().set_name("login"))
        .register_transaction(transaction!(profile).set_name("profile"))
}

async fn start(user: &mut GooseUser) -> TransactionResult {
    if !login(user).await? {
        return Err(broken("stateless scenario: login returned no token"));
    }
    Ok(())
}

pub(crate) async fn profile(user: &mut GooseUser) -> TransactionResult {
    authorized_get(user, "/profile", "profile").await
}
