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

use super::{Shared, Spec, answered, back_off, broken, stopped, tx};
use crate::server::Arch;

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The user's connection (goose session data must be `Clone`).
#[derive(Clone)]
struct Connection {
    socket: Arc<Mutex<Socket>>,
    sent: u64,
}

/// What this scenario is (see [`super::Spec`]).
pub const SPEC: Spec = Spec {
    name: "ws-echo",
    main_request: "WS echo",
    websocket: true,
    counted: &["WS echo"],
    arch: Arch::Ws,
    needs: Some((Arch::Ws, &["GET /ws"])),
    build: scenario,
};

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
    let (_, url) = shared.url(user, path, None)?;
    Ok(url
        .replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1))
}

/// Why a WebSocket step failed: its kind (counted in the run's errors)
/// and the message goose records.
pub(crate) struct WsFailure {
    pub kind: String,
    pub message: String,
}

impl WsFailure {
    fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
        }
    }

    /// A tungstenite error's kind: `connect` for a refused connection, the
    /// HTTP status for a refused upgrade, `reset`, `ws closed` or `ws error`.
    pub(crate) fn from_ws(what: &str, e: &tokio_tungstenite::tungstenite::Error) -> Self {
        use tokio_tungstenite::tungstenite::Error as E;
        use tokio_tungstenite::tungstenite::error::ProtocolError as P;
        let kind = match e {
            E::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => "connect".into(),
            E::Io(_) | E::Protocol(P::ResetWithoutClosingHandshake) => "reset".into(),
            E::Http(r) => r.status().as_u16().to_string(),
            E::ConnectionClosed | E::AlreadyClosed => "ws closed".into(),
            _ => "ws error".into(),
        };
        Self::new(kind, format!("{what}: {e}"))
    }
}

/// Records one WebSocket step as the custom request `WS <name>`. A failure
/// is counted by kind and the user backs off; an answer resets it.
pub(crate) async fn record(
    user: &mut GooseUser,
    shared: &Shared,
    name: &str,
    elapsed: std::time::Duration,
    status: Option<u16>,
    outcome: &Result<(), WsFailure>,
) -> Result<(), Box<TransactionError>> {
    let error = outcome.as_ref().err().map(|f| f.message.as_str());
    user.record_custom_request_duration("WS", name, elapsed, outcome.is_ok(), status, error)
        .await?;
    match outcome {
        Ok(()) => answered(user, shared),
        Err(f) => {
            shared.trouble();
            shared.count_error(&f.kind);
            if f.kind == "connect" {
                shared
                    .refused
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            back_off(user, shared).await;
        }
    }
    Ok(())
}

/// Opens a WebSocket and records the handshake as `WS connect`.
pub(crate) async fn open(
    user: &mut GooseUser,
    shared: &Shared,
    url: &str,
) -> Result<Socket, Box<TransactionError>> {
    let started = Instant::now();
    let result = tokio::select! {
        biased;
        () = shared.cancel.cancelled() => return Err(stopped().await),
        r = tokio_tungstenite::connect_async(url) => r,
    };
    let outcome = match &result {
        Ok(_) => Ok(()),
        Err(e) => Err(WsFailure::from_ws(&format!("ws connect to {url}"), e)),
    };
    shared.record_setup(
        "WS connect",
        started.elapsed(),
        outcome.is_ok(),
        outcome.is_ok().then_some(101),
    );
    record(
        user,
        shared,
        "connect",
        started.elapsed(),
        Some(101),
        &outcome,
    )
    .await?;
    match (result, outcome) {
        (Ok((socket, _)), _) => Ok(socket),
        (Err(_), Err(f)) => Err(broken(f.message)),
        (Err(e), Ok(())) => Err(broken(e.to_string())),
    }
}

async fn connect(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    let url = ws_url(user, shared, "/ws")?;
    let socket = open(user, shared, &url).await?;
    user.set_session_data(Connection {
        socket: Arc::new(Mutex::new(socket)),
        sent: 0,
    });
    Ok(())
}

async fn echo(user: &mut GooseUser, shared: &Shared) -> TransactionResult {
    let Some(mut conn) = user.get_session_data::<Connection>().cloned() else {
        // The connect failed (and was counted): try again, after the back-off.
        return connect(user, shared).await;
    };
    conn.sent += 1;
    let text = format!("echo {}", conn.sent);
    let expected = format!("Server received: {text}");
    let started = Instant::now();
    let round_trip = async {
        let mut socket = conn.socket.lock().await;
        if let Err(e) = socket.send(Message::text(text)).await {
            return Err(WsFailure::from_ws("send", &e));
        }
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) if t.as_str() == expected => return Ok(()),
                Some(Ok(Message::Text(t))) => {
                    return Err(WsFailure::new(
                        "ws unexpected",
                        format!("unexpected echo {:?}", t.as_str()),
                    ));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map_or(1005, |f| u16::from(f.code));
                    return Err(WsFailure::new(
                        format!("ws close {code}"),
                        format!("closed by the server ({code})"),
                    ));
                }
                Some(Ok(other)) => {
                    return Err(WsFailure::new(
                        "ws unexpected",
                        format!("unexpected frame {other:?}"),
                    ));
                }
                Some(Err(e)) => return Err(WsFailure::from_ws("receive", &e)),
                None => return Err(WsFailure::new("ws closed", "connection closed")),
            }
        }
    };
    let outcome = tokio::select! {
        biased;
        () = shared.cancel.cancelled() => return Err(stopped().await),
        outcome = round_trip => outcome,
    };
    let elapsed = started.elapsed();
    let failed = outcome.is_err();
    if failed {
        // A broken connection is not reused: the next round reconnects.
        user.set_session_data(());
    } else {
        user.set_session_data(conn);
    }
    record(user, shared, "echo", elapsed, None, &outcome).await?;
    outcome.map_err(|f| broken(f.message))
}
