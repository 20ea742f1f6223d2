//! statebench: stateless (JWT) versus stateful (server-side sessions,
//! WebSocket connections), measured.
//!
//! Layout, from the servers up to the command line (`tests/layout.rs`
//! checks that no two top-level modules depend on each other in a cycle).
//!
//! The servers and what they are made of:
//! - [`model`]: users and carts, validated once for both designs;
//! - [`clock`]: injected time, so tests model expiry instead of sleeping;
//! - [`token`]: signing and verifying JWTs, hardened beyond `jsonwebtoken`'s
//!   defaults, verified with keys prepared once ([`token::verifier`]);
//!   [`keys`]: where their keys come from;
//! - [`session`]: the [`session::SessionStore`] trait, one file per store,
//!   the registry of in-memory stores ([`session::memory::for_each_store`]),
//!   and the hybrid server's refresh families kept in any store
//!   ([`session::refresh`]);
//! - [`revocation`]: the optional token denylist of the stateless and hybrid
//!   servers, per process or shared by replicas through Redis;
//! - [`metrics`]: the Prometheus counters behind `GET /metrics`;
//! - [`server`]: the four reference servers, each built in one place
//!   (`server::{stateless, stateful, hybrid, ws}::build`), [`server::Arch`]
//!   naming them, and [`server::run`], which serves a Router with a
//!   graceful drain.
//!
//! Measuring them:
//! - [`stop`]: how every command stops — signals, closed output, child
//!   process groups, conventional exit codes;
//! - [`loadtests`] (in `loadtests/`): goose load scenarios, one module per
//!   kind of user and a registry of them, and the embedded load balancer;
//! - [`host`]: the machine — `/proc`, limits, tools, child processes, Redis
//!   and HAProxy;
//! - [`stats`]: the statistics reports and gate share (the median);
//! - [`workload`]: benchmark inputs (realistic sessions, named operation mixes);
//! - [`benchrun`]: running `cargo bench` and reading what it wrote;
//! - [`report`]: results files (provenance, tables, SVG charts);
//! - [`compare`]: the scaling comparison — replicas as child processes, one
//!   module per matrix, `results/REPORT.md`, the capacity plan drawn from
//!   it ([`compare::plan`]) — and `statebench vs`, the servers side by side
//!   on a core each;
//! - [`ci`]: the regression gate — instruction counts against a committed
//!   baseline, a noise-controlled latency trend, dashboard exports;
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
