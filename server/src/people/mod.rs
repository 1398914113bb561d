//! Who the people are: accounts (a handle to sign in with, a display name, a role, a password's
//! hash), guests (a name only), and the sessions that sign each of them in on a device. Kept beside
//! the log: in SQLite on one node (tables in herald.db, so a backup holds them), in Redis in cluster
//! mode (every node sees the same people, docs/ACCOUNTS.md).
//!
//! A session is a random token in a cookie; the store keeps only the token's SHA-256 (a stolen copy
//! of the store signs nobody in), so ending a session — signing out, a new password, an admin's
//! word — takes effect on the next request, on every node. A session lasts `--session-days` from
//! its last use.
//!
//! The first account is the owner (an admin), claimed with the setup code Herald prints at start
//! ([`People::set_up`]); until then the server serves nothing else (`access.rs`).

mod password;
mod redis;
pub mod rooms;
mod sqlite;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use app::protocol::Identity;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use bots::{BOT_TOKEN_PREFIX, Bot, BotToken};
pub use password::{Hasher, PasswordError, check_new_password};
pub use rooms::{RoomKind, RoomRecord};

use crate::{ids::random_hex, redis_link::RedisLink};

/// What a person may do (docs/ACCOUNTS.md has the table of doors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Moderator,
    Member,
    /// A name only, no password: reads and writes open rooms, nothing else (`--guests`).
    Guest,
    Bot,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Moderator => "moderator",
            Role::Member => "member",
            Role::Guest => "guest",
            Role::Bot => "bot",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "admin" => Role::Admin,
            "moderator" => Role::Moderator,
            "member" => Role::Member,
            "guest" => Role::Guest,
            "bot" => Role::Bot,
            _ => return None,
        })
    }
}

/// One person, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Stable for life: what messages name as their author.
    pub id: String,
    /// What they sign in with and `@mentions` name: lowercase; `None` for a guest.
    pub handle: Option<String>,
    pub name: String,
    pub role: Role,
    /// The password's Argon2id PHC string; `None` for guests and bots.
    pub password: Option<String>,
    /// An admin can deactivate an account: its sessions end, it cannot sign in.
    pub active: bool,
    pub created_ms: u64,
}

impl Account {
    /// As messages and the wire name them.
    pub fn identity(&self) -> Identity {
        Identity {
            id: self.id.clone(),
            name: self.name.clone(),
        }
    }
}

/// An account to be made.
pub struct NewAccount {
    pub handle: Option<String>,
    pub name: String,
    pub role: Role,
    pub password: Option<String>,
}

/// One signed-in device, as its owner sees it on their account page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The stored key: the SHA-256 of the cookie's token, as hex. Never the token itself.
    pub id: String,
    pub account: String,
    pub created_ms: u64,
    pub last_seen_ms: u64,
    /// The browser's `User-Agent`, cut short, to tell devices apart.
    pub agent: String,
}

/// A live invitation: a link that lets `uses_left` more people make an account until it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    /// The stored key: the SHA-256 of the link's token, as hex (the token itself is shown once).
    pub id: String,
    /// The account that made it.
    pub by: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub uses_left: u32,
}

/// How long the audit log keeps what it was told (docs/ACCOUNTS.md, "Moderation").
pub const AUDIT_KEPT: Duration = Duration::from_secs(90 * 24 * 3600);

/// One moderation or administration action, as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at_ms: u64,
    /// The account that did it.
    pub by: String,
    /// What was done: `remove_message`, `remove_member`, `archive`, `restore`, `deactivate`,
    /// `reactivate`, `role`.
    pub action: String,
    /// The room it was done in, if any.
    pub room: String,
    /// What it was done to: a message's seq, an account's id.
    pub target: String,
    /// Anything more (a new role; a removed message's author).
    pub detail: String,
}

/// A message reported to the moderators, until one of them deals with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Unique per message and reporter: reporting it again changes nothing.
    pub id: String,
    pub room: String,
    pub seq: u64,
    /// Who reported it.
    pub by: String,
    pub reason: String,
    pub at_ms: u64,
}

impl Report {
    /// The id of `by`'s report of message `seq` of `room`.
    pub fn id_of(room: &str, seq: u64, by: &str) -> String {
        crate::ids::hex(&Sha256::digest(format!("{room}\n{seq}\n{by}").as_bytes())[..12])
    }
}

