//! The chat page from the page cache (server/src/page_cache) is, byte for byte, the page a fresh
//! render gives the same reader with the same nonce, in every encoding, and it follows the room.

use std::io::Read;

use crate::common::{Client, TempDir, TestServer};

/// Readers with names that need escaping in text, in attributes and in JSON.
const READERS: [&str; 3] = ["Ann", "Bob <b>&amp; \"the\" 'builder' \\", "Zoë"];

/// What `Accept-Encoding` asks for, and the `Content-Encoding` that must come back.
const ENCODINGS: [(&str, Option<&str>); 5] = [
    ("", None),
    ("gzip", Some("gzip")),
    ("gzip, deflate, br, zstd", Some("br")),
    ("br;q=0, gzip", Some("gzip")),
    ("identity", None),
];

/// The page at `path` as `cookie` asking for `accept`: its `Content-Encoding`, and its text decoded
/// (flate2's gzip reader, the brotli decompressor crate) with the page's nonce (from its CSP
/// header) replaced by `NONCE`, after checking every script and style carries it.
async fn page(
    server: &TestServer,
    path: &str,
    cookie: &str,
    accept: &str,
) -> (Option<String>, String) {
    // HTTP/1.0: the body runs to the end of the connection, never chunked.
    let accept = match accept {
        "" => String::new(),
        accept => format!("Accept-Encoding: {accept}\r\n"),
    };
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {}\r\nCookie: {cookie}\r\n{accept}\r\n",
        server.addr
    );
    let (status, head, body) = server.request_bytes(&request).await;
    assert_eq!(status, 200, "{head}");
    let head = head.to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .map(str::to_owned)
    };
    let encoding = header("content-encoding");
    let mut text = String::new();
    match encoding.as_deref() {
        None => text = String::from_utf8(body).expect("utf-8"),
        Some("gzip") => {
            flate2::read::GzDecoder::new(&body[..])
                .read_to_string(&mut text)
                .expect("gzip");
        }
        Some("br") => {
            brotli::Decompressor::new(&body[..], 4096)
                .read_to_string(&mut text)
                .expect("brotli");
        }
        Some(other) => panic!("unexpected encoding {other}"),
    }
    let csp = header("content-security-policy").expect("a CSP");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the CSP");
    let attribute = format!("nonce=\"{nonce}\"");
    assert!(
        text.matches(&attribute).count() >= 3,
        "the page's scripts and style carry the CSP's nonce"
    );
    (encoding, text.replace(nonce, "NONCE"))
}

#[tokio::test]
async fn a_kept_page_is_the_page_a_fresh_render_gives_each_reader() {
    let data = TempDir::new();
    let mut server = TestServer::start_in(data.path(), &[]).await;
    let mut cookies = Vec::new();
    for name in READERS {
        cookies.push(server.session(name).await);
    }
    // Each reader has messages of their own, and is called on by name by the others.
    let mut clients = Vec::new();
    for cookie in &cookies {
        clients.push(Client::connect(server.addr, cookie).await);
    }
    let bodies = [
        "@Bob <b>&amp; \"the\" 'builder' \\ can you look?",
        "@zoë the <script>alert(1)</script> deploy is done",
        "@ann thanks, and https://example.com/a?b=1&c=2",
    ];
    for (n, body) in bodies.iter().enumerate() {
        clients[n].post(&format!("p{n}"), body).await;
    }

    let mut kept = Vec::new();
    for cookie in &cookies {
        let mut pages = Vec::new();
        for (accept, expected) in ENCODINGS {
            // Twice: the first request may make the page, the second is served what was kept.
            for _ in 0..2 {
                let (encoding, text) = page(&server, "/r/general", cookie, accept).await;
                assert_eq!(encoding.as_deref(), expected, "Accept-Encoding: {accept}");
                pages.push(text);
            }
        }
        assert!(
            pages.windows(2).all(|w| w[0] == w[1]),
            "one page in every encoding"
        );
        kept.push(pages.swap_remove(0));
    }
    assert!(kept[0].contains("can you look?") && kept[0].contains("deploy is done"));
    assert_ne!(kept[0], kept[1], "each reader's page has their own name");

    // The room changes: the next page shows it.
    clients[2].post("p3", "and one more thing").await;
    let mut after = Vec::new();
    for cookie in &cookies {
        let (_, text) = page(&server, "/r/general", cookie, "gzip, deflate, br, zstd").await;
        assert!(
            text.contains("and one more thing"),
            "the kept page follows the room"
        );
        after.push(text);
    }
    drop(clients);
    server.begin_shutdown();
    server.stopped().await;

    // The same room rendered afresh for each reader (the same data dir: the same sessions).
    let mut server = TestServer::start_in(data.path(), &["--page-cache", "false"]).await;
    for (cookie, kept) in cookies.iter().zip(&after) {
        let (encoding, fresh) = page(&server, "/r/general", cookie, "").await;
        assert_eq!(encoding, None);
        assert!(
            fresh == *kept,
            "the kept page and a fresh render differ:\n{fresh}\n----\n{kept}"
        );
    }
    server.begin_shutdown();
    server.stopped().await;
}
