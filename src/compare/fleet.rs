//! The processes `statebench compare` starts and stops: server replicas
//! (`statebench serve` on 127.0.0.1 port 0), Redis and HAProxy. Every child
//! is killed when its handle drops, so an error or Ctrl-C leaves nothing
//! running. Server cost is read from each replica's /proc entry.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::keys::TokenAlg;
use crate::loadtests::Policy;

/// What one replica serves.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// `stateless`, `stateful` or `ws`.
    pub arch: &'static str,
    pub alg: TokenAlg,
    /// `memory` or a Redis URL (stateful).
    pub store: String,
    /// Redis URL for chat rooms across replicas (ws).
    pub backplane: Option<String>,
    pub redis_prefix: String,
}

impl ServerSpec {
    pub fn new(arch: &'static str) -> Self {
        Self {
            arch,
            alg: TokenAlg::HS256,
            store: "memory".into(),
            backplane: None,
            redis_prefix: "statebench".into(),
        }
    }
}

/// Where replicas come from: the `statebench` binary, a directory for key
/// files shared by stateless replicas, and one for logs.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub exe: PathBuf,
    pub work: PathBuf,
}

impl Launcher {
    /// Key files every stateless replica of `alg` reads (so a token signed
    /// by one is accepted by all), created once per run.
    fn key_args(&self, alg: TokenAlg) -> anyhow::Result<Vec<String>> {
        let dir = self.work.join("keys");
        std::fs::create_dir_all(&dir)?;
        if alg.is_hmac() {
            let path = dir.join(format!("{}.secret", alg.name()));
            if !path.exists() {
                let mut secret = [0u8; 48];
                rand::fill(&mut secret);
                write_private(&path, hex(&secret).as_bytes())?;
            }
            return Ok(vec!["--secret-file".into(), path.display().to_string()]);
        }
        let private = dir.join(format!("{}.key.pem", alg.name()));
        let public = dir.join(format!("{}.pub.pem", alg.name()));
        if !private.exists() {
            let (sk, pk) = crate::keys::generate_pem(alg)?;
            write_private(&private, sk.as_bytes())?;
            std::fs::write(&public, pk)?;
        }
        Ok(vec![
            "--private-key-file".into(),
            private.display().to_string(),
            "--public-key-file".into(),
            public.display().to_string(),
        ])
    }

    /// Starts one replica and waits for the line that names its address.
    pub async fn spawn(&self, spec: &ServerSpec, name: &str) -> anyhow::Result<Replica> {
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--arch".into(),
            spec.arch.into(),
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--redis-prefix".into(),
            spec.redis_prefix.clone(),
            "--shutdown-timeout".into(),
            "5".into(),
        ];
        match spec.arch {
            "stateless" => {
                args.extend(["--alg".into(), spec.alg.name().into()]);
                args.extend(self.key_args(spec.alg)?);
            }
            "stateful" => args.extend(["--store".into(), spec.store.clone()]),
            _ => {
                if let Some(b) = &spec.backplane {
                    args.extend(["--backplane".into(), b.clone()]);
                }
            }
        }
        let logs = self.work.join("logs");
        std::fs::create_dir_all(&logs)?;
        let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
        let mut child = ChildProc::spawn(
            Command::new(&self.exe)
                .args(&args)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log),
            "a replica",
        )?;
        let stdout = child.child.stdout.take().context("replica stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::select! {
            line = tokio::time::timeout(Duration::from_secs(15), lines.next_line()) => line
                .map_err(|_| anyhow::anyhow!("{name} did not start within 15 s (see its log)"))??
                .with_context(|| format!("{name} exited before listening (see its log)"))?,
            () = crate::stop::wait() => bail!("stopped while {name} was starting"),
        };
        let url = line
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://127.0.0.1:"))
            .with_context(|| format!("{name} printed {line:?}, not its address"))?
            .to_owned();
        let pid = child.pid;
        Ok(Replica {
            child,
            _stdout: lines,
            url,
            pid,
            name: name.to_owned(),
        })
    }
}

/// A server whose cost is read around each cell: its base URL and, when
/// known, its process (an external server may have none).
#[derive(Debug, Clone)]
pub struct Watched {
    pub url: String,
    pub pid: Option<u32>,
}

impl Watched {
    pub fn cpu(&self) -> Option<Duration> {
        proc_cpu(self.pid?)
    }

    pub fn rss_bytes(&self) -> Option<u64> {
        proc_rss(self.pid?)
    }
}

/// The replicas as watched servers.
pub fn watched(replicas: &[Replica]) -> Vec<Watched> {
    replicas
        .iter()
        .map(|r| Watched {
            url: r.url.clone(),
            pid: Some(r.pid),
        })
        .collect()
}

/// A running `statebench serve` process.
pub struct Replica {
    child: ChildProc,
    /// Kept open: a replica stops when its stdout's reader is gone.
    _stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pub url: String,
    pub pid: u32,
    pub name: String,
}

impl Replica {
    /// SIGKILL: the process dies at once, with whatever it held in memory.
    pub async fn kill(&mut self) {
        self.child.kill().await;
    }

    /// SIGTERM, then wait for the graceful drain (SIGKILL after `grace`).
    pub async fn terminate(&mut self, grace: Duration) {
        self.child.terminate(grace).await;
    }

    /// CPU time used so far (user + system), from /proc.
    pub fn cpu(&self) -> Option<Duration> {
        proc_cpu(self.pid)
    }

