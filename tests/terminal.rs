//! The binary in a real (pseudo-)terminal, as people run it: the live
//! progress bar, Ctrl-C typed at the keyboard (the terminal sends SIGINT
//! to the whole foreground process group), and a terminal closed mid-run.
//! Paths that only run on a terminal are exercised nowhere else.

mod common;

use std::io::Write;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::procs::{TAG_VAR, bin, orphans_after, tag};
use portable_pty::{CommandBuilder, MasterPty, PtySize, native_pty_system};

const STOP_WITHIN: Duration = Duration::from_secs(5);

/// One test at a time: a short compare needs the machine's cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// A child on the slave side of a pty; everything it writes is kept.
struct Terminal {
    master: Option<Box<dyn MasterPty + Send>>,
    writer: Option<Box<dyn Write + Send>>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    screen: Arc<Mutex<String>>,
    hang_up: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Terminal {
    fn spawn(tag: &str, args: &[&str]) -> Self {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 30,
                cols: 150,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(bin());
        cmd.args(args);
        cmd.env(TAG_VAR, tag);
        cmd.env("RUST_LOG", "warn");
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("NO_COLOR");
        cmd.cwd(std::env::temp_dir());
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let raw = pair.master.as_raw_fd().expect("pty master fd");
        // SAFETY: portable-pty hands out the master only as a raw descriptor;
        // it stays open while `pair.master` lives, which outlives this dup.
        let fd = rustix::io::dup(unsafe { BorrowedFd::borrow_raw(raw) }).unwrap();
        let writer = pair.master.take_writer().unwrap();
        let screen = Arc::new(Mutex::new(String::new()));
        let hang_up = Arc::new(AtomicBool::new(false));
        let reader = {
            let screen = Arc::clone(&screen);
            let hang_up = Arc::clone(&hang_up);
            std::thread::spawn(move || read_until_closed(fd, &screen, &hang_up))
        };
        Self {
            master: Some(pair.master),
            writer: Some(writer),
            child,
            screen,
            hang_up,
            reader: Some(reader),
        }
    }

    fn screen(&self) -> String {
        self.screen.lock().unwrap().clone()
    }

    /// Waits for `needle` on the screen (at most `limit`).
    fn wait_for(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.screen().contains(needle) {
            assert!(
                start.elapsed() < limit,
                "{needle:?} not on the screen within {limit:?}:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ctrl-C typed at the keyboard.
    fn ctrl_c(&mut self) {
        let w = self.writer.as_mut().unwrap();
        w.write_all(b"\x03").unwrap();
        w.flush().unwrap();
    }

    /// The terminal window closes: every master descriptor is closed, so
    /// the kernel hangs up the session.
    fn close(&mut self) {
        self.hang_up.store(true, Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        drop(self.writer.take());
        drop(self.master.take());
    }

    /// The exit code and how long it took, or `None` (after killing it)
    /// if it did not exit within `limit`.
    fn exit_within(&mut self, limit: Duration) -> Option<(u32, Duration)> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some((status.exit_code(), start.elapsed()));
            }
            if start.elapsed() >= limit {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        self.close();
    }
}

/// Reads the terminal until it hangs up or the test closes it; the copy
/// of the master descriptor closes when this returns.
fn read_until_closed(fd: OwnedFd, screen: &Mutex<String>, hang_up: &AtomicBool) {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut buf = [0u8; 8192];
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    while !hang_up.load(Ordering::SeqCst) {
        let mut p = [PollFd::new(&fd, PollFlags::IN)];
        if !rustix::event::poll(&mut p, Some(&tick)).is_ok_and(|n| n > 0) {
            continue;
        }
        match rustix::io::read(&fd, &mut buf) {
            Ok(n) if n > 0 => screen
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => break,
        }
    }
}

fn compare_args(out: &str) -> Vec<String> {
    [
        "compare",
        "--only",
        "state-size",
        "--run-time",
        "1",
        "--out",
        out,
        "--run-name",
        "t",
    ]
    .map(String::from)
    .to_vec()
}

/// `compare` in a terminal, once its first cell is on the screen; its
/// results directory.
fn compare_past_its_first_cell(tag: &str) -> (Terminal, tempfile::TempDir) {
    let out_dir = temp_out();
    let args = compare_args(&out_dir.path().display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let t = Terminal::spawn(tag, &args);
    t.wait_for("state-size/stateless-hs256/cart0", Duration::from_secs(60));
    (t, out_dir)
}

/// A results directory of the test's own, removed when dropped.
fn temp_out() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn compare_shows_a_live_bar_and_exits_0() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tag = tag();
    let out_dir = temp_out();
    let out = out_dir.path();
    let args = compare_args(&out.display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut t = Terminal::spawn(&tag, &args);
    let (code, _) = t
        .exit_within(Duration::from_secs(120))
        .unwrap_or_else(|| panic!("compare did not finish:\n{}", t.screen()));
    let screen = t.screen();
    assert_eq!(code, 0, "{screen}");
    for bad in ["panicked", "overflowed", "fatal"] {
        assert!(!screen.contains(bad), "{bad}:\n{screen}");
    }
    // The bar (indicatif draws it only on a terminal) and the lines above it.
    assert!(
        screen.contains('░') || screen.contains('█'),
        "no bar:\n{screen}"
    );
    assert!(screen.contains("% ETA"), "no bar:\n{screen}");
    assert!(screen.contains("ETA") && screen.contains("state-size/stateless-hs256/cart0"));
    assert!(screen.contains("wrote"), "{screen}");
    assert!(orphans_after(&tag, Duration::from_secs(2)).is_empty());
}

#[test]
fn load_runs_in_a_terminal() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tag = tag();
    let mut t = Terminal::spawn(
        &tag,
        &[
            "load",
            "--scenario",
            "healthz",
            "--users",
            "2",
            "--run-time",
            "1",
        ],
    );
    let (code, _) = t
        .exit_within(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("load did not finish:\n{}", t.screen()));
    let screen = t.screen();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("running healthz"), "{screen}");
    assert!(screen.contains("GET healthz"), "{screen}");
}

/// `serve --arch ARCH` in a terminal, stopped with Ctrl-C once it listens:
/// its exit code, how long it took to stop, and its screen.
fn serve_until_ctrl_c(arch: &str) -> (u32, Duration, String) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tag = tag();
    let mut t = Terminal::spawn(&tag, &["serve", "--arch", arch, "--addr", "127.0.0.1:0"]);
    t.wait_for("listening on http://127.0.0.1:", Duration::from_secs(15));
    t.ctrl_c();
    let (code, took) = t
        .exit_within(Duration::from_secs(30))
        .expect("serve ignored Ctrl-C");
    (code, took, t.screen())
}

#[test]
fn serve_stops_on_ctrl_c() {
    let (code, took, screen) = serve_until_ctrl_c("ws");
    assert!(took <= STOP_WITHIN, "took {took:?}");
    assert_eq!(code, 130, "{screen}");
}

/// A log line on a terminal is coloured (piped, it is not: `tests/cli.rs`).
#[test]
fn serve_colours_its_log_on_a_terminal() {
    let (_, _, screen) = serve_until_ctrl_c("stateless");
    let warning = screen
        .lines()
        .find(|l| l.contains("no key given"))
        .unwrap_or_else(|| panic!("no warning about the generated key: {screen}"));
    assert!(
        warning.contains('\x1b'),
        "an uncoloured log line: {warning:?}"
    );
}

#[test]
fn ctrl_c_stops_compare_and_keeps_its_cells() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tag = tag();
    let (mut t, out_dir) = compare_past_its_first_cell(&tag);
    let out = out_dir.path();
    std::thread::sleep(Duration::from_millis(500));
    t.ctrl_c();
    let (code, took) = t
        .exit_within(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("Ctrl-C did not stop compare:\n{}", t.screen()));
    let screen = t.screen();
    assert!(took <= STOP_WITHIN, "took {took:?}:\n{screen}");
    assert_eq!(code, 130, "{screen}");
    assert!(!screen.contains("panicked"), "{screen}");
    let left = orphans_after(&tag, Duration::from_secs(2));
    assert!(left.is_empty(), "left behind: {left:?}");
    let cells: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("load/t/cells.json")).unwrap()).unwrap();
    assert!(!cells["cells"].as_array().unwrap().is_empty());
    assert!(cells["partial"].as_str().unwrap().contains("SIGINT"));
}

