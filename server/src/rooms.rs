//! What every transport does with a room, written once and free of any wire ([`Rooms`]): connect,
//! join with a cursor (the answer and the replay, with the room's live messages held meanwhile), go
//! live, send, read a page of history, make and forget rooms. The WebSocket (`transport::ws`),
//! Server-Sent Events (`transport::sse`), the HTTP API (`transport::api`) and the server-rendered
//! page (`pages`) each speak their own format around it.
//!
//! Imports run one way: transports → this → {log, hub}. A transport never reaches the log or the
//! hub but through here (the types it handles, a connection's `Handle` and the log's errors, are
//! re-exported from here); `server/tests/integration/layers.rs` fails if one does. How a join stays
//! gapless, and the paging rules, are in docs/ARCHITECTURE.md.

use app::protocol::{
    ChatMessage, Cursor, Entry, HISTORY_ON_JOIN, Identity, JoinMode, MAX_REPLAY, Quote, ServerMsg,
};

use futures::{StreamExt, TryStreamExt};

use crate::{frame::Frame, hub::Hub, hub::JoinPoint, log::Log};
pub use crate::{
    hub::{Drain, Handle, QUEUE_FRAMES, ReadOnly, RoomStats, SendQueue},
    log::{Appending, Content, Lease, LogError, NewEntry, Version, Versions},
};

/// Every room, as the transports reach them. Cheap to clone: handles to the log and the hub.
#[derive(Clone)]
pub struct Rooms {
    log: Log,
    hub: Hub,
}

impl Rooms {
    pub fn new(log: Log, hub: Hub) -> Self {
        Self { log, hub }
    }

    /// A new connection, a person's or an observer's (`None`), in no room yet.
    pub fn connect(&self, user: Option<Identity>) -> Handle {
        self.hub.connect(user)
    }

    /// A person's connection, let in by `session` (its stored key): it is closed when the
    /// session ends ([`crate::hub::Hub::end_sessions`]).
    pub fn connect_signed_in(&self, user: Identity, session: &str) -> Handle {
        self.hub.connect_signed_in(user, session)
    }

    /// The room list as a connection that just opened gets it.
    pub fn list(&self) -> ServerMsg {
        self.hub.rooms()
    }

    /// Every room the log holds (in a cluster, every node's), by name, with its people and last
    /// seq: the hub's for a room this node follows, the log's for one it does not.
    pub async fn stats(&self) -> Result<Vec<RoomStats>, LogError> {
        let mut here: std::collections::HashMap<String, RoomStats> = self
            .hub
            .room_stats()
            .into_iter()
            .map(|stats| (stats.room.clone(), stats))
            .collect();
        let lines = self.log.all_rooms().await?.into_iter().map(|room| {
            let line = here.remove(&room).unwrap_or(RoomStats {
                room,
                members: 0,
                last_seq: 0,
            });
            async move {
                if self.log.follows(&line.room) {
                    return Ok(line);
                }
                let last_seq = self.log.last_stored(&line.room).await?;
                Ok(RoomStats { last_seq, ..line })
            }
        });
        // A few dozen asked at once: a cluster may hold thousands of rooms this node does not
        // follow, one round trip each.
        futures::stream::iter(lines)
            .buffered(32)
            .try_collect()
            .await
    }

    /// Every room the log holds (in a cluster, every node's), by name.
    pub async fn names(&self) -> Result<Vec<String>, LogError> {
        self.log.all_rooms().await
    }

    /// The room's epoch, if it exists.
    pub fn epoch(&self, room: &str) -> Option<String> {
        self.log.epoch(room)
    }

    /// The room made current here (in a cluster, followed: see `Log::follow`), and its epoch and
    /// the seq of its last published entry, if it exists: everything up to that seq is committed,
    /// so a page rendered from the log and the live stream meet there. Hold the lease while reading.
    pub async fn open(&self, room: &str) -> Result<Option<(String, u64, Lease)>, LogError> {
        let Some((epoch, lease)) = self.log.follow(room, false).await? else {
            return Ok(None);
        };
        Ok(Some((epoch, self.hub.last_seq(room).unwrap_or(0), lease)))
    }

