//! Bots (docs/BOTS.md), on SQLite and on a cluster on Redis: an admin makes a bot and gets its
//! token once; the bot posts, edits and reacts through the HTTP API as itself, only in the rooms
//! people added it to (every other room answers as missing, or for an open room, "not a member");
//! a revoked token or a deactivated bot is refused at once, on every node. Webhooks: a mention of a
//! bot, or a message in a direct conversation with it, is POSTed to its webhook, signed, retried
//! a bounded number of times, never twice for one message; its answer is posted as the bot's
//! reply; a URL at a host the operator did not allow is never taken.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use app::protocol::{ChatMessage, ClientMsg, MessageKind, ServerMsg};
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::post,
};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::common::{Client, OWNER, OWNER_PASSWORD, PATIENCE, TOKEN, TestServer, TwoNodes, form};

const PASSWORD: &str = "a long enough password";

const METRICS_TOKEN: &str = "metrics-token-for-the-bots-tests";

/// The `value` of the first element whose attributes include `marker`.
fn value_after(page: &str, marker: &str) -> String {
    let at = page
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {page}"));
    let start = page[..at].rfind('<').expect("an element");
    let end = at + page[at..].find('>').expect("the element's end");
    let tag = &page[start..end];
    let value = tag.find("value=\"").expect("a value") + "value=\"".len();
    let len = tag[value..].find('"').expect("the value's end");
    tag[value..value + len].to_owned()
}

/// Makes a bot as `admin` (with a webhook URL, or none): its id and its first token.
pub async fn make_bot(
    server: &TestServer,
    admin: &str,
    handle: &str,
    webhook: &str,
) -> (String, String) {
    let body = form(&[("handle", handle), ("name", "Helper"), ("webhook", webhook)]);
    let headers = format!("Cookie: {admin}\r\n");
    let (status, _, page) = server.post_form_with("/admin/bots", &headers, &body).await;
    assert_eq!(status, 200, "{page}");
    let token = value_after(&page, "data-testid=\"bot-token\"");
    let start = page.find("href=\"/admin/bots/").expect("the bot's page") + 18;
    let id = page[start..start + page[start..].find('"').expect("end")].to_owned();
    (id, token)
}

/// Posts `body` to `room` as `token`: the status and the answer.
pub async fn bot_posts(
    server: &TestServer,
    token: &str,
    room: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let json = serde_json::json!({ "body": body, "author_name": "Not Me" }).to_string();
    let path = format!("/api/rooms/{room}/messages");
    let (status, _, answer) = server.api("POST", &path, Some(token), Some(&json)).await;
    (status, answer)
}

/// The next chat message by `author` that `client` is sent, skipping everything else.
async fn next_from(client: &mut Client, author: &str) -> ChatMessage {
    loop {
        if let ServerMsg::Message(msg) = client.recv().await
            && msg.author.id == author
        {
            return msg;
        }
    }
}

