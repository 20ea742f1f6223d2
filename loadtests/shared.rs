//! What every simulated user of one run shares: the balancer, the
//! counters goose does not keep, and the switch that ends the run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goose::prelude::*;
use tokio_util::sync::CancellationToken;

use super::http::{State, broken};
use super::result::RequestStats;
use super::{Balancer, LoadConfig, ws_chat};

/// What every user of one run shares: the balancer and the counters that
/// goose does not keep.
pub struct Shared {
    pub balancer: Balancer,
    pub cart_items: usize,
    pub room_size: usize,
    pub chat_interval: Duration,
    /// Users that had to log in again because their session was gone.
    pub sessions_lost: AtomicU64,
    /// Retries per request on another replica ([`LoadConfig::retries`]).
    pub retries: u32,
    /// Failed attempts that were sent again to another replica: goose
    /// counts each as a failed request, the user never saw it fail.
    pub retried: AtomicU64,
    /// Credential and body bytes sent (`Authorization` value, `Cookie`
    /// value, body) and the requests that sent them: what state costs on
    /// the wire.
    pub request_bytes: AtomicU64,
    pub requests_sent: AtomicU64,
    /// When a request last failed or found no session (µs since `epoch`):
    /// how long trouble lasted after a failure.
    pub last_trouble_us: AtomicU64,
    /// When the first request was sent and the last answer came (µs since
    /// `epoch`, plus one so that 0 means none): the window the load
    /// really ran in, without goose's start and stop.
    first_sent_us: AtomicU64,
    last_answer_us: AtomicU64,
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
    pub(crate) backoff_ms: Vec<std::sync::atomic::AtomicU32>,
    /// Setup requests (a user's first login, WebSocket connects), timed
    /// here because goose drops them when it resets its metrics. One
    /// sample per user start, so the map stays small.
    pub setup: Mutex<BTreeMap<String, RequestStats>>,
    /// Send times of a fixed-rate HTTP run (`LoadConfig::throttle`), or
    /// of each user (`LoadConfig::user_rate`).
    pub pacer: Option<super::pacer::Pacer>,
    /// Per-second figures, when the run keeps them (`LoadConfig::timeline`).
    pub timeline: Option<super::timeline::Timeline>,
    /// How each user's own client is built on its first request.
    clients: super::client::UserClients,
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
            retries: config.retries,
            retried: AtomicU64::new(0),
            request_bytes: AtomicU64::new(0),
            last_trouble_us: AtomicU64::new(0),
            first_sent_us: AtomicU64::new(0),
            last_answer_us: AtomicU64::new(0),
            requests_sent: AtomicU64::new(0),
            chat: ws_chat::ChatStats::default(),
            epoch: Instant::now(),
            answered: AtomicBool::new(false),
            refused: AtomicBool::new(false),
            errors: Mutex::new(BTreeMap::new()),
            cancel: CancellationToken::new(),
            backoff_ms: (0..config.peak_users().max(1))
                .map(|_| std::sync::atomic::AtomicU32::new(0))
                .collect(),
            setup: Mutex::new(BTreeMap::new()),
            pacer: match (config.paced_rate(), config.user_rate()) {
                (Some(rate), _) => Some(super::pacer::Pacer::new(rate)),
                (None, Some(rate)) => {
                    Some(super::pacer::Pacer::per_user(rate, config.peak_users()))
                }
                (None, None) => None,
            },
            timeline: config.timeline.then(|| {
                let secs = (config.planned() + super::run::OVERRUN).as_secs() as usize + 2;
                super::timeline::Timeline::new(secs)
            }),
            clients: super::client::UserClients::for_targets(
                std::iter::once(&config.target).chain(&config.replicas),
            ),
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

    /// Records one setup request (`POST login`, `WS connect`) that took
    /// `elapsed`.
    pub(crate) fn record_setup(
        &self,
        name: &str,
        elapsed: Duration,
        ok: bool,
        status: Option<u16>,
    ) {
        if let Ok(mut setup) = self.setup.lock() {
            setup.entry(name.to_owned()).or_default().record(
                elapsed.as_micros() as u64,
                ok,
                status,
            );
        }
    }

    /// The full URL of `path` on the replica this user's request goes to
    /// (any but `avoid`, for a retry).
    pub(crate) fn url(
        &self,
        user: &mut GooseUser,
        path: &str,
        avoid: Option<usize>,
    ) -> Result<(usize, String), Box<TransactionError>> {
        let id = user.weighted_users_index as u64;
        // A user's first request: its own client ([`super::client`]),
        // marked as had (with the user's state) only once it is the user's.
        if !user
            .get_session_data::<State>()
            .is_some_and(|s| s.own_client)
        {
            user.client = self
                .clients
                .build(&user.config)
                .map_err(|e| Box::new(TransactionError::Reqwest(e)))?;
            let mut state = user
                .get_session_data::<State>()
                .cloned()
                .unwrap_or_default();
            state.own_client = true;
            user.set_session_data(state);
        }
        // In place: no copy of the token on every request.
        let picked = user
            .get_session_data_mut::<State>()
            .and_then(|state| match avoid {
                None => self.balancer.pick(id, &mut state.affinity),
                Some(slot) => self.balancer.pick_other(id, &mut state.affinity, slot),
            });
        let (slot, base) = picked.ok_or_else(|| broken("no replica is up"))?;
        Ok((slot, format!("{base}{path}")))
    }

    /// Microseconds since the run's epoch.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// A request is being sent (marks the start of the load once).
    pub(crate) fn mark_sent(&self) {
        if self.first_sent_us.load(Ordering::Relaxed) == 0 {
            let now = self.now_us() + 1;
            let _ =
                self.first_sent_us
                    .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// An answer came (moves the end of the load).
    pub(crate) fn mark_answered(&self) {
        self.last_answer_us
            .fetch_max(self.now_us() + 1, Ordering::Relaxed);
    }

    /// Seconds from the first request sent to the last answer, if any.
    pub fn active_secs(&self) -> Option<f64> {
        let (first, last) = self.active_us();
        (first > 0 && last > first).then(|| (last - first) as f64 / 1e6)
    }

    /// When the first request was sent and the last answer came, in
    /// microseconds since the run's epoch ([`Shared::now_us`]); 0 for
    /// what has not happened.
    pub fn active_us(&self) -> (u64, u64) {
        (
            self.first_sent_us.load(Ordering::Relaxed),
            self.last_answer_us.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn trouble(&self) {
        self.last_trouble_us
            .fetch_max(self.now_us(), Ordering::Relaxed);
    }
}
