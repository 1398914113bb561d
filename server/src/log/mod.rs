//! The message log: every accepted message is stored here before anyone sees it. This module is the
//! seam between the rest of the server and where messages are kept: [`Log`] is what the rooms layer
//! and the transports use, and a backend sits behind it — [`sqlite`], the embedded default for one
//! node. A cluster backend joins it as another [`Backend`] variant.
//!
//! What every backend promises (the rooms layer and the clients' cursors rest on it):
//! - a room's seqs are dense and strictly increasing from 1, and its epoch changes only when its
//!   stored history is lost;
//! - `(author, client_id)` is stored once: a resend is answered with the first seq and not published;
//! - each new message goes to the `publish` function it was opened with only once it is durable, in
//!   seq order per room, and only then is its append answered;
//! - `range` reads what was stored, oldest first; retention keeps each room's newest messages.

use std::path::{Path, PathBuf};

use app::protocol::{ChatMessage, Identity, MessageKind};
use tokio::sync::oneshot;

pub mod sqlite;

pub use sqlite::DB_FILE;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open the message log at {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
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
}

/// A message to store, as the connection that received it describes it.
pub struct NewMessage {
    pub room: String,
    /// From the sender's session.
    pub author: Identity,
    pub client_id: String,
    pub body: String,
    pub kind: MessageKind,
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
}

impl Log {
    /// The log in `data_dir` on this node (see [`sqlite::SqliteLog::open`]); also each room's last
    /// seq as stored.
    pub fn open_sqlite(
        data_dir: &Path,
        retention: u64,
        cache_mib: u32,
        publish: impl FnMut(&ChatMessage) + Send + 'static,
    ) -> Result<(Self, Vec<(String, u64)>), LogError> {
        let (log, last_seqs) = sqlite::SqliteLog::open(data_dir, retention, cache_mib, publish)?;
        Ok((
            Self {
                backend: Backend::Sqlite(log),
            },
            last_seqs,
        ))
    }

    /// Stores a message (or finds it already stored) and returns its seq, once it is published.
    pub async fn append(&self, msg: NewMessage) -> Result<u64, LogError> {
        match &self.backend {
            Backend::Sqlite(log) => log.append(msg).await,
        }
    }

    /// Hands a message over to be stored without waiting: the answer comes once it is published.
    pub fn submit(&self, msg: NewMessage) -> Result<Appending, LogError> {
        match &self.backend {
            Backend::Sqlite(log) => log.submit(msg),
        }
    }

    /// The room's epoch, creating the room if it does not exist.
    pub async fn ensure_room(&self, room: &str) -> Result<String, LogError> {
        match &self.backend {
            Backend::Sqlite(log) => log.ensure_room(room).await,
        }
    }

    /// The oldest seq the room still holds, if it holds any.
    pub async fn first_seq(&self, room: &str) -> Result<Option<u64>, LogError> {
        match &self.backend {
            Backend::Sqlite(log) => log.first_seq(room).await,
        }
    }

    /// The room's messages with seqs `from..=to` that are still held, oldest first.
    pub async fn range(
        &self,
        room: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<ChatMessage>, LogError> {
        match &self.backend {
            Backend::Sqlite(log) => log.range(room, from, to).await,
        }
    }

    /// Whether the log can write and read now (the health check).
    pub async fn check(&self) -> Result<(), LogError> {
        match &self.backend {
            Backend::Sqlite(log) => log.check().await,
        }
    }

    /// Every room the log holds.
    pub fn rooms(&self) -> Vec<String> {
        match &self.backend {
            Backend::Sqlite(log) => log.rooms(),
        }
    }

    /// The room's epoch, if the room exists.
    pub fn epoch(&self, room: &str) -> Option<String> {
        match &self.backend {
            Backend::Sqlite(log) => log.epoch(room),
        }
    }
}
