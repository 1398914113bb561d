//! Read positions as people move them (docs/READING.md). A device says how far its person has read a
//! room (the newest messages were on screen in a focused tab, "mark as read", "mark unread", or
//! they wrote there); the position waits here a moment ([`FLUSH`]) and is written with every other
//! that came meanwhile in one step — ten thousand readers of a room reading its newest message are
//! one write, not ten thousand — then every connection of that person, on every node, is told
//! where they are now and what is left unread (`read`). The positions themselves are the people
//! store's (`people::reading`); what is unread after one is the log's to count (`Log::unread`).
//!
//! Rooms a person's device has not open learn of new messages here too: every [`RECOUNT`] the rooms
//! that took a message or a deletion (here, or on another node: the cluster note `active`) are
//! counted again for the people here who count them ([`Watching`]) and their connections outside
//! the room are told what changed — a count per room and position a second, not per message.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use app::protocol::ServerMsg;

use crate::{
    AppState, access,
    frame::Frame,
    people::{
        Role, RoomKind,
        reading::{ReadAt, Reading},
    },
};

/// How often the rooms that took messages are counted again for the people here who count them but
/// do not have them open: within the second a sidebar's count should follow.
pub const RECOUNT: Duration = Duration::from_secs(1);

/// How often the people here who count rooms are looked over, and those with no connection here
/// any more let go.
const SWEEP: Duration = Duration::from_secs(60);

/// How long a position waits to be written with the others: well within the second in which a
/// person's other devices should follow.
pub const FLUSH: Duration = Duration::from_millis(200);

/// How a position was moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    /// A device read the room up to there.
    Read,
    /// "Mark unread": it moves back.
    Rewind,
    /// The person wrote the message there: they have read up to it, and nothing after it needs
    /// counting (their devices count what comes after as it comes).
    Wrote,
}

/// A position waiting to be written (its person and room are its keys).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Waiting {
    epoch: String,
    seq: u64,
    rewind: bool,
    wrote: bool,
}

/// Most connections counting their person's rooms at once: after a restart every page comes back
/// together, and their counts wait their turn rather than all asking the store at once.
const COUNTING_AT_ONCE: usize = 32;

/// Positions set and not yet written: the newest per person and room. Keyed by person, then room,
/// so that a position that moves no further (most of a busy room's) allocates nothing. Also this
/// server's bounds on counting: the turns ([`COUNTING_AT_ONCE`]) and whose "mark all as read" is
/// under way.
#[derive(Clone)]
pub struct Positions {
    pending: Arc<Mutex<HashMap<String, HashMap<String, Waiting>>>>,
    counting: Arc<tokio::sync::Semaphore>,
    reading_all: Arc<Mutex<HashSet<String>>>,
    /// Rooms where this node stored a message or a deletion since the last recount: told to the
    /// other nodes, and counted again here.
    active: Arc<Mutex<HashSet<String>>>,
    /// Rooms another node said were active since the last recount: counted again here only.
    heard: Arc<Mutex<HashSet<String>>>,
    /// Messages deleted here since the last recount, `(room, seq)`: the mentions they made are
    /// forgotten before the rooms are counted again.
    deleted: Arc<Mutex<Vec<(String, u64)>>>,
    watching: Arc<Mutex<Watching>>,
}

