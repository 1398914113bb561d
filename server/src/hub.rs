//! The broadcast hub: who listens to which room, who is in it, and fan-out of each stored message and
//! each signal to them. No I/O.
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
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use app::protocol::{
    ChatMessage, Disconnect, Identity, PRESENCE_LIST_MAX, ROOM_LIST_MAX, RoomSummary, ServerMsg,
    TYPING_REPEAT_MS,
};
use tokio::sync::Notify;

pub use crate::frame::Frame;

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

/// How long someone must be without any connection in a room before the others are told they left.
pub const LEAVE_GRACE: Duration = Duration::from_secs(3);

/// At most one `typing` per person and room is passed on this often; clients repeat theirs every
/// [`TYPING_REPEAT_MS`], so this only trims what a misbehaving client sends.
const TYPING_COALESCE: Duration = Duration::from_millis(TYPING_REPEAT_MS as u64 * 2 / 3);

/// Cheap to clone: every clone is a handle to the same hub.
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    next_connection: u64,
    rooms: HashMap<String, HubRoom>,
    /// Every open connection, for what goes to all of them (the room list, shutdown).
    connections: HashMap<u64, Arc<SendQueue>>,
    /// The room list as last sent to everyone.
    rooms_announced: Vec<RoomSummary>,
    /// A room's count changed outside [`Hub::tick`]: the next tick sends the room list.
    list_stale: bool,
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

/// One connection's queue: the hub fills it, the connection's task drains it. Holds no allocation
/// while empty, so an idle connection costs only this struct.
#[derive(Default)]
pub struct SendQueue {
    queue: Mutex<QueueState>,
    /// Wakes the connection's task: frames, a lag note or a close arrived.
    pub ready: Notify,
}

#[derive(Default)]
struct QueueState {
    frames: VecDeque<Frame>,
    /// Bytes of `frames`, counted per connection even where the bytes are shared.
    bytes: usize,
    /// `(room, resume_from)` not yet told to the client.
    notes: Vec<(String, u64)>,
    lags: u32,
    closing: Option<Disconnect>,
}

/// What a connection's task takes out of its [`SendQueue`], in the order it must go out.
#[derive(Debug)]
pub enum Drain {
    /// Close now: nothing queued is sent any more.
    Close(Disconnect),
    /// Frames to write, oldest first.
    Frames(VecDeque<Frame>),
    /// Rooms that lagged, after everything queued before the lag: `(room, resume_from)`.
    Lagged(Vec<(String, u64)>),
    Nothing,
}

/// The queue is at its frame or byte bound: the frame was not queued.
struct Full;

impl SendQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Every update is a single push, take or counter bump: a poisoned lock is still consistent.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `frame` unless that would pass either bound.
    fn try_push(&self, frame: &Frame) -> Result<(), Full> {
        let queue = self.lock();
        let (len, bytes) = (frame.len(), queue.bytes);
        if queue.frames.len() >= QUEUE_FRAMES || (bytes + len > QUEUE_BYTES && bytes > 0) {
            return Err(Full);
        }
        self.push_locked(queue, frame.clone());
        Ok(())
    }

    /// Queues a reply to the connection's own request. Not bounded here: the connection's task stops
    /// reading its client while the queue is at its bound (and writes a join's replay out as it
    /// goes), so replies cannot pile up.
    pub fn push(&self, frame: Frame) {
        self.push_locked(self.lock(), frame);
    }

    fn push_locked(&self, mut queue: MutexGuard<'_, QueueState>, frame: Frame) {
        if queue.closing.is_some() {
            return;
        }
        // Only the first frame wakes the task; it takes everything queued by then.
        let wake = queue.frames.is_empty();
        queue.bytes += frame.len();
        queue.frames.push_back(frame);
        drop(queue);
        if wake {
            self.ready.notify_one();
        }
    }

    /// Queues a signal if there is room; a signal that does not fit is dropped, not a lag.
    fn signal(&self, frame: &Frame) {
        let _ = self.try_push(frame);
    }

    fn note(&self, room: &str, resume_from: u64) {
        let mut queue = self.lock();
        queue.notes.push((room.to_owned(), resume_from));
        queue.lags += 1;
        if queue.lags >= MAX_LAGS {
            queue.closing.get_or_insert(Disconnect::TooSlow);
        }
        drop(queue);
        self.ready.notify_one();
    }

    /// Asks the connection to close (the first reason given stands).
    pub fn close(&self, why: Disconnect) {
        self.lock().closing.get_or_insert(why);
        self.ready.notify_one();
    }

    /// What is to go out next: a close, up to `max_frames` frames (and about `max_bytes`), or the
    /// lag notes once no frame queued before them is left.
    pub fn take(&self, max_frames: usize, max_bytes: usize) -> Drain {
        let mut queue = self.lock();
        if let Some(why) = queue.closing {
            return Drain::Close(why);
        }
        if queue.frames.is_empty() {
            return match std::mem::take(&mut queue.notes) {
                notes if notes.is_empty() => Drain::Nothing,
                notes => Drain::Lagged(notes),
            };
        }
        let (mut count, mut bytes) = (0, 0);
        for frame in &queue.frames {
            if count == max_frames || (bytes >= max_bytes && count > 0) {
                break;
            }
            count += 1;
            bytes += frame.len();
        }
        queue.bytes -= bytes;
        let frames = if count == queue.frames.len() {
            // All of it: the queue's own storage goes with it, and the empty queue holds none.
            std::mem::take(&mut queue.frames)
        } else {
            queue.frames.drain(..count).collect()
        };
        Drain::Frames(frames)
    }

    /// Why the connection is to close, if it is.
    pub fn closing(&self) -> Option<Disconnect> {
        self.lock().closing
    }

    /// Whether the queue is at its bound (replies included).
    pub fn is_full(&self) -> bool {
        let queue = self.lock();
        queue.frames.len() >= QUEUE_FRAMES || queue.bytes >= QUEUE_BYTES
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }
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

