//! What `statebench vs` makes of its measurements: the median of each
//! row's rounds, the ratio to the server's own `/healthz`, the markdown
//! table and the throughput ratios to external servers.

use std::fmt::Write as _;

use super::{Row, VsResult};

/// The median of each figure over a job's rounds (errors are summed).
pub(super) fn median_row(mut rows: Vec<Row>) -> Option<Row> {
    fn median(mut v: Vec<f64>) -> Option<f64> {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2]),
            _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }
    let of = |f: &dyn Fn(&Row) -> Option<f64>| median(rows.iter().filter_map(f).collect());
    let per_sec = of(&|r| Some(r.per_sec))?;
    let server_cpu_us = of(&|r| r.server_cpu_us);
    let p50_ms = of(&|r| r.p50_ms);
    let p99_ms = of(&|r| r.p99_ms);
    let server_core_busy = of(&|r| r.server_core_busy);
    let generator_core_busy = of(&|r| r.generator_core_busy);
    let requests = rows.iter().map(|r| r.requests).sum();
    let seconds = rows.iter().map(|r| r.seconds).sum();
    let errors = rows.iter().map(|r| r.errors).sum();
    let mut row = rows.swap_remove(0);
    row.requests = requests;
    row.seconds = seconds;
    row.per_sec = per_sec;
    row.server_cpu_us = server_cpu_us;
    row.p50_ms = p50_ms;
    row.p99_ms = p99_ms;
    row.errors = errors;
    row.server_core_busy = server_core_busy;
    row.generator_core_busy = generator_core_busy;
    row.bound = bottleneck(server_core_busy, generator_core_busy);
    Some(row)
}

pub(super) fn bottleneck(server: Option<f64>, generator: Option<f64>) -> &'static str {
    match (server, generator) {
        (Some(s), _) if s >= 0.9 => "server",
        (_, Some(g)) if g >= 0.9 => "generator",
        _ => "neither",
    }
}

/// Each server's CPU per request relative to its own `/healthz`.
pub(super) fn relate_to_healthz(rows: &mut [Row]) {
    let healthz: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.route == "/healthz")
        .filter_map(|r| Some((r.server.clone(), r.server_cpu_us?)))
        .collect();
    // statebench's servers share one stack, so the stateless /healthz is
    // every statebench row's floor.
    let floor_of = |server: &str| {
        healthz
            .iter()
            .find(|(s, _)| {
                s == server || (server.starts_with("statebench") && s.starts_with("statebench"))
            })
            .map(|(_, us)| *us)
    };
    for r in rows.iter_mut() {
        if let (Some(us), Some(floor)) = (r.server_cpu_us, floor_of(&r.server)) {
            r.vs_healthz = Some(us / floor);
        }
    }
}

/// The table, as markdown.
pub fn table(result: &VsResult) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| server | route | req/s | server CPU µs/request | ÷ own /healthz | p50 | p99 | errors | busy: server core / generator core | bottleneck |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    let f = |v: Option<f64>, d: usize| v.map_or("–".to_owned(), |v| format!("{v:.d$}"));
    for r in &result.rows {
        let busy = match (r.server_core_busy, r.generator_core_busy) {
            (Some(s), Some(g)) => format!("{:.0}% / {:.0}%", s * 100.0, g * 100.0),
            _ => "–".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {} | {} | {} ms | {} ms | {} | {busy} | {}{} |",
            r.server,
            r.route,
            r.per_sec,
            f(r.server_cpu_us, 1),
            r.vs_healthz.map_or("–".into(), |v| format!("{v:.2}×")),
            f(r.p50_ms, 2),
            f(r.p99_ms, 2),
            r.errors,
            r.bound,
            r.note.as_ref().map_or(String::new(), |n| format!(" ({n})")),
        );
    }
    md
}

