//! Running the real `statebench` binary: a tag in the environment that
//! every descendant inherits (so leftovers can be found, whatever process
//! group they moved to), exit-time checks and peak memory.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const TAG_VAR: &str = "STATEBENCH_TEST_TAG";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_statebench")
}

/// A tag no other test uses.
pub fn tag() -> String {
    format!("t{:016x}", rand::random::<u64>())
}

/// The command, tagged, in a process group of its own (as a shell puts a
/// foreground job), quiet logs.
pub fn command(tag: &str, args: &[&str]) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env(TAG_VAR, tag)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .process_group(0);
    cmd
}

/// Live processes (zombies aside) whose environment carries the tag.
pub fn tagged(tag: &str) -> Vec<String> {
    let needle = format!("{TAG_VAR}={tag}");
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()) {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rfind(')')
            .and_then(|i| stat.get(i + 2..i + 3))
            .unwrap_or("?");
        if state != "Z" && state != "X" {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            found.push(format!("{pid} {}", comm.trim()));
        }
    }
    found
}

/// Waits up to `within` for every tagged process to be gone; returns the
/// ones left.
pub fn orphans_after(tag: &str, within: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let left = tagged(tag);
        if left.is_empty() || start.elapsed() >= within {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the child to exit, for at most `limit`; kills it (and its
/// group) if it does not, so no test can hang.
pub fn exit_within(child: &mut Child, limit: Duration) -> Option<(ExitStatus, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some((status, start.elapsed()));
        }
        if start.elapsed() >= limit {
            signal_group(child.id(), libc::SIGKILL);
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the binary with `args` to its end, stdout discarded (at most
/// `limit`; killed with its group beyond): how it ended, if it did, and
/// the lines it wrote on stderr.
pub fn run_quiet(
    tag: &str,
    args: &[&str],
    limit: Duration,
) -> (Option<(ExitStatus, Duration)>, Vec<String>) {
    let mut child = command(tag, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines(child.stderr.take().unwrap());
    let ended = exit_within(&mut child, limit);
    (ended, stderr.try_iter().collect())
}

/// Sends `sig` to the process group led by `pid`, as a terminal does.
pub fn signal_group(pid: u32, sig: i32) {
    let sig = rustix::process::Signal::from_named_raw(sig).expect("a named signal");
    statebench::stop::signal_group(pid, sig);
}

/// The lines of a child's pipe, as they come, on a channel.
pub fn lines(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (at most `limit`) for a line containing `needle`; returns the
/// lines seen so far, the matching one last.
pub fn wait_for(rx: &mpsc::Receiver<String>, needle: &str, limit: Duration) -> Vec<String> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while let Some(left) = limit.checked_sub(start.elapsed()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!(
        "no line containing {needle:?} within {limit:?}; saw:\n{}",
        seen.join("\n")
    );
}

/// Peak resident memory of a live process so far (VmHWM), in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    statebench::host::proc::peak_rss_bytes(pid)
}

/// A loopback port where nothing listens (bound, then released).
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `statebench serve` as a separate process; its base URL. The stdout pipe
/// is drained for as long as the server lives (a closed stdout stops it).
pub fn serve(tag: &str, args: &[&str]) -> (Child, String) {
    let mut child = command(tag, &["serve", "--addr", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines(child.stdout.take().unwrap());
    let line = rx.recv_timeout(Duration::from_secs(15)).unwrap();
    let url = line
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "start-up line: {line:?}"
    );
    std::thread::spawn(move || while rx.recv().is_ok() {});
    (child, url)
}