/// Who a request's session says is asking.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub account: Account,
    /// The session's stored key ([`SessionInfo::id`]).
    pub session: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    #[error("that handle is taken")]
    HandleTaken,
    #[error("this server has its owner already")]
    AlreadySetUp,
    #[error("that invitation is not valid: expired, used up or revoked")]
    NoSuchInvitation,
    #[error("that is not the setup code")]
    WrongCode,
    #[error("no such account")]
    NoSuchAccount,
    #[error("the people store failed: {0}")]
    Storage(String),
}

impl From<rusqlite::Error> for PeopleError {
    fn from(e: rusqlite::Error) -> Self {
        PeopleError::Storage(e.to_string())
    }
}

impl From<::redis::RedisError> for PeopleError {
    fn from(e: ::redis::RedisError) -> Self {
        PeopleError::Storage(e.to_string())
    }
}

/// The longest `User-Agent` kept with a session.
const MAX_AGENT_CHARS: usize = 200;

/// A session's last use is written at most this often: a busy person's every request is not a write.
const TOUCH_EVERY_MS: u64 = 5 * 60 * 1000;

/// How long a node trusts a session it looked up, before it asks the store again: what it ends
/// itself, or hears ended from another node, it forgets at once; anything else changed elsewhere
/// (a rename) shows within this. A reconnect storm, or one person's many sockets, then costs one
/// lookup per session, not one per handshake.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// The most sessions a node keeps trusted at once (past it, the stale ones go first).
const TRUSTED_MAX: usize = 10_000;

/// How long a node keeps every account it read ([`People::directory`]) before reading them again:
/// asked on every page load and every keystroke after an `@`, and reading every account each time
/// would cost a cluster dearly.
const DIRECTORY_KEPT: Duration = Duration::from_secs(10);

/// Every account, as one read found them.
#[derive(Debug)]
pub struct Directory {
    /// Oldest first.
    pub accounts: Arc<[Account]>,
    /// Of them, those deactivated or deleted.
    pub gone: Arc<marks::Gone>,
}

type DirectoryCache = Arc<std::sync::Mutex<Option<(std::time::Instant, Arc<Directory>)>>>;

/// The people store. Cheap to clone.
#[derive(Clone)]
pub struct People {
    store: Store,
    /// Sessions looked up in the last [`TRUSTED_FOR`], by stored key.
    trusted:
        Arc<std::sync::Mutex<std::collections::HashMap<String, (SignedIn, std::time::Instant)>>>,
    /// How long a session lasts after its last use.
    session_ttl: Duration,
    /// Once true, for good: the setup is never undone, so it need not be asked again.
    set_up: Arc<AtomicBool>,
    /// Every account as last read, with what pages mark of them ([`People::directory`]).
    directory: DirectoryCache,
}

#[derive(Clone)]
enum Store {
    Sqlite(sqlite::SqlitePeople),
    Redis(redis::RedisPeople),
}

/// How long Redis may take to answer one of the store's commands.
const REDIS_PATIENCE: Duration = Duration::from_secs(2);

/// Calls the same method on whichever store this is. Redis gets a second try when the first
/// failed to reach it: after a restart of Redis, the first command on the old connection fails and
/// sets a new one up (the log's appends are re-sent by their clients; these would be refused).
macro_rules! each {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.store {
            Store::Sqlite(s) => s.$method($($arg),*).await,
            Store::Redis(s) => {
                let mut tried = false;
                loop {
                    let answer = tokio::time::timeout(REDIS_PATIENCE, s.$method($($arg),*))
                        .await
                        .unwrap_or_else(|_| {
                            Err(PeopleError::Storage("Redis did not answer in time".into()))
                        });
                    match answer {
                        Err(PeopleError::Storage(_)) if !tried => tried = true,
                        answer => break answer,
                    }
                }
            }
        }
    };
}

// After the macro: these modules' methods use it too.
mod bots;
mod marks;
pub mod mentions;
pub mod notify;
pub mod reading;

pub use marks::{DELETED_NAME, GUEST_ID_PREFIX, Gone, is_deleted};

impl People {
    /// The people of this node, in DATA_DIR/herald.db.
    pub fn open_sqlite(path: &std::path::Path, session_ttl: Duration) -> Result<Self, PeopleError> {
        Ok(Self::with(
            Store::Sqlite(sqlite::SqlitePeople::open(path)?),
            session_ttl,
        ))
    }

