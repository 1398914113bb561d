//! The cluster's people, in Redis: every key under one hash tag, `{people}`, so that on a Redis
//! Cluster they share a slot and a script can change several at once (a handle is claimed in the
//! same step that makes its account; the setup is claimed once, whichever node asks). A session's
//! hash expires by itself `--session-days` after its last use.

use std::{collections::HashMap, sync::Arc, time::Duration};

use redis::{AsyncCommands, Script};

use super::{
    Account, AuditEntry, Bot, BotToken, Invitation, PeopleError, Report, Role, SessionInfo,
    rooms::{RoomKind, RoomRecord},
};
use crate::redis_link::{Commands, RedisLink};

const SETUP_KEY: &str = "herald:{people}:setup";
const HANDLES_KEY: &str = "herald:{people}:handles";
/// Every account's id, guests' too.
const ACCOUNTS_KEY: &str = "herald:{people}:accounts";

fn account_key(id: &str) -> String {
    format!("herald:{{people}}:account:{id}")
}

fn session_key(key: &str) -> String {
    format!("herald:{{people}}:session:{key}")
}

fn invitation_key(id: &str) -> String {
    format!("herald:{{people}}:invite:{id}")
}

/// Every invitation's id (its hash expires by itself; its name here goes when the list is read).
const INVITATIONS_KEY: &str = "herald:{people}:invites";

fn sessions_of_key(account: &str) -> String {
    format!("herald:{{people}}:sessions:{account}")
}

fn room_key(name: &str) -> String {
    format!("herald:{{people}}:room:{name}")
}

fn members_key(room: &str) -> String {
    format!("herald:{{people}}:members:{room}")
}

fn rooms_of_key(account: &str) -> String {
    format!("herald:{{people}}:rooms-of:{account}")
}

fn hidden_key(account: &str) -> String {
    format!("herald:{{people}}:hidden:{account}")
}

/// The audit log: each entry (JSON, with a random tail so that two alike stay two) scored by when.
const AUDIT_KEY: &str = "herald:{people}:audit";

/// A password reset link (by its token's hash): `account until`, expiring by itself.
fn reset_key(id: &str) -> String {
    format!("herald:{{people}}:reset:{id}")
}

/// The open reports: each report's JSON by its id.
const REPORTS_KEY: &str = "herald:{people}:reports";

/// Mutes: `room\naccount` → until (ms).
const MUTES_KEY: &str = "herald:{people}:mutes";

/// The ids of the people `account` ignores.
fn ignored_key(account: &str) -> String {
    format!("herald:{{people}}:ignored:{account}")
}

/// KEYS: the account, handles, what it ignores. ARGV: its id, its new name. Frees its handle (if it is
/// still this account's), takes its password away, deactivates it. Answers 0 if there is no such
/// account.
const DELETE_ACCOUNT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local handle = redis.call('HGET', KEYS[1], 'handle')
if handle and redis.call('HGET', KEYS[2], handle) == ARGV[1] then
  redis.call('HDEL', KEYS[2], handle)
end
redis.call('HDEL', KEYS[1], 'handle', 'password')
redis.call('HSET', KEYS[1], 'active', '0', 'name', ARGV[2])
redis.call('DEL', KEYS[3])
return 1
";

/// Where `account` has read each room: `room` → `EPOCH SEQ`.
fn read_key(account: &str) -> String {
    format!("herald:{{people}}:read:{account}")
}

/// A person's mentions: members `ROOM\tEPOCH\tSEQ`, scored by when (ms).
fn mentions_key(account: &str) -> String {
    format!("herald:{{people}}:mentions:{account}")
}

/// Who each message of a room mentions, to forget them when it is deleted: field `SEQ`, value
/// `EPOCH ACCOUNT ACCOUNT…`.
fn mentioned_key(room: &str) -> String {
    format!("herald:{{people}}:mentioned:{room}")
}

/// What `account` chose to be told of each room (where not the default): `room` → level.
fn notify_key(account: &str) -> String {
    format!("herald:{{people}}:notify:{account}")
}

/// The people told of every message of `room`.
fn told_every_key(room: &str) -> String {
    format!("herald:{{people}}:told-every:{room}")
}

/// The rooms where someone chose to hear every message (added to, taken from only when a room is
/// deleted).
const TOLD_EVERY_ROOMS_KEY: &str = "herald:{people}:told-every-rooms";

/// `account`'s push subscriptions: endpoint → `SESSION\tP256DH\tAUTH\tAT`.
fn push_key(account: &str) -> String {
    format!("herald:{{people}}:push:{account}")
}

/// Whose each push endpoint is: endpoint → account.
const PUSH_OWNERS_KEY: &str = "herald:{people}:push-owners";

/// The accounts with a push subscription.
const SUBSCRIBERS_KEY: &str = "herald:{people}:subscribers";

/// KEYS: a person's subscriptions, whose each endpoint is, the people with one. ARGV: the
/// endpoint, the account. Drops that subscription, and the person from those with one if it was
/// their last — at once, or a subscription made meanwhile could be left out of the list.
const UNSUBSCRIBE: &str = r"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[2], ARGV[1]) end
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], ARGV[2]) end
return 1
";

/// The server's VAPID private key.
const VAPID_KEY: &str = "herald:{people}:vapid";

fn mention_member(mention: &super::mentions::Mention) -> String {
    format!("{}\t{}\t{}", mention.room, mention.epoch, mention.seq)
}

/// KEYS: a person's read positions. ARGV: the room, epoch, seq, and `1` to rewind. Stores the
/// position if it moves theirs (a later seq of the same epoch, another epoch, or a rewind):
/// answers 1 if it did.
const SET_READ: &str = r"
local now = redis.call('HGET', KEYS[1], ARGV[1])
if now and ARGV[4] ~= '1' then
  local space = string.find(now, ' ', 1, true)
  if space and string.sub(now, 1, space - 1) == ARGV[2]
     and tonumber(string.sub(now, space + 1)) >= tonumber(ARGV[3]) then
    return 0
  end
