//! The page's reactive state: what the components render and what the socket client updates.
//!
//! One [`Tab`] per browser tab (the connection, who we are, the room list, the rooms this tab has
//! open) and one [`Room`] per open room (its messages, cursor, outbox, people, typing). Both are
//! `Copy` (they hold only signal handles) and shared through Leptos context, so components and the
//! client take them by value. Switching rooms keeps every open room's state: the tab's one socket
//! stays joined to all of them.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::keep::{Op, Pending};
use crate::protocol::{
    Change, ChangeEntry, ChatMessage, ClientMsg, Cursor, Disconnect, HISTORY_ON_JOIN, Identity,
    JoinMode, Limits, MessageKind, ProtocolError, RoomSummary, TYPING_REPEAT_MS,
};

/// Most changes kept for messages not loaded yet (see [`Room::unapplied`]).
const UNAPPLIED_MAX: usize = 500;

/// Who the page is rendered for, from the session cookie (server) or from the page itself (browser):
/// `None` means the visitor has not chosen a name yet.
#[derive(Clone, Debug)]
pub struct CurrentUser(pub Option<Identity>);

/// The `<meta name=...>` through which the server hands the current user to the hydrating client (the
/// session cookie is HttpOnly, so scripts cannot read it).
pub const USER_META: &str = "herald-user";

/// The current user, the same on the server and in the browser, so hydration sees the same page.
pub fn current_user() -> Option<Identity> {
    #[cfg(feature = "hydrate")]
    {
        from_page(USER_META)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        use_context::<CurrentUser>().and_then(|user| user.0)
    }
}

/// The `<meta name=...>` through which the server hands the hydrating client the limits it was
/// started with, so the composer checks against them before the first `welcome` too.
pub const LIMITS_META: &str = "herald-limits";

/// What the server accepts: from the page until the server's `welcome` says it again.
pub fn page_limits() -> Limits {
    #[cfg(feature = "hydrate")]
    {
        from_page(LIMITS_META).unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        use_context::<Limits>().unwrap_or_default()
    }
}

/// What the server put, as JSON, in the page's `<meta name={name} content=...>`.
#[cfg(feature = "hydrate")]
fn from_page<T: serde::de::DeserializeOwned>(name: &str) -> Option<T> {
    let meta = leptos::prelude::document()
        .query_selector(&format!("meta[name={name}]"))
        .ok()
        .flatten()?;
    serde_json::from_str(&meta.get_attribute("content")?).ok()
}

/// Where the connection to the server stands, as the status pill shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketState {
    /// The page is server-rendered and the WASM has not taken over yet.
    Loading,
    /// Opening the WebSocket (first attempt or a retry that is under way).
    Connecting,
    /// The server welcomed us; sends go through.
    Connected,
    /// The socket dropped; the next attempt starts in this many seconds.
    Reconnecting { in_secs: u32 },
    /// The server closed the connection for a reason that trying again would not mend; the person
    /// is told, and reconnects when they choose.
    Stopped(Disconnect),
    /// The browser says there is no network; we reconnect as soon as it is back.
    Offline,
}

impl SocketState {
    /// Machine-readable name, put in `data-state` for tests and styling.
    pub fn name(self) -> &'static str {
        match self {
            SocketState::Loading => "loading",
            SocketState::Connecting => "connecting",
            SocketState::Connected => "connected",
            SocketState::Reconnecting { .. } => "reconnecting",
            SocketState::Stopped(_) => "stopped",
            SocketState::Offline => "offline",
        }
    }

    /// What the user reads.
    pub fn label(self) -> String {
        match self {
            SocketState::Loading => "Loading…".into(),
            SocketState::Connecting => "Connecting…".into(),
            SocketState::Connected => "Connected".into(),
            SocketState::Reconnecting { in_secs: 0 } => "Reconnecting…".into(),
            SocketState::Reconnecting { in_secs } => format!("Reconnecting in {in_secs}s"),
            SocketState::Stopped(why) => format!("Disconnected. {}", why.explain()),
            SocketState::Offline => "Offline".into(),
        }
    }
}

/// The room a page was rendered for, as the server had it at render time: its cursor and latest
/// messages. The page carries it to the hydrating client, which joins from that cursor, so nothing
/// posted between render and subscribe is missed, and nothing rendered is shown twice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPage {
    pub room: String,
    pub epoch: String,
    /// The latest messages (at most [`HISTORY_ON_JOIN`]), oldest first.
    pub messages: Vec<ChatMessage>,
    /// The seq the page's history reaches: the last message's, or a later entry's that is not
    /// shown as a line.
    pub last_seq: u64,
    /// The room holds older messages than these.
    pub has_more: bool,
}

/// The server's [`RoomPage`] for the page being rendered (server side, from context).
#[derive(Clone, Debug)]
pub struct InitialRoom(pub Option<RoomPage>);

/// The `<meta name=...>` that carries the [`RoomPage`] to the hydrating client.
pub const ROOM_META: &str = "herald-room";

/// The most lines a room keeps while its reader follows the newest. A tab left open on a busy room
/// (a dashboard on an alerts room, say) must not grow without end; once over this the oldest go,
/// down to [`KEPT_AFTER_TRIM`], and scrolling up loads them again from the server.
pub const KEPT_LINES: usize = 500;

/// What a trim leaves: trimming in steps, not one line per message.
pub const KEPT_AFTER_TRIM: usize = KEPT_LINES * 4 / 5;

/// The room the page was rendered with, the same on the server and in the browser.
pub fn initial_room() -> Option<RoomPage> {
    #[cfg(feature = "hydrate")]
    {
        from_page(ROOM_META)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        use_context::<InitialRoom>().and_then(|page| page.0)
    }
}

