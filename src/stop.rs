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
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

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
/// Where the real stdout is: 1, or a saved copy while fd 1 is pointed
/// elsewhere (see [`watch_stdout_at`]).
static STDOUT_FD: AtomicI32 = AtomicI32::new(1);

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
            Self::OutputClosed => 128 + libc::SIGPIPE as u8,
        }
    }

    /// `SIGINT`, `SIGTERM`, … or `closed output`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Signal(libc::SIGINT) => "SIGINT",
            Self::Signal(libc::SIGTERM) => "SIGTERM",
            Self::Signal(libc::SIGHUP) => "SIGHUP",
            Self::Signal(libc::SIGQUIT) => "SIGQUIT",
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
        match signal_hook::iterator::Signals::new([
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
        ]) {
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
                            if sig == libc::SIGHUP {
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
    // SAFETY: prctl is async-signal-safe; it runs in the child between
    // fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
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
    signal_group(pgid, libc::SIGKILL);
    forget(pgid);
}

/// Sends `sig` to a child's process group.
pub fn signal_group(pgid: u32, sig: libc::c_int) {
    if pgid > 1 {
        // SAFETY: kill(2) on a process group this process created.
        unsafe {
            libc::kill(-(pgid as libc::pid_t), sig);
        }
    }
}

/// Kills every registered child group (the last resort before exiting).
pub fn kill_children() {
    let groups: Vec<i32> = CHILD_GROUPS
        .lock()
        .map(|mut g| std::mem::take(&mut *g).into_iter().collect())
        .unwrap_or_default();
    for g in groups {
        signal_group(g as u32, libc::SIGKILL);
    }
}

/// While fd 1 is redirected (to keep a library's prints off the screen),
/// the real stdout lives at `fd`: watch that one. `None` goes back to 1.
pub fn watch_stdout_at(fd: Option<i32>) {
    STDOUT_FD.store(fd.unwrap_or(1), Ordering::SeqCst);
}

/// Points stdout or stderr at /dev/null if its reader is gone; returns
/// whether one was.
fn silence_closed_output() -> bool {
    let mut closed = false;
    for fd in [STDOUT_FD.load(Ordering::SeqCst), 2] {
        let mut p = libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        };
        // SAFETY: poll on one pollfd we own, without waiting.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        if n == 1 && p.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
            closed = true;
            // SAFETY: open/dup2/close on descriptors this process owns.
            unsafe {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                if null >= 0 {
                    libc::dup2(null, fd);
                    libc::close(null);
                }
            }
        }
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
        assert_eq!(Reason::Signal(libc::SIGINT).exit_code(), 130);
        assert_eq!(Reason::Signal(libc::SIGTERM).exit_code(), 143);
        assert_eq!(Reason::Signal(libc::SIGHUP).exit_code(), 129);
        assert_eq!(Reason::OutputClosed.exit_code(), 141);
    }
}
