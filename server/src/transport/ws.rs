//! `/ws`: the browser's WebSocket. Owns one connection from upgrade to close: reads and validates
//! frames, hands accepted messages to the hub, and runs the writer that drains the connection's queue.
//!
//! Each connection is two tasks. The reader (this module's `connection`) decodes frames and answers;
//! the writer owns the socket's sending half, takes everything queued at once, feeds it and flushes
//! once. Closing is always a close frame with a code from `app::protocol::close_code`.

use std::time::Duration;

use app::protocol::{
    ClientMsg, ErrorCode, Identity, MAX_FRAME_BYTES, PROTOCOL_VERSION, ProtocolError, ServerMsg,
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
    hub::{Frame, Subscription},
    log::{GENERAL, HISTORY_ON_JOIN, NewMessage},
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

/// Socket buffers: small, because most connections are idle most of the time and these are allocated
/// per connection (the library defaults cost ~134 KiB per idle socket).
const READ_BUFFER_BYTES: usize = 4 * 1024;
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
    let author = user.name.clone();
    let Subscription {
        frames,
        replies,
        lagged,
        live_after,
        membership: _membership, // Held until this function returns: then the hub forgets us.
    } = state.hub.subscribe(GENERAL);

    // Everything up to `live_after` comes from the log, everything after it is already being queued:
    // sent in that order, the newcomer sees each message once and none is missed in between.
    let history = match state.log.recent(GENERAL, live_after, HISTORY_ON_JOIN).await {
        Ok(history) => history,
        Err(e) => {
            tracing::error!("cannot read history: {e}");
            Vec::new()
        }
    };
    let welcome = ServerMsg::Welcome {
        you: user.clone(),
        protocol: PROTOCOL_VERSION,
        epoch: state.log.epoch(GENERAL).unwrap_or_default(),
    };
    let first_frames: Vec<Frame> = std::iter::once(welcome)
        .chain(history.into_iter().map(ServerMsg::Message))
        .map(|msg| msg.encode().into())
        .collect();

    let (sink, mut stream) = socket.split();
    let (close_tx, close_rx) = oneshot::channel();
    let mut close_tx = Some(close_tx);
    let mut writer = tokio::spawn(write_loop(
        sink,
        first_frames,
        frames,
        close_rx,
        lagged.clone(),
        state.stop.clone(),
    ));
    tracing::debug!(%author, "connected");

    loop {
        tokio::select! {
            incoming = stream.next() => {
                let Some(Ok(message)) = incoming else { break };
                if close_tx.is_none() {
                    continue; // Closing: the peer's remaining frames are read and ignored.
                }
                let reply = match message {
                    Message::Text(text) if text.len() > MAX_FRAME_BYTES => {
                        close(&mut close_tx, close_code::MESSAGE_TOO_BIG, "frame too big");
                        continue;
                    }
                    Message::Binary(bytes) if bytes.len() > MAX_FRAME_BYTES => {
                        close(&mut close_tx, close_code::MESSAGE_TOO_BIG, "frame too big");
                        continue;
                    }
                    Message::Text(text) => handle(&state, &user, &text).await,
                    Message::Binary(_) => ServerMsg::from(ProtocolError {
                        code: ErrorCode::BinaryFrame,
                        message: "frames must be text (JSON)".into(),
                    }),
                    // Pings are answered by the library; a close is answered when we read on.
                    Message::Ping(_) | Message::Pong(_) | Message::Close(_) => continue,
                };
                if replies.send(reply.encode().into()).await.is_err() {
                    break;
                }
            }
            _ = &mut writer => {
                // The writer sent a close frame (or the socket failed): let the peer answer it, and
                // discard whatever it still sends meanwhile.
                let drain = async { while let Some(Ok(_)) = stream.next().await {} };
                let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
                tracing::debug!(%author, "disconnected");
                return;
            }
        }
    }
    writer.abort();
    tracing::debug!(%author, "disconnected");
}

/// Asks the writer to send a close frame; later calls do nothing.
fn close(close_tx: &mut Option<oneshot::Sender<Close>>, code: u16, reason: &'static str) {
    if let Some(tx) = close_tx.take() {
        let _ = tx.send(Close { code, reason });
    }
}

/// One text frame from the client, answered with the frame to send back to it alone.
async fn handle(state: &AppState, author: &Identity, text: &str) -> ServerMsg {
    match ClientMsg::decode(text) {
        Ok(ClientMsg::Send { client_id, body }) => {
            let stored = state
                .log
                .append(NewMessage {
                    room: GENERAL.to_owned(),
                    author: author.clone(),
                    client_id: client_id.clone(),
                    body,
                })
                .await;
            match stored {
                Ok(seq) => ServerMsg::Ack { client_id, seq },
                Err(e) => {
                    tracing::error!(author = %author.id, "could not store a message: {e}");
                    ServerMsg::from(ProtocolError {
                        code: ErrorCode::Unavailable,
                        message: "the message could not be stored; send it again".into(),
                    })
                }
            }
        }
        Err(err) => {
            tracing::debug!(author = %author.id, code = %err.code, "refused a frame");
            err.into()
        }
    }
}

/// Sends everything queued for the connection, batched: take all that is waiting, feed it, flush once.
/// Ends with a close frame when asked, when the hub gave up on this connection, or at shutdown.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    first_frames: Vec<Frame>,
    mut frames: mpsc::Receiver<Frame>,
    mut close_rx: oneshot::Receiver<Close>,
    lagged: CancellationToken,
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
    let mut batch = first_frames;
    let close = loop {
        if batch.is_empty() {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break going_away,
                _ = lagged.cancelled() => break too_slow,
                Ok(close) = &mut close_rx => break close,
                received = frames.recv_many(&mut batch, QUEUE_DRAIN_MAX) => {
                    if received == 0 {
                        return; // The connection is gone.
                    }
                }
            }
        }
        // A peer that stops reading blocks the write; shutdown and lagging must still win.
        tokio::select! {
            biased;
            _ = stop.cancelled() => break going_away,
            _ = lagged.cancelled() => break too_slow,
            result = write_batch(&mut sink, &mut batch) => if result.is_err() { return },
        }
    };
    let frame = CloseFrame {
        code: close.code,
        reason: close.reason.into(),
    };
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
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
const QUEUE_DRAIN_MAX: usize = 64;
