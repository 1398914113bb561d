//! `/api`: the HTTP API for programs — publish to a room (a reply too), edit and delete their own
//! messages, react, announce to every room, list rooms, read history and a message's edits — and
//! its OpenAPI document. Its tokens and its JSON errors are in `auth.rs`, shared with
//! Server-Sent Events (`sse.rs`); both go through the same rooms layer, log and hub as the chat.

mod publish;

use app::protocol::{Change, ChatMessage, ErrorCode, Identity, MessageKind, normalize_room};
use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::{get, patch, post},
};
use serde::{Deserialize, Serialize};

use crate::{
    AppState,
    rooms::{Content, LogError, NewEntry, PageAt, Version, Versions},
    transport::auth::{
        ApiError, Caller, Writer, operator_may_write, require_reader, require_token, through_door,
    },
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
        .route(
            "/api/rooms/{room}/messages/{seq}",
            patch(edit).delete(delete),
        )
        .route("/api/rooms/{room}/messages/{seq}/reactions", post(react))
        .route("/api/rooms/{room}/messages/{seq}/versions", get(versions))
        .route("/api/broadcast", post(broadcast))
        .route("/api/openapi.json", get(openapi))
}

#[derive(Serialize)]
struct Published {
    room: String,
    seq: u64,
    /// Unique across rooms and lifetimes of a room's history.
    id: String,
}

/// A request's body, at most the configured body limit plus room for the JSON around it.
async fn request_bytes(state: &AppState, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let limit = state.limits.max_body_bytes + JSON_OVERHEAD_BYTES;
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("the request body is over {limit} bytes"),
        )
    })
}

/// What a refused body is told.
fn refused(refused: publish::Refused, shape: &str) -> ApiError {
    match refused {
        publish::Refused::Json(why) => ApiError::bad_request(
            "invalid_json",
            format!("the body must be a JSON object {shape}: {why}"),
        ),
        publish::Refused::Invalid(err) => ApiError::from(err),
    }
}

/// An idempotency key, the request's or one chosen for it.
fn client_id_of(given: Option<String>) -> String {
    given.unwrap_or_else(|| format!("api-{}", crate::ids::random_hex(8)))
}

/// Reads a publish body and turns it into the message to store (without its room).
async fn publish_request(
    state: &AppState,
    writer: &Writer,
    body: Body,
) -> Result<(Identity, String, Content), ApiError> {
    let bytes = request_bytes(state, body).await?;
    let request = publish::parse(&bytes, state.limits.max_body_bytes).map_err(|r| {
        refused(
            r,
            "{\"body\", \"author_name\"?, \"client_id\"?, \"reply_to\"?}",
        )
    })?;
    Ok((
        writer.author(request.author_name, DEFAULT_BOT_NAME),
        client_id_of(request.client_id),
        Content::Message {
            body: request.body,
            reply_to: request.reply_to,
        },
    ))
}

/// Stores `content` by `author` in `room`, which must exist (a change or reply to a room that does
/// not is refused, and makes no room); answers where it was stored.
async fn store(
    state: &AppState,
    writer: &Writer,
    room: String,
    author: Identity,
    client_id: String,
    kind: MessageKind,
    content: Content,
) -> Result<Published, ApiError> {
    writer.may_write(state, &room).await?;
    let (epoch, _, _lease) = state
        .rooms
        .open(&room)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::unknown_room(&room))?;
    let mentioning = match &content {
        Content::Message { body, .. } if crate::mentions::may_mention(body) => Some(body.clone()),
        _ => None,
    };
    let author_id = author.id.clone();
    let seq = state
        .rooms
        .append(NewEntry {
            room: room.clone(),
            author,
            client_id,
            kind,
            content,
        })
        .await
        .map_err(ApiError::unavailable)?;
    // The people it mentions are recorded before it is answered (an answered message's are kept).
    if let Some(body) = mentioning
        && let Err(e) = crate::mentions::record(state, &room, &author_id, seq, &body).await
    {
        tracing::warn!(%room, "the people a message mentions were not recorded: {e}");
    }
    Ok(Published {
        id: format!("{epoch}-{seq}"),
        room,
        seq,
    })
}

