//! The message log shared by a cluster of nodes: Redis, as both the record and the bus
//! (docs/CLUSTER.md). Each room has, under keys that carry the room as a hash tag (one room, one
//! slot): a hash `meta` (`e` epoch, `s` last seq, `d` entries that are not messages), a stream `log`
//! whose entry IDs are the seqs (with each entry's time and count), a hash `text` of each entry's
//! JSON by seq (apart from the stream, so a deletion can take words back), a sorted set `state` of
//! what changes made of each changed message, and a sorted set `once` of `(author, client_id)` → seq
//! for dedupe; all trimmed with the log.
//!
//! An append is one Lua script, atomic in Redis: dedupe, checking a change against its message,
//! the next seq, the stream entry and text, retention and the PUBLISH on the room's channel. Redis answers only after it has written (with
//! `appendfsync always`, fsynced) the script's effects, so an answered append is durable, and every
//! node hears of it on the bus. What a node hears — its own appends' answers, the bus, the log read
//! to fill a hole — goes through one [`Sequencer`] task, which hands each room's messages to
//! `publish` once, in seq order, and answers each local append after its message.
//!
//! Here: [`RedisLog`] (opening, the sequencer's task, reading, making and forgetting rooms). Beside
//! it, by part: `keys` (where a room lives), `append` (the lanes and the append script's calls),
//! `bus` (the subscription, its probe, the pushes' format), `settings` (the check that Redis keeps
//! what it acknowledges), `target` (what `herald import-to-redis` writes).

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use app::protocol::{Entry, Identity, MessageKind};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{
    Appending, Content, Epochs, LogError, NewEntry, Published, Record, State,
    sequencer::{Sequencer, Step},
};
use crate::{
    bus::{self, Bus, Listener},
    redis_link::{Commands, RedisLink},
};

mod append;
mod following;
mod keys;
mod pushes;
mod settings;
mod target;

use append::{APPEND_LANES, append_loop};
use following::Following;
pub use following::Lease;
use keys::*;
pub use settings::check_server;
pub use target::{ImportedRoom, Target};

/// How often the sequencer task looks for holes that waited long enough.
const HOLE_CHECK: Duration = Duration::from_millis(50);

/// Most messages one read of the log returns (a hole or a catch-up reads on in pages).
const READ_PAGE: u64 = 1000;

/// How long a command may take before the log counts as unavailable.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// The room's epoch and last seq, creating the room if it has none. KEYS: meta. ARGV: a fresh epoch.
const ENSURE: &str = r#"
redis.call('HSETNX', KEYS[1], 'e', ARGV[1])
redis.call('HSETNX', KEYS[1], 's', 0)
return {redis.call('HGET', KEYS[1], 'e'), tonumber(redis.call('HGET', KEYS[1], 's'))}
"#;

/// Deletes a room that never held a message, and tells every node. KEYS: meta, log, once. ARGV:
/// the channel of forgotten rooms, the room. Returns 1 if the room is not in the log now
/// (forgotten here, or not there to begin with), 0 if it is kept: it holds (or held) a message.
const FORGET: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then return 1 end
local s = redis.call('HGET', KEYS[1], 's')
if (s and tonumber(s) ~= 0) or redis.call('XLEN', KEYS[2]) > 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('PUBLISH', ARGV[1], 'forget ' .. ARGV[2] .. ' ' .. epoch)
return 1
"#;

/// KEYS: the room's meta, log, once, state and text. ARGV: the note channel, the room. Deletes the
/// room and everything it holds (`UNLINK`: a big room's memory is freed off Redis's thread) and,
/// if it was there, tells every node `drop ROOM EPOCH`; answers whether it was.
const DROP: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'e')
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
if not epoch then return 0 end
redis.call('PUBLISH', ARGV[1], 'drop ' .. ARGV[2] .. ' ' .. epoch)
return 1
"#;

/// KEYS: the room's meta, log, state and text. ARGV: the reader's epoch and seq. What they have not
/// read (`Log::unread`): `{epoch, last seq, messages}`, or nil if there is no such room. Each entry's
/// `n` is the room's messages so far: the messages after the position are the room's count less
/// the `n` of the entry at (or before) it — or, if the room holds nothing that old, of its first
/// held entry less itself if a message — less those deleted since (the changed messages after
/// the position, in `state`: the only ones looked at).
const UNREAD: &str = r#"
local meta = redis.call('HMGET', KEYS[1], 'e', 's', 'd')
if not meta[1] then return nil end
local last = tonumber(meta[2] or '0')
local total = last - tonumber(meta[3] or '0')
local after = tonumber(ARGV[2])
if meta[1] ~= ARGV[1] then after = 0 end
local function n_of(entry)
  local f = entry[2]
  for j = 1, #f, 2 do
    if f[j] == 'n' then return tonumber(f[j + 1]) end
  end
  return nil
