//! The WebSocket server over real loopback sockets.

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use statebench::server::ws::{WsConfig, WsState};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn start(config: WsConfig) -> (common::Running, WsState) {
    let (app, state, lifecycle) = common::ws_app(config, None);
    (common::serve(app, lifecycle).await, state)
}

async fn connect(url: &str) -> Client {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next data or close frame (pings are answered by the client library).
async fn next(c: &mut Client) -> Message {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), c.next())
            .await
            .expect("a message in time")
            .expect("stream open")
            .expect("no protocol error");
        if !matches!(m, Message::Ping(_) | Message::Pong(_)) {
            return m;
        }
    }
}

#[test]
fn echo_of_arbitrary_text_and_binary() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (server, _state) = rt.block_on(start(WsConfig::default()));
    let client = std::cell::RefCell::new(rt.block_on(connect(&server.ws_url("/ws"))));
    let msg = prop_oneof![
        "\\PC{0,200}".prop_map(|s| (true, s.into_bytes())),
        prop::collection::vec(any::<u8>(), 0..2000).prop_map(|b| (false, b)),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(256));
    runner
        .run(&msg, |(text, data)| {
            let mut client = client.borrow_mut();
            let client = &mut *client;
            rt.block_on(async {
                if text {
                    let s = String::from_utf8(data).unwrap();
                    client.send(Message::text(s.clone())).await.unwrap();
                    prop_assert_eq!(
                        next(client).await,
                        Message::text(format!("Server received: {s}"))
                    );
                } else {
                    client.send(Message::binary(data.clone())).await.unwrap();
                    let mut want = b"Server received: ".to_vec();
                    want.extend_from_slice(&data);
                    prop_assert_eq!(next(client).await, Message::binary(want));
                }
                Ok(())
            })
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_get_distinct_ids() {
    let (server, state) = start(WsConfig::default()).await;
    let url = server.ws_url("/ws");
    let clients = futures_util::future::join_all((0..64).map(|_| connect(&url))).await;
    // Registration happens right after the upgrade; wait until all are in.
    common::eventually("64 connections registered", || state.registry.len() == 64).await;
    let mut ids = state.registry.ids();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 64, "64 connections, 64 distinct ids");
    drop(clients);
}

#[tokio::test]
async fn oversize_message_closes_with_1009() {
    let (server, _state) = start(WsConfig {
        max_message: 1024,
        ..WsConfig::default()
    })
    .await;
    let mut c = connect(&server.ws_url("/ws")).await;
    c.send(Message::text("small")).await.unwrap();
    assert_eq!(next(&mut c).await, Message::text("Server received: small"));
    c.send(Message::binary(vec![0u8; 4096])).await.unwrap();
    match next(&mut c).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }
}

#[tokio::test]
async fn chat_reaches_every_member_of_the_room_only() {
    let (server, state) = start(WsConfig::default()).await;
    let mut room_a: Vec<Client> = Vec::new();
    for _ in 0..3 {
        room_a.push(connect(&server.ws_url("/chat/a")).await);
    }
    let mut room_b = connect(&server.ws_url("/chat/b")).await;
    common::eventually("4 members registered", || state.registry.len() >= 4).await;
    room_a[1].send(Message::text("hello a")).await.unwrap();
    for c in &mut room_a {
        assert_eq!(next(c).await, Message::text("hello a"));
    }
    room_b.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(next(&mut room_b).await, Message::binary(vec![1, 2, 3]));
    // Room a heard nothing of room b: its next message is the next one sent there.
    room_a[0].send(Message::text("second")).await.unwrap();
    for c in &mut room_a {
        assert_eq!(next(c).await, Message::text("second"));
    }
    // Invalid room names are refused before upgrading.
    assert!(
        tokio_tungstenite::connect_async(server.ws_url("/chat/bad%20room"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn backplane_carries_chat_across_instances() {
    let Some(url) = common::redis_url("backplane_carries_chat_across_instances") else {
        return;
    };
    let prefix = common::unique_prefix();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let (app, state, lifecycle) =
            common::ws_app(WsConfig::default(), Some((url.clone(), prefix.clone())));
        tokio::time::timeout(
            Duration::from_secs(10),
            state.backplane.as_ref().unwrap().ready(),
        )
        .await
        .expect("subscribed in time");
        servers.push((common::serve(app, lifecycle).await, state));
    }
    let mut on_a = connect(&servers[0].0.ws_url("/chat/lobby")).await;
    let mut on_b = connect(&servers[1].0.ws_url("/chat/lobby")).await;
    common::eventually("both members registered", || {
        !servers[1].1.registry.is_empty() && !servers[0].1.registry.is_empty()
    })
    .await;
    on_a.send(Message::text("across")).await.unwrap();
    assert_eq!(next(&mut on_b).await, Message::text("across"));
    assert_eq!(next(&mut on_a).await, Message::text("across"));
    on_b.send(Message::binary(vec![9; 10])).await.unwrap();
    assert_eq!(next(&mut on_a).await, Message::binary(vec![9; 10]));
}

#[tokio::test]
async fn without_backplane_rooms_are_per_process() {
    let (a, _) = start(WsConfig::default()).await;
    let (b, state_b) = start(WsConfig::default()).await;
    let mut on_a = connect(&a.ws_url("/chat/lobby")).await;
    let mut on_b = connect(&b.ws_url("/chat/lobby")).await;
    common::eventually("b's member registered", || !state_b.registry.is_empty()).await;
    on_a.send(Message::text("only here")).await.unwrap();
    assert_eq!(next(&mut on_a).await, Message::text("only here"));
    on_b.send(Message::text("b")).await.unwrap();
    assert_eq!(
        next(&mut on_b).await,
        Message::text("b"),
        "b never saw a's message"
    );
}

#[tokio::test]
async fn shutdown_closes_with_1001_and_drains() {
    let (server, state) = start(WsConfig::default()).await;
    let mut c = connect(&server.ws_url("/ws")).await;
    c.send(Message::text("x")).await.unwrap();
    next(&mut c).await;
    common::shutdown(server).await;
    match next(&mut c).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }
    assert!(state.registry.is_empty());
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let (server, _) = start(WsConfig {
        idle_timeout: Duration::from_millis(300),
        ping_interval: Duration::from_secs(60),
        ..WsConfig::default()
    })
    .await;
    let mut c = connect(&server.ws_url("/ws")).await;
    match next(&mut c).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected an idle close, got {other:?}"),
    }
}

/// A server started the way `load` and the gate start one (`Arch::spawn_local`)
/// hands its WebSocket tasks the lifecycle it drains: an open connection is
/// closed with 1001 when the server shuts down, not left behind.
#[tokio::test]
async fn spawned_local_ws_server_closes_connections_on_shutdown() {
    let server = statebench::server::Arch::Ws.spawn_local().await.unwrap();
    let mut c = connect(&server.ws_url("/ws")).await;
    c.send(Message::text("x")).await.unwrap();
    assert_eq!(next(&mut c).await, Message::text("Server received: x"));
    common::shutdown(server).await;
    match next(&mut c).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }
}
