//! The broadcast hub: who listens to which room, and fan-out of each stored message to them. No I/O.
//!
//! A message is encoded once into a [`Frame`] whose bytes every subscriber shares; delivering it is a
//! non-blocking push onto each subscriber's bounded queue. A subscriber whose queue is full is too slow
//! to keep up: it is removed and told so (its connection closes with `TOO_SLOW`) instead of either
//! delaying everyone else or silently missing messages.
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
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// An encoded server frame, cheap to clone: the bytes are reference-counted, never copied per reader.
pub type Frame = axum::extract::ws::Utf8Bytes;

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
    next_subscriber: u64,
    rooms: HashMap<String, Room>,
}

#[derive(Default)]
struct Room {
    /// Seq of the last message published here.
    last_seq: u64,
    subscribers: HashMap<u64, Subscriber>,
}

struct Subscriber {
    queue: mpsc::Sender<Frame>,
    /// Cancelled when the hub gives up on this subscriber because its queue overflowed.
    lagged: CancellationToken,
}

/// One connection's place in a room, in parts the connection's tasks take apart.
pub struct Subscription {
    /// Frames for this connection, in order: broadcasts and the connection's own replies.
    pub frames: mpsc::Receiver<Frame>,
    /// Pushes a reply onto this connection's own queue, behind the broadcasts already there.
    pub replies: mpsc::Sender<Frame>,
    /// Cancelled if the hub dropped this subscriber for being too slow.
    pub lagged: CancellationToken,
    /// The room's last published seq when the subscription began: every later message is queued in
    /// `frames`, every earlier one is in the log.
    pub live_after: u64,
    /// Keep it for as long as the connection lives: dropping it leaves the room.
    pub membership: Membership,
}

/// Leaves the room when dropped.
pub struct Membership {
    id: u64,
    room: String,
    hub: Hub,
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

    /// Registers a new subscriber to `room`: from now on every message published there is queued.
    pub fn subscribe(&self, room: &str) -> Subscription {
        let (queue, frames) = mpsc::channel(QUEUE_FRAMES);
        let lagged = CancellationToken::new();
        let mut inner = self.lock();
        let id = inner.next_subscriber;
        inner.next_subscriber += 1;
        let entry = inner.rooms.entry(room.to_owned()).or_default();
        entry.subscribers.insert(
            id,
            Subscriber {
                queue: queue.clone(),
                lagged: lagged.clone(),
            },
        );
        Subscription {
            frames,
            replies: queue,
            lagged,
            live_after: entry.last_seq,
            membership: Membership {
                id,
                room: room.to_owned(),
                hub: self.clone(),
            },
        }
    }

    /// Queues a stored message for every subscriber of its room. The log calls this after the commit,
    /// in seq order.
    pub fn publish(&self, room: &str, message: &ChatMessage) {
        let frame = Frame::from(ServerMsg::Message(message.clone()).encode());
        let mut inner = self.lock();
        let room = inner.rooms.entry(room.to_owned()).or_default();
        room.last_seq = message.seq;
        room.subscribers
            .retain(|_, sub| match sub.queue.try_send(frame.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.lagged.cancel();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }

    /// How many connections are subscribed to `room` now.
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

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(room) = self.hub.lock().rooms.get_mut(&self.room) {
            room.subscribers.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64) -> ChatMessage {
        ChatMessage {
            seq,
            author: Identity {
                id: "u1".into(),
                name: "ann".into(),
            },
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

    #[test]
    fn every_subscriber_of_a_room_gets_its_messages_in_order_and_no_others() {
        let hub = Hub::new();
        let mut a = hub.subscribe("general");
        let mut b = hub.subscribe("general");
        let mut elsewhere = hub.subscribe("ops");
        for seq in 1..=10 {
            hub.publish("general", &message(seq));
        }
        for sub in [&mut a, &mut b] {
            let seqs: Vec<u64> = (0..10)
                .map(|_| seq_of(&sub.frames.try_recv().expect("queued")))
                .collect();
            assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
            assert!(sub.frames.try_recv().is_err(), "nothing extra");
        }
        assert!(
            elsewhere.frames.try_recv().is_err(),
            "other rooms hear nothing"
        );
    }

    #[test]
    fn a_subscription_says_where_its_live_messages_begin() {
        let hub = Hub::new();
        hub.set_last_seq("general", 41);
        hub.publish("general", &message(42));
        let mut sub = hub.subscribe("general");
        assert_eq!(sub.live_after, 42);
        hub.publish("general", &message(43));
        assert_eq!(seq_of(&sub.frames.try_recv().expect("queued")), 43);
    }

    #[test]
    fn an_overflowing_subscriber_is_dropped_and_told_without_affecting_others() {
        let hub = Hub::new();
        let stalled = hub.subscribe("general");
        let mut reader = hub.subscribe("general");
        for seq in 1..=(QUEUE_FRAMES as u64 + 1) {
            hub.publish("general", &message(seq));
            assert_eq!(seq_of(&reader.frames.try_recv().expect("queued")), seq);
        }
        assert!(stalled.lagged.is_cancelled());
        assert!(!reader.lagged.is_cancelled());
        assert_eq!(hub.subscriber_count("general"), 1);
    }

    #[test]
    fn dropping_a_subscription_leaves_the_room() {
        let hub = Hub::new();
        let sub = hub.subscribe("general");
        assert_eq!(hub.subscriber_count("general"), 1);
        drop(sub);
        assert_eq!(hub.subscriber_count("general"), 0);
    }
}