/// `PATCH /api/rooms/{room}/messages/{seq}`: new text for one of the token's own messages.
async fn edit(
    State(state): State<AppState>,
    Path((room, seq)): Path<(String, u64)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Published>, ApiError> {
    let writer = require_token(&state, &headers).await?;
    let room = normalize_room(&room)?;
    let bytes = request_bytes(&state, body).await?;
    let request = publish::parse(&bytes, state.limits.max_body_bytes)
        .map_err(|r| refused(r, "{\"body\", \"client_id\"?}"))?;
    if request.reply_to.is_some() {
        return Err(ApiError::bad_request(
            "invalid_json",
            "an edit does not change what a message answers",
        ));
    }
    let change = Change::Edit { body: request.body };
    let name = request.author_name;
    change_message(
        &state,
        &writer,
        (room, seq),
        name,
        request.client_id,
        change,
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    client_id: Option<String>,
}

/// `DELETE /api/rooms/{room}/messages/{seq}[?client_id=]`: deletes one of the token's own messages
/// (its text, and every earlier text of it, gone from the server).
async fn delete(
    State(state): State<AppState>,
    Path((room, seq)): Path<(String, u64)>,
    query: Result<Query<DeleteQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<Published>, ApiError> {
    let writer = require_token(&state, &headers).await?;
    let room = normalize_room(&room)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    if let Some(id) = &query.client_id {
        app::protocol::validate_client_id(id)?;
    }
    let change = Change::Delete;
    change_message(&state, &writer, (room, seq), None, query.client_id, change).await
}

/// `POST /api/rooms/{room}/messages/{seq}/reactions`: adds (or with `remove`, takes back) the
/// token's reaction.
async fn react(
    State(state): State<AppState>,
    Path((room, seq)): Path<(String, u64)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Published>, ApiError> {
    let writer = require_token(&state, &headers).await?;
    let room = normalize_room(&room)?;
    let bytes = request_bytes(&state, body).await?;
    let request = publish::parse_reaction(&bytes)
        .map_err(|r| refused(r, "{\"emoji\", \"remove\"?, \"client_id\"?}"))?;
    let change = Change::React {
        emoji: request.emoji,
        remove: request.remove,
    };
    change_message(
        &state,
        &writer,
        (room, seq),
        None,
        request.client_id,
        change,
    )
    .await
}

/// Stores `change` to message `seq` of `room` by `writer` (under the `name` the request gives, for
/// the operator's token), under the request's `client_id` or one chosen for it.
async fn change_message(
    state: &AppState,
    writer: &Writer,
    (room, seq): (String, u64),
    name: Option<String>,
    client_id: Option<String>,
    change: Change,
) -> Result<Json<Published>, ApiError> {
    let author = writer.author(name, DEFAULT_BOT_NAME);
    let content = Content::Change {
        target: seq,
        change,
    };
    let client_id = client_id_of(client_id);
    Ok(Json(
        store(
            state,
            writer,
            room,
            author,
            client_id,
            MessageKind::Bot,
            content,
        )
        .await?,
    ))
}

/// `POST /api/rooms/{room}/messages`
async fn publish(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    let writer = require_token(&state, &headers).await?;
    let room = normalize_room(&room)?;
    let (author, client_id, content) = publish_request(&state, &writer, body).await?;
    writer.may_write(&state, &room).await?;
    // A bot calls on the whole room only if members may (the operator's token may: announcements).
    if let (Writer::Bot(bot), Content::Message { body, .. }) = (&writer, &content)
        && !crate::access::may_say(&state, bot.role, body)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::NotAllowed.as_str(),
            crate::access::room_mention_refused(&state),
        ));
    }
    let since = std::time::Instant::now();
    // A bot writes only where it is a member: the room is there.
    let replies = content.target().is_some() || matches!(writer, Writer::Bot(_));
    let seq = if replies {
        // Its original must be there: the room too.
        store(
            &state,
            &writer,
            room.clone(),
            author,
            client_id,
            MessageKind::Bot,
            content,
        )
        .await?
        .seq
    } else {
        // A room is made by its first message.
        state
            .rooms
            .append(NewEntry {
                room: room.clone(),
                author,
                client_id,
                kind: MessageKind::Bot,
                content,
            })
            .await
            .map_err(ApiError::unavailable)?
    };
    state
        .metrics
        .log_append()
        .observe(since.elapsed().as_secs_f64());
    let epoch = state.rooms.epoch(&room).unwrap_or_default();
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
    let writer = require_token(&state, &headers).await?;
    if matches!(writer, Writer::Bot(_)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "operator_only",
            "announcements to every room are the operator's (--api-token), not a bot's",
        ));
    }
    let (author, client_id, content) = publish_request(&state, &writer, body).await?;
    let Content::Message {
        body,
        reply_to: None,
    } = content
    else {
        return Err(ApiError::bad_request(
            "invalid_json",
            "an announcement answers no message",
        ));
    };
    let mut rooms = state.rooms.names().await.map_err(ApiError::unavailable)?;
    if !rooms.iter().any(|r| r == app::protocol::DEFAULT_ROOM) {
        rooms.push(app::protocol::DEFAULT_ROOM.to_owned());
    }
    // Every open room that takes messages: not the private ones, not the archived ones.
    let mut writable = Vec::with_capacity(rooms.len());
    for room in rooms {
        match operator_may_write(&state, &room).await {
            Ok(()) => writable.push(room),
            Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => return Err(e),
            Err(_) => {}
        }
    }
    let rooms = writable;
    // All at once: the log stores them in one batch.
    let appends = rooms.iter().map(|room| {
        state.rooms.append(NewEntry::message(
            room.clone(),
            author.clone(),
            client_id.clone(),
            body.clone(),
            MessageKind::Announcement,
        ))
    });
    let seqs = futures::future::join_all(appends).await;
    let mut stored = Vec::with_capacity(rooms.len());
    for (room, seq) in rooms.into_iter().zip(seqs) {
        let seq = seq.map_err(ApiError::unavailable)?;
        let epoch = state.rooms.epoch(&room).unwrap_or_default();
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
    let caller = require_reader(&state, &headers).await?;
    // The open rooms, and a person's own private rooms and conversations: no other.
    let own: Vec<String> = match &caller {
        Caller::Person(account) => state
            .sessions
            .people
            .rooms_of(&account.id)
            .await
            .map_err(|e| ApiError::store_failed("people store", &e))?
            .into_iter()
            .map(|record| record.name)
            .collect(),
        Caller::Token(_) => Vec::new(),
    };
    let rooms: Vec<RoomInfo> = state
        .rooms
        .stats()
        .await
        .map_err(ApiError::unavailable)?
        .into_iter()
        .filter(|stats| {
            // A bot sees only the rooms it is a member of; others, the open ones and their own.
            let bot = matches!(&caller, Caller::Person(a) if a.role == crate::people::Role::Bot);
            own.contains(&stats.room) || !(bot || app::protocol::is_private(&stats.room))
        })
        .map(|stats| RoomInfo {
            room: stats.room,
            members: stats.members,
            last_seq: stats.last_seq,
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
    let caller = require_reader(&state, &headers).await?;
    let room = normalize_room(&room)?;
    through_door(&state, &caller, &room).await?;
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
    let (epoch, _, _lease) = state
        .rooms
        .open(&room)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::unknown_room(&room))?;
    let at = match (query.after, query.before) {
        (Some(after), Some(before)) => PageAt::Between { after, before },
        (Some(after), None) => PageAt::After(after),
        (None, Some(before)) => PageAt::Before(before),
        (None, None) => PageAt::Latest,
    };
    let page = state
        .rooms
        .page(&room, at, limit)
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

#[derive(Serialize)]
struct VersionsPage {
    room: String,
    seq: u64,
    author: Identity,
    /// Oldest first: as posted, then each edit; the last is the text now.
    versions: Vec<Version>,
}

/// `GET /api/rooms/{room}/messages/{seq}/versions`: the texts a message has had — its edit
/// history, readable by whoever can read the room. A deleted message has none left (409).
async fn versions(
    State(state): State<AppState>,
    Path((room, seq)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Result<Json<VersionsPage>, ApiError> {
    let caller = require_reader(&state, &headers).await?;
    let room = normalize_room(&room)?;
    through_door(&state, &caller, &room).await?;
    let (author, versions) = message_versions(&state, &room, seq).await?;
    Ok(Json(VersionsPage {
        room,
        seq,
        author,
        versions,
    }))
}

/// The texts message `seq` of `room` has had, or why there are none to show: what the API and the
/// edit history page answer alike.
pub async fn message_versions(
    state: &AppState,
    room: &str,
    seq: u64,
) -> Result<(Identity, Vec<Version>), ApiError> {
    let refused = |code| ApiError::unavailable(LogError::Refused(code));
    state
        .rooms
        .open(room)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::unknown_room(room))?;
    match state
        .rooms
        .versions(room, seq)
        .await
        .map_err(ApiError::unavailable)?
    {
        Some(Versions::Texts(author, versions)) => Ok((author, versions)),
        Some(Versions::Deleted) => Err(refused(ErrorCode::MessageDeleted)),
        None => Err(refused(ErrorCode::NoSuchMessage)),
    }
}

/// `GET /api/openapi.json`
async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
