//! The room log: every change to a room (an [`Entry`]: today a message) is stored here before anyone
//! sees it. This module is the seam between the rest of the server and where entries are kept:
//! [`Log`] is what the rooms layer and the transports use, and a backend sits behind it — [`sqlite`], the embedded default for one
//! node, or [`redis`], shared by the nodes of a cluster (ordered per room by [`sequencer`]).
//!
//! What every backend promises (the rooms layer and the clients' cursors rest on it):
//! - a room's seqs are dense and strictly increasing from 1, over entries of every type, and its
//!   epoch changes only when its stored history is lost;
//! - `(author, client_id)` is stored once: a resend is answered with the first seq and not published;
//! - beside each entry, how many messages the room held once it was stored (edits and reactions,
//!   later, do not count): what a person's unread count is made of;
//! - each new entry of a room this node follows (on one node: every room) goes to the `publish`
//!   function it was opened with only once it is durable, in seq order per room with no hole, and
//!   only then is its append answered; a room followed is announced to `publish` first, with where
//!   its history ends then (`follow`, which every door that reads a room calls first);
//! - `range` reads what was stored, oldest first; retention keeps each room's newest entries;
//! - a room that never held an entry can be forgotten; one that held an entry cannot;
//! - an entry of a type this build does not know (a newer Herald's) is kept and passed on as it was.
//!
//! Every backend stores an entry as the same few fields ([`Record`]): the header every type has,
//! its `type`, its text and its further fields as one JSON object. [`Content`] is what a new entry
//! is, [`Record::entry`] what a stored one reads back as; a new type of entry is a variant of each.
//!
//! `server/tests/integration/log_contract.rs` holds SQLite, one Redis and a Redis Cluster to these.

use std::path::{Path, PathBuf};

use app::protocol::{
    Change, ChangeEntry, ChatMessage, Entry, EntryType, ErrorCode, Identity, MessageKind,
    OtherEntry, Quote, Reaction,
};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

pub mod backup;
pub mod import;
pub mod redis;
pub mod sequencer;
pub mod sqlite;

