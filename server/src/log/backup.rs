//! Backing up and restoring this node's message log (`herald backup DEST`, `herald restore SRC`),
//! the lock that keeps one serving Herald per data dir, and how the data dir and its files are made:
//! readable by Herald's user alone (the log holds every message), never through a symlink.
//!
//! A backup is taken while Herald runs: `VACUUM INTO` reads the log in one read transaction (in WAL
//! mode the writer goes on meanwhile) and writes a compact copy that is consistent as of that
//! transaction's start — every message in it was committed, every room's seqs are dense.
//!
//! The copy gets a new epoch for every room. Restored, it is older than what clients have seen:
//! without new epochs, seqs after the backup point would be handed out again to different
//! messages, and a client holding seq 120 would be told "nothing missed" about messages it never
//! saw. With them, every client's cursor names an epoch the log does not know, and its join is
//! answered `reset`: it drops what it holds and takes the room's history as the log now has it
//! (docs/OPERATIONS.md, "Backups").

use std::{
    fs::{File, OpenOptions},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};

use super::sqlite::{DB_FILE, new_epoch};

/// In `--data-dir`: locked by a serving Herald for as long as it runs.
pub const LOCK_FILE: &str = "herald.lock";

/// What a restore keeps of the log it replaced, beside it in the data dir; a later restore never
/// writes over it, but keeps its own as `herald.db.before-restore.2`, `.3`, ...
pub const REPLACED_FILE: &str = "herald.db.before-restore";

/// Creates `dir` and any missing parents, 0700: only Herald's user may list or enter what it
/// creates. A dir that exists is left as the operator made it.
pub fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create the data dir {}", dir.display()))
}

/// Creates `path` as a new, empty file only Herald's user may read or write (0600). Anything
/// already there is refused, a symlink too even when it points nowhere (`O_EXCL`): a backup made
/// to a planted link must not create or fill the file it names.
pub fn create_private_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Locks `data_dir` for this process: a second Herald, or a restore, on it is refused until the
/// returned file is dropped (or the process ends, however it ends).
pub fn lock_data_dir(data_dir: &Path) -> anyhow::Result<File> {
    create_data_dir(data_dir)?;
    let path = data_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another Herald is using the data dir {} (it holds {LOCK_FILE})",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// What a backup or restore copied.
#[derive(Debug)]
pub struct Copied {
    pub rooms: u64,
    pub messages: u64,
    /// After a restore: where the log it replaced was kept (none if there was none).
    pub kept: Option<PathBuf>,
}

/// Writes a consistent copy of the log in `data_dir` to `dest`, which must not exist, with a new
/// epoch for every room. Herald may be running meanwhile.
pub fn backup(data_dir: &Path, dest: &Path) -> anyhow::Result<Copied> {
    let db = data_dir.join(DB_FILE);
    if !db.is_file() {
        bail!("there is no message log at {}", db.display());
    }
    // Made here, empty and 0600, for `VACUUM INTO` to fill (it takes an empty file).
    match create_private_file(dest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} exists already (a file or a link); a backup never overwrites",
            dest.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", dest.display())),
    }
    let copied = fill_backup(&db, dest);
    if copied.is_err() {
        // Ours, made empty above: nothing half-written is left to be mistaken for a backup.
        let _ = std::fs::remove_file(dest);
    }
    copied
}

fn fill_backup(db: &Path, dest: &Path) -> anyhow::Result<Copied> {
    let source = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", db.display()))?;
    // The writer holds its lock only for a commit; wait that out rather than fail.
    source.busy_timeout(std::time::Duration::from_secs(10))?;
    let target = dest
        .to_str()
        .with_context(|| format!("{} is not a UTF-8 path", dest.display()))?;
    source
        .execute("VACUUM INTO ?1", [target])
        .with_context(|| format!("cannot write the backup to {}", dest.display()))?;
    drop(source);

    let copied = new_lifetime(dest)?;
    // On disk before we say it is done.
    File::open(dest)?.sync_all()?;
    Ok(copied)
}

