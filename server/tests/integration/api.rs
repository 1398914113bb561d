//! The HTTP API as a program uses it: publish, broadcast, rooms, history and Server-Sent Events —
//! each endpoint, each error status, and that it all goes through the same log and hub as the chat.

use crate::common;

use app::protocol::{ChatMessage, MessageKind};
use common::{SseReader, TOKEN, TestServer};
use serde_json::{Value, json};

fn publish_body(body: &str, client_id: &str) -> String {
    json!({ "body": body, "author_name": "Deploy bot", "client_id": client_id }).to_string()
}

fn error_code(json: &Value) -> &str {
    json["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn without_tokens_publishing_is_off_and_says_how_to_turn_it_on() {
    let server = TestServer::start().await;
    let (status, _, json) = server
        .api(
            "POST",
            "/api/rooms/general/messages",
            Some("anything"),
            Some(&publish_body("hi", "a")),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(error_code(&json), "api_disabled");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("--api-token")
    );
}

#[tokio::test]
async fn a_published_message_is_stored_once_and_reaches_the_chat_as_a_bot() {
    let (server, _data) = TestServer::start_api(&[]).await;
    let mut reader = server.client_named("Reader").await;

    for token in [None, Some("wrong-token")] {
        let (status, head, json) = server
            .api(
                "POST",
                "/api/rooms/general/messages",
                token,
                Some(&publish_body("hi", "a")),
            )
            .await;
        assert_eq!(
            (status, error_code(&json)),
            (401, "unauthorized"),
            "{token:?}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer")
        );
    }

    let body = publish_body("v1.2 is live", "deploy-42");
    let (status, _, first) = server
        .api(
            "POST",
            "/api/rooms/general/messages",
            Some(TOKEN),
            Some(&body),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        (first["room"].as_str(), first["seq"].as_u64()),
        (Some("general"), Some(1))
    );
    assert!(first["id"].as_str().is_some_and(|id| id.ends_with("-1")));

    let msg: ChatMessage = reader.next_message().await;
    assert_eq!(
        (msg.body.as_str(), msg.author.name.as_str(), msg.kind),
        ("v1.2 is live", "Deploy bot", MessageKind::Bot)
    );
    assert!(msg.author.id.starts_with("api-"), "never a person's id");

    // The same client_id again: the same answer, nothing new stored or broadcast.
    let (status, _, again) = server
        .api(
            "POST",
            "/api/rooms/general/messages",
            Some(TOKEN),
            Some(&body),
        )
        .await;
    assert_eq!((status, again["seq"].as_u64()), (201, Some(1)));
    let (_, _, page) = server
        .api("GET", "/api/rooms/general/messages", Some(TOKEN), None)
        .await;
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        reader.post("after", "a person speaks").await,
        2,
        "nothing between"
    );
}

#[tokio::test]
async fn bad_requests_get_the_right_status_and_nothing_is_stored() {
    let (server, _data) = TestServer::start_api(&["--max-body-bytes", "100"]).await;
    let long = "x".repeat(101);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "/api/rooms/general/messages",
            "not json".into(),
            400,
            "invalid_json",
        ),
        (
            "/api/rooms/general/messages",
            json!({"body": "hi", "author": "admin"}).to_string(),
            400,
            "invalid_json",
        ),
        (
            "/api/rooms/general/messages",
            json!({"body": "   "}).to_string(),
            400,
            "empty_body",
        ),
        (
            "/api/rooms/general/messages",
            json!({"body": long}).to_string(),
            413,
            "body_too_long",
        ),
        (
            "/api/rooms/general/messages",
            json!({"body": "x".repeat(10_000)}).to_string(),
            413,
            "request_too_large",
        ),
        (
            "/api/rooms/general/messages",
            json!({"body": "hi", "author_name": "a\nb"}).to_string(),
            400,
            "invalid_name",
        ),
        (
            "/api/rooms/general/messages",
            json!({"body": "hi", "client_id": ""}).to_string(),
            400,
            "invalid_client_id",
        ),
        (
            "/api/rooms/Bad%2FRoom/messages",
            json!({"body": "hi"}).to_string(),
            400,
            "invalid_room",
        ),
        (
            "/api/broadcast",
            json!({"body": ""}).to_string(),
            400,
            "empty_body",
        ),
    ];
    for (path, body, status, code) in cases {
        let (got, _, json) = server.api("POST", path, Some(TOKEN), Some(&body)).await;
        assert_eq!(
            (got, error_code(&json)),
            (status, code),
            "{path} {body:.60}"
        );
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let (status, _, rooms) = server.api("GET", "/api/rooms", Some(TOKEN), None).await;
    assert_eq!(status, 200);
    for room in rooms["rooms"].as_array().into_iter().flatten() {
        assert_eq!(room["last_seq"].as_u64(), Some(0), "nothing stored: {room}");
    }
}

