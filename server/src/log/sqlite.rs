//! The room log on one node: SQLite (compiled in, WAL mode) in `--data-dir`. Each room has a
//! dense `seq` counting from 1 and an `epoch` that names this lifetime of its history; both survive
//! restarts. One writer thread owns the write connection: it takes every append that is waiting,
//! stores the whole batch in one transaction (one fsync however many messages), and only after the
//! commit hands the new messages to `publish`, in seq order, and answers the senders. So a broadcast message can never be taken back by a crash, and
//! durability costs one commit per batch, not per message.
//!
//! Sending the same `(author, client_id)` twice stores one message: the second append is answered with
//! the first one's seq and is not broadcast again.
//!
//! A change to a message (edit, deletion, reaction) is checked against the message inside the
//! batch's transaction ([`ChatMessage::apply`]) and, if it applies, stored as the room's next entry
//! while the message's row gets its new `state`. A deletion empties the text of the message and of
//! each of its edits in place; `secure_delete` zeroes what they held, and the writer checkpoints the
//! WAL into the file (truncating it) once it is idle, so the words are gone from the disk too.

use std::{
    collections::{HashMap, HashSet},
    hash::BuildHasher,
    path::Path,
    sync::{Arc, Mutex, mpsc as std_mpsc},
    time::{SystemTime, UNIX_EPOCH},
};

use app::protocol::{Change, ChatMessage, Entry, ErrorCode, Identity, MessageKind};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::oneshot;

use super::{Appending, Content, Epochs, LogError, NewEntry, Record, State};

/// The database file inside `--data-dir`.
pub const DB_FILE: &str = "herald.db";

/// Most appends stored in one transaction: bounds how long one commit holds the senders' acks.
const BATCH_MAX: usize = 1024;

/// Cheap to clone: a handle to the writer thread and the read connection.
#[derive(Clone)]
pub struct SqliteLog {
    ops: std_mpsc::Sender<Op>,
    /// Reads (history) go through their own connection; in WAL mode they never wait for the writer.
    reader: Arc<Mutex<Connection>>,
    epochs: Epochs,
}

/// What the writer thread is asked to do.
enum Op {
    Append(Append),
    /// Create the room if it does not exist; answer its epoch.
    EnsureRoom {
        room: String,
        reply: oneshot::Sender<Result<String, LogError>>,
    },
    /// Delete the room if it never held a message; answer whether it did.
    ForgetUnused {
        room: String,
        reply: oneshot::Sender<Result<bool, LogError>>,
    },
    /// Delete the room and everything in it; answer whether it was there.
    DropRoom {
        room: String,
        reply: oneshot::Sender<Result<bool, LogError>>,
    },
    /// Commit a one-row write and answer whether it worked: the writer is alive, between batches,
    /// and the disk takes writes (for the readiness check).
    Ping(oneshot::Sender<Result<(), LogError>>),
}

struct Append {
    msg: NewEntry,
    reply: oneshot::Sender<Result<u64, LogError>>,
}

/// A committed batch: each sender's reply with what storing its message did, in seq order.
type Committed = Vec<(oneshot::Sender<Result<u64, LogError>>, Stored)>;

/// What storing one append did.
enum Stored {
    New(Entry),
    /// The same `(author, client_id)` was stored before, as this seq (or, for a reaction that
    /// was already so, the seq that made it so).
    Duplicate(u64),
    /// A change or reply its target does not take: nothing stored.
    Refused(ErrorCode),
}

impl SqliteLog {
    /// Opens (or creates) the log in `data_dir`, keeping the last `retention` messages of each room,
    /// and starts the writer thread (with `cache_mib` MiB of page cache). Each message it stores is
    /// handed to `publish` after its commit, in seq order per room, and only then acknowledged
    /// (`lib.rs` wires `publish` to the hub; the log knows nothing of it). Also returns each room's
    /// last seq as stored, for whatever `publish` feeds to start from.
    pub fn open(
        data_dir: &Path,
        retention: u64,
        cache_mib: u32,
        mut publish: impl FnMut(&Entry) + Send + 'static,
    ) -> Result<(Self, Vec<(String, u64)>), LogError> {
        let path = data_dir.join(DB_FILE);
        let open = |path: &Path| {
            let conn = Connection::open(path).map_err(|source| LogError::Open {
                path: path.to_owned(),
                source,
            })?;
            // WAL: readers and the writer do not block each other. FULL: a commit is on disk before
            // we ack it (batching keeps that to one fsync per batch).
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            // Checkpoint every ~40 MB of WAL rather than SQLite's 4 MB: a checkpoint writes each page
            // once however often it changed, and with a thousand busy rooms the hot pages (each
            // room's newest rows and index entries) changed in nearly every commit — at 12 000
            // messages/s the writer made nine page writes per message, mostly checkpointing.
            conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
            Ok::<_, LogError>(conn)
        };
        // The log holds every message: made readable by Herald's user alone (SQLite gives its WAL
        // and shared-memory files the same mode). One made before that rule is left, and said.
        match super::backup::create_private_file(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = std::fs::metadata(&path)
                    && meta.permissions().mode() & 0o077 != 0
                {
                    tracing::warn!(
                        "{} can be read by other users (mode {:o}): chmod 600 it",
                        path.display(),
                        meta.permissions().mode() & 0o777
                    );
                }
            }
            Err(source) => return Err(LogError::Create { path, source }),
        }
        let writer = open(&path)?;
        // SQLite's default cache is 2 MiB: the hot pages of a thousand busy rooms (each room's
        // newest rows and dedupe entries) did not fit, and the writer re-read them from the file on
        // every batch. The reader keeps the default.
        writer.pragma_update(None, "cache_size", -i64::from(cache_mib) * 1024)?;
        // What a deletion frees is overwritten with zeros, not left in free space (the deleted
        // words must not stay in the file).
        writer.pragma_update(None, "secure_delete", "ON")?;
        migrate(&writer)?;
        let reader = open(&path)?;

