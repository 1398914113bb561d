//! Entries of a type this build does not know — what a newer Herald sharing the log (a node already
//! upgraded, or a log kept from after a downgrade) writes — at every door: the WebSocket replays and
//! resumes over them, an event stream sends them under their seq, and what shows messages as lines
//! (the HTTP API's pages, the rendered page) skips them but pages on past them.

use crate::common;

use app::protocol::{ClientMsg, Identity, JoinMode, MessageKind, ServerMsg};
use common::{Client, SseReader, TOKEN, TempDir, TestServer};
use server::log::{Content, Log, NewEntry};

fn ann() -> Identity {
    Identity {
        id: "ann-1".into(),
        name: "Ann".into(),
    }
}

fn message(client_id: &str, body: &str) -> NewEntry {
    NewEntry::message(
        "general".into(),
        ann(),
        client_id.into(),
        body.into(),
        MessageKind::User,
    )
}

fn poll(client_id: &str) -> NewEntry {
    NewEntry {
        content: Content::Other {
            entry_type: "poll".into(),
            body: "Lunch?".into(),
            fields: r#"{"options":["soup","salad"]}"#.into(),
        },
        ..message(client_id, "")
    }
}

/// A data dir whose `general` holds: 1 message, 2 poll, 3 message, 4 poll, 5 poll, 6 message.
async fn log_with_polls() -> TempDir {
    let data = TempDir::new();
    let (log, _) =
        Log::open_sqlite(std::path::Path::new(data.path()), 1000, 2, |_| {}).expect("opened");
    for entry in [
        message("m1", "first"),
        poll("p2"),
        message("m3", "second"),
        poll("p4"),
        poll("p5"),
        message("m6", "third"),
    ] {
        log.append(entry).await.expect("stored");
    }
    data
}

#[tokio::test]
async fn a_kind_of_entry_this_build_does_not_know_is_passed_on_at_every_door_and_skipped_as_a_line()
{
    let data = log_with_polls().await;
    let server = TestServer::start_in(data.path(), &["--api-token", TOKEN]).await;

    // The WebSocket replays every entry in seq order: the polls as they were stored.
    let mut bob = Client::connect_only(server.addr, &server.session("Bob").await).await;
    let joined = bob.join("general", None).await;
    assert_eq!((joined.first_seq, joined.last_seq), (1, 6));
    let mut replayed = Vec::new();
    for _ in 1..=6 {
        replayed.push(match bob.recv().await {
            ServerMsg::Message(m) => (m.seq, m.body),
            ServerMsg::Other(other) => (other.seq, other.entry_type),
            other => panic!("{other:?}"),
        });
    }
    let expected = [
        (1, "first"),
        (2, "poll"),
        (3, "second"),
        (4, "poll"),
        (5, "poll"),
        (6, "third"),
    ];
    assert_eq!(
        replayed,
        expected.map(|(seq, what)| (seq, what.to_owned())).to_vec()
    );
    // A cursor on a poll resumes after it, like any other.
    let mut carol = Client::connect_only(server.addr, &server.session("Carol").await).await;
    let resumed = carol.resume("general", &joined.epoch, 4).await;
    assert_eq!((resumed.mode, resumed.first_seq), (JoinMode::Full, 5));
    assert!(matches!(carol.recv().await, ServerMsg::Other(o) if o.seq == 5));
    assert!(matches!(carol.recv().await, ServerMsg::Message(m) if m.seq == 6));
    carol
        .send(&ClientMsg::Leave {
            room: "general".into(),
        })
        .await;

    // An event stream sends a poll as an `entry` event under its seq, whole.
    let headers = format!("Authorization: Bearer {TOKEN}\r\nLast-Event-ID: 3\r\n");
    let mut sse = SseReader::open(server.addr, "/api/rooms/general/events", &headers, false).await;
    assert_eq!(sse.next_event().await.expect("joined").event, "joined");
    let mut events = Vec::new();
    while events.len() < 3 {
        let event = sse.next_event().await.expect("event");
        if event.event != "presence" {
            events.push((event.event.clone(), event.id.clone(), event.json()));
        }
    }
    let named: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|(event, id, _)| (event.as_str(), id.as_deref()))
        .collect();
    assert_eq!(
        named,
        [
            ("entry", Some("4")),
            ("entry", Some("5")),
            ("message", Some("6"))
        ]
    );
    let poll = &events[0].2;
    assert_eq!(
        (&poll["type"], &poll["body"], &poll["options"][0]),
        (&"poll".into(), &"Lunch?".into(), &"soup".into())
    );

    // Pages of messages skip the polls, and page on past them: one message after the first is the
    // second, two polls later the third.
    let (status, _, page) = server
        .api(
            "GET",
            "/api/rooms/general/messages?after=3&limit=1",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let seqs = |page: &serde_json::Value| -> Vec<u64> {
        page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| m["seq"].as_u64())
            .collect()
    };
    assert_eq!(
        (seqs(&page), page["has_newer"].as_bool()),
        (vec![6], Some(false))
    );
    let (_, _, page) = server
        .api(
            "GET",
            "/api/rooms/general/messages?before=6&limit=1",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(
        (seqs(&page), page["has_older"].as_bool()),
        (vec![3], Some(true))
    );
    let (_, _, page) = server
        .api("GET", "/api/rooms/general/messages", Some(TOKEN), None)
        .await;
    assert_eq!(seqs(&page), [1, 3, 6]);

    // The rendered page shows the three messages, and its copy reaches the last entry.
    let cookie = server.session("Dan").await;
    let (status, _, html) = server.get_as("/r/general", &cookie).await;
    assert_eq!(status, 200);
    for body in ["first", "second", "third"] {
        assert!(html.contains(body), "{body} on the page");
    }
    assert!(!html.contains("Lunch?"), "a poll is not a line");
    assert!(
        html.contains("&quot;last_seq&quot;:6") || html.contains("\"last_seq\":6"),
        "the page's copy ends at seq 6"
    );
}