impl Member {
    fn present(&self, now: Instant) -> bool {
        self.connections > 0 || self.gone_since.is_some_and(|t| now < t + LEAVE_GRACE)
    }
}

impl HubRoom {
    fn presence(&self, name: &str, now: Instant) -> ServerMsg {
        let mut members: Vec<Identity> = self
            .members
            .values()
            .filter(|m| m.present(now))
            .map(|m| m.who.clone())
            .collect();
        members.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        presence_frame(name, members, Vec::new(), Vec::new())
    }
}

fn presence_frame(
    room: &str,
    members: Vec<Identity>,
    joined: Vec<Identity>,
    left: Vec<Identity>,
) -> ServerMsg {
    let count = members.len();
    let listed = count <= PRESENCE_LIST_MAX;
    ServerMsg::Presence {
        room: room.to_owned(),
        count: u32::try_from(count).unwrap_or(u32::MAX),
        members: listed.then_some(members),
        joined: if listed { joined } else { Vec::new() },
        left: if listed { left } else { Vec::new() },
    }
}

/// One connection's place in the hub: its queue, who it is, and the rooms it has joined. Dropping it
/// leaves them.
pub struct Handle {
    id: u64,
    hub: Hub,
    /// Whom the connection is for; `None` for an observer (a Server-Sent Events reader), which
    /// receives a room without being one of the people in it.
    user: Option<Identity>,
    queue: Arc<SendQueue>,
    joined: Vec<String>,
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
        self.lock()
            .rooms
            .entry(room.to_owned())
            .or_default()
            .last_seq = seq;
    }

    /// A new connection for `user` (or an observer), with its own bounded queue, in no room yet.
    pub fn connect(&self, user: Option<Identity>) -> Handle {
        let queue = Arc::new(SendQueue::default());
        let mut inner = self.lock();
        let id = inner.next_connection;
        inner.next_connection += 1;
        inner.connections.insert(id, queue.clone());
        Handle {
            id,
            hub: self.clone(),
            user,
            queue,
            joined: Vec::new(),
        }
    }

    /// Queues a stored message for every subscriber of its room. Called by the log's one publishing
    /// task after each commit, in seq order, so every queue gets a room's messages in seq order.
    pub fn publish(&self, room: &str, message: &ChatMessage) {
        // Encoded once, outside the lock; every subscriber shares these bytes.
        let frame = Frame::of(&ServerMsg::Message(message.clone()));
        let mut guard = self.lock();
        let inner = &mut *guard;
        let name = room;
        let room = inner.rooms.entry(room.to_owned()).or_default();
        // Someone who speaks before their arrival was announced is announced first, so the others
        // read "Bob joined" before Bob's first words, not a tick after them.
        if room.dirty
            && room.members.contains_key(&message.author.id)
            && !room.announced.contains_key(&message.author.id)
        {
            inner.list_stale |= room.announce(name, Instant::now());
        }
        room.last_seq = message.seq;
        // Their message ends their typing; the next keystroke may say so again at once.
        room.typing.remove(&message.author.id);
        room.subscribers
            .retain(|_, sub| sub.deliver(name, message.seq, &frame));
    }

    /// Announces what changed since the last tick: each room's presence (to its subscribers) and, if
    /// any count changed, the room list (to everyone). The server calls it every [`TICK`].
    pub fn tick(&self, now: Instant) {
        let mut inner = self.lock();
        let mut counts_changed = std::mem::take(&mut inner.list_stale);
        for (name, room) in &mut inner.rooms {
            room.typing
                .retain(|_, sent| now < *sent + Duration::from_secs(60));
            if room.dirty {
                counts_changed |= room.announce(name, now);
            }
        }
        if counts_changed {
            let rooms = room_list(&inner);
            if rooms != inner.rooms_announced {
                let frame = Frame::from(
                    ServerMsg::Rooms {
                        rooms: rooms.clone(),
                    }
                    .encode(),
                );
                for queue in inner.connections.values() {
                    queue.signal(&frame);
                }
                inner.rooms_announced = rooms;
            }
        }
    }

    /// The room list as a frame, for a connection that just opened.
    pub fn rooms(&self) -> ServerMsg {
        ServerMsg::Rooms {
            rooms: room_list(&self.lock()),
        }
    }

    /// The seq of the last message published in `room`, if the hub knows the room.
    pub fn last_seq(&self, room: &str) -> Option<u64> {
        self.lock().rooms.get(room).map(|room| room.last_seq)
    }

    /// Every room the hub knows: its name, how many people are in it (as last announced) and the
    /// seq of its last message, by name.
    pub fn room_stats(&self) -> Vec<(String, u32, u64)> {
        let inner = self.lock();
        let mut rooms: Vec<(String, u32, u64)> = inner
            .rooms
            .iter()
            .map(|(name, room)| {
                let members = u32::try_from(room.announced.len()).unwrap_or(u32::MAX);
                (name.clone(), members, room.last_seq)
            })
            .collect();
        rooms.sort();
        rooms
    }

    /// How many connections are in `room` now.
    pub fn subscriber_count(&self, room: &str) -> usize {
        self.lock()
            .rooms
            .get(room)
            .map_or(0, |room| room.subscribers.len())
    }

    /// Asks every connection to close with "going away": the server is shutting down.
    pub fn shutdown(&self) {
        for queue in self.lock().connections.values() {
            queue.close(Disconnect::GoingAway);
        }
    }

    pub fn stats(&self) -> Stats {
        let inner = self.lock();
        Stats {
            connections: inner.connections.len(),
            queued_bytes: inner
                .connections
                .values()
                .map(|queue| queue.queued_bytes())
                .sum(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-updated in a way that matters
        // (every update is a single insert, remove or counter bump), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl HubRoom {
    /// Tells the room's subscribers who came and who left since the last announcement, if anyone
    /// did. True if the number of people changed (the room list is then out of date).
    fn announce(&mut self, name: &str, now: Instant) -> bool {
        self.members.retain(|_, m| m.present(now));
        // Someone within their leave grace keeps the room dirty until they are gone or back.
        self.dirty = self.members.values().any(|m| m.connections == 0);
        let current: BTreeMap<String, Identity> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.who.clone()))
            .collect();
        if current == self.announced {
            return false;
        }
        let count_changed = current.len() != self.announced.len();
        let joined = current
            .iter()
            .filter(|(id, _)| !self.announced.contains_key(*id))
            .map(|(_, who)| who.clone())
            .collect();
        let left = self
            .announced
            .iter()
            .filter(|(id, _)| !current.contains_key(*id))
            .map(|(_, who)| who.clone())
            .collect();
        self.announced = current;
        let frame = Frame::of(&presence_frame(name, self.presence_list(), joined, left));
        for sub in self.subscribers.values() {
            sub.signal(&frame);
        }
        count_changed
    }

    /// The members as announced, by name.
    fn presence_list(&self) -> Vec<Identity> {
        let mut members: Vec<Identity> = self.announced.values().cloned().collect();
        members.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        members
    }
}

