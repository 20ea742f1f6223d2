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

#[test]
fn a_budget_under_the_kernels_minimum_quota_gets_a_longer_period() {
    let Ok(hierarchy) = Hierarchy::detect() else {
        return;
    };
    // 0.05 cores in 10 ms would be a 0.5 ms quota, which the kernel
    // refuses: 1 ms every 20 ms is the same budget.
    let budget = hierarchy
        .budget("small", 0.05, Duration::from_millis(10))
        .expect("a budget");
    assert!((budget.cpus() - 0.05).abs() < 1e-9, "{}", budget.cpus());
    let (quota, period) = match budget.version() {
        statebench::host::cgroup::Version::V1 => (
            std::fs::read_to_string(budget.path().join("cpu.cfs_quota_us")).unwrap(),
            std::fs::read_to_string(budget.path().join("cpu.cfs_period_us")).unwrap(),
        ),
        statebench::host::cgroup::Version::V2 => {
            let max = std::fs::read_to_string(budget.path().join("cpu.max")).unwrap();
            let mut it = max.split_whitespace().map(str::to_owned);
            (it.next().unwrap(), it.next().unwrap())
        }
    };
    assert_eq!((quota.trim(), period.trim()), ("1000", "20000"));
}

#[test]
fn removing_the_hierarchy_leaves_no_group_behind() {
    let Ok(hierarchy) = Hierarchy::detect() else {
        return;
    };
    let budget = hierarchy.budget("held", 0.5, PERIOD).expect("a budget");
    let spinner = Spinner::start();
    budget
        .add(spinner.0.id())
        .expect("the spinner joins its group");
    let parent = budget.path().parent().expect("a parent group").to_owned();
    assert!(parent.exists());
    drop(budget);
    // The spinner is still running in its group.
    drop(hierarchy);
    assert!(
        !parent.exists(),
        "{} is left behind with a live process in it",
        parent.display()
    );
}

/// `compare`'s placement: with a writable controller every replica gets a
/// budget; without one (not root) it pins only, and says why in its line.
#[test]
fn the_placement_says_whether_budgets_apply() {
    use statebench::compare::budget::{BudgetOptions, Placement};
    let placement = Placement::new(BudgetOptions {
        replica_cpu: Some(0.2),
        store_cpu: None,
        generator_cpus: Vec::new(),
        period: None,
    });
    let placement = match placement {
        Ok(p) => p,
        // One core only: nothing left for the servers, said in one line.
        Err(e) => {
            let line = e.to_string();
            assert!(line.contains("leaves no core for the servers"), "{line}");
            return;
        }
    };
    let line = placement.describe().expect("a budget was asked for");
    assert!(!line.contains('\n'), "{line}");
    assert!(line.contains("0.2 cores per replica"), "{line}");
    match Hierarchy::detect() {
        Ok(_) => {
            assert!(placement.fallback().is_none(), "{line}");
            assert!(line.contains("cgroup v"), "{line}");
        }
        Err(_) => {
            let why = placement.fallback().expect("no hierarchy: a fallback");
            assert!(why.starts_with("CPU budgets unavailable: "), "{why}");
            assert!(
                line.contains("budgets not applied: CPU budgets unavailable: "),
                "{line}"
            );
        }
    }
    eprintln!("placement: {line}");
}

/// Run as root, the two tests above run again as `nobody`, who may not
/// write cgroups: both must take their fallback path and pass.
#[test]
fn without_root_budgets_fall_back_to_pinning() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: the tests above already ran without cgroups");
        return;
    }
    let exe = std::env::current_exe().expect("the test binary");
    // Every core again: the placement test pins this process to the
    // generator's core, and the child would inherit that.
    let cores = statebench::host::proc::cpu_count().unwrap_or(1);
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["taskset", "--cpu-list", &format!("0-{}", cores - 1)])
        .arg(&exe)
        .args([
            "a_budget_holds_a_busy_process_to_its_share",
            "the_placement_says_whether_budgets_apply",
            "--nocapture",
            "--test-threads=1",
        ])
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("setpriv (util-linux) is needed to run this test as nobody")
        }
        Err(e) => panic!("setpriv: {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "as nobody:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("2 passed"),
        "both tests ran as nobody:\n{stdout}"
    );
    assert!(
        stderr.contains("skipped: CPU budgets unavailable: ")
            && stderr.contains("budgets not applied: CPU budgets unavailable: "),
        "as nobody, budgets are refused in one line and the placement pins only:\n{stderr}"
    );
}
