//! The login storm: every iteration is a new login (a new session on a
//! stateful server, a newly signed token on a stateless one) — the
//! session-creation rate and the memory it costs.

use std::sync::Arc;

use goose::prelude::*;

use super::{Shared, Spec, login, tx};
use crate::server::Arch;

/// What this scenario is (see [`super::Spec`]).
pub const SPEC: Spec = Spec {
    name: "login-storm",
    main_request: "POST login",
    websocket: false,
    counted: &[],
    arch: Arch::Stateless,
    needs: None,
    build: scenario,
};

pub fn scenario(shared: &Arc<Shared>) -> Scenario {
    scenario!("login-storm").register_transaction(tx!(shared, storm).set_name("login"))
}

async fn storm(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    login(user, shared).await?;
    Ok(())
}
