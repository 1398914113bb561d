//! The wire contract between the browser and the server: every frame either end may send on `/ws`,
//! the limits both enforce, the error codes and the close codes.
//!
//! This module is compiled into both the server (`ssr`) and the WASM client (`hydrate`), so the two ends
//! cannot drift apart. Frames are JSON objects tagged by `"type"` (snake_case); nothing on the wire is
//! built by hand. `docs/PROTOCOL.md` describes the same thing for people writing other clients.
//!
//! What the server reads is strict (an unknown field is refused); what the client reads is lenient
//! (an unknown field is ignored), so a newer server can add a field without breaking the pages
//! already open on an older build.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Version of this protocol, announced in [`ServerMsg::Welcome`]. Bumped on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest WebSocket message (one frame's payload) the server accepts. Anything larger closes the
/// connection with [`Disconnect::MessageTooBig`]: no client of ours ever needs to send that much, so a
/// larger frame is a broken or hostile client, not a long chat message.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Longest message body, in bytes of UTF-8. A longer body is refused with [`ErrorCode::BodyTooLong`]
/// and the connection stays open (a user pasting a long text is an honest mistake).
pub const MAX_BODY_BYTES: usize = 4 * 1024;

/// How many frames per second one connection may send on average, and at once, unless the server is
/// started with other numbers; what it was started with reaches the client in [`Limits`].
pub const DEFAULT_RATE_PER_SEC: f64 = 5.0;
pub const DEFAULT_RATE_BURST: u32 = 30;

/// Most sends of one connection the server holds unanswered (stored, not yet acknowledged); past it
/// the server reads nothing more from that connection until it has answered.
pub const MAX_IN_FLIGHT: u32 = 100;

/// Longest `client_id` a sender may choose, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 64;

/// Longest room name; room names are `[a-z0-9_-]`.
pub const MAX_ROOM_CHARS: usize = 64;

/// The room every visitor starts in.
pub const DEFAULT_ROOM: &str = "general";

/// How many messages a join without a usable cursor shows (the room's latest).
pub const HISTORY_ON_JOIN: usize = 50;

/// Most messages one join replays. A client further behind gets a `partial` answer from
/// `last_seq - MAX_REPLAY + 1` and can page further back.
pub const MAX_REPLAY: u64 = 1000;

/// Most distinct reactions one message carries ([`ErrorCode::TooManyReactions`] beyond).
pub const MAX_REACTIONS: usize = 50;

/// Longest reaction, in bytes of UTF-8: one emoji sequence (a family of four with skin tones is 26).
pub const MAX_EMOJI_BYTES: usize = 32;

/// Longest quote of the original a reply carries, in characters: a one-line preview, not the text.
pub const QUOTE_CHARS: usize = 120;

/// Longest display name, in characters after trimming.
pub const MAX_NAME_CHARS: usize = 32;

/// Most messages one `history` request returns (and the default when it names no `limit`).
pub const HISTORY_PAGE_MAX: u32 = 100;

/// How long a `typing` signal lasts: a client shows "Ann is typing…" for this long after the last one
/// it received from Ann, or until a message from Ann arrives.
pub const TYPING_TTL_MS: u32 = 5_000;

/// How often a client repeats `typing` while its user keeps typing. Shorter than [`TYPING_TTL_MS`], so
/// the indicator does not flicker; the server passes on at most one per person and room this often.
pub const TYPING_REPEAT_MS: u32 = 3_000;

/// Rooms with more members than this get counts only in `presence` (no names, no join/leave notices):
/// a list of thousands is not something anyone reads, and it would be sent to thousands.
pub const PRESENCE_LIST_MAX: usize = 100;

/// Most rooms a `rooms` frame lists (`general`, then the busiest first).
pub const ROOM_LIST_MAX: usize = 100;

/// Who someone is: the id the server gave their session, and the name they chose. The server is the
/// only source of an author; nothing a client sends can set it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub id: String,
    pub name: String,
}

/// Why the server closes a WebSocket: every close it sends is one of these, with its code and
/// reason, and each says what a client should do next. The browser acts on it (`app/src/client.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disconnect {
    /// 1001: the server is shutting down or restarting. Reconnect at once (and back off if that
    /// fails): the next server, or this one restarted, is usually there within moments.
    GoingAway,
    /// 1002: the client broke WebSocket's framing rules. A bug in the client: do not loop.
    ProtocolError,
    /// 1007: a text message (or a close reason) that is not UTF-8. A bug in the client: do not loop.
    InvalidPayload,
    /// 1009: a frame larger than [`MAX_FRAME_BYTES`]. Do not resend it.
    MessageTooBig,
    /// 4008: the connection could not keep up with what was sent to it and its queue overflowed.
    /// Reconnect after a pause (the join's replay then catches up from the log).
    TooSlow,
    /// 4001: the session this connection was let in with ended (signed out on this device or from
    /// another, a new password). Reconnect at once: the handshake is refused, and the page goes to
    /// the sign-in page.
    SignedOut,
    /// 4003: this person was removed from a room this connection was in (on this node or
    /// another). Reconnect at once: the other rooms resume from their cursors, and that room's
    /// join is refused as [`ErrorCode::NoSuchRoom`].
    RoomsChanged,
}

/// What a client does after a [`Disconnect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconnect {
    /// Try again now.
    AtOnce,
    /// Wait a few seconds first.
    AfterPause,
    /// Do not try again by itself: say why, and let the person decide.
    Never,
}

impl Disconnect {
    pub const ALL: [Disconnect; 7] = [
        Disconnect::GoingAway,
        Disconnect::ProtocolError,
        Disconnect::InvalidPayload,
        Disconnect::MessageTooBig,
        Disconnect::TooSlow,
        Disconnect::SignedOut,
        Disconnect::RoomsChanged,
    ];

    /// The close frame's status code.
    pub const fn code(self) -> u16 {
        match self {
            Disconnect::GoingAway => 1001,
            Disconnect::ProtocolError => 1002,
            Disconnect::InvalidPayload => 1007,
            Disconnect::MessageTooBig => 1009,
            Disconnect::TooSlow => 4008,
            Disconnect::SignedOut => 4001,
            Disconnect::RoomsChanged => 4003,
        }
    }

    /// The close frame's reason, for people reading logs and traces.
    pub const fn reason(self) -> &'static str {
        match self {
            Disconnect::GoingAway => "server shutting down",
            Disconnect::ProtocolError => "protocol error",
            Disconnect::InvalidPayload => "text that is not UTF-8",
            Disconnect::MessageTooBig => "frame too big",
            Disconnect::TooSlow => "too slow; reconnect later",
            Disconnect::SignedOut => "signed out",
            Disconnect::RoomsChanged => "removed from a room",
        }
    }

    pub fn from_code(code: u16) -> Option<Disconnect> {
        Disconnect::ALL.into_iter().find(|d| d.code() == code)
    }

    pub const fn reconnect(self) -> Reconnect {
        match self {
            Disconnect::GoingAway | Disconnect::SignedOut | Disconnect::RoomsChanged => {
                Reconnect::AtOnce
            }
            Disconnect::TooSlow => Reconnect::AfterPause,
            Disconnect::ProtocolError | Disconnect::InvalidPayload | Disconnect::MessageTooBig => {
                Reconnect::Never
            }
        }
    }

    /// What the person is told while the client does not reconnect by itself.
    pub const fn explain(self) -> &'static str {
        match self {
            Disconnect::GoingAway
            | Disconnect::TooSlow
            | Disconnect::SignedOut
            | Disconnect::RoomsChanged => "The server closed the connection.",
            Disconnect::ProtocolError | Disconnect::InvalidPayload => {
                "The server refused what this page sent: reload the page."
            }
            Disconnect::MessageTooBig => "The server refused a message that was too large.",
        }
    }
}

/// A frame the client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Start receiving a room's messages. With `since`, the server replays everything after that
    /// cursor before the live messages; see [`ServerMsg::Joined`]. A room that does not exist, or
    /// that this person may not open, is refused alike ([`ErrorCode::NoSuchRoom`]), unless `create`
    /// asks to make an open room of that name and the person may (docs/ACCOUNTS.md, "Rooms").
    Join {
        room: String,
        /// Where this client's copy of the room ends, if it has one.
        since: Option<Cursor>,
        /// Make the (open) room if it does not exist.
        #[serde(default, skip_serializing_if = "is_false")]
        create: bool,
    },
    /// Stop receiving a room's messages.
    Leave { room: String },
    /// Post a chat message to a joined room. The server answers [`ServerMsg::Ack`] (and broadcasts it to
    /// everyone in the room, the sender included) or [`ServerMsg::Error`].
    Send {
        room: String,
        /// Chosen by the sender, unique per message: sending it again (after a reconnect, say) never
        /// stores a second copy. Echoed in the ack so the sender can match it.
        client_id: String,
        /// The text, shown verbatim (never interpreted as HTML).
        body: String,
        /// The seq of the message of this room it answers, if it is a reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<u64>,
    },
    /// Replace the text of one's own message `target` of a joined room. Answered like `send` (an
    /// [`ServerMsg::Ack`] for this `client_id`, the change to everyone as a [`ChangeEntry`]); refused
    /// when the message is not there, not yours, or deleted.
    Edit {
        room: String,
        client_id: String,
        target: u64,
        body: String,
    },
    /// Delete one's own message `target`: its text, and every earlier text of it, is gone from the
    /// server; everyone sees that it was deleted.
    Delete {
        room: String,
        client_id: String,
        target: u64,
    },
    /// Add (or with `remove`, take back) one's reaction `emoji` to message `target`. A person's
    /// reaction with one emoji is there once or not at all, however often it is added.
    React {
        room: String,
        client_id: String,
        target: u64,
        /// One emoji (an RGI emoji sequence, at most [`MAX_EMOJI_BYTES`]).
        emoji: String,
        #[serde(default, skip_serializing_if = "is_false")]
        remove: bool,
    },
    /// "I am typing in this joined room." Send it when the user types, at most every
    /// [`TYPING_REPEAT_MS`] while they keep typing; never stored. The others get [`ServerMsg::Typing`].
    Typing { room: String },
    /// Asks for the joined room's messages before seq `before` (the oldest you have), newest
    /// `limit` of them (at most [`HISTORY_PAGE_MAX`], the default). Answered with [`ServerMsg::History`].
    History {
        room: String,
        before: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// "I have read this joined room up to entry `seq`": this person's read position there, kept
    /// by the server for every device of theirs. It only moves forward, unless `rewind` ("mark
    /// unread": `seq` is then the entry before the first unread one). Every connection of theirs,
    /// this one too, is told [`ServerMsg::Read`] once it is kept.
    Read {
        room: String,
        seq: u64,
        #[serde(default, skip_serializing_if = "is_false")]
        rewind: bool,
    },
    /// "Mark all as read": every room this person counts, read up to its newest entry.
    ReadAll,
}

