//! Signals and paging: who is in a room, who is typing, the room list, and older history on request.
//! Signals are never stored or replayed; history pages come from the log.

use crate::common;

use app::protocol::{ClientMsg, ErrorCode, Identity, ServerMsg};
use common::TestServer;

fn names(people: &[Identity]) -> Vec<&str> {
    people.iter().map(|p| p.name.as_str()).collect()
}

fn is_presence(msg: &ServerMsg) -> bool {
    matches!(msg, ServerMsg::Presence { .. })
}

#[tokio::test]
async fn the_people_in_a_room_are_listed_and_comings_and_goings_are_told_once() {
    let server = TestServer::start().await;
    let mut ann = server.client_named("Ann").await;
    let ServerMsg::Presence { count, members, .. } = ann.signal(is_presence).await else {
        unreachable!()
    };
    assert_eq!((count, names(&members.expect("listed"))), (1, vec!["Ann"]));

    let mut bob = server.client_named("Bob").await;
    let ServerMsg::Presence { count, members, .. } = bob.signal(is_presence).await else {
        unreachable!()
    };
    assert_eq!(
        (count, names(&members.expect("listed"))),
        (2, vec!["Ann", "Bob"]),
        "a newcomer sees everyone at once"
    );
    // Ann is told Bob arrived (in the same notice as her own arrival if they came within one tick).
    let ServerMsg::Presence { count, left, .. } = ann
        .signal(
            |m| matches!(m, ServerMsg::Presence { joined, .. } if names(joined).contains(&"Bob")),
        )
        .await
    else {
        unreachable!()
    };
    assert_eq!((count, left), (2, vec![]));

    // Bob closes his tab: after the grace, Ann is told once.
    drop(bob);
    let ServerMsg::Presence {
        count,
        members,
        left,
        ..
    } = ann
        .signal(|m| matches!(m, ServerMsg::Presence { left, .. } if !left.is_empty()))
        .await
    else {
        unreachable!()
    };
    assert_eq!(
        (count, names(&members.expect("listed")), names(&left)),
        (1, vec!["Ann"], vec!["Bob"])
    );

    // Nothing of it was stored: a newcomer's replay is empty, and posting gets seq 1.
    let mut cy = server.client_named("Cy").await;
    assert_eq!(cy.post("c1", "first").await, 1);
}

#[tokio::test]
async fn typing_reaches_the_others_and_is_never_stored_or_replayed() {
    let server = TestServer::start().await;
    let mut ann = server.client_named("Ann").await;
    let mut bob = server.client_named("Bob").await;
    bob.send(&ClientMsg::Typing {
        room: "general".into(),
    })
    .await;
    let ServerMsg::Typing { room, user } =
        ann.signal(|m| matches!(m, ServerMsg::Typing { .. })).await
    else {
        unreachable!()
    };
    assert_eq!((room.as_str(), user.name.as_str()), ("general", "Bob"));

    // Typing in a room you are not in is refused.
    bob.send(&ClientMsg::Typing {
        room: "elsewhere".into(),
    })
    .await;
    match bob.recv().await {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::NotJoined),
        other => panic!("expected not_joined, got {other:?}"),
    }

    // A later visitor gets no replay of it: the room's history is empty.
    let mut cy = server.client_named("Cy").await;
    assert_eq!(cy.post("c1", "hello").await, 1);
    assert!(
        !cy.take_signals()
            .iter()
            .any(|m| matches!(m, ServerMsg::Typing { .. })),
        "typing is not replayed"
    );
}

#[tokio::test]
async fn every_connection_gets_the_room_list_with_live_member_counts() {
    let server = TestServer::start().await;
    let mut ann = server.client_named("Ann").await;
    let mut bob = server.client_named("Bob").await;
    bob.join("ops", None).await;
    let counts = |msg: &ServerMsg| match msg {
        ServerMsg::Rooms { rooms } => rooms
            .iter()
            .map(|r| (r.room.clone(), r.members))
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let list = ann
        .signal(|m| counts(m) == vec![("general".to_string(), 2), ("ops".to_string(), 1)])
        .await;
    assert!(matches!(list, ServerMsg::Rooms { .. }));
    bob.send(&ClientMsg::Leave { room: "ops".into() }).await;
    ann.signal(|m| counts(m) == vec![("general".to_string(), 2), ("ops".to_string(), 0)])
        .await;
}

#[tokio::test]
async fn older_history_comes_in_pages_on_request() {
    let server = TestServer::start().await;
    let mut ann = server.client_named("Ann").await;
    for i in 1..=120 {
        ann.say(&format!("c{i}"), &format!("m{i}")).await;
    }
    for _ in 1..=120 {
        ann.next_message().await;
    }
    let mut bob = server.client_named("Bob").await;
    let mut latest = Vec::new();
    for _ in 0..50 {
        latest.push(bob.next_message().await.seq);
    }
    assert_eq!(
        latest,
        (71..=120).collect::<Vec<_>>(),
        "joining shows the last 50"
    );

    let mut pages = Vec::new();
    for (before, limit) in [(71, Some(50)), (21, None)] {
        bob.send(&ClientMsg::History {
            room: "general".into(),
            before,
            limit,
        })
        .await;
        match bob.recv().await {
            ServerMsg::History {
                room,
                messages,
                has_more,
                ..
            } => {
                assert_eq!(room, "general");
                let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
                pages.push((seqs, has_more));
            }
            other => panic!("expected history, got {other:?}"),
        }
    }
    assert_eq!(
        pages,
        vec![
            ((21..=70).collect::<Vec<_>>(), true),
            ((1..=20).collect::<Vec<_>>(), false)
        ]
    );

    for (request, code) in [
        (
            ClientMsg::History {
                room: "general".into(),
                before: 10,
                limit: Some(0),
            },
            ErrorCode::InvalidLimit,
        ),
        (
            ClientMsg::History {
                room: "elsewhere".into(),
                before: 10,
                limit: None,
            },
            ErrorCode::NotJoined,
        ),
    ] {
        bob.send(&request).await;
        match bob.recv().await {
            ServerMsg::Error { code: got, .. } => assert_eq!(got, code),
            other => panic!("expected {code}, got {other:?}"),
        }
    }
}