end
if now == ARGV[2] .. ' ' .. ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
return 1
";

/// A bot's webhook and its secret: a hash (`webhook` absent when it has none).
fn bot_key(account: &str) -> String {
    format!("herald:{{people}}:bot:{account}")
}

/// A bot's API token (by its hash): `account`, `label`, `created_at`.
fn bot_token_key(id: &str) -> String {
    format!("herald:{{people}}:bot-token:{id}")
}

/// The ids of a bot's tokens.
fn bot_tokens_key(account: &str) -> String {
    format!("herald:{{people}}:bot-tokens:{account}")
}

/// Every room record's name (for `import-to-redis` and the admin's list).
const ROOMS_KEY: &str = "herald:{people}:rooms";

/// KEYS: the room's record, its members, every room's name, then each member's rooms.
/// ARGV: the room's name, how many field arguments follow, the fields as pairs, then the members.
/// Answers 1 if made, 0 if a room of that name has a record already (nothing changes).
const CREATE_ROOM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 3, 2 + n))
redis.call('SADD', KEYS[3], ARGV[1])
for i = 3 + n, #ARGV do
  redis.call('SADD', KEYS[2], ARGV[i])
  redis.call('SADD', KEYS[4 + i - (3 + n)], ARGV[1])
end
return 1
";

/// KEYS: setup. ARGV: a fresh code, whether to replace a code not yet used. Answers the code.
const SETUP_CODE: &str = r"
if ARGV[2] == '1' and redis.call('HEXISTS', KEYS[1], 'owner') == 0 then
  redis.call('HSET', KEYS[1], 'code', ARGV[1])
else
  redis.call('HSETNX', KEYS[1], 'code', ARGV[1])
end
return redis.call('HGET', KEYS[1], 'code')
";

/// KEYS: setup, handles, the account, an invitation (a key never written unless joining by one),
/// every account's id.
/// ARGV: id, what this is (`setup`, `invite`, `plain`), now (ms), then the account's fields as
/// pairs. Answers `ok`, `set up`, `no invitation` or `taken`; a refusal changes nothing.
const CREATE: &str = r"
if ARGV[2] == 'setup' and redis.call('HEXISTS', KEYS[1], 'owner') == 1 then
  return 'set up'
end
if ARGV[2] == 'invite' then
  local left = tonumber(redis.call('HGET', KEYS[4], 'uses_left') or '0')
  local expires = tonumber(redis.call('HGET', KEYS[4], 'expires_at') or '0')
  if left < 1 or expires <= tonumber(ARGV[3]) then return 'no invitation' end
end
local handle = nil
for i = 4, #ARGV, 2 do
  if ARGV[i] == 'handle' then handle = ARGV[i + 1] end
end
if handle and redis.call('HSETNX', KEYS[2], handle, ARGV[1]) == 0 then
  return 'taken'
end
redis.call('HSET', KEYS[3], unpack(ARGV, 4))
redis.call('SADD', KEYS[5], ARGV[1])
if ARGV[2] == 'setup' then
  redis.call('HSET', KEYS[1], 'owner', ARGV[1])
end
if ARGV[2] == 'invite' then
  redis.call('HINCRBY', KEYS[4], 'uses_left', -1)
end
return 'ok'
";

/// KEYS: the session, its account's set. ARGV: the account, the session's key.
const END_SESSION: &str = r"
local ended = 0
if redis.call('HGET', KEYS[1], 'account') == ARGV[1] then
  ended = redis.call('DEL', KEYS[1])
end
redis.call('SREM', KEYS[2], ARGV[2])
return ended
";

#[derive(Clone)]
pub struct RedisPeople {
    conn: Commands,
    setup_code: Arc<Script>,
    create: Arc<Script>,
    end_session: Arc<Script>,
    create_room: Arc<Script>,
}

impl RedisPeople {
    pub async fn open(link: &RedisLink) -> Result<Self, PeopleError> {
        Ok(Self {
            conn: link.commands().await?,
            setup_code: Arc::new(Script::new(SETUP_CODE)),
            create: Arc::new(Script::new(CREATE)),
            end_session: Arc::new(Script::new(END_SESSION)),
            create_room: Arc::new(Script::new(CREATE_ROOM)),
        })
    }

    pub async fn is_set_up(&self) -> Result<bool, PeopleError> {
        let mut conn = self.conn.clone();
        Ok(conn.hexists(SETUP_KEY, "owner").await?)
    }

