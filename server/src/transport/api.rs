//! `/api`: the HTTP API for programs — publish to a room, announce to every room, list rooms, read
//! history — and its errors, its bearer-token auth and its OpenAPI document. Server-Sent Events live
//! next door in `sse.rs`; both go through the same log and hub as the chat.
//!
//! Every error is JSON, `{"error": {"code", "message"}}`, with the status that fits; internal causes
//! are logged, never shown.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

mod publish;

use app::protocol::{ChatMessage, ErrorCode, Identity, MessageKind, ProtocolError, validate_room};
use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    AppState,
    log::{LogError, NewMessage},
    rate::TokenBucket,
    rooms::{self, PageAt},
    session,
};

/// Most messages one history request returns.
pub const API_PAGE_MAX: u64 = 200;

/// Messages a history request returns when it names no `limit`.
const API_PAGE_DEFAULT: u64 = 50;

/// What a JSON request body may add around the message body itself (field names, an author name, a
/// client id, escapes), so the body limit is what decides.
const JSON_OVERHEAD_BYTES: usize = 4096;

/// The name an integration's messages carry when the request names none.
const DEFAULT_BOT_NAME: &str = "API";

/// The OpenAPI 3.1 description of these routes, served at `/api/openapi.json`.
const OPENAPI: &str = include_str!("openapi.json");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/rooms", get(list_rooms))
        .route("/api/rooms/{room}/messages", post(publish).get(history))
        .route("/api/broadcast", post(broadcast))
        .route("/api/openapi.json", get(openapi))
}

/// The API's tokens and their rate budgets. Cheap to clone.
#[derive(Clone, Default)]
pub struct ApiAuth {
    /// SHA-256 of each configured token → the id its messages carry.
    tokens: Arc<HashMap<[u8; 32], String>>,
    budgets: Arc<Mutex<HashMap<String, TokenBucket>>>,
    rate_per_sec: f64,
    rate_burst: u32,
}

impl ApiAuth {
    pub fn new(tokens: &[String], rate_per_sec: f64, rate_burst: u32) -> Self {
        let tokens = tokens
            .iter()
            .filter(|t| !t.is_empty())
            .map(|token| {
                let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                // Stable across restarts, so a retried publish is still recognised as the same.
                let id = format!("api-{}", session::hex(&digest[..6]));
                (digest, id)
            })
            .collect();
        Self {
            tokens: Arc::new(tokens),
            budgets: Arc::default(),
            rate_per_sec,
            rate_burst,
        }
    }

    /// The id of the request's bearer token, if it carries a configured one.
    fn token_id(&self, headers: &HeaderMap) -> Option<&str> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))?
            .trim();
        // Compared as digests: how long a comparison takes says nothing about the token.
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.tokens.get(&digest).map(String::as_str)
    }

    /// Takes one request from the token's budget.
    fn spend(&self, id: &str) -> Result<(), ApiError> {
        let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = budgets
            .entry(id.to_owned())
            .or_insert_with(|| TokenBucket::new(self.rate_per_sec, self.rate_burst));
        bucket.take(Instant::now()).map_err(|wait| ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: "too many requests for this token; wait a moment".into(),
            retry_after_secs: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
        })
    }
}

/// Who may call a route.
pub enum Caller {
    /// A configured API token (its id).
    Token(String),
    /// Someone chatting in this browser (reads only).
    Person(Identity),
}

/// Publishing needs a token.
fn require_token(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    if state.api.tokens.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "api_disabled",
            "the HTTP API is off: start Herald with --api-token TOKEN (or HERALD_API_TOKENS) and \
             send Authorization: Bearer TOKEN",
        ));
    }
    let id = state
        .api
        .token_id(headers)
        .ok_or_else(ApiError::unauthorized)?
        .to_owned();
    state.api.spend(&id)?;
    Ok(id)
}

/// Reading needs a token or a chat session (so the page's own scripts can read with its cookie).
pub fn require_reader(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    if let Some(id) = state.api.token_id(headers) {
        let id = id.to_owned();
        state.api.spend(&id)?;
        return Ok(Caller::Token(id));
    }
    match state.sessions.from_headers(headers) {
        Some(person) => Ok(Caller::Person(person)),
        None => Err(ApiError::unauthorized()),
    }
}

/// An API error: the status, a stable code programs branch on, and a sentence for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// With 429: seconds until a retry is accepted (sent as `Retry-After`).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer TOKEN with a token Herald was started with (--api-token)",
        )
    }

    pub fn unknown_room(room: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_room",
            format!("there is no room called {room}"),
        )
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unavailable(e: LogError) -> Self {
        tracing::error!("message log: {e}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the server could not do that just now; try again",
        )
    }
}