        let rooms = load_rooms(&writer)?;
        let epochs: HashMap<String, String> = rooms
            .iter()
            .map(|(name, room)| (name.clone(), room.epoch.clone()))
            .collect();
        let last_seqs = rooms
            .iter()
            .map(|(name, room)| (name.clone(), room.last_seq))
            .collect();

        let known = Epochs::default();
        for (room, epoch) in &epochs {
            known.insert(room, epoch);
        }
        let epochs = known;
        let (ops, queue) = std_mpsc::channel();
        let writer_epochs = epochs.clone();
        // Committed batches are published from a task on the runtime, not from the writer thread:
        // waking thousands of connection tasks from inside the runtime is far cheaper than from a
        // thread outside it (and the writer can start on the next batch meanwhile).
        let (committed, mut to_publish) = tokio::sync::mpsc::unbounded_channel::<Committed>();
        tokio::spawn(async move {
            while let Some(batch) = to_publish.recv().await {
                for (reply, outcome) in batch {
                    let answer = match outcome {
                        Stored::New(entry) => {
                            publish(&entry);
                            Ok(entry.seq())
                        }
                        Stored::Duplicate(seq) => Ok(seq),
                        Stored::Refused(code) => Err(LogError::Refused(code)),
                    };
                    let _ = reply.send(answer);
                }
            }
        });
        std::thread::Builder::new()
            .name("herald-log-writer".into())
            .spawn(move || {
                write_loop(
                    writer,
                    queue,
                    rooms,
                    writer_epochs,
                    retention.max(1),
                    committed,
                )
            })
            .map_err(LogError::Thread)?;
        let log = Self {
            ops,
            reader: Arc::new(Mutex::new(reader)),
            epochs,
        };
        Ok((log, last_seqs))
    }

    /// Stores a message (or finds it already stored) and returns its seq. Resolves only after the
    /// commit, and after the message was handed to `publish`.
    pub async fn append(&self, msg: NewEntry) -> Result<u64, LogError> {
        self.submit(msg)?.await.map_err(|_| LogError::Closed)?
    }

    /// Hands a message to the writer at once; the answer says what [`Self::append`] would return.
    /// One caller's appends are stored, and answered, in the order they were submitted: a
    /// connection can keep several in flight without waiting for each commit.
    pub fn submit(&self, msg: NewEntry) -> Result<Appending, LogError> {
        let (reply, answer) = oneshot::channel();
        self.ops
            .send(Op::Append(Append { msg, reply }))
            .map_err(|_| LogError::Closed)?;
        Ok(answer)
    }

    /// The room's epoch, creating the room (with a fresh epoch) if it does not exist yet.
    pub async fn ensure_room(&self, room: &str) -> Result<String, LogError> {
        if let Some(epoch) = self.epoch(room) {
            return Ok(epoch);
        }
        let room = room.to_owned();
        self.ask(|reply| Op::EnsureRoom { room, reply }).await
    }

    /// Deletes `room` if it never held a message (its row is all there is of it); says whether the
    /// log is without it now. A join after it makes the room again, with a new epoch.
    pub async fn forget_unused(&self, room: &str) -> Result<bool, LogError> {
        let room = room.to_owned();
        self.ask(|reply| Op::ForgetUnused { room, reply }).await
    }

    /// Deletes `room` and every entry it holds, whatever it holds (an admin deleting a room); says
    /// whether it was there. A join after it makes the room again, with a new epoch.
    pub async fn drop_room(&self, room: &str) -> Result<bool, LogError> {
        let room = room.to_owned();
        self.ask(|reply| Op::DropRoom { room, reply }).await
    }

    /// Hands the writer thread an operation between batches and waits for its answer.
    async fn ask<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, LogError>>) -> Op,
    ) -> Result<T, LogError> {
        let (reply, answer) = oneshot::channel();
        self.ops.send(op(reply)).map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    /// The oldest seq the room still holds (retention deletes older ones), if it holds any.
    pub async fn first_seq(&self, room: &str) -> Result<Option<u64>, LogError> {
        let room = room.to_owned();
        self.read(move |conn| {
            let first: Option<i64> = conn
                .prepare_cached("SELECT MIN(seq) FROM messages WHERE room = ?1")?
                .query_row([room], |row| row.get(0))?;
            Ok(first.map(|seq| seq as u64))
        })
        .await
    }

    /// The entries of `room` with `from <= seq <= to`, oldest first, as stored: each message as
    /// posted, with its state beside it (`Log::range` makes them what readers get).
    pub(crate) async fn records(
        &self,
        room: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<Record>, LogError> {
        let room = room.to_owned();
        self.read(move |conn| {
            let records = read_counted(conn, &room, from, to)?;
            Ok(records.into_iter().map(|(record, _)| record).collect())
        })
        .await
    }

    /// The seq of the room's last entry as stored (0 if none, or no such room).
    pub async fn last_stored(&self, room: &str) -> Result<u64, LogError> {
        let room = room.to_owned();
        self.read(move |conn| {
            let last: Option<i64> = conn
                .prepare_cached(
                    "SELECT MAX(last_seq, COALESCE((SELECT MAX(seq) FROM messages WHERE room = ?1), 0))
                     FROM rooms WHERE name = ?1",
                )?
                .query_row([room], |row| row.get(0))
                .optional()?;
            Ok(last.map_or(0, |last| last as u64))
        })
        .await
    }

    /// See [`super::Log::unread`]: the messages up to the last entry and up to the position, each
    /// from one row's `others`, less those deleted since the position (the changed rows, by their
    /// own index, `messages_changed`).
    pub async fn unread(
        &self,
        room: &str,
        epoch: &str,
        seq: u64,
    ) -> Result<Option<super::Unread>, LogError> {
        let (room, epoch) = (room.to_owned(), epoch.to_owned());
        self.read(move |conn| {
            let Some((now, last_seq)) = conn
                .prepare_cached(
                    "SELECT epoch, MAX(last_seq, COALESCE((SELECT MAX(seq) FROM messages WHERE room = ?1), 0))
                     FROM rooms WHERE name = ?1",
                )?
                .query_row([&room], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))
                .optional()?
            else {
                return Ok(None);
            };
            let after = if now == epoch { sql_int(seq) } else { 0 };
            let messages_to = |sql: &str, at: i64| -> Result<Option<i64>, LogError> {
                Ok(conn
                    .prepare_cached(sql)?
                    .query_row(params![room, at], |row| row.get(0))
                    .optional()?)
            };
            let total = messages_to(
                "SELECT seq - others FROM messages WHERE room = ?1 AND seq <= ?2 ORDER BY seq DESC LIMIT 1",
                i64::MAX,
            )?
            .unwrap_or(0);
            // Up to the position; if the room holds nothing that old, before its first held entry.
            let before = match messages_to(
                "SELECT seq - others FROM messages WHERE room = ?1 AND seq <= ?2 ORDER BY seq DESC LIMIT 1",
                after,
            )? {
                Some(before) => before,
                None => messages_to(
                    "SELECT seq - others - (entry_type IS NULL) FROM messages
                     WHERE room = ?1 AND seq > ?2 ORDER BY seq LIMIT 1",
                    after,
                )?
                .unwrap_or(total),
            };
            let deleted: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM messages WHERE room = ?1 AND seq > ?2
                     AND state IS NOT NULL AND json_extract(state, '$.d') IS NOT NULL",
                )?
                .query_row(params![room, after], |row| row.get(0))?;
            Ok(Some(super::Unread {
                epoch: now,
                last_seq: last_seq.max(0) as u64,
                messages: (total - before - deleted).max(0) as u64,
            }))
        })
        .await
    }

    /// How many messages the room held once its entry `seq` was stored, if it is still held.
    pub async fn messages_at(&self, room: &str, seq: u64) -> Result<Option<u64>, LogError> {
        let room = room.to_owned();
        self.read(move |conn| {
            let count: Option<i64> = conn
                .prepare_cached("SELECT seq - others FROM messages WHERE room = ?1 AND seq = ?2")?
                .query_row(params![room, sql_int(seq)], |row| row.get(0))
                .optional()?;
            Ok(count.map(|count| count as u64))
        })
        .await
    }

    /// Whether the log works: the writer answers between batches and the read connection answers
    /// a query. Waits behind a batch being committed; the caller bounds how long.
    pub async fn check(&self) -> Result<(), LogError> {
        self.ask(Op::Ping).await?;
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    /// Runs a read on the read connection, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
            query(&conn)
        })
        .await
        .map_err(|_| LogError::Closed)?
    }

    /// Every room's name, sorted.
    pub fn rooms(&self) -> Vec<String> {
        self.epochs.rooms()
    }

    /// The epoch of `room`, if the room exists.
    pub fn epoch(&self, room: &str) -> Option<String> {
        self.epochs.get(room)
    }

    /// Every room is in `epochs` (loaded at open, added as created).
    pub async fn room_count(&self) -> Result<usize, LogError> {
        Ok(self.epochs.len())
    }
}

