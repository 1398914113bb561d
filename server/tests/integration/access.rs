//! Who may open which room, at every door (docs/ACCOUNTS.md, "Rooms"), on SQLite and on a cluster
//! on Redis: a private room and a direct conversation answer everyone but their members exactly
//! as a room that does not exist — the page, the WebSocket's join, the event stream, the history
//! and versions API, the publish API, the edit history page, the room's own pages and the room
//! lists; a member added is let in at once on every node, one removed is put out at once; rooms
//! are made on purpose, by the roles allowed; an archived room is read and not written.

use app::protocol::{ErrorCode, ServerMsg};

use crate::common::{
    Client, OWNER, OWNER_PASSWORD, SseReader, TOKEN, TempDir, TestServer, TwoNodes, form,
};

const PASSWORD: &str = "a long enough password";

/// A private room's name no one was ever given: what every door must answer alike.
const MADE_UP: &str = "~0123456789abcdef0123";

/// The people of the matrix, on `server`: the owner (an admin), Ann and Bob (members), Gus (a
/// guest): their cookies.
struct People {
    owner: String,
    ann: String,
    bob: String,
    gus: String,
}

async fn people(server: &TestServer) -> People {
    People {
        owner: server.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner"),
        ann: server.sign_up("ann", "Ann", PASSWORD).await.expect("ann"),
        bob: server.sign_up("bob", "Bob", PASSWORD).await.expect("bob"),
        gus: server.session("Gus").await,
    }
}

/// `cookie` makes a room with the new-room form: where it sends the browser.
async fn make_room(server: &TestServer, cookie: &str, kind: &str, name: &str) -> (u16, String) {
    let body = form(&[("kind", kind), ("name", name), ("topic", "")]);
    let (status, to, _) = server.post_as("/rooms", Some(cookie), &body).await;
    (status, to)
}

/// The next `mine` frame `client` is sent: the rooms in it.
async fn mine(client: &mut Client) -> Vec<(String, Option<String>)> {
    match client.signal(|m| matches!(m, ServerMsg::Mine { .. })).await {
        ServerMsg::Mine { rooms } => rooms.into_iter().map(|r| (r.room, r.title)).collect(),
        _ => unreachable!(),
    }
}

/// Everything `cookie` (`None`: the operator's token) is answered at each door of `room`, as
/// `(door, status or error code)`, with the words that would tell rooms apart taken out.
async fn doors(server: &TestServer, cookie: Option<&str>, room: &str) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    let auth = match cookie {
        Some(cookie) => format!("Cookie: {cookie}\r\n"),
        None => format!("Authorization: Bearer {TOKEN}\r\n"),
    };
    let get = |path: String| {
        let auth = auth.clone();
        async move {
            let (status, _, body) = server
                .request(&format!(
                    "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
                    server.addr
                ))
                .await;
            (status, body)
        }
    };
    for path in [
        format!("/r/{room}"),
        format!("/r/{room}/about"),
        format!("/r/{room}/edits/1"),
        format!("/r/{room}/people?q=a"),
        format!("/api/rooms/{room}/messages"),
        format!("/api/rooms/{room}/messages/1/versions"),
    ] {
        let (status, body) = get(path.clone()).await;
        let error = serde_json::from_str::<serde_json::Value>(&body)
            .map(|json| json["error"]["code"].to_string())
            .unwrap_or_default();
        seen.push((path.replace(room, "ROOM"), format!("{status} {error}")));
    }
    let events = SseReader::open(
        server.addr,
        &format!("/api/rooms/{room}/events"),
        &auth,
        false,
    )
    .await;
    seen.push(("events".into(), events.status.to_string()));
    let (status, _, json) = server
        .api(
            "POST",
            &format!("/api/rooms/{room}/messages"),
            Some(TOKEN),
            Some(r#"{"body":"hello?"}"#),
        )
        .await;
    seen.push((
        "publish".into(),
        format!("{status} {}", json["error"]["code"]),
    ));
    if let Some(cookie) = cookie {
        // What the person is told of the room: theirs to choose, through the room's door.
        let (status, ..) = server
            .post_as(&format!("/r/{room}/notify"), Some(cookie), "level=every")
            .await;
        seen.push(("notify".into(), status.to_string()));
        let mut socket = Client::connect(server.addr, cookie).await;
        let answer = match socket.try_join(room, true).await {
            Ok(()) => "joined".to_owned(),
            Err((code, message)) => format!("{code} {}", message.replace(room, "ROOM")),
        };
        seen.push(("join".into(), answer));
        let listed = server.rooms_listed(cookie).await;
        seen.push((
            "listed".into(),
            listed.contains(&room.to_owned()).to_string(),
        ));
    }
    seen
}

