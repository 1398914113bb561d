//! `GET /healthz` and `GET /readyz`, for load balancers, orchestrators and operators. No token: they
//! say nothing about anyone's messages.
//!
//! - `/healthz` — alive: 200 `{"status": "ok", "connections", "queued_bytes"}` as long as the
//!   process serves HTTP, also while the log is unavailable or the server drains (restarting it
//!   would not help either). A probe that gets no answer should restart it.
//! - `/readyz` — ready for traffic: 200 `{"status": "ready"}` when the message log's writer and
//!   reader both answer in time (in cluster mode: Redis takes writes and the bus is up); 503
//!   `{"status": "log_unavailable"}` when they do not, and `{"status": "stopping"}` from the moment
//!   shutdown is asked for (through `--drain-seconds`), so a balancer stops sending new visitors.

use std::time::Duration;

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use crate::AppState;

/// How long the log may take to answer: longer than any commit should, shorter than a balancer's
/// usual probe timeout.
const PATIENCE: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz(State(state): State<AppState>) -> Response {
    let stats = state.hub.stats();
    let status = if state.draining.is_cancelled() {
        "stopping"
    } else {
        "ok"
    };
    let body = json!({
        "status": status,
        "connections": stats.connections,
        "queued_bytes": stats.queued_bytes,
    });
    answer(StatusCode::OK, body)
}

async fn readyz(State(state): State<AppState>) -> Response {
    // `draining` is cancelled first whenever shutdown begins, `stop` after it.
    if state.draining.is_cancelled() {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "stopping" }),
        );
    }
    match tokio::time::timeout(PATIENCE, state.log.check()).await {
        Ok(Ok(())) => answer(StatusCode::OK, json!({ "status": "ready" })),
        _ => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "log_unavailable" }),
        ),
    }
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}