/// What the writer keeps in memory about a room, mirrored in the `rooms` table.
#[derive(Clone)]
struct RoomState {
    epoch: String,
    last_seq: u64,
    /// How many of its entries up to `last_seq` are not messages (the newest entry's `others`).
    others: u64,
}

/// The readiness check's write: one row, one commit (one fsync), as an append would need.
fn probe_write(conn: &Connection) -> Result<(), LogError> {
    conn.prepare_cached(
        "INSERT INTO health (id, checked_at) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
    )?
    .execute([now_ms() as i64])
    .map_err(|e| {
        tracing::error!("the message log cannot be written: {e}");
        LogError::from(e)
    })?;
    Ok(())
}

fn migrate(conn: &Connection) -> Result<(), LogError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS rooms (
             name       TEXT PRIMARY KEY,
             epoch      TEXT NOT NULL,
             last_seq   INTEGER NOT NULL DEFAULT 0,
             created_at INTEGER NOT NULL
         ) STRICT;
         CREATE TABLE IF NOT EXISTS messages (
             room      TEXT NOT NULL,
             seq         INTEGER NOT NULL,
             author_id   TEXT NOT NULL,
             author_name TEXT NOT NULL,
             client_id   TEXT NOT NULL,
             body        TEXT NOT NULL,
             sent_at     INTEGER NOT NULL,
             PRIMARY KEY (room, seq)
         ) STRICT, WITHOUT ROWID;
         CREATE UNIQUE INDEX IF NOT EXISTS messages_once ON messages (room, author_id, client_id);
         CREATE TABLE IF NOT EXISTS health (
             id         INTEGER PRIMARY KEY CHECK (id = 1),
             checked_at INTEGER NOT NULL
         ) STRICT;",
    )?;
    // Added after the first release: logs written before it get the column, every old message a
    // person's.
    let has_kind = conn
        .prepare("SELECT 1 FROM pragma_table_info('messages') WHERE name = 'kind'")?
        .exists([])?;
    if !has_kind {
        conn.execute_batch("ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'user'")?;
    }
    // Entries of several types (docs/ARCHITECTURE.md, "Entries"): a message has no `entry_type`
    // and no `fields`, and `others` counts the room's entries up to this one that are not messages,
    // so `seq - others` is how many messages the room held then. Every row of a log from before is a
    // message (`others` 0); and a message row costs no byte more than before but two of its header
    // (SQLite stores NULL and 0 without a payload).
    let has_entry_type = conn
        .prepare("SELECT 1 FROM pragma_table_info('messages') WHERE name = 'entry_type'")?
        .exists([])?;
    if !has_entry_type {
        conn.execute_batch(
            "BEGIN;
             ALTER TABLE messages ADD COLUMN entry_type TEXT;
             ALTER TABLE messages ADD COLUMN fields TEXT;
             ALTER TABLE messages ADD COLUMN others INTEGER NOT NULL DEFAULT 0;
             COMMIT;",
        )?;
    }
    // What changes made of a message (`super::State`, JSON); NULL for one never changed.
    let has_state = conn
        .prepare("SELECT 1 FROM pragma_table_info('messages') WHERE name = 'state'")?
        .exists([])?;
    if !has_state {
        conn.execute_batch("ALTER TABLE messages ADD COLUMN state TEXT")?;
    }
    // The messages ever changed (few): what an unread count looks through for deletions.
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS messages_changed ON messages (room, seq) WHERE state IS NOT NULL",
    )?;
    Ok(())
}