#[tokio::test]
async fn over_the_token_budget_is_429_with_retry_after() {
    let (server, _data) =
        TestServer::start_api(&["--api-rate-burst", "2", "--api-rate-per-sec", "0.5"]).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..3 {
        let (status, head, json) = server
            .api(
                "POST",
                "/api/rooms/general/messages",
                Some(TOKEN),
                Some(&publish_body("hi", &format!("r{i}"))),
            )
            .await;
        statuses.push(status);
        if status == 429 {
            assert_eq!(error_code(&json), "rate_limited");
            retry_after = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("retry-after:")
                    .map(|v| v.trim().to_owned())
            });
        }
    }
    assert_eq!(statuses, vec![201, 201, 429]);
    let secs: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=2).contains(&secs), "{secs}");
}

#[tokio::test]
async fn a_broadcast_reaches_every_room_as_an_announcement() {
    let (server, _data) = TestServer::start_api(&[]).await;
    let mut in_general = server.client_named("Ann").await;
    let mut in_ops = server.client_named("Bob").await;
    in_ops.join("ops", None).await;

    let (status, _, json) = server
        .api(
            "POST",
            "/api/broadcast",
            Some(TOKEN),
            Some(&json!({"body": "maintenance at 18:00"}).to_string()),
        )
        .await;
    assert_eq!(status, 201);
    let rooms: Vec<&str> = json["rooms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["room"].as_str())
        .collect();
    assert_eq!(rooms, vec!["general", "ops"]);
    let seen_in_general = in_general.next_message().await;
    assert_eq!(
        (seen_in_general.body.as_str(), seen_in_general.kind),
        ("maintenance at 18:00", MessageKind::Announcement)
    );
    // Bob is in both rooms: one copy in each.
    let mut bobs: Vec<(String, MessageKind)> = Vec::new();
    for _ in 0..2 {
        let m = in_ops.next_message().await;
        bobs.push((m.room, m.kind));
    }
    bobs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        bobs,
        vec![
            ("general".into(), MessageKind::Announcement),
            ("ops".into(), MessageKind::Announcement)
        ]
    );
}

