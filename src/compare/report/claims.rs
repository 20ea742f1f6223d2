//! The claims a comparison decides, as data: each [`Rule`] is a claim, the
//! query that reads its evidence from the cells, and the verdict rule. One
//! table ([`RULES`]) feeds the report's claims table and the README's
//! (which a test keeps equal to the committed run's).

use super::hybrid::lands;
use super::{Cells, pct};
use crate::compare::matrices::EQUAL_RATE;
use crate::compare::matrices::capacity::NO_AFFINITY;
use crate::compare::{Matrix, Server};
use crate::keys::TokenAlg;
use crate::loadtests::Policy;
use crate::server::Arch;

/// What a run says of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Supported,
    Refuted,
    Mixed,
    WithinNoise,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Refuted => "refuted",
            Verdict::Mixed => "mixed",
            Verdict::WithinNoise => "within noise",
        }
    }

    /// `supported` if `holds`, else `otherwise`.
    fn when(holds: bool, otherwise: Verdict) -> Verdict {
        if holds { Verdict::Supported } else { otherwise }
    }

    /// `a` costs more than `b` beyond 5% noise: supported, refuted, or
    /// within noise.
    fn more_than(a: f64, b: f64) -> Verdict {
        if a > b * 1.05 {
            Verdict::Supported
        } else if a < b * 0.95 {
            Verdict::Refuted
        } else {
            Verdict::WithinNoise
        }
    }
}

/// Which runs a claim is decided in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The reference servers (`statebench compare`).
    Reference,
    /// Servers given with `--target`.
    External,
}

/// A claim, its query and its verdict rule.
pub struct Rule {
    pub claim: &'static str,
    pub scope: Scope,
    /// The verdict and its evidence, or `None` when the run lacks the cells.
    pub decide: fn(Cells) -> Option<(Verdict, String)>,
    /// Where the hybrid design lands on it, measured (`None`: the run lacks
    /// the cells, or the claim is not about it).
    pub hybrid: fn(Cells) -> Option<String>,
}

/// A claim decided by a run.
pub struct Decided {
    pub claim: &'static str,
    pub verdict: Verdict,
    pub evidence: String,
    pub hybrid: Option<String>,
}

const HS256: Server = Server::Stateless(TokenAlg::HS256);
const MEMORY: Server = Server::StatefulMemory;
const REDIS: Server = Server::StatefulRedis;
const CLUSTER: Server = Server::StatefulRedisCluster;
const EXT_STATELESS: Server = Server::External(Arch::Stateless);
const EXT_STATEFUL: Server = Server::External(Arch::Stateful);

