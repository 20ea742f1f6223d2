//! The stateful user: logs in once (on start); the `sid` cookie lives in the
//! user's cookie store; then loops `GET /profile`.

use goose::prelude::*;

use super::stateless::profile;
use super::{broken, login};

pub fn scenario() -> Scenario {
    scenario!("stateful")
        .register_transaction(transaction!(start).set_on_start().set_name("login"))
        .register_transaction(transaction!(profile).set_name("profile"))
}

async fn start(user: &mut GooseUser) -> TransactionResult {
    if login(user).await? {
        return Err(broken(
            "stateful scenario: login returned a token, not a session cookie",
        ));
    }
    Ok(())
}