fn load_rooms(conn: &Connection) -> Result<HashMap<String, RoomState>, LogError> {
    // A room's last seq is its newest message's (retention always keeps that one). `rooms.last_seq`
    // is not written per batch — that was one more B-tree page per message — and only counts for
    // logs written before that, or rooms without messages (0).
    let mut stmt = conn.prepare(
        "SELECT name, epoch,
                MAX(last_seq, COALESCE((SELECT MAX(seq) FROM messages WHERE room = rooms.name), 0)),
                COALESCE((SELECT others FROM messages WHERE room = rooms.name
                          ORDER BY seq DESC LIMIT 1), 0)
         FROM rooms",
    )?;
    let rooms = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                RoomState {
                    epoch: row.get(1)?,
                    last_seq: row.get::<_, i64>(2)? as u64,
                    others: row.get::<_, i64>(3)? as u64,
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rooms)
}

fn create_room(conn: &Connection, name: &str) -> Result<(), LogError> {
    conn.execute(
        "INSERT OR IGNORE INTO rooms (name, epoch, last_seq, created_at) VALUES (?1, ?2, 0, ?3)",
        params![name, new_epoch(), now_ms() as i64],
    )?;
    Ok(())
}

/// A fresh epoch: random, so a room recreated after its history was lost never reuses one.
pub(super) fn new_epoch() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:016x}", std::hash::RandomState::new().hash_one(nanos))
}

/// The entries of `room` with `from <= seq <= to` in the log open on `conn`, oldest first, each
/// with how many messages the room held once it was stored.
pub(super) fn read_counted(
    conn: &Connection,
    room: &str,
    from: u64,
    to: u64,
) -> rusqlite::Result<Vec<(Record, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, author_id, author_name, client_id, body, sent_at, kind, entry_type, fields,
                seq - others, state
         FROM messages WHERE room = ?1 AND seq >= ?2 AND seq <= ?3 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![room, sql_int(from), sql_int(to)], |row| {
        let record = Record {
            state: state_of(row.get(10)?),
            room: room.to_owned(),
            seq: row.get::<_, i64>(0)? as u64,
            author: Identity {
                id: row.get(1)?,
                name: row.get(2)?,
            },
            client_id: row.get(3)?,
            body: row.get(4)?,
            sent_at: row.get::<_, i64>(5)? as u64,
            kind: MessageKind::from_name(&row.get::<_, String>(6)?),
            entry_type: row.get(7)?,
            fields: row.get(8)?,
        };
        Ok((record, row.get::<_, i64>(9)? as u64))
    })?;
    rows.collect()
}

