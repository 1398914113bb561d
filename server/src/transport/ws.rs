//! `/ws`: the browser's WebSocket. Owns one connection from upgrade to close: reads and validates
//! frames, hands accepted messages to the hub, and runs the writer that drains the connection's queue.
//!
//! Each connection is two tasks. The reader (this module's `connection`) decodes frames and answers;
//! the writer owns the socket's sending half, takes everything queued at once, feeds it and flushes
//! once. Closing is always a close frame with a code from `app::protocol::close_code`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use app::protocol::{
    ChatMessage, ClientMsg, Cursor, ErrorCode, HISTORY_ON_JOIN, HISTORY_PAGE_MAX, Identity,
    JoinMode, MAX_FRAME_BYTES, MAX_REPLAY, MessageKind, PROTOCOL_VERSION, ProtocolError, ServerMsg,
    close_code,
};
use axum::{
    Router,
    extract::{
        State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use futures::{SinkExt, StreamExt, stream::SplitSink};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::{
    AppState,
    hub::{Connection, Frame, Shared},
    log::{LogError, NewMessage},
    rate::TokenBucket,
    session,
};

/// The WebSocket library's own ceiling on one message. Frames between [`MAX_FRAME_BYTES`] and this are
/// read whole and refused by us with a proper 1009 close; beyond it the library aborts the read midway,
/// and the peer may see a reset instead of the close frame.
const HARD_FRAME_BYTES: usize = 1024 * 1024;

/// How long we wait for the peer to answer our close frame before dropping the connection.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// How long one write may take before the writer gives up on a peer that stopped reading, when it is
/// trying to close anyway.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// A write that makes no progress for this long means the peer stopped reading: drop it.
const STALLED_WRITE: Duration = Duration::from_secs(30);

/// Socket buffers: small, because most connections are idle most of the time (the library defaults
/// cost ~134 KiB per idle socket). The read buffer is allocated whole for every connection (4 KiB
/// measured 3 KiB more per idle connection than 1 KiB), and clients send little; the write buffer
/// only grows as it is used, and a larger one lets a batch go out in fewer writes.
const READ_BUFFER_BYTES: usize = 1024;
const WRITE_BUFFER_BYTES: usize = 8 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    if !session::origin_allowed(&headers, &state.allowed_origins) {
        return (
            StatusCode::FORBIDDEN,
            "this origin may not open Herald's WebSocket",
        )
            .into_response();
    }
    let Some(user) = state.sessions.from_headers(&headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            "choose a name first: no valid session cookie",
        )
            .into_response();
    };
    ws.max_message_size(HARD_FRAME_BYTES)
        .max_frame_size(HARD_FRAME_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            // Tracked so that shutdown can wait for every connection to send its close frame.
            let tasks = state.tasks.clone();
            tasks.track_future(connection(socket, state, user))
        })
}

/// Why the writer should stop, and the close frame that says so.
struct Close {
    code: u16,
    reason: &'static str,
}

