//! `/ws`: the browser's WebSocket. Owns one connection from upgrade to close: the socket loop that
//! reads frames (each within its person's and address's budgets) and hands them to the connection's
//! session (`session.rs`: one method per command), and writes out the connection's queue.
//!
//! Each connection is one task and holds no buffer while idle. It writes what is queued in batches
//! (one vectored write each) and reads the client meanwhile; its sends are pipelined (acked in order
//! as they are committed). A client that stops reading stops being read once its queue is at its
//! bound, so its own replies cannot pile up. Closing is always a close frame with the code and reason
//! of an `app::protocol::Disconnect`, or the peer's own code echoed when it closed first.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::Arc,
    task::Poll,
    time::{Duration, Instant},
};

use app::protocol::{
    Disconnect, ErrorCode, Identity, MAX_FRAME_BYTES, PROTOCOL_VERSION, ProtocolError, ServerMsg,
};
use axum::{
    Extension, Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

use crate::{
    AppState,
    frame::{Frame, opcode},
    metrics,
    peer::{AtCap, Client},
    people::Role,
    rooms::{Drain, Handle, SendQueue},
    transport::websocket::{Event, Incoming, Socket, Upgrade},
};

mod session;

use session::{InFlight, Session, Spending, first_answer, not_stored};

/// How long we wait for the peer to answer our close frame before dropping the connection.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// How long the last write may take when closing anyway (shutdown, a peer too slow).
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// A write that makes no progress for this long means the peer stopped reading: drop it.
const STALLED_WRITE: Duration = Duration::from_secs(30);

/// Most frames one write carries: large enough to batch a burst, small enough to start writing soon.
const BATCH_FRAMES: usize = 64;

/// A batch stops growing past this many bytes: what a stalled peer's blocked write holds outside the
/// queue's own bound.
const BATCH_BYTES: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

async fn upgrade(
    upgrade: Upgrade,
    State(state): State<AppState>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
) -> Response {
    if !crate::session::origin_allowed(&headers, &state.allowed_origins) {
        tracing::info!(
            origin = headers.get("origin").and_then(|v| v.to_str().ok()),
            "refused a WebSocket from an origin not allowed"
        );
        return (
            StatusCode::FORBIDDEN,
            "this origin may not open Herald's WebSocket",
        )
            .into_response();
    }
    let Some(signed_in) = state.sessions.signed_in(&headers).await else {
        tracing::info!("refused a WebSocket without a valid session");
        return (
            StatusCode::UNAUTHORIZED,
            "choose a name first: no valid session cookie",
        )
            .into_response();
    };
    let (user, role, session) = (
        signed_in.account.identity(),
        signed_in.account.role,
        signed_in.session,
    );
    // The person's budget, shared by all their connections; held by this one from here.
    let person = state.send_budgets.hold(&user.id);
    if person.holders > state.limits.max_sockets_per_person {
        tracing::info!(user = %user.id, "refused a WebSocket over the person's socket cap");
        return too_many(
            "too many connections open for one person: close a tab or another device first",
        );
    }
    // And their address's, shared by everyone there (new sessions cost nothing to make). Behind a
    // proxy the socket is also one of the address's connections (see `peer::Connections`).
    let (address, key, slot) = match client {
        Some(Extension(client)) => match state.connections.take_stream(&client) {
            Ok(slot) => (
                Some(
                    state
                        .address_budgets
                        .hold(&format!("addr:{}", client.key())),
                ),
                Some(client.key()),
                slot,
            ),
            Err(AtCap) => {
                tracing::info!(client = %client.key(), "refused a WebSocket over its address's cap");
                return too_many("too many connections open from this address: close some first");
            }
        },
        None => (None, None, None),
    };
    let spending = Spending {
        person,
        address,
        client: key,
        _slot: slot,
    };
    // Tracked so that shutdown can wait for every connection to send its close frame.
    let tasks = state.tasks.clone();
    let request_id = crate::request_id(&headers).to_owned();
    upgrade.on_upgrade(move |socket| {
        tasks.track_future(connection(
            socket, state, user, role, session, spending, request_id,
        ))
    })
}

/// 429 before the upgrade, with a hint to come back in a while (the page reconnects by itself).
fn too_many(why: &'static str) -> Response {
    let mut refused = (StatusCode::TOO_MANY_REQUESTS, why).into_response();
    refused
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
    refused
}

/// How a connection ends.
enum End {
    /// The peer went away, or its socket failed: nothing more can be said.
    Gone,
    /// The peer read nothing for [`STALLED_WRITE`]: dropped without a goodbye.
    Stalled,
    /// We close: send this close frame, then let the peer answer it.
    Close { code: u16, reason: &'static str },
    /// The peer closed: answer with its code.
    Answer(u16),
}

impl End {
    /// As `herald_disconnects_total` counts it.
    fn reason(&self) -> &'static str {
        match self {
            End::Gone => "client_gone",
            End::Stalled => "stalled",
            End::Close { code, .. } => crate::metrics::close_reason(*code),
            End::Answer(_) => "client_closed",
        }
    }
}

impl From<Disconnect> for End {
    fn from(why: Disconnect) -> Self {
        End::Close {
            code: why.code(),
            reason: why.reason(),
        }
    }
}

/// How far [`Link::write_now`] got.
enum WriteProgress {
    /// Nothing was being written.
    Idle,
    /// The batch under way is out.
    Done,
    /// The peer must read before the rest can go.
    Waiting,
}

/// The timer on a write that waits for the peer: armed when a write blocks, off once it completes.
/// A write that makes no progress for [`STALLED_WRITE`] drops the connection.
#[derive(Default)]
struct Stall(Option<Pin<Box<tokio::time::Sleep>>>);

impl Stall {
    fn arm(&mut self) {
        self.0
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(STALLED_WRITE)));
    }

    fn disarm(&mut self) {
        self.0 = None;
    }

    /// Resolves when an armed timer runs out; never while disarmed.
    async fn expired(&mut self) {
        match self.0.as_mut() {
            Some(timer) => timer.await,
            None => std::future::pending().await,
        }
    }
}

