//! Redis as `herald import-to-redis` writes it (`super::super::import`): the same keys the append
//! script keeps.

use redis::AsyncCommands;

use super::{Stored, keys::*, timed};
use crate::log::Record;
use crate::redis_link::{Commands, RedisLink};

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

    /// Writes `room` with its entries (oldest first), each with how many messages the room held
    /// once it was stored. The room's `meta` goes last: a copy cut off half-way leaves a room
    /// without an epoch, which the next append or import starts afresh.
    pub(crate) async fn write_room(
        &self,
        room: &ImportedRoom,
        entries: &[(Record, u64)],
    ) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let name = &room.name;
        let _: () = redis::pipe()
            .del(log_key(name))
            .del(once_key(name))
            .del(text_key(name))
            .del(state_key(name))
            .query_async(&mut conn)
            .await?;
        for chunk in entries.chunks(500) {
            let mut pipe = redis::pipe();
            for (record, messages) in chunk {
                let once = format!("{}\n{}", record.author.id, record.client_id);
                pipe.hset(
                    text_key(name),
                    record.seq,
                    serde_json::to_string(&Stored::of_record(record))?,
                )
                .ignore();
                if let Some(state) = &record.state {
                    // As the append script writes a message's state.
                    let member = format!("{} {}", record.seq, serde_json::to_string(state)?);
                    pipe.zadd(state_key(name), member, record.seq).ignore();
                }
                pipe.cmd("XADD")
                    .arg(log_key(name))
                    .arg(format!("{}-0", record.seq))
                    .arg("t")
                    .arg(record.sent_at)
                    .arg("o")
                    .arg(&once)
                    .arg("n")
                    .arg(messages)
                    .ignore();
                pipe.zadd(once_key(name), &once, record.seq).ignore();
            }
            let _: () = pipe.query_async(&mut conn).await?;
        }
        // The entries that are not messages, as the append script counts them.
        let others = entries
            .last()
            .map_or(0, |(record, messages)| record.seq.saturating_sub(*messages));
        let _: () = conn
            .hset_multiple(
                meta_key(name),
                &[
                    ("e", room.epoch.clone()),
                    ("s", room.last_seq.to_string()),
                    ("d", others.to_string()),
                ],
            )
            .await?;
        // Its own command: on a Redis Cluster the room list is in another slot than the room.
        let _: () = conn.sadd(ROOMS_KEY, name).await?;
        Ok(())
    }
}
