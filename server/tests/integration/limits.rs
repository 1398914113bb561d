//! What a connection may not do: send faster than its budget, send bodies over the configured limit,
//! or hold the server up by not reading. Each is refused or contained without harm to anyone else.

use crate::common;

use app::protocol::{ClientMsg, ErrorCode, JoinMode, Limits, ServerMsg};
use common::{Client, TempDir, TestServer};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn the_welcome_says_what_the_server_was_started_to_accept_and_so_does_the_page() {
    let data = TempDir::new();
    let flags = [
        "--max-body-bytes",
        "10000",
        "--rate-per-sec",
        "2.5",
        "--rate-burst",
        "7",
    ];
    let server = TestServer::start_in(data.path(), &flags).await;
    let client = server.client().await;
    let expected = Limits {
        max_body_bytes: 10_000,
        rate_per_sec: 2.5,
        rate_burst: 7,
        max_in_flight: app::protocol::MAX_IN_FLIGHT,
    };
    assert_eq!(client.limits, expected);
    let cookie = server.session("Ann").await;
    let (_, _, page) = server.get_as("/", &cookie).await;
    let meta = format!(
        "<meta name=\"herald-limits\" content=\"{}\"",
        serde_json::to_string(&expected)
            .expect("json")
            .replace('"', "&quot;")
    );
    assert!(page.contains(&meta), "{page}");
    // The protocol's defaults are the flags' defaults.
    let defaults = server::config::Config::from_flags(Vec::<String>::new()).expect("defaults");
    let announced = Limits::default();
    assert_eq!(defaults.max_body_bytes, announced.max_body_bytes as usize);
    assert_eq!(defaults.rate_per_sec, announced.rate_per_sec);
    assert_eq!(defaults.rate_burst, announced.rate_burst);
}

#[test]
fn a_rate_must_be_a_number_above_zero() {
    for bad in ["nan", "inf", "0", "-1", "fast"] {
        assert!(
            server::config::Config::from_flags(["--rate-per-sec", bad]).is_err(),
            "{bad}"
        );
        assert!(
            server::config::Config::from_flags(["--api-rate-per-sec", bad]).is_err(),
            "{bad}"
        );
    }
    assert!(server::config::Config::from_flags(["--rate-burst", "0"]).is_err());
    let ok = server::config::Config::from_flags(["--rate-per-sec", "0.5"]).expect("a rate");
    assert_eq!(ok.rate_per_sec, 0.5);
}

