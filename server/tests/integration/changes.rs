//! Edits, deletions, reactions and replies at the doors (docs/PROTOCOL.md, "Changes to a
//! message"): a reader away while a room's messages change resumes from its cursor to exactly the
//! room everyone else sees, on one node's SQLite and on Redis, however it comes back (`full`,
//! `partial`, `reset`); each change is stored once however often it is sent; what is refused stores
//! nothing; and a deleted message's words are gone from every file that held them.

use std::collections::BTreeMap;

use crate::common;

use app::protocol::{ChatMessage, ClientMsg, Cursor, ErrorCode, JoinMode, ServerMsg};
use common::{Client, RedisServer, TOKEN, TempDir, TestServer};

const ROOM: &str = "general";

/// A node on `redis`, taking the API's token, with more flags.
async fn on_redis(redis: &RedisServer, more: &[&str]) -> (TestServer, TempDir) {
    let url = redis.url();
    let flags = [
        "--redis",
        url.as_str(),
        "--session-secret",
        "a-secret-of-the-tests-0123456789abcdef",
    ];
    let all: Vec<&str> = flags.iter().chain(more).copied().collect();
    TestServer::start_api(&all).await
}

/// A reader's copy of a room: its messages by seq, each with the changes it has seen applied, as
/// the page keeps it (app/src/state.rs).
#[derive(Default, Debug, PartialEq)]
struct Copy(BTreeMap<u64, ChatMessage>);

impl Copy {
    /// Takes in one frame; returns whether it was an entry.
    fn take(&mut self, msg: &ServerMsg) -> bool {
        match msg {
            ServerMsg::Message(m) => {
                self.0.insert(m.seq, m.clone());
                true
            }
            ServerMsg::Change(c) => {
                if let Some(m) = self.0.get_mut(&c.target) {
                    let _ = m.apply(&c.change, (&c.author, c.kind), c.seq, c.sent_at);
                }
                true
            }
            _ => false,
        }
    }

    /// The messages from `from` on, as a page shows them: the quote a reply carries is the
    /// reader's to fill, so only which message it answers is compared.
    fn from(&self, from: u64) -> Vec<ChatMessage> {
        self.0
            .range(from..)
            .map(|(_, m)| {
                let mut m = m.clone();
                if let Some(quote) = &mut m.reply_to {
                    quote.author = None;
                    quote.text = None;
                }
                m
            })
            .collect()
    }
}

/// Reads `n` entries (after a join's answer) into `copy`.
async fn read_entries(client: &mut Client, copy: &mut Copy, n: u64) {
    let mut read = 0;
    while read < n {
        if copy.take(&client.recv().await) {
            read += 1;
        }
    }
}

fn edit(client_id: &str, target: u64, body: &str) -> ClientMsg {
    ClientMsg::Edit {
        room: ROOM.into(),
        client_id: client_id.into(),
        target,
        body: body.into(),
    }
}

fn delete(client_id: &str, target: u64) -> ClientMsg {
    ClientMsg::Delete {
        room: ROOM.into(),
        client_id: client_id.into(),
        target,
    }
}

fn react(client_id: &str, target: u64, emoji: &str) -> ClientMsg {
    ClientMsg::React {
        room: ROOM.into(),
        client_id: client_id.into(),
        target,
        emoji: emoji.into(),
        remove: false,
    }
}

fn send(client_id: &str, body: &str, reply_to: Option<u64>) -> ClientMsg {
    ClientMsg::Send {
        room: ROOM.into(),
        client_id: client_id.into(),
        body: body.into(),
        reply_to,
    }
}

