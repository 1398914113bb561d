//! A WebSocket connection's session: what one person's connection may do, one method per command
//! of the protocol (`join`, `leave`, `typing`, `history`, `send`), the shape of mini-redis's
//! `Handler` and `cmd/`. The socket loop (`super`) reads a frame, decodes nothing itself, and hands
//! the text to [`Session::command`]; the answers go on the connection's queue. What a connection's
//! sends are spent from ([`Spending`]) and the sends on their way to the log ([`InFlight`]) are
//! kept here too.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use app::protocol::{
    Change, ClientMsg, Cursor, ErrorCode, HISTORY_PAGE_MAX, Identity, MAX_CLIENT_ID_BYTES,
    MAX_ROOM_CHARS, MessageKind, ProtocolError, ServerMsg, is_private,
};

use super::{End, Link};
use crate::{
    AppState, access,
    frame::Frame,
    peer::Slot,
    people::Role,
    rate::Held,
    rooms::{
        self, Appending, Content, Handle, LogError, NewEntry, PageAt, QUEUE_FRAMES, ReadOnly,
        SendQueue,
    },
};

/// Sends a connection may have handed to the log and not yet had acknowledged; past this it is not
/// read until acks come back (clients learn it in `welcome`).
pub(super) const MAX_IN_FLIGHT: usize = app::protocol::MAX_IN_FLIGHT as usize;

/// Most bytes one send brings back to its own connection beyond the send's own length: its echo
/// (the message again, with its author, seq, time and kind) and its ack (room, client id, seq).
/// Checked against the encoder in the tests below.
pub(super) const ANSWER_OVERHEAD_BYTES: usize = 512 + MAX_ROOM_CHARS + MAX_CLIENT_ID_BYTES;

/// Every send in flight may come back as two frames (its echo and its ack), and the queue must have
/// room for both whatever else arrives.
const _: () = assert!(2 * MAX_IN_FLIGHT < QUEUE_FRAMES);

/// A connection's sends on their way to the log, oldest first (acks go out in this order), and the
/// room they hold in the connection's queue: what the server sends back for a send it accepted is
/// its own doing, and must never make a client that reads along count as too slow.
#[derive(Default)]
pub(super) struct InFlight {
    sends: VecDeque<InFlightSend>,
    /// What the answers to `sends` will need in the queue, at most.
    answer_bytes: usize,
}

pub(super) struct InFlightSend {
    room: String,
    client_id: String,
    /// A message (not a change): once stored, its sender has read the room up to it.
    message: bool,
    answer: Appending,
    answer_bytes: usize,
    /// When it was handed to the log (for `herald_log_append_seconds`).
    since: Instant,
}

impl InFlight {
    pub(super) fn len(&self) -> usize {
        self.sends.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.sends.is_empty()
    }

    pub(super) fn push(
        &mut self,
        (room, client_id, message): (String, String, bool),
        answer: Appending,
        sent_bytes: usize,
    ) {
        let answer_bytes = sent_bytes.saturating_add(ANSWER_OVERHEAD_BYTES);
        self.answer_bytes = self.answer_bytes.saturating_add(answer_bytes);
        self.sends.push_back(InFlightSend {
            room,
            client_id,
            message,
            answer,
            answer_bytes,
            since: Instant::now(),
        });
    }

    /// Whether the client may be read: fewer than [`MAX_IN_FLIGHT`] sends unanswered, and room in
    /// `queue` for all their answers besides what it holds.
    pub(super) fn may_read(&self, queue: &SendQueue) -> bool {
        self.len() < MAX_IN_FLIGHT && queue.has_room(2 * self.len(), self.answer_bytes)
    }
}

/// What a connection's frames are spent from, held while it lives: its person's budget and its
/// address's (none for a request that came without a client, only in-process tests), and, behind
/// a proxy, its place among its address's connections.
pub(super) struct Spending {
    pub(super) person: Held,
    pub(super) address: Option<Held>,
    /// The client's address as budgets key it ([`Client::key`]).
    pub(super) client: Option<std::net::IpAddr>,
    pub(super) _slot: Option<Slot>,
}