/// A row's `state` column, read.
fn state_of(json: Option<String>) -> Option<State> {
    json.and_then(|json| serde_json::from_str(&json).ok())
}

/// Message `seq` of `room` as it is now, and its edits' seqs, read in `tx`; none if the room does
/// not hold it or it is not a message.
fn message_now(
    tx: &Transaction<'_>,
    room: &str,
    seq: u64,
) -> rusqlite::Result<Option<(ChatMessage, Vec<u64>)>> {
    let Some((record, _)) = read_counted(tx, room, seq, seq)?.into_iter().next() else {
        return Ok(None);
    };
    let edits = record
        .state
        .as_ref()
        .map(|s| s.edits.clone())
        .unwrap_or_default();
    Ok(record
        .entry()
        .into_message()
        .map(|message| (message, edits)))
}

/// Whether `msg` may be stored as the room's entry `seq`: its target (a reply's original, a
/// change's message) is there and takes it. For a change that applies, the message's new state
/// and whether it was deleted; `Ok(None)` for one that changes nothing (answered with the seq
/// that made it so, stored no more).
enum Checked {
    Store(Option<(u64, State, bool)>),
    Unchanged(u64),
}

fn check_target(
    tx: &Transaction<'_>,
    msg: &NewEntry,
    seq: u64,
    sent_at: u64,
) -> Result<Checked, LogError> {
    let Some(target) = msg.content.target() else {
        return Ok(Checked::Store(None));
    };
    let refused = |code| Err(LogError::Refused(code));
    let Some((mut message, mut edits)) = message_now(tx, &msg.room, target)? else {
        return refused(ErrorCode::NoSuchMessage);
    };
    let Content::Change { change, .. } = &msg.content else {
        // A reply: to a message that is there and not deleted.
        if message.deleted.is_some() {
            return refused(ErrorCode::MessageDeleted);
        }
        return Ok(Checked::Store(None));
    };
    match message.apply(change, (&msg.author, msg.kind), seq, sent_at) {
        Err(refusal) => refused(refusal.code()),
        Ok(false) => Ok(Checked::Unchanged(message.changed.max(message.seq))),
        Ok(true) => {
            let deleted = matches!(change, Change::Delete);
            if matches!(change, Change::Edit { .. }) {
                edits.push(seq);
            }
            Ok(Checked::Store(Some((
                target,
                State::of(&message, edits),
                deleted,
            ))))
        }
    }
}

/// SQLite integers are signed: a bound beyond `i64::MAX` means "no bound", not a negative number.
fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Creates `room` if needed (outside any batch: creating a room is idempotent) and returns its epoch.
fn ensure_room(
    conn: &Connection,
    rooms: &mut HashMap<String, RoomState>,
    epochs: &Epochs,
    room: &str,
) -> Result<String, LogError> {
    if let Some(state) = rooms.get(room) {
        return Ok(state.epoch.clone());
    }
    create_room(conn, room)?;
    let epoch: String =
        conn.query_row("SELECT epoch FROM rooms WHERE name = ?1", [room], |row| {
            row.get(0)
        })?;
    rooms.insert(
        room.to_owned(),
        RoomState {
            epoch: epoch.clone(),
            last_seq: 0,
            others: 0,
        },
    );
    epochs.insert(room, &epoch);
    Ok(epoch)
}

/// Deletes `room` if it never held an entry (in memory and on disk alike; outside any batch, as
/// creating is); true if the log is without it now.
fn forget_unused(
    conn: &Connection,
    rooms: &mut HashMap<String, RoomState>,
    epochs: &Epochs,
    room: &str,
) -> Result<bool, LogError> {
    match rooms.get(room) {
        None => return Ok(true),
        Some(state) if state.last_seq != 0 => return Ok(false),
        Some(_) => {}
    }
    let deleted = conn.execute(
        "DELETE FROM rooms WHERE name = ?1 AND last_seq = 0",
        params![room],
    )?;
    rooms.remove(room);
    epochs.remove(room);
    Ok(deleted == 1)
}

/// Deletes `room` and its entries in one transaction (outside any batch, as creating is), then
/// forgets it here; true if it was there.
fn drop_room(
    conn: &mut Connection,
    rooms: &mut HashMap<String, RoomState>,
    epochs: &Epochs,
    room: &str,
) -> Result<bool, LogError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM messages WHERE room = ?1", params![room])?;
    let deleted = tx.execute("DELETE FROM rooms WHERE name = ?1", params![room])?;
    tx.commit()?;
    rooms.remove(room);
    epochs.remove(room);
    Ok(deleted == 1)
}