#[test]
fn closing_the_terminal_stops_compare() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tag = tag();
    let (mut t, _out) = compare_past_its_first_cell(&tag);
    t.close();
    let (code, took) = t
        .exit_within(Duration::from_secs(30))
        .expect("compare outlived its terminal");
    assert!(took <= STOP_WITHIN, "took {took:?}");
    assert_eq!(code, 129);
    let left = orphans_after(&tag, Duration::from_secs(2));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_long_cell_keeps_the_clock_moving_and_a_cut_ramp_is_not_kept() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tag = tag();
    let out_dir = temp_out();
    let out = out_dir.path().display().to_string();
    let mut t = Terminal::spawn(
        &tag,
        &[
            "compare",
            "--quick",
            "--only",
            "autoscale",
            "--out",
            &out,
            "--run-name",
            "t",
        ],
    );
    // The first ramp takes about half a minute: the bar's clock moves
    // while it runs, and there is no ETA before anything is done.
    t.wait_for("[00:00:06]", Duration::from_secs(30));
    let screen = t.screen();
    assert!(screen.contains("ETA    ?"), "{screen}");
    t.ctrl_c();
    let (code, took) = t
        .exit_within(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("Ctrl-C did not stop compare:\n{}", t.screen()));
    assert!(took <= STOP_WITHIN, "took {took:?}");
    assert_eq!(code, 130, "{}", t.screen());
    let left = orphans_after(&tag, Duration::from_secs(2));
    assert!(left.is_empty(), "left behind: {left:?}");
    // The ramp was cut short: no cell of it is kept as a measurement.
    let cells: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.path().join("load/t/cells.json")).unwrap())
            .unwrap();
    assert!(cells["cells"].as_array().unwrap().is_empty(), "{cells}");
    assert!(cells["partial"].as_str().unwrap().contains("SIGINT"));
}
