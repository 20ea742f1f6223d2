//! How a command stops: one multiplexer turns every reason to stop into one
//! state that long runs poll ([`requested`]) or await ([`wait`]).
//!
//! The reasons are SIGINT, SIGTERM, SIGHUP and SIGQUIT, and a closed stdout
//! or stderr (`statebench compare | head -1`, a closed terminal). Closed
//! output is noticed by polling both descriptors for `POLLERR`/`POLLHUP`
//! (a pipe whose reader left, a terminal that hung up), so a run that
//! prints nothing for minutes still stops within a fraction of a second.
//! A closed descriptor is then pointed at /dev/null, so no later write can
//! fail or panic anywhere in the process (goose's and indicatif's included).
//!
//! The first signal asks the run to stop: goose's killswitch is tripped,
//! waiters wake, and the command unwinds, stopping its children and
//! keeping what it measured. A second signal does not wait: every child
//! process group registered with [`adopt`] is killed and the process exits
//! at once. The exit code follows the shell's convention, 128 + the signal
//! (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP), and 141 (SIGPIPE's)
//! for closed output.
//!
//! Children run in process groups of their own ([`own_group`]): the SIGINT
//! a terminal sends to its whole foreground group reaches this process
//! only, and it decides how its children stop.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, Signal};
use signal_hook::consts::{SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM};
use tokio::sync::Notify;

/// No stop asked for.
const NONE: i32 = 0;
/// Stdout or stderr was closed (stored as a negative to keep signals apart).
const OUTPUT_CLOSED: i32 = -1;

/// The first reason to stop: a signal number, [`OUTPUT_CLOSED`] or [`NONE`].
static REASON: AtomicI32 = AtomicI32::new(NONE);
static WOKEN: Notify = Notify::const_new();
/// Process groups of children to kill if the process must leave at once.
/// A `std` mutex: held for an insert or a removal, never across an await.
static CHILD_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
static INSTALL: Once = Once::new();
/// The real stdout while fd 1 is pointed at /dev/null (see
/// [`silence_stdout`]); the output watcher watches it instead of fd 1.
static SAVED_STDOUT: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Why a run stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A signal (its number).
    Signal(i32),
    /// Stdout or stderr was closed.
    OutputClosed,
}

impl Reason {
    /// The conventional exit status for this reason.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Signal(s) => (128 + s).clamp(0, 255) as u8,
            Self::OutputClosed => 128 + SIGPIPE as u8,
        }
    }

    /// `SIGINT`, `SIGTERM`, … or `closed output`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Signal(SIGINT) => "SIGINT",
            Self::Signal(SIGTERM) => "SIGTERM",
            Self::Signal(SIGHUP) => "SIGHUP",
            Self::Signal(SIGQUIT) => "SIGQUIT",
            Self::Signal(_) => "a signal",
            Self::OutputClosed => "closed output",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Starts the multiplexer (once per process; later calls do nothing).
pub fn install() {
    INSTALL.call_once(|| {
        // goose installs a Ctrl-C handler of its own at every run, which
        // would replace ours and exit(1) on a second Ctrl-C. ctrlc allows
        // one handler per process: taking that slot first keeps goose's
        // out. Ours below chain to it, and it does nothing.
        let _ = ctrlc::set_handler(|| {});
        match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT]) {
            Ok(mut signals) => {
                let _ = std::thread::Builder::new()
                    .name("statebench-signals".into())
                    .spawn(move || {
                        for sig in signals.forever() {
                            if requested().is_some() {
                                // Asked twice: leave now.
                                kill_children();
                                std::process::exit(128 + sig);
                            }
                            if sig == SIGHUP {
                                silence_closed_output();
                            }
                            request(Reason::Signal(sig));
                        }
                    });
            }
            Err(e) => eprintln(&format!("warning: cannot watch signals: {e}")),
        }
        let _ = std::thread::Builder::new()
            .name("statebench-output".into())
            .spawn(|| {
                loop {
                    if silence_closed_output() {
                        request(Reason::OutputClosed);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
    });
}

/// Asks the run to stop (the first reason is kept).
pub fn request(reason: Reason) {
    let code = match reason {
        Reason::Signal(s) => s,
        Reason::OutputClosed => OUTPUT_CLOSED,
    };
    let _ = REASON.compare_exchange(NONE, code, Ordering::SeqCst, Ordering::SeqCst);
    goose::trigger_killswitch(&format!("statebench stopped: {reason}"));
    WOKEN.notify_waiters();
}

/// The reason to stop, once there is one.
pub fn requested() -> Option<Reason> {
    match REASON.load(Ordering::SeqCst) {
        NONE => None,
        OUTPUT_CLOSED => Some(Reason::OutputClosed),
        s => Some(Reason::Signal(s)),
    }
}

/// Resolves once a stop is requested.
pub async fn wait() {
    loop {
        let woken = WOKEN.notified();
        if requested().is_some() {
            return;
        }
        // Woken by `request`, or a periodic look in case the notification
        // raced with the check above.
        let _ = tokio::time::timeout(Duration::from_millis(200), woken).await;
    }
}

/// Runs the child in a process group of its own (the terminal's SIGINT
/// does not reach it) and kills it if this process dies first.
pub fn own_group(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    own_group_std(cmd.as_std_mut());
    cmd
}

/// The same for a `std` command (children that run to completion, such
/// as `cargo bench`).
pub fn own_group_std(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    // SAFETY: `pre_exec` runs the closure in the child between fork and
    // exec, where only async-signal-safe calls are allowed; prctl is one,
    // and the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            Ok(())
        });
    }
    cmd
}