pub use redis::Lease;
pub use sqlite::DB_FILE;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open the message log at {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create the message log at {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("storage failed: {0}")]
    Storage(#[from] rusqlite::Error),
    #[error("cannot start the log writer: {0}")]
    Thread(std::io::Error),
    /// A batch could not be committed; the cause was logged where it happened.
    #[error("the message could not be stored")]
    Failed,
    #[error("the message log has shut down")]
    Closed,
    #[error("Redis: {0}")]
    Redis(::redis::RedisError),
    /// The shared log did not answer in time.
    #[error("the message log is unavailable")]
    Unavailable,
    /// A change or reply that does not apply to its target (missing, not the sender's, deleted,
    /// full of reactions): nothing was stored.
    #[error("refused: {0}")]
    Refused(ErrorCode),
}

/// What a backend hands to its `publish` function, in order per room.
#[derive(Debug)]
pub enum Published<'a> {
    /// Room `room` is known from here on; its history ends at `last_seq`.
    Start { room: &'a str, last_seq: u64 },
    /// A stored entry, the room's next.
    Entry(&'a Entry),
    /// This node's append stored this new entry (a resend is not one). In a cluster every node
    /// hands on every entry, but each is stored by one node: what counts messages counts these,
    /// so the nodes' counts add up to the cluster's; what tells the others a room changed, these.
    StoredHere(&'a Entry),
    /// A room that never held an entry was forgotten (by this node or, in a cluster, another):
    /// the hub lets it go too, unless someone came in meanwhile.
    Forgotten { room: &'a str },
    /// Another node deleted the room, whatever it held (an admin did): the hub closes its
    /// sockets in it and lets it go.
    Dropped { room: &'a str },
}

/// How much of a room someone has not read, from their read position: what [`Log::unread`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unread {
    /// The room's epoch now: a position of another is of a history that is gone.
    pub epoch: String,
    /// The room's last entry now.
    pub last_seq: u64,
    /// The messages after the position that the room holds and that are not deleted (edits,
    /// reactions and deletions are not messages). A position of another epoch, or older than what
    /// the room holds, counts every message it holds: what can be counted, never less than 0.
    pub messages: u64,
}

/// Room name → epoch, for the rooms a backend knows; shared by its handles. An entry goes when its
/// room is forgotten (it never held a message); a room's history may also begin again.
#[derive(Clone, Default)]
pub(crate) struct Epochs(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
);

impl Epochs {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        // Every update is one insert: a poisoned lock is still consistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, room: &str) -> Option<String> {
        self.map().get(room).cloned()
    }

    pub(crate) fn insert(&self, room: &str, epoch: &str) {
        self.map().insert(room.to_owned(), epoch.to_owned());
    }

    pub(crate) fn remove(&self, room: &str) {
        self.map().remove(room);
    }

    /// How many rooms it knows.
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }

    /// Every room's name, sorted.
    pub(crate) fn rooms(&self) -> Vec<String> {
        let mut names: Vec<String> = self.map().keys().cloned().collect();
        names.sort();
        names
    }
}

/// An entry to store, as the connection that received it describes it.
#[derive(Clone, Debug)]
pub struct NewEntry {
    pub room: String,
    /// From the sender's session.
    pub author: Identity,
    pub client_id: String,
    pub kind: MessageKind,
    pub content: Content,
}

impl NewEntry {
    /// A message.
    pub fn message(
        room: String,
        author: Identity,
        client_id: String,
        body: String,
        kind: MessageKind,
    ) -> Self {
        Self {
            room,
            author,
            client_id,
            kind,
            content: Content::Message {
                body,
                reply_to: None,
            },
        }
    }
}

/// What a new entry is, by type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// A message's text, and the message of the room it answers.
    Message { body: String, reply_to: Option<u64> },
    /// A change to the room's message `target`.
    Change { target: u64, change: Change },
    /// An entry of a type this build does not know, as a newer Herald writes it: its type, its
    /// text, and its further fields as a JSON object. Nothing here makes one: it is how the
    /// tests play a newer Herald sharing the log.
    Other {
        entry_type: String,
        body: String,
        fields: String,
    },
}

impl Content {
    /// The `type` it is stored under.
    pub fn entry_type(&self) -> &str {
        match self {
            Content::Message { .. } => EntryType::Message.as_str(),
            Content::Change { change, .. } => change.entry_type().as_str(),
            Content::Other { entry_type, .. } => entry_type,
        }
    }

    /// Its text.
    pub fn body(&self) -> &str {
        match self {
            Content::Message { body, .. } | Content::Other { body, .. } => body,
            Content::Change {
                change: Change::Edit { body },
                ..
            } => body,
            Content::Change { .. } => "",
        }
    }

    /// Its further fields, a JSON object; none for a message that is not a reply.
    pub fn fields(&self) -> Option<String> {
        let fields = match self {
            Content::Message { reply_to: None, .. } => return None,
            Content::Other { fields, .. } => return Some(fields.clone()),
            Content::Message { reply_to, .. } => Fields {
                reply_to: *reply_to,
                ..Fields::default()
            },
            Content::Change { target, change } => Fields {
                target: Some(*target),
                emoji: match change {
                    Change::React { emoji, .. } => Some(emoji.clone()),
                    _ => None,
                },
                remove: matches!(change, Change::React { remove: true, .. }),
                ..Fields::default()
            },
        };
        serde_json::to_string(&fields).ok()
    }

    /// The message it changes or answers, if any.
    pub fn target(&self) -> Option<u64> {
        match self {
            Content::Message { reply_to, .. } => *reply_to,
            Content::Change { target, .. } => Some(*target),
            Content::Other { .. } => None,
        }
    }

    /// Whether it counts as a message (see [`Entry::is_message`]).
    pub fn is_message(&self) -> bool {
        matches!(self, Content::Message { .. })
    }
}

/// The further fields of the entry types this build knows, as stored (a JSON object).
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct Fields {
    /// A reply's original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    /// The message a change changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove: bool,
}

/// What the changes to a message made of it, kept beside it (SQLite: its row's `state`; Redis:
/// its member of the room's `state` set, where the append script writes the same JSON): what a
/// page shows of it without reading every change after it. Short names: one per changed message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    /// Its text now, if edited (the row keeps the first).
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// When last edited.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<u64>,
    /// The seqs of its edits, oldest first: its earlier texts, and what a deletion wipes.
    #[serde(rename = "e", default, skip_serializing_if = "Vec::is_empty")]
    pub edits: Vec<u64>,
    /// Who deleted it.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Box<Identity>>,
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// The seq of the last change.
    #[serde(rename = "c", default)]
    pub changed: u64,
}