/// Every room with its announced member count, busiest first.
fn room_list(inner: &Inner) -> Vec<RoomSummary> {
    let mut rooms: Vec<RoomSummary> = inner
        .rooms
        .iter()
        .map(|(name, room)| RoomSummary {
            room: name.clone(),
            members: u32::try_from(room.announced.len()).unwrap_or(u32::MAX),
        })
        .collect();
    rooms.sort_by(|a, b| b.members.cmp(&a.members).then_with(|| a.room.cmp(&b.room)));
    rooms.truncate(ROOM_LIST_MAX);
    rooms
}

impl Handle {
    /// This connection's queue, for the task that writes it out.
    pub fn queue(&self) -> Arc<SendQueue> {
        self.queue.clone()
    }

    /// Queues a reply on this connection's own queue, behind what is already there: a reply answers
    /// something this client asked for and is never dropped (see [`SendQueue::push`]).
    pub fn reply(&self, frame: Frame) {
        self.queue.push(frame);
    }

    pub fn has_joined(&self, room: &str) -> bool {
        self.joined.iter().any(|r| r == room)
    }

    /// Starts a join: from now on the room's messages are held for this connection, and its user is
    /// a member. Returns the seq the held messages start after — the caller replays the log up to it,
    /// then calls [`Self::release`].
    pub fn join(&mut self, room: &str) -> u64 {
        let mut inner = self.hub.lock();
        let entry = inner.rooms.entry(room.to_owned()).or_default();
        entry.subscribers.insert(
            self.id,
            Subscriber {
                queue: self.queue.clone(),
                held: Some(Vec::new()),
            },
        );
        // A rejoin (after lagging, say) is not a second arrival.
        if !self.joined.iter().any(|r| r == room) {
            self.joined.push(room.to_owned());
            let Some(user) = &self.user else {
                return entry.last_seq;
            };
            let member = entry
                .members
                .entry(user.id.clone())
                .or_insert_with(|| Member {
                    who: user.clone(),
                    connections: 0,
                    gone_since: None,
                });
            member.connections += 1;
            member.gone_since = None;
            // The newest connection's name is the person's name now (they may have changed it).
            member.who = user.clone();
            entry.dirty = true;
        }
        entry.last_seq
    }

