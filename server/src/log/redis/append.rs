//! Storing messages: the append lanes (a room's messages in the order they came, one script call
//! per room per batch, in one pipeline), on a Redis Cluster a task per room so that no room waits
//! for another master, the replicas' `WAIT`, and reading Redis's answers.

use std::time::{Duration, Instant};

use redis::Script;
use tokio::sync::mpsc;

use app::protocol::ErrorCode;

use super::{
    Content, Event, LogError, NewEntry, RedisLog, Reply, Stored, entry_field,
    keys::*,
    new_epoch,
    pushes::{push_line, push_of},
    timed,
};
use crate::redis_link::Commands;

/// How long an append waits for replicas (`--redis-wait-replicas`), within [`COMMAND_TIMEOUT`].
pub(super) const REPLICA_WAIT_MS: u64 = 1000;

/// Dedupe, checks, seq, entry, retention and publish in one step, for one or more entries of one
/// room; the script says what it takes and answers.
pub(super) const APPEND: &str = include_str!("append.lua");

/// Appender lanes: each room's appends go through one lane, in order, one pipeline at a time; the
/// lanes' pipelines are in flight together (one lane alone waits a round trip and an fsync per batch).
pub(super) const APPEND_LANES: usize = 8;

/// Most appends sent to Redis in one pipeline.
pub(super) const APPEND_BATCH_MAX: usize = 256;