impl State {
    /// The state of `message` once changed, its edits so far being `edits`.
    pub fn of(message: &ChatMessage, edits: Vec<u64>) -> Self {
        State {
            body: message.edited.map(|_| message.body.clone()),
            edited: message.edited,
            edits,
            deleted: message.deleted.clone(),
            reactions: message.reactions.clone(),
            changed: message.changed,
        }
    }

    /// `message` (as posted) with its changes.
    pub fn apply_to(self, message: &mut ChatMessage) {
        if let Some(body) = self.body {
            message.body = body;
        }
        if self.deleted.is_some() {
            message.body = String::new();
        }
        message.edited = self.edited;
        message.deleted = self.deleted;
        message.reactions = self.reactions;
        message.changed = self.changed;
    }
}

/// An entry as every backend stores it.
pub(crate) struct Record {
    pub room: String,
    pub seq: u64,
    pub author: Identity,
    pub client_id: String,
    pub sent_at: u64,
    pub kind: MessageKind,
    /// Its type; none for a message (the most of them, stored without it).
    pub entry_type: Option<String>,
    pub body: String,
    /// Further fields, a JSON object (none for a message that is not a reply).
    pub fields: Option<String>,
    /// For a message, what its changes made of it (none if it never changed).
    pub state: Option<State>,
}

impl Record {
    /// What `entry` of `room`, stored at `seq` and `sent_at`, is stored as.
    pub fn of(entry: &NewEntry, seq: u64, sent_at: u64) -> Self {
        Self {
            room: entry.room.clone(),
            seq,
            author: entry.author.clone(),
            client_id: entry.client_id.clone(),
            sent_at,
            kind: entry.kind,
            entry_type: (!entry.content.is_message())
                .then(|| entry.content.entry_type().to_owned()),
            body: entry.content.body().to_owned(),
            fields: entry.content.fields(),
            state: None,
        }
    }

    /// The entry it is: a type this build knows, typed; another, as the frame to pass on.
    /// Stored records as readers get them ([`Record::entry`] of each), in their order.
    pub fn entries(records: Vec<Record>) -> Vec<Entry> {
        records.into_iter().map(Record::entry).collect()
    }

