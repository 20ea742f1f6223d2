//! The WebSocket user: connects once (on start), then sends a message and
//! waits for its echo, again and again. WebSocket work is not an HTTP
//! request, so each round trip is timed here and recorded with
//! `record_custom_request_duration` (method `WS`, name `echo`): it shows up
//! in every report and threshold like a request.

use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use goose::prelude::*;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use super::{Shared, broken, tx};

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The user's connection (goose session data must be `Clone`).
#[derive(Clone)]
struct Connection {
    socket: Arc<Mutex<Socket>>,
    sent: u64,
}

pub fn scenario(shared: &Arc<Shared>) -> Scenario {
    scenario!("ws-echo")
        .register_transaction(tx!(shared, connect).set_on_start().set_name("connect"))
        .register_transaction(tx!(shared, echo).set_name("echo"))
}

/// The WebSocket URL of `path` on the replica the balancer picks.
pub(crate) fn ws_url(
    user: &mut GooseUser,
    shared: &Shared,
    path: &str,
) -> Result<String, Box<TransactionError>> {
    let (_, url) = shared.url(user, path)?;
    Ok(url
        .replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1))
}

/// Opens a WebSocket and records the handshake as `WS connect`.
pub(crate) async fn open(user: &mut GooseUser, url: &str) -> Result<Socket, Box<TransactionError>> {
    let started = Instant::now();
    let result = tokio_tungstenite::connect_async(url).await;
    let ok = result.is_ok();
    let error = result.as_ref().err().map(|e| e.to_string());
    user.record_custom_request_duration(
        "WS",
        "connect",
        started.elapsed(),
        ok,
        Some(101),
        error.as_deref(),
    )
    .await?;
    let (socket, _) = result.map_err(|e| broken(format!("ws connect to {url}: {e}")))?;
    Ok(socket)
}

async fn connect(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    let url = ws_url(user, shared, "/ws")?;
    let socket = open(user, &url).await?;
    user.set_session_data(Connection {
        socket: Arc::new(Mutex::new(socket)),
        sent: 0,
    });
    Ok(())
}

async fn echo(user: &mut GooseUser, _shared: &Shared) -> TransactionResult {
    let Some(mut conn) = user.get_session_data::<Connection>().cloned() else {
        return Err(broken("ws-echo: no connection"));
    };
    conn.sent += 1;
    let text = format!("echo {}", conn.sent);
    let expected = format!("Server received: {text}");
    let started = Instant::now();
    let outcome = {
        let mut socket = conn.socket.lock().await;
        match socket.send(Message::text(text)).await {
            Err(e) => Err(format!("send: {e}")),
            Ok(()) => loop {
                match socket.next().await {
                    Some(Ok(Message::Text(t))) if t.as_str() == expected => break Ok(()),
                    Some(Ok(Message::Text(t))) => {
                        break Err(format!("unexpected echo {:?}", t.as_str()));
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(other)) => break Err(format!("unexpected frame {other:?}")),
                    Some(Err(e)) => break Err(format!("receive: {e}")),
                    None => break Err("connection closed".into()),
                }
            },
        }
    };
    let elapsed = started.elapsed();
    user.set_session_data(conn);
    let error = outcome.as_ref().err().cloned();
    user.record_custom_request_duration(
        "WS",
        "echo",
        elapsed,
        outcome.is_ok(),
        None,
        error.as_deref(),
    )
    .await?;
    outcome.map_err(broken)
}
