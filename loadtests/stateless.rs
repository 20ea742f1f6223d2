//! The stateless user: logs in once (on start), keeps the JWT in its session
//! data, then loops `GET /profile` with `Authorization: <token>`.

use std::sync::Arc;

use goose::prelude::*;

use super::{Shared, Spec, authorized_get, broken, setup_login, tx};
use crate::server::Arch;

/// What this scenario is (see [`super::Spec`]).
pub const SPEC: Spec = Spec {
    name: "stateless",
    main_request: "GET profile",
    websocket: false,
    counted: &[],
    arch: Arch::Stateless,
    needs: Some((Arch::Stateless, &["POST /login", "GET /profile"])),
    build: scenario,
};

pub fn scenario(shared: &Arc<Shared>) -> Scenario {
    scenario!("stateless")
        .register_transaction(tx!(shared, start).set_on_start().set_name("login"))
        .register_transaction(tx!(shared, profile).set_name("profile"))
}

async fn start(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    if !setup_login(user, shared).await? {
        return Err(broken("stateless scenario: login returned no token"));
    }
    Ok(())
}

pub(crate) async fn profile(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    authorized_get(user, shared, "/profile", "profile").await
}
