//! The stateful user: logs in once (on start); the `sid` cookie lives in the
//! user's cookie store; then loops `GET /profile`. A 403 means its session
//! is not on the replica it reached: it logs in again (counted as lost).

use std::sync::Arc;

use goose::prelude::*;

use super::stateless::profile;
use super::{Shared, Spec, broken, setup_login, tx};
use crate::server::Arch;

/// What this scenario is (see [`super::Spec`]).
pub const SPEC: Spec = Spec {
    name: "stateful",
    main_request: "GET profile",
    websocket: false,
    counted: &[],
    arch: Arch::Stateful,
    needs: Some((Arch::Stateful, &["POST /login", "GET /profile"])),
    build: scenario,
};

pub fn scenario(shared: &Arc<Shared>) -> Scenario {
    scenario!("stateful")
        .register_transaction(tx!(shared, start).set_on_start().set_name("login"))
        .register_transaction(tx!(shared, profile).set_name("profile"))
}

async fn start(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    if setup_login(user, shared).await? {
        return Err(broken(
            "stateful scenario: login returned a token, not a session cookie",
        ));
    }
    Ok(())
}
