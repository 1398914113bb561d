//! `GET /healthz`: whether this Herald can take messages, for load balancers, orchestrators and
//! operators. No token: it says nothing about anyone's messages.
//!
//! 200 with `{"status": "ok", "connections", "queued_bytes"}` when the message log's writer and
//! reader both answer in time; 503 with `{"status": "log_unavailable"}` when they do not, and with
//! `{"status": "stopping"}` once shutdown has begun, so a balancer stops sending new visitors.

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
    Router::new().route("/healthz", get(healthz))
}

async fn healthz(State(state): State<AppState>) -> Response {
    let (status, body) = if state.stop.is_cancelled() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "stopping" }),
        )
    } else if let Ok(Ok(())) = tokio::time::timeout(PATIENCE, state.log.check()).await {
        let stats = state.hub.stats();
        let body = json!({
            "status": "ok",
            "connections": stats.connections,
            "queued_bytes": stats.queued_bytes,
        });
        (StatusCode::OK, body)
    } else {
        let body = json!({ "status": "log_unavailable" });
        (StatusCode::SERVICE_UNAVAILABLE, body)
    };
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}