/// Everything about this tab's chat that is not about one room.
#[derive(Clone, Copy)]
pub struct Tab {
    /// True once the WASM has hydrated the page; until then nothing on it is interactive.
    pub hydrated: RwSignal<bool>,
    pub connection: RwSignal<SocketState>,
    /// Who we are: from the page, confirmed by the server's `Welcome`.
    pub me: RwSignal<Option<Identity>>,
    /// What the server accepts (the longest body, the rate): from the page, then each `Welcome`.
    pub limits: RwSignal<Limits>,
    /// The server's room list with member counts, as last told.
    pub directory: RwSignal<Vec<RoomSummary>>,
    /// This person's own rooms (private rooms and conversations, with titles) and the open rooms
    /// they hid, as last told (`mine`).
    pub mine: RwSignal<Vec<RoomSummary>>,
    /// The rooms this tab has open, in the order they were opened: the socket is joined to each.
    pub open: RwSignal<Vec<String>>,
    /// The rooms the server counts for this person (those they have read, their private rooms and
    /// conversations) that this tab has not opened: each has a [`Room`] for its unread count, not
    /// joined until it is opened.
    pub counted: RwSignal<Vec<String>>,
    rooms: StoredValue<Vec<Room>>,
    /// The room on screen.
    pub current: RwSignal<String>,
    /// False while the page is not on screen (a background tab, a minimised window): messages that
    /// arrive then are unread in the room on screen too. Set through [`Tab::set_visible`].
    visible: RwSignal<bool>,
    /// The last refusal from the server, shown under the composer until the next successful send.
    pub last_error: RwSignal<Option<String>>,
    /// Sends a frame on the current connection; installed by the client once hydrated.
    pub sender: StoredValue<Option<SendFn>, LocalStorage>,
    /// Cuts short the wait before the next connection attempt ("Retry now"); installed by the
    /// client once hydrated.
    pub retry_now: StoredValue<Option<std::rc::Rc<dyn Fn()>>, LocalStorage>,
    /// Sends were refused for going too fast and the outboxes go again shortly: what is written
    /// meanwhile waits in them, so it is not stored before what was refused.
    pub holding: StoredValue<bool>,
    /// The reactive owner the tab was made in: each room's signals are made there too, so they live
    /// as long as the tab, not as long as the page that first showed the room.
    owner: StoredValue<Option<Owner>, LocalStorage>,
}

/// What `room` is called where people read it, given its title from `mine` if known: `# name` for
/// an open room, a private room's title behind a lock, a conversation's (the others in it).
pub fn room_title(room: &str, titled: Option<String>) -> String {
    match (room.as_bytes().first(), titled) {
        (Some(b'~'), title) => format!("🔒 {}", title.unwrap_or_else(|| "Private room".into())),
        (Some(b'@'), title) => title.unwrap_or_else(|| "Direct message".into()),
        _ => format!("# {room}"),
    }
}

/// Someone typing in a room, as last told.
#[derive(Clone, Debug, PartialEq)]
pub struct Typing {
    pub who: Identity,
    /// When the indicator goes unless told again (ms since the Unix epoch).
    pub until_ms: f64,
}

/// [`Room`]'s `away_from` while the connection has not dropped: no seq is above it.
const NOT_AWAY: u64 = u64::MAX;

/// One open room of the tab.
#[derive(Clone, Copy)]
pub struct Room {
    pub name: StoredValue<String>,
    /// What is shown, oldest first: messages (seq order within one epoch) and notices of renames.
    pub lines: RwSignal<Vec<Line>>,
    /// The room's epoch from the latest `Joined`: seqs are only comparable within one epoch.
    pub epoch: RwSignal<Option<String>>,
    /// The last seq we hold of the room (in `epoch`); with it, the cursor we rejoin with.
    pub last_seq: RwSignal<u64>,
    /// Messages, edits, deletions and reactions not yet acknowledged, oldest first: a message
    /// shown as "sending…", a change already applied to what is shown; re-sent (with the same
    /// `client_id`) after every reconnect until the server acks them.
    pub pending: RwSignal<Vec<Pending>>,
    /// The message the next one sent answers, if the reader chose one.
    pub replying: RwSignal<Option<u64>>,
    /// The message whose text is being edited here.
    pub editing: RwSignal<Option<u64>>,
    /// The message with the picker or the question whether to delete it open.
    pub menu: RwSignal<Option<(u64, Menu)>>,
    /// A message to bring into view (a reply's original, a permalink), loading older pages until
    /// it is there.
    pub seek: RwSignal<Option<u64>>,
    /// The long messages the reader unfolded ("Show more"), kept open when their row is drawn again.
    pub unfolded: StoredValue<Vec<u64>>,
    /// Changes to messages older than those loaded: a page of history read before they were
    /// stored may arrive after them, and they are applied to it then.
    unapplied: StoredValue<Vec<ChangeEntry>>,
    /// Set when a rejoin could not replay everything we missed (the room no longer holds it).
    pub gap: RwSignal<bool>,
    /// Who is in the room, by name (`None` in rooms too big to list), and how many.
    pub members: RwSignal<Option<Vec<Identity>>>,
    pub member_count: RwSignal<u32>,
    /// Who is typing, and until when.
    pub typing: RwSignal<Vec<Typing>>,
    /// Whether the room holds messages older than the oldest shown, and whether we asked for them.
    pub has_more: RwSignal<bool>,
    pub loading_older: RwSignal<bool>,
    /// Messages not seen yet: those that arrived while another room was on screen, or while the
    /// page was hidden.
    pub unread: RwSignal<u32>,
    /// Of the unread, how many call on this person by `@handle`, as the server counts them (shown
    /// stronger than the unread count).
    pub mentions: RwSignal<u32>,
    /// What is typed in the composer and not yet sent: kept while another room is on screen.
    pub draft: RwSignal<String>,
    /// The key of the first message that arrived unseen, where "New messages" is drawn: set when
    /// the unread count leaves 0, kept after the room is looked at (so the reader finds where the
    /// news begins), gone once they write in the room.
    pub first_unread: RwSignal<Option<String>>,
    /// The last seq we held when the connection dropped, until the rejoin's replay is over (the
    /// `presence` that follows it): the first message from someone else after it, replayed on
    /// return, is where "New messages" begins, in the room on screen too. [`NOT_AWAY`] otherwise
    /// (a plain `u64`: each new type of stored value adds to the wasm).
    away_from: StoredValue<u64>,
    /// The last seq the latest join replays (its `joined`'s `last_seq`): what comes after it is
    /// live, never missed — even when it arrives before the replay's `presence` (the server lets
    /// what was stored during the join through first).
    replay_last: StoredValue<u64>,
    /// When we last told the server we are typing here (ms since the Unix epoch).
    typing_sent: StoredValue<f64>,
    /// Whether the reader is at the newest message (a room not on screen counts as followed: it
    /// opens there). Only then are the oldest lines trimmed: never under a reader's eyes.
    following: StoredValue<bool>,
    /// The furthest seq this person is known to have read here (told the server, or told by it).
    read_sent: StoredValue<u64>,
    /// When this tab last told the server how far it has read here (ms since the Unix epoch).
    read_at: StoredValue<f64>,
    /// This tab told the server it read up to `read_sent` and has not heard that back yet: a `read`
    /// saying less was sent before the server kept ours, and is stale (see `read_elsewhere`).
    read_unheard: StoredValue<bool>,
}

