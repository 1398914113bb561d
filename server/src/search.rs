//! Search (docs/SEARCH.md): an index of every retained message's words, kept beside the log off the
//! append's path, and the page that asks it. The index is a SQLite file of its own
//! (`search.db` in the data folder) that can be thrown away at any time: it is rebuilt from the log.
//!
//! - What is stored changes the index a moment later: a room that took entries is marked, and
//!   [`run`] reads its new entries from the log every [`EVERY`] (from a watermark per room and
//!   epoch) — a message is added, an edit replaces its words, a deletion takes it out.
//! - Words in any script: [`index_text`] leaves Latin, Cyrillic and the like to FTS5's `unicode61`
//!   (case and accents folded), and writes runs of Chinese, Japanese and Korean characters as their
//!   overlapping pairs, so that two-character words (東京, 会議) are found; [`match_expression`]
//!   turns what a person typed into the same, every term quoted (nothing they type is FTS syntax).
//! - Newest first without a sort: a message's row id is its time (`sent_at` ms × 1024 and a
//!   small number), so FTS5 walks its matches backwards in time and stops at a page; a date filter
//!   is a range of row ids.
//! - Who may read what is asked twice: the query only looks in the open rooms and the person's
//!   own private rooms and conversations, and each result's room goes through the door
//!   (`access::open`) before it is shown.

use std::{
    collections::HashMap,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use app::protocol::{Change, Entry};
use rusqlite::{Connection, OptionalExtension, params};

use crate::log::{Log, LogError};

mod words;
pub use words::{index_text, match_expression};

/// The index's file in the data folder.
pub const SEARCH_FILE: &str = "search.db";

/// How often the rooms that took entries are read into the index: what is said is found within
/// about this long.
pub const EVERY: Duration = Duration::from_millis(250);

/// Most entries, and most bytes of text, read for one round (one transaction) over all rooms: the
/// round is held in memory while it is written, and messages may be long (60 000 bytes each).
const ROUND: usize = 20_000;
const ROUND_BYTES: usize = 2 << 20;

/// Most text read of one room for a round, and how many entries are read from the log at a time.
const BATCH_BYTES: usize = 512 << 10;
const CHUNK: u64 = 64;

/// What one room took since its watermark ([`Search::read_batch`]).
struct Batch {
    room: String,
    epoch: String,
    /// The watermark once written: the last seq read.
    to: u64,
    entries: Vec<Entry>,
    /// About how much memory the entries hold: their text, counted as they are read.
    bytes: usize,
    /// The room holds more than was read.
    more: bool,
}

impl Batch {
    fn extend(&mut self, entries: Vec<Entry>) {
        self.bytes += entries.iter().map(text_len).sum::<usize>();
        self.entries.extend(entries);
    }
}

/// An entry's text, the most of what it holds in memory.
fn text_len(entry: &Entry) -> usize {
    match entry {
        Entry::Message(message) => message.body.len(),
        Entry::Change(change) => match &change.change {
            Change::Edit { body } => body.len(),
            _ => 0,
        },
        Entry::Other(other) => other.frame.len(),
    }
}

/// The index's layout (`PRAGMA user_version`): 2 has each message's room and author among its words
/// ([`filter_words`]).
const INDEX_VERSION: i64 = 2;

/// Most entries of one room read into the index at a time (the room is looked at again at once
/// if it holds more).
const BATCH: u64 = 2000;

/// Results on a page.
pub const PAGE: usize = 20;

/// A row id's room for messages sent in the same millisecond: `sent_at × ROW_SPREAD + n`.
const ROW_SPREAD: i64 = 1024;

/// On a cluster, how often every room is looked at again: the other nodes' notes of the rooms
/// they stored in are not stored, and one can be lost (a reconnect to Redis).
pub const SWEEP: Duration = Duration::from_secs(60);

/// The index and the rooms waiting to be read into it. Cheap to clone.
#[derive(Clone)]
pub struct Search {
    /// The indexer's connection (it writes).
    db: Arc<Mutex<Connection>>,
    /// The searches' (WAL lets them read while a batch is written): a search never waits for
    /// the indexer.
    reader: Arc<Mutex<Connection>>,
    rooms: Arc<Mutex<Marked>>,
    /// Each room's watermark as written (`marks`), kept here too: looked at for every room every
    /// round, it is not asked of the file each time.
    marks: Arc<Mutex<HashMap<String, (String, u64)>>>,
    /// How many entries each room keeps (`--retention`): what the log no longer holds leaves the
    /// index too, or a search would find messages their room cannot show.
    retention: u64,
    /// Whether every room the log held as the server started has been read into the index.
    caught_up: Arc<AtomicBool>,
}

/// The rooms to read into the index next round, each with where its log is if that is known.
#[derive(Default)]
struct Marked {
    dirty: HashMap<String, Option<Logged>>,
    /// Rooms that took entries on this node, to their last seq: on a cluster the other nodes are
    /// told of them, to read them into their own indexes (`cluster::What::Logged`).
    stored_here: HashMap<String, u64>,
}

/// Where a room's log is, as the node that stored in it said: its epoch and last seq. Known, the
/// room's new entries are read without asking the store where it ends first (on a cluster, one
/// round trip to Redis a room a round fewer).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Logged {
    pub room: String,
    pub epoch: String,
    pub last: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("the search index: {0}")]
    Index(#[from] rusqlite::Error),
    #[error("the log: {0}")]
    Log(#[from] LogError),
    #[error("the search index's task stopped")]
    Stopped,
}

/// One message found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Its place in the index's order (newest first): the page after this one starts below it.
    pub row: i64,
    pub room: String,
    pub seq: u64,
    pub author: String,
    pub name: String,
    pub sent_at: u64,
    pub body: String,
}