/// The doors of a private room, for those who may not open it, are the doors of no room; for its
/// members, they open.
async fn private_rooms_are_members_only(a: &TestServer, b: &TestServer) {
    let p = people(a).await;
    let (status, to) = make_room(a, &p.ann, "private", "Launch plans").await;
    assert_eq!(status, 303, "{to}");
    let room = to.strip_prefix("/r/").expect("to the room").to_owned();
    assert!(room.starts_with('~') && room.len() == 21, "{room}");

    // Ann talks in it (on the other node).
    let mut ann = Client::connect(b.addr, &p.ann).await;
    assert_eq!(
        mine(&mut ann).await,
        vec![(room.clone(), Some("Launch plans".into()))]
    );
    ann.join(&room, None).await;
    ann.post_in(&room, "a1", "the launch is on Tuesday").await;

    // Whoever is not in it: every door answers as for a room nobody made.
    for (who, cookie) in [
        ("bob", Some(&p.bob)),
        ("the guest", Some(&p.gus)),
        ("the admin", Some(&p.owner)),
        ("the token", None),
    ] {
        let cookie = cookie.map(String::as_str);
        let there = doors(b, cookie, &room).await;
        let nowhere = doors(b, cookie, MADE_UP).await;
        assert_eq!(there, nowhere, "{who}");
        assert!(
            there.iter().all(|(door, answer)| !answer.starts_with("200")
                && answer != "joined"
                && (door != "listed" || answer == "false")),
            "{who}: {there:?}"
        );
    }
    // Ann may pass each door.
    let hers = doors(b, Some(&p.ann), &room).await;
    for (door, answer) in &hers {
        match door.as_str() {
            "publish" => assert!(
                answer.starts_with("404"),
                "the token writes open rooms only: {answer}"
            ),
            "/r/ROOM/edits/1" => {}
            "join" => assert_eq!(answer, "joined"),
            "listed" => assert_eq!(answer, "true"),
            "notify" => assert_eq!(answer, "303"),
            _ => assert!(answer.starts_with("200"), "{door}: {answer}"),
        }
    }
    // What is sent to every socket never names it.
    let mut bob = Client::connect(a.addr, &p.bob).await;
    let everyone = bob.signal(|m| matches!(m, ServerMsg::Rooms { .. })).await;
    assert!(!format!("{everyone:?}").contains(&room), "{everyone:?}");
    assert_eq!(mine(&mut bob).await, vec![]);

    // A member adds Bob (through node a): his socket on that node is told at once, he may join.
    let add = form(&[("handle", "@Bob")]);
    let (status, ..) = a
        .post_as(&format!("/r/{room}/members"), Some(&p.ann), &add)
        .await;
    assert_eq!(status, 303);
    assert_eq!(
        mine(&mut bob).await,
        vec![(room.clone(), Some("Launch plans".into()))]
    );
    let mut bob_b = Client::connect(b.addr, &p.bob).await;
    bob_b.join(&room, None).await;
    assert_eq!(bob_b.next_message().await.body, "the launch is on Tuesday");
    // A guest cannot be added, having no handle; nobody can add to a room they are not in.
    let (status, ..) = a
        .post_as(
            &format!("/r/{room}/members"),
            Some(&p.owner),
            &form(&[("handle", "owner")]),
        )
        .await;
    assert_eq!(status, 404, "the admin is not a member");

    // The admin removes Bob: his socket in the room, on the other node, closes at once (4003); he
    // comes back without it.
    let bob_id = a.who(&p.bob).await.expect("bob")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let owner_in = a
        .post_as(
            &format!("/r/{room}/remove"),
            Some(&p.owner),
            &form(&[("account", &bob_id)]),
        )
        .await;
    assert_eq!(
        owner_in.0, 404,
        "not a member: the admin is refused as for no room"
    );
    // Ann makes the owner a member, who removes Bob.
    a.post_as(
        &format!("/r/{room}/members"),
        Some(&p.ann),
        &form(&[("handle", "owner")]),
    )
    .await;
    let (status, ..) = a
        .post_as(
            &format!("/r/{room}/remove"),
            Some(&p.owner),
            &form(&[("account", &bob_id)]),
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, audit) = a.get_as("/admin/audit", &p.owner).await;
    assert!(
        audit.contains(&format!("removed Bob (@bob) from {room}")),
        "{audit}"
    );
    let closed = bob_b.close_frame().await.expect("a close frame");
    assert_eq!(u16::from(closed.code), 4003);
    let mut bob_again = Client::connect(b.addr, &p.bob).await;
    assert_eq!(
        bob_again
            .try_join(&room, false)
            .await
            .map_err(|(code, _)| code),
        Err(ErrorCode::NoSuchRoom)
    );
    assert_eq!(
        doors(a, Some(&p.bob), &room).await,
        doors(a, Some(&p.bob), MADE_UP).await
    );

    // Ann leaves: the room is gone for her too.
    let (status, to, _) = a
        .post_as(&format!("/r/{room}/leave"), Some(&p.ann), "")
        .await;
    assert_eq!((status, to.as_str()), (303, "/"));
    assert_eq!(a.get_as(&format!("/r/{room}"), &p.ann).await.0, 404);
}