    /// Resident memory now, from /proc.
    pub fn rss_bytes(&self) -> Option<u64> {
        proc_rss(self.pid)
    }

    /// HTTP requests the server has answered (its `/metrics`, excluding
    /// `/metrics` itself).
    pub async fn requests_counted(&self, client: &reqwest::Client) -> anyhow::Result<u64> {
        let body = client
            .get(format!("{}/metrics", self.url))
            .send()
            .await?
            .text()
            .await?;
        Ok(count_requests(&body))
    }
}

/// Sums `statebench_http_requests_total` over every route but `/metrics`.
pub fn count_requests(exposition: &str) -> u64 {
    exposition
        .lines()
        .filter(|l| l.starts_with("statebench_http_requests_total{"))
        .filter(|l| !l.contains("route=\"/metrics\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// A child process in a process group of its own (see [`crate::stop`]):
/// the terminal's Ctrl-C does not reach it, it dies if this process dies,
/// and dropping the handle kills its whole group.
pub struct ChildProc {
    child: Child,
    pub pid: u32,
    reaped: bool,
}

impl ChildProc {
    pub fn spawn(cmd: &mut Command, what: &str) -> anyhow::Result<Self> {
        let child = crate::stop::own_group(cmd)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        let pid = child.id().context("child pid")?;
        crate::stop::adopt(pid);
        Ok(Self {
            child,
            pid,
            reaped: false,
        })
    }

    /// SIGKILL to the group, then reap.
    pub async fn kill(&mut self) {
        if !self.reaped {
            crate::stop::kill_group(self.pid);
            let _ = self.child.wait().await;
            self.reaped = true;
        }
    }

    /// SIGTERM, then SIGKILL if it is still there after `grace`.
    pub async fn terminate(&mut self, grace: Duration) {
        if self.reaped {
            return;
        }
        crate::stop::signal_group(self.pid, libc::SIGTERM);
        if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
            self.reaped = true;
            crate::stop::forget(self.pid);
        } else {
            self.kill().await;
        }
    }

    pub fn cpu(&self) -> Option<Duration> {
        proc_cpu(self.pid)
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if !self.reaped {
            crate::stop::kill_group(self.pid);
        }
    }
}

fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// User + system CPU time of a process (all its threads).
pub fn proc_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(Duration::from_micros(
        (utime + stime) * 1_000_000 / ticks_per_sec(),
    ))
}

/// Resident set size of a process.
pub fn proc_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A Redis server on a free loopback port, no persistence.
pub struct RedisServer {
    child: ChildProc,
    pub url: String,
}

impl RedisServer {
    pub async fn start(work: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
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
}

/// HAProxy in front of replicas, configured for one routing policy.
pub struct Haproxy {
    child: ChildProc,
    pub url: String,
    config: PathBuf,
    port: u16,
}

impl Haproxy {
    /// The configuration for `policy` over `backends` (HTTP base URLs).
    pub fn config(port: u16, policy: Policy, backends: &[String]) -> String {
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
        let mut c = format!(
            "global\n    maxconn 4000\n\ndefaults\n    mode {mode}\n    timeout connect 2s\n    \
             timeout client 30s\n    timeout server 30s\n    option redispatch\n    retries 1\n\n\
             frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\n\
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

    pub async fn start(work: &Path, policy: Policy, backends: &[String]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let config = work.join(format!("haproxy-{}.cfg", policy.name()));
        std::fs::write(&config, Self::config(port, policy, backends))?;
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
            config,
            port,
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

    /// Rewrites the backends (a replica replaced or added) and restarts.
    pub async fn reload(&mut self, policy: Policy, backends: &[String]) -> anyhow::Result<()> {
        std::fs::write(&self.config, Self::config(self.port, policy, backends))?;
        self.child.kill().await;
        self.child = Self::launch(&self.config)?;
        wait_for_port(self.port, "haproxy").await
    }

    pub fn cpu(&self) -> Option<Duration> {
        self.child.cpu()
    }
}

/// Whether a program can be run (`--version`/`-v` answered).
pub fn installed(program: &str) -> bool {
    std::process::Command::new(program)
        .arg(if program == "haproxy" {
            "-v"
        } else {
            "--version"
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
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

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(data)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_but_not_metrics_scrapes() {
        let text = "# TYPE statebench_http_requests counter\n\
            statebench_http_requests_total{route=\"/profile\",status=\"200\"} 10\n\
            statebench_http_requests_total{route=\"/login\",status=\"200\"} 2\n\
            statebench_http_requests_total{route=\"/metrics\",status=\"200\"} 5\n";
        assert_eq!(count_requests(text), 12);
    }

    #[test]
    fn own_cpu_and_rss_are_readable() {
        let me = std::process::id();
        assert!(proc_rss(me).is_some_and(|r| r > 0));
        assert!(proc_cpu(me).is_some());
    }

    #[test]
    fn haproxy_config_names_the_policy() {
        let b = vec![
            "http://127.0.0.1:1".to_string(),
            "http://127.0.0.1:2".into(),
        ];
        let sticky = Haproxy::config(9, Policy::Sticky, &b);
        assert!(sticky.contains("cookie SERVERID insert"));
        assert!(sticky.contains("server r1 127.0.0.1:2 cookie r1"));
        let hash = Haproxy::config(9, Policy::ConsistentHash, &b);
        assert!(hash.contains("hash-type consistent") && hash.contains("balance hdr(x-user)"));
        assert!(Haproxy::config(9, Policy::PerConnection, &b).contains("mode tcp"));
    }
}