/// Every claim, in the order of the report.
pub const RULES: &[Rule] = &[
    Rule {
        claim: "Stateless needs no stickiness: any replica can serve any request",
        scope: Scope::Reference,
        hybrid: lands::no_stickiness,
        decide: |c| {
            let m = c.worst_miss(HS256, None)?;
            Some((
                Verdict::when(m == 0.0, Verdict::Refuted),
                format!(
                    "highest session-miss rate of stateless under every policy and replica count: {}",
                    pct(m)
                ),
            ))
        },
    },
    Rule {
        claim: "Stateful (in-memory sessions) needs stickiness",
        scope: Scope::Reference,
        hybrid: lands::stickiness,
        decide: |c| {
            let rr = c.worst_miss(MEMORY, Some(Policy::RoundRobin))?;
            let sticky = c.worst_miss(MEMORY, Some(Policy::Sticky))?;
            let hash = c.worst_miss(MEMORY, Some(Policy::ConsistentHash))?;
            Some((
                Verdict::when(rr > 0.2 && sticky == 0.0 && hash == 0.0, Verdict::Mixed),
                format!(
                    "miss rate without affinity (round-robin) up to {}; sticky {}; consistent hash {}",
                    pct(rr),
                    pct(sticky),
                    pct(hash)
                ),
            ))
        },
    },
    Rule {
        claim: "A shared store (Redis) removes the need for stickiness, at a latency cost",
        scope: Scope::Reference,
        hybrid: lands::shared_store,
        decide: |c| {
            let rr = c.worst_miss(REDIS, Some(Policy::RoundRobin))?;
            let level = c.level();
            let p50 = |s| c.at_users(s, level).and_then(|cell| cell.p50_us);
            let mut cost = match (p50(REDIS), p50(MEMORY)) {
                (Some(r), Some(m)) => format!("; p50 {r} µs vs {m} µs in memory at {level} users"),
                _ => String::new(),
            };
            if let (Some(r), Some(m)) = (c.cpu(REDIS), c.cpu(MEMORY)) {
                let store = c
                    .store_cpu(REDIS)
                    .map_or(String::new(), |s| format!(" + {s:.1} µs in Redis"));
                cost.push_str(&format!(
                    "; server CPU per request {r:.1} µs{store} vs {m:.1} µs in memory"
                ));
            }
            Some((
                Verdict::when(rr == 0.0, Verdict::Refuted),
                format!("round-robin miss rate with Redis: {}{cost}", pct(rr)),
            ))
        },
    },
    Rule {
        claim: "Losing a server loses its users' sessions (stateful in memory only)",
        scope: Scope::Reference,
        hybrid: lands::losing_a_server,
        decide: |c| {
            let mem = c.lost_on_kill(MEMORY, Policy::Sticky)?;
            let sl = c.lost_on_kill(HS256, Policy::RoundRobin)?;
            let redis = c.lost_on_kill(REDIS, Policy::RoundRobin);
            Some((
                Verdict::when(
                    mem > 0 && sl == 0 && redis.unwrap_or(0) == 0,
                    Verdict::Mixed,
                ),
                format!(
                    "one of 3 replicas SIGKILLed: sessions lost — memory (sticky) {mem}, stateless {sl}{}",
                    redis.map_or(String::new(), |r| format!(", Redis {r}"))
                ),
            ))
        },
    },
    Rule {
        claim: "Stateless servers scale out: each replica adds the capacity of one",
        scope: Scope::Reference,
        hybrid: lands::scale_out,
        decide: |c| {
            let eff = |s: Server, p: Policy, n: usize| {
                c.capacity(s, p, n)
                    .filter(|x| x.valid)
                    .and_then(|x| x.scaling_efficiency)
            };
            let n = [4, 2]
                .into_iter()
                .find(|&n| eff(HS256, NO_AFFINITY, n).is_some())?;
            let sl = eff(HS256, NO_AFFINITY, n)?;
            let mut evidence = format!(
                "scaling efficiency at {n} replicas under equal CPU budgets: stateless {sl:.2}"
            );
            for (s, p, name) in [
                (MEMORY, Policy::Sticky, "memory (sticky)"),
                (MEMORY, Policy::ConsistentHash, "memory (hash)"),
                (REDIS, NO_AFFINITY, "Redis"),
                (CLUSTER, NO_AFFINITY, "Redis Cluster"),
            ] {
                if let Some(e) = eff(s, p, n) {
                    evidence.push_str(&format!(", {name} {e:.2}"));
                }
            }
            Some((Verdict::when(sl >= 0.85, Verdict::Refuted), evidence))
        },
    },
    Rule {
        claim: "A sharded store (Redis Cluster) raises the shared store's ceiling",
        scope: Scope::Reference,
        hybrid: lands::store_ceiling,
        decide: |c| {
            let cap = |s: Server, n: usize| {
                c.capacity(s, NO_AFFINITY, n)
                    .filter(|x| x.valid)
                    .and_then(|x| x.capacity_rps)
            };
            let n = [4, 2, 1]
                .into_iter()
                .find(|&n| cap(REDIS, n).is_some() && cap(CLUSTER, n).is_some())?;
            let (single, sharded) = (cap(REDIS, n)?, cap(CLUSTER, n)?);
            let store_us = |s: Server| {
                c.capacity(s, NO_AFFINITY, n)
                    .and_then(|x| x.store_cpu_us_per_request)
                    .map_or(String::new(), |us| {
                        format!(", {us:.1} µs of store CPU per request")
                    })
            };
            Some((
                Verdict::more_than(sharded, single),
                format!(
                    "capacity at {n} replicas: one Redis {single:.0} req/s{}; a {}-master cluster, each master under the same budget, {sharded:.0} req/s{}",
                    store_us(REDIS),
                    crate::compare::matrices::capacity::CLUSTER_MASTERS,
                    store_us(CLUSTER),
                ),
            ))
        },
    },
    Rule {
        claim: "Stateless servers scale down without losing anyone",
        scope: Scope::Reference,
        hybrid: lands::scale_down,
        decide: |c| {
            let event = crate::compare::Event::ScaleDown;
            let sl = c.failure(HS256, Policy::RoundRobin, event)?;
            let mem = c.failure(MEMORY, Policy::Sticky, event)?;
            let redis = c.failure(REDIS, Policy::RoundRobin, event);
            let clean = |x: &crate::compare::Cell| x.lost() == 0 && x.sessions_lost == 0;
            let on_removed = mem
                .sessions_on_removed
                .map_or(String::new(), |n| format!(" of the {n} it held"));
            Some((
                Verdict::when(clean(sl) && redis.is_none_or(clean), Verdict::Refuted),
                format!(
                    "one of 3 replicas drained and stopped: requests lost, sessions lost — stateless {}, {}{}; memory (sticky) {}, {}{on_removed}",
                    sl.lost(),
                    sl.sessions_lost,
                    redis.map_or(String::new(), |r| format!(
                        "; Redis {}, {}",
                        r.lost(),
                        r.sessions_lost
                    )),
                    mem.lost(),
                    mem.sessions_lost,
                ),
            ))
        },
    },
    Rule {
        claim: "Stateless servers autoscale on CPU, up and down, without losing anyone",
        scope: Scope::Reference,
        hybrid: lands::autoscale,
        decide: |c| {
            let sl = c.autoscaled(HS256)?;
            let a = sl.autoscale.as_deref()?;
            let both_ways = a.trace.scale_ups() > 0 && a.trace.scale_downs() > 0;
            let line = |x: &crate::compare::Cell| {
                let Some(a) = x.autoscale.as_deref() else {
                    return String::new();
                };
                format!(
                    "{}: 1 → {} → {} replicas, {} requests lost, {} sessions on removed replicas, {} re-logins, absorbed in {}",
                    x.server,
                    a.trace.peak_replicas(),
                    a.trace.ticks.last().map_or(0, |t| t.replicas),
                    x.lost(),
                    x.sessions_on_removed.unwrap_or(0),
                    x.sessions_lost,
                    a.absorb_secs(x.slo_p99_us.unwrap_or(u64::MAX))
                        .map_or("– (not before the fall)".into(), |s| format!("{s:.0} s")),
                )
            };
            let evidence = [Some(sl), c.autoscaled(MEMORY), c.autoscaled(REDIS)]
                .into_iter()
                .flatten()
                .map(line)
                .collect::<Vec<_>>()
                .join("; ");
            Some((
                Verdict::when(
                    both_ways && sl.lost() == 0 && sl.sessions_lost == 0,
                    Verdict::Mixed,
                ),
                format!("CPU autoscaler over a load ramp — {evidence}"),
            ))
        },
    },
    Rule {
        claim: "Verifying a JWT costs more CPU than looking up an in-memory session",
        scope: Scope::Reference,
        hybrid: lands::verify_cost,
        decide: |c| {
            let sl = c.cpu(HS256)?;
            let sf = c.cpu(MEMORY)?;
            let hz = c.cpu(Server::Healthz(Arch::Stateless))?;
            Some((
                Verdict::more_than(sl, sf),
                format!(
                    "server CPU per request: stateless HS256 {sl:.1} µs, stateful memory {sf:.1} µs, /healthz {hz:.1} µs"
                ),
            ))
        },
    },
    Rule {
        claim: "Asymmetric signatures (RS256, ES256) cost more per request than HMAC",
        scope: Scope::Reference,
        hybrid: |_| None,
        decide: |c| {
            let hs = c.cpu(HS256)?;
            let rs = c.cpu(Server::Stateless(TokenAlg::RS256))?;
            let es = c.cpu(Server::Stateless(TokenAlg::ES256))?;
            Some((
                Verdict::when(rs > hs && es > hs, Verdict::Mixed),
                format!(
                    "server CPU per /profile: HS256 {hs:.1} µs, RS256 {rs:.1} µs, ES256 {es:.1} µs"
                ),
            ))
        },
    },
    Rule {
        claim: "Stateless requests grow with the state they carry; stateful ones do not",
        scope: Scope::Reference,
        hybrid: lands::state_grows,
        decide: |c| state_grows(c, HS256, MEMORY),
    },
    Rule {
        claim: "WebSocket rooms across replicas need a backplane",
        scope: Scope::Reference,
        hybrid: |_| None,
        decide: |c| {
            let without = c.delivery(false)?;
            let with = c.delivery(true);
            Some((
                Verdict::when(
                    without < 0.9 && with.is_none_or(|w| w > 0.95),
                    Verdict::Mixed,
                ),
                format!(
                    "chat delivery ratio over 2 replicas: {} without a backplane{}",
                    pct(without),
                    with.map_or(String::new(), |w| format!(
                        ", {} with Redis pub/sub",
                        pct(w)
                    ))
                ),
            ))
        },
    },
    Rule {
        claim: "An idle WebSocket connection is cheap to hold",
        scope: Scope::Reference,
        hybrid: |_| None,
        decide: |c| {
            let cell = c
                .of(Matrix::Websocket)
                .filter(|cell| cell.rss_per_connection.is_some())
                .max_by_key(|cell| cell.connections)?;
            let per = cell.rss_per_connection.unwrap_or(0.0);
            Some((
                Verdict::when(per < 16.0 * 1024.0, Verdict::Refuted),
                format!(
                    "{:.1} KiB of server RSS per idle connection at {} connections",
                    per / 1024.0,
                    cell.connections.unwrap_or(0)
                ),
            ))
        },
    },
    Rule {
        claim: "Verifying a JWT costs more CPU than looking up a session (external servers)",
        scope: Scope::External,
        hybrid: |_| None,
        decide: |c| {
            let a = c.cpu(EXT_STATELESS)?;
            let b = c.cpu(EXT_STATEFUL)?;
            Some((
                Verdict::more_than(a, b),
                format!(
                    "server CPU per request at {EQUAL_RATE} req/s: stateless {a:.1} µs, stateful {b:.1} µs"
                ),
            ))
        },
    },
    Rule {
        claim: "Stateless requests grow with the state they carry; stateful ones do not (external servers)",
        scope: Scope::External,
        hybrid: |_| None,
        decide: |c| state_grows(c, EXT_STATELESS, EXT_STATEFUL),
    },
    Rule {
        claim: "Latency: stateless and stateful answer /profile alike (external servers)",
        scope: Scope::External,
        hybrid: |_| None,
        decide: |c| {
            let level = c.level();
            let p99 = |s| c.at_users(s, level).and_then(|cell| cell.p99_us);
            let (a, b) = (p99(EXT_STATELESS)?, p99(EXT_STATEFUL)?);
            Some((
                Verdict::when(a.max(b) as f64 <= 1.2 * a.min(b) as f64, Verdict::Refuted),
                format!("p99 at {level} users: stateless {a} µs, stateful {b} µs"),
            ))
        },
    },
];

/// Bytes per request grow with the cart for `stateless`, not for `stateful`.
fn state_grows(c: Cells, stateless: Server, stateful: Server) -> Option<(Verdict, String)> {
    let s0 = c.bytes(stateless, 0)?;
    let s100 = c.bytes(stateless, 100)?;
    let f100 = c.bytes(stateful, 100)?;
    Some((
        Verdict::when(s100 > 2.0 * s0 && f100 < s100, Verdict::Mixed),
        format!(
            "credential + body bytes per request: stateless {s0:.0} B at 0 items, {s100:.0} B at 100; stateful {f100:.0} B at 100"
        ),
    ))
}

/// The claims of `scope` this run decides, in order.
pub fn decide(cells: Cells, scope: Scope) -> Vec<Decided> {
    RULES
        .iter()
        .filter(|r| r.scope == scope)
        .filter_map(|r| {
            let (verdict, evidence) = (r.decide)(cells)?;
            Some(Decided {
                claim: r.claim,
                verdict,
                evidence,
                hybrid: (r.hybrid)(cells),
            })
        })
        .collect()
}