    /// The cluster's people, in Redis.
    pub async fn open_redis(link: &RedisLink, session_ttl: Duration) -> Result<Self, PeopleError> {
        Ok(Self::with(
            Store::Redis(redis::RedisPeople::open(link).await?),
            session_ttl,
        ))
    }

    fn with(store: Store, session_ttl: Duration) -> Self {
        Self {
            store,
            session_ttl,
            set_up: Arc::new(AtomicBool::new(false)),
            trusted: Arc::default(),
            directory: Arc::default(),
        }
    }

    /// Whether the owner's account has been made.
    pub async fn is_set_up(&self) -> Result<bool, PeopleError> {
        if self.set_up.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let done = each!(self.is_set_up());
        if matches!(done, Ok(true)) {
            self.set_up.store(true, Ordering::Relaxed);
        }
        done
    }

    /// The code the setup page asks for: `wanted` (`--setup-code`) or, the first time, a new one.
    /// In a cluster every node answers the one the first node chose, until the setup is done.
    pub async fn setup_code(&self, wanted: Option<&str>) -> Result<String, PeopleError> {
        let fresh = wanted.map_or_else(new_setup_code, str::to_owned);
        each!(self.setup_code(&fresh, wanted.is_some()))
    }

    /// Makes the owner's account, once: whoever comes second is told [`PeopleError::AlreadySetUp`],
    /// on any node. `code` is checked against the stored one (in constant time).
    pub async fn set_up(&self, code: &str, owner: NewAccount) -> Result<Account, PeopleError> {
        let account = new_account(owner);
        let stored = each!(self.stored_setup_code())?;
        // As printed, or typed by hand: any case, any spaces.
        let code: String = code
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        match stored {
            Some(stored) if same_secret(&stored, &code) => {}
            Some(_) => return Err(PeopleError::WrongCode),
            None => return Err(PeopleError::AlreadySetUp),
        }
        each!(self.set_up(&account))?;
        self.set_up.store(true, Ordering::Relaxed);
        self.forget_directory();
        Ok(account)
    }

    /// Makes an account; [`PeopleError::HandleTaken`] if its handle is someone's.
    pub async fn create(&self, new: NewAccount) -> Result<Account, PeopleError> {
        let account = new_account(new);
        each!(self.create(&account))?;
        // A guest is neither offered to be mentioned nor marked: a crowd of them arriving does not
        // have every account read again for each.
        if account.role != Role::Guest {
            self.forget_directory();
        }
        Ok(account)
    }

    /// A new invitation by `by`, for `uses` people, for `ttl`: the token for its link.
    pub async fn invite(&self, by: &str, uses: u32, ttl: Duration) -> Result<String, PeopleError> {
        let token = random_hex(32);
        let now = now_ms();
        let invitation = Invitation {
            id: session_key(&token),
            by: by.to_owned(),
            created_ms: now,
            expires_ms: now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
            uses_left: uses,
        };
        each!(self.save_invitation(&invitation))?;
        Ok(token)
    }

    /// The invitation of a link's `token`, if it still lets someone in.
    pub async fn invitation(&self, token: &str) -> Result<Option<Invitation>, PeopleError> {
        if !is_token(token) {
            return Ok(None);
        }
        let found = each!(self.invitation(&session_key(token)))?;
        let now = now_ms();
        Ok(found.filter(|i| i.uses_left > 0 && i.expires_ms > now))
    }

    /// Every invitation that still lets someone in, the newest first.
    pub async fn invitations(&self) -> Result<Vec<Invitation>, PeopleError> {
        let now = now_ms();
        let mut live = each!(self.invitations())?;
        live.retain(|i| i.uses_left > 0 && i.expires_ms > now);
        live.sort_by_key(|i| std::cmp::Reverse(i.created_ms));
        Ok(live)
    }

    /// Takes an invitation back: its link lets nobody else in.
    pub async fn revoke_invitation(&self, id: &str) -> Result<(), PeopleError> {
        each!(self.revoke_invitation(id))
    }

