//! Notifications (docs/NOTIFICATIONS.md), on SQLite and on two nodes: a mention is told at once to
//! every connection of the person mentioned (`notify`) and, with no tab of theirs open in a
//! browser, pushed to it through a push service — here a local one the test runs, which checks
//! what a real one checks (the VAPID JWT: ES256 over its origin, in time, signed by the key the
//! page was given) and decrypts the payload with the keys the test made for the subscription
//! (RFC 8291), as a browser would. A push read elsewhere meanwhile is not sent; 410 drops the
//! subscription; a push the service failed (5xx, 429) is tried again, unless it asks for too long a
//! wait or the push was read meanwhile; a person's choice per room (nothing, every message) is
//! kept.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use app::protocol::{ClientMsg, Notice, ServerMsg};
use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::post,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use p256::ecdsa::{Signature, VerifyingKey, signature::Verifier};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use tokio::sync::mpsc;

use crate::common::{Client, TestServer, TwoNodes, form};

const PASSWORD: &str = "a long enough password";

/// How long a notice is held before it is pushed, in these tests.
const HOLD_MS: &str = "800";

/// A push as the local push service got it.
struct Got {
    /// The subscription's name (the endpoint's last segment).
    name: String,
    headers: HeaderMap,
    body: Bytes,
}

/// What the local push service answers: a status, and how many seconds to wait (`Retry-After`).
type Answer = (u16, Option<u64>);

#[derive(Clone)]
struct PushService {
    /// Answers to give, in turn (201 when none is left).
    script: Arc<Mutex<VecDeque<Answer>>>,
    got: mpsc::UnboundedSender<Got>,
}

async fn receive(
    State(service): State<PushService>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap) {
    let _ = service.got.send(Got {
        name,
        headers,
        body,
    });
    let (status, retry_after) = service
        .script
        .lock()
        .expect("script")
        .pop_front()
        .unwrap_or((201, None));
    let mut headers = HeaderMap::new();
    if let Some(seconds) = retry_after {
        headers.insert("retry-after", seconds.into());
    }
    (StatusCode::from_u16(status).expect("a status"), headers)
}

/// A local push service: where it listens, its script of answers, and what it got.
async fn push_service() -> (
    std::net::SocketAddr,
    Arc<Mutex<VecDeque<Answer>>>,
    mpsc::UnboundedReceiver<Got>,
) {
    let (got, gets) = mpsc::unbounded_channel();
    let script = Arc::new(Mutex::new(VecDeque::new()));
    let service = PushService {
        script: script.clone(),
        got,
    };
    let app = Router::new()
        .route("/push/{name}", post(receive))
        .with_state(service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, script, gets)
}

/// A browser's side of a subscription: its key pair and its secret.
struct Browser {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Browser {
    fn new() -> Self {
        let mut auth = [0u8; 16];
        getrandom::fill(&mut auth).expect("random");
        Self {
            secret: p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng),
            auth,
        }
    }

    /// The subscription's JSON, as `PushSubscription.toJSON()` has it.
    fn subscription(&self, endpoint: &str) -> String {
        let key = self.secret.public_key().to_encoded_point(false);
        serde_json::json!({
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": { "p256dh": B64.encode(key.as_bytes()), "auth": B64.encode(self.auth) },
        })
        .to_string()
    }

