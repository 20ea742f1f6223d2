//! WebSocket: the memory an idle connection holds (RSS growth of one
//! server over 100 to 10,000 connections), then chat rooms spread over two
//! replicas, without and with the Redis backplane.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::super::Matrix;
use super::super::cell::{Cell, Server};
use super::super::runner::{Knobs, Runner};
use super::SCALE_USERS;
use crate::loadtests::{Policy, ws_echo::Socket};

const CONNECTIONS_FULL: [usize; 3] = [100, 1_000, 10_000];
const CONNECTIONS_QUICK: [usize; 2] = [100, 1_000];
/// Members per chat room.
const ROOM_SIZE: usize = 4;
/// Seconds an idle-connection cell is planned to take.
const IDLE_SECS: u64 = 3;

fn connections(r: &Runner) -> &'static [usize] {
    r.sizes(&CONNECTIONS_QUICK, &CONNECTIONS_FULL)
}

pub async fn run(r: &mut Runner) -> anyhow::Result<()> {
    let limit = crate::host::limits::open_files();
    for &n in connections(r) {
        let id = format!("websocket/idle/c{n}");
        r.progress.begin(&id);
        if limit < n as u64 + 512 {
            r.skipped.push(format!(
                "{id}: the open-file limit ({limit}) is below {n} connections"
            ));
        } else {
            let cell = idle(r, n, id).await?;
            r.record(cell);
        }
        r.progress.advance(IDLE_SECS);
    }
    let mut backplanes = vec![false];
    if r.redis.is_some() {
        backplanes.push(true);
    }
    for backplane in backplanes {
        let id = format!(
            "websocket/chat/r2/{}",
            if backplane {
                "redis-backplane"
            } else {
                "no-backplane"
            }
        );
        let cell = Cell {
            users: SCALE_USERS,
            replicas: 2,
            backplane: Some(backplane),
            ..Cell::new(Matrix::Websocket, Server::WsChat, id)
        };
        let knobs = Knobs {
            policy: Some(Policy::RoundRobin),
            room_size: Some(ROOM_SIZE),
            backplane,
            ..Knobs::default()
        };
        r.run_cell(cell, knobs).await?;
    }
    Ok(())
}

/// RSS of a WebSocket server holding `n` idle connections.
async fn idle(r: &mut Runner, n: usize, id: String) -> anyhow::Result<Cell> {
    let spec = r
        .spec(Server::WsEcho, false)
        .ok_or_else(|| anyhow::anyhow!("no WebSocket server"))?;
    let replicas = r.fleet(&spec, 1).await?;
    let server = &replicas[0];
    let url = server.url.replacen("http://", "ws://", 1) + "/ws";
    // Warm the server (first connections allocate runtime structures).
    let warm = open_many(&url, 10).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.rss_bytes().unwrap_or(0);
    let started = Instant::now();
    let conns = open_many(&url, n).await?;
    let opened = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server.rss_bytes().unwrap_or(0);
    drop(conns);
    drop(warm);
    let per = after.saturating_sub(before) as f64 / n as f64;
    Ok(Cell {
        scenario: "idle connections".into(),
        connections: Some(n),
        rss_bytes: vec![after],
        rss_per_connection: Some(per),
        achieved_rps: n as f64 / opened.max(1e-9),
        wall_secs: opened,
        valid: true,
        notes: vec![format!(
            "RSS {before} → {after} bytes; rate = connections opened per second"
        )],
        ..Cell::new(Matrix::Websocket, Server::WsEcho, id)
    })
}

/// Opens `n` WebSocket connections, 256 at a time.
async fn open_many(url: &str, n: usize) -> anyhow::Result<Vec<Socket>> {
    let results: Vec<_> = futures_util::stream::iter(0..n)
        .map(|_| tokio_tungstenite::connect_async(url.to_owned()))
        .buffer_unordered(256)
        .collect()
        .await;
    let mut sockets = Vec::with_capacity(n);
    for r in results {
        sockets.push(
            r.map_err(|e| anyhow::anyhow!("WebSocket connect to {url}: {e}"))?
                .0,
        );
    }
    Ok(sockets)
}

pub fn planned_secs(r: &Runner) -> u64 {
    let chats = if r.redis.is_some() { 2 } else { 1 };
    connections(r).len() as u64 * IDLE_SECS + chats * r.cell_secs()
}