    pub fn entry(self) -> Entry {
        let entry_type = self
            .entry_type
            .as_deref()
            .map_or(Some(EntryType::Message), EntryType::from_name);
        let fields: Fields = self
            .fields
            .as_deref()
            .and_then(|fields| serde_json::from_str(fields).ok())
            .unwrap_or_default();
        let change = match (entry_type, fields.target) {
            (Some(EntryType::Edit), Some(_)) => Some(Change::Edit {
                body: self.body.clone(),
            }),
            (Some(EntryType::Delete), Some(_)) => Some(Change::Delete),
            (Some(EntryType::React), Some(_)) => fields.emoji.clone().map(|emoji| Change::React {
                emoji,
                remove: fields.remove,
            }),
            _ => None,
        };
        match (entry_type, change) {
            (Some(EntryType::Message), _) => {
                let mut message = ChatMessage {
                    room: self.room,
                    seq: self.seq,
                    author: self.author,
                    client_id: self.client_id,
                    body: self.body,
                    sent_at: self.sent_at,
                    kind: self.kind,
                    reply_to: fields.reply_to.map(|seq| {
                        Box::new(Quote {
                            seq,
                            ..Quote::default()
                        })
                    }),
                    ..ChatMessage::default()
                };
                if let Some(state) = self.state {
                    state.apply_to(&mut message);
                }
                Entry::Message(message)
            }
            (_, Some(change)) => Entry::Change(ChangeEntry {
                room: self.room,
                seq: self.seq,
                author: self.author,
                client_id: self.client_id,
                sent_at: self.sent_at,
                kind: self.kind,
                target: fields.target.unwrap_or_default(),
                change,
            }),
            // A type unknown here, or one known but not as it should be: passed on as stored.
            _ => {
                let frame = self.frame();
                Entry::Other(OtherEntry {
                    room: self.room,
                    seq: self.seq,
                    entry_type: self.entry_type.unwrap_or_default(),
                    frame,
                })
            }
        }
    }

    /// The frame of an entry of a type this build does not know: its further fields, then the
    /// header every entry has (which they cannot override), as a `message` frame has them.
    fn frame(&self) -> String {
        use serde_json::{Map, Value, json};
        let mut frame: Map<String, Value> = self
            .fields
            .as_deref()
            .and_then(|fields| serde_json::from_str(fields).ok())
            .unwrap_or_default();
        frame.insert(
            "type".into(),
            json!(self.entry_type.as_deref().unwrap_or_default()),
        );
        frame.insert("room".into(), json!(self.room));
        frame.insert("seq".into(), json!(self.seq));
        frame.insert("author".into(), json!(self.author));
        frame.insert("client_id".into(), json!(self.client_id));
        frame.insert("body".into(), json!(self.body));
        frame.insert("sent_at".into(), json!(self.sent_at));
        if !self.kind.is_user() {
            frame.insert("kind".into(), json!(self.kind));
        }
        Value::Object(frame).to_string()
    }
}

/// An append on its way: resolves once it is stored and handed to `publish`.
pub type Appending = oneshot::Receiver<Result<u64, LogError>>;

/// Cheap to clone: a handle to the backend.
#[derive(Clone)]
pub struct Log {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::SqliteLog),
    Redis(redis::RedisLog),
}

/// The same call on whichever backend.
/// Most edits of a message its history shows (the newest).
pub const MAX_VERSIONS: usize = 100;

/// One text a message has had: as posted (its own seq) or as an edit made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Version {
    /// The entry that wrote it.
    pub seq: u64,
    /// When, in milliseconds since the epoch.
    pub at: u64,
    pub body: String,
}

/// A message's history of texts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Versions {
    /// Who wrote it, and its texts.
    Texts(Identity, Vec<Version>),
    /// Deleted: its texts were taken back with it.
    Deleted,
}

macro_rules! on_backend {
    ($log:expr, $backend:ident => $call:expr) => {
        match &$log.backend {
            Backend::Sqlite($backend) => $call,
            Backend::Redis($backend) => $call,
        }
    };
}

