//! The broadcast hub: who listens to which room, who is in it, and fan-out of each stored message and
//! each signal to them. No I/O. Here: the rooms' subscribers and fan-out; `handle.rs`: a
//! connection's joins and leaves; `queue.rs`: each connection's bounded queue; `presence.rs`: who
//! is in a room, as the others are told it; `recent.rs`: each room's newest frames, for replays.
//!
//! A message is encoded once into a [`Frame`] whose bytes every subscriber shares; delivering it is a
//! non-blocking push onto each connection's [`SendQueue`], a queue bounded in frames and in bytes that
//! costs no allocation while empty. When a connection's queue is full it is reading too slowly: the
//! hub stops queuing that room for it and leaves a lag note, which its writer turns into a `lagged`
//! marker once the queue is drained; the client catches up from the log by rejoining. Nobody waits
//! for a slow reader, and no queue grows past its bound. A connection that lags again and again is
//! given up on (closed with `Disconnect::TooSlow`).
//!
//! The hub also knows the last seq published in each room, so a joining connection can replay the log
//! exactly up to where its live queue starts (docs/ARCHITECTURE.md, "Joining without a gap").
//!
//! Presence and typing are signals: never stored, never replayed, and dropped rather than queued for a
//! connection whose queue is full (the `presence` after its rejoin puts it right). Presence changes are
//! collected and announced by [`Hub::tick`], which the server calls a few times a second: that
//! coalesces a burst of arrivals into one frame, and a person counts as gone only after
//! [`LEAVE_GRACE`] without any connection in the room, so a reload or a network blip is not announced.
//! A message from someone whose arrival is still to be told is preceded by that announcement.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex, MutexGuard, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use app::protocol::{
    Change, Disconnect, Entry, Identity, RoomSummary, ServerMsg, TYPING_REPEAT_MS,
};

pub use crate::frame::Frame;
pub use handle::{Handle, JoinPoint, ReadOnly};
pub use queue::{Drain, SendQueue};
pub use shared::Shared;

mod handle;
mod presence;
mod queue;
mod recent;
mod shared;
#[cfg(test)]
mod tests;

use presence::room_list;
use queue::Full;
use recent::{RECENT_KEEP, Recent};

/// How many times a connection may lag before the hub gives up on it.
pub const MAX_LAGS: u32 = 5;

/// Frames a subscriber may have waiting before it counts as too slow.
pub const QUEUE_FRAMES: usize = 256;

/// Bytes a connection may have waiting (encoded frames, counted per connection even where the bytes
/// are shared) before it counts as too slow. With [`QUEUE_FRAMES`] this bounds what one stalled
/// reader can hold, whatever the body limit is set to.
pub const QUEUE_BYTES: usize = 512 * 1024;

/// How often the server should call [`Hub::tick`]: the longest a presence change waits to be told.
pub const TICK: Duration = Duration::from_millis(500);

/// A room that never held a message is forgotten once nobody has been in it this long (a reload of
/// the page comes back within it). One made by a typo, or a flood of joins, leaves nothing behind.
pub const UNUSED_KEEP: Duration = Duration::from_secs(5);

/// How long someone must be without any connection in a room before the others are told they left.
pub const LEAVE_GRACE: Duration = Duration::from_secs(3);

/// At most one `typing` per person and room is passed on this often; clients repeat theirs every
/// [`TYPING_REPEAT_MS`], so this only trims what a misbehaving client sends.
const TYPING_COALESCE: Duration = Duration::from_millis(TYPING_REPEAT_MS as u64 * 2 / 3);

/// One room as the hub knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomStats {
    pub room: String,
    /// People in it, as last announced.
    pub members: u32,
    /// The seq of its last message published.
    pub last_seq: u64,
}

