//! Search (docs/SEARCH.md): a person finds messages by their words in the rooms they may
//! read — never a private room they are not (or no longer) in — newest first, a page at a time;
//! edits are found as edited, deleted messages not at all; Chinese and Japanese words of two
//! characters are found; the room, author and date filters narrow it; what the log no longer keeps
//! is not found. Every node of a cluster finds what was said on any node.

use std::time::Duration;

use app::protocol::ClientMsg;

use crate::common::{Client, OWNER, OWNER_PASSWORD, TestServer, TwoNodes, form};

const PASSWORD: &str = "a long enough password";

/// What `cookie` finds for `query` (the address's query string): each result's room and seq,
/// newest first, and the next page's link if there is one.
async fn found(
    server: &TestServer,
    cookie: &str,
    query: &str,
) -> (Vec<(String, u64)>, Option<String>) {
    let (status, _, page) = server.get_as(&format!("/search?{query}"), cookie).await;
    assert_eq!(status, 200, "{page}");
    let mut results = Vec::new();
    for part in page.split("data-testid=\"search-result\"").skip(1) {
        let attr = |name: &str| {
            let from = part.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
            part[from..from + part[from..].find('"').expect("end")].to_owned()
        };
        results.push((attr("data-room"), attr("data-seq").parse().expect("seq")));
    }
    let next = page.find("data-testid=\"next-page\"").map(|_| {
        let from = page.find("href=\"/search?").expect("link") + 6;
        page[from..from + page[from..].find('"').expect("end")].replace("&amp;", "&")
    });
    (results, next)
}