/// Most often a tab says how far its person has read a room they keep reading (see `tell_read`).
const READ_EVERY_MS: f64 = 2000.0;

/// What is open on a message besides its actions: the emoji picker, or the question whether to
/// delete it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Menu {
    Picker,
    Delete,
}

/// One line of a room's conversation.
// Nearly every line is a message: boxing them would add an allocation each to save on the few
// notices.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Message(Shown),
    /// "Bob is now Robert": shown, never stored.
    Notice {
        id: u64,
        text: String,
    },
}

impl Line {
    /// Unique across epochs: the key the message list renders by.
    pub fn key(&self) -> String {
        match self {
            Line::Message(shown) => shown.key(),
            Line::Notice { id, .. } => format!("n{id}"),
        }
    }

    fn seq(&self) -> Option<u64> {
        match self {
            Line::Message(shown) => Some(shown.msg.seq),
            Line::Notice { .. } => None,
        }
    }

    /// Whether it is a message that was deleted.
    pub fn is_deleted(&self) -> bool {
        matches!(self, Line::Message(shown) if shown.msg.deleted.is_some())
    }

    /// Which state of its message it shows: a row is drawn again when this changes.
    pub fn version(&self) -> u64 {
        match self {
            Line::Message(shown) => shown.msg.changed,
            Line::Notice { .. } => 0,
        }
    }
}

/// A message on screen, with the server epoch it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    pub epoch: String,
    pub msg: ChatMessage,
}

impl Shown {
    pub fn key(&self) -> String {
        format!("{}:{}", self.epoch, self.msg.seq)
    }
}

/// A handle the state uses to hand a frame to the socket client.
pub type SendFn = std::rc::Rc<dyn Fn(ClientMsg)>;

impl Tab {
    pub fn new(me: Option<Identity>) -> Self {
        Self {
            hydrated: RwSignal::new(false),
            connection: RwSignal::new(SocketState::Loading),
            me: RwSignal::new(me),
            limits: RwSignal::new(page_limits()),
            directory: RwSignal::new(Vec::new()),
            mine: RwSignal::new(Vec::new()),
            open: RwSignal::new(Vec::new()),
            counted: RwSignal::new(Vec::new()),
            rooms: StoredValue::new(Vec::new()),
            current: RwSignal::new(String::new()),
            visible: RwSignal::new(true),
            last_error: RwSignal::new(None),
            sender: StoredValue::new_local(None),
            retry_now: StoredValue::new_local(None),
            holding: StoredValue::new(false),
            owner: StoredValue::new_local(Owner::current()),
        }
    }

    /// The open room called `name`, if the tab has it open.
    pub fn room(&self, name: &str) -> Option<Room> {
        // A tab has a few rooms open: a list is enough (and a map costs the page ~1 KB of code).
        self.rooms.with_value(|rooms| {
            rooms
                .iter()
                .find(|r| r.name.with_value(|n| n == name))
                .copied()
        })
    }

    /// Every open room.
    /// What a room is called where people read it: `# name` for an open room; a private room's
    /// title (behind a lock) and a conversation's (the others in it), from `mine`.
    pub fn title(&self, room: &str) -> String {
        let titled = self.mine.with(|mine| {
            mine.iter()
                .find(|entry| entry.room == room)
                .and_then(|entry| entry.title.clone())
        });
        room_title(room, titled)
    }

    pub fn rooms(&self) -> Vec<Room> {
        self.open
            .with_untracked(|open| open.iter().filter_map(|name| self.room(name)).collect())
    }