/// What the server accepts from one connection, as it was started: a client checks a message
/// against these before sending it, rather than learning of a refusal after.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest message body, in bytes of UTF-8 ([`ErrorCode::BodyTooLong`] beyond).
    pub max_body_bytes: u32,
    /// Frames per second on average ([`ErrorCode::RateLimited`] beyond)...
    pub rate_per_sec: f64,
    /// ...and at once.
    pub rate_burst: u32,
    /// Sends awaiting their `ack` before the server stops reading ([`MAX_IN_FLIGHT`]).
    pub max_in_flight: u32,
}

impl Default for Limits {
    /// A server started without limit flags.
    fn default() -> Self {
        Limits {
            max_body_bytes: MAX_BODY_BYTES as u32,
            rate_per_sec: DEFAULT_RATE_PER_SEC,
            rate_burst: DEFAULT_RATE_BURST,
            max_in_flight: MAX_IN_FLIGHT,
        }
    }
}

/// A frame the server sends.
///
/// Read through [`Wire`], one flat record of every field a frame may have, rather than serde's
/// internally tagged enum: that one buffers each frame into a tree of values before choosing the
/// variant, and its code is a quarter of the page's WebAssembly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "Wire")]
pub enum ServerMsg {
    /// First frame on every connection: who the server thinks you are, and what it accepts.
    Welcome {
        /// Who the server knows you as (from your session): your messages carry this author.
        you: Identity,
        /// [`PROTOCOL_VERSION`] of the server.
        protocol: u32,
        /// What this connection may send.
        limits: Limits,
    },
    /// Answer to `join`: then come the replayed messages (`first_seq..=last_seq`, oldest first, none
    /// if `first_seq > last_seq`), then live ones — each message once, none missing in between.
    Joined {
        room: String,
        /// The room's epoch: keep it in your cursor.
        epoch: String,
        mode: JoinMode,
        /// First seq replayed now.
        first_seq: u64,
        /// Last seq replayed now; live messages continue from `last_seq + 1`.
        last_seq: u64,
    },
    /// A message someone (possibly you) posted, in a room you joined: an entry of type `message`.
    Message(ChatMessage),
    /// An entry of a type this build does not know (see [`Entry`]). Never sent as such: a server
    /// passes such an entry on as it was stored, and a client reads any frame of an unknown `type`
    /// that names a `room` and a `seq` into this.
    #[serde(skip)]
    Other(OtherEntry),
    /// A change to a message (an edit, a deletion, a reaction): an entry of type `edit`, `delete`
    /// or `react`. Encoded by [`ChangeEntry::encode`], the one place its fields are named.
    #[serde(skip)]
    Change(ChangeEntry),
    /// Your `send`, `edit`, `delete` or `react` with this `client_id` is stored, as entry `seq` of
    /// `room` (a reaction that was already so is not stored again: `seq` is then the message's).
    Ack {
        room: String,
        client_id: String,
        seq: u64,
    },
    /// A frame you sent was refused; nothing of it was stored or broadcast. The connection stays open.
    Error {
        code: ErrorCode,
        message: String,
        /// With `rate_limited`: how long to wait before sending again, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
        /// The `client_id` of the `send`, `edit`, `delete` or `react` refused, when the refusal
        /// came from the log (the message it names was not there, say): drop it from the outbox.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    /// Your queue for this connection overflowed (you read too slowly), so messages of `room` from
    /// `resume_from` on were not sent. Join the room again with your cursor to catch up from the log.
    Lagged { room: String, resume_from: u64 },
    /// Who is in a joined room. Sent right after the `joined` replay, then whenever it changes
    /// (at most twice a second). A person with several tabs counts once; someone whose connection
    /// drops and comes back within a few seconds never appears to leave.
    Presence {
        room: String,
        /// How many people are in the room.
        count: u32,
        /// Everyone in the room, by name; absent when `count` is over [`PRESENCE_LIST_MAX`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        members: Option<Vec<Identity>>,
        /// Who arrived since the previous `presence` of this room (empty in the first one).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        joined: Vec<Identity>,
        /// Who left since the previous `presence` of this room.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        left: Vec<Identity>,
    },
    /// `user` is typing in `room`: show it for [`TYPING_TTL_MS`], or until their next message.
    Typing { room: String, user: Identity },
    /// The rooms of this server and how many people are in each: `general`, then the busiest first,
    /// rooms that have held a message before those that never have (at most [`ROOM_LIST_MAX`]). Sent after `welcome`, then whenever a count changes (at most twice a second).
    Rooms { rooms: Vec<RoomSummary> },
    /// This person's own rooms: the private rooms and direct conversations they are in, with their
    /// titles, and the open rooms they hid. Sent after `welcome` (after `rooms`), then whenever
    /// they change, to every connection of the person, on every node.
    Mine { rooms: Vec<RoomSummary> },
    /// Where this person has read `room` — up to entry `seq` of its history `epoch` — and how many
    /// of its messages after that they have not read (`unread`, up to its entry `last_seq`; not
    /// counting changes, deleted messages, or what is no longer held). Sent after `welcome` for
    /// every room they count (those they have read in, and their private rooms and
    /// conversations), then to every connection of theirs, on every node, when any device of
    /// theirs moves it ([`ClientMsg::Read`], or sending a message). `mentions`: how many of the
    /// unread call on them by `@handle` (absent: none).
    Read {
        room: String,
        epoch: String,
        seq: u64,
        last_seq: u64,
        unread: u32,
        #[serde(default, skip_serializing_if = "is_zero_u32")]
        mentions: u32,
    },
    /// A new message this person asked to be told of (a mention, a direct message, or any message
    /// of a room they chose so; docs/NOTIFICATIONS.md), to every connection of theirs: shown as a
    /// notification by the page's script (app/src/early.js) while its tab is hidden. The script
    /// takes these frames before the wasm sees them, so the variant exists on the server's side
    /// only; its fields are under `notice` rather than beside `type`, so that a page that did not
    /// know it would not read a `room` and a `seq` as an entry of the room.
    #[cfg(feature = "ssr")]
    Notify { notice: Notice },
    /// Answer to `history`: up to `limit` messages before `before`, oldest first.
    History {
        room: String,
        epoch: String,
        messages: Vec<ChatMessage>,
        /// Whether the room holds still older messages.
        has_more: bool,
    },
}

/// What a notification says (a `notify` frame's, and a Web Push message's payload).
#[cfg(feature = "ssr")]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub room: String,
    pub seq: u64,
    /// The room as the person sees it called (`#ops`, a private room's title), or in a direct
    /// conversation who wrote.
    pub title: String,
    /// What was written, after who wrote it in a room; at most [`NOTICE_BODY_CHARS`] characters.
    pub body: String,
    /// The message in its room: `/r/{room}?at={seq}`.
    pub url: String,
}

/// The most characters of a message a notification shows.
#[cfg(feature = "ssr")]
pub const NOTICE_BODY_CHARS: usize = 180;

/// One line of the room list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub room: String,
    /// People in the room now.
    pub members: u32,
    /// In `mine`: what to call a private room or a conversation (its name is an id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// In `mine`: the person hid this room from their list (until they open it again).
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
}

/// Every field of every [`ServerMsg`], each optional: what a frame is read into before its `type`
/// says which of them it must have. Fields a frame does not use are ignored (the client is lenient).
#[derive(Deserialize)]
struct Wire {
    /// Absent in a message of a `history` frame.
    #[serde(rename = "type", default)]
    ty: String,
    you: Option<Identity>,
    /// Not read by the page (it speaks the version its server served it): left out of its wasm.
    #[cfg(not(feature = "hydrate"))]
    protocol: Option<u32>,
    limits: Option<Limits>,
    room: Option<String>,
    epoch: Option<String>,
    /// The enums' names are read as strings and matched here ([`named`]): serde's reader of each
    /// enum cost the page's wasm about a kilobyte.
    mode: Option<String>,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    seq: Option<u64>,
    author: Option<Identity>,
    client_id: Option<String>,
    body: Option<String>,
    sent_at: Option<u64>,
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
    retry_after_ms: Option<u64>,
    /// Not read by the page (it rejoins from its own cursor): left out of its wasm.
    #[cfg(not(feature = "hydrate"))]
    resume_from: Option<u64>,
    count: Option<u32>,
    members: Option<Vec<Identity>>,
    /// Not read by the page (its people panel is drawn from `members`): left out of its wasm.
    #[cfg(not(feature = "hydrate"))]
    joined: Option<Vec<Identity>>,
    #[cfg(not(feature = "hydrate"))]
    left: Option<Vec<Identity>>,
    user: Option<Identity>,
    rooms: Option<Vec<RoomSummary>>,
    messages: Option<Vec<ChatMessage>>,
    has_more: Option<bool>,
    reply_to: Option<Box<Quote>>,
    edited: Option<u64>,
    deleted: Option<Box<Identity>>,
    reactions: Option<Vec<Reaction>>,
    changed: Option<u64>,
    target: Option<u64>,
    emoji: Option<String>,
    remove: Option<bool>,
    unread: Option<u32>,
    mentions: Option<u32>,
    /// Never sent to the page's wasm (see [`ServerMsg::Notify`]).
    #[cfg(feature = "ssr")]
    notice: Option<Notice>,
}

