//! The broadcast hub: who is connected, and fan-out of each accepted message to all of them. No I/O.
//!
//! A message is encoded once into a [`Frame`] whose bytes every subscriber shares; delivering it is a
//! non-blocking push onto each subscriber's bounded queue. A subscriber whose queue is full is too slow
//! to keep up: it is removed and told so (its connection closes with `TOO_SLOW`) instead of either
//! delaying everyone else or silently missing messages.

use std::{
    collections::HashMap,
    hash::BuildHasher,
    sync::{Arc, Mutex, MutexGuard},
    time::{SystemTime, UNIX_EPOCH},
};

use app::protocol::{ChatMessage, ServerMsg};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// An encoded server frame, cheap to clone: the bytes are reference-counted, never copied per reader.
pub type Frame = axum::extract::ws::Utf8Bytes;

/// Frames a subscriber may have waiting before it counts as too slow. A message is at most ~4.3 KiB
/// encoded, so this bounds one connection's queue at about 1 MiB.
pub const QUEUE_FRAMES: usize = 256;

/// Cheap to clone: every clone is a handle to the same hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Mutex<Inner>>,
    /// Names this run of the hub; see [`ServerMsg::Welcome`].
    epoch: Arc<str>,
}

struct Inner {
    /// Seq of the last published message.
    last_seq: u64,
    next_subscriber: u64,
    subscribers: HashMap<u64, Subscriber>,
}

struct Subscriber {
    queue: mpsc::Sender<Frame>,
    /// Cancelled when the hub gives up on this subscriber because its queue overflowed.
    lagged: CancellationToken,
}

/// One connection's place in the hub, in parts the connection's tasks take apart.
pub struct Subscription {
    /// Frames for this connection, in order: broadcasts and the connection's own replies.
    pub frames: mpsc::Receiver<Frame>,
    /// Pushes a reply onto this connection's own queue, behind the broadcasts already there.
    pub replies: mpsc::Sender<Frame>,
    /// Cancelled if the hub dropped this subscriber for being too slow.
    pub lagged: CancellationToken,
    /// Keep it for as long as the connection lives: dropping it leaves the hub.
    pub membership: Membership,
}

/// Leaves the hub when dropped.
pub struct Membership {
    id: u64,
    hub: Hub,
}

impl Hub {
    pub fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let epoch = format!("{:016x}", std::hash::RandomState::new().hash_one(nanos));
        Self {
            inner: Arc::new(Mutex::new(Inner {
                last_seq: 0,
                next_subscriber: 0,
                subscribers: HashMap::new(),
            })),
            epoch: epoch.into(),
        }
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Registers a new subscriber: from now on every published message is queued for it.
    pub fn subscribe(&self) -> Subscription {
        let (queue, frames) = mpsc::channel(QUEUE_FRAMES);
        let lagged = CancellationToken::new();
        let mut inner = self.lock();
        let id = inner.next_subscriber;
        inner.next_subscriber += 1;
        inner.subscribers.insert(
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
            membership: Membership {
                id,
                hub: self.clone(),
            },
        }
    }

    /// Assigns the next seq to a message and queues it for every subscriber. Returns the seq.
    pub fn publish(&self, author: &str, body: String) -> u64 {
        let sent_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut inner = self.lock();
        // Seq assignment and the pushes happen under one lock, so every queue receives messages in
        // seq order even when several connections publish at once.
        inner.last_seq += 1;
        let seq = inner.last_seq;
        let frame = Frame::from(
            ServerMsg::Message(ChatMessage {
                seq,
                author: author.to_owned(),
                body,
                sent_at,
            })
            .encode(),
        );
        inner
            .subscribers
            .retain(|_, sub| match sub.queue.try_send(frame.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.lagged.cancel();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        seq
    }

    /// How many connections are subscribed now.
    pub fn subscriber_count(&self) -> usize {
        self.lock().subscribers.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-updated in a way that matters
        // (every update is a single insert, remove or counter bump), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.lock().subscribers.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq_of(frame: &Frame) -> u64 {
        match ServerMsg::decode(frame.as_str()) {
            Ok(ServerMsg::Message(m)) => m.seq,
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn every_subscriber_gets_every_message_in_order() {
        let hub = Hub::new();
        let mut a = hub.subscribe();
        let mut b = hub.subscribe();
        for i in 0..10 {
            assert_eq!(hub.publish("ann", format!("m{i}")), i + 1);
        }
        for sub in [&mut a, &mut b] {
            let seqs: Vec<u64> = (0..10)
                .map(|_| seq_of(&sub.frames.try_recv().expect("queued")))
                .collect();
            assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
            assert!(sub.frames.try_recv().is_err(), "nothing extra");
        }
    }

    #[test]
    fn an_overflowing_subscriber_is_dropped_and_told_without_affecting_others() {
        let hub = Hub::new();
        let stalled = hub.subscribe();
        let mut reader = hub.subscribe();
        for i in 0..(QUEUE_FRAMES as u64 + 1) {
            hub.publish("ann", "x".into());
            assert_eq!(seq_of(&reader.frames.try_recv().expect("queued")), i + 1);
        }
        assert!(stalled.lagged.is_cancelled());
        assert!(!reader.lagged.is_cancelled());
        assert_eq!(hub.subscriber_count(), 1);
    }

    #[test]
    fn dropping_a_subscription_leaves_the_hub() {
        let hub = Hub::new();
        let sub = hub.subscribe();
        assert_eq!(hub.subscriber_count(), 1);
        drop(sub);
        assert_eq!(hub.subscriber_count(), 0);
    }
}
