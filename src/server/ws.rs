//! The WebSocket server: stateful connections.
//!
//! - `GET /ws`: every text or binary message is answered with
//!   `Server received: <message>` (the classic `ws` echo; binary stays binary);
//! - `GET /chat/{room}`: every message is sent to every connection in the
//!   room, the sender included. With a Redis backplane rooms span replicas:
//!   messages go through Redis pub/sub, and each replica delivers what it
//!   hears to its own members; without one, rooms are per process.
//!
//! Every connection gets a registry id from a counter, so ids never collide
//! (the classic example's `Date.now()` ids do). Limits: message size (larger
//! closes with 1009), idle timeout (no frame from the client, pongs included),
//! server pings, a cap on open connections (503 before upgrading), bounded
//! per-member queues (a slow member misses messages rather than growing
//! memory), small read buffers so idle connections stay cheap, and a 1001
//! close to everyone on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use dashmap::DashMap;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::{Lifecycle, reject};
use crate::metrics::Metrics;
use crate::session::redis::pubsub::{self, Channels};

/// Limits of the WebSocket server.
#[derive(Debug, Clone, Copy)]
pub struct WsConfig {
    /// Largest message (and frame) accepted; larger ones close with 1009.
    pub max_message: usize,
    /// A connection that sends nothing (not even a pong) for this long is closed.
    pub idle_timeout: Duration,
    /// How often the server pings each connection.
    pub ping_interval: Duration,
    /// Most open connections; further upgrades get 503.
    pub max_connections: usize,
    /// Messages queued per chat member before it starts missing some.
    pub room_queue: usize,
    /// Per-connection read buffer (tungstenite's default is 128 KiB).
    pub read_buffer: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            max_message: 64 * 1024,
            idle_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(20),
            max_connections: 100_000,
            room_queue: 256,
            read_buffer: 4 * 1024,
        }
    }
}

/// Open connections by id.
#[derive(Default)]
pub struct Registry {
    next: AtomicU64,
    conns: DashMap<u64, Option<Arc<str>>, foldhash::fast::RandomState>,
}

impl Registry {
    /// Registers a connection (in `room`, if a chat member); returns its id.
    pub fn register(&self, room: Option<Arc<str>>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.conns.insert(id, room);
        id
    }

    pub fn unregister(&self, id: u64) {
        self.conns.remove(&id);
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Ids of the open connections.
    pub fn ids(&self) -> Vec<u64> {
        self.conns.iter().map(|e| *e.key()).collect()
    }
}

/// This process's chat rooms: one broadcast queue per room with members.
#[derive(Default)]
pub struct Rooms {
    rooms: DashMap<Arc<str>, broadcast::Sender<Message>, foldhash::fast::RandomState>,
}

impl Rooms {
    fn join(&self, room: &Arc<str>, queue: usize) -> broadcast::Receiver<Message> {
        self.rooms
            .entry(room.clone())
            .or_insert_with(|| broadcast::channel(queue).0)
            .subscribe()
    }

    fn leave(&self, room: &str) {
        self.rooms.remove_if(room, |_, tx| tx.receiver_count() == 0);
    }

    /// Delivers `msg` to this process's members of `room`.
    fn deliver(&self, room: &str, msg: Message) {
        if let Some(tx) = self.rooms.get(room) {
            let _ = tx.send(msg);
        }
    }
}

/// Carries room messages between replicas over Redis pub/sub.
pub struct Backplane {
    conn: redis::aio::ConnectionManager,
    channel_prefix: String,
    ready: watch::Receiver<bool>,
}

impl Backplane {
    /// Resolves once this replica is subscribed (messages published before
    /// that are not heard here).
    pub async fn ready(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|r| *r).await;
    }
}

/// Everything the WebSocket handlers share.
#[derive(Clone)]
pub struct WsState {
    pub config: WsConfig,
    pub registry: Arc<Registry>,
    pub rooms: Arc<Rooms>,
    pub backplane: Option<Arc<Backplane>>,
    pub lifecycle: Lifecycle,
    pub metrics: Arc<Metrics>,
}

/// What the WebSocket server is built from.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub limits: WsConfig,
    /// A Redis URL carrying chat rooms across replicas, and the prefix that
    /// namespaces its channels; without it rooms are per process.
    pub backplane: Option<(String, String)>,
}

