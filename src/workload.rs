//! Inputs shared by the benchmarks: a realistic session value, the sizes,
//! and the named operation mixes (as in conc-map-bench). Pinned here
//! so benchmark names never depend on the machine.

use crate::model::{Cart, CartItem, User};
use crate::session::Session;

/// Live-session counts the session benchmarks are run at.
pub const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
/// Thread counts of the mixed workloads.
pub const THREADS: [usize; 2] = [1, 2];
/// Cart sizes of the token and request benchmarks.
pub const CART_SIZES: [usize; 3] = [0, 10, 100];

/// A realistic session (~100 bytes of data): the default user, a 3-item
/// cart and timestamps. `i` varies the SKUs so values are not all equal.
pub fn realistic_session(i: u64, now: u64) -> Session {
    let mut s = Session::new(User::default(), now);
    s.cart = cart(3, i);
    s
}

/// A cart of `n` distinct items; `seed` varies the SKUs.
pub fn cart(n: usize, seed: u64) -> Cart {
    let mut c = Cart::default();
    for k in 0..n as u64 {
        c.add(CartItem {
            sku: format!("sku-{:05}", (seed + k) % 100_000).into(),
            qty: 1 + (k % 3) as u32,
        })
        .expect("under the cart cap");
    }
    c
}

/// A named mix of operations, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    pub name: &'static str,
    pub get: u8,
    pub login: u8,
    pub logout: u8,
    /// Add-to-cart updates.
    pub update: u8,
}

/// The mixed workloads.
pub const MIXES: [Mix; 3] = [
    // A typical session-backed API: almost every request reads its session.
    Mix {
        name: "read-heavy",
        get: 98,
        login: 1,
        logout: 1,
        update: 0,
    },
    // Short visits: sessions are created and destroyed as often as read.
    Mix {
        name: "churn",
        get: 20,
        login: 40,
        logout: 40,
        update: 0,
    },
    // A shop: reads plus cart changes on the same sessions.
    Mix {
        name: "cart",
        get: 70,
        login: 1,
        logout: 1,
        update: 28,
    },
];

/// Which operation the `roll`-th percent of a mix selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Login,
    Logout,
    Update,
}

impl Mix {
    /// Maps a roll in 0..100 to an operation.
    pub fn op(&self, roll: u8) -> Op {
        let mut r = roll;
        for (share, op) in [
            (self.get, Op::Get),
            (self.login, Op::Login),
            (self.logout, Op::Logout),
            (self.update, Op::Update),
        ] {
            if r < share {
                return op;
            }
            r -= share;
        }
        Op::Get
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_sum_to_100_and_value_is_realistic() {
        for m in MIXES {
            assert_eq!(m.get + m.login + m.logout + m.update, 100, "{}", m.name);
            let counts = (0..100).fold([0; 4], |mut c, r| {
                c[m.op(r) as usize] += 1;
                c
            });
            assert_eq!(
                counts,
                [m.get, m.login, m.logout, m.update].map(usize::from)
            );
        }
        let json = serde_json::to_vec(&realistic_session(7, 1_700_000_000_000)).unwrap();
        assert!((80..=160).contains(&json.len()), "{} bytes", json.len());
    }
}
