//! What every log backend promises (`server/src/log/mod.rs`), held to one suite: the same checks run
//! against SQLite, one Redis and a three-master Redis Cluster — appends and their dense seqs, dedupe,
//! epochs, ranges, retention, catch-up, the rooms it holds and forgetting an unused one, entries of
//! every type (one this build does not know too, as a newer Herald writes it) and the count of
//! messages beside them, and that each stored entry is handed on once, in seq order.

use crate::common;

use std::sync::{Arc, Mutex};

use app::protocol::{Change, ChatMessage, Entry, ErrorCode, Identity, MessageKind};
use common::{Redis, RedisCluster, RedisServer, TempDir};
use server::log::{Content, Log, LogError, NewEntry, Published};
use server::redis_link::RedisLink;

/// What a log handed on, in the order it did.
type Handed = Arc<Mutex<Vec<Entry>>>;

fn collect(into: &Handed) -> impl FnMut(Published<'_>) + Send + 'static {
    let into = into.clone();
    move |published| {
        if let Published::Entry(entry) = published {
            into.lock().expect("not poisoned").push(entry.clone());
        }
    }
}

fn message(room: &str, author: &str, client_id: &str, body: &str) -> NewEntry {
    NewEntry::message(
        room.into(),
        Identity {
            id: author.into(),
            name: author.into(),
        },
        client_id.into(),
        body.into(),
        MessageKind::User,
    )
}

/// An entry of a type this build does not know, as a newer Herald would store it.
fn poll(room: &str, author: &str, client_id: &str) -> NewEntry {
    NewEntry {
        content: Content::Other {
            entry_type: "poll".into(),
            body: "lunch?".into(),
            fields: r#"{"options":["soup","salad"],"seq":999}"#.into(),
        },
        ..message(room, author, client_id, "")
    }
}

fn body(entry: &Entry) -> &str {
    entry.message().map_or("", |m| m.body.as_str())
}

/// The checks every backend passes; `retention` is the log's (3 here).
async fn holds_the_contract(name: &str, log: Log, handed: Handed) {
    // What this node has readers of is followed here: its entries are handed on here, however
    // they were stored. (A room not followed is heard by the nodes that follow it.)
    for room in ["alpha", "beta", "delta"] {
        assert!(log.follow(room, true).await.expect("followed").is_some());
        assert!(log.follows(room), "{name}");
    }
    assert!(
        log.follow("nowhere", false).await.expect("asked").is_none(),
        "{name}: no such room"
    );
    // Appends get dense seqs from 1, per room.
    let mut seqs = Vec::new();
    for i in 1..=5 {
        seqs.push(
            log.append(message("alpha", "ann", &format!("a{i}"), &format!("m{i}")))
                .await
                .expect("stored"),
        );
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5], "{name}: dense seqs");
    assert_eq!(
        log.append(message("beta", "bob", "b1", "other room"))
            .await
            .expect("stored"),
        1,
        "{name}: each room counts its own"
    );
    // A resend (same author, same client id) is answered with the first seq, stored once.
    assert_eq!(
        log.append(message("alpha", "ann", "a5", "m5 again"))
            .await
            .expect("answered"),
        5,
        "{name}: dedupe"
    );
    assert_eq!(
        log.append(message("alpha", "bob", "a5", "someone else's a5"))
            .await
            .expect("stored"),
        6,
        "{name}: dedupe is per author"
    );

    // Epochs: one per room, stable, different between rooms.
    let alpha = log.epoch("alpha").expect("alpha has an epoch");
    assert_eq!(
        log.ensure_room("alpha").await.expect("known"),
        alpha,
        "{name}: stable epoch"
    );
    assert_ne!(log.epoch("beta"), Some(alpha.clone()), "{name}: own epochs");

    // Retention 3: the room holds its last three; ranges give what is held, oldest first.
    assert_eq!(
        log.first_seq("alpha").await.expect("read"),
        Some(4),
        "{name}"
    );
    let held = log.range("alpha", 1, 6).await.expect("read");
    let got: Vec<(u64, &str)> = held.iter().map(|e| (e.seq(), body(e))).collect();
    assert_eq!(
        got,
        [(4, "m4"), (5, "m5"), (6, "someone else's a5")],
        "{name}: retention and ranges"
    );
    let middle: Vec<u64> = log
        .range("alpha", 5, 5)
        .await
        .expect("read")
        .iter()
        .map(Entry::seq)
        .collect();
    assert_eq!(middle, [5], "{name}: a range of one");
    assert!(
        log.range("alpha", 7, 9).await.expect("read").is_empty(),
        "{name}: nothing past the end"
    );
    log.catch_up("alpha", 6).await.expect("caught up");

    // The rooms it holds; one joined but never written is new to nobody, and can be forgotten;
    // one that held a message cannot.
    assert!(!log.is_new("alpha").await.expect("asked"), "{name}");
    assert!(log.is_new("gamma").await.expect("asked"), "{name}");
    log.ensure_room("gamma").await.expect("made");
    assert!(!log.is_new("gamma").await.expect("asked"), "{name}");
    assert_eq!(log.room_count().await.expect("counted"), 4, "{name}");
    assert!(
        log.forget_unused("gamma").await.expect("forgotten"),
        "{name}"
    );
    assert!(!log.forget_unused("alpha").await.expect("kept"), "{name}");
    assert!(
        log.is_new("gamma").await.expect("asked"),
        "{name}: forgotten"
    );
    assert_eq!(log.room_count().await.expect("counted"), 3, "{name}");
    assert_eq!(
        log.all_rooms().await.expect("listed"),
        ["alpha", "beta", "delta"],
        "{name}"
    );
    log.check().await.expect("healthy");

    // Entries of another type share the room's one sequence and its dedupe; they are kept and read
    // back whole, and the count of messages beside each counts messages only.
    assert_eq!(
        log.append(message("delta", "ann", "d1", "first"))
            .await
            .expect("stored"),
        1
    );
    assert_eq!(
        log.append(poll("delta", "ann", "d2"))
            .await
            .expect("stored"),
        2,
        "{name}"
    );
    assert_eq!(
        log.append(poll("delta", "ann", "d2"))
            .await
            .expect("answered"),
        2,
        "{name}: dedupe"
    );
    assert_eq!(
        log.append(message("delta", "bob", "d3", "second"))
            .await
            .expect("stored"),
        3
    );
    let delta = log.range("delta", 1, u64::MAX).await.expect("read");
    assert_eq!(
        delta.iter().map(Entry::seq).collect::<Vec<_>>(),
        [1, 2, 3],
        "{name}"
    );
    let Entry::Other(other) = &delta[1] else {
        panic!("{name}: {:?}", delta[1])
    };
    assert_eq!(other.entry_type, "poll", "{name}");
    let frame: serde_json::Value = serde_json::from_str(&other.frame).expect("a JSON frame");
    assert_eq!(
        (
            &frame["type"],
            &frame["room"],
            &frame["seq"],
            &frame["body"],
            &frame["options"][1]
        ),
        (
            &"poll".into(),
            &"delta".into(),
            &2.into(),
            &"lunch?".into(),
            &"salad".into()
        ),
        "{name}: its fields kept, and the header theirs cannot override"
    );
    assert_eq!(frame["author"]["id"], "ann", "{name}");
    assert_eq!(
        (body(&delta[0]), body(&delta[2])),
        ("first", "second"),
        "{name}"
    );
    let mut counts = Vec::new();
    for seq in 1..=4 {
        counts.push(log.messages_at("delta", seq).await.expect("read"));
    }
    assert_eq!(
        counts,
        [Some(1), Some(1), Some(2), None],
        "{name}: messages, not entries"
    );
    // Retention keeps entries (3 here) whatever their type; the count goes on past it.
    for i in 4..=6 {
        log.append(poll("delta", "ann", &format!("d{i}")))
            .await
            .expect("stored");
    }
    assert_eq!(
        log.first_seq("delta").await.expect("read"),
        Some(4),
        "{name}"
    );
    assert_eq!(
        log.append(message("delta", "ann", "d7", "third"))
            .await
            .expect("stored"),
        7
    );
    assert_eq!(
        log.messages_at("delta", 7).await.expect("read"),
        Some(3),
        "{name}"
    );
    assert_eq!(
        log.messages_at("delta", 2).await.expect("read"),
        None,
        "{name}: trimmed"
    );

    // Every stored entry was handed on once, in seq order per room (on a cluster the bus may
    // bring it a moment after the answer).
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    loop {
        let handed = handed.lock().expect("not poisoned").clone();
        let of = |room: &str| -> Vec<u64> {
            handed
                .iter()
                .filter(|e| e.room() == room)
                .map(Entry::seq)
                .collect()
        };
        if of("alpha") == [1, 2, 3, 4, 5, 6]
            && of("beta") == [1]
            && of("delta") == [1, 2, 3, 4, 5, 6, 7]
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: handed on {:?}, {:?} and {:?}",
            of("alpha"),
            of("beta"),
            of("delta")
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    unread_counts_what_is_held(name, &log).await;
}

#[tokio::test]
async fn sqlite_holds_the_log_contract() {
    let data = TempDir::new();
    let handed = Handed::default();
    let (log, _) = Log::open_sqlite(std::path::Path::new(data.path()), 3, 2, collect(&handed))
        .expect("opened");
    holds_the_contract("sqlite", log, handed).await;
}

async fn on_redis(name: &str, redis: &impl Redis) {
    let link = RedisLink::connect(&redis.url()).await.expect("connected");
    let handed = Handed::default();
    let (log, _) = Log::open_redis(&link, 3, 0, collect(&handed))
        .await
        .expect("opened");
    holds_the_contract(name, log, handed).await;
}

#[tokio::test]
async fn one_redis_holds_the_log_contract() {
    on_redis("redis", &RedisServer::start().await).await;
}

#[tokio::test]
async fn a_redis_cluster_holds_the_log_contract() {
    on_redis("redis cluster", &RedisCluster::start(3).await).await;
}

fn change(room: &str, author: &str, client_id: &str, target: u64, change: Change) -> NewEntry {
    NewEntry {
        content: Content::Change { target, change },
        ..message(room, author, client_id, "")
    }
}

fn edit(body: &str) -> Change {
    Change::Edit { body: body.into() }
}

fn react(emoji: &str, remove: bool) -> Change {
    Change::React {
        emoji: emoji.into(),
        remove,
    }
}

fn reply(room: &str, author: &str, client_id: &str, body: &str, to: u64) -> NewEntry {
    let mut reply = message(room, author, client_id, body);
    reply.content = Content::Message {
        body: body.into(),
        reply_to: Some(to),
    };
    reply
}

/// The message at `seq` of what `range` read.
fn message_at(entries: &[Entry], seq: u64) -> ChatMessage {
    entries
        .iter()
        .find(|e| e.seq() == seq)
        .and_then(Entry::message)
        .cloned()
        .unwrap_or_else(|| panic!("no message {seq} in {entries:?}"))
}

/// Edits, deletions, reactions and replies: checked against their message as they are stored,
/// stored once, folded into the message as every read gives it, and a deletion's words gone from
/// every entry that held them. `log` keeps at least 20 entries per room.
async fn changes_hold_the_contract(name: &str, log: Log, handed: Handed) {
    let room = "gamma";
    assert!(log.follow(room, true).await.expect("followed").is_some());
    let refused = |r: Result<u64, LogError>| match r {
        Err(LogError::Refused(code)) => code,
        other => panic!("{name}: {other:?} where a refusal was due"),
    };
    assert_eq!(
        log.append(message(room, "ann", "g1", "helo"))
            .await
            .expect("stored"),
        1
    );
    assert_eq!(
        log.append(message(room, "bob", "g2", "hi"))
            .await
            .expect("stored"),
        2
    );
    // Only the author edits; only what is there; a resend is stored once.
    assert_eq!(
        log.append(change(room, "ann", "g3", 1, edit("hello")))
            .await
            .expect("stored"),
        3
    );
    assert_eq!(
        log.append(change(room, "ann", "g3", 1, edit("hello")))
            .await
            .expect("once"),
        3
    );
    assert_eq!(
        refused(
            log.append(change(room, "bob", "g4", 1, edit("mine now")))
                .await
        ),
        ErrorCode::NotYours,
        "{name}"
    );
    assert_eq!(
        refused(log.append(change(room, "ann", "g5", 99, edit("?"))).await),
        ErrorCode::NoSuchMessage,
        "{name}"
    );
    assert_eq!(
        refused(
            log.append(change(room, "ann", "g6", 3, edit("an edit is no message")))
                .await
        ),
        ErrorCode::NoSuchMessage,
        "{name}"
    );
    // A person's reaction with an emoji is there once: added again (another tab), it is not stored.
    assert_eq!(
        log.append(change(room, "bob", "g7", 1, react("👍", false)))
            .await
            .expect("stored"),
        4
    );
    assert_eq!(
        log.append(change(room, "bob", "g8", 1, react("👍", false)))
            .await
            .expect("acked"),
        4
    );
    assert_eq!(
        log.append(change(room, "ann", "g9", 1, react("👍", false)))
            .await
            .expect("stored"),
        5
    );
    assert_eq!(
        log.append(change(room, "ann", "g10", 1, react("🎉", false)))
            .await
            .expect("stored"),
        6
    );
    assert_eq!(
        log.append(change(room, "bob", "g11", 1, react("👍", true)))
            .await
            .expect("stored"),
        7
    );
    assert_eq!(
        log.append(reply(room, "bob", "g12", "fixed", 1))
            .await
            .expect("stored"),
        8
    );
    assert_eq!(
        refused(
            log.append(reply(room, "bob", "g13", "to nothing", 42))
                .await
        ),
        ErrorCode::NoSuchMessage,
        "{name}"
    );
    assert_eq!(
        log.append(change(room, "ann", "g14", 1, edit("hello, all")))
            .await
            .expect("stored"),
        9
    );

    let read = log.range(room, 1, 9).await.expect("read");
    assert_eq!(
        read.iter().map(Entry::seq).collect::<Vec<_>>(),
        (1..=9).collect::<Vec<_>>(),
        "{name}"
    );
    let first = message_at(&read, 1);
    assert_eq!(first.body, "hello, all", "{name}: the newest text");
    assert!(first.edited.is_some(), "{name}");
    let reactions: Vec<(&str, Vec<&str>)> = first
        .reactions
        .iter()
        .map(|r| {
            (
                r.emoji.as_str(),
                r.by.iter().map(|who| who.id.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        reactions,
        [("👍", vec!["ann"]), ("🎉", vec!["ann"])],
        "{name}"
    );
    assert_eq!(first.changed, 9, "{name}");
    assert_eq!(
        message_at(&read, 8).reply_to.map(|q| q.seq),
        Some(1),
        "{name}"
    );
    assert!(
        matches!(&read[2], Entry::Change(c) if c.target == 1 && c.change == edit("hello")),
        "{name}: {:?}",
        read[2]
    );
    assert_eq!(
        log.messages_at(room, 9).await.expect("read"),
        Some(3),
        "{name}: changes are not messages"
    );

    // A deletion: by its author only; then nothing more changes it, and its words are gone.
    assert_eq!(
        refused(
            log.append(change(room, "bob", "g15", 1, Change::Delete))
                .await
        ),
        ErrorCode::NotYours,
        "{name}"
    );
    assert_eq!(
        log.append(change(room, "ann", "g16", 1, Change::Delete))
            .await
            .expect("stored"),
        10
    );
    assert_eq!(
        log.append(change(room, "ann", "g16", 1, Change::Delete))
            .await
            .expect("once"),
        10
    );
    for (client_id, c) in [
        ("g17", edit("back again")),
        ("g18", react("👍", false)),
        ("g19", Change::Delete),
    ] {
        assert_eq!(
            refused(log.append(change(room, "ann", client_id, 1, c)).await),
            ErrorCode::MessageDeleted,
            "{name}"
        );
    }
    assert_eq!(
        refused(log.append(reply(room, "bob", "g20", "to what?", 1)).await),
        ErrorCode::MessageDeleted,
        "{name}"
    );
    let read = log.range(room, 1, 10).await.expect("read");
    assert_eq!(
        read.iter().map(Entry::seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>(),
        "{name}: seqs stay dense"
    );
    let gone = message_at(&read, 1);
    assert_eq!(
        (
            gone.body.as_str(),
            gone.deleted.as_ref().map(|d| d.id.as_str())
        ),
        ("", Some("ann")),
        "{name}"
    );
    assert!(
        gone.reactions.is_empty() && gone.edited.is_none(),
        "{name}: {gone:?}"
    );
    for entry in &read {
        let text = format!("{entry:?}");
        assert!(
            !text.contains("hel"),
            "{name}: a deleted word is still read: {text}"
        );
    }
    assert_eq!(log.first_seq(room).await.expect("read"), Some(1), "{name}");
    assert_eq!(
        message_at(&read, 2).body,
        "hi",
        "{name}: the others untouched"
    );

    // Handed over together (one batch, one append call on Redis): a message, its resend, an edit of
    // it, a reply to it and its deletion — each sees what the ones before it in the batch did.
    let together = [
        message(room, "ann", "b1", "batched secret"),
        message(room, "ann", "b1", "batched secret"),
        change(room, "ann", "b2", 11, edit("batched secret, edited")),
        reply(room, "bob", "b3", "answering", 11),
        change(room, "ann", "b4", 11, Change::Delete),
    ]
    .map(|entry| log.submit(entry).expect("handed over"));
    let mut seqs = Vec::new();
    for appending in together {
        seqs.push(appending.await.expect("answered").expect("stored"));
    }
    assert_eq!(seqs, [11, 11, 12, 13, 14], "{name}");
    let read = log.range(room, 11, 14).await.expect("read");
    let batched = message_at(&read, 11);
    assert!(batched.deleted.is_some(), "{name}: {batched:?}");
    for entry in &read {
        let text = format!("{entry:?}");
        assert!(
            !text.contains("secret"),
            "{name}: a word deleted in its own batch is still read: {text}"
        );
    }

    // Handed on once each, in order, as stored (the edits as they were then).
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    loop {
        let seqs: Vec<u64> = handed
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|e| e.room() == room)
            .map(Entry::seq)
            .collect();
        if seqs == (1..=14).collect::<Vec<_>>() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: handed on {seqs:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    unread_counts_messages_not_changes(name, &log).await;
}

/// What a reader has not read (`Log::unread`): the messages after their position, not the edits,
/// reactions and deletions, nor the messages deleted; a position of another epoch counts
/// everything held; past the last entry, nothing.
async fn unread_counts_messages_not_changes(name: &str, log: &Log) {
    let room = "omega";
    let store = |entry: NewEntry| async move { log.append(entry).await.expect("stored") };
    assert_eq!(store(message(room, "ann", "u1", "one")).await, 1);
    assert_eq!(store(message(room, "bob", "u2", "two")).await, 2);
    assert_eq!(store(change(room, "ann", "u3", 1, edit("one!"))).await, 3);
    assert_eq!(store(message(room, "bob", "u4", "three")).await, 4);
    assert_eq!(
        store(change(room, "ann", "u5", 4, react("👍", false))).await,
        5
    );
    assert_eq!(store(reply(room, "bob", "u6", "four", 2)).await, 6);
    assert_eq!(store(change(room, "ann", "u7", 1, Change::Delete)).await, 7);
    let unread = |epoch: String, seq: u64| async move {
        log.unread(room, &epoch, seq)
            .await
            .expect("counted")
            .expect("a room")
    };
    let epoch = unread(String::new(), 0).await.epoch;
    let counts = |epoch: String| async move {
        let mut counts = Vec::new();
        for seq in [0, 1, 2, 3, 4, 6, 7, 99] {
            counts.push(unread(epoch.clone(), seq).await.messages);
        }
        counts
    };
    // One (deleted), two, three, four: three messages that count, after nothing.
    assert_eq!(
        counts(epoch.clone()).await,
        [3, 3, 2, 2, 1, 0, 0, 0],
        "{name}"
    );
    let whole = unread(epoch.clone(), 2).await;
    assert_eq!((whole.last_seq, whole.epoch.as_str()), (7, epoch.as_str()));
    assert_eq!(
        unread("another history".into(), 6).await.messages,
        3,
        "{name}: a position of another epoch counts what is held"
    );
    // Three deleted: after two, only four is left.
    assert_eq!(store(change(room, "bob", "u8", 4, Change::Delete)).await, 8);
    assert_eq!(unread(epoch.clone(), 2).await.messages, 1, "{name}");
    assert_eq!(
        counts(epoch.clone()).await,
        [2, 2, 1, 1, 1, 0, 0, 0],
        "{name}"
    );
    assert!(
        log.unread("nowhere-at-all", &epoch, 0)
            .await
            .expect("asked")
            .is_none()
    );
}

/// With retention (3 messages here), a position older than what is held counts what is held.
async fn unread_counts_what_is_held(name: &str, log: &Log) {
    let room = "trimmed";
    for i in 1..=6 {
        let body = format!("m{i}");
        log.append(message(room, "bob", &format!("t{i}"), &body))
            .await
            .expect("stored");
    }
    let epoch = log
        .unread(room, "", 0)
        .await
        .expect("counted")
        .expect("a room")
        .epoch;
    let mut counts = Vec::new();
    for seq in [0, 1, 3, 4, 5, 6] {
        let unread = log.unread(room, &epoch, seq).await.expect("counted");
        counts.push(unread.expect("a room").messages);
    }
    assert_eq!(counts, [3, 3, 3, 2, 1, 0], "{name}");
}

#[tokio::test]
async fn sqlite_holds_the_contract_for_changes() {
    let data = TempDir::new();
    let handed = Handed::default();
    let (log, _) = Log::open_sqlite(std::path::Path::new(data.path()), 100, 2, collect(&handed))
        .expect("opened");
    changes_hold_the_contract("sqlite", log, handed).await;
}

async fn changes_on_redis(name: &str, redis: &impl Redis) {
    let link = RedisLink::connect(&redis.url()).await.expect("connected");
    let handed = Handed::default();
    let (log, _) = Log::open_redis(&link, 100, 0, collect(&handed))
        .await
        .expect("opened");
    changes_hold_the_contract(name, log, handed).await;
}

#[tokio::test]
async fn one_redis_holds_the_contract_for_changes() {
    changes_on_redis("redis", &RedisServer::start().await).await;
}

#[tokio::test]
async fn a_redis_cluster_holds_the_contract_for_changes() {
    changes_on_redis("redis cluster", &RedisCluster::start(3).await).await;
}