    /// The notice in `got`, after checking it as a push service and a browser would.
    fn open(&self, got: &Got, service: std::net::SocketAddr, server_key: &str) -> Notice {
        let header = |name: &str| {
            got.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{name}"))
                .to_owned()
        };
        assert_eq!(header("content-encoding"), "aes128gcm");
        assert!(header("ttl").parse::<u64>().expect("a TTL") > 0);
        // RFC 8292: `vapid t=<JWT>, k=<the server's public key>`.
        let auth = header("authorization");
        let rest = auth.strip_prefix("vapid t=").expect("vapid");
        let (jwt, key) = rest.split_once(", k=").expect("t and k");
        assert_eq!(
            key, server_key,
            "signed with the key the page subscribed with"
        );
        let mut parts = jwt.split('.');
        let (head_b64, claims_b64, signature) = (
            parts.next().expect("header"),
            parts.next().expect("claims"),
            parts.next().expect("signature"),
        );
        let head: serde_json::Value =
            serde_json::from_slice(&B64.decode(head_b64).expect("b64")).expect("JSON");
        assert_eq!(head["alg"], "ES256");
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(claims_b64).expect("b64")).expect("JSON");
        assert_eq!(claims["aud"], format!("http://{service}"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let exp = claims["exp"].as_u64().expect("exp");
        assert!(exp > now && exp <= now + 24 * 3600, "exp {exp} now {now}");
        assert!(
            claims["sub"].as_str().expect("sub").starts_with("mailto:"),
            "{claims}"
        );
        let verifier =
            VerifyingKey::from_sec1_bytes(&B64.decode(key).expect("b64")).expect("a P-256 key");
        let signature =
            Signature::from_slice(&B64.decode(signature).expect("b64")).expect("r and s");
        verifier
            .verify(format!("{head_b64}.{claims_b64}").as_bytes(), &signature)
            .expect("the JWT is signed by the server's key");
        let auth = web_push_native::Auth::clone_from_slice(&self.auth);
        let plain =
            web_push_native::decrypt(got.body.to_vec(), &self.secret, &auth).expect("decrypts");
        serde_json::from_slice(&plain).expect("a notice")
    }
}

/// `method path` with a JSON body as `cookie`: the status.
async fn json_as(server: &TestServer, method: &str, path: &str, cookie: &str, body: &str) -> u16 {
    server
        .request(&format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            server.addr,
            body.len()
        ))
        .await
        .0
}

/// The next push the service got.
async fn next_push(gets: &mut mpsc::UnboundedReceiver<Got>) -> Got {
    tokio::time::timeout(Duration::from_secs(10), gets.recv())
        .await
        .expect("a push in time")
        .expect("the service runs")
}

/// Waits `wait`, in which the push service must get nothing (a push given up, or read, is not
/// tried again).
async fn no_push_within(gets: &mut mpsc::UnboundedReceiver<Got>, wait: Duration) {
    if let Ok(got) = tokio::time::timeout(wait, gets.recv()).await {
        panic!(
            "a push came that should not have: {:?}",
            got.map(|got| got.name)
        );
    }
}

/// The first `notify` frame `client` is told of a message after `after` (those before are passed).
async fn notice_after(client: &mut Client, after: u64) -> Notice {
    match client
        .signal(|m| matches!(m, ServerMsg::Notify { notice } if notice.seq > after))
        .await
    {
        ServerMsg::Notify { notice } => notice,
        other => unreachable!("{other:?}"),
    }
}