/// What a search asks: the words, and where, by whom and when.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub words: String,
    /// Only this room.
    pub room: Option<String>,
    /// Only this author (an account id).
    pub author: Option<String>,
    /// Sent at or after, before (ms since the Unix epoch).
    pub after_ms: Option<u64>,
    pub before_ms: Option<u64>,
    /// The next page: results older than this row.
    pub below: Option<i64>,
}

impl Search {
    /// Opens (or makes) the index in `data_dir`. Every room the log holds is looked at once, to
    /// bring the index to where the log is (after a restart, a restore, or a deleted index file).
    pub fn open(data_dir: &Path, retention: u64) -> Result<Self, SearchError> {
        let db = Connection::open(data_dir.join(SEARCH_FILE))?;
        // An index of an earlier layout is made again from the log (it is only ever a copy).
        let version: i64 = db.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if version != INDEX_VERSION {
            db.execute_batch(
                "DROP TABLE IF EXISTS words; DROP TABLE IF EXISTS docs; DROP TABLE IF EXISTS marks;",
            )?;
            db.pragma_update(None, "user_version", INDEX_VERSION)?;
        }
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS docs (
                 id INTEGER PRIMARY KEY,
                 room TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 author TEXT NOT NULL,
                 name TEXT NOT NULL,
                 sent_at INTEGER NOT NULL,
                 body TEXT NOT NULL,
                 UNIQUE (room, seq)
             );
             CREATE VIRTUAL TABLE IF NOT EXISTS words USING fts5(
                 text, content = '', contentless_delete = 1,
                 tokenize = 'unicode61 remove_diacritics 2'
             );
             CREATE TABLE IF NOT EXISTS marks (
                 room TEXT PRIMARY KEY,
                 epoch TEXT NOT NULL,
                 seq INTEGER NOT NULL
             );",
        )?;
        // What is deleted leaves the file: pages overwritten (`secure_delete`), and FTS5 takes a
        // deleted row's words out of its index at once rather than at a later merge — a deleted
        // message's words must not be found in the data folder (as the log's are not).
        db.execute_batch(
            "PRAGMA secure_delete = ON;
             INSERT INTO words (words, rank) VALUES ('secure-delete', 1);",
        )?;
        let reader = Connection::open(data_dir.join(SEARCH_FILE))?;
        Ok(Self {
            db: Arc::new(Mutex::new(db)),
            reader: Arc::new(Mutex::new(reader)),
            rooms: Arc::default(),
            marks: Arc::default(),
            retention,
            caught_up: Arc::default(),
        })
    }

    fn marked(&self) -> std::sync::MutexGuard<'_, Marked> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `room`'s watermark: its epoch and the last seq read into the index.
    fn mark_of(&self, room: &str) -> Option<(String, u64)> {
        let marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        marks.get(room).cloned()
    }

    /// `room` took entry `seq` on this node: it is read into the index shortly (and, on a
    /// cluster, into the other nodes').
    pub fn stored(&self, room: &str, seq: u64) {
        let mut marked = self.marked();
        match marked.stored_here.get_mut(room) {
            Some(last) => *last = (*last).max(seq),
            None => {
                marked.stored_here.insert(room.to_owned(), seq);
            }
        }
    }

    /// `rooms` changed (a room was deleted, or is looked at again): read into the index shortly,
    /// asking the store where each ends.
    pub fn heard(&self, rooms: impl IntoIterator<Item = String>) {
        let mut marked = self.marked();
        for room in rooms {
            marked.dirty.insert(room, None);
        }
    }

    /// `room` is read again next round (it held more than a round, or could not be read).
    fn again(&self, room: String, logged: Option<Logged>) {
        let mut marked = self.marked();
        match logged {
            Some(logged) => mark(&mut marked.dirty, logged),
            None => {
                marked.dirty.insert(room, None);
            }
        }
    }

    /// Another node stored in these rooms: read into the index shortly, up to where it said.
    pub fn heard_logged(&self, rooms: Vec<Logged>) {
        let mut marked = self.marked();
        for logged in rooms {
            mark(&mut marked.dirty, logged);
        }
    }

    /// Whether the index holds every room the log held when the server started (a new node, or
    /// an index thrown away, reads the whole history first): until then a search may miss
    /// older messages.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Relaxed)
    }

    /// Runs `work` on the indexer's connection off the runtime's threads.
    async fn with_db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, SearchError> {
        Self::on(self.db.clone(), work).await
    }

    async fn on<T: Send + 'static>(
        db: Arc<Mutex<Connection>>,
        work: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, SearchError> {
        tokio::task::spawn_blocking(move || {
            let mut db = db.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut db)
        })
        .await
        .map_err(|_| SearchError::Stopped)?
        .map_err(SearchError::from)
    }

    /// What `room` took since its watermark, read from the log (at most [`BATCH`] entries), to be
    /// written with the other rooms' ([`Search::write`]); `None` if there is nothing new.
    async fn read_batch(
        &self,
        log: &Log,
        room: &str,
        logged: Option<Logged>,
    ) -> Result<Option<Batch>, SearchError> {
        let mark = self.mark_of(room);
        // Where the log ends: as the node that stored said, in the history the index holds; or
        // else as the store has it (on a cluster, rooms this node does not follow too).
        let stored = match logged {
            Some(logged)
                if mark
                    .as_ref()
                    .is_none_or(|(epoch, _)| *epoch == logged.epoch) =>
            {
                Some((logged.epoch, logged.last))
            }
            _ => log.stored_to(room).await?,
        };
        let Some((epoch, last)) = stored else {
            // The room is gone (deleted, or never held an entry): so are its words.
            if mark.is_some() {
                self.forget(room).await?;
            }
            return Ok(None);
        };
        // Another history (a restore): its words are read again from its start.
        let from = match mark {
            Some((at, seq)) if at == epoch => seq,
            Some(_) => {
                self.forget(room).await?;
                0
            }
            None => 0,
        };
        if last <= from {
            return Ok(None);
        }
        // Read a little at a time, until a batch's worth of entries or of text: messages may be
        // long, and what is read is held until it is written.
        let end = last.min(from.saturating_add(BATCH));
        let mut batch = Batch {
            room: room.to_owned(),
            epoch,
            to: from,
            entries: Vec::new(),
            bytes: 0,
            more: false,
        };
        while batch.to < end && batch.bytes < BATCH_BYTES {
            let to = end.min(batch.to + CHUNK);
            batch.extend(log.range(room, batch.to + 1, to).await?);
            batch.to = to;
        }
        batch.more = batch.to < last;
        Ok(Some(batch))
    }

    /// Writes `batches` into the index in one transaction, with each room's new watermark: one
    /// FTS5 segment a round rather than one a room (a segment is merged again and again as the
    /// index grows: many small ones were most of indexing's cost).
    async fn write(&self, batches: Vec<Batch>) -> Result<(), SearchError> {
        let (retention, marks) = (self.retention, self.marks.clone());
        self.with_db(move |db| {
            let tx = db.transaction()?;
            let mut wiped = false;
            for batch in &batches {
                for entry in &batch.entries {
                    wiped |= apply(&tx, entry)?;
                }
                // What the log keeps: the room's entries after its last `retention` seqs (the
                // log trims by seq as it appends). Those before leave the index, by the room's
                // (room, seq) index: only what was just trimmed is there to find.
                let kept_after = batch.to.saturating_sub(retention);
                if kept_after > 0 {
                    tx.prepare_cached(
                        "DELETE FROM words WHERE rowid IN
                             (SELECT id FROM docs WHERE room = ?1 AND seq <= ?2)",
                    )?
                    .execute(params![batch.room, kept_after as i64])?;
                    tx.prepare_cached("DELETE FROM docs WHERE room = ?1 AND seq <= ?2")?
                        .execute(params![batch.room, kept_after as i64])?;
                }
                tx.prepare_cached(
                    "INSERT INTO marks (room, epoch, seq) VALUES (?1, ?2, ?3)
                     ON CONFLICT (room) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq",
                )?
                .execute(params![batch.room, batch.epoch, batch.to as i64])?;
            }
            tx.commit()?;
            let mut marks = marks.lock().unwrap_or_else(|e| e.into_inner());
            for batch in batches {
                marks.insert(batch.room, (batch.epoch, batch.to));
            }
            // A deleted message's words leave the write-ahead log too, as they leave the log's.
            if wiped {
                db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
            }
            Ok(())
        })
        .await
    }

    /// Takes every word of `room` out of the index.
    pub async fn forget(&self, room: &str) -> Result<(), SearchError> {
        let room = room.to_owned();
        let marks = self.marks.clone();
        self.with_db(move |db| {
            marks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&room);
            let tx = db.transaction()?;
            tx.execute(
                "DELETE FROM words WHERE rowid IN (SELECT id FROM docs WHERE room = ?1)",
                params![room],
            )?;
            tx.execute("DELETE FROM docs WHERE room = ?1", params![room])?;
            tx.execute("DELETE FROM marks WHERE room = ?1", params![room])?;
            tx.commit()?;
            // Nor in the write-ahead log.
            db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        })
        .await
    }

    /// The messages matching `query` in `rooms` (the open rooms, and these private ones),
    /// newest first: at most [`PAGE`] and one more (there is a next page if it is there).
    pub async fn find(
        &self,
        query: &Query,
        private_rooms: Vec<String>,
    ) -> Result<Vec<Found>, SearchError> {
        let Some(expression) = match_expression(&query.words) else {
            return Ok(Vec::new());
        };
        // The room and the person asked for are words of the index: FTS5 walks only the messages
        // that have all of them, rather than every match of a common word looking for a room's.
        let (room, author) = filter_words(query.room.as_deref(), query.author.as_deref());
        let expression = format!("{expression}{room}{author}");
        let query = query.clone();
        Self::on(self.reader.clone(), move |db| {
            find(db, &expression, &query, &private_rooms)
        })
        .await
    }
}