end
local function seq_of(entry) return tonumber(string.match(entry[1], '^(%d+)')) end
local before
local at = redis.call('XREVRANGE', KEYS[2], string.format('%d-0', after), '-', 'COUNT', 1)
if #at > 0 then
  before = n_of(at[1]) or (seq_of(at[1]) - tonumber(meta[3] or '0'))
else
  local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if #first == 0 then
    before = total
  else
    local seq = seq_of(first[1])
    local text = redis.call('HGET', KEYS[4], string.format('%d', seq))
    local is_message = 1
    if text then
      local ok, entry = pcall(cjson.decode, text)
      if ok and type(entry) == 'table' and entry['type'] then is_message = 0 end
    end
    before = (n_of(first[1]) or seq) - is_message
  end
end
local deleted = 0
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], string.format('(%d', after), '+inf')) do
  local space = string.find(member, ' ', 1, true)
  if space then
    local ok, state = pcall(cjson.decode, string.sub(member, space + 1))
    if ok and type(state) == 'table' and state['d'] then deleted = deleted + 1 end
  end
end
return {meta[1], last, math.max(0, total - before - deleted)}
"#;

/// An entry as the log keeps it (a field of the room's `text` hash — a stream entry's `m` before
/// texts were kept apart —, a line of a push): what its seq and time do not say. A message's is as it was before entries had types: no `type`, no `fields`.
#[derive(Serialize, Deserialize)]
struct Stored {
    room: String,
    author: Identity,
    client_id: String,
    body: String,
    #[serde(default)]
    kind: MessageKind,
    /// Its type; none for a message.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    entry_type: Option<String>,
    /// Its further fields, a JSON object; none for a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fields: Option<serde_json::Value>,
}

impl Stored {
    /// A new entry, as appended.
    fn of(entry: &NewEntry) -> Self {
        let content = &entry.content;
        Self {
            entry_type: (!content.is_message()).then(|| content.entry_type().to_owned()),
            ..Self::new(&entry.room, &entry.author, &entry.client_id, entry.kind)
                .with(content.body(), content.fields().as_deref())
        }
    }

    /// A stored entry, as imported (`target.rs`).
    fn of_record(record: &Record) -> Self {
        Self {
            entry_type: record.entry_type.clone(),
            ..Self::new(&record.room, &record.author, &record.client_id, record.kind)
                .with(&record.body, record.fields.as_deref())
        }
    }

    /// The header every entry has, with no text yet.
    fn new(room: &str, author: &Identity, client_id: &str, kind: MessageKind) -> Self {
        Self {
            room: room.to_owned(),
            author: author.clone(),
            client_id: client_id.to_owned(),
            body: String::new(),
            kind,
            entry_type: None,
            fields: None,
        }
    }

    /// With its text and further fields (a JSON object).
    fn with(self, body: &str, fields: Option<&str>) -> Self {
        Self {
            body: body.to_owned(),
            fields: fields.and_then(|fields| serde_json::from_str(fields).ok()),
            ..self
        }
    }

    /// The entry stored at `seq` and `sent_at`.
    fn entry(self, seq: u64, sent_at: u64) -> Entry {
        self.entry_now(seq, sent_at, None)
    }

    /// The entry stored at `seq` and `sent_at`, a message with what its changes made of it.
    fn entry_now(self, seq: u64, sent_at: u64, state: Option<State>) -> Entry {
        self.record(seq, sent_at, state).entry()
    }

    /// The record stored at `seq` and `sent_at`, with its message's state.
    fn record(self, seq: u64, sent_at: u64, state: Option<State>) -> Record {
        Record {
            room: self.room,
            seq,
            author: self.author,
            client_id: self.client_id,
            sent_at,
            kind: self.kind,
            entry_type: self.entry_type,
            body: self.body,
            fields: self.fields.map(|fields| fields.to_string()),
            state,
        }
    }
}

/// Where a local append's answer goes.
type Reply = oneshot::Sender<Result<u64, LogError>>;

