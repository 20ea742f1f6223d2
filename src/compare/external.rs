//! Servers the comparison did not start (`compare --target NAME=URL`):
//! an Express, Go or Spring implementation of the contract, or a
//! statebench server started by hand. Before any load, a short probe checks
//! the routes the scenarios need and names every one that is missing or
//! answers differently, so a matrix is skipped with a reason instead of
//! failing request by request.

use std::time::Duration;

use crate::server::Arch;

/// One external server.
#[derive(Debug, Clone)]
pub struct External {
    pub kind: Arch,
    /// Base URL, without a trailing slash.
    pub url: String,
    /// Its process, for CPU and memory (`--target-pid`).
    pub pid: Option<u32>,
}

/// `NAME=VALUE`, the value read by `value`: the shape of every `--target`
/// and `--target-pid` (here and in `statebench vs`).
pub fn named<T>(
    s: &str,
    what: &str,
    value: impl FnOnce(&str) -> Result<T, String>,
) -> Result<(String, T), String> {
    let (name, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME={what}, got {s:?}"))?;
    if name.is_empty() {
        return Err(format!("the NAME of NAME={what} is empty"));
    }
    Ok((name.to_owned(), value(v)?))
}

/// A process id on this machine.
pub fn pid(s: &str) -> Result<u32, String> {
    let pid: u32 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a process id"))?;
    if !crate::host::proc::exists(pid) {
        return Err(format!("no process {pid} on this machine"));
    }
    Ok(pid)
}

/// `--target NAME=URL`.
pub fn parse_target(s: &str) -> Result<(Arch, String), String> {
    let (name, url) = named(s, "URL", crate::loadtests::config::base_url)?;
    Ok((Arch::parse(&name)?, url))
}

/// `--target-pid NAME=PID`.
pub fn parse_target_pid(s: &str) -> Result<(Arch, u32), String> {
    let (name, pid) = named(s, "PID", pid)?;
    Ok((Arch::parse(&name)?, pid))
}

/// What the probe found a server to support.
#[derive(Debug, Clone, Default)]
pub struct Contract {
    /// Login and profile: enough for the concurrency matrix.
    pub profile: bool,
    /// Adding to and reading the cart: the state-size matrix.
    pub cart: bool,
    /// The WebSocket echo.
    pub ws_echo: bool,
    /// One line per missing or different route, and what it skips.
    pub problems: Vec<String>,
    /// The same, short: `ROUTE (what it answered)`.
    pub missing: Vec<(&'static str, String)>,
}

/// Probes one server's contract (a handful of requests, 5 s at most each).
pub async fn probe(target: &External) -> Contract {
    let mut c = Contract::default();
    let name = target.kind.name();
    if target.kind == Arch::Ws {
        match ws_echo(&target.url).await {
            Ok(()) => c.ws_echo = true,
            Err(why) if why == REFUSED => {
                c.problems
                    .push(not_running(name, &target.url, "its cells are skipped"));
                c.missing.push(("GET /ws", why));
            }
            Err(why) => {
                c.problems.push(format!(
                    "target {name} does not implement the WebSocket echo on GET /ws ({why}); its cells are skipped"
                ));
                c.missing.push(("GET /ws", why));
            }
        }
        return c;
    }
    let Ok(http) = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(5))
        .build()
    else {
        c.problems.push("cannot build an HTTP client".into());
        return c;
    };
    let base = &target.url;
    let mut problem = |route: &'static str, got: String, skipped: &str| {
        c.problems.push(format!(
            "target {name} does not implement {route} ({got}); {skipped}"
        ));
        c.missing.push((route, got));
    };
    let login = http
        .post(format!("{base}/login"))
        .header("content-type", "application/json")
        .body(r#"{"name":"probe","id":1}"#)
        .send()
        .await;
    let token = match login {
        Ok(r) if r.status().is_success() => {
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            body["token"].as_str().map(str::to_owned)
        }
        Ok(r) => {
            problem(
                "POST /login",
                r.status().as_u16().to_string(),
                "every matrix is skipped",
            );
            return c;
        }
        Err(e) if e.is_connect() => {
            c.problems
                .push(not_running(name, base, "every matrix is skipped"));
            c.missing.push(("POST /login", short(&e)));
            return c;
        }
        Err(e) => {
            problem("POST /login", short(&e), "every matrix is skipped");
            return c;
        }
    };
    if matches!(target.kind, Arch::Stateless | Arch::Hybrid) && token.is_none() {
        problem(
            "POST /login",
            "no {\"token\"} in the answer".into(),
            "every matrix is skipped",
        );
        return c;
    }
    let with = |b: reqwest::RequestBuilder, token: &Option<String>| match token {
        Some(t) => b.header("Authorization", t.as_str()),
        None => b,
    };
    match with(http.get(format!("{base}/profile")), &token)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => {
            let text = r.text().await.unwrap_or_default();
            if text.starts_with("Welcome back") {
                c.profile = true;
            } else {
                problem(
                    "GET /profile",
                    format!("answered {text:?}, not \"Welcome back, …\""),
                    "every matrix is skipped",
                );
                return c;
            }
        }
        Ok(r) => {
            problem(
                "GET /profile",
                r.status().as_u16().to_string(),
                "every matrix is skipped",
            );
            return c;
        }
        Err(e) => {
            problem("GET /profile", short(&e), "every matrix is skipped");
            return c;
        }
    }
    let add = with(http.post(format!("{base}/cart/items")), &token)
        .header("content-type", "application/json")
        .body(r#"{"sku":"probe","qty":1}"#)
        .send()
        .await;
    let token = match add {
        Ok(r) if r.status().is_success() => {
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            // A stateless server hands out a new token carrying the cart.
            body["token"].as_str().map(str::to_owned).or(token)
        }
        Ok(r) => {
            problem(
                "POST /cart/items",
                r.status().as_u16().to_string(),
                "the state-size matrix is skipped",
            );
            return c;
        }
        Err(e) => {
            problem(
                "POST /cart/items",
                short(&e),
                "the state-size matrix is skipped",
            );
            return c;
        }
    };
    match with(http.get(format!("{base}/cart")), &token).send().await {
        Ok(r) if r.status().is_success() => {
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            if body["items"].is_array() {
                c.cart = true;
            } else {
                problem(
                    "GET /cart",
                    "no {\"items\": […]} in the answer".into(),
                    "the state-size matrix is skipped",
                );
            }
        }
        Ok(r) => problem(
            "GET /cart",
            r.status().as_u16().to_string(),
            "the state-size matrix is skipped",
        ),
        Err(e) => problem("GET /cart", short(&e), "the state-size matrix is skipped"),
    }
    match with(http.post(format!("{base}/logout")), &token)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => problem(
            "POST /logout",
            r.status().as_u16().to_string(),
            "no matrix needs it; noted only",
        ),
        Err(e) => problem("POST /logout", short(&e), "no matrix needs it; noted only"),
    }
    c
}