/// The room's messages from `after` on as the HTTP API pages them (what changes made of them).
async fn page(server: &TestServer, after: u64) -> Vec<ChatMessage> {
    let (status, _, page) = server
        .api(
            "GET",
            &format!("/api/rooms/{ROOM}/messages?after={after}&limit=200"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let mut messages: Vec<ChatMessage> =
        serde_json::from_value(page["messages"].clone()).expect("messages");
    for m in &mut messages {
        if let Some(quote) = &mut m.reply_to {
            quote.author = None;
            quote.text = None;
        }
    }
    messages
}

/// 20 messages (a reply among them), then while Bob is away 10 edits, 3 deletions and 20
/// reactions by three people; Bob, Eve and Fay come back from their cursors `full`, `partial` and
/// `reset`, and each ends with what the room shows everyone (the retention of 40 entries is
/// what makes Eve's `partial`).
async fn a_reader_away_resumes_to_what_everyone_sees(server: &TestServer) {
    let mut ann = server.client_named("Ann").await;
    let mut carol = server.client_named("Carol").await;
    carol.join(ROOM, None).await;
    for i in 1..=20 {
        let reply = (i == 20).then_some(1);
        let seq = ann
            .store(
                &send(&format!("m{i}"), &format!("message {i}"), reply),
                &format!("m{i}"),
            )
            .await
            .expect("stored");
        assert_eq!(seq, i);
    }
    let mut bob = server.client_named("Bob").await;
    let joined = bob.join(ROOM, None).await;
    assert_eq!(joined.last_seq, 20);
    let mut bobs = Copy::default();
    read_entries(&mut bob, &mut bobs, 20).await;
    drop(bob);
    let mut eves = Copy::default();
    for (seq, m) in bobs.0.range(..=10) {
        eves.0.insert(*seq, m.clone());
    }

    // A watcher who stays: the room as everyone sees it, live.
    let mut dee = server.client_named("Dee").await;
    dee.join(ROOM, None).await;
    let mut dees = Copy::default();
    read_entries(&mut dee, &mut dees, 20).await;

    for i in 1..=10u64 {
        let id = format!("e{i}");
        ann.store(&edit(&id, i, &format!("message {i}, edited")), &id)
            .await
            .expect("edited");
    }
    for i in 11..=13u64 {
        let id = format!("d{i}");
        ann.store(&delete(&id, i), &id).await.expect("deleted");
    }
    for i in 14..=20u64 {
        let id = format!("ra{i}");
        ann.store(&react(&id, i, "👍"), &id).await.expect("reacted");
        let id = format!("rc{i}");
        carol
            .store(&react(&id, i, "❤️"), &id)
            .await
            .expect("reacted");
    }
    for i in 15..=20u64 {
        let id = format!("rt{i}");
        carol
            .store(&react(&id, i, "🎉"), &id)
            .await
            .expect("reacted");
    }
    read_entries(&mut dee, &mut dees, 33).await;
    let everyone = page(server, 0).await;
    assert_eq!(dees.from(1).len(), 20);
    let held_from = everyone.first().map_or(0, |m| m.seq);
    assert_eq!(dees.from(held_from), everyone, "the live copy is the room");

    // Bob, `full`: exactly the 33 changes, in order, and his copy is the room.
    let mut bob = server.client_named("Bob").await;
    let back = bob.resume(ROOM, &joined.epoch, 20).await;
    assert_eq!(
        (back.mode, back.first_seq, back.last_seq),
        (JoinMode::Full, 21, 53)
    );
    read_entries(&mut bob, &mut bobs, 33).await;
    assert_eq!(bobs.from(held_from), everyone);
    assert!(bobs.0[&11].deleted.is_some() && bobs.0[&11].body.is_empty());

    // Eve, `partial`: she had up to 10; the room keeps 14 on. What is kept is the room, and the
    // edits still kept reach even her older copy.
    let mut eve = server.client_named("Eve").await;
    let back = eve.resume(ROOM, &joined.epoch, 10).await;
    assert_eq!((back.mode, back.first_seq), (JoinMode::Partial, 14));
    read_entries(&mut eve, &mut eves, 40).await;
    assert_eq!(eves.from(held_from), everyone);
    assert_eq!(eves.0[&3].body, "message 3, edited");

    // Fay, `reset` (a cursor of another history): the latest, as they are now.
    let mut fay = server.client_named("Fay").await;
    let back = fay.resume(ROOM, "not-this-epoch", 20).await;
    assert_eq!(back.mode, JoinMode::Reset);
    let mut fays = Copy::default();
    read_entries(&mut fay, &mut fays, back.last_seq - back.first_seq + 1).await;
    assert_eq!(fays.from(held_from), everyone);
}

#[tokio::test]
async fn on_sqlite_a_reader_away_while_messages_change_resumes_to_what_everyone_sees() {
    let (server, _data) = TestServer::start_api(&["--retention", "40"]).await;
    a_reader_away_resumes_to_what_everyone_sees(&server).await;
}

#[tokio::test]
async fn on_redis_a_reader_away_while_messages_change_resumes_to_what_everyone_sees() {
    let redis = RedisServer::start().await;
    let (server, _data) = on_redis(&redis, &["--retention", "40"]).await;
    a_reader_away_resumes_to_what_everyone_sees(&server).await;
}

/// Each change is stored once however often it is sent (from another connection too), and what
/// does not apply is refused with its code, storing nothing.
async fn changes_are_stored_once_and_refusals_store_nothing(server: &TestServer) {
    let mut ann = server.client_named("Ann").await;
    let mut bob = server.client_named("Bob").await;
    // Reads only at the end: what everyone was sent.
    let mut watcher = server.client_named("Wes").await;
    let first = ann
        .store(&send("a1", "hello", None), "a1")
        .await
        .expect("stored");
    let edited = ann
        .store(&edit("a2", first, "hello!"), "a2")
        .await
        .expect("edited");
    assert_eq!(
        ann.store(&edit("a2", first, "hello!"), "a2").await,
        Ok(edited),
        "a resend"
    );
    let mut again = server.client_named("Ann").await;
    // Another session of "Ann" is another person: not hers to edit.
    assert_eq!(
        again.store(&edit("a3", first, "mine?"), "a3").await,
        Err(ErrorCode::NotYours)
    );
    let reacted = bob
        .store(&react("b1", first, "👍"), "b1")
        .await
        .expect("reacted");
    assert_eq!(
        bob.store(&react("b1", first, "👍"), "b1").await,
        Ok(reacted)
    );
    // From another tab (another client id): already so, not stored again.
    assert_eq!(
        bob.store(&react("b2", first, "👍"), "b2").await,
        Ok(reacted)
    );
    for (id, msg, code) in [
        (
            "b3",
            react("b3", first, "not an emoji"),
            ErrorCode::InvalidEmoji,
        ),
        ("b4", react("b4", 999, "👍"), ErrorCode::NoSuchMessage),
        ("b5", edit("b5", first, "bob's now"), ErrorCode::NotYours),
        ("b6", delete("b6", first), ErrorCode::NotYours),
        (
            "b7",
            send("b7", "to nothing", Some(999)),
            ErrorCode::NoSuchMessage,
        ),
        (
            "b8",
            edit("b8", edited, "an edit is not a message"),
            ErrorCode::NoSuchMessage,
        ),
    ] {
        assert_eq!(bob.store(&msg, id).await, Err(code), "{id}");
    }
    let deleted = ann
        .store(&delete("a4", first), "a4")
        .await
        .expect("deleted");
    assert_eq!(
        ann.store(&delete("a4", first), "a4").await,
        Ok(deleted),
        "a resend"
    );
    for (id, msg, code) in [
        (
            "a5",
            edit("a5", first, "back from the dead"),
            ErrorCode::MessageDeleted,
        ),
        ("a6", delete("a6", first), ErrorCode::MessageDeleted),
        ("a7", react("a7", first, "🎉"), ErrorCode::MessageDeleted),
        (
            "a8",
            send("a8", "about that", Some(first)),
            ErrorCode::MessageDeleted,
        ),
    ] {
        assert_eq!(ann.store(&msg, id).await, Err(code), "{id}");
    }
    // Everyone was sent each stored entry once: the message, the edit, the reaction, the deletion.
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match watcher.recv().await {
            ServerMsg::Message(m) => seen.push(("message", m.seq)),
            ServerMsg::Change(c) => seen.push((c.change.entry_type().as_str(), c.seq)),
            _ => {}
        }
    }
    assert_eq!(
        seen,
        [
            ("message", first),
            ("edit", edited),
            ("react", reacted),
            ("delete", deleted)
        ]
    );
    let last = bob
        .store(&send("b9", "next", None), "b9")
        .await
        .expect("stored");
    assert_eq!(last, deleted + 1, "nothing refused took a seq");
}

#[tokio::test]
async fn on_sqlite_changes_are_stored_once_and_refusals_store_nothing() {
    let (server, _data) = TestServer::start_api(&[]).await;
    changes_are_stored_once_and_refusals_store_nothing(&server).await;
}

#[tokio::test]
async fn on_redis_changes_are_stored_once_and_refusals_store_nothing() {
    let redis = RedisServer::start().await;
    let (server, _data) = on_redis(&redis, &[]).await;
    changes_are_stored_once_and_refusals_store_nothing(&server).await;
}

/// The words a message held, every version, as they would sit in a file.
const WORDS: [&str; 2] = ["zebra-crossing-4417", "okapi-lantern-9023"];

/// Posts a message with the first words, edits it to the second, and answers it; then deletes
/// it. Returns the seq of the message.
async fn say_and_take_back(server: &TestServer) -> u64 {
    let mut ann = server.client_named("Ann").await;
    let seq = ann
        .store(
            &send("w1", &format!("the code is {}", WORDS[0]), None),
            "w1",
        )
        .await
        .expect("stored");
    ann.store(&edit("w2", seq, &format!("the code is {}", WORDS[1])), "w2")
        .await
        .expect("edited");
    let reply = ann
        .store(&send("w3", "noted", Some(seq)), "w3")
        .await
        .expect("answered");
    // Every door has it while it is there.
    let page = latest_page(server).await;
    assert!(page.to_string().contains(WORDS[1]));
    // Its edit history has both texts, oldest first, for anyone who may read the room: a program,
    // and a person on the history page (Markdown drawn, text escaped).
    let history = format!("/api/rooms/{ROOM}/messages/{seq}/versions");
    let (status, _, json) = server.api("GET", &history, Some(TOKEN), None).await;
    assert_eq!(status, 200, "{json}");
    let texts: Vec<&str> = json["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["body"].as_str().expect("body"))
        .collect();
    let said = WORDS.map(|w| format!("the code is {w}"));
    assert_eq!(texts, said);
    assert_eq!(json["author"]["name"], "Ann");
    assert_eq!(json["versions"][0]["seq"], seq);
    let zed = server.session("Zed").await;
    let page_path = format!("/r/{ROOM}/edits/{seq}");
    let (status, _, html) = server.get_as(&page_path, &zed).await;
    assert_eq!(status, 200, "{html}");
    let versions = html.matches("data-testid=\"version\"").count();
    assert_eq!(versions, 2, "{html}");
    assert!(
        html.find(WORDS[0]) < html.find(WORDS[1]),
        "oldest first: {html}"
    );
    // Who is neither signed in nor a program reads none of it.
    let (status, _, _) = server.api("GET", &history, None, None).await;
    assert_eq!(status, 401);
    let (status, head, html) = server.get(&page_path).await;
    assert_eq!(status, 303, "to the room's page, which asks for a name");
    assert!(head.contains(&format!("location: /r/{ROOM}")), "{head}");
    assert!(WORDS.iter().all(|w| !html.contains(w)));
    // Only a message has a history: not a change, not a seq never written, not another room.
    for (path, status, code) in [
        (
            format!("/api/rooms/{ROOM}/messages/{}/versions", seq + 1),
            404,
            "no_such_message",
        ),
        (
            format!("/api/rooms/{ROOM}/messages/{}/versions", reply + 100),
            404,
            "no_such_message",
        ),
        (
            format!("/api/rooms/nowhere-{seq}/messages/{seq}/versions"),
            404,
            "unknown_room",
        ),
        (format!("/api/rooms/{ROOM}/messages/x/versions"), 400, ""),
    ] {
        let (got, _, json) = server.api("GET", &path, Some(TOKEN), None).await;
        assert_eq!(got, status, "{path}: {json}");
        if !code.is_empty() {
            assert_eq!(json["error"]["code"], code, "{path}");
        }
    }
    let (status, _, html) = server
        .get_as(&format!("/r/{ROOM}/edits/{}", seq + 1), &zed)
        .await;
    assert_eq!(status, 404, "{html}");
    ann.store(&delete("w4", seq), "w4").await.expect("deleted");
    seq
}

/// Whether any file under `dir` holds any of [`WORDS`].
fn files_holding_words(dir: &std::path::Path) -> Vec<String> {
    files_holding(dir, &WORDS)
}

/// Which files under `dir` hold any of `words`, as `PATH holds WORD`.
pub(crate) fn files_holding(dir: &std::path::Path, words: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            for word in words {
                if bytes.windows(word.len()).any(|w| w == word.as_bytes()) {
                    found.push(format!("{} holds {word}", path.display()));
                }
            }
        }
    }
    found
}

