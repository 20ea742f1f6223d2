//! statebench: stateless (JWT) versus stateful (server-side sessions,
//! WebSocket connections), measured.
//!
//! Layout:
//! - [`server`]: the reference servers — [`server::stateless`],
//!   [`server::stateful`], [`server::ws`] — and [`server::run`], which serves
//!   any of them on a caller-bound listener with a graceful drain;
//! - [`token`]: signing and verifying JWTs, hardened beyond `jsonwebtoken`'s
//!   defaults; [`keys`]: where their keys come from;
//! - [`session`]: the [`session::SessionStore`] trait and one file per store;
//! - [`revocation`]: the optional token denylist of the stateless server;
//! - [`model`]: users and carts, validated once for both designs;
//! - [`clock`]: injected time, so tests model expiry instead of sleeping;
//! - [`metrics`]: the Prometheus counters behind `GET /metrics`;
//! - [`report`]: results files (environment, tables, SVG charts) from raw measurements;
//! - [`workload`]: benchmark inputs (realistic sessions, named operation mixes);
//! - [`loadtests`] (in `loadtests/`): goose load scenarios, one module per kind of user,
//!   and the embedded load balancer;
//! - [`compare`]: the scaling comparison — replicas as child processes, the
//!   matrices, `results/REPORT.md`;
//! - [`ci`]: the regression gate — instruction counts against a committed
//!   baseline, a noise-controlled latency trend, dashboard exports;
//! - [`stop`]: how every command stops — signals, closed output, child
//!   process groups, conventional exit codes;
//! - [`cli`]: the `statebench` command line (the binary only calls it).
//!
//! Outside `src/`: `tests/` drive the servers through their Routers and over
//! loopback sockets; `benches/` hold the micro-benchmarks; `results/` what
//! the benchmarks and load runs produced.

pub mod benchrun;
pub mod ci;
pub mod cli;
pub mod clock;
pub mod compare;
pub mod host;
pub mod keys;
#[path = "../loadtests/mod.rs"]
pub mod loadtests;
pub mod metrics;
pub mod model;
pub mod report;
pub mod revocation;
pub mod server;
pub mod session;
pub mod stats;
pub mod stop;
pub mod token;
pub mod workload;

/// Extra work in every token verification, for the test that proves the
/// CI gate catches a regression. Only built with the `inject-slowdown`
/// feature, which nothing enables by default.
#[cfg(feature = "inject-slowdown")]
#[inline(never)]
pub fn injected_slowdown() {
    let mut x = 0u64;
    for i in 0..2_000u64 {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
    }
    std::hint::black_box(x);
}