/// The SQL of [`Search::find`]: FTS5 walks the matches backwards by row id (by time); the room,
/// author and date filters are checked as it goes, until a page is full.
fn find(
    db: &Connection,
    expression: &str,
    query: &Query,
    private_rooms: &[String],
) -> Result<Vec<Found>, rusqlite::Error> {
    let below = query
        .below
        .unwrap_or(i64::MAX)
        .min(query.before_ms.map_or(i64::MAX, row_floor));
    let above = query.after_ms.map_or(0, row_floor);
    let private = serde_json::to_string(private_rooms).unwrap_or_else(|_| "[]".into());
    let mut statement = db.prepare_cached(
        "SELECT d.id, d.room, d.seq, d.author, d.name, d.sent_at, d.body
         FROM words JOIN docs d ON d.id = words.rowid
         WHERE words MATCH ?1 AND words.rowid < ?2 AND words.rowid >= ?3
           AND (?4 IS NULL OR d.room = ?4)
           AND (?5 IS NULL OR d.author = ?5)
           AND (substr(d.room, 1, 1) NOT IN ('~', '@')
                OR d.room IN (SELECT value FROM json_each(?6)))
         ORDER BY words.rowid DESC
         LIMIT ?7",
    )?;
    let rows = statement.query_map(
        params![
            expression,
            below,
            above,
            query.room,
            query.author,
            private,
            (PAGE + 1) as i64
        ],
        |row| {
            Ok(Found {
                row: row.get(0)?,
                room: row.get(1)?,
                seq: row.get::<_, i64>(2)? as u64,
                author: row.get(3)?,
                name: row.get(4)?,
                sent_at: row.get::<_, i64>(5)? as u64,
                body: row.get(6)?,
            })
        },
    )?;
    rows.collect()
}

