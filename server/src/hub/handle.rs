//! One connection's place in the hub ([`Handle`]): joining a room (held live messages, then
//! released behind the replay), typing, leaving, and leaving everything when it is dropped.

use std::{sync::Arc, time::Instant};

use app::protocol::{Identity, ServerMsg};

use super::{Frame, Hub, HubRoom, Member, SendQueue, Subscriber, lock};

/// One connection's place in the hub: its queue, who it is, and the rooms it has joined. Dropping it
/// leaves them.
pub struct Handle {
    pub(super) id: u64,
    pub(super) hub: Hub,
    /// Whom the connection is for; `None` for an observer (a Server-Sent Events reader), which
    /// receives a room without being one of the people in it.
    pub(super) user: Option<Identity>,
    /// The session that let the person in (its stored key), if the connection is closed with it.
    pub(super) session: Option<Box<str>>,
    pub(super) queue: Arc<SendQueue>,
    pub(super) joined: Vec<String>,
    /// Rooms this connection may read and not write, and why (as the door said when it joined).
    pub(super) read_only: Vec<(String, ReadOnly)>,
}

/// Why a connection may read a room and not write in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOnly {
    /// The room is archived.
    Archived,
    /// A moderator muted this person in the room until then (ms since the epoch).
    MutedUntil(u64),
}

/// Where a join starts: see [`Handle::join`].
pub struct JoinPoint {
    /// The seq the held live messages start after.
    pub live_after: u64,
    /// The frames of the messages from the earliest seq asked for up to `live_after`, if the hub
    /// still has every one (empty if there are none to replay).
    pub recent: Option<Vec<Frame>>,
}

impl Handle {
    /// This connection's number on this node, from its start (log lines carry it).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// This connection's queue, for the task that writes it out.
    pub fn queue(&self) -> Arc<SendQueue> {
        self.queue.clone()
    }

    /// Queues a reply on this connection's own queue, behind what is already there: a reply answers
    /// something this client asked for and is never dropped (see [`SendQueue::push`]).
    pub fn reply(&self, frame: Frame) {
        self.queue.push(frame);
    }

    /// The seq of the last message published in `room`, if the hub knows the room.
    pub fn last_seq(&self, room: &str) -> Option<u64> {
        self.hub.last_seq(room)
    }

    pub fn has_joined(&self, room: &str) -> bool {
        self.joined.iter().any(|r| r == room)
    }

    /// Why this connection may only read `room`, if it may (see [`Self::set_read_only`]).
    pub fn read_only(&self, room: &str) -> Option<ReadOnly> {
        self.read_only
            .iter()
            .find(|(r, _)| r == room)
            .map(|(_, why)| *why)
    }

    /// Marks `room` as read-only for this connection (`Some`, and why), or writable: the door that
    /// let it in says which (archiving a room, or muting someone in it, closes the connections in
    /// it, so they come back through the door).
    pub fn set_read_only(&mut self, room: &str, read_only: Option<ReadOnly>) {
        self.read_only.retain(|(r, _)| r != room);
        if let Some(why) = read_only {
            self.read_only.push((room.to_owned(), why));
        }
    }

    /// Starts a join: from now on the room's messages are held for this connection, and its user is
    /// a member. Returns the seq the held messages start after — the caller replays up to it, then
    /// calls [`Self::release`] — and, if the hub still has them all, the frames of the messages
    /// from `earliest(live_after)` to there (the earliest the replay may start at).
    pub fn join(&mut self, room: &str, earliest: impl FnOnce(u64) -> u64) -> JoinPoint {
        let entry = self.hub.room(room);
        let mut entry = lock(&entry);
        let point = JoinPoint {
            live_after: entry.last_seq,
            recent: entry.recent.since(earliest(entry.last_seq), entry.last_seq),
        };
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
                return point;
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
        point
    }

    /// Ends a join: the held messages go to the queue (after the replay already there), and the
    /// room's next messages go straight to it. Returns who is in the room, to send after them.
    pub fn release(&self, room: &str) -> ServerMsg {
        let entry = self.hub.room(room);
        let mut entry = lock(&entry);
        let entry = &mut *entry;
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
        let Some(entry) = self.hub.find(room) else {
            return;
        };
        let mut entry = lock(&entry);
        let Some(frame) = entry.pass_typing(room, user, now) else {
            return;
        };
        for (id, sub) in &entry.subscribers {
            if *id != self.id {
                sub.signal(&frame);
            }
        }
        drop(entry);
        self.hub.typed(room, user);
    }

    pub fn leave(&mut self, room: &str) {
        if !self.has_joined(room) {
            return;
        }
        self.joined.retain(|r| r != room);
        self.read_only.retain(|(r, _)| r != room);
        if let Some(entry) = self.hub.find(room) {
            lock(&entry).remove(self.id, self.user.as_ref(), Instant::now());
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
        lock(&self.hub.inner.connections).remove(&self.id);
        if let Some(user) = self.session.as_ref().and(self.user.as_ref()) {
            let mut by_account = lock(&self.hub.inner.by_account);
            if let Some(ids) = by_account.get_mut(user.id.as_str()) {
                ids.retain(|id| *id != self.id);
                if ids.is_empty() {
                    by_account.remove(user.id.as_str());
                }
            }
        }
        if let Some(session) = &self.session {
            let mut by_session = lock(&self.hub.inner.sessions);
            if let Some((_, ids)) = by_session.get_mut(session) {
                ids.retain(|id| *id != self.id);
                if ids.is_empty() {
                    by_session.remove(session);
                }
            }
        }
        for room in &self.joined {
            if let Some(entry) = self.hub.find(room) {
                lock(&entry).remove(self.id, self.user.as_ref(), now);
            }
        }
    }
}
