//! The hub's own tests: fan-out order, joins that hold live messages, lagging, presence, typing.

use std::sync::atomic::{AtomicU32, Ordering};

use super::*;
use app::protocol::ChatMessage;

/// What the log hands the hub for a stored message.
fn publish(hub: &Hub, message: &ChatMessage) {
    hub.publish(&Entry::Message(message.clone()));
}

fn message(seq: u64) -> ChatMessage {
    ChatMessage {
        room: "general".into(),
        seq,
        author: Identity {
            id: "u1".into(),
            name: "ann".into(),
        },
        client_id: format!("c{seq}"),
        body: format!("m{seq}"),
        sent_at: 0,
        kind: Default::default(),
        ..Default::default()
    }
}

fn seq_of(frame: &Frame) -> u64 {
    match ServerMsg::decode(frame.as_str()) {
        Ok(ServerMsg::Message(m)) => m.seq,
        other => panic!("not a message: {other:?}"),
    }
}

fn user(n: u32) -> Identity {
    Identity {
        id: format!("u{n}"),
        name: format!("user {n}"),
    }
}

fn joined(hub: &Hub, room: &str) -> (Handle, Arc<SendQueue>) {
    static N: AtomicU32 = AtomicU32::new(100);
    joined_as(hub, room, user(N.fetch_add(1, Ordering::Relaxed)))
}

fn joined_as(hub: &Hub, room: &str, who: Identity) -> (Handle, Arc<SendQueue>) {
    let mut conn = hub.connect(Some(who));
    conn.join(room, |last| last + 1);
    conn.release(room);
    let queue = conn.queue();
    (conn, queue)
}

/// Every frame waiting in `queue`, oldest first.
fn frames(queue: &SendQueue) -> Vec<Frame> {
    let mut all = Vec::new();
    while let Drain::Frames(frames) = queue.take(10, usize::MAX) {
        all.extend(frames);
    }
    all
}

#[test]
fn a_room_whose_lock_is_held_does_not_hold_up_another_rooms_fan_out() {
    let hub = Hub::new();
    let (_ann, ann) = joined(&hub, "other");
    let (_bob, _) = joined(&hub, "general");
    // Hold "general" as a long fan-out would.
    let general = hub.room("general");
    let held = lock(&general);
    let (done, finished) = std::sync::mpsc::channel();
    let publisher = {
        let hub = hub.clone();
        std::thread::spawn(move || {
            let mut elsewhere = message(1);
            elsewhere.room = "other".into();
            publish(&hub, &elsewhere);
            let _ = done.send(());
        })
    };
    assert!(
        finished.recv_timeout(Duration::from_secs(5)).is_ok(),
        "the other room's publish waited for this room's lock"
    );
    drop(held);
    publisher.join().expect("publisher");
    assert_eq!(frames(&ann).iter().map(seq_of).collect::<Vec<_>>(), vec![1]);
}

