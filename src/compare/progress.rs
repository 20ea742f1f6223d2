//! What a comparison shows while it runs: a live bar with the elapsed time
//! and an ETA on a terminal, and one line per cell above it (plain lines,
//! each with the elapsed time and ETA, when stderr is not a terminal).

use indicatif::{HumanDuration, ProgressBar, ProgressState, ProgressStyle};

use super::cell::Cell;

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar for a run planned to take `planned_secs`.
    pub fn new(planned_secs: u64) -> Self {
        let bar = ProgressBar::new(planned_secs).with_style(
            ProgressStyle::with_template(
                "[{elapsed_precise}] {bar:30} {percent:>3}% ETA {eta:>4} {msg}",
            )
            .expect("progress template")
            // No ETA before the first cell ends (indicatif would say 0s).
            .with_key("eta", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = if s.pos() == 0 {
                    w.write_str("?")
                } else {
                    write!(w, "{:#}", HumanDuration(s.eta()))
                };
            }),
        );
        // Redrawn every second, so the elapsed time moves during a long
        // cell (an autoscaling ramp runs for most of a minute).
        bar.enable_steady_tick(std::time::Duration::from_secs(1));
        Self { bar }
    }

    /// A line above the live bar on a terminal, or a plain line elsewhere;
    /// either way it carries the elapsed time and the ETA.
    pub fn say(&self, line: String) {
        let (done, total) = (self.bar.position(), self.bar.length().unwrap_or(0));
        let elapsed = self.bar.elapsed().as_secs();
        let eta = (elapsed * total.saturating_sub(done))
            .checked_div(done)
            .map_or("?".into(), |s| format!("{s} s"));
        let line = format!("[{elapsed:>5} s, ETA {eta:>6}] {line}");
        if self.bar.is_hidden() {
            crate::stop::eprintln(&line);
        } else {
            self.bar.println(line);
        }
    }

    /// A cell starts: its id next to the bar.
    pub fn begin(&self, what: &str) {
        self.bar.set_message(what.to_owned());
    }

    /// `secs` of the plan are done.
    pub fn advance(&self, secs: u64) {
        self.bar.inc(secs);
        self.bar.set_message("");
    }

    /// The line a measured cell gets.
    pub fn cell(&self, cell: &Cell) {
        let p99 = cell.p99_us.map_or("-".into(), |v| format!("{v} µs"));
        let cpu = cell
            .server_cpu_us_per_request
            .map_or("-".into(), |v| format!("{v:.1} µs CPU/req"));
        let mut line = format!(
            "  {:<48} {:>9.0} req/s  p99 {:>9}  {}",
            cell.id, cell.achieved_rps, p99, cpu
        );
        if cell.failures > 0 {
            line.push_str(&format!("  {} failed", cell.failures));
        }
        if !cell.valid {
            line.push_str("  INVALID");
        }
        self.say(line);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
