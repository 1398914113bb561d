//! Read positions as people move them (docs/READING.md). A device says how far its person has read a
//! room (the newest messages were on screen in a focused tab, "mark as read", "mark unread", or
//! they wrote there); the position waits here a moment ([`FLUSH`]) and is written with every other
//! that came meanwhile in one step — ten thousand readers of a room reading its newest message are
//! one write, not ten thousand — then every connection of that person, on every node, is told
//! where they are now and what is left unread (`read`). The positions themselves are the people
//! store's (`people::reading`); what is unread after one is the log's to count (`Log::unread`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use app::protocol::ServerMsg;

use crate::{
    AppState, access,
    frame::Frame,
    people::{
        Role,
        reading::{ReadAt, Reading},
    },
};

/// How long a position waits to be written with the others: well within the second in which a
/// person's other devices should follow.
pub const FLUSH: Duration = Duration::from_millis(200);

/// Positions set and not yet written: the newest per person and room.
#[derive(Clone, Default)]
pub struct Positions {
    pending: Arc<Mutex<HashMap<(String, String), Reading>>>,
}

impl Positions {
    /// `account` has read `at.room` up to `at.seq` (or, with `rewind`, only up to it). Of two for
    /// the same room before a write, the later forward one of an epoch wins, as the store would
    /// decide; a rewind replaces what waits.
    pub fn set(&self, account: &str, at: ReadAt, rewind: bool) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let key = (account.to_owned(), at.room.clone());
        let reading = Reading {
            account: account.to_owned(),
            at,
            rewind,
        };
        match pending.get_mut(&key) {
            Some(waiting)
                if !rewind
                    && waiting.at.epoch == reading.at.epoch
                    && waiting.at.seq >= reading.at.seq => {}
            Some(waiting) => {
                // A rewind that waits stays one: the forward move after it still sets the seq.
                let rewind = waiting.rewind || reading.rewind;
                *waiting = Reading { rewind, ..reading };
            }
            None => {
                pending.insert(key, reading);
            }
        }
    }

    fn take(&self) -> Vec<Reading> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *pending).into_values().collect()
    }

    /// Puts back what could not be written (unless something newer came meanwhile).
    fn put_back(&self, batch: Vec<Reading>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for reading in batch {
            let key = (reading.account.clone(), reading.at.room.clone());
            pending.entry(key).or_insert(reading);
        }
    }
}

/// A position moved, as every node tells its person's connections: the `read` frame's fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    pub account: String,
    pub room: String,
    pub epoch: String,
    pub seq: u64,
    pub last_seq: u64,
    pub unread: u32,
}

impl Moved {
    pub fn frame(&self) -> ServerMsg {
        ServerMsg::Read {
            room: self.room.clone(),
            epoch: self.epoch.clone(),
            seq: self.seq,
            last_seq: self.last_seq,
            unread: self.unread,
        }
    }
}

/// Writes the positions set here every [`FLUSH`], until the server stops (then once more).
pub async fn run(state: AppState) {
    loop {
        tokio::select! {
            () = state.stop.cancelled() => break,
            () = tokio::time::sleep(FLUSH) => flush(&state).await,
        }
    }
    flush(&state).await;
}

/// Writes what waits, in one step; tells each person whose position moved, here and on the other
/// nodes. What could not be written waits for the next try.
async fn flush(state: &AppState) {
    let batch = state.positions.take();
    if batch.is_empty() {
        return;
    }
    let moved = match state.sessions.people.set_read_positions(&batch).await {
        Ok(moved) => moved,
        Err(e) => {
            tracing::warn!(positions = batch.len(), "cannot write read positions: {e}");
            state.positions.put_back(batch);
            return;
        }
    };
    let mut told = Vec::new();
    for (reading, moved) in batch.into_iter().zip(moved) {
        if !moved {
            continue;
        }
        match counted(state, &reading.at).await {
            Ok(Some((last_seq, unread))) => {
                let moved = Moved {
                    account: reading.account,
                    room: reading.at.room,
                    epoch: reading.at.epoch,
                    seq: reading.at.seq,
                    last_seq,
                    unread,
                };
                state
                    .hub
                    .tell_account(&moved.account, &Frame::of(&moved.frame()));
                told.push(moved);
            }
            // The room is gone: nothing to tell.
            Ok(None) => {}
            Err(e) => tracing::warn!(room = %reading.at.room, "cannot count what is unread: {e}"),
        }
    }
    if let Some(cluster) = &state.cluster {
        cluster.read(told);
    }
}

/// The room's last entry and what is unread after `at`; `None` if there is no such room. Read up
/// to the newest entry this node has handed on (what most positions are), nothing is left to count.
async fn counted(
    state: &AppState,
    at: &ReadAt,
) -> Result<Option<(u64, u32)>, crate::log::LogError> {
    if state.rooms.epoch(&at.room).as_deref() == Some(at.epoch.as_str())
        && state.rooms.last_seq(&at.room) == Some(at.seq)
    {
        return Ok(Some((at.seq, 0)));
    }
    let unread = state.rooms.unread(&at.room, &at.epoch, at.seq).await?;
    Ok(unread.map(|unread| {
        (
            unread.last_seq,
            u32::try_from(unread.messages).unwrap_or(u32::MAX),
        )
    }))
}

