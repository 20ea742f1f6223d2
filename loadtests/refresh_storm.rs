//! The refresh storm: every user's access token expires at the same moment
//! (after a deploy that rotated the key, or a clock jump), so every user
//! refreshes at once, and again, and again: each iteration is one
//! `POST /refresh` with the token the last one returned. Its latency and
//! the store's CPU are what a hybrid design pays at its worst moment.

use std::sync::Arc;

use goose::prelude::*;

use super::{Shared, Spec, broken, setup_login, tx};
use crate::server::Arch;

/// What this scenario is (see [`super::Spec`]).
pub const SPEC: Spec = Spec {
    name: "refresh-storm",
    main_request: "POST refresh",
    websocket: false,
    counted: &[],
    arch: Arch::Hybrid,
    needs: Some((Arch::Hybrid, &["POST /login", "POST /refresh"])),
    build: scenario,
};

pub fn scenario(shared: &Arc<Shared>) -> Scenario {
    scenario!("refresh-storm")
        .register_transaction(tx!(shared, start).set_on_start().set_name("login"))
        .register_transaction(tx!(shared, storm).set_name("refresh"))
}

async fn start(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    if !setup_login(user, shared).await? {
        return Err(broken("refresh-storm scenario: login returned no token"));
    }
    Ok(())
}

async fn storm(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    super::hybrid::refresh(user, shared).await
}