/// What `cookie` finds for `query` once the index has caught up with `want` (it follows the log
/// a moment behind): waits for it, up to a generous bound, then says what was found.
async fn finds(server: &TestServer, cookie: &str, query: &str, want: &[(&str, u64)]) {
    let want: Vec<(String, u64)> = want.iter().map(|(r, s)| (r.to_string(), *s)).collect();
    let mut got = Vec::new();
    for _ in 0..100 {
        got = found(server, cookie, query).await.0;
        if got == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{query}: found {got:?}, not {want:?}");
}

#[tokio::test]
async fn a_person_finds_the_words_of_the_rooms_they_may_read_and_no_others() {
    let (server, data) = TestServer::start_api(&["--sign-up", "open"]).await;
    let ann = server.sign_up("ann", "Ann", PASSWORD).await.expect("ann");
    let bob = server.sign_up("bob", "Bob", PASSWORD).await.expect("bob");
    let owner = server.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner");
    let news = form(&[("kind", "open"), ("name", "news"), ("topic", "")]);
    assert_eq!(server.post_as("/rooms", Some(&ann), &news).await.0, 303);
    let plans = server.private_room(&owner, "Plans", &["ann", "bob"]).await;

    let mut a = Client::connect(server.addr, &ann).await;
    a.join("news", None).await;
    a.join(&plans, None).await;
    // A few milliseconds apart: "newest first" is by the time each was sent, to the millisecond
    // (two rooms' messages of the same millisecond come in no particular order).
    let mut said = Vec::new();
    for (room, id, body) in [
        ("news", "n1", "Lunch at the café at noon?"),
        (plans.as_str(), "p1", "the lunch budget is secret"),
        ("news", "n2", "明日東京で会議があります"),
        ("news", "n3", "the resturant is booked"),
        ("news", "n4", "lunch is off, never mind"),
    ] {
        said.push(a.post_in(room, id, body).await);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let [lunch, secret, tokyo, typo, gone] = said[..] else {
        unreachable!()
    };

    // Newest first, accents folded both ways; Bob is in the private room too.
    finds(
        &server,
        &bob,
        "q=lunch",
        &[("news", gone), (&plans, secret), ("news", lunch)],
    )
    .await;
    finds(&server, &bob, "q=cafe", &[("news", lunch)]).await;
    // Two-character words in a sentence written without spaces.
    finds(&server, &bob, "q=%E6%9D%B1%E4%BA%AC", &[("news", tokyo)]).await; // 東京
    finds(&server, &bob, "q=%E4%BC%9A%E8%AD%B0", &[("news", tokyo)]).await; // 会議
    // What is typed is words, never the index's syntax.
    finds(&server, &bob, "q=lunch+OR+noon", &[]).await;
    finds(
        &server,
        &bob,
        "q=%22lunch",
        &[("news", gone), (&plans, secret), ("news", lunch)],
    )
    .await;

    // An edit is found as edited; a deleted message is not found.
    let fix = ClientMsg::Edit {
        room: "news".into(),
        client_id: "n5".into(),
        target: typo,
        body: "the restaurant is booked".into(),
    };
    a.store(&fix, "n5").await.expect("edited");
    let unsay = ClientMsg::Delete {
        room: "news".into(),
        client_id: "n6".into(),
        target: gone,
    };
    a.store(&unsay, "n6").await.expect("deleted");
    finds(&server, &bob, "q=restaurant", &[("news", typo)]).await;
    finds(&server, &bob, "q=resturant", &[]).await;
    finds(
        &server,
        &bob,
        "q=lunch",
        &[(&plans, secret), ("news", lunch)],
    )
    .await;
    // Its words leave the index's files as they leave the log's (once each is checkpointed).
    let deadline = tokio::time::Instant::now() + crate::common::PATIENCE;
    loop {
        let found =
            crate::changes::files_holding(std::path::Path::new(data.path()), &["never mind"]);
        if found.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{found:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Filters: a room, a person, dates.
    finds(&server, &bob, "q=lunch&room=news", &[("news", lunch)]).await;
    finds(
        &server,
        &bob,
        "q=lunch&from=%40ann",
        &[(&plans, secret), ("news", lunch)],
    )
    .await;
    finds(&server, &bob, "q=lunch&from=bob", &[]).await;
    finds(&server, &bob, "q=lunch&before=2001-01-01", &[]).await;
    finds(
        &server,
        &bob,
        "q=lunch&after=2001-01-01",
        &[(&plans, secret), ("news", lunch)],
    )
    .await;
    let (status, _, page) = server.get_as("/search?q=lunch&after=someday", &bob).await;
    assert_eq!(status, 200);
    assert!(page.contains("is not a date"), "{page}");

    // Removed from the private room, Bob no longer finds its words; Ann still does.
    server.remove_member(&owner, &plans, &bob).await;
    finds(&server, &bob, "q=lunch", &[("news", lunch)]).await;
    finds(&server, &bob, "q=secret", &[]).await;
    finds(&server, &bob, &format!("q=secret&room={plans}"), &[]).await;
    finds(&server, &ann, "q=secret", &[(&plans, secret)]).await;

    // A deleted room's words are gone for everyone, the admin too.
    let sure = form(&[("sure", "yes")]);
    assert_eq!(
        server
            .post_as(&format!("/r/{plans}/delete"), Some(&owner), &sure)
            .await
            .0,
        303
    );
    finds(&server, &ann, "q=secret", &[]).await;
    finds(&server, &owner, "q=secret", &[]).await;

    // Nobody signed in is sent to sign in.
    let (status, head, _) = server.get("/search?q=lunch").await;
    assert_eq!(status, 303, "{head}");
}

#[tokio::test]
async fn results_page_on_newest_first_and_the_index_is_rebuilt_from_the_log() {
    let data = crate::common::TempDir::new();
    let mut server = TestServer::start_in(data.path(), &["--sign-up", "open"]).await;
    let ann = server.sign_up("ann", "Ann", PASSWORD).await.expect("ann");
    let mut a = Client::connect(server.addr, &ann).await;
    a.join("general", None).await;
    let mut seqs = Vec::new();
    for n in 0..45 {
        seqs.push(
            a.post_in("general", &format!("m{n}"), &format!("report number {n}"))
                .await,
        );
    }
    seqs.reverse();
    let want: Vec<(&str, u64)> = seqs.iter().map(|s| ("general", *s)).collect();
    finds(&server, &ann, "q=report", &want[..20]).await;
    let (first, next) = found(&server, &ann, "q=report").await;
    assert_eq!(first.len(), 20);
    let next = next.expect("a second page");
    let (second, next) = found(&server, &ann, next.trim_start_matches("/search?")).await;
    assert_eq!(
        second,
        want[20..40]
            .iter()
            .map(|(r, s)| (r.to_string(), *s))
            .collect::<Vec<_>>()
    );
    let (third, last) = found(
        &server,
        &ann,
        next.expect("a third page").trim_start_matches("/search?"),
    )
    .await;
    assert_eq!(third.len(), 5);
    assert!(last.is_none());

    // The index is a file beside the log that may be thrown away: rebuilt as the server starts.
    drop(a);
    server.begin_shutdown();
    server.stopped().await;
    for file in ["search.db", "search.db-wal", "search.db-shm"] {
        let _ = std::fs::remove_file(std::path::Path::new(data.path()).join(file));
    }
    let server = TestServer::start_in(data.path(), &["--sign-up", "open"]).await;
    let ann = server.sign_in("ann", PASSWORD).await.expect("ann");
    finds(&server, &ann, "q=report", &want[..20]).await;
}

/// What the log no longer keeps (`--retention`) is not found: a result always opens in its room.
#[tokio::test]
async fn what_the_log_no_longer_keeps_is_not_found() {
    let data = crate::common::TempDir::new();
    let server =
        TestServer::start_in(data.path(), &["--sign-up", "open", "--retention", "5"]).await;
    let ann = server.sign_up("ann", "Ann", PASSWORD).await.expect("ann");
    let mut a = Client::connect(server.addr, &ann).await;
    a.join("general", None).await;
    let mut seqs = Vec::new();
    for n in 0..8 {
        seqs.push(
            a.post_in("general", &format!("m{n}"), &format!("report {n}"))
                .await,
        );
    }
    let kept: Vec<(&str, u64)> = seqs.iter().rev().take(5).map(|s| ("general", *s)).collect();
    finds(&server, &ann, "q=report", &kept).await;
}

/// Every node of a cluster keeps an index of every room, read from the Redis log: what is said,
/// edited, deleted on one node is found so on another that has no reader of the room; a node
/// that joins later reads the whole history; a room deleted on one node leaves every index; and
/// who may read what is asked on the node searched.
#[tokio::test]
async fn every_node_of_a_cluster_finds_what_was_said_on_any_node() {
    let nodes = TwoNodes::start(&[]).await;
    let (a, b) = (&nodes.a, &nodes.b);
    let ann = a.sign_up("ann", "Ann", PASSWORD).await.expect("ann");
    let bob = a.sign_up("bob", "Bob", PASSWORD).await.expect("bob");
    let owner = a.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner");
    let news = form(&[("kind", "open"), ("name", "news"), ("topic", "")]);
    assert_eq!(a.post_as("/rooms", Some(&ann), &news).await.0, 303);
    let plans = a.private_room(&owner, "Plans", &["ann", "bob"]).await;

    // Said on node a, where Ann is; nobody reads these rooms on node b.
    let mut on_a = Client::connect(a.addr, &ann).await;
    on_a.join("news", None).await;
    on_a.join(&plans, None).await;
    let lunch = on_a.post_in("news", "n1", "lunch at noon").await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let secret = on_a
        .post_in(&plans, "p1", "the lunch budget is secret")
        .await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let typo = on_a.post_in("news", "n2", "the resturant is booked").await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let gone = on_a.post_in("news", "n3", "lunch is off").await;
    finds(
        b,
        &bob,
        "q=lunch",
        &[("news", gone), (&plans, secret), ("news", lunch)],
    )
    .await;

    // Edited and deleted on node a: found so on node b.
    let fix = ClientMsg::Edit {
        room: "news".into(),
        client_id: "n4".into(),
        target: typo,
        body: "the restaurant is booked".into(),
    };
    on_a.store(&fix, "n4").await.expect("edited");
    let unsay = ClientMsg::Delete {
        room: "news".into(),
        client_id: "n5".into(),
        target: gone,
    };
    on_a.store(&unsay, "n5").await.expect("deleted");
    finds(b, &bob, "q=restaurant", &[("news", typo)]).await;
    finds(b, &bob, "q=resturant", &[]).await;
    finds(b, &bob, "q=lunch", &[(&plans, secret), ("news", lunch)]).await;

    // Removed from the private room on node a, Bob no longer finds its words on node b.
    a.remove_member(&owner, &plans, &bob).await;
    finds(b, &bob, "q=lunch", &[("news", lunch)]).await;
    finds(b, &ann, "q=lunch", &[(&plans, secret), ("news", lunch)]).await;

    // A node that joins later reads every room's history from the log.
    let data = crate::common::TempDir::new();
    let c = nodes.another(data.path()).await;
    finds(&c, &ann, "q=lunch", &[(&plans, secret), ("news", lunch)]).await;
    finds(&c, &ann, "q=restaurant", &[("news", typo)]).await;

    // A room deleted on node a leaves every node's index.
    let sure = form(&[("sure", "yes")]);
    let path = format!("/r/{plans}/delete");
    assert_eq!(a.post_as(&path, Some(&owner), &sure).await.0, 303);
    for node in [a, b, &c] {
        finds(node, &ann, "q=lunch", &[("news", lunch)]).await;
        finds(node, &owner, "q=secret", &[]).await;
    }
}