async fn ws_echo(base: &str) -> Result<(), String> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let url = base
        .replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1)
        + "/ws";
    let attempt = async {
        let (mut socket, _) =
            tokio_tungstenite::connect_async(&url)
                .await
                .map_err(|e| match e {
                    tokio_tungstenite::tungstenite::Error::Io(io)
                        if io.kind() == std::io::ErrorKind::ConnectionRefused =>
                    {
                        REFUSED.to_owned()
                    }
                    e => e.to_string(),
                })?;
        socket
            .send(Message::text("probe"))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) if t.as_str() == "Server received: probe" => {
                    let _ = socket.close(None).await;
                    return Ok(());
                }
                Some(Ok(Message::Text(t))) => return Err(format!("answered {:?}", t.as_str())),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("closed without an answer".into()),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .map_err(|_| "no answer within 5 s".to_string())?
}

/// A request error in a few words.
/// What a probe that found nothing listening got.
const REFUSED: &str = "connection refused";

/// The problem of a target with nothing to probe: it is not there, rather
/// than short of a route.
fn not_running(name: &str, url: &str, skipped: &str) -> String {
    format!("target {name} at {url} refused the connection (is it running?); {skipped}")
}

fn short(e: &reqwest::Error) -> String {
    if e.is_connect() {
        REFUSED.into()
    } else if e.is_timeout() {
        "no answer within 5 s".into()
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_target("stateless=http://127.0.0.1:3000/").unwrap(),
            (Arch::Stateless, "http://127.0.0.1:3000".into())
        );
        assert!(
            parse_target("jwt=http://x")
                .unwrap_err()
                .contains("not a server name")
        );
        assert!(
            parse_target("ws=127.0.0.1:3000")
                .unwrap_err()
                .contains("http://")
        );
        assert!(parse_target_pid("stateful=notapid").is_err());
        assert!(parse_target_pid(&format!("stateful={}", std::process::id())).is_ok());
    }
}
