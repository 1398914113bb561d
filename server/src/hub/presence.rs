//! Who is in a room, as the others are told it: members present (within [`LEAVE_GRACE`] of their
//! last connection leaving), arrivals and departures collected into one `presence` frame per tick,
//! and the room list with its counts.

use std::{collections::BTreeMap, time::Instant};

use app::protocol::{
    DEFAULT_ROOM, Identity, PRESENCE_LIST_MAX, ROOM_LIST_MAX, RoomSummary, ServerMsg, is_private,
};

use super::{Frame, HubRoom, LEAVE_GRACE, Member, RoomStats, TYPING_COALESCE};

impl Member {
    pub(super) fn present(&self, now: Instant) -> bool {
        self.connections > 0 || self.gone_since.is_some_and(|t| now < t + LEAVE_GRACE)
    }
}

impl HubRoom {
    pub(super) fn presence(&self, name: &str, now: Instant) -> ServerMsg {
        let local = self
            .members
            .iter()
            .filter(|(_, m)| m.present(now))
            .map(|(id, m)| (id.clone(), m.who.clone()))
            .collect();
        let mut members: Vec<Identity> = self.with_remote(local).into_values().collect();
        members.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        presence_frame(name, members, Vec::new(), Vec::new())
    }

    /// `local` (this node's people, by user id) with the other nodes' people here: one entry per
    /// person, whichever nodes they are on (this node's name for them wins).
    fn with_remote(&self, mut local: BTreeMap<String, Identity>) -> BTreeMap<String, Identity> {
        for people in self.remote.values() {
            for who in people {
                local.entry(who.id.clone()).or_insert_with(|| who.clone());
            }
        }
        local
    }
}

pub(super) fn presence_frame(
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

impl HubRoom {
    /// Tells the room's subscribers who came and who left since the last announcement, if anyone
    /// did. True if the number of people changed (the room list is then out of date).
    pub(super) fn announce(&mut self, name: &str, now: Instant) -> bool {
        self.members.retain(|_, m| m.present(now));
        // Someone within their leave grace keeps the room dirty until they are gone or back.
        self.dirty = self.members.values().any(|m| m.connections == 0);
        let local: BTreeMap<String, Identity> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.who.clone()))
            .collect();
        if local != self.shared {
            self.shared = local.clone();
            self.share_pending = true;
        }
        let current = self.with_remote(local);
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
    pub(super) fn presence_list(&self) -> Vec<Identity> {
        let mut members: Vec<Identity> = self.announced.values().cloned().collect();
        members.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        members
    }
}

impl HubRoom {
    /// The `typing` frame for `who` in room `name`, unless one was passed on less than
    /// [`TYPING_COALESCE`] ago (from this node or another).
    pub(super) fn pass_typing(
        &mut self,
        name: &str,
        who: &Identity,
        now: Instant,
    ) -> Option<Frame> {
        let recent = self
            .typing
            .get(&who.id)
            .is_some_and(|sent| now < *sent + TYPING_COALESCE);
        if recent {
            return None;
        }
        self.typing.insert(who.id.clone(), now);
        Some(Frame::of(&ServerMsg::Typing {
            room: name.to_owned(),
            user: who.clone(),
        }))
    }
}

/// The open rooms with their announced member counts (a private room or conversation is in its
/// members' own lists only, `access::mine`): the default room always, then the busiest first,
/// and among rooms as busy those that have held a message before those that never have. One
/// person can make rooms without end (a join makes one); at one member each and no message, they
/// no longer push out the rooms people talk in (issue 21, item 5: one flood had 99 of the 100).
pub(super) fn room_list(counts: &[RoomStats]) -> Vec<RoomSummary> {
    let mut ranked: Vec<&RoomStats> = counts.iter().filter(|s| !is_private(&s.room)).collect();
    ranked.sort_by(|a, b| {
        let first = |s: &RoomStats| s.room == DEFAULT_ROOM;
        first(b)
            .cmp(&first(a))
            .then_with(|| b.members.cmp(&a.members))
            .then_with(|| (b.last_seq > 0).cmp(&(a.last_seq > 0)))
            .then_with(|| a.room.cmp(&b.room))
    });
    ranked
        .into_iter()
        .take(ROOM_LIST_MAX)
        .map(|stats| RoomSummary {
            room: stats.room.clone(),
            members: stats.members,
            title: None,
            hidden: false,
        })
        .collect()
}
