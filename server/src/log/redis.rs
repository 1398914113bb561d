//! The message log shared by a cluster of nodes: Redis, as both the record and the bus
//! (docs/CLUSTER.md). Each room has, under keys that carry the room as a hash tag (one room, one
//! slot): a hash `meta` (`e` epoch, `s` last seq), a stream `log` whose entry IDs are the seqs, and
//! a sorted set `once` of `(author, client_id)` → seq for dedupe, trimmed with the log.
//!
//! An append is one Lua script, atomic in Redis: dedupe, the next seq, the stream entry, retention
//! and the PUBLISH on the room's channel. Redis answers only after it has written (with
//! `appendfsync always`, fsynced) the script's effects, so an answered append is durable, and every
//! node hears of it on the bus. What a node hears — its own appends' answers, the bus, the log read
//! to fill a hole — goes through one [`Sequencer`] task, which hands each room's messages to
//! `publish` once, in seq order, and answers each local append after its message.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use app::protocol::{ChatMessage, Identity, MessageKind};
use futures::StreamExt;
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{
    Appending, Epochs, LogError, NewMessage, Published,
    sequencer::{Sequencer, Step},
};
use crate::redis_link::{Commands, RedisLink};

/// The prefix of every key and channel.
const PREFIX: &str = "herald";

/// Every room's name.
const ROOMS_KEY: &str = "herald:rooms";

/// The pattern every node subscribes to: each room's channel.
const LIVE_PATTERN: &str = "herald:{*}:live";

/// How often the sequencer task looks for holes that waited long enough.
const HOLE_CHECK: Duration = Duration::from_millis(50);

/// Most messages one read of the log returns (a hole or a catch-up reads on in pages).
const READ_PAGE: u64 = 1000;

/// How often a node puts a probe on its own bus channel, and how long the probe may take to come
/// back before the bus connection counts as wedged (open, but no longer delivering) and is replaced.
const PROBE_EVERY: Duration = Duration::from_secs(1);
const PROBE_PATIENCE: Duration = Duration::from_secs(5);

/// How long a command may take before the log counts as unavailable.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an append waits for replicas (`--redis-wait-replicas`), within [`COMMAND_TIMEOUT`].
const REPLICA_WAIT_MS: u64 = 1000;

/// Dedupe, seq, entry, retention and publish in one step, for one or more messages to one room.
/// KEYS: meta, log, once. ARGV: retention, a fresh epoch (taken if the room has none), the room's
/// channel, `1` to publish (`0` when the node publishes after replicas have it, see [`push_of`]),
/// then for each message its dedupe member and its JSON (without seq and time). Returns
/// `{epoch, sent_at_ms, {seq..}, {duplicate..}}`; one push carries every new message.
const APPEND: &str = include_str!("append.lua");

/// The room's epoch and last seq, creating the room if it has none. KEYS: meta. ARGV: a fresh epoch.
const ENSURE: &str = r#"
redis.call('HSETNX', KEYS[1], 'e', ARGV[1])
redis.call('HSETNX', KEYS[1], 's', 0)
return {redis.call('HGET', KEYS[1], 'e'), tonumber(redis.call('HGET', KEYS[1], 's'))}
"#;

/// Deletes a room that never held a message, and tells every node. KEYS: meta, log, once. ARGV:
/// the room's channel. Returns 1 if the room is not in the log now (forgotten here, or not there
/// to begin with), 0 if it is kept: it holds (or held) a message.
const FORGET: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then return 1 end
local s = redis.call('HGET', KEYS[1], 's')
if (s and tonumber(s) ~= 0) or redis.call('XLEN', KEYS[2]) > 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('PUBLISH', ARGV[1], 'forget ' .. epoch)
return 1
"#;

/// A message as the log keeps it: what its seq and time do not say.
#[derive(Serialize, Deserialize)]
struct Entry {
    room: String,
    author: Identity,
    client_id: String,
    body: String,
    #[serde(default)]
    kind: MessageKind,
}

fn meta_key(room: &str) -> String {
    format!("{PREFIX}:{{{room}}}:meta")
}

fn log_key(room: &str) -> String {
    format!("{PREFIX}:{{{room}}}:log")
}

fn once_key(room: &str) -> String {
    format!("{PREFIX}:{{{room}}}:once")
}

fn live_channel(room: &str) -> String {
    format!("{PREFIX}:{{{room}}}:live")
}

/// The room a channel is for.
fn room_of_channel(channel: &str) -> Option<&str> {
    channel.strip_prefix("herald:{")?.strip_suffix("}:live")
}

/// Where a local append's answer goes.
type Reply = oneshot::Sender<Result<u64, LogError>>;

