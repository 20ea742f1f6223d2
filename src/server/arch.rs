//! Which reference server, and serving one on a loopback port.
//!
//! [`Arch`] is the one name for "which server" that the command line, the
//! regression gate and the comparison share; [`Arch::router`] builds one with
//! the defaults `statebench serve` uses, through the same per-architecture
//! `build` functions. [`spawn`] serves a Router in this process and hands
//! back a [`Local`] that drains it when told to, or when dropped.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::{Base, Lifecycle, ServeOptions};
use crate::keys::{KeyPair, TokenAlg};
use crate::session::{MemoryStore, StoreConfig};
use crate::token::{DEFAULT_TTL_SECS, TokenService};

/// Which reference server to run.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// JWT in the Authorization header; no server-side state.
    Stateless,
    /// Server-side sessions found through the `sid` cookie.
    Stateful,
    /// Short-lived access JWTs, and rotating refresh tokens kept server-side.
    Hybrid,
    /// WebSocket echo (/ws) and chat rooms (/chat/{room}).
    Ws,
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::Stateless, Arch::Stateful, Arch::Hybrid, Arch::Ws];

    /// The name used on the command line and in `serve`'s first line.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Stateless => "stateless",
            Arch::Stateful => "stateful",
            Arch::Hybrid => "hybrid",
            Arch::Ws => "ws",
        }
    }

    /// `stateless`, `stateful`, `hybrid` or `ws`, with a one-line error otherwise.
    pub fn parse(s: &str) -> Result<Arch, String> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!("{s:?} is not a server name (stateless, stateful, hybrid or ws)")
            })
    }

    /// This server with default settings: a random HS256 key, an in-memory
    /// session store, default access and refresh lifetimes, default
    /// WebSocket limits.
    pub fn router(self, base: &Base, lifecycle: &Lifecycle) -> anyhow::Result<Router> {
        Ok(match self {
            Arch::Stateless => super::stateless::build(
                super::stateless::Config {
                    tokens: Arc::new(TokenService::new(
                        KeyPair::generate(TokenAlg::HS256)?,
                        DEFAULT_TTL_SECS,
                        0,
                    )),
                    denylist: None,
                },
                base,
                lifecycle,
            ),
            Arch::Stateful => super::stateful::build(
                super::stateful::Config {
                    store: Arc::new(MemoryStore::new(StoreConfig::default())),
                    cookie_secure: false,
                },
                base,
                lifecycle,
            ),
            Arch::Hybrid => super::hybrid::build(
                super::hybrid::Config {
                    tokens: Arc::new(TokenService::new(
                        KeyPair::generate(TokenAlg::HS256)?,
                        super::hybrid::DEFAULT_ACCESS_TTL_SECS,
                        0,
                    )),
                    store: Arc::new(MemoryStore::new(StoreConfig {
                        idle_ttl_ms: super::hybrid::DEFAULT_REFRESH_TTL_SECS * 1000,
                        ..StoreConfig::default()
                    })),
                    denylist: None,
                },
                base,
                lifecycle,
            ),
            Arch::Ws => super::ws::build(super::ws::Config::default(), base, lifecycle)?.0,
        })
    }

    /// Serves this server with defaults on a free loopback port, in this
    /// process, until the returned [`Local`] is shut down or dropped.
    pub async fn spawn_local(self) -> anyhow::Result<Local> {
        let lifecycle = Lifecycle::default();
        let app = self.router(&Base::default(), &lifecycle)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Ok(spawn(listener, app, lifecycle, ServeOptions::default())?)
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A server running on a task of this process.
pub struct Local {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Local {
    /// `http://ADDR` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `ws://ADDR` followed by `path`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Starts the graceful drain and waits for it to end (it is bounded by
    /// the drain timeout the server was spawned with).
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match (&mut self.done).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Serves `app` on `listener` on a new task, with the same `lifecycle` its
/// builder was given, so its long-lived tasks see the drain.
pub fn spawn(
    listener: TcpListener,
    app: Router,
    lifecycle: Lifecycle,
    options: ServeOptions,
) -> std::io::Result<Local> {
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(super::run(listener, app, lifecycle, options, async {
        let _ = stopped.await;
    }));
    Ok(Local {
        addr,
        stop: Some(stop),
        done,
    })
}
