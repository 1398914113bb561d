//! `GET /api/rooms/{room}/events`: a room as Server-Sent Events, for readers that only listen
//! (`curl -N`, the browser's `EventSource`, dashboards).
//!
//! Each reader is an observer connection in the hub (it sees the room without counting as one of
//! the people in it) with the same bounded queue as a WebSocket. Events: `joined` first (the same
//! full / partial / reset / latest answer as the WebSocket's), then `message` and `announcement`
//! (with `id: <seq>`, so `EventSource` resumes by itself through `Last-Event-ID`), and `presence`.
//! A reader too slow for its queue is not cut off and holds nobody up: the hub stops queuing for it,
//! and it is caught up here from the log, from the last event it was sent.

use std::{convert::Infallible, time::Duration};

use app::protocol::{Cursor, JoinMode, normalize_room};
use axum::{
    Extension, Router,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::{
    AppState,
    frame::{Frame, Kind},
    peer::Client,
    rooms::{self, Drain, Handle, QUEUE_FRAMES},
    transport::auth::{ApiError, require_reader, through_door},
};

/// How often an idle stream gets a comment line, so proxies and browsers keep it open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Events waiting between the room and the HTTP response: a reader slower than this backs up into
/// its hub queue, which is bounded.
const EVENTS_IN_FLIGHT: usize = 16;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/rooms/{room}/events", get(events))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Resume after this seq (what `Last-Event-ID` says, for clients that cannot set headers).
    since: Option<u64>,
    /// The epoch the reader's copy belongs to; a different one answers `reset`.
    epoch: Option<String>,
}

async fn events(
    State(state): State<AppState>,
    Path(room): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = require_reader(&state, &headers).await?;
    let room = normalize_room(&room)?;
    through_door(&state, &caller, &room).await?;
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(
            "invalid_query",
            format!("since is a whole number, epoch a string: {}", e.body_text()),
        )
    })?;
    let (epoch, _, _lease) = state
        .rooms
        .open(&room)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::unknown_room(&room))?;
    // `Last-Event-ID` is what `EventSource` sends when it reconnects by itself; it wins over `since`.
    // It is always one of our seqs: anything else is refused, not taken as "from the start".
    let last_event_id = match headers
        .get("last-event-id")
        .map(|v| v.to_str().map(str::trim))
    {
        None | Some(Ok("")) => None,
        Some(Ok(id)) if id.bytes().all(|b| b.is_ascii_digit()) => {
            Some(id.parse::<u64>().map_err(|_| invalid_last_event_id())?)
        }
        Some(_) => return Err(invalid_last_event_id()),
    };
    let since = last_event_id.or(query.since).map(|seq| Cursor {
        epoch: query.epoch.unwrap_or(epoch),
        seq,
    });

    // Behind a proxy, a stream is one of the client's connections (held while it feeds).
    let slot = match client {
        Some(Extension(client)) => state
            .connections
            .take_stream(&client)
            .map_err(|_| ApiError::too_many_connections())?,
        None => None,
    };
    let (tx, rx) = mpsc::channel::<Event>(EVENTS_IN_FLIGHT);
    let feeding = state.clone();
    tokio::spawn(state.tasks.track_future(async move {
        feed(feeding, room, since, tx).await;
        drop(slot);
    }));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        Some((Ok::<_, Infallible>(event), rx))
    });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response();
    // Never cached, and never held back by a buffering proxy (nginx honours this header).
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn invalid_last_event_id() -> ApiError {
    ApiError::bad_request(
        "invalid_last_event_id",
        "Last-Event-ID is the seq of the last event received (a whole number)",
    )
}

/// Where a reader's stream stands: the room's epoch and the last seq sent.
struct Position {
    epoch: String,
    seq: u64,
}

/// Fills one reader's stream until it goes away, the server stops, or the hub gives up on it.
async fn feed(state: AppState, room: String, since: Option<Cursor>, tx: mpsc::Sender<Event>) {
    let live = state.metrics.connection(crate::metrics::SSE);
    let conn = state.rooms.connect(None);
    let id = conn.id();
    tracing::info!(connection = id, room = %room, transport = "sse", "event stream started");
    let reason = stream(&state, conn, &room, since, &tx).await;
    tracing::info!(connection = id, reason, "event stream ended");
    live.ended(reason);
}

