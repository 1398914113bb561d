//! Mentions (docs/READING.md, "Mentions"), on SQLite and on two nodes: a message that `@mentions`
//! someone who may read its room is counted apart in their unread on every device, and listed on
//! their Mentions page with a link to it; deleting it takes both back; nobody is mentioned in a
//! private room they are not in, nor by their own message.

use std::time::Duration;

use app::protocol::{ClientMsg, ServerMsg};

use crate::common::{Client, OWNER, OWNER_PASSWORD, TestServer, TwoNodes, form};

const PASSWORD: &str = "a long enough password";

/// The `read` frames for `room` that `client` is told, until one says `want` (unread, mentions).
async fn counts(client: &mut Client, room: &str, want: (u32, u32)) {
    let mut seen = Vec::new();
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let read = client
                .signal(|m| matches!(m, ServerMsg::Read { room: r, .. } if r == room))
                .await;
            if let ServerMsg::Read {
                unread, mentions, ..
            } = read
            {
                if (unread, mentions) == want {
                    return;
                }
                seen.push((unread, mentions));
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "told {seen:?} for {room}, never {want:?}");
}

/// The mentions `cookie`'s Mentions page lists: room and seq, newest first.
async fn listed(server: &TestServer, cookie: &str) -> Vec<(String, u64)> {
    let (status, _, page) = server.get_as("/mentions", cookie).await;
    assert_eq!(status, 200, "{page}");
    page.split("data-testid=\"mention\"")
        .skip(1)
        .map(|part| {
            let attr = |name: &str| {
                let from = part.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
                part[from..from + part[from..].find('"').expect("end")].to_owned()
            };
            (attr("data-room"), attr("data-seq").parse().expect("seq"))
        })
        .collect()
}

async fn mentions(a: &TestServer, b: &TestServer) {
    let ann = a.sign_up("ann", "Ann Smith", PASSWORD).await.expect("ann");
    let bob = a.sign_up("bob", "Bob", PASSWORD).await.expect("bob");
    let cat = a.sign_up("cat", "Cat", PASSWORD).await.expect("cat");
    let news = form(&[("kind", "open"), ("name", "news"), ("topic", "")]);
    assert_eq!(a.post_as("/rooms", Some(&ann), &news).await.0, 303);
    // Ann has read the room (she opened it): it is one she counts.
    let mut laptop = Client::connect(a.addr, &ann).await;
    laptop.join("news", None).await;
    laptop
        .send(&ClientMsg::Read {
            room: "news".into(),
            seq: 0,
            rewind: false,
        })
        .await;
    counts(&mut laptop, "news", (0, 0)).await;
    drop(laptop);

    // Her phone, on the other node, has no room open.
    let mut phone = Client::connect(b.addr, &ann).await;
    counts(&mut phone, "news", (0, 0)).await;
    let mut bob_socket = Client::connect(a.addr, &bob).await;
    bob_socket.join("news", None).await;
    let called = bob_socket
        .post_in("news", "b1", "hey @ann, have a look")
        .await;
    bob_socket.post_in("news", "b2", "and everyone else").await;
    bob_socket.post_in("news", "b3", "me, @bob, again").await;
    counts(&mut phone, "news", (3, 1)).await;
    assert_eq!(listed(a, &ann).await, vec![("news".to_owned(), called)]);
    assert_eq!(listed(b, &bob).await, vec![]);

    // Deleted, it is no longer a mention.
    let unsay = ClientMsg::Delete {
        room: "news".into(),
        client_id: "b4".into(),
        target: called,
    };
    bob_socket.store(&unsay, "b4").await.expect("deleted");
    counts(&mut phone, "news", (2, 0)).await;
    assert_eq!(listed(b, &ann).await, vec![]);

    // In a private room Cat is not in, @cat mentions nobody; Ann, a member, is.
    let owner = a.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner");
    let plans = a.private_room(&owner, "Plans", &["ann", "bob"]).await;
    bob_socket.join(&plans, None).await;
    let both = bob_socket
        .post_in(&plans, "b5", "@cat @ann: the plan")
        .await;
    counts(&mut phone, &plans, (1, 1)).await;
    assert_eq!(listed(a, &ann).await, vec![(plans.clone(), both)]);
    assert_eq!(listed(a, &cat).await, vec![]);
}

#[tokio::test]
async fn on_sqlite_a_mention_is_counted_apart_and_listed() {
    let (server, _data) = TestServer::start_api(&["--sign-up", "open"]).await;
    mentions(&server, &server).await;
}

#[tokio::test]
async fn on_a_cluster_a_mention_is_counted_on_the_other_node_too() {
    let nodes = TwoNodes::start(&[]).await;
    mentions(&nodes.a, &nodes.b).await;
}

/// Who the `@` completion offers in #general for `q`, as `cookie` asks: (handle, name).
async fn offered(server: &TestServer, cookie: &str, q: &str) -> Vec<(String, String)> {
    let (status, _, body) = server
        .get_as(&format!("/r/general/people?q={q}"), cookie)
        .await;
    assert_eq!(status, 200, "{body}");
    let offered: Vec<serde_json::Value> = serde_json::from_str(&body).expect("JSON");
    offered
        .iter()
        .map(|p| (p["handle"].to_string(), p["name"].to_string()))
        .collect()
}

/// The completion reads every account from what the node kept a moment ago, not once per
/// keystroke; what changed on this node is offered at once: a new account, a new name.
#[tokio::test]
async fn the_completion_offers_an_account_made_or_renamed_here_at_once() {
    let (server, _data) = TestServer::start_api(&["--sign-up", "open"]).await;
    let ann = server.sign_up("ann", "Ann", PASSWORD).await.expect("ann");
    assert_eq!(offered(&server, &ann, "bo").await, vec![]);
    let bob = server
        .sign_up("bob", "Bob Stone", PASSWORD)
        .await
        .expect("bob");
    let bob_is = |name: &str| vec![("\"bob\"".to_owned(), format!("\"{name}\""))];
    assert_eq!(offered(&server, &ann, "bo").await, bob_is("Bob Stone"));
    server.rename(&bob, "Robert Zed").await;
    assert_eq!(offered(&server, &ann, "ze").await, bob_is("Robert Zed"));
    assert_eq!(offered(&server, &ann, "st").await, vec![]);
}