    pub async fn setup_code(&self, fresh: &str, replace: bool) -> Result<String, PeopleError> {
        let mut conn = self.conn.clone();
        Ok(self
            .setup_code
            .key(SETUP_KEY)
            .arg(fresh)
            .arg(if replace { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await?)
    }

    pub async fn stored_setup_code(&self) -> Result<Option<String>, PeopleError> {
        let mut conn = self.conn.clone();
        let (code, owner): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(SETUP_KEY)
            .arg("code")
            .arg("owner")
            .query_async(&mut conn)
            .await?;
        Ok(code.filter(|_| owner.is_none()))
    }

    pub async fn set_up(&self, owner: &Account) -> Result<(), PeopleError> {
        self.insert(owner, "setup", None, 0).await
    }

    pub async fn create(&self, account: &Account) -> Result<(), PeopleError> {
        self.insert(account, "plain", None, 0).await
    }

    pub async fn join(&self, id: &str, account: &Account, now: u64) -> Result<(), PeopleError> {
        self.insert(account, "invite", Some(id), now).await
    }

    async fn insert(
        &self,
        account: &Account,
        what: &str,
        invitation: Option<&str>,
        now: u64,
    ) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        let mut call = self.create.prepare_invoke();
        call.key(SETUP_KEY)
            .key(HANDLES_KEY)
            .key(account_key(&account.id))
            .key(invitation_key(invitation.unwrap_or("-")))
            .key(ACCOUNTS_KEY)
            .arg(&account.id)
            .arg(what)
            .arg(now);
        for (field, value) in fields(account) {
            call.arg(field).arg(value);
        }
        let answer: String = call.invoke_async(&mut conn).await?;
        match answer.as_str() {
            "ok" => Ok(()),
            "set up" => Err(PeopleError::AlreadySetUp),
            "no invitation" => Err(PeopleError::NoSuchInvitation),
            _ => Err(PeopleError::HandleTaken),
        }
    }

    pub async fn save_invitation(&self, invitation: &Invitation) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        let key = invitation_key(&invitation.id);
        redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    ("by", invitation.by.clone()),
                    ("created_at", invitation.created_ms.to_string()),
                    ("expires_at", invitation.expires_ms.to_string()),
                    ("uses_left", invitation.uses_left.to_string()),
                ],
            )
            .ignore()
            .pexpire_at(
                &key,
                i64::try_from(invitation.expires_ms).unwrap_or(i64::MAX),
            )
            .ignore()
            .sadd(INVITATIONS_KEY, &invitation.id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn invitation(&self, id: &str) -> Result<Option<Invitation>, PeopleError> {
        let mut conn = self.conn.clone();
        let stored: HashMap<String, String> = conn.hgetall(invitation_key(id)).await?;
        Ok(invitation_of(id, &stored))
    }

    pub async fn invitations(&self) -> Result<Vec<Invitation>, PeopleError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn.smembers(INVITATIONS_KEY).await?;
        let mut live = Vec::with_capacity(ids.len());
        for id in ids {
            let stored: HashMap<String, String> = conn.hgetall(invitation_key(&id)).await?;
            match invitation_of(&id, &stored).filter(|i| i.uses_left > 0) {
                Some(invitation) => live.push(invitation),
                None => conn.srem::<_, _, ()>(INVITATIONS_KEY, &id).await?,
            }
        }
        Ok(live)
    }

    pub async fn revoke_invitation(&self, id: &str) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .del(invitation_key(id))
            .ignore()
            .srem(INVITATIONS_KEY, id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn by_handle(&self, handle: &str) -> Result<Option<Account>, PeopleError> {
        let mut conn = self.conn.clone();
        let id: Option<String> = conn.hget(HANDLES_KEY, handle).await?;
        match id {
            Some(id) => self.account(&id).await,
            None => Ok(None),
        }
    }

    pub async fn account(&self, id: &str) -> Result<Option<Account>, PeopleError> {
        let mut conn = self.conn.clone();
        let stored: HashMap<String, String> = conn.hgetall(account_key(id)).await?;
        Ok(account_of(id, &stored))
    }

    pub async fn accounts(&self) -> Result<Vec<Account>, PeopleError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn.smembers(ACCOUNTS_KEY).await?;
        self.accounts_of(ids).await
    }

    /// The records of the accounts `ids` that exist, in one pipeline: one round trip, not one per
    /// account (the mention completion reads every account of an open room's readers per keystroke).
    async fn accounts_of(&self, ids: Vec<String>) -> Result<Vec<Account>, PeopleError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(account_key(id));
        }
        let stored: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        Ok(ids
            .iter()
            .zip(&stored)
            .filter_map(|(id, stored)| account_of(id, stored))
            .collect())
    }

    pub async fn set_active(&self, id: &str, active: bool) -> Result<(), PeopleError> {
        self.set_field(id, "active", if active { "1" } else { "0" })
            .await
    }

    pub async fn set_role(&self, id: &str, role: Role) -> Result<(), PeopleError> {
        self.set_field(id, "role", role.as_str()).await
    }

    pub async fn rename(&self, id: &str, name: &str) -> Result<(), PeopleError> {
        self.set_field(id, "name", name).await
    }

    pub async fn set_password(&self, id: &str, phc: &str) -> Result<(), PeopleError> {
        self.set_field(id, "password", phc).await
    }

    /// Sets a field of an account that exists (`HSET` alone would make a stray one).
    async fn set_field(&self, id: &str, field: &str, value: &str) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        let set: i64 = redis::cmd("EVAL")
            .arg(
                "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end \
                 redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1",
            )
            .arg(1)
            .arg(account_key(id))
            .arg(field)
            .arg(value)
            .query_async(&mut conn)
            .await?;
        match set {
            1 => Ok(()),
            _ => Err(PeopleError::NoSuchAccount),
        }
    }

    pub async fn open_session(&self, info: &SessionInfo, ttl: Duration) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        let key = session_key(&info.id);
        redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    ("account", info.account.clone()),
                    ("created_at", info.created_ms.to_string()),
                    ("last_seen", info.last_seen_ms.to_string()),
                    ("agent", info.agent.clone()),
                ],
            )
            .ignore()
            .pexpire(&key, ttl_ms(ttl))
            .ignore()
            .sadd(sessions_of_key(&info.account), &info.id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn session(&self, key: &str) -> Result<Option<SessionInfo>, PeopleError> {
        let mut conn = self.conn.clone();
        let stored: HashMap<String, String> = conn.hgetall(session_key(key)).await?;
        Ok(session_of(key, &stored))
    }

    pub async fn touch_session(
        &self,
        key: &str,
        now: u64,
        ttl: Duration,
    ) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        let key = session_key(key);
        // Only a session still there: one ended meanwhile is not brought back as a stray hash.
        redis::cmd("EVAL")
            .arg(
                "if redis.call('EXISTS', KEYS[1]) == 1 then \
                 redis.call('HSET', KEYS[1], 'last_seen', ARGV[1]) \
                 redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 1",
            )
            .arg(1)
            .arg(&key)
            .arg(now)
            .arg(ttl_ms(ttl))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn sessions(&self, account: &str) -> Result<Vec<SessionInfo>, PeopleError> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> = conn.smembers(sessions_of_key(account)).await?;
        let mut sessions = Vec::with_capacity(keys.len());
        for key in keys {
            let stored: HashMap<String, String> = conn.hgetall(session_key(&key)).await?;
            match session_of(&key, &stored) {
                Some(session) => sessions.push(session),
                // Expired: its hash is gone; its name in the set goes too.
                None => {
                    conn.srem::<_, _, ()>(sessions_of_key(account), &key)
                        .await?
                }
            }
        }
        Ok(sessions)
    }

    pub async fn end_session(&self, account: &str, key: &str) -> Result<bool, PeopleError> {
        let mut conn = self.conn.clone();
        let ended: i64 = self
            .end_session
            .key(session_key(key))
            .key(sessions_of_key(account))
            .arg(account)
            .arg(key)
            .invoke_async(&mut conn)
            .await?;
        Ok(ended == 1)
    }
}

