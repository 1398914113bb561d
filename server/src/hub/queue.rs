//! One connection's bounded queue ([`SendQueue`]): the hub pushes onto it without ever waiting, the
//! connection's task drains it ([`Drain`]). Full means too slow: the push is refused and a lag note
//! left instead; a connection that lags [`MAX_LAGS`] times is closed as too slow.

use std::{
    collections::VecDeque,
    sync::{Mutex, MutexGuard},
    time::Instant,
};

use app::protocol::Disconnect;
use tokio::sync::Notify;

use super::{Frame, MAX_LAGS, QUEUE_BYTES, QUEUE_FRAMES};

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
    /// The writer asked for the next batch to be timed ([`SendQueue::time_next`]).
    timing: bool,
    /// When the batch being timed began to wait: its first frame's queuing.
    since: Option<Instant>,
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
pub(super) struct Full;

impl SendQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Every update is a single push, take or counter bump: a poisoned lock is still consistent.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `frame` unless that would pass either bound.
    pub(super) fn try_push(&self, frame: &Frame) -> Result<(), Full> {
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
        if wake && queue.timing {
            // Only when asked (one batch in many): not a clock read per delivery.
            queue.timing = false;
            queue.since = Some(Instant::now());
        }
        queue.bytes += frame.len();
        queue.frames.push_back(frame);
        drop(queue);
        if wake {
            self.ready.notify_one();
        }
    }

    /// Queues a signal if there is room; a signal that does not fit is dropped, not a lag.
    pub(super) fn signal(&self, frame: &Frame) {
        let _ = self.try_push(frame);
    }

    pub(super) fn note(&self, room: &str, resume_from: u64) {
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

    /// Asks for the next batch to be timed: the first frame queued after this (onto an empty
    /// queue) notes when it came, for [`Self::timed_since`].
    pub fn time_next(&self) {
        self.lock().timing = true;
    }

    /// When the batch asked for by [`Self::time_next`] began to wait, once it has (taken: it is
    /// timed once).
    pub fn timed_since(&self) -> Option<Instant> {
        self.lock().since.take()
    }

    /// Why the connection is to close, if it is.
    pub fn closing(&self) -> Option<Disconnect> {
        self.lock().closing
    }

    /// Whether `frames` more frames and `bytes` more bytes stay within the queue's bounds, beside
    /// what it holds (replies included). `has_room(0, 0)` is false once it is at its bound.
    pub fn has_room(&self, frames: usize, bytes: usize) -> bool {
        let queue = self.lock();
        queue.frames.len().saturating_add(frames) < QUEUE_FRAMES
            && queue.bytes.saturating_add(bytes) < QUEUE_BYTES
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }
}
