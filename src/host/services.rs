//! Helper servers a comparison starts beside the replicas: Redis (the
//! shared session store and chat backplane), a Redis Cluster (the sharded
//! store) and HAProxy (the external balancer), each on free loopback ports
//! and stopped when dropped.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

use super::child::ChildProc;
use crate::loadtests::Policy;

/// A Redis server on a free loopback port, no persistence.
pub struct RedisServer {
    child: ChildProc,
    pub url: String,
}

impl RedisServer {
    /// Starts Redis on a free port, its working directory in `work`.
    pub async fn start(work: &Path) -> anyhow::Result<Self> {
        Self::start_on(free_port()?, work).await
    }

    /// Starts Redis on `port` (a restart on the port it had).
    pub async fn start_on(port: u16, work: &Path) -> anyhow::Result<Self> {
        Self::spawn(port, work, &[]).await
    }

    /// Starts `redis-server` on `port` with `extra` arguments.
    async fn spawn(port: u16, dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let child = ChildProc::spawn(
            Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    &dir.display().to_string(),
                ])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "redis-server",
        )?;
        wait_for_port(port, "redis-server").await?;
        Ok(Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        })
    }

    /// CPU time Redis has used (it serves the stateful-Redis replicas).
    pub fn cpu(&self) -> Option<Duration> {
        self.child.cpu()
    }

    pub fn pid(&self) -> u32 {
        self.child.pid
    }

    /// SIGKILL: Redis disappears at once, as in a crash.
    pub async fn kill(&mut self) {
        self.child.kill().await;
    }
}

/// A Redis Cluster of masters without replicas, each a `redis-server` on
/// a free loopback port, joined by `redis-cli --cluster create` (which
/// spreads the 16,384 slots evenly). Stopped when dropped.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// `redis-cluster://127.0.0.1:p1,127.0.0.1:p2,...`
    pub url: String,
}

impl RedisCluster {
    /// Starts `masters` nodes (at least 3, Redis's minimum), their working
    /// directories under `work`, and waits until every node reports the
    /// cluster ready.
    pub async fn start(work: &Path, masters: usize) -> anyhow::Result<Self> {
        if masters < 3 {
            bail!("a Redis Cluster needs at least 3 masters, not {masters}");
        }
        let mut nodes = Vec::with_capacity(masters);
        let mut addrs = Vec::with_capacity(masters);
        for i in 0..masters {
            let dir = work.join(format!("redis-cluster-{i}"));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let port = free_port()?;
            // The bus port is given: the default (port + 10000) may not exist.
            let bus = free_port()?.to_string();
            let extra = [
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &bus,
                "--cluster-config-file",
                "nodes.conf",
            ];
            nodes.push(RedisServer::spawn(port, &dir, &extra).await?);
            addrs.push(format!("127.0.0.1:{port}"));
        }
        let create = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(30), create)
            .await
            .context("redis-cli --cluster create took over 30 s")?
            .context("cannot run redis-cli (install redis-tools)")?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            let why = text.lines().rev().find(|l| !l.trim().is_empty());
            bail!(
                "redis-cli --cluster create failed: {}",
                why.unwrap_or("no output")
            );
        }
        for node in &nodes {
            wait_cluster_ok(&node.url).await?;
        }
        Ok(Self {
            url: format!("redis-cluster://{}", addrs.join(",")),
            nodes,
        })
    }

    /// CPU time all nodes have used.
    pub fn cpu(&self) -> Option<Duration> {
        self.nodes.iter().map(RedisServer::cpu).sum()
    }

    /// The nodes' process ids.
    pub fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.nodes.iter().map(RedisServer::pid)
    }
}

