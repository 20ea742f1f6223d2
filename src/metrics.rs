//! Prometheus metrics every server exposes on `GET /metrics`.
//!
//! Counters are atomics behind `prometheus-client` families; the per-request
//! label set is two `Copy` values (a static route name and a status code), so
//! counting a request allocates nothing. Gauges that mirror state owned
//! elsewhere (live sessions, open WebSockets) are set when scraped.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

/// One server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    /// Sessions stored (stateful server; set on scrape).
    pub sessions_live: Gauge,
    /// Revoked token ids remembered (stateless server with a denylist).
    pub revoked_tokens: Gauge,
    /// Open WebSocket connections.
    pub ws_connections: Gauge,
    /// Failed calls to the session store or the pub/sub backplane.
    pub store_errors: Counter,
    /// Calls to the session store made for requests (sweeps and `/metrics`
    /// not included): what a shared store serves per request.
    pub store_calls: Counter,
    /// WebSocket messages received from clients.
    pub ws_messages_in: Counter,
    /// WebSocket messages sent to clients.
    pub ws_messages_out: Counter,
    /// Chat messages a slow member missed (its queue overflowed).
    pub ws_messages_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Self {
            registry: Registry::with_prefix("statebench"),
            requests: Family::default(),
            sessions_live: Gauge::default(),
            revoked_tokens: Gauge::default(),
            ws_connections: Gauge::default(),
            store_errors: Counter::default(),
            store_calls: Counter::default(),
            ws_messages_in: Counter::default(),
            ws_messages_out: Counter::default(),
            ws_messages_dropped: Counter::default(),
        };
        let r = &mut m.registry;
        r.register(
            "http_requests",
            "HTTP requests by route and status",
            m.requests.clone(),
        );
        r.register("sessions_live", "Sessions stored", m.sessions_live.clone());
        r.register(
            "revoked_tokens",
            "Revoked token ids remembered",
            m.revoked_tokens.clone(),
        );
        r.register(
            "ws_connections",
            "Open WebSocket connections",
            m.ws_connections.clone(),
        );
        r.register(
            "store_errors",
            "Failed session-store or backplane calls",
            m.store_errors.clone(),
        );
        r.register(
            "store_calls",
            "Session-store calls made for requests",
            m.store_calls.clone(),
        );
        r.register(
            "ws_messages_in",
            "WebSocket messages received",
            m.ws_messages_in.clone(),
        );
        r.register(
            "ws_messages_out",
            "WebSocket messages sent",
            m.ws_messages_out.clone(),
        );
        r.register(
            "ws_messages_dropped",
            "Chat messages dropped for slow members",
            m.ws_messages_dropped.clone(),
        );
        m
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Requests counted so far for `route` (a path pattern) and `status`.
    pub fn requests(&self, route: &str, status: u16) -> u64 {
        self.requests
            .get(&RequestLabels {
                route: route_name(route),
                status,
            })
            .map_or(0, |c| c.get())
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> Response {
        let mut body = String::new();
        if prometheus_client::encoding::text::encode(&mut body, &self.registry).is_err() {
            return (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "metrics encoding failed",
            )
                .into_response();
        }
        (
            [(
                CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response()
    }
}

/// The fixed set of route names, so labels are `&'static str`.
fn route_name(path: &str) -> &'static str {
    match path {
        "/healthz" => "/healthz",
        "/metrics" => "/metrics",
        "/login" => "/login",
        "/logout" => "/logout",
        "/refresh" => "/refresh",
        "/profile" => "/profile",
        "/cart" => "/cart",
        "/cart/items" => "/cart/items",
        "/ws" => "/ws",
        "/chat/{room}" => "/chat/{room}",
        _ => "other",
    }
}

/// The layer (installed with `route_layer`) that counts each request by
/// route and status.
///
/// A plain tower layer rather than `axum::middleware::from_fn`: that one
/// clones the inner service into a box and boxes its future on every
/// request (over 1 KiB for `/profile`, past glibc's per-thread cache), and
/// counting needs neither.
#[derive(Clone)]
pub struct TrackLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Track {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// A service counting each request it answers (see [`TrackLayer`]).
#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("other", |p| route_name(p.as_str()));
        Tracked {
            inner: self.inner.call(req),
            metrics: Some(self.metrics.clone()),
            route,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Track`]: the inner one, counted when it
    /// completes.
    pub struct Tracked<F> {
        #[pin]
        inner: F,
        metrics: Option<Arc<Metrics>>,
        route: &'static str,
    }
}

impl<F, E> std::future::Future for Tracked<F>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let (Ok(res), Some(metrics)) = (&out, this.metrics.take()) {
            metrics
                .requests
                .get_or_create(&RequestLabels {
                    route: this.route,
                    status: res.status().as_u16(),
                })
                .inc();
        }
        std::task::Poll::Ready(out)
    }
}

/// The exposition a server at `base_url` serves on `/metrics` (`None`
/// when it cannot be read within 5 s or does not answer 200).
pub async fn scrape(client: &reqwest::Client, base_url: &str) -> Option<String> {
    client
        .get(format!("{base_url}/metrics"))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .text()
        .await
        .ok()
}

/// Reads a counter back from Prometheus text (what `GET /metrics` answers):
/// the sum of `name` over its label sets, leaving out the samples whose
/// `route` label is `except_route` (a scrape does not count itself).
pub fn sum(exposition: &str, name: &str, except_route: Option<&str>) -> u64 {
    let skip = except_route.map(|r| format!("route=\"{r}\""));
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let metric = l.split(['{', ' ']).next().unwrap_or_default();
            metric == name
        })
        .filter(|l| skip.as_deref().is_none_or(|s| !l.contains(s)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_a_counter_over_label_sets_but_not_the_scrapes() {
        let text = "# TYPE statebench_http_requests counter\n\
            statebench_http_requests_total{route=\"/profile\",status=\"200\"} 10\n\
            statebench_http_requests_total{route=\"/login\",status=\"200\"} 2\n\
            statebench_http_requests_total{route=\"/metrics\",status=\"200\"} 5\n\
            statebench_http_requests_created{route=\"/login\"} 1700000000\n\
            statebench_ws_messages_in_total 7\n";
        let http = super::sum(text, "statebench_http_requests_total", Some("/metrics"));
        assert_eq!(http, 12);
        assert_eq!(super::sum(text, "statebench_ws_messages_in_total", None), 7);
        assert_eq!(super::sum(text, "absent", None), 0);
    }
}
