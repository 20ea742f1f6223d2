//! The reference servers and the loop that serves them.
//!
//! - [`stateless`]: JWT, the client carries the state;
//! - [`stateful`]: server-side sessions behind a [`crate::session::SessionStore`];
//! - [`hybrid`]: short-lived access JWTs, and rotating refresh tokens kept
//!   server-side (state off the hot path, paid on login, refresh, cart
//!   writes and logout);
//! - [`ws`]: WebSocket echo and chat rooms (stateful connections).
//!
//! Each is built in exactly one place, its module's `build(config, &Base,
//! &Lifecycle) -> Router`, which the command line, the tests, the benchmarks
//! and the comparison all call; the Router is testable with `oneshot` and no
//! socket. [`Arch`] names the four and builds any of them with defaults
//! ([`Arch::spawn_local`] serves one on a free loopback port).
//!
//! [`run`] serves a Router on a listener the caller bound (tests bind
//! `127.0.0.1:0`) until the caller's `shutdown` future completes, then
//! drains: it stops accepting, lets in-flight requests finish, tells
//! long-lived tasks (WebSockets, sweepers) to stop through the same
//! [`Lifecycle`] the builder gave them, and gives up after the drain timeout.

mod arch;
mod counted;
pub mod hybrid;
pub mod stateful;
pub mod stateless;
pub mod ws;

pub use arch::{Arch, Local, spawn};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::timeout::TimeoutLayer;

use crate::metrics::Metrics;

/// Largest request body accepted (64 KiB); larger ones get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Connection-level limits of [`run`].
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// A client must send a request's headers within this time.
    pub header_read_timeout: Duration,
    /// A request must be answered within this time (408 otherwise).
    pub request_timeout: Duration,
    /// How long draining may take after shutdown starts.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// What every server is built with besides its own configuration: its clock,
/// its counters, and the timings of its requests and background sweeps.
#[derive(Clone)]
pub struct Base {
    pub clock: crate::clock::SharedClock,
    pub metrics: Arc<Metrics>,
    /// A request must be answered within this time (408 otherwise).
    pub request_timeout: Duration,
    /// How often expired sessions or revocations are swept; `None` starts
    /// no sweeper (expired entries are then refused when touched, and
    /// dropped when the store's own capacity rules say so), which is what
    /// tests and benchmarks want.
    pub sweep_interval: Option<Duration>,
}

impl Default for Base {
    fn default() -> Self {
        Self {
            clock: Arc::new(crate::clock::SystemClock),
            metrics: Metrics::new(),
            request_timeout: ServeOptions::default().request_timeout,
            sweep_interval: None,
        }
    }
}

/// Shared by a server and its long-lived tasks: `stop` is cancelled when
/// shutdown starts; `tasks` tracks what must finish before the process ends.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    pub stop: CancellationToken,
    pub tasks: TaskTracker,
}

/// Layers every server shares: body limit, request timeout and metrics.
pub(crate) fn finish(router: Router, metrics: &Arc<Metrics>, request_timeout: Duration) -> Router {
    router
        .route("/healthz", axum::routing::get(healthz))
        .route_layer(crate::metrics::TrackLayer(metrics.clone()))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
}

/// `GET /healthz`: no auth, no state; the overhead baseline.
async fn healthz() -> &'static str {
    "ok"
}

/// A plain-text error response with a one-line reason.
pub(crate) fn reject(
    status: StatusCode,
    reason: impl std::fmt::Display,
) -> axum::response::Response {
    (status, reason.to_string()).into_response()
}

/// A refused input: 413 for a full cart, 400 otherwise.
pub(crate) fn input_error(e: crate::model::InputError) -> axum::response::Response {
    let status = match e {
        crate::model::InputError::CartFull => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    reject(status, e)
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub async fn run(
    listener: TcpListener,
    app: Router,
    lifecycle: Lifecycle,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true);
    let builder = builder.http1_only();
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }

    drop(listener);
    tracing::info!("shutting down: draining connections");
    lifecycle.stop.cancel();
    lifecycle.tasks.close();
    let drained = async {
        graceful.shutdown().await;
        lifecycle.tasks.wait().await;
    };
    if tokio::time::timeout(options.drain_timeout, drained)
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?options.drain_timeout, "drain timed out; closing remaining connections");
    }
    Ok(())
}

/// Completes on SIGINT, SIGTERM, SIGHUP or closed output (see [`crate::stop`]).
pub async fn shutdown_signal() {
    crate::stop::install();
    crate::stop::wait().await;
}