/// Cheap to clone: every clone is a handle to the same hub.
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// Each room has a lock of its own, so a busy room's fan-out never waits for another room's. The
/// directory of rooms is only written when a room is first seen. No code holds two room locks at
/// once, nor takes the directory's write lock while holding a room's.
#[derive(Default)]
struct Inner {
    next_connection: AtomicU64,
    rooms: RwLock<HashMap<String, Arc<Mutex<HubRoom>>>>,
    /// Every open connection, for what goes to all of them (the room list, shutdown).
    connections: Mutex<HashMap<u64, Arc<SendQueue>>>,
    /// The connections let in by each session (its stored key), to close when it ends, with the
    /// account it signs in (to reach a person's connections when their rooms change).
    sessions: Mutex<HashMap<Box<str>, SessionConnections>>,
    /// The connections here of each signed-in account, all its sessions': a person's devices are
    /// told where they have read many times a second, which must not look through every session.
    by_account: Mutex<HashMap<Box<str>, Vec<u64>>>,
    /// The room list as last sent to everyone.
    rooms_announced: Mutex<Vec<RoomSummary>>,
    /// A room's count changed outside [`Hub::tick`]: the next tick sends the room list.
    list_stale: AtomicBool,
    /// Part of a cluster: [`Hub::tick`] says what to share with the other nodes.
    clustered: AtomicBool,
    /// Typing passed on here since the last tick, to share: `(room, who)`.
    typed: Mutex<Vec<(String, Identity)>>,
    /// Rooms that never held a message and have had nobody in them for [`UNUSED_KEEP`], found by
    /// [`Hub::tick`], for [`Hub::unused_rooms`].
    unused: Mutex<Vec<String>>,
    counters: Counters,
}

/// What the hub counts for the metrics (`metrics.rs` exports them): one atomic each, added to once
/// per fan-out.
#[derive(Clone)]
pub struct Counters {
    /// Message frames queued for subscribers.
    pub deliveries: prometheus::IntCounter,
    /// Times a subscriber's queue was full and it was told to catch up from the log.
    pub lags: prometheus::IntCounter,
}

impl Default for Counters {
    fn default() -> Self {
        let counter = |name: &str, help: &str| {
            prometheus::IntCounter::new(name, help).expect("a valid metric name (constant)")
        };
        Self {
            deliveries: counter(
                "herald_deliveries_total",
                "Message frames queued for subscribers (one per subscriber per message).",
            ),
            lags: counter(
                "herald_slow_reader_lags_total",
                "Times a subscriber's queue was full: it was told to catch up from the log.",
            ),
        }
    }
}

/// A session's account (its id), and the connections it let in here.
type SessionConnections = (Box<str>, Vec<u64>);

/// A lock whose holder panicked is still usable: every update under these locks is a single
/// insert, remove or counter bump, which a panic cannot leave half done in a way that matters.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
struct HubRoom {
    /// Seq of the last message published here.
    last_seq: u64,
    /// By connection id: the connections that get this room's frames.
    subscribers: HashMap<u64, Subscriber>,
    /// By user id: the people in the room (lagging does not make anyone leave; leaving does).
    members: HashMap<String, Member>,
    /// The members as last announced, by user id.
    announced: BTreeMap<String, Identity>,
    /// Members changed (or someone is within their leave grace) since the last announcement.
    dirty: bool,
    /// By user id: when their last `typing` here was passed on.
    typing: HashMap<String, Instant>,
    /// The newest messages, encoded: what a join replays when it starts among them.
    recent: Recent,
    /// Since when the room has had no subscriber (seen by [`Hub::tick`]); its recent frames go
    /// [`RECENT_KEEP`] after.
    emptied_at: Option<Instant>,
    /// In a cluster, by node id: the people here on the other nodes, as each last said.
    remote: HashMap<String, Vec<Identity>>,
    /// This node's own people here as last shared with the cluster, by user id.
    shared: BTreeMap<String, Identity>,
    /// This node's own people changed since they were last shared.
    share_pending: bool,
    /// Since when the room, which never held a message, has had nobody in it (seen by
    /// [`Hub::tick`]); it is offered to be forgotten [`UNUSED_KEEP`] after.
    unused_since: Option<Instant>,
    /// Made on purpose (it has a record): never offered to be forgotten again ([`Hub::keep`]).
    kept: bool,
}