#[tokio::test]
async fn rooms_and_history_pages_for_a_token_or_a_chat_session() {
    let (server, _data) = TestServer::start_api(&[]).await;
    let mut ann = server.client_named("Ann").await;
    for i in 1..=30 {
        ann.say(&format!("c{i}"), &format!("m{i}")).await;
    }
    for _ in 0..30 {
        ann.next_message().await;
    }
    let (status, _, json) = server.api("GET", "/api/rooms", None, None).await;
    assert_eq!((status, error_code(&json)), (401, "unauthorized"));
    // Counts are announced a few times a second: wait until Ann's arrival has been.
    ann.signal(|m| {
        matches!(m, app::protocol::ServerMsg::Rooms { rooms } if rooms.iter().any(|r| r.room == "general" && r.members == 1))
    })
    .await;

    // Ann's own session cookie is enough to read.
    let cookie = server.session("Cookie reader").await;
    let (status, _, body) = server.get_as("/api/rooms", &cookie).await;
    assert_eq!(status, 200);
    let rooms: Value = serde_json::from_str(&body).expect("json");
    let general = rooms["rooms"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["room"] == "general")
        .cloned()
        .expect("general listed");
    assert_eq!(general["last_seq"].as_u64(), Some(30));
    assert_eq!(general["members"].as_u64(), Some(1), "Ann is in it");

    let seqs = |page: &Value| -> Vec<u64> {
        page["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["seq"].as_u64())
            .collect()
    };
    let get = |query: &'static str| {
        let server = &server;
        async move {
            server
                .api(
                    "GET",
                    &format!("/api/rooms/general/messages{query}"),
                    Some(TOKEN),
                    None,
                )
                .await
        }
    };
    let (status, _, latest) = get("?limit=10").await;
    assert_eq!(status, 200);
    assert_eq!(seqs(&latest), (21..=30).collect::<Vec<_>>());
    assert_eq!(
        (latest["has_older"].as_bool(), latest["has_newer"].as_bool()),
        (Some(true), Some(false))
    );
    let (_, _, before) = get("?before=21&limit=15").await;
    assert_eq!(seqs(&before), (6..=20).collect::<Vec<_>>());
    let (_, _, after) = get("?after=25").await;
    assert_eq!(seqs(&after), (26..=30).collect::<Vec<_>>());
    let (_, _, between) = get("?after=3&before=8").await;
    assert_eq!(seqs(&between), (4..=7).collect::<Vec<_>>());
    assert_eq!(
        (
            between["has_older"].as_bool(),
            between["has_newer"].as_bool()
        ),
        (Some(true), Some(true))
    );

    for (query, status, code) in [
        ("?limit=0", 400, "invalid_limit"),
        ("?limit=201", 400, "invalid_limit"),
        ("?before=soon", 400, "invalid_query"),
        ("?colour=red", 400, "invalid_query"),
    ] {
        let (got, _, json) = get(query).await;
        assert_eq!((got, error_code(&json)), (status, code), "{query}");
    }
    let (status, _, json) = server
        .api("GET", "/api/rooms/nowhere/messages", Some(TOKEN), None)
        .await;
    assert_eq!((status, error_code(&json)), (404, "unknown_room"));
}

async fn publish_n(server: &TestServer, room: &str, from: u64, to: u64) {
    for i in from..=to {
        let (status, _, _) = server
            .api(
                "POST",
                &format!("/api/rooms/{room}/messages"),
                Some(TOKEN),
                Some(&publish_body(&format!("e{i}"), &format!("e{i}"))),
            )
            .await;
        assert_eq!(status, 201);
    }
}

fn auth() -> String {
    format!("Authorization: Bearer {TOKEN}\r\n")
}