/// What the sequencer task is told.
enum Event {
    /// A room's epoch and last seq as Redis has them; answered once the room is known here.
    Known {
        room: String,
        epoch: String,
        last_seq: u64,
        done: oneshot::Sender<()>,
    },
    /// A room of `epoch` that never held a message was forgotten (heard on the bus, from any
    /// node): known no more here, unless it began again meanwhile.
    Forgotten { room: String, epoch: String },
    /// A room of `epoch` was deleted by an admin, whatever it held (heard on the bus, from any
    /// node): known no more here, and its sockets closed.
    Dropped { room: String, epoch: String },
    /// This node's append was answered by Redis.
    Appended {
        epoch: String,
        entry: Option<Entry>,
        room: String,
        seq: u64,
        reply: Reply,
    },
    /// A push from the bus: one room's entries, stored in one step.
    Pushed { epoch: String, entries: Vec<Entry> },
    /// The log read for a room from `from`, and its oldest seq just after.
    Filled {
        room: String,
        from: u64,
        oldest: Option<u64>,
        entries: Vec<Entry>,
    },
    /// The bus was (re)connected: anything may have been missed while it was away.
    Resubscribed,
    /// One room's channel was subscribed again (a Redis Cluster master reconnected): what it
    /// missed meanwhile is read from the log.
    Refill { room: String },
    /// A room is about to be followed: hold what arrives of it until it is `Known`.
    Following { room: String },
    /// A room is followed no more here.
    Unfollowed { room: String },
    /// A join here has a cursor at `seq` of a room: answer once this node has handed on the
    /// room's messages up to it, reading the log for what the bus has not brought yet.
    CatchUp {
        room: String,
        seq: u64,
        reply: Reply,
    },
}

/// Cheap to clone: a handle to the connection and the sequencer task.
#[derive(Clone)]
pub struct RedisLog {
    conn: Commands,
    /// A Redis Cluster (not a Herald cluster: every node of one is on Redis): a pipeline keeps to
    /// one room's slot.
    redis_cluster: bool,
    /// Replicas that must have an append before it is answered.
    wait_replicas: u32,
    counters: crate::redis_link::RedisCounters,
    ensure: Arc<Script>,
    forget: Arc<Script>,
    drop: Arc<Script>,
    unread: Arc<Script>,
    retention: u64,
    events: mpsc::UnboundedSender<Event>,
    /// Appends, to be stored in the order they came: each room's through the same lane.
    appends: Arc<[mpsc::UnboundedSender<(NewEntry, Reply)>]>,
    /// The rooms known here.
    epochs: Epochs,
    /// The node's bus: the channels of the rooms it follows come to this log, through `listener`.
    bus: Bus,
    listener: Listener,
    /// The rooms followed here (their channel subscribed, the sequencer tracking them).
    following: Following,
}

/// Runs `fut` with [`COMMAND_TIMEOUT`]; Redis errors and timeouts alike make the log unavailable.
async fn timed<T>(fut: impl Future<Output = redis::RedisResult<T>>) -> Result<T, LogError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(LogError::Redis(e)),
        Err(_) => Err(LogError::Unavailable),
    }
}