    /// Makes an account with one use of the invitation of `token`, in one step: a link for two
    /// people lets two in however many try at once; a handle taken uses nothing up.
    pub async fn join(&self, token: &str, new: NewAccount) -> Result<Account, PeopleError> {
        if !is_token(token) {
            return Err(PeopleError::NoSuchInvitation);
        }
        let account = new_account(new);
        each!(self.join(&session_key(token), &account, now_ms()))?;
        self.forget_directory();
        Ok(account)
    }

    pub async fn by_handle(&self, handle: &str) -> Result<Option<Account>, PeopleError> {
        let handle = handle.trim().to_lowercase();
        each!(self.by_handle(&handle))
    }

    pub async fn account(&self, id: &str) -> Result<Option<Account>, PeopleError> {
        each!(self.account(id))
    }

    /// Makes a room's record with its first members, unless that name has one: whether it was made.
    pub async fn create_room(
        &self,
        record: &RoomRecord,
        members: &[String],
    ) -> Result<bool, PeopleError> {
        each!(self.create_room(record, members))
    }

    /// A room's record, if it has one.
    pub async fn room(&self, name: &str) -> Result<Option<RoomRecord>, PeopleError> {
        each!(self.room(name))
    }

    /// Stores a record's title, topic and archived flag.
    pub async fn update_room(&self, record: &RoomRecord) -> Result<(), PeopleError> {
        each!(self.update_room(record))
    }

    pub async fn is_member(&self, room: &str, account: &str) -> Result<bool, PeopleError> {
        each!(self.is_member(room, account))
    }

    /// A private room's or conversation's members, as accounts (the oldest first).
    pub async fn members(&self, room: &str) -> Result<Vec<Account>, PeopleError> {
        let mut members = each!(self.members(room))?;
        members.sort_by_key(|a| a.created_ms);
        Ok(members)
    }

    /// Whether `account` was added (was not a member).
    pub async fn add_member(&self, room: &str, account: &str) -> Result<bool, PeopleError> {
        each!(self.add_member(room, account))
    }

    /// Whether `account` was a member.
    pub async fn remove_member(&self, room: &str, account: &str) -> Result<bool, PeopleError> {
        each!(self.remove_member(room, account))
    }

    /// The private rooms and conversations `account` is in.
    pub async fn rooms_of(&self, account: &str) -> Result<Vec<RoomRecord>, PeopleError> {
        each!(self.rooms_of(account))
    }

    /// Forgets everything kept of `room` (an admin deleted it): its record, members, who hid it,
    /// its mutes and open reports. Its members, as they were, to tell their lists.
    pub async fn delete_room(&self, room: &str) -> Result<Vec<String>, PeopleError> {
        each!(self.delete_room(room))
    }

    /// The rooms `account` hid from their list.
    pub async fn hidden(&self, account: &str) -> Result<Vec<String>, PeopleError> {
        each!(self.hidden(account))
    }

    /// Hides `room` from `account`'s list, or shows it again: whether that changed anything.
    pub async fn set_hidden(
        &self,
        account: &str,
        room: &str,
        hidden: bool,
    ) -> Result<bool, PeopleError> {
        each!(self.set_hidden(account, room, hidden))
    }

    /// Notes a moderation or administration action in the audit log (which lets go of what is
    /// older than [`AUDIT_KEPT`] as it is written). Failing to note it is logged, not fatal: the
    /// action is done.
    pub async fn record(&self, by: &str, action: &str, room: &str, target: &str, detail: &str) {
        let entry = AuditEntry {
            at_ms: now_ms(),
            by: by.to_owned(),
            action: action.to_owned(),
            room: room.to_owned(),
            target: target.to_owned(),
            detail: detail.to_owned(),
        };
        let oldest = entry
            .at_ms
            .saturating_sub(u64::try_from(AUDIT_KEPT.as_millis()).unwrap_or(u64::MAX));
        if let Err(e) = each!(self.record(&entry, oldest)) {
            tracing::error!(action, by, "cannot write the audit log: {e}");
        }
    }

    /// A one-time link's token that lets `account` choose a new password within `ttl` (an admin's
    /// doing: no e-mail needed). The store keeps only its SHA-256.
    pub async fn issue_reset(&self, account: &str, ttl: Duration) -> Result<String, PeopleError> {
        let token = random_hex(32);
        let until = now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        each!(self.save_reset(&session_key(&token), account, until))?;
        Ok(token)
    }