    /// Shows room `name`, opening it if this tab has not yet: then it is joined — from the page's
    /// cursor if the page was rendered for it, so what the page shows is continued exactly.
    pub fn show(&self, name: &str) -> Room {
        // What was read of the room left is told now, not at the next look.
        self.tell_read(f64::INFINITY);
        self.current.set(name.to_owned());
        let counted = self
            .counted
            .with_untracked(|counted| counted.iter().any(|n| n == name));
        let room = match self.room(name) {
            Some(room) if !counted => {
                room.clear_unread();
                // Read again from here on, if it was marked unread.
                room.read_at.set_value(f64::MIN);
                return room;
            }
            // Counted, not open: what follows where its person stopped reading is new to them
            // ("New messages" is drawn before the first of it as the room's latest arrive).
            Some(room) => {
                if room.unread.get_untracked() > 0 {
                    room.away_from.set_value(room.read_sent.get_value());
                }
                room.clear_unread();
                self.counted.update(|counted| counted.retain(|n| n != name));
                room
            }
            None => self.make_room(name),
        };
        self.open.update(|open| open.push(name.to_owned()));
        if self.hydrated.get_untracked() {
            self.restore(room);
        }
        // While connected the join goes now; otherwise the next `welcome` joins every open room.
        if self.connection.get_untracked() == SocketState::Connected {
            self.send(room.join());
        }
        room
    }

    /// A room's state, made in the tab's owner (it lives as long as the tab), from the page if the
    /// page is of it.
    fn make_room(&self, name: &str) -> Room {
        let page = initial_room().filter(|page| page.room == name);
        let room = match self.owner.get_value() {
            Some(owner) => owner.with(|| Room::new(name, page)),
            None => Room::new(name, page),
        };
        self.rooms.update_value(|rooms| rooms.push(room));
        room
    }

    /// Brings back what this person left written in `room` in this browser (a draft, messages never
    /// acknowledged), and keeps it from now on as it changes (see `keep`). In the browser only, once
    /// hydrated; before the first `welcome`, so that restored messages are re-sent with the others.
    pub fn restore(&self, room: Room) {
        let Some(user) = self
            .me
            .with_untracked(|me| me.as_ref().map(|me| me.id.clone()))
        else {
            return;
        };
        let name = room.name.get_value();
        let kept = crate::keep::load(&user, &name);
        if room.draft.with_untracked(String::is_empty) && !kept.draft.is_empty() {
            room.draft.set(kept.draft);
        }
        if !kept.unacknowledged.is_empty() {
            room.pending.update(|pending| {
                for message in kept.unacknowledged {
                    if !pending.iter().any(|p| p.client_id == message.client_id) {
                        pending.push(message);
                    }
                }
            });
        }
        let keep = move || {
            let kept = crate::keep::Kept {
                draft: room.draft.get(),
                unacknowledged: room.pending.get(),
            };
            crate::keep::save(&user, &name, &kept);
        };
        match self.owner.get_value() {
            Some(owner) => owner.with(|| Effect::new(move |_| keep())),
            None => Effect::new(move |_| keep()),
        };
    }

    /// Whether anything written in this tab has not reached the server yet.
    pub fn has_unsent(&self) -> bool {
        self.rooms()
            .iter()
            .any(|room| room.pending.with_untracked(|p| !p.is_empty()))
    }

    /// Hands a frame to the socket client (dropped if there is none yet: it is re-derived from the
    /// state on connect).
    pub fn send(&self, msg: ClientMsg) {
        self.sender.with_value(|sender| {
            if let Some(send) = sender {
                send(msg);
            }
        });
    }

    /// Whether `who` is the person using this tab.
    pub fn is_me(&self, who: &Identity) -> bool {
        self.me
            .with_untracked(|me| me.as_ref().is_some_and(|me| me.id == who.id))
    }

    /// Puts a message in `room`'s outbox and hands it to the socket client, which sends it now if it
    /// is connected, and again after each reconnect until it is acknowledged.
    pub fn send_message(&self, room: Room, body: String) -> Result<(), ProtocolError> {
        let pending = Pending {
            client_id: next_client_id(),
            body,
            target: room.replying.get_untracked(),
            ..Pending::default()
        };
        let msg = frame_of(&room.name.get_value(), &pending);
        msg.validate_within(&self.limits.get_untracked())?;
        room.replying.set(None);
        room.pending.update(|p| p.push(pending));
        // Writing here answers what was new: the divider has done its job.
        room.first_unread.set(None);
        if !self.holding.get_value() {
            self.send(msg);
        }
        // The message ends the typing; the next keystroke starts a new "is typing" at once.
        room.typing_sent.set_value(f64::MIN);
        Ok(())
    }

    /// Changes message `target` of `room` (ours to edit or delete, anyone's to react to): put in
    /// the outbox like a message, shown at once, and sent.
    pub fn change(
        &self,
        room: Room,
        target: u64,
        op: Op,
        body: String,
    ) -> Result<(), ProtocolError> {
        let pending = Pending {
            client_id: next_client_id(),
            body,
            op,
            target: Some(target),
        };
        let msg = frame_of(&room.name.get_value(), &pending);
        msg.validate_within(&self.limits.get_untracked())?;
        room.pending.update(|p| p.push(pending));
        if !self.holding.get_value() {
            self.send(msg);
        }
        Ok(())
    }

    /// Adds our reaction `emoji` to message `target`, or takes it back if it is there.
    pub fn toggle_reaction(&self, room: Room, target: u64, emoji: String) {
        let me = self
            .me
            .with_untracked(|me| me.as_ref().map(|me| me.id.clone()));
        let mine = room.shown(target).is_some_and(|msg| {
            msg.reactions
                .iter()
                .any(|r| r.emoji == emoji && r.by.iter().any(|who| Some(&who.id) == me.as_ref()))
        });
        let op = if mine { Op::Unreact } else { Op::React };
        if let Err(e) = self.change(room, target, op, emoji) {
            self.last_error.set(Some(e.message));
        }
    }

