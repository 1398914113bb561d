//! Read positions on every device (docs/READING.md), on SQLite and on a two-node cluster: a device
//! that reads a room, writes in it, marks it unread or marks everything read moves its person's
//! position, and every device of theirs is told on either node with what is left unread — which
//! counts messages, never edits or reactions, nor what was deleted; a device that connects is told
//! where its person stands in every room they count; only a room one may open is counted, and only
//! a joined one may be marked read.

use std::time::Duration;

use app::protocol::{Change, ClientMsg, ErrorCode, ServerMsg};

use crate::common::{Client, OWNER, OWNER_PASSWORD, TestServer, TwoNodes, form};

const PASSWORD: &str = "a long enough password";

/// The next `read` frame for `room` that `client` is told: its seq, last seq and unread count.
async fn read_of(client: &mut Client, room: &str) -> (u64, u64, u32) {
    let read = client
        .signal(|m| matches!(m, ServerMsg::Read { room: r, .. } if r == room))
        .await;
    match read {
        ServerMsg::Read {
            seq,
            last_seq,
            unread,
            ..
        } => (seq, last_seq, unread),
        _ => unreachable!(),
    }
}

/// The `read` frames for `room` that `client` is told, until one says `want` (seq, last seq, unread):
/// a count that follows what happens in a room it has not joined is told within a second or so.
async fn told_at_last(client: &mut Client, room: &str, want: (u64, u64, u32)) {
    let mut seen = Vec::new();
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let told = read_of(client, room).await;
            if told == want {
                return;
            }
            seen.push(told);
        }
    })
    .await;
    assert!(waited.is_ok(), "told {seen:?} for {room}, never {want:?}");
}

fn read(room: &str, seq: u64, rewind: bool) -> ClientMsg {
    ClientMsg::Read {
        room: room.into(),
        seq,
        rewind,
    }
}

