//! What every HTTP scenario does the same way: route a request to a
//! replica with the user's credential, send it with the cancel switch
//! armed, log in, follow a lost session, classify and back off from
//! failures.

use std::sync::atomic::Ordering;
use std::time::Duration;

use goose::prelude::*;

use super::{Affinity, Shared};

/// A failed request's kind, from the client's error.
fn transport_kind(e: &reqwest::Error) -> &'static str {
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
    shared.mark_answered();
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
    /// The refresh token a hybrid server handed out with the access token.
    pub refresh: Option<String>,
    /// When the access token nears its expiry (a hybrid server's
    /// `expires_in`, less a margin): the user refreshes from then on.
    pub refresh_at: Option<std::time::Instant>,
    /// Length of the `name=value` session cookie the server set, if any.
    pub cookie_len: usize,
    pub added: usize,
    pub affinity: Affinity,
    /// Whether the user has its own client yet ([`super::client`]).
    pub own_client: bool,
}

#[derive(serde::Deserialize)]
pub(crate) struct TokenBody {
    pub token: String,
    /// Only from a hybrid server.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Only from a hybrid server: the access token's lifetime in seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenBody {
    /// Keeps what the body hands out in `state`: the token, and on a hybrid
    /// server the refresh token and when to use it.
    pub(crate) fn keep(self, state: &mut State) {
        state.token = Some(self.token);
        state.refresh = self.refresh_token;
        state.refresh_at = self.expires_in.map(|secs| {
            std::time::Instant::now() + super::hybrid::refresh_margin(Duration::from_secs(secs))
        });
    }
}

/// Header carrying the user id, for balancers that hash on it.
pub const USER_HEADER: &str = "x-user";

/// A request builder for `path` on the chosen replica (any but `avoid`,
/// for a retry), with the user id and, if the user holds one, its token
/// (the cookie store adds `sid`).
pub(crate) fn routed(
    user: &mut GooseUser,
    shared: &Shared,
    method: GooseMethod,
    path: &str,
    avoid: Option<usize>,
) -> Result<(usize, String, reqwest::RequestBuilder), Box<TransactionError>> {
    let (slot, url) = shared.url(user, path, avoid)?;
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
    shared.mark_sent();
    Ok((slot, url, builder))
}

/// Whether a failed attempt may be sent again to another replica, as a
/// balancer does (HAProxy's `retry-on conn-failure empty-response`): a
/// refused connection never reached a server, so any request may go
/// again; a reset or an empty answer may have, so only a `GET` does.
fn retryable(kind: &str, method: &GooseMethod) -> bool {
    kind == "connect" || (kind == "reset" && matches!(method, GooseMethod::Get))
}

/// Sends a routed request recorded under `name`; a refused connection
/// takes that replica out of rotation. A failure the server cannot have
/// acted on is sent again to another replica, up to
/// [`Shared::retries`] times; goose records each attempt, and the
/// retried ones are counted in [`Shared::retried`].
pub(crate) async fn send(
    user: &mut GooseUser,
    shared: &Shared,
    method: GooseMethod,
    path: &str,
    name: &str,
    body: Option<String>,
) -> Result<reqwest::Response, Box<TransactionError>> {
    // A paced run: wait for this request's send time (a retry goes at
    // once).
    if let Some(pacer) = &shared.pacer {
        tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return Err(stopped().await),
            () = pacer.wait(user.weighted_users_index) => {}
        }
    }
    let sent_us = shared.timeline.as_ref().map(|_| shared.now_us());
    let timed = |ok: bool| {
        if let (Some(t), Some(sent)) = (&shared.timeline, sent_us) {
            let now = shared.now_us();
            t.record(now, now.saturating_sub(sent), ok);
        }
    };
    let mut avoid = None;
    let mut retries_left = shared.retries;
    loop {
        let (slot, url, mut builder) = routed(user, shared, method, path, avoid)?;
        if let Some(body) = &body {
            shared
                .request_bytes
                .fetch_add(body.len() as u64, Ordering::Relaxed);
            builder = builder
                .header("content-type", "application/json")
                .body(body.clone());
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
        let e = match goose.response {
            Ok(r) => {
                answered(user, shared);
                timed(!r.status().is_server_error());
                return Ok(r);
            }
            Err(e) => e,
        };
        shared.trouble();
        let kind = transport_kind(&e);
        shared.count_error(kind);
        if e.is_connect() {
            shared.refused.store(true, Ordering::Relaxed);
            let base = url.strip_suffix(path).unwrap_or(&url);
            shared.balancer.report_refused(slot, base);
        }
        if retries_left > 0 && retryable(kind, &method) && shared.balancer.other_up(slot) {
            retries_left -= 1;
            shared.retried.fetch_add(1, Ordering::Relaxed);
            avoid = Some(slot);
            continue;
        }
        timed(false);
        back_off(user, shared).await;
        return Err(Box::new(TransactionError::Reqwest(e)));
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
    let answer = serde_json::from_slice::<TokenBody>(&body).ok();
    let got_token = answer.is_some();
    let mut state = user
        .get_session_data::<State>()
        .cloned()
        .unwrap_or_default();
    match answer {
        Some(a) => a.keep(&mut state),
        None => {
            state.token = None;
            state.refresh = None;
            state.refresh_at = None;
        }
    }
    state.cookie_len = cookie_len;
    state.added = 0;
    user.set_session_data(state);
    Ok(got_token)
}

/// A user's first login, before its loop: [`login`], also timed into the
/// run's setup figures (goose drops it when it resets its metrics).
pub(crate) async fn setup_login(
    user: &mut GooseUser,
    shared: &Shared,
) -> Result<bool, Box<TransactionError>> {
    let started = std::time::Instant::now();
    let outcome = login(user, shared).await;
    shared.record_setup("POST login", started.elapsed(), outcome.is_ok(), None);
    outcome
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