/// The WebSocket server: its state (returned too, for callers that watch
/// its registry), its backplane subscriber, its routes. Connection tasks
/// and the subscriber stop when `lifecycle` does.
pub fn build(
    config: Config,
    base: &super::Base,
    lifecycle: &Lifecycle,
) -> Result<(Router, WsState), crate::session::StoreError> {
    let mut state = WsState {
        config: config.limits,
        registry: Arc::default(),
        rooms: Arc::default(),
        backplane: None,
        lifecycle: lifecycle.clone(),
        metrics: base.metrics.clone(),
    };
    if let Some((url, prefix)) = &config.backplane {
        state = state.with_backplane(url, prefix)?;
    }
    Ok((app(state.clone(), base.request_timeout), state))
}

impl WsState {
    /// Adds a Redis backplane at `url` and starts its subscriber task (which
    /// reconnects by itself if Redis goes away). `prefix` namespaces channels.
    fn with_backplane(
        mut self,
        url: &str,
        prefix: &str,
    ) -> Result<Self, crate::session::StoreError> {
        // One client: a multiplexed connection for publishing, a dedicated
        // pub/sub connection (made by the subscriber task) for listening.
        let client = crate::session::redis::client(url)?;
        let conn = crate::session::redis::connect_client(client.clone())?;
        let (ready_tx, ready) = watch::channel(false);
        let channel_prefix = format!("{prefix}:room:");
        self.backplane = Some(Arc::new(Backplane {
            conn,
            channel_prefix: channel_prefix.clone(),
            ready,
        }));
        let rooms = self.rooms.clone();
        let metrics = self.metrics.clone();
        let stop = self.lifecycle.stop.clone();
        self.lifecycle.tasks.spawn(async move {
            tokio::select! {
                () = subscribe_loop(client, channel_prefix, rooms, metrics, ready_tx) => {}
                () = stop.cancelled() => {}
            }
        });
        Ok(self)
    }

    async fn publish(&self, room: &str, msg: Message) {
        let Some(bp) = &self.backplane else {
            self.rooms.deliver(room, msg);
            return;
        };
        let (tag, data): (u8, Bytes) = match msg {
            Message::Text(t) => (b't', Bytes::from(t)),
            Message::Binary(b) => (b'b', b),
            _ => return,
        };
        let mut payload = Vec::with_capacity(data.len() + 1);
        payload.push(tag);
        payload.extend_from_slice(&data);
        let mut conn = bp.conn.clone();
        let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(format!("{}{room}", bp.channel_prefix))
            .arg(payload)
            .query_async(&mut conn)
            .await;
        if let Err(e) = sent {
            self.metrics.store_errors.inc();
            tracing::warn!(error = %e, "backplane publish failed");
        }
    }
}

async fn subscribe_loop(
    client: redis::Client,
    prefix: String,
    rooms: Arc<Rooms>,
    metrics: Arc<Metrics>,
    ready: watch::Sender<bool>,
) {
    let deliver = |channel: &str, payload: &[u8]| {
        let Some(room) = channel.strip_prefix(prefix.as_str()) else {
            return;
        };
        let msg = match payload.split_first() {
            Some((b't', text)) => match std::str::from_utf8(text) {
                Ok(t) => Message::Text(t.into()),
                Err(_) => return,
            },
            Some((b'b', data)) => Message::Binary(Bytes::copy_from_slice(data)),
            _ => return,
        };
        rooms.deliver(room, msg);
    };
    // Room messages are live traffic: what was sent while away is gone.
    let caught_up = || std::future::ready(Ok(()));
    let channels = Channels::Prefix(prefix.clone());
    let failed = |_: &redis::RedisError| {
        metrics.store_errors.inc();
    };
    pubsub::listen(client, channels, ready, caught_up, deliver, failed).await;
}

/// The WebSocket server's routes.
fn app(state: WsState, request_timeout: Duration) -> Router {
    let metrics = state.metrics.clone();
    let router = Router::new()
        .route("/ws", get(echo))
        .route("/chat/{room}", get(chat))
        .route("/metrics", get(metrics_handler))
        .with_state(state);
    super::finish(router, &metrics, request_timeout)
}