#[tokio::test]
async fn a_private_room_is_open_to_its_members_only_at_every_door() {
    let (server, _data) = TestServer::start_api(&["--sign-up", "open"]).await;
    private_rooms_are_members_only(&server, &server).await;
}

#[tokio::test]
async fn on_a_cluster_a_private_room_is_open_to_its_members_only_at_every_door_of_every_node() {
    let nodes = TwoNodes::start(&[]).await;
    private_rooms_are_members_only(&nodes.a, &nodes.b).await;
}

/// A direct conversation: one per set of people, in each one's list, titled by the others, and
/// shut to everyone else.
async fn direct_messages(a: &TestServer, b: &TestServer) {
    let p = people(a).await;
    let mut bob = Client::connect(b.addr, &p.bob).await;
    assert_eq!(mine(&mut bob).await, vec![]);
    let start = form(&[("handles", "bob")]);
    let (status, to, _) = a.post_as("/direct", Some(&p.ann), &start).await;
    assert_eq!(status, 303);
    let room = to.strip_prefix("/r/").expect("to the room").to_owned();
    assert!(room.starts_with('@'), "{room}");
    // Bob's socket on the other node has it, called by Ann's name.
    assert_eq!(
        mine(&mut bob).await,
        vec![(room.clone(), Some("Ann".into()))]
    );
    // Started again, by either of them: the same conversation.
    assert_eq!(
        a.post_as("/direct", Some(&p.bob), &form(&[("handles", "@ann")]))
            .await
            .1,
        to
    );
    bob.join(&room, None).await;
    bob.post_in(&room, "b1", "just between us").await;
    let mut ann = Client::connect(a.addr, &p.ann).await;
    ann.join(&room, None).await;
    assert_eq!(ann.next_message().await.body, "just between us");
    for cookie in [&p.owner, &p.gus] {
        assert_eq!(
            doors(a, Some(cookie), &room).await,
            doors(a, Some(cookie), MADE_UP).await
        );
    }
    // A guest starts none, and is in none.
    assert_eq!(a.get_as("/direct", &p.gus).await.0, 403);
    let (_, to, _) = a
        .post_as(
            "/direct",
            Some(&p.ann),
            &form(&[("handles", "nobody-here")]),
        )
        .await;
    assert!(to.starts_with("/direct?error="), "{to}");
}

#[tokio::test]
async fn a_direct_conversation_is_one_per_set_of_people_and_theirs_alone() {
    let (server, _data) = TestServer::start_api(&["--sign-up", "open"]).await;
    direct_messages(&server, &server).await;
}

#[tokio::test]
async fn on_a_cluster_a_direct_conversation_reaches_the_others_list_on_another_node() {
    let nodes = TwoNodes::start(&[]).await;
    direct_messages(&nodes.a, &nodes.b).await;
}