async fn notifications(a: &TestServer, b: &TestServer) {
    let (service, script, mut gets) = push_service().await;
    let ann = a.sign_up("ann", "Ann", PASSWORD).await.expect("ann");
    let bob = a.sign_up("bob", "Bob", PASSWORD).await.expect("bob");
    let (status, _, session) = a.get_as("/session", &ann).await;
    assert_eq!(status, 200);
    let session: serde_json::Value = serde_json::from_str(&session).expect("JSON");
    let server_key = session["push_key"].as_str().expect("a push key").to_owned();

    // Ann's laptop subscribes (no tab of it is open for now).
    let laptop = Browser::new();
    let endpoint = |name: &str| format!("http://{service}/push/{name}");
    let given = laptop.subscription(&endpoint("ann"));
    assert_eq!(
        json_as(a, "POST", "/push/subscriptions", &ann, &given).await,
        204
    );

    let mut bob_socket = Client::connect(a.addr, &bob).await;
    // An ordinary message is nobody's notification; a mention is Ann's.
    bob_socket.post_in("general", "b1", "good morning").await;
    let called = bob_socket.post_in("general", "b2", "hi @ann").await;
    let got = next_push(&mut gets).await;
    assert_eq!(got.name, "ann");
    let notice = laptop.open(&got, service, &server_key);
    assert_eq!(notice.room, "general");
    assert_eq!(notice.seq, called);
    assert_eq!(notice.title, "#general");
    assert_eq!(notice.body, "Bob: hi @ann");
    assert_eq!(notice.url, format!("/r/general?at={called}"));

    // Read on her phone (the other node) before the push was due: it is not pushed.
    let phone_cookie = b.sign_in("ann", PASSWORD).await.expect("phone");
    let mut phone = Client::connect(b.addr, &phone_cookie).await;
    let read_soon = bob_socket.post_in("general", "b3", "@ann again").await;
    phone
        .send(&ClientMsg::Read {
            room: "general".into(),
            seq: read_soon,
            rewind: false,
        })
        .await;
    let unread = bob_socket.post_in("general", "b4", "@ann third").await;
    // The phone is told both at once, whatever it read.
    assert_eq!(notice_after(&mut phone, called).await.seq, read_soon);
    assert_eq!(notice_after(&mut phone, read_soon).await.seq, unread);
    let got = next_push(&mut gets).await;
    assert_eq!(laptop.open(&got, service, &server_key).seq, unread);

    // The push service says the subscription is gone: it is dropped (the next push goes to the
    // laptop's new subscription only).
    script.lock().expect("script").push_back((410, None));
    bob_socket.post_in("general", "b5", "@ann four").await;
    assert_eq!(next_push(&mut gets).await.name, "ann");
    let renewed = Browser::new();
    let given = renewed.subscription(&endpoint("ann-2"));
    assert_eq!(
        json_as(a, "POST", "/push/subscriptions", &ann, &given).await,
        204
    );
    let five = bob_socket.post_in("general", "b6", "@ann five").await;
    let got = next_push(&mut gets).await;
    assert_eq!(got.name, "ann-2");
    assert_eq!(renewed.open(&got, service, &server_key).seq, five);

    // The push service fails (503): the push is tried again, the same.
    script.lock().expect("script").push_back((503, None));
    let failed = bob_socket.post_in("general", "b6a", "@ann once more").await;
    for _ in 0..2 {
        let got = next_push(&mut gets).await;
        assert_eq!(renewed.open(&got, service, &server_key).seq, failed);
    }
    // Asked to wait an hour (429, `Retry-After`): given up — nothing more comes (a second try
    // after the usual wait of a second would).
    script.lock().expect("script").push_back((429, Some(3600)));
    let late = bob_socket.post_in("general", "b6b", "@ann later").await;
    let got = next_push(&mut gets).await;
    assert_eq!(renewed.open(&got, service, &server_key).seq, late);
    no_push_within(&mut gets, Duration::from_millis(2500)).await;
    // Failing, asked to wait 3 s, and read on the phone meanwhile: not tried again.
    script.lock().expect("script").push_back((503, Some(3)));
    let read_then = bob_socket.post_in("general", "b6c", "@ann read it").await;
    let got = next_push(&mut gets).await;
    assert_eq!(renewed.open(&got, service, &server_key).seq, read_then);
    phone
        .send(&ClientMsg::Read {
            room: "general".into(),
            seq: read_then,
            rewind: false,
        })
        .await;
    // Kept: her devices are told where she read.
    phone
        .signal(|m| matches!(m, ServerMsg::Read { room, seq, .. } if room == "general" && *seq >= read_then))
        .await;
    no_push_within(&mut gets, Duration::from_secs(4)).await;
    let after = bob_socket.post_in("general", "b6d", "@ann after").await;
    let got = next_push(&mut gets).await;
    assert_eq!(renewed.open(&got, service, &server_key).seq, after);

    // With a tab of the laptop open, it is told there and not pushed there.
    let mut tab = Client::connect(a.addr, &ann).await;
    let told = bob_socket.post_in("general", "b7", "@ann six").await;
    assert_eq!(notice_after(&mut tab, after).await.seq, told);
    assert_eq!(notice_after(&mut phone, after).await.seq, told);
    // Past the hold, the tab closes; the next mention is pushed — and is the first push since.
    tokio::time::sleep(Duration::from_millis(3 * 800)).await;
    drop(tab);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seven = bob_socket.post_in("general", "b8", "@ann seven").await;
    let got = next_push(&mut gets).await;
    assert_eq!(renewed.open(&got, service, &server_key).seq, seven);
    assert_eq!(notice_after(&mut phone, told).await.seq, seven);

    // Nothing of #general: a mention is not told. Every message: a plain one is.
    let nothing = form(&[("level", "nothing")]);
    let (status, to, _) = a
        .post_as("/r/general/notify", Some(&phone_cookie), &nothing)
        .await;
    assert_eq!(
        (status, to.as_str()),
        (303, "/r/general/about?notify=saved")
    );
    bob_socket.post_in("general", "b9", "@ann eight").await;
    let every = form(&[("level", "every")]);
    assert_eq!(
        b.post_as("/r/general/notify", Some(&ann), &every).await.0,
        303
    );
    // Written on the node that took the choice: another node hears a choice by a cluster note, a
    // moment later (a message stored there meanwhile is decided as before it: docs/NOTIFICATIONS.md).
    let mut bob_there = Client::connect(b.addr, &bob).await;
    let plain = bob_there.post_in("general", "b10", "plain words").await;
    // The first notice since "seven": the mention while she chose nothing was not told.
    let notice = notice_after(&mut phone, seven).await;
    assert_eq!(
        (notice.seq, notice.body.as_str()),
        (plain, "Bob: plain words")
    );
    let (_, _, session) = b.get_as("/session", &ann).await;
    let session: serde_json::Value = serde_json::from_str(&session).expect("JSON");
    assert_eq!(session["notify"]["general"], "every");
    // Bob is never told of his own messages.
    let mut bob_phone = Client::connect_only(b.addr, &bob).await;
    let every = form(&[("level", "every")]);
    assert_eq!(
        b.post_as("/r/general/notify", Some(&bob), &every).await.0,
        303
    );
    let mine = bob_socket.post_in("general", "b11", "mine").await;
    let ann_says = phone.post_in("general", "a1", "and mine").await;
    assert_eq!(notice_after(&mut bob_phone, plain).await.seq, ann_says);
    assert!(ann_says > mine);
}

