//! Horizontal scaling and routing: 1, 2 and 4 replicas of each server that
//! scales out, under every routing policy, through the embedded balancer
//! and through HAProxy. The miss rate says whether a design needs
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

pub async fn run(r: &mut Runner) -> anyhow::Result<()> {
    for (server, policies) in cases(r) {
        for &n in replica_counts(r) {
            for &policy in policies {
                if r.use_embedded() {
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
    let mut per_policy = 0;
    if r.use_embedded() {
        per_policy += replica_counts(r).len() as u64;
    }
    if r.use_haproxy() {
        per_policy += replica_counts(r).iter().filter(|&&n| n > 1).count() as u64;
    }
    let policies: u64 = cases(r).iter().map(|(_, p)| p.len() as u64).sum();
    policies * per_policy * r.cell_secs()
}
