//! The people of one node: tables beside the log's in herald.db, through a connection of their own
//! (writes are rare — a sign-in, a new password, a session's use noted every few minutes — so they
//! take SQLite's write lock in turn with the log's writer, which waits at most `busy_timeout`).

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{
    Account, AuditEntry, Bot, BotToken, Invitation, PeopleError, Report, Role, SessionInfo,
    rooms::{RoomKind, RoomRecord},
};

#[derive(Clone)]
pub struct SqlitePeople {
    conn: Arc<Mutex<Connection>>,
    /// One query at a time goes to a blocking thread: the connection serves one anyway, and
    /// without this a burst of handshakes (15 000 sockets opening) had tokio start a blocking
    /// thread for each waiting lookup — hundreds of threads, 3 KB more memory per connection.
    turn: Arc<tokio::sync::Semaphore>,
}

impl SqlitePeople {
    pub fn open(path: &Path) -> Result<Self, PeopleError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS accounts (
                 id         TEXT PRIMARY KEY,
                 handle     TEXT UNIQUE,
                 name       TEXT NOT NULL,
                 role       TEXT NOT NULL,
                 password   TEXT,
                 active     INTEGER NOT NULL DEFAULT 1,
                 created_at INTEGER NOT NULL
             ) STRICT;
             CREATE TABLE IF NOT EXISTS sessions (
                 id         TEXT PRIMARY KEY,
                 account    TEXT NOT NULL,
                 created_at INTEGER NOT NULL,
                 last_seen  INTEGER NOT NULL,
                 agent      TEXT NOT NULL
             ) STRICT;
             CREATE INDEX IF NOT EXISTS sessions_of ON sessions (account);
             CREATE TABLE IF NOT EXISTS invitations (
                 id         TEXT PRIMARY KEY,
                 by         TEXT NOT NULL,
                 created_at INTEGER NOT NULL,
                 expires_at INTEGER NOT NULL,
                 uses_left  INTEGER NOT NULL
             ) STRICT;
             CREATE TABLE IF NOT EXISTS setup (
                 id    INTEGER PRIMARY KEY CHECK (id = 1),
                 code  TEXT NOT NULL,
                 owner TEXT
             ) STRICT;
             CREATE TABLE IF NOT EXISTS room_records (
                 name       TEXT PRIMARY KEY,
                 kind       TEXT NOT NULL,
                 title      TEXT NOT NULL,
                 topic      TEXT NOT NULL,
                 created_by TEXT NOT NULL,
                 created_at INTEGER NOT NULL,
                 archived   INTEGER NOT NULL DEFAULT 0
             ) STRICT;
             CREATE TABLE IF NOT EXISTS room_members (
                 room    TEXT NOT NULL,
                 account TEXT NOT NULL,
                 PRIMARY KEY (room, account)
             ) STRICT, WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS rooms_of ON room_members (account);
             CREATE TABLE IF NOT EXISTS audit (
                 at     INTEGER NOT NULL,
                 by     TEXT NOT NULL,
                 action TEXT NOT NULL,
                 room   TEXT NOT NULL,
                 target TEXT NOT NULL,
                 detail TEXT NOT NULL
             ) STRICT;
             CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
             CREATE TABLE IF NOT EXISTS resets (
                 id      TEXT PRIMARY KEY,
                 account TEXT NOT NULL,
                 until   INTEGER NOT NULL
             ) STRICT;
             CREATE TABLE IF NOT EXISTS reports (
                 id     TEXT PRIMARY KEY,
                 room   TEXT NOT NULL,
                 seq    INTEGER NOT NULL,
                 by     TEXT NOT NULL,
                 reason TEXT NOT NULL,
                 at     INTEGER NOT NULL
             ) STRICT;
             CREATE TABLE IF NOT EXISTS mutes (
                 room    TEXT NOT NULL,
                 account TEXT NOT NULL,
                 until   INTEGER NOT NULL,
                 PRIMARY KEY (room, account)
             ) STRICT, WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS hidden_rooms (
                 account TEXT NOT NULL,
                 room    TEXT NOT NULL,
                 PRIMARY KEY (account, room)
             ) STRICT, WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS bots (
                 account TEXT PRIMARY KEY,
                 webhook TEXT NOT NULL,
                 secret  TEXT NOT NULL
             ) STRICT;
             CREATE TABLE IF NOT EXISTS bot_tokens (
                 id         TEXT PRIMARY KEY,
                 account    TEXT NOT NULL,
                 label      TEXT NOT NULL,
                 created_at INTEGER NOT NULL
             ) STRICT;
             CREATE INDEX IF NOT EXISTS bot_tokens_of ON bot_tokens (account);
             CREATE TABLE IF NOT EXISTS ignored (
                 account TEXT NOT NULL,
                 other   TEXT NOT NULL,
                 PRIMARY KEY (account, other)
             ) STRICT, WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS read_positions (
                 account TEXT NOT NULL,
                 room    TEXT NOT NULL,
                 epoch   TEXT NOT NULL,
                 seq     INTEGER NOT NULL,
                 PRIMARY KEY (account, room)
             ) STRICT, WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS mentions (
                 account TEXT NOT NULL,
                 room    TEXT NOT NULL,
                 epoch   TEXT NOT NULL,
                 seq     INTEGER NOT NULL,
                 at      INTEGER NOT NULL,
                 PRIMARY KEY (account, room, epoch, seq)
             ) STRICT, WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS mentions_by_message ON mentions (room, seq);
             CREATE INDEX IF NOT EXISTS mentions_by_time ON mentions (account, at);
             CREATE TABLE IF NOT EXISTS notify_levels (
                 account TEXT NOT NULL,
                 room    TEXT NOT NULL,
                 level   TEXT NOT NULL,
                 PRIMARY KEY (account, room)
             ) STRICT, WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS notify_levels_by_room ON notify_levels (room, level);
             CREATE TABLE IF NOT EXISTS push_subscriptions (
                 endpoint TEXT PRIMARY KEY,
                 account  TEXT NOT NULL,
                 session  TEXT NOT NULL,
                 p256dh   TEXT NOT NULL,
                 auth     TEXT NOT NULL,
                 at       INTEGER NOT NULL
             ) STRICT;
             CREATE INDEX IF NOT EXISTS push_subscriptions_of ON push_subscriptions (account, at);
             CREATE TABLE IF NOT EXISTS secrets (
                 name  TEXT PRIMARY KEY,
                 value TEXT NOT NULL
             ) STRICT;",
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            turn: Arc::new(tokio::sync::Semaphore::new(1)),
        })
    }

    /// Runs `f` on the connection, off the async threads.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, PeopleError> + Send + 'static,
    ) -> Result<T, PeopleError> {
        let conn = self.conn.clone();
        let _turn = self
            .turn
            .acquire()
            .await
            .map_err(|_| PeopleError::Storage("the people store is closed".into()))?;
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| PeopleError::Storage("the people store's lock is poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| PeopleError::Storage(e.to_string()))?
    }

    pub async fn is_set_up(&self) -> Result<bool, PeopleError> {
        self.with(|conn| {
            Ok(conn
                .query_row("SELECT owner IS NOT NULL FROM setup", [], |r| r.get(0))
                .optional()?
                .unwrap_or(false))
        })
        .await
    }

    /// The stored setup code; `fresh` is stored if there is none, or if `replace` (the operator
    /// named one) and the setup is not done.
    pub async fn setup_code(&self, fresh: &str, replace: bool) -> Result<String, PeopleError> {
        let fresh = fresh.to_owned();
        self.with(move |conn| {
            if replace {
                conn.execute(
                    "INSERT INTO setup (id, code) VALUES (1, ?1)
                     ON CONFLICT (id) DO UPDATE SET code = ?1 WHERE owner IS NULL",
                    [&fresh],
                )?;
            } else {
                conn.execute(
                    "INSERT INTO setup (id, code) VALUES (1, ?1) ON CONFLICT (id) DO NOTHING",
                    [&fresh],
                )?;
            }
            Ok(conn.query_row("SELECT code FROM setup", [], |r| r.get(0))?)
        })
        .await
    }

    /// The setup code, while the setup is not done.
    pub async fn stored_setup_code(&self) -> Result<Option<String>, PeopleError> {
        self.with(|conn| {
            Ok(conn
                .query_row("SELECT code FROM setup WHERE owner IS NULL", [], |r| {
                    r.get(0)
                })
                .optional()?)
        })
        .await
    }

    pub async fn set_up(&self, owner: &Account) -> Result<(), PeopleError> {
        let owner = owner.clone();
        self.with(move |conn| {
            // IMMEDIATE: the write lock first (the log's writer may hold it: then wait).
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let claimed = tx.execute(
                "UPDATE setup SET owner = ?1 WHERE id = 1 AND owner IS NULL",
                [&owner.id],
            )?;
            if claimed != 1 {
                return Err(PeopleError::AlreadySetUp);
            }
            insert(&tx, &owner)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn create(&self, account: &Account) -> Result<(), PeopleError> {
        let account = account.clone();
        self.with(move |conn| insert(conn, &account)).await
    }

    pub async fn save_invitation(&self, invitation: &Invitation) -> Result<(), PeopleError> {
        let i = invitation.clone();
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO invitations (id, by, created_at, expires_at, uses_left)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    i.id,
                    i.by,
                    sql_int(i.created_ms),
                    sql_int(i.expires_ms),
                    i.uses_left
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn invitation(&self, id: &str) -> Result<Option<Invitation>, PeopleError> {
        let id = id.to_owned();
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE id = ?1"),
                    [&id],
                    invitation_of,
                )
                .optional()?)
        })
        .await
    }

    pub async fn invitations(&self) -> Result<Vec<Invitation>, PeopleError> {
        self.with(|conn| {
            // The spent and the expired are no use to anyone: gone as the list is read.
            conn.execute(
                "DELETE FROM invitations WHERE uses_left < 1 OR expires_at <= ?1",
                [sql_int(super::now_ms())],
            )?;
            let mut query =
                conn.prepare(&format!("SELECT {INVITATION_COLUMNS} FROM invitations"))?;
            let rows = query.query_map([], invitation_of)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn revoke_invitation(&self, id: &str) -> Result<(), PeopleError> {
        let id = id.to_owned();
        self.with(move |conn| {
            conn.execute("DELETE FROM invitations WHERE id = ?1", [&id])?;
            Ok(())
        })
        .await
    }

    pub async fn join(&self, id: &str, account: &Account, now: u64) -> Result<(), PeopleError> {
        let (id, account) = (id.to_owned(), account.clone());
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let used = tx.execute(
                "UPDATE invitations SET uses_left = uses_left - 1
                 WHERE id = ?1 AND uses_left > 0 AND expires_at > ?2",
                params![id, sql_int(now)],
            )?;
            if used != 1 {
                return Err(PeopleError::NoSuchInvitation);
            }
            // A handle taken rolls the use back with the transaction.
            insert(&tx, &account)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn by_handle(&self, handle: &str) -> Result<Option<Account>, PeopleError> {
        let handle = handle.to_owned();
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE handle = ?1"),
                    [&handle],
                    account_of,
                )
                .optional()?)
        })
        .await
    }

    pub async fn account(&self, id: &str) -> Result<Option<Account>, PeopleError> {
        let id = id.to_owned();
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1"),
                    [&id],
                    account_of,
                )
                .optional()?)
        })
        .await
    }

    pub async fn accounts(&self) -> Result<Vec<Account>, PeopleError> {
        self.with(|conn| {
            let mut query = conn.prepare(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts"))?;
            let rows = query.query_map([], account_of)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn set_active(&self, id: &str, active: bool) -> Result<(), PeopleError> {
        let id = id.to_owned();
        self.with(move |conn| {
            match conn.execute(
                "UPDATE accounts SET active = ?2 WHERE id = ?1",
                params![id, active],
            )? {
                1 => Ok(()),
                _ => Err(PeopleError::NoSuchAccount),
            }
        })
        .await
    }

    pub async fn set_role(&self, id: &str, role: Role) -> Result<(), PeopleError> {
        let (id, role) = (id.to_owned(), role.as_str());
        self.with(move |conn| {
            match conn.execute("UPDATE accounts SET role = ?2 WHERE id = ?1", [&id, role])? {
                1 => Ok(()),
                _ => Err(PeopleError::NoSuchAccount),
            }
        })
        .await
    }

    pub async fn rename(&self, id: &str, name: &str) -> Result<(), PeopleError> {
        let (id, name) = (id.to_owned(), name.to_owned());
        self.with(move |conn| {
            match conn.execute("UPDATE accounts SET name = ?2 WHERE id = ?1", [&id, &name])? {
                1 => Ok(()),
                _ => Err(PeopleError::NoSuchAccount),
            }
        })
        .await
    }

    pub async fn set_password(&self, id: &str, phc: &str) -> Result<(), PeopleError> {
        let (id, phc) = (id.to_owned(), phc.to_owned());
        self.with(move |conn| {
            match conn.execute(
                "UPDATE accounts SET password = ?2 WHERE id = ?1",
                [&id, &phc],
            )? {
                1 => Ok(()),
                _ => Err(PeopleError::NoSuchAccount),
            }
        })
        .await
    }

    pub async fn open_session(
        &self,
        info: &SessionInfo,
        _ttl: Duration,
    ) -> Result<(), PeopleError> {
        let info = info.clone();
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO sessions (id, account, created_at, last_seen, agent)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    info.id,
                    info.account,
                    sql_int(info.created_ms),
                    sql_int(info.last_seen_ms),
                    info.agent
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn session(&self, key: &str) -> Result<Option<SessionInfo>, PeopleError> {
        let key = key.to_owned();
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"),
                    [&key],
                    session_of,
                )
                .optional()?)
        })
        .await
    }

    pub async fn touch_session(
        &self,
        key: &str,
        now: u64,
        _ttl: Duration,
    ) -> Result<(), PeopleError> {
        let key = key.to_owned();
        self.with(move |conn| {
            conn.execute(
                "UPDATE sessions SET last_seen = ?2 WHERE id = ?1",
                params![key, sql_int(now)],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn sessions(&self, account: &str) -> Result<Vec<SessionInfo>, PeopleError> {
        let account = account.to_owned();
        self.with(move |conn| {
            let mut query = conn.prepare(&format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE account = ?1"
            ))?;
            let rows = query.query_map([&account], session_of)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn end_session(&self, account: &str, key: &str) -> Result<bool, PeopleError> {
        let (account, key) = (account.to_owned(), key.to_owned());
        self.with(move |conn| {
            let ended = conn.execute(
                "DELETE FROM sessions WHERE id = ?1 AND account = ?2",
                [&key, &account],
            )?;
            Ok(ended == 1)
        })
        .await
    }
}

/// Rooms: records, members, and the rooms each person hid.
impl SqlitePeople {
    /// Makes `record`'s room with `members`, unless a room of that name has a record already:
    /// whether it was made.
    pub async fn create_room(
        &self,
        record: &RoomRecord,
        members: &[String],
    ) -> Result<bool, PeopleError> {
        let (r, members) = (record.clone(), members.to_vec());
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let made = tx.execute(
                "INSERT INTO room_records (name, kind, title, topic, created_by, created_at, archived)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                params![
                    r.name,
                    r.kind.as_str(),
                    r.title,
                    r.topic,
                    r.created_by,
                    sql_int(r.created_ms),
                    r.archived
                ],
            )? == 1;
            if made {
                for account in &members {
                    tx.execute(
                        "INSERT INTO room_members (room, account) VALUES (?1, ?2)
                         ON CONFLICT DO NOTHING",
                        [&r.name, account],
                    )?;
                }
            }
            tx.commit()?;
            Ok(made)
        })
        .await
    }

    pub async fn room(&self, name: &str) -> Result<Option<RoomRecord>, PeopleError> {
        let name = name.to_owned();
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {ROOM_COLUMNS} FROM room_records WHERE name = ?1"),
                    [&name],
                    room_of,
                )
                .optional()?)
        })
        .await
    }

    /// A title, topic or archived flag changed.
    pub async fn update_room(&self, record: &RoomRecord) -> Result<(), PeopleError> {
        let r = record.clone();
        self.with(move |conn| {
            conn.execute(
                "UPDATE room_records SET title = ?2, topic = ?3, archived = ?4 WHERE name = ?1",
                params![r.name, r.title, r.topic, r.archived],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn is_member(&self, room: &str, account: &str) -> Result<bool, PeopleError> {
        let (room, account) = (room.to_owned(), account.to_owned());
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT 1 FROM room_members WHERE room = ?1 AND account = ?2",
                    [&room, &account],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
        .await
    }

    /// The accounts of `room`'s members, in one query.
    pub async fn members(&self, room: &str) -> Result<Vec<Account>, PeopleError> {
        let room = room.to_owned();
        self.with(move |conn| {
            let mut query = conn.prepare(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts \
                 WHERE id IN (SELECT account FROM room_members WHERE room = ?1)"
            ))?;
            let rows = query.query_map([&room], account_of)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Whether `account` was added (not a member already).
    pub async fn add_member(&self, room: &str, account: &str) -> Result<bool, PeopleError> {
        let (room, account) = (room.to_owned(), account.to_owned());
        self.with(move |conn| {
            Ok(conn.execute(
                "INSERT INTO room_members (room, account) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                [&room, &account],
            )? == 1)
        })
        .await
    }

    /// Whether `account` was a member.
    pub async fn remove_member(&self, room: &str, account: &str) -> Result<bool, PeopleError> {
        let (room, account) = (room.to_owned(), account.to_owned());
        self.with(move |conn| {
            Ok(conn.execute(
                "DELETE FROM room_members WHERE room = ?1 AND account = ?2",
                [&room, &account],
            )? == 1)
        })
        .await
    }

    /// The private rooms and conversations `account` is a member of.
    pub async fn rooms_of(&self, account: &str) -> Result<Vec<RoomRecord>, PeopleError> {
        let account = account.to_owned();
        self.with(move |conn| {
            let mut query = conn.prepare(&format!(
                "SELECT {ROOM_COLUMNS} FROM room_records
                 WHERE name IN (SELECT room FROM room_members WHERE account = ?1)"
            ))?;
            let rows = query.query_map([&account], room_of)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Everything kept of `room` here, in one transaction: its record, members, who hid it, its
    /// mutes and reports. Its members, as they were.
    pub async fn delete_room(&self, room: &str) -> Result<Vec<String>, PeopleError> {
        let room = room.to_owned();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let members = {
                let mut query = tx.prepare("SELECT account FROM room_members WHERE room = ?1")?;
                let rows = query.query_map([&room], |r| r.get(0))?;
                rows.collect::<Result<Vec<String>, _>>()?
            };
            for sql in [
                "DELETE FROM room_members WHERE room = ?1",
                "DELETE FROM room_records WHERE name = ?1",
                "DELETE FROM hidden_rooms WHERE room = ?1",
                "DELETE FROM mutes WHERE room = ?1",
                "DELETE FROM reports WHERE room = ?1",
                "DELETE FROM read_positions WHERE room = ?1",
                "DELETE FROM mentions WHERE room = ?1",
                "DELETE FROM notify_levels WHERE room = ?1",
            ] {
                tx.execute(sql, [&room])?;
            }
            tx.commit()?;
            Ok(members)
        })
        .await
    }

    pub async fn hidden(&self, account: &str) -> Result<Vec<String>, PeopleError> {
        let account = account.to_owned();
        self.with(move |conn| {
            let mut query = conn.prepare("SELECT room FROM hidden_rooms WHERE account = ?1")?;
            let rows = query.query_map([&account], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Whether that changed anything.
    pub async fn set_hidden(
        &self,
        account: &str,
        room: &str,
        hidden: bool,
    ) -> Result<bool, PeopleError> {
        let (account, room) = (account.to_owned(), room.to_owned());
        self.with(move |conn| {
            let sql = if hidden {
                "INSERT INTO hidden_rooms (account, room) VALUES (?1, ?2) ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM hidden_rooms WHERE account = ?1 AND room = ?2"
            };
            Ok(conn.execute(sql, [&account, &room])? == 1)
        })
        .await
    }
}

/// Read positions (`super::reading`).
impl SqlitePeople {
    pub async fn read_positions(
        &self,
        account: &str,
    ) -> Result<Vec<super::reading::ReadAt>, PeopleError> {
        let account = account.to_owned();
        self.with(move |conn| {
            let mut query =
                conn.prepare("SELECT room, epoch, seq FROM read_positions WHERE account = ?1")?;
            let rows = query.query_map([&account], |r| {
                Ok(super::reading::ReadAt {
                    room: r.get(0)?,
                    epoch: r.get(1)?,
                    seq: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// One transaction for the batch: one commit however many readers moved.
    pub async fn set_read_positions(
        &self,
        batch: &[super::reading::Reading],
    ) -> Result<Vec<bool>, PeopleError> {
        let batch = batch.to_vec();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut moved = Vec::with_capacity(batch.len());
            {
                let mut set = tx.prepare_cached(
                    "INSERT INTO read_positions (account, room, epoch, seq) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (account, room) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq
                     WHERE ?5 OR read_positions.epoch != excluded.epoch
                        OR read_positions.seq < excluded.seq",
                )?;
                for reading in &batch {
                    let at = &reading.at;
                    let changed = set.execute(params![
                        reading.account,
                        at.room,
                        at.epoch,
                        sql_int(at.seq),
                        reading.rewind
                    ])?;
                    moved.push(changed == 1);
                }
            }
            tx.commit()?;
            Ok(moved)
        })
        .await
    }
}

/// Mentions (`super::mentions`).
impl SqlitePeople {
    pub async fn add_mentions(
        &self,
        accounts: &[String],
        mention: &super::mentions::Mention,
    ) -> Result<(), PeopleError> {
        let (accounts, mention) = (accounts.to_vec(), mention.clone());
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for account in &accounts {
                tx.execute(
                    "INSERT OR IGNORE INTO mentions (account, room, epoch, seq, at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        account,
                        mention.room,
                        mention.epoch,
                        sql_int(mention.seq),
                        sql_int(mention.at)
                    ],
                )?;
                // Only the newest are kept.
                tx.execute(
                    "DELETE FROM mentions WHERE account = ?1 AND at < (
                         SELECT at FROM mentions WHERE account = ?1
                         ORDER BY at DESC LIMIT 1 OFFSET ?2)",
                    params![
                        account,
                        sql_int(super::mentions::KEPT_PER_PERSON as u64 - 1)
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn forget_mentions(&self, room: &str, seqs: &[u64]) -> Result<(), PeopleError> {
        let (room, seqs) = (room.to_owned(), seqs.to_vec());
        self.with(move |conn| {
            let tx = conn.transaction()?;
            for seq in seqs {
                tx.execute(
                    "DELETE FROM mentions WHERE room = ?1 AND seq = ?2",
                    params![room, sql_int(seq)],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn mentions_of(
        &self,
        account: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<super::mentions::Mention>, PeopleError> {
        let account = account.to_owned();
        self.with(move |conn| {
            let mut query = conn.prepare(
                "SELECT room, epoch, seq, at FROM mentions WHERE account = ?1 AND at < ?2
                 ORDER BY at DESC LIMIT ?3",
            )?;
            let rows = query.query_map(
                params![account, sql_int(before.unwrap_or(u64::MAX)), limit as i64],
                |r| {
                    Ok(super::mentions::Mention {
                        room: r.get(0)?,
                        epoch: r.get(1)?,
                        seq: r.get::<_, i64>(2)?.max(0) as u64,
                        at: r.get::<_, i64>(3)?.max(0) as u64,
                    })
                },
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn mentions_after(
        &self,
        account: &str,
        room: &str,
        epoch: &str,
        seq: u64,
    ) -> Result<u32, PeopleError> {
        let (account, room, epoch) = (account.to_owned(), room.to_owned(), epoch.to_owned());
        self.with(move |conn| {
            let counted: i64 = conn.query_row(
                "SELECT count(*) FROM mentions
                 WHERE account = ?1 AND room = ?2 AND epoch = ?3 AND seq > ?4",
                params![account, room, epoch, sql_int(seq)],
                |r| r.get(0),
            )?;
            Ok(u32::try_from(counted).unwrap_or(u32::MAX))
        })
        .await
    }
}

/// Whom each person ignores; deleting an account.
impl SqlitePeople {
    pub async fn ignored(&self, account: &str) -> Result<Vec<String>, PeopleError> {
        let account = account.to_owned();
        self.with(move |conn| {
            let mut query = conn.prepare("SELECT other FROM ignored WHERE account = ?1")?;
            let rows = query.query_map([&account], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn set_ignored(
        &self,
        account: &str,
        other: &str,
        ignored: bool,
    ) -> Result<(), PeopleError> {
        let (account, other) = (account.to_owned(), other.to_owned());
        self.with(move |conn| {
            let sql = if ignored {
                "INSERT INTO ignored (account, other) VALUES (?1, ?2) ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM ignored WHERE account = ?1 AND other = ?2"
            };
            conn.execute(sql, [&account, &other])?;
            Ok(())
        })
        .await
    }

    /// What makes an account deleted, in one transaction: no handle (free for someone else), no
    /// password, not active, what it ignored forgotten, its name `name`.
    pub async fn delete_account(&self, id: &str, name: &str) -> Result<(), PeopleError> {
        let (id, name) = (id.to_owned(), name.to_owned());
        self.with(move |conn| {
            let tx = conn.transaction()?;
            let changed = tx.execute(
                "UPDATE accounts SET handle = NULL, password = NULL, active = 0, name = ?2
                 WHERE id = ?1",
                [&id, &name],
            )?;
            tx.execute("DELETE FROM ignored WHERE account = ?1", [&id])?;
            tx.execute("DELETE FROM read_positions WHERE account = ?1", [&id])?;
            tx.execute("DELETE FROM mentions WHERE account = ?1", [&id])?;
            tx.execute("DELETE FROM notify_levels WHERE account = ?1", [&id])?;
            tx.execute("DELETE FROM push_subscriptions WHERE account = ?1", [&id])?;
            tx.commit()?;
            match changed {
                1 => Ok(()),
                _ => Err(PeopleError::NoSuchAccount),
            }
        })
        .await
    }
}

/// Notification levels, push subscriptions, the VAPID key (`super::notify`).
impl SqlitePeople {
    pub async fn notify_levels(
        &self,
        account: &str,
    ) -> Result<Vec<(String, super::notify::Level)>, PeopleError> {
        let account = account.to_owned();
        self.with(move |conn| {
            let mut query =
                conn.prepare("SELECT room, level FROM notify_levels WHERE account = ?1")?;
            let rows = query.query_map([&account], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let rows = rows.collect::<Result<Vec<_>, _>>()?;
            Ok(rows
                .into_iter()
                .filter_map(|(room, level)| Some((room, super::notify::Level::parse(&level)?)))
                .collect())
        })
        .await
    }

    pub async fn set_notify_level(
        &self,
        account: &str,
        room: &str,
        level: super::notify::Level,
    ) -> Result<(), PeopleError> {
        let (account, room) = (account.to_owned(), room.to_owned());
        self.with(move |conn| {
            match level {
                // The default is kept by keeping nothing.
                super::notify::Level::Mentions => conn.execute(
                    "DELETE FROM notify_levels WHERE account = ?1 AND room = ?2",
                    [&account, &room],
                )?,
                level => conn.execute(
                    "INSERT INTO notify_levels (account, room, level) VALUES (?1, ?2, ?3)
                     ON CONFLICT (account, room) DO UPDATE SET level = excluded.level",
                    [&account, &room, level.as_str()],
                )?,
            };
            Ok(())
        })
        .await
    }

    pub async fn told_every(&self, room: &str) -> Result<Vec<String>, PeopleError> {
        let room = room.to_owned();
        self.with(move |conn| {
            let mut query =
                conn.prepare("SELECT account FROM notify_levels WHERE room = ?1 AND level = ?2")?;
            let rows =
                query.query_map([&room, super::notify::Level::Every.as_str()], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<String>, _>>()?)
        })
        .await
    }

    pub async fn rooms_told_every(&self) -> Result<Vec<String>, PeopleError> {
        self.with(move |conn| {
            let mut query =
                conn.prepare("SELECT DISTINCT room FROM notify_levels WHERE level = ?1")?;
            let rows = query.query_map([super::notify::Level::Every.as_str()], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<String>, _>>()?)
        })
        .await
    }

    pub async fn subscribe(
        &self,
        subscription: &super::notify::Subscription,
    ) -> Result<(), PeopleError> {
        let s = subscription.clone();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR REPLACE INTO push_subscriptions (endpoint, account, session, p256dh, auth, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![s.endpoint, s.account, s.session, s.p256dh, s.auth, sql_int(s.at)],
            )?;
            // Only the newest are kept.
            tx.execute(
                "DELETE FROM push_subscriptions WHERE account = ?1 AND endpoint NOT IN (
                     SELECT endpoint FROM push_subscriptions WHERE account = ?1
                     ORDER BY at DESC LIMIT ?2)",
                params![
                    s.account,
                    super::notify::SUBSCRIPTIONS_PER_PERSON as i64
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn subscriptions(
        &self,
        account: &str,
    ) -> Result<Vec<super::notify::Subscription>, PeopleError> {
        let account = account.to_owned();
        self.with(move |conn| {
            let mut query = conn.prepare(
                "SELECT endpoint, account, session, p256dh, auth, at FROM push_subscriptions
                 WHERE account = ?1 ORDER BY at",
            )?;
            let rows = query.query_map([&account], |r| {
                Ok(super::notify::Subscription {
                    endpoint: r.get(0)?,
                    account: r.get(1)?,
                    session: r.get(2)?,
                    p256dh: r.get(3)?,
                    auth: r.get(4)?,
                    at: r.get::<_, i64>(5)?.max(0) as u64,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn unsubscribe(&self, account: &str, endpoint: &str) -> Result<(), PeopleError> {
        let (account, endpoint) = (account.to_owned(), endpoint.to_owned());
        self.with(move |conn| {
            conn.execute(
                "DELETE FROM push_subscriptions WHERE account = ?1 AND endpoint = ?2",
                [&account, &endpoint],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn subscribers(&self) -> Result<Vec<String>, PeopleError> {
        self.with(move |conn| {
            let mut query = conn.prepare("SELECT DISTINCT account FROM push_subscriptions")?;
            let rows = query.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<String>, _>>()?)
        })
        .await
    }

    pub async fn vapid_key(&self, made: &str) -> Result<String, PeopleError> {
        let made = made.to_owned();
        self.with(move |conn| {
            conn.execute(
                "INSERT OR IGNORE INTO secrets (name, value) VALUES ('vapid', ?1)",
                [&made],
            )?;
            Ok(
                conn.query_row("SELECT value FROM secrets WHERE name = 'vapid'", [], |r| {
                    r.get(0)
                })?,
            )
        })
        .await
    }
}

/// Password reset links (by their token's hash).
impl SqlitePeople {
    pub async fn save_reset(&self, id: &str, account: &str, until: u64) -> Result<(), PeopleError> {
        let (id, account) = (id.to_owned(), account.to_owned());
        self.with(move |conn| {
            // The spent-by-time go as a new one is made.
            conn.execute(
                "DELETE FROM resets WHERE until <= ?1",
                [sql_int(super::now_ms())],
            )?;
            conn.execute(
                "INSERT INTO resets (id, account, until) VALUES (?1, ?2, ?3)",
                params![id, account, sql_int(until)],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn reset(&self, id: &str) -> Result<Option<(String, u64)>, PeopleError> {
        let id = id.to_owned();
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT account, until FROM resets WHERE id = ?1",
                    [&id],
                    |r| Ok((r.get(0)?, from_sql(r.get(1)?))),
                )
                .optional()?)
        })
        .await
    }

    /// Deletes the link and says what it was: one `DELETE … RETURNING`, so it is used once.
    pub async fn take_reset(&self, id: &str) -> Result<Option<(String, u64)>, PeopleError> {
        let id = id.to_owned();
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    "DELETE FROM resets WHERE id = ?1 RETURNING account, until",
                    [&id],
                    |r| Ok((r.get(0)?, from_sql(r.get(1)?))),
                )
                .optional()?)
        })
        .await
    }
}

/// Bots: their webhooks and their API tokens.
impl SqlitePeople {
    pub async fn save_bot(&self, bot: &Bot) -> Result<(), PeopleError> {
        let bot = bot.clone();
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO bots (account, webhook, secret) VALUES (?1, ?2, ?3)
                 ON CONFLICT (account) DO UPDATE SET webhook = ?2, secret = ?3",
                params![bot.account, bot.webhook.unwrap_or_default(), bot.secret],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn bot(&self, account: &str) -> Result<Option<Bot>, PeopleError> {
        let account = account.to_owned();
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT account, webhook, secret FROM bots WHERE account = ?1",
                    [&account],
                    bot_of,
                )
                .optional()?)
        })
        .await
    }

    pub async fn add_bot_token(&self, token: &BotToken) -> Result<(), PeopleError> {
        let t = token.clone();
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO bot_tokens (id, account, label, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![t.id, t.account, t.label, sql_int(t.created_ms)],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn bot_token(&self, id: &str) -> Result<Option<BotToken>, PeopleError> {
        let id = id.to_owned();
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {BOT_TOKEN_COLUMNS} FROM bot_tokens WHERE id = ?1"),
                    [&id],
                    bot_token_of,
                )
                .optional()?)
        })
        .await
    }

    pub async fn bot_tokens(&self, account: &str) -> Result<Vec<BotToken>, PeopleError> {
        let account = account.to_owned();
        self.with(move |conn| {
            Ok(conn
                .prepare(&format!(
                    "SELECT {BOT_TOKEN_COLUMNS} FROM bot_tokens WHERE account = ?1
                     ORDER BY created_at"
                ))?
                .query_map([&account], bot_token_of)?
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    pub async fn revoke_bot_token(&self, account: &str, id: &str) -> Result<bool, PeopleError> {
        let (account, id) = (account.to_owned(), id.to_owned());
        self.with(move |conn| {
            Ok(conn.execute(
                "DELETE FROM bot_tokens WHERE id = ?1 AND account = ?2",
                [&id, &account],
            )? == 1)
        })
        .await
    }
}

/// Reports and mutes.
impl SqlitePeople {
    pub async fn report(&self, report: &Report) -> Result<bool, PeopleError> {
        let r = report.clone();
        self.with(move |conn| {
            Ok(conn.execute(
                "INSERT INTO reports (id, room, seq, by, reason, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT DO NOTHING",
                params![r.id, r.room, sql_int(r.seq), r.by, r.reason, sql_int(r.at_ms)],
            )? == 1)
        })
        .await
    }

    pub async fn reports(&self) -> Result<Vec<Report>, PeopleError> {
        self.with(|conn| {
            let mut query =
                conn.prepare("SELECT id, room, seq, by, reason, at FROM reports ORDER BY at")?;
            let rows = query.query_map([], |r| {
                Ok(Report {
                    id: r.get(0)?,
                    room: r.get(1)?,
                    seq: from_sql(r.get(2)?),
                    by: r.get(3)?,
                    reason: r.get(4)?,
                    at_ms: from_sql(r.get(5)?),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn close_reports(&self, room: &str, seq: u64) -> Result<usize, PeopleError> {
        let room = room.to_owned();
        self.with(move |conn| {
            Ok(conn.execute(
                "DELETE FROM reports WHERE room = ?1 AND seq = ?2",
                params![room, sql_int(seq)],
            )?)
        })
        .await
    }

    pub async fn mute(&self, room: &str, account: &str, until: u64) -> Result<(), PeopleError> {
        let (room, account) = (room.to_owned(), account.to_owned());
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO mutes (room, account, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (room, account) DO UPDATE SET until = ?3",
                params![room, account, sql_int(until)],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn muted_until(&self, room: &str, account: &str) -> Result<Option<u64>, PeopleError> {
        let (room, account) = (room.to_owned(), account.to_owned());
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT until FROM mutes WHERE room = ?1 AND account = ?2",
                    [&room, &account],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
                .map(from_sql))
        })
        .await
    }
}

/// The audit log.
impl SqlitePeople {
    /// Writes `entry`, and lets go of what is older than `oldest` (ms).
    pub async fn record(&self, entry: &AuditEntry, oldest: u64) -> Result<(), PeopleError> {
        let e = entry.clone();
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO audit (at, by, action, room, target, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![sql_int(e.at_ms), e.by, e.action, e.room, e.target, e.detail],
            )?;
            conn.execute("DELETE FROM audit WHERE at < ?1", [sql_int(oldest)])?;
            Ok(())
        })
        .await
    }

    /// The newest `limit` entries, the newest first.
    pub async fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, PeopleError> {
        self.with(move |conn| {
            let mut query = conn.prepare(
                "SELECT at, by, action, room, target, detail FROM audit
                 ORDER BY at DESC, rowid DESC LIMIT ?1",
            )?;
            let rows = query.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(AuditEntry {
                    at_ms: from_sql(r.get(0)?),
                    by: r.get(1)?,
                    action: r.get(2)?,
                    room: r.get(3)?,
                    target: r.get(4)?,
                    detail: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

impl SqlitePeople {
    /// Everything, for `herald import-to-redis`: the setup (its code, its owner), every account,
    /// every session.
    pub async fn everything(&self) -> Result<Everything, PeopleError> {
        self.with(|conn| {
            let setup = conn
                .query_row("SELECT code, owner FROM setup", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let accounts = conn
                .prepare(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts"))?
                .query_map([], account_of)?
                .collect::<Result<_, _>>()?;
            let sessions = conn
                .prepare(&format!("SELECT {SESSION_COLUMNS} FROM sessions"))?
                .query_map([], session_of)?
                .collect::<Result<_, _>>()?;
            let rooms = conn
                .prepare(&format!("SELECT {ROOM_COLUMNS} FROM room_records"))?
                .query_map([], room_of)?
                .collect::<Result<_, _>>()?;
            let members = conn
                .prepare("SELECT room, account FROM room_members")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let hidden = conn
                .prepare("SELECT account, room FROM hidden_rooms")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let ignored = conn
                .prepare("SELECT account, other FROM ignored")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let read_positions = conn
                .prepare("SELECT account, room, epoch, seq FROM read_positions")?
                .query_map([], |r| {
                    Ok(super::reading::Reading {
                        account: r.get(0)?,
                        at: super::reading::ReadAt {
                            room: r.get(1)?,
                            epoch: r.get(2)?,
                            seq: r.get::<_, i64>(3)?.max(0) as u64,
                        },
                        rewind: true,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let bots = conn
                .prepare("SELECT account, webhook, secret FROM bots")?
                .query_map([], bot_of)?
                .collect::<Result<_, _>>()?;
            let bot_tokens = conn
                .prepare(&format!("SELECT {BOT_TOKEN_COLUMNS} FROM bot_tokens"))?
                .query_map([], bot_token_of)?
                .collect::<Result<_, _>>()?;
            Ok(Everything {
                setup,
                accounts,
                sessions,
                rooms,
                members,
                hidden,
                ignored,
                read_positions,
                bots,
                bot_tokens,
            })
        })
        .await
    }
}

/// A node's people, whole.
pub struct Everything {
    /// The setup code, and the owner's id once claimed.
    pub setup: Option<(String, Option<String>)>,
    pub accounts: Vec<Account>,
    pub sessions: Vec<SessionInfo>,
    pub rooms: Vec<RoomRecord>,
    /// `(room, account)`.
    pub members: Vec<(String, String)>,
    /// `(account, room)`.
    pub hidden: Vec<(String, String)>,
    /// `(account, other)`.
    pub ignored: Vec<(String, String)>,
    pub read_positions: Vec<super::reading::Reading>,
    pub bots: Vec<Bot>,
    pub bot_tokens: Vec<BotToken>,
}

const ACCOUNT_COLUMNS: &str = "id, handle, name, role, password, active, created_at";
const SESSION_COLUMNS: &str = "id, account, created_at, last_seen, agent";
const ROOM_COLUMNS: &str = "name, kind, title, topic, created_by, created_at, archived";
const INVITATION_COLUMNS: &str = "id, by, created_at, expires_at, uses_left";
const BOT_TOKEN_COLUMNS: &str = "id, account, label, created_at";

fn bot_of(row: &Row<'_>) -> rusqlite::Result<Bot> {
    let webhook: String = row.get(1)?;
    Ok(Bot {
        account: row.get(0)?,
        webhook: (!webhook.is_empty()).then_some(webhook),
        secret: row.get(2)?,
    })
}

fn bot_token_of(row: &Row<'_>) -> rusqlite::Result<BotToken> {
    Ok(BotToken {
        id: row.get(0)?,
        account: row.get(1)?,
        label: row.get(2)?,
        created_ms: from_sql(row.get(3)?),
    })
}

fn invitation_of(row: &Row<'_>) -> rusqlite::Result<Invitation> {
    Ok(Invitation {
        id: row.get(0)?,
        by: row.get(1)?,
        created_ms: from_sql(row.get(2)?),
        expires_ms: from_sql(row.get(3)?),
        uses_left: row.get::<_, i64>(4)?.clamp(0, i64::from(u32::MAX)) as u32,
    })
}

fn insert(conn: &Connection, account: &Account) -> Result<(), PeopleError> {
    let inserted = conn.execute(
        "INSERT INTO accounts (id, handle, name, role, password, active, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        params![
            account.id,
            account.handle,
            account.name,
            account.role.as_str(),
            account.password,
            account.active,
            sql_int(account.created_ms)
        ],
    )?;
    match inserted {
        1 => Ok(()),
        _ => Err(PeopleError::HandleTaken),
    }
}

fn account_of(row: &Row<'_>) -> rusqlite::Result<Account> {
    let role: String = row.get(3)?;
    Ok(Account {
        id: row.get(0)?,
        handle: row.get(1)?,
        name: row.get(2)?,
        // A role this version does not know reads as a guest's: the least it could be.
        role: Role::parse(&role).unwrap_or(Role::Guest),
        password: row.get(4)?,
        active: row.get(5)?,
        created_ms: from_sql(row.get(6)?),
    })
}

fn room_of(row: &Row<'_>) -> rusqlite::Result<RoomRecord> {
    let name: String = row.get(0)?;
    let kind: String = row.get(1)?;
    Ok(RoomRecord {
        // A kind this version does not know reads as the name says.
        kind: RoomKind::parse(&kind).unwrap_or_else(|| RoomKind::of(&name)),
        name,
        title: row.get(2)?,
        topic: row.get(3)?,
        created_by: row.get(4)?,
        created_ms: from_sql(row.get(5)?),
        archived: row.get(6)?,
    })
}

fn session_of(row: &Row<'_>) -> rusqlite::Result<SessionInfo> {
    Ok(SessionInfo {
        id: row.get(0)?,
        account: row.get(1)?,
        created_ms: from_sql(row.get(2)?),
        last_seen_ms: from_sql(row.get(3)?),
        agent: row.get(4)?,
    })
}

fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_sql(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
