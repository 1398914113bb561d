//! What is kept per client address, and how the address is known: the connection's own, or the one
//! a trusted proxy forwarded (`--trusted-proxy`), never one a client claims; the cap on connections
//! per address; the send budget everyone at one address shares; idle keep-alive connections.

use crate::common;

use std::time::Duration;

use common::{Client, SseReader, TOKEN, TempDir, TestServer, closed_within};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Retries `attempt` for up to two seconds until it says yes: the server notices a closed
/// connection a moment after the client closes it.
async fn soon(mut attempt: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..40 {
        if attempt().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// `POST /publish`-free way to spend the wrong-token budget: a read with a wrong token, as sent by
/// a proxy that forwarded `forwarded_for` (if any); the status.
async fn wrong_token_from(server: &TestServer, forwarded_for: Option<&str>) -> u16 {
    let forwarded = forwarded_for
        .map(|f| format!("X-Forwarded-For: {f}\r\n"))
        .unwrap_or_default();
    let (status, _, _) = server
        .request(&format!(
            "GET /api/rooms/general/messages HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer \
             not-{TOKEN}\r\n{forwarded}Connection: close\r\n\r\n",
            server.addr
        ))
        .await;
    status
}

/// The `Set-Cookie` of choosing a name with the given extra header lines.
async fn cookie_set_with(server: &TestServer, headers: &str) -> String {
    let (status, head, _) = server.post_form_with("/session", headers, "name=Ann").await;
    assert_eq!(status, 303, "{head}");
    head.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a cookie")
        .to_owned()
}

#[tokio::test]
async fn forwarded_headers_are_believed_only_from_a_trusted_proxy() {
    // Without --trusted-proxy, a client naming itself another address in X-Forwarded-For is still
    // itself: it cannot escape its wrong-token budget, nor claim HTTPS.
    let (server, _data) = TestServer::start_api(&["--api-failures-per-min", "2"]).await;
    for claimed in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(wrong_token_from(&server, Some(claimed)).await, 401);
    }
    assert_eq!(
        wrong_token_from(&server, Some("198.51.100.3")).await,
        429,
        "X-Forwarded-For from a peer that is not a trusted proxy is ignored"
    );
    let cookie = cookie_set_with(&server, "X-Forwarded-Proto: https\r\n").await;
    assert!(!cookie.contains("Secure"), "{cookie}");

    // Behind a trusted proxy, each client it forwards has its own address.
    let (server, _data) = TestServer::start_api(&[
        "--api-failures-per-min",
        "2",
        "--trusted-proxy",
        "127.0.0.0/8",
    ])
    .await;
    for _ in 0..2 {
        assert_eq!(wrong_token_from(&server, Some("198.51.100.1")).await, 401);
    }
    assert_eq!(wrong_token_from(&server, Some("198.51.100.1")).await, 429);
    assert_eq!(
        wrong_token_from(&server, Some("198.51.100.2")).await,
        401,
        "another client behind the proxy has a budget of its own"
    );
    // The client's own header comes first; the proxy appends the address it saw.
    assert_eq!(
        wrong_token_from(&server, Some("198.51.100.2, 198.51.100.1")).await,
        429,
        "what the client wrote itself is not believed: the proxy's entry is"
    );
    assert_eq!(
        wrong_token_from(&server, Some("unknown")).await,
        401,
        "an entry that is no address: the proxy's own, whose budget is whole"
    );
    // Over HTTPS at the proxy, the session cookie is never sent over plain HTTP.
    let cookie = cookie_set_with(&server, "X-Forwarded-Proto: https\r\n").await;
    assert!(cookie.contains("; Secure"), "{cookie}");
    let cookie = cookie_set_with(&server, "X-Forwarded-Proto: http\r\n").await;
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn a_trusted_proxy_that_is_not_a_network_is_refused_at_start() {
    for (bad, says) in [
        ("proxy.internal", "not an IP address"),
        ("10.0.0.1/8", "write the network's first address"),
        ("10.0.0.0/40", "prefix length"),
    ] {
        let err = server::Config::from_flags(["--trusted-proxy", bad])
            .expect_err(bad)
            .to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[tokio::test]
async fn everyone_at_one_address_shares_a_send_budget_and_new_names_buy_none() {
    let data = TempDir::new();
    let flags = [
        "--address-rate-burst",
        "6",
        "--address-rate-per-sec",
        "0.01",
        "--trusted-proxy",
        "127.0.0.1",
    ];
    let server = TestServer::start_in(data.path(), &flags).await;
    // Three people at one address (each a new session, each joined: three frames of the six).
    let mut people = Vec::new();
    for name in ["Ann", "Bob", "Cid"] {
        let cookie = server.session(name).await;
        people.push(Client::connect(server.addr, &cookie).await);
    }
    for (n, person) in people.iter_mut().enumerate() {
        for i in 0..3 {
            person.say(&format!("p{n}-{i}"), "flood").await;
        }
    }
    let (mut acked, mut limited) = (0, Vec::new());
    for person in &mut people {
        let (ok, refused) = person.answers(3).await;
        acked += ok;
        limited.extend(refused);
    }
    assert_eq!(
        (acked, limited.len()),
        (3, 6),
        "one budget for the address, not one per name"
    );
    assert!(
        limited[0].starts_with("Slow down: what you send goes again in ")
            && limited[0].contains("everyone at your network address shares one budget"),
        "{}",
        limited[0]
    );
    // Someone at another address behind the proxy has a budget of their own.
    let cookie = server.session("Dee").await;
    let mut dee = Client::connect_forwarded(server.addr, &cookie, "198.51.100.7")
        .await
        .expect("connected");
    dee.join("general", None).await;
    dee.post("d", "from elsewhere").await;
}

#[tokio::test]
async fn connections_per_address_are_capped_and_a_proxy_s_are_counted_per_client() {
    // Directly: every TCP connection of the address counts, its WebSocket's too.
    let data = TempDir::new();
    let server = TestServer::start_in(data.path(), &["--max-connections-per-address", "3"]).await;
    let cookie = server.session("Ann").await;
    let socket = Client::connect(server.addr, &cookie).await;
    let mut quiet = Vec::new();
    for _ in 0..2 {
        quiet.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    let mut over = TcpStream::connect(server.addr).await.expect("connect");
    let mut answer = Vec::new();
    tokio::time::timeout(common::PATIENCE, over.read_to_end(&mut answer))
        .await
        .expect("closed at once")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 429 ") && answer.contains("too many connections"),
        "{answer}"
    );
    // One closes, one may come.
    drop(socket);
    assert!(
        soon(async || server.get("/healthz").await.0 == 200).await,
        "a place freed by a closed WebSocket"
    );
    drop(quiet);

    // Behind a trusted proxy the TCP connections are the proxy's (never capped); each client's
    // WebSockets and event streams count against its own address.
    let data = TempDir::new();
    let flags = [
        "--max-connections-per-address",
        "2",
        "--trusted-proxy",
        "127.0.0.1",
    ];
    let server = TestServer::start_in(data.path(), &flags).await;
    let cookie = server.session("Ann").await;
    let mut first = Vec::new();
    for _ in 0..2 {
        first.push(
            Client::connect_forwarded(server.addr, &cookie, "198.51.100.1")
                .await
                .expect("within the cap"),
        );
    }
    // The room exists once it holds a message (its event stream answers 404 before).
    first[0].join("general", None).await;
    first[0].post("hello", "hello").await;
    assert_eq!(
        Client::connect_forwarded(server.addr, &cookie, "198.51.100.1")
            .await
            .err(),
        Some(429),
        "a third for one client"
    );
    let _second = Client::connect_forwarded(server.addr, &cookie, "198.51.100.2")
        .await
        .expect("another client has its own");
    let addr = server.addr;
    let events = |forwarded: &'static str| {
        let headers = format!("Cookie: {cookie}\r\nX-Forwarded-For: {forwarded}\r\n");
        async move { SseReader::open(addr, "/api/rooms/general/events", &headers, false).await }
    };
    let stream = events("198.51.100.2").await;
    assert_eq!(stream.status, 200, "{}", stream.head);
    let mut refused = events("198.51.100.2").await;
    assert_eq!(refused.status, 429, "{}", refused.head);
    assert!(refused.body().await.contains("too_many_connections"));
    // Four WebSockets and streams through the proxy's address, over the cap of two: its own
    // connections are not counted.
    assert_eq!(server.get("/healthz").await.0, 200);
    // A closed one frees its place.
    first.pop();
    assert!(
        soon(
            async || Client::connect_forwarded(server.addr, &cookie, "198.51.100.1")
                .await
                .is_ok()
        )
        .await
    );
}

#[tokio::test]
async fn a_keep_alive_connection_idle_past_the_limit_is_closed_but_a_quiet_event_stream_is_not() {
    let data = TempDir::new();
    let server = TestServer::start_in(data.path(), &["--idle-timeout-secs", "1"]).await;
    let mut kept = TcpStream::connect(server.addr).await.expect("connect");
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    let mut answers = 0;
    for _ in 0..2 {
        kept.write_all(request.as_bytes()).await.expect("write");
        // The whole answer: what comes until a short quiet.
        let mut answer = Vec::new();
        let mut chunk = [0u8; 1024];
        while let Ok(Ok(n @ 1..)) =
            tokio::time::timeout(Duration::from_millis(100), kept.read(&mut chunk)).await
        {
            answer.extend_from_slice(&chunk[..n]);
        }
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        answers += 1;
        // Within the limit, the connection stays for the next request.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(answers, 2);
    assert!(
        closed_within(&mut kept, Duration::from_secs(4)).await,
        "an idle keep-alive connection is closed"
    );

    // An event stream with nothing to say for longer than the limit is still open, and delivers.
    let cookie = server.session("Ann").await;
    let mut ann = Client::connect(server.addr, &cookie).await;
    ann.post("first", "hello").await;
    let mut stream = SseReader::open(
        server.addr,
        "/api/rooms/general/events",
        &format!("Cookie: {cookie}\r\n"),
        false,
    )
    .await;
    assert_eq!(stream.status, 200);
    let joined = stream.next_event().await.expect("joined");
    assert_eq!(joined.event, "joined");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ann.post("late", "still there?").await;
    // Past the replay of what the room held ("hello"), the new message arrives.
    loop {
        let event = stream.next_event().await.expect("the stream is open");
        if event.event == "message" && event.json()["body"] == "still there?" {
            break;
        }
    }
}
