//! State size: the cart scenario at 0, 10 and 100 items. A stateless
//! server's token carries the cart, so its requests grow with it; a
//! stateful server's cookie does not.

use super::super::Matrix;
use super::super::cell::{Cell, Server};
use super::super::runner::{Knobs, Runner};
use super::CART_SIZES;
use crate::keys::TokenAlg;
use crate::loadtests::ScenarioKind;

/// Users building carts.
const USERS: usize = 16;

/// The reference servers compared.
pub fn servers() -> [Server; 2] {
    [Server::Stateless(TokenAlg::HS256), Server::StatefulMemory]
}

pub async fn run(r: &mut Runner, servers: &[Server]) -> anyhow::Result<()> {
    for &server in servers {
        for items in CART_SIZES {
            let id = format!("state-size/{}/cart{items}", server.slug());
            let cell = Cell {
                users: USERS,
                cart_items: Some(items),
                ..Cell::new(Matrix::StateSize, server, id)
            };
            let knobs = Knobs {
                scenario: Some(ScenarioKind::Cart),
                cart_items: Some(items),
                ..Knobs::default()
            };
            r.run_cell(cell, knobs).await?;
        }
    }
    Ok(())
}

pub fn planned_secs(r: &Runner, servers: usize) -> u64 {
    servers as u64 * CART_SIZES.len() as u64 * r.cell_secs()
}