    /// The account a live reset link is for, without using it.
    pub async fn reset_for(&self, token: &str) -> Result<Option<String>, PeopleError> {
        if !is_token(token) {
            return Ok(None);
        }
        let key = session_key(token);
        let found = each!(self.reset(&key))?;
        Ok(found
            .filter(|(_, until)| *until > now_ms())
            .map(|(account, _)| account))
    }

    /// Uses a reset link up (once, atomically: two at once get it once): the account it was for.
    pub async fn use_reset(&self, token: &str) -> Result<Option<String>, PeopleError> {
        if !is_token(token) {
            return Ok(None);
        }
        let key = session_key(token);
        let used = each!(self.take_reset(&key))?;
        Ok(used
            .filter(|(_, until)| *until > now_ms())
            .map(|(account, _)| account))
    }

    /// Files `report` (again: nothing changes). Whether it is new.
    pub async fn report(&self, report: &Report) -> Result<bool, PeopleError> {
        each!(self.report(report))
    }

    /// The open reports, the oldest first.
    pub async fn reports(&self) -> Result<Vec<Report>, PeopleError> {
        each!(self.reports())
    }

    /// Closes every report of message `seq` of `room` (removed, or seen and let be): how many.
    pub async fn close_reports(&self, room: &str, seq: u64) -> Result<usize, PeopleError> {
        each!(self.close_reports(room, seq))
    }

    /// Mutes `account` in `room` until `until_ms` (0: no more).
    pub async fn mute(&self, room: &str, account: &str, until_ms: u64) -> Result<(), PeopleError> {
        each!(self.mute(room, account, until_ms))
    }

    /// Until when `account` is muted in `room`, if they are now.
    pub async fn muted_until(&self, room: &str, account: &str) -> Result<Option<u64>, PeopleError> {
        let until = each!(self.muted_until(room, account))?;
        Ok(until.filter(|until| *until > now_ms()))
    }

    /// The audit log's newest `limit` entries, the newest first.
    pub async fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, PeopleError> {
        each!(self.audit(limit))
    }

    /// Every account, guests' too, the oldest first (for the admin's people page).
    pub async fn accounts(&self) -> Result<Vec<Account>, PeopleError> {
        let mut all = each!(self.accounts())?;
        all.sort_by_key(|a| a.created_ms);
        Ok(all)
    }