#[tokio::test]
async fn sse_replays_exactly_what_was_missed_after_last_event_id() {
    let (server, _data) = TestServer::start_api(&["--api-rate-burst", "1000"]).await;
    publish_n(&server, "general", 1, 10).await;

    let mut sse = SseReader::open(server.addr, "/api/rooms/general/events", &auth(), false).await;
    assert_eq!(sse.status, 200);
    let head = sse.head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("cache-control: no-cache") && !head.contains("content-encoding"));
    let joined = sse.next_event().await.expect("joined");
    assert_eq!(
        (joined.event.as_str(), joined.json()["mode"].as_str()),
        ("joined", Some("latest"))
    );
    let mut ids = Vec::new();
    while ids.len() < 10 {
        let event = sse.next_event().await.expect("event");
        if event.event == "message" {
            let msg: ChatMessage = serde_json::from_str(&event.data).expect("a message");
            assert_eq!(Some(msg.seq.to_string()), event.id);
            ids.push(msg.seq);
        }
    }
    assert_eq!(ids, (1..=10).collect::<Vec<_>>());
    drop(sse);

    publish_n(&server, "general", 11, 30).await;
    let headers = format!("{}Last-Event-ID: 10\r\n", auth());
    let mut sse = SseReader::open(server.addr, "/api/rooms/general/events", &headers, false).await;
    let joined = sse.next_event().await.expect("joined").json();
    assert_eq!(
        (joined["mode"].as_str(), joined["first_seq"].as_u64()),
        (Some("full"), Some(11))
    );
    let mut ids = Vec::new();
    while ids.len() < 20 {
        let event = sse.next_event().await.expect("event");
        if event.event == "message" {
            ids.push(event.id.and_then(|id| id.parse::<u64>().ok()).expect("id"));
        }
    }
    assert_eq!(
        ids,
        (11..=30).collect::<Vec<_>>(),
        "exactly the missed 20, in order"
    );
    // And it is live: the next one published arrives as it happens.
    publish_n(&server, "general", 31, 31).await;
    loop {
        let event = sse.next_event().await.expect("live event");
        if event.event == "message" {
            assert_eq!(event.id.as_deref(), Some("31"));
            break;
        }
    }

    // Shutdown ends the stream cleanly (the body's last chunk), not with a reset.
    let mut server = server;
    server.begin_shutdown();
    while sse.next_event().await.is_some() {}
    assert!(sse.ended);
    server.stopped().await;
}

#[tokio::test]
async fn a_stale_sse_cursor_is_partial_and_a_foreign_epoch_is_reset() {
    let (server, _data) =
        TestServer::start_api(&["--api-rate-burst", "1000", "--retention", "10"]).await;
    publish_n(&server, "general", 1, 25).await;
    let mut sse = SseReader::open(
        server.addr,
        "/api/rooms/general/events?since=3",
        &auth(),
        false,
    )
    .await;
    let joined = sse.next_event().await.expect("joined").json();
    assert_eq!(
        (joined["mode"].as_str(), joined["first_seq"].as_u64()),
        (Some("partial"), Some(16))
    );
    let mut sse = SseReader::open(
        server.addr,
        "/api/rooms/general/events?since=20&epoch=not-this-one",
        &auth(),
        false,
    )
    .await;
    let joined = sse.next_event().await.expect("joined").json();
    assert_eq!(joined["mode"].as_str(), Some("reset"));

    for (path, status) in [
        ("/api/rooms/nowhere/events", 404),
        ("/api/rooms/general/events?since=soon", 400),
    ] {
        let mut sse = SseReader::open(server.addr, path, &auth(), false).await;
        assert_eq!(sse.status, status, "{path}");
        assert!(sse.body().await.contains("\"error\""));
    }
    let sse = SseReader::open(server.addr, "/api/rooms/general/events", "", false).await;
    assert_eq!(sse.status, 401);
}

