//! What a person decides for themselves (docs/ACCOUNTS.md, "Leaving"): ignoring someone (kept with
//! their account, so every device folds that person's messages away), and deleting their own
//! account — signed out everywhere at once, their handle free again, their messages kept (marked
//! as from a deleted account) or deleted from every room, on SQLite and on a cluster on Redis.
//! Guests are marked by their ids.

use std::time::Duration;

use app::protocol::ClientMsg;

use crate::common::{Client, OWNER, OWNER_PASSWORD, PATIENCE, TestServer, TwoNodes, form};

const PASSWORD: &str = "a long enough password";

/// `GET /session` as `cookie`, as JSON (`Null` for nobody).
async fn session(server: &TestServer, cookie: &str) -> serde_json::Value {
    let (status, _, body) = server.get_as("/session", cookie).await;
    match status {
        200 => serde_json::from_str(&body).expect("JSON"),
        _ => serde_json::Value::Null,
    }
}

fn id_of(session: &serde_json::Value) -> String {
    session["you"]["id"].as_str().expect("an id").to_owned()
}

#[tokio::test]
async fn ignoring_someone_is_kept_with_the_account_and_undone_at_will() {
    let (server, _data) = TestServer::start_api(&["--sign-up", "open"]).await;
    let ann = server.sign_up("ann", "Ann", PASSWORD).await.expect("ann");
    let bob = server.sign_up("bob", "Bob", PASSWORD).await.expect("bob");
    let bob_id = id_of(&session(&server, &bob).await);
    let mut bob_socket = Client::connect(server.addr, &bob).await;
    bob_socket.join("town", None).await;
    let seq = bob_socket.post_in("town", "b1", "something annoying").await;

    // Bob's message's page offers Ann to ignore him; then to stop.
    let page = format!("/r/town/messages/{seq}");
    let (_, _, html) = server.get_as(&page, &ann).await;
    assert!(html.contains("Ignore Bob"), "{html}");
    let ignore = form(&[("account", &bob_id), ("ignore", "1"), ("back", &page)]);
    let (status, to, _) = server.post_as("/account/ignore", Some(&ann), &ignore).await;
    assert_eq!((status, to.as_str()), (303, page.as_str()));
    assert_eq!(
        session(&server, &ann).await["ignored"],
        serde_json::json!([bob_id])
    );
    // Ann's choice alone: Bob ignores nobody, and is not told.
    assert_eq!(
        session(&server, &bob).await["ignored"],
        serde_json::json!([])
    );
    let (_, _, html) = server.get_as(&page, &ann).await;
    assert!(html.contains("Stop ignoring Bob"), "{html}");
    let (_, _, account) = server.get_as("/account", &ann).await;
    assert!(account.contains("data-testid=\"ignored\""), "{account}");
    // Another device of Ann's is told the same.
    let other_device = server.sign_in("ann", PASSWORD).await.expect("ann again");
    assert_eq!(
        session(&server, &other_device).await["ignored"],
        serde_json::json!([bob_id])
    );
    // Nobody made up, and not oneself.
    let made_up = form(&[("account", "0123456789abcdef"), ("ignore", "1")]);
    assert_eq!(
        server
            .post_as("/account/ignore", Some(&ann), &made_up)
            .await
            .0,
        404
    );
    let ann_id = id_of(&session(&server, &ann).await);
    let herself = form(&[("account", &ann_id), ("ignore", "1")]);
    assert_eq!(
        server
            .post_as("/account/ignore", Some(&ann), &herself)
            .await
            .0,
        422
    );
    let stop = form(&[("account", &bob_id), ("ignore", "0"), ("back", "/account")]);
    assert_eq!(
        server.post_as("/account/ignore", Some(&ann), &stop).await.0,
        303
    );
    assert_eq!(
        session(&server, &ann).await["ignored"],
        serde_json::json!([])
    );
}

/// The history of `room` as `cookie` reads it through the API.
async fn history(server: &TestServer, cookie: &str, room: &str) -> Vec<serde_json::Value> {
    let path = format!("/api/rooms/{room}/messages?limit=200");
    let (status, _, body) = server.get_as(&path, cookie).await;
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    page["messages"].as_array().expect("messages").clone()
}