impl Wire {
    /// The message these fields are.
    fn message(self) -> Result<ChatMessage, String> {
        Ok(ChatMessage {
            room: needs(self.room, "room")?,
            seq: needs(self.seq, "seq")?,
            author: needs(self.author, "author")?,
            client_id: needs(self.client_id, "client_id")?,
            body: needs(self.body, "body")?,
            sent_at: needs(self.sent_at, "sent_at")?,
            kind: named(self.kind, &MessageKind::ALL, MessageKind::as_str)?.unwrap_or_default(),
            reply_to: self.reply_to,
            edited: self.edited,
            deleted: self.deleted,
            reactions: self.reactions.unwrap_or_default(),
            changed: self.changed.unwrap_or_default(),
        })
    }
}

impl<'de> Deserialize<'de> for ChatMessage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Wire::deserialize(deserializer)?
            .message()
            .map_err(serde::de::Error::custom)
    }
}

/// The one of `all` whose name (`as_str`) is `name`, if there is a name; a name it does not know is
/// an error, as serde's would be.
fn named<T: Copy>(
    name: Option<String>,
    all: &[T],
    as_str: fn(T) -> &'static str,
) -> Result<Option<T>, String> {
    match name {
        None => Ok(None),
        Some(name) => match all.iter().find(|one| as_str(**one) == name) {
            Some(one) => Ok(Some(*one)),
            None => Err(format!("unknown variant `{name}`")),
        },
    }
}

/// A field a frame of its `type` must have.
fn needs<T>(field: Option<T>, name: &'static str) -> Result<T, String> {
    field.ok_or_else(|| format!("missing field `{name}`"))
}

impl TryFrom<Wire> for ServerMsg {
    type Error = String;

    fn try_from(w: Wire) -> Result<Self, String> {
        Ok(match w.ty.as_str() {
            "welcome" => ServerMsg::Welcome {
                you: needs(w.you, "you")?,
                #[cfg(not(feature = "hydrate"))]
                protocol: needs(w.protocol, "protocol")?,
                #[cfg(feature = "hydrate")]
                protocol: PROTOCOL_VERSION,
                limits: needs(w.limits, "limits")?,
            },
            "joined" => ServerMsg::Joined {
                room: needs(w.room, "room")?,
                epoch: needs(w.epoch, "epoch")?,
                mode: needs(named(w.mode, &JoinMode::ALL, JoinMode::as_str)?, "mode")?,
                first_seq: needs(w.first_seq, "first_seq")?,
                last_seq: needs(w.last_seq, "last_seq")?,
            },
            "message" => ServerMsg::Message(w.message()?),
            "edit" | "delete" | "react" => ServerMsg::Change(ChangeEntry {
                change: match w.ty.as_str() {
                    "edit" => Change::Edit {
                        body: needs(w.body, "body")?,
                    },
                    "delete" => Change::Delete,
                    _ => Change::React {
                        emoji: needs(w.emoji, "emoji")?,
                        remove: w.remove.unwrap_or_default(),
                    },
                },
                room: needs(w.room, "room")?,
                seq: needs(w.seq, "seq")?,
                author: needs(w.author, "author")?,
                client_id: needs(w.client_id, "client_id")?,
                sent_at: needs(w.sent_at, "sent_at")?,
                kind: named(w.kind, &MessageKind::ALL, MessageKind::as_str)?.unwrap_or_default(),
                target: needs(w.target, "target")?,
            }),
            "ack" => ServerMsg::Ack {
                room: needs(w.room, "room")?,
                client_id: needs(w.client_id, "client_id")?,
                seq: needs(w.seq, "seq")?,
            },
            "error" => ServerMsg::Error {
                code: needs(named(w.code, &ErrorCode::ALL, ErrorCode::as_str)?, "code")?,
                message: needs(w.message, "message")?,
                retry_after_ms: w.retry_after_ms,
                client_id: w.client_id,
            },
            "read" => ServerMsg::Read {
                room: needs(w.room, "room")?,
                epoch: needs(w.epoch, "epoch")?,
                seq: needs(w.seq, "seq")?,
                last_seq: needs(w.last_seq, "last_seq")?,
                unread: needs(w.unread, "unread")?,
                mentions: w.mentions.unwrap_or_default(),
            },
            "lagged" => ServerMsg::Lagged {
                room: needs(w.room, "room")?,
                #[cfg(not(feature = "hydrate"))]
                resume_from: needs(w.resume_from, "resume_from")?,
                #[cfg(feature = "hydrate")]
                resume_from: 0,
            },
            "presence" => ServerMsg::Presence {
                room: needs(w.room, "room")?,
                count: needs(w.count, "count")?,
                members: w.members,
                #[cfg(not(feature = "hydrate"))]
                joined: w.joined.unwrap_or_default(),
                #[cfg(not(feature = "hydrate"))]
                left: w.left.unwrap_or_default(),
                #[cfg(feature = "hydrate")]
                joined: Vec::new(),
                #[cfg(feature = "hydrate")]
                left: Vec::new(),
            },
            "typing" => ServerMsg::Typing {
                room: needs(w.room, "room")?,
                user: needs(w.user, "user")?,
            },
            "rooms" => ServerMsg::Rooms {
                rooms: needs(w.rooms, "rooms")?,
            },
            "mine" => ServerMsg::Mine {
                rooms: needs(w.rooms, "rooms")?,
            },
            #[cfg(feature = "ssr")]
            "notify" => ServerMsg::Notify {
                notice: needs(w.notice, "notice")?,
            },
            "history" => ServerMsg::History {
                room: needs(w.room, "room")?,
                epoch: needs(w.epoch, "epoch")?,
                messages: needs(w.messages, "messages")?,
                has_more: needs(w.has_more, "has_more")?,
            },
            // A newer server's entry: its seq is the room's next all the same (docs/PROTOCOL.md,
            // "Entries"). Only entries carry a `seq` beside a `room`, `ack` aside.
            other => match (w.room, w.seq) {
                (Some(room), Some(seq)) => ServerMsg::Other(OtherEntry {
                    room,
                    seq,
                    entry_type: other.to_owned(),
                    frame: String::new(),
                }),
                _ => return Err(format!("unknown frame type `{other}`")),
            },
        })
    }
}

/// A client's position in a room: the last message it has, in the room's epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    pub epoch: String,
    pub seq: u64,
}

/// How a join related to the client's cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinMode {
    /// Everything after the cursor is replayed: the client's copy is now complete.
    Full,
    /// The cursor is older than what the room still holds (or than [`MAX_REPLAY`]): the replay starts
    /// at `first_seq`, and messages between the cursor and it are not sent.
    Partial,
    /// The cursor is from another epoch (the history was reset): drop your copy; the latest messages
    /// follow.
    Reset,
    /// No cursor was given: the latest messages follow.
    Latest,
}

impl JoinMode {
    pub const ALL: [JoinMode; 4] = [
        JoinMode::Full,
        JoinMode::Partial,
        JoinMode::Reset,
        JoinMode::Latest,
    ];

    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            JoinMode::Full => "full",
            JoinMode::Partial => "partial",
            JoinMode::Reset => "reset",
            JoinMode::Latest => "latest",
        }
    }
}

/// One posted message, as every reader sees it: as it was posted, with every change to it up to
/// `changed` applied ([`ChatMessage::apply`]). Read through [`Wire`] too (in a `history` frame, a
/// page's messages): one reader of a message's fields, not two.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub room: String,
    /// Position in the conversation: dense and strictly increasing from 1; order is seq order.
    pub seq: u64,
    /// The author, from their session on the server (never from the sender's frame).
    pub author: Identity,
    /// The sender's idempotency key, so the sender can match the message to its outbox.
    pub client_id: String,
    pub body: String,
    /// When the server accepted it, in milliseconds since the Unix epoch.
    pub sent_at: u64,
    /// Who is speaking: a person (the default, then omitted), an integration posting through the HTTP
    /// API, or an announcement to every room.
    #[serde(default, skip_serializing_if = "MessageKind::is_user")]
    pub kind: MessageKind,
    /// The message of this room it answers. (Boxed, as `deleted`: most messages have neither, and
    /// every entry is as large as a message.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Box<Quote>>,
    /// When it was last edited (its `body` is then the newest text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<u64>,
    /// Who deleted it, if it was: its `body` is then empty, and nothing of its text is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Box<Identity>>,
    /// Its reactions, in the order each emoji was first added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// The seq of the last change applied to it (0: none): a change at or below it is already in.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub changed: u64,
}

/// What a reply shows of the message it answers. A frame as stored carries only `seq`; a page
/// of history (and the server-rendered page) also names the original's author and the start of
/// its text as it is now (no `text` if it was deleted). A reader that holds the original shows
/// its own copy, which follows edits and deletion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Quote {
    /// The quote of `original` as it is now.
    pub fn of(original: &ChatMessage) -> Self {
        Quote {
            seq: original.seq,
            author: Some(original.author.clone()),
            text: original
                .deleted
                .is_none()
                .then(|| quote_text(&original.body)),
        }
    }
}