impl Spending {
    /// Takes a frame from each budget, or says how long until it may go and whose budget is spent.
    pub(super) async fn take(&self, state: &AppState) -> Result<(), (Duration, &'static str)> {
        state
            .send_budgets
            .take(&self.person.budget)
            .await
            .map_err(|wait| (wait, "your tabs and devices share one budget"))?;
        if let Some(address) = &self.address {
            state
                .address_budgets
                .take(&address.budget)
                .await
                .map_err(|wait| (wait, "everyone at your network address shares one budget"))?;
        }
        Ok(())
    }
}

/// A send answered: its room, client id, whether it was a message, what the log said, and when it
/// was handed to the log.
pub(super) type Answered = (String, String, bool, Result<u64, LogError>, Instant);

/// The answer to the oldest send in flight (cancel-safe: it stays first until answered).
pub(super) async fn first_answer(in_flight: &mut InFlight) -> Answered {
    let Some(first) = in_flight.sends.front_mut() else {
        return std::future::pending().await;
    };
    let stored = (&mut first.answer).await.unwrap_or(Err(LogError::Closed));
    let Some(done) = in_flight.sends.pop_front() else {
        return std::future::pending().await;
    };
    // Its answers are in the queue now (the echo before the ack), counted there.
    in_flight.answer_bytes = in_flight.answer_bytes.saturating_sub(done.answer_bytes);
    (done.room, done.client_id, done.message, stored, done.since)
}

/// What a client is told when the log refused or failed its `client_id`'s send or change.
pub(super) fn not_stored(user: &Identity, client_id: String, e: LogError) -> ServerMsg {
    match e {
        LogError::Refused(code) => ServerMsg::Error {
            code,
            message: code.refusal().into(),
            retry_after_ms: None,
            client_id: Some(client_id),
        },
        e => unavailable(user, e),
    }
}

/// What a client is told when the log failed it.
pub(super) fn unavailable(user: &Identity, e: LogError) -> ServerMsg {
    tracing::error!(user = %user.id, "message log: {e}");
    ServerMsg::from(ProtocolError {
        code: ErrorCode::Unavailable,
        message: "the server could not do that just now; try again".into(),
    })
}

/// One frame's worth of a connection: what a command may use and change.
pub(super) struct Session<'a> {
    pub state: &'a AppState,
    pub conn: &'a mut Handle,
    pub link: &'a mut Link,
    pub in_flight: &'a mut InFlight,
    pub user: &'a Identity,
    pub role: Role,
    pub spending: &'a Spending,
}

