//! The hub's side of a cluster ([`Shared`]): what this node tells the others — its own people in
//! each room, and who typed — and what it takes from them, so that presence, counts, the room
//! list and typing are the same on every node. No I/O: `crate::cluster` carries it over Redis.

use std::time::Instant;

use app::protocol::Identity;

use super::{Hub, lock};

/// Something for the other nodes of a cluster, from [`Hub::tick`].
#[derive(Clone, Debug, PartialEq)]
pub enum Shared {
    /// This node's people in `room` now (empty: none any more).
    People { room: String, people: Vec<Identity> },
    /// `who` is typing in `room` (coalesced here as for local readers).
    Typing { room: String, who: Identity },
}

impl Hub {
    /// From now on [`Hub::tick`] says what to share with the other nodes.
    pub fn join_cluster(&self) {
        self.inner
            .clustered
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Everything this node would share about its people, for a node that lost track of it.
    pub fn all_people(&self) -> Vec<Shared> {
        self.every_room()
            .into_iter()
            .filter_map(|(name, room)| {
                let room = lock(&room);
                (!room.shared.is_empty()).then(|| Shared::People {
                    room: name,
                    people: room.shared.values().cloned().collect(),
                })
            })
            .collect()
    }

    /// Node `node` says these are its people in `room`; announced at the next tick.
    pub fn set_remote_people(&self, node: &str, room: &str, people: Vec<Identity>) {
        let entry = self.room(room);
        let mut entry = lock(&entry);
        if people.is_empty() {
            entry.remote.remove(node);
        } else {
            entry.remote.insert(node.to_owned(), people);
        }
        entry.dirty = true;
    }

    /// Node `node` is gone (or starts over): its people leave wherever they are not elsewhere.
    pub fn forget_node(&self, node: &str) {
        for (_, room) in self.every_room() {
            let mut room = lock(&room);
            if room.remote.remove(node).is_some() {
                room.dirty = true;
            }
        }
    }

    /// `who`, on another node, is typing in `room`: told to this node's readers there, at most
    /// once per [`TYPING_COALESCE`] as for local typing.
    pub fn remote_typing(&self, room: &str, who: Identity, now: Instant) {
        let Some(entry) = self.find(room) else {
            return;
        };
        let mut entry = lock(&entry);
        let Some(frame) = entry.pass_typing(room, &who, now) else {
            return;
        };
        for sub in entry.subscribers.values() {
            sub.signal(&frame);
        }
    }

    /// Typing passed on by a connection here: shared at the next tick, in a cluster.
    pub(super) fn typed(&self, room: &str, who: &Identity) {
        if self
            .inner
            .clustered
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            lock(&self.inner.typed).push((room.to_owned(), who.clone()));
        }
    }
}