/// The start of `body` on one line: at most [`QUOTE_CHARS`] characters, with an ellipsis if cut.
pub fn quote_text(body: &str) -> String {
    let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// One emoji's reactions to a message: who added it, in the order they did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub emoji: String,
    pub by: Vec<Identity>,
}

/// A change to a message, as asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// New text (the earlier stays readable until the message is deleted).
    Edit { body: String },
    /// The message is deleted: its text goes.
    Delete,
    /// A person's reaction with `emoji`, added or (`remove`) taken back.
    React { emoji: String, remove: bool },
}

impl Change {
    /// The entry type it is stored as.
    pub fn entry_type(&self) -> EntryType {
        match self {
            Change::Edit { .. } => EntryType::Edit,
            Change::Delete => EntryType::Delete,
            Change::React { .. } => EntryType::React,
        }
    }
}

/// A change to message `target` of `room`, stored as entry `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeEntry {
    pub room: String,
    pub seq: u64,
    pub author: Identity,
    pub client_id: String,
    pub sent_at: u64,
    pub kind: MessageKind,
    pub target: u64,
    pub change: Change,
}

impl ChangeEntry {
    /// Its frame (`type` `edit`, `delete` or `react`).
    pub fn encode(&self) -> String {
        #[derive(Serialize)]
        struct Frame<'a> {
            #[serde(rename = "type")]
            ty: &'a str,
            room: &'a str,
            seq: u64,
            author: &'a Identity,
            client_id: &'a str,
            sent_at: u64,
            #[serde(skip_serializing_if = "MessageKind::is_user")]
            kind: MessageKind,
            target: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            body: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            emoji: Option<&'a str>,
            #[serde(skip_serializing_if = "is_false")]
            remove: bool,
        }
        let (body, emoji, remove) = match &self.change {
            Change::Edit { body } => (Some(body.as_str()), None, false),
            Change::Delete => (None, None, false),
            Change::React { emoji, remove } => (None, Some(emoji.as_str()), *remove),
        };
        encode(&Frame {
            ty: self.change.entry_type().as_str(),
            room: &self.room,
            seq: self.seq,
            author: &self.author,
            client_id: &self.client_id,
            sent_at: self.sent_at,
            kind: self.kind,
            target: self.target,
            body,
            emoji,
            remove,
        })
    }
}

/// Why a change cannot be applied to a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The message was deleted: nothing more changes it.
    Deleted,
    /// Only its author edits or deletes a message.
    NotYours,
    /// It carries [`MAX_REACTIONS`] emoji already.
    TooManyReactions,
}

impl Refusal {
    pub fn code(self) -> ErrorCode {
        match self {
            Refusal::Deleted => ErrorCode::MessageDeleted,
            Refusal::NotYours => ErrorCode::NotYours,
            Refusal::TooManyReactions => ErrorCode::TooManyReactions,
        }
    }
}

impl ChatMessage {
    /// Applies `change` (by `author`, of `kind`, at `seq`, `at` ms), the one rule both the server
    /// (which refuses what does not apply, before storing it) and every reader follow. Only its
    /// author edits a message; its author, or a moderator ([`MessageKind::Moderation`]), deletes it. `Ok(false)`: it
    /// changes nothing — already applied (its seq is not after `changed`), or a reaction that is
    /// already so. So applying a room's entries in seq order gives the same message whatever of
    /// them the copy had already (a page read mid-way, a replay after it).
    pub fn apply(
        &mut self,
        change: &Change,
        (author, kind): (&Identity, MessageKind),
        seq: u64,
        at: u64,
    ) -> Result<bool, Refusal> {
        if seq <= self.seq.max(self.changed) {
            return Ok(false);
        }
        if self.deleted.is_some() {
            return Err(Refusal::Deleted);
        }
        match change {
            Change::Edit { .. } if author.id != self.author.id => return Err(Refusal::NotYours),
            Change::Delete if author.id != self.author.id && kind != MessageKind::Moderation => {
                return Err(Refusal::NotYours);
            }
            Change::Edit { body } => {
                self.body.clone_from(body);
                self.edited = Some(at);
            }
            Change::Delete => {
                self.body = String::new();
                self.edited = None;
                self.reactions = Vec::new();
                self.deleted = Some(Box::new(author.clone()));
            }
            Change::React { emoji, remove } => {
                let at = self.reactions.iter().position(|r| &r.emoji == emoji);
                let mine = |r: &Reaction| r.by.iter().position(|who| who.id == author.id);
                match (at, remove) {
                    (Some(i), false) if mine(&self.reactions[i]).is_none() => {
                        self.reactions[i].by.push(author.clone());
                    }
                    (Some(i), true) if mine(&self.reactions[i]).is_some() => {
                        let reaction = &mut self.reactions[i];
                        reaction.by.retain(|who| who.id != author.id);
                        if reaction.by.is_empty() {
                            self.reactions.remove(i);
                        }
                    }
                    (None, false) if self.reactions.len() >= MAX_REACTIONS => {
                        return Err(Refusal::TooManyReactions);
                    }
                    (None, false) => self.reactions.push(Reaction {
                        emoji: emoji.clone(),
                        by: vec![author.clone()],
                    }),
                    _ => return Ok(false),
                }
            }
        }
        self.changed = seq;
        Ok(true)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One entry of a room's log: something that happened to the room, at the room's next seq. A room
/// has one dense sequence of seqs for all its entries, so one `(epoch, seq)` cursor resumes all of
/// them. Each goes to readers as one frame whose `type` is the entry's ([`EntryType`]); both
/// backends store this record, and a reader applies each type as docs/PROTOCOL.md, "Entries", says.
///
/// Per-person state (how far someone has read, later) is not an entry: it belongs to a person,
/// not to the room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Message(ChatMessage),
    /// A change to one of the room's messages.
    Change(ChangeEntry),
    /// An entry of a type this build does not know: a newer Herald wrote it (a node already
    /// upgraded, or a log kept from after a downgrade). Passed on as it was stored.
    Other(OtherEntry),
}

/// The types of entry, as `type` names them on the wire and in the log. Every type this build
/// knows is here; a reply is a message that names its target, not a type of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryType {
    Message,
    Edit,
    Delete,
    React,
}

impl EntryType {
    pub const ALL: [EntryType; 4] = [
        EntryType::Message,
        EntryType::Edit,
        EntryType::Delete,
        EntryType::React,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Message => "message",
            EntryType::Edit => "edit",
            EntryType::Delete => "delete",
            EntryType::React => "react",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        EntryType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// An entry of a type this build does not know: what a reader needs to keep its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherEntry {
    pub room: String,
    pub seq: u64,
    /// Its `type`.
    pub entry_type: String,
    /// The whole frame, as a server passes it on (a JSON object with `type`, `room` and `seq`);
    /// empty in a client, which keeps nothing of it.
    pub frame: String,
}

impl Entry {
    pub fn room(&self) -> &str {
        match self {
            Entry::Message(message) => &message.room,
            Entry::Change(change) => &change.room,
            Entry::Other(other) => &other.room,
        }
    }

    pub fn seq(&self) -> u64 {
        match self {
            Entry::Message(message) => message.seq,
            Entry::Change(change) => change.seq,
            Entry::Other(other) => other.seq,
        }
    }

    /// Whether it is a message: what counts towards how many messages a room holds (and what a
    /// person has not read), where edits or reactions do not.
    pub fn is_message(&self) -> bool {
        matches!(self, Entry::Message(_))
    }

    /// The message, if it is one.
    pub fn into_message(self) -> Option<ChatMessage> {
        match self {
            Entry::Message(message) => Some(message),
            _ => None,
        }
    }

    /// The message, if it is one.
    pub fn message(&self) -> Option<&ChatMessage> {
        match self {
            Entry::Message(message) => Some(message),
            _ => None,
        }
    }
}

/// What kind of author a message has. Clients show each differently: a bot is never shown as a person.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Posted by a person from the chat.
    #[default]
    User,
    /// Posted by an integration through `POST /api/rooms/{room}/messages`.
    Bot,
    /// Posted to every room at once through `POST /api/broadcast`.
    Announcement,
    /// A moderator's doing: a `delete` of this kind removes anyone's message (the server stores
    /// one only from a moderator or an admin), and the message shows as removed by a moderator.
    Moderation,
}

impl MessageKind {
    /// Every kind, for what counts them (each is shown from the first scrape, at 0).
    pub const ALL: [MessageKind; 4] = [
        MessageKind::User,
        MessageKind::Bot,
        MessageKind::Announcement,
        MessageKind::Moderation,
    ];

    pub fn is_user(&self) -> bool {
        *self == MessageKind::User
    }

    /// The name stored in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::User => "user",
            MessageKind::Bot => "bot",
            MessageKind::Announcement => "announcement",
            MessageKind::Moderation => "moderation",
        }
    }

    /// The kind stored in the log under `name` (unknown names read as a person's message).
    pub fn from_name(name: &str) -> Self {
        match name {
            "bot" => MessageKind::Bot,
            "announcement" => MessageKind::Announcement,
            "moderation" => MessageKind::Moderation,
            _ => MessageKind::User,
        }
    }
}

