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
    // (series name, benchmark id prefix, algorithm whose token sizes apply)
    let mut lines: Vec<(String, String, &str)> = algs()
        .into_iter()
        .map(|a| (a.to_string(), format!("token/verify/{a}"), a))
        .collect();
    lines.push((
        "HS256 jsonwebtoken::decode".into(),
        "token/verify-jsonwebtoken/HS256".into(),
        "HS256",
    ));
    lines.push((
        "HS256 floor".into(),
        "token/verify/hmac-floor".into(),
        "HS256",
    ));
    let token_series: Vec<Series> = lines
        .iter()
        .map(|(name, prefix, alg)| Series {
            name: name.clone(),
            points: claims()
                .iter()
                .filter_map(|c| {
                    let bytes = data.token_bytes(alg, c)?;
                    Some((bytes as f64, data.ns(&format!("{prefix}/{c}"))? / 1e3))
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
        .chain(super::FLOORS.iter())
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
