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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goose::prelude::*;
use tokio_util::sync::CancellationToken;

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
    /// Whether any request got an answer (any HTTP status, a WebSocket
    /// handshake), and whether the target refused a connection: together
    /// they tell a dead target from a live one. Flags, not counters: set
    /// once, then only read, so the hot path writes no shared cache line.
    pub answered: AtomicBool,
    pub refused: AtomicBool,
    /// Failed requests that carried no HTTP status, by kind (`connect`,
    /// `reset`, `timeout`, `ws close 1011`, …). HTTP statuses come from
    /// goose. Counted, never stored one by one: memory stays flat however
    /// many fail. A `std` mutex: held for one map update, never across an
    /// await.
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// Cancelled when the run must end now (a stop, the run time overrun,
    /// a dead target): requests in flight are abandoned, so a target that
    /// never answers cannot hold the run.
    pub cancel: CancellationToken,
    /// Each user's current back-off after failures without an answer (ms;
    /// 0: none), by user index. Kept here, not in goose's session data,
    /// which holds one value per user and belongs to the scenario.
    backoff_ms: Vec<std::sync::atomic::AtomicU32>,
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
            answered: AtomicBool::new(false),
            refused: AtomicBool::new(false),
            errors: Mutex::new(BTreeMap::new()),
            cancel: CancellationToken::new(),
            backoff_ms: (0..config.users.max(1))
                .map(|_| std::sync::atomic::AtomicU32::new(0))
                .collect(),
        })
    }

    /// Counts one failed request of `kind` that has no HTTP status.
    pub(crate) fn count_error(&self, kind: &str) {
        if let Ok(mut e) = self.errors.lock() {
            match e.get_mut(kind) {
                Some(n) => *n += 1,
                None => {
                    e.insert(kind.to_owned(), 1);
                }
            }
        }
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

/// Why a run could not measure its target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{0} refused every connection (is the server running?)")]
    Refused(String),
    #[error("{0} answered no request in {1} s (it accepts connections but never responds)")]
    Silent(String, u64),
    #[error("no target can be measured: {0}")]
    Unusable(String),
}

/// How long a target may refuse every connection before the run gives up.
const REFUSED_FOR: Duration = Duration::from_secs(2);
/// How long past its planned end a run may go before requests in flight
/// are abandoned.
const OVERRUN: Duration = Duration::from_secs(1);

/// Runs one load test with a [`Shared`] the caller keeps (to change the
/// replica set mid-run and read the counters afterwards).
///
/// The run ends by itself whatever the target does: a watchdog stops it
/// on a stop request ([`crate::stop`]), when it overruns its planned time,
/// and when the target has refused every connection for 2 s
/// ([`TargetError::Refused`]).
pub async fn run_shared(config: &LoadConfig, shared: Arc<Shared>) -> anyhow::Result<LoadResult> {
    let goose_config = goose::config::GooseConfiguration::parse_args_default(&config.goose_args())
        .map_err(|e| anyhow::anyhow!("goose configuration: {e}"))?;
    let attack = GooseAttack::initialize_with_config(goose_config)
        .map_err(|e| anyhow::anyhow!("goose: {e}"))?
        .register_scenario(config.scenario.scenario(&shared));
    let ramp = Duration::from_secs_f64(config.users as f64 / config.increase_rate.max(0.01));
    let deadline = Instant::now() + ramp + config.run_time + OVERRUN;
    let watchdog = tokio::spawn(watch(Arc::clone(&shared), deadline));
    let outcome = attack.execute().await;
    watchdog.abort();
    shared.cancel.cancel();
    let (mut result, failed) = match outcome {
        Ok(metrics) => (LoadResult::from_goose(config, &metrics), Vec::new()),
        // The run happened; a rule given with --threshold failed.
        Err(GooseError::ThresholdsFailed { failed, metrics }) => {
            (LoadResult::from_goose(config, &metrics), failed)
        }
        Err(e) => return Err(anyhow::anyhow!("load test failed: {e}")),
    };
    if !shared.answered.load(Ordering::Relaxed) && crate::stop::requested().is_none() {
        if shared.refused.load(Ordering::Relaxed) {
            return Err(TargetError::Refused(config.target.clone()).into());
        }
        return Err(TargetError::Silent(config.target.clone(), config.run_time.as_secs()).into());
    }
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
    if let Ok(errors) = shared.errors.lock() {
        for (kind, n) in errors.iter() {
            *result.errors.entry(kind.clone()).or_default() += n;
        }
    }
    Ok(result)
}

/// Ends the run early when it must (see [`run_shared`]). goose clears its
/// killswitch when a run starts, so the switch is tripped again on every
/// tick until the run is over and this task is aborted.
async fn watch(shared: Arc<Shared>, deadline: Instant) {
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let dead = started.elapsed() >= REFUSED_FOR
            && !shared.answered.load(Ordering::Relaxed)
            && shared.refused.load(Ordering::Relaxed);
        let why = if let Some(r) = crate::stop::requested() {
            format!("stopped by {r}")
        } else if dead {
            "the target refused every connection".into()
        } else if Instant::now() >= deadline {
            "the run overran its time".into()
        } else {
            continue;
        };
        shared.cancel.cancel();
        goose::trigger_killswitch(&why);
    }
}

/// A failed request's kind, from the client's error.
pub(crate) fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        return "timeout";
    }
    if e.is_connect() {
        return "connect";
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(
                io.kind(),
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof
            ) {
                return "reset";
            }
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled() || h.is_closed())
        {
            return "reset";
        }
        source = s.source();
    }
    if e.is_body() || e.is_decode() {
        return "body";
    }
    "other"
}

/// After a failure that had no answer, waits before the user's next
/// request (10 ms, doubling to 500 ms), so a dead target is not hammered
/// in a tight loop; any answer resets it.
pub(crate) async fn back_off(user: &GooseUser, shared: &Shared) {
    let slot = &shared.backoff_ms[user.weighted_users_index % shared.backoff_ms.len()];
    let wait = (slot.load(Ordering::Relaxed) * 2).clamp(10, 500);
    slot.store(wait, Ordering::Relaxed);
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(wait.into())) => {}
        () = shared.cancel.cancelled() => {}
    }
}

/// A request got an answer: the target is alive, and this user's back-off
/// starts over.
pub(crate) fn answered(user: &GooseUser, shared: &Shared) {
    if !shared.answered.load(Ordering::Relaxed) {
        shared.answered.store(true, Ordering::Relaxed);
    }
    let slot = &shared.backoff_ms[user.weighted_users_index % shared.backoff_ms.len()];
    if slot.load(Ordering::Relaxed) != 0 {
        slot.store(0, Ordering::Relaxed);
    }
}

/// The error a user's transaction ends with when the run is cut short.
/// It comes after a pause: goose asks a user to exit only between
/// transactions, and a user whose transactions return at once would spin
/// without yielding, starving goose's own tasks on the runtime.
pub(crate) async fn stopped() -> Box<TransactionError> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    broken("run stopped")
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
    let goose = tokio::select! {
        biased;
        () = shared.cancel.cancelled() => return Err(stopped().await),
        goose = user.request(request) => goose?,
    };
    match goose.response {
        Ok(r) => {
            answered(user, shared);
            Ok(r)
        }
        Err(e) => {
            shared.trouble();
            shared.count_error(transport_kind(&e));
            if e.is_connect() {
                shared.refused.store(true, Ordering::Relaxed);
                let base = url.strip_suffix(path).unwrap_or(&url);
                shared.balancer.report_refused(slot, base);
            }
            back_off(user, shared).await;
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