/// Who here counts each room, from where, and what they were last told: the people with a
/// connection here, from the rooms counted for them at `welcome` and every position of theirs told
/// since. Bots count nothing.
#[derive(Default)]
struct Watching {
    rooms: HashMap<String, HashMap<String, Watched>>,
    /// Each watching person's role, as their connection was let in (a room is counted only for
    /// those let in since their role was known).
    roles: HashMap<String, Role>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Watched {
    epoch: String,
    seq: u64,
    /// The room's last entry, the count and the mentions last told: told again only when they
    /// change.
    told: (u64, u32, u32),
}

impl Default for Positions {
    fn default() -> Self {
        Self {
            pending: Arc::default(),
            counting: Arc::new(tokio::sync::Semaphore::new(COUNTING_AT_ONCE)),
            reading_all: Arc::default(),
            active: Arc::default(),
            heard: Arc::default(),
            deleted: Arc::default(),
            watching: Arc::default(),
        }
    }
}

impl Positions {
    /// `account` has read `room` up to `seq` of `epoch` (or, rewinding, only up to it). Of two for
    /// the same room before a write, the later forward one of an epoch wins, as the store would
    /// decide; a rewind replaces what waits, and stays one.
    pub fn set(&self, account: &str, room: &str, epoch: &str, seq: u64, how: Move) {
        let rewind = how == Move::Rewind;
        let wrote = how == Move::Wrote;
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let rooms = match pending.get_mut(account) {
            Some(rooms) => rooms,
            None => pending.entry(account.to_owned()).or_default(),
        };
        match rooms.get_mut(room) {
            Some(waiting) if !rewind && waiting.epoch == epoch && waiting.seq >= seq => {}
            Some(waiting) => {
                // A rewind that waits stays one: the forward move after it still sets the seq.
                waiting.rewind |= rewind;
                waiting.wrote = wrote;
                waiting.seq = seq;
                if waiting.epoch != epoch {
                    waiting.epoch = epoch.to_owned();
                }
            }
            None => {
                let waiting = Waiting {
                    epoch: epoch.to_owned(),
                    seq,
                    rewind,
                    wrote,
                };
                rooms.insert(room.to_owned(), waiting);
            }
        }
    }

    /// This node stored an entry that changes what is unread in `room` (a message, a deletion).
    pub fn stored(&self, room: &str) {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if !active.contains(room) {
            active.insert(room.to_owned());
        }
    }

    /// This node stored the deletion of message `seq` of `room`.
    pub fn deleted(&self, room: &str, seq: u64) {
        self.deleted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((room.to_owned(), seq));
    }

    /// Another node said these rooms changed what is unread in them.
    pub fn heard_active(&self, rooms: Vec<String>) {
        self.heard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(rooms);
    }

    /// `account` has a connection here, let in as `role`: the rooms they are told of are watched.
    fn let_in(&self, account: &str, role: Role) {
        let mut watching = self.watching.lock().unwrap_or_else(|e| e.into_inner());
        watching.roles.insert(account.to_owned(), role);
    }

    /// A position told, here or by another node: from now on a message in its room tells its
    /// person again (if they have a connection here).
    pub fn moved(&self, moved: &Moved) {
        let account = moved.account.as_str();
        let mut watching = self.watching.lock().unwrap_or_else(|e| e.into_inner());
        match watching.roles.get(account) {
            Some(Role::Bot) | None => return,
            Some(_) => {}
        }
        let told = (moved.last_seq, moved.unread, moved.mentions);
        // Changed in place when it is there (a writer's position moves with every message they
        // send: nothing is allocated for it).
        if let Some(watched) = watching
            .rooms
            .get_mut(&moved.room)
            .and_then(|people| people.get_mut(account))
        {
            watched.seq = moved.seq;
            watched.told = told;
            if watched.epoch != moved.epoch {
                watched.epoch = moved.epoch.clone();
            }
            return;
        }
        let watched = Watched {
            epoch: moved.epoch.clone(),
            seq: moved.seq,
            told,
        };
        watching
            .rooms
            .entry(moved.room.clone())
            .or_default()
            .insert(account.to_owned(), watched);
    }

    /// `account`'s own `rooms` (their private rooms and conversations, as they are now): one not
    /// watched yet (they were just added to it) is, from nothing, if they have a connection here.
    pub fn count_from_nothing<'a>(&self, account: &str, rooms: impl Iterator<Item = &'a str>) {
        let mut watching = self.watching.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(watching.roles.get(account), Some(role) if *role != Role::Bot) {
            return;
        }
        for room in rooms {
            let people = match watching.rooms.get_mut(room) {
                Some(people) => people,
                None => watching.rooms.entry(room.to_owned()).or_default(),
            };
            if !people.contains_key(account) {
                let nothing = Watched {
                    epoch: String::new(),
                    seq: 0,
                    told: (0, 0, 0),
                };
                people.insert(account.to_owned(), nothing);
            }
        }
    }