impl Session<'_> {
    /// Handles one text frame from the client (already within its rate); its answers are queued on
    /// the connection. `Err` only when the connection must end.
    pub async fn command(&mut self, text: &str) -> Result<(), End> {
        match ClientMsg::decode_with(text, self.state.limits.max_body_bytes) {
            Ok(ClientMsg::Join {
                room,
                since,
                create,
            }) => return self.join(room, since, create).await,
            Ok(ClientMsg::Leave { room }) => self.leave(room),
            Ok(ClientMsg::Typing { room }) => self.typing(room),
            Ok(ClientMsg::History {
                room,
                before,
                limit,
            }) => {
                self.history(room, before, limit.unwrap_or(HISTORY_PAGE_MAX))
                    .await
            }
            Ok(ClientMsg::Send {
                room,
                client_id,
                body,
                reply_to,
            }) => self.send(
                room,
                client_id,
                Content::Message { body, reply_to },
                text.len(),
            ),
            Ok(ClientMsg::Edit {
                room,
                client_id,
                target,
                body,
            }) => self.send(
                room,
                client_id,
                Content::Change {
                    target,
                    change: Change::Edit { body },
                },
                text.len(),
            ),
            Ok(ClientMsg::Delete {
                room,
                client_id,
                target,
            }) => self.send(
                room,
                client_id,
                Content::Change {
                    target,
                    change: Change::Delete,
                },
                text.len(),
            ),
            Ok(ClientMsg::React {
                room,
                client_id,
                target,
                emoji,
                remove,
            }) => self.send(
                room,
                client_id,
                Content::Change {
                    target,
                    change: Change::React { emoji, remove },
                },
                text.len(),
            ),
            Ok(ClientMsg::Read { room, seq, rewind }) => self.read(room, seq, rewind),
            Ok(ClientMsg::ReadAll) => {
                let (state, account, role) = (self.state.clone(), self.user.id.clone(), self.role);
                tokio::spawn(async move { crate::reading::read_all(&state, &account, role).await });
            }
            Err(err) => {
                tracing::debug!(connection = self.conn.id(), code = %err.code, "refused a frame");
                self.reply(err.into());
            }
        }
        Ok(())
    }

    fn reply(&self, msg: ServerMsg) {
        self.conn.reply(msg.encode().into());
    }

    fn refuse(&self, code: ErrorCode, message: &str) {
        self.reply(ServerMsg::from(ProtocolError {
            code,
            message: message.into(),
        }));
    }

    /// Whether this connection is in `room`; if not, says so with `why`.
    fn in_room(&self, room: &str, why: &str) -> bool {
        let joined = self.conn.has_joined(room);
        if !joined {
            self.refuse(ErrorCode::NotJoined, why);
        }
        joined
    }

    /// `read`: this person has read the joined room up to `seq` (never past its last entry here),
    /// of its history now; written with the others a moment later (`reading`).
    fn read(&mut self, room: String, seq: u64, rewind: bool) {
        if !self.in_room(&room, "join the room before marking it read") {
            return;
        }
        let (Some(epoch), Some(last)) = (
            self.state.rooms.epoch(&room),
            self.state.rooms.last_seq(&room),
        ) else {
            return;
        };
        let how = match rewind {
            true => crate::reading::Move::Rewind,
            false => crate::reading::Move::Read,
        };
        let seq = seq.min(last);
        self.state
            .positions
            .set(&self.user.id, &room, &epoch, seq, how);
    }

    /// `join` (docs/ARCHITECTURE.md, "Joining without a gap"): `Joined`, the replay, then the live
    /// messages, each once. A room this person may not open is refused as one that does not exist;
    /// with `create`, an open room that does not exist is made, if their role may and within the
    /// budgets (`access::make_open`). The replay is written out as it is queued whenever the queue
    /// reaches its bound, so a long one never sits in memory whole.
    async fn join(&mut self, room: String, since: Option<Cursor>, create: bool) -> Result<(), End> {
        let opening = since.is_none();
        if let Some(refusal) = self.refused_at_the_door(&room, create, opening).await {
            self.reply(refusal);
            return Ok(());
        }
        let joining = match self.state.rooms.join(self.conn, &room, since).await {
            Ok(joining) => joining,
            Err(e) => {
                self.reply(unavailable(self.user, e));
                return Ok(());
            }
        };
        tracing::info!(
            connection = self.conn.id(),
            room = %room,
            mode = ?joining.mode,
            replayed = joining.replay.len(),
            "joined"
        );
        let joined = joining.joined(&room);
        // Queued before the held messages are released, so nothing live can overtake the replay.
        for frame in std::iter::once(Frame::of(&joined)).chain(joining.replay) {
            self.conn.reply(frame);
            if !self.link.queue.has_room(0, 0) {
                self.link.flush().await?;
            }
        }
        self.reply(rooms::go_live(self.conn, &room));
        Ok(())
    }

    /// Whether this person may open `room` (making it first, if asked and allowed): the refusal,
    /// if not. A room they may not open and one that does not exist get the same words.
    /// `opening`: a join without a cursor, a room opened rather than resumed.
    async fn refused_at_the_door(
        &mut self,
        room: &str,
        create: bool,
        opening: bool,
    ) -> Option<ServerMsg> {
        let (state, user) = (self.state, self.user);
        let who = access::Who::Person(&user.id, self.role);
        match access::open(state, who, room).await {
            Ok(opened) => {
                // Opened (not resumed: a reconnect's joins write nothing), the room shows in their
                // list again if they had hidden it.
                let shown = match opening {
                    true => {
                        state
                            .sessions
                            .people
                            .set_hidden(&user.id, room, false)
                            .await
                    }
                    false => Ok(false),
                };
                match shown {
                    // Every tab and device of theirs lists it again.
                    Ok(true) => access::rooms_changed(state, &user.id, None),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(user = %user.id, room, "cannot show a hidden room again: {e}")
                    }
                }
                let muted = match opened.archived() {
                    true => Ok(None),
                    false => state.sessions.people.muted_until(room, &user.id).await,
                };
                let read_only = match muted {
                    _ if opened.archived() => Some(ReadOnly::Archived),
                    Ok(until) => until.map(ReadOnly::MutedUntil),
                    Err(e) => {
                        tracing::warn!(user = %user.id, room, "cannot tell whether muted: {e}");
                        None
                    }
                };
                self.conn.set_read_only(room, read_only);
                None
            }
            Err(access::Refused::Missing) if create && !is_private(room) => {
                let maker = (user.id.as_str(), self.role);
                let making = access::Making::ByJoin;
                match access::make_open(state, maker, self.spending.client, (room, ""), making)
                    .await
                {
                    Ok(()) | Err(access::NotMade::Exists) => None,
                    Err(not_made) => {
                        tracing::info!(user = %user.id, room, "refused a new room: {not_made}");
                        Some(not_made.to_frame())
                    }
                }
            }
            Err(access::Refused::Missing) => Some(ServerMsg::from(ProtocolError {
                code: ErrorCode::NoSuchRoom,
                message: format!("there is no room {room} that you may open"),
            })),
            Err(access::Refused::Unavailable(e)) => {
                tracing::error!(user = %user.id, "people store: {e}");
                Some(ServerMsg::from(ProtocolError {
                    code: ErrorCode::Unavailable,
                    message: "the server could not do that just now; try again".into(),
                }))
            }
        }
    }

    /// `leave`: out of the room (the people in it are told at the next tick).
    fn leave(&mut self, room: String) {
        if self.in_room(&room, "you are not in that room") {
            self.conn.leave(&room);
            tracing::info!(connection = self.conn.id(), room = %room, "left");
        }
    }

    /// `typing`: passed on to the room's people, at most every so often.
    fn typing(&mut self, room: String) {
        if self.in_room(&room, "join the room before typing in it") {
            self.conn.typing(&room, Instant::now());
        }
    }

    /// `history`: up to `limit` messages of `room` before seq `before`, oldest first.
    async fn history(&mut self, room: String, before: u64, limit: u32) {
        if !self.in_room(&room, "join the room to read its history") {
            return;
        }
        let rooms = &self.state.rooms;
        let page = async {
            let epoch = rooms.ensure(&room).await?;
            let page = rooms
                .page(&room, PageAt::Before(before), u64::from(limit))
                .await?;
            Ok::<_, LogError>((epoch, page))
        };
        match page.await {
            Ok((epoch, page)) => self.reply(ServerMsg::History {
                room,
                epoch,
                has_more: page.has_older,
                messages: page.messages,
            }),
            Err(e) => self.reply(unavailable(self.user, e)),
        }
    }

    /// `send`, `edit`, `delete`, `react`: handed to the log and not waited for here: the
    /// connection reads on while the commit happens, and the ack goes out when it is answered (see
    /// `super::serve`). `sent_bytes` is the frame's length, for the room its answers will need.
    fn send(&mut self, room: String, client_id: String, content: Content, sent_bytes: usize) {
        if !self.in_room(&room, "join the room before sending to it") {
            return;
        }
        let refusal = match self.conn.read_only(&room) {
            Some(ReadOnly::Archived) => {
                Some((ErrorCode::Archived, ErrorCode::Archived.refusal().into()))
            }
            Some(ReadOnly::MutedUntil(until)) if crate::people::now_ms() < until => {
                let minutes = (until - crate::people::now_ms()).div_ceil(60_000);
                let words = format!(
                    "a moderator muted you in this room: you can write again in {minutes} min"
                );
                Some((ErrorCode::Muted, words))
            }
            _ => None,
        };
        let refusal = refusal.or_else(|| match &content {
            Content::Message { body, .. }
                if !crate::access::may_say(self.state, self.role, body) =>
            {
                Some((
                    ErrorCode::NotAllowed,
                    crate::access::room_mention_refused(self.state),
                ))
            }
            _ => None,
        });
        if let Some((code, message)) = refusal {
            self.reply(ServerMsg::Error {
                code,
                message,
                retry_after_ms: None,
                client_id: Some(client_id),
            });
            return;
        }
        let target = content.target().unwrap_or_default();
        let message = content.is_message();
        // A moderator's delete removes anyone's message (the log's rule lets its kind do so).
        let moderating = matches!(self.role, Role::Admin | Role::Moderator)
            && matches!(
                content,
                Content::Change {
                    change: Change::Delete,
                    ..
                }
            );
        // A new message for a bot (a mention, a direct conversation) goes to its webhook once stored.
        let for_bots = match &content {
            Content::Message { body, .. }
                if crate::webhooks::may_concern(self.state, &room, body) =>
            {
                Some(body.clone())
            }
            _ => None,
        };
        // The people a new message mentions are recorded once it is stored, before its ack.
        let mentioning = match &content {
            Content::Message { body, .. } if crate::mentions::may_mention(body) => {
                Some(body.clone())
            }
            _ => None,
        };
        let submitted = self.state.rooms.submit(NewEntry {
            room: room.clone(),
            author: self.user.clone(),
            client_id: client_id.clone(),
            kind: match moderating {
                true => MessageKind::Moderation,
                false => MessageKind::User,
            },
            content,
        });
        let submitted = submitted.map(|answer| match mentioning {
            Some(body) => crate::mentions::after_stored(
                self.state,
                room.clone(),
                self.user.id.clone(),
                body,
                answer,
            ),
            None => answer,
        });
        match submitted {
            Ok(answer) if moderating => {
                let answer = audited(self.state, &self.user.id, &room, target, answer);
                self.in_flight
                    .push((room, client_id, message), answer, sent_bytes);
            }
            Ok(answer) if let Some(body) = for_bots => {
                let (author, to) = (self.user.clone(), room.clone());
                let answer = crate::webhooks::after_stored(self.state, to, author, body, answer);
                self.in_flight
                    .push((room, client_id, message), answer, sent_bytes);
            }
            Ok(answer) => self
                .in_flight
                .push((room, client_id, message), answer, sent_bytes),
            Err(e) => self.reply(unavailable(self.user, e)),
        }
    }
}