    /// A change to a message of an open room arrived.
    pub fn changed(&self, change: ChangeEntry) {
        let Some(room) = self.room(&change.room) else {
            return;
        };
        if self.is_me(&change.author) {
            room.settle(&change.client_id);
        }
        room.apply_change(change);
    }

    /// The user typed in `room`: tell the others, at most every [`TYPING_REPEAT_MS`].
    pub fn typed(&self, room: Room, now_ms: f64) {
        if now_ms - room.typing_sent.get_value() < f64::from(TYPING_REPEAT_MS)
            || self.connection.get_untracked() != SocketState::Connected
        {
            return;
        }
        room.typing_sent.set_value(now_ms);
        self.send(ClientMsg::Typing {
            room: room.name.get_value(),
        });
    }

    /// A message arrived for an open room.
    pub fn message(&self, msg: ChatMessage) {
        let Some(room) = self.room(&msg.room) else {
            return;
        };
        let mine = self.is_me(&msg.author);
        let seq = msg.seq;
        if !room.push_message(msg, mine) || mine {
            return;
        }
        let unseen =
            !self.visible.get_untracked() || self.current.get_untracked() != room.name.get_value();
        // Replayed after a drop: it came while we were away, even in the room on screen.
        let missed = seq > room.away_from.get_value() && seq <= room.replay_last.get_value();
        if missed {
            room.away_from.set_value(NOT_AWAY);
        }
        if (unseen || missed) && room.unread.get_untracked() == 0 {
            let newest = room
                .lines
                .with_untracked(|lines| lines.last().map(Line::key));
            room.first_unread.set(newest);
        }
        if unseen {
            room.unread.update(|n| *n += 1);
        }
    }

    /// The connection dropped: what each room replays when it is back arrived while we were away.
    pub fn dropped(&self) {
        for room in self.rooms() {
            // What was told may not have arrived: what the server says on return is heard.
            room.read_unheard.set_value(false);
            if room.away_from.get_value() == NOT_AWAY && room.epoch.with_untracked(Option::is_some)
            {
                room.away_from.set_value(room.last_seq.get_untracked());
            }
        }
    }

    /// The page came on screen or went off it. Coming back, the room on screen has been read.
    pub fn set_visible(&self, visible: bool) {
        if !visible {
            self.tell_read(f64::INFINITY);
        }
        self.visible.set(visible);
        if visible && let Some(room) = self.room(&self.current.get_untracked()) {
            room.clear_unread();
        }
    }

    /// The room on screen, in a tab in sight and in focus, read down to its newest entry: the server
    /// keeps how far this person has read, for every device of theirs (docs/READING.md). Looked at
    /// a few times a second; told at most every [`READ_EVERY_MS`] while messages keep coming.
    /// `now` [`f64::INFINITY`]: at once (the room goes off screen).
    #[allow(clippy::manual_clamp)] // `clamp` checks its bounds: bytes of wasm for nothing
    pub fn tell_read(&self, now: f64) {
        // Connected only in the browser, once hydrated (never while the server renders the page).
        if self.connection.get_untracked() != SocketState::Connected
            || !self.visible.get_untracked()
            || !leptos::prelude::document().has_focus().unwrap_or(false)
        {
            return;
        }
        let Some(room) = self.room(&self.current.get_untracked()) else {
            return;
        };
        let last = room.last_seq.get_untracked();
        // Told once on opening too (never told: `f64::MIN`), so a room opened while it is empty is
        // counted.
        let read_at = room.read_at.get_value();
        if room.following.get_value()
            && (last > room.read_sent.get_value() || read_at == f64::MIN)
            // Less often with over 500 present, up to ten times (BENCHMARKS.md, session 22).
            && now
                >= read_at
                    + READ_EVERY_MS
                        * (f64::from(room.member_count.get_untracked()) / 500.0)
                            .max(1.0)
                            .min(10.0)
        {
            room.read_sent.set_value(last);
            room.read_at.set_value(now);
            room.read_unheard.set_value(true);
            self.send(ClientMsg::Read {
                room: room.name.get_value(),
                seq: last,
                rewind: false,
            });
        }
    }

    /// The server says where this person has read `room` (a device of theirs moved it, or this
    /// one): what it counts unread there is shown — unless it is this tab's own report come back,
    /// the room is on screen in sight (this tab reads it), or the tab holds entries after those
    /// counted (its own count is then the newer).
    pub fn read_elsewhere(
        &self,
        name: &str,
        seq: u64,
        last_seq: u64,
        (unread, mentions): (u32, u32),
    ) {
        let room = match self.room(name) {
            Some(room) => room,
            None => {
                let room = self.make_room(name);
                self.counted.update(|counted| counted.push(name.to_owned()));
                room
            }
        };
        // Told before the server kept what this tab said since (a "mark unread" elsewhere after
        // ours comes once ours is heard back): what it counts, this tab has read.
        if room.read_unheard.get_value() && seq < room.read_sent.get_value() {
            return;
        }
        room.read_unheard.set_value(false);
        let counted = self
            .counted
            .with_untracked(|counted| counted.iter().any(|n| n == name));
        let ours = room.read_sent.get_value() == seq;
        room.read_sent.set_value(seq);
        let on_screen =
            self.visible.get_untracked() && self.current.get_untracked() == room.name.get_value();
        // Our own report come back is applied too: what arrived after it (a mention, say) is
        // counted in it, and what this tab saw since is newer (`last_seq`) and keeps its count.
        if counted || (!on_screen && last_seq >= room.last_seq.get_untracked()) {
            room.unread.set(unread);
            room.mentions.set(mentions);
        } else if !ours && unread > 0 && room.first_unread.with_untracked(Option::is_none) {
            // Opened here where another device stopped reading: "New messages" goes there.
            let first = room.lines.with_untracked(|lines| {
                lines
                    .iter()
                    .find(|line| line.seq().is_some_and(|at| at > seq))
                    .map(Line::key)
            });
            room.first_unread.set(first);
        }
    }