    /// `account` no longer counts `room` (not a member any more, or the room is gone).
    fn unwatch(&self, room: &str, account: &str) {
        let mut watching = self.watching.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(people) = watching.rooms.get_mut(room) {
            people.remove(account);
            if people.is_empty() {
                watching.rooms.remove(room);
            }
        }
    }

    /// Lets go of the people with no connection here any more.
    fn sweep(&self, here: impl Fn(&str) -> bool) {
        let mut watching = self.watching.lock().unwrap_or_else(|e| e.into_inner());
        watching.roles.retain(|account, _| here(account));
        let Watching { rooms, roles } = &mut *watching;
        rooms.retain(|_, people| {
            people.retain(|account, _| roles.contains_key(account));
            !people.is_empty()
        });
    }

    /// What waits, as the store takes it, each with whether it was moved by writing.
    fn take(&self) -> Vec<(Reading, bool)> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut taken = Vec::new();
        for (account, rooms) in std::mem::take(&mut *pending) {
            for (room, waiting) in rooms {
                let at = ReadAt {
                    room,
                    epoch: waiting.epoch,
                    seq: waiting.seq,
                };
                let reading = Reading {
                    account: account.clone(),
                    at,
                    rewind: waiting.rewind,
                };
                taken.push((reading, waiting.wrote));
            }
        }
        taken
    }

    /// Puts back what could not be written (unless something newer came meanwhile).
    fn put_back(&self, batch: Vec<(Reading, bool)>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (reading, wrote) in batch {
            let waiting = Waiting {
                epoch: reading.at.epoch,
                seq: reading.at.seq,
                rewind: reading.rewind,
                wrote,
            };
            pending
                .entry(reading.account)
                .or_default()
                .entry(reading.at.room)
                .or_insert(waiting);
        }
    }
}

/// Whether `entry` changes what is unread after a position: a message, or the deletion of one.
pub fn changes_unread(entry: &app::protocol::Entry) -> bool {
    match entry {
        app::protocol::Entry::Message(_) => true,
        app::protocol::Entry::Change(change) => change.change == app::protocol::Change::Delete,
        app::protocol::Entry::Other(_) => false,
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
    /// Of the unread, how many mention the person.
    #[serde(default)]
    pub mentions: u32,
}

impl Moved {
    pub fn frame(&self) -> ServerMsg {
        ServerMsg::Read {
            room: self.room.clone(),
            epoch: self.epoch.clone(),
            seq: self.seq,
            last_seq: self.last_seq,
            unread: self.unread,
            mentions: self.mentions,
        }
    }
}

/// Writes the positions set here every [`FLUSH`], and counts again the rooms that took messages
/// every [`RECOUNT`], until the server stops (then writes once more).
pub async fn run(state: AppState) {
    let mut recount = tokio::time::interval(RECOUNT);
    recount.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // On its own beat: a pause begun again after every other branch (a recount, a sweep) would
    // let a position wait longer than `FLUSH` (`herald-bench read-follow` measured 360 ms).
    let mut every = tokio::time::interval(FLUSH);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = state.stop.cancelled() => break,
            _ = every.tick() => flush(&state).await,
            _ = recount.tick() => count_again(&state).await,
            _ = sweep.tick() => state.positions.sweep(|account| state.hub.has_account(account)),
        }
    }
    flush(&state).await;
}