/// What FTS5 indexes for a message: its words ([`index_text`]) and, as words no one can type (a
/// prefix and hex digits), its room and its author, so that a search in one room or by one person
/// is the intersection of two lists, not a walk through every match.
fn indexed(body: &str, room: &str, author: &str) -> String {
    let (room, author) = filter_words(Some(room), Some(author));
    format!("{}{room}{author}", index_text(body))
}

/// The index's words for a room and an author, each with a leading space (empty when absent):
/// `xr` and the room's name in hex, `xa` and the author's id in hex.
fn filter_words(room: Option<&str>, author: Option<&str>) -> (String, String) {
    let word = |prefix: &str, name: Option<&str>| {
        name.map_or_else(String::new, |name| {
            format!(" {prefix}{}", crate::ids::hex(name.as_bytes()))
        })
    };
    (word("xr", room), word("xa", author))
}

/// The index's row for message `seq` of `room`, if it is indexed.
fn doc_id(
    tx: &rusqlite::Transaction<'_>,
    room: &str,
    seq: u64,
) -> Result<Option<i64>, rusqlite::Error> {
    tx.prepare_cached("SELECT id FROM docs WHERE room = ?1 AND seq = ?2")?
        .query_row(params![room, seq as i64], |row| row.get(0))
        .optional()
}