    /// "Mark unread" from message `seq`: its person's position in `room` goes back to before it,
    /// on every device; here "New messages" is drawn above it, what follows is counted, and the
    /// room is not read again until it is opened again (reading it now would undo the mark).
    pub fn mark_unread(&self, room: Room, seq: u64) {
        let before = seq.saturating_sub(1);
        room.read_sent.set_value(before);
        room.read_unheard.set_value(false);
        // NaN: no time is late enough to tell the server it was read ([`Tab::tell_read`]).
        room.read_at.set_value(f64::NAN);
        let (first, count) = room.lines.with_untracked(|lines| {
            let after = lines
                .iter()
                .filter(|line| !line.is_deleted() && line.seq().is_some_and(|at| at >= seq));
            (after.clone().next().map(Line::key), after.count())
        });
        room.first_unread.set(first);
        room.unread.set(u32::try_from(count).unwrap_or(u32::MAX));
        self.send(ClientMsg::Read {
            room: room.name.get_value(),
            seq: before,
            rewind: true,
        });
    }

    /// "Mark as read": `room` read to its newest entry, on every device.
    pub fn mark_read(&self, room: Room) {
        let last = room.last_seq.get_untracked();
        room.first_unread.set(None);
        room.clear_unread();
        room.read_at.set_value(f64::MIN);
        if last > room.read_sent.get_value() {
            room.read_sent.set_value(last);
            room.read_unheard.set_value(true);
            self.send(ClientMsg::Read {
                room: room.name.get_value(),
                seq: last,
                rewind: false,
            });
        }
    }

    /// "Mark all as read": every room this person counts, on every device (the server knows them
    /// all; here the counts go at once).
    pub fn mark_all_read(&self) {
        self.rooms.with_value(|rooms| {
            for room in rooms {
                room.clear_unread();
                room.first_unread.set(None);
            }
        });
        self.send(ClientMsg::ReadAll);
    }

    /// Messages not yet seen, in every room this tab knows (open or counted; tracked: for the page title).
    pub fn unread_total(&self) -> u32 {
        self.open.track();
        self.counted.track();
        self.rooms
            .with_value(|rooms| rooms.iter().map(|room| room.unread.get()).sum())
    }
}

impl Room {
    /// Nothing here is unread any more (the room was looked at, or marked read).
    pub fn clear_unread(&self) {
        self.unread.set(0);
        self.mentions.set(0);
    }

    fn new(name: &str, page: Option<RoomPage>) -> Self {
        let (epoch, last_seq, lines, has_more) = match page {
            Some(page) => (
                Some(page.epoch.clone()),
                page.last_seq,
                page.messages
                    .into_iter()
                    .map(|msg| {
                        Line::Message(Shown {
                            epoch: page.epoch.clone(),
                            msg,
                        })
                    })
                    .collect(),
                page.has_more,
            ),
            None => (None, 0, Vec::new(), false),
        };
        Self {
            name: StoredValue::new(name.to_owned()),
            lines: RwSignal::new(lines),
            epoch: RwSignal::new(epoch),
            last_seq: RwSignal::new(last_seq),
            pending: RwSignal::new(Vec::new()),
            replying: RwSignal::new(None),
            editing: RwSignal::new(None),
            menu: RwSignal::new(None),
            seek: RwSignal::new(None),
            unfolded: StoredValue::new(Vec::new()),
            unapplied: StoredValue::new(Vec::new()),
            gap: RwSignal::new(false),
            members: RwSignal::new(None),
            member_count: RwSignal::new(0),
            typing: RwSignal::new(Vec::new()),
            has_more: RwSignal::new(has_more),
            loading_older: RwSignal::new(false),
            unread: RwSignal::new(0),
            mentions: RwSignal::new(0),
            draft: RwSignal::new(String::new()),
            first_unread: RwSignal::new(None),
            away_from: StoredValue::new(NOT_AWAY),
            replay_last: StoredValue::new(0),
            typing_sent: StoredValue::new(f64::MIN),
            following: StoredValue::new(true),
            read_sent: StoredValue::new(0),
            read_at: StoredValue::new(f64::MIN),
            read_unheard: StoredValue::new(false),
        }
    }

    /// The frame that joins this room from where our copy ends.
    pub fn join(&self) -> ClientMsg {
        ClientMsg::Join {
            room: self.name.get_value(),
            since: self.cursor(),
            create: false,
        }
    }

    /// Shows a message unless it is already shown, and retires it from the outbox if it is ours.
    /// Returns whether it was new.
    pub fn push_message(&self, msg: ChatMessage, mine: bool) -> bool {
        let Some(epoch) = self.epoch.get_untracked() else {
            return false; // Messages only come after `Joined`, which sets the epoch.
        };
        if mine {
            self.settle(&msg.client_id);
        }
        self.typing
            .update(|typing| typing.retain(|t| t.who.id != msg.author.id));
        // Within one epoch seqs only grow: anything at or below what we hold is a repeat.
        if msg.seq <= self.last_seq.get_untracked() {
            return false;
        }
        self.last_seq.set(msg.seq);
        let mut trimmed = false;
        let following = self.following.get_value();
        self.lines.update(|lines| {
            lines.push(Line::Message(Shown { epoch, msg }));
            if following && lines.len() > KEPT_LINES {
                lines.drain(..lines.len() - KEPT_AFTER_TRIM);
                trimmed = true;
            }
        });
        if trimmed {
            self.has_more.set(true);
        }
        true
    }

