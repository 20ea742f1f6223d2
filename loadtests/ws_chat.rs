//! The chat user: joins room `room-<user id / R>` (R members per room) on
//! the replica the balancer picks, then posts a message every
//! `chat_interval`. A reader task per user receives the room's messages and
//! measures each one's fan-out latency (the send time travels inside the
//! message). The delivery ratio is messages received / messages that
//! should have been received (each message, times the room's members when
//! it was sent). Rooms spread over replicas without a backplane lose the
//! members on other replicas; with the Redis backplane they do not.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use goose::prelude::*;
use tokio_tungstenite::tungstenite::Message;

use super::result::RequestStats;
use super::ws_echo::{Socket, WsFailure, open, record, ws_url};
use super::{LoadResult, Shared, Spec, broken, stopped, tx};
use crate::server::Arch;

/// Fan-out counters shared by every chat user of a run (and their readers).
#[derive(Default, Clone)]
pub struct ChatStats(Arc<Counters>);

#[derive(Default)]
pub struct Counters {
    expected: AtomicU64,
    delivered: AtomicU64,
    members: Mutex<HashMap<usize, u64>>,
    latency: Mutex<RequestStats>,
}

impl std::ops::Deref for ChatStats {
    type Target = Counters;
    fn deref(&self) -> &Counters {
        &self.0
    }
}

impl Counters {
    fn join(&self, room: usize) {
        *self
            .members
            .lock()
            .expect("chat lock")
            .entry(room)
            .or_default() += 1;
    }

    fn leave(&self, room: usize) {
        if let Some(n) = self.members.lock().expect("chat lock").get_mut(&room) {
            *n = n.saturating_sub(1);
        }
    }

    fn members(&self, room: usize) -> u64 {
        self.members
            .lock()
            .expect("chat lock")
            .get(&room)
            .copied()
            .unwrap_or(0)
    }

    fn record(&self, us: u64) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let mut l = self.latency.lock().expect("chat lock");
        let bucket = round_us(us);
        let first = l.count() == 0;
        *l.histogram_us.entry(bucket).or_default() += 1;
        l.successes += 1;
        l.min_us = if first { us } else { l.min_us.min(us) };
        l.max_us = l.max_us.max(us);
        l.total_us += us;
    }
}

impl ChatStats {
    /// Adds the fan-out latency (`WS fanout`) and delivery counts to a result.
    pub fn add_to(&self, result: &mut LoadResult) {
        result.chat_expected = self.expected.load(Ordering::Relaxed);
        result.chat_delivered = self.delivered.load(Ordering::Relaxed);
        let latency = self.latency.lock().expect("chat lock").clone();
        if latency.count() > 0 {
            result.requests.insert("WS fanout".into(), latency);
        }
    }
}

/// Three significant digits above 1 ms, exact below: fine enough for
/// percentiles, small enough to save and merge.
fn round_us(us: u64) -> u64 {
    let mut scale = 1;
    while us / scale >= 1000 {
        scale *= 10;
    }
    (us + scale / 2) / scale * scale
}

type Sink = SplitSink<Socket, Message>;

#[derive(Clone)]
struct Member {
    room: usize,
    sink: Arc<tokio::sync::Mutex<Sink>>,
    sent: u64,
}

/// What this scenario is (see [`super::Spec`]).
pub const SPEC: Spec = Spec {
    name: "ws-chat",
    main_request: "WS fanout",
    websocket: true,
    counted: &["WS post"],
    arch: Arch::Ws,
    needs: None,
    build: scenario,
};

pub fn scenario(shared: &Arc<Shared>) -> Scenario {
    scenario!("ws-chat")
        .register_transaction(tx!(shared, join).set_on_start().set_name("join"))
        .register_transaction(tx!(shared, post).set_name("post"))
        .register_transaction(tx!(shared, leave).set_on_stop().set_name("leave"))
}

async fn join(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    let room = user.weighted_users_index / shared.room_size;
    let url = ws_url(user, shared, &format!("/chat/room-{room}"))?;
    let socket = open(user, shared, &url).await?;
    let (sink, stream) = socket.split();
    shared.chat.join(room);
    tokio::spawn(read(stream, shared.epoch, shared.chat.clone()));
    user.set_session_data(Member {
        room,
        sink: Arc::new(tokio::sync::Mutex::new(sink)),
        sent: 0,
    });
    Ok(())
}

async fn read(mut stream: SplitStream<Socket>, epoch: Instant, stats: ChatStats) {
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else { continue };
        // "chat <sender> <seq> <sent-at µs since the run's epoch>"
        let Some(sent) = text
            .as_str()
            .rsplit(' ')
            .next()
            .and_then(|t| t.parse::<u64>().ok())
        else {
            continue;
        };
        let now = epoch.elapsed().as_micros() as u64;
        stats.record(now.saturating_sub(sent));
    }
}

async fn post(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    let Some(mut member) = user.get_session_data::<Member>().cloned() else {
        // The join failed (and was counted): try again, after the back-off.
        return join(user, shared).await;
    };
    member.sent += 1;
    let sent_at = shared.epoch.elapsed().as_micros() as u64;
    let text = format!(
        "chat {} {} {sent_at}",
        user.weighted_users_index, member.sent
    );
    shared
        .chat
        .expected
        .fetch_add(shared.chat.members(member.room), Ordering::Relaxed);
    let started = Instant::now();
    let outcome = tokio::select! {
        biased;
        () = shared.cancel.cancelled() => return Err(stopped().await),
        r = async { member.sink.lock().await.send(Message::text(text)).await } => r,
    };
    let elapsed = started.elapsed();
    let outcome = outcome.map_err(|e| WsFailure::from_ws("ws-chat send", &e));
    if outcome.is_err() {
        // Out of the room: the next round joins again.
        shared.chat.leave(member.room);
        user.set_session_data(());
    } else {
        user.set_session_data(member);
    }
    record(user, shared, "post", elapsed, None, &outcome).await?;
    if let Err(f) = outcome {
        return Err(broken(f.message));
    }
    tokio::select! {
        () = tokio::time::sleep(shared.chat_interval) => {}
        () = shared.cancel.cancelled() => {}
    }
    Ok(())
}

async fn leave(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    let Some(member) = user.get_session_data::<Member>().cloned() else {
        return Ok(());
    };
    // Stop counting this member first, then let messages in flight arrive.
    shared.chat.leave(member.room);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = member.sink.lock().await.close().await;
    Ok(())
}