/// The hot-path targets, each with its figure and whether it was met:
/// stateless `/profile` at most 11.7 µs of server CPU and 1.15× `/healthz`,
/// stateful `/profile` at most 1.10× `/healthz`, and stateless `/profile`
/// at least 60× the throughput of each external server's `/profile` (the
/// goal set against the classic Express example).
pub fn targets(result: &VsResult) -> Vec<String> {
    let met = |ok: bool| if ok { "met" } else { "missed" };
    let row = |server: &str, route: &str| {
        result
            .rows
            .iter()
            .find(|r| r.server == server && r.route == route)
    };
    let mut out = Vec::new();
    let stateless = row("statebench stateless", "/profile");
    if let Some(us) = stateless.and_then(|r| r.server_cpu_us) {
        out.push(format!(
            "Stateless `/profile`: **{us:.1} µs** of server CPU per request (target ≤ 11.7 µs: {}).",
            met(us <= 11.7)
        ));
    }
    for (server, name, limit) in [
        ("statebench stateless", "Stateless", 1.15),
        ("statebench stateful", "Stateful", 1.10),
    ] {
        if let Some(r) = row(server, "/profile").and_then(|r| r.vs_healthz) {
            out.push(format!(
                "{name} `/profile`: **{r:.2}×** `/healthz` (target ≤ {limit:.2}×: {}).",
                met(r <= limit)
            ));
        }
    }
    if let Some(ours) = stateless {
        for ext in result
            .rows
            .iter()
            .filter(|r| !r.server.starts_with("statebench") && r.route == "/profile")
            .filter(|r| r.per_sec > 0.0)
        {
            let x = ours.per_sec / ext.per_sec;
            out.push(format!(
                "Stateless `/profile` throughput: **{x:.1}×** {}'s on one core (target ≥ 60× the classic Express example: {}).",
                ext.server,
                met(x >= 60.0)
            ));
        }
    }
    out
}

/// Throughput ratios of statebench's routes to each external server's same
/// route (the figure the README quotes).
pub fn ratios(result: &VsResult) -> Vec<String> {
    let mut out = Vec::new();
    let ours = |route: &str, server: &str| {
        result
            .rows
            .iter()
            .find(|r| r.server == server && r.route == route)
            .map(|r| r.per_sec)
    };
    for ext in result
        .rows
        .iter()
        .filter(|r| !r.server.starts_with("statebench"))
    {
        let mine = match ext.route.as_str() {
            "/profile" => ours("/profile", "statebench stateless"),
            "/login" => ours("/login", "statebench stateless"),
            _ => None,
        };
        if let Some(m) = mine
            && ext.per_sec > 0.0
        {
            out.push(format!(
                "statebench stateless {} serves {:.1}× the requests per second of {} {} on one core ({:.0} against {:.0}).",
                ext.route,
                m / ext.per_sec,
                ext.server,
                ext.route,
                m,
                ext.per_sec
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(per_sec: f64, cpu: f64) -> Row {
        Row {
            server: "statebench stateless".into(),
            route: "/profile".into(),
            requests: 1000,
            seconds: 1.0,
            per_sec,
            server_cpu_us: Some(cpu),
            vs_healthz: None,
            p50_ms: Some(1.0),
            p99_ms: None,
            errors: 1,
            server_core_busy: Some(0.95),
            generator_core_busy: Some(0.5),
            bound: "neither",
            note: None,
        }
    }

    #[test]
    fn an_odd_number_of_rounds_gives_the_middle_one() {
        let row = median_row(vec![round(3.0, 30.0), round(1.0, 10.0), round(2.0, 20.0)]).unwrap();
        assert_eq!((row.per_sec, row.server_cpu_us), (2.0, Some(20.0)));
        assert_eq!((row.requests, row.errors), (3000, 3));
        assert_eq!(row.p99_ms, None);
        assert_eq!(row.bound, "server");
    }

    #[test]
    fn targets_are_judged_on_the_rows() {
        let mut healthz = round(80_000.0, 10.0);
        healthz.route = "/healthz".into();
        let stateless = round(60_000.0, 11.0);
        let mut stateful = round(70_000.0, 12.0);
        stateful.server = "statebench stateful".into();
        let mut express = round(900.0, 1000.0);
        express.server = "express".into();
        let mut rows = vec![healthz, stateless, stateful, express];
        relate_to_healthz(&mut rows);
        let result = VsResult {
            connections: 64,
            seconds_per_route: 5.0,
            rounds: 3,
            server_core: 0,
            generator_core: 1,
            rows,
        };
        let lines = targets(&result);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[0].contains("11.0 µs") && lines[0].ends_with("met)."));
        assert!(lines[1].contains("1.10×") && lines[1].ends_with("met)."));
        assert!(lines[2].contains("1.20×") && lines[2].ends_with("missed)."));
        assert!(lines[3].contains("66.7×") && lines[3].contains("express"));
    }

    #[test]
    fn an_even_number_of_rounds_gives_the_mean_of_the_middle_two() {
        let row = median_row(vec![round(4.0, 12.0), round(1.0, 10.0)]).unwrap();
        assert_eq!((row.per_sec, row.server_cpu_us), (2.5, Some(11.0)));
        assert!(median_row(Vec::new()).is_none());
    }
}
