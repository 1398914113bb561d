//! The broadcast hub: who listens to which room, and fan-out of each stored message to them. No I/O.
//!
//! A message is encoded once into a [`Frame`] whose bytes every subscriber shares; delivering it is a
//! non-blocking push onto each connection's bounded queue. When a connection's queue is full it is
//! reading too slowly: the hub stops queuing that room for it and leaves a lag note, which its writer
//! turns into a `lagged` marker once the queue is drained; the client catches up from the log by
//! rejoining. Nobody waits for a slow reader, and no queue grows past its bound. A connection that lags
//! again and again is given up on (closed with `TOO_SLOW`).
//!
//! The hub also knows the last seq published in each room, so a joining connection can replay the log
//! exactly up to where its live queue starts (DESIGN §3).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

#[cfg(test)]
use app::protocol::Identity;
use app::protocol::{ChatMessage, ServerMsg};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// An encoded server frame, cheap to clone: the bytes are reference-counted, never copied per reader.
pub type Frame = axum::extract::ws::Utf8Bytes;

/// How many times a connection may lag before the hub gives up on it.
pub const MAX_LAGS: u32 = 5;

/// Frames a subscriber may have waiting before it counts as too slow. A message is at most ~4.3 KiB
/// encoded, so this bounds one connection's queue at about 1 MiB.
pub const QUEUE_FRAMES: usize = 256;

/// Cheap to clone: every clone is a handle to the same hub.
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    next_connection: u64,
    rooms: HashMap<String, Room>,
}

#[derive(Default)]
struct Room {
    /// Seq of the last message published here.
    last_seq: u64,
    /// By connection id.
    subscribers: HashMap<u64, Subscriber>,
}

struct Subscriber {
    queue: mpsc::Sender<Frame>,
    lag: Arc<Lag>,
    /// While the connection replays this room's history, its live messages wait here, so they reach
    /// the queue after the replay (see [`Connection::release`]).
    held: Option<Vec<Frame>>,
}

/// One connection's lagging, shared between the hub (which notes it) and the connection's writer
/// (which tells the client).
#[derive(Default)]
pub struct Lag {
    /// `(room, resume_from)` not yet told to the client.
    notes: Mutex<Vec<(String, u64)>>,
    /// Wakes the writer when a note is added.
    pub noted: Notify,
    count: std::sync::atomic::AtomicU32,
    /// Cancelled after [`MAX_LAGS`] lags: the connection is closed with `TOO_SLOW`.
    pub given_up: CancellationToken,
}

impl Lag {
    fn note(&self, room: &str, resume_from: u64) {
        use std::sync::atomic::Ordering;
        self.notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((room.to_owned(), resume_from));
        if self.count.fetch_add(1, Ordering::Relaxed) + 1 >= MAX_LAGS {
            self.given_up.cancel();
        }
        self.noted.notify_one();
    }