#[tokio::test]
async fn sending_over_the_rate_budget_is_refused_with_a_retry_after_and_stores_nothing() {
    let data = TempDir::new();
    let server =
        TestServer::start_in(data.path(), &["--rate-burst", "3", "--rate-per-sec", "1"]).await;
    let mut client = server.client().await; // The join took one token: two sends are left.
    for i in 0..4 {
        client.say(&format!("c{i}"), &format!("m{i}")).await;
    }
    let (mut acked, mut limited) = (Vec::new(), Vec::new());
    while acked.len() + limited.len() < 4 {
        match client.recv().await {
            ServerMsg::Ack { client_id, .. } => acked.push(client_id),
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                retry_after_ms,
                ..
            } => limited.push(retry_after_ms.expect("a retry-after")),
            ServerMsg::Message(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(acked, vec!["c0", "c1"]);
    assert_eq!(limited.len(), 2);
    assert!(
        limited.iter().all(|&ms| ms > 0 && ms <= 1000),
        "{limited:?}"
    );

    // Only the accepted two were stored: a newcomer's history holds exactly them.
    let mut newcomer = server.client_named("New").await;
    let first = newcomer.next_message().await;
    let second = newcomer.next_message().await;
    assert_eq!((first.body.as_str(), second.body.as_str()), ("m0", "m1"));
    newcomer.say("n", "newcomer").await;
    assert_eq!(
        newcomer.next_message().await.seq,
        3,
        "nothing else was stored"
    );
}

#[tokio::test]
async fn the_body_limit_follows_its_flag() {
    let data = TempDir::new();
    let server = TestServer::start_in(data.path(), &["--max-body-bytes", "10"]).await;
    let mut client = server.client().await;
    client.say("ok", "0123456789").await;
    assert_eq!(client.next_message().await.body, "0123456789");
    client.say("long", "0123456789!").await;
    loop {
        match client.recv().await {
            ServerMsg::Error { code, message, .. } => {
                assert_eq!(code, ErrorCode::BodyTooLong);
                assert!(message.contains("the limit is 10"), "{message}");
                break;
            }
            ServerMsg::Ack { .. } => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_reader_that_stops_reading_lags_alone_and_catches_up_from_the_log() {
    const POSTERS: u64 = 5;
    const EACH: u64 = 100;
    const TOTAL: u64 = POSTERS * EACH;
    let data = TempDir::new();
    let flags = [
        "--max-body-bytes",
        "50000",
        "--rate-burst",
        "100000",
        "--rate-per-sec",
        "100000",
    ];
    let server = TestServer::start_in(data.path(), &flags).await;

    let cookie = server.session("Stalled").await;
    let mut stalled = Client::connect_small_buffer(server.addr, &cookie).await;
    let epoch = stalled.join("general", None).await.epoch;

    // A reader that keeps up, in its own task.
    let mut reader = server.client_named("Reader").await;
    let reading = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while seqs.len() < TOTAL as usize {
            seqs.push(reader.next_message().await.seq);
        }
        seqs
    });

    // 500 messages of 48 KiB (24 MiB): far more than the stalled reader's queue and socket hold.
    let body = "x".repeat(48 * 1024);
    let mut posters = Vec::new();
    for p in 0..POSTERS {
        let mut poster = server.client_named(&format!("P{p}")).await;
        let body = body.clone();
        posters.push(tokio::spawn(async move {
            for i in 0..EACH {
                poster.post(&format!("{p}-{i}"), &body).await;
            }
        }));
    }
    for poster in posters {
        poster.await.expect("poster");
    }
    assert_eq!(
        reading.await.expect("reader"),
        (1..=TOTAL).collect::<Vec<_>>(),
        "the reader that keeps up got everything, in order, while the other stalled"
    );

    // The stalled reader now reads: an unbroken run of messages, then the lag marker where it ends.
    let mut seqs = Vec::new();
    let resume_from = loop {
        match stalled.recv().await {
            ServerMsg::Message(msg) => seqs.push(msg.seq),
            ServerMsg::Lagged { room, resume_from } => {
                assert_eq!(room, "general");
                break resume_from;
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(resume_from < TOTAL, "it did lag");
    assert_eq!(seqs, (1..resume_from).collect::<Vec<_>>());

    // It rejoins from its cursor and gets exactly the rest from the log.
    let joined = stalled.resume("general", &epoch, resume_from - 1).await;
    assert_eq!(
        (joined.mode, joined.first_seq, joined.last_seq),
        (JoinMode::Full, resume_from, TOTAL)
    );
    for expected in resume_from..=TOTAL {
        assert_eq!(stalled.next_message().await.seq, expected);
    }
    // And it is live again.
    stalled
        .send(&ClientMsg::Send {
            room: "general".into(),
            client_id: "back".into(),
            body: "back".into(),
            reply_to: None,
        })
        .await;
    assert_eq!(stalled.next_message().await.seq, TOTAL + 1);
}

/// A client may send a burst before it reads anything (sends are pipelined; some WebSocket
/// libraries cannot read while one of their own writes waits): every message is read, stored and
/// acknowledged in order, while the answers wait for the client.
#[tokio::test]
async fn a_client_that_sends_a_burst_before_reading_anything_is_read_and_acked_in_order() {
    const SENDS: usize = 100;
    let server = TestServer::start().await;
    let cookie = server.session("Burst").await;
    // A tiny receive buffer: the server's answers back up at once instead of into loopback buffers.
    let mut client = Client::connect_small_buffer(server.addr, &cookie).await;
    client.join(common::ROOM, None).await;
    let body = "b".repeat(3500);
    let burst = async {
        for i in 0..SENDS {
            client.say(&format!("b{i}"), &body).await;
        }
    };
    assert!(
        tokio::time::timeout(std::time::Duration::from_secs(10), burst)
            .await
            .is_ok(),
        "the server stopped reading while its answers waited for the client"
    );
    let mut acked = 0;
    while acked < SENDS {
        match client.recv().await {
            ServerMsg::Ack { client_id, .. } => {
                assert_eq!(client_id, format!("b{acked}"), "acks in the order sent");
                acked += 1;
            }
            ServerMsg::Message(_) | ServerMsg::Lagged { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_client_reading_as_it_goes_gets_every_ack_and_every_echo_of_a_burst_into_its_own_rooms() {
    // A bot in 13 rooms sending 100 to each at once, reading all the while: what the server sends
    // back for its sends (an ack each, and the message itself in a room it is in) is the server's
    // own doing, and must never make it "too slow".
    const ROOMS: usize = 13;
    const EACH: usize = 100;
    let data = TempDir::new();
    let unlimited = ["--rate-per-sec", "1000000", "--rate-burst", "1000000"];
    let server = TestServer::start_in(data.path(), &unlimited).await;
    let cookie = server.session("Bot").await;
    let mut client = Client::connect_only(server.addr, &cookie).await;
    let rooms: Vec<String> = (0..ROOMS).map(|i| format!("burst-{i}")).collect();
    for room in &rooms {
        client.join(room, None).await;
    }
    let (mut sink, mut stream) = client.into_socket().split();
    let reader = tokio::spawn(async move {
        let (mut acks, mut echoes) = (0, 0);
        while acks < ROOMS * EACH || echoes < ROOMS * EACH {
            let frame = tokio::time::timeout(common::PATIENCE, stream.next()).await;
            let Ok(Some(Ok(Message::Text(text)))) = frame else {
                panic!("after {acks} acks and {echoes} messages: {frame:?}");
            };
            match ServerMsg::decode(&text).expect("protocol") {
                ServerMsg::Ack { .. } => acks += 1,
                ServerMsg::Message(_) => echoes += 1,
                // The bot's own read position moves as it sends (told as `read`, a few times a
                // second): whether one comes during the burst depends on how fast it runs.
                ServerMsg::Presence { .. } | ServerMsg::Rooms { .. } | ServerMsg::Read { .. } => {}
                other => panic!("after {acks} acks and {echoes} messages: {other:?}"),
            }
        }
        (acks, echoes)
    });
    for i in 0..ROOMS * EACH {
        let send = ClientMsg::Send {
            room: rooms[i % ROOMS].clone(),
            client_id: format!("m{i}"),
            body: format!("message {i}"),
            reply_to: None,
        };
        sink.feed(Message::text(send.encode())).await.expect("send");
    }
    sink.flush().await.expect("flush");
    let (acks, echoes) = reader.await.expect("the reader saw everything");
    assert_eq!((acks, echoes), (ROOMS * EACH, ROOMS * EACH));
}

#[tokio::test]
async fn one_person_s_budget_is_shared_by_all_their_sockets_and_their_sockets_are_capped() {
    let data = TempDir::new();
    let flags = [
        "--rate-burst",
        "10",
        "--rate-per-sec",
        "0.01",
        "--max-sockets-per-person",
        "4",
    ];
    let server = TestServer::start_in(data.path(), &flags).await;
    let cookie = server.session("Flooder").await;
    // Four sockets of one person, each joined (four frames of the ten).
    let mut sockets = Vec::new();
    for _ in 0..4 {
        sockets.push(Client::connect(server.addr, &cookie).await);
    }
    // A fifth is refused before the upgrade, saying when to try again.
    let request = common::handshake(
        server.addr,
        Some(&cookie),
        Some(&format!("http://{}", server.addr)),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert!(response.headers().contains_key("retry-after"));
        }
        other => panic!("a fifth socket was not refused: {:?}", other.map(|_| ())),
    }
    // Five sends on each: six are left between them, not ten each.
    for (n, socket) in sockets.iter_mut().enumerate() {
        for i in 0..5 {
            socket.say(&format!("s{n}-{i}"), "flood").await;
        }
    }
    let (mut acked, mut limited) = (0, 0);
    for socket in &mut sockets {
        let (ok, refused) = socket.answers(5).await;
        (acked, limited) = (acked + ok, limited + refused.len());
    }
    assert_eq!(
        (acked, limited),
        (6, 14),
        "one budget for the person's four sockets"
    );
    // Closing them all and opening one again gives nothing back early.
    drop(sockets);
    let mut again = Client::connect_only(server.addr, &cookie).await;
    again.say("again", "flood").await;
    match again.recv().await {
        ServerMsg::Error {
            code: ErrorCode::RateLimited,
            ..
        } => {}
        other => panic!("expected rate_limited, got {other:?}"),
    }
    // Someone else has a budget of their own.
    let mut other = server.client_named("Other").await;
    other.post("o", "still here").await;
}

/// The next answer on `client` to a join of `room` that is refused: its code and words.
async fn join_refused(client: &mut Client, room: &str) -> (ErrorCode, String, Option<u64>) {
    client
        .send(&ClientMsg::Join {
            room: room.into(),
            since: None,
            create: true,
        })
        .await;
    loop {
        match client.recv().await {
            ServerMsg::Error {
                code,
                message,
                retry_after_ms,
                ..
            } => return (code, message, retry_after_ms),
            ServerMsg::Joined { room: joined, .. } if joined == room => {
                panic!("{room} was joined, not refused")
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn making_rooms_has_a_budget_per_person_and_per_address_and_the_server_a_cap() {
    let data = TempDir::new();
    let flags = [
        "--rooms-per-hour",
        "3",
        "--max-rooms",
        "7",
        "--trusted-proxy",
        "127.0.0.1",
    ];
    let server = TestServer::start_in(data.path(), &flags).await;
    // Ann makes three rooms by joining them; a fourth waits, saying for how long.
    let mut ann = Client::connect_only(server.addr, &server.session("Ann").await).await;
    for room in ["r1", "r2", "r3"] {
        ann.join(room, None).await;
    }
    let (code, message, retry) = join_refused(&mut ann, "r4").await;
    assert_eq!(code, ErrorCode::RateLimited);
    assert!(
        message.starts_with("Slow down: you made many new rooms; another can be made in 20 min"),
        "{message}"
    );
    // Three an hour: the next in twenty minutes.
    assert!(
        retry.is_some_and(|ms| (1_190_000..=1_200_000).contains(&ms)),
        "{retry:?}"
    );
    // Bob, a new name at Ann's address: rooms that exist are his to join, but the address has made
    // its rooms for now.
    let mut bob = Client::connect_only(server.addr, &server.session("Bob").await).await;
    bob.join("r2", None).await;
    let (code, message, _) = join_refused(&mut bob, "r5").await;
    assert_eq!(code, ErrorCode::RateLimited);
    assert!(
        message.contains("everyone at your address made many new rooms"),
        "{message}"
    );
    // Elsewhere, Cid makes three more: the server holds seven (`general` and six), its most.
    let cookie = server.session("Cid").await;
    let mut cid = Client::connect_forwarded(server.addr, &cookie, "198.51.100.7")
        .await
        .expect("connected");
    for room in ["r5", "r6", "r7"] {
        cid.join(room, None).await;
    }
    let cookie = server.session("Dee").await;
    let mut dee = Client::connect_forwarded(server.addr, &cookie, "198.51.100.8")
        .await
        .expect("connected");
    let (code, message, _) = join_refused(&mut dee, "r8").await;
    assert_eq!(code, ErrorCode::InvalidRoom);
    assert!(
        message.contains("this server holds as many rooms as it may (7)"),
        "{message}"
    );
    // What exists still works for her: she joins and speaks in one of them.
    dee.join("r6", None).await;
    assert!(dee.try_say_in("r6", "d1", "made it").await);
}

#[tokio::test]
async fn a_room_that_never_held_a_message_is_forgotten_once_its_last_reader_leaves() {
    let data = TempDir::new();
    // `general`, and two more.
    let flags = ["--max-rooms", "3"];
    let mut server = TestServer::start_in(data.path(), &flags).await;
    let cookie = server.session("Ann").await;
    let mut ann = Client::connect_only(server.addr, &cookie).await;
    ann.join("kept", None).await;
    assert!(ann.try_say_in("kept", "k1", "this room is used").await);
    ann.join("typo", None).await;
    let mut bob = Client::connect_only(server.addr, &server.session("Bob").await).await;
    assert_eq!(
        join_refused(&mut bob, "third").await.0,
        ErrorCode::InvalidRoom
    );
    assert_eq!(
        server.rooms_listed(&cookie).await,
        ["general", "kept", "typo"]
    );

    // Ann leaves the room she made by mistake: a few seconds later it is gone, and its place too.
    ann.send(&ClientMsg::Leave {
        room: "typo".into(),
    })
    .await;
    let gone = async {
        while server
            .rooms_listed(&cookie)
            .await
            .contains(&"typo".to_string())
        {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), gone)
        .await
        .expect("the unused room is forgotten");
    bob.join("third", None).await;

    // From the disk too: a restart does not bring it back.
    drop((ann, bob));
    server.begin_shutdown();
    server.stopped().await;
    let server = TestServer::start_in(data.path(), &flags).await;
    let cookie = server.session("Cid").await;
    let listed = server.rooms_listed(&cookie).await;
    assert!(listed.contains(&"kept".to_string()), "{listed:?}");
    assert!(!listed.contains(&"typo".to_string()), "{listed:?}");
}
