//! The web side's hostile-input reproductions, on the real server: a `next` that leaves the site, a
//! DNS-rebinding `Host`, missing protective headers — and the other parsers of outside input (the
//! session cookie, `Last-Event-ID`, query parameters, asset paths), each refused with a clear status
//! and never a panic.

use crate::common;

use common::{TestServer, closed_within, header};

#[tokio::test]
async fn after_choosing_a_name_the_browser_is_only_sent_to_a_path_on_this_site() {
    let server = TestServer::start().await;
    for (next, expected) in [
        ("/r/ops", "/r/ops"),
        ("/%09/evil.example", "/"), // `/<TAB>/evil.example`: browsers drop the tab.
        ("/%0A/evil.example", "/"),
        ("/%0D%0A/evil.example", "/"),
        ("%09//evil.example", "/"),
        ("//evil.example", "/"),
        ("/%5Cevil.example", "/"), // `/\evil.example`
        ("/%20/evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/%00/evil.example", "/"),
    ] {
        let (status, head, _) = server
            .post_form("/session", &format!("name=Ann&next={next}"))
            .await;
        assert_eq!(status, 303, "{next}: {head}");
        assert_eq!(header(&head, "location"), Some(expected), "{next}");
    }
    // A refused name goes back to the same page, with the reason, still on this site.
    let (_, head, _) = server
        .post_form("/session", "name=&next=/%09/evil.example")
        .await;
    assert_eq!(
        header(&head, "location"),
        Some("/sign-in?error=name&next=/")
    );
}