impl RedisPeople {
    /// Makes `record`'s room with `members`, unless a room of that name has a record already:
    /// whether it was made.
    pub async fn create_room(
        &self,
        record: &RoomRecord,
        members: &[String],
    ) -> Result<bool, PeopleError> {
        let mut conn = self.conn.clone();
        let mut call = self.create_room.prepare_invoke();
        call.key(room_key(&record.name))
            .key(members_key(&record.name))
            .key(ROOMS_KEY);
        for account in members {
            call.key(rooms_of_key(account));
        }
        let fields = room_fields(record);
        call.arg(&record.name).arg(fields.len() * 2);
        for (field, value) in fields {
            call.arg(field).arg(value);
        }
        for account in members {
            call.arg(account);
        }
        let made: i64 = call.invoke_async(&mut conn).await?;
        Ok(made == 1)
    }

    pub async fn room(&self, name: &str) -> Result<Option<RoomRecord>, PeopleError> {
        let mut conn = self.conn.clone();
        let stored: HashMap<String, String> = conn.hgetall(room_key(name)).await?;
        Ok(room_of(name, &stored))
    }

    /// A title, topic or archived flag changed.
    pub async fn update_room(&self, record: &RoomRecord) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        let key = room_key(&record.name);
        if conn.exists(&key).await? {
            conn.hset_multiple::<_, _, _, ()>(&key, &room_fields(record))
                .await?;
        }
        Ok(())
    }

    pub async fn is_member(&self, room: &str, account: &str) -> Result<bool, PeopleError> {
        let mut conn = self.conn.clone();
        Ok(conn.sismember(members_key(room), account).await?)
    }

    /// The accounts of `room`'s members: their records in one pipeline.
    pub async fn members(&self, room: &str) -> Result<Vec<Account>, PeopleError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn.smembers(members_key(room)).await?;
        self.accounts_of(ids).await
    }

    /// Whether `account` was added (not a member already).
    pub async fn add_member(&self, room: &str, account: &str) -> Result<bool, PeopleError> {
        let mut conn = self.conn.clone();
        let (added, _): (i64, i64) = redis::pipe()
            .atomic()
            .sadd(members_key(room), account)
            .sadd(rooms_of_key(account), room)
            .query_async(&mut conn)
            .await?;
        Ok(added == 1)
    }

    /// Whether `account` was a member.
    pub async fn remove_member(&self, room: &str, account: &str) -> Result<bool, PeopleError> {
        let mut conn = self.conn.clone();
        let (removed, _): (i64, i64) = redis::pipe()
            .atomic()
            .srem(members_key(room), account)
            .srem(rooms_of_key(account), room)
            .query_async(&mut conn)
            .await?;
        Ok(removed == 1)
    }

    /// The private rooms and conversations `account` is a member of.
    pub async fn rooms_of(&self, account: &str) -> Result<Vec<RoomRecord>, PeopleError> {
        let mut conn = self.conn.clone();
        let names: Vec<String> = conn.smembers(rooms_of_key(account)).await?;
        let mut pipe = redis::pipe();
        for name in &names {
            pipe.hgetall(room_key(name));
        }
        let stored: Vec<HashMap<String, String>> = if names.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut conn).await?
        };
        Ok(names
            .iter()
            .zip(&stored)
            .filter_map(|(name, stored)| room_of(name, stored))
            .collect())
    }

    /// Everything kept of `room` here: its record, members (and their lists' mention of it), who
    /// hid it, its mutes and reports. Its members, as they were. The record and members go in one
    /// step, so no node lets anyone in after; the rest after, as nobody's list would show it.
    /// Who hid it is found by going through every account (hundreds a call): a deletion is rare.
    pub async fn delete_room(&self, room: &str) -> Result<Vec<String>, PeopleError> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = conn.smembers(members_key(room)).await?;
        let mut step = redis::pipe();
        step.atomic()
            .del(room_key(room))
            .del(members_key(room))
            .del(mentioned_key(room))
            .del(told_every_key(room))
            .srem(TOLD_EVERY_ROOMS_KEY, room)
            .srem(ROOMS_KEY, room);
        for account in &members {
            step.srem(rooms_of_key(account), room);
        }
        step.query_async::<()>(&mut conn).await?;
        let mut cursor = 0_u64;
        loop {
            let (next, accounts): (u64, Vec<String>) = redis::cmd("SSCAN")
                .arg(ACCOUNTS_KEY)
                .arg(cursor)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await?;
            let mut unhide = redis::pipe();
            for account in &accounts {
                unhide.srem(hidden_key(account), room).ignore();
                unhide.hdel(read_key(account), room).ignore();
                unhide.hdel(notify_key(account), room).ignore();
            }
            unhide.query_async::<()>(&mut conn).await?;
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mutes: Vec<String> = {
            let prefix = format!("{room}\n");
            let all: Vec<String> = conn.hkeys(MUTES_KEY).await?;
            all.into_iter().filter(|k| k.starts_with(&prefix)).collect()
        };
        if !mutes.is_empty() {
            conn.hdel::<_, _, ()>(MUTES_KEY, &mutes).await?;
        }
        let reports: Vec<String> = self
            .reports()
            .await?
            .into_iter()
            .filter(|r| r.room == room)
            .map(|r| r.id)
            .collect();
        if !reports.is_empty() {
            conn.hdel::<_, _, ()>(REPORTS_KEY, &reports).await?;
        }
        Ok(members)
    }

    pub async fn hidden(&self, account: &str) -> Result<Vec<String>, PeopleError> {
        let mut conn = self.conn.clone();
        Ok(conn.smembers(hidden_key(account)).await?)
    }

    pub async fn read_positions(
        &self,
        account: &str,
    ) -> Result<Vec<super::reading::ReadAt>, PeopleError> {
        let mut conn = self.conn.clone();
        let stored: HashMap<String, String> = conn.hgetall(read_key(account)).await?;
        Ok(stored
            .into_iter()
            .filter_map(|(room, at)| {
                let (epoch, seq) = at.split_once(' ')?;
                Some(super::reading::ReadAt {
                    room,
                    epoch: epoch.to_owned(),
                    seq: seq.parse().ok()?,
                })
            })
            .collect())
    }

    /// One pipeline for the batch: one round trip however many readers moved.
    pub async fn set_read_positions(
        &self,
        batch: &[super::reading::Reading],
    ) -> Result<Vec<bool>, PeopleError> {
        let mut conn = self.conn.clone();
        static BY_HASH: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| Script::new(SET_READ).get_hash().to_owned());
        // By hash, in one pipeline; if the {people} slot's master does not have the script (it
        // restarted, or failed over), nothing of the batch ran: sent again with its text, which
        // also caches it there (as the log's appends do).
        let pipeline = |call: &str, script: &str| {
            let mut pipe = redis::pipe();
            for reading in batch {
                pipe.cmd(call)
                    .arg(script)
                    .arg(1)
                    .arg(read_key(&reading.account))
                    .arg(&reading.at.room)
                    .arg(&reading.at.epoch)
                    .arg(reading.at.seq)
                    .arg(if reading.rewind { "1" } else { "0" });
            }
            pipe
        };
        let moved: Vec<i64> = match pipeline("EVALSHA", BY_HASH.as_str())
            .query_async(&mut conn)
            .await
        {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                pipeline("EVAL", SET_READ).query_async(&mut conn).await?
            }
            answered => answered?,
        };
        Ok(moved.into_iter().map(|moved| moved == 1).collect())
    }

    pub async fn add_mentions(
        &self,
        accounts: &[String],
        mention: &super::mentions::Mention,
    ) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        let member = mention_member(mention);
        let keep = super::mentions::KEPT_PER_PERSON as isize;
        let mut step = redis::pipe();
        for account in accounts {
            step.zadd(mentions_key(account), &member, mention.at)
                .ignore()
                .zremrangebyrank(mentions_key(account), 0, -(keep + 1))
                .ignore();
        }
        step.hset(
            mentioned_key(&mention.room),
            mention.seq,
            format!("{} {}", mention.epoch, accounts.join(" ")),
        )
        .ignore();
        step.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    pub async fn forget_mentions(&self, room: &str, seqs: &[u64]) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        let key = mentioned_key(room);
        let told: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&key)
            .arg(seqs)
            .query_async(&mut conn)
            .await?;
        let mut step = redis::pipe();
        for (seq, told) in seqs.iter().zip(told) {
            let Some(told) = told else { continue };
            let mut words = told.split(' ');
            let epoch = words.next().unwrap_or_default();
            let member = format!("{room}\t{epoch}\t{seq}");
            for account in words.filter(|w| !w.is_empty()) {
                step.zrem(mentions_key(account), &member).ignore();
            }
            step.hdel(&key, seq).ignore();
        }
        step.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    pub async fn mentions_of(
        &self,
        account: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<super::mentions::Mention>, PeopleError> {
        let mut conn = self.conn.clone();
        let max = match before {
            Some(before) => format!("({before}"),
            None => "+inf".to_owned(),
        };
        let stored: Vec<(String, u64)> = redis::cmd("ZRANGE")
            .arg(mentions_key(account))
            .arg(max)
            .arg("-inf")
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        Ok(stored
            .into_iter()
            .filter_map(|(member, at)| {
                let mut parts = member.split('\t');
                let (room, epoch, seq) = (parts.next()?, parts.next()?, parts.next()?);
                Some(super::mentions::Mention {
                    room: room.to_owned(),
                    epoch: epoch.to_owned(),
                    seq: seq.parse().ok()?,
                    at,
                })
            })
            .collect())
    }

    pub async fn notify_levels(
        &self,
        account: &str,
    ) -> Result<Vec<(String, super::notify::Level)>, PeopleError> {
        let mut conn = self.conn.clone();
        let levels: Vec<(String, String)> = conn.hgetall(notify_key(account)).await?;
        Ok(levels
            .into_iter()
            .filter_map(|(room, level)| Some((room, super::notify::Level::parse(&level)?)))
            .collect())
    }

    pub async fn set_notify_level(
        &self,
        account: &str,
        room: &str,
        level: super::notify::Level,
    ) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        let mut step = redis::pipe();
        step.atomic();
        match level {
            super::notify::Level::Mentions => step.hdel(notify_key(account), room).ignore(),
            level => step
                .hset(notify_key(account), room, level.as_str())
                .ignore(),
        };
        match level {
            super::notify::Level::Every => step
                .sadd(told_every_key(room), account)
                .ignore()
                .sadd(TOLD_EVERY_ROOMS_KEY, room)
                .ignore(),
            _ => step.srem(told_every_key(room), account).ignore(),
        };
        step.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    pub async fn told_every(&self, room: &str) -> Result<Vec<String>, PeopleError> {
        let mut conn = self.conn.clone();
        Ok(conn.smembers(told_every_key(room)).await?)
    }

    pub async fn rooms_told_every(&self) -> Result<Vec<String>, PeopleError> {
        let mut conn = self.conn.clone();
        Ok(conn.smembers(TOLD_EVERY_ROOMS_KEY).await?)
    }

    pub async fn subscribe(
        &self,
        subscription: &super::notify::Subscription,
    ) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        let s = subscription;
        let owner: Option<String> = conn.hget(PUSH_OWNERS_KEY, &s.endpoint).await?;
        if let Some(owner) = owner.filter(|owner| *owner != s.account) {
            self.unsubscribe(&owner, &s.endpoint).await?;
        }
        let value = format!("{}\t{}\t{}\t{}", s.session, s.p256dh, s.auth, s.at);
        let mut step = redis::pipe();
        step.atomic()
            .hset(push_key(&s.account), &s.endpoint, value)
            .ignore()
            .hset(PUSH_OWNERS_KEY, &s.endpoint, &s.account)
            .ignore()
            .sadd(SUBSCRIBERS_KEY, &s.account)
            .ignore();
        step.query_async::<()>(&mut conn).await?;
        // Only the newest are kept.
        let kept = self.subscriptions(&s.account).await?;
        let over = kept
            .len()
            .saturating_sub(super::notify::SUBSCRIPTIONS_PER_PERSON);
        for old in &kept[..over] {
            self.unsubscribe(&s.account, &old.endpoint).await?;
        }
        Ok(())
    }

    pub async fn subscriptions(
        &self,
        account: &str,
    ) -> Result<Vec<super::notify::Subscription>, PeopleError> {
        let mut conn = self.conn.clone();
        let stored: Vec<(String, String)> = conn.hgetall(push_key(account)).await?;
        let mut subscriptions: Vec<super::notify::Subscription> = stored
            .into_iter()
            .filter_map(|(endpoint, value)| {
                let mut parts = value.split('\t');
                let (session, p256dh, auth, at) =
                    (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
                Some(super::notify::Subscription {
                    endpoint,
                    account: account.to_owned(),
                    session: session.to_owned(),
                    p256dh: p256dh.to_owned(),
                    auth: auth.to_owned(),
                    at: at.parse().ok()?,
                })
            })
            .collect();
        subscriptions.sort_by_key(|s| s.at);
        Ok(subscriptions)
    }

    pub async fn unsubscribe(&self, account: &str, endpoint: &str) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        redis::cmd("EVAL")
            .arg(UNSUBSCRIBE)
            .arg(3)
            .arg(push_key(account))
            .arg(PUSH_OWNERS_KEY)
            .arg(SUBSCRIBERS_KEY)
            .arg(endpoint)
            .arg(account)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn subscribers(&self) -> Result<Vec<String>, PeopleError> {
        let mut conn = self.conn.clone();
        Ok(conn.smembers(SUBSCRIBERS_KEY).await?)
    }

    pub async fn vapid_key(&self, made: &str) -> Result<String, PeopleError> {
        let mut conn = self.conn.clone();
        let _: bool = conn.set_nx(VAPID_KEY, made).await?;
        Ok(conn.get(VAPID_KEY).await?)
    }

    pub async fn mentions_after(
        &self,
        account: &str,
        room: &str,
        epoch: &str,
        seq: u64,
    ) -> Result<u32, PeopleError> {
        let mut conn = self.conn.clone();
        // At most the newest few hundred: read whole, counted here.
        let members: Vec<String> = conn.zrange(mentions_key(account), 0, -1).await?;
        let prefix = format!("{room}\t{epoch}\t");
        let counted = members
            .iter()
            .filter_map(|m| m.strip_prefix(&prefix)?.parse::<u64>().ok())
            .filter(|at| *at > seq)
            .count();
        Ok(u32::try_from(counted).unwrap_or(u32::MAX))
    }

    /// Whether that changed anything.
    pub async fn set_hidden(
        &self,
        account: &str,
        room: &str,
        hidden: bool,
    ) -> Result<bool, PeopleError> {
        let mut conn = self.conn.clone();
        let changed: i64 = if hidden {
            conn.sadd(hidden_key(account), room).await?
        } else {
            conn.srem(hidden_key(account), room).await?
        };
        Ok(changed == 1)
    }

    pub async fn ignored(&self, account: &str) -> Result<Vec<String>, PeopleError> {
        let mut conn = self.conn.clone();
        Ok(conn.smembers(ignored_key(account)).await?)
    }

    pub async fn set_ignored(
        &self,
        account: &str,
        other: &str,
        ignored: bool,
    ) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        let _: i64 = if ignored {
            conn.sadd(ignored_key(account), other).await?
        } else {
            conn.srem(ignored_key(account), other).await?
        };
        Ok(())
    }

    pub async fn delete_account(&self, id: &str, name: &str) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        let deleted: i64 = redis::cmd("EVAL")
            .arg(DELETE_ACCOUNT)
            .arg(3)
            .arg(account_key(id))
            .arg(HANDLES_KEY)
            .arg(ignored_key(id))
            .arg(id)
            .arg(name)
            .query_async(&mut conn)
            .await?;
        match deleted {
            1 => {
                conn.del::<_, ()>(&[read_key(id), mentions_key(id)]).await?;
                for (room, _) in self.notify_levels(id).await? {
                    conn.srem::<_, _, ()>(told_every_key(&room), id).await?;
                }
                let endpoints: Vec<String> = conn.hkeys(push_key(id)).await?;
                let mut step = redis::pipe();
                if !endpoints.is_empty() {
                    step.hdel(PUSH_OWNERS_KEY, &endpoints).ignore();
                }
                step.del(&[notify_key(id), push_key(id)])
                    .ignore()
                    .srem(SUBSCRIBERS_KEY, id)
                    .ignore();
                step.query_async::<()>(&mut conn).await?;
                Ok(())
            }
            _ => Err(PeopleError::NoSuchAccount),
        }
    }

    pub async fn save_reset(&self, id: &str, account: &str, until: u64) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        let ttl = until.saturating_sub(super::now_ms()).max(1);
        conn.pset_ex::<_, _, ()>(reset_key(id), format!("{account} {until}"), ttl)
            .await?;
        Ok(())
    }

    pub async fn reset(&self, id: &str) -> Result<Option<(String, u64)>, PeopleError> {
        let mut conn = self.conn.clone();
        let value: Option<String> = conn.get(reset_key(id)).await?;
        Ok(value.as_deref().and_then(reset_of))
    }

    /// `GETDEL`: the link is gone the moment it is read, so it is used once.
    pub async fn take_reset(&self, id: &str) -> Result<Option<(String, u64)>, PeopleError> {
        let mut conn = self.conn.clone();
        let value: Option<String> = conn.get_del(reset_key(id)).await?;
        Ok(value.as_deref().and_then(reset_of))
    }

    pub async fn save_bot(&self, bot: &Bot) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        let key = bot_key(&bot.account);
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key).hset(&key, "secret", &bot.secret);
        if let Some(webhook) = &bot.webhook {
            pipe.hset(&key, "webhook", webhook);
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    pub async fn bot(&self, account: &str) -> Result<Option<Bot>, PeopleError> {
        let mut conn = self.conn.clone();
        let (secret, webhook): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(bot_key(account))
            .arg("secret")
            .arg("webhook")
            .query_async(&mut conn)
            .await?;
        Ok(secret.map(|secret| Bot {
            account: account.to_owned(),
            webhook,
            secret,
        }))
    }

    pub async fn add_bot_token(&self, token: &BotToken) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .hset_multiple(
                bot_token_key(&token.id),
                &[
                    ("account", token.account.clone()),
                    ("label", token.label.clone()),
                    ("created_at", token.created_ms.to_string()),
                ],
            )
            .sadd(bot_tokens_key(&token.account), &token.id)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn bot_token(&self, id: &str) -> Result<Option<BotToken>, PeopleError> {
        let mut conn = self.conn.clone();
        let fields: HashMap<String, String> = conn.hgetall(bot_token_key(id)).await?;
        Ok(bot_token_of(id, fields))
    }

    pub async fn bot_tokens(&self, account: &str) -> Result<Vec<BotToken>, PeopleError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn.smembers(bot_tokens_key(account)).await?;
        let mut tokens = Vec::with_capacity(ids.len());
        for id in ids {
            let fields: HashMap<String, String> = conn.hgetall(bot_token_key(&id)).await?;
            tokens.extend(bot_token_of(&id, fields));
        }
        tokens.sort_by_key(|t| t.created_ms);
        Ok(tokens)
    }

    pub async fn revoke_bot_token(&self, account: &str, id: &str) -> Result<bool, PeopleError> {
        let mut conn = self.conn.clone();
        let owner: Option<String> = conn.hget(bot_token_key(id), "account").await?;
        if owner.as_deref() != Some(account) {
            return Ok(false);
        }
        redis::pipe()
            .atomic()
            .del(bot_token_key(id))
            .srem(bot_tokens_key(account), id)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(true)
    }

    pub async fn report(&self, report: &Report) -> Result<bool, PeopleError> {
        let mut conn = self.conn.clone();
        let json =
            serde_json::to_string(report).map_err(|e| PeopleError::Storage(e.to_string()))?;
        Ok(conn.hset_nx(REPORTS_KEY, &report.id, json).await?)
    }

    pub async fn reports(&self) -> Result<Vec<Report>, PeopleError> {
        let mut conn = self.conn.clone();
        let all: HashMap<String, String> = conn.hgetall(REPORTS_KEY).await?;
        let mut reports: Vec<Report> = all
            .values()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect();
        reports.sort_by_key(|r| r.at_ms);
        Ok(reports)
    }

    pub async fn close_reports(&self, room: &str, seq: u64) -> Result<usize, PeopleError> {
        let ids: Vec<String> = self
            .reports()
            .await?
            .into_iter()
            .filter(|r| r.room == room && r.seq == seq)
            .map(|r| r.id)
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn.clone();
        let closed: usize = conn.hdel(REPORTS_KEY, &ids).await?;
        Ok(closed)
    }

    pub async fn mute(&self, room: &str, account: &str, until: u64) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        conn.hset::<_, _, _, ()>(MUTES_KEY, format!("{room}\n{account}"), until)
            .await?;
        Ok(())
    }

    pub async fn muted_until(&self, room: &str, account: &str) -> Result<Option<u64>, PeopleError> {
        let mut conn = self.conn.clone();
        let until: Option<u64> = conn.hget(MUTES_KEY, format!("{room}\n{account}")).await?;
        Ok(until)
    }

    /// Writes `entry`, and lets go of what is older than `oldest` (ms).
    pub async fn record(&self, entry: &AuditEntry, oldest: u64) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        let member = serde_json::json!({ "e": entry, "n": crate::ids::random_hex(4) }).to_string();
        redis::pipe()
            .atomic()
            .zadd(AUDIT_KEY, member, entry.at_ms)
            .zrembyscore(AUDIT_KEY, "-inf", format!("({oldest}"))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// The newest `limit` entries, the newest first.
    pub async fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, PeopleError> {
        let mut conn = self.conn.clone();
        let last = isize::try_from(limit)
            .unwrap_or(isize::MAX)
            .saturating_sub(1);
        let members: Vec<String> = conn.zrevrange(AUDIT_KEY, 0, last).await?;
        Ok(members
            .iter()
            .filter_map(|m| serde_json::from_str::<serde_json::Value>(m).ok())
            .filter_map(|v| serde_json::from_value(v["e"].clone()).ok())
            .collect())
    }

    /// Whether Redis holds any people yet (a setup begun, an account made).
    pub async fn is_empty(&self) -> Result<bool, PeopleError> {
        let mut conn = self.conn.clone();
        let (setup, handles): (bool, u64) = redis::pipe()
            .exists(SETUP_KEY)
            .hlen(HANDLES_KEY)
            .query_async(&mut conn)
            .await?;
        Ok(!setup && handles == 0)
    }

    /// Writes a single node's people as they are (`herald import-to-redis`).
    pub async fn import(
        &self,
        everything: &super::sqlite::Everything,
        ttl: Duration,
    ) -> Result<(), PeopleError> {
        let mut conn = self.conn.clone();
        for account in &everything.accounts {
            self.create(account).await?;
        }
        if let Some((code, owner)) = &everything.setup {
            let mut fields = vec![("code", code.clone())];
            if let Some(owner) = owner {
                fields.push(("owner", owner.clone()));
            }
            conn.hset_multiple::<_, _, _, ()>(SETUP_KEY, &fields)
                .await?;
        }
        let now = super::now_ms();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        for session in &everything.sessions {
            // What is left of its life, from its last use.
            let left = session
                .last_seen_ms
                .saturating_add(ttl_ms)
                .saturating_sub(now);
            if left > 0 {
                self.open_session(session, Duration::from_millis(left))
                    .await?;
            }
        }
        for room in &everything.rooms {
            let members: Vec<String> = everything
                .members
                .iter()
                .filter(|(of, _)| *of == room.name)
                .map(|(_, account)| account.clone())
                .collect();
            self.create_room(room, &members).await?;
        }
        for (account, room) in &everything.hidden {
            self.set_hidden(account, room, true).await?;
        }
        for (account, other) in &everything.ignored {
            self.set_ignored(account, other, true).await?;
        }
        for positions in everything.read_positions.chunks(500) {
            self.set_read_positions(positions).await?;
        }
        for bot in &everything.bots {
            self.save_bot(bot).await?;
        }
        for token in &everything.bot_tokens {
            self.add_bot_token(token).await?;
        }
        Ok(())
    }
}