/// The rooms that took a message or a deletion since the last time, here (told to the other nodes
/// too) or on another node: what is unread there is counted again for each person here who counts
/// the room and has a connection outside it (a connection in it counts what arrives), and told if
/// it changed. Counted once per position; a private room only for its members now.
async fn count_again(state: &AppState) {
    let positions = &state.positions;
    forget_mentions(state).await;
    let mine: Vec<String> =
        std::mem::take(&mut *positions.active.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect();
    if let (Some(cluster), false) = (&state.cluster, mine.is_empty()) {
        cluster.active(mine.clone());
    }
    let mut rooms: HashSet<String> =
        std::mem::take(&mut *positions.heard.lock().unwrap_or_else(|e| e.into_inner()));
    rooms.extend(mine);
    for room in rooms {
        let watchers: Vec<(String, Watched)> = {
            let watching = positions.watching.lock().unwrap_or_else(|e| e.into_inner());
            match watching.rooms.get(&room) {
                Some(people) => people
                    .iter()
                    .filter(|(account, _)| state.hub.outside(account, &room))
                    .map(|(account, watched)| (account.clone(), watched.clone()))
                    .collect(),
                None => continue,
            }
        };
        let private = RoomKind::of(&room) != RoomKind::Open;
        let mut counts: HashMap<(String, u64), Option<Counted>> = HashMap::new();
        for (account, watched) in watchers {
            if private {
                match state.sessions.people.is_member(&room, &account).await {
                    Ok(true) => {}
                    Ok(false) => {
                        positions.unwatch(&room, &account);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(%room, "cannot tell whether a person is in a room: {e}");
                        break;
                    }
                }
            }
            let at = ReadAt {
                room: room.clone(),
                epoch: watched.epoch.clone(),
                seq: watched.seq,
            };
            let key = (watched.epoch.clone(), watched.seq);
            let counted = match counts.get(&key) {
                Some(counted) => counted.clone(),
                None => match counted(state, &at).await {
                    Ok(counted) => counts.entry(key).or_insert(counted).clone(),
                    Err(e) => {
                        tracing::warn!(%room, "cannot count what is unread: {e}");
                        break;
                    }
                },
            };
            let Some(counted) = counted else {
                // The room is gone.
                positions.unwatch(&room, &account);
                continue;
            };
            let moved = told(state, &account, at, &counted).await;
            if (moved.last_seq, moved.unread, moved.mentions) == watched.told {
                continue;
            }
            if state
                .hub
                .tell_account_outside(&moved.account, &room, &Frame::of(&moved.frame()))
            {
                positions.moved(&moved);
            }
        }
    }
}

/// The mentions made by the messages deleted here since the last time are forgotten (what could
/// not be is tried again next time).
async fn forget_mentions(state: &AppState) {
    let deleted = std::mem::take(
        &mut *state
            .positions
            .deleted
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    let mut by_room: HashMap<String, Vec<u64>> = HashMap::new();
    for (room, seq) in deleted {
        by_room.entry(room).or_default().push(seq);
    }
    for (room, seqs) in by_room {
        if let Err(e) = state.sessions.people.forget_mentions(&room, &seqs).await {
            tracing::warn!(%room, "cannot forget a deleted message's mentions: {e}");
            for seq in seqs {
                state.positions.deleted(&room, seq);
            }
        }
    }
}

/// Writes what waits, in one step; tells each person whose position moved, here and on the other
/// nodes. What could not be written waits for the next try.
async fn flush(state: &AppState) {
    let batch = state.positions.take();
    if batch.is_empty() {
        return;
    }
    let readings: Vec<Reading> = batch.iter().map(|(reading, _)| reading.clone()).collect();
    let moved = match state.sessions.people.set_read_positions(&readings).await {
        Ok(moved) => moved,
        Err(e) => {
            tracing::warn!(positions = batch.len(), "cannot write read positions: {e}");
            state.positions.put_back(batch);
            return;
        }
    };
    // Counted once per room and position: the readers of a busy room mostly read the same newest
    // entry.
    let mut counts: HashMap<(String, String, u64), Option<Counted>> = HashMap::new();
    let mut moves = Vec::new();
    for ((reading, wrote), moved) in batch.into_iter().zip(moved) {
        if !moved {
            continue;
        }
        let at = reading.at;
        let counted = if wrote {
            // Read up to one's own message: nothing after it is counted here (each device counts
            // what comes after as it comes), so writing costs no count.
            Some(Counted {
                last_seq: at.seq,
                epoch: at.epoch.clone(),
                unread: 0,
            })
        } else {
            let key = (at.room.clone(), at.epoch.clone(), at.seq);
            match counts.get(&key) {
                Some(counted) => counted.clone(),
                None => match counted(state, &at).await {
                    Ok(counted) => counts.entry(key).or_insert(counted).clone(),
                    Err(e) => {
                        tracing::warn!(room = %at.room, "cannot count what is unread: {e}");
                        continue;
                    }
                },
            }
        };
        // The room is gone: nothing to tell.
        let Some(counted) = counted else {
            continue;
        };
        let moved = told(state, &reading.account, at, &counted).await;
        state
            .hub
            .tell_account(&moved.account, &Frame::of(&moved.frame()));
        state.positions.moved(&moved);
        moves.push(moved);
    }
    if let Some(cluster) = &state.cluster {
        cluster.read(moves);
    }
}

/// What is unread after a position: the room's last entry, its history now, and the messages.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Counted {
    last_seq: u64,
    epoch: String,
    unread: u32,
}

/// The room's last entry and what is unread after `at`; `None` if there is no such room. Read up
/// to the newest entry this node has handed on (what most positions are), nothing is left to count.
async fn counted(state: &AppState, at: &ReadAt) -> Result<Option<Counted>, crate::log::LogError> {
    if state.rooms.epoch(&at.room).as_deref() == Some(at.epoch.as_str())
        && state.rooms.last_seq(&at.room) == Some(at.seq)
    {
        return Ok(Some(Counted {
            last_seq: at.seq,
            epoch: at.epoch.clone(),
            unread: 0,
        }));
    }
    let unread = state.rooms.unread(&at.room, &at.epoch, at.seq).await?;
    Ok(unread.map(|unread| Counted {
        last_seq: unread.last_seq,
        epoch: unread.epoch,
        unread: u32::try_from(unread.messages).unwrap_or(u32::MAX),
    }))
}

/// `account`'s position `at` as told: with what is unread after it (`counted`), and how much of
/// that mentions them (looked up only when something is unread).
async fn told(state: &AppState, account: &str, at: ReadAt, counted: &Counted) -> Moved {
    let mentions = match counted.unread {
        0 => 0,
        _ => {
            // A position of another history: every mention of the one now is after it.
            let after = if at.epoch == counted.epoch { at.seq } else { 0 };
            state
                .sessions
                .people
                .mentions_after(account, &at.room, &counted.epoch, after)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(room = %at.room, "cannot count a person's mentions: {e}");
                    0
                })
        }
    };
    Moved {
        account: account.to_owned(),
        room: at.room,
        epoch: at.epoch,
        seq: at.seq,
        last_seq: counted.last_seq,
        unread: counted.unread,
        mentions,
    }
}