async fn deleting_accounts(a: &TestServer, b: &TestServer) {
    let owner = a.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner");
    let ann = a.sign_up("ann", "Ann", PASSWORD).await.expect("ann");
    let cat = a.sign_up("cat", "Cat", PASSWORD).await.expect("cat");
    let bob = a.sign_up("bob", "Bob", PASSWORD).await.expect("bob");
    let (ann_id, cat_id) = (
        id_of(&session(a, &ann).await),
        id_of(&session(a, &cat).await),
    );

    let mut ann_socket = Client::connect(b.addr, &ann).await;
    ann_socket.join("town", None).await;
    ann_socket.post_in("town", "a1", "ann was here").await;
    let mut cat_socket = Client::connect(b.addr, &cat).await;
    cat_socket.join("town", None).await;
    cat_socket.post_in("town", "c1", "cat was here").await;
    let c2 = cat_socket.post_in("town", "c2", "and here").await;
    let edit = ClientMsg::Edit {
        room: "town".into(),
        client_id: "c3".into(),
        target: c2,
        body: "cat was here, edited".into(),
    };
    cat_socket.store(&edit, "c3").await.expect("edited");
    let (_, to, _) = a
        .post_as("/direct", Some(&cat), &form(&[("handles", "bob")]))
        .await;
    let direct = to.strip_prefix("/r/").expect("to the room").to_owned();
    cat_socket.join(&direct, None).await;
    cat_socket.post_in(&direct, "c4", "just between us").await;

    // The owner (the only admin) is not deleted here; a wrong password deletes nothing.
    let keep = |password: &str| form(&[("password", password), ("messages", "keep")]);
    assert_eq!(
        a.post_as("/account/delete", Some(&owner), &keep(OWNER_PASSWORD))
            .await
            .0,
        403
    );
    let (status, to, _) = a
        .post_as("/account/delete", Some(&ann), &keep("wrong one"))
        .await;
    assert_eq!(
        (status, to.as_str()),
        (303, "/account?error=delete#delete-title")
    );
    assert!(session(a, &ann).await.is_object(), "still signed in");

    // Ann deletes hers, keeping what she wrote: signed out everywhere at once (her socket on the
    // other node too), her handle free again, her messages there, marked for every reader.
    let (status, _, _) = a
        .post_as("/account/delete", Some(&ann), &keep(PASSWORD))
        .await;
    assert_eq!(status, 200);
    let closed = tokio::time::timeout(PATIENCE, ann_socket.close_frame())
        .await
        .expect("closed in time")
        .expect("a close frame");
    assert_eq!(u16::from(closed.code), 4001);
    assert_eq!(session(b, &ann).await, serde_json::Value::Null);
    assert_eq!(
        a.sign_in("ann", PASSWORD).await,
        None,
        "no password any more"
    );
    let town = history(b, &bob, "town").await;
    assert!(town.iter().any(|m| m["body"] == "ann was here"), "kept");
    let marks = async {
        loop {
            let gone = session(b, &bob).await["gone"].clone();
            if gone["deleted"] == serde_json::json!([ann_id]) {
                return gone;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // Another node reads the list again within 10 s (people/marks.rs): a generous bound.
    let gone = tokio::time::timeout(Duration::from_secs(15), marks)
        .await
        .expect("marked");
    assert_eq!(gone["deactivated"], serde_json::json!([]));
    let again = a
        .sign_up("ann", "Another Ann", PASSWORD)
        .await
        .expect("the handle is free");
    assert_ne!(id_of(&session(a, &again).await), ann_id, "someone else");

    // Cat deletes hers with what she wrote: every message of hers, in every room, is deleted.
    let delete = form(&[("password", PASSWORD), ("messages", "delete")]);
    assert_eq!(
        a.post_as("/account/delete", Some(&cat), &delete).await.0,
        200
    );
    let erased = async {
        loop {
            let town = history(b, &bob, "town").await;
            let direct_history = history(b, &bob, &direct).await;
            let cats: Vec<_> = town
                .iter()
                .chain(direct_history.iter())
                .filter(|m| m["author"]["id"] == cat_id.as_str())
                .collect();
            if cats.len() == 3
                && cats
                    .iter()
                    .all(|m| m["body"] == "" && m["deleted"].is_object())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(PATIENCE, erased)
        .await
        .expect("erased");
    // Her edit's earlier text is gone from the server too.
    let versions = a
        .get_as(&format!("/api/rooms/town/messages/{c2}/versions"), &bob)
        .await;
    assert!(!versions.2.contains("and here"), "{}", versions.2);
    assert!(
        history(b, &bob, "town")
            .await
            .iter()
            .any(|m| m["body"] == "ann was here")
    );
    let (_, _, audit) = a.get_as("/admin/audit", &owner).await;
    assert!(audit.contains("data-action=\"delete_account\""), "{audit}");
}

#[tokio::test]
async fn deleting_ones_account_keeps_or_deletes_what_one_wrote() {
    let (server, _data) = TestServer::start_api(&["--sign-up", "open"]).await;
    deleting_accounts(&server, &server).await;
}

#[tokio::test]
async fn on_a_cluster_a_deleted_account_is_gone_on_every_node() {
    let nodes = TwoNodes::start(&[]).await;
    deleting_accounts(&nodes.a, &nodes.b).await;
}

#[tokio::test]
async fn a_guest_s_id_says_it_is_a_guest() {
    let server = TestServer::start().await;
    let guest = server.session("Gus").await;
    let id = id_of(&session(&server, &guest).await);
    assert!(id.starts_with("guest-"), "{id}");
}