#[tokio::test]
async fn open_rooms_are_made_on_purpose_by_the_roles_allowed_never_by_a_visit() {
    let data = TempDir::new();
    // What a server does by default: members make rooms, guests do not.
    let server = TestServer::start_in(
        data.path(),
        &["--sign-up", "open", "--room-makers", "members"],
    )
    .await;
    let p = people(&server).await;
    // A visit makes nothing: the page offers to make it (a guest is not offered), the join is
    // refused, and no list has it.
    let (status, _, page) = server.get_as("/r/plans", &p.ann).await;
    assert_eq!(status, 200, "a page with a form, offering to make it");
    assert!(page.contains("data-testid=\"create-room\""), "{page}");
    let (status, _, page) = server.get_as("/r/plans", &p.gus).await;
    assert_eq!(status, 404);
    assert!(!page.contains("create-room"), "{page}");
    let mut gus = Client::connect(server.addr, &p.gus).await;
    assert_eq!(
        gus.try_join("plans", false).await.map_err(|(c, _)| c),
        Err(ErrorCode::NoSuchRoom)
    );
    assert_eq!(
        gus.try_join("plans", true).await.map_err(|(c, _)| c),
        Err(ErrorCode::NoSuchRoom),
        "a guest may not make it"
    );
    let (_, to) = make_room(&server, &p.gus, "open", "plans").await;
    assert!(
        to.ends_with("error=not-allowed"),
        "the form refuses a guest too: {to}"
    );
    assert_eq!(server.get_as(&to, &p.gus).await.0, 403);
    assert!(
        !server
            .rooms_listed(&p.ann)
            .await
            .contains(&"plans".to_owned())
    );
    // A member makes it with the page's offer; then everyone, the guest too, may join and write.
    let (status, to) = make_room(&server, &p.ann, "open", "Plans").await;
    assert_eq!((status, to.as_str()), (303, "/r/plans"));
    assert_eq!(gus.try_join("plans", false).await, Ok(()));
    gus.post_in("plans", "g1", "a guest writes in an open room")
        .await;
    assert!(
        server
            .rooms_listed(&p.bob)
            .await
            .contains(&"plans".to_owned())
    );
    // Made twice: the second is told it exists.
    let (_, to) = make_room(&server, &p.bob, "open", "plans").await;
    assert_eq!(to, "/rooms/new?name=plans&error=exists");
    let (_, _, page) = server.get_as(&to, &p.bob).await;
    assert!(page.contains("exists already"), "{page}");
    // Nobody made, nobody in it for a while: it stays (a room made on purpose is not forgotten).
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let (status, ..) = make_room(&server, &p.bob, "open", "quiet").await;
    assert_eq!(status, 303);
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    assert_eq!(server.get_as("/r/quiet", &p.bob).await.0, 200);

    // With `--room-makers admins`, a member is refused; the admin is not.
    drop(server);
    let data = TempDir::new();
    let server = TestServer::start_in(
        data.path(),
        &["--sign-up", "open", "--room-makers", "admins"],
    )
    .await;
    let ann = server.sign_up("ann", "Ann", PASSWORD).await.expect("ann");
    let owner = server.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner");
    let (_, to) = make_room(&server, &ann, "private", "Ann's").await;
    assert!(to.ends_with("error=not-allowed"), "{to}");
    assert_eq!(make_room(&server, &owner, "private", "Board").await.0, 303);
}