/// The first row id of messages sent at `ms`.
fn row_floor(ms: u64) -> i64 {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| ms.checked_mul(ROW_SPREAD))
        .unwrap_or(i64::MAX)
}

/// One entry read into the index; true if it took a deleted message's words out.
fn apply(tx: &rusqlite::Transaction<'_>, entry: &Entry) -> Result<bool, rusqlite::Error> {
    match entry {
        Entry::Message(message) => {
            if message.deleted.is_some() || message.body.is_empty() {
                return Ok(false);
            }
            // Read again after a failed write: already there.
            if doc_id(tx, &message.room, message.seq)?.is_some() {
                return Ok(false);
            }
            // The first free row id of its millisecond. (Every statement run per message is
            // prepared once per connection: parsing SQL was a good part of indexing's cost.)
            let floor = row_floor(message.sent_at);
            let taken: Option<i64> = tx
                .prepare_cached("SELECT max(id) FROM docs WHERE id >= ?1 AND id < ?2")?
                .query_row(params![floor, floor.saturating_add(ROW_SPREAD)], |row| {
                    row.get(0)
                })?;
            let id = taken.map_or(floor, |max| max + 1);
            tx.prepare_cached(
                "INSERT INTO docs (id, room, seq, author, name, sent_at, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                id,
                message.room,
                message.seq as i64,
                message.author.id,
                message.author.name,
                message.sent_at as i64,
                message.body
            ])?;
            tx.prepare_cached("INSERT INTO words (rowid, text) VALUES (?1, ?2)")?
                .execute(params![
                    id,
                    indexed(&message.body, &message.room, &message.author.id)
                ])?;
            Ok(false)
        }
        Entry::Change(change) => {
            let Some(id) = doc_id(tx, &change.room, change.target)? else {
                return Ok(false);
            };
            match &change.change {
                Change::Edit { body } => {
                    let author: String =
                        tx.query_row("SELECT author FROM docs WHERE id = ?1", [id], |row| {
                            row.get(0)
                        })?;
                    tx.execute("DELETE FROM words WHERE rowid = ?1", params![id])?;
                    tx.execute(
                        "INSERT INTO words (rowid, text) VALUES (?1, ?2)",
                        params![id, indexed(body, &change.room, &author)],
                    )?;
                    tx.execute("UPDATE docs SET body = ?2 WHERE id = ?1", params![id, body])?;
                    // An edit's earlier words stay in the log too (its history).
                    Ok(false)
                }
                Change::Delete => {
                    tx.execute("DELETE FROM words WHERE rowid = ?1", params![id])?;
                    tx.execute("DELETE FROM docs WHERE id = ?1", params![id])?;
                    Ok(true)
                }
                Change::React { .. } => Ok(false),
            }
        }
        Entry::Other(_) => Ok(false),
    }
}