/// Why a frame was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not a JSON object of a known `type` with the right fields.
    InvalidFrame,
    /// A binary WebSocket frame: the protocol is text (JSON) only.
    BinaryFrame,
    /// The body is empty or only whitespace.
    EmptyBody,
    /// The body is longer than [`MAX_BODY_BYTES`].
    BodyTooLong,
    /// `client_id` is empty, longer than [`MAX_CLIENT_ID_BYTES`], or holds control characters.
    InvalidClientId,
    /// A room name is not 1 to 64 characters of `a-z`, `0-9`, `_` and `-`.
    InvalidRoom,
    /// `send`, `leave`, `typing` or `history` for a room this connection has not joined.
    NotJoined,
    /// A `history` `limit` outside 1 to [`HISTORY_PAGE_MAX`].
    InvalidLimit,
    /// A display name is empty, longer than [`MAX_NAME_CHARS`], or holds control characters.
    InvalidName,
    /// Over this connection's message rate; `retry_after_ms` says when the next one is accepted.
    RateLimited,
    /// The server could not store the message just now; nothing was stored. Resend it (with the
    /// same `client_id`) later.
    Unavailable,
    /// An `edit`, `delete`, `react` or reply names a message this room does not hold (never
    /// posted, no longer kept, or not a message).
    NoSuchMessage,
    /// An `edit` or `delete` of someone else's message.
    NotYours,
    /// A change to (or a reply to) a deleted message.
    MessageDeleted,
    /// A reaction that is not one emoji.
    InvalidEmoji,
    /// A reaction with a new emoji to a message that has [`MAX_REACTIONS`] already.
    TooManyReactions,
    /// A room that does not exist, or that this person may not open: the two are one answer, so
    /// that nobody learns a private room exists by asking for it.
    NoSuchRoom,
    /// A send or change to an archived room: it is kept to be read, not written.
    Archived,
    /// A send or change from someone a moderator muted in this room, for a while.
    Muted,
    /// Something this person's role may not do on this server (`@room` below the role setting).
    NotAllowed,
}

/// A refused frame: the code the client can act on and a sentence a person can read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<ProtocolError> for ServerMsg {
    fn from(err: ProtocolError) -> Self {
        ServerMsg::Error {
            code: err.code,
            message: err.message,
            retry_after_ms: None,
            client_id: None,
        }
    }
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::InvalidFrame,
        ErrorCode::BinaryFrame,
        ErrorCode::EmptyBody,
        ErrorCode::BodyTooLong,
        ErrorCode::InvalidClientId,
        ErrorCode::InvalidRoom,
        ErrorCode::NotJoined,
        ErrorCode::InvalidLimit,
        ErrorCode::InvalidName,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::NoSuchMessage,
        ErrorCode::NotYours,
        ErrorCode::MessageDeleted,
        ErrorCode::InvalidEmoji,
        ErrorCode::TooManyReactions,
        ErrorCode::NoSuchRoom,
        ErrorCode::Archived,
        ErrorCode::Muted,
        ErrorCode::NotAllowed,
    ];

    /// The serde name, so logs, the HTTP API and the wire say the same thing.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidFrame => "invalid_frame",
            ErrorCode::BinaryFrame => "binary_frame",
            ErrorCode::EmptyBody => "empty_body",
            ErrorCode::BodyTooLong => "body_too_long",
            ErrorCode::InvalidClientId => "invalid_client_id",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::InvalidLimit => "invalid_limit",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::NoSuchMessage => "no_such_message",
            ErrorCode::NotYours => "not_yours",
            ErrorCode::MessageDeleted => "message_deleted",
            ErrorCode::InvalidEmoji => "invalid_emoji",
            ErrorCode::TooManyReactions => "too_many_reactions",
            ErrorCode::NoSuchRoom => "no_such_room",
            ErrorCode::Archived => "archived",
            ErrorCode::Muted => "muted",
            ErrorCode::NotAllowed => "not_allowed",
        }
    }
}

impl ErrorCode {
    /// What a person is told when the log refused a change or reply for this reason.
    pub fn refusal(self) -> &'static str {
        match self {
            ErrorCode::NoSuchMessage => "that message is not in this room",
            ErrorCode::NotYours => "only its author can change that message",
            ErrorCode::MessageDeleted => "that message was deleted",
            ErrorCode::TooManyReactions => "that message has as many kinds of reaction as it can",
            ErrorCode::Archived => "this room is archived: it can be read, not written to",
            _ => "refused",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ClientMsg {
    /// Parses and validates one text frame. Every way a frame can be wrong maps to an [`ErrorCode`].
    pub fn decode(text: &str) -> Result<Self, ProtocolError> {
        Self::decode_with(text, MAX_BODY_BYTES)
    }

    /// [`Self::decode`] with the server's configured body limit instead of the default.
    pub fn decode_with(text: &str, max_body_bytes: usize) -> Result<Self, ProtocolError> {
        let msg: ClientMsg = serde_json::from_str(text).map_err(|e| {
            ProtocolError::new(ErrorCode::InvalidFrame, format!("not a valid frame: {e}"))
        })?;
        msg.validate_with(max_body_bytes)?;
        Ok(msg)
    }

    /// Checks the limits a well-formed frame must also meet. The client calls this before sending,
    /// the server again on receipt.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        self.validate_with(MAX_BODY_BYTES)
    }

    /// Whether the server started with `limits` will take this frame.
    pub fn validate_within(&self, limits: &Limits) -> Result<(), ProtocolError> {
        self.validate_with(limits.max_body_bytes as usize)
    }

    fn validate_with(&self, max_body_bytes: usize) -> Result<(), ProtocolError> {
        match self {
            ClientMsg::Join { room, .. }
            | ClientMsg::Leave { room }
            | ClientMsg::Typing { room }
            | ClientMsg::Read { room, .. } => validate_room(room),
            ClientMsg::ReadAll => Ok(()),
            ClientMsg::History { room, limit, .. } => {
                validate_room(room)?;
                match limit {
                    Some(limit) if *limit == 0 || *limit > HISTORY_PAGE_MAX => {
                        Err(ProtocolError::new(
                            ErrorCode::InvalidLimit,
                            format!("limit is 1 to {HISTORY_PAGE_MAX}"),
                        ))
                    }
                    _ => Ok(()),
                }
            }
            ClientMsg::Send {
                room,
                client_id,
                body,
                ..
            }
            | ClientMsg::Edit {
                room,
                client_id,
                body,
                ..
            } => {
                validate_room(room)?;
                validate_client_id(client_id)?;
                validate_body(body, max_body_bytes)
            }
            ClientMsg::Delete {
                room, client_id, ..
            } => {
                validate_room(room)?;
                validate_client_id(client_id)
            }
            ClientMsg::React {
                room,
                client_id,
                emoji,
                ..
            } => {
                validate_room(room)?;
                validate_client_id(client_id)?;
                validate_emoji(emoji)
            }
        }
    }

    pub fn encode(&self) -> String {
        encode(self)
    }
}

impl ServerMsg {
    /// Parses one text frame from the server.
    pub fn decode(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| {
            ProtocolError::new(ErrorCode::InvalidFrame, format!("not a valid frame: {e}"))
        })
    }

    pub fn encode(&self) -> String {
        match self {
            // Entries whose fields are not the enum's own.
            ServerMsg::Change(change) => change.encode(),
            ServerMsg::Other(other) => other.frame.clone(),
            _ => encode(self),
        }
    }
}

fn encode<T: Serialize>(msg: &T) -> String {
    // Serializing these types cannot fail: every field is a string, a number or a unit enum.
    serde_json::to_string(msg)
        .unwrap_or_else(|e| unreachable!("protocol types always serialize: {e}"))
}

/// A body is accepted if it has something besides whitespace and fits in `max_bytes` (by default
/// [`MAX_BODY_BYTES`]).
pub fn validate_body(body: &str, max_bytes: usize) -> Result<(), ProtocolError> {
    if body.trim().is_empty() {
        return Err(ProtocolError::new(
            ErrorCode::EmptyBody,
            "message body is empty",
        ));
    }
    if body.len() > max_bytes {
        return Err(ProtocolError::new(
            ErrorCode::BodyTooLong,
            format!(
                "message body is {} bytes; the limit is {max_bytes}",
                body.len()
            ),
        ));
    }
    Ok(())
}

/// A reaction: one emoji of at most [`MAX_EMOJI_BYTES`]. The server holds it to Unicode's list of
/// emoji (an RGI emoji sequence); a browser only checks what it can without carrying that list.
pub fn validate_emoji(emoji: &str) -> Result<(), ProtocolError> {
    let plausible = !emoji.is_empty()
        && emoji.len() <= MAX_EMOJI_BYTES
        && !emoji
            .chars()
            .any(|c| c.is_ascii() && c != '#' && c != '*' && !c.is_ascii_digit());
    #[cfg(feature = "ssr")]
    let plausible = plausible && emojis::get(emoji).is_some();
    if !plausible {
        return Err(ProtocolError::new(
            ErrorCode::InvalidEmoji,
            "a reaction is one emoji",
        ));
    }
    Ok(())
}

/// A room name: 1 to [`MAX_ROOM_CHARS`] of `a-z`, `0-9`, `_`, `-` for an open room, which anyone
/// may name; or [`PRIVATE_MARK`] or [`DIRECT_MARK`] and [`ROOM_ID_DIGITS`] hex digits for a private
/// room or a direct conversation, whose names are ids the server made (never a word someone could
/// guess, docs/ACCOUNTS.md).
pub fn validate_room(room: &str) -> Result<(), ProtocolError> {
    let word = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-';
    let valid = match room.as_bytes() {
        [PRIVATE_MARK | DIRECT_MARK, id @ ..] => {
            id.len() == ROOM_ID_DIGITS
                && id
                    .iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        }
        name => !name.is_empty() && name.len() <= MAX_ROOM_CHARS && name.iter().all(|b| word(*b)),
    };
    if !valid {
        return Err(ProtocolError::new(
            ErrorCode::InvalidRoom,
            format!("a room name is 1 to {MAX_ROOM_CHARS} characters of a-z, 0-9, _ and -"),
        ));
    }
    Ok(())
}

/// The first character of a private room's name.
pub const PRIVATE_MARK: u8 = b'~';
/// The first character of a direct conversation's name.
pub const DIRECT_MARK: u8 = b'@';
/// Hex digits after the mark in a private room's or conversation's name (80 bits).
pub const ROOM_ID_DIGITS: usize = 20;

