//! `herald import-to-redis`: a single node's SQLite history copied into Redis for cluster mode
//! (docs/CLUSTER.md, "Moving a single node to a cluster"). Each room keeps its epoch, its seqs and
//! its resend keys, so what clients hold — cursors, the page's history, unsent messages waiting to
//! be sent again — stays valid: a cursor from the single node resumes in full on the cluster.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{
    DB_FILE,
    redis::{self, ImportedRoom},
    sqlite::read_counted,
};

/// What an import copied.
#[derive(Debug, PartialEq, Eq)]
pub struct Imported {
    pub rooms: usize,
    pub messages: usize,
}

/// Copies every room of the log in `data_dir` into the Redis at `url`. Refuses (copying nothing)
/// if Redis already has any of these rooms: two histories under one epoch would break cursors.
pub async fn import_to_redis(data_dir: &Path, url: &str) -> anyhow::Result<Imported> {
    let path = data_dir.join(DB_FILE);
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    let rooms = read_rooms(&conn)?;
    let target = redis::Target::connect(url).await?;
    let taken = target
        .existing(rooms.iter().map(|room| room.name.as_str()))
        .await?;
    if !taken.is_empty() {
        anyhow::bail!(
            "Redis already has {} of these rooms ({}): nothing was copied",
            taken.len(),
            taken.join(", ")
        );
    }
    let mut messages = 0;
    for room in &rooms {
        let stored = read_counted(&conn, &room.name, 1, u64::MAX)?;
        messages += stored
            .iter()
            .filter(|(record, _)| record.entry_type.is_none())
            .count();
        target.write_room(room, &stored).await?;
    }
    Ok(Imported {
        rooms: rooms.len(),
        messages,
    })
}

fn read_rooms(conn: &Connection) -> anyhow::Result<Vec<ImportedRoom>> {
    // A room's last seq is its newest message's, or what `rooms` says for one without messages.
    let mut stmt = conn.prepare(
        "SELECT name, epoch,
                MAX(last_seq, COALESCE((SELECT MAX(seq) FROM messages WHERE room = rooms.name), 0))
         FROM rooms ORDER BY name",
    )?;
    let rooms = stmt
        .query_map([], |row| {
            Ok(ImportedRoom {
                name: row.get(0)?,
                epoch: row.get(1)?,
                last_seq: row.get::<_, i64>(2)? as u64,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rooms)
}