    /// Every account (oldest first) and what pages mark of them, as of at most
    /// [`DIRECTORY_KEPT`] ago — this node's own changes at once. For what is asked often and may
    /// be a moment behind another node: a page's marks, the `@` completion's every keystroke.
    pub async fn directory(&self) -> Result<Arc<Directory>, PeopleError> {
        if let Some((at, directory)) = &*self.directory.lock().unwrap_or_else(|p| p.into_inner())
            && at.elapsed() < DIRECTORY_KEPT
        {
            return Ok(directory.clone());
        }
        let accounts = self.accounts().await?;
        let directory = Arc::new(Directory {
            gone: Arc::new(marks::Gone::of(&accounts)),
            accounts: accounts.into(),
        });
        *self.directory.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), directory.clone()));
        Ok(directory)
    }

    /// Forgets the directory read last: an account was made or changed here.
    fn forget_directory(&self) {
        *self.directory.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Deactivates (`false`) or reactivates an account. A deactivated account signs nobody in; its
    /// sessions are to be ended by the caller ([`People::end_sessions`]).
    pub async fn set_active(&self, id: &str, active: bool) -> Result<(), PeopleError> {
        let set = each!(self.set_active(id, active));
        self.forget_account(id);
        set
    }

    /// A new role; every session of the account has it from its next request.
    pub async fn set_role(&self, id: &str, role: Role) -> Result<(), PeopleError> {
        let set = each!(self.set_role(id, role));
        self.forget_account(id);
        set
    }

    /// A new display name; every session of the account shows it from its next request.
    pub async fn rename(&self, id: &str, name: &str) -> Result<(), PeopleError> {
        let renamed = each!(self.rename(id, name));
        self.forget_account(id);
        renamed
    }

    pub async fn set_password(&self, id: &str, phc: &str) -> Result<(), PeopleError> {
        let set = each!(self.set_password(id, phc));
        self.forget_account(id);
        set
    }

    /// Signs `account` in on a device: the token for its cookie.
    pub async fn open_session(&self, account: &str, agent: &str) -> Result<String, PeopleError> {
        let token = random_hex(32);
        let now = now_ms();
        let info = SessionInfo {
            id: session_key(&token),
            account: account.to_owned(),
            created_ms: now,
            last_seen_ms: now,
            agent: agent.chars().take(MAX_AGENT_CHARS).collect(),
        };
        each!(self.open_session(&info, self.session_ttl))?;
        Ok(token)
    }

    /// Who the cookie's `token` signs in, if its session is live and its account active. Notes the
    /// use (now and then), which keeps the session alive.
    pub async fn signed_in(&self, token: &str) -> Result<Option<SignedIn>, PeopleError> {
        if !is_token(token) {
            return Ok(None);
        }
        let key = session_key(token);
        if let Some((who, at)) = self.trusted().get(&key)
            && at.elapsed() < TRUSTED_FOR
        {
            return Ok(Some(who.clone()));
        }
        let Some(session) = each!(self.session(&key))? else {
            return Ok(None);
        };
        let now = now_ms();
        let ttl_ms = u64::try_from(self.session_ttl.as_millis()).unwrap_or(u64::MAX);
        if session.last_seen_ms.saturating_add(ttl_ms) <= now {
            each!(self.end_session(&session.account, &key)).map(|_| ())?;
            return Ok(None);
        }
        let Some(account) = each!(self.account(&session.account))? else {
            return Ok(None);
        };
        if !account.active {
            return Ok(None);
        }
        if now.saturating_sub(session.last_seen_ms) >= TOUCH_EVERY_MS {
            each!(self.touch_session(&key, now, self.session_ttl))?;
        }
        let who = SignedIn {
            account,
            session: key.clone(),
        };
        let mut trusted = self.trusted();
        if trusted.len() >= TRUSTED_MAX {
            trusted.retain(|_, (_, at)| at.elapsed() < TRUSTED_FOR);
            if trusted.len() >= TRUSTED_MAX {
                trusted.clear();
            }
        }
        trusted.insert(key, (who.clone(), std::time::Instant::now()));
        Ok(Some(who))
    }

    fn trusted(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (SignedIn, std::time::Instant)>>
    {
        self.trusted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets these sessions (stored keys) at once: they ended, here or on another node.
    pub fn forget(&self, sessions: &[String]) {
        let mut trusted = self.trusted();
        for key in sessions {
            trusted.remove(key);
        }
    }

    /// Forgets every session of `account` at once, and the directory: it changed (a new name, a
    /// new role, a new password, deactivated, deleted).
    fn forget_account(&self, account: &str) {
        self.trusted()
            .retain(|_, (who, _)| who.account.id != account);
        self.forget_directory();
    }

    /// The account's live sessions, the most recently used first.
    pub async fn sessions(&self, account: &str) -> Result<Vec<SessionInfo>, PeopleError> {
        let mut sessions = each!(self.sessions(account))?;
        let now = now_ms();
        let ttl_ms = u64::try_from(self.session_ttl.as_millis()).unwrap_or(u64::MAX);
        sessions.retain(|s| s.last_seen_ms.saturating_add(ttl_ms) > now);
        sessions.sort_by_key(|s| std::cmp::Reverse(s.last_seen_ms));
        Ok(sessions)
    }

    /// Signs one device out; only the account's own sessions can be named. Whether it was one.
    pub async fn end_session(&self, account: &str, session: &str) -> Result<bool, PeopleError> {
        let ended = each!(self.end_session(account, session));
        if matches!(ended, Ok(true)) {
            self.forget(&[session.to_owned()]);
        }
        ended
    }

    /// Signs the account out everywhere but `keep`: the sessions ended.
    pub async fn end_sessions(
        &self,
        account: &str,
        keep: Option<&str>,
    ) -> Result<Vec<String>, PeopleError> {
        let mut ended = Vec::new();
        for session in each!(self.sessions(account))? {
            if Some(session.id.as_str()) != keep {
                each!(self.end_session(account, &session.id))?;
                ended.push(session.id);
            }
        }
        self.forget(&ended);
        Ok(ended)
    }

    /// Whether the store answers (for the readiness check).
    pub async fn check(&self) -> Result<(), PeopleError> {
        each!(self.is_set_up()).map(|_| ())
    }
}

/// `herald import-to-redis`: the accounts, sessions and setup of the single node whose database is
/// `db` copied into the Redis of `link`, so everyone stays who they are and signed in on the
/// cluster. Refuses (copying nothing) if Redis holds people already. Answers (accounts, sessions).
pub async fn import_to_redis(
    db: &std::path::Path,
    link: &RedisLink,
    session_ttl: Duration,
) -> Result<(usize, usize), PeopleError> {
    let from = sqlite::SqlitePeople::open(db)?;
    let to = redis::RedisPeople::open(link).await?;
    if !to.is_empty().await? {
        return Err(PeopleError::Storage(
            "Redis already holds accounts or a setup: nothing was copied".into(),
        ));
    }
    let everything = from.everything().await?;
    to.import(&everything, session_ttl).await?;
    Ok((everything.accounts.len(), everything.sessions.len()))
}

/// Whether the Redis of `link` holds no people yet (what an import checks before it copies).
pub async fn redis_has_no_people(link: &RedisLink) -> Result<bool, PeopleError> {
    redis::RedisPeople::open(link).await?.is_empty().await
}

fn new_account(new: NewAccount) -> Account {
    let id = match new.role {
        Role::Guest => format!("{GUEST_ID_PREFIX}{}", random_hex(8)),
        _ => random_hex(8),
    };
    Account {
        id,
        handle: new.handle.map(|h| h.to_lowercase()),
        name: new.name,
        role: new.role,
        password: new.password,
        active: true,
        created_ms: now_ms(),
    }
}

/// Whether `value` has the shape of a token Herald makes (a session's, an invitation's): 64
/// lowercase hex digits, as `random_hex(32)` writes them. Anything else is never looked up.
fn is_token(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What the store keeps of a session's token.
fn session_key(token: &str) -> String {
    crate::ids::hex(&Sha256::digest(token.as_bytes()))
}

/// Five groups of four letters and digits that cannot be misread (no 0/O, 1/I/L): 100 bits.
fn new_setup_code() -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
    let mut bytes = [0u8; 20];
    let _ = getrandom::fill(&mut bytes);
    let letters: Vec<char> = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    letters
        .chunks(4)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Whether two secrets are the same, taking as long whichever byte differs (a guess learns nothing
/// from the time the answer takes). Compares digests, so the length leaks nothing either.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What a handle may be: 2 to 32 of `a-z`, `0-9`, `.`, `_`, `-`, starting with a letter or digit.
/// Plain ASCII, so no two handles look alike; lowercase, so `@Ann` and `@ann` are one person.
pub fn valid_handle(handle: &str) -> Result<String, &'static str> {
    let handle = handle.trim().to_lowercase();
    let len = handle.chars().count();
    if !(2..=32).contains(&len) {
        return Err("A handle is 2 to 32 characters long.");
    }
    if !handle
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(
            "A handle is made of the letters a to z, digits, dots, dashes and underscores.",
        );
    }
    if !handle.as_bytes()[0].is_ascii_alphanumeric() {
        return Err("A handle starts with a letter or a digit.");
    }
    // `@ann.` at the end of a sentence mentions `ann`: a handle ending in a dot could never be.
    if handle.ends_with('.') {
        return Err("A handle does not end with a dot.");
    }
    if app::protocol::RESERVED_HANDLES.contains(&handle.as_str()) {
        return Err("That word calls on a whole room: it cannot be a handle.");
    }
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_plain_lowercase_words() {
        assert_eq!(valid_handle(" Ann.Lee "), Ok("ann.lee".into()));
        assert_eq!(valid_handle("bo_2-x"), Ok("bo_2-x".into()));
        for bad in [
            "a",
            "",
            "ann lee",
            "аnn",
            "-ann",
            ".x",
            "ann@x",
            "ann.",
            "room",
            "Everyone",
            &"a".repeat(33),
        ] {
            assert!(valid_handle(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn setup_codes_are_long_and_unambiguous() {
        let code = new_setup_code();
        assert_eq!(code.len(), 24);
        assert!(
            code.chars()
                .all(|c| c == '-' || "23456789ABCDEFGHJKMNPQRSTUVWXYZ".contains(c))
        );
        assert_ne!(code, new_setup_code());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("ABCD-EFGH", "ABCD-EFGH"));
        assert!(!same_secret("ABCD-EFGH", "ABCD-EFGX"));
        assert!(!same_secret("ABCD-EFGH", "ABCD"));
        assert!(!same_secret("", "x"));
    }
}