/// The writer thread: batch, commit, publish, answer — until every `Log` handle is gone.
fn write_loop(
    mut conn: Connection,
    queue: std_mpsc::Receiver<Op>,
    mut rooms: HashMap<String, RoomState>,
    epochs: Epochs,
    retention: u64,
    committed: tokio::sync::mpsc::UnboundedSender<Committed>,
) {
    // A deletion was committed and its words may still be in the WAL: checkpoint once idle.
    let mut wiped = false;
    loop {
        let first = if wiped {
            match queue.try_recv() {
                Ok(op) => op,
                Err(std_mpsc::TryRecvError::Empty) => {
                    wiped = !checkpoint(&conn);
                    if wiped {
                        // Readers held the WAL: try again shortly, unless work comes first.
                        match queue.recv_timeout(std::time::Duration::from_millis(200)) {
                            Ok(op) => op,
                            Err(std_mpsc::RecvTimeoutError::Timeout) => continue,
                            Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                        }
                    } else {
                        continue;
                    }
                }
                Err(std_mpsc::TryRecvError::Disconnected) => return,
            }
        } else {
            match queue.recv() {
                Ok(op) => op,
                Err(_) => return,
            }
        };
        let mut batch = Vec::new();
        let mut op = Some(first);
        while let Some(current) = op.take() {
            match current {
                Op::Append(append) => batch.push(append),
                Op::EnsureRoom { room, reply } => {
                    let _ = reply.send(ensure_room(&conn, &mut rooms, &epochs, &room));
                }
                Op::ForgetUnused { room, reply } => {
                    let _ = reply.send(forget_unused(&conn, &mut rooms, &epochs, &room));
                }
                Op::DropRoom { room, reply } => {
                    let dropped = drop_room(&mut conn, &mut rooms, &epochs, &room);
                    // Its words may still be in the WAL: checkpointed once idle, as a deletion's.
                    wiped |= matches!(dropped, Ok(true));
                    let _ = reply.send(dropped);
                }
                Op::Ping(reply) => {
                    let _ = reply.send(probe_write(&conn));
                }
            }
            if batch.len() < BATCH_MAX {
                op = queue.try_recv().ok();
            }
        }
        if batch.is_empty() {
            continue;
        }
        // What the batch's rooms were before it: if the commit fails, nothing of the batch happened,
        // in memory either. Only these rooms (copying every room per batch was a measurable cost
        // with a thousand rooms), in a map (a list made a thousand rooms' lookups quadratic).
        let mut before: HashMap<String, Option<RoomState>> = HashMap::new();
        for append in &batch {
            if !before.contains_key(&append.msg.room) {
                let room = append.msg.room.clone();
                let state = rooms.get(&room).cloned();
                before.insert(room, state);
            }
        }
        // IMMEDIATE: the write lock is taken at the start, waiting (`busy_timeout`) while the
        // people store (`people/sqlite.rs`, the file's other writer) holds it. A deferred one
        // that read first could not take it after the other's commit, and would fail at once.
        let stored = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(LogError::from)
            .and_then(|tx| store_batch(tx, &batch, &mut rooms, retention, &mut wiped));
        if stored.is_ok() {
            // Rooms first created by this batch.
            for (name, _) in before.iter().filter(|(_, state)| state.is_none()) {
                if let Some(room) = rooms.get(name)
                    && epochs.get(name).is_none()
                {
                    epochs.insert(name, &room.epoch);
                }
            }
        } else {
            for (name, state) in before {
                match state {
                    Some(state) => rooms.insert(name, state),
                    None => rooms.remove(&name),
                };
            }
        }
        match stored {
            Ok(outcomes) => {
                let replies = batch.into_iter().map(|append| append.reply);
                // Published (then acked) by the task `Log::open` started, in this order.
                let _ = committed.send(replies.zip(outcomes).collect());
            }
            Err(e) => {
                tracing::error!("storing {} messages failed: {e}", batch.len());
                for append in batch {
                    let _ = append.reply.send(Err(LogError::Failed));
                }
            }
        }
    }
}

/// Moves the WAL's content into the file and truncates the WAL: what a deletion wiped is then in
/// neither. Whether it was done (readers in the middle of a read can hold it off).
fn checkpoint(conn: &Connection) -> bool {
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    }) {
        Ok(busy) => busy == 0,
        Err(e) => {
            tracing::warn!("checkpointing the log after a deletion failed: {e}");
            true
        }
    }
}