#[tokio::test]
async fn a_slow_sse_reader_holds_nobody_up_and_is_caught_up_from_the_log() {
    const TOTAL: u64 = 120;
    let (server, _data) =
        TestServer::start_api(&["--api-rate-burst", "100000", "--max-body-bytes", "30000"]).await;
    publish_n(&server, "general", 1, 1).await;
    let mut slow = SseReader::open(server.addr, "/api/rooms/general/events", &auth(), true).await;
    let mut ws = server.client_named("Ws reader").await;
    ws.next_message().await; // Seq 1, from the join's replay.

    // 120 messages of 30 kB: far more than the slow reader's queue and socket hold.
    let body = "y".repeat(30_000);
    for i in 2..=TOTAL {
        let (status, _, _) = server
            .api(
                "POST",
                "/api/rooms/general/messages",
                Some(TOKEN),
                Some(&json!({"body": body, "client_id": format!("b{i}")}).to_string()),
            )
            .await;
        assert_eq!(status, 201);
    }
    for expected in 2..=TOTAL {
        assert_eq!(
            ws.next_message().await.seq,
            expected,
            "the WebSocket reader kept pace"
        );
    }
    // The slow reader now reads: every message once, in order, no gap.
    let mut ids = Vec::new();
    while ids.len() < TOTAL as usize {
        let event = slow.next_event().await.expect("event");
        if event.event == "message" {
            ids.push(event.id.and_then(|id| id.parse::<u64>().ok()).expect("id"));
        }
    }
    assert_eq!(ids, (1..=TOTAL).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_openapi_document_describes_the_real_routes() {
    let (server, _data) = TestServer::start_api(&["--api-rate-burst", "1000"]).await;
    let (status, head, doc) = server.api("GET", "/api/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            if method == "parameters" {
                continue;
            }
            let statuses: Vec<u16> = operation["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .map(|s| s.parse().expect("numeric status"))
                .collect();
            operations.push((method.to_uppercase(), path.clone(), statuses));
        }
    }
    let mut described: Vec<(String, String)> = operations
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    described.sort();
    let expected = [
        ("DELETE", "/api/rooms/{room}/messages/{seq}"),
        ("GET", "/api/openapi.json"),
        ("GET", "/api/rooms"),
        ("GET", "/api/rooms/{room}/events"),
        ("GET", "/api/rooms/{room}/messages"),
        ("GET", "/api/rooms/{room}/messages/{seq}/versions"),
        ("PATCH", "/api/rooms/{room}/messages/{seq}"),
        ("POST", "/api/broadcast"),
        ("POST", "/api/rooms/{room}/messages"),
        ("POST", "/api/rooms/{room}/messages/{seq}/reactions"),
    ]
    .map(|(m, p)| (m.to_string(), p.to_string()));
    assert_eq!(
        described, expected,
        "every route the server has is described, and nothing else"
    );

    // Each described operation answers as described: a real route (not the app's 404 page or a
    // 405), with a status the document lists.
    for (method, path, statuses) in operations {
        let mut path = path.replace("{room}", "general");
        if path.contains("{seq}") {
            // A message of this token's own to change.
            let (_, _, published) = server
                .api(
                    "POST",
                    "/api/rooms/general/messages",
                    Some(TOKEN),
                    Some(&json!({"body": "to change"}).to_string()),
                )
                .await;
            let seq = published["seq"].as_u64().expect("published");
            path = path.replace("{seq}", &seq.to_string());
        }
        let status = if path.ends_with("/events") {
            SseReader::open(server.addr, &path, &auth(), false)
                .await
                .status
        } else {
            let body = match method.as_str() {
                "POST" if path.ends_with("/reactions") => Some(json!({"emoji": "👍"}).to_string()),
                "POST" | "PATCH" => Some(json!({"body": "described"}).to_string()),
                _ => None,
            };
            server
                .api(&method, &path, Some(TOKEN), body.as_deref())
                .await
                .0
        };
        assert!(
            statuses.contains(&status),
            "{method} {path} answered {status}, not one of {statuses:?}"
        );
        assert!(
            (200..300).contains(&status),
            "{method} {path} works as documented: {status}"
        );
    }
}

/// A room written as people write it is the room the page's "go to room" and `/r/{room}` go to: one
/// rule for every door (`normalize_room`), and the answer says which room it was.
#[tokio::test]
async fn rooms_are_taken_as_people_write_them_by_the_pages_rule() {
    let (server, _data) = TestServer::start_api(&[]).await;
    for (path, room) in [
        ("/api/rooms/General/messages", "general"),
        ("/api/rooms/Design%20Team/messages", "design-team"),
        ("/api/rooms/%20design%20%20team%20/messages", "design-team"),
    ] {
        let (status, _, json) = server
            .api(
                "POST",
                path,
                Some(TOKEN),
                Some(&json!({"body": path}).to_string()),
            )
            .await;
        assert_eq!((status, json["room"].as_str()), (201, Some(room)), "{path}");
    }
    // Read back under any spelling: the same room, with both messages.
    let (status, _, json) = server
        .api(
            "GET",
            "/api/rooms/DESIGN%20team/messages",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["room"], "design-team");
    assert_eq!(json["messages"].as_array().map(Vec::len), Some(2));
    // What cannot be made a name is refused, with the rule.
    let (status, _, json) = server
        .api(
            "POST",
            "/api/rooms/design%2Fteam/messages",
            Some(TOKEN),
            Some(&json!({"body": "no"}).to_string()),
        )
        .await;
    assert_eq!((status, error_code(&json)), (400, "invalid_room"));
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("spaces become -")),
        "{json}"
    );
    // The page's doors: a link and the plain "go to room" form lead to the same room.
    for (path, to) in [
        ("/r/Design%20Team", "/r/design-team"),
        ("/r?room=Design+Team", "/r/design-team"),
        ("/r?room=%20General%20", "/r/general"),
    ] {
        let (status, head, _) = server.get(path).await;
        assert!(matches!(status, 303 | 308), "{path}: {status}");
        assert_eq!(common::header(&head, "location"), Some(to), "{path}");
    }
}