impl Log {
    /// The log in `data_dir` on this node (see [`sqlite::SqliteLog::open`]); also each room's last
    /// seq as stored.
    pub fn open_sqlite(
        data_dir: &Path,
        retention: u64,
        cache_mib: u32,
        mut publish: impl FnMut(Published<'_>) + Send + 'static,
    ) -> Result<(Self, Vec<(String, u64)>), LogError> {
        let (log, last_seqs) =
            sqlite::SqliteLog::open(data_dir, retention, cache_mib, move |entry| {
                // On one node every entry is this node's.
                publish(Published::StoredHere(entry));
                publish(Published::Entry(entry))
            })?;
        Ok((
            Self {
                backend: Backend::Sqlite(log),
            },
            last_seqs,
        ))
    }

    /// The log in the Redis at `link`, shared with every node using it (see
    /// [`redis::RedisLog::open`]); also each room's last seq as stored.
    pub async fn open_redis(
        link: &crate::redis_link::RedisLink,
        retention: u64,
        wait_replicas: u32,
        publish: impl FnMut(Published<'_>) + Send + 'static,
    ) -> Result<(Self, Vec<(String, u64)>), LogError> {
        let (log, last_seqs) =
            redis::RedisLog::open(link, retention, wait_replicas, publish).await?;
        Ok((
            Self {
                backend: Backend::Redis(log),
            },
            last_seqs,
        ))
    }

    /// Stores an entry (or finds it already stored) and returns its seq, once it is published.
    pub async fn append(&self, msg: NewEntry) -> Result<u64, LogError> {
        on_backend!(self, log => log.append(msg).await)
    }

    /// Hands an entry over to be stored without waiting: the answer comes once it is published.
    pub fn submit(&self, msg: NewEntry) -> Result<Appending, LogError> {
        on_backend!(self, log => log.submit(msg))
    }

    /// The room's epoch, creating the room if it does not exist.
    pub async fn ensure_room(&self, room: &str) -> Result<String, LogError> {
        on_backend!(self, log => log.ensure_room(room).await)
    }

    /// Makes `room` current on this node before it is read here: on one node it always is; in a
    /// cluster the node follows the room (its channel subscribed, the hub brought to where the room
    /// stands) until it has had no use for it for a while ([`Self::let_go_unused`]); the lease
    /// keeps it followed while held (hold it until the reader is in the hub, or the read is done).
    /// Made first if `create`. The room's epoch, or `None` if it does not exist.
    pub async fn follow(
        &self,
        room: &str,
        create: bool,
    ) -> Result<Option<(String, Lease)>, LogError> {
        let epoch = match &self.backend {
            Backend::Sqlite(log) if create => Some(log.ensure_room(room).await?),
            Backend::Sqlite(log) => log.epoch(room),
            Backend::Redis(log) => return log.follow(room, create).await,
        };
        Ok(epoch.map(|epoch| (epoch, Lease::none())))
    }

    /// Whether `room` is current on this node (see [`Self::follow`]).
    pub fn follows(&self, room: &str) -> bool {
        match &self.backend {
            Backend::Sqlite(_) => true,
            Backend::Redis(log) => log.follows(room),
        }
    }

    /// In a cluster, stops following the rooms that have had no use here for `linger` (`in_use`
    /// says which have readers here now); returns them. (One node follows every room, always.)
    pub fn let_go_unused(
        &self,
        linger: std::time::Duration,
        in_use: &dyn Fn(&str) -> bool,
    ) -> Vec<String> {
        match &self.backend {
            Backend::Sqlite(_) => Vec::new(),
            Backend::Redis(log) => log.let_go_unused(linger, in_use),
        }
    }

    /// Every room's name, sorted: in a cluster, every node's rooms (this node knows of those it
    /// follows and those there were when it started).
    pub async fn all_rooms(&self) -> Result<Vec<String>, LogError> {
        match &self.backend {
            Backend::Sqlite(log) => Ok(log.rooms()),
            Backend::Redis(log) => log.all_rooms().await,
        }
    }

    /// The seq of the room's last entry as stored (0 if none), for a room not followed here: one
    /// followed is where the hub has it.
    pub async fn last_stored(&self, room: &str) -> Result<u64, LogError> {
        match &self.backend {
            Backend::Sqlite(log) => log.last_stored(room).await,
            Backend::Redis(log) => log.last_stored(room).await,
        }
    }

    /// The room's epoch and the seq of its last stored entry (0 if none), as the store has them:
    /// in a cluster also for a room this node does not follow (the search index reads every
    /// room). `None` if there is no such room.
    pub async fn stored_to(&self, room: &str) -> Result<Option<(String, u64)>, LogError> {
        match &self.backend {
            Backend::Sqlite(log) => match log.epoch(room) {
                Some(epoch) => Ok(Some((epoch, log.last_stored(room).await?))),
                None => Ok(None),
            },
            Backend::Redis(log) => log.stored_to(room).await,
        }
    }

    /// Whether `room` does not exist yet (joining it would create it). In a cluster, a room made
    /// through another node may not be known here yet: Redis is asked.
    pub async fn is_new(&self, room: &str) -> Result<bool, LogError> {
        if self.epoch(room).is_some() {
            return Ok(false);
        }
        match &self.backend {
            Backend::Sqlite(_) => Ok(true),
            Backend::Redis(log) => log.is_new(room).await,
        }
    }

    /// Deletes `room` if it never held an entry; says whether the log is without it now (also
    /// when it was never there). In a cluster every node hears of it and forgets the room too
    /// (`Published::Forgotten`).
    pub async fn forget_unused(&self, room: &str) -> Result<bool, LogError> {
        on_backend!(self, log => log.forget_unused(room).await)
    }

    /// Deletes `room` and every entry it holds, whatever it holds (an admin deleting a room); says
    /// whether it was there. The caller closes the room here ([`crate::hub::Hub::drop_room`]); in
    /// a cluster every other node hears of it and does too (`Published::Dropped`).
    pub async fn drop_room(&self, room: &str) -> Result<bool, LogError> {
        on_backend!(self, log => log.drop_room(room).await)
    }

    /// How much of `room` a reader whose position is `seq` of `epoch` has not read: its messages
    /// after that (see [`Unread`]), from two counts beside the entries and the messages changed
    /// since — never a scan of the messages in between. `None` if there is no such room.
    pub async fn unread(
        &self,
        room: &str,
        epoch: &str,
        seq: u64,
    ) -> Result<Option<Unread>, LogError> {
        on_backend!(self, log => log.unread(room, epoch, seq).await)
    }

    /// How many rooms the log holds (in a cluster, all nodes' together).
    pub async fn room_count(&self) -> Result<usize, LogError> {
        on_backend!(self, log => log.room_count().await)
    }

    /// Returns once this node has handed the room's messages up to `seq` to the hub, when they are
    /// stored: in a cluster a cursor from another node can be ahead of what this node has heard so
    /// far. On one node everything stored is handed on before it is acknowledged: nothing to wait.
    pub async fn catch_up(&self, room: &str, seq: u64) -> Result<(), LogError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(()),
            Backend::Redis(log) => log.catch_up(room, seq).await,
        }
    }

