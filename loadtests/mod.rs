//! Load scenarios (goose): one module per kind of simulated user, and the
//! runner that drives them against any server on the statebench contract.
//!
//! - [`stateless`]: logs in once, then loops `GET /profile` with its token
//!   (and the `healthz` floor: `GET /healthz` with no credential);
//! - [`stateful`]: the same with the `sid` cookie;
//! - [`cart`]: adds items one at a time up to a cart size, reading `/cart`
//!   between additions, then starts over (the token grows; the cookie does not);
//! - [`login_storm`]: new logins, continuously (session-creation rate);
//! - [`ws_echo`]: one WebSocket per user, send and await the echo, timed
//!   and recorded as custom requests;
//! - [`ws_chat`]: users in rooms; fan-out latency and delivery ratio.
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
pub mod login_storm;
pub mod result;
pub mod stateful;
pub mod stateless;
pub mod ws_chat;
pub mod ws_echo;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use goose::prelude::*;

pub use balance::{Affinity, Balancer, Policy};
pub use result::LoadResult;

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

/// The scenarios `statebench load` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioKind {
    /// `GET /healthz` in a loop: the server's floor (no credential at all).
    Healthz,
    Stateless,
    Stateful,
    Cart,
    LoginStorm,
    WsEcho,
    WsChat,
}

impl ScenarioKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Healthz => "healthz",
            Self::Stateless => "stateless",
            Self::Stateful => "stateful",
            Self::Cart => "cart",
            Self::LoginStorm => "login-storm",
            Self::WsEcho => "ws-echo",
            Self::WsChat => "ws-chat",
        }
    }

    fn scenario(self, shared: &Arc<Shared>) -> Scenario {
        match self {
            Self::Healthz => stateless::healthz_scenario(shared),
            Self::Stateless => stateless::scenario(shared),
            Self::Stateful => stateful::scenario(shared),
            Self::Cart => cart::scenario(shared),
            Self::LoginStorm => login_storm::scenario(shared),
            Self::WsEcho => ws_echo::scenario(shared),
            Self::WsChat => ws_chat::scenario(shared),
        }
    }
}

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Base URL of the server, e.g. `http://127.0.0.1:3000` (with several
    /// replicas: the first; see `replicas`).
    pub target: String,
    /// Every replica's base URL when the embedded balancer spreads load
    /// (empty: everything goes to `target`).
    pub replicas: Vec<String>,
    pub policy: Policy,
    /// Per-connection policy: requests before a user "reconnects".
    pub reconnect_every: u32,
    pub scenario: ScenarioKind,
    pub users: usize,
    /// Users started per second (the ramp).
    pub increase_rate: f64,
    pub run_time: Duration,
    /// Requests per second across all users (`None`: closed loop, no limit).
    pub throttle: Option<usize>,
    /// Coordinated-omission mitigation (`average`, `minimum`, `maximum`).
    pub co_mitigation: Option<String>,
    /// Reset goose's metrics once every user runs. Off keeps the ramp and
    /// the on-start requests (logins, connects) in the figures, so they can
    /// be checked against the servers' own counters.
    pub reset_metrics: bool,
    /// Cart size for the `cart` scenario.
    pub cart_items: usize,
    /// Members per chat room (ws-chat).
    pub room_size: usize,
    /// Pause between one user's chat messages (ws-chat).
    pub chat_interval: Duration,
    /// Absolute limits passed to goose (`--threshold`-style), if any.
    pub extra_goose_args: Vec<String>,
    /// Where goose writes its own report (`.html`, `.json` or `.md`).
    pub report_file: Option<std::path::PathBuf>,
}