/// [`feed`]'s loop; returns why it ended, as `herald_disconnects_total` counts it.
async fn stream(
    state: &AppState,
    mut conn: Handle,
    room: &str,
    since: Option<Cursor>,
    tx: &mpsc::Sender<Event>,
) -> &'static str {
    let queue = conn.queue();
    let out = Out {
        tx,
        stop: &state.stop,
    };
    let Some(mut at) = subscribe(state, &mut conn, room, since, &out).await else {
        return "unavailable";
    };
    loop {
        match queue.take(QUEUE_FRAMES, usize::MAX) {
            Drain::Close(why) => return crate::metrics::close_reason(why.code()),
            Drain::Frames(frames) => {
                for frame in frames {
                    if !out.forward(&frame, &mut at).await {
                        return out.why_not_sent();
                    }
                }
            }
            // Everything queued before the lag went first; the rest comes from the log.
            Drain::Lagged(_) => {
                let cursor = Cursor {
                    epoch: at.epoch.clone(),
                    seq: at.seq,
                };
                match subscribe(state, &mut conn, room, Some(cursor), &out).await {
                    Some(now) => at = now,
                    None => return "unavailable",
                }
            }
            Drain::Nothing => tokio::select! {
                biased;
                _ = state.stop.cancelled() => return "going_away",
                _ = tx.closed() => return "client_gone",
                _ = queue.ready.notified() => {}
            },
        }
    }
}

/// Joins `room` for this reader as the WebSocket does (docs/ARCHITECTURE.md): `joined`, the replay
/// and the room's people go straight to the stream; live messages wait in the hub until the replay
/// is out.
async fn subscribe(
    state: &AppState,
    conn: &mut Handle,
    room: &str,
    since: Option<Cursor>,
    out: &Out<'_>,
) -> Option<Position> {
    let joining = state.rooms.join(conn, room, since).await.ok()?;
    let joined = joining.joined(room);
    let mut at = Position {
        epoch: joining.epoch.clone(),
        seq: match joining.mode {
            JoinMode::Full | JoinMode::Partial => joining.first_seq.saturating_sub(1),
            JoinMode::Reset | JoinMode::Latest => 0,
        },
    };
    let mut delivered = out.forward(&Frame::of(&joined), &mut at).await;
    for frame in &joining.replay {
        if !delivered {
            break;
        }
        delivered = out.forward(frame, &mut at).await;
    }
    let presence = rooms::go_live(conn, room);
    if !delivered || !out.forward(&Frame::of(&presence), &mut at).await {
        return None;
    }
    Some(at)
}

/// The sending end of one reader's stream.
struct Out<'a> {
    tx: &'a mpsc::Sender<Event>,
    stop: &'a tokio_util::sync::CancellationToken,
}

impl Out<'_> {
    /// Sends the event for one server frame, from its JSON as encoded once (frames readers do not
    /// get are skipped). False once the reader is gone or the server is stopping.
    async fn forward(&self, frame: &Frame, at: &mut Position) -> bool {
        let event = match frame.kind() {
            Kind::Joined => "joined",
            Kind::Presence => "presence",
            Kind::Entry { seq, event } => {
                if seq <= at.seq {
                    return true; // Already sent (a catch-up overlapping what was queued).
                }
                at.seq = seq;
                let event = Event::default()
                    .event(event)
                    .id(seq.to_string())
                    .data(frame.as_str());
                return self.send(event).await;
            }
            Kind::Other => return true,
        };
        self.send(Event::default().event(event).data(frame.as_str()))
            .await
    }

    async fn send(&self, event: Event) -> bool {
        tokio::select! {
            sent = self.tx.send(event) => sent.is_ok(),
            _ = self.stop.cancelled() => false,
        }
    }

    /// Why [`Self::send`] said no.
    fn why_not_sent(&self) -> &'static str {
        if self.stop.is_cancelled() {
            "going_away"
        } else {
            "client_gone"
        }
    }
}
