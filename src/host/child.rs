//! A child process that cannot outlive its handle: it runs in a process
//! group of its own, dies with this process, and its whole group is killed
//! when the handle drops.

use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

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
        crate::stop::signal_group(self.pid, rustix::process::Signal::TERM);
        if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
            self.reaped = true;
            crate::stop::forget(self.pid);
        } else {
            self.kill().await;
        }
    }

    /// CPU time used so far (user + system).
    pub fn cpu(&self) -> Option<Duration> {
        super::proc::cpu_time(self.pid)
    }

    /// The child's stdout, if it was piped and not taken yet.
    pub fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.child.stdout.take()
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if !self.reaped {
            crate::stop::kill_group(self.pid);
        }
    }
}