fn bot_token_of(id: &str, mut fields: HashMap<String, String>) -> Option<BotToken> {
    Some(BotToken {
        id: id.to_owned(),
        account: fields.remove("account")?,
        label: fields.remove("label").unwrap_or_default(),
        created_ms: fields.get("created_at")?.parse().ok()?,
    })
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

fn fields(account: &Account) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("name", account.name.clone()),
        ("role", account.role.as_str().to_owned()),
        ("active", if account.active { "1" } else { "0" }.to_owned()),
        ("created_at", account.created_ms.to_string()),
    ];
    if let Some(handle) = &account.handle {
        fields.push(("handle", handle.clone()));
    }
    if let Some(password) = &account.password {
        fields.push(("password", password.clone()));
    }
    fields
}

fn account_of(id: &str, stored: &HashMap<String, String>) -> Option<Account> {
    Some(Account {
        id: id.to_owned(),
        handle: stored.get("handle").cloned(),
        name: stored.get("name")?.clone(),
        role: stored
            .get("role")
            .and_then(|r| Role::parse(r))
            .unwrap_or(Role::Guest),
        password: stored.get("password").cloned(),
        active: stored.get("active").is_none_or(|a| a == "1"),
        created_ms: number(stored.get("created_at")),
    })
}

fn reset_of(value: &str) -> Option<(String, u64)> {
    let (account, until) = value.split_once(' ')?;
    Some((account.to_owned(), until.parse().ok()?))
}