/// No door gives the deleted words: not a page of history, not the event stream from the start,
/// not a join from the start, not the message's edit history (API or page).
async fn no_door_has_the_words(server: &TestServer, seq: u64) {
    let history = format!("/api/rooms/{ROOM}/messages/{seq}/versions");
    let (status, _, json) = server.api("GET", &history, Some(TOKEN), None).await;
    assert_eq!(
        (status, &json["error"]["code"]),
        (409, &"message_deleted".into())
    );
    assert!(
        WORDS.iter().all(|w| !json.to_string().contains(w)),
        "{json}"
    );
    let zed = server.session("Zed").await;
    let (status, _, html) = server.get_as(&format!("/r/{ROOM}/edits/{seq}"), &zed).await;
    assert_eq!(status, 409, "{html}");
    assert!(WORDS.iter().all(|w| !html.contains(w)), "{html}");
    let (_, _, page) = server
        .api(
            "GET",
            &format!("/api/rooms/{ROOM}/messages?after=0"),
            Some(TOKEN),
            None,
        )
        .await;
    let page = page.to_string();
    assert!(WORDS.iter().all(|w| !page.contains(w)), "{page}");
    let mut sse = common::SseReader::open(
        server.addr,
        &format!("/api/rooms/{ROOM}/events"),
        &format!("Authorization: Bearer {TOKEN}\r\nLast-Event-ID: 0\r\n"),
        false,
    )
    .await;
    let mut events = String::new();
    let mut entries = 0;
    while entries < 4 {
        let event = sse.next_event().await.expect("event");
        if event.id.is_some() {
            entries += 1;
        }
        events.push_str(&event.data);
    }
    assert!(WORDS.iter().all(|w| !events.contains(w)), "{events}");
    let mut reader = server.client_named("Zed").await;
    reader
        .join(
            ROOM,
            Some(Cursor {
                epoch: reader_epoch(server).await,
                seq: 0,
            }),
        )
        .await;
    let mut replay = String::new();
    let mut copy = Copy::default();
    let mut n = 0;
    while n < 4 {
        let msg = reader.recv().await;
        if copy.take(&msg) {
            n += 1;
            replay.push_str(&msg.encode());
        }
    }
    assert!(WORDS.iter().all(|w| !replay.contains(w)), "{replay}");
}