/// Tells every connection of `account`, on every node, where they stand in `room` now (a message
/// there just mentioned them: the devices with the room open count its messages themselves, not
/// whom they mention).
pub async fn tell_now(state: &AppState, account: &str, room: &str) {
    let people = &state.sessions.people;
    let at = match people.read_positions(account).await {
        Ok(positions) => positions.into_iter().find(|at| at.room == room),
        Err(e) => {
            tracing::warn!(%room, "cannot read a person's position: {e}");
            return;
        }
    };
    let at = at.unwrap_or_else(|| ReadAt {
        room: room.to_owned(),
        epoch: String::new(),
        seq: 0,
    });
    let counted = match counted(state, &at).await {
        Ok(Some(counted)) => counted,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(%room, "cannot count what is unread: {e}");
            return;
        }
    };
    let moved = told(state, account, at, &counted).await;
    state
        .hub
        .tell_account(&moved.account, &Frame::of(&moved.frame()));
    state.positions.moved(&moved);
    if let Some(cluster) = &state.cluster {
        cluster.read(vec![moved]);
    }
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
/// is unread there. Counted off the connection's task, so the welcome is not held up, and at most
/// [`COUNTING_AT_ONCE`] connections at a time.
pub fn welcome(state: &AppState, queue: Arc<crate::hub::SendQueue>, account: &str, role: Role) {
    let (state, account) = (state.clone(), account.to_owned());
    tokio::spawn(async move {
        let Ok(_turn) = state.positions.counting.acquire().await else {
            return;
        };
        // Gone while it waited (only this task holds its queue), or closing: nobody to tell.
        if Arc::strong_count(&queue) == 1 || queue.closing().is_some() {
            return;
        }
        state.positions.let_in(&account, role);
        let rooms = match counted_rooms(&state, &account, role).await {
            Ok(rooms) => rooms,
            Err(e) => {
                tracing::warn!("cannot list the rooms a person counts: {e}");
                return;
            }
        };
        for at in rooms {
            match counted(&state, &at).await {
                Ok(Some(counted)) => {
                    let moved = told(&state, &account, at, &counted).await;
                    queue.push(Frame::of(&moved.frame()));
                    state.positions.moved(&moved);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(room = %at.room, "cannot count what is unread: {e}"),
            }
        }
    });
}

/// "Mark all as read", for `account`: every room they count, at its newest entry. One at a time per
/// person (another sent meanwhile is dropped, so a burst of frames cannot each have every room
/// counted), and it waits its turn with the connections counting their rooms.
pub async fn read_all(state: &AppState, account: &str, role: Role) {
    /// Lets the person's next one in, however this one ends.
    struct Running<'a>(&'a Positions, &'a str);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            self.0
                .reading_all
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(self.1);
        }
    }
    let positions = &state.positions;
    let started = positions
        .reading_all
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(account.to_owned());
    if !started {
        return;
    }
    let _running = Running(positions, account);
    if let Ok(_turn) = positions.counting.acquire().await {
        read_all_now(state, account, role).await;
    }
}