/// The socket and the queue written to it.
struct Link {
    socket: Socket,
    queue: Arc<SendQueue>,
    /// Batches taken from the queue, to time one in [`metrics::DELIVERY_SAMPLE`].
    writes: u32,
    /// The queue was asked to time its next batch ([`SendQueue::time_next`]).
    timing_asked: bool,
    /// The metrics' clock on the batch being written: when its oldest frame was queued.
    timing: Option<Instant>,
    metrics: metrics::Metrics,
    /// The connection's id, for its log lines.
    id: u64,
}

/// Every line a connection logs carries its id (`connection`); its first one also its upgrade
/// request's id and its user's (never their name: that is theirs). Fields, not a span: a span
/// kept open for each connection costs ~2 KB of an idle connection's memory.
async fn connection(
    socket: Socket,
    state: AppState,
    user: Identity,
    role: Role,
    session: String,
    spending: Spending,
    request_id: String,
) {
    let mut conn = state.rooms.connect_signed_in(user.clone(), &session);
    drop(session);
    let id = conn.id();
    if state.stop.is_cancelled() {
        // Upgraded just as shutdown began, after the hub told every connection.
        conn.queue().close(Disconnect::GoingAway);
    }
    let welcome = ServerMsg::Welcome {
        you: user.clone(),
        protocol: PROTOCOL_VERSION,
        limits: state.limits.announced(),
    };
    conn.reply(welcome.encode().into());
    conn.reply(state.rooms.list().encode().into());
    // Then their own rooms (a connection that cannot have them now gets them when they change).
    match crate::access::mine(&state.sessions.people, &user.id).await {
        Ok(mine) => conn.reply(mine.encode().into()),
        Err(e) => tracing::warn!(connection = id, "cannot list a person's own rooms: {e}"),
    }
    // Then where they have read each of their rooms, and what is unread there.
    crate::reading::welcome(&state, conn.queue(), &user.id, role);
    let mut link = Link {
        socket,
        queue: conn.queue(),
        writes: 0,
        timing_asked: false,
        timing: None,
        metrics: state.metrics.clone(),
        id,
    };
    let live = state.metrics.connection(metrics::WEBSOCKET);
    tracing::info!(
        connection = id,
        request_id,
        user = %user.id,
        transport = "websocket",
        "connected"
    );
    // Not kept for the connection's life: every idle connection would carry it.
    drop(request_id);
    let end = serve(&state, &mut conn, &mut link, (&user, role), &spending).await;
    drop(conn); // Out of its rooms at once, not after the goodbye.
    let reason = end.reason();
    match &end {
        End::Close { code, .. } if *code != Disconnect::GoingAway.code() => {
            tracing::warn!(connection = id, reason, code, "closed the connection")
        }
        End::Stalled => {
            tracing::warn!(
                connection = id,
                reason,
                "dropped a connection that stopped reading"
            )
        }
        _ => tracing::info!(connection = id, reason, "disconnected"),
    }
    link.end(end).await;
    live.ended(reason);
}

