//! The headline findings of a micro-benchmark run: each a ratio of two
//! figures measured in the same run, never a figure against a fixed number.

use super::{MicroData, fmt_ns, sizes};
use crate::session::memory::store_names;

/// How a finding states a target.
fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "missed" }
}

/// Headline findings computed from the figures (never typed in by hand).
pub fn findings(data: &MicroData) -> Vec<String> {
    let mut out = Vec::new();
    let ns = |id: &str| data.ns(id);
    if let (Some(v), Some(f)) = (
        ns("token/verify/HS256/cart-0"),
        ns("token/verify/hmac-floor/cart-0"),
    ) {
        let mut line = format!(
            "An HS256 verify costs {} for the default user's token: {:.2}× the floor of a minimal verify on the same aws-lc-rs HMAC ({}; target ≤ 1.5×: {}).",
            fmt_ns(v),
            v / f,
            fmt_ns(f),
            met(v / f <= 1.5)
        );
        if let Some(j) = ns("token/verify-jsonwebtoken/HS256/cart-0") {
            line += &format!(
                " `jsonwebtoken::decode` with the same rules, as most services call it, costs {} ({:.1}× the floor).",
                fmt_ns(j),
                j / f
            );
        }
        out.push(line);
    }
    let asym: Vec<String> = ["RS256", "ES256", "EdDSA"]
        .iter()
        .filter_map(|a| {
            let v = ns(&format!("token/verify/{a}/cart-0"))?;
            let f = ns(&format!("token/verify/{}-floor/cart-0", a.to_lowercase()))?;
            Some(format!(
                "{a} {} ({:.2}× its floor of {}: {})",
                fmt_ns(v),
                v / f,
                fmt_ns(f),
                met(v / f <= 1.2)
            ))
        })
        .collect();
    if !asym.is_empty() {
        out.push(format!(
            "Asymmetric verify with the public key parsed once (default user; target ≤ 1.2× the floor): {}.",
            asym.join(", ")
        ));
    }
    let big = sizes().last().cloned().unwrap_or_else(|| "1000000".into());
    if let (Some(v), Some(g)) = (
        ns("token/verify/HS256/cart-0"),
        ns(&format!("session_map/get_hit/dashmap/{big}")),
    ) {
        out.push(format!(
            "One HS256 verify costs as much as {:.0} session lookups in the default store at {} sessions ({} each).",
            v / g,
            big,
            fmt_ns(g)
        ));
    }
    if let (Some(b0), Some(b100), Some(v0), Some(v100)) = (
        data.token_bytes("HS256", "cart-0"),
        data.token_bytes("HS256", "cart-100"),
        ns("token/verify/HS256/cart-0"),
        ns("token/verify/HS256/cart-100"),
    ) {
        out.push(format!(
            "State in the token is paid on every request: a 100-item cart grows the HS256 token from {b0} to {b100} bytes and its verify from {} to {}.",
            fmt_ns(v0),
            fmt_ns(v100)
        ));
    }
    if let Some(t) = ns("token/verify/HS256/tampered") {
        out.push(format!(
            "Refusing a forged HS256 token costs the server {}.",
            fmt_ns(t)
        ));
    }
    if let (Some(g), Some(floor)) = (
        ns(&format!("session_map/get_hit/dashmap/{big}")),
        ns(&format!("session_map/get_hit/hashmap-floor/{big}")),
    ) {
        let verdict = if g <= 100.0 { "meets" } else { "misses" };
        let boxed = ns(&format!("session_map/get_hit/boxed-floor/{big}"))
            .map(|b| {
                format!(
                    ", or {} with the sessions boxed as the stores hold them",
                    fmt_ns(b)
                )
            })
            .unwrap_or_default();
        out.push(format!(
            "Default store (dashmap) get-hit at {big} sessions, 1 thread: {} ({verdict} the 100 ns target); an unlocked single-threaded HashMap does {}{boxed}.",
            fmt_ns(g),
            fmt_ns(floor)
        ));
    }
    if let (Some(g), Some(floor), Some(boxed)) = (
        ns(&format!("session_map/get_hit_chained/dashmap/{big}")),
        ns(&format!("session_map/get_hit_chained/hashmap-floor/{big}")),
        ns(&format!("session_map/get_hit_chained/boxed-floor/{big}")),
    ) {
        out.push(format!(
            "One lookup's latency at {big} sessions (each key waits for the previous answer, so cache misses cannot overlap): dashmap {}, the unlocked HashMap {} inline and {} boxed. `get_hit` lets the CPU overlap consecutive lookups' misses, which a lock's atomic read-modify-write prevents; a request making one lookup sees the chained figure.",
            fmt_ns(g),
            fmt_ns(floor),
            fmt_ns(boxed)
        ));
    }
    let fastest = store_names()
        .iter()
        .filter_map(|s| ns(&format!("session_map/get_hit/{s}/{big}")).map(|v| (*s, v)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((s, v)) = fastest {
        out.push(format!(
            "Fastest store for get-hit at {big} sessions: {s} ({}).",
            fmt_ns(v)
        ));
    }
    if let Some(m) = data.memory.iter().find(|m| m["store"] == "dashmap") {
        let rss = m["rss_bytes_per_session"].as_f64().unwrap_or(f64::NAN);
        let heap = m["heap_bytes_per_session"].as_f64().unwrap_or(f64::NAN);
        let verdict = if rss <= 260.0 { "meets" } else { "misses" };
        out.push(format!(
            "Memory per live session in the default store at {} sessions: {heap:.1} B of heap, {rss:.1} B of RSS ({verdict} the 260 B target on RSS).",
            m["sessions"]
        ));
    }
    if let (Some(h), Some(sl), Some(sf)) = (
        ns("request/healthz"),
        ns("request/profile/stateless"),
        ns("request/profile/stateful-memory"),
    ) {
        out.push(format!(
            "Per request through the Router: /healthz {}, stateless /profile {} ({:.2}×), stateful /profile {} ({:.2}×).",
            fmt_ns(h),
            fmt_ns(sl),
            sl / h,
            fmt_ns(sf),
            sf / h
        ));
    }
    out
}