/// Whether `room` names a private room or a direct conversation (not an open room).
pub fn is_private(room: &str) -> bool {
    matches!(room.as_bytes().first(), Some(&(PRIVATE_MARK | DIRECT_MARK)))
}

/// The mention that calls on everyone in the room (`@room`): who may use it is a role setting
/// (`--room-mentions`); nobody's handle can be it ([`RESERVED_HANDLES`]).
pub const ROOM_MENTION: &str = "room";

/// Words no handle may be: what a mention of them would mean is not one person.
pub const RESERVED_HANDLES: [&str; 5] = [ROOM_MENTION, "everyone", "here", "channel", "all"];

/// Whether `body` calls on the whole room (`@room`, at word edges, any case), wherever it is in it.
pub fn mentions_room(body: &str) -> bool {
    mention_words(body).any(|word| word == ROOM_MENTION)
}

/// Most handles one message's `@mentions` are looked up for: past them, the rest are text.
pub const MAX_MENTIONS: usize = 10;

/// The handles a message `@mentions`, lowercase, each once, in order, at most [`MAX_MENTIONS`]: an
/// `@` at the start of a word followed by a handle's characters (`a-z`, `0-9`, `.`, `_`, `-`),
/// without the full stops that end a sentence (`@ann.` is Ann). `ann@example.com` names nobody.
pub fn mentioned_handles(body: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for handle in mention_words(body) {
        if !found.contains(&handle) {
            found.push(handle);
            if found.len() == MAX_MENTIONS {
                break;
            }
        }
    }
    found
}

/// Every `@word` of `body` that has a handle's shape (see [`mentioned_handles`]), lowercase.
fn mention_words(body: &str) -> impl Iterator<Item = String> + '_ {
    let is_handle_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let mut previous: Option<char> = None;
    body.char_indices().filter_map(move |(at, c)| {
        let starts_word = previous.is_none_or(|p| !(p.is_alphanumeric() || p == '@'));
        previous = Some(c);
        if c != '@' || !starts_word {
            return None;
        }
        let rest = &body[at + 1..];
        let len = rest
            .find(|c: char| !is_handle_char(c))
            .unwrap_or(rest.len());
        let word = rest[..len].trim_end_matches('.').to_ascii_lowercase();
        let starts_well = word.starts_with(|c: char| c.is_ascii_alphanumeric());
        (starts_well && (2..=32).contains(&word.len())).then_some(word)
    })
}

pub fn normalize_room(written: &str) -> Result<String, ProtocolError> {
    let mut room = String::new();
    let mut space = false;
    for c in written.trim().chars() {
        if room.len() > MAX_ROOM_CHARS {
            break; // Too long already: refused below, without reading the rest.
        }
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space {
            room.push('-');
            space = false;
        }
        room.push(c.to_ascii_lowercase());
    }
    validate_room(&room).map_err(|_| {
        ProtocolError::new(
            ErrorCode::InvalidRoom,
            format!(
                "a room name is 1 to {MAX_ROOM_CHARS} characters of a-z, 0-9, _ and - \
                 (capitals become lowercase, spaces become -)"
            ),
        )
    })?;
    Ok(room)
}

/// A display name as the user typed it → the name to use (trimmed), or why it cannot be one. Control
/// characters and the characters that change the direction of text around them are refused: with
/// a right-to-left override a name can show as another, and reverse what follows it on the line.
pub fn validate_name(name: &str) -> Result<String, ProtocolError> {
    validate_line(name, MAX_NAME_CHARS)
}

/// A line of text people see beside others' (a display name, a room's title or topic): trimmed,
/// 1 to `max` characters, by the rules of [`validate_name`].
pub fn validate_line(name: &str, max: usize) -> Result<String, ProtocolError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0
        || chars > max
        || name
            .chars()
            .any(|c| c.is_control() || is_direction_control(c))
        || name.chars().all(|c| c.is_whitespace() || is_invisible(c))
        || hides_something(name)
    {
        return Err(ProtocolError::new(
            ErrorCode::InvalidName,
            format!(
                "a name is 1 to {max} characters, some of them visible, without hidden, control or \
                 text-direction characters"
            ),
        ));
    }
    Ok(name.to_owned())
}

/// Whether `name` holds an invisible character where it can only hide something: "Ann" and a
/// zero-width space look exactly like "Ann". The joiners and selectors that build emoji and
/// write some scripts (ZWJ, ZWNJ, variation selectors, tag characters) are kept where they do
/// that: right after a character that is not ASCII.
fn hides_something(name: &str) -> bool {
    let mut previous: Option<char> = None;
    name.chars().any(|c| {
        let after_non_ascii = previous.is_some_and(|p| !p.is_ascii() && !is_invisible(p));
        let builds = matches!(c, '\u{200C}' | '\u{200D}' | '\u{FE00}'..='\u{FE0F}' | '\u{E0020}'..='\u{E007F}');
        let hidden = if builds {
            !after_non_ascii
        } else {
            is_invisible(c)
        };
        if !matches!(c, '\u{200C}' | '\u{200D}') {
            previous = Some(c);
        }
        hidden
    })
}

/// Characters that take no room and show nothing (zero-width spaces and joiners, the word joiner and
/// its kin, the byte-order mark, the soft hyphen, Hangul fillers): a name of these alone is no name.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
    )
}

