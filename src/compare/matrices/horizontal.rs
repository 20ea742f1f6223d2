//! Horizontal scaling and routing: 1, 2 and 4 replicas of each server that
//! scales out, under every routing policy (on one replica, those without
//! affinity), through the embedded balancer and through HAProxy. The miss rate says whether a design needs
//! stickiness.

use super::super::Matrix;
use super::super::cell::{Balancer, Cell, Server};
use super::super::runner::{Knobs, Runner};
use crate::loadtests::Policy;

/// Users in the horizontal and failure matrices.
pub const SCALE_USERS: usize = 32;
const REPLICAS_FULL: [usize; 3] = [1, 2, 4];
const REPLICAS_QUICK: [usize; 1] = [2];
/// Per-connection routing: a user reconnects every this many requests.
const RECONNECT_EVERY: u32 = 50;

fn replica_counts(r: &Runner) -> &'static [usize] {
    r.sizes(&REPLICAS_QUICK, &REPLICAS_FULL)
}

/// Policies without affinity: what a design that needs none is routed by.
const NO_AFFINITY: [Policy; 2] = [Policy::RoundRobin, Policy::PerConnection];

/// Stateless and in-memory sessions under every policy; the Redis store
/// under the policies without affinity (it needs none, and the stateless
/// rows already show what affinity does to a design that needs none); the
/// hybrid design under round-robin.
fn cases(r: &Runner) -> Vec<(Server, &'static [Policy])> {
    let mut v: Vec<(Server, &'static [Policy])> = super::scale_servers(r)
        .into_iter()
        .map(|s| {
            let policies: &'static [Policy] = if s == Server::StatefulRedis {
                &NO_AFFINITY
            } else {
                &Policy::ALL
            };
            (s, policies)
        })
        .collect();
    if let Some(h) = super::hybrid_scaled(r) {
        v.push((h, &[Policy::RoundRobin]));
    }
    v
}

/// Whether the embedded balancer's cell of `policy` on `n` replicas is
/// run. On one replica a policy with affinity sends every request where
/// round-robin does, so only the policies without affinity are measured
/// there (per-connection still reconnects every [`RECONNECT_EVERY`]).
fn embedded_cell(policy: Policy, n: usize) -> bool {
    n > 1 || NO_AFFINITY.contains(&policy)
}

pub async fn run(r: &mut Runner) -> anyhow::Result<()> {
    for (server, policies) in cases(r) {
        for &n in replica_counts(r) {
            for &policy in policies {
                if r.use_embedded() && embedded_cell(policy, n) {
                    let knobs = Knobs {
                        policy: Some(policy),
                        reconnect_every: Some(RECONNECT_EVERY),
                        ..Knobs::default()
                    };
                    r.run_cell(cell(server, Balancer::Embedded, policy, n), knobs)
                        .await?;
                }
                if r.use_haproxy() && n > 1 {
                    let knobs = Knobs {
                        haproxy: Some(policy),
                        ..Knobs::default()
                    };
                    r.run_cell(cell(server, Balancer::Haproxy, policy, n), knobs)
                        .await?;
                }
            }
        }
    }
    Ok(())
}

fn cell(server: Server, balancer: Balancer, policy: Policy, n: usize) -> Cell {
    let id = format!(
        "horizontal/{}/{}/{}/r{n}",
        server.slug(),
        balancer.name(),
        policy.name()
    );
    Cell {
        users: SCALE_USERS,
        replicas: n,
        policy: Some(policy),
        balancer: Some(balancer),
        ..Cell::new(Matrix::Horizontal, server, id)
    }
}

pub fn planned_secs(r: &Runner) -> u64 {
    let mut cells = 0;
    for (_, policies) in cases(r) {
        for &n in replica_counts(r) {
            for &policy in policies {
                cells += u64::from(r.use_embedded() && embedded_cell(policy, n));
                cells += u64::from(r.use_haproxy() && n > 1);
            }
        }
    }
    cells * r.cell_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_replica_is_measured_only_under_the_policies_without_affinity() {
        assert!(embedded_cell(Policy::RoundRobin, 1));
        assert!(embedded_cell(Policy::PerConnection, 1));
        assert!(!embedded_cell(Policy::Sticky, 1));
        assert!(!embedded_cell(Policy::ConsistentHash, 1));
        assert!(Policy::ALL.iter().all(|&p| embedded_cell(p, 2)));
    }
}
