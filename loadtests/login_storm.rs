//! New users logging in continuously: every iteration is a fresh login, so
//! the stateful server creates a session each time (its session-creation
//! rate and memory growth) while the stateless one only signs a token.

use goose::prelude::*;

pub fn scenario() -> Scenario {
    scenario!("login-storm").register_transaction(transaction!(storm).set_name("login"))
}

async fn storm(user: &mut GooseUser) -> TransactionResult {
    super::login(user).await?;
    Ok(())
}
