//! What an operator can measure: Herald's Prometheus metrics, served as `GET /metrics` in the text
//! format `promtool check metrics` reads. One registry per server (no globals: tests run several
//! servers in one process). Parts that count on a hot path hold a `prometheus` counter — one atomic
//! — handed to them here, and count per batch where they can (the hub adds a whole fan-out at
//! once); numbers that are a state (connections' queued bytes, rooms) are read when scraped.
//!
//! Who may read it: nobody on the main address unless `--metrics-token` is set (then with that
//! bearer token); anyone who reaches `--metrics-addr`, a listener of its own meant for a private
//! network. docs/OPERATIONS.md lists every metric and what to alert on.

use std::sync::Arc;

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::{AppState, hub::Hub};

/// Buckets for what takes milliseconds when all is well and seconds when it is not (store → ack,
/// queue → socket, a Redis round trip): 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One connection's queue → socket time is recorded for one write in this many: the histogram's
/// atomics on every delivery's write would be the fan-out's one shared cache line.
pub const DELIVERY_SAMPLE: u32 = 16;

/// Cheap to clone: every clone counts into the same registry.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

/// Every `transport` of the long-lived connections, with every `reason` each ends for: each pair is
/// shown from the first scrape at 0 (an alert on a series that does not exist never fires).
pub const CONNECTION_ENDS: [(&str, &[&str]); 2] = [
    (
        WEBSOCKET,
        &[
            "client_gone",
            "stalled",
            "client_closed",
            "going_away",
            "protocol_error",
            "invalid_payload",
            "message_too_big",
            "too_slow",
            "signed_out",
            "rooms_changed",
            "other",
        ],
    ),
    (SSE, &["client_gone", "going_away", "unavailable"]),
];

/// The `transport` label of WebSocket connections and of what they send.
pub const WEBSOCKET: &str = "websocket";
/// The `transport` label of event streams.
pub const SSE: &str = "sse";
/// The `transport` label of HTTP API requests refused for their rate.
pub const HTTP: &str = "http";

struct Inner {
    registry: Registry,
    /// Open long-lived connections, by `transport` (`websocket`, `sse`).
    connections: IntGaugeVec,
    rooms: IntGauge,
    queue_bytes: IntGauge,
    /// Messages newly stored, by `kind` (`user`, `announcement`, ...). Resends stored once count once.
    messages_stored: IntCounterVec,
    /// Connections ended, by `transport` and `reason` (see [`ConnectionGauge::ended`]).
    disconnects: IntCounterVec,
    /// From a send handed to the log to its answer (stored and published, or refused).
    log_append: Histogram,
    /// From a frame queued for a connection to the socket taking it (sampled, see
    /// [`DELIVERY_SAMPLE`]).
    delivery: Histogram,
    http_requests: IntCounterVec,
    /// Sends and API calls refused for going over their rate, by `transport`.
    rate_limited: IntCounterVec,
    /// Webhook requests to bots, by `outcome` (see [`WEBHOOK_OUTCOMES`]).
    webhooks: IntCounterVec,
    /// Shared with the hub, which counts them.
    deliveries: IntCounter,
    lags: IntCounter,
}

/// How a message handed to a bot's webhook ended: `delivered` (a 2xx; its reply, if any, posted),
/// `failed` (no 2xx after every try), `dropped` (too many waiting on this node, or its URL no longer
/// allowed).
pub const WEBHOOK_OUTCOMES: [&str; 3] = ["delivered", "failed", "dropped"];