impl RedisLog {
    /// Connects to Redis at `url`, keeping the last `retention` messages of each room. Subscribes
    /// to every room's channel before it reads where each room stands, so nothing published in
    /// between is missed. Each message any node stores goes to `publish` once, in seq order per
    /// room; this node's appends are answered after theirs.
    pub async fn open(
        link: &RedisLink,
        retention: u64,
        wait_replicas: u32,
        mut publish: impl FnMut(Published<'_>) + Send + 'static,
    ) -> Result<(Self, Vec<(String, u64)>), LogError> {
        let conn = timed(link.commands()).await?;
        let bus = Bus::start(link.clone(), conn.clone())
            .await
            .map_err(LogError::Redis)?;
        let (events, mut inbox) = mpsc::unbounded_channel();
        let (appends, lanes): (Vec<_>, Vec<_>) =
            (0..APPEND_LANES).map(|_| mpsc::unbounded_channel()).unzip();
        let log = Self {
            conn,
            redis_cluster: link.is_cluster(),
            wait_replicas,
            counters: link.counters.clone(),
            ensure: Arc::new(Script::new(ENSURE)),
            forget: Arc::new(Script::new(FORGET)),
            drop: Arc::new(Script::new(DROP)),
            unread: Arc::new(Script::new(UNREAD)),
            retention: retention.max(1),
            events: events.clone(),
            appends: appends.into(),
            epochs: Epochs::default(),
            bus,
            listener: Listener {
                // On the bus's task: each push is read and handed to the sequencer's queue.
                hear: {
                    let events = events.clone();
                    Arc::new(move |heard| {
                        if let Some(event) = pushes::event_of(heard) {
                            let _ = events.send(event);
                        }
                    })
                },
                name: "log",
            },
            following: Following::default(),
        };

        // Every node hears of a room forgotten, following it or not (it may know its epoch).
        log.bus
            .subscribe(FORGOTTEN_CHANNEL, bus::Kind::Ordinary, log.listener.clone())
            .await
            .map_err(LogError::Redis)?;

        // Where every room stands, to start the hub's rooms from; a room is followed (and heard
        // on the bus) only once this node has use for it.
        let mut conn = log.conn.clone();
        let rooms: Vec<String> = timed(conn.smembers(ROOMS_KEY)).await?;
        let mut last_seqs = Vec::new();
        let mut sequencer = Sequencer::default();
        let mut steps = Vec::new();
        for room in rooms {
            let (epoch, last): (Option<String>, Option<u64>) = timed(
                redis::cmd("HMGET")
                    .arg(meta_key(&room))
                    .arg("e")
                    .arg("s")
                    .query_async(&mut conn),
            )
            .await?;
            let Some(epoch) = epoch else { continue };
            log.epochs.insert(&room, &epoch);
            last_seqs.push((room, last.unwrap_or(0)));
        }

        for lane in lanes {
            tokio::spawn(append_loop(log.clone(), lane));
        }
        let reader = log.clone();
        tokio::spawn(async move {
            let mut check = tokio::time::interval(HOLE_CHECK);
            loop {
                let event = tokio::select! {
                    event = inbox.recv() => match event {
                        Some(event) => Some(event),
                        None => return,
                    },
                    _ = check.tick() => None,
                };
                let now = Instant::now();
                // Answered once the room's start has reached the hub, below.
                let mut known = None;
                match event {
                    Some(Event::Known {
                        room,
                        epoch,
                        last_seq,
                        done,
                    }) => {
                        sequencer.know(&room, &epoch, last_seq, now, &mut steps);
                        known = Some(done);
                    }
                    Some(Event::Appended {
                        epoch,
                        entry,
                        room,
                        seq,
                        reply,
                    }) => {
                        if let Some(entry) = entry {
                            publish(Published::StoredHere(&entry));
                            sequencer.offer(&epoch, entry, now, &mut steps);
                        }
                        sequencer.wait(&room, seq, reply, now, &mut steps);
                    }
                    Some(Event::Pushed { epoch, entries }) => {
                        for entry in entries {
                            sequencer.offer(&epoch, entry, now, &mut steps);
                        }
                    }
                    Some(Event::Forgotten { room, epoch }) => {
                        // Unless this node knows the room in a history begun since.
                        if sequencer.forget(&room, &epoch) {
                            if reader.epochs.get(&room).as_deref() == Some(epoch.as_str()) {
                                reader.epochs.remove(&room);
                            }
                            publish(Published::Forgotten { room: &room });
                        }
                    }
                    Some(Event::Dropped { room, epoch }) => {
                        // The node that dropped it forgot it first; one that made the room again
                        // since knows it in another epoch, and keeps it.
                        if reader.epochs.get(&room).as_deref() == Some(epoch.as_str()) {
                            reader.epochs.remove(&room);
                            publish(Published::Dropped { room: &room });
                        }
                    }
                    Some(Event::Filled {
                        room,
                        from,
                        oldest,
                        entries,
                    }) => sequencer.filled(&room, from, oldest, entries, now, &mut steps),
                    Some(Event::CatchUp { room, seq, reply }) => {
                        if let Some(next) = sequencer.next_of(&room)
                            && next <= seq
                        {
                            reader.fill(room.clone(), next);
                        }
                        sequencer.wait(&room, seq, reply, now, &mut steps);
                    }
                    Some(Event::Resubscribed) => {
                        for (room, from) in sequencer.every_room() {
                            reader.fill(room, from);
                        }
                    }
                    Some(Event::Refill { room }) => {
                        if let Some(from) = sequencer.next_of(&room) {
                            reader.fill(room, from);
                        }
                    }
                    Some(Event::Following { room }) => sequencer.pend(&room),
                    Some(Event::Unfollowed { room }) => sequencer.unfollow(&room, &mut steps),
                    // The timer: a look at every room, not on every message.
                    None => {
                        for (room, from) in sequencer.holes(now) {
                            reader.fill(room, from);
                        }
                    }
                }
                for step in steps.drain(..) {
                    match step {
                        // A room made on another node, or one whose history began again.
                        Step::Start {
                            room,
                            epoch,
                            last_seq,
                        } => {
                            reader.epochs.insert(&room, &epoch);
                            publish(Published::Start {
                                room: &room,
                                last_seq,
                            });
                        }
                        Step::Publish(entry) => publish(Published::Entry(&entry)),
                        Step::Answer(reply, seq) => {
                            let _ = reply.send(Ok(seq));
                        }
                    }
                }
                if let Some(done) = known {
                    let _ = done.send(());
                }
            }
        });
        Ok((log, last_seqs))
    }

    /// The lane of `room`'s appends.
    fn lane(&self, room: &str) -> &mpsc::UnboundedSender<(NewEntry, Reply)> {
        use std::hash::BuildHasher;
        // A fixed hasher: a room's lane must not change while the node runs.
        let hash =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .hash_one(room);
        &self.appends[(hash % self.appends.len() as u64) as usize]
    }

    /// Reads room `room` from `from` on, in the background, for the sequencer.
    fn fill(&self, room: String, from: u64) {
        let log = self.clone();
        tokio::spawn(async move {
            // The oldest after the range: what is older than it then is gone for good.
            let read = async {
                let entries = Record::entries(log.records(&room, from, u64::MAX).await?);
                Ok::<_, LogError>((log.first_seq(&room).await?, entries))
            };
            match read.await {
                Ok((oldest, entries)) => {
                    let _ = log.events.send(Event::Filled {
                        room,
                        from,
                        oldest,
                        entries,
                    });
                }
                // The next hole check (or resubscription) tries again.
                Err(e) => tracing::warn!(%room, "reading the log to fill a gap failed: {e}"),
            }
        });
    }

    pub async fn append(&self, msg: NewEntry) -> Result<u64, LogError> {
        self.submit(msg)?.await.map_err(|_| LogError::Closed)?
    }

    /// Queues the message for the appender; the answer comes once the sequencer has handed the
    /// message on. A room not known here yet is made first.
    pub fn submit(&self, msg: NewEntry) -> Result<Appending, LogError> {
        let (reply, answer) = oneshot::channel();
        if self.epoch(&msg.room).is_some() {
            self.lane(&msg.room)
                .send((msg, reply))
                .map_err(|_| LogError::Closed)?;
        } else {
            let log = self.clone();
            tokio::spawn(async move {
                match log.ensure_room(&msg.room).await {
                    Ok(_) => {
                        let _ = log.lane(&msg.room).send((msg, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            });
        }
        Ok(answer)
    }

    /// The room's epoch, creating the room if it does not exist yet.
    pub async fn ensure_room(&self, room: &str) -> Result<String, LogError> {
        if let Some(epoch) = self.epoch(room) {
            return Ok(epoch);
        }
        let (epoch, _) = self.ensure_stored(room).await?;
        self.epochs.insert(room, &epoch);
        Ok(epoch)
    }

    /// Makes the room in Redis if it is not there; its epoch and last seq as Redis has them.
    async fn ensure_stored(&self, room: &str) -> Result<(String, u64), LogError> {
        let mut conn = self.conn.clone();
        let mut call = self.ensure.prepare_invoke();
        call.key(meta_key(room)).arg(new_epoch());
        let stored: (String, u64) = timed(call.invoke_async(&mut conn)).await?;
        timed(conn.sadd::<_, _, ()>(ROOMS_KEY, room)).await?;
        Ok(stored)
    }

    /// Follows `room` on this node (made first if `create`), if it is not followed yet: its channel
    /// is subscribed, then where it stands is read, and the sequencer starts it there with what
    /// arrived meanwhile — nothing published after the subscription is missed, nothing before it
    /// is handed on twice. Returns once the hub has the room as Redis has it: the room's epoch and a
    /// lease that keeps it followed while held, or `None` if it does not exist (and `create` is
    /// false).
    pub async fn follow(
        &self,
        room: &str,
        create: bool,
    ) -> Result<Option<(String, Lease)>, LogError> {
        // The room's own lock, still the room's once held: one let go meanwhile is taken afresh.
        let (entry, _serial) = loop {
            let entry = self.following.room(room);
            let serial = entry.serial.clone().lock_owned().await;
            if self.following.is_current(room, &entry) {
                break (entry, serial);
            }
        };
        if entry.is_followed()
            && let Some(epoch) = self.epoch(room)
        {
            return Ok(Some((epoch, entry.lease())));
        }
        if entry.is_followed() && !create {
            return Ok(None);
        }
        let _ = self.events.send(Event::Following {
            room: room.to_owned(),
        });
        let listener = self.listener.clone();
        let stands = async {
            self.bus
                .subscribe(&live_channel(room), bus::Kind::Room, listener)
                .await
                .map_err(LogError::Redis)?;
            if create {
                return self.ensure_stored(room).await.map(Some);
            }
            self.stored_to(room).await
        };
        let (epoch, last_seq) = match stands.await {
            Ok(Some(stands)) => stands,
            outcome => {
                // Not followed after all: let go of what was begun.
                entry.unfollowed();
                self.bus.unsubscribe(&live_channel(room));
                let _ = self.events.send(Event::Unfollowed {
                    room: room.to_owned(),
                });
                return outcome.map(|_| None);
            }
        };
        let (done, known) = oneshot::channel();
        self.events
            .send(Event::Known {
                room: room.to_owned(),
                epoch: epoch.clone(),
                last_seq,
                done,
            })
            .map_err(|_| LogError::Closed)?;
        // Its epoch is in `epochs` now: the sequencer's start of it put it there.
        known.await.map_err(|_| LogError::Closed)?;
        Ok(Some((epoch, entry.lease())))
    }

    /// The node's bus.
    pub fn bus(&self) -> Bus {
        self.bus.clone()
    }

    /// Whether `room` is followed here now.
    pub fn follows(&self, room: &str) -> bool {
        self.following.follows(room)
    }

    /// Every room of the log, sorted (every node's).
    pub async fn all_rooms(&self) -> Result<Vec<String>, LogError> {
        let mut conn = self.conn.clone();
        let mut rooms: Vec<String> = timed(conn.smembers(ROOMS_KEY)).await?;
        rooms.sort();
        Ok(rooms)
    }

    /// See [`super::Log::unread`], counted by Redis in one step ([`UNREAD`]).
    pub async fn unread(
        &self,
        room: &str,
        epoch: &str,
        seq: u64,
    ) -> Result<Option<super::Unread>, LogError> {
        let mut conn = self.conn.clone();
        let mut call = self.unread.prepare_invoke();
        call.key(meta_key(room))
            .key(log_key(room))
            .key(state_key(room))
            .key(text_key(room))
            .arg(epoch)
            .arg(seq);
        let counted: Option<(String, u64, u64)> = timed(call.invoke_async(&mut conn)).await?;
        Ok(counted.map(|(epoch, last_seq, messages)| super::Unread {
            epoch,
            last_seq,
            messages,
        }))
    }

    /// The seq of the room's last entry as Redis has it (0 if none or no room).
    pub async fn last_stored(&self, room: &str) -> Result<u64, LogError> {
        let mut conn = self.conn.clone();
        let last: Option<u64> = timed(conn.hget(meta_key(room), "s")).await?;
        Ok(last.unwrap_or(0))
    }

    /// See [`super::Log::stored_to`]: the room's meta hash, where the epoch is set as the room is
    /// made and taken with it when it is deleted.
    pub async fn stored_to(&self, room: &str) -> Result<Option<(String, u64)>, LogError> {
        let mut conn = self.conn.clone();
        let (epoch, last): (Option<String>, Option<u64>) = timed(
            redis::cmd("HMGET")
                .arg(meta_key(room))
                .arg("e")
                .arg("s")
                .query_async(&mut conn),
        )
        .await?;
        Ok(epoch.map(|epoch| (epoch, last.unwrap_or(0))))
    }

    /// Lets go of the rooms followed here that have been of no use for `linger` (`in_use` says
    /// which are of use now: they have readers here): their channels are let go, and the
    /// sequencer stops tracking them. Returns the rooms let go.
    pub fn let_go_unused(&self, linger: Duration, in_use: &dyn Fn(&str) -> bool) -> Vec<String> {
        let gone = self.following.take_unused(linger, in_use);
        for room in &gone {
            self.bus.unsubscribe(&live_channel(room));
            let _ = self.events.send(Event::Unfollowed { room: room.clone() });
        }
        gone
    }

    /// Deletes `room` if it never held a message; says whether the log is without it now (also
    /// when it was not there: a room another node only told of). Taken out of the rooms' set
    /// first, so that no node counts it meanwhile, and put back if it is kept after all (a message
    /// came); every node, this one too, hears `forget ROOM EPOCH` and lets it go.
    /// A node that made the room again meanwhile, or appends to it from a stale epoch, starts a new
    /// history of it (nothing was in the old one): see docs/CLUSTER.md.
    pub async fn forget_unused(&self, room: &str) -> Result<bool, LogError> {
        let mut conn = self.conn.clone();
        timed(conn.srem::<_, _, ()>(ROOMS_KEY, room)).await?;
        let mut call = self.forget.prepare_invoke();
        call.key(meta_key(room))
            .key(log_key(room))
            .key(once_key(room))
            .arg(FORGOTTEN_CHANNEL)
            .arg(room);
        let gone: bool = match timed(call.invoke_async(&mut conn)).await {
            Ok(gone) => gone,
            Err(e) => {
                let _ = timed(conn.sadd::<_, _, ()>(ROOMS_KEY, room)).await;
                return Err(e);
            }
        };
        if !gone {
            timed(conn.sadd::<_, _, ()>(ROOMS_KEY, room)).await?;
        } else if !self.follows(room) {
            // Not this node's to hand on: gone from here at once (the note of it follows).
            self.epochs.remove(room);
        }
        Ok(gone)
    }

    /// Deletes `room` and everything it holds, whatever it holds (an admin deleting a room); says
    /// whether it was there. Taken out of the rooms' set first, so that no node lets anyone into
    /// it meanwhile (put back if the deletion fails: nothing was deleted, or the admin tries
    /// again); every other node hears `drop ROOM EPOCH`, forgets it and closes its sockets in it.
    /// A send already on its way may make the room again, as a new history (docs/CLUSTER.md).
    pub async fn drop_room(&self, room: &str) -> Result<bool, LogError> {
        let mut conn = self.conn.clone();
        timed(conn.srem::<_, _, ()>(ROOMS_KEY, room)).await?;
        let mut call = self.drop.prepare_invoke();
        call.key(meta_key(room))
            .key(log_key(room))
            .key(once_key(room))
            .key(state_key(room))
            .key(text_key(room))
            .arg(FORGOTTEN_CHANNEL)
            .arg(room);
        match timed(call.invoke_async(&mut conn)).await {
            Ok(dropped) => {
                self.epochs.remove(room);
                Ok(dropped)
            }
            Err(e) => {
                let _ = timed(conn.sadd::<_, _, ()>(ROOMS_KEY, room)).await;
                Err(e)
            }
        }
    }

    /// Whether no node has made `room` yet.
    pub async fn is_new(&self, room: &str) -> Result<bool, LogError> {
        let mut conn = self.conn.clone();
        let known: bool = timed(conn.sismember(ROOMS_KEY, room)).await?;
        Ok(!known)
    }

    /// How many rooms the cluster's log holds.
    pub async fn room_count(&self) -> Result<usize, LogError> {
        let mut conn = self.conn.clone();
        timed(conn.scard(ROOMS_KEY)).await
    }

    /// Returns once this node has handed on `room`'s messages up to `seq`, as stored: a cursor
    /// from another node can be ahead of what this node has heard on the bus so far. A `seq` past
    /// the room's last stored one returns at once (such a cursor is of no history here).
    pub async fn catch_up(&self, room: &str, seq: u64) -> Result<(), LogError> {
        let mut conn = self.conn.clone();
        let stored: Option<u64> = timed(conn.hget(meta_key(room), "s")).await?;
        if stored.is_none_or(|last| seq > last) {
            return Ok(());
        }
        let (reply, heard) = oneshot::channel();
        let room = room.to_owned();
        self.events
            .send(Event::CatchUp { room, seq, reply })
            .map_err(|_| LogError::Closed)?;
        match tokio::time::timeout(COMMAND_TIMEOUT, heard).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(LogError::Closed),
            Err(_) => Err(LogError::Unavailable),
        }
    }

    /// The oldest seq the room still holds, if it holds any.
    pub async fn first_seq(&self, room: &str) -> Result<Option<u64>, LogError> {
        let mut conn = self.conn.clone();
        let first: StreamEntries = timed(
            redis::cmd("XRANGE")
                .arg(log_key(room))
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut conn),
        )
        .await?;
        Ok(first.first().and_then(|(id, _)| seq_of_id(id)))
    }

    /// The entries of `room` with `from <= seq <= to`, oldest first (at most [`READ_PAGE`] past
    /// `from` when `to` is open-ended), as stored: each message as posted, with its state beside
    /// it — the stream, the texts of its seqs, and the states of the messages among them, in one
    /// round trip (`Log::range` makes them what readers get).
    pub(crate) async fn records(
        &self,
        room: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<Record>, LogError> {
        if from > to {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let count = to.saturating_sub(from).saturating_add(1).min(READ_PAGE);
        let last = from.saturating_add(count - 1);
        let seqs: Vec<u64> = (from..=last).collect();
        let (stream, texts, states): (StreamEntries, Vec<Option<String>>, Vec<String>) = timed(
            redis::pipe()
                .cmd("XRANGE")
                .arg(log_key(room))
                .arg(format!("{from}-0"))
                .arg(format!("{last}-0"))
                .cmd("HMGET")
                .arg(text_key(room))
                .arg(&seqs)
                .cmd("ZRANGEBYSCORE")
                .arg(state_key(room))
                .arg(from)
                .arg(last)
                .query_async(&mut conn),
        )
        .await?;
        let mut states: std::collections::HashMap<u64, State> = states
            .iter()
            .filter_map(|member| state_of_member(member))
            .collect();
        let mut read = Vec::with_capacity(stream.len());
        for (id, fields) in &stream {
            let at = entry_field(fields, "t").and_then(|t| t.parse().ok());
            let text = seq_of_id(id)
                .and_then(|seq| texts.get(usize::try_from(seq - from).ok()?)?.as_deref())
                .or_else(|| entry_field(fields, "m"));
            let stored = text.and_then(|json| serde_json::from_str::<Stored>(json).ok());
            match (seq_of_id(id), at, stored) {
                (Some(seq), Some(at), Some(stored)) => {
                    read.push(stored.record(seq, at, states.remove(&seq)));
                }
                _ => tracing::warn!(%room, %id, "a log entry that cannot be read was skipped"),
            }
        }
        Ok(read)
    }

    /// How many messages the room held once its entry `seq` was stored, if it is still held. An
    /// entry written before the count was kept has none of its own: the room's seq less the
    /// entries that are not messages, exact while every entry was a message.
    pub async fn messages_at(&self, room: &str, seq: u64) -> Result<Option<u64>, LogError> {
        let mut conn = self.conn.clone();
        let id = format!("{seq}-0");
        let (held, others): (StreamEntries, Option<u64>) = timed(
            redis::pipe()
                .cmd("XRANGE")
                .arg(log_key(room))
                .arg(&id)
                .arg(&id)
                .cmd("HGET")
                .arg(meta_key(room))
                .arg("d")
                .query_async(&mut conn),
        )
        .await?;
        let Some((_, fields)) = held.first() else {
            return Ok(None);
        };
        Ok(Some(
            entry_field(fields, "n")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| seq.saturating_sub(others.unwrap_or(0))),
        ))
    }

    /// Whether Redis answers now, and the bus is subscribed.
    pub async fn check(&self) -> Result<(), LogError> {
        if !self.bus.is_up() {
            return Err(LogError::Unavailable);
        }
        let mut conn = self.conn.clone();
        timed(redis::cmd("PING").query_async::<String>(&mut conn)).await?;
        Ok(())
    }

    /// Every room known here, sorted.
    pub fn rooms(&self) -> Vec<String> {
        self.epochs.rooms()
    }

    /// The epoch of `room`, if it is known here.
    pub fn epoch(&self, room: &str) -> Option<String> {
        self.epochs.get(room)
    }
}

/// What `XRANGE` answers: each entry's id and its fields, `[name, value, ..]`.
pub(super) type StreamEntries = Vec<(String, Vec<String>)>;

/// A member of a room's `state` set, `<seq> <json>`: the message's seq and its state.
fn state_of_member(member: &str) -> Option<(u64, State)> {
    let (seq, json) = member.split_once(' ')?;
    Some((seq.parse().ok()?, serde_json::from_str(json).ok()?))
}

/// `<seq>-0` → seq.
fn seq_of_id(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

/// The value of field `name` of a stream entry (`[name, value, name, value, ..]`).
fn entry_field<'a>(fields: &'a [String], name: &str) -> Option<&'a str> {
    fields
        .chunks_exact(2)
        .find(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str())
}

/// A fresh epoch: 64 random bits as hex.
fn new_epoch() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        bytes = (nanos as u64).to_le_bytes();
    }
    format!("{:016x}", u64::from_le_bytes(bytes))
}