    /// The lag notes not yet told to the client, oldest first.
    pub fn take_notes(&self) -> Vec<(String, u64)> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Subscriber {
    /// Queues a frame (or holds it). False if the subscriber is gone, or lagged on this message of
    /// `room` (seq `seq`): then it must be dropped from the room.
    fn deliver(&mut self, room: &str, seq: u64, frame: &Frame) -> bool {
        if let Some(held) = &mut self.held {
            if held.len() < QUEUE_FRAMES {
                held.push(frame.clone());
                return true;
            }
            // Nothing held reached the queue (it holds seqs up to `seq - 1`): resume from the first.
            let first_held = seq - held.len() as u64;
            self.lag.note(room, first_held);
            return false;
        }
        match self.queue.try_send(frame.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lag.note(room, seq);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// One connection's place in the hub: its queue and the rooms it has joined. Dropping it leaves them.
pub struct Connection {
    id: u64,
    hub: Hub,
    queue: mpsc::Sender<Frame>,
    frames: Option<mpsc::Receiver<Frame>>,
    /// Where the hub notes that this connection lagged.
    pub lag: Arc<Lag>,
    joined: Vec<String>,
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

    /// A new connection with its own bounded queue, in no room yet.
    pub fn connect(&self) -> Connection {
        let (queue, frames) = mpsc::channel(QUEUE_FRAMES);
        let mut inner = self.lock();
        let id = inner.next_connection;
        inner.next_connection += 1;
        Connection {
            id,
            hub: self.clone(),
            queue,
            frames: Some(frames),
            lag: Arc::default(),
            joined: Vec::new(),
        }
    }

    /// Queues a stored message for every subscriber of its room. Called by the log's single writer
    /// thread after each commit, in seq order, so every queue gets a room's messages in seq order.
    pub fn publish(&self, room: &str, message: &ChatMessage) {
        // Encoded once, outside the lock; every subscriber shares these bytes.
        let frame = Frame::from(ServerMsg::Message(message.clone()).encode());
        let mut inner = self.lock();
        let name = room;
        let room = inner.rooms.entry(room.to_owned()).or_default();
        room.last_seq = message.seq;
        room.subscribers
            .retain(|_, sub| sub.deliver(name, message.seq, &frame));
    }

    /// How many connections are in `room` now.
    pub fn subscriber_count(&self, room: &str) -> usize {
        self.lock()
            .rooms
            .get(room)
            .map_or(0, |room| room.subscribers.len())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-updated in a way that matters
        // (every update is a single insert, remove or counter bump), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Connection {
    /// The frames for this connection, in order; taken once, by its writer.
    pub fn take_frames(&mut self) -> Option<mpsc::Receiver<Frame>> {
        self.frames.take()
    }

    /// Pushes a reply onto this connection's own queue, behind what is already there.
    pub async fn reply(&self, frame: Frame) -> bool {
        self.queue.send(frame).await.is_ok()
    }

    pub fn has_joined(&self, room: &str) -> bool {
        self.joined.iter().any(|r| r == room)
    }

    /// Starts a join: from now on the room's messages are held for this connection. Returns the seq
    /// they start after — the caller replays the log up to it, then calls [`Self::release`].
    pub fn join(&mut self, room: &str) -> u64 {
        let mut inner = self.hub.lock();
        let entry = inner.rooms.entry(room.to_owned()).or_default();
        entry.subscribers.insert(
            self.id,
            Subscriber {
                queue: self.queue.clone(),
                lag: self.lag.clone(),
                held: Some(Vec::new()),
            },
        );
        if !self.joined.iter().any(|r| r == room) {
            self.joined.push(room.to_owned());
        }
        entry.last_seq
    }

    /// Ends a join: the held messages go to the queue (after the replay already there), and the
    /// room's next messages go straight to it.
    pub fn release(&self, room: &str) {
        let mut inner = self.hub.lock();
        let Some(entry) = inner.rooms.get_mut(room) else {
            return;
        };
        let Some(sub) = entry.subscribers.get_mut(&self.id) else {
            return; // Dropped meanwhile for being too slow.
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
    }

    pub fn leave(&mut self, room: &str) {
        self.joined.retain(|r| r != room);
        if let Some(entry) = self.hub.lock().rooms.get_mut(room) {
            entry.subscribers.remove(&self.id);
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut inner = self.hub.lock();
        for room in &self.joined {
            if let Some(entry) = inner.rooms.get_mut(room) {
                entry.subscribers.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
        }
    }

    fn seq_of(frame: &Frame) -> u64 {
        match ServerMsg::decode(frame.as_str()) {
            Ok(ServerMsg::Message(m)) => m.seq,
            other => panic!("not a message: {other:?}"),
        }
    }

    fn joined(hub: &Hub, room: &str) -> (Connection, mpsc::Receiver<Frame>) {
        let mut conn = hub.connect();
        let frames = conn.take_frames().expect("frames");
        conn.join(room);
        conn.release(room);
        (conn, frames)
    }

    #[test]
    fn every_subscriber_of_a_room_gets_its_messages_in_order_and_no_others() {
        let hub = Hub::new();
        let (_a, mut a) = joined(&hub, "general");
        let (_b, mut b) = joined(&hub, "general");
        let (_c, mut elsewhere) = joined(&hub, "ops");
        for seq in 1..=10 {
            hub.publish("general", &message(seq));
        }
        for frames in [&mut a, &mut b] {
            let seqs: Vec<u64> = (0..10)
                .map(|_| seq_of(&frames.try_recv().expect("queued")))
                .collect();
            assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
            assert!(frames.try_recv().is_err(), "nothing extra");
        }
        assert!(elsewhere.try_recv().is_err(), "other rooms hear nothing");
    }

    #[test]
    fn messages_published_during_a_join_wait_until_the_replay_is_queued() {
        let hub = Hub::new();
        hub.set_last_seq("general", 41);
        let mut conn = hub.connect();
        let mut frames = conn.take_frames().expect("frames");
        assert_eq!(conn.join("general"), 41, "replay up to 41");
        hub.publish("general", &message(42)); // Arrives while the replay is being read.
        assert!(frames.try_recv().is_err(), "held back");
        assert!(conn.queue.try_send(Frame::from("replay")).is_ok());
        conn.release("general");
        assert_eq!(frames.try_recv().expect("replay").as_str(), "replay");
        assert_eq!(seq_of(&frames.try_recv().expect("held")), 42);
        hub.publish("general", &message(43));
        assert_eq!(seq_of(&frames.try_recv().expect("live")), 43);
    }

    #[test]
    fn an_overflowing_subscriber_lags_without_affecting_others_and_its_queue_stays_bounded() {
        let hub = Hub::new();
        let (stalled, mut stalled_frames) = joined(&hub, "general");
        let (_reader, mut reader) = joined(&hub, "general");
        let overflow = QUEUE_FRAMES as u64 + 1;
        for seq in 1..=overflow + 100 {
            hub.publish("general", &message(seq));
            assert_eq!(seq_of(&reader.try_recv().expect("queued")), seq);
        }
        assert_eq!(
            stalled.lag.take_notes(),
            vec![("general".to_string(), overflow)]
        );
        assert!(!stalled.lag.given_up.is_cancelled(), "one lag is forgiven");
        assert_eq!(hub.subscriber_count("general"), 1, "no longer queued for");
        let mut queued = 0;
        while stalled_frames.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, QUEUE_FRAMES, "the queue never grew past its bound");
    }

    #[test]
    fn a_connection_that_keeps_lagging_is_given_up() {
        let hub = Hub::new();
        let mut conn = hub.connect();
        let _frames = conn.take_frames();
        let mut seq = 0;
        for _ in 0..MAX_LAGS {
            conn.join("general");
            conn.release("general");
            for _ in 0..=QUEUE_FRAMES {
                seq += 1;
                hub.publish("general", &message(seq));
            }
        }
        assert!(conn.lag.given_up.is_cancelled());
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
}
