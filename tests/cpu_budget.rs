//! A CPU budget holds: a process spinning in a group of 0.25 cores uses
//! about a quarter of a core and is throttled. Where cgroups cannot be
//! written (not root, no cpu controller), the refusal is one clear line.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use statebench::host::cgroup::{Hierarchy, PERIOD};

/// A child that burns CPU until killed.
struct Spinner(Child);

impl Spinner {
    fn start() -> Self {
        Self(
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .expect("sh starts"),
        )
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cpu_time(pid: u32) -> Duration {
    statebench::host::proc::cpu_time(pid).expect("the spinner is alive")
}

#[test]
fn a_budget_holds_a_busy_process_to_its_share() {
    let hierarchy = match Hierarchy::detect() {
        Ok(h) => h,
        Err(e) => {
            // Not root, or no cpu controller: the fallback path is covered
            // by the next test; say why this one did not measure.
            let line = e.to_string();
            assert!(line.starts_with("CPU budgets unavailable: "), "{line}");
            assert!(!line.contains('\n'), "one line: {line}");
            eprintln!("skipped: {line}");
            return;
        }
    };
    let budget = hierarchy
        .budget("spinner", 0.25, PERIOD)
        .expect("a budget can be made once the hierarchy exists");
    assert!((budget.cpus() - 0.25).abs() < 1e-9);
    let spinner = Spinner::start();
    let pid = spinner.0.id();
    budget.add(pid).expect("the spinner joins its group");
    let before = budget.stat().expect("cpu.stat is readable");
    let cpu0 = cpu_time(pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_time(pid) - cpu0;
    let wall = t0.elapsed();
    let stat = budget.stat().expect("cpu.stat is readable").since(&before);
    drop(spinner);

    let share = used.as_secs_f64() / wall.as_secs_f64();
    eprintln!(
        "{}: 0.25-core budget, spinner used {share:.3} of a core; {stat:?}",
        budget.version()
    );
    // The kernel enforces the ceiling; the floor is loose because other
    // tests may be using both cores at the same time.
    assert!(
        share <= 0.25 * 1.10,
        "a 0.25-core budget let the spinner use {share:.3} of a core"
    );
    assert!(
        share >= 0.05,
        "the spinner barely ran: {share:.3} of a core"
    );
    assert!(
        stat.throttled > 0 && stat.periods >= stat.throttled,
        "a spinning process is throttled: {stat:?}"
    );
}

#[test]
fn asking_for_a_zero_or_negative_budget_is_refused() {
    let Ok(hierarchy) = Hierarchy::detect() else {
        return;
    };
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = hierarchy.budget("bad", bad, PERIOD).unwrap_err();
        assert!(e.to_string().contains("positive number of cores"), "{e}");
    }
}