/// Runs the append script for every message queued on one lane, in the order queued: one script
/// call per room in the batch (a room's messages stored in one step, with one push), as one
/// pipeline (one round trip, and with `appendfsync always` one fsync pass, for the whole batch). A
/// connection's sends to a room are stored in the order it sent them, as on one node.
///
/// On a Redis Cluster a pipeline must keep to one slot, and a room must not wait for another
/// master's rooms (one that is down makes each append wait out its time limit): the lane hands
/// each room's messages to a task of that room's own ([`room_append_loop`]), which stores what
/// has come for its room while its last append was out, in one call.
pub(super) async fn append_loop(
    log: RedisLog,
    mut queue: mpsc::UnboundedReceiver<(NewEntry, Reply)>,
) {
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
        let mut rooms: Vec<Vec<(NewEntry, Reply)>> = Vec::new();
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
pub(super) const ROOM_TASK_IDLE: Duration = Duration::from_secs(60);

/// A lane on a Redis Cluster: each message to its room's task, made when the room's first comes.
/// Only this loop sends to a room's task, and it lets one go by dropping its sender, so a task
/// ends only once everything sent to it is stored: nothing is lost between them.
pub(super) async fn route_by_room(
    log: RedisLog,
    mut queue: mpsc::UnboundedReceiver<(NewEntry, Reply)>,
) {
    type Task = (mpsc::UnboundedSender<(NewEntry, Reply)>, Instant);
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
pub(super) async fn room_append_loop(
    log: RedisLog,
    mut queue: mpsc::UnboundedReceiver<(NewEntry, Reply)>,
) {
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

/// One room's entries in a batch, as the log keeps them.
pub(super) struct RoomBatch {
    room: String,
    entries: Vec<Stored>,
    /// What each is, as the script takes it: `1` a message, `r` a reply, `c` a change, `0`
    /// another.
    what: Vec<&'static str>,
    /// Each entry's JSON, as stored and pushed.
    jsons: Vec<String>,
    replies: Vec<Reply>,
}

/// What the append script answered for one room's entries.
pub(super) struct Answer {
    epoch: String,
    sent_at: u64,
    seqs: Vec<u64>,
    /// Per entry: 0 stored, 1 a duplicate, 2 changes nothing, 3 and on refused (see the script).
    outcomes: Vec<u8>,
}

/// What the script's outcome `n` (3 and on) refused an entry for.
fn refusal(n: u8) -> ErrorCode {
    match n {
        4 => ErrorCode::NotYours,
        5 => ErrorCode::MessageDeleted,
        6 => ErrorCode::TooManyReactions,
        _ => ErrorCode::NoSuchMessage,
    }
}

/// Stores `rooms` (one script call each, in one pipeline) and tells the sequencer each answer; a
/// room whose messages Redis did not answer has each sender told the log is unavailable.
pub(super) async fn append_rooms(log: &RedisLog, rooms: Vec<Vec<(NewEntry, Reply)>>) {
    let batches: Vec<RoomBatch> = rooms
        .into_iter()
        .filter_map(|messages| {
            let room = messages.first()?.0.room.clone();
            let what = messages
                .iter()
                .map(|(entry, _)| match &entry.content {
                    Content::Message { reply_to: None, .. } => "1",
                    Content::Message { .. } => "r",
                    Content::Change { .. } => "c",
                    Content::Other { .. } => "0",
                })
                .collect();
            let (entries, replies): (Vec<Stored>, Vec<Reply>) = messages
                .into_iter()
                .map(|(entry, reply)| (Stored::of(&entry), reply))
                .unzip();
            // Serializing these strings cannot fail.
            let jsons = entries
                .iter()
                .map(|entry| serde_json::to_string(entry).unwrap_or_default())
                .collect();
            Some(RoomBatch {
                room,
                entries,
                what,
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
    let publish_now = match (log.wait_replicas > 0, log.bus.is_sharded()) {
        (true, _) => "0",
        (false, false) => "1",
        (false, true) => "s",
    };
    let pipeline = |call: &str, script: &str| {
        let mut pipe = redis::pipe();
        for batch in &batches {
            let room = &batch.room;
            let cmd = pipe
                .cmd(call)
                .arg(script)
                .arg(5)
                .arg(meta_key(room))
                .arg(log_key(room))
                .arg(once_key(room))
                .arg(state_key(room))
                .arg(text_key(room))
                .arg(log.retention)
                .arg(new_epoch())
                .arg(live_channel(room))
                .arg(publish_now);
            for ((entry, json), what) in batch.entries.iter().zip(&batch.jsons).zip(&batch.what) {
                cmd.arg(format!("{}\n{}", entry.author.id, entry.client_id))
                    .arg(json)
                    .arg(*what);
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
        publish_replicated(&mut conn, &batches, &answers, log.bus.is_sharded()).await;
    }
    for (batch, stored) in batches.into_iter().zip(answers) {
        if stored.seqs.len() != batch.replies.len() || stored.outcomes.len() != batch.replies.len()
        {
            tracing::warn!(room = %batch.room, "Redis answered an append with the wrong count");
            for reply in batch.replies {
                let _ = reply.send(Err(LogError::Unavailable));
            }
            continue;
        }
        let answers = stored.seqs.iter().zip(&stored.outcomes);
        for ((entry, reply), (&seq, &outcome)) in
            batch.entries.into_iter().zip(batch.replies).zip(answers)
        {
            if outcome >= 3 {
                let _ = reply.send(Err(LogError::Refused(refusal(outcome))));
                continue;
            }
            // A duplicate went out when it was first stored (and what changes nothing, never).
            let entry = (outcome == 0).then(|| entry.entry(seq, stored.sent_at));
            let event = Event::Appended {
                epoch: stored.epoch.clone(),
                entry,
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
pub(super) async fn publish_replicated(
    conn: &mut Commands,
    batches: &[RoomBatch],
    answers: &[Answer],
    sharded: bool,
) {
    let mut pushes = redis::pipe();
    // A shard channel is published on its room's master: one command each, not one pipeline.
    let mut sharded_pushes = Vec::new();
    for (batch, stored) in batches.iter().zip(answers) {
        let mut lines = Vec::new();
        let answered = stored.seqs.iter().zip(&stored.outcomes);
        for (json, (&seq, &outcome)) in batch.jsons.iter().zip(answered) {
            if outcome == 0 {
                lines.push(push_line(seq, stored.sent_at, json));
                continue;
            }
            if outcome != 1 {
                // Not stored now: nothing of it to publish.
                continue;
            }
            let id = format!("{seq}-0");
            let held: Result<(super::StreamEntries, Option<String>), _> = timed(
                redis::pipe()
                    .cmd("XRANGE")
                    .arg(log_key(&batch.room))
                    .arg(&id)
                    .arg(&id)
                    .cmd("HGET")
                    .arg(text_key(&batch.room))
                    .arg(seq)
                    .query_async(conn),
            )
            .await;
            let Ok((entries, text)) = held else {
                continue;
            };
            let found = entries.first().and_then(|(_, fields)| {
                let json = text.as_deref().or_else(|| entry_field(fields, "m"))?;
                Some((entry_field(fields, "t")?, json))
            });
            // Not found: trimmed already, or Redis went; nothing to show.
            if let Some((sent_at, json)) = found {
                lines.push(push_line(seq, sent_at, json));
            }
        }
        if lines.is_empty() {
            continue;
        }
        let (channel, push) = (live_channel(&batch.room), push_of(&stored.epoch, &lines));
        if sharded {
            let mut conn = conn.clone();
            sharded_pushes.push(async move {
                let publish = redis::cmd("SPUBLISH").arg(channel).arg(push).clone();
                timed(publish.query_async::<()>(&mut conn)).await
            });
        } else {
            pushes.cmd("PUBLISH").arg(channel).arg(push).ignore();
        }
    }
    let mut published = futures::future::join_all(sharded_pushes).await;
    published.push(timed(pushes.query_async::<()>(conn)).await);
    if let Some(Err(e)) = published.into_iter().find(Result::is_err) {
        tracing::warn!("publishing stored messages failed: {e}");
    }
}

/// The append script's answers, one per room, once `WAIT`'s answer (the last, when
/// `wait_replicas` > 0) says that many replicas have them; else the log is unavailable.
pub(super) fn appended(
    mut values: Vec<redis::Value>,
    wait_replicas: u32,
) -> Result<Vec<Answer>, LogError> {
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
            let (epoch, sent_at, seqs, outcomes) = redis::from_redis_value(value)?;
            Ok(Answer {
                epoch,
                sent_at,
                seqs,
                outcomes,
            })
        })
        .collect::<Result<_, redis::ParsingError>>()
        .map_err(unreadable)
}
