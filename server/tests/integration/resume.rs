//! Joining and rejoining rooms with a cursor: whatever a client missed arrives exactly once, in order,
//! even while messages keep flowing; a cursor the room can no longer satisfy says so.

use crate::common;

use app::protocol::{ClientMsg, Cursor, JoinMode, ServerMsg};
use common::{Client, TempDir, TestServer};

/// Reads messages until `n` of `room` have arrived; returns their seqs (other rooms' are counted too).
async fn seqs_in(client: &mut Client, room: &str, n: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        let msg = client.next_message().await;
        if msg.room == room {
            seqs.push(msg.seq);
        }
    }
    seqs
}

async fn post_to(client: &mut Client, room: &str, client_id: &str, body: &str) -> u64 {
    client
        .send(&ClientMsg::Send {
            room: room.into(),
            client_id: client_id.into(),
            body: body.into(),
            reply_to: None,
        })
        .await;
    loop {
        if let ServerMsg::Ack {
            client_id: id, seq, ..
        } = client.recv().await
            && id == client_id
        {
            return seq;
        }
    }
}

#[tokio::test]
async fn five_clients_in_two_rooms_each_get_exactly_their_rooms_messages_once_in_order() {
    let server = TestServer::start().await;
    // Clients 0–1 in general, 2–3 in ops, 4 in both.
    let mut clients = Vec::new();
    for i in 0..5 {
        let cookie = server.session(&format!("c{i}")).await;
        let mut client = Client::connect_only(server.addr, &cookie).await;
        if i != 2 && i != 3 {
            client.join("general", None).await;
        }
        if i >= 2 {
            client.join("ops", None).await;
        }
        clients.push(client);
    }
    // 250 into each room, alternating, from a poster who is in both (client 4).
    for i in 0..250 {
        post_to(&mut clients[4], "general", &format!("g{i}"), "g").await;
        post_to(&mut clients[4], "ops", &format!("o{i}"), "o").await;
    }
    let all: Vec<u64> = (1..=250).collect();
    for (i, client) in clients.iter_mut().enumerate().take(4) {
        let room = if i < 2 { "general" } else { "ops" };
        let mut seen = Vec::new();
        while seen.len() < 250 {
            let msg = client.next_message().await;
            assert_eq!(msg.room, room, "client {i} only hears its room");
            seen.push(msg.seq);
        }
        assert_eq!(seen, all, "client {i}");
    }
}

#[tokio::test]
async fn a_client_that_drops_and_rejoins_with_its_cursor_gets_exactly_what_it_missed() {
    let server = TestServer::start().await;
    let mut poster = server.client_named("Poster").await;
    for i in 1..=20 {
        poster.post(&format!("before-{i}"), "before").await;
    }
    let cookie = server.session("Reader").await;
    let mut reader = Client::connect_only(server.addr, &cookie).await;
    let epoch = reader.join("general", None).await.epoch;
    assert_eq!(
        seqs_in(&mut reader, "general", 20).await,
        (1..=20).collect::<Vec<_>>()
    );
    drop(reader); // The connection drops.

    for i in 1..=100 {
        poster.post(&format!("missed-{i}"), "missed").await;
    }
    let mut reader = Client::connect_only(server.addr, &cookie).await;
    let joined = reader.resume("general", &epoch, 20).await;
    assert_eq!(
        (joined.mode, joined.first_seq, joined.last_seq),
        (JoinMode::Full, 21, 120)
    );
    assert_eq!(
        seqs_in(&mut reader, "general", 100).await,
        (21..=120).collect::<Vec<_>>()
    );
    // Nothing more was replayed: the next message is a new one.
    poster.post("after", "after").await;
    assert_eq!(seqs_in(&mut reader, "general", 1).await, vec![121]);
}