#[test]
fn rooms_published_from_many_threads_reach_each_subscriber_in_seq_order() {
    let hub = Hub::new();
    let rooms: Vec<String> = (0..8).map(|r| format!("room-{r}")).collect();
    let readers: Vec<_> = rooms.iter().map(|room| joined(&hub, room)).collect();
    let publishers: Vec<_> = rooms
        .iter()
        .map(|room| {
            let (hub, room) = (hub.clone(), room.clone());
            std::thread::spawn(move || {
                for seq in 1..=100 {
                    let mut m = message(seq);
                    m.room = room.clone();
                    publish(&hub, &m);
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.join().expect("publisher");
    }
    for (room, (_, queue)) in rooms.iter().zip(&readers) {
        let seqs: Vec<u64> = frames(queue).iter().map(seq_of).collect();
        assert_eq!(seqs, (1..=100).collect::<Vec<_>>(), "{room}");
    }
}

#[test]
fn every_subscriber_of_a_room_gets_its_messages_in_order_and_no_others() {
    let hub = Hub::new();
    let (_a, a) = joined(&hub, "general");
    let (_b, b) = joined(&hub, "general");
    let (_c, elsewhere) = joined(&hub, "ops");
    for seq in 1..=10 {
        publish(&hub, &message(seq));
    }
    for queue in [&a, &b] {
        let seqs: Vec<u64> = frames(queue).iter().map(seq_of).collect();
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>(), "all, once, in order");
    }
    assert!(frames(&elsewhere).is_empty(), "other rooms hear nothing");
}

#[test]
fn messages_published_during_a_join_wait_until_the_replay_is_queued() {
    let hub = Hub::new();
    hub.set_last_seq("general", 41);
    let mut conn = hub.connect(Some(user(1)));
    assert_eq!(
        conn.join("general", |last| last + 1).live_after,
        41,
        "replay up to 41"
    );
    publish(&hub, &message(42)); // Arrives while the replay is being read.
    assert!(frames(&conn.queue).is_empty(), "held back");
    conn.reply(Frame::from("replay"));
    conn.release("general");
    let queued = frames(&conn.queue);
    assert_eq!(queued[0].as_str(), "replay");
    assert_eq!(seq_of(&queued[1]), 42);
    publish(&hub, &message(43));
    assert_eq!(seq_of(&frames(&conn.queue)[0]), 43);
}

#[test]
fn an_overflowing_subscriber_lags_without_affecting_others_and_its_queue_stays_bounded() {
    let hub = Hub::new();
    let (_stalled, stalled) = joined(&hub, "general");
    let (_reader, reader) = joined(&hub, "general");
    let overflow = QUEUE_FRAMES as u64 + 1;
    for seq in 1..=overflow + 100 {
        publish(&hub, &message(seq));
        assert_eq!(seq_of(&frames(&reader)[0]), seq);
    }
    assert_eq!(hub.subscriber_count("general"), 1, "no longer queued for");
    assert!(
        matches!(stalled.take(usize::MAX, usize::MAX), Drain::Frames(f) if f.len() == QUEUE_FRAMES),
        "the queue never grew past its bound, and what it holds goes first"
    );
    assert!(
        matches!(stalled.take(10, usize::MAX), Drain::Lagged(notes) if notes == [("general".to_string(), overflow)]),
        "then the lag, once; one lag is forgiven"
    );
    assert!(matches!(stalled.take(10, usize::MAX), Drain::Nothing));
}

#[test]
fn a_connection_that_keeps_lagging_is_given_up() {
    let hub = Hub::new();
    let mut conn = hub.connect(Some(user(1)));
    let mut seq = 0;
    for _ in 0..MAX_LAGS {
        conn.join("general", |last| last + 1);
        conn.release("general");
        for _ in 0..=QUEUE_FRAMES {
            seq += 1;
            publish(&hub, &message(seq));
        }
    }
    assert!(matches!(
        conn.queue().take(10, usize::MAX),
        Drain::Close(Disconnect::TooSlow)
    ));
}

#[test]
fn leaving_or_dropping_the_connection_leaves_the_room() {
    let hub = Hub::new();
    let (mut conn, _frames) = joined(&hub, "general");
    let (other, _other_frames) = joined(&hub, "general");
    conn.leave("general");
    assert_eq!(hub.subscriber_count("general"), 1);
    drop(other);
    assert_eq!(hub.subscriber_count("general"), 0);
}

/// Every frame waiting in `queue`, decoded.
fn drain(queue: &SendQueue) -> Vec<ServerMsg> {
    frames(queue)
        .iter()
        .map(|f| ServerMsg::decode(f.as_str()).expect("valid frame"))
        .collect()
}

fn presences(frames: &SendQueue) -> Vec<(u32, Vec<String>, Vec<String>)> {
    let names = |ids: Vec<Identity>| ids.into_iter().map(|i| i.name).collect::<Vec<_>>();
    drain(frames)
        .into_iter()
        .filter_map(|msg| match msg {
            ServerMsg::Presence {
                count,
                joined,
                left,
                ..
            } => Some((count, names(joined), names(left))),
            _ => None,
        })
        .collect()
}

#[test]
fn arrivals_are_announced_together_and_a_quick_return_is_not_announced() {
    let hub = Hub::new();
    let t0 = Instant::now();
    let (_ann, ann) = joined_as(&hub, "general", user(1));
    hub.tick(t0);
    let (_bob, _) = joined_as(&hub, "general", user(2));
    let (bob_tab2, _) = joined_as(&hub, "general", user(2));
    let (_cy, _) = joined_as(&hub, "general", user(3));
    hub.tick(t0);
    assert_eq!(
        presences(&ann),
        vec![
            (1, vec!["user 1".into()], vec![]),
            (3, vec!["user 2".into(), "user 3".into()], vec![])
        ],
        "one frame for the burst; Bob's second tab is still one Bob"
    );
    drop(bob_tab2);
    hub.tick(t0);
    assert_eq!(presences(&ann), vec![], "Bob still has a tab open");
    drop(_cy);
    hub.tick(t0 + LEAVE_GRACE / 2);
    let (_cy_again, _) = joined_as(&hub, "general", user(3));
    hub.tick(t0 + LEAVE_GRACE * 2);
    assert_eq!(presences(&ann), vec![], "a reload is not a departure");
    drop(_bob);
    hub.tick(Instant::now());
    assert_eq!(presences(&ann), vec![], "not before the grace is over");
    hub.tick(Instant::now() + LEAVE_GRACE);
    assert_eq!(presences(&ann), vec![(2, vec![], vec!["user 2".into()])]);
}

#[test]
fn someone_who_speaks_before_the_tick_is_announced_before_their_message() {
    let hub = Hub::new();
    let (_ann, ann) = joined_as(&hub, "general", user(1));
    hub.tick(Instant::now());
    drain(&ann);
    let (_bob, _) = joined_as(&hub, "general", user(2));
    let mut hello = message(1);
    hello.author = user(2);
    publish(&hub, &hello);
    let seen: Vec<String> = drain(&ann)
        .into_iter()
        .map(|msg| match msg {
            ServerMsg::Presence { joined, .. } => format!("joined {}", joined[0].name),
            ServerMsg::Message(m) => format!("{}: {}", m.author.name, m.body),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(seen, ["joined user 2", "user 2: m1"]);
    hub.tick(Instant::now());
    let after: Vec<ServerMsg> = drain(&ann);
    assert!(
        matches!(after.as_slice(), [ServerMsg::Rooms { rooms }] if rooms[0].members == 2),
        "told once; the room list follows at the tick: {after:?}"
    );
    publish(&hub, &message(2));
    assert_eq!(
        presences(&ann),
        vec![],
        "a member's message announces nothing"
    );
}

#[test]
fn a_new_name_reaches_the_list_of_people_without_an_arrival() {
    let hub = Hub::new();
    let (_ann, ann) = joined_as(&hub, "general", user(1));
    let (_bob, _) = joined_as(&hub, "general", user(2));
    hub.tick(Instant::now());
    drain(&ann);
    let renamed = Identity {
        name: "Bobby".into(),
        ..user(2)
    };
    let (_bobby, _) = joined_as(&hub, "general", renamed);
    hub.tick(Instant::now());
    let told: Vec<(Vec<String>, usize)> = drain(&ann)
        .into_iter()
        .filter_map(|msg| match msg {
            ServerMsg::Presence {
                members, joined, ..
            } => Some((
                members
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| m.name)
                    .collect(),
                joined.len(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        vec![(vec!["Bobby".to_string(), "user 1".to_string()], 0)]
    );
}

#[test]
fn the_room_list_goes_to_every_connection_when_a_count_changes() {
    let hub = Hub::new();
    hub.set_last_seq("quiet", 3);
    let (_ann, ann) = joined_as(&hub, "general", user(1));
    let (_bob, _) = joined_as(&hub, "ops", user(2));
    let (_cy, _) = joined_as(&hub, "ops", user(3));
    hub.tick(Instant::now());
    let lists: Vec<Vec<(String, u32)>> = drain(&ann)
        .into_iter()
        .filter_map(|msg| match msg {
            ServerMsg::Rooms { rooms } => {
                Some(rooms.into_iter().map(|r| (r.room, r.members)).collect())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        lists,
        vec![vec![
            ("general".into(), 1),
            ("ops".into(), 2),
            ("quiet".into(), 0)
        ]],
        "the default room, then the busiest first, rooms nobody is in included"
    );
    hub.tick(Instant::now());
    assert!(drain(&ann).is_empty(), "nothing changed, nothing sent");
}

#[test]
fn typing_reaches_the_others_in_the_room_at_most_once_per_window() {
    let hub = Hub::new();
    let (ann, ann_frames) = joined_as(&hub, "general", user(1));
    let (_bob, bob) = joined_as(&hub, "general", user(2));
    let (_elsewhere, elsewhere) = joined_as(&hub, "ops", user(3));
    let t0 = Instant::now();
    ann.typing("general", t0);
    ann.typing("general", t0 + Duration::from_millis(500));
    let typing = |frames: &SendQueue| {
        drain(frames)
            .into_iter()
            .filter(|m| matches!(m, ServerMsg::Typing { .. }))
            .count()
    };
    assert_eq!(typing(&bob), 1, "coalesced");
    assert_eq!(typing(&ann_frames), 0, "not echoed to the typist");
    assert_eq!(typing(&elsewhere), 0, "other rooms hear nothing");
    ann.typing("general", t0 + TYPING_COALESCE);
    assert_eq!(typing(&bob), 1, "still typing later");
}

#[test]
fn the_byte_bound_lags_a_reader_of_big_messages_before_the_frame_bound() {
    let hub = Hub::new();
    let (_conn, stalled) = joined(&hub, "general");
    let big = |seq| ChatMessage {
        body: "x".repeat(60_000),
        ..message(seq)
    };
    let mut seq = 0;
    while hub.subscriber_count("general") == 1 {
        seq += 1;
        publish(&hub, &big(seq));
        assert!(seq < 20, "lagged well before {QUEUE_FRAMES} frames");
    }
    assert!(stalled.queued_bytes() <= QUEUE_BYTES);
    assert_eq!(hub.stats().queued_bytes, stalled.queued_bytes());
    assert_eq!(seq as usize, QUEUE_BYTES / 60_000 + 1);
}

#[test]
fn a_join_gets_the_frames_of_the_newest_messages_it_replays_when_the_hub_still_has_them() {
    let hub = Hub::new();
    hub.set_last_seq("general", 10); // What the log held at start: nothing of it is in the hub.
    let mut conn = hub.connect(Some(user(1)));
    assert!(
        conn.join("general", |last| last - 2).recent.is_none(),
        "before any publish"
    );
    assert!(
        conn.join("general", |last| last + 1)
            .recent
            .is_some_and(|f| f.is_empty())
    );
    conn.leave("general");
    for seq in 11..=20 {
        publish(&hub, &message(seq));
    }
    let point = conn.join("general", |last| last - 4);
    assert_eq!(point.live_after, 20);
    let recent: Vec<u64> = point.recent.expect("kept").iter().map(seq_of).collect();
    assert_eq!(recent, (16..=20).collect::<Vec<_>>());
    conn.leave("general");
    assert!(
        conn.join("general", |_| 10).recent.is_none(),
        "10 was never published here"
    );
    conn.leave("general");
    drop(conn);

    // A room no one is in lets its frames go after a while.
    let start = Instant::now();
    hub.tick(start);
    hub.tick(start + super::recent::RECENT_KEEP);
    let mut back = hub.connect(Some(user(2)));
    assert!(back.join("general", |last| last).recent.is_none(), "let go");
}

#[test]
fn rooms_made_by_the_hundred_do_not_push_the_talked_in_ones_out_of_the_list() {
    let hub = Hub::new();
    hub.set_last_seq("general", 40);
    hub.set_last_seq("design", 12);
    let (_ann, ann) = joined_as(&hub, "design", user(1));
    // One person in 150 new rooms, none of which has held a message (names sort before "design").
    let mut flooder = hub.connect(Some(user(2)));
    for n in 0..150 {
        let room = format!("aaa-{n:03}");
        flooder.join(&room, |last| last + 1);
        flooder.release(&room);
    }
    hub.tick(Instant::now());
    let list = drain(&ann)
        .into_iter()
        .find_map(|msg| match msg {
            ServerMsg::Rooms { rooms } => Some(rooms),
            _ => None,
        })
        .expect("a room list");
    let names: Vec<&str> = list.iter().map(|r| r.room.as_str()).collect();
    assert_eq!(names.len(), app::protocol::ROOM_LIST_MAX);
    assert_eq!(&names[..2], ["general", "design"], "{names:?}");
}

#[test]
fn a_room_that_never_held_a_message_is_offered_to_be_forgotten_once_nobody_is_in_it() {
    let hub = Hub::new();
    let start = Instant::now();
    let (ann, _) = joined(&hub, "typo");
    let (bob, _) = joined(&hub, "kept");
    publish(
        &hub,
        &ChatMessage {
            room: "kept".into(),
            ..message(1)
        },
    );
    hub.tick(start);
    drop((ann, bob));
    // Gone from the room, and past the grace in which a leaver still counts as present.
    let later = start + LEAVE_GRACE + Duration::from_secs(1);
    hub.tick(later);
    assert!(
        hub.unused_rooms().is_empty(),
        "not before it was unused a while"
    );
    hub.tick(later + UNUSED_KEEP);
    assert_eq!(
        hub.unused_rooms(),
        vec!["typo".to_string()],
        "a room with a message stays"
    );
    // Someone came back meanwhile: not forgotten.
    let (again, _) = joined(&hub, "typo");
    assert!(!hub.forget("typo"));
    drop(again);
    hub.tick(later + UNUSED_KEEP * 2 + LEAVE_GRACE);
    assert_eq!(
        hub.unused_rooms(),
        vec!["typo".to_string()],
        "offered again"
    );
    // A room made on purpose, once found to be so, is never offered again.
    let (made, _) = joined(&hub, "made");
    drop(made);
    hub.tick(later + UNUSED_KEEP * 2 + LEAVE_GRACE * 2);
    hub.keep(&["made".to_string()]);
    hub.tick(later + UNUSED_KEEP * 6);
    assert!(!hub.unused_rooms().contains(&"made".to_string()));
    assert!(hub.forget("typo"));
    hub.tick(later + UNUSED_KEEP * 4);
    let listed: Vec<String> = match hub.rooms() {
        ServerMsg::Rooms { rooms } => rooms.into_iter().map(|r| r.room).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(listed, vec!["kept".to_string(), "made".to_string()]);
}