impl From<ProtocolError> for ApiError {
    fn from(err: ProtocolError) -> Self {
        let status = match err.code {
            ErrorCode::BodyTooLong => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, err.code.as_str(), err.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[derive(Serialize)]
struct Published {
    room: String,
    seq: u64,
    /// Unique across rooms and lifetimes of a room's history.
    id: String,
}

/// Reads a publish body of at most the configured body limit (plus room for the JSON around it)
/// and turns it into the message to store (without its room): the author is the token's, under the
/// name the request gives.
async fn publish_request(
    state: &AppState,
    token_id: &str,
    body: Body,
) -> Result<(Identity, String, String), ApiError> {
    let limit = state.limits.max_body_bytes + JSON_OVERHEAD_BYTES;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("the request body is over {limit} bytes"),
        )
    })?;
    let request = publish::parse(&bytes, state.limits.max_body_bytes).map_err(|refused| {
        match refused {
            publish::Refused::Json(why) => ApiError::bad_request(
                "invalid_json",
                format!(
                    "the body must be a JSON object {{\"body\", \"author_name\"?, \"client_id\"?}}: {why}"
                ),
            ),
            publish::Refused::Invalid(err) => ApiError::from(err),
        }
    })?;
    let client_id = request
        .client_id
        .unwrap_or_else(|| format!("api-{}", session::random_hex(8)));
    let author = Identity {
        id: token_id.to_owned(),
        name: request
            .author_name
            .unwrap_or_else(|| DEFAULT_BOT_NAME.to_owned()),
    };
    Ok((author, client_id, request.body))
}

/// `POST /api/rooms/{room}/messages`
async fn publish(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    let token = require_token(&state, &headers)?;
    validate_room(&room)?;
    let (author, client_id, body) = publish_request(&state, &token, body).await?;
    let seq = state
        .log
        .append(NewMessage {
            room: room.clone(),
            author,
            client_id,
            body,
            kind: MessageKind::Bot,
        })
        .await
        .map_err(ApiError::unavailable)?;
    let epoch = state.log.epoch(&room).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(Published {
            id: format!("{epoch}-{seq}"),
            room,
            seq,
        }),
    ))
}

#[derive(Serialize)]
struct Announced {
    /// The announcement's idempotency key (the request's `client_id`, or one chosen for it).
    client_id: String,
    /// Where it was stored: one message per room.
    rooms: Vec<Published>,
}

/// `POST /api/broadcast`: one announcement, stored in every room as a message of its own.
async fn broadcast(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Announced>), ApiError> {
    let token = require_token(&state, &headers)?;
    let (author, client_id, body) = publish_request(&state, &token, body).await?;
    let mut rooms = state.log.rooms();
    if !rooms.iter().any(|r| r == app::protocol::DEFAULT_ROOM) {
        rooms.push(app::protocol::DEFAULT_ROOM.to_owned());
    }
    // All at once: the log stores them in one batch.
    let appends = rooms.iter().map(|room| {
        state.log.append(NewMessage {
            room: room.clone(),
            author: author.clone(),
            client_id: client_id.clone(),
            body: body.clone(),
            kind: MessageKind::Announcement,
        })
    });
    let seqs = futures::future::join_all(appends).await;
    let mut stored = Vec::with_capacity(rooms.len());
    for (room, seq) in rooms.into_iter().zip(seqs) {
        let seq = seq.map_err(ApiError::unavailable)?;
        let epoch = state.log.epoch(&room).unwrap_or_default();
        stored.push(Published {
            id: format!("{epoch}-{seq}"),
            room,
            seq,
        });
    }
    Ok((
        StatusCode::CREATED,
        Json(Announced {
            client_id,
            rooms: stored,
        }),
    ))
}

#[derive(Serialize)]
struct RoomInfo {
    room: String,
    /// People in the room now.
    members: u32,
    /// Seq of the room's last message (0 if none).
    last_seq: u64,
}

/// `GET /api/rooms`
async fn list_rooms(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_reader(&state, &headers)?;
    let known = state.log.rooms();
    let rooms: Vec<RoomInfo> = state
        .hub
        .room_stats()
        .into_iter()
        .filter(|(room, ..)| known.contains(room))
        .map(|(room, members, last_seq)| RoomInfo {
            room,
            members,
            last_seq,
        })
        .collect();
    Ok(Json(serde_json::json!({ "rooms": rooms })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    before: Option<u64>,
    after: Option<u64>,
    limit: Option<u64>,
}

#[derive(Serialize)]
struct HistoryPage {
    room: String,
    epoch: String,
    /// Oldest first.
    messages: Vec<ChatMessage>,
    /// Whether the room holds messages older than the first of these.
    has_older: bool,
    /// Whether the room holds messages newer than the last of these.
    has_newer: bool,
}

/// `GET /api/rooms/{room}/messages?before=&after=&limit=`: with `after`, the oldest `limit` messages
/// after it; otherwise the newest `limit` before `before` (or the newest of all).
async fn history(
    State(state): State<AppState>,
    Path(room): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<HistoryPage>, ApiError> {
    require_reader(&state, &headers)?;
    validate_room(&room)?;
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(
            "invalid_query",
            format!(
                "before, after and limit are whole numbers: {}",
                e.body_text()
            ),
        )
    })?;
    let limit = query.limit.unwrap_or(API_PAGE_DEFAULT);
    if !(1..=API_PAGE_MAX).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit is 1 to {API_PAGE_MAX}"),
        ));
    }
    let epoch = state
        .log
        .epoch(&room)
        .ok_or_else(|| ApiError::unknown_room(&room))?;
    let at = match (query.after, query.before) {
        (Some(after), Some(before)) => PageAt::Between { after, before },
        (Some(after), None) => PageAt::After(after),
        (None, Some(before)) => PageAt::Before(before),
        (None, None) => PageAt::Latest,
    };
    let page = rooms::page(&state.log, &state.hub, &room, at, limit)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(HistoryPage {
        has_older: page.has_older,
        has_newer: page.has_newer,
        room,
        epoch,
        messages: page.messages,
    }))
}

/// `GET /api/openapi.json`
async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