/// Stores `batch` in `tx`; sets `wiped` if it deleted a message's words.
fn store_batch(
    tx: Transaction<'_>,
    batch: &[Append],
    rooms: &mut HashMap<String, RoomState>,
    retention: u64,
    wiped: &mut bool,
) -> Result<Vec<Stored>, LogError> {
    let sent_at = now_ms();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut touched: HashSet<&str> = HashSet::new();
    {
        let mut find = tx.prepare_cached(
            "SELECT seq FROM messages WHERE room = ?1 AND author_id = ?2 AND client_id = ?3",
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO messages (room, seq, author_id, author_name, client_id, body, sent_at, kind,
                                   entry_type, fields, others)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut set_state =
            tx.prepare_cached("UPDATE messages SET state = ?3 WHERE room = ?1 AND seq = ?2")?;
        let mut wipe =
            tx.prepare_cached("UPDATE messages SET body = '' WHERE room = ?1 AND seq = ?2")?;
        for Append { msg, .. } in batch {
            // Inside the transaction, so a duplicate within this same batch is found too.
            let existing: Option<i64> = find
                .query_row(params![msg.room, msg.author.id, msg.client_id], |row| {
                    row.get(0)
                })
                .optional()?;
            if let Some(seq) = existing {
                outcomes.push(Stored::Duplicate(seq as u64));
                continue;
            }
            // Checked in the transaction too: a change earlier in this batch is seen.
            let next = rooms.get(&msg.room).map_or(1, |room| room.last_seq + 1);
            let changed = match check_target(&tx, msg, next, sent_at) {
                Ok(Checked::Store(changed)) => changed,
                Ok(Checked::Unchanged(seq)) => {
                    outcomes.push(Stored::Duplicate(seq));
                    continue;
                }
                Err(LogError::Refused(code)) => {
                    outcomes.push(Stored::Refused(code));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !rooms.contains_key(&msg.room) {
                create_room(&tx, &msg.room)?;
                let epoch: String = tx.query_row(
                    "SELECT epoch FROM rooms WHERE name = ?1",
                    [&msg.room],
                    |row| row.get(0),
                )?;
                rooms.insert(
                    msg.room.clone(),
                    RoomState {
                        epoch,
                        last_seq: 0,
                        others: 0,
                    },
                );
            }
            let Some(room) = rooms.get_mut(&msg.room) else {
                unreachable!("inserted above")
            };
            room.last_seq += 1;
            if !msg.content.is_message() {
                room.others += 1;
            }
            let record = Record::of(msg, room.last_seq, sent_at);
            insert.execute(params![
                record.room,
                record.seq as i64,
                record.author.id,
                record.author.name,
                record.client_id,
                record.body,
                sent_at as i64,
                record.kind.as_str(),
                record.entry_type,
                record.fields,
                room.others as i64,
            ])?;
            if let Some((target, state, deleted)) = changed {
                // Only JSON of strings and numbers: serializing cannot fail.
                let json = serde_json::to_string(&state).unwrap_or_default();
                set_state.execute(params![record.room, sql_int(target), json])?;
                if deleted {
                    for seq in std::iter::once(target).chain(state.edits.iter().copied()) {
                        wipe.execute(params![record.room, sql_int(seq)])?;
                    }
                    *wiped = true;
                }
            }
            touched.insert(&msg.room);
            outcomes.push(Stored::New(record.entry()));
        }
        let mut trim = tx.prepare_cached("DELETE FROM messages WHERE room = ?1 AND seq <= ?2")?;
        for name in touched {
            let last = rooms.get(name).map_or(0, |room| room.last_seq);
            if last > retention {
                trim.execute(params![name, (last - retention) as i64])?;
            }
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("herald-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn msg(author: &str, client_id: &str, body: &str) -> NewEntry {
        NewEntry::message(
            "general".into(),
            Identity {
                id: author.into(),
                name: author.into(),
            },
            client_id.into(),
            body.into(),
            MessageKind::User,
        )
    }

    fn body(entry: &Entry) -> String {
        entry.message().map(|m| m.body.clone()).unwrap_or_default()
    }

    #[tokio::test]
    async fn a_batch_that_fails_to_commit_leaves_no_trace_and_numbering_goes_on_without_a_gap() {
        let dir = temp_dir("rollback");
        let (log, _) = SqliteLog::open(&dir, 100, 2, |_: &Entry| {}).expect("open");
        assert_eq!(
            log.append(msg("ann", "k1", "first")).await.expect("stored"),
            1
        );
        // Make the next insert fail inside the transaction, as a full disk would.
        let sabotage = Connection::open(dir.join(DB_FILE)).expect("open");
        sabotage
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.body = 'boom'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .expect("trigger");
        let mut new_room = msg("ann", "k2", "boom");
        new_room.room = "elsewhere".into();
        assert!(log.append(msg("ann", "k2", "boom")).await.is_err());
        assert!(log.append(new_room).await.is_err());
        assert_eq!(
            log.epoch("elsewhere"),
            None,
            "a room only the failed batch made is gone"
        );
        // The next message takes seq 2: the failed one left no hole and no copy.
        assert_eq!(
            log.append(msg("ann", "k3", "second"))
                .await
                .expect("stored"),
            2
        );
        let bodies: Vec<String> = log
            .records("general", 1, u64::MAX)
            .await
            .map(Record::entries)
            .expect("read")
            .iter()
            .map(body)
            .collect();
        assert_eq!(bodies, vec!["first", "second"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn each_new_message_is_published_once_in_seq_order_before_its_ack() {
        let dir = temp_dir("publish");
        let published = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
        let seen = published.clone();
        let (log, _) = SqliteLog::open(&dir, 100, 2, move |e: &Entry| {
            if let Ok(mut seen) = seen.lock() {
                seen.push((body(e), e.seq()));
            }
        })
        .expect("open");
        let got = || published.lock().map(|p| p.clone()).unwrap_or_default();
        assert_eq!(
            log.append(msg("ann", "k1", "one")).await.expect("stored"),
            1
        );
        // Acked only once published: whoever reads the hub has it by then.
        assert_eq!(got(), vec![("one".to_string(), 1)]);
        assert_eq!(
            log.append(msg("ann", "k2", "two")).await.expect("stored"),
            2
        );
        // A resend is answered with the first seq and not published again.
        assert_eq!(
            log.append(msg("ann", "k1", "one")).await.expect("stored"),
            1
        );
        assert_eq!(
            log.append(msg("bob", "k1", "three")).await.expect("stored"),
            3
        );
        assert_eq!(
            got(),
            vec![
                ("one".to_string(), 1),
                ("two".to_string(), 2),
                ("three".to_string(), 3)
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn seqs_are_dense_and_duplicates_in_one_batch_are_stored_once() {
        let dir = temp_dir("dense");
        let (log, _) = SqliteLog::open(&dir, 100, 2, |_: &Entry| {}).expect("open");
        // Sent concurrently, so they share batches; two of them carry the same key.
        let appends = (0..20).map(|i| {
            let log = log.clone();
            let key = if i == 19 {
                "k0".to_string()
            } else {
                format!("k{i}")
            };
            async move { log.append(msg("ann", &key, &format!("m{i}"))).await }
        });
        let seqs: Vec<u64> = futures::future::join_all(appends)
            .await
            .into_iter()
            .map(|r| r.expect("stored"))
            .collect();
        let mut unique = seqs[..19].to_vec();
        unique.sort_unstable();
        assert_eq!(unique, (1..=19).collect::<Vec<_>>());
        assert_eq!(seqs[19], seqs[0], "the repeated key gets the first seq");
        assert_eq!(
            log.records("general", 1, u64::MAX)
                .await
                .map(Record::entries)
                .expect("read")
                .len(),
            19
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn history_and_epoch_survive_a_reopen_and_retention_keeps_the_newest() {
        let dir = temp_dir("reopen");
        let epoch = {
            let (log, _) = SqliteLog::open(&dir, 5, 2, |_: &Entry| {}).expect("open");
            for i in 0..8 {
                log.append(msg("ann", &format!("k{i}"), &format!("m{i}")))
                    .await
                    .expect("stored");
            }
            log.epoch("general").expect("general exists")
        };
        let (log, last_seqs) = SqliteLog::open(&dir, 5, 2, |_: &Entry| {}).expect("reopen");
        assert_eq!(last_seqs, vec![("general".to_string(), 8)]);
        assert_eq!(log.epoch("general").as_deref(), Some(epoch.as_str()));
        assert_eq!(log.first_seq("general").await.expect("read"), Some(4));
        let kept: Vec<u64> = log
            .records("general", 1, u64::MAX)
            .await
            .map(Record::entries)
            .expect("read")
            .iter()
            .map(Entry::seq)
            .collect();
        assert_eq!(kept, vec![4, 5, 6, 7, 8]);
        assert_eq!(log.append(msg("ann", "k8", "m8")).await.expect("stored"), 9);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_log_from_before_entries_had_types_reads_as_messages_counted_by_seq() {
        let dir = temp_dir("before-types");
        {
            // The schema of the first release: no kind, no entry type, no count.
            let old = Connection::open(dir.join(DB_FILE)).expect("open");
            old.execute_batch(
                "CREATE TABLE rooms (name TEXT PRIMARY KEY, epoch TEXT NOT NULL,
                     last_seq INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL) STRICT;
                 CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL,
                     author_id TEXT NOT NULL, author_name TEXT NOT NULL, client_id TEXT NOT NULL,
                     body TEXT NOT NULL, sent_at INTEGER NOT NULL, PRIMARY KEY (room, seq))
                     STRICT, WITHOUT ROWID;
                 INSERT INTO rooms VALUES ('general', 'e0', 0, 0);
                 INSERT INTO messages VALUES ('general', 4, 'ann', 'Ann', 'k4', 'four', 1);
                 INSERT INTO messages VALUES ('general', 5, 'ann', 'Ann', 'k5', 'five', 2);",
            )
            .expect("old schema");
        }
        let (log, last_seqs) = SqliteLog::open(&dir, 100, 2, |_: &Entry| {}).expect("open");
        assert_eq!(last_seqs, vec![("general".to_string(), 5)]);
        let read = log
            .records("general", 1, u64::MAX)
            .await
            .map(Record::entries)
            .expect("read");
        assert_eq!(read.iter().map(body).collect::<Vec<_>>(), ["four", "five"]);
        assert_eq!(log.messages_at("general", 4).await.expect("read"), Some(4));
        assert_eq!(log.messages_at("general", 5).await.expect("read"), Some(5));
        assert_eq!(
            log.append(msg("ann", "k6", "six")).await.expect("stored"),
            6
        );
        assert_eq!(log.messages_at("general", 6).await.expect("read"), Some(6));
        drop(log);
        // Reopened, the count goes on from the newest entry's.
        let (log, _) = SqliteLog::open(&dir, 100, 2, |_: &Entry| {}).expect("reopen");
        assert_eq!(
            log.append(msg("ann", "k7", "seven")).await.expect("stored"),
            7
        );
        assert_eq!(log.messages_at("general", 7).await.expect("read"), Some(7));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
