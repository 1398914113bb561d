//! The chat as clients see it over `/ws`: broadcast to everyone, in order, once; bad frames refused
//! without harm; oversized frames closed with 1009; shutdown says "going away".

use crate::common;

use app::protocol::{Disconnect, ErrorCode, MAX_BODY_BYTES, MAX_FRAME_BYTES, ServerMsg};
use common::{Client, Seen, TestServer};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn three_clients_each_receive_all_100_messages_once_and_in_order() {
    let server = TestServer::start().await;
    let mut sender = server.client().await;
    let mut b = server.client().await;
    let mut c = server.client().await;
    let author = (sender.id.clone(), sender.name.clone());

    for i in 0..100 {
        sender.say(&format!("c{i}"), &format!("message {i}")).await;
    }
    // The sender's own view: every message in order, and each one's ack after it, with its seq.
    // (Sends are pipelined: the ack of one may come after the next message.)
    let mut sender_bodies = Vec::new();
    let mut seqs = Vec::new();
    let mut acks = Vec::new();
    while acks.len() < 100 {
        match sender.recv().await {
            ServerMsg::Message(msg) => {
                sender_bodies.push(msg.body);
                seqs.push(msg.seq);
            }
            ServerMsg::Ack { client_id, seq, .. } => {
                let i = acks.len();
                assert_eq!(client_id, format!("c{i}"), "acks in the order sent");
                assert_eq!(seqs.get(i), Some(&seq), "after its message, with its seq");
                acks.push(seq);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<String> = (0..100).map(|i| format!("message {i}")).collect();
    assert_eq!(sender_bodies, expected);

    // All 100 are acked, so all are broadcast. A last message from someone else marks the end: if
    // anything of the 100 came twice, it would arrive before this marker and break the count below.
    b.say("end", "end").await;

    for client in [&mut b, &mut c] {
        let mut bodies = Vec::new();
        let mut seqs = Vec::new();
        loop {
            let msg = client.next_message().await;
            if msg.body == "end" {
                break;
            }
            assert_eq!(
                (msg.author.id, msg.author.name),
                author,
                "the author is the sender's session"
            );
            bodies.push(msg.body);
            seqs.push(msg.seq);
        }
        assert_eq!(bodies, expected, "all 100, once each, in order");
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "dense seqs: {seqs:?}"
        );
    }
}

#[tokio::test]
async fn the_sender_gets_an_ack_with_the_seq_of_its_message() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    client.say("my-id", "hi").await;
    let msg = client.next_message().await;
    assert_eq!(
        client.recv().await,
        ServerMsg::Ack {
            room: "general".into(),
            client_id: "my-id".into(),
            seq: msg.seq
        }
    );
}

#[tokio::test]
async fn bad_frames_get_a_typed_error_keep_the_connection_and_broadcast_nothing() {
    let server = TestServer::start().await;
    let mut sender = server.client().await;
    let mut observer = server.client().await;

    let cases: Vec<(Message, ErrorCode)> = vec![
        (Message::text("not json"), ErrorCode::InvalidFrame),
        (
            Message::text(r#"{"type":"shout","body":"hi"}"#),
            ErrorCode::InvalidFrame,
        ),
        (
            Message::text(
                r#"{"type":"send","room":"general","client_id":"a","body":"hi","author":"admin"}"#,
            ),
            ErrorCode::InvalidFrame,
        ),
        (
            Message::text(r#"{"type":"send","room":"general","client_id":"a","body":"  "}"#),
            ErrorCode::EmptyBody,
        ),
        (
            Message::text(format!(
                r#"{{"type":"send","room":"general","client_id":"a","body":"{}"}}"#,
                "x".repeat(MAX_BODY_BYTES + 1)
            )),
            ErrorCode::BodyTooLong,
        ),
        (
            Message::text(r#"{"type":"send","room":"general","client_id":"","body":"hi"}"#),
            ErrorCode::InvalidClientId,
        ),
        (Message::binary(b"{}".to_vec()), ErrorCode::BinaryFrame),
        (
            Message::text(r#"{"type":"join","room":"No Such Room!"}"#),
            ErrorCode::InvalidRoom,
        ),
        (
            Message::text(r#"{"type":"send","room":"elsewhere","client_id":"a","body":"hi"}"#),
            ErrorCode::NotJoined,
        ),
        (
            Message::text(r#"{"type":"leave","room":"elsewhere"}"#),
            ErrorCode::NotJoined,
        ),
    ];
    for (frame, code) in cases {
        sender.send_raw(frame).await;
        match sender.recv().await {
            ServerMsg::Error {
                code: got, message, ..
            } => {
                assert_eq!(got, code);
                assert!(!message.is_empty(), "the error says what is wrong");
            }
            other => panic!("expected an error for {code:?}, got {other:?}"),
        }
    }

    // Still connected and able to post; and the first thing anyone else sees is that valid message.
    sender.say("ok", "valid").await;
    assert_eq!(sender.next_message().await.body, "valid");
    let first = observer.next_message().await;
    assert_eq!(first.body, "valid");
    assert_eq!(first.seq, 1, "nothing was broadcast before it");
}

#[tokio::test]
async fn a_frame_over_64_kib_closes_with_1009_and_broadcasts_nothing() {
    let server = TestServer::start().await;
    let mut offender = server.client().await;
    let mut observer = server.client().await;

    let body = "x".repeat(MAX_FRAME_BYTES);
    let frame = format!(r#"{{"type":"send","room":"general","client_id":"big","body":"{body}"}}"#);
    assert!(frame.len() > MAX_FRAME_BYTES);
    offender.send_raw(Message::text(frame)).await;

    let close = offender
        .close_frame()
        .await
        .expect("a close frame, not a reset");
    assert_eq!(u16::from(close.code), Disconnect::MessageTooBig.code());

    observer.say("after", "after").await;
    let first = observer.next_message().await;
    assert_eq!((first.seq, first.body.as_str()), (1, "after"));
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_going_away() {
    let mut server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    server.begin_shutdown();
    for client in [&mut a, &mut b] {
        match client.next().await {
            Seen::Closed(Some(frame)) => {
                assert_eq!(u16::from(frame.code), Disconnect::GoingAway.code())
            }
            other => panic!("expected a going-away close, got {other:?}"),
        }
        // Reading on answers the close, as a browser does; then the socket ends.
        assert!(matches!(client.next().await, Seen::Closed(None)));
    }
    server.stopped().await;
}

#[tokio::test]
async fn the_page_is_rendered_on_the_server_before_any_script_runs() {
    let server = TestServer::start().await;
    let cookie = server.session("Ann").await;
    let (status, head, body) = server.get_as("/", &cookie).await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html")
    );
    for part in [
        "<h1 class=\"brand\">Herald</h1>",
        "data-testid=\"messages\"",
        "data-testid=\"composer-input\"",
        "data-state=\"loading\"",
        "Loading…",
        ">Ann</summary>",
    ] {
        assert!(body.contains(part), "the page holds {part:?}");
    }
    // Its script and wasm, by the names the build gave them: each is served, to be kept for good.
    let mut links: Vec<&str> = body
        .split("\"/pkg/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    links.sort_unstable();
    links.dedup();
    let named = |stem: &str, ext: &str| {
        links.iter().any(|link| {
            link.strip_prefix(stem)
                .and_then(|rest| rest.strip_suffix(ext))
                .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        })
    };
    assert!(named("herald.", ".js"), "{links:?}");
    assert!(named("herald_bg.", ".wasm"), "{links:?}");
    assert_eq!(links.len(), 2, "{links:?}");
    // The stylesheet is inline: the first paint waits for no second request.
    assert!(body.contains("<style nonce=\""), "inline, with the nonce");
    assert!(body.contains(".app {"), "the stylesheet's rules");
    for link in &links {
        let (status, head, _) = server.get(&format!("/pkg/{link}")).await;
        assert_eq!(status, 200, "{link}");
        assert!(
            head.contains("max-age=31536000, immutable"),
            "{link}: {head}"
        );
    }
    // Until the wasm takes over, the composer cannot be used.
    assert!(
        body.contains(" disabled"),
        "composer disabled before hydration"
    );
}

#[tokio::test]
async fn a_first_visit_asks_for_a_name_with_a_form_that_works_without_scripts() {
    let server = TestServer::start().await;
    // Not signed in: to the sign-in page, and back here after.
    let (status, head, _) = server.get("/r/ops").await;
    assert_eq!(status, 303);
    assert!(
        head.to_ascii_lowercase()
            .contains("location: /sign-in?next=/r/ops"),
        "{head}"
    );
    let (status, _, body) = server.get("/sign-in?next=%2Fr%2Fops").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("action=\"/session\""),
        "a plain form for guests"
    );
    assert!(body.contains("Choose a display name"));
    assert!(body.contains("action=\"/sign-in\""), "and one to sign in");
    assert!(
        !body.contains("data-testid=\"composer-input\""),
        "no chat before a name"
    );

    for bad in ["", "%20%20", "a%0Ab", &"x".repeat(33)] {
        let (status, head, _) = server
            .post_form("/session", &format!("name={bad}&next=%2Fr%2Fops"))
            .await;
        assert_eq!(status, 303);
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("location: /sign-in?error=name&next=/r/ops"),
            "{bad:?}: {head}"
        );
        assert!(
            !head.contains("set-cookie"),
            "{bad:?}: no session for a bad name"
        );
    }
    let (_, _, page) = server.get("/sign-in?error=name&next=/").await;
    assert!(page.contains("Please choose a name of 1 to 32 characters"));
}

#[tokio::test]
async fn an_unknown_path_is_a_404_page() {
    let server = TestServer::start().await;
    let (status, _, body) = server.get("/no/such/page").await;
    assert_eq!(status, 404);
    assert!(body.contains("Not found"));
}

#[tokio::test]
async fn changing_your_name_keeps_who_you_are() {
    let server = TestServer::start().await;
    let first = server.session("Ann").await;
    let renamed = server.rename(&first, "Annie").await;
    let before = Client::connect_only(server.addr, &first).await;
    let mut after = Client::connect(server.addr, &renamed).await;
    assert_eq!(
        (after.id.as_str(), after.name.as_str()),
        (before.id.as_str(), "Annie")
    );
    after.post("c1", "hello under my new name").await;
    // Without a session, the same form makes someone new.
    let other = server.session("Annie").await;
    assert_ne!(
        Client::connect_only(server.addr, &other).await.id,
        before.id
    );
}

#[tokio::test]
async fn forms_posted_from_another_site_are_refused() {
    let server = TestServer::start().await;
    let cookie = server.session("Ann").await;
    let ours = format!("http://{}", server.addr);
    let mut cases: Vec<(&str, &str, &str, u16)> = Vec::new();
    for path in [
        "/session",
        "/session/end",
        "/sign-in",
        "/sign-up",
        "/setup",
        "/account/password",
        "/account/sessions/end",
    ] {
        cases.push((path, "http://evil.example", "name=Mall", 403));
        cases.push((path, "null", "name=Mall", 403));
    }
    cases.push(("/session", &ours, "name=Mall", 303));
    cases.push(("/session/end", &ours, "", 303));
    for (path, origin, body, expected) in cases {
        let headers = format!("Origin: {origin}\r\nCookie: {cookie}\r\n");
        let (status, head, _) = server.post_form_with(path, &headers, body).await;
        assert_eq!(status, expected, "{path} from {origin}: {head}");
        if expected == 403 {
            assert!(
                !head.to_ascii_lowercase().contains("set-cookie"),
                "{path} from {origin}: no cookie when refused"
            );
        }
    }
    // Renamed from our own page, then signed out from it: the session is over.
    let (status, _, _) = server.get_as("/r/general", &cookie).await;
    assert_eq!(status, 303, "signed out");
}

#[tokio::test]
async fn the_health_check_says_the_log_answers_and_counts_connections() {
    let server = TestServer::start().await;
    let health = || async {
        let (status, head, body) = server.get("/healthz").await;
        assert_eq!(status, 200, "{head}{body}");
        assert!(head.contains("cache-control: no-store"), "{head}");
        serde_json::from_str::<serde_json::Value>(&body).expect("JSON")
    };
    let before = health().await;
    assert_eq!(before["status"], "ok");
    assert_eq!(before["connections"], 0);
    let _ann = server.client().await;
    let _bob = server.client().await;
    assert_eq!(health().await["connections"], 2);
}

#[tokio::test]
async fn a_room_link_with_capitals_leads_to_the_room_and_a_bad_name_is_explained() {
    let server = TestServer::start().await;
    let (status, head, _) = server.get("/r/General").await;
    assert_eq!(status, 308);
    assert!(head.contains("location: /r/general"), "{head}");
    let (status, _, body) = server.get("/r/no%20such!").await;
    assert_eq!(status, 404);
    assert!(
        body.contains("There is no room called “no such!”: a room name is 1 to 64 characters"),
        "{body}"
    );
}

#[tokio::test]
async fn handshakes_without_a_session_or_from_another_origin_are_refused() {
    use tokio_tungstenite::{connect_async, tungstenite::Error};
    let server = TestServer::start().await;
    let cookie = server.session("Ann").await;
    let own = format!("http://{}", server.addr);
    let forged = cookie.replace("herald_session=", "herald_session=00");
    let cases = [
        (None, Some(own.as_str()), 401),
        (Some(forged.as_str()), Some(own.as_str()), 401),
        (Some(cookie.as_str()), Some("https://evil.example"), 403),
        (Some(cookie.as_str()), None, 403),
    ];
    for (cookie, origin, status) in cases {
        match connect_async(common::handshake(server.addr, cookie, origin)).await {
            Err(Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), status, "{cookie:?} {origin:?}")
            }
            other => panic!(
                "expected a refusal for {cookie:?} {origin:?}, got {:?}",
                other.map(|_| ())
            ),
        }
    }
}

#[tokio::test]
async fn an_allowed_origin_may_connect() {
    use tokio_tungstenite::connect_async;
    let data = common::TempDir::new();
    let server =
        TestServer::start_in(data.path(), &["--allowed-origin", "https://app.example"]).await;
    let cookie = server.session("Ann").await;
    let request = common::handshake(server.addr, Some(&cookie), Some("https://app.example"));
    assert!(connect_async(request).await.is_ok());
}

#[tokio::test]
async fn the_author_is_always_the_senders_session() {
    let server = TestServer::start().await;
    let mut ann = server.client_named("Ann").await;
    let mut bob = server.client_named("Bob").await;
    assert_ne!(ann.id, bob.id);

    // Trying to name another author is not part of the protocol: refused, nothing broadcast.
    ann.send_raw(Message::text(format!(
        r#"{{"type":"send","room":"general","client_id":"x","body":"hi","author":{{"id":"{}","name":"Bob"}}}}"#,
        bob.id
    )))
    .await;
    assert!(matches!(
        ann.recv().await,
        ServerMsg::Error {
            code: ErrorCode::InvalidFrame,
            ..
        }
    ));

    ann.say("a1", "from ann").await;
    let seen = bob.next_message().await;
    assert_eq!(
        (seen.author.id.as_str(), seen.author.name.as_str()),
        (ann.id.as_str(), "Ann")
    );
    assert_eq!(seen.seq, 1, "the refused frame broadcast nothing");
}

#[tokio::test]
async fn each_room_has_its_own_page_and_the_go_to_form_finds_it() {
    let server = TestServer::start().await;
    let cookie = server.session("Ann").await;
    // A room nobody made: its page offers to make it.
    let (status, _, body) = server.get_as("/r/ops-alerts", &cookie).await;
    assert_eq!(status, 200);
    assert!(body.contains("Create #ops-alerts"), "{body}");
    let made = common::form(&[("kind", "open"), ("name", "ops-alerts")]);
    let (status, to, _) = server.post_as("/rooms", Some(&cookie), &made).await;
    assert_eq!((status, to.as_str()), (303, "/r/ops-alerts"));
    let (status, _, body) = server.get_as("/r/ops-alerts", &cookie).await;
    assert_eq!(status, 200);
    // Leptos separates adjacent text nodes with `<!>` markers for hydration.
    assert!(
        body.replace("<!>", "").contains("># ops-alerts<"),
        "the room's name is shown"
    );

    let (status, head, _) = server.get_as("/r?room=%20Ops-Alerts%20", &cookie).await;
    assert_eq!(status, 303);
    assert!(
        head.to_ascii_lowercase()
            .contains("location: /r/ops-alerts"),
        "{head}"
    );

    // Spaces become `-` (the one rule for room names); a slash cannot, and the rule is said.
    let (status, _, body) = server.get_as("/r?room=no%2Fslash", &cookie).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("a-z, 0-9") && body.contains("spaces become -"),
        "{body}"
    );

    let (status, _, _) = server.get_as("/r/Not_Valid!", &cookie).await;
    assert_eq!(status, 404);
}