#[tokio::test]
async fn on_sqlite_a_mention_is_told_and_pushed_unless_read() {
    let (server, _data) = TestServer::start_api(&[
        "--sign-up",
        "open",
        "--push-allow-local",
        "--push-hold-ms",
        HOLD_MS,
    ])
    .await;
    notifications(&server, &server).await;
}

#[tokio::test]
async fn on_a_cluster_a_mention_is_told_on_every_node_and_pushed_once() {
    let nodes = TwoNodes::start(&["--push-allow-local", "--push-hold-ms", HOLD_MS]).await;
    notifications(&nodes.a, &nodes.b).await;
}

#[tokio::test]
async fn an_endpoint_at_an_internal_address_or_without_https_is_refused() {
    let (server, _data) = TestServer::start_api(&["--sign-up", "open"]).await;
    let ann = server.sign_up("ann", "Ann", PASSWORD).await.expect("ann");
    let browser = Browser::new();
    for endpoint in [
        "http://push.example.com/x",
        "https://127.0.0.1/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "https://localhost/x",
    ] {
        let given = browser.subscription(endpoint);
        assert_eq!(
            json_as(&server, "POST", "/push/subscriptions", &ann, &given).await,
            422,
            "{endpoint}"
        );
    }
    // Keys that are not keys.
    let bad = r#"{"endpoint":"https://push.example.com/x","keys":{"p256dh":"AAAA","auth":"AAAA"}}"#;
    assert_eq!(
        json_as(&server, "POST", "/push/subscriptions", &ann, bad).await,
        422
    );
    // Not signed in: nobody's subscription.
    let given = browser.subscription("https://push.example.com/x");
    assert_ne!(
        json_as(
            &server,
            "POST",
            "/push/subscriptions",
            "herald_session=nope",
            &given
        )
        .await,
        204
    );
}