async fn archiving(a: &TestServer, b: &TestServer) {
    let p = people(a).await;
    let (status, _) = make_room(a, &p.ann, "open", "old-news").await;
    assert_eq!(status, 303);
    let mut bob = Client::connect(b.addr, &p.bob).await;
    bob.join("old-news", None).await;
    bob.post_in("old-news", "b1", "the last word").await;
    // Only an admin archives.
    let archive = form(&[("archived", "1")]);
    assert_eq!(
        a.post_as("/r/old-news/archive", Some(&p.ann), &archive)
            .await
            .0,
        403
    );
    assert_eq!(
        a.post_as("/r/old-news/archive", Some(&p.owner), &archive)
            .await
            .0,
        303
    );
    // The socket in it, on the other node, is closed and comes back read-only.
    assert_eq!(
        u16::from(bob.close_frame().await.expect("closed").code),
        4003
    );
    let mut bob = Client::connect(b.addr, &p.bob).await;
    bob.join("old-news", None).await;
    assert_eq!(bob.next_message().await.body, "the last word");
    bob.send(&app::protocol::ClientMsg::Send {
        room: "old-news".into(),
        client_id: "b2".into(),
        body: "more?".into(),
        reply_to: None,
    })
    .await;
    let refused = bob.signal(|m| matches!(m, ServerMsg::Error { .. })).await;
    assert!(
        matches!(
            refused,
            ServerMsg::Error {
                code: ErrorCode::Archived,
                ..
            }
        ),
        "{refused:?}"
    );
    let (status, _, json) = a
        .api(
            "POST",
            "/api/rooms/old-news/messages",
            Some(TOKEN),
            Some(r#"{"body":"x"}"#),
        )
        .await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (409, Some("archived"))
    );
    let (status, _, page) = a.get_as("/r/old-news/about", &p.bob).await;
    assert_eq!(status, 200);
    assert!(page.contains("data-testid=\"archived\""), "{page}");
    // Noted in the audit log.
    let (_, _, audit) = a.get_as("/admin/audit", &p.owner).await;
    assert!(audit.contains("archived old-news"), "{audit}");
    // Restored, it takes messages again.
    a.post_as(
        "/r/old-news/archive",
        Some(&p.owner),
        &form(&[("archived", "0")]),
    )
    .await;
    assert_eq!(
        u16::from(bob.close_frame().await.expect("closed").code),
        4003
    );
    let mut bob = Client::connect(b.addr, &p.bob).await;
    bob.join("old-news", None).await;
    bob.post_in("old-news", "b3", "back again").await;
}

#[tokio::test]
async fn an_archived_room_is_read_and_not_written_until_restored() {
    let (server, _data) = TestServer::start_api(&["--sign-up", "open"]).await;
    archiving(&server, &server).await;
}

#[tokio::test]
async fn on_a_cluster_archiving_on_one_node_makes_the_room_read_only_on_another() {
    let nodes = TwoNodes::start(&[]).await;
    archiving(&nodes.a, &nodes.b).await;
}

#[tokio::test]
async fn a_room_hidden_from_ones_list_comes_back_when_opened_and_a_topic_is_set() {
    let (server, _data) = TestServer::start_api(&["--sign-up", "open"]).await;
    let p = people(&server).await;
    make_room(&server, &p.ann, "open", "lunch").await;
    let mut ann = Client::connect(server.addr, &p.ann).await;
    assert_eq!(mine(&mut ann).await, vec![]);
    let (status, to, _) = server.post_as("/r/lunch/leave", Some(&p.ann), "").await;
    assert_eq!((status, to.as_str()), (303, "/"));
    let hidden = match ann.signal(|m| matches!(m, ServerMsg::Mine { .. })).await {
        ServerMsg::Mine { rooms } => rooms,
        _ => unreachable!(),
    };
    assert_eq!(hidden.len(), 1);
    assert!(hidden[0].hidden && hidden[0].room == "lunch", "{hidden:?}");
    // Opened again, it is shown again.
    ann.join("lunch", None).await;
    let mut again = Client::connect(server.addr, &p.ann).await;
    assert_eq!(mine(&mut again).await, vec![]);
    // A topic, of bounded length and no control characters.
    let (status, ..) = server
        .post_as(
            "/r/lunch/topic",
            Some(&p.bob),
            &form(&[("topic", "Where we eat on Fridays")]),
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, page) = server.get_as("/r/lunch/about", &p.ann).await;
    assert!(page.contains("Where we eat on Fridays"), "{page}");
    let (status, ..) = server
        .post_as(
            "/r/lunch/topic",
            Some(&p.bob),
            &form(&[("topic", "a\u{202E}b")]),
        )
        .await;
    assert_eq!(status, 422);
    let (status, ..) = server
        .post_as("/r/lunch/topic", Some(&p.gus), &form(&[("topic", "guest")]))
        .await;
    assert_eq!(status, 403);
}