/// Gives every room in the log file `path` a new epoch; counts what it holds.
fn new_lifetime(path: &Path) -> anyhow::Result<Copied> {
    let mut conn = Connection::open(path)?;
    let tx = conn.transaction()?;
    let rooms: Vec<String> = tx
        .prepare("SELECT name FROM rooms")
        .context("the copy holds no rooms table: not a Herald log, or one not yet created")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    {
        let mut rotate = tx.prepare("UPDATE rooms SET epoch = ?2 WHERE name = ?1")?;
        for room in &rooms {
            rotate.execute([room.as_str(), new_epoch().as_str()])?;
        }
    }
    let messages: i64 = tx.query_row("SELECT COUNT(*) FROM messages", [], |row| row.get(0))?;
    tx.commit()?;
    Ok(Copied {
        rooms: rooms.len() as u64,
        messages: u64::try_from(messages).unwrap_or(0),
        kept: None,
    })
}

/// Makes the backup `src` the log in `data_dir`. Refused while a Herald holds the data dir; the log
/// it replaces is kept as [`REPLACED_FILE`] (or the next free name after it: never over one kept before).
pub fn restore(data_dir: &Path, src: &Path) -> anyhow::Result<Copied> {
    let _lock = lock_data_dir(data_dir).context("stop Herald before restoring")?;
    let mut copied = check_backup(src)?;
    let db = data_dir.join(DB_FILE);
    // Copied under another name first: an interrupted restore leaves the old log as it was. Made
    // anew (one an interrupted restore left is ours: the data dir is locked), 0600 whatever the
    // backup's own mode.
    let incoming = data_dir.join(format!("{DB_FILE}.restoring"));
    match std::fs::remove_file(&incoming) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove {}", incoming.display()));
        }
        _ => {}
    }
    let mut into = create_private_file(&incoming)
        .with_context(|| format!("cannot create {}", incoming.display()))?;
    std::io::copy(&mut File::open(src)?, &mut into)
        .with_context(|| format!("cannot copy {} into {}", src.display(), data_dir.display()))?;
    into.sync_all()?;
    drop(into);
    if db.exists() {
        // Checkpointed into the main file first, so what is kept is whole without its WAL.
        let old = Connection::open(&db)?;
        old.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        drop(old);
        let kept = free_name(data_dir)?;
        std::fs::rename(&db, &kept)?;
        copied.kept = Some(kept);
    }
    for stale in [wal_of(&db, "-wal"), wal_of(&db, "-shm")] {
        match std::fs::remove_file(&stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", stale.display()));
            }
            _ => {}
        }
    }
    std::fs::rename(&incoming, &db)?;
    File::open(data_dir)?.sync_all()?;
    Ok(copied)
}

/// The first of [`REPLACED_FILE`], `….2`, `….3`, ... that does not exist in `data_dir`: a second restore
/// must not lose the log the first one kept (the data dir is locked meanwhile, so nothing else
/// takes the name between looking and renaming).
fn free_name(data_dir: &Path) -> anyhow::Result<PathBuf> {
    for n in 1..=10_000u32 {
        let name = match n {
            1 => REPLACED_FILE.to_owned(),
            n => format!("{REPLACED_FILE}.{n}"),
        };
        let path = data_dir.join(name);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(path);
        }
    }
    bail!(
        "{} holds 10 000 logs kept by earlier restores: move some away first",
        data_dir.display()
    )
}

/// `src` is a whole SQLite file holding a Herald log.
fn check_backup(src: &Path) -> anyhow::Result<Copied> {
    let conn = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", src.display()))?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .with_context(|| format!("{} is not a SQLite database", src.display()))?;
    if integrity != "ok" {
        bail!("{} is damaged: {integrity}", src.display());
    }
    let count = |sql: &str| -> anyhow::Result<u64> {
        let n: i64 = conn
            .query_row(sql, [], |row| row.get(0))
            .with_context(|| format!("{} is not a Herald message log", src.display()))?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    Ok(Copied {
        rooms: count("SELECT COUNT(*) FROM rooms")?,
        messages: count("SELECT COUNT(*) FROM messages")?,
        kept: None,
    })
}

fn wal_of(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