/// The author id a published message carries (as every reader sees it).
async fn bot_author_id(server: &TestServer, client_id: &str) -> String {
    let mut reader = server.client_named("Reader").await;
    let (status, _, _) = server
        .api(
            "POST",
            "/api/rooms/general/messages",
            Some(TOKEN),
            Some(&publish_body("hello", client_id)),
        )
        .await;
    assert_eq!(status, 201);
    let msg: ChatMessage = reader.next_message().await;
    msg.author.id
}

#[tokio::test]
async fn a_bot_s_author_id_says_nothing_of_its_token_and_stays_the_same_across_a_restart() {
    use sha2::{Digest, Sha256};
    let data = common::TempDir::new();
    let secret = ["--session-secret", "a-32-byte-secret-for-this-test-0000"];
    let flags = ["--api-token", TOKEN, secret[0], secret[1]];
    let mut server = TestServer::start_in(data.path(), &flags).await;
    let id = bot_author_id(&server, "a").await;
    // Before: the first 48 bits of the token's bare SHA-256, checkable against guessed tokens.
    let digest = Sha256::digest(TOKEN.as_bytes());
    let unkeyed: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    assert!(id.starts_with("api-") && id.len() == 16, "{id}");
    assert_ne!(
        id,
        format!("api-{unkeyed}"),
        "the id is keyed with the server's secret"
    );
    server.begin_shutdown();
    server.stopped().await;

    // Restarted (or another node with the same secret): the same id, so dedupe still holds.
    let mut server = TestServer::start_in(data.path(), &flags).await;
    assert_eq!(bot_author_id(&server, "b").await, id);
    let (status, _, again) = server
        .api(
            "POST",
            "/api/rooms/general/messages",
            Some(TOKEN),
            Some(&publish_body("hello", "a")),
        )
        .await;
    assert_eq!(
        (status, again["seq"].as_u64()),
        (201, Some(1)),
        "a retry across the restart is the same message"
    );
    server.begin_shutdown();
    server.stopped().await;

    // Another secret, another id: nothing to learn from comparing ids across servers.
    let other_data = common::TempDir::new();
    let other = TestServer::start_in(
        other_data.path(),
        &[
            "--api-token",
            TOKEN,
            "--session-secret",
            "another-32-byte-secret-for-tests-1",
        ],
    )
    .await;
    assert_ne!(bot_author_id(&other, "c").await, id);
}