    /// Ends a join: the held messages go to the queue (after the replay already there), and the
    /// room's next messages go straight to it. Returns who is in the room, to send after them.
    pub fn release(&self, room: &str) -> ServerMsg {
        let mut inner = self.hub.lock();
        let entry = inner.rooms.entry(room.to_owned()).or_default();
        let presence = entry.presence(room, Instant::now());
        let Some(sub) = entry.subscribers.get_mut(&self.id) else {
            return presence; // Dropped meanwhile for being too slow.
        };
        let held = sub.held.take().unwrap_or_default();
        let first = entry.last_seq + 1 - held.len() as u64;
        let delivered = held
            .iter()
            .zip(first..)
            .all(|(frame, seq)| sub.deliver(room, seq, frame));
        if !delivered {
            entry.subscribers.remove(&self.id);
        }
        presence
    }

    /// Tells the others in `room` that this connection's user is typing, unless that was told less
    /// than [`TYPING_COALESCE`] ago.
    pub fn typing(&self, room: &str, now: Instant) {
        let Some(user) = &self.user else {
            return;
        };
        let mut inner = self.hub.lock();
        let Some(entry) = inner.rooms.get_mut(room) else {
            return;
        };
        let recent = entry
            .typing
            .get(&user.id)
            .is_some_and(|sent| now < *sent + TYPING_COALESCE);
        if recent {
            return;
        }
        entry.typing.insert(user.id.clone(), now);
        let frame = Frame::from(
            ServerMsg::Typing {
                room: room.to_owned(),
                user: user.clone(),
            }
            .encode(),
        );
        for (id, sub) in &entry.subscribers {
            if *id != self.id {
                sub.signal(&frame);
            }
        }
    }

    pub fn leave(&mut self, room: &str) {
        if !self.has_joined(room) {
            return;
        }
        self.joined.retain(|r| r != room);
        if let Some(entry) = self.hub.lock().rooms.get_mut(room) {
            entry.remove(self.id, self.user.as_ref(), Instant::now());
        }
    }
}