/// The Unicode characters that set the direction of the text around them (Unicode's bidirectional
/// formatting characters: marks, embeddings, overrides, isolates).
fn is_direction_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A `client_id`: 1 to [`MAX_CLIENT_ID_BYTES`] bytes without control characters.
pub fn validate_client_id(client_id: &str) -> Result<(), ProtocolError> {
    if client_id.is_empty()
        || client_id.len() > MAX_CLIENT_ID_BYTES
        || client_id.chars().any(char::is_control)
    {
        return Err(ProtocolError::new(
            ErrorCode::InvalidClientId,
            format!(
                "client_id must be 1 to {MAX_CLIENT_ID_BYTES} bytes without control characters"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn mentioned_handles_are_words_after_an_at() {
        use super::mentioned_handles;
        let cases: &[(&str, &[&str])] = &[
            ("@helper what is up", &["helper"]),
            ("hi @Helper.", &["helper"]),
            ("(@a.b-c_d), @a.b-c_d and @x", &["a.b-c_d"]),
            ("mail ann@example.com", &[]),
            ("@@twice @ alone @.dot", &[]),
            ("émoji:@déjà", &[]),
            ("first @one, then @two; @one again", &["one", "two"]),
        ];
        for (body, expected) in cases {
            assert_eq!(mentioned_handles(body), *expected, "{body:?}");
        }
        let many: String = (0..20).map(|i| format!("@user{i} ")).collect();
        assert_eq!(mentioned_handles(&many).len(), super::MAX_MENTIONS);
        // `@room` counts wherever it is, past the handles looked up too.
        assert!(super::mentions_room(&format!("{many} @Room!")));
        assert!(!super::mentions_room("@roomy, mail@room, #room"));
        assert_eq!(
            mentioned_handles(&format!("@{}", "a".repeat(33))),
            Vec::<String>::new()
        );
    }

    use super::*;

    fn every_client_msg() -> Vec<ClientMsg> {
        vec![
            ClientMsg::Join {
                room: "general".into(),
                since: None,
                create: false,
            },
            ClientMsg::Join {
                room: "ops-alerts".into(),
                since: Some(Cursor {
                    epoch: "e1".into(),
                    seq: 41,
                }),
                create: true,
            },
            ClientMsg::Leave {
                room: "general".into(),
            },
            ClientMsg::Send {
                room: "general".into(),
                client_id: "c-1".into(),
                body: "hello \"world\" <b>".into(),
                reply_to: None,
            },
            ClientMsg::Typing {
                room: "general".into(),
            },
            ClientMsg::History {
                room: "general".into(),
                before: 51,
                limit: Some(50),
            },
            ClientMsg::History {
                room: "general".into(),
                before: 51,
                limit: None,
            },
        ]
    }

    fn every_server_msg() -> Vec<ServerMsg> {
        vec![
            ServerMsg::Welcome {
                you: Identity {
                    id: "u1".into(),
                    name: "Ann".into(),
                },
                protocol: PROTOCOL_VERSION,
                limits: Limits::default(),
            },
            ServerMsg::Joined {
                room: "general".into(),
                epoch: "e1".into(),
                mode: JoinMode::Partial,
                first_seq: 3,
                last_seq: 9,
            },
            ServerMsg::Message(ChatMessage {
                room: "general".into(),
                client_id: "c-1".into(),
                seq: 7,
                author: Identity {
                    id: "u1".into(),
                    name: "Ann".into(),
                },
                body: "ünïcödé ✓".into(),
                sent_at: 1_764_000_000_000,
                kind: MessageKind::User,
                ..Default::default()
            }),
            ServerMsg::Message(ChatMessage {
                room: "general".into(),
                client_id: "deploy-42".into(),
                seq: 8,
                author: Identity {
                    id: "api-1f2e3d4c".into(),
                    name: "Deploy bot".into(),
                },
                body: "v1.2 is live".into(),
                sent_at: 1_764_000_000_000,
                kind: MessageKind::Bot,
                ..Default::default()
            }),
            ServerMsg::Ack {
                room: "general".into(),
                client_id: "c-1".into(),
                seq: 7,
            },
            ServerMsg::Error {
                code: ErrorCode::BodyTooLong,
                message: "too long".into(),
                retry_after_ms: None,
                client_id: None,
            },
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
                retry_after_ms: Some(250),
                client_id: Some("c-9".into()),
            },
            ServerMsg::Lagged {
                room: "general".into(),
                resume_from: 77,
            },
            ServerMsg::Presence {
                room: "general".into(),
                count: 2,
                members: Some(vec![ann(), bob()]),
                joined: vec![bob()],
                left: vec![],
            },
            ServerMsg::Presence {
                room: "general".into(),
                count: 5000,
                members: None,
                joined: vec![],
                left: vec![],
            },
            ServerMsg::Typing {
                room: "general".into(),
                user: ann(),
            },
            ServerMsg::Rooms {
                rooms: vec![RoomSummary {
                    room: "general".into(),
                    members: 2,
                    title: None,
                    hidden: false,
                }],
            },
            ServerMsg::Mine {
                rooms: vec![RoomSummary {
                    room: "~0123456789abcdef0123".into(),
                    members: 0,
                    title: Some("Launch plans".into()),
                    hidden: false,
                }],
            },
            ServerMsg::History {
                room: "general".into(),
                epoch: "e1".into(),
                messages: vec![],
                has_more: false,
            },
        ]
    }

    fn ann() -> Identity {
        Identity {
            id: "u1".into(),
            name: "Ann".into(),
        }
    }

    fn bob() -> Identity {
        Identity {
            id: "u2".into(),
            name: "Bob".into(),
        }
    }

    #[test]
    fn every_client_message_round_trips() {
        for msg in every_client_msg() {
            assert_eq!(ClientMsg::decode(&msg.encode()), Ok(msg));
        }
    }

    #[test]
    fn every_server_message_round_trips() {
        for msg in every_server_msg() {
            assert_eq!(ServerMsg::decode(&msg.encode()), Ok(msg));
        }
    }

    #[test]
    fn every_close_has_its_own_code_that_may_be_sent_and_a_short_reason() {
        for why in Disconnect::ALL {
            assert_eq!(Disconnect::from_code(why.code()), Some(why));
            // RFC 6455 §7.4: codes an endpoint may put in a close frame.
            assert!(
                matches!(why.code(), 1000..=1003 | 1007..=1014 | 3000..=4999),
                "{why:?}"
            );
            // A close frame's payload is at most 125 bytes, two of them the code.
            assert!(why.reason().len() <= 123, "{why:?}");
        }
        assert_eq!(
            Disconnect::from_code(1006),
            None,
            "the browser's own, never sent"
        );
        assert_eq!(Disconnect::GoingAway.reconnect(), Reconnect::AtOnce);
        assert_eq!(Disconnect::TooSlow.reconnect(), Reconnect::AfterPause);
        assert_eq!(Disconnect::ProtocolError.reconnect(), Reconnect::Never);
    }

    #[test]
    fn the_server_refuses_unknown_fields_and_the_client_ignores_them() {
        let send = r#"{"type":"send","room":"general","client_id":"a","body":"hi","extra":1}"#;
        assert!(ClientMsg::decode(send).is_err());
        // A newer server's welcome, with a field this build has never heard of.
        let welcome = r#"{"type":"welcome","you":{"id":"u1","name":"Ann","badge":"x"},"protocol":1,
            "limits":{"max_body_bytes":10000,"rate_per_sec":2.5,"rate_burst":10,"max_in_flight":256},
            "motd":"hello"}"#;
        match ServerMsg::decode(welcome) {
            Ok(ServerMsg::Welcome { you, limits, .. }) => {
                assert_eq!(you.name, "Ann");
                assert_eq!(limits.max_body_bytes, 10_000);
                assert_eq!(limits.rate_per_sec, 2.5);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_entry_of_a_type_this_build_does_not_know_keeps_its_room_and_seq() {
        let poll = r#"{"type":"poll","room":"general","seq":12,"author":{"id":"u1","name":"Ann"},
            "options":["soup","salad"]}"#;
        match ServerMsg::decode(poll) {
            Ok(ServerMsg::Other(other)) => {
                assert_eq!((other.room.as_str(), other.seq), ("general", 12));
                assert_eq!(other.entry_type, "poll");
            }
            other => panic!("{other:?}"),
        }
        // A frame of an unknown type that is not an entry (no room and seq) is not read as one.
        assert!(ServerMsg::decode(r#"{"type":"motd","text":"hi"}"#).is_err());
        assert!(ServerMsg::decode(r#"{"type":"poll","room":"general"}"#).is_err());
        // The types this build knows are declared once, and read back by name.
        for t in EntryType::ALL {
            assert_eq!(EntryType::from_name(t.as_str()), Some(t));
        }
        assert_eq!(EntryType::from_name("poll"), None);
    }

    #[test]
    fn a_server_frame_without_a_field_its_type_needs_is_refused() {
        let ack = r#"{"type":"ack","room":"general","client_id":"c-1"}"#;
        let err = ServerMsg::decode(ack).expect_err("an ack names its seq");
        assert_eq!(err.code, ErrorCode::InvalidFrame);
        assert!(err.message.contains("`seq`"), "{}", err.message);
        // A field of another type's frame does not stand in for a missing one.
        let typing = r#"{"type":"typing","room":"general","author":{"id":"u1","name":"Ann"}}"#;
        assert!(ServerMsg::decode(typing).is_err());
        assert!(ServerMsg::decode(r#"{"room":"general"}"#).is_err());
        assert!(ServerMsg::decode(r#"{"type":"ack","type":"ack"}"#).is_err());
    }

    #[test]
    fn a_send_is_checked_against_the_limits_the_server_announced() {
        let send = |body: &str| ClientMsg::Send {
            room: "general".into(),
            client_id: "a".into(),
            body: body.into(),
            reply_to: None,
        };
        let raised = Limits {
            max_body_bytes: 10_000,
            ..Limits::default()
        };
        let long = "x".repeat(5_000);
        assert!(send(&long).validate().is_err());
        assert_eq!(send(&long).validate_within(&raised), Ok(()));
        assert!(send(&"x".repeat(10_001)).validate_within(&raised).is_err());
    }

    #[test]
    fn frames_are_tagged_snake_case_json() {
        let send =
            ClientMsg::decode(r#"{"type":"send","room":"general","client_id":"a","body":"hi"}"#);
        assert_eq!(
            send,
            Ok(ClientMsg::Send {
                room: "general".into(),
                client_id: "a".into(),
                body: "hi".into(),
                reply_to: None,
            })
        );
        let join = ClientMsg::decode(r#"{"type":"join","room":"general"}"#);
        assert_eq!(
            join,
            Ok(ClientMsg::Join {
                room: "general".into(),
                since: None,
                create: false,
            })
        );
        let ack = ServerMsg::Ack {
            room: "general".into(),
            client_id: "a".into(),
            seq: 3,
        }
        .encode();
        assert_eq!(
            ack,
            r#"{"type":"ack","room":"general","client_id":"a","seq":3}"#
        );
        let err = ServerMsg::from(ProtocolError::new(ErrorCode::EmptyBody, "x")).encode();
        assert_eq!(err, r#"{"type":"error","code":"empty_body","message":"x"}"#);
    }

    #[test]
    fn malformed_frames_are_rejected_as_invalid_frame() {
        for text in [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"type":"shout","body":"hi"}"#,
            r#"{"type":"send","room":"general","body":"hi"}"#,
            r#"{"type":"send","room":"general","client_id":"a","body":"hi","author":"admin"}"#,
            r#"{"type":"send","room":"general","client_id":1,"body":"hi"}"#,
            r#"{"type":"join","room":"general","since":{"seq":3}}"#,
        ] {
            let err = ClientMsg::decode(text).expect_err(text);
            assert_eq!(err.code, ErrorCode::InvalidFrame, "{text}");
            assert!(!err.message.is_empty());
        }
    }

    #[test]
    fn limits_are_enforced_with_their_own_codes() {
        let send = |client_id: &str, body: &str| {
            ClientMsg::Send {
                room: "general".into(),
                client_id: client_id.into(),
                body: body.into(),
                reply_to: None,
            }
            .validate()
            .map_err(|e| e.code)
        };
        assert_eq!(send("a", " \n\t"), Err(ErrorCode::EmptyBody));
        assert_eq!(send("a", &"x".repeat(MAX_BODY_BYTES)), Ok(()));
        assert_eq!(
            send("a", &"x".repeat(MAX_BODY_BYTES + 1)),
            Err(ErrorCode::BodyTooLong)
        );
        // The limit counts bytes, not characters: 2 049 two-byte characters are 4 098 bytes.
        assert_eq!(send("a", &"é".repeat(2049)), Err(ErrorCode::BodyTooLong));
        assert_eq!(send("", "hi"), Err(ErrorCode::InvalidClientId));
        let history = |limit| {
            ClientMsg::History {
                room: "general".into(),
                before: 10,
                limit,
            }
            .validate()
            .map_err(|e| e.code)
        };
        assert_eq!(history(None), Ok(()));
        assert_eq!(history(Some(HISTORY_PAGE_MAX)), Ok(()));
        assert_eq!(history(Some(0)), Err(ErrorCode::InvalidLimit));
        assert_eq!(
            history(Some(HISTORY_PAGE_MAX + 1)),
            Err(ErrorCode::InvalidLimit)
        );
        assert_eq!(send("a\nb", "hi"), Err(ErrorCode::InvalidClientId));
        assert_eq!(
            send(&"c".repeat(MAX_CLIENT_ID_BYTES + 1), "hi"),
            Err(ErrorCode::InvalidClientId)
        );
    }

    #[test]
    fn room_names_are_lowercase_words() {
        for good in [
            "general",
            "ops-alerts",
            "team_7",
            &"r".repeat(MAX_ROOM_CHARS),
            // A private room's and a conversation's: a mark and 20 hex digits.
            "~0123456789abcdef0123",
            "@ffffffffffffffffffff",
        ] {
            assert_eq!(validate_room(good), Ok(()), "{good}");
        }
        assert!(is_private("~0123456789abcdef0123") && is_private("@ffffffffffffffffffff"));
        assert!(!is_private("general"));
        for bad in [
            "",
            "General",
            "a b",
            "ünï",
            "../x",
            &"r".repeat(MAX_ROOM_CHARS + 1),
            // Only an id after the mark: no word anyone could guess, no other length.
            "~launch-plans",
            "~0123456789abcdef012",
            "~0123456789abcdef01234",
            "@0123456789ABCDEF0123",
            "~~0123456789abcdef012",
            "~",
        ] {
            assert_eq!(
                validate_room(bad).map_err(|e| e.code),
                Err(ErrorCode::InvalidRoom),
                "{bad}"
            );
        }
    }

    #[test]
    fn what_people_write_becomes_a_room_name_by_one_rule() {
        for (written, room) in [
            ("general", "general"),
            ("General", "general"),
            ("  Design Team ", "design-team"),
            ("design   team", "design-team"),
            ("Ops\tAlerts 2", "ops-alerts-2"),
            ("team_7", "team_7"),
        ] {
            assert_eq!(normalize_room(written).as_deref(), Ok(room), "{written:?}");
        }
        // A name it makes is one `validate_room` takes: normalizing twice changes nothing.
        assert_eq!(normalize_room("design-team").as_deref(), Ok("design-team"));
        for bad in [
            "",
            "   ",
            "ünï",
            "\u{212a}itchen", // the Kelvin sign is not a k
            "a/b",
            "../x",
            &"R".repeat(MAX_ROOM_CHARS + 1),
            &format!("{} x", "r".repeat(MAX_ROOM_CHARS - 1)),
        ] {
            let refused = normalize_room(bad).map_err(|e| e.code);
            assert_eq!(refused, Err(ErrorCode::InvalidRoom), "{bad:?}");
        }
        let why = normalize_room("Design/Team").expect_err("a slash").message;
        assert!(why.contains("spaces become -"), "{why}");
        assert_eq!(
            normalize_room(&"r".repeat(MAX_ROOM_CHARS)).map(|r| r.len()),
            Ok(MAX_ROOM_CHARS)
        );
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_name("  Ann  "), Ok("Ann".into()));
        assert_eq!(
            validate_name(&"é".repeat(MAX_NAME_CHARS)).map(|n| n.chars().count()),
            Ok(32)
        );
        for bad in [
            "",
            "   ",
            "a\u{7}b",
            "line\nbreak",
            "Ann\u{202E}nimda",
            "\u{2067}Bob",
            "x\u{200F}",
            "\u{061C}y",
            "\u{200B}",
            "\u{200B}\u{FEFF} \u{2060}",
            "\u{3164}",
            // Invisible characters that make one name pass for another.
            "Ann\u{200B}",
            "A\u{2060}nn",
            "\u{FEFF}Ann",
            "An\u{AD}n",
            "Ann\u{2800}",
            "Ann\u{200D}",
            "A\u{200C}nn",
            "Ann\u{FE0F}",
            "\u{200D}\u{1F469}",
        ] {
            assert_eq!(
                validate_name(bad).map_err(|e| e.code),
                Err(ErrorCode::InvalidName),
                "{bad:?}"
            );
        }
        assert_eq!(
            validate_name(&"x".repeat(MAX_NAME_CHARS + 1)).map_err(|e| e.code),
            Err(ErrorCode::InvalidName)
        );
        // The joiners and selectors that build what people write are kept.
        for good in [
            "\u{1F469}\u{200D}\u{1F4BB} Ann", // woman technologist
            "\u{2764}\u{FE0F} Bob",           // red heart, as an emoji
            "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F} Eilidh", // Scotland
            "\u{0639}\u{0644}\u{06CC}\u{200C}\u{0631}\u{0636}\u{0627}", // Alireza, with a ZWNJ
            "\u{0915}\u{094D}\u{200D}\u{0937}", // Devanagari with a ZWJ
            "Zo\u{00EB}",
        ] {
            assert_eq!(validate_name(good), Ok(good.to_string()), "{good:?}");
        }
    }

    #[test]
    fn error_code_display_matches_the_wire_name() {
        for code in ErrorCode::ALL {
            assert_eq!(
                format!("\"{code}\""),
                serde_json::to_string(&code).unwrap_or_default()
            );
        }
    }

    /// The page reads these enums by the names in their `ALL` lists (`named`): each list has every
    /// variant (a variant left out would not be read), by its serde name.
    #[test]
    fn every_enum_the_page_reads_by_name_lists_every_variant_by_its_wire_name() {
        fn every<T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug + Copy>(
            all: &[T],
            as_str: fn(T) -> &'static str,
        ) {
            for one in all {
                let wire = serde_json::to_string(one).unwrap_or_default();
                assert_eq!(wire, format!("\"{}\"", as_str(*one)));
                assert_eq!(
                    named(Some(as_str(*one).into()), all, as_str),
                    Ok(Some(*one))
                );
            }
            assert!(named(Some("nonsense".into()), all, as_str).is_err());
        }
        every(&ErrorCode::ALL, ErrorCode::as_str);
        every(&JoinMode::ALL, JoinMode::as_str);
        every(&MessageKind::ALL, MessageKind::as_str);
        // Each list is as long as its enum: a match that names every variant once.
        let variants = |code: ErrorCode| match code {
            ErrorCode::InvalidFrame
            | ErrorCode::BinaryFrame
            | ErrorCode::EmptyBody
            | ErrorCode::BodyTooLong
            | ErrorCode::InvalidClientId
            | ErrorCode::InvalidRoom
            | ErrorCode::NotJoined
            | ErrorCode::InvalidLimit
            | ErrorCode::InvalidName
            | ErrorCode::RateLimited
            | ErrorCode::Unavailable
            | ErrorCode::NoSuchMessage
            | ErrorCode::NotYours
            | ErrorCode::MessageDeleted
            | ErrorCode::InvalidEmoji
            | ErrorCode::TooManyReactions
            | ErrorCode::NoSuchRoom
            | ErrorCode::Archived
            | ErrorCode::Muted
            | ErrorCode::NotAllowed => 20,
        };
        assert_eq!(variants(ErrorCode::InvalidFrame), ErrorCode::ALL.len());
    }

    /// A stream of changes to one message, by three people, from a fixed seed.
    fn changes(seed: u64, n: u64) -> Vec<(Change, Identity, u64)> {
        let people = ["ann", "bob", "cid"].map(|id| Identity {
            id: id.into(),
            name: id.to_uppercase(),
        });
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|i| {
                let who = people[(next() % 3) as usize].clone();
                let change = match next() % 10 {
                    0 => Change::Delete,
                    1..=3 => Change::Edit {
                        body: format!("text {i}"),
                    },
                    r => Change::React {
                        emoji: ["👍", "🎉", "👀"][(r % 3) as usize].into(),
                        remove: next() % 3 == 0,
                    },
                };
                (change, who, 2 + i)
            })
            .collect()
    }

    #[test]
    fn applying_a_stream_of_changes_ends_the_same_whatever_the_copy_had_already() {
        for seed in 1..=200u64 {
            let original = ChatMessage {
                room: "general".into(),
                seq: 1,
                author: Identity {
                    id: "ann".into(),
                    name: "ANN".into(),
                },
                client_id: "c1".into(),
                body: "first".into(),
                sent_at: 1,
                ..ChatMessage::default()
            };
            let stream = changes(seed, 30);
            // The server's way: each change checked and applied as it is stored; what is
            // refused is not stored, so not in the stream a reader gets.
            let mut stored = Vec::new();
            let mut server = original.clone();
            for (change, who, seq) in &stream {
                if server.apply(change, (who, MessageKind::User), *seq, *seq * 1000) == Ok(true) {
                    stored.push((change.clone(), who.clone(), *seq));
                }
            }
            // A reader's copy that had the first `k` stored changes (a page read mid-way), then
            // gets the whole stream again (a replay from an older cursor): the same message.
            for k in 0..=stored.len() {
                let mut copy = original.clone();
                for (change, who, seq) in stored.iter().take(k) {
                    let _ = copy.apply(change, (who, MessageKind::User), *seq, *seq * 1000);
                }
                for (change, who, seq) in &stored {
                    let _ = copy.apply(change, (who, MessageKind::User), *seq, *seq * 1000);
                }
                assert_eq!(copy, server, "seed {seed}, a copy that had {k}");
            }
            // Nothing of the text is left once it was deleted; nothing changes it after.
            if server.deleted.is_some() {
                assert!(server.body.is_empty() && server.reactions.is_empty());
            }
            assert!(server.reactions.iter().all(|r| !r.by.is_empty()));
            for r in &server.reactions {
                let mut ids: Vec<&str> = r.by.iter().map(|who| who.id.as_str()).collect();
                ids.sort_unstable();
                ids.dedup();
                assert_eq!(ids.len(), r.by.len(), "a person's reaction is there once");
            }
        }
    }

    #[test]
    fn a_change_frame_reads_back_as_it_was_sent() {
        for change in [
            Change::Edit {
                body: "new \"text\"".into(),
            },
            Change::Delete,
            Change::React {
                emoji: "👍🏽".into(),
                remove: true,
            },
        ] {
            let entry = ChangeEntry {
                room: "general".into(),
                seq: 9,
                author: Identity {
                    id: "u1".into(),
                    name: "Ann".into(),
                },
                client_id: "c9".into(),
                sent_at: 5,
                kind: MessageKind::Bot,
                target: 3,
                change,
            };
            let frame = ServerMsg::Change(entry.clone()).encode();
            assert_eq!(
                ServerMsg::decode(&frame),
                Ok(ServerMsg::Change(entry)),
                "{frame}"
            );
        }
    }
}