async fn connection(socket: WebSocket, state: AppState, user: Identity) {
    let mut conn = state.hub.connect(Some(user.clone()));
    let Some(frames) = conn.take_frames() else {
        return;
    };
    let welcome = ServerMsg::Welcome {
        you: user.clone(),
        protocol: PROTOCOL_VERSION,
    };
    let (sink, mut stream) = socket.split();
    let (close_tx, close_rx) = oneshot::channel();
    let mut close_tx = Some(close_tx);
    let mut writer = tokio::spawn(write_loop(
        sink,
        vec![welcome.encode().into(), state.hub.rooms().encode().into()],
        frames,
        close_rx,
        conn.shared(),
        state.stop.clone(),
    ));
    tracing::debug!(user = %user.id, "connected");
    let mut budget = TokenBucket::new(state.limits.rate_per_sec, state.limits.rate_burst);

    loop {
        tokio::select! {
            incoming = stream.next() => {
                let Some(Ok(message)) = incoming else { break };
                if close_tx.is_none() {
                    continue; // Closing: the peer's remaining frames are read and ignored.
                }
                let replies = match message {
                    Message::Text(text) if text.len() > MAX_FRAME_BYTES => {
                        close(&mut close_tx, close_code::MESSAGE_TOO_BIG, "frame too big");
                        continue;
                    }
                    Message::Binary(bytes) if bytes.len() > MAX_FRAME_BYTES => {
                        close(&mut close_tx, close_code::MESSAGE_TOO_BIG, "frame too big");
                        continue;
                    }
                    Message::Text(text) => match budget.take(Instant::now()) {
                        // Boxed: handling a frame (a join's replay, say) needs kilobytes of state
                        // for a moment; inline, every idle connection would carry that space.
                        Ok(()) => Box::pin(handle(&state, &mut conn, &user, &text)).await,
                        Err(wait) => vec![ServerMsg::Error {
                            code: ErrorCode::RateLimited,
                            message: "too many messages at once; wait a moment".into(),
                            retry_after_ms: Some(wait.as_millis().max(1) as u64),
                        }],
                    },
                    Message::Binary(_) => vec![ServerMsg::from(ProtocolError {
                        code: ErrorCode::BinaryFrame,
                        message: "frames must be text (JSON)".into(),
                    })],
                    // Pings are answered by the library; a close is answered when we read on.
                    Message::Ping(_) | Message::Pong(_) | Message::Close(_) => continue,
                };
                let mut sent = true;
                for reply in replies {
                    sent &= conn.reply(reply.encode().into()).await;
                }
                if !sent {
                    break;
                }
            }
            _ = &mut writer => {
                // The writer sent a close frame (or the socket failed): let the peer answer it, and
                // discard whatever it still sends meanwhile.
                let drain = async { while let Some(Ok(_)) = stream.next().await {} };
                let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
                tracing::debug!(user = %user.id, "disconnected");
                return;
            }
        }
    }
    writer.abort();
    tracing::debug!(user = %user.id, "disconnected");
}

/// Asks the writer to send a close frame; later calls do nothing.
fn close(close_tx: &mut Option<oneshot::Sender<Close>>, code: u16, reason: &'static str) {
    if let Some(tx) = close_tx.take() {
        let _ = tx.send(Close { code, reason });
    }
}

/// One text frame from the client, answered with the frames to queue for it alone (in order).
async fn handle(
    state: &AppState,
    conn: &mut Connection,
    user: &Identity,
    text: &str,
) -> Vec<ServerMsg> {
    let refused = |code, message: &str| {
        vec![ServerMsg::from(ProtocolError {
            code,
            message: message.into(),
        })]
    };
    let unavailable = |e: LogError| {
        tracing::error!(user = %user.id, "message log: {e}");
        refused(
            ErrorCode::Unavailable,
            "the server could not do that just now; try again",
        )
    };
    match ClientMsg::decode_with(text, state.limits.max_body_bytes) {
        Ok(ClientMsg::Join { room, since }) => match join(state, conn, room, since).await {
            Ok(()) => Vec::new(), // `join` queued its answer itself, ahead of the held messages.
            Err(e) => unavailable(e),
        },
        Ok(ClientMsg::Leave { room }) => {
            if !conn.has_joined(&room) {
                return refused(ErrorCode::NotJoined, "you are not in that room");
            }
            conn.leave(&room);
            Vec::new()
        }
        Ok(ClientMsg::Typing { room }) => {
            if !conn.has_joined(&room) {
                return refused(ErrorCode::NotJoined, "join the room before typing in it");
            }
            conn.typing(&room, Instant::now());
            Vec::new()
        }
        Ok(ClientMsg::History {
            room,
            before,
            limit,
        }) => {
            if !conn.has_joined(&room) {
                return refused(ErrorCode::NotJoined, "join the room to read its history");
            }
            match history(state, room, before, limit.unwrap_or(HISTORY_PAGE_MAX)).await {
                Ok(page) => vec![page],
                Err(e) => unavailable(e),
            }
        }
        Ok(ClientMsg::Send {
            room,
            client_id,
            body,
        }) => {
            if !conn.has_joined(&room) {
                return refused(ErrorCode::NotJoined, "join the room before sending to it");
            }
            let stored = state
                .log
                .append(NewMessage {
                    kind: MessageKind::User,
                    room: room.clone(),
                    author: user.clone(),
                    client_id: client_id.clone(),
                    body,
                })
                .await;
            match stored {
                Ok(seq) => vec![ServerMsg::Ack {
                    room,
                    client_id,
                    seq,
                }],
                Err(e) => unavailable(e),
            }
        }
        Err(err) => {
            tracing::debug!(user = %user.id, code = %err.code, "refused a frame");
            vec![err.into()]
        }
    }
}