impl HubRoom {
    /// Handle `id` of user `user` leaves: it gets nothing more, and the user's membership ends
    /// (after the grace) if it was their last connection here.
    fn remove(&mut self, id: u64, user: Option<&Identity>, now: Instant) {
        self.subscribers.remove(&id);
        if let Some(member) = user.and_then(|user| self.members.get_mut(&user.id)) {
            member.connections = member.connections.saturating_sub(1);
            if member.connections == 0 {
                member.gone_since = Some(now);
                self.dirty = true;
            }
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut inner = self.hub.lock();
        inner.connections.remove(&self.id);
        for room in &self.joined {
            if let Some(entry) = inner.rooms.get_mut(room) {
                entry.remove(self.id, self.user.as_ref(), now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn message(seq: u64) -> ChatMessage {
        ChatMessage {
            room: "general".into(),
            seq,
            author: Identity {
                id: "u1".into(),
                name: "ann".into(),
            },
            client_id: format!("c{seq}"),
            body: format!("m{seq}"),
            sent_at: 0,
            kind: Default::default(),
        }
    }

    fn seq_of(frame: &Frame) -> u64 {
        match ServerMsg::decode(frame.as_str()) {
            Ok(ServerMsg::Message(m)) => m.seq,
            other => panic!("not a message: {other:?}"),
        }
    }

    fn user(n: u32) -> Identity {
        Identity {
            id: format!("u{n}"),
            name: format!("user {n}"),
        }
    }

    fn joined(hub: &Hub, room: &str) -> (Handle, Arc<SendQueue>) {
        static N: AtomicU32 = AtomicU32::new(100);
        joined_as(hub, room, user(N.fetch_add(1, Ordering::Relaxed)))
    }

    fn joined_as(hub: &Hub, room: &str, who: Identity) -> (Handle, Arc<SendQueue>) {
        let mut conn = hub.connect(Some(who));
        conn.join(room);
        conn.release(room);
        let queue = conn.queue();
        (conn, queue)
    }

    /// Every frame waiting in `queue`, oldest first.
    fn frames(queue: &SendQueue) -> Vec<Frame> {
        let mut all = Vec::new();
        while let Drain::Frames(frames) = queue.take(10, usize::MAX) {
            all.extend(frames);
        }
        all
    }

    #[test]
    fn every_subscriber_of_a_room_gets_its_messages_in_order_and_no_others() {
        let hub = Hub::new();
        let (_a, a) = joined(&hub, "general");
        let (_b, b) = joined(&hub, "general");
        let (_c, elsewhere) = joined(&hub, "ops");
        for seq in 1..=10 {
            hub.publish("general", &message(seq));
        }
        for queue in [&a, &b] {
            let seqs: Vec<u64> = frames(queue).iter().map(seq_of).collect();
            assert_eq!(seqs, (1..=10).collect::<Vec<_>>(), "all, once, in order");
        }
        assert!(frames(&elsewhere).is_empty(), "other rooms hear nothing");
    }

    #[test]
    fn messages_published_during_a_join_wait_until_the_replay_is_queued() {
        let hub = Hub::new();
        hub.set_last_seq("general", 41);
        let mut conn = hub.connect(Some(user(1)));
        assert_eq!(conn.join("general"), 41, "replay up to 41");
        hub.publish("general", &message(42)); // Arrives while the replay is being read.
        assert!(frames(&conn.queue).is_empty(), "held back");
        conn.reply(Frame::from("replay"));
        conn.release("general");
        let queued = frames(&conn.queue);
        assert_eq!(queued[0].as_str(), "replay");
        assert_eq!(seq_of(&queued[1]), 42);
        hub.publish("general", &message(43));
        assert_eq!(seq_of(&frames(&conn.queue)[0]), 43);
    }

    #[test]
    fn an_overflowing_subscriber_lags_without_affecting_others_and_its_queue_stays_bounded() {
        let hub = Hub::new();
        let (_stalled, stalled) = joined(&hub, "general");
        let (_reader, reader) = joined(&hub, "general");
        let overflow = QUEUE_FRAMES as u64 + 1;
        for seq in 1..=overflow + 100 {
            hub.publish("general", &message(seq));
            assert_eq!(seq_of(&frames(&reader)[0]), seq);
        }
        assert_eq!(hub.subscriber_count("general"), 1, "no longer queued for");
        assert!(
            matches!(stalled.take(usize::MAX, usize::MAX), Drain::Frames(f) if f.len() == QUEUE_FRAMES),
            "the queue never grew past its bound, and what it holds goes first"
        );
        assert!(
            matches!(stalled.take(10, usize::MAX), Drain::Lagged(notes) if notes == [("general".to_string(), overflow)]),
            "then the lag, once; one lag is forgiven"
        );
        assert!(matches!(stalled.take(10, usize::MAX), Drain::Nothing));
    }

    #[test]
    fn a_connection_that_keeps_lagging_is_given_up() {
        let hub = Hub::new();
        let mut conn = hub.connect(Some(user(1)));
        let mut seq = 0;
        for _ in 0..MAX_LAGS {
            conn.join("general");
            conn.release("general");
            for _ in 0..=QUEUE_FRAMES {
                seq += 1;
                hub.publish("general", &message(seq));
            }
        }
        assert!(matches!(
            conn.queue().take(10, usize::MAX),
            Drain::Close(Disconnect::TooSlow)
        ));
    }

    #[test]
    fn leaving_or_dropping_the_connection_leaves_the_room() {
        let hub = Hub::new();
        let (mut conn, _frames) = joined(&hub, "general");
        let (other, _other_frames) = joined(&hub, "general");
        conn.leave("general");
        assert_eq!(hub.subscriber_count("general"), 1);
        drop(other);
        assert_eq!(hub.subscriber_count("general"), 0);
    }

    /// Every frame waiting in `queue`, decoded.
    fn drain(queue: &SendQueue) -> Vec<ServerMsg> {
        frames(queue)
            .iter()
            .map(|f| ServerMsg::decode(f.as_str()).expect("valid frame"))
            .collect()
    }

    fn presences(frames: &SendQueue) -> Vec<(u32, Vec<String>, Vec<String>)> {
        let names = |ids: Vec<Identity>| ids.into_iter().map(|i| i.name).collect::<Vec<_>>();
        drain(frames)
            .into_iter()
            .filter_map(|msg| match msg {
                ServerMsg::Presence {
                    count,
                    joined,
                    left,
                    ..
                } => Some((count, names(joined), names(left))),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn arrivals_are_announced_together_and_a_quick_return_is_not_announced() {
        let hub = Hub::new();
        let t0 = Instant::now();
        let (_ann, ann) = joined_as(&hub, "general", user(1));
        hub.tick(t0);
        let (_bob, _) = joined_as(&hub, "general", user(2));
        let (bob_tab2, _) = joined_as(&hub, "general", user(2));
        let (_cy, _) = joined_as(&hub, "general", user(3));
        hub.tick(t0);
        assert_eq!(
            presences(&ann),
            vec![
                (1, vec!["user 1".into()], vec![]),
                (3, vec!["user 2".into(), "user 3".into()], vec![])
            ],
            "one frame for the burst; Bob's second tab is still one Bob"
        );
        drop(bob_tab2);
        hub.tick(t0);
        assert_eq!(presences(&ann), vec![], "Bob still has a tab open");
        drop(_cy);
        hub.tick(t0 + LEAVE_GRACE / 2);
        let (_cy_again, _) = joined_as(&hub, "general", user(3));
        hub.tick(t0 + LEAVE_GRACE * 2);
        assert_eq!(presences(&ann), vec![], "a reload is not a departure");
        drop(_bob);
        hub.tick(Instant::now());
        assert_eq!(presences(&ann), vec![], "not before the grace is over");
        hub.tick(Instant::now() + LEAVE_GRACE);
        assert_eq!(presences(&ann), vec![(2, vec![], vec!["user 2".into()])]);
    }

    #[test]
    fn someone_who_speaks_before_the_tick_is_announced_before_their_message() {
        let hub = Hub::new();
        let (_ann, ann) = joined_as(&hub, "general", user(1));
        hub.tick(Instant::now());
        drain(&ann);
        let (_bob, _) = joined_as(&hub, "general", user(2));
        let mut hello = message(1);
        hello.author = user(2);
        hub.publish("general", &hello);
        let seen: Vec<String> = drain(&ann)
            .into_iter()
            .map(|msg| match msg {
                ServerMsg::Presence { joined, .. } => format!("joined {}", joined[0].name),
                ServerMsg::Message(m) => format!("{}: {}", m.author.name, m.body),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(seen, ["joined user 2", "user 2: m1"]);
        hub.tick(Instant::now());
        let after: Vec<ServerMsg> = drain(&ann);
        assert!(
            matches!(after.as_slice(), [ServerMsg::Rooms { rooms }] if rooms[0].members == 2),
            "told once; the room list follows at the tick: {after:?}"
        );
        hub.publish("general", &message(2));
        assert_eq!(
            presences(&ann),
            vec![],
            "a member's message announces nothing"
        );
    }

    #[test]
    fn a_new_name_reaches_the_list_of_people_without_an_arrival() {
        let hub = Hub::new();
        let (_ann, ann) = joined_as(&hub, "general", user(1));
        let (_bob, _) = joined_as(&hub, "general", user(2));
        hub.tick(Instant::now());
        drain(&ann);
        let renamed = Identity {
            name: "Bobby".into(),
            ..user(2)
        };
        let (_bobby, _) = joined_as(&hub, "general", renamed);
        hub.tick(Instant::now());
        let told: Vec<(Vec<String>, usize)> = drain(&ann)
            .into_iter()
            .filter_map(|msg| match msg {
                ServerMsg::Presence {
                    members, joined, ..
                } => Some((
                    members
                        .unwrap_or_default()
                        .into_iter()
                        .map(|m| m.name)
                        .collect(),
                    joined.len(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            told,
            vec![(vec!["Bobby".to_string(), "user 1".to_string()], 0)]
        );
    }

    #[test]
    fn the_room_list_goes_to_every_connection_when_a_count_changes() {
        let hub = Hub::new();
        hub.set_last_seq("quiet", 3);
        let (_ann, ann) = joined_as(&hub, "general", user(1));
        let (_bob, _) = joined_as(&hub, "ops", user(2));
        let (_cy, _) = joined_as(&hub, "ops", user(3));
        hub.tick(Instant::now());
        let lists: Vec<Vec<(String, u32)>> = drain(&ann)
            .into_iter()
            .filter_map(|msg| match msg {
                ServerMsg::Rooms { rooms } => {
                    Some(rooms.into_iter().map(|r| (r.room, r.members)).collect())
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            lists,
            vec![vec![
                ("ops".into(), 2),
                ("general".into(), 1),
                ("quiet".into(), 0)
            ]],
            "busiest first, rooms nobody is in included"
        );
        hub.tick(Instant::now());
        assert!(drain(&ann).is_empty(), "nothing changed, nothing sent");
    }

    #[test]
    fn typing_reaches_the_others_in_the_room_at_most_once_per_window() {
        let hub = Hub::new();
        let (ann, ann_frames) = joined_as(&hub, "general", user(1));
        let (_bob, bob) = joined_as(&hub, "general", user(2));
        let (_elsewhere, elsewhere) = joined_as(&hub, "ops", user(3));
        let t0 = Instant::now();
        ann.typing("general", t0);
        ann.typing("general", t0 + Duration::from_millis(500));
        let typing = |frames: &SendQueue| {
            drain(frames)
                .into_iter()
                .filter(|m| matches!(m, ServerMsg::Typing { .. }))
                .count()
        };
        assert_eq!(typing(&bob), 1, "coalesced");
        assert_eq!(typing(&ann_frames), 0, "not echoed to the typist");
        assert_eq!(typing(&elsewhere), 0, "other rooms hear nothing");
        ann.typing("general", t0 + TYPING_COALESCE);
        assert_eq!(typing(&bob), 1, "still typing later");
    }

    #[test]
    fn the_byte_bound_lags_a_reader_of_big_messages_before_the_frame_bound() {
        let hub = Hub::new();
        let (_conn, stalled) = joined(&hub, "general");
        let big = |seq| ChatMessage {
            body: "x".repeat(60_000),
            ..message(seq)
        };
        let mut seq = 0;
        while hub.subscriber_count("general") == 1 {
            seq += 1;
            hub.publish("general", &big(seq));
            assert!(seq < 20, "lagged well before {QUEUE_FRAMES} frames");
        }
        assert!(stalled.queued_bytes() <= QUEUE_BYTES);
        assert_eq!(hub.stats().queued_bytes, stalled.queued_bytes());
        assert_eq!(seq as usize, QUEUE_BYTES / 60_000 + 1);
    }
}