/// The rooms `account` counts: those they have a position in, and their private rooms and
/// conversations (read from nothing until they read there) — each only if they may open it now
/// (a position in a room they were removed from counts for nothing).
pub async fn counted_rooms(
    state: &AppState,
    account: &str,
    role: Role,
) -> Result<Vec<ReadAt>, crate::people::PeopleError> {
    let people = &state.sessions.people;
    let mut rooms = people.read_positions(account).await?;
    for record in people.rooms_of(account).await? {
        if !rooms.iter().any(|at| at.room == record.name) {
            rooms.push(ReadAt {
                room: record.name,
                epoch: String::new(),
                seq: 0,
            });
        }
    }
    let mut open = Vec::with_capacity(rooms.len());
    for at in rooms {
        match access::open(state, access::Who::Person(account, role), &at.room).await {
            Ok(_) => open.push(at),
            Err(access::Refused::Missing) => {}
            Err(access::Refused::Unavailable(e)) => {
                return Err(crate::people::PeopleError::Storage(e));
            }
        }
    }
    Ok(open)
}

/// What a connection is told after `welcome`: a `read` for every room its person counts, with what
/// is unread there. Counted off the connection's task, so the welcome is not held up.
pub fn welcome(state: &AppState, queue: Arc<crate::hub::SendQueue>, account: &str, role: Role) {
    let (state, account) = (state.clone(), account.to_owned());
    tokio::spawn(async move {
        let rooms = match counted_rooms(&state, &account, role).await {
            Ok(rooms) => rooms,
            Err(e) => {
                tracing::warn!("cannot list the rooms a person counts: {e}");
                return;
            }
        };
        for at in rooms {
            let epoch = at.epoch.clone();
            match counted(&state, &at).await {
                Ok(Some((last_seq, unread))) => {
                    let read = ServerMsg::Read {
                        room: at.room,
                        epoch,
                        seq: at.seq,
                        last_seq,
                        unread,
                    };
                    queue.push(Frame::of(&read));
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(room = %at.room, "cannot count what is unread: {e}"),
            }
        }
    });
}

/// "Mark all as read", for `account`: every room they count, at its newest entry.
pub async fn read_all(state: &AppState, account: &str, role: Role) {
    let rooms = match counted_rooms(state, account, role).await {
        Ok(rooms) => rooms,
        Err(e) => {
            tracing::warn!("cannot list the rooms a person counts: {e}");
            return;
        }
    };
    for at in rooms {
        // The newest entry as the log has it now, in its history now.
        match state.rooms.unread(&at.room, &at.epoch, at.seq).await {
            Ok(Some(now)) if now.epoch != at.epoch || now.last_seq > at.seq => {
                let newest = ReadAt {
                    room: at.room,
                    epoch: now.epoch,
                    seq: now.last_seq,
                };
                state.positions.set(account, newest, false);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(room = %at.room, "cannot mark a room read: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(room: &str, epoch: &str, seq: u64) -> ReadAt {
        ReadAt {
            room: room.into(),
            epoch: epoch.into(),
            seq,
        }
    }

    #[test]
    fn of_the_positions_set_between_two_writes_the_furthest_of_an_epoch_waits_and_a_rewind_stays_one()
     {
        let positions = Positions::default();
        positions.set("ann", at("r", "e", 5), false);
        positions.set("ann", at("r", "e", 3), false);
        positions.set("bob", at("r", "e", 1), false);
        let mut taken = positions.take();
        taken.sort_by(|a, b| a.account.cmp(&b.account));
        assert_eq!(
            taken
                .iter()
                .map(|r| (r.account.as_str(), r.at.seq))
                .collect::<Vec<_>>(),
            [("ann", 5), ("bob", 1)]
        );
        // A rewind replaces, and the forward move after it still rewinds from what was stored.
        positions.set("ann", at("r", "e", 9), false);
        positions.set("ann", at("r", "e", 2), true);
        positions.set("ann", at("r", "e", 4), false);
        let taken = positions.take();
        assert_eq!((taken[0].at.seq, taken[0].rewind), (4, true));
        // Another epoch replaces whatever its seq.
        positions.set("ann", at("r", "e", 9), false);
        positions.set("ann", at("r", "f", 1), false);
        assert_eq!(positions.take()[0].at, at("r", "f", 1));
        // What could not be written goes back, behind anything newer.
        positions.set("ann", at("r", "e", 7), false);
        positions.put_back(vec![Reading {
            account: "ann".into(),
            at: at("r", "e", 6),
            rewind: false,
        }]);
        assert_eq!(positions.take()[0].at.seq, 7);
    }
}