impl LoadConfig {
    pub fn new(target: impl Into<String>, scenario: ScenarioKind) -> Self {
        Self {
            target: target.into(),
            replicas: Vec::new(),
            policy: Policy::RoundRobin,
            reconnect_every: 100,
            scenario,
            users: 4,
            increase_rate: 100.0,
            run_time: Duration::from_secs(10),
            throttle: None,
            co_mitigation: None,
            reset_metrics: true,
            cart_items: 10,
            room_size: 4,
            chat_interval: Duration::from_millis(100),
            extra_goose_args: Vec::new(),
            report_file: None,
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
        if let Some(f) = &self.report_file {
            args.extend(["--report-file".into(), f.display().to_string()]);
        }
        if !self.reset_metrics {
            args.push("--no-reset-metrics".into());
        }
        args.extend(self.extra_goose_args.iter().cloned());
        args
    }
}

/// What every user of one run shares: the balancer and the counters that
/// goose does not keep.
pub struct Shared {
    pub balancer: Balancer,
    pub cart_items: usize,
    pub room_size: usize,
    pub chat_interval: Duration,
    /// Users that had to log in again because their session was gone.
    pub sessions_lost: AtomicU64,
    /// Credential and body bytes sent (`Authorization` value, `Cookie`
    /// value, body) and the requests that sent them: what state costs on
    /// the wire.
    pub request_bytes: AtomicU64,
    pub requests_sent: AtomicU64,
    /// When a request last failed or found no session (µs since `epoch`):
    /// how long trouble lasted after a failure.
    pub last_trouble_us: AtomicU64,
    /// Chat fan-out: delivery counts and latency.
    pub chat: ws_chat::ChatStats,
    /// The zero of timestamps carried inside chat messages.
    pub epoch: Instant,
}

impl Shared {
    pub fn new(config: &LoadConfig) -> Arc<Self> {
        let balancer = if config.replicas.is_empty() {
            Balancer::single(config.target.clone())
        } else {
            Balancer::new(
                config.replicas.clone(),
                config.policy,
                config.reconnect_every,
            )
        };
        Arc::new(Self {
            balancer,
            cart_items: config.cart_items,
            room_size: config.room_size.max(1),
            chat_interval: config.chat_interval,
            sessions_lost: AtomicU64::new(0),
            request_bytes: AtomicU64::new(0),
            last_trouble_us: AtomicU64::new(0),
            requests_sent: AtomicU64::new(0),
            chat: ws_chat::ChatStats::default(),
            epoch: Instant::now(),
        })
    }

    /// The full URL of `path` on the replica this user's request goes to.
    pub(crate) fn url(
        &self,
        user: &mut GooseUser,
        path: &str,
    ) -> Result<(usize, String), Box<TransactionError>> {
        let id = user.weighted_users_index as u64;
        if user.get_session_data::<State>().is_none() {
            user.set_session_data(State::default());
        }
        // In place: no copy of the token on every request.
        let picked = user
            .get_session_data_mut::<State>()
            .and_then(|state| self.balancer.pick(id, &mut state.affinity));
        let (slot, base) = picked.ok_or_else(|| broken("no replica is up"))?;
        Ok((slot, format!("{base}{path}")))
    }

    /// Microseconds since the run's epoch.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn trouble(&self) {
        self.last_trouble_us
            .fetch_max(self.now_us(), Ordering::Relaxed);
    }
}

/// Runs one load test; returns its per-request results.
pub async fn run(config: &LoadConfig) -> anyhow::Result<LoadResult> {
    run_shared(config, Shared::new(config)).await
}

/// Runs one load test with a [`Shared`] the caller keeps (to change the
/// replica set mid-run and read the counters afterwards).
pub async fn run_shared(config: &LoadConfig, shared: Arc<Shared>) -> anyhow::Result<LoadResult> {
    let goose_config = goose::config::GooseConfiguration::parse_args_default(&config.goose_args())
        .map_err(|e| anyhow::anyhow!("goose configuration: {e}"))?;
    let outcome = GooseAttack::initialize_with_config(goose_config)
        .map_err(|e| anyhow::anyhow!("goose: {e}"))?
        .register_scenario(config.scenario.scenario(&shared))
        .execute()
        .await;
    let (mut result, failed) = match outcome {
        Ok(metrics) => (LoadResult::from_goose(config, &metrics), Vec::new()),
        // The run happened; a rule given with --threshold failed.
        Err(GooseError::ThresholdsFailed { failed, metrics }) => {
            (LoadResult::from_goose(config, &metrics), failed)
        }
        Err(e) => return Err(anyhow::anyhow!("load test failed: {e}")),
    };
    result.threshold_failures = failed
        .iter()
        .map(|f| format!("{}: observed {}", f.rule, f.observed))
        .collect();
    result.sessions_lost = shared.sessions_lost.load(Ordering::Relaxed);
    result.routed = shared.balancer.routed();
    result.request_bytes = shared.request_bytes.load(Ordering::Relaxed);
    result.requests_sent = shared.requests_sent.load(Ordering::Relaxed);
    if config.scenario == ScenarioKind::WsChat {
        shared.chat.add_to(&mut result);
    }
    Ok(result)
}

/// A transaction error for a response that breaks the contract.
pub(crate) fn broken(what: impl Into<String>) -> Box<TransactionError> {
    Box::new(TransactionError::Custom(what.into()))
}