#[tokio::test]
async fn a_host_herald_does_not_answer_to_is_refused_everywhere_but_healthz() {
    let server = TestServer::start().await;
    let cookie = server.session("Ann").await;
    let evil = "rebind.evil.example";
    let requests = [
        format!("GET / HTTP/1.1\r\nHost: {evil}\r\nConnection: close\r\n\r\n"),
        format!(
            "GET /api/rooms HTTP/1.1\r\nHost: {evil}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        ),
        format!(
            "POST /session HTTP/1.1\r\nHost: {evil}\r\nOrigin: http://{evil}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 8\r\n\
             Connection: close\r\n\r\nname=Eve"
        ),
        format!(
            "GET /ws HTTP/1.1\r\nHost: {evil}:3000\r\nOrigin: http://{evil}:3000\r\nCookie: {cookie}\r\n\
             Connection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ),
        format!("GET /pkg/herald.css HTTP/1.1\r\nHost: {evil}\r\nConnection: close\r\n\r\n"),
    ];
    for request in &requests {
        let (status, head, body) = server.request(request).await;
        assert_eq!(status, 421, "{request}");
        assert!(header(&head, "set-cookie").is_none(), "no session for it");
        assert!(
            body.contains("--allowed-host"),
            "it says how to allow a host: {body}"
        );
        assert_eq!(header(&head, "x-frame-options"), Some("DENY"));
    }
    // A request without a Host at all.
    let (status, ..) = server
        .request("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(status, 400);
    // Health checks by any name still answer.
    let (status, ..) = server
        .request("GET /healthz HTTP/1.1\r\nHost: herald-service\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(status, 200);
    // Loopback names and addresses are this server's own (the page asks to sign in first).
    for host in ["localhost", "LocalHost.:3000", "127.0.0.1", "[::1]:3000"] {
        let (status, ..) = server
            .request(&format!(
                "GET /sign-in HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            ))
            .await;
        assert_eq!(status, 200, "{host}");
    }
}

#[tokio::test]
async fn a_host_named_with_allowed_host_or_allowed_origin_is_served() {
    let data = common::TempDir::new();
    let server = TestServer::start_in(
        data.path(),
        &[
            "--allowed-host",
            "chat.example.com",
            "--allowed-origin",
            "https://app.example.com",
        ],
    )
    .await;
    for (host, status) in [
        ("chat.example.com", 200),
        ("chat.example.com:443", 200),
        ("app.example.com", 200),
        ("evil.example.com", 421),
    ] {
        let (got, ..) = server
            .request(&format!(
                "GET /sign-in HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            ))
            .await;
        assert_eq!(got, status, "{host}");
    }
}

#[tokio::test]
async fn every_response_carries_the_protective_headers_and_the_page_a_nonce_for_its_script() {
    let server = TestServer::start().await;
    let cookie = server.session("Ann").await;
    let (status, head, body) = server.get_as("/", &cookie).await;
    assert_eq!(status, 200);
    let csp = header(&head, "content-security-policy").expect("a policy");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce");
    assert_eq!(nonce.len(), 32);
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    // Every inline script has the nonce; no script is without it.
    let scripts = body.matches("<script").count();
    assert!(scripts > 0);
    assert_eq!(
        body.matches(&format!("<script type=\"module\" nonce=\"{nonce}\""))
            .count()
            + body.matches(&format!("<script nonce=\"{nonce}\"")).count(),
        scripts,
        "{body}"
    );
    // A new nonce on every page.
    let (_, again, _) = server.get_as("/", &cookie).await;
    assert_ne!(header(&again, "content-security-policy"), Some(csp));
    for path in [
        "/",
        "/sign-in",
        "/account",
        "/healthz",
        "/api/rooms",
        "/pkg/herald.css",
        "/no-such-file.js",
    ] {
        let (_, head, _) = server.get(path).await;
        assert_eq!(
            header(&head, "x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(header(&head, "x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            header(&head, "referrer-policy"),
            Some("same-origin"),
            "{path}"
        );
        assert!(
            header(&head, "content-security-policy")
                .is_some_and(|p| p.contains("frame-ancestors 'none'")),
            "{path}"
        );
    }
}

#[tokio::test]
async fn forged_and_broken_session_cookies_are_strangers_never_errors() {
    let server = TestServer::start().await;
    let good = server.session("Ann").await;
    let token = good.split_once('=').expect("name=value").1;
    let (status, ..) = server.get_as("/api/rooms", &good).await;
    assert_eq!(status, 200, "the real one is let in");
    let long = "a".repeat(7000);
    let mut last_changed = token.to_owned();
    let last = if token.ends_with('0') { "1" } else { "0" };
    last_changed.replace_range(token.len() - 1.., last);
    for cookie in [
        format!("herald_session={last_changed}"),
        format!("herald_session={}", token.to_uppercase()),
        format!("herald_session={}", &token[..token.len() - 2]),
        format!("herald_session={token}00"),
        format!("herald_session={}", "0".repeat(64)),
        format!("herald_session=x{}", &token[1..]),
        "herald_session=".to_string(),
        "herald_session=%00%ff".to_string(),
        format!("herald_session={long}.{long}"),
        format!("herald_session={}", "é".repeat(32)),
    ] {
        // The page sends the visitor to sign in; the API and the socket refuse them with 401.
        let (status, head, _) = server.get_as("/", &cookie).await;
        assert_eq!(status, 303, "{cookie}");
        assert!(
            header(&head, "location").is_some_and(|l| l.starts_with("/sign-in")),
            "{cookie}"
        );
        let (status, ..) = server.get_as("/api/rooms", &cookie).await;
        assert_eq!(status, 401, "{cookie}");
    }
}

#[tokio::test]
async fn query_parameters_and_last_event_id_that_do_not_parse_get_400() {
    let server = TestServer::start().await;
    let cookie = server.session("Ann").await;
    let mut ann = server.client_named("Ann").await;
    ann.post("one", "one").await;
    for path in [
        "/api/rooms/general/messages?limit=-1",
        "/api/rooms/general/messages?limit=99999999999999999999999",
        "/api/rooms/general/messages?before=x",
        "/api/rooms/general/messages?after=1&after=2",
        "/api/rooms/general/messages?nope=1",
        "/api/rooms/general/messages?limit=%FF",
        "/r?room=%00",
        "/r?room=",
        "/r",
    ] {
        let (status, _, body) = server.get_as(path, &cookie).await;
        assert_eq!(status, 400, "{path}: {body}");
    }
    for last_event_id in ["x", "-1", "18446744073709551616", "1 2", "\u{7f}"] {
        let request = format!(
            "GET /api/rooms/general/events HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\n\
             Last-Event-ID: {last_event_id}\r\nConnection: close\r\n\r\n",
            server.addr
        );
        let (status, _, body) = server.request(&request).await;
        assert_eq!(status, 400, "{last_event_id:?}: {body}");
    }
}

#[tokio::test]
async fn asset_paths_cannot_leave_the_site() {
    let server = TestServer::start().await;
    for path in [
        "/../Cargo.toml",
        "/pkg/../../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/pkg/%2e%2e/%2e%2e/Cargo.toml",
        "/pkg/..%2f..%2fCargo.toml",
        "/pkg/%2e%2e%5c%2e%2e%5cCargo.toml",
        "/..%5c..%5cetc/passwd",
        "/pkg/%00herald.css",
        "//etc/passwd",
        "/pkg//../../../../etc/passwd",
    ] {
        let (status, _, body) = server.get(path).await;
        assert!(
            status == 404 || status == 400,
            "{path}: {status} {}",
            &body[..body.len().min(200)]
        );
        assert!(
            !body.contains("[workspace]") && !body.contains("root:x:0"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_name_form_that_does_not_parse_or_breaks_the_rule_gives_no_session() {
    let server = TestServer::start().await;
    let long = "n".repeat(10_000);
    for (body, status) in [
        ("nom=Ann", 422),                       // No name field.
        ("name=Ann&name=Bob", 422),             // Two of them.
        ("name=", 303),                         // Empty: back with the reason.
        ("name=%20%20", 303),                   // Only spaces.
        ("name=a%00b", 303),                    // A control character.
        ("name=a%0D%0ASet-Cookie:%20x=y", 303), // A header in a name.
        (&format!("name={long}") as &str, 303), // Far too long.
    ] {
        let (got, head, _) = server.post_form("/session", body).await;
        let shown = &body[..body.len().min(40)];
        assert_eq!(got, status, "{shown}: {head}");
        assert!(header(&head, "set-cookie").is_none(), "{shown}");
        if got == 303 {
            assert!(
                header(&head, "location").is_some_and(|l| l.starts_with("/sign-in?error=name")),
                "{head}"
            );
        }
    }
    // Escapes that are not UTF-8, or not escapes, are read as browsers read them (U+FFFD; the text
    // as it is): a name of replacement characters, a `next` that is not a path.
    let (got, head, _) = server.post_form("/session", "name=%FF%FE&next=%ZZ").await;
    assert_eq!(got, 303);
    assert_eq!(header(&head, "location"), Some("/"));
    let cookie = header(&head, "set-cookie")
        .expect("a session")
        .split(';')
        .next()
        .expect("value");
    let (_, _, page) = server.get_as("/", cookie).await;
    assert!(
        page.contains("\u{fffd}\u{fffd}"),
        "the name is shown as decoded"
    );
    // Without the form's content type at all.
    let (got, head, _) = server
        .request(&format!(
            "POST /session HTTP/1.1\r\nHost: {}\r\nContent-Length: 8\r\nConnection: close\r\n\r\nname=Ann",
            server.addr
        ))
        .await;
    assert_eq!(got, 415, "{head}");
}

#[tokio::test]
async fn silent_and_dribbling_connections_are_closed_after_the_request_timeout() {
    use tokio::io::AsyncWriteExt;
    let data = common::TempDir::new();
    let server = TestServer::start_in(data.path(), &["--request-timeout-secs", "1"]).await;
    let limit = std::time::Duration::from_secs(4);
    // Sends nothing at all.
    let mut silent = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    // A head, a byte every 200 ms: it would take ~8 s.
    let mut dribbling = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nX-Slow: 1\r\n\r\n",
        server.addr
    );
    let dribble = async {
        for byte in head.as_bytes() {
            if dribbling.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    // A form whose body never comes whole.
    let mut stalled = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    stalled
        .write_all(
            format!(
                "POST /session HTTP/1.1\r\nHost: {}\r\nOrigin: http://{}\r\nContent-Type: \
                 application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nname=An",
                server.addr, server.addr
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    // Meanwhile a bystander is answered at once.
    let (status, _, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
    let (silent_closed, stalled_closed, ()) = tokio::join!(
        closed_within(&mut silent, limit),
        closed_within(&mut stalled, limit),
        async {
            // Racing the close: the dribble stops when the server has closed.
            let _ = tokio::time::timeout(limit, dribble).await;
        },
    );
    assert!(silent_closed, "a connection that sends nothing is closed");
    assert!(
        stalled_closed,
        "a body that never comes whole is given up on"
    );
    assert!(
        closed_within(&mut dribbling, std::time::Duration::from_millis(100)).await,
        "a head sent a byte at a time is closed before it is whole"
    );
}

#[tokio::test]
async fn a_name_that_passes_for_another_is_refused_and_what_people_write_is_kept() {
    let server = TestServer::start().await;
    let encode = |name: &str| -> String { name.bytes().map(|b| format!("%{b:02X}")).collect() };
    for look_alike in [
        "Ann\u{200B}",      // a zero-width space after it
        "A\u{2060}nn",      // a word joiner inside
        "\u{0410}nn",       // a Cyrillic А before Latin letters
        "B\u{03BF}b Smith", // a Greek omicron in a Latin word
        "Ann\u{2800}",      // a blank Braille pattern
    ] {
        let (status, head, _) = server
            .post_form("/session", &format!("name={}", encode(look_alike)))
            .await;
        assert_eq!(status, 303, "{look_alike:?}: {head}");
        assert_eq!(
            header(&head, "location"),
            Some("/sign-in?error=name&next=/"),
            "{look_alike:?}"
        );
        assert!(header(&head, "set-cookie").is_none(), "{look_alike:?}");
    }
    for kept in [
        "Ann Москва",
        "Zoë \u{1F469}\u{200D}\u{1F4BB}",
        "\u{0639}\u{0644}\u{06CC}\u{200C}\u{0631}\u{0636}\u{0627}",
        "山田 さくら",
        "R2-D2",
    ] {
        let (status, head, _) = server
            .post_form("/session", &format!("name={}", encode(kept)))
            .await;
        assert_eq!(status, 303, "{kept:?}: {head}");
        assert_eq!(header(&head, "location"), Some("/"), "{kept:?}");
        assert!(header(&head, "set-cookie").is_some(), "{kept:?}");
    }
}