    /// In a cluster, stops following the rooms nobody here has read for `linger` (see
    /// `Log::let_go_unused`).
    pub fn let_go_unused(&self, linger: std::time::Duration) -> Vec<String> {
        let hub = &self.hub;
        self.log
            .let_go_unused(linger, &|room| hub.subscriber_count(room) > 0)
    }

    /// Stores a message (making its room if needed); its seq once it is published.
    pub async fn append(&self, message: NewEntry) -> Result<u64, LogError> {
        self.log.append(message).await
    }

    /// Hands a message to the log; the answer comes once it is stored and published.
    pub fn submit(&self, message: NewEntry) -> Result<Appending, LogError> {
        self.log.submit(message)
    }

    /// The room's entries with seqs `from..=to` that are still held, oldest first.
    pub async fn range(
        &self,
        room: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<app::protocol::Entry>, LogError> {
        self.log.range(room, from, to).await
    }

    /// Whether joining `room` would make it.
    pub async fn is_new(&self, room: &str) -> Result<bool, LogError> {
        self.log.is_new(room).await
    }

    /// How many rooms there are (in a cluster, all nodes' together).
    pub async fn count(&self) -> Result<usize, LogError> {
        self.log.room_count().await
    }

    /// The room's epoch, making the room if it does not exist.
    pub async fn ensure(&self, room: &str) -> Result<String, LogError> {
        self.log.ensure_room(room).await
    }

    /// See [`join`].
    pub async fn join(
        &self,
        conn: &mut Handle,
        room: &str,
        since: Option<Cursor>,
    ) -> Result<Joining, LogError> {
        join(&self.log, conn, room, since).await
    }

    /// See [`replay`].
    pub async fn replay(
        &self,
        room: &str,
        epoch: &str,
        live_after: u64,
        since: Option<Cursor>,
    ) -> Result<Replay, LogError> {
        replay(&self.log, room, epoch, live_after, since).await
    }

    /// See [`page`].
    pub async fn page(&self, room: &str, at: PageAt, limit: u64) -> Result<Page, LogError> {
        page(&self.log, &self.hub, room, at, limit).await
    }

    /// The seq of the last entry the hub handed on in `room`, if it knows the room.
    pub fn last_seq(&self, room: &str) -> Option<u64> {
        self.hub.last_seq(room)
    }

    /// See [`Log::unread`].
    pub async fn unread(
        &self,
        room: &str,
        epoch: &str,
        seq: u64,
    ) -> Result<Option<crate::log::Unread>, LogError> {
        self.log.unread(room, epoch, seq).await
    }

    /// The texts message `seq` of `room` has had (see `Log::versions`).
    pub async fn versions(&self, room: &str, seq: u64) -> Result<Option<Versions>, LogError> {
        self.log.versions(room, seq).await
    }

    /// Deletes `room` and everything in it (an admin's doing): from the log, then from the hub,
    /// which closes the sockets in it (on other nodes, the log's note of it does). Whether the log
    /// held it.
    pub async fn drop_room(&self, room: &str) -> Result<bool, LogError> {
        let held = self.log.drop_room(room).await?;
        let closed = self.hub.drop_room(room);
        tracing::info!(room, held, closed, "deleted a room");
        Ok(held)
    }

    /// See [`forget_unused`].
    pub async fn forget_unused(&self, rooms: Vec<String>) {
        forget_unused(&self.log, &self.hub, rooms).await
    }
}

/// A join under way: the answer and what to replay, to be sent in this order before
/// [`go_live`] lets the room's live messages through.
pub struct Joining {
    pub epoch: String,
    pub mode: JoinMode,
    /// The first seq replayed.
    pub first_seq: u64,
    /// The last seq replayed: live messages continue from the next.
    pub last_seq: u64,
    /// The `message` frames of `first_seq..=last_seq`, oldest first.
    pub replay: Vec<Frame>,
}

impl Joining {
    /// The `joined` answer, sent before the replay.
    pub fn joined(&self, room: &str) -> ServerMsg {
        ServerMsg::Joined {
            room: room.to_owned(),
            epoch: self.epoch.clone(),
            mode: self.mode,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
        }
    }
}

/// Joins `conn` to `room` from `since`: from here the room's live messages wait in the hub for
/// this connection, and the replay is taken up to exactly where they start — from the frames the
/// hub kept of the room's newest messages when it starts among them, else from the log. Send
/// [`Joining::joined`] and the replay, then call [`go_live`]. On an error the connection is out
/// of the room again.
pub async fn join(
    log: &Log,
    conn: &mut Handle,
    room: &str,
    since: Option<Cursor>,
) -> Result<Joining, LogError> {
    // Made if needed, and followed here (in a cluster) before the join takes its point.
    let (epoch, lease) = log.follow(room, true).await?.ok_or(LogError::Unavailable)?;
    // A cursor ahead of this node (in a cluster, a message stored through another node reaches
    // this one a moment later) is not of another history: wait until this node has it, before
    // the join takes its point, rather than answer `reset`.
    if let Some(cursor) = &since
        && cursor.epoch == epoch
        && conn.last_seq(room).unwrap_or(0) < cursor.seq
    {
        log.catch_up(room, cursor.seq).await?;
    }
    // The replay starts here at the earliest (the room's oldest held message can only move it on).
    let earliest = |live_after| replay_start(since.as_ref(), &epoch, live_after, 1).1;
    let JoinPoint { live_after, recent } = conn.join(room, earliest);
    // A reader of the room in the hub now: that keeps it followed from here.
    drop(lease);
    let joining = async {
        let first_held = log.first_seq(room).await?.unwrap_or(live_after + 1);
        let (mode, from) = replay_start(since.as_ref(), &epoch, live_after, first_held);
        let replay = match recent {
            Some(frames) => {
                let skip = from.saturating_sub(earliest(live_after));
                let skip = usize::try_from(skip).unwrap_or(usize::MAX);
                frames.into_iter().skip(skip).collect()
            }
            None => log
                .range(room, from, live_after)
                .await?
                .into_iter()
                .map(|entry| Frame::of_entry(&entry))
                .collect(),
        };
        Ok(Joining {
            epoch: epoch.clone(),
            mode,
            first_seq: from,
            last_seq: live_after,
            replay,
        })
    };
    let joined = joining.await;
    if joined.is_err() {
        conn.leave(room);
    }
    joined
}

/// Lets the room's held live messages through, after the replay; returns the room's people, to
/// be sent next.
pub fn go_live(conn: &Handle, room: &str) -> ServerMsg {
    conn.release(room)
}

/// What a join replays of a room.
pub struct Replay {
    pub mode: JoinMode,
    /// The first seq replayed.
    pub first_seq: u64,
    /// The messages from `first_seq` up to where the live ones start, oldest first (entries of
    /// other types are not shown as lines).
    pub messages: Vec<ChatMessage>,
    /// Whether the room still holds messages older than `first_seq`.
    pub has_older: bool,
}

/// What a join with `since` replays of `room` (in `epoch`), whose live messages start after
/// `live_after`: the rest after the cursor (`full`), or from the oldest still held or at most
/// [`MAX_REPLAY`] back (`partial`), or the latest [`HISTORY_ON_JOIN`] for a cursor of another epoch
/// (`reset`) or none (`latest`). The server-rendered page shows what a join without a cursor would.
pub async fn replay(
    log: &Log,
    room: &str,
    epoch: &str,
    live_after: u64,
    since: Option<Cursor>,
) -> Result<Replay, LogError> {
    let first_held = log.first_seq(room).await?.unwrap_or(live_after + 1);
    let (mode, from) = replay_start(since.as_ref(), epoch, live_after, first_held);
    let mut messages = messages_of(log.range(room, from, live_after).await?);
    quote_originals(log, room, &mut messages).await?;
    Ok(Replay {
        mode,
        first_seq: from,
        messages,
        has_older: from > first_held,
    })
}

/// How a join with `since` relates to `room`'s history, and the seq its replay starts at, when the
/// live messages start after `live_after` and the oldest message held is `first_held` (a larger
/// `first_held` can only move the start on).
fn replay_start(
    since: Option<&Cursor>,
    epoch: &str,
    live_after: u64,
    first_held: u64,
) -> (JoinMode, u64) {
    let latest = live_after
        .saturating_sub(HISTORY_ON_JOIN as u64 - 1)
        .max(first_held);
    match since {
        None => (JoinMode::Latest, latest),
        Some(cursor) if cursor.epoch != epoch || cursor.seq > live_after => {
            (JoinMode::Reset, latest)
        }
        Some(cursor) => {
            let wanted = cursor.seq + 1;
            let floor = first_held.max(live_after.saturating_sub(MAX_REPLAY - 1));
            if wanted < floor {
                (JoinMode::Partial, floor)
            } else {
                (JoinMode::Full, wanted)
            }
        }
    }
}

/// Where a page of history is taken from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageAt {
    /// The newest messages.
    Latest,
    /// The newest messages with a seq below this.
    Before(u64),
    /// The oldest messages with a seq above this.
    After(u64),
    /// The oldest messages with a seq above `after` and below `before`.
    Between { after: u64, before: u64 },
}