/// Joins `room` (DESIGN §3): hold its live messages, replay the log from the cursor up to where they
/// start, then let them through: `Joined`, the replay, then the live messages, each once.
async fn join(
    state: &AppState,
    conn: &mut Connection,
    room: String,
    since: Option<Cursor>,
) -> Result<(), LogError> {
    let epoch = state.log.ensure_room(&room).await?;
    let live_after = conn.join(&room);
    // From here on a failure must leave the room again: its live messages are being held for us.
    let replayed = replay(state, &room, &epoch, live_after, since).await;
    let Replay {
        mode,
        first_seq: from,
        messages: replay,
        ..
    } = match replayed {
        Ok(found) => found,
        Err(e) => {
            conn.leave(&room);
            return Err(e);
        }
    };
    let joined = ServerMsg::Joined {
        room: room.clone(),
        epoch,
        mode,
        first_seq: from,
        last_seq: live_after,
    };
    // Queued before the held messages are released, so nothing live can overtake the replay.
    for frame in std::iter::once(joined).chain(replay.into_iter().map(ServerMsg::Message)) {
        if !conn.reply(frame.encode().into()).await {
            break; // The connection is gone.
        }
    }
    let presence = conn.release(&room);
    conn.reply(presence.encode().into()).await;
    Ok(())
}

/// Up to `limit` messages of `room` before seq `before`, oldest first.
async fn history(
    state: &AppState,
    room: String,
    before: u64,
    limit: u32,
) -> Result<ServerMsg, LogError> {
    let epoch = state.log.ensure_room(&room).await?;
    let first_held = state.log.first_seq(&room).await?.unwrap_or(u64::MAX);
    let to = before.saturating_sub(1);
    let from = before.saturating_sub(u64::from(limit)).max(first_held);
    let messages = if from <= to {
        state.log.range(&room, from, to).await?
    } else {
        Vec::new()
    };
    Ok(ServerMsg::History {
        room,
        epoch,
        has_more: from > first_held && first_held != u64::MAX,
        messages,
    })
}

/// What a join replays of a room (DESIGN §3).
pub(crate) struct Replay {
    pub mode: JoinMode,
    /// The first seq replayed.
    pub first_seq: u64,
    /// The messages from `first_seq` up to where the live ones start, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Whether the room still holds messages older than `first_seq`.
    pub has_older: bool,
}

/// What a join with `since` replays of `room`, whose live messages start after `live_after`. The
/// WebSocket, Server-Sent Events and the server-rendered page all start a room from here.
pub(crate) async fn replay(
    state: &AppState,
    room: &str,
    epoch: &str,
    live_after: u64,
    since: Option<Cursor>,
) -> Result<Replay, LogError> {
    let first_held = state.log.first_seq(room).await?.unwrap_or(live_after + 1);
    let latest = live_after
        .saturating_sub(HISTORY_ON_JOIN as u64 - 1)
        .max(first_held);
    let (mode, from) = match since {
        None => (JoinMode::Latest, latest),
        Some(cursor) if cursor.epoch != epoch || cursor.seq > live_after => {
            (JoinMode::Reset, latest)
        }
        Some(cursor) => {
            let wanted = cursor.seq + 1;
            let floor = first_held.max(live_after.saturating_sub(MAX_REPLAY - 1));
            if wanted < floor {
                (JoinMode::Partial, floor)
            } else {
                (JoinMode::Full, wanted)
            }
        }
    };
    let messages = state.log.range(room, from, live_after).await?;
    Ok(Replay {
        mode,
        first_seq: from,
        messages,
        has_older: from > first_held,
    })
}