/// Appender lanes: each room's appends go through one lane, in order, one pipeline at a time; the
/// lanes' pipelines are in flight together (one lane alone waits a round trip and an fsync per batch).
const APPEND_LANES: usize = 8;

/// Most appends sent to Redis in one pipeline.
const APPEND_BATCH_MAX: usize = 256;

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
    /// This node's append was answered by Redis.
    Appended {
        epoch: String,
        message: Option<ChatMessage>,
        room: String,
        seq: u64,
        reply: Reply,
    },
    /// A push from the bus: one room's messages, stored in one step.
    Pushed {
        epoch: String,
        messages: Vec<ChatMessage>,
    },
    /// The log read for a room from `from`, and its oldest seq just after.
    Filled {
        room: String,
        from: u64,
        oldest: Option<u64>,
        messages: Vec<ChatMessage>,
    },
    /// The bus was (re)connected: anything may have been missed while it was away.
    Resubscribed,
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
    retention: u64,
    events: mpsc::UnboundedSender<Event>,
    /// Appends, to be stored in the order they came: each room's through the same lane.
    appends: Arc<[mpsc::UnboundedSender<(NewMessage, Reply)>]>,
    /// The rooms known here.
    epochs: Epochs,
    /// Whether the bus is subscribed now: a node that cannot hear the others is not healthy, even
    /// while its commands get answers.
    bus_up: Arc<AtomicBool>,
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
            retention: retention.max(1),
            events: events.clone(),
            appends: appends.into(),
            epochs: Epochs::default(),
            bus_up: Arc::new(AtomicBool::new(false)),
        };
        let bus = link.clone();
        let subscribed = listen(bus, log.conn.clone(), events.clone(), log.bus_up.clone());
        subscribed.await?;

        // Where every room stands, after the subscription: what was published before is in these
        // figures, what after arrives on the bus.
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
            let last = last.unwrap_or(0);
            sequencer.know(&room, &epoch, last, &mut steps);
            log.epochs.insert(&room, &epoch);
            last_seqs.push((room, last));
        }
        steps.clear(); // The caller starts the rooms' hub from `last_seqs`.

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
                        sequencer.know(&room, &epoch, last_seq, &mut steps);
                        known = Some(done);
                    }
                    Some(Event::Appended {
                        epoch,
                        message,
                        room,
                        seq,
                        reply,
                    }) => {
                        if let Some(message) = message {
                            sequencer.offer(&epoch, message, now, &mut steps);
                        }
                        sequencer.wait(&room, seq, reply, &mut steps);
                    }
                    Some(Event::Pushed { epoch, messages }) => {
                        for message in messages {
                            sequencer.offer(&epoch, message, now, &mut steps);
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
                    Some(Event::Filled {
                        room,
                        from,
                        oldest,
                        messages,
                    }) => sequencer.filled(&room, from, oldest, messages, now, &mut steps),
                    Some(Event::CatchUp { room, seq, reply }) => {
                        if let Some(next) = sequencer.next_of(&room)
                            && next <= seq
                        {
                            reader.fill(room.clone(), next);
                        }
                        sequencer.wait(&room, seq, reply, &mut steps);
                    }
                    Some(Event::Resubscribed) => {
                        for (room, from) in sequencer.every_room() {
                            reader.fill(room, from);
                        }
                    }
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
                        Step::Publish(message) => publish(Published::Message(&message)),
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
    fn lane(&self, room: &str) -> &mpsc::UnboundedSender<(NewMessage, Reply)> {
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
                let messages = log.range(&room, from, u64::MAX).await?;
                Ok::<_, LogError>((log.first_seq(&room).await?, messages))
            };
            match read.await {
                Ok((oldest, messages)) => {
                    let _ = log.events.send(Event::Filled {
                        room,
                        from,
                        oldest,
                        messages,
                    });
                }
                // The next hole check (or resubscription) tries again.
                Err(e) => tracing::warn!(%room, "reading the log to fill a gap failed: {e}"),
            }
        });
    }

    pub async fn append(&self, msg: NewMessage) -> Result<u64, LogError> {
        self.submit(msg)?.await.map_err(|_| LogError::Closed)?
    }

    /// Queues the message for the appender; the answer comes once the sequencer has handed the
    /// message on. A room not known here yet is made first.
    pub fn submit(&self, msg: NewMessage) -> Result<Appending, LogError> {
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
        let mut conn = self.conn.clone();
        let mut call = self.ensure.prepare_invoke();
        call.key(meta_key(room)).arg(new_epoch());
        let (epoch, last_seq): (String, u64) = timed(call.invoke_async(&mut conn)).await?;
        timed(conn.sadd::<_, _, ()>(ROOMS_KEY, room)).await?;
        // Known to the sequencer, and started in the hub, before anyone joins it here.
        let (done, known) = oneshot::channel();
        self.events
            .send(Event::Known {
                room: room.to_owned(),
                epoch: epoch.clone(),
                last_seq,
                done,
            })
            .map_err(|_| LogError::Closed)?;
        // Its epoch is in `epochs` now: the sequencer's start of it put it there (or did before).
        known.await.map_err(|_| LogError::Closed)?;
        Ok(epoch)
    }

    /// Deletes `room` if it never held a message; says whether the log is without it now (also
    /// when it was not there: a room another node only told of). Taken out of the rooms' set
    /// first, so that no node counts it meanwhile, and put back if it is kept after all (a message
    /// came); every node, this one too, hears `forget EPOCH` on the room's channel and lets it go.
    /// A node that made the room again meanwhile, or appends to it from a stale epoch, starts a new
    /// history of it (nothing was in the old one): see docs/CLUSTER.md.
    pub async fn forget_unused(&self, room: &str) -> Result<bool, LogError> {
        let mut conn = self.conn.clone();
        timed(conn.srem::<_, _, ()>(ROOMS_KEY, room)).await?;
        let mut call = self.forget.prepare_invoke();
        call.key(meta_key(room))
            .key(log_key(room))
            .key(once_key(room))
            .arg(live_channel(room));
        let gone: bool = match timed(call.invoke_async(&mut conn)).await {
            Ok(gone) => gone,
            Err(e) => {
                let _ = timed(conn.sadd::<_, _, ()>(ROOMS_KEY, room)).await;
                return Err(e);
            }
        };
        if !gone {
            timed(conn.sadd::<_, _, ()>(ROOMS_KEY, room)).await?;
        }
        Ok(gone)
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
        let first: Vec<(String, Vec<String>)> = timed(
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

    /// The messages of `room` with `from <= seq <= to`, oldest first (at most [`READ_PAGE`] past
    /// `from` when `to` is open-ended).
    pub async fn range(
        &self,
        room: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<ChatMessage>, LogError> {
        if from > to {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let end = if to == u64::MAX {
            "+".to_owned()
        } else {
            format!("{to}-0")
        };
        let count = to.saturating_sub(from).saturating_add(1).min(READ_PAGE);
        let entries: Vec<(String, Vec<String>)> = timed(
            redis::cmd("XRANGE")
                .arg(log_key(room))
                .arg(format!("{from}-0"))
                .arg(end)
                .arg("COUNT")
                .arg(count)
                .query_async(&mut conn),
        )
        .await?;
        let mut messages = Vec::with_capacity(entries.len());
        for (id, fields) in entries {
            let Some(message) = message_of_entry(&id, &fields) else {
                tracing::warn!(%room, %id, "a log entry that cannot be read was skipped");
                continue;
            };
            messages.push(message);
        }
        Ok(messages)
    }

    /// Whether Redis answers now, and the bus is subscribed.
    pub async fn check(&self) -> Result<(), LogError> {
        if !self.bus_up.load(Ordering::Relaxed) {
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

/// Runs the append script for every message queued on one lane, in the order queued: one script
/// call per room in the batch (a room's messages stored in one step, with one push), as one
/// pipeline (one round trip, and with `appendfsync always` one fsync pass, for the whole batch). A
/// connection's sends to a room are stored in the order it sent them, as on one node.
///
/// On a Redis Cluster a pipeline must keep to one slot, and a room must not wait for another
/// master's rooms (one that is down makes each append wait out its time limit): the lane hands
/// each room's messages to a task of that room's own ([`room_append_loop`]), which stores what
/// has come for its room while its last append was out, in one call.
async fn append_loop(log: RedisLog, mut queue: mpsc::UnboundedReceiver<(NewMessage, Reply)>) {
    if log.redis_cluster {
        return route_by_room(log, queue).await;
    }
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < APPEND_BATCH_MAX {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut rooms: Vec<Vec<(NewMessage, Reply)>> = Vec::new();
        let mut of_room = std::collections::HashMap::new();
        for (msg, reply) in batch {
            let at = *of_room.entry(msg.room.clone()).or_insert_with(|| {
                rooms.push(Vec::new());
                rooms.len() - 1
            });
            rooms[at].push((msg, reply));
        }
        append_rooms(&log, rooms).await;
    }
}

/// A room's task is let go after this long without a message (its queue drains first).
const ROOM_TASK_IDLE: Duration = Duration::from_secs(60);

/// A lane on a Redis Cluster: each message to its room's task, made when the room's first comes.
/// Only this loop sends to a room's task, and it lets one go by dropping its sender, so a task
/// ends only once everything sent to it is stored: nothing is lost between them.
async fn route_by_room(log: RedisLog, mut queue: mpsc::UnboundedReceiver<(NewMessage, Reply)>) {
    type Task = (mpsc::UnboundedSender<(NewMessage, Reply)>, Instant);
    let mut rooms: std::collections::HashMap<String, Task> = std::collections::HashMap::new();
    let mut prune = tokio::time::interval(ROOM_TASK_IDLE);
    loop {
        tokio::select! {
            next = queue.recv() => {
                let Some((msg, reply)) = next else { return };
                let now = Instant::now();
                let (room, used) = rooms.entry(msg.room.clone()).or_insert_with(|| {
                    let (to_room, room_queue) = mpsc::unbounded_channel();
                    tokio::spawn(room_append_loop(log.clone(), room_queue));
                    (to_room, now)
                });
                *used = now;
                if let Err(mpsc::error::SendError((_, reply))) = room.send((msg, reply)) {
                    let _ = reply.send(Err(LogError::Closed));
                }
            }
            _ = prune.tick() => rooms.retain(|_, (_, used)| used.elapsed() < ROOM_TASK_IDLE),
        }
    }
}

/// One room's appends on a Redis Cluster, in the order they came: each call takes whatever has
/// come for the room meanwhile (up to a batch), so a busy room is stored in few round trips.
async fn room_append_loop(log: RedisLog, mut queue: mpsc::UnboundedReceiver<(NewMessage, Reply)>) {
    while let Some(first) = queue.recv().await {
        // What the other tasks are about to hand on joins this call.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < APPEND_BATCH_MAX {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        append_rooms(&log, vec![batch]).await;
    }
}

/// One room's messages in a batch, as the log keeps them.
struct RoomBatch {
    room: String,
    entries: Vec<Entry>,
    /// Each entry's JSON, as stored and pushed.
    jsons: Vec<String>,
    replies: Vec<Reply>,
}

/// What the append script answered for one room's messages.
struct Stored {
    epoch: String,
    sent_at: u64,
    seqs: Vec<u64>,
    duplicates: Vec<u8>,
}

/// Stores `rooms` (one script call each, in one pipeline) and tells the sequencer each answer; a
/// room whose messages Redis did not answer has each sender told the log is unavailable.
async fn append_rooms(log: &RedisLog, rooms: Vec<Vec<(NewMessage, Reply)>>) {
    let batches: Vec<RoomBatch> = rooms
        .into_iter()
        .filter_map(|messages| {
            let room = messages.first()?.0.room.clone();
            let (entries, replies): (Vec<Entry>, Vec<Reply>) = messages
                .into_iter()
                .map(|(msg, reply)| {
                    let entry = Entry {
                        room: msg.room,
                        author: msg.author,
                        client_id: msg.client_id,
                        body: msg.body,
                        kind: msg.kind,
                    };
                    (entry, reply)
                })
                .unzip();
            // Serializing these strings cannot fail.
            let jsons = entries
                .iter()
                .map(|entry| serde_json::to_string(entry).unwrap_or_default())
                .collect();
            Some(RoomBatch {
                room,
                entries,
                jsons,
                replies,
            })
        })
        .collect();
    // Sent by hash (EVALSHA): the script's text is not parsed again for every call, and its hash
    // is taken once.
    static BY_HASH: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| Script::new(APPEND).get_hash().to_owned());
    let by_hash = BY_HASH.as_str();
    // Waiting for replicas, the node publishes once they have the batch: no reader sees a message
    // a failover could still take back.
    let publish_now = if log.wait_replicas > 0 { "0" } else { "1" };
    let pipeline = |call: &str, script: &str| {
        let mut pipe = redis::pipe();
        for batch in &batches {
            let room = &batch.room;
            let cmd = pipe
                .cmd(call)
                .arg(script)
                .arg(3)
                .arg(meta_key(room))
                .arg(log_key(room))
                .arg(once_key(room))
                .arg(log.retention)
                .arg(new_epoch())
                .arg(live_channel(room))
                .arg(publish_now);
            for (entry, json) in batch.entries.iter().zip(&batch.jsons) {
                cmd.arg(format!("{}\n{}", entry.author.id, entry.client_id))
                    .arg(json);
            }
        }
        if log.wait_replicas > 0 {
            // On the same connection, so to the same master (a keyless command in a pipeline
            // follows the pipeline's slot): answered once that many replicas have the batch.
            pipe.cmd("WAIT").arg(log.wait_replicas).arg(REPLICA_WAIT_MS);
        }
        pipe
    };
    let mut conn = log.conn.clone();
    let since = Instant::now();
    let mut answered: Result<Vec<redis::Value>, LogError> =
        timed(pipeline("EVALSHA", by_hash).query_async(&mut conn)).await;
    log.counters.took("append", since);
    if let Err(LogError::Redis(e)) = &answered
        && e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
    {
        // Redis (or this slot's master) restarted or failed over without the script: the batch
        // did not run. Sent again with the script's text, which also caches it there. Had some
        // of it run, the script's dedupe answers those with the seqs they got.
        answered = timed(pipeline("EVAL", APPEND).query_async(&mut conn)).await;
    }
    let answered = answered.and_then(|values| appended(values, log.wait_replicas));
    let answers = match answered {
        Ok(answers) if answers.len() == batches.len() => answers,
        outcome => {
            if let Err(e) = outcome {
                let count: usize = batches.iter().map(|b| b.replies.len()).sum();
                tracing::warn!("storing {count} messages in Redis failed: {e}");
            }
            // Each may or may not have been stored: the sender sends it again with the same
            // client id, and the script's dedupe answers with the seq it got, if it got one.
            for reply in batches.into_iter().flat_map(|b| b.replies) {
                let _ = reply.send(Err(LogError::Unavailable));
            }
            return;
        }
    };
    if log.wait_replicas > 0 {
        publish_replicated(&mut conn, &batches, &answers).await;
    }
    for (batch, stored) in batches.into_iter().zip(answers) {
        if stored.seqs.len() != batch.replies.len()
            || stored.duplicates.len() != batch.replies.len()
        {
            tracing::warn!(room = %batch.room, "Redis answered an append with the wrong count");
            for reply in batch.replies {
                let _ = reply.send(Err(LogError::Unavailable));
            }
            continue;
        }
        let answers = stored.seqs.iter().zip(&stored.duplicates);
        for ((entry, reply), (&seq, &duplicate)) in
            batch.entries.into_iter().zip(batch.replies).zip(answers)
        {
            // A duplicate's message went out when it was first stored.
            let message = (duplicate == 0).then(|| message_of(entry, seq, stored.sent_at));
            let event = Event::Appended {
                epoch: stored.epoch.clone(),
                message,
                room: batch.room.clone(),
                seq,
                reply,
            };
            let _ = log.events.send(event);
        }
    }
}

/// Waiting for replicas, the node publishes what they have: each new message, and each duplicate
/// as the log holds it (its first store may have been refused for want of replicas, and so never
/// published; nodes that had it skip it as old). Lost with Redis, pushes are not lost to the
/// others: a later message shows them the hole, and a cursor from here makes them catch up.
async fn publish_replicated(conn: &mut Commands, batches: &[RoomBatch], answers: &[Stored]) {
    let mut pushes = redis::pipe();
    for (batch, stored) in batches.iter().zip(answers) {
        let mut lines = Vec::new();
        let answered = stored.seqs.iter().zip(&stored.duplicates);
        for (json, (&seq, &duplicate)) in batch.jsons.iter().zip(answered) {
            if duplicate == 0 {
                lines.push(push_line(seq, stored.sent_at, json));
                continue;
            }
            let id = format!("{seq}-0");
            let held: Result<Vec<(String, Vec<String>)>, _> =
                timed(conn.xrange_count(log_key(&batch.room), &id, &id, 1)).await;
            let entries = held.unwrap_or_default();
            let found = entries.first().and_then(|(_, fields)| {
                Some((entry_field(fields, "t")?, entry_field(fields, "m")?))
            });
            // Not found: trimmed already, or Redis went; nothing to show.
            if let Some((sent_at, json)) = found {
                lines.push(push_line(seq, sent_at, json));
            }
        }
        if !lines.is_empty() {
            pushes
                .cmd("PUBLISH")
                .arg(live_channel(&batch.room))
                .arg(push_of(&stored.epoch, &lines))
                .ignore();
        }
    }
    if let Err(e) = timed(pushes.query_async::<()>(conn)).await {
        tracing::warn!("publishing stored messages failed: {e}");
    }
}

/// The append script's answers, one per room, once `WAIT`'s answer (the last, when
/// `wait_replicas` > 0) says that many replicas have them; else the log is unavailable.
fn appended(mut values: Vec<redis::Value>, wait_replicas: u32) -> Result<Vec<Stored>, LogError> {
    let unreadable = |e: redis::ParsingError| LogError::Redis(e.into());
    if wait_replicas > 0 {
        let replicas: i64 = redis::from_redis_value(values.pop().unwrap_or(redis::Value::Nil))
            .map_err(unreadable)?;
        if replicas < i64::from(wait_replicas) {
            tracing::warn!(
                "an append reached {replicas} of the {wait_replicas} replicas it waits for"
            );
            return Err(LogError::Unavailable);
        }
    }
    values
        .into_iter()
        .map(|value| {
            let (epoch, sent_at, seqs, duplicates) = redis::from_redis_value(value)?;
            Ok(Stored {
                epoch,
                sent_at,
                seqs,
                duplicates,
            })
        })
        .collect::<Result<_, redis::ParsingError>>()
        .map_err(unreadable)
}

/// A room as `herald import-to-redis` copies it (see `super::import`).
pub struct ImportedRoom {
    pub name: String,
    pub epoch: String,
    pub last_seq: u64,
}

/// Redis as the import writes it: the same keys the append script keeps.
pub struct Target {
    conn: Commands,
}

impl Target {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let reached = async { RedisLink::connect(url).await?.commands().await };
        let conn = timed(reached)
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach Redis at {url}: {e}"))?;
        Ok(Self { conn })
    }

    /// Which of `rooms` Redis already has (an epoch in their `meta`).
    pub async fn existing(&self, rooms: impl Iterator<Item = &str>) -> anyhow::Result<Vec<String>> {
        let mut taken = Vec::new();
        let mut conn = self.conn.clone();
        for room in rooms {
            let epoch: Option<String> = conn.hget(meta_key(room), "e").await?;
            if epoch.is_some() {
                taken.push(room.to_owned());
            }
        }
        Ok(taken)
    }

    /// Writes `room` with `messages` (oldest first). The room's `meta` goes last: a copy cut off
    /// half-way leaves a room without an epoch, which the next append or import starts afresh.
    pub async fn write_room(
        &self,
        room: &ImportedRoom,
        messages: &[ChatMessage],
    ) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let name = &room.name;
        let _: () = redis::pipe()
            .del(log_key(name))
            .del(once_key(name))
            .query_async(&mut conn)
            .await?;
        for chunk in messages.chunks(500) {
            let mut pipe = redis::pipe();
            for message in chunk {
                let entry = Entry {
                    room: name.clone(),
                    author: message.author.clone(),
                    client_id: message.client_id.clone(),
                    body: message.body.clone(),
                    kind: message.kind,
                };
                let once = format!("{}\n{}", message.author.id, message.client_id);
                pipe.cmd("XADD")
                    .arg(log_key(name))
                    .arg(format!("{}-0", message.seq))
                    .arg("m")
                    .arg(serde_json::to_string(&entry)?)
                    .arg("t")
                    .arg(message.sent_at)
                    .arg("o")
                    .arg(&once)
                    .ignore();
                pipe.zadd(once_key(name), &once, message.seq).ignore();
            }
            let _: () = pipe.query_async(&mut conn).await?;
        }
        let _: () = conn
            .hset_multiple(
                meta_key(name),
                &[("e", room.epoch.clone()), ("s", room.last_seq.to_string())],
            )
            .await?;
        // Its own command: on a Redis Cluster the room list is in another slot than the room.
        let _: () = conn.sadd(ROOMS_KEY, name).await?;
        Ok(())
    }
}

/// Refuses a Redis at `url` that can lose what it acknowledged — no append-only file, fsync less
/// often than every write, or keys evicted under memory pressure — unless `accept_risk`, when it is
/// only warned about. Acknowledged means kept only when Redis itself keeps it. On a Redis Cluster,
/// every node is asked: a replica promoted after a failover must keep what it took over.
pub async fn check_server(link: &RedisLink, accept_risk: bool) -> anyhow::Result<()> {
    let url = link.nodes().first().cloned().unwrap_or_default();
    let mut risks = Vec::new();
    for (node, conn) in link.each_node().await {
        let mut conn = conn.map_err(|e| anyhow::anyhow!("cannot reach Redis at {node}: {e}"))?;
        let mut setting = async |name: &str| -> anyhow::Result<String> {
            let pair: Vec<String> = timed(
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg(name)
                    .query_async(&mut conn),
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot read {name} of Redis at {node}: {e}"))?;
            Ok(pair.get(1).cloned().unwrap_or_default())
        };
        let at = if link.is_cluster() {
            format!(" on {node}")
        } else {
            String::new()
        };
        if setting("appendonly").await? != "yes" {
            risks.push(format!(
                "appendonly is not yes{at}: a restart loses what was acknowledged since the last \
                 snapshot"
            ));
        }
        if setting("appendfsync").await? != "always" {
            risks.push(format!(
                "appendfsync is not always{at}: a crash loses up to a second of acknowledged messages"
            ));
        }
        if setting("maxmemory-policy").await? != "noeviction" {
            risks.push(format!(
                "maxmemory-policy is not noeviction{at}: Redis may delete history to free memory"
            ));
        }
    }
    if link.is_cluster() {
        tracing::info!(nodes = %link.nodes().join(" "), "Redis at {url} is a Redis Cluster");
    }
    if risks.is_empty() {
        return Ok(());
    }
    let said = risks.join("; ");
    if accept_risk {
        tracing::warn!(
            "Redis at {url} can lose acknowledged messages ({said}); started anyway (--redis-accept-risk)"
        );
        return Ok(());
    }
    anyhow::bail!(
        "Redis at {url} can lose acknowledged messages: {said}. Set it to keep them \
         (appendonly yes, appendfsync always, maxmemory-policy noeviction), or start with \
         --redis-accept-risk to run anyway"
    )
}

/// Subscribes to every room's channel and forwards what arrives; resolves once first subscribed.
/// After a lost connection it subscribes again and tells the sequencer, which reads every room
/// from where it stands: a push lost meanwhile is never a silent gap. A connection that stays open
/// but stops delivering (a half-open TCP connection, a wedged proxy: no error ever comes) is found
/// by a probe this node publishes on a channel of its own through `commands` every
/// [`PROBE_EVERY`]: not heard back within [`PROBE_PATIENCE`], the connection is replaced as if lost.
fn listen(
    link: RedisLink,
    commands: Commands,
    events: mpsc::UnboundedSender<Event>,
    up: Arc<AtomicBool>,
) -> impl Future<Output = Result<(), LogError>> {
    let (ready, subscribed) = oneshot::channel();
    let probe = format!("{PREFIX}:probe:{}", new_epoch());
    tokio::spawn(async move {
        let mut ready = Some(ready);
        let mut pause = Duration::from_millis(100);
        loop {
            let connected = async {
                let mut pubsub = timed(link.pubsub()).await?;
                timed(pubsub.psubscribe(LIVE_PATTERN)).await?;
                timed(pubsub.subscribe(&probe)).await?;
                Ok::<_, LogError>(pubsub)
            }
            .await;
            let pubsub = match connected {
                Ok(pubsub) => pubsub,
                Err(e) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(e));
                        return;
                    }
                    tracing::warn!("the Redis bus is unreachable: {e}; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            pause = Duration::from_millis(100);
            up.store(true, Ordering::Relaxed);
            match ready.take() {
                Some(ready) => {
                    let _ = ready.send(Ok(()));
                }
                None => {
                    link.counters.repaired("log");
                    tracing::info!("the Redis bus is back; filling what it may have missed");
                    if events.send(Event::Resubscribed).is_err() {
                        return;
                    }
                }
            }
            let mut stream = pubsub.into_on_message();
            let mut heard = Instant::now();
            let mut probed: Option<Instant> = None;
            let mut every = tokio::time::interval(PROBE_EVERY);
            loop {
                let msg = tokio::select! {
                    msg = stream.next() => match msg {
                        Some(msg) => msg,
                        None => break,
                    },
                    _ = every.tick() => {
                        if heard.elapsed() > PROBE_PATIENCE {
                            tracing::warn!(
                                "the Redis bus went silent (no probe back in {PROBE_PATIENCE:?}); \
                                 replacing its connection"
                            );
                            break;
                        }
                        probed.get_or_insert_with(Instant::now);
                        let (mut commands, probe) = (commands.clone(), probe.clone());
                        tokio::spawn(async move {
                            let _ = timed(commands.publish::<_, _, ()>(probe, "")).await;
                        });
                        continue;
                    }
                };
                if msg.get_channel_name() == probe {
                    heard = Instant::now();
                    if let Some(sent) = probed.take() {
                        link.counters.took("bus", sent);
                    }
                    continue;
                }
                let Some(room) = room_of_channel(msg.get_channel_name()) else {
                    continue;
                };
                if let Some(epoch) = forgotten_of_push(msg.get_payload_bytes()) {
                    let (room, epoch) = (room.to_owned(), epoch.to_owned());
                    if events.send(Event::Forgotten { room, epoch }).is_err() {
                        return;
                    }
                    continue;
                }
                let Some((epoch, messages)) = messages_of_push(room, msg.get_payload_bytes())
                else {
                    tracing::warn!(%room, "a push that cannot be read was skipped");
                    continue;
                };
                if events.send(Event::Pushed { epoch, messages }).is_err() {
                    return;
                }
            }
            up.store(false, Ordering::Relaxed);
            tracing::warn!("the Redis bus connection was lost; reconnecting");
        }
    });
    async move { subscribed.await.map_err(|_| LogError::Closed)? }
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

fn message_of_entry(id: &str, fields: &[String]) -> Option<ChatMessage> {
    let seq = seq_of_id(id)?;
    let entry: Entry = serde_json::from_str(entry_field(fields, "m")?).ok()?;
    let sent_at = entry_field(fields, "t")?.parse().ok()?;
    Some(message_of(entry, seq, sent_at))
}

/// What goes on a room's channel for stored messages, as the append script publishes it: the
/// room's epoch, then a [`push_line`] per message, each on its own line (JSON holds no raw newline).
fn push_of(epoch: &str, lines: &[String]) -> String {
    let mut push = epoch.to_owned();
    for line in lines {
        push.push('\n');
        push.push_str(line);
    }
    push
}

/// One message of a push: `SEQ SENT_AT_MS JSON`.
fn push_line(seq: u64, sent_at: impl std::fmt::Display, json: &str) -> String {
    format!("{seq} {sent_at} {json}")
}

/// The epoch and messages of a push on `room`'s channel; `None` if any of it cannot be read (or is
/// for another room).
/// The epoch a `forget EPOCH` push names (the room it forgot is the channel's), if that is what
/// the push is: a message push starts with its epoch and a line break, never with `forget `.
fn forgotten_of_push(payload: &[u8]) -> Option<&str> {
    let epoch = std::str::from_utf8(payload.strip_prefix(b"forget ")?).ok()?;
    (!epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(epoch)
}

fn messages_of_push(room: &str, payload: &[u8]) -> Option<(String, Vec<ChatMessage>)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut lines = text.split('\n');
    let epoch = lines.next()?.to_owned();
    let mut messages = Vec::new();
    for line in lines {
        let mut parts = line.splitn(3, ' ');
        let seq = parts.next()?.parse().ok()?;
        let sent_at = parts.next()?.parse().ok()?;
        let entry: Entry = serde_json::from_str(parts.next()?).ok()?;
        if entry.room != room {
            return None;
        }
        messages.push(message_of(entry, seq, sent_at));
    }
    (!messages.is_empty()).then_some((epoch, messages))
}

fn message_of(entry: Entry, seq: u64, sent_at: u64) -> ChatMessage {
    ChatMessage {
        room: entry.room,
        seq,
        author: entry.author,
        client_id: entry.client_id,
        body: entry.body,
        sent_at,
        kind: entry.kind,
    }
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

#[cfg(test)]
mod tests {
    use super::{
        forgotten_of_push, messages_of_push, push_line, push_of, room_of_channel, seq_of_id,
    };

    #[test]
    fn a_forget_push_names_its_epoch_and_is_never_a_message_push() {
        assert_eq!(
            forgotten_of_push(b"forget 0f3a9c2e11d4b7a8"),
            Some("0f3a9c2e11d4b7a8")
        );
        for not in [
            &b"forget "[..],
            b"forget a b",
            b"forget e1\n1 2 {}",
            b"e1\n1 2 {}",
            b"forgot e1",
        ] {
            assert_eq!(
                forgotten_of_push(not),
                None,
                "{:?}",
                String::from_utf8_lossy(not)
            );
        }
        assert!(messages_of_push("general", b"forget 0f3a9c2e11d4b7a8").is_none());
    }

    #[test]
    fn channels_pushes_and_ids_read_back() {
        assert_eq!(room_of_channel("herald:{general}:live"), Some("general"));
        assert_eq!(room_of_channel("herald:{general}:meta"), None);
        assert_eq!(seq_of_id("42-0"), Some(42));
        let json = |body: &str| {
            format!(
                r#"{{"room":"general","author":{{"id":"a","name":"Ann"}},"client_id":"c","body":"{body}"}}"#
            )
        };
        let push = push_of(
            "e1",
            &[
                push_line(7, 1_700_000_000_000_u64, &json("hi there")),
                push_line(8, 1_700_000_000_001_u64, &json("and \\n on")),
            ],
        );
        let (epoch, messages) = messages_of_push("general", push.as_bytes()).expect("a push");
        let read: Vec<(u64, u64, &str)> = messages
            .iter()
            .map(|m| (m.seq, m.sent_at, m.body.as_str()))
            .collect();
        assert_eq!(epoch, "e1");
        assert_eq!(
            read,
            [
                (7, 1_700_000_000_000, "hi there"),
                (8, 1_700_000_000_001, "and \n on")
            ]
        );
        assert!(
            messages_of_push("other", push.as_bytes()).is_none(),
            "a push for another room's channel"
        );
        assert!(messages_of_push("general", b"e1\nx 1 {}").is_none());
        assert!(messages_of_push("general", b"e1").is_none(), "no message");
    }
}