/// What a user keeps between requests (goose holds one value per user):
/// the token if the server is stateless (a stateful user's `sid` lives in
/// its cookie store), the items added since the last login, and where the
/// balancer sent it.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub token: Option<String>,
    /// Length of the `name=value` session cookie the server set, if any.
    pub cookie_len: usize,
    pub added: usize,
    pub affinity: Affinity,
}

#[derive(serde::Deserialize)]
struct TokenBody {
    token: String,
}

/// Header carrying the user id, for balancers that hash on it.
pub const USER_HEADER: &str = "x-user";

/// A request builder for `path` on the chosen replica, with the user id
/// and, if the user holds one, its token (the cookie store adds `sid`).
pub(crate) fn routed(
    user: &mut GooseUser,
    shared: &Shared,
    method: GooseMethod,
    path: &str,
) -> Result<(usize, String, reqwest::RequestBuilder), Box<TransactionError>> {
    let (slot, url) = shared.url(user, path)?;
    let mut builder = user
        .get_request_builder(&method, &url)?
        .header(USER_HEADER, user.weighted_users_index.to_string());
    let mut bytes = 0;
    if let Some(state) = user.get_session_data::<State>() {
        if let Some(t) = state.token.as_deref() {
            builder = builder.header("Authorization", t);
            bytes += t.len();
        }
        bytes += state.cookie_len;
    }
    shared
        .request_bytes
        .fetch_add(bytes as u64, Ordering::Relaxed);
    shared.requests_sent.fetch_add(1, Ordering::Relaxed);
    Ok((slot, url, builder))
}

/// Sends a routed request recorded under `name`; a refused connection
/// takes that replica out of rotation.
pub(crate) async fn send(
    user: &mut GooseUser,
    shared: &Shared,
    method: GooseMethod,
    path: &str,
    name: &str,
    body: Option<String>,
) -> Result<reqwest::Response, Box<TransactionError>> {
    let (slot, url, mut builder) = routed(user, shared, method, path)?;
    if let Some(body) = body {
        shared
            .request_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        builder = builder
            .header("content-type", "application/json")
            .body(body);
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(url.as_str())
        .name(name)
        .set_request_builder(builder)
        .build();
    let goose = user.request(request).await?;
    match goose.response {
        Ok(r) => Ok(r),
        Err(e) => {
            shared.trouble();
            if e.is_connect() {
                let base = url.strip_suffix(path).unwrap_or(&url);
                shared.balancer.report_refused(slot, base);
            }
            Err(Box::new(TransactionError::Reqwest(e)))
        }
    }
}

/// `POST /login`; keeps the token if the server hands one out (stateless),
/// otherwise relies on the cookie store (stateful). Returns whether a
/// token was received.
pub(crate) async fn login(
    user: &mut GooseUser,
    shared: &Shared,
) -> Result<bool, Box<TransactionError>> {
    let mut state = user
        .get_session_data::<State>()
        .cloned()
        .unwrap_or_default();
    state.token = None;
    user.set_session_data(state);
    let response = send(user, shared, GooseMethod::Post, "/login", "login", None).await?;
    if !response.status().is_success() {
        shared.trouble();
        return Err(broken(format!("login answered {}", response.status())));
    }
    let cookie_len = response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map_or(0, |v| v.split(';').next().unwrap_or("").len());
    let body = response
        .bytes()
        .await
        .map_err(|e| Box::new(TransactionError::Reqwest(e)))?;
    let token = serde_json::from_slice::<TokenBody>(&body)
        .ok()
        .map(|t| t.token);
    let got_token = token.is_some();
    let mut state = user
        .get_session_data::<State>()
        .cloned()
        .unwrap_or_default();
    state.token = token;
    state.cookie_len = cookie_len;
    state.added = 0;
    user.set_session_data(state);
    Ok(got_token)
}

/// `GET path` with the user's credential, recorded under `name`. A 403
/// means the session is gone (another replica, or a lost one): the user
/// logs in again and the loss is counted.
pub(crate) async fn authorized_get(
    user: &mut GooseUser,
    shared: &Shared,
    path: &str,
    name: &str,
) -> TransactionResult {
    let response = send(user, shared, GooseMethod::Get, path, name, None).await?;
    if response.status() == reqwest::StatusCode::FORBIDDEN {
        shared.sessions_lost.fetch_add(1, Ordering::Relaxed);
        shared.trouble();
        login(user, shared).await?;
    }
    Ok(())
}
