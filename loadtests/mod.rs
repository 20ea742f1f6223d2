//! Load scenarios (goose): one module per kind of simulated user, and the
//! runner that drives them against any server on the statebench contract.
//!
//! - [`stateless`]: logs in once, then loops `GET /profile` with its token;
//! - [`stateful`]: the same with the `sid` cookie;
//! - [`cart`]: adds items one at a time up to a cart size, reading `/cart`
//!   between additions, then starts over (the token grows; the cookie does not);
//! - [`login_storm`]: new logins, continuously (session-creation rate);
//! - [`ws_echo`]: one WebSocket per user, send and await the echo, timed
//!   and recorded as custom requests.
//!
//! Goose is set for measurement, not demos: no think time, no request log,
//! an explicit increase rate, metrics reset after ramp-up, optional
//! coordinated-omission mitigation. Latency comes from goose's microsecond
//! histograms ([`result::LoadResult`]), which merge exactly across runs.

pub mod cart;
pub mod login_storm;
pub mod result;
pub mod stateful;
pub mod stateless;
pub mod ws_echo;

use std::time::Duration;

use goose::prelude::*;

pub use result::LoadResult;

/// The scenarios `statebench load` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioKind {
    Stateless,
    Stateful,
    Cart,
    LoginStorm,
    WsEcho,
}

impl ScenarioKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Stateless => "stateless",
            Self::Stateful => "stateful",
            Self::Cart => "cart",
            Self::LoginStorm => "login-storm",
            Self::WsEcho => "ws-echo",
        }
    }

    fn scenario(self, cart_items: usize) -> Result<Scenario, GooseError> {
        Ok(match self {
            Self::Stateless => stateless::scenario(),
            Self::Stateful => stateful::scenario(),
            Self::Cart => cart::scenario(cart_items),
            Self::LoginStorm => login_storm::scenario(),
            Self::WsEcho => ws_echo::scenario(),
        })
    }
}

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Base URL of the server, e.g. `http://127.0.0.1:3000`.
    pub target: String,
    pub scenario: ScenarioKind,
    pub users: usize,
    /// Users started per second (the ramp); metrics are reset once all run.
    pub increase_rate: f64,
    pub run_time: Duration,
    /// Requests per second across all users (`None`: closed loop, no limit).
    pub throttle: Option<usize>,
    /// Coordinated-omission mitigation (`average`, `minimum`, `maximum`).
    pub co_mitigation: Option<String>,
    /// Cart size for the `cart` scenario.
    pub cart_items: usize,
}

impl LoadConfig {
    pub fn new(target: impl Into<String>, scenario: ScenarioKind) -> Self {
        Self {
            target: target.into(),
            scenario,
            users: 4,
            increase_rate: 100.0,
            run_time: Duration::from_secs(10),
            throttle: None,
            co_mitigation: None,
            cart_items: 10,
        }
    }

    fn goose_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--host",
            &self.target,
            "--users",
            &self.users.to_string(),
            "--increase-rate",
            &self.increase_rate.to_string(),
            "--run-time",
            &format!("{}s", self.run_time.as_secs().max(1)),
            "--quiet",
            "--no-print-metrics",
            "--no-error-summary",
            "--no-telnet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(t) = self.throttle {
            args.extend(["--throttle-requests".into(), t.to_string()]);
        }
        if let Some(co) = &self.co_mitigation {
            args.extend(["--co-mitigation".into(), co.clone()]);
        }
        args
    }
}

/// Runs one load test; returns its per-request results.
pub async fn run(config: &LoadConfig) -> anyhow::Result<LoadResult> {
    let goose_config = goose::config::GooseConfiguration::parse_args_default(&config.goose_args())
        .map_err(|e| anyhow::anyhow!("goose configuration: {e}"))?;
    let metrics = GooseAttack::initialize_with_config(goose_config)
        .map_err(|e| anyhow::anyhow!("goose: {e}"))?
        .register_scenario(config.scenario.scenario(config.cart_items)?)
        .execute()
        .await
        .map_err(|e| anyhow::anyhow!("load test failed: {e}"))?;
    Ok(LoadResult::from_goose(config, &metrics))
}

/// A transaction error for a response that breaks the contract.
pub(crate) fn broken(what: impl Into<String>) -> Box<TransactionError> {
    Box::new(TransactionError::Custom(what.into()))
}

/// What a user keeps between requests (goose holds one value per user):
/// the token if the server is stateless (a stateful user's `sid` lives in
/// its cookie store), and the items added since the last login.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub token: Option<String>,
    pub added: usize,
}

#[derive(serde::Deserialize)]
struct TokenBody {
    token: String,
}

/// `POST /login`; keeps the token if the server hands one out (stateless),
/// otherwise relies on the cookie store (stateful). Returns whether a
/// token was received.
pub(crate) async fn login(user: &mut GooseUser) -> Result<bool, Box<TransactionError>> {
    let request = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path("/login")
        .name("login")
        .build();
    let goose = user.request(request).await?;
    let response = goose
        .response
        .map_err(|e| Box::new(TransactionError::Reqwest(e)))?;
    if !response.status().is_success() {
        return Err(broken(format!("login answered {}", response.status())));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| Box::new(TransactionError::Reqwest(e)))?;
    let token = serde_json::from_slice::<TokenBody>(&body)
        .ok()
        .map(|t| t.token);
    let got_token = token.is_some();
    user.set_session_data(State { token, added: 0 });
    Ok(got_token)
}

/// A request carrying the user's token, if it has one (the cookie store
/// adds the `sid` cookie by itself).
pub(crate) fn authorized(
    user: &GooseUser,
    method: GooseMethod,
    path: &str,
) -> Result<reqwest::RequestBuilder, Box<TransactionError>> {
    let builder = user.get_request_builder(&method, path)?;
    Ok(
        match user
            .get_session_data::<State>()
            .and_then(|s| s.token.as_deref())
        {
            Some(t) => builder.header("Authorization", t),
            None => builder,
        },
    )
}

/// `GET path` with the user's credential, recorded under `name`.
pub(crate) async fn authorized_get(
    user: &mut GooseUser,
    path: &str,
    name: &str,
) -> TransactionResult {
    let builder = authorized(user, GooseMethod::Get, path)?;
    let request = GooseRequest::builder()
        .path(path)
        .name(name)
        .set_request_builder(builder)
        .build();
    user.request(request).await?;
    Ok(())
}