async fn bots_write_only_where_added(a: &TestServer, b: &TestServer) {
    let owner = a.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner");
    let ann = a.sign_up("ann", "Ann", PASSWORD).await.expect("ann");
    // Only an admin makes bots, or sees them.
    assert_eq!(a.get_as("/admin/bots", &ann).await.0, 403);
    let body = form(&[("handle", "sneaky"), ("name", "Sneaky"), ("webhook", "")]);
    assert_eq!(a.post_as("/admin/bots", Some(&ann), &body).await.0, 403);
    let (bot_id, token) = make_bot(a, &owner, "helper", "").await;
    assert!(token.starts_with("herald_bot_"), "{token}");
    // The page lists it; the token itself is never shown again.
    let (_, _, listed) = a.get_as("/admin/bots", &owner).await;
    assert!(listed.contains("@helper"), "{listed}");
    let (_, _, bot_page) = a.get_as(&format!("/admin/bots/{bot_id}"), &owner).await;
    assert!(!bot_page.contains(&token), "the token is shown once");

    // An open room it is not in: refused, as not a member; a private one: as missing.
    let mut ann_socket = Client::connect(b.addr, &ann).await;
    ann_socket.join("town", None).await;
    let (status, answer) = bot_posts(b, &token, "town", "hello").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("not_a_member"))
    );
    let private = form(&[("kind", "private"), ("name", "plans"), ("topic", "")]);
    let (_, to, _) = a.post_as("/rooms", Some(&ann), &private).await;
    let secret_room = to.strip_prefix("/r/").expect("to the room").to_owned();
    let missing = bot_posts(b, &token, &secret_room, "hello").await;
    let never_made = bot_posts(b, &token, "~0123456789abcdef0123", "hello").await;
    let code = |answer: &serde_json::Value| answer["error"]["code"].clone();
    assert_eq!(
        (missing.0, code(&missing.1)),
        (never_made.0, code(&never_made.1))
    );
    assert_eq!(missing.0, 404);
    let events = format!("/api/rooms/{secret_room}/events");
    assert_eq!(b.api("GET", &events, Some(&token), None).await.0, 404);
    let town_events = "/api/rooms/town/events";
    assert_eq!(b.api("GET", town_events, Some(&token), None).await.0, 404);
    let history = format!("/api/rooms/{secret_room}/messages");
    assert_eq!(b.api("GET", &history, Some(&token), None).await.0, 404);
    assert_eq!(
        b.api("GET", "/api/rooms/town/messages", Some(&token), None)
            .await
            .0,
        404
    );
    let (_, _, rooms) = b.api("GET", "/api/rooms", Some(&token), None).await;
    assert_eq!(
        rooms["rooms"],
        serde_json::json!([]),
        "a bot lists only its rooms"
    );

    // Added to the open room by a person in it, it posts there, as itself whatever name it asks.
    let add = form(&[("handle", "@helper")]);
    assert_eq!(a.post_as("/r/town/members", Some(&ann), &add).await.0, 303);
    let (status, answer) = bot_posts(b, &token, "town", "hello from a bot").await;
    assert_eq!(status, 201, "{answer}");
    let seq = answer["seq"].as_u64().expect("seq");
    let seen = next_from(&mut ann_socket, &bot_id).await;
    assert_eq!(
        (
            seen.seq,
            seen.author.id.as_str(),
            seen.author.name.as_str(),
            seen.kind
        ),
        (seq, bot_id.as_str(), "Helper", MessageKind::Bot)
    );
    let (_, _, rooms) = b.api("GET", "/api/rooms", Some(&token), None).await;
    assert_eq!(rooms["rooms"][0]["room"], "town");
    assert_eq!(
        b.api("GET", "/api/rooms/town/messages", Some(&token), None)
            .await
            .0,
        200
    );
    // It edits and reacts as itself; another's message is not its to edit.
    let edit = serde_json::json!({ "body": "hello, edited" }).to_string();
    let own = format!("/api/rooms/town/messages/{seq}");
    assert_eq!(b.api("PATCH", &own, Some(&token), Some(&edit)).await.0, 200);
    let react = serde_json::json!({ "emoji": "👍" }).to_string();
    let reactions = format!("/api/rooms/town/messages/{seq}/reactions");
    assert_eq!(
        b.api("POST", &reactions, Some(&token), Some(&react))
            .await
            .0,
        200
    );
    let mine = ClientMsg::Send {
        room: "town".into(),
        client_id: "a1".into(),
        body: "mine".into(),
        reply_to: None,
    };
    let anns = ann_socket.store(&mine, "a1").await.expect("stored");
    let other = format!("/api/rooms/town/messages/{anns}");
    let (status, _, answer) = b.api("PATCH", &other, Some(&token), Some(&edit)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("not_yours"))
    );
    // Announcing to every room is the operator's.
    let announce = serde_json::json!({ "body": "all hands" }).to_string();
    let (status, _, answer) = b
        .api("POST", "/api/broadcast", Some(&token), Some(&announce))
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("operator_only"))
    );

    // Added to the private room, it writes there too.
    let headers = format!("/r/{secret_room}/members");
    assert_eq!(a.post_as(&headers, Some(&ann), &add).await.0, 303);
    assert_eq!(
        bot_posts(b, &token, &secret_room, "in private").await.0,
        201
    );

    // A moderator removes it from the open room: it can write there no more.
    let remove = form(&[("account", &bot_id)]);
    assert_eq!(
        a.post_as("/r/town/remove", Some(&owner), &remove).await.0,
        303
    );
    assert_eq!(bot_posts(b, &token, "town", "still here?").await.0, 403);

    // A second token; the first revoked: refused at once, on the other node too.
    let label = form(&[("label", "deploy server")]);
    let headers = format!("Cookie: {owner}\r\n");
    let tokens = format!("/admin/bots/{bot_id}/tokens");
    let (_, _, page) = a.post_form_with(&tokens, &headers, &label).await;
    let second = value_after(&page, "data-testid=\"bot-token\"");
    let (_, _, bot_page) = a.get_as(&format!("/admin/bots/{bot_id}"), &owner).await;
    let first_id = value_after(&bot_page, "name=\"token\"");
    let revoke = form(&[("token", &first_id)]);
    let revoking = format!("/admin/bots/{bot_id}/tokens/revoke");
    assert_eq!(a.post_as(&revoking, Some(&owner), &revoke).await.0, 303);
    assert_eq!(bot_posts(b, &token, &secret_room, "old token").await.0, 401);
    assert_eq!(
        bot_posts(b, &second, &secret_room, "new token").await.0,
        201
    );
    // A made-up token of the right shape is refused as any wrong one, never taken for the operator's.
    let guessed = format!("herald_bot_{}", "0".repeat(64));
    assert_eq!(bot_posts(b, &guessed, &secret_room, "guess").await.0, 401);

    // Deactivated, its every token is refused.
    let off = form(&[("account", &bot_id), ("active", "0")]);
    assert_eq!(
        a.post_as("/admin/people/active", Some(&owner), &off)
            .await
            .0,
        303
    );
    assert_eq!(
        bot_posts(b, &second, &secret_room, "still on?").await.0,
        401
    );
    // The operator's token is still the operator's: open rooms, any name.
    let operator = bot_posts(b, TOKEN, "town", "from the operator").await;
    assert_eq!(operator.0, 201);
    // And each step is in the audit log.
    let (_, _, audit) = a.get_as("/admin/audit", &owner).await;
    for action in ["make_bot", "bot_token", "revoke_bot_token", "deactivate"] {
        assert!(
            audit.contains(&format!("data-action=\"{action}\"")),
            "{action}: {audit}"
        );
    }
}

