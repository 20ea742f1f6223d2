//! Helper servers a comparison starts beside the replicas: Redis (the
//! shared session store and chat backplane) and HAProxy (the external
//! balancer), each on a free loopback port and stopped when dropped.

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
                    &work.display().to_string(),
                ])
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