impl Metrics {
    /// A registry with every metric at zero; the hub's counters are registered from `hub`.
    pub fn new(hub: &Hub) -> Self {
        let registry = Registry::new();
        let counters = hub.counters();
        let inner = Inner {
            connections: IntGaugeVec::new(
                Opts::new("herald_connections", "Open WebSocket and event-stream connections."),
                &["transport"],
            )
            .expect("valid metric (constant)"),
            rooms: IntGauge::new("herald_rooms", "Rooms this node knows of.").expect("valid metric"),
            queue_bytes: IntGauge::new(
                "herald_queue_bytes",
                "Bytes waiting in all connections' send queues (counted per connection).",
            )
            .expect("valid metric"),
            messages_stored: IntCounterVec::new(
                Opts::new(
                    "herald_messages_stored_total",
                    "Messages newly stored in the log, by kind.",
                ),
                &["kind"],
            )
            .expect("valid metric"),
            disconnects: IntCounterVec::new(
                Opts::new(
                    "herald_disconnects_total",
                    "Long-lived connections ended, by transport and reason.",
                ),
                &["transport", "reason"],
            )
            .expect("valid metric"),
            log_append: Histogram::with_opts(
                HistogramOpts::new(
                    "herald_log_append_seconds",
                    "From a send handed to the log to its answer (stored and published).",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            delivery: Histogram::with_opts(
                HistogramOpts::new(
                    "herald_publish_to_delivery_seconds",
                    "From a message queued for a connection to its socket taking it (1 write in 16).",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            http_requests: IntCounterVec::new(
                Opts::new(
                    "herald_http_requests_total",
                    "HTTP requests answered, by route and status.",
                ),
                &["route", "status"],
            )
            .expect("valid metric"),
            rate_limited: IntCounterVec::new(
                Opts::new(
                    "herald_rate_limited_total",
                    "Sends and API requests refused for their rate, by transport.",
                ),
                &["transport"],
            )
            .expect("valid metric"),
            webhooks: IntCounterVec::new(
                Opts::new(
                    "herald_webhooks_total",
                    "Messages handed to bots' webhooks, by outcome.",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            deliveries: counters.deliveries,
            lags: counters.lags,
            registry,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(inner.connections.clone()),
            Box::new(inner.rooms.clone()),
            Box::new(inner.queue_bytes.clone()),
            Box::new(inner.messages_stored.clone()),
            Box::new(inner.disconnects.clone()),
            Box::new(inner.log_append.clone()),
            Box::new(inner.delivery.clone()),
            Box::new(inner.http_requests.clone()),
            Box::new(inner.rate_limited.clone()),
            Box::new(inner.webhooks.clone()),
            Box::new(inner.deliveries.clone()),
            Box::new(inner.lags.clone()),
        ];
        for collector in collectors {
            inner
                .registry
                .register(collector)
                .expect("each metric registered once");
        }
        // Every known series at 0 from the start, rather than on its first count.
        for (transport, reasons) in CONNECTION_ENDS {
            inner.connections.with_label_values(&[transport]);
            for reason in reasons {
                inner.disconnects.with_label_values(&[transport, reason]);
            }
        }
        for kind in app::protocol::MessageKind::ALL {
            inner.messages_stored.with_label_values(&[kind.as_str()]);
        }
        for transport in [WEBSOCKET, HTTP] {
            inner.rate_limited.with_label_values(&[transport]);
        }
        for outcome in WEBHOOK_OUTCOMES {
            inner.webhooks.with_label_values(&[outcome]);
        }
        // The process's memory, CPU and open files (Linux), named as every exporter names them.
        #[cfg(target_os = "linux")]
        let _ = inner.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        Self(Arc::new(inner))
    }

    /// Counts a long-lived connection open until the returned gauge is dropped.
    pub fn connection(&self, transport: &'static str) -> ConnectionGauge {
        let gauge = self.0.connections.with_label_values(&[transport]);
        gauge.inc();
        ConnectionGauge {
            gauge,
            disconnects: self.0.disconnects.clone(),
            transport,
        }
    }

    pub fn stored(&self, kind: &str) {
        self.0.messages_stored.with_label_values(&[kind]).inc();
    }

    /// Counts a webhook's outcome, one of [`WEBHOOK_OUTCOMES`].
    pub fn webhook(&self, outcome: &'static str) {
        self.0.webhooks.with_label_values(&[outcome]).inc();
    }

    pub fn rate_limited(&self, transport: &str) {
        self.0.rate_limited.with_label_values(&[transport]).inc();
    }

    pub fn log_append(&self) -> &Histogram {
        &self.0.log_append
    }

    pub fn delivery(&self) -> &Histogram {
        &self.0.delivery
    }

    /// Exports what another part counts itself (the Redis link's round trips and repairs, in
    /// cluster mode): this module registers them without knowing that part.
    pub fn watch(
        &self,
        collectors: impl IntoIterator<Item = Box<dyn prometheus::core::Collector>>,
    ) {
        for collector in collectors {
            let _ = self.0.registry.register(collector);
        }
    }

    /// Everything, as Prometheus reads it.
    fn render(&self, hub: &Hub) -> Vec<u8> {
        let stats = hub.stats();
        self.0.rooms.set(hub.room_count() as i64);
        self.0
            .queue_bytes
            .set(i64::try_from(stats.queued_bytes).unwrap_or(i64::MAX));
        let families = self.0.registry.gather();
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail but for a metric the registry would not have taken.
        let _ = TextEncoder::new().encode(&families, &mut out);
        out
    }
}

/// One open connection in `herald_connections`; dropped, it is gone from the gauge. Says why it
/// ended with [`ConnectionGauge::ended`].
pub struct ConnectionGauge {
    gauge: IntGauge,
    disconnects: IntCounterVec,
    transport: &'static str,
}

impl ConnectionGauge {
    /// Counts the end in `herald_disconnects_total`: `reason` is one of the few documented
    /// (`client_closed`, `client_gone`, `stalled`, `going_away`, `too_slow`, `protocol_error`,
    /// `invalid_payload`, `message_too_big`, `other`).
    pub fn ended(self, reason: &'static str) {
        self.disconnects
            .with_label_values(&[self.transport, reason])
            .inc();
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// The name a close code is counted under in `herald_disconnects_total`.
pub fn close_reason(code: u16) -> &'static str {
    match code {
        1000 => "client_closed",
        1001 => "going_away",
        1002 => "protocol_error",
        1007 => "invalid_payload",
        1009 => "message_too_big",
        4008 => "too_slow",
        4001 => "signed_out",
        4003 => "rooms_changed",
        _ => "other",
    }
}

/// `/metrics` on the main address: only with `--metrics-token`.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(on_main_address))
}

/// `/metrics` alone, for `--metrics-addr`.
pub fn private_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

async fn on_main_address(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(expected) = state.metrics_token else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are not served on this address: start Herald with --metrics-token or \
             --metrics-addr\n",
        )
            .into_response();
    };
    // Compared as digests, as the API's tokens are.
    if crate::bearer::bearer_digest(&headers) != Some(expected) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "metrics need Authorization: Bearer with the --metrics-token\n",
        )
            .into_response();
    }
    scrape(State(state)).await
}

async fn scrape(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(&state.hub);
    (
        [
            (header::CONTENT_TYPE, prometheus::TEXT_FORMAT),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Counts every HTTP answer by its route (the router's pattern, never the raw path: bounded) and
/// status.
pub async fn count_requests(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |path| route_label(path.as_str()));
    let response = next.run(request).await;
    let status = response.status();
    metrics
        .0
        .http_requests
        .with_label_values(&[route, status.as_str()])
        .inc();
    if status == StatusCode::TOO_MANY_REQUESTS {
        metrics.rate_limited(HTTP);
    }
    response
}

/// The route patterns as labels; anything else (site files, unknown paths) is `other`.
fn route_label(pattern: &str) -> &'static str {
    const ROUTES: &[&str] = &[
        "/",
        "/r/{room}",
        "/r",
        "/ws",
        "/healthz",
        "/readyz",
        "/metrics",
        "/session",
        "/session/end",
        "/api/rooms",
        "/api/rooms/{room}/messages",
        "/api/rooms/{room}/events",
        "/api/broadcast",
        "/api/openapi.json",
    ];
    ROUTES
        .iter()
        .find(|route| **route == pattern)
        .copied()
        .unwrap_or("other")
}