/// Writes what is queued, reads and answers the client's frames, until the connection must end.
/// Reading goes on while a write waits for the peer, as long as the connection's own queue is below
/// its bound and not too many of its sends are in flight: past either, the client is not read until
/// it has read what it was sent.
async fn serve(
    state: &AppState,
    conn: &mut Handle,
    link: &mut Link,
    (user, role): (&Identity, Role),
    spending: &Spending,
) -> End {
    let mut in_flight = InFlight::default();
    let mut stall = Stall::default();
    loop {
        if let Err(end) = link.refill() {
            return end;
        }
        let writing = match link.write_now(&mut stall).await {
            Ok(WriteProgress::Done) => continue, // The next batch, if any.
            Ok(WriteProgress::Waiting) => true,
            Ok(WriteProgress::Idle) => false,
            Err(end) => return end,
        };
        let read = in_flight.may_read(&link.queue);
        let event = tokio::select! {
            biased;
            _ = link.queue.ready.notified() => {
                // While writing, more frames wait for the batch to finish; only a close cannot.
                if writing && let Some(why) = link.queue.closing() {
                    return why.into();
                }
                continue;
            }
            _ = stall.expired() => return End::Stalled,
            (room, client_id, message, stored, since) = first_answer(&mut in_flight), if !in_flight.is_empty() => {
                state.metrics.log_append().observe(since.elapsed().as_secs_f64());
                // Writing in a room reads it up to what one wrote.
                if let (true, Ok(seq), Some(epoch)) = (message, &stored, state.rooms.epoch(&room)) {
                    state.positions.set(&user.id, &room, &epoch, *seq, crate::reading::Move::Wrote);
                }
                conn.reply(match stored {
                    Ok(seq) => ServerMsg::Ack { room, client_id, seq }.encode().into(),
                    Err(e) => not_stored(user, client_id, e).encode().into(),
                });
                continue;
            }
            event = link.socket.next_event(read, MAX_FRAME_BYTES) => event,
        };
        let incoming = match event {
            Ok(Event::Written) => {
                stall.disarm();
                link.written();
                continue;
            }
            Ok(Event::Incoming(Ok(incoming))) => incoming,
            Ok(Event::Incoming(Err(broken))) => {
                return End::Close {
                    code: broken.code,
                    reason: broken.reason,
                };
            }
            Ok(Event::Ended) | Err(_) => return End::Gone,
        };
        match incoming {
            Incoming::Text(text) => match spending.take(state).await {
                // Boxed: handling a frame (a join's replay, say) needs kilobytes of state for a
                // moment; inline, every idle connection would carry that space.
                Ok(()) => {
                    let mut session = Session {
                        state,
                        conn,
                        link,
                        in_flight: &mut in_flight,
                        user,
                        role,
                        spending,
                    };
                    if let Err(end) = Box::pin(session.command(&text)).await {
                        return end;
                    }
                }
                Err((wait, whose)) => {
                    state.metrics.rate_limited(metrics::WEBSOCKET);
                    tracing::debug!(
                        connection = conn.id(),
                        "refused a frame over the rate limit"
                    );
                    conn.reply(
                        ServerMsg::Error {
                            code: ErrorCode::RateLimited,
                            message: format!(
                                "Slow down: what you send goes again in {} s ({whose})",
                                wait.as_secs_f64().ceil().max(1.0)
                            ),
                            retry_after_ms: Some(wait.as_millis().max(1) as u64),
                            client_id: None,
                        }
                        .encode()
                        .into(),
                    )
                }
            },
            Incoming::Binary(_) => conn.reply(
                ServerMsg::from(ProtocolError {
                    code: ErrorCode::BinaryFrame,
                    message: "frames must be text (JSON)".into(),
                })
                .encode()
                .into(),
            ),
            Incoming::Ping(payload) => conn.reply(Frame::new(opcode::PONG, &payload)),
            Incoming::TooBig => return Disconnect::MessageTooBig.into(),
            // A code the decoder let through may be sent back; none given, the answer is "normal".
            Incoming::Close(code) => return End::Answer(code.unwrap_or(1000)),
        }
    }
}

