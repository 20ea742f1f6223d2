//! The micro-benchmark report's SVG charts.

use std::path::Path;

use super::{MicroData, algs, claims, sizes};
use crate::report::charts::{self, LineChart, Scale, Series};
use crate::session::memory::store_names;

pub(super) fn draw(
    data: &MicroData,
    out: &Path,
    caption: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let token_series: Vec<Series> = algs()
        .iter()
        .chain(["hmac-floor"].iter())
        .map(|alg| Series {
            name: alg.to_string(),
            points: claims()
                .iter()
                .filter_map(|c| {
                    let bytes =
                        data.token_bytes(if *alg == "hmac-floor" { "HS256" } else { alg }, c)?;
                    Some((
                        bytes as f64,
                        data.ns(&format!("token/verify/{alg}/{c}"))? / 1e3,
                    ))
                })
                .collect(),
        })
        .collect();
    charts::line_chart(
        &out.join("token_verify.svg"),
        &LineChart {
            title: "Token verify cost vs token size (carts of 0, 10, 100 items)",
            x_label: "token length (bytes)",
            y_label: "verify time (µs, median)",
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            caption,
        },
        &token_series,
    )?;

    let store_series: Vec<Series> = store_names()
        .iter()
        .chain(["hashmap-floor"].iter())
        .map(|store| Series {
            name: store.to_string(),
            points: sizes()
                .iter()
                .filter_map(|n| {
                    let ops = data
                        .get(&format!("session_map/get_hit/{store}/{n}"))?
                        .ops_per_sec()?;
                    Some((n.parse().ok()?, ops / 1e6))
                })
                .collect(),
        })
        .collect();
    charts::line_chart(
        &out.join("session_map.svg"),
        &LineChart {
            title: "Session lookup (get-hit) throughput vs live sessions, 1 thread",
            x_label: "live sessions",
            y_label: "million lookups per second",
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            caption,
        },
        &store_series,
    )?;

    let bars: Vec<(String, f64)> = data
        .figures
        .iter()
        .filter(|f| f.id.starts_with("request/"))
        .map(|f| (f.id.trim_start_matches("request/").to_owned(), f.median_ns))
        .collect();
    charts::bar_chart(
        &out.join("request.svg"),
        "Per-request cost through each Router (no network)",
        "ns per request (median)",
        caption,
        &bars,
    )?;
    Ok(())
}