impl HubRoom {
    /// Never held a message, and nobody is in it here or (as far as this node knows) elsewhere.
    fn is_unused(&self) -> bool {
        !self.kept
            && self.last_seq == 0
            && self.subscribers.is_empty()
            && self.members.is_empty()
            && self.remote.values().all(Vec::is_empty)
    }
}

struct Member {
    who: Identity,
    /// This person's connections in the room (tabs, devices).
    connections: u32,
    /// When `connections` dropped to 0; they count as present until [`LEAVE_GRACE`] after it.
    gone_since: Option<Instant>,
}

struct Subscriber {
    queue: Arc<SendQueue>,
    /// While the connection replays this room's history, its live messages wait here, so they reach
    /// the queue after the replay (see [`Handle::release`]).
    held: Option<Vec<Frame>>,
}

impl Subscriber {
    /// Queues a message frame (or holds it). False if the subscriber lagged on this message of
    /// `room` (seq `seq`): then it must be dropped from the room.
    fn deliver(&mut self, room: &str, seq: u64, frame: &Frame) -> bool {
        if let Some(held) = &mut self.held {
            if held.len() < QUEUE_FRAMES {
                held.push(frame.clone());
                return true;
            }
            // Nothing held reached the queue (it holds seqs up to `seq - 1`): resume from the first.
            let first_held = seq - held.len() as u64;
            self.queue.note(room, first_held);
            return false;
        }
        match self.queue.try_push(frame) {
            Ok(()) => true,
            Err(Full) => {
                self.queue.note(room, seq);
                false
            }
        }
    }

    /// Queues a signal, unless the connection is still replaying this room (it gets a fresh
    /// `presence` right after) or its queue is full.
    fn signal(&self, frame: &Frame) {
        if self.held.is_none() {
            self.queue.signal(frame);
        }
    }
}

