//! The report's per-matrix sections: each a heading and introduction, its
//! charts, the legend above its table, its columns, and a cell as a row.

use super::pct;
use crate::compare::Matrix;
use crate::compare::cell::{Balancer, Cell, Event};
use crate::compare::matrices::SCALE_USERS;
use crate::loadtests::Policy;

pub(super) fn us(v: Option<u64>) -> String {
    v.map_or("–".into(), |v| v.to_string())
}

pub(super) fn f1(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}

/// One matrix's section of the report: its heading and introduction, its
/// charts, the legend above its table, the columns, and a cell as a row.
pub(super) struct Section {
    pub(super) matrix: Matrix,
    pub(super) intro: fn() -> String,
    pub(super) charts: &'static [(&'static str, &'static str)],
    pub(super) legend: &'static str,
    pub(super) columns: &'static [&'static str],
    pub(super) row: fn(&Cell) -> Vec<String>,
}

/// The sections, in the order of the matrices.
pub(super) fn sections() -> [Section; 7] {
    [
        Section {
            matrix: Matrix::Concurrency,
            intro: || {
                "## 1. Concurrency\n\nClosed loop (no think time), one replica; fixed-rate rows are at a fraction of the peak measured just before.\n".into()
            },
            charts: &[
                ("latency_vs_users.svg", "p99 latency vs users"),
                ("cpu_per_request.svg", "server CPU per request"),
            ],
            legend: "*server*: which server and route; *offered*: the fixed rate asked for (or closed loop); *achieved*: answered requests per second of the run's own clock; *p50…max*: latency of the main request, µs; *server CPU µs/req*: user+system CPU of the server process ÷ answered requests; *+ Redis*: Redis's own CPU on top; *cores*: CPU seconds ÷ wall seconds; *errors*: failed requests by kind (HTTP status, `connect`, `reset`, `timeout`, `ws close <code>`), 0 when none failed.",
            columns: &[
                "server",
                "users",
                "offered req/s",
                "achieved req/s",
                "p50 µs",
                "p90 µs",
                "p99 µs",
                "p99.9 µs",
                "max µs",
                "server CPU µs/req",
                "+ Redis µs/req",
                "server cores",
                "generator cores",
                "errors",
                "notes",
            ],
            row: |c| {
                vec![
                    c.server.label(),
                    c.users.to_string(),
                    c.offered_rps
                        .map_or("closed loop".into(), |r| format!("{r:.0}")),
                    format!("{:.0}", c.achieved_rps),
                    us(c.p50_us),
                    us(c.p90_us),
                    us(c.p99_us),
                    us(c.p999_us),
                    us(c.max_us),
                    f1(c.server_cpu_us_per_request),
                    f1(c.store_cpu_us_per_request),
                    c.server_cpu_cores.map_or("–".into(), |v| format!("{v:.2}")),
                    format!("{:.2}", c.generator_cpu_cores),
                    errors(c),
                    notes(c),
                ]
            },
        },
        Section {
            matrix: Matrix::Horizontal,
            intro: || {
                format!(
                    "\n## 2. Horizontal scaling and routing\n\n{SCALE_USERS} users log in once and loop `/profile`. A miss is a 403 after a successful login (the session is not on the replica the request reached); the user then logs in again.\n"
                )
            },
            charts: &[("miss_rate.svg", "session-miss rate by routing policy")],
            legend: "*success*: requests answered below 400 ÷ all requests; *miss rate*: share of `/profile` answered 403 (session not on that replica); *requests per replica*: what the balancer sent to each; *req/s*, *p50*, *p99*: the main request; *server CPU µs/req*: all replicas' CPU ÷ answered requests.",
            columns: &[
                "server",
                "balancer",
                "policy",
                "replicas",
                "success",
                "miss rate",
                "requests per replica",
                "req/s",
                "p50 µs",
                "p99 µs",
                "server CPU µs/req",
                "notes",
            ],
            row: |c| {
                let ok = 1.0 - c.failures as f64 / c.requests.max(1) as f64;
                vec![
                    c.server.label(),
                    c.balancer.map_or("", Balancer::name).into(),
                    c.policy.map_or("", Policy::name).into(),
                    c.replicas.to_string(),
                    pct(ok),
                    pct(c.miss_rate),
                    c.routed
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(" / "),
                    format!("{:.0}", c.achieved_rps),
                    us(c.p50_us),
                    us(c.p99_us),
                    f1(c.server_cpu_us_per_request),
                    notes(c),
                ]
            },
        },
        Section {
            matrix: Matrix::Failures,
            intro: || {
                "\n## 3. Failures and elasticity\n\nThree replicas; a third of the way in, one is SIGKILLed (`kill`), a fourth is added (`add`), each is drained, SIGTERMed and restarted in turn (`rolling-restart`), or one is drained and stopped for good (`scale-down`, as an autoscaler does). A refused connection takes a replica out of the embedded balancer's rotation. As HAProxy with `retry-on conn-failure empty-response` and `option redispatch`, the balancer sends a request once more, to another replica, after a refused connection, or after a reset or empty answer to a `GET` (`--retries 0` turns this off). *Sessions lost* counts users forced to log in again; *recovery* is the time from the event to the last failed or session-less request.\n".into()
            },
            charts: &[("sessions_lost.svg", "sessions lost per failure type")],
            legend: "*requests*: every attempt of the run; *lost*: requests whose user saw them fail; *retried*: failed attempts sent again to another replica (the user did not see them); *errors*: failed attempts by kind (they add up to *lost* + *retried*); *sessions lost*: users that had to log in again; *held*: the in-memory sessions the removed replica held just before it went; *recovery ms*: event to the last failed or session-less request; *remapped*: share of users the hash ring moved; *p99*: the main request.",
            columns: &[
                "server",
                "policy",
                "event",
                "requests",
                "lost",
                "retried",
                "errors",
                "sessions lost",
                "held",
                "recovery ms",
                "remapped by the hash ring",
                "p99 µs",
            ],
            row: |c| {
                vec![
                    c.server.label(),
                    c.policy.map_or("", Policy::name).into(),
                    c.event.map_or("", Event::name).into(),
                    c.requests.to_string(),
                    c.lost().to_string(),
                    c.retried.to_string(),
                    errors(c),
                    c.sessions_lost.to_string(),
                    c.sessions_on_removed.map_or("–".into(), |n| n.to_string()),
                    f1(c.recovery_ms),
                    c.remapped_fraction.map_or("–".into(), pct),
                    us(c.p99_us),
                ]
            },
        },
        Section {
            matrix: Matrix::StateSize,
            intro: || {
                "\n## 4. State size\n\nThe cart scenario: add items one by one up to N, reading `/cart` after each. Bytes are what the client sends as credential and body (the `Authorization` token, or the `sid` cookie, plus the JSON body).\n".into()
            },
            charts: &[("bytes_per_request.svg", "bytes per request vs cart size")],
            legend: "*cart items*: the cart size each user builds; *bytes/request*: credential + body bytes the client sent, averaged over requests; *req/s*, *p50*, *p99*: `GET /cart`; *server CPU µs/req*: server CPU ÷ answered requests.",
            columns: &[
                "server",
                "cart items",
                "bytes/request",
                "req/s",
                "p50 µs",
                "p99 µs",
                "server CPU µs/req",
            ],
            row: |c| {
                vec![
                    c.server.label(),
                    c.cart_items.unwrap_or(0).to_string(),
                    c.bytes_per_request
                        .map_or("–".into(), |b| format!("{b:.0}")),
                    format!("{:.0}", c.achieved_rps),
                    us(c.p50_us),
                    us(c.p99_us),
                    f1(c.server_cpu_us_per_request),
                ]
            },
        },
        Section {
            matrix: Matrix::Websocket,
            intro: || {
                "\n## 5. WebSocket\n\nIdle connections held by one server (RSS growth divided by connections), then chat rooms of 4 members spread over 2 replicas round-robin, without and with the Redis backplane.\n".into()
            },
            charts: &[
                ("ws_rss_per_connection.svg", "RSS per WebSocket connection"),
                ("chat_delivery.svg", "chat delivery ratio"),
            ],
            legend: "*connections*: idle connections held (or chat users); *RSS*: resident memory of each replica after opening them; *RSS per connection*: growth ÷ connections; *delivery ratio*: chat messages received ÷ messages that should have been; *fan-out p50/p99*: send to receipt by another member, µs.",
            columns: &[
                "cell",
                "connections",
                "RSS",
                "RSS per connection",
                "delivery ratio",
                "fan-out p50 µs",
                "fan-out p99 µs",
            ],
            row: |c| {
                vec![
                    c.id.clone(),
                    c.connections.map_or(c.users.to_string(), |n| n.to_string()),
                    c.rss_bytes
                        .iter()
                        .map(|b| format!("{:.1} MiB", *b as f64 / 1048576.0))
                        .collect::<Vec<_>>()
                        .join(" / "),
                    c.rss_per_connection
                        .map_or("–".into(), |b| format!("{:.1} KiB", b / 1024.0)),
                    c.delivery_ratio.map_or("–".into(), pct),
                    us(c.p50_us),
                    us(c.p99_us),
                ]
            },
        },
        Section {
            matrix: Matrix::Capacity,
            intro: || {
                use crate::compare::matrices::capacity::{
                    FULL_STEPS, MAX_REPEATS, QUICK_STEPS, SPARE_ROUNDS, verdict,
                };
                format!(
                    "\n## 6. Capacity vs replicas\n\nEach replica runs under the same CPU budget (a cgroup quota, with one runtime worker per core of budget), Redis under its own (each master of the Redis Cluster too), and the load generator on a core of its own, so that a replica adds capacity instead of contention. A process that runs out of its quota waits for the rest of the period (the placement line gives both): the default period puts that wait past the default SLO, not just under it, where a replica throttled in most periods served its queue in one batch with a p99 on either side of the SLO by chance. Stateful Redis also runs on eight replicas where eight replica budgets and Redis's fit in the servers' cores: so that the curve goes past the one Redis's ceiling, which a replica's budget reaches somewhere between two and four replicas. Fixed-rate steps offer Poisson arrivals at the step's mean rate, from one user per 64 ms of the rate (at least 32, at most 128 per replica), so that every replica count offers the same open load per replica. Each request goes at its own send time, to within {group} µs (a timerfd), not on the whole-millisecond ticks of the runtime's timer: on ticks, a replica received two or three requests at once and served them for less CPU each, in bursts that grew smaller as the generator got busier, so one replica alone was served cheaper bursts than each of four. Designs that need no affinity (stateless, the Redis stores) are routed per connection, as by an L4 balancer: per request, every user would hold a connection to every replica. Capacity is the highest rate served with p99 under the SLO and under 0.1% errors: a closed-loop probe finds the peak, then fixed-rate steps close in on the boundary: the first at {first:.0}% of the peak (capacity under these budgets sat at a fifth to two fifths of it), then up or down by a factor of {ratio:.2} until one step has met the SLO and another missed it, then each in the middle between the highest rate that met it and the lowest that did not. A step whose p99 came within a third of the SLO, or that missed by its p99 alone while its busiest budgeted process used under {again:.0}% of its budget (a design held back by a budget uses nearly all of it), is run again for twice as long, and that run decides (at most {repeats} per replica count); a miss that still used under {unsat:.0}% of every budget, or during which the hypervisor took {stolen:.0}% or more of the machine's CPU time (`steal`), is set aside, and its rate tried again on the next round, up to {spare} spare rounds per replica count (after them every step decides): the host only adds latency, so a step that met the SLO while time was stolen met it. `--quick`'s {quick} fixed-rate steps move by a factor of {quick_ratio:.2}, so that they too reach down to {floor:.0}% of the peak, and run nothing again. A budget's use is read from the processes' own CPU time while requests were in flight (goose's start-up and shut-down left out: on four replicas they made a 3-second step last 4.6 s), not from the quota's throttled periods: while the hypervisor took CPU time away, a replica was seen throttled in 98% of its periods while its own CPU time came to two fifths of its budget. *Efficiency* is capacity(n) ÷ (n × capacity(1)); 1.0 is perfect scale-out. A cell is invalid, and not plotted, when its load generator ran out of CPU in a step above capacity that missed the SLO (the generator could have been the limit): it used 90% of its cores or more and, in a fixed-rate step, sent {late_share:.0}% of its requests or more over {late_ms} ms after their send times.\n",
                    group = crate::loadtests::wake::GROUP.as_micros(),
                    again = verdict::RUN_AGAIN_UNDER * 100.0,
                    repeats = MAX_REPEATS,
                    unsat = verdict::UNSATURATED * 100.0,
                    stolen = verdict::STOLEN * 100.0,
                    spare = SPARE_ROUNDS,
                    quick = QUICK_STEPS,
                    first = crate::compare::matrices::capacity::FIRST_SHARE * 100.0,
                    ratio = crate::compare::matrices::capacity::ratio(FULL_STEPS),
                    quick_ratio = crate::compare::matrices::capacity::ratio(QUICK_STEPS),
                    floor = crate::compare::matrices::capacity::FLOOR_SHARE * 100.0,
                    late_share = crate::loadtests::pacer::LATE_SHARE * 100.0,
                    late_ms = crate::loadtests::pacer::LATE.as_millis(),
                )
            },
            charts: &[("capacity_vs_replicas.svg", "capacity vs replicas")],
            legend: "*capacity*: requests/s served at the highest step that met the SLO; *efficiency*: capacity ÷ (replicas × capacity of one); *closed-loop peak*: requests/s served with every user sending again as soon as answered, whatever the p99 (the search's first step), and the same ratio for it; *p99*: at capacity; *server CPU µs/req*: all replicas' CPU ÷ answered requests at capacity; *Redis CPU*: Redis's share, and the cores it used of its budget; *budget used*: the busiest budgeted process's CPU ÷ its budget, at capacity (replicas split by their routed requests; near 100% when a budget was the limit); *throttled*: share of quota periods in which a budgeted process ran out of quota, at capacity; *steps*: loads run (met the SLO).",
            columns: &[
                "server",
                "policy",
                "replicas",
                "capacity req/s",
                "efficiency",
                "closed-loop peak req/s (efficiency)",
                "p99 µs",
                "server CPU µs/req",
                "Redis CPU",
                "budget used",
                "throttled",
                "steps",
                "notes",
            ],
            row: |c| {
                vec![
                    c.server.label(),
                    c.policy.map_or("", Policy::name).into(),
                    c.replicas.to_string(),
                    c.capacity_rps.map_or("–".into(), |v| format!("{v:.0}")),
                    c.scaling_efficiency
                        .map_or("–".into(), |e| format!("{e:.2}")),
                    match (
                        crate::compare::matrices::capacity::verdict::peak_rps(c),
                        c.peak_efficiency,
                    ) {
                        (Some(p), Some(e)) => format!("{p:.0} ({e:.2})"),
                        (Some(p), None) => format!("{p:.0}"),
                        _ => "–".into(),
                    },
                    us(c.p99_us),
                    f1(c.server_cpu_us_per_request),
                    match (c.store_cpu_us_per_request, c.store_cpu_cores) {
                        (Some(us), Some(cores)) => format!("{us:.1} µs/req, {cores:.2} cores"),
                        _ => "–".into(),
                    },
                    crate::compare::contention::budget_used(c).map_or("–".into(), pct),
                    match (c.throttled_periods, c.quota_periods) {
                        (Some(t), Some(p)) if p > 0 => pct(t as f64 / p as f64),
                        _ => "–".into(),
                    },
                    format!(
                        "{} ({})",
                        c.steps.len(),
                        c.steps.iter().filter(|s| s.met_slo).count()
                    ),
                    notes(c),
                ]
            },
        },
        Section {
            matrix: Matrix::Autoscale,
            intro: || {
                "\n## 7. Autoscaling\n\nEach design starts on one replica under the capacity matrix's CPU budget. A goose test plan ramps the users from low to high and back; each user sends Poisson arrivals at a fixed mean rate, so the offered load follows the users, from a fifth of one replica's closed-loop peak (measured just before) to one and a half times it. An autoscaler reads every replica's CPU each second and applies the Kubernetes HPA rule, desired = ceil(replicas × mean utilisation ÷ 60%), with a 10% tolerance, at most doubling per second, a 5-second stabilisation window before scaling down, and 1 to 8 replicas. A new replica joins the rotation once it listens, and is left out of the mean for its first second; a removed one is the newest, drained for 500 ms, then stopped gracefully.\n".into()
            },
            charts: &[("autoscale.svg", "replicas and p99 over time")],
            legend: "*ramp*: offered req/s at the bottom → top of the ramp; *replicas*: most at once, and at the end; *scale events*: up / down; *p99*: over the whole ramp, and the worst second's; *seconds over SLO*: seconds whose p99 missed the SLO or that had failures; *absorbed in*: from the start of the climb to the end of the last second before the fall that missed the SLO or had failures (0 s: none did; – : the 3 seconds before the fall still missed); *lost*: requests users saw fail; *sessions on removed*: sessions the replicas removed by scale-downs held just before (in-memory stores; 0 where the design keeps none on the replica); *re-logins*: users whose session was gone.",
            columns: &[
                "server",
                "policy",
                "ramp req/s",
                "replicas",
                "scale events",
                "p99 µs",
                "worst second p99 µs",
                "seconds over SLO",
                "absorbed in",
                "lost",
                "sessions on removed",
                "re-logins",
                "notes",
            ],
            row: |c| {
                let Some(a) = c.autoscale.as_deref() else {
                    return vec![c.server.label()];
                };
                let slo = c.slo_p99_us.unwrap_or(u64::MAX);
                let over = a
                    .seconds
                    .iter()
                    .filter(|s| s.failed > 0 || s.p99_us.is_some_and(|p| p > slo))
                    .count();
                vec![
                    c.server.label(),
                    c.policy.map_or("", Policy::name).into(),
                    format!("{:.0} → {:.0}", a.low_rps, a.high_rps),
                    format!(
                        "{} max, {} at the end",
                        a.trace.peak_replicas(),
                        a.trace.ticks.last().map_or(0, |t| t.replicas)
                    ),
                    format!("{} up, {} down", a.trace.scale_ups(), a.trace.scale_downs()),
                    us(c.p99_us),
                    us(a.seconds.iter().filter_map(|s| s.p99_us).max()),
                    format!("{over} of {}", a.seconds.len()),
                    a.absorb_secs(slo)
                        .map_or("–".into(), |s| format!("{s:.0} s")),
                    c.lost().to_string(),
                    c.sessions_on_removed.unwrap_or(0).to_string(),
                    c.sessions_lost.to_string(),
                    notes(c),
                ]
            },
        },
    ]
}

pub(super) fn errors(c: &Cell) -> String {
    if c.errors.is_empty() {
        return "0".into();
    }
    c.errors
        .iter()
        .map(|(k, v)| format!("{v}× {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn notes(c: &Cell) -> String {
    let mut n = Vec::new();
    if c.generator_bound {
        n.push("generator-bound".to_string());
    }
    if !c.valid {
        n.push("INVALID".into());
    }
    n.extend(
        c.notes
            .iter()
            .filter(|s| !s.starts_with("invalid"))
            .cloned(),
    );
    n.join("; ")
}