/// Marks `logged.room` to be read up to `logged.last` (the furthest said of its epoch), unless it is
/// marked to be asked of the store already.
fn mark(dirty: &mut HashMap<String, Option<Logged>>, logged: Logged) {
    match dirty.get_mut(&logged.room) {
        Some(None) => {}
        Some(Some(known)) if known.epoch == logged.epoch => {
            known.last = known.last.max(logged.last)
        }
        // Two histories said at once (a restore): the store says which is now.
        Some(known) => *known = None,
        None => {
            dirty.insert(logged.room.clone(), Some(logged));
        }
    }
}

/// Every room the log holds, and every room the index holds: one the log no longer has (deleted,
/// or a restore from before it was made) is taken out, or its words would be found in a room of
/// the same name made later.
async fn every_room(search: &Search, log: &Log) {
    match log.all_rooms().await {
        Ok(rooms) => search.heard(rooms),
        Err(e) => tracing::warn!("cannot list the rooms to index: {e}"),
    }
    let indexed = search
        .with_db(|db| {
            let mut marks = db.prepare("SELECT room, epoch, seq FROM marks")?;
            let marks = marks.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get(1)?,
                    row.get::<_, i64>(2)? as u64,
                ))
            })?;
            marks.collect::<Result<Vec<(String, String, u64)>, _>>()
        })
        .await;
    match indexed {
        Ok(indexed) => {
            let rooms: Vec<String> = indexed.iter().map(|(room, ..)| room.clone()).collect();
            let mut marks = search.marks.lock().unwrap_or_else(|e| e.into_inner());
            for (room, epoch, seq) in indexed {
                marks.insert(room, (epoch, seq));
            }
            drop(marks);
            search.heard(rooms);
        }
        Err(e) => tracing::warn!("cannot list the rooms indexed: {e}"),
    }
}

/// Tells the other nodes of a cluster which rooms' logs changed here (`Cluster::logged`).
pub type TellOthers = Box<dyn Fn(Vec<Logged>) + Send>;