async fn deleting(a: &TestServer, b: &TestServer) {
    let p = people(a).await;
    // A private room the admin made, with Ann and Bob in it, talking on the other node.
    let (status, to) = make_room(a, &p.owner, "private", "Secret plans").await;
    assert_eq!(status, 303, "{to}");
    let room = to.strip_prefix("/r/").expect("to the room").to_owned();
    for handle in ["ann", "bob"] {
        let add = form(&[("handle", handle)]);
        let (status, ..) = a
            .post_as(&format!("/r/{room}/members"), Some(&p.owner), &add)
            .await;
        assert_eq!(status, 303);
    }
    let mut bob = Client::connect(b.addr, &p.bob).await;
    bob.join(&room, None).await;
    bob.post_in(&room, "b1", "the plan is in the drawer").await;
    let mut ann = Client::connect(a.addr, &p.ann).await;
    assert_eq!(
        mine(&mut ann).await,
        vec![(room.clone(), Some("Secret plans".into()))]
    );
    ann.join(&room, None).await;
    assert_eq!(ann.next_message().await.body, "the plan is in the drawer");
    let delete = format!("/r/{room}/delete");
    let sure = form(&[("sure", "yes")]);
    // Only an admin deletes; and only with the box ticked.
    assert_eq!(a.post_as(&delete, Some(&p.ann), &sure).await.0, 403);
    let (status, to, _) = a.post_as(&delete, Some(&p.owner), "").await;
    assert_eq!(
        (status, to.as_str()),
        (
            303,
            format!("/r/{room}/about?error=sure#delete-title").as_str()
        )
    );
    let (_, _, about) = a.get_as(&format!("/r/{room}/about"), &p.owner).await;
    assert!(about.contains("data-testid=\"delete-room\""), "{about}");
    let (_, _, ann_about) = a.get_as(&format!("/r/{room}/about"), &p.ann).await;
    assert!(
        !ann_about.contains("delete-room"),
        "only admins are offered it"
    );
    let (status, _, json) = a
        .api("GET", &format!("/api/rooms/{room}/messages"), None, None)
        .await;
    assert_eq!(status, 401, "{json}");
    let (status, _, body) = b
        .get_as(&format!("/api/rooms/{room}/messages"), &p.bob)
        .await;
    assert!(
        status == 200 && body.contains("the plan is in the drawer"),
        "{status} {body}"
    );

    // Deleted: both sockets, on both nodes, are put out at once; every door answers as for a
    // room nobody made, for its former members and the admin alike; the lists lose it.
    let (status, to, _) = a.post_as(&delete, Some(&p.owner), &sure).await;
    assert_eq!((status, to.as_str()), (303, "/"));
    for socket in [&mut bob, &mut ann] {
        assert_eq!(
            u16::from(socket.close_frame().await.expect("closed").code),
            4003
        );
    }
    for (who, cookie) in [("bob", &p.bob), ("ann", &p.ann), ("the admin", &p.owner)] {
        for server in [a, b] {
            let there = doors(server, Some(cookie), &room).await;
            let nowhere = doors(server, Some(cookie), MADE_UP).await;
            assert_eq!(there, nowhere, "{who}");
        }
    }
    let mut ann = Client::connect(b.addr, &p.ann).await;
    assert_eq!(mine(&mut ann).await, vec![]);
    // Noted in the audit log, by the title it had.
    let (_, _, audit) = b.get_as("/admin/audit", &p.owner).await;
    assert!(audit.contains("deleted the room"), "{audit}");
    assert!(audit.contains("Secret plans"), "{audit}");

    // An open room: deleted with what it held; its name can be made again, empty.
    assert_eq!(make_room(a, &p.ann, "open", "old-plans").await.0, 303);
    let mut bob = Client::connect(b.addr, &p.bob).await;
    bob.join("old-plans", None).await;
    bob.post_in("old-plans", "b2", "an open secret").await;
    let (status, to, _) = a
        .post_as("/r/old-plans/delete", Some(&p.owner), &sure)
        .await;
    assert_eq!((status, to.as_str()), (303, "/"));
    assert_eq!(
        u16::from(bob.close_frame().await.expect("closed").code),
        4003
    );
    for server in [a, b] {
        let (status, _, body) = server.get_as("/api/rooms/old-plans/messages", &p.bob).await;
        assert_eq!(status, 404, "{body}");
        let (_, _, page) = server.get_as("/r/old-plans", &p.bob).await;
        assert!(page.contains("data-testid=\"no-room\""), "{page}");
        let mut socket = Client::connect(server.addr, &p.bob).await;
        let (code, _) = socket
            .try_join("old-plans", false)
            .await
            .expect_err("no such room");
        assert_eq!(code, ErrorCode::NoSuchRoom);
        assert!(
            !server
                .rooms_listed(&p.bob)
                .await
                .contains(&"old-plans".to_owned())
        );
    }
    assert_eq!(make_room(b, &p.ann, "open", "old-plans").await.0, 303);
    let (status, _, body) = a.get_as("/api/rooms/old-plans/messages", &p.bob).await;
    assert!(
        status == 200 && !body.contains("an open secret"),
        "{status} {body}"
    );
    // The default room is never deleted.
    let (status, ..) = a
        .post_as(
            &format!("/r/{}/delete", app::protocol::DEFAULT_ROOM),
            Some(&p.owner),
            &sure,
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_admin_deletes_a_room_and_every_door_answers_as_for_one_never_made() {
    let (server, _data) = TestServer::start_api(&["--sign-up", "open"]).await;
    deleting(&server, &server).await;
}

#[tokio::test]
async fn on_a_cluster_a_room_deleted_through_one_node_is_gone_on_the_other() {
    let nodes = TwoNodes::start(&[]).await;
    deleting(&nodes.a, &nodes.b).await;
}

#[tokio::test]
async fn on_sqlite_a_deleted_rooms_words_leave_the_files_and_a_backup_from_before_brings_it_back() {
    const WORDS: [&str; 1] = ["walrus-teacup-5581"];
    let data = TempDir::new();
    let flags = ["--api-token", TOKEN, "--sign-up", "open"];
    let mut server = TestServer::start_in(data.path(), &flags).await;
    let p = people(&server).await;
    assert_eq!(make_room(&server, &p.ann, "open", "vault").await.0, 303);
    let mut ann = Client::connect(server.addr, &p.ann).await;
    ann.join("vault", None).await;
    ann.post_in("vault", "a1", WORDS[0]).await;
    let copy = TempDir::new();
    let dest = std::path::Path::new(copy.path()).join("before.db");
    server::log::backup::backup(std::path::Path::new(data.path()), &dest).expect("backed up");

    let deleted = server
        .post_as("/r/vault/delete", Some(&p.owner), &form(&[("sure", "yes")]))
        .await;
    assert_eq!(deleted.0, 303);
    // Gone from the log file and its WAL (deleted with secure_delete, checkpointed once idle).
    let deadline = tokio::time::Instant::now() + crate::common::PATIENCE;
    loop {
        let found = crate::changes::files_holding(std::path::Path::new(data.path()), &WORDS);
        if found.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{found:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(ann);
    server.begin_shutdown();
    server.stopped().await;

    // The backup taken before holds it: restored, the room and its words are back.
    server::log::backup::restore(std::path::Path::new(data.path()), &dest).expect("restored");
    let server = TestServer::start_in(data.path(), &flags).await;
    let owner = server.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner");
    let (status, _, body) = server.get_as("/api/rooms/vault/messages", &owner).await;
    assert!(status == 200 && body.contains(WORDS[0]), "{status} {body}");
}

/// What a door answered: its status, and for a redirect whether it was to signing in.
fn answer_of(status: u16, head_or_location: &str) -> &'static str {
    match status {
        200 => "200",
        303 if head_or_location.contains("/sign-in") => "sign-in",
        303 => "303",
        403 => "403",
        404 => "404",
        _ => "other",
    }
}

#[tokio::test]
async fn the_account_admin_and_moderation_pages_answer_each_role_as_the_table_of_doors_says() {
    let (server, _data) = TestServer::start_api(&["--sign-up", "open"]).await;
    let p = people(&server).await;
    // Mia is a moderator: the owner makes her one.
    let mia = server.sign_up("mia", "Mia", PASSWORD).await.expect("mia");
    let mia_id = server.who(&mia).await.expect("mia")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let promote = form(&[("account", &mia_id), ("role", "moderator")]);
    assert_eq!(
        server
            .post_as("/admin/people/role", Some(&p.owner), &promote)
            .await
            .0,
        303
    );
    let bob_id = server.who(&p.bob).await.expect("bob")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Each door, and what nobody, a guest, a member, a moderator and an admin get (docs/ACCOUNTS.md,
    // "The doors"). A form that passes the door and is then refused for what it says answers with a
    // redirect back to its page ("303"): the door let it through.
    let ignore = form(&[("account", &bob_id), ("ignore", "0"), ("back", "/account")]);
    let wrong_password = form(&[("password", "not the password"), ("messages", "keep")]);
    let bad_bot = form(&[("handle", "x"), ("name", "X"), ("webhook", "")]);
    // An open room everyone may open: its admin doors let admins alone through (deleting it
    // without the box ticked is sent back to its page).
    assert_eq!(make_room(&server, &p.ann, "open", "doors").await.0, 303);
    let doors: [(&str, &str, Option<&str>, [&str; 5]); 17] = [
        // Search: everyone signed in, each finding only what they may read (tests/search.rs).
        (
            "GET",
            "/search?q=doors",
            None,
            ["sign-in", "200", "200", "200", "200"],
        ),
        // Their own mentions, and whom they may mention in a room they may open.
        (
            "GET",
            "/mentions",
            None,
            ["sign-in", "200", "200", "200", "200"],
        ),
        (
            "GET",
            "/r/doors/people?q=a",
            None,
            ["sign-in", "200", "200", "200", "200"],
        ),
        // What each is told of a room they may open: their own choice (tests/notifications.rs;
        // a private room's door is in `doors`).
        (
            "POST",
            "/r/doors/notify",
            Some("level=every"),
            ["sign-in", "303", "303", "303", "303"],
        ),
        (
            "POST",
            "/r/doors/delete",
            Some(""),
            ["sign-in", "403", "403", "403", "303"],
        ),
        (
            "POST",
            "/r/doors/archive",
            Some("archived=0"),
            ["sign-in", "403", "403", "403", "303"],
        ),
        (
            "GET",
            "/account",
            None,
            ["sign-in", "200", "200", "200", "200"],
        ),
        (
            "GET",
            "/admin/people",
            None,
            ["sign-in", "403", "403", "403", "200"],
        ),
        (
            "GET",
            "/admin/audit",
            None,
            ["sign-in", "403", "403", "403", "200"],
        ),
        (
            "GET",
            "/admin/bots",
            None,
            ["sign-in", "403", "403", "403", "200"],
        ),
        (
            "POST",
            "/admin/bots",
            Some(&bad_bot),
            ["sign-in", "403", "403", "403", "303"],
        ),
        (
            "GET",
            "/moderation",
            None,
            ["sign-in", "403", "403", "200", "200"],
        ),
        (
            "GET",
            "/direct",
            None,
            ["sign-in", "403", "200", "200", "200"],
        ),
        (
            "GET",
            "/rooms/new",
            None,
            ["sign-in", "200", "200", "200", "200"],
        ),
        (
            "POST",
            "/account/ignore",
            Some(&ignore),
            ["sign-in", "303", "303", "303", "303"],
        ),
        (
            "POST",
            "/account/delete",
            Some(&wrong_password),
            ["sign-in", "403", "303", "303", "403"],
        ),
        (
            "POST",
            "/account/invitations",
            Some("uses=1&days=1"),
            ["sign-in", "403", "403", "200", "200"],
        ),
    ];
    let who: [Option<&str>; 5] = [None, Some(&p.gus), Some(&p.ann), Some(&mia), Some(&p.owner)];
    let mut wrong = Vec::new();
    for (method, path, body, expected) in doors {
        for (cookie, expected) in who.iter().zip(expected) {
            let got = match (method, body) {
                ("GET", _) => {
                    let (status, head, _) = match cookie {
                        Some(cookie) => server.get_as(path, cookie).await,
                        None => server.get(path).await,
                    };
                    answer_of(status, &head)
                }
                (_, body) => {
                    let (status, to, _) = server
                        .post_as(path, *cookie, body.unwrap_or_default())
                        .await;
                    answer_of(status, &to)
                }
            };
            if got != expected {
                let as_whom = ["nobody", "guest", "member", "moderator", "admin"]
                    [who.iter().position(|c| c == cookie).unwrap_or(0)];
                wrong.push(format!(
                    "{method} {path} as {as_whom}: {got}, not {expected}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