/// The room's newest page of history, as the HTTP API answers it.
async fn latest_page(server: &TestServer) -> serde_json::Value {
    let path = format!("/api/rooms/{ROOM}/messages");
    server.api("GET", &path, Some(TOKEN), None).await.2
}

async fn reader_epoch(server: &TestServer) -> String {
    let page = latest_page(server).await;
    page["epoch"].as_str().expect("epoch").to_owned()
}

#[tokio::test]
async fn on_sqlite_a_deleted_message_is_gone_from_every_door_the_files_and_a_backup() {
    let data = TempDir::new();
    let server = TestServer::start_in(data.path(), &["--api-token", TOKEN]).await;
    let seq = say_and_take_back(&server).await;
    no_door_has_the_words(&server, seq).await;
    // The log file and its WAL: rewritten with secure_delete, checkpointed once the writer is idle.
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    loop {
        let found = files_holding_words(std::path::Path::new(data.path()));
        if found.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{found:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A backup taken now holds the deletion, not the words.
    let copy = TempDir::new();
    let dest = std::path::Path::new(copy.path()).join("backup.db");
    server::log::backup::backup(std::path::Path::new(data.path()), &dest).expect("backed up");
    assert_eq!(
        files_holding_words(std::path::Path::new(copy.path())),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn on_redis_a_deleted_message_is_gone_from_every_door_and_from_the_append_only_file_once_rewritten()
 {
    let redis = RedisServer::start().await;
    let (server, _data) = on_redis(&redis, &[]).await;
    let seq = say_and_take_back(&server).await;
    no_door_has_the_words(&server, seq).await;
    // Not in what Redis holds (a rewritten append-only file is what it holds), nor in any of its
    // files once that is done.
    redis.ask(&["BGREWRITEAOF"]).await;
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    loop {
        let info = redis
            .ask(&["INFO", "persistence"])
            .await
            .unwrap_or_default();
        let found = files_holding_words(std::path::Path::new(redis.dir()));
        if info.contains("aof_rewrite_in_progress:0")
            && info.contains("aof_rewrite_scheduled:0")
            && found.is_empty()
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{found:?}\n{info}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