/// Sends everything queued for the connection, batched: take all that is waiting, feed it, flush once.
/// Ends with a close frame when asked, when the hub gave up on this connection, or at shutdown.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    first_frames: Vec<Frame>,
    mut frames: mpsc::Receiver<Frame>,
    mut close_rx: oneshot::Receiver<Close>,
    lag: Arc<Shared>,
    stop: CancellationToken,
) {
    let going_away = Close {
        code: close_code::GOING_AWAY,
        reason: "server shutting down",
    };
    let too_slow = Close {
        code: close_code::TOO_SLOW,
        reason: "too slow; reconnect later",
    };
    // Made once, not per frame: waiting on them registers a waker, and the server's stop token is
    // shared by every connection (its child is this connection's own, so polling it contends with
    // nobody).
    let stop = stop.child_token();
    let stopped = stop.cancelled();
    let given_up = lag.given_up.cancelled();
    tokio::pin!(stopped, given_up);
    let mut batch = first_frames;
    let mut rounds: u32 = 0;
    let close = loop {
        rounds = rounds.wrapping_add(1);
        // Under steady traffic frames are already waiting: take them without the full select
        // (which polls the stop and lag signals every time), checking those every so often.
        if batch.is_empty() && !rounds.is_multiple_of(64) {
            take_waiting(&mut frames, &lag, &mut batch);
        }
        if batch.is_empty() {
            tokio::select! {
                biased;
                _ = &mut stopped => break going_away,
                _ = &mut given_up => break too_slow,
                Ok(close) = &mut close_rx => break close,
                _ = lag.noted.notified() => {
                    // Everything queued before the lag goes first; the markers follow it.
                    while let Ok(frame) = frames.try_recv() {
                        lag.dequeued(&frame);
                        batch.push(frame);
                    }
                    for (room, resume_from) in lag.take_notes() {
                        batch.push(ServerMsg::Lagged { room, resume_from }.encode().into());
                    }
                }
                received = frames.recv() => {
                    let Some(frame) = received else {
                        return; // The connection is gone.
                    };
                    lag.dequeued(&frame);
                    batch.push(frame);
                    take_waiting(&mut frames, &lag, &mut batch);
                }
            }
        }
        // Usually the socket takes the batch at once: then no timer is needed. A peer that stops
        // reading blocks the write; shutdown and lagging must still win, and a peer that reads
        // nothing for STALLED_WRITE is dropped, so it holds no memory for long.
        let write = write_batch(&mut sink, &mut batch);
        tokio::pin!(write);
        let written = match futures::poll!(&mut write) {
            std::task::Poll::Ready(result) => result.is_ok(),
            std::task::Poll::Pending => tokio::select! {
                biased;
                _ = &mut stopped => break going_away,
                _ = &mut given_up => break too_slow,
                result = tokio::time::timeout(STALLED_WRITE, &mut write) => matches!(result, Ok(Ok(()))),
            },
        };
        if !written {
            return;
        }
    };
    let frame = CloseFrame {
        code: close.code,
        reason: close.reason.into(),
    };
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
}

/// Takes what is waiting in the queue into `batch`, up to a batch: one flush for a burst, and a
/// bounded amount of memory taken out of the queue's accounting at a time.
fn take_waiting(frames: &mut mpsc::Receiver<Frame>, lag: &Shared, batch: &mut Vec<Frame>) {
    let mut bytes: usize = batch.iter().map(|f| f.len()).sum();
    while batch.len() < BATCH_FRAMES && bytes < BATCH_BYTES {
        let Ok(frame) = frames.try_recv() else { break };
        bytes += frame.len();
        lag.dequeued(&frame);
        batch.push(frame);
    }
}

/// Feeds every frame of `batch` (leaving it empty) and flushes once.
async fn write_batch(
    sink: &mut SplitSink<WebSocket, Message>,
    batch: &mut Vec<Frame>,
) -> Result<(), axum::Error> {
    for frame in batch.drain(..) {
        sink.feed(Message::Text(frame)).await?;
    }
    sink.flush().await
}

/// Most frames one flush carries: large enough to batch a burst, small enough to start writing soon.
const BATCH_FRAMES: usize = 64;

/// A batch stops growing past this many bytes: what a stalled peer's blocked write holds outside the
/// queue's own bound.
const BATCH_BYTES: usize = 64 * 1024;