#[tokio::test]
async fn a_join_while_messages_flow_misses_and_repeats_nothing() {
    let server = TestServer::start().await;
    let mut poster = server.client_named("Poster").await;
    let first = poster.post("first", "first").await;
    let cookie = server.session("Joiner").await;
    let mut joiner = Client::connect_only(server.addr, &cookie).await;
    let epoch = joiner.join("general", None).await.epoch;
    assert_eq!(seqs_in(&mut joiner, "general", 1).await, vec![first]);

    let flow = tokio::spawn(async move {
        for i in 0..300 {
            poster.post(&format!("flow-{i}"), "flow").await;
        }
    });
    // Leave and rejoin repeatedly while the flow goes on, each time from where we were.
    let mut have = vec![first];
    for _ in 0..5 {
        joiner
            .send(&ClientMsg::Leave {
                room: "general".into(),
            })
            .await;
        // Drain what was queued before the leave took effect, keeping only what extends our copy.
        let cursor = Cursor {
            epoch: epoch.clone(),
            seq: *have.last().unwrap_or(&0),
        };
        let joined = joiner.join("general", Some(cursor)).await;
        assert_eq!(joined.mode, JoinMode::Full);
        let last = *have.last().unwrap_or(&0);
        assert_eq!(
            joined.first_seq,
            last + 1,
            "the replay starts right after our cursor"
        );
        let n = (joined.last_seq - last) as usize;
        have.extend(seqs_in(&mut joiner, "general", n).await);
        tokio::task::yield_now().await;
    }
    flow.await.expect("poster");
    let total = 301;
    let remaining = total - have.len();
    have.extend(seqs_in(&mut joiner, "general", remaining).await);
    assert_eq!(
        have,
        (1..=total as u64).collect::<Vec<_>>(),
        "every message once, in order"
    );
}

#[tokio::test]
async fn a_cursor_older_than_retention_is_partial_and_a_wrong_epoch_is_reset() {
    let data = TempDir::new();
    let server = TestServer::start_in(data.path(), &["--retention", "10"]).await;
    let mut poster = server.client_named("Poster").await;
    for i in 1..=30 {
        poster.post(&format!("m{i}"), "m").await;
    }
    let cookie = server.session("Reader").await;
    let mut reader = Client::connect_only(server.addr, &cookie).await;
    let epoch = reader.join("general", None).await.epoch;
    seqs_in(&mut reader, "general", 10).await;

    let stale = reader.resume("general", &epoch, 5).await;
    assert_eq!(
        (stale.mode, stale.first_seq, stale.last_seq),
        (JoinMode::Partial, 21, 30)
    );
    assert_eq!(
        seqs_in(&mut reader, "general", 10).await,
        (21..=30).collect::<Vec<_>>()
    );

    let other = reader.resume("general", "not-this-one", 28).await;
    assert_eq!(
        (other.mode, other.first_seq, other.last_seq),
        (JoinMode::Reset, 21, 30)
    );
    assert_eq!(
        seqs_in(&mut reader, "general", 10).await,
        (21..=30).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_resend_from_a_new_connection_of_the_same_user_is_stored_once() {
    let server = TestServer::start().await;
    let cookie = server.session("Ann").await;
    let mut observer = server.client_named("Obs").await;
    let mut first = Client::connect(server.addr, &cookie).await;
    let seq = first.post("outbox-1", "sent once").await;
    drop(first);
    // The tab reconnects and re-sends its unacknowledged outbox (it never saw the ack).
    let mut again = Client::connect(server.addr, &cookie).await;
    seqs_in(&mut again, "general", 1).await; // The latest history holds it already.
    assert_eq!(again.post("outbox-1", "sent once").await, seq, "same seq");
    again.post("outbox-2", "next").await;
    let seen = seqs_in(&mut observer, "general", 2).await;
    assert_eq!(seen, vec![seq, seq + 1], "broadcast once");
}

/// A replay longer than a connection's queue bound (in frames and in bytes) arrives complete and in
/// order, and the live messages follow it. (That the queue never holds it whole is not shown here:
/// on loopback the kernel's send buffer, up to 4 MB, takes the replay as fast as it is queued.)
#[tokio::test]
async fn a_replay_longer_than_the_queue_arrives_whole_and_live_messages_follow() {
    const MISSED: u64 = 600;
    assert!(MISSED as usize > server::hub::QUEUE_FRAMES);
    let server = TestServer::start().await;
    let cookie = server.session("Poster").await;
    let mut poster = Client::connect_only(server.addr, &cookie).await;
    let epoch = poster.join("general", None).await.epoch;
    // 1.8 MB in all: more than a queue's byte bound.
    let body = "m".repeat(3000);
    for i in 0..MISSED {
        poster.post(&format!("m{i}"), &body).await;
    }
    // A reader with tiny socket buffers: the replay has to wait for it to read.
    let cookie = server.session("Reader").await;
    let mut reader = Client::connect_small_buffer(server.addr, &cookie).await;
    let joined = reader.join("general", Some(Cursor { epoch, seq: 0 })).await;
    assert_eq!(joined.mode, JoinMode::Full);
    assert_eq!((joined.first_seq, joined.last_seq), (1, MISSED));
    let live = poster.post("live", "after the join").await;
    let expected: Vec<u64> = (1..=MISSED).chain([live]).collect();
    assert_eq!(
        seqs_in(&mut reader, "general", expected.len()).await,
        expected
    );
}
