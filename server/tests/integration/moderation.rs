//! Moderation (docs/ACCOUNTS.md, "Moderation"), on SQLite and on a cluster on Redis: a moderator
//! (or an admin) removes anyone's message, which every reader then shows as removed by a moderator,
//! on every node and in the history; a member removes only their own; nobody edits another's; an
//! admin makes a member a moderator, and back; anyone reports a message, moderators see the
//! reports, remove or let be; a moderator mutes someone in a room for a while; all of it in the
//! audit log an admin reads.

use app::protocol::{ChatMessage, ClientMsg, ErrorCode, MessageKind, ServerMsg};

use crate::common::{Client, OWNER, OWNER_PASSWORD, TOKEN, TestServer, TwoNodes, form};

const PASSWORD: &str = "a long enough password";

fn delete(target: u64, client_id: &str) -> ClientMsg {
    ClientMsg::Delete {
        room: "town".into(),
        client_id: client_id.into(),
        target,
    }
}

/// The next change entry `client` is sent, skipping the rest.
async fn next_change(client: &mut Client) -> app::protocol::ChangeEntry {
    loop {
        if let ServerMsg::Change(change) = client.recv().await {
            return change;
        }
    }
}

async fn moderators_remove_messages(a: &TestServer, b: &TestServer) {
    let owner = a.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner");
    let ann = a.sign_up("ann", "Ann", PASSWORD).await.expect("ann");
    let bob = a.sign_up("bob", "Bob", PASSWORD).await.expect("bob");
    let mia = a.sign_up("mia", "Mia", PASSWORD).await.expect("mia");
    let id = |json: Option<serde_json::Value>| {
        json.expect("signed in")["id"]
            .as_str()
            .expect("id")
            .to_owned()
    };
    let (ann_id, mia_id) = (id(a.who(&ann).await), id(a.who(&mia).await));

    let mut ann_socket = Client::connect(a.addr, &ann).await;
    ann_socket.join("town", None).await;
    let spam = ann_socket.post_in("town", "a1", "buy cheap watches").await;
    let mine = ann_socket.post_in("town", "a2", "sorry, wrong room").await;

    // A member removes only their own message, and edits nobody else's.
    let mut bob_socket = Client::connect(b.addr, &bob).await;
    bob_socket.join("town", None).await;
    assert_eq!(
        bob_socket.store(&delete(spam, "b1"), "b1").await,
        Err(ErrorCode::NotYours)
    );

    // The admin makes Mia a moderator (a member may not; nor may Mia make herself one).
    let make = form(&[("account", &mia_id), ("role", "moderator")]);
    assert_eq!(
        a.post_as("/admin/people/role", Some(&bob), &make).await.0,
        403
    );
    assert_eq!(
        a.post_as("/admin/people/role", Some(&owner), &make).await.0,
        303
    );
    let (_, _, page) = a.get_as("/admin/people", &owner).await;
    assert!(page.contains("Make member: Mia"), "{page}");

    // Mia, on the other node, removes Ann's message: every reader is told, as hers.
    let mut mia_socket = Client::connect(b.addr, &mia).await;
    mia_socket.join("town", None).await;
    let removal = mia_socket
        .store(&delete(spam, "m1"), "m1")
        .await
        .expect("removed");
    let seen = next_change(&mut ann_socket).await;
    assert_eq!(
        (seen.seq, seen.target, seen.kind),
        (removal, spam, MessageKind::Moderation)
    );
    assert_eq!(seen.author.id, mia_id);
    // Not an edit, though.
    let edit = ClientMsg::Edit {
        room: "town".into(),
        client_id: "m2".into(),
        target: mine,
        body: "rewritten".into(),
    };
    assert_eq!(
        mia_socket.store(&edit, "m2").await,
        Err(ErrorCode::NotYours)
    );
    // Ann still deletes her own.
    ann_socket
        .store(&delete(mine, "a3"), "a3")
        .await
        .expect("deleted");

    // The history says who removed what: the moderator, not the author.
    let (status, _, json) = a
        .api("GET", "/api/rooms/town/messages", Some(TOKEN), None)
        .await;
    assert_eq!(status, 200, "{json}");
    let messages: Vec<ChatMessage> =
        serde_json::from_value(json["messages"].clone()).expect("messages");
    let by = |seq: u64| {
        let message = messages.iter().find(|m| m.seq == seq).expect("kept");
        assert!(message.body.is_empty(), "its words are gone");
        message.deleted.as_ref().expect("deleted").id.clone()
    };
    assert_eq!(by(spam), mia_id);
    assert_eq!(by(mine), ann_id);

    // The admin reads what was done, and by whom; nobody else may.
    let (status, _, page) = a.get_as("/admin/audit", &owner).await;
    assert_eq!(status, 200);
    let removal = format!("removed message {spam} in town");
    assert!(page.contains(&removal), "{page}");
    assert!(page.contains("made Mia (@mia) a moderator"), "{page}");
    assert_eq!(a.get_as("/admin/audit", &mia).await.0, 403);
    // An author's own deletion is not moderation.
    assert!(
        !page.contains(&format!("removed message {mine} ")),
        "{page}"
    );

    // Made a member again, she removes nobody's message from her next connection on.
    let back = form(&[("account", &mia_id), ("role", "member")]);
    assert_eq!(
        a.post_as("/admin/people/role", Some(&owner), &back).await.0,
        303
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let other = ann_socket.post_in("town", "a4", "one more").await;
    let mut mia_again = Client::connect(b.addr, &mia).await;
    mia_again.join("town", None).await;
    assert_eq!(
        mia_again.store(&delete(other, "m3"), "m3").await,
        Err(ErrorCode::NotYours)
    );
}

#[tokio::test]
async fn a_moderator_removes_anyones_message_and_a_member_only_their_own() {
    let (server, _data) = TestServer::start_api(&["--sign-up", "open"]).await;
    moderators_remove_messages(&server, &server).await;
}

#[tokio::test]
async fn on_a_cluster_a_moderators_removal_on_one_node_reaches_the_other() {
    let nodes = TwoNodes::start(&[]).await;
    moderators_remove_messages(&nodes.a, &nodes.b).await;
}

async fn reports_and_mutes(a: &TestServer, b: &TestServer) {
    let owner = a.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner");
    let ann = a.sign_up("ann", "Ann", PASSWORD).await.expect("ann");
    let bob = a.sign_up("bob", "Bob", PASSWORD).await.expect("bob");
    let mut ann_socket = Client::connect(b.addr, &ann).await;
    ann_socket.join("town", None).await;
    let rude = ann_socket.post_in("town", "a1", "you are all idiots").await;
    let fine = ann_socket.post_in("town", "a2", "just kidding").await;

    // Bob reports both, the first twice: one report each. Nobody may report what they cannot read.
    for (seq, reason) in [(rude, "insults"), (rude, "insults again"), (fine, "meh")] {
        let path = format!("/r/town/messages/{seq}/report");
        let (status, to, _) = a
            .post_as(&path, Some(&bob), &form(&[("reason", reason)]))
            .await;
        assert_eq!(
            (status, to),
            (303, format!("/r/town/messages/{seq}?done=reported"))
        );
    }
    let path = format!("/r/~0123456789abcdef0123/messages/{rude}/report");
    assert_eq!(
        a.post_as(&path, Some(&bob), &form(&[("reason", "x")]))
            .await
            .0,
        404
    );
    // Members see no queue; the admin sees two reports, with the words and who reported them.
    assert_eq!(a.get_as("/moderation", &bob).await.0, 403);
    let (status, _, page) = b.get_as("/moderation", &owner).await;
    assert_eq!(status, 200);
    assert_eq!(page.matches("data-testid=\"report\"").count(), 2, "{page}");
    assert!(
        page.contains("you are all idiots") && page.contains("Bob: insults"),
        "{page}"
    );
    // A member's page of the message has no moderator's tools; the admin's has.
    let (_, _, page) = a.get_as(&format!("/r/town/messages/{rude}"), &bob).await;
    assert!(
        page.contains("report-form") && !page.contains("data-testid=\"remove\""),
        "{page}"
    );
    let (_, _, page) = a.get_as(&format!("/r/town/messages/{rude}"), &owner).await;
    assert!(page.contains("data-testid=\"remove\""), "{page}");

    // Removed from its page: gone for every reader (on the other node too), its report closed.
    let (status, ..) = a
        .post_as(&format!("/r/town/messages/{rude}/remove"), Some(&bob), "")
        .await;
    assert_eq!(status, 403);
    let (status, ..) = a
        .post_as(&format!("/r/town/messages/{rude}/remove"), Some(&owner), "")
        .await;
    assert_eq!(status, 303);
    let seen = next_change(&mut ann_socket).await;
    assert_eq!((seen.target, seen.kind), (rude, MessageKind::Moderation));
    // The other is let be: the queue is empty.
    let body = form(&[("room", "town"), ("seq", &fine.to_string())]);
    assert_eq!(
        a.post_as("/moderation/dismiss", Some(&owner), &body)
            .await
            .0,
        303
    );
    let (_, _, page) = a.get_as("/moderation", &owner).await;
    assert!(page.contains("Nothing reported."), "{page}");

    // Ann is muted in town for an hour: her socket there (on the other node) closes, and comes back
    // read-only; another room is not affected.
    let mute = form(&[("minutes", "60")]);
    assert_eq!(
        a.post_as(&format!("/r/town/messages/{fine}/mute"), Some(&bob), &mute)
            .await
            .0,
        403
    );
    let (status, ..) = a
        .post_as(
            &format!("/r/town/messages/{fine}/mute"),
            Some(&owner),
            &mute,
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(
        u16::from(ann_socket.close_frame().await.expect("closed").code),
        4003
    );
    let mut ann_again = Client::connect(b.addr, &ann).await;
    ann_again.join("town", None).await;
    let said = ClientMsg::Send {
        room: "town".into(),
        client_id: "a3".into(),
        body: "let me speak".into(),
        reply_to: None,
    };
    assert_eq!(ann_again.store(&said, "a3").await, Err(ErrorCode::Muted));
    ann_again.join("elsewhere", None).await;
    ann_again
        .post_in("elsewhere", "a4", "still free here")
        .await;

    let (_, _, audit) = a.get_as("/admin/audit", &owner).await;
    for done in [
        format!("removed message {rude} in town"),
        format!("let message {fine} in town be"),
        "muted Ann (@ann) in town for 60 min".to_owned(),
    ] {
        assert!(audit.contains(&done), "{done}: {audit}");
    }
}

#[tokio::test]
async fn reports_reach_the_moderators_who_remove_or_let_be_and_mute_for_a_while() {
    let (server, _data) = TestServer::start_api(&["--sign-up", "open"]).await;
    reports_and_mutes(&server, &server).await;
}

#[tokio::test]
async fn on_a_cluster_reports_and_mutes_hold_on_every_node() {
    let nodes = TwoNodes::start(&[]).await;
    reports_and_mutes(&nodes.a, &nodes.b).await;
}

/// Sends `body` to `town` as `client`: stored (its seq) or refused (the code).
async fn say(client: &mut Client, client_id: &str, body: &str) -> Result<u64, ErrorCode> {
    let send = ClientMsg::Send {
        room: "town".into(),
        client_id: client_id.into(),
        body: body.into(),
        reply_to: None,
    };
    client.store(&send, client_id).await
}

#[tokio::test]
async fn who_may_call_on_the_whole_room_is_a_role_setting() {
    // By default members may, guests may not.
    let (server, _data) = TestServer::start_api(&["--sign-up", "open"]).await;
    let ann = server.sign_up("ann", "Ann", PASSWORD).await.expect("ann");
    let mut ann_socket = Client::connect(server.addr, &ann).await;
    ann_socket.join("town", None).await;
    let mut guest = Client::connect(server.addr, &server.session("Gus").await).await;
    guest.join("town", None).await;
    assert_eq!(
        say(&mut guest, "g1", "@room free pizza").await,
        Err(ErrorCode::NotAllowed)
    );
    // Not hidden past the handles a message's mentions are looked up for, nor by its case.
    let padded: String = (0..12).map(|i| format!("@p{i} ")).collect();
    assert_eq!(
        say(&mut guest, "g2", &format!("{padded} @ROOM")).await,
        Err(ErrorCode::NotAllowed)
    );
    assert_eq!(
        say(&mut guest, "g3", "a room, @roomy, mail@room")
            .await
            .map(|_| ()),
        Ok(())
    );
    assert!(
        say(&mut ann_socket, "a1", "@room lunch at noon")
            .await
            .is_ok()
    );
    // No handle can be the word.
    let taken = form(&[("handle", "room"), ("name", "Room"), ("password", PASSWORD)]);
    let (_, to, _) = server.post_as("/sign-up", None, &taken).await;
    assert!(to.contains("error=handle"), "{to}");

    // Moderators and admins only: a member is refused, and nothing of it is stored.
    let (strict, _data) =
        TestServer::start_api(&["--sign-up", "open", "--room-mentions", "moderators"]).await;
    let owner = strict.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner");
    let bea = strict.sign_up("bea", "Bea", PASSWORD).await.expect("bea");
    let mut bea_socket = Client::connect(strict.addr, &bea).await;
    bea_socket.join("town", None).await;
    assert_eq!(
        say(&mut bea_socket, "b1", "@room everyone look").await,
        Err(ErrorCode::NotAllowed)
    );
    let mut owner_socket = Client::connect(strict.addr, &owner).await;
    owner_socket.join("town", None).await;
    let said = say(&mut owner_socket, "o1", "@room the office is closed").await;
    let (_, _, page) = strict.get_as("/api/rooms/town/messages", &owner).await;
    assert!(!page.contains("everyone look"), "{page}");
    assert!(
        said.is_ok() && page.contains("the office is closed"),
        "{page}"
    );
    // A bot counts as a member here.
    let (_, bot) = crate::bots::make_bot(&strict, &owner, "helper", "").await;
    let add = form(&[("handle", "helper")]);
    assert_eq!(
        strict
            .post_as("/r/town/members", Some(&owner), &add)
            .await
            .0,
        303
    );
    let (status, answer) = crate::bots::bot_posts(&strict, &bot, "town", "@room deploy done").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("not_allowed"))
    );
    // The operator's token announces as it always did.
    let json = serde_json::json!({ "body": "@room maintenance at six" }).to_string();
    let (status, _, _) = strict
        .api("POST", "/api/rooms/town/messages", Some(TOKEN), Some(&json))
        .await;
    assert_eq!(status, 201);
}