#[tokio::test]
async fn a_bot_posts_edits_and_reacts_as_itself_only_in_its_rooms() {
    let (server, _data) = TestServer::start_api(&["--sign-up", "open"]).await;
    bots_write_only_where_added(&server, &server).await;
}

#[tokio::test]
async fn on_a_cluster_a_bots_tokens_and_rooms_hold_on_every_node() {
    let nodes = TwoNodes::start(&[]).await;
    bots_write_only_where_added(&nodes.a, &nodes.b).await;
}

/// What the local receiver answers a request with.
#[derive(Clone)]
enum Answer {
    Status(u16),
    Text(&'static str),
    Json(&'static str),
    /// Answers nothing for longer than Herald waits.
    Hang,
}

/// A request the receiver got.
struct Got {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct Receiver {
    script: Arc<Mutex<VecDeque<Answer>>>,
    got: mpsc::UnboundedSender<Got>,
}

async fn receive(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let _ = receiver.got.send(Got { headers, body });
    let next = receiver.script.lock().expect("lock").pop_front();
    match next.unwrap_or(Answer::Status(204)) {
        Answer::Status(code) => (StatusCode::from_u16(code).expect("status"), "").into_response(),
        Answer::Text(text) => ([("content-type", "text/plain")], text).into_response(),
        Answer::Json(json) => ([("content-type", "application/json")], json).into_response(),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

/// A bot's webhook on a free loopback port: its address, its script, what it gets.
async fn start_receiver() -> (
    std::net::SocketAddr,
    Arc<Mutex<VecDeque<Answer>>>,
    mpsc::UnboundedReceiver<Got>,
) {
    let (got, gets) = mpsc::unbounded_channel();
    let script = Arc::new(Mutex::new(VecDeque::new()));
    let receiver = Receiver {
        script: script.clone(),
        got,
    };
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, script, gets)
}

/// The next request the receiver gets, checked as a bot checks it: signed with `secret` over its
/// timestamp and body. Its delivery id and its JSON.
async fn next_delivery(
    gets: &mut mpsc::UnboundedReceiver<Got>,
    secret: &str,
) -> (String, serde_json::Value) {
    let got = tokio::time::timeout(PATIENCE, gets.recv())
        .await
        .expect("a webhook request in time")
        .expect("the receiver runs");
    let header = |name: &str| {
        got.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{name}"))
            .to_owned()
    };
    let timestamp = header("x-herald-timestamp");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&got.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(header("x-herald-signature"), format!("sha256={expected}"));
    assert_eq!(header("content-type"), "application/json");
    let json = serde_json::from_slice(&got.body).expect("JSON");
    (header("x-herald-delivery"), json)
}

/// No request arrives at the receiver for a while after a message was stored (a delivery leaves
/// right after the store answers: on loopback, within milliseconds).
async fn nothing_more(gets: &mut mpsc::UnboundedReceiver<Got>) {
    let more = tokio::time::timeout(Duration::from_secs(1), gets.recv()).await;
    assert!(more.is_err(), "an unexpected webhook request");
}

#[tokio::test]
async fn webhooks_deliver_mentions_and_direct_messages_signed_and_post_the_reply() {
    let flags = [
        "--sign-up",
        "open",
        "--webhook-host",
        "127.0.0.1",
        "--webhook-allow-http",
        "--webhook-timeout-secs",
        "1",
        "--metrics-token",
        METRICS_TOKEN,
    ];
    let (server, _data) = TestServer::start_api(&flags).await;
    let (addr, script, mut gets) = start_receiver().await;
    let owner = server.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner");

    // A host the operator did not allow is never taken: not at making, not at changing.
    for url in [
        "http://10.0.0.1/hook",
        "http://localhost:9/hook",
        "http://169.254.169.254/",
    ] {
        let body = form(&[("handle", "evil"), ("name", "Evil"), ("webhook", url)]);
        let (status, to, _) = server.post_as("/admin/bots", Some(&owner), &body).await;
        assert_eq!(
            (status, to.as_str()),
            (303, "/admin/bots?error=webhook"),
            "{url}"
        );
    }
    let (_, _, listed) = server.get_as("/admin/bots", &owner).await;
    assert!(!listed.contains("@evil"), "no bot was made");

    let hook = format!("http://{addr}/hook");
    let (bot_id, _) = make_bot(&server, &owner, "helper", &hook).await;
    let (_, _, page) = server
        .get_as(&format!("/admin/bots/{bot_id}"), &owner)
        .await;
    let secret = value_after(&page, "data-testid=\"bot-secret\"");
    let evil = form(&[("webhook", "http://10.0.0.1/hook")]);
    let changing = format!("/admin/bots/{bot_id}/webhook");
    let (_, to, _) = server.post_as(&changing, Some(&owner), &evil).await;
    assert!(to.ends_with("?error=webhook"), "{to}");

    let mut socket = Client::connect(server.addr, &owner).await;
    socket.join("town", None).await;
    // Not a member of the room: a mention of it is sent nowhere.
    socket.post_in("town", "o0", "@helper are you there?").await;
    nothing_more(&mut gets).await;
    let add = form(&[("handle", "helper")]);
    assert_eq!(
        server
            .post_as("/r/town/members", Some(&owner), &add)
            .await
            .0,
        303
    );

    // An ordinary message is sent nowhere; a mention is, retried after a 500 with the same id.
    socket.post_in("town", "o1", "an ordinary message").await;
    script
        .lock()
        .expect("lock")
        .extend([Answer::Status(500), Answer::Text("pong, from the bot")]);
    let asked = socket.post_in("town", "o2", "hey @Helper, ping").await;
    let (first, json) = next_delivery(&mut gets, &secret).await;
    let (again, same) = next_delivery(&mut gets, &secret).await;
    assert_eq!(
        (first.as_str(), &json),
        (again.as_str(), &same),
        "a retry is the same request"
    );
    assert_eq!(json["reason"], "mention");
    assert_eq!(json["bot"]["id"], bot_id.as_str());
    assert_eq!(
        json["room"],
        serde_json::json!({ "name": "town", "kind": "open" })
    );
    assert_eq!(json["message"]["seq"], asked);
    assert_eq!(json["message"]["body"], "hey @Helper, ping");
    assert_eq!(json["message"]["author"]["name"], "Owner");
    assert_eq!(json["message"]["path"], format!("/r/town?at={asked}"));
    // Its answer is the bot's reply to the message.
    let reply = next_from(&mut socket, &bot_id).await;
    assert_eq!(reply.body, "pong, from the bot");
    assert_eq!(reply.author.id, bot_id);
    assert_eq!(reply.kind, MessageKind::Bot);
    assert_eq!(reply.reply_to.map(|q| q.seq), Some(asked));
    nothing_more(&mut gets).await;

    // The same message sent again (a reconnect's resend): stored once, delivered once.
    let resend = ClientMsg::Send {
        room: "town".into(),
        client_id: "o2".into(),
        body: "hey @Helper, ping".into(),
        reply_to: None,
    };
    assert_eq!(socket.store(&resend, "o2").await, Ok(asked));
    nothing_more(&mut gets).await;

    // A 4xx is not tried again; a bot that never answers in time is tried 3 times and gives up.
    script.lock().expect("lock").push_back(Answer::Status(400));
    socket.post_in("town", "o3", "@helper bad request").await;
    next_delivery(&mut gets, &secret).await;
    nothing_more(&mut gets).await;
    script
        .lock()
        .expect("lock")
        .extend([Answer::Hang, Answer::Hang, Answer::Hang]);
    socket
        .post_in("town", "o4", "@helper are you asleep?")
        .await;
    for _ in 0..3 {
        next_delivery(&mut gets, &secret).await;
    }

    // A direct conversation with the bot: every message is for it, no mention needed; a JSON
    // answer's `body` is the reply.
    let start = form(&[("handles", "helper")]);
    let (status, to, _) = server.post_as("/direct", Some(&owner), &start).await;
    assert_eq!(status, 303);
    let direct = to.strip_prefix("/r/").expect("to the room").to_owned();
    socket.join(&direct, None).await;
    script
        .lock()
        .expect("lock")
        .push_back(Answer::Json(r#"{"body": "hello, privately"}"#));
    let said = socket.post_in(&direct, "o5", "just between us").await;
    let (_, json) = next_delivery(&mut gets, &secret).await;
    assert_eq!(json["reason"], "direct");
    assert_eq!(json["room"]["kind"], "direct");
    assert_eq!(json["message"]["seq"], said);
    let reply = next_from(&mut socket, &bot_id).await;
    assert_eq!(
        (reply.room.as_str(), reply.body.as_str()),
        (direct.as_str(), "hello, privately")
    );

    // What happened is counted for the operator (the last of the sleepy bot's tries is given up
    // a moment after it was sent).
    let asking = format!(
        "GET /metrics HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {METRICS_TOKEN}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    let count = |metrics: &str, outcome: &str| -> u64 {
        let line = format!("herald_webhooks_total{{outcome=\"{outcome}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("{line} in {metrics}"))
            .parse()
            .expect("a count")
    };
    let counted = async {
        loop {
            let (_, _, metrics) = server.request(&asking).await;
            let counts = (count(&metrics, "delivered"), count(&metrics, "failed"));
            if counts.1 == 2 {
                return counts;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let counts = tokio::time::timeout(PATIENCE, counted)
        .await
        .expect("counted");
    assert_eq!(counts, (2, 2), "(delivered, failed)");
}

#[tokio::test]
async fn on_a_cluster_a_message_resent_to_another_node_is_delivered_to_its_bot_once() {
    let flags = [
        "--webhook-host",
        "127.0.0.1",
        "--webhook-allow-http",
        "--webhook-timeout-secs",
        "2",
    ];
    let nodes = TwoNodes::start(&flags).await;
    let (a, b) = (&nodes.a, &nodes.b);
    let (addr, script, mut gets) = start_receiver().await;
    let owner = a.sign_in(OWNER, OWNER_PASSWORD).await.expect("owner");
    let (bot_id, _) = make_bot(a, &owner, "helper", &format!("http://{addr}/hook")).await;
    let (_, _, page) = a.get_as(&format!("/admin/bots/{bot_id}"), &owner).await;
    let secret = value_after(&page, "data-testid=\"bot-secret\"");
    let mut on_a = Client::connect(a.addr, &owner).await;
    on_a.join("town", None).await;
    let add = form(&[("handle", "helper")]);
    assert_eq!(
        a.post_as("/r/town/members", Some(&owner), &add).await.0,
        303
    );

    // Sent on node A, answered by the bot; then sent again with the same key through node B (a
    // page that reconnected elsewhere before it heard its ack): stored once, delivered once.
    script
        .lock()
        .expect("lock")
        .push_back(Answer::Text("on it"));
    let mention = ClientMsg::Send {
        room: "town".into(),
        client_id: "o1".into(),
        body: "@helper deploy, please".into(),
        reply_to: None,
    };
    let seq = on_a.store(&mention, "o1").await.expect("stored");
    let (_, json) = next_delivery(&mut gets, &secret).await;
    assert_eq!(json["message"]["seq"], seq);
    assert_eq!(next_from(&mut on_a, &bot_id).await.body, "on it");
    let mut on_b = Client::connect(b.addr, &owner).await;
    on_b.join("town", None).await;
    assert_eq!(on_b.store(&mention, "o1").await, Ok(seq));
    nothing_more(&mut gets).await;
    // A new mention through B is delivered (by B), and its answer reaches A's reader.
    script.lock().expect("lock").push_back(Answer::Text("done"));
    let again = on_b.post_in("town", "o2", "@helper and now?").await;
    let (_, json) = next_delivery(&mut gets, &secret).await;
    assert_eq!(json["message"]["seq"], again);
    assert_eq!(next_from(&mut on_a, &bot_id).await.body, "done");
}