/// Polls `CLUSTER INFO` on one node until it says `cluster_state:ok`.
async fn wait_cluster_ok(url: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    for _ in 0..200 {
        if crate::stop::requested().is_some() {
            bail!("stopped while the Redis Cluster was forming");
        }
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut c)
            .await?;
        if info.lines().any(|l| l.trim() == "cluster_state:ok") {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the Redis Cluster node {url} was not ready within 10 s")
}

/// HAProxy in front of replicas, configured for one routing policy.
pub struct Haproxy {
    child: ChildProc,
    pub url: String,
}

impl Haproxy {
    /// The configuration for `policy` over `backends` (HTTP base URLs). A
    /// request whose connection is refused, or (HTTP mode) whose server
    /// closes without answering, goes again to another server up to
    /// `retries` times (`retry-on conn-failure empty-response`,
    /// `option redispatch`), as the embedded balancer does.
    pub fn config(port: u16, policy: Policy, backends: &[String], retries: u32) -> String {
        let (mode, balance, server_extra, backend_extra) = match policy {
            Policy::RoundRobin => ("http", "roundrobin", "", ""),
            // L4: a client connection stays on one server until it reconnects.
            Policy::PerConnection => ("tcp", "roundrobin", "", ""),
            Policy::Sticky => (
                "http",
                "roundrobin",
                " cookie {name}",
                "    cookie SERVERID insert indirect nocache\n",
            ),
            Policy::ConsistentHash => ("http", "hdr(x-user)", "", "    hash-type consistent\n"),
        };
        let retry_on = if mode == "http" && retries > 0 {
            "    retry-on conn-failure empty-response\n"
        } else {
            ""
        };
        let mut c = format!(
            "global\n    maxconn 4000\n\ndefaults\n    mode {mode}\n    timeout connect 2s\n    \
             timeout client 30s\n    timeout server 30s\n    option redispatch\n    retries {retries}\n\
             {retry_on}\nfrontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\n\
             backend be\n    balance {balance}\n{backend_extra}"
        );
        for (i, b) in backends.iter().enumerate() {
            let addr = b.trim_start_matches("http://");
            let name = format!("r{i}");
            c.push_str(&format!(
                "    server {name} {addr}{} check inter 500ms fall 1 rise 1\n",
                server_extra.replace("{name}", &name)
            ));
        }
        c
    }

    pub async fn start(
        work: &Path,
        policy: Policy,
        backends: &[String],
        retries: u32,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let config = work.join(format!("haproxy-{}.cfg", policy.name()));
        std::fs::write(&config, Self::config(port, policy, backends, retries))?;
        let child = Self::launch(&config)?;
        wait_for_port(port, "haproxy").await.with_context(|| {
            format!(
                "haproxy -f {} failed (its log is beside it)",
                config.display()
            )
        })?;
        Ok(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    fn launch(config: &Path) -> anyhow::Result<ChildProc> {
        let log = std::fs::File::create(config.with_extension("log"))?;
        ChildProc::spawn(
            Command::new("haproxy")
                .args(["-f", &config.display().to_string(), "-db"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log),
            "haproxy",
        )
    }

    pub fn cpu(&self) -> Option<Duration> {
        self.child.cpu()
    }

    pub fn pid(&self) -> u32 {
        self.child.pid
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub async fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        if crate::stop::requested().is_some() {
            bail!("stopped while {what} was starting");
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{what} did not listen on 127.0.0.1:{port} within 5 s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxy_config_names_the_policy() {
        let b = vec![
            "http://127.0.0.1:1".to_string(),
            "http://127.0.0.1:2".into(),
        ];
        let sticky = Haproxy::config(9, Policy::Sticky, &b, 1);
        assert!(sticky.contains("cookie SERVERID insert"));
        assert!(sticky.contains("server r1 127.0.0.1:2 cookie r1"));
        let hash = Haproxy::config(9, Policy::ConsistentHash, &b, 1);
        assert!(hash.contains("hash-type consistent") && hash.contains("balance hdr(x-user)"));
        let l4 = Haproxy::config(9, Policy::PerConnection, &b, 1);
        assert!(l4.contains("mode tcp") && !l4.contains("retry-on"));
        let rr = Haproxy::config(9, Policy::RoundRobin, &b, 1);
        assert!(rr.contains("retries 1\n    retry-on conn-failure empty-response\n"));
        assert!(rr.contains("option redispatch"));
        let raw = Haproxy::config(9, Policy::RoundRobin, &b, 0);
        assert!(raw.contains("retries 0\n") && !raw.contains("retry-on"));
    }
}
