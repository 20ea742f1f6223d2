//! The processes `statebench compare` starts and stops: server replicas
//! (`statebench serve` on 127.0.0.1 port 0), Redis and HAProxy. Every child
//! is killed when its handle drops, so an error or Ctrl-C leaves nothing
//! running. Server cost is read from each replica's /proc entry.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::host::child::ChildProc;
use crate::host::proc;
use crate::keys::TokenAlg;
use crate::server::Arch;

/// What one replica serves.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub arch: Arch,
    pub alg: TokenAlg,
    /// `memory` or a Redis URL (stateful).
    pub store: String,
    /// Redis URL for chat rooms across replicas (ws).
    pub backplane: Option<String>,
    pub redis_prefix: String,
    /// More `serve` flags (token lifetimes, revocation).
    pub extra: Vec<String>,
}

impl ServerSpec {
    pub fn new(arch: Arch) -> Self {
        Self {
            arch,
            alg: TokenAlg::HS256,
            store: "memory".into(),
            backplane: None,
            redis_prefix: "statebench".into(),
            extra: Vec::new(),
        }
    }
}

/// Where replicas come from: the `statebench` binary, a directory for key
/// files shared by stateless replicas, and one for logs.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub exe: PathBuf,
    pub work: PathBuf,
    /// Cores and CPU budgets for the replicas (`compare --replica-cpu`…).
    pub placement: Option<std::sync::Arc<super::budget::Placement>>,
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
            spec.arch.name().into(),
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--redis-prefix".into(),
            spec.redis_prefix.clone(),
            "--shutdown-timeout".into(),
            "5".into(),
        ];
        if let Some(n) = self.placement.as_ref().and_then(|p| p.replica_workers()) {
            args.extend(["--workers".into(), n.to_string()]);
        }
        match spec.arch {
            Arch::Stateless => {
                args.extend(["--alg".into(), spec.alg.name().into()]);
                args.extend(self.key_args(spec.alg)?);
            }
            Arch::Stateful => args.extend(["--store".into(), spec.store.clone()]),
            Arch::Hybrid => {
                args.extend(["--alg".into(), spec.alg.name().into()]);
                args.extend(self.key_args(spec.alg)?);
                args.extend(["--store".into(), spec.store.clone()]);
            }
            Arch::Ws => {
                if let Some(b) = &spec.backplane {
                    args.extend(["--backplane".into(), b.clone()]);
                }
            }
        }
        args.extend(spec.extra.iter().cloned());
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
        let stdout = child.take_stdout().context("replica stdout")?;
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
        if let Some(p) = &self.placement {
            p.place(name, pid, super::budget::Role::Replica)?;
        }
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
        proc::cpu_time(self.pid?)
    }

    pub fn rss_bytes(&self) -> Option<u64> {
        proc::rss_bytes(self.pid?)
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
        proc::cpu_time(self.pid)
    }

    /// Resident memory now, from /proc.
    pub fn rss_bytes(&self) -> Option<u64> {
        proc::rss_bytes(self.pid)
    }
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