/// A page of a room's history, oldest first.
#[derive(Debug, PartialEq, Eq)]
pub struct Page {
    pub messages: Vec<ChatMessage>,
    /// Whether the room holds messages older than the first of these.
    pub has_older: bool,
    /// Whether the room holds messages newer than the last of these (that have been published).
    pub has_newer: bool,
}

/// Up to `limit` (≥ 1) messages of `room` at `at`, among those published so far (a message
/// committed but not yet fanned out is not on any page yet, so a page never runs ahead of the live
/// stream). The one set of paging rules behind the WebSocket's `history` and the API's `GET
/// …/messages`; each transport only caps `limit`. The room is current here (in a cluster,
/// followed): the WebSocket's reader has joined it, the API holds the lease `Rooms::open` gave.
pub async fn page(
    log: &Log,
    hub: &Hub,
    room: &str,
    at: PageAt,
    limit: u64,
) -> Result<Page, LogError> {
    let limit = limit.max(1);
    let last = hub.last_seq(room).unwrap_or(0);
    let first_held = log.first_seq(room).await?.unwrap_or(last + 1);
    let (after, before) = match at {
        PageAt::Latest => (None, None),
        PageAt::Before(before) => (None, Some(before)),
        PageAt::After(after) => (Some(after), None),
        PageAt::Between { after, before } => (Some(after), Some(before)),
    };
    let upper = before.map_or(last, |b| b.saturating_sub(1)).min(last);
    let lowest = first_held.max(1);
    let limit_len = usize::try_from(limit).unwrap_or(usize::MAX);
    // A window of `limit` seqs at a time, on from where the last ended, until it holds `limit`
    // messages or reaches the end: entries of other types take seqs but are not lines.
    let mut messages: Vec<ChatMessage> = Vec::new();
    let (mut from, mut to) = match after {
        Some(after) => {
            let from = after.saturating_add(1).max(lowest);
            (from, upper.min(from.saturating_add(limit - 1)))
        }
        None => (upper.saturating_sub(limit - 1).max(lowest), upper),
    };
    let (mut first, mut last_read) = (from, to);
    while from <= to {
        let read = messages_of(log.range(room, from, to).await?);
        if after.is_some() {
            messages.extend(read);
            last_read = to;
            if messages.len() >= limit_len || to >= upper {
                break;
            }
            from = to + 1;
            to = upper.min(from.saturating_add(limit - 1));
        } else {
            messages.splice(0..0, read);
            first = from;
            if messages.len() >= limit_len || from <= lowest {
                break;
            }
            to = from - 1;
            from = to.saturating_sub(limit - 1).max(lowest);
        }
    }
    // The last window may hold more than were wanted: the ones nearest the start are kept.
    if messages.len() > limit_len {
        if after.is_some() {
            messages.truncate(limit_len);
            last_read = messages.last().map_or(last_read, |m| m.seq);
        } else {
            messages.drain(..messages.len() - limit_len);
            first = messages.first().map_or(first, |m| m.seq);
        }
    }
    quote_originals(log, room, &mut messages).await?;
    let read_any = first <= last_read;
    Ok(Page {
        has_older: first > first_held && first_held <= last,
        has_newer: last_read < last && read_any,
        messages,
    })
}

