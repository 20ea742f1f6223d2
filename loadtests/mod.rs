//! Load scenarios (goose): one module per kind of simulated user, and the
//! runner that drives them against any server on the statebench contract.
//!
//! - [`healthz`]: `GET /healthz` with no credential, the floor;
//! - [`stateless`]: logs in once, then loops `GET /profile` with its token;
//! - [`stateful`]: the same with the `sid` cookie;
//! - [`cart`]: adds items one at a time up to a cart size, reading `/cart`
//!   between additions, then starts over (the token grows; the cookie does not);
//! - [`login_storm`]: new logins, continuously (session-creation rate);
//! - [`hybrid`]: the stateless user on a hybrid server, refreshing its pair
//!   when the access token nears expiry;
//! - [`refresh_storm`]: every user refreshing at once, continuously;
//! - [`ws_echo`]: one WebSocket per user, send and await the echo, timed
//!   and recorded as custom requests;
//! - [`ws_chat`]: users in rooms; fan-out latency and delivery ratio.
//!
//! Each scenario module declares what it is in one [`Spec`] (its name, its
//! main request, whether it is WebSocket, the server it needs); the
//! [`ScenarioKind`] registry lists them, and everything else — the command
//! line, the comparison, the gate — reads the spec.
//!
//! The rest is shared: [`config`] (the knobs of a run), [`shared`] (what
//! every user of a run shares), [`pacer`] (Poisson arrivals for fixed-rate
//! runs) and [`wake`] (its send times kept to the microsecond), [`timeline`] (per-second figures), [`client`] (each user's own HTTP
//! client, built cheaply), `http` (routing, sending, login),
//! [`run`] (goose and the watchdog), [`result`] (histograms that merge).
//!
//! Requests go through [`balance::Balancer`], the embedded load balancer
//! (round-robin, per-connection, sticky, consistent hash), or straight to
//! one address (one server, or HAProxy in front of several).
//!
//! Goose is set for measurement, not demos: no think time, no request log,
//! an explicit increase rate, optional coordinated-omission mitigation,
//! metrics reset after ramp-up unless the on-start requests must be kept.
//! Latency comes from goose's microsecond histograms
//! ([`result::LoadResult`]), which merge exactly across runs.

pub mod balance;
pub mod cart;
pub mod client;
pub mod config;
pub mod healthz;
pub(crate) mod http;
pub mod hybrid;
pub mod login_storm;
pub mod pacer;
pub mod refresh_storm;
pub mod result;
pub mod run;
pub mod shared;
pub mod stateful;
pub mod stateless;
pub mod timeline;
pub mod wake;
pub mod ws_chat;
pub mod ws_echo;

use std::sync::Arc;

use goose::prelude::Scenario;

use crate::server::Arch;

pub use balance::{Affinity, Balancer, Policy};
pub use config::LoadConfig;
pub use http::USER_HEADER;
pub(crate) use http::{
    answered, authorized_get, back_off, broken, login, send, setup_login, stopped,
};
pub use result::LoadResult;
pub use run::{TargetError, run, run_shared, run_shared_on};
pub use shared::Shared;

/// Builds a goose transaction from `async fn(&mut GooseUser, &Shared)`:
/// every user of a run sees the same [`Shared`] (balancer, counters).
macro_rules! tx {
    ($shared:expr, $f:path) => {{
        let shared = ::std::sync::Arc::clone($shared);
        ::goose::prelude::Transaction::new(::std::sync::Arc::new(move |user| {
            let shared = ::std::sync::Arc::clone(&shared);
            Box::pin(async move { $f(user, &shared).await })
        }))
    }};
}
pub(crate) use tx;

/// What a scenario declares about itself, in its own module.
pub struct Spec {
    /// The name on the command line and in results.
    pub name: &'static str,
    /// The request whose latency stands for the scenario.
    pub main_request: &'static str,
    /// Whether its work is WebSocket messages rather than HTTP requests.
    pub websocket: bool,
    /// For WebSocket scenarios: the recorded requests the server also
    /// counts (the messages it received), to check goose against it.
    pub counted: &'static [&'static str],
    /// The reference server `statebench load` starts when no target is given.
    pub arch: Arch,
    /// Against someone else's server: probe it as this architecture and
    /// warn about these routes if it lacks them (`None`: no check).
    pub needs: Option<(Arch, &'static [&'static str])>,
    /// The goose scenario, its users sharing `shared`.
    pub build: fn(&Arc<Shared>) -> Scenario,
}

/// The scenarios `statebench load` can run: the registry. Adding one is a
/// module with its [`Spec`] and a line here and in [`ScenarioKind::spec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioKind {
    /// `GET /healthz` in a loop: the server's floor (no credential at all).
    Healthz,
    /// Log in once, then `GET /profile` with the token.
    Stateless,
    /// Log in once, then `GET /profile` with the session cookie.
    Stateful,
    /// Grow a cart item by item, reading it after each addition.
    Cart,
    /// New logins, continuously.
    LoginStorm,
    /// Log in once, `GET /profile` with the access token, refresh it when
    /// it nears expiry (hybrid server).
    Hybrid,
    /// Every user refreshing at once, continuously (hybrid server).
    RefreshStorm,
    /// One WebSocket per user: send, await the echo.
    WsEcho,
    /// Users in chat rooms: fan-out latency and delivery.
    WsChat,
}

impl ScenarioKind {
    pub const ALL: [ScenarioKind; 9] = [
        Self::Healthz,
        Self::Stateless,
        Self::Stateful,
        Self::Cart,
        Self::LoginStorm,
        Self::Hybrid,
        Self::RefreshStorm,
        Self::WsEcho,
        Self::WsChat,
    ];

    /// What the scenario's module declares.
    pub fn spec(self) -> &'static Spec {
        match self {
            Self::Healthz => &healthz::SPEC,
            Self::Stateless => &stateless::SPEC,
            Self::Stateful => &stateful::SPEC,
            Self::Cart => &cart::SPEC,
            Self::LoginStorm => &login_storm::SPEC,
            Self::Hybrid => &hybrid::SPEC,
            Self::RefreshStorm => &refresh_storm::SPEC,
            Self::WsEcho => &ws_echo::SPEC,
            Self::WsChat => &ws_chat::SPEC,
        }
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The request whose latency stands for the scenario.
    pub fn main_request(self) -> &'static str {
        self.spec().main_request
    }

    pub fn is_websocket(self) -> bool {
        self.spec().websocket
    }

    /// See [`Spec::counted`].
    pub fn counted_requests(self) -> &'static [&'static str] {
        self.spec().counted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_names_itself_once() {
        for s in ScenarioKind::ALL {
            let named = ScenarioKind::ALL
                .iter()
                .filter(|o| o.name() == s.name())
                .count();
            assert_eq!(named, 1, "{}", s.name());
            assert_eq!(s.is_websocket(), !s.counted_requests().is_empty());
            assert_eq!(s.is_websocket(), s.main_request().starts_with("WS "));
        }
    }
}
