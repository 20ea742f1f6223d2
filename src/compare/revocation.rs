//! Revocation delay: how long a logged-out credential keeps working, for
//! each design. One replica of each is started with short lifetimes
//! ([`TTL_SECS`] for tokens and access tokens); a client logs in, logs out
//! at once, then tries the old credential on `GET /profile` every
//! [`POLL`] until it is refused, or until the lifetime and a margin have
//! passed. The delay is the time from the logout's answer to the last
//! answer the old credential got: 0 when the first try is refused.
//!
//! A JWT is valid through the second of its `exp`, so a token that lives
//! T seconds works for between T and T + 1 seconds after it was signed.
//!
//! The shared denylist is probed across two replicas on Redis: the logout
//! goes to one, the old credential to the other.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cell::Server;
use super::runner::{HYBRID_ACCESS_TTL_SECS, Runner};

/// Token and access-token lifetime of the probe's servers.
pub const TTL_SECS: u64 = HYBRID_ACCESS_TTL_SECS;
/// Time between two tries of the old credential.
pub const POLL: Duration = Duration::from_millis(20);

/// One design's measured delay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revocation {
    /// The server probed.
    pub server: Server,
    /// Whether the server kept a denylist (`--revocation denylist`).
    pub denylist: bool,
    /// Replicas probed: with 2, the logout goes to one and the old
    /// credential to the other (through a denylist shared in Redis).
    #[serde(default = "one")]
    pub replicas: usize,
    /// The lifetime of its tokens (access tokens on the hybrid server),
    /// `None` for the stateful server's sessions.
    pub ttl_secs: Option<u64>,
    /// From the logout's answer to the old credential's last answer.
    pub delay_ms: f64,
    /// The old credential was refused before the probe gave up.
    pub refused: bool,
}

fn one() -> usize {
    1
}

/// The designs probed: each server without and, where it has one, with
/// its denylist (on one replica, and the hybrid's shared by two).
fn designs() -> [(Server, bool, usize); 6] {
    [
        (Server::Stateless(crate::keys::TokenAlg::HS256), false, 1),
        (Server::Stateless(crate::keys::TokenAlg::HS256), true, 1),
        (Server::StatefulMemory, false, 1),
        (Server::HybridMemory, false, 1),
        (Server::HybridMemory, true, 1),
        (Server::HybridRedis, true, 2),
    ]
}

/// Probes every design in turn.
pub async fn run(r: &mut Runner) -> anyhow::Result<Vec<Revocation>> {
    let mut out = Vec::new();
    for (server, denylist, replicas) in designs() {
        r.check_stop()?;
        let Some(mut spec) = r.spec(server, false) else {
            continue;
        };
        if denylist {
            spec.extra
                .extend(["--revocation".into(), "denylist".into()]);
        }
        let ttl = match server {
            Server::Stateless(_) => {
                spec.extra
                    .extend(["--token-ttl".into(), TTL_SECS.to_string()]);
                Some(TTL_SECS)
            }
            Server::HybridMemory | Server::HybridRedis => Some(HYBRID_ACCESS_TTL_SECS),
            _ => None,
        };
        let fleet = r.fleet(&spec, replicas).await?;
        let design = design(server, denylist, replicas);
        let (first, last) = (&fleet[0].url, &fleet[replicas - 1].url);
        let probe = probe(first, last, ttl.unwrap_or(0)).await;
        drop(fleet);
        match probe {
            Ok((delay, refused)) => {
                r.progress.say(format!(
                    "  revocation/{design}: the old credential answered for {:.0} ms after logout{}",
                    delay.as_secs_f64() * 1e3,
                    if refused { "" } else { " (never refused)" }
                ));
                out.push(Revocation {
                    server,
                    denylist,
                    replicas,
                    ttl_secs: ttl,
                    delay_ms: delay.as_secs_f64() * 1e3,
                    refused,
                });
            }
            Err(e) => {
                let why = format!("revocation delay of {design}: {e:#}");
                r.progress.say(format!("note: skipping {why}"));
                r.skipped.push(why);
            }
        }
    }
    Ok(out)
}

/// The design as the report names it: the server, and its denylist.
pub fn design(server: Server, denylist: bool, replicas: usize) -> String {
    match (denylist, replicas) {
        (false, _) => server.to_string(),
        (true, 1) => format!("{server} + denylist"),
        (true, n) => format!("{server} + denylist shared by {n} replicas"),
    }
}

impl Revocation {
    /// The design as the report names it.
    pub fn design(&self) -> String {
        design(self.server, self.denylist, self.replicas)
    }
}

/// Logs in and out on `base`, then tries the old credential on `tried`
/// (the same server, or another replica) until it is refused or `ttl + 2`
/// seconds have passed: the delay, and whether it was refused.
pub async fn probe(base: &str, tried: &str, ttl: u64) -> anyhow::Result<(Duration, bool)> {
    // The old credential is replayed by hand, as a copy of it would be: a
    // cookie store would honour the logout's cleared cookie.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let login = http.post(format!("{base}/login")).send().await?;
    anyhow::ensure!(
        login.status().is_success(),
        "login answered {}",
        login.status()
    );
    let cookie = login
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let body: serde_json::Value = login.json().await.unwrap_or_default();
    let token = body["token"].as_str().map(str::to_owned);
    let with = |mut b: reqwest::RequestBuilder| {
        if let Some(t) = &token {
            b = b.header("Authorization", t.as_str());
        }
        if let Some(c) = &cookie {
            b = b.header(reqwest::header::COOKIE, c.as_str());
        }
        b
    };
    let logout = with(http.post(format!("{base}/logout"))).send().await?;
    anyhow::ensure!(
        logout.status().is_success(),
        "logout answered {}",
        logout.status()
    );
    let out = Instant::now();
    let give_up = Duration::from_secs(ttl + 2);
    let mut last_answer = Duration::ZERO;
    while out.elapsed() < give_up {
        let answer = with(http.get(format!("{tried}/profile"))).send().await?;
        match answer.status().as_u16() {
            200 => last_answer = out.elapsed(),
            403 => return Ok((last_answer, true)),
            s => anyhow::bail!("the old credential got {s}"),
        }
        tokio::time::sleep(POLL).await;
    }
    Ok((last_answer, false))
}

/// Seconds the probes take: the token lifetimes waited out, and starts.
pub fn planned_secs() -> u64 {
    3 * (TTL_SECS + 1) + 3
}