/// Runs a command to its end in a process group of its own (with
/// everything it starts, such as the benchmarks `cargo bench` runs). A
/// stop kills the whole group and returns an error at once.
pub fn run_to_end(
    cmd: &mut std::process::Command,
    what: &str,
) -> anyhow::Result<std::process::ExitStatus> {
    let mut child = own_group_std(cmd)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {what}: {e}"))?;
    let pgid = child.id();
    adopt(pgid);
    loop {
        if let Some(status) = child.try_wait()? {
            forget(pgid);
            return Ok(status);
        }
        if let Some(r) = requested() {
            kill_group(pgid);
            let _ = child.wait();
            anyhow::bail!("{what} stopped by {r}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Forgets a group whose leader was reaped: its pid may be reused, so it
/// must never be signalled again.
pub fn forget(pgid: u32) {
    if let Ok(mut g) = CHILD_GROUPS.lock() {
        g.remove(&(pgid as i32));
    }
}

/// Records a child's process group (its pid, under [`own_group`]) so an
/// abrupt exit can kill it with everything it started.
pub fn adopt(pgid: u32) {
    if let Ok(mut g) = CHILD_GROUPS.lock() {
        g.insert(pgid as i32);
    }
}

/// Kills a child's whole process group (SIGKILL) and forgets it.
pub fn kill_group(pgid: u32) {
    signal_group(pgid, Signal::KILL);
    forget(pgid);
}

/// Sends `sig` to a child's process group.
pub fn signal_group(pgid: u32, sig: Signal) {
    if let Some(pgid) = Pid::from_raw(pgid as i32).filter(|p| !p.is_init()) {
        let _ = rustix::process::kill_process_group(pgid, sig);
    }
}

/// Kills every registered child group (the last resort before exiting).
pub fn kill_children() {
    let groups: Vec<i32> = CHILD_GROUPS
        .lock()
        .map(|mut g| std::mem::take(&mut *g).into_iter().collect())
        .unwrap_or_default();
    for g in groups {
        signal_group(g as u32, Signal::KILL);
    }
}

/// Points stdout at /dev/null until the guard drops (to keep a library's
/// prints off the screen); meanwhile the output watcher watches the real
/// stdout, kept aside.
pub fn silence_stdout() -> SilencedStdout {
    let _ = std::io::stdout().flush();
    let silenced = (|| -> std::io::Result<()> {
        let saved = rustix::io::dup(std::io::stdout().as_fd())?;
        let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
        rustix::stdio::dup2_stdout(&null)?;
        if let Ok(mut s) = SAVED_STDOUT.lock() {
            *s = Some(saved);
        }
        Ok(())
    })();
    SilencedStdout(silenced.is_ok())
}

/// Restores stdout when dropped (see [`silence_stdout`]).
pub struct SilencedStdout(bool);

impl Drop for SilencedStdout {
    fn drop(&mut self) {
        if !self.0 {
            return;
        }
        if let Some(saved) = SAVED_STDOUT.lock().ok().and_then(|mut s| s.take()) {
            let _ = rustix::stdio::dup2_stdout(&saved);
        }
    }
}

/// Whether the reader of `fd` is gone (a pipe whose reader left, a
/// terminal that hung up).
fn hung_up(fd: impl AsFd) -> bool {
    let mut p = [PollFd::new(&fd, PollFlags::empty())];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut p, Some(&now)).is_ok_and(|n| n == 1)
        && p[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)
}

/// Points stdout (or its saved copy) and stderr at /dev/null if their
/// reader is gone; returns whether one was.
fn silence_closed_output() -> bool {
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return false;
    };
    let mut closed = false;
    match SAVED_STDOUT.lock().as_deref_mut() {
        Ok(Some(saved)) => {
            if hung_up(&*saved) {
                closed = true;
                let _ = rustix::io::dup2(&null, saved);
            }
        }
        _ => {
            if hung_up(std::io::stdout()) {
                closed = true;
                let _ = rustix::stdio::dup2_stdout(&null);
            }
        }
    }
    if hung_up(std::io::stderr()) {
        closed = true;
        let _ = rustix::stdio::dup2_stderr(&null);
    }
    closed
}

/// A line on stderr that can neither fail nor panic (the run may be
/// stopping because stderr is gone).
pub fn eprintln(line: &str) {
    let mut e = std::io::stderr().lock();
    if writeln!(e, "{line}").is_err() {
        request(Reason::OutputClosed);
    }
}

/// A line on stdout, as [`eprintln`].
pub fn println(line: &str) {
    let mut o = std::io::stdout().lock();
    if writeln!(o, "{line}").and_then(|()| o.flush()).is_err() {
        request(Reason::OutputClosed);
    }
}

/// Text on stdout, as [`println`] without the newline.
pub fn print(text: &str) {
    let mut o = std::io::stdout().lock();
    if o.write_all(text.as_bytes())
        .and_then(|()| o.flush())
        .is_err()
    {
        request(Reason::OutputClosed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(Reason::Signal(SIGINT).exit_code(), 130);
        assert_eq!(Reason::Signal(SIGTERM).exit_code(), 143);
        assert_eq!(Reason::Signal(SIGHUP).exit_code(), 129);
        assert_eq!(Reason::OutputClosed.exit_code(), 141);
    }
}