#[tokio::test]
async fn guessing_tokens_is_slowed_per_address_and_a_right_token_is_not_told_apart_meanwhile() {
    let (server, _data) = TestServer::start_api(&["--api-failures-per-min", "5"]).await;
    let publish = |token: &'static str| {
        let server = &server;
        async move {
            server
                .api(
                    "POST",
                    "/api/rooms/general/messages",
                    Some(token),
                    Some(&publish_body("guess", "g")),
                )
                .await
        }
    };
    for n in 0..5 {
        let (status, _, json) = publish("wrong-guess").await;
        assert_eq!(
            (status, error_code(&json)),
            (401, "unauthorized"),
            "guess {n}"
        );
    }
    // The sixth wrong one, and the right one after it: both wait, so a guess that happens to be
    // right cannot be told apart until the budget is back.
    for token in ["wrong-guess", TOKEN] {
        let (status, head, json) = publish(token).await;
        assert_eq!(
            (status, error_code(&json)),
            (429, "rate_limited"),
            "{token}"
        );
        assert!(
            head.to_ascii_lowercase().contains("retry-after: "),
            "{head}"
        );
    }
    // The event stream's door is the same door.
    let (status, _, _) = server
        .api("GET", "/api/rooms/general/events", Some(TOKEN), None)
        .await;
    assert_eq!(status, 429);
    // Someone reading with their chat session (no token) is not held up.
    let cookie = server.session("Reader").await;
    let (status, _, _) = server.get_as("/api/rooms", &cookie).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_person_s_reads_have_a_budget_that_a_new_session_from_the_same_address_does_not_reset() {
    let (server, _data) =
        TestServer::start_api(&["--api-rate-burst", "5", "--api-rate-per-sec", "0.1"]).await;
    let cookie = server.session("Reader").await;
    for n in 0..5 {
        let (status, _, _) = server.get_as("/api/rooms", &cookie).await;
        assert_eq!(status, 200, "read {n}");
    }
    let (status, head, body) = server.get_as("/api/rooms", &cookie).await;
    assert_eq!(status, 429, "{head}{body}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: "),
        "{head}"
    );
    assert!(body.contains("rate_limited"), "{body}");
    // A fresh session costs nothing to make: from the same address it finds the address's
    // budget spent too.
    let fresh = server.session("Reader again").await;
    let (status, _, _) = server.get_as("/api/rooms", &fresh).await;
    assert_eq!(status, 429);
    // A token has its own budget.
    let (status, _, _) = server.api("GET", "/api/rooms", Some(TOKEN), None).await;
    assert_eq!(status, 200);
}