async fn read_all_now(state: &AppState, account: &str, role: Role) {
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
                let newest = now.last_seq;
                state
                    .positions
                    .set(account, &at.room, &now.epoch, newest, Move::Read);
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
        let taken = |positions: &Positions| {
            let mut taken = positions.take();
            taken.sort_by(|a, b| a.0.account.cmp(&b.0.account));
            taken
        };
        positions.set("ann", "r", "e", 5, Move::Read);
        positions.set("ann", "r", "e", 3, Move::Read);
        positions.set("bob", "r", "e", 1, Move::Wrote);
        let got = taken(&positions);
        assert_eq!(
            got.iter()
                .map(|(r, wrote)| (r.account.as_str(), r.at.seq, *wrote))
                .collect::<Vec<_>>(),
            [("ann", 5, false), ("bob", 1, true)]
        );
        // A rewind replaces, and the forward move after it still rewinds from what was stored.
        positions.set("ann", "r", "e", 9, Move::Read);
        positions.set("ann", "r", "e", 2, Move::Rewind);
        positions.set("ann", "r", "e", 4, Move::Read);
        let got = taken(&positions);
        assert_eq!((got[0].0.at.seq, got[0].0.rewind), (4, true));
        // Another epoch replaces whatever its seq.
        positions.set("ann", "r", "e", 9, Move::Read);
        positions.set("ann", "r", "f", 1, Move::Read);
        assert_eq!(taken(&positions)[0].0.at, at("r", "f", 1));
        // What could not be written goes back, behind anything newer.
        positions.set("ann", "r", "e", 7, Move::Read);
        let old = Reading {
            account: "ann".into(),
            at: at("r", "e", 6),
            rewind: false,
        };
        positions.put_back(vec![(old, false)]);
        assert_eq!(taken(&positions)[0].0.at.seq, 7);
        assert!(positions.take().is_empty());
    }
}