    /// A change to one of the room's messages: applied to it if it is shown, kept for a page of
    /// history still to come if it is older than what is shown. Applying it again changes nothing.
    pub fn apply_change(&self, change: ChangeEntry) {
        self.pass(change.seq);
        let at = self.lines.with_untracked(|lines| {
            lines
                .iter()
                .position(|line| line.seq() == Some(change.target))
        });
        match at {
            Some(at) => {
                let mut msg = match self.lines.with_untracked(|lines| lines[at].clone()) {
                    Line::Message(shown) => shown.msg,
                    Line::Notice { .. } => return,
                };
                if apply(&mut msg, &change) {
                    self.lines.update(|lines| {
                        if let Some(Line::Message(shown)) = lines.get_mut(at) {
                            shown.msg = msg;
                        }
                    });
                }
            }
            None if self
                .oldest_seq()
                .is_none_or(|oldest| change.target < oldest) =>
            {
                self.unapplied.update_value(|kept| {
                    kept.push(change);
                    if kept.len() > UNAPPLIED_MAX {
                        kept.remove(0);
                    }
                });
            }
            None => {}
        }
    }

    /// Our newest message shown that can still be edited.
    pub fn last_own(&self, tab: &Tab) -> Option<u64> {
        // One still being sent is the last, and it has no seq to edit yet: nothing, rather than
        // the one before it (↑ straight after Enter would change the wrong message).
        if self
            .pending
            .with_untracked(|p| p.iter().any(|p| p.op == Op::Send))
        {
            return None;
        }
        self.lines.with_untracked(|lines| {
            lines.iter().rev().find_map(|line| match line {
                Line::Message(shown)
                    if shown.msg.deleted.is_none()
                        && shown.msg.kind == MessageKind::User
                        && tab.is_me(&shown.msg.author) =>
                {
                    Some(shown.msg.seq)
                }
                _ => None,
            })
        })
    }

    /// Message `seq` as shown, if it is.
    pub fn shown(&self, seq: u64) -> Option<ChatMessage> {
        self.lines.with_untracked(|lines| {
            lines.iter().find_map(|line| match line {
                Line::Message(shown) if shown.msg.seq == seq => Some(shown.msg.clone()),
                _ => None,
            })
        })
    }

    /// An entry of a type this build does not know, at `seq`: nothing is shown, but the cursor moves
    /// past it, so a rejoin does not ask for it again (docs/PROTOCOL.md, "Entries").
    pub fn pass(&self, seq: u64) {
        if self.epoch.with_untracked(Option::is_some) && seq > self.last_seq.get_untracked() {
            self.last_seq.set(seq);
        }
    }

    /// The reader is (or is no longer) at the newest message.
    pub fn follow(&self, at_newest: bool) {
        self.following.set_value(at_newest);
    }

    /// Whether the reader was at the newest message when they last scrolled (or were taken there).
    pub fn is_following(&self) -> bool {
        self.following.get_value()
    }

    /// The server's answer to our join: what follows is the replay from `first_seq` to `last_seq`,
    /// then the live messages.
    pub fn joined(&self, epoch: String, mode: JoinMode, first_seq: u64, last_seq: u64) {
        let same_epoch = self.epoch.get_untracked().as_deref() == Some(epoch.as_str());
        if matches!(mode, JoinMode::Reset | JoinMode::Latest) || !same_epoch {
            // The latest messages follow from scratch; what we hold would be repeated or belongs
            // to a history that no longer exists.
            self.lines.update(Vec::clear);
            self.unapplied.set_value(Vec::new());
            self.has_more.set(first_seq > 1);
        }
        self.gap
            .set(mode == JoinMode::Partial && self.lines.with_untracked(|l| !l.is_empty()));
        self.epoch.set(Some(epoch));
        self.last_seq.set(first_seq.saturating_sub(1));
        self.replay_last.set_value(last_seq);
    }

    /// Where our copy of the room ends, to rejoin from.
    pub fn cursor(&self) -> Option<Cursor> {
        Some(Cursor {
            epoch: self.epoch.get_untracked()?,
            seq: self.last_seq.get_untracked(),
        })
    }

    /// The acknowledged (or seen) message with this `client_id` leaves the outbox.
    pub fn settle(&self, client_id: &str) {
        if self
            .pending
            .with_untracked(|p| p.iter().any(|p| p.client_id == client_id))
        {
            self.pending
                .update(|p| p.retain(|p| p.client_id != client_id));
        }
    }

    /// The frames that re-send the whole outbox, oldest first.
    pub fn resends(&self) -> Vec<ClientMsg> {
        self.pending.with_untracked(|pending| {
            pending
                .iter()
                .map(|p| frame_of(&self.name.get_value(), p))
                .collect()
        })
    }