/// Gives each reply in `messages` the quote of its original as it is now (author, start of text,
/// or none if it was deleted): from the page itself, or read from the log. A reader that holds the
/// original shows its own copy; this is for one that does not (a page's first look, a page of
/// history). Not stored with the reply, so a deletion leaves no quote of its words behind.
async fn quote_originals(
    log: &Log,
    room: &str,
    messages: &mut [ChatMessage],
) -> Result<(), LogError> {
    let mut wanted: Vec<u64> = messages
        .iter()
        .filter_map(|m| m.reply_to.as_ref().map(|q| q.seq))
        .filter(|seq| !messages.iter().any(|m| m.seq == *seq))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut originals: Vec<ChatMessage> = Vec::new();
    for seq in wanted {
        originals.extend(messages_of(log.range(room, seq, seq).await?));
    }
    let quotes: Vec<Option<Quote>> = messages
        .iter()
        .map(|m| {
            let seq = m.reply_to.as_ref()?.seq;
            let original = messages.iter().chain(&originals).find(|o| o.seq == seq)?;
            Some(Quote::of(original))
        })
        .collect();
    for (m, quote) in messages.iter_mut().zip(quotes) {
        if let Some(quote) = quote {
            m.reply_to = Some(Box::new(quote));
        }
    }
    Ok(())
}