    /// The oldest seq the room still holds, if it holds any.
    pub async fn first_seq(&self, room: &str) -> Result<Option<u64>, LogError> {
        on_backend!(self, log => log.first_seq(room).await)
    }

    /// The room's entries with seqs `from..=to` that are still held, oldest first.
    pub async fn range(&self, room: &str, from: u64, to: u64) -> Result<Vec<Entry>, LogError> {
        Ok(Record::entries(self.records(room, from, to).await?))
    }

    /// The texts message `seq` of `room` has had, oldest first: as posted, then each edit (at most
    /// the newest [`MAX_VERSIONS`] edits, and only those still retained). `None` if no message is
    /// there; [`Versions::Deleted`] once it was deleted (its texts are gone).
    pub async fn versions(&self, room: &str, seq: u64) -> Result<Option<Versions>, LogError> {
        let Some(record) = self.records(room, seq, seq).await?.pop() else {
            return Ok(None);
        };
        if record.seq != seq || record.entry_type.is_some() {
            return Ok(None);
        }
        let state = record.state.unwrap_or_default();
        if state.deleted.is_some() {
            return Ok(Some(Versions::Deleted));
        }
        let author = record.author;
        let mut versions = vec![Version {
            seq,
            at: record.sent_at,
            body: record.body,
        }];
        let skip = state.edits.len().saturating_sub(MAX_VERSIONS);
        for edit in state.edits.into_iter().skip(skip) {
            // One read each: a message is edited a few times, and this is read on request only.
            if let Some(record) = self.records(room, edit, edit).await?.pop()
                && record.seq == edit
            {
                versions.push(Version {
                    seq: edit,
                    at: record.sent_at,
                    body: record.body,
                });
            }
        }
        Ok(Some(Versions::Texts(author, versions)))
    }