async fn reading(a: &TestServer, b: &TestServer) {
    let ann = a.sign_up("ann", "Ann", PASSWORD).await.expect("ann");
    let bob = a.sign_up("bob", "Bob", PASSWORD).await.expect("bob");
    let news = form(&[("kind", "open"), ("name", "news"), ("topic", "")]);
    assert_eq!(a.post_as("/rooms", Some(&ann), &news).await.0, 303);
    let mut bob_socket = Client::connect(a.addr, &bob).await;
    bob_socket.join("news", None).await;
    for i in 1..=3 {
        let body = format!("news {i}");
        bob_socket.post_in("news", &format!("b{i}"), &body).await;
    }

    // Ann's laptop (node a) reads the room down to its newest: her phone (node b) is told.
    let mut laptop = Client::connect(a.addr, &ann).await;
    laptop.join("news", None).await;
    let mut phone = Client::connect(b.addr, &ann).await;
    phone.join("news", None).await;
    laptop.send(&read("news", 3, false)).await;
    assert_eq!(read_of(&mut laptop, "news").await, (3, 3, 0));
    assert_eq!(read_of(&mut phone, "news").await, (3, 3, 0));

    // Bob writes on: two messages, an edit and a reaction to the first, and deletes the second.
    let four = bob_socket.post_in("news", "b4", "news 4").await;
    let five = bob_socket.post_in("news", "b5", "news 5").await;
    let changes = [
        (
            "b6",
            Change::Edit {
                body: "news 4, again".into(),
            },
            four,
        ),
        (
            "b7",
            Change::React {
                emoji: "👍".into(),
                remove: false,
            },
            four,
        ),
        ("b8", Change::Delete, five),
    ];
    for (client_id, change, target) in changes {
        let msg = match change {
            Change::Edit { body } => ClientMsg::Edit {
                room: "news".into(),
                client_id: client_id.into(),
                target,
                body,
            },
            Change::React { emoji, remove } => ClientMsg::React {
                room: "news".into(),
                client_id: client_id.into(),
                target,
                emoji,
                remove,
            },
            Change::Delete => ClientMsg::Delete {
                room: "news".into(),
                client_id: client_id.into(),
                target,
            },
        };
        bob_socket.store(&msg, client_id).await.expect("stored");
    }
    // A device of Ann's that connects now is told where she is: one message waits for her (the
    // fourth; the fifth is deleted, and the edit and the reaction are not messages).
    let mut tablet = Client::connect(b.addr, &ann).await;
    assert_eq!(read_of(&mut tablet, "news").await, (3, 8, 1));

    // Writing reads the room up to what one wrote, on every device.
    let said = ClientMsg::Send {
        room: "news".into(),
        client_id: "a1".into(),
        body: "seen it".into(),
        reply_to: None,
    };
    let mine = laptop.store(&said, "a1").await.expect("stored");
    assert_eq!(mine, 9);
    assert_eq!(read_of(&mut phone, "news").await, (9, 9, 0));
    assert_eq!(read_of(&mut laptop, "news").await, (9, 9, 0));

    // Marked unread on the phone from the fourth message on: the laptop counts it again (and her
    // own after it).
    phone.send(&read("news", 3, true)).await;
    assert_eq!(read_of(&mut laptop, "news").await, (3, 9, 2));

    // "Mark all as read" from the tablet, which has joined nothing.
    tablet.send(&ClientMsg::ReadAll).await;
    assert_eq!(read_of(&mut laptop, "news").await, (9, 9, 0));
    // A room not joined on that connection cannot be marked read.
    tablet.send(&read("news", 9, false)).await;
    match tablet.recv().await {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::NotJoined),
        other => panic!("{other:?}"),
    }

    // A private room counts for its members before they read there; once removed, not at all.
    // (The admin makes it, with Ann and Bob: a moderator removes from rooms they are in.)
    let owner = a.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner");
    let plans = a.private_room(&owner, "Plans", &["ann", "bob"]).await;
    laptop.join(&plans, None).await;
    laptop.post_in(&plans, "p1", "the plan").await;
    laptop.post_in(&plans, "p2", "the other plan").await;
    let mut bob_phone = Client::connect(b.addr, &bob).await;
    assert_eq!(read_of(&mut bob_phone, &plans).await, (0, 2, 2));
    a.remove_member(&owner, &plans, &bob).await;
    let mut bob_laptop = Client::connect(b.addr, &bob).await;
    // He wrote in "news": that one he counts (read up to his last message there).
    assert_eq!(read_of(&mut bob_laptop, "news").await, (5, 9, 1));
    let plans_told =
        tokio::time::timeout(Duration::from_millis(500), read_of(&mut bob_laptop, &plans)).await;
    assert!(
        plans_told.is_err(),
        "a room he was removed from: {plans_told:?}"
    );

    // A device that has not opened a room hears of what is new there, on either node: Bob writes in
    // "news" on node a, and Ann's tablet on node b (joined to nothing) counts it; a deletion takes
    // it back.
    let ten = bob_socket.post_in("news", "b9", "news 10").await;
    told_at_last(&mut tablet, "news", (9, 10, 1)).await;
    let unsay = ClientMsg::Delete {
        room: "news".into(),
        client_id: "b10".into(),
        target: ten,
    };
    bob_socket.store(&unsay, "b10").await.expect("stored");
    told_at_last(&mut tablet, "news", (9, 11, 0)).await;
    // What Ann writes in the private room is counted for her tablet (she wrote it on the laptop: it
    // is read), never for Bob, who was removed from it.
    laptop.post_in(&plans, "p3", "after Bob").await;
    told_at_last(&mut tablet, &plans, (3, 3, 0)).await;
    let plans_told =
        tokio::time::timeout(Duration::from_millis(300), read_of(&mut bob_laptop, &plans)).await;
    assert!(
        plans_told.is_err(),
        "a room he was removed from: {plans_told:?}"
    );
}

#[tokio::test]
async fn on_sqlite_every_device_of_a_person_follows_where_they_have_read() {
    let (server, _data) = TestServer::start_api(&["--sign-up", "open"]).await;
    reading(&server, &server).await;
}

#[tokio::test]
async fn on_a_cluster_a_device_on_another_node_follows_where_its_person_has_read() {
    let nodes = TwoNodes::start(&[]).await;
    reading(&nodes.a, &nodes.b).await;
}