/// A program edits and deletes its own messages, reacts, and replies, through the API; every
/// refusal has its status and code and stores nothing; an event stream carries every kind of entry.
#[tokio::test]
async fn a_program_edits_deletes_reacts_and_replies_and_an_event_stream_carries_it_all() {
    let (server, _data) = TestServer::start_api(&["--api-token", "other-token-9c2e"]).await;
    let post = |path: &str, body: serde_json::Value| {
        let (server, path) = (&server, path.to_owned());
        async move {
            server
                .api("POST", &path, Some(TOKEN), Some(&body.to_string()))
                .await
        }
    };
    let (_, _, status_msg) = post(
        "/api/rooms/general/messages",
        json!({"body": "build: running", "author_name": "CI"}),
    )
    .await;
    let seq = status_msg["seq"].as_u64().expect("published");
    let mut sse = SseReader::open(
        server.addr,
        "/api/rooms/general/events",
        &format!("Authorization: Bearer {TOKEN}\r\nLast-Event-ID: {seq}\r\n"),
        false,
    )
    .await;
    let path = format!("/api/rooms/general/messages/{seq}");
    let (status, _, edited) = server
        .api(
            "PATCH",
            &path,
            Some(TOKEN),
            Some(&json!({"body": "build: passed", "client_id": "e1"}).to_string()),
        )
        .await;
    assert_eq!((status, edited["seq"].as_u64()), (200, Some(seq + 1)));
    // The same edit again (a retry): the same answer, nothing stored.
    let (status, _, again) = server
        .api(
            "PATCH",
            &path,
            Some(TOKEN),
            Some(&json!({"body": "build: passed", "client_id": "e1"}).to_string()),
        )
        .await;
    assert_eq!((status, again["seq"].as_u64()), (200, Some(seq + 1)));
    let (status, _, reacted) = post(&format!("{path}/reactions"), json!({"emoji": "🎉"})).await;
    assert_eq!((status, reacted["seq"].as_u64()), (200, Some(seq + 2)));
    let (status, _, reply) = post(
        "/api/rooms/general/messages",
        json!({"body": "deployed", "reply_to": seq}),
    )
    .await;
    assert_eq!((status, reply["seq"].as_u64()), (201, Some(seq + 3)));

    // Refusals: their status and code, nothing stored.
    let other = Some("other-token-9c2e");
    let refusals = [
        (
            "PATCH",
            path.clone(),
            other,
            json!({"body": "mine now"}),
            403,
            "not_yours",
        ),
        ("DELETE", path.clone(), other, json!(null), 403, "not_yours"),
        (
            "PATCH",
            "/api/rooms/general/messages/999".into(),
            Some(TOKEN),
            json!({"body": "?"}),
            404,
            "no_such_message",
        ),
        (
            "PATCH",
            "/api/rooms/nowhere/messages/1".into(),
            Some(TOKEN),
            json!({"body": "?"}),
            404,
            "unknown_room",
        ),
        (
            "POST",
            format!("{path}/reactions"),
            Some(TOKEN),
            json!({"emoji": "yes"}),
            400,
            "invalid_emoji",
        ),
        (
            "POST",
            format!("{path}/reactions"),
            Some(TOKEN),
            json!({"emoji": "👍👍"}),
            400,
            "invalid_emoji",
        ),
        (
            "POST",
            "/api/rooms/general/messages".into(),
            Some(TOKEN),
            json!({"body": "re", "reply_to": 999}),
            404,
            "no_such_message",
        ),
        (
            "PATCH",
            path.clone(),
            None,
            json!({"body": "anyone?"}),
            401,
            "unauthorized",
        ),
    ];
    for (method, path, token, body, status, code) in refusals {
        let body = (!body.is_null()).then(|| body.to_string());
        let (got, _, json) = server.api(method, &path, token, body.as_deref()).await;
        assert_eq!((got, error_code(&json)), (status, code), "{method} {path}");
    }
    let (status, _, deleted) = server.api("DELETE", &path, Some(TOKEN), None).await;
    assert_eq!((status, deleted["seq"].as_u64()), (200, Some(seq + 4)));
    let (status, _, json) = server
        .api(
            "PATCH",
            &path,
            Some(TOKEN),
            Some(&json!({"body": "back"}).to_string()),
        )
        .await;
    assert_eq!((status, error_code(&json)), (409, "message_deleted"));

    // A page shows the message as it is now; the reply quotes it as deleted.
    let (_, _, page) = server
        .api("GET", "/api/rooms/general/messages", Some(TOKEN), None)
        .await;
    let messages = page["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2, "{page}");
    assert_eq!(
        (
            messages[0]["body"].as_str(),
            messages[0]["deleted"].is_object()
        ),
        (Some(""), true)
    );
    assert_eq!(messages[1]["reply_to"]["seq"].as_u64(), Some(seq));
    assert!(messages[1]["reply_to"]["text"].is_null(), "{page}");

    // The stream: every entry after the cursor, each under its kind.
    let mut kinds = Vec::new();
    while kinds.len() < 4 {
        let event = sse.next_event().await.expect("event");
        if event.id.is_some() {
            kinds.push((event.event.clone(), event.id.clone().unwrap_or_default()));
        }
    }
    let expected: Vec<(String, String)> =
        [("edit", 1), ("react", 2), ("message", 3), ("delete", 4)]
            .iter()
            .map(|(kind, n)| (kind.to_string(), (seq + n).to_string()))
            .collect();
    assert_eq!(kinds, expected);
}
