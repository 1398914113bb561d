//! Redis as `herald import-to-redis` writes it (`super::super::import`): the same keys the append
//! script keeps.

use redis::AsyncCommands;

use app::protocol::ChatMessage;

use super::{Entry, keys::*, timed};
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