/// The messages among `entries`, for what shows messages as lines (a page, a page of history).
fn messages_of(entries: Vec<Entry>) -> Vec<ChatMessage> {
    entries
        .into_iter()
        .filter_map(Entry::into_message)
        .collect()
}

/// Forgets rooms the hub found unused (never a message, nobody in them for a while: made by a
/// visit, a typo, or a flood of joins), first in the log, then in the hub. Should someone join one
/// in between, the hub keeps its room and the log makes it again, with a new epoch, at their join
/// or first message: nothing was in it to lose.
pub async fn forget_unused(log: &Log, hub: &Hub, rooms: Vec<String>) {
    for room in rooms {
        match log.forget_unused(&room).await {
            Ok(true) => {
                hub.forget(&room);
                tracing::info!(room = %room, "forgot a room that never held a message");
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(room = %room, "cannot forget an unused room: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use app::protocol::{Identity, MessageKind};

    use super::*;
    use crate::log::NewEntry;

    /// A log and a hub wired as `lib.rs` wires them, in a fresh folder, with `n` messages in
    /// `general` and retention `keep`.
    async fn room_of(name: &str, n: u64, keep: u64) -> (Log, Hub, PathBuf) {
        let dir = std::env::temp_dir().join(format!("herald-rooms-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let hub = Hub::new();
        let publish = hub.clone();
        let (log, _) = Log::open_sqlite(&dir, keep, 2, move |published| {
            if let crate::log::Published::Entry(entry) = published {
                publish.publish(entry)
            }
        })
        .expect("open");
        for i in 1..=n {
            log.append(NewEntry::message(
                "general".into(),
                Identity {
                    id: "ann".into(),
                    name: "Ann".into(),
                },
                format!("k{i}"),
                format!("m{i}"),
                MessageKind::User,
            ))
            .await
            .expect("stored");
        }
        (log, hub, dir)
    }

    fn seqs(messages: &[ChatMessage]) -> Vec<u64> {
        messages.iter().map(|m| m.seq).collect()
    }

    fn frame_seqs(frames: &[Frame]) -> Vec<u64> {
        frames
            .iter()
            .map(|frame| match frame.kind() {
                crate::frame::Kind::Entry { seq, .. } => seq,
                other => panic!("not a message: {other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_replay_is_the_same_whether_the_hub_still_had_it_or_the_log_is_read() {
        let (log, hub, dir) = room_of("recent", 300, 1_000).await;
        let epoch = log.epoch("general").expect("epoch");
        let mut conn = hub.connect(None);
        let from = |seq| {
            Some(Cursor {
                epoch: epoch.clone(),
                seq,
            })
        };
        // From the hub's newest frames (a few missed), and from the log (more than it keeps).
        for (cursor, first) in [(295, 296), (100, 101)] {
            let joining = join(&log, &mut conn, "general", from(cursor))
                .await
                .expect("join");
            assert_eq!(joining.mode, JoinMode::Full);
            let stored: Vec<Frame> = log
                .range("general", first, 300)
                .await
                .expect("range")
                .into_iter()
                .map(|e| Frame::of_entry(&e))
                .collect();
            assert_eq!(
                frame_seqs(&joining.replay),
                (first..=300).collect::<Vec<_>>()
            );
            assert!(joining.replay == stored, "the same bytes from {cursor}");
            conn.leave("general");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_join_says_how_it_relates_to_the_cursor_and_replays_up_to_the_live_stream() {
        let (log, hub, dir) = room_of("join", 60, 1_000).await;
        let epoch = log.epoch("general").expect("epoch");
        let mut conn = hub.connect(None);
        let cursor = |seq| {
            Some(Cursor {
                epoch: epoch.clone(),
                seq,
            })
        };

        let latest = join(&log, &mut conn, "general", None).await.expect("join");
        assert_eq!(latest.mode, JoinMode::Latest);
        assert_eq!((latest.first_seq, latest.last_seq), (11, 60));
        assert_eq!(frame_seqs(&latest.replay), (11..=60).collect::<Vec<_>>());
        conn.leave("general");

        let full = join(&log, &mut conn, "general", cursor(55))
            .await
            .expect("join");
        assert_eq!(full.mode, JoinMode::Full);
        assert_eq!(frame_seqs(&full.replay), (56..=60).collect::<Vec<_>>());
        conn.leave("general");

        let up_to_date = join(&log, &mut conn, "general", cursor(60))
            .await
            .expect("join");
        assert_eq!(up_to_date.mode, JoinMode::Full);
        assert!(up_to_date.replay.is_empty());
        conn.leave("general");

        // A cursor from another lifetime of the room, or from its future: start afresh.
        for stale in [
            Some(Cursor {
                epoch: "another".into(),
                seq: 3,
            }),
            cursor(61),
        ] {
            let reset = join(&log, &mut conn, "general", stale).await.expect("join");
            assert_eq!(reset.mode, JoinMode::Reset);
            assert_eq!(reset.first_seq, 11);
            conn.leave("general");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_cursor_older_than_what_is_held_gets_a_partial_replay_from_the_oldest_held() {
        let (log, hub, dir) = room_of("partial", 30, 10).await;
        let epoch = log.epoch("general").expect("epoch");
        let mut conn = hub.connect(None);
        let since = Some(Cursor { epoch, seq: 5 });
        let partial = join(&log, &mut conn, "general", since).await.expect("join");
        assert_eq!(partial.mode, JoinMode::Partial);
        assert_eq!(frame_seqs(&partial.replay), (21..=30).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn pages_go_back_and_forth_with_the_same_rules_and_say_what_lies_beyond() {
        let (log, hub, dir) = room_of("pages", 25, 20).await; // Seqs 6..=25 are held.
        let page = |at, limit| page(&log, &hub, "general", at, limit);

        let newest = page(PageAt::Latest, 10).await.expect("page");
        assert_eq!(seqs(&newest.messages), (16..=25).collect::<Vec<_>>());
        assert!(newest.has_older && !newest.has_newer);

        let before = page(PageAt::Before(16), 10).await.expect("page");
        assert_eq!(seqs(&before.messages), (6..=15).collect::<Vec<_>>());
        assert!(
            !before.has_older && before.has_newer,
            "6 is the oldest held"
        );

        let after = page(PageAt::After(10), 5).await.expect("page");
        assert_eq!(seqs(&after.messages), (11..=15).collect::<Vec<_>>());
        assert!(after.has_older && after.has_newer);
        let between = page(
            PageAt::Between {
                after: 10,
                before: 13,
            },
            5,
        )
        .await
        .expect("page");
        assert_eq!(seqs(&between.messages), vec![11, 12]);

        // Past either end: an empty page, and nothing beyond that end.
        let past = page(PageAt::After(25), 5).await.expect("page");
        assert_eq!(
            past,
            Page {
                messages: Vec::new(),
                has_older: true,
                has_newer: false
            }
        );
        let gone = page(PageAt::Before(6), 5).await.expect("page");
        assert!(gone.messages.is_empty() && !gone.has_older);
        // After something no longer held: from the oldest held.
        let from_start = page(PageAt::After(1), 3).await.expect("page");
        assert_eq!(seqs(&from_start.messages), vec![6, 7, 8]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
