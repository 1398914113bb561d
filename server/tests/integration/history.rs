//! Durable history as users notice it: a newcomer sees what was said before, a restart loses nothing,
//! a message sent twice is stored once, and many concurrent senders get one dense order.

use crate::common;

use app::protocol::{JoinMode, ServerMsg};
use common::{Client, TempDir, TestServer};

/// Reads `n` messages and returns their seqs and bodies.
async fn read_messages(client: &mut Client, n: usize) -> Vec<(u64, String)> {
    let mut seen = Vec::with_capacity(n);
    while seen.len() < n {
        let msg = client.next_message().await;
        seen.push((msg.seq, msg.body));
    }
    seen
}

#[tokio::test]
async fn a_newcomer_sees_the_last_50_messages_then_live_ones_each_once() {
    let server = TestServer::start().await;
    let mut poster = server.client().await;
    for i in 1..=60 {
        poster.post(&format!("c{i}"), &format!("m{i}")).await;
    }
    let mut newcomer = server.client().await;
    let history = read_messages(&mut newcomer, 50).await;
    let expected: Vec<(u64, String)> = (11..=60).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(history, expected, "the last 50, oldest first");

    poster.post("c61", "m61").await;
    assert_eq!(
        read_messages(&mut newcomer, 1).await,
        vec![(61, "m61".to_string())]
    );
}

#[tokio::test]
async fn a_restart_on_the_same_data_dir_keeps_history_epoch_numbering_and_cursors() {
    let data = TempDir::new();
    let mut server = TestServer::start_in(data.path(), &[]).await;
    let cookie = server.session("Ann").await;
    let mut client = Client::connect_only(server.addr, &cookie).await;
    let epoch = client.join("general", None).await.epoch;
    for i in 1..=5 {
        client.post(&format!("c{i}"), &format!("before {i}")).await;
    }
    server.begin_shutdown();
    client.close_frame().await;
    server.stopped().await;

    let server = TestServer::start_in(data.path(), &[]).await;
    // The same browser, after the restart: its session is still valid (the key is in the data dir).
    let mut client = Client::connect_only(server.addr, &cookie).await;
    let epoch_after = client.join("general", None).await.epoch;
    assert_eq!(epoch_after, epoch, "same history, same epoch");
    let history = read_messages(&mut client, 5).await;
    let expected: Vec<(u64, String)> = (1..=5).map(|i| (i, format!("before {i}"))).collect();
    assert_eq!(history, expected);
    assert_eq!(client.post("c6", "after").await, 6, "numbering continues");

    // A cursor from before the restart resumes exactly after it.
    let mut returning = Client::connect_only(server.addr, &cookie).await;
    let joined = returning.resume("general", &epoch, 5).await;
    assert_eq!(
        (joined.mode, joined.first_seq, joined.last_seq),
        (JoinMode::Full, 6, 6)
    );
    assert_eq!(
        read_messages(&mut returning, 1).await,
        vec![(6, "after".to_string())]
    );
}

#[tokio::test]
async fn the_same_client_id_three_times_is_stored_once_and_acked_three_times_alike() {
    let server = TestServer::start().await;
    let mut sender = server.client().await;
    let mut observer = server.client().await;
    for _ in 0..3 {
        sender.say("same-id", "only once").await;
    }
    let mut acks = Vec::new();
    let mut broadcasts = 0;
    while acks.len() < 3 {
        match sender.recv().await {
            ServerMsg::Ack { client_id, seq, .. } => {
                assert_eq!(client_id, "same-id");
                acks.push(seq);
            }
            ServerMsg::Message(_) => broadcasts += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(acks, vec![1, 1, 1]);
    assert_eq!(broadcasts, 1, "broadcast once");

    // The observer sees it once: the next message after it is a new one.
    sender.post("next", "next").await;
    let seen = read_messages(&mut observer, 2).await;
    assert_eq!(seen, vec![(1, "only once".into()), (2, "next".into())]);
    // And a newcomer's history holds it once.
    let mut newcomer = server.client().await;
    assert_eq!(read_messages(&mut newcomer, 2).await, seen);
}

#[tokio::test]
async fn retention_keeps_the_newest_messages() {
    let data = TempDir::new();
    let server = TestServer::start_in(data.path(), &["--retention", "10"]).await;
    let mut poster = server.client().await;
    for i in 1..=25 {
        poster.post(&format!("c{i}"), &format!("m{i}")).await;
    }
    let mut newcomer = server.client().await;
    let history = read_messages(&mut newcomer, 10).await;
    assert_eq!(history.first().map(|m| m.0), Some(16));
    assert_eq!(history.last().map(|m| m.0), Some(25));
    // Nothing older follows: the next message is a live one.
    poster.post("c26", "m26").await;
    assert_eq!(read_messages(&mut newcomer, 1).await[0].0, 26);
}

#[tokio::test]
async fn five_concurrent_senders_get_one_dense_order_that_everyone_sees() {
    let server = TestServer::start().await;
    let mut observer = server.client().await;
    let mut senders = Vec::new();
    for s in 0..5 {
        let mut client = server.client().await;
        senders.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..100 {
                seqs.push(client.post(&format!("{s}-{i}"), &format!("{s}-{i}")).await);
            }
            seqs
        }));
    }
    let mut acked = Vec::new();
    for sender in senders {
        let seqs = sender.await.expect("sender task");
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "each sender's messages keep their order"
        );
        acked.extend(seqs);
    }
    acked.sort_unstable();
    assert_eq!(
        acked,
        (1..=500).collect::<Vec<_>>(),
        "500 distinct, dense seqs"
    );

    let seen: Vec<u64> = read_messages(&mut observer, 500)
        .await
        .iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(
        seen,
        (1..=500).collect::<Vec<_>>(),
        "the observer sees all 500 in seq order"
    );
}

/// Undoes HTML attribute escaping.
fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn the_page_shows_the_latest_messages_and_the_client_continues_from_its_cursor() {
    let server = TestServer::start().await;
    let mut ann = server.client_named("Ann").await;
    for i in 1..=60 {
        ann.post(&format!("c{i}"), &format!("message <{i}>")).await;
    }
    let cookie = server.session("Bob").await;
    let (status, _, html) = server.get_as("/", &cookie).await;
    assert_eq!(status, 200);
    // The latest 50 are in the HTML itself (escaped), the older ones are not.
    assert!(html.contains("message &lt;60&gt;") && html.contains("message &lt;11&gt;"));
    assert!(!html.contains("message &lt;10&gt;"));

    // The page carries the room's cursor at render time.
    let meta = html
        .split("<meta name=\"herald-room\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page embeds the room");
    let page: app::state::RoomPage = serde_json::from_str(&unescape(meta)).expect("room JSON");
    let seqs: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (11..=60).collect::<Vec<_>>());
    assert!(page.has_more);

    // Two messages are posted between render and subscribe; joining from the page's cursor gets
    // exactly those two.
    ann.post("late-1", "after the render").await;
    ann.post("late-2", "also after").await;
    let mut bob = Client::connect_only(server.addr, &cookie).await;
    let last = page.messages.last().map(|m| m.seq).expect("messages");
    let joined = bob.resume("general", &page.epoch, last).await;
    assert_eq!(
        (joined.mode, joined.first_seq, joined.last_seq),
        (JoinMode::Full, 61, 62)
    );
    assert_eq!(
        read_messages(&mut bob, 2).await,
        vec![
            (61, "after the render".to_string()),
            (62, "also after".to_string())
        ]
    );
}