/// Numbers an operator (or a test) can read off the hub.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub connections: usize,
    /// Bytes waiting in all connections' queues, counted per connection.
    pub queued_bytes: usize,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Where a room's history ends, as the log found it at start-up.
    pub fn set_last_seq(&self, room: &str, seq: u64) {
        lock(&self.room(room)).last_seq = seq;
    }

    /// Room `name`, made on first sight.
    fn room(&self, name: &str) -> Arc<Mutex<HubRoom>> {
        if let Some(room) = self.find(name) {
            return room;
        }
        let mut rooms = self
            .inner
            .rooms
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        rooms.entry(name.to_owned()).or_default().clone()
    }

    /// Room `name`, if the hub has seen it.
    fn find(&self, name: &str) -> Option<Arc<Mutex<HubRoom>>> {
        self.directory().get(name).cloned()
    }

    fn directory(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Mutex<HubRoom>>>> {
        self.inner
            .rooms
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every room, to visit one at a time (the directory is not held meanwhile).
    fn every_room(&self) -> Vec<(String, Arc<Mutex<HubRoom>>)> {
        self.directory()
            .iter()
            .map(|(name, room)| (name.clone(), room.clone()))
            .collect()
    }

    /// A new connection for `user` (or an observer), with its own bounded queue, in no room yet.
    pub fn connect(&self, user: Option<Identity>) -> Handle {
        let queue = Arc::new(SendQueue::default());
        let id = self.inner.next_connection.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.connections).insert(id, queue.clone());
        Handle {
            id,
            hub: self.clone(),
            user,
            session: None,
            queue,
            joined: Vec::new(),
            read_only: Vec::new(),
        }
    }

    /// [`Hub::connect`] for a person let in by `session` (its stored key): closed by
    /// [`Hub::end_sessions`] when the session ends.
    pub fn connect_signed_in(&self, user: Identity, session: &str) -> Handle {
        let account: Box<str> = user.id.as_str().into();
        let mut handle = self.connect(Some(user));
        lock(&self.inner.by_account)
            .entry(account.clone())
            .or_default()
            .push(handle.id);
        lock(&self.inner.sessions)
            .entry(session.into())
            .or_insert_with(|| (account, Vec::new()))
            .1
            .push(handle.id);
        handle.session = Some(session.into());
        handle
    }

    /// Queues a stored entry for every subscriber of its room. Called by the log's one publishing
    /// task after each commit, in seq order, so every queue gets a room's messages in seq order.
    pub fn publish(&self, entry: &Entry) {
        // Encoded once, outside the lock; every subscriber shares these bytes.
        let frame = Frame::of_entry(entry);
        let (name, seq) = (entry.room(), entry.seq());
        let room = self.room(name);
        let mut room = lock(&room);
        if let Some(message) = entry.message() {
            // Someone who speaks before their arrival was announced is announced first, so the
            // others read "Bob joined" before Bob's first words, not a tick after them.
            let author = &message.author.id;
            if room.dirty
                && !room.announced.contains_key(author)
                && (room.members.contains_key(author)
                    || room.remote.values().flatten().any(|who| who.id == *author))
                && room.announce(name, Instant::now())
            {
                self.inner.list_stale.store(true, Ordering::Relaxed);
            }
            // Their message ends their typing; the next keystroke may say so again at once.
            room.typing.remove(author);
        }
        room.last_seq = seq;
        if let Entry::Change(change) = entry
            && change.change == Change::Delete
        {
            // The frames kept hold the deleted words (the message, its edits): a replay from before
            // here reads the log, where they are gone.
            room.recent.clear();
        }
        room.recent.push(seq, &frame);
        let before = room.subscribers.len();
        room.subscribers
            .retain(|_, sub| sub.deliver(name, seq, &frame));
        let delivered = room.subscribers.len();
        drop(room);
        let counters = &self.inner.counters;
        counters.deliveries.inc_by(delivered as u64);
        if delivered < before {
            counters.lags.inc_by((before - delivered) as u64);
        }
    }

    /// Announces what changed since the last tick: each room's presence (to its subscribers) and, if
    /// any count changed, the room list (to everyone). The server calls it every [`TICK`]. In a
    /// cluster, returns what to tell the other nodes: the rooms whose people here changed, and who
    /// typed.
    pub fn tick(&self, now: Instant) -> Vec<Shared> {
        let clustered = self.inner.clustered.load(Ordering::Relaxed);
        let mut shared = Vec::new();
        let mut counts_changed = self.inner.list_stale.swap(false, Ordering::Relaxed);
        for (name, room) in self.every_room() {
            let mut room = lock(&room);
            room.typing
                .retain(|_, sent| now < *sent + Duration::from_secs(60));
            if room.dirty {
                counts_changed |= room.announce(&name, now);
            }
            if clustered && room.share_pending {
                room.share_pending = false;
                shared.push(Shared::People {
                    room: name.clone(),
                    people: room.shared.values().cloned().collect(),
                });
            }
            // However its last subscriber went (left, dropped, lagged), an empty room keeps its
            // recent frames a while for those coming back, then lets them go.
            if !room.subscribers.is_empty() || room.recent.is_empty() {
                room.emptied_at = None;
            } else if room.emptied_at.is_none() {
                room.emptied_at = Some(now);
            } else if room.emptied_at.is_some_and(|at| now >= at + RECENT_KEEP) {
                room.recent.clear();
                room.emptied_at = None;
            }
            if !room.is_unused() {
                room.unused_since = None;
            } else if room.unused_since.is_none() {
                room.unused_since = Some(now);
            } else if room.unused_since.is_some_and(|at| now >= at + UNUSED_KEEP) {
                // Offered again after as long, should it not be forgotten this time.
                room.unused_since = Some(now);
                lock(&self.inner.unused).push(name.clone());
            }
        }
        if clustered {
            let typed = std::mem::take(&mut *lock(&self.inner.typed));
            shared.extend(
                typed
                    .into_iter()
                    .map(|(room, who)| Shared::Typing { room, who }),
            );
        }
        if counts_changed {
            let rooms = room_list(&self.room_counts());
            let mut announced = lock(&self.inner.rooms_announced);
            if rooms != *announced {
                let frame = Frame::from(
                    ServerMsg::Rooms {
                        rooms: rooms.clone(),
                    }
                    .encode(),
                );
                for queue in lock(&self.inner.connections).values() {
                    queue.signal(&frame);
                }
                *announced = rooms;
            }
        }
        shared
    }

    /// The rooms [`Hub::tick`] found unused since it was last asked: to be forgotten by the log,
    /// then here ([`Hub::forget`]).
    pub fn unused_rooms(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.inner.unused))
    }

    /// Keeps `rooms` (made on purpose): they are not offered to be forgotten again, so the store
    /// is asked about each once, not at every offer.
    pub fn keep(&self, rooms: &[String]) {
        for room in rooms {
            if let Some(entry) = self.find(room) {
                let mut entry = lock(&entry);
                entry.kept = true;
                entry.unused_since = None;
            }
        }
    }

    /// Forgets `room` if it is still unused (someone may have come since it was found so), and
    /// says so; the room list loses it at the next tick.
    pub fn forget(&self, room: &str) -> bool {
        let mut rooms = self
            .inner
            .rooms
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let unused = rooms.get(room).is_some_and(|entry| lock(entry).is_unused());
        if unused {
            rooms.remove(room);
            self.inner.list_stale.store(true, Ordering::Relaxed);
        }
        unused
    }

    /// The room list as a frame, for a connection that just opened.
    pub fn rooms(&self) -> ServerMsg {
        ServerMsg::Rooms {
            rooms: room_list(&self.room_counts()),
        }
    }

    /// Every room with what the lists need of it, one room lock at a time.
    fn room_counts(&self) -> Vec<RoomStats> {
        self.every_room()
            .into_iter()
            .map(|(name, room)| {
                let room = lock(&room);
                RoomStats {
                    room: name,
                    members: u32::try_from(room.announced.len()).unwrap_or(u32::MAX),
                    last_seq: room.last_seq,
                }
            })
            .collect()
    }

    /// The seq of the last message published in `room`, if the hub knows the room.
    pub fn last_seq(&self, room: &str) -> Option<u64> {
        self.find(room).map(|room| lock(&room).last_seq)
    }

    /// Every room the hub knows, by name.
    pub fn room_stats(&self) -> Vec<RoomStats> {
        let mut rooms = self.room_counts();
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
        rooms
    }

    /// How many connections are in `room` now.
    pub fn subscriber_count(&self, room: &str) -> usize {
        self.find(room)
            .map_or(0, |room| lock(&room).subscribers.len())
    }

    /// Asks every connection to close with "going away": the server is shutting down.
    /// Closes every connection here that `sessions` let in, with [`Disconnect::SignedOut`]: the
    /// session ended (on this node, or another said so). How many were closed.
    pub fn end_sessions(&self, sessions: &[String]) -> usize {
        let ids: Vec<u64> = {
            let mut by_session = lock(&self.inner.sessions);
            sessions
                .iter()
                .filter_map(|key| by_session.remove(key.as_str()))
                .flat_map(|(_, ids)| ids)
                .collect()
        };
        let connections = lock(&self.inner.connections);
        ids.iter()
            .filter_map(|id| connections.get(id))
            .map(|queue| queue.close(Disconnect::SignedOut))
            .count()
    }

    /// The connections here of `account` (all its sessions').
    fn connections_of(&self, account: &str) -> Vec<u64> {
        lock(&self.inner.by_account)
            .get(account)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether `session` (its stored key) let in a connection open here.
    pub fn has_session(&self, session: &str) -> bool {
        lock(&self.inner.sessions).contains_key(session)
    }

    /// Whether `account` has a connection here.
    pub fn has_account(&self, account: &str) -> bool {
        lock(&self.inner.by_account).contains_key(account)
    }

    /// Sends `frame` to the connections here of `account` that are not in `room` (those count its
    /// messages as they come); false if there are none, and nothing was sent.
    pub fn tell_account_outside(&self, account: &str, room: &str, frame: &Frame) -> bool {
        let mut ids = self.connections_of(account);
        if let Some(room) = self.find(room) {
            let room = lock(&room);
            ids.retain(|id| !room.subscribers.contains_key(id));
        }
        let connections = lock(&self.inner.connections);
        let mut told = false;
        for queue in ids.iter().filter_map(|id| connections.get(id)) {
            queue.signal(frame);
            told = true;
        }
        told
    }

    /// Whether `account` has a connection here that is not in `room`.
    pub fn outside(&self, account: &str, room: &str) -> bool {
        let mut ids = self.connections_of(account);
        if let Some(room) = self.find(room) {
            let room = lock(&room);
            ids.retain(|id| !room.subscribers.contains_key(id));
        }
        !ids.is_empty()
    }

    /// Sends `frame` to every connection here of `account` (their own room list, say).
    pub fn tell_account(&self, account: &str, frame: &Frame) {
        let ids = self.connections_of(account);
        let connections = lock(&self.inner.connections);
        for queue in ids.iter().filter_map(|id| connections.get(id)) {
            queue.signal(frame);
        }
    }

    /// Closes, with [`Disconnect::RoomsChanged`], every connection here of `account` that is in
    /// `room`: they were removed from it. They come back without it. How many were closed.
    pub fn remove_from_room(&self, account: &str, room: &str) -> usize {
        let ids = self.connections_of(account);
        let inside: Vec<u64> = match self.find(room) {
            Some(room) => {
                let room = lock(&room);
                ids.into_iter()
                    .filter(|id| room.subscribers.contains_key(id))
                    .collect()
            }
            None => Vec::new(),
        };
        let connections = lock(&self.inner.connections);
        inside
            .iter()
            .filter_map(|id| connections.get(id))
            .map(|queue| queue.close(Disconnect::RoomsChanged))
            .count()
    }

    /// Closes, with [`Disconnect::RoomsChanged`], every connection here in `room` (archived or
    /// restored: they come back through the door). How many were closed.
    pub fn close_room(&self, room: &str) -> usize {
        let ids: Vec<u64> = match self.find(room) {
            Some(room) => lock(&room).subscribers.keys().copied().collect(),
            None => Vec::new(),
        };
        let connections = lock(&self.inner.connections);
        ids.iter()
            .filter_map(|id| connections.get(id))
            .map(|queue| queue.close(Disconnect::RoomsChanged))
            .count()
    }

    /// `room` was deleted (an admin did, here or on another node): every connection here in it
    /// is closed as for [`Self::close_room`] (they come back without it: the door answers as for
    /// a room that does not exist), and the room is let go however much it holds or whoever is
    /// in it; the room list loses it at the next tick. How many were closed.
    pub fn drop_room(&self, room: &str) -> usize {
        let closed = self.close_room(room);
        let removed = self
            .inner
            .rooms
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(room);
        if removed.is_some() {
            self.inner.list_stale.store(true, Ordering::Relaxed);
        }
        closed
    }

    pub fn shutdown(&self) {
        for queue in lock(&self.inner.connections).values() {
            queue.close(Disconnect::GoingAway);
        }
    }

    /// What the hub counts, to export.
    pub fn counters(&self) -> Counters {
        self.inner.counters.clone()
    }

    /// Rooms the hub knows of (seen in the log or joined since the start).
    pub fn room_count(&self) -> usize {
        self.directory().len()
    }

    pub fn stats(&self) -> Stats {
        let connections = lock(&self.inner.connections);
        Stats {
            connections: connections.len(),
            queued_bytes: connections.values().map(|queue| queue.queued_bytes()).sum(),
        }
    }
}