impl Link {
    /// Unless a write is under way, gives the socket the next batch from the queue (or the lag
    /// markers once nothing queued before them is left).
    fn refill(&mut self) -> Result<(), End> {
        if self.socket.is_writing() {
            return Ok(());
        }
        // One batch in DELIVERY_SAMPLE is timed, from its first frame's queuing to the socket.
        let since = if self.timing_asked {
            self.queue.timed_since()
        } else {
            None
        };
        match self.queue.take(BATCH_FRAMES, BATCH_BYTES) {
            Drain::Nothing => {}
            Drain::Close(why) => return Err(why.into()),
            Drain::Frames(frames) => {
                self.writes = self.writes.wrapping_add(1);
                if since.is_some() {
                    self.timing_asked = false;
                }
                self.timing = since;
                // The queue notes the time only when asked: no clock read per delivery.
                if !self.timing_asked && self.writes.is_multiple_of(metrics::DELIVERY_SAMPLE) {
                    self.queue.time_next();
                    self.timing_asked = true;
                }
                self.socket.send(frames);
            }
            Drain::Lagged(notes) => {
                tracing::info!(
                    connection = self.id,
                    rooms = notes.len(),
                    "lagged: told to catch up from the log"
                );
                self.socket.send(
                    notes
                        .into_iter()
                        .map(|(room, resume_from)| {
                            ServerMsg::Lagged { room, resume_from }.encode().into()
                        })
                        .collect(),
                )
            }
        }
        Ok(())
    }

    /// Takes the write under way as far as the socket allows without waiting. Usually it takes the
    /// whole batch at once, and no timer is needed; one that must wait arms `stall`.
    async fn write_now(&mut self, stall: &mut Stall) -> Result<WriteProgress, End> {
        if !self.socket.is_writing() {
            stall.disarm();
            return Ok(WriteProgress::Idle);
        }
        match futures::poll!(self.socket.flush()) {
            Poll::Ready(Ok(())) => {
                stall.disarm();
                self.written();
                Ok(WriteProgress::Done)
            }
            Poll::Ready(Err(_)) => Err(End::Gone),
            Poll::Pending => {
                stall.arm();
                Ok(WriteProgress::Waiting)
            }
        }
    }

    /// The batch under way is out: if it was timed, its time goes to the metrics.
    fn written(&mut self) {
        if let Some(since) = self.timing.take() {
            self.metrics
                .delivery()
                .observe(since.elapsed().as_secs_f64());
        }
    }

    /// Writes out everything queued, batch by batch, waiting for the peer as needed (not reading
    /// meanwhile: a join's replay uses it to stay within the queue's bound). As in `serve`, a close
    /// from the hub still wins, and a peer that reads nothing for [`STALLED_WRITE`] is dropped.
    async fn flush(&mut self) -> Result<(), End> {
        let mut stall = Stall::default();
        loop {
            self.refill()?;
            match self.write_now(&mut stall).await? {
                WriteProgress::Idle => return Ok(()),
                WriteProgress::Done => continue,
                WriteProgress::Waiting => {}
            }
            tokio::select! {
                biased;
                _ = self.queue.ready.notified() => {
                    if let Some(why) = self.queue.closing() {
                        return Err(why.into());
                    }
                }
                _ = stall.expired() => return Err(End::Stalled),
                event = self.socket.next_event(false, MAX_FRAME_BYTES) => {
                    // Not reading: the only event is the end of the write (or its failure).
                    if event.is_err() {
                        return Err(End::Gone);
                    }
                    stall.disarm();
                    self.written();
                }
            }
        }
    }

    /// Says goodbye as `end` requires.
    async fn end(&mut self, end: End) {
        let (code, reason, answered) = match end {
            End::Gone | End::Stalled => return,
            End::Close { code, reason } => (code, reason, false),
            End::Answer(code) => (code, "", true),
        };
        // A close frame may only follow whole frames: what is half-written is finished first.
        let socket = &mut self.socket;
        let sent = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, async {
            socket.flush().await?;
            socket.send(VecDeque::from([Frame::close(code, reason)]));
            socket.flush().await
        })
        .await;
        if answered || !matches!(sent, Ok(Ok(()))) {
            return;
        }
        // Let the peer answer, discarding whatever else it still sends meanwhile.
        let answer = async {
            while let Ok(Event::Incoming(incoming)) =
                self.socket.next_event(true, MAX_FRAME_BYTES).await
            {
                if matches!(incoming, Ok(Incoming::Close(_)) | Err(_)) {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, answer).await;
    }
}