    /// The seq of the oldest message shown.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.lines
            .with_untracked(|lines| lines.iter().find_map(Line::seq))
    }

    /// The frame asking for the page of history before what is shown, if there is one to ask for.
    pub fn older(&self) -> Option<ClientMsg> {
        if !self.has_more.get_untracked() || self.loading_older.get_untracked() {
            return None;
        }
        let before = self.oldest_seq()?;
        self.loading_older.set(true);
        Some(ClientMsg::History {
            room: self.name.get_value(),
            before,
            limit: Some(HISTORY_ON_JOIN as u32),
        })
    }

    /// An older page arrived: it goes above what is shown.
    pub fn prepend(&self, epoch: String, messages: Vec<ChatMessage>, has_more: bool) {
        self.loading_older.set(false);
        if self.epoch.get_untracked().as_deref() != Some(epoch.as_str()) {
            return; // From a history we no longer show.
        }
        let oldest = self.oldest_seq().unwrap_or(u64::MAX);
        let unapplied = self.unapplied.get_value();
        let older: Vec<Line> = messages
            .into_iter()
            .filter(|m| m.seq < oldest)
            .map(|mut msg| {
                // What changed since the page was read (a change at or before it is in it already).
                let seq = msg.seq;
                for change in unapplied.iter().filter(|c| c.target == seq) {
                    apply(&mut msg, change);
                }
                Line::Message(Shown {
                    epoch: epoch.clone(),
                    msg,
                })
            })
            .collect();
        self.has_more.set(has_more);
        if !older.is_empty() {
            self.lines.update(|lines| {
                lines.splice(0..0, older);
            });
        }
    }

    /// Who is here now. Arrivals and departures show in the people panel only: in the conversation
    /// they piled up with every reload, room hop or phone waking. A change of name is the one
    /// presence change the conversation shows, as one line ("Bob is now Robert"): an id in the
    /// member list under another name than before (the server's `joined` and `left` go by id, so a
    /// rename is never in them). `me` (our own id) is no news.
    pub fn presence(&self, count: u32, members: Option<Vec<Identity>>, me: Option<&str>) {
        // It follows the rejoin's replay: whatever comes from now on is live, not missed.
        self.away_from.set_value(NOT_AWAY);
        let before = self.members.get_untracked().unwrap_or_default();
        let mut renamed: Vec<(String, String, String)> = Vec::new();
        let mut note = |id: &str, old: &str, new: &str| {
            if Some(id) != me && old != new && !renamed.iter().any(|(seen, ..)| seen == id) {
                renamed.push((id.to_owned(), old.to_owned(), new.to_owned()));
            }
        };
        for who in members.iter().flatten() {
            if let Some(was) = before.iter().find(|was| was.id == who.id) {
                note(&who.id, &was.name, &who.name);
            }
        }
        self.member_count.set(count);
        self.members.set(members);
        if !renamed.is_empty() {
            self.lines.update(|lines| {
                for (id, old, new) in renamed {
                    // Before their first words under the new name, if those came first (this
                    // `presence` is sent at most twice a second, a message at once).
                    let by = |line: &Line, named: bool| {
                        matches!(line, Line::Message(shown)
                            if shown.msg.author.id == id && (shown.msg.author.name == new) == named)
                    };
                    let after_old = lines
                        .iter()
                        .rposition(|l| by(l, false))
                        .map_or(0, |i| i + 1);
                    let at = lines[after_old..]
                        .iter()
                        .position(|l| by(l, true))
                        .map_or(lines.len(), |i| after_old + i);
                    let notice = Line::Notice {
                        id: next_notice_id(),
                        text: format!("{old} is now {new}"),
                    };
                    lines.insert(at, notice);
                }
            });
        }
    }

    /// `who` is typing, until `until_ms`.
    pub fn typing(&self, who: Identity, until_ms: f64) {
        self.typing.update(|typing| {
            typing.retain(|t| t.who.id != who.id);
            typing.push(Typing { who, until_ms });
        });
    }

    /// Forgets typing signals that have expired by `now_ms`.
    pub fn expire_typing(&self, now_ms: f64) {
        if self
            .typing
            .with_untracked(|t| t.iter().any(|t| t.until_ms <= now_ms))
        {
            self.typing.update(|t| t.retain(|t| t.until_ms > now_ms));
        }
    }
}

/// Applies `change` to `msg` as the server did; whether it changed anything.
fn apply(msg: &mut ChatMessage, change: &ChangeEntry) -> bool {
    msg.apply(
        &change.change,
        (&change.author, change.kind),
        change.seq,
        change.sent_at,
    )
    .unwrap_or(false)
}

/// The change a pending edit, deletion or reaction makes.
pub fn change_of(pending: &Pending) -> Change {
    match pending.op {
        Op::Edit | Op::Send => Change::Edit {
            body: pending.body.clone(),
        },
        Op::Delete => Change::Delete,
        Op::React | Op::Unreact => Change::React {
            emoji: pending.body.clone(),
            remove: pending.op == Op::Unreact,
        },
    }
}

/// The frame that sends `pending` to `room`.
pub fn frame_of(room: &str, pending: &Pending) -> ClientMsg {
    let (room, client_id, body) = (
        room.to_owned(),
        pending.client_id.clone(),
        pending.body.clone(),
    );
    let target = pending.target.unwrap_or_default();
    match pending.op {
        Op::Send => ClientMsg::Send {
            room,
            client_id,
            body,
            reply_to: pending.target,
        },
        Op::Edit => ClientMsg::Edit {
            room,
            client_id,
            target,
            body,
        },
        Op::Delete => ClientMsg::Delete {
            room,
            client_id,
            target,
        },
        Op::React | Op::Unreact => ClientMsg::React {
            room,
            client_id,
            target,
            emoji: body,
            remove: pending.op == Op::Unreact,
        },
    }
}

fn next_notice_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A fresh idempotency key for one send: random per page load, then counting.
pub fn next_client_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}", page_nonce())
}

/// Random per page load, so two tabs never pick the same `client_id`.
#[cfg(feature = "hydrate")]
fn page_nonce() -> &'static str {
    use std::sync::OnceLock;
    static NONCE: OnceLock<String> = OnceLock::new();
    NONCE.get_or_init(|| {
        format!(
            "{:013x}",
            (js_sys::Math::random() * (1u64 << 52) as f64) as u64
        )
    })
}

#[cfg(not(feature = "hydrate"))]
fn page_nonce() -> &'static str {
    "ssr"
}