/// Reads the rooms that took entries into the index every [`EVERY`], until `stop`; first every
/// room the log holds. On a cluster (`others`), every node keeps an index of every room
/// (docs/SEARCH.md): the rooms stored in here are told to the other nodes each round, and every
/// room is looked at again each [`SWEEP`].
pub async fn run(
    search: Search,
    log: Log,
    others: Option<TellOthers>,
    stop: tokio_util::sync::CancellationToken,
) {
    every_room(&search, &log).await;
    let mut swept = tokio::time::Instant::now();
    loop {
        let rooms: Vec<(String, Option<Logged>)> = {
            let mut marked = search.marked();
            let stored_here = std::mem::take(&mut marked.stored_here);
            let mut logged = Vec::with_capacity(stored_here.len());
            for (room, last) in stored_here {
                // Known here: this node just stored in it.
                if let Some(epoch) = log.epoch(&room) {
                    logged.push(Logged { room, epoch, last });
                } else {
                    marked.dirty.insert(room, None);
                }
            }
            for logged in &logged {
                mark(&mut marked.dirty, logged.clone());
            }
            if let (Some(others), false) = (&others, logged.is_empty()) {
                others(logged);
            }
            std::mem::take(&mut marked.dirty).into_iter().collect()
        };
        if others.is_some() && swept.elapsed() >= SWEEP {
            swept = tokio::time::Instant::now();
            every_room(&search, &log).await;
        }
        // Behind (a room held more than a batch, or the round was full): on again at once, not
        // after a pause — a busy room must not fall further behind each time.
        let (mut behind, mut failed) = (false, false);
        let (mut batches, mut taken, mut bytes) = (Vec::new(), 0, 0);
        for (room, logged) in rooms {
            if taken >= ROUND || bytes >= ROUND_BYTES {
                behind = true;
                search.again(room, logged);
                continue;
            }
            match search.read_batch(&log, &room, logged.clone()).await {
                Ok(None) => {}
                Ok(Some(batch)) => {
                    if batch.more {
                        behind = true;
                        search.again(room, logged);
                    }
                    taken += batch.entries.len();
                    bytes += batch.bytes;
                    batches.push(batch);
                }
                Err(e) => {
                    tracing::warn!(%room, "cannot index a room: {e}");
                    failed = true;
                    search.again(room, logged);
                }
            }
        }
        let rooms: Vec<String> = batches.iter().map(|b| b.room.clone()).collect();
        if !batches.is_empty()
            && let Err(e) = search.write(batches).await
        {
            tracing::warn!("cannot write to the search index: {e}");
            failed = true;
            search.heard(rooms);
        }
        if !behind && !failed {
            search.caught_up.store(true, Ordering::Relaxed);
        }
        // A failure (the log or the index unavailable) is tried again after the pause.
        let pause = if behind && !failed {
            Duration::ZERO
        } else {
            EVERY
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every expression made from what someone typed is one SQLite's FTS5 accepts.
    #[test]
    fn fts5_accepts_every_expression_made() {
        let db = Connection::open_in_memory().expect("db");
        db.execute_batch(
            "CREATE VIRTUAL TABLE words USING fts5(text, tokenize = 'unicode61 remove_diacritics 2');
             INSERT INTO words (text) VALUES ('a test');",
        )
        .expect("table");
        for typed in [
            "NEAR(a b)",
            "a AND",
            "\"",
            "^x",
            "col:x",
            "a-b",
            "東",
            "ｘ東京y",
            "-",
            "a' b",
        ] {
            if let Some(expression) = match_expression(typed) {
                let counted: Result<i64, _> = db.query_row(
                    "SELECT count(*) FROM words WHERE words MATCH ?1",
                    params![expression],
                    |row| row.get(0),
                );
                assert!(counted.is_ok(), "{typed:?} → {expression:?}: {counted:?}");
            }
        }
    }
}