    async fn records(&self, room: &str, from: u64, to: u64) -> Result<Vec<Record>, LogError> {
        on_backend!(self, log => log.records(room, from, to).await)
    }

    /// How many messages the room held once its entry `seq` was stored (entries of other types
    /// do not count), if that entry is still held. Where `seq` is the room's last, it is how many
    /// messages the room has held in all.
    pub async fn messages_at(&self, room: &str, seq: u64) -> Result<Option<u64>, LogError> {
        on_backend!(self, log => log.messages_at(room, seq).await)
    }

    /// Whether the log can write and read now (the health check).
    pub async fn check(&self) -> Result<(), LogError> {
        on_backend!(self, log => log.check().await)
    }

    /// Every room the log holds.
    pub fn rooms(&self) -> Vec<String> {
        on_backend!(self, log => log.rooms())
    }

    /// In cluster mode, the node's bus (the cluster's presence rides on it too).
    pub fn bus(&self) -> Option<crate::bus::Bus> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Redis(log) => Some(log.bus()),
        }
    }

    /// The room's epoch, if the room exists.
    pub fn epoch(&self, room: &str) -> Option<String> {
        on_backend!(self, log => log.epoch(room))
    }
}

#[cfg(test)]
mod tests {
    use app::protocol::{Change, ChatMessage, Identity};

    use super::State;

    /// What a page shows of a message (its row, with the state kept beside it) is what a reader
    /// that applied each change has: the server's and the browser's renderings agree.
    #[test]
    fn a_message_with_its_kept_state_is_the_message_with_its_changes_applied() {
        let ann = Identity {
            id: "ann".into(),
            name: "Ann".into(),
        };
        let bob = Identity {
            id: "bob".into(),
            name: "Bob".into(),
        };
        let posted = ChatMessage {
            room: "general".into(),
            seq: 1,
            author: ann.clone(),
            client_id: "c1".into(),
            body: "helo".into(),
            sent_at: 10,
            ..ChatMessage::default()
        };
        let stream = [
            (
                Change::Edit {
                    body: "hello".into(),
                },
                &ann,
            ),
            (
                Change::React {
                    emoji: "👍".into(),
                    remove: false,
                },
                &bob,
            ),
            (
                Change::Edit {
                    body: "hello!".into(),
                },
                &ann,
            ),
            (
                Change::React {
                    emoji: "🎉".into(),
                    remove: false,
                },
                &ann,
            ),
            (Change::Delete, &ann),
        ];
        let mut applied = posted.clone();
        let mut edits = Vec::new();
        for (i, (change, who)) in stream.iter().enumerate() {
            let seq = 2 + i as u64;
            assert_eq!(
                applied.apply(
                    change,
                    (who, app::protocol::MessageKind::User),
                    seq,
                    seq * 100
                ),
                Ok(true)
            );
            if matches!(change, Change::Edit { .. }) {
                edits.push(seq);
            }
            // Kept as JSON (both backends store it so), read back onto the message as posted.
            let kept: State = serde_json::from_str(
                &serde_json::to_string(&State::of(&applied, edits.clone())).expect("json"),
            )
            .expect("read back");
            let mut shown = posted.clone();
            kept.apply_to(&mut shown);
            assert_eq!(shown, applied, "after {} changes", i + 1);
        }
    }
}
