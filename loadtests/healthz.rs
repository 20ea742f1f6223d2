//! The floor every server is measured against: `GET /healthz` in a loop,
//! no credential, no state.

use std::sync::Arc;

use goose::prelude::*;

use super::{Shared, Spec, send, tx};
use crate::server::Arch;

/// What this scenario is (see [`super::Spec`]).
pub const SPEC: Spec = Spec {
    name: "healthz",
    main_request: "GET healthz",
    websocket: false,
    counted: &[],
    arch: Arch::Stateless,
    needs: None,
    build: scenario,
};

pub fn scenario(shared: &Arc<Shared>) -> Scenario {
    scenario!("healthz").register_transaction(tx!(shared, healthz).set_name("healthz"))
}

async fn healthz(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    send(user, shared, GooseMethod::Get, "/healthz", "healthz", None).await?;
    Ok(())
}
