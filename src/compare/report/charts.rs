//! The report's SVG charts (drawn with plotters through
//! [`crate::report::charts`]), each from typed lookups of the cells.

use std::path::Path;

use super::Cells;
use crate::compare::Matrix;
use crate::compare::cell::{Balancer, Event};
use crate::compare::matrices::EQUAL_RATE;
use crate::loadtests::Policy;
use crate::report::charts::{self, LineChart, Panel, Scale, Series, Timelines};

type DrawResult = Result<Vec<String>, Box<dyn std::error::Error>>;

/// Draws every chart the run has data for; returns their file names.
pub fn draw(cells: Cells, dir: &Path, caption: &str) -> DrawResult {
    let mut drawn = Vec::new();
    let servers = cells.servers(Matrix::Concurrency);
    let series: Vec<Series> = servers
        .iter()
        .map(|s| Series {
            name: s.label(),
            points: cells
                .closed_loop(*s)
                .filter_map(|c| Some((c.users as f64, c.p99_us? as f64)))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if !series.is_empty() {
        charts::line_chart(
            &dir.join("latency_vs_users.svg"),
            &LineChart {
                title: "p99 latency vs concurrent users (closed loop, 1 replica)",
                x_label: "users",
                y_label: "p99 µs",
                x_scale: Scale::Log,
                y_scale: Scale::Log,
                caption,
            },
            &series,
        )?;
        drawn.push("latency_vs_users.svg".into());
    }
    let bars: Vec<(String, f64)> = servers
        .iter()
        .filter_map(|s| Some((s.label(), cells.cpu(*s)?)))
        .collect();
    if !bars.is_empty() {
        charts::bar_chart(
            &dir.join("cpu_per_request.svg"),
            &format!(
                "Server CPU per request at {} req/s offered (µs, from /proc)",
                EQUAL_RATE
            ),
            "µs of CPU per request",
            caption,
            &bars,
        )?;
        drawn.push("cpu_per_request.svg".into());
    }
    let bars: Vec<(String, f64)> = cells
        .of(Matrix::Horizontal)
        .filter(|c| c.replicas > 1)
        .map(|c| {
            (
                format!(
                    "{} · {} · {} · {} replicas",
                    c.server,
                    c.balancer.map_or("", Balancer::name),
                    c.policy.map_or("", Policy::name),
                    c.replicas
                ),
                c.miss_rate * 100.0,
            )
        })
        .collect();
    if !bars.is_empty() {
        charts::bar_chart(
            &dir.join("miss_rate.svg"),
            "Session-miss rate (% of /profile answered 403)",
            "% of requests",
            caption,
            &bars,
        )?;
        drawn.push("miss_rate.svg".into());
    }
    let bars: Vec<(String, f64)> = cells
        .of(Matrix::Failures)
        .map(|c| {
            (
                format!(
                    "{} · {} · {}",
                    c.server,
                    c.policy.map_or("", Policy::name),
                    c.event.map_or("", Event::name)
                ),
                c.sessions_lost as f64,
            )
        })
        .collect();
    if !bars.is_empty() {
        charts::bar_chart(
            &dir.join("sessions_lost.svg"),
            "Sessions lost (users forced to log in again), 3 replicas",
            "sessions",
            caption,
            &bars,
        )?;
        drawn.push("sessions_lost.svg".into());
    }
    let sizes = cells.servers(Matrix::StateSize);
    let series: Vec<Series> = sizes
        .iter()
        .map(|s| Series {
            name: s.label(),
            points: cells
                .of(Matrix::StateSize)
                .filter(|c| c.server == *s)
                .filter_map(|c| Some((c.cart_items? as f64, c.bytes_per_request?)))
                .collect(),
        })
        .collect();
    if series.iter().any(|s| !s.points.is_empty()) {
        charts::line_chart(
            &dir.join("bytes_per_request.svg"),
            &LineChart {
                title: "Credential + body bytes per request vs cart size",
                x_label: "items in the cart",
                y_label: "bytes",
                x_scale: Scale::Linear,
                y_scale: Scale::Linear,
                caption,
            },
            &series,
        )?;
        drawn.push("bytes_per_request.svg".into());
    }
    let points: Vec<(f64, f64)> = cells
        .of(Matrix::Websocket)
        .filter_map(|c| Some((c.connections? as f64, c.rss_per_connection? / 1024.0)))
        .collect();
    if !points.is_empty() {
        charts::line_chart(
            &dir.join("ws_rss_per_connection.svg"),
            &LineChart {
                title: "Server RSS per idle WebSocket connection",
                x_label: "connections",
                y_label: "KiB per connection",
                x_scale: Scale::Log,
                y_scale: Scale::Linear,
                caption,
            },
            &[Series {
                name: "ws server".into(),
                points,
            }],
        )?;
        drawn.push("ws_rss_per_connection.svg".into());
    }
    let bars: Vec<(String, f64)> = cells
        .of(Matrix::Websocket)
        .filter_map(|c| {
            let name = if c.backplane? {
                "Redis backplane"
            } else {
                "no backplane"
            };
            Some((format!("2 replicas, {name}"), c.delivery_ratio? * 100.0))
        })
        .collect();
    if !bars.is_empty() {
        charts::bar_chart(
            &dir.join("chat_delivery.svg"),
            "Chat delivery ratio across 2 replicas (%)",
            "% of messages delivered",
            caption,
            &bars,
        )?;
        drawn.push("chat_delivery.svg".into());
    }
    let cases = cells.capacity_cases();
    let mut series = Vec::new();
    for (server, policy) in cases {
        let name = format!("{server} · {}", policy.name());
        let measured: Vec<(f64, f64)> = cells
            .of(Matrix::Capacity)
            .filter(|c| c.server == server && c.policy == Some(policy) && c.valid)
            .filter_map(|c| Some((c.replicas as f64, c.capacity_rps?)))
            .collect();
        let Some(one) = cells
            .capacity(server, policy, 1)
            .filter(|c| c.valid)
            .and_then(|c| c.capacity_rps)
        else {
            continue;
        };
        let ideal = measured.iter().map(|&(n, _)| (n, n * one)).collect();
        series.push(Series {
            name: name.clone(),
            points: measured,
        });
        series.push(Series {
            name: format!("{name} (ideal: n × one replica)"),
            points: ideal,
        });
    }
    if series.iter().any(|s| s.points.len() > 1) {
        charts::line_chart(
            &dir.join("capacity_vs_replicas.svg"),
            &LineChart {
                title: "Capacity at the p99 SLO vs replicas (each replica under the same CPU budget)",
                x_label: "replicas",
                y_label: "requests/s within the SLO",
                x_scale: Scale::Linear,
                y_scale: Scale::Linear,
                caption,
            },
            &series,
        )?;
        drawn.push("capacity_vs_replicas.svg".into());
    }
    let panels: Vec<Panel> = cells
        .of(Matrix::Autoscale)
        .filter_map(|c| {
            let a = c.autoscale.as_deref()?;
            Some(Panel {
                title: format!(
                    "{} · {} ({:.0} → {:.0} → {:.0} req/s offered)",
                    c.server,
                    c.policy.map_or("", Policy::name),
                    a.low_rps,
                    a.high_rps,
                    a.low_rps
                ),
                // Each second's p99 at its middle.
                left: a
                    .seconds
                    .iter()
                    .filter_map(|s| Some((f64::from(s.t) + 0.5, s.p99_us? as f64 / 1e3)))
                    .collect(),
                right: a
                    .trace
                    .ticks
                    .iter()
                    .map(|t| (t.t, t.replicas as f64))
                    .collect(),
                limit: c.slo_p99_us.map(|us| us as f64 / 1e3),
            })
        })
        .collect();
    if !panels.is_empty() {
        charts::timeline_panels(
            &dir.join("autoscale.svg"),
            &Timelines {
                title: "Autoscaling a load ramp: replicas and p99, second by second",
                x_label: "seconds",
                left_label: "p99 ms (log)",
                right_label: "replicas",
                limit_label: "p99 SLO",
                caption,
            },
            &panels,
        )?;
        drawn.push("autoscale.svg".into());
    }
    Ok(drawn)
}