fn room_fields(record: &RoomRecord) -> Vec<(&'static str, String)> {
    vec![
        ("kind", record.kind.as_str().to_owned()),
        ("title", record.title.clone()),
        ("topic", record.topic.clone()),
        ("created_by", record.created_by.clone()),
        ("created_at", record.created_ms.to_string()),
        (
            "archived",
            if record.archived { "1" } else { "0" }.to_owned(),
        ),
    ]
}

fn room_of(name: &str, stored: &HashMap<String, String>) -> Option<RoomRecord> {
    Some(RoomRecord {
        name: name.to_owned(),
        kind: RoomKind::parse(stored.get("kind")?).unwrap_or_else(|| RoomKind::of(name)),
        title: stored.get("title").cloned().unwrap_or_default(),
        topic: stored.get("topic").cloned().unwrap_or_default(),
        created_by: stored.get("created_by").cloned().unwrap_or_default(),
        created_ms: number(stored.get("created_at")),
        archived: stored.get("archived").is_some_and(|a| a == "1"),
    })
}

fn invitation_of(id: &str, stored: &HashMap<String, String>) -> Option<Invitation> {
    Some(Invitation {
        id: id.to_owned(),
        by: stored.get("by")?.clone(),
        created_ms: number(stored.get("created_at")),
        expires_ms: number(stored.get("expires_at")),
        uses_left: u32::try_from(number(stored.get("uses_left"))).unwrap_or(0),
    })
}

fn session_of(key: &str, stored: &HashMap<String, String>) -> Option<SessionInfo> {
    Some(SessionInfo {
        id: key.to_owned(),
        account: stored.get("account")?.clone(),
        created_ms: number(stored.get("created_at")),
        last_seen_ms: number(stored.get("last_seen")),
        agent: stored.get("agent").cloned().unwrap_or_default(),
    })
}

fn number(text: Option<&String>) -> u64 {
    text.and_then(|t| t.parse().ok()).unwrap_or(0)
}