/// `answer` to a moderator's removal of message `target` of `room`, noted in the audit log once
/// the log has stored it (a removal refused, or not stored, is not).
fn audited(state: &AppState, by: &str, room: &str, target: u64, answer: Appending) -> Appending {
    let (tell, told) = tokio::sync::oneshot::channel();
    let (people, by, room) = (
        state.sessions.people.clone(),
        by.to_owned(),
        room.to_owned(),
    );
    tokio::spawn(async move {
        let stored = answer.await.unwrap_or(Err(LogError::Closed));
        if stored.is_ok() {
            let target = target.to_string();
            people
                .record(&by, "remove_message", &room, &target, "")
                .await;
        }
        let _ = tell.send(stored);
    });
    told
}

#[cfg(test)]
mod tests {
    use app::protocol::{
        ChatMessage, ClientMsg, Identity, MAX_CLIENT_ID_BYTES, MAX_NAME_CHARS, MAX_ROOM_CHARS,
        MessageKind, ServerMsg,
    };

    use super::ANSWER_OVERHEAD_BYTES;
    use crate::frame::Frame;

    #[test]
    fn what_a_send_brings_back_fits_in_what_is_held_for_it() {
        let room = "r".repeat(MAX_ROOM_CHARS);
        let client_id = "c".repeat(MAX_CLIENT_ID_BYTES);
        // The widest author: every character of the name four bytes long.
        let author = Identity {
            id: crate::ids::random_hex(8),
            name: "𝄞".repeat(MAX_NAME_CHARS),
        };
        for body in ["", "hello", "\"quoted\" \\ and \u{1F600}"] {
            let sent = ClientMsg::Send {
                room: room.clone(),
                client_id: client_id.clone(),
                body: body.into(),
                reply_to: None,
            }
            .encode();
            let echo = Frame::of(&ServerMsg::Message(ChatMessage {
                room: room.clone(),
                seq: u64::MAX,
                author: author.clone(),
                client_id: client_id.clone(),
                body: body.into(),
                sent_at: u64::MAX,
                kind: MessageKind::User,
                ..Default::default()
            }));
            let ack = Frame::of(&ServerMsg::Ack {
                room: room.clone(),
                client_id: client_id.clone(),
                seq: u64::MAX,
            });
            assert!(
                echo.len() + ack.len() <= sent.len() + ANSWER_OVERHEAD_BYTES,
                "{} + {} > {} + {ANSWER_OVERHEAD_BYTES}",
                echo.len(),
                ack.len(),
                sent.len()
            );
        }
    }
}