fn valid_room(room: &str) -> bool {
    (1..=64).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn upgrade(ws: WebSocketUpgrade, state: WsState, room: Option<Arc<str>>) -> Response {
    if state.registry.len() >= state.config.max_connections {
        return reject(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many WebSocket connections",
        );
    }
    let c = state.config;
    let tasks = state.lifecycle.tasks.clone();
    ws.max_message_size(c.max_message)
        .max_frame_size(c.max_message)
        .read_buffer_size(c.read_buffer)
        .write_buffer_size(0)
        .max_write_buffer_size(c.max_message.saturating_mul(4).max(1024 * 1024))
        .on_upgrade(move |socket: WebSocket| tasks.track_future(connection(socket, state, room)))
}

async fn echo(ws: WebSocketUpgrade, State(state): State<WsState>) -> Response {
    upgrade(ws, state, None)
}

async fn chat(
    ws: WebSocketUpgrade,
    Path(room): Path<String>,
    State(state): State<WsState>,
) -> Response {
    if !valid_room(&room) {
        return reject(
            StatusCode::BAD_REQUEST,
            "room must be 1 to 64 of [A-Za-z0-9._-]",
        );
    }
    upgrade(ws, state, Some(room.into()))
}

async fn metrics_handler(State(state): State<WsState>) -> Response {
    state
        .metrics
        .ws_connections
        .set(state.registry.len() as i64);
    state.metrics.render()
}

/// The reply to an echo message.
pub fn echo_reply(msg: Message) -> Option<Message> {
    const PREFIX: &str = "Server received: ";
    match msg {
        Message::Text(t) => Some(Message::Text(format!("{PREFIX}{}", t.as_str()).into())),
        Message::Binary(b) => {
            let mut out = Vec::with_capacity(PREFIX.len() + b.len());
            out.extend_from_slice(PREFIX.as_bytes());
            out.extend_from_slice(&b);
            Some(Message::Binary(out.into()))
        }
        _ => None,
    }
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

fn is_too_big(e: axum::Error) -> bool {
    e.into_inner()
        .downcast_ref::<tokio_tungstenite::tungstenite::Error>()
        .is_some_and(|e| matches!(e, tokio_tungstenite::tungstenite::Error::Capacity(_)))
}

/// One connection from registration to close.
async fn connection(socket: WebSocket, state: WsState, room: Option<Arc<str>>) {
    let id = state.registry.register(room.clone());
    state.metrics.ws_connections.inc();
    let members = room
        .as_ref()
        .map(|r| state.rooms.join(r, state.config.room_queue));
    drive(socket, &state, room.as_deref(), members).await;
    state.registry.unregister(id);
    state.metrics.ws_connections.dec();
    if let Some(r) = &room {
        state.rooms.leave(r);
    }
}

/// The message loop, generic over the socket so tests can drive it with
/// channels. Returns when either side closes, on idle timeout, or on shutdown.
pub async fn drive<W>(
    mut socket: W,
    state: &WsState,
    room: Option<&str>,
    mut members: Option<broadcast::Receiver<Message>>,
) where
    W: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
{
    let cfg = state.config;
    let m = &state.metrics;
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval_at(Instant::now() + cfg.ping_interval, cfg.ping_interval);
    loop {
        tokio::select! {
            incoming = socket.next() => {
                let msg = match incoming {
                    None | Some(Ok(Message::Close(_))) => break,
                    Some(Err(e)) => {
                        if is_too_big(e) {
                            let _ = socket.send(close(close_code::SIZE, "message too big")).await;
                        }
                        break;
                    }
                    Some(Ok(msg)) => msg,
                };
                last_heard = Instant::now();
                if !matches!(msg, Message::Text(_) | Message::Binary(_)) {
                    continue;
                }
                m.ws_messages_in.inc();
                match room {
                    Some(room) => state.publish(room, msg).await,
                    None => {
                        if let Some(reply) = echo_reply(msg) {
                            if socket.send(reply).await.is_err() {
                                break;
                            }
                            m.ws_messages_out.inc();
                        }
                    }
                }
            }
            delivered = recv(&mut members) => match delivered {
                Ok(msg) => {
                    if socket.send(msg).await.is_err() {
                        break;
                    }
                    m.ws_messages_out.inc();
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    m.ws_messages_dropped.inc_by(n);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            () = tokio::time::sleep_until(last_heard + cfg.idle_timeout) => {
                let _ = socket.send(close(close_code::NORMAL, "idle timeout")).await;
                break;
            }
            _ = ping.tick() => {
                if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    break;
                }
            }
            () = state.lifecycle.stop.cancelled() => {
                let _ = socket.send(close(close_code::AWAY, "server shutting down")).await;
                break;
            }
        }
    }
    let _ = socket.close().await;
}

async fn recv(
    members: &mut Option<broadcast::Receiver<Message>>,
) -> Result<Message, broadcast::error::RecvError> {
    match members {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
