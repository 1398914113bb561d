//! Cluster mode: several Herald nodes on one Redis (`--redis`), each a real server in this process,
//! each with its own data dir. What a user of one node sees holds across nodes: a message sent on
//! one reaches the others' readers once and in order, a cursor from one resumes on another, a resend
//! to another node is stored once.

use crate::common;

use app::protocol::{ClientMsg, Cursor, JoinMode, ServerMsg};
use common::{
    Client, Redis, RedisCluster, RedisProxy, RedisServer, RestartableRedis, TempDir, TestServer,
};

const SECRET: &str = "the same secret on every node, 32+ bytes";

/// A node on `redis`, with a data dir of its own.
async fn node(redis: &impl Redis) -> (TestServer, TempDir) {
    node_with(redis, &[]).await
}

/// [`node`], with more flags.
async fn node_with(redis: &impl Redis, more: &[&str]) -> (TestServer, TempDir) {
    let data = TempDir::new();
    let url = redis.url();
    let flags = [
        "--redis",
        url.as_str(),
        "--session-secret",
        SECRET,
        "--metrics-token",
        common::METRICS_TOKEN,
    ];
    let all: Vec<&str> = flags.iter().chain(more).copied().collect();
    let server = TestServer::start_in(data.path(), &all).await;
    (server, data)
}

/// A test on one Redis, and the same test through a Redis Cluster of three masters.
macro_rules! on_one_redis_and_a_cluster {
    ($single:ident, $cluster:ident, $body:ident) => {
        #[tokio::test]
        async fn $single() {
            $body(&RedisServer::start().await).await;
        }

        #[tokio::test]
        async fn $cluster() {
            $body(&RedisCluster::start(3).await).await;
        }
    };
}

/// The seqs and bodies of the next `n` messages `client` gets (acks and signals skipped).
async fn messages(client: &mut Client, n: usize) -> Vec<(u64, String)> {
    let mut got = Vec::new();
    while got.len() < n {
        let message = client.next_message().await;
        got.push((message.seq, message.body));
    }
    got
}

on_one_redis_and_a_cluster!(
    a_message_sent_on_one_node_reaches_readers_on_the_others_once_and_in_order,
    on_a_redis_cluster_a_message_sent_on_one_node_reaches_the_others_once_and_in_order,
    a_message_sent_on_one_node_reaches_readers_on_the_others_once_and_in_order_on
);

async fn a_message_sent_on_one_node_reaches_readers_on_the_others_once_and_in_order_on(
    redis: &impl Redis,
) {
    let (a, _a) = node(redis).await;
    let (b, _b) = node(redis).await;
    let (c, _c) = node(redis).await;
    let mut on_b = b.client_named("Bob").await;
    let mut on_c = c.client_named("Cy").await;
    let mut sender = a.client_named("Ann").await;
    for i in 1..=30 {
        sender.say(&format!("k{i}"), &format!("hello {i}")).await;
    }
    let expected: Vec<(u64, String)> = (1..=30).map(|i| (i, format!("hello {i}"))).collect();
    assert_eq!(messages(&mut on_b, 30).await, expected);
    assert_eq!(messages(&mut on_c, 30).await, expected);
    assert_eq!(
        messages(&mut sender, 30).await,
        expected,
        "the sender's own node too"
    );
}

#[tokio::test]
async fn senders_on_every_node_at_once_get_one_order_everywhere_and_each_message_before_its_ack() {
    let redis = RedisServer::start().await;
    let (a, _a) = node(&redis).await;
    let (b, _b) = node(&redis).await;
    let mut readers = [a.client_named("Ra").await, b.client_named("Rb").await];
    let mut on_a = a.client_named("Ann").await;
    let mut on_b = b.client_named("Bob").await;
    for i in 0..40 {
        on_a.say(&format!("a{i}"), &format!("from a {i}")).await;
        on_b.say(&format!("b{i}"), &format!("from b {i}")).await;
    }
    let first = messages(&mut readers[0], 80).await;
    assert_eq!(
        first.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        (1..=80).collect::<Vec<_>>(),
        "dense, in order"
    );
    assert_eq!(
        messages(&mut readers[1], 80).await,
        first,
        "the same on both nodes"
    );
    // Each sender gets its message before the ack that names it.
    for (sender, prefix) in [(&mut on_a, "a"), (&mut on_b, "b")] {
        let mut seen = std::collections::HashSet::new();
        let mut acked = 0;
        while acked < 40 {
            match sender.recv().await {
                ServerMsg::Message(m) => {
                    seen.insert(m.seq);
                }
                ServerMsg::Ack { client_id, seq, .. } if client_id.starts_with(prefix) => {
                    assert!(
                        seen.contains(&seq),
                        "{client_id}: ack of {seq} before its message"
                    );
                    acked += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

on_one_redis_and_a_cluster!(
    a_reader_resumes_on_another_node_from_its_cursor,
    on_a_redis_cluster_a_reader_resumes_on_another_node_from_its_cursor,
    a_reader_resumes_on_another_node_from_its_cursor_on
);

async fn a_reader_resumes_on_another_node_from_its_cursor_on(redis: &impl Redis) {
    let (a, _a) = node(redis).await;
    let (b, _b) = node(redis).await;
    let cookie = a.session("Ann").await;
    let mut sender = a.client_named("Sam").await;
    for i in 1..=5 {
        sender.post(&format!("k{i}"), &format!("m{i}")).await;
    }
    // Ann reads on A, then her connection drops.
    let mut ann = Client::connect_only(a.addr, &cookie).await;
    let joined = ann.join(common::ROOM, None).await;
    assert_eq!(joined.last_seq, 5);
    let epoch = joined.epoch.clone();
    drop(ann);
    for i in 6..=9 {
        sender.post(&format!("k{i}"), &format!("m{i}")).await;
    }
    // She comes back through B (her cookie from A is good there) with her cursor.
    let mut ann = Client::connect_only(b.addr, &cookie).await;
    let resumed = ann.resume(common::ROOM, &epoch, 5).await;
    assert_eq!(resumed.mode, JoinMode::Full);
    // From 6 on: replayed up to where B stands, the rest live (B may hear of the last message
    // sent on A just after this join).
    assert_eq!(resumed.first_seq, 6);
    let replay: Vec<String> = messages(&mut ann, 4)
        .await
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    assert_eq!(replay, ["m6", "m7", "m8", "m9"]);
    // And goes on live from there.
    sender.say("k10", "m10").await;
    assert_eq!(messages(&mut ann, 1).await, vec![(10, "m10".to_string())]);

    // A cursor of another lifetime of the room starts afresh.
    let mut other = Client::connect_only(b.addr, &cookie).await;
    assert_eq!(
        other.resume(common::ROOM, "not-this-epoch", 3).await.mode,
        JoinMode::Reset
    );
}

on_one_redis_and_a_cluster!(
    a_send_resent_to_another_node_is_stored_once,
    on_a_redis_cluster_a_send_resent_to_another_node_is_stored_once,
    a_send_resent_to_another_node_is_stored_once_on
);

async fn a_send_resent_to_another_node_is_stored_once_on(redis: &impl Redis) {
    let (a, _a) = node(redis).await;
    let (b, _b) = node(redis).await;
    let cookie = a.session("Ann").await;
    let mut reader = b.client_named("Bob").await;
    let mut on_a = Client::connect(a.addr, &cookie).await;
    let first = on_a.post("once", "only once").await;
    // Her connection dropped before she saw the ack: the page sends it again, through B.
    let mut on_b = Client::connect(b.addr, &cookie).await;
    assert_eq!(on_b.post("once", "only once").await, first, "the first seq");
    on_b.post("next", "then this").await;
    assert_eq!(
        messages(&mut reader, 2).await,
        vec![
            (first, "only once".to_string()),
            (first + 1, "then this".to_string())
        ]
    );
    // Each node counts the messages it stored: together, each message once.
    let stored =
        |scrape: &str| common::value(scrape, "herald_messages_stored_total", &[("kind", "user")]);
    assert_eq!(stored(&common::scrape(&a).await), 1.0, "A stored one");
    assert_eq!(
        stored(&common::scrape(&b).await),
        1.0,
        "B stored one, and the resend none"
    );
}

#[tokio::test]
async fn the_history_is_the_same_on_every_node() {
    let redis = RedisServer::start().await;
    let (a, _a) = node(&redis).await;
    let (b, _b) = node(&redis).await;
    let mut sender = a.client_named("Ann").await;
    let mut watcher = b.client_named("Wes").await;
    for i in 1..=60 {
        sender.post(&format!("k{i}"), &format!("m{i}")).await;
    }
    // Once B has heard all 60, a reader joining there afresh gets its latest 50, and pages back
    // to the start.
    assert_eq!(messages(&mut watcher, 60).await.len(), 60);
    let mut reader = b.client_named("Bob").await;
    let latest = messages(&mut reader, 50).await;
    assert_eq!(latest.first().map(|(seq, _)| *seq), Some(11));
    reader
        .send(&ClientMsg::History {
            room: common::ROOM.into(),
            before: 11,
            limit: Some(20),
        })
        .await;
    match reader.recv().await {
        ServerMsg::History {
            messages, has_more, ..
        } => {
            let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
            assert!(!has_more);
        }
        other => panic!("expected history, got {other:?}"),
    }
}

#[tokio::test]
async fn a_node_refuses_to_start_without_a_shared_secret_or_on_a_redis_that_can_lose_acks() {
    let redis = RedisServer::start().await;
    let data = TempDir::new();
    let start = |flags: Vec<String>| async move {
        let config = server::Config::from_flags(flags).expect("flags");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        server::run(config, listener, async {}).await
    };
    let url = redis.url();
    let base = ["--data-dir", data.path(), "--redis", url.as_str()].map(String::from);
    let no_secret = start(base.to_vec()).await.expect_err("refused");
    assert!(
        no_secret.to_string().contains("--session-secret"),
        "{no_secret}"
    );

    let careless = RedisServer::start_with(&["--appendonly", "no"]).await;
    let url = careless.url();
    let flags = [
        "--data-dir",
        data.path(),
        "--redis",
        url.as_str(),
        "--session-secret",
        SECRET,
    ];
    let refused = start(flags.map(String::from).to_vec())
        .await
        .expect_err("refused");
    assert!(refused.to_string().contains("appendonly"), "{refused}");
    // Accepted, when the operator says so.
    let mut risky = flags.map(String::from).to_vec();
    risky.push("--redis-accept-risk".into());
    start(risky).await.expect("started, warned");
}

/// Sends `body` as `client_id` until it is acknowledged, as a page does with what it keeps unsent;
/// the `unavailable` errors on the way are counted.
async fn post_until_acked(client: &mut Client, client_id: &str, body: &str) -> (u64, u32) {
    post_in_until_acked(client, common::ROOM, client_id, body).await
}

#[tokio::test]
async fn a_redis_restart_loses_nothing_acknowledged_and_the_nodes_recover_by_themselves() {
    redis_restart(RedisServer::start().await).await;
}

/// The same when the Redis Cluster master holding the room is killed and started again.
#[tokio::test]
async fn on_a_redis_cluster_a_masters_restart_loses_nothing_acknowledged_and_the_nodes_recover() {
    redis_restart(RedisCluster::start(3).await).await;
}

async fn redis_restart(mut redis: impl common::RestartableRedis) {
    let (a, _a) = node(&redis).await;
    let (b, _b) = node(&redis).await;
    let mut reader = b.client_named("Bob").await;
    let mut sender = a.client_named("Ann").await;
    for i in 1..=20 {
        sender.post(&format!("k{i}"), &format!("m{i}")).await;
    }
    let epoch = reader.resume(common::ROOM, "", 0).await.epoch; // The room's epoch, as B has it.
    assert_eq!(
        messages(&mut reader, 20).await.len(),
        20,
        "the reset replay"
    );

    // On a Redis Cluster, a room whose keys are on another master.
    let elsewhere = SPREAD_ROOMS[0];
    if redis.other_masters() {
        sender.join(elsewhere, None).await;
    }
    redis.kill_room(common::ROOM).await;
    // While Redis is away: sends are refused (and kept by the sender).
    sender.say("k21", "m21").await;
    match sender.recv().await {
        ServerMsg::Error { code, .. } => assert_eq!(code, app::protocol::ErrorCode::Unavailable),
        other => panic!("expected unavailable, got {other:?}"),
    }
    if redis.other_masters() {
        // The rooms on the other masters go on: the nodes are still of use, and stay healthy.
        assert!(sender.try_say_in(elsewhere, "e1", "elsewhere").await);
        loop {
            match sender.recv().await {
                ServerMsg::Ack { client_id, .. } if client_id == "e1" => break,
                ServerMsg::Message(_) => continue,
                other => panic!("expected the ack of e1, got {other:?}"),
            }
        }
        for node in [&a, &b] {
            assert_eq!(node.get("/readyz").await.0, 200);
        }
    } else {
        // Nothing can be stored: both nodes say so (not ready), and stay alive.
        for node in [&a, &b] {
            let (status, _, body) = node.get("/readyz").await;
            assert_eq!(status, 503, "{body}");
            assert_eq!(node.get("/healthz").await.0, 200);
        }
    }

    redis.restart_room(common::ROOM).await;
    // The nodes come back without help: healthy again, and the kept send is stored once.
    for node in [&a, &b] {
        let deadline = tokio::time::Instant::now() + common::PATIENCE;
        while node.get("/readyz").await.0 != 200 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the node stays unready"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let (seq, _) = post_until_acked(&mut sender, "k21", "m21").await;
    assert_eq!(
        seq, 21,
        "nothing acknowledged was lost, nothing stored twice"
    );
    let (seq, _) = post_until_acked(&mut sender, "k22", "m22").await;
    assert_eq!(seq, 22);
    // B's reader hears of them (its bus subscribed again and filled what it missed).
    assert_eq!(
        messages(&mut reader, 2).await,
        vec![(21, "m21".to_string()), (22, "m22".to_string())]
    );
    // The epoch survived: a cursor from before resumes in full.
    let mut later = b.client_named("Cy").await;
    let resumed = later.resume(common::ROOM, &epoch, 20).await;
    assert_eq!(resumed.mode, JoinMode::Full);
    assert_eq!((resumed.first_seq, resumed.last_seq), (21, 22));
}

#[tokio::test]
async fn pushes_lost_with_the_bus_connection_are_filled_from_the_log_without_a_hole() {
    let redis = RedisServer::start().await;
    let (a, _a) = node(&redis).await;
    let (b, _b) = node(&redis).await;
    let mut reader = b.client_named("Bob").await;
    let mut sender = a.client_named("Ann").await;
    let mut admin = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    for i in 1..=200 {
        sender.say(&format!("k{i}"), &format!("m{i}")).await;
        if i % 50 == 25 {
            // Every node's bus connection dropped mid-stream: what was published meanwhile never
            // reaches them on it.
            let _: redis::Value = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .query_async(&mut admin)
                .await
                .expect("client kill");
        }
    }
    let expected: Vec<(u64, String)> = (1..=200).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(
        messages(&mut reader, 200).await,
        expected,
        "once each, in order, no hole"
    );
    assert_eq!(
        messages(&mut sender, 200).await,
        expected,
        "on the sender's node too"
    );
}

fn is_presence(msg: &ServerMsg) -> bool {
    matches!(msg, ServerMsg::Presence { .. })
}

/// The next `presence` that `wanted` accepts: its count and its members' names.
async fn presence_where(
    client: &mut Client,
    wanted: impl Fn(u32, &[String]) -> bool,
) -> (u32, Vec<String>) {
    loop {
        if let ServerMsg::Presence { count, members, .. } = client.signal(is_presence).await {
            let mut names: Vec<String> = members
                .unwrap_or_default()
                .into_iter()
                .map(|who| who.name)
                .collect();
            names.sort();
            if wanted(count, &names) {
                return (count, names);
            }
        }
    }
}

#[tokio::test]
async fn the_people_in_a_room_are_the_same_on_every_node_and_count_once_across_nodes() {
    let redis = RedisServer::start().await;
    let (a, _a) = node(&redis).await;
    let (b, _b) = node(&redis).await;
    let (c, _c) = node(&redis).await;
    let mut ann = a.client_named("Ann").await;
    let bob = b.client_named("Bob").await;
    // Cy has a tab on A and another on C: one person.
    let cy = a.session("Cy").await;
    let _cy_a = Client::connect(a.addr, &cy).await;
    let mut cy_c = Client::connect(c.addr, &cy).await;
    let everyone = vec!["Ann".to_string(), "Bob".into(), "Cy".into()];
    for client in [&mut ann, &mut cy_c] {
        let seen = presence_where(client, |count, _| count == 3).await;
        assert_eq!(seen, (3, everyone.clone()));
    }
    // Bob's one tab closes: after the grace everyone is told; the room list counts two.
    drop(bob);
    let (count, names) = presence_where(&mut cy_c, |count, _| count == 2).await;
    assert_eq!((count, names), (2, vec!["Ann".to_string(), "Cy".into()]));
    let rooms = loop {
        if let ServerMsg::Rooms { rooms } =
            ann.signal(|m| matches!(m, ServerMsg::Rooms { .. })).await
            && rooms
                .iter()
                .any(|r| r.room == common::ROOM && r.members == 2)
        {
            break rooms;
        }
    };

    assert!(
        rooms
            .iter()
            .all(|r| r.room != common::ROOM || r.members == 2)
    );
}

#[tokio::test]
async fn typing_on_one_node_is_shown_on_the_others() {
    let redis = RedisServer::start().await;
    let (a, _a) = node(&redis).await;
    let (b, _b) = node(&redis).await;
    let mut ann = a.client_named("Ann").await;
    let mut bob = b.client_named("Bob").await;
    presence_where(&mut ann, |count, _| count == 2).await;
    bob.send(&ClientMsg::Typing {
        room: common::ROOM.into(),
    })
    .await;
    let typing = ann.signal(|m| matches!(m, ServerMsg::Typing { .. })).await;
    let ServerMsg::Typing { room, user } = typing else {
        unreachable!()
    };
    assert_eq!((room.as_str(), user.name.as_str()), (common::ROOM, "Bob"));
}

/// A node as its own process (the `herald` binary), so it can be killed with SIGKILL.
struct NodeProcess {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    _data: TempDir,
}

impl NodeProcess {
    fn start(redis: &impl Redis) -> Self {
        use std::io::BufRead;
        let data = TempDir::new();
        let url = redis.url();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([
                "--addr",
                "127.0.0.1:0",
                "--data-dir",
                data.path(),
                "--redis",
                &url,
            ])
            .args(["--session-secret", SECRET, "--log", "info"])
            .args(common::HARNESS_FLAGS)
            .args(["--rate-per-sec", "1000000", "--rate-burst", "1000000"])
            .args(["--address-rate-per-sec", "1000000"])
            .args(["--address-rate-burst", "1000000"])
            .args(["--rooms-per-hour", "1000000"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("herald starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("herald says where it listens")
                .expect("a line");
            if let Some(at) = line.split("listening on http://").nth(1) {
                break at.trim().parse().expect("an address");
            }
        };
        // Keep reading what it logs, so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            addr,
            _data: data,
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_node_killed_loses_nothing_acknowledged_and_its_people_leave_the_others_lists() {
    let redis = RedisServer::start().await;
    let (a, _a) = node(&redis).await;
    let mut b = NodeProcess::start(&redis);
    let b_server = TestServer::external(b.addr);
    let mut ann = a.client_named("Ann").await;
    let bob_cookie = b_server.session("Bob").await;
    let mut bob = Client::connect(b.addr, &bob_cookie).await;
    presence_where(&mut ann, |count, _| count == 2).await;
    let mut acked = Vec::new();
    for i in 1..=10 {
        acked.push(bob.post(&format!("b{i}"), &format!("bob {i}")).await);
    }
    let epoch = bob.resume(common::ROOM, "", 0).await.epoch;

    // kill -9: no goodbye, nothing more written.
    let _ = b.child.kill();
    let _ = b.child.wait();
    drop(bob);
    // Within the node timeout (docs/CLUSTER.md), a second's check and a tick.
    let gone = server::cluster::NODE_TIMEOUT + std::time::Duration::from_secs(5);
    let left = ann
        .signal_within(gone, |m| {
            matches!(m, ServerMsg::Presence { count: 1, left, .. } if left.iter().any(|w| w.name == "Bob"))
        })
        .await;
    let ServerMsg::Presence { members, .. } = left else {
        unreachable!()
    };
    let names: Vec<String> = members
        .unwrap_or_default()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, ["Ann"], "Bob left Ann's list");

    // Bob's page reconnects to A with the same cookie and his cursor from before his last sends.
    let mut bob = Client::connect_only(a.addr, &bob_cookie).await;
    let resumed = bob.resume(common::ROOM, &epoch, 0).await;
    assert_eq!(resumed.mode, JoinMode::Full);
    let seqs: Vec<u64> = messages(&mut bob, 10)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(seqs, acked, "every acknowledged message is there, once");
}

#[tokio::test]
async fn a_single_nodes_history_moves_into_redis_and_its_cursors_resume_in_full_on_the_cluster() {
    // A single node, chatting.
    let data = TempDir::new();
    let mut single = TestServer::start_in(data.path(), &["--session-secret", SECRET]).await;
    let cookie = single.session("Ann").await;
    let mut ann = Client::connect(single.addr, &cookie).await;
    for i in 1..=30 {
        ann.post(&format!("k{i}"), &format!("m{i}")).await;
    }
    let epoch = ann.resume(common::ROOM, "", 0).await.epoch;
    drop(ann);
    single.begin_shutdown();
    single.stopped().await;

    let redis = RedisServer::start().await;
    let done =
        server::log::import::import_to_redis(std::path::Path::new(data.path()), &redis.url())
            .await
            .expect("imported");
    assert_eq!((done.rooms, done.messages), (1, 30));
    // And the people: whoever was signed in there still is, as who they were.
    let link = server::redis_link::RedisLink::connect(&redis.url())
        .await
        .expect("Redis");
    let db = std::path::Path::new(data.path()).join(server::log::DB_FILE);
    let day = std::time::Duration::from_secs(86_400);
    let (accounts, sessions) = server::people::import_to_redis(&db, &link, day)
        .await
        .expect("people imported");
    assert_eq!(
        (accounts, sessions),
        (2, 2),
        "the owner and Ann, each signed in"
    );
    assert!(
        server::people::import_to_redis(&db, &link, day)
            .await
            .is_err(),
        "a second copy is refused"
    );
    let again =
        server::log::import::import_to_redis(std::path::Path::new(data.path()), &redis.url())
            .await
            .expect_err("a second copy is refused");
    assert!(again.to_string().contains("already has"), "{again}");

    // On the cluster, with the same cookie and the cursor from before the move.
    let (node, _node) = node(&redis).await;
    let mut ann = Client::connect_only(node.addr, &cookie).await;
    // Where she had read came along too (up to her last message): nothing is unread.
    let read = ann
        .signal(|m| matches!(m, ServerMsg::Read { room, .. } if room == common::ROOM))
        .await;
    assert!(
        matches!(&read, ServerMsg::Read { epoch: e, seq: 30, last_seq: 30, unread: 0, .. } if *e == epoch),
        "{read:?}"
    );
    let resumed = ann.resume(common::ROOM, &epoch, 20).await;
    assert_eq!(resumed.mode, JoinMode::Full);
    assert_eq!((resumed.first_seq, resumed.last_seq), (21, 30));
    let replay: Vec<u64> = messages(&mut ann, 10)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(replay, (21..=30).collect::<Vec<_>>());
    // What the page still had unacknowledged is stored once: the resend keys came along.
    assert_eq!(ann.post("k30", "m30").await, 30);
    assert_eq!(ann.post("k31", "m31").await, 31);
}

/// A node on `redis` that accepts [`common::TOKEN`] on the HTTP API.
async fn api_node(redis: &RedisServer) -> (TestServer, TempDir) {
    let data = TempDir::new();
    let url = redis.url();
    let flags = [
        "--redis",
        url.as_str(),
        "--session-secret",
        SECRET,
        "--api-token",
        common::TOKEN,
        "--api-rate-burst",
        "1000",
    ];
    let server = TestServer::start_in(data.path(), &flags).await;
    (server, data)
}

#[tokio::test]
async fn the_http_api_and_server_sent_events_work_the_same_on_any_node() {
    let redis = RedisServer::start().await;
    let (a, _a) = api_node(&redis).await;
    let (b, _b) = api_node(&redis).await;
    let auth = format!("Authorization: Bearer {}\r\n", common::TOKEN);
    let mut reader = b.client_named("Bob").await;
    for i in 1..=10 {
        let body = serde_json::json!({ "body": format!("e{i}"), "client_id": format!("e{i}") });
        let (status, _, _) = a
            .api(
                "POST",
                "/api/rooms/general/messages",
                Some(common::TOKEN),
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(status, 201);
    }
    // Published through A's API, read on B's socket: all ten, in order.
    let seqs: Vec<u64> = messages(&mut reader, 10)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    // B's history API and its room list say the same.
    let (status, _, page) = b
        .api(
            "GET",
            "/api/rooms/general/messages?limit=5",
            Some(common::TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let bodies: Vec<&str> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert_eq!(bodies, ["e6", "e7", "e8", "e9", "e10"]);
    let (_, _, rooms) = b.api("GET", "/api/rooms", Some(common::TOKEN), None).await;
    let general = rooms["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["room"] == "general")
        .cloned()
        .expect("general is listed");
    assert_eq!(general["last_seq"].as_u64(), Some(10));

    // An SSE reader on B resumes after Last-Event-ID 7 from what A stored.
    let headers = format!("{auth}Last-Event-ID: 7\r\n");
    let mut sse =
        common::SseReader::open(b.addr, "/api/rooms/general/events", &headers, false).await;
    let joined = sse.next_event().await.expect("joined").json();
    assert_eq!(joined["mode"].as_str(), Some("full"));
    let mut ids = Vec::new();
    while ids.len() < 3 {
        let event = sse.next_event().await.expect("event");
        if event.event == "message" {
            ids.push(event.id.and_then(|id| id.parse::<u64>().ok()).expect("id"));
        }
    }
    assert_eq!(ids, [8, 9, 10]);
}

#[tokio::test]
async fn a_page_rendered_by_one_node_is_continued_from_its_cursor_on_another() {
    let redis = RedisServer::start().await;
    let (a, _a) = node(&redis).await;
    let (b, _b) = node(&redis).await;
    let (c, _c) = node(&redis).await;
    let mut ann = a.client_named("Ann").await;
    let mut watcher = b.client_named("Wes").await;
    for i in 1..=20 {
        ann.post(&format!("k{i}"), &format!("m{i}")).await;
    }
    assert_eq!(
        messages(&mut watcher, 20).await.len(),
        20,
        "B has heard them all"
    );
    let cookie = b.session("Bob").await;
    let (status, _, html) = b.get_as("/", &cookie).await;
    assert_eq!(status, 200);
    let meta = html
        .split("<meta name=\"herald-room\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page embeds the room");
    let unescaped = meta.replace("&quot;", "\"").replace("&amp;", "&");
    let page: app::state::RoomPage = serde_json::from_str(&unescaped).expect("room JSON");
    let last = page.messages.last().map(|m| m.seq).expect("messages");
    assert_eq!(last, 20);
    // Said after the render; the page's socket reaches C.
    ann.post("late", "after the render").await;
    let mut bob = Client::connect_only(c.addr, &cookie).await;
    let joined = bob.resume(common::ROOM, &page.epoch, last).await;
    assert_eq!((joined.mode, joined.first_seq), (JoinMode::Full, 21));
    assert_eq!(
        messages(&mut bob, 1).await,
        vec![(21, "after the render".to_string())]
    );
}

/// A page's connection as the browser keeps it: a cursor per room, the sends not yet acknowledged,
/// and, when its node goes, a reconnect to the next node that rejoins from the cursor and sends the
/// unacknowledged again with the same client ids.
struct Page {
    room: String,
    cookie: String,
    nodes: Vec<std::net::SocketAddr>,
    at: usize,
    client: Option<Client>,
    epoch: String,
    last: u64,
    /// Seqs seen, in the order seen.
    seen: Vec<u64>,
    unacked: Vec<(String, String)>,
    acked: Vec<(String, u64)>,
}

impl Page {
    async fn open(room: &str, cookie: String, nodes: Vec<std::net::SocketAddr>) -> Self {
        let mut client = Client::connect_only(nodes[0], &cookie).await;
        let joined = client.join(room, None).await;
        Self {
            room: room.to_owned(),
            cookie,
            nodes,
            at: 0,
            client: Some(client),
            epoch: joined.epoch,
            last: joined.last_seq,
            seen: Vec::new(),
            unacked: Vec::new(),
            acked: Vec::new(),
        }
    }

    async fn send(&mut self, client_id: String, body: String) {
        self.unacked.push((client_id.clone(), body.clone()));
        if let Some(client) = &mut self.client
            && !client.try_say_in(&self.room, &client_id, &body).await
        {
            self.client = None;
        }
    }

    /// Reads what has arrived (at most `for_at_most`), reconnecting if the node is gone.
    async fn pump(&mut self, for_at_most: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + for_at_most;
        loop {
            let Some(client) = &mut self.client else {
                self.reconnect().await;
                continue;
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Ok(seen) = tokio::time::timeout(left, client.next_or_gone()).await else {
                return;
            };
            match seen {
                common::Seen::Msg(ServerMsg::Message(m)) => {
                    assert!(
                        m.seq > self.last,
                        "seq {} after {}: repeated or out of order",
                        m.seq,
                        self.last
                    );
                    assert_eq!(m.seq, self.last + 1, "a hole before {}", m.seq);
                    self.last = m.seq;
                    self.seen.push(m.seq);
                }
                common::Seen::Msg(ServerMsg::Ack { client_id, seq, .. }) => {
                    self.unacked.retain(|(id, _)| *id != client_id);
                    self.acked.push((client_id, seq));
                }
                common::Seen::Msg(ServerMsg::Error { .. }) => {} // Kept in `unacked`, sent again.
                common::Seen::Msg(_) => {}
                common::Seen::Closed(_) => self.client = None,
            }
        }
    }

    async fn reconnect(&mut self) {
        self.at = (self.at + 1) % self.nodes.len();
        let mut client = Client::connect_only(self.nodes[self.at], &self.cookie).await;
        let joined = client.resume(&self.room, &self.epoch, self.last).await;
        assert_eq!(joined.mode, JoinMode::Full, "resumed without a gap");
        for (client_id, body) in &self.unacked {
            assert!(
                client.try_say_in(&self.room, client_id, body).await,
                "a live node"
            );
        }
        self.client = Some(client);
    }
}

#[tokio::test]
async fn a_node_killed_mid_stream_loses_no_acknowledged_message_and_no_reader_sees_a_hole() {
    let redis = RedisServer::start().await;
    node_killed_mid_stream(&redis, [common::ROOM; 3]).await;
}

/// The same through a Redis Cluster of three masters, each sender and its reader in a room of
/// their own (rooms whose slots are on different masters).
#[tokio::test]
async fn on_a_redis_cluster_a_node_killed_mid_stream_loses_nothing_acknowledged_and_leaves_no_hole()
{
    let redis = RedisCluster::start(3).await;
    node_killed_mid_stream(&redis, SPREAD_ROOMS).await;
    for master in 0..redis.len() {
        assert!(
            redis.keys_on(master).await > 0,
            "master {master} holds a room"
        );
    }
}

/// Rooms whose keys hash to a slot on each master of a three-master cluster (slots 5 161, 7 258
/// and 12 791 of 16 384; `redis-cli --cluster create` gives each master a third, in order).
const SPREAD_ROOMS: [&str; 3] = ["news", "help", "ops"];

/// Three senders and three readers over three nodes, the middle node a real process killed
/// mid-stream; pages `i` and `i + 3` are in `rooms[i]`.
async fn node_killed_mid_stream(redis: &impl Redis, rooms: [&str; 3]) {
    let (a, _a) = node(redis).await;
    let mut b = NodeProcess::start(redis);
    let (c, _c) = node(redis).await;
    let b_server = TestServer::external(b.addr);
    // Three senders and three readers, one of each per node; B's move to C, then A, when B dies.
    let order = |first: std::net::SocketAddr| {
        let mut all = vec![a.addr, b.addr, c.addr];
        let i = all.iter().position(|n| *n == first).expect("a node");
        all.rotate_left(i);
        all
    };
    let mut pages = Vec::new();
    for (i, at) in [a.addr, b.addr, c.addr, a.addr, b.addr, c.addr]
        .into_iter()
        .enumerate()
    {
        let server = if at == b.addr {
            &b_server
        } else if at == a.addr {
            &a
        } else {
            &c
        };
        let cookie = server.session(&format!("P{i}")).await;
        pages.push(Page::open(rooms[i % 3], cookie, order(at)).await);
    }
    for round in 0..60 {
        for (i, page) in pages.iter_mut().take(3).enumerate() {
            page.send(format!("p{i}-{round}"), format!("from {i}, round {round}"))
                .await;
        }
        if round == 25 {
            let _ = b.child.kill(); // SIGKILL, mid-stream.
            let _ = b.child.wait();
        }
        for page in &mut pages {
            page.pump(std::time::Duration::from_millis(5)).await;
        }
    }
    // Everything settles: every send acknowledged, every reader caught up.
    let in_room = |room: &str| 60 * rooms.iter().filter(|r| **r == room).count() as u64;
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    while pages.iter().take(3).any(|p| !p.unacked.is_empty())
        || pages.iter().any(|p| p.last < in_room(&p.room))
    {
        assert!(tokio::time::Instant::now() < deadline, "did not settle");
        for page in &mut pages {
            page.pump(std::time::Duration::from_millis(20)).await;
        }
    }
    // The log holds each acknowledged send exactly once: 60 messages from each sender, each
    // client id once.
    let mut stored = std::collections::HashMap::new();
    let auditor = a.session("Auditor").await;
    let mut distinct = rooms.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    for room in distinct {
        let epoch = &pages.iter().find(|p| p.room == room).expect("a page").epoch;
        let mut reader = Client::connect_only(a.addr, &auditor).await;
        reader.resume(room, epoch, 0).await;
        for _ in 0..in_room(room) {
            let m = reader.next_message().await;
            assert!(
                stored.insert(m.client_id.clone(), m.seq).is_none(),
                "{} stored twice",
                m.client_id
            );
        }
    }
    for page in pages.iter().take(3) {
        for (client_id, seq) in &page.acked {
            assert_eq!(
                stored.get(client_id),
                Some(seq),
                "{client_id} acked as {seq}"
            );
        }
    }
    assert_eq!(stored.len(), 180);
    for page in &pages {
        assert_eq!(
            page.last,
            in_room(&page.room),
            "every reader has everything"
        );
    }
}

/// Until `master` has `replicas` replicas in sync.
async fn until_replicated(master: &RedisServer, replicas: usize) {
    let want = format!("connected_slaves:{replicas}");
    let synced = async {
        loop {
            let info = master
                .ask(&["INFO", "replication"])
                .await
                .unwrap_or_default();
            let online = info.matches("state=online").count();
            if info.contains(&want) && online == replicas {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(common::PATIENCE, synced)
        .await
        .expect("the replica syncs");
}

#[tokio::test]
async fn waiting_for_a_replica_a_message_is_shown_and_acknowledged_only_once_the_replica_has_it() {
    let master = RedisServer::start_with_port(&[]).await;
    let port = master.port().to_string();
    let mut replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]).await;
    until_replicated(&master, 1).await;
    let data = TempDir::new();
    let url = master.url();
    let flags = ["--redis", &url, "--session-secret", SECRET];
    let server = TestServer::start_in(
        data.path(),
        &[&flags[..], &["--redis-wait-replicas", "1"]].concat(),
    )
    .await;
    let mut ann = server.client_named("Ann").await;
    let mut bob = server.client_named("Bob").await;
    // Not "at the first try": WAIT gives the replica a second, which a loaded machine can miss;
    // then the answer is `unavailable` and the page sends it again, stored once (the seq says so).
    assert_eq!(post_until_acked(&mut ann, "w1", "kept twice").await.0, 1);
    let log_len = async |redis: &RedisServer| redis.ask(&["XLEN", "herald:{general}:log"]).await;
    assert_eq!(
        log_len(&replica).await.as_deref(),
        Some("1"),
        "acknowledged: on the replica too"
    );
    assert_eq!(bob.next_message().await.seq, 1);

    // Without its replica the master still stores, but nothing is acknowledged or shown.
    replica.kill();
    ann.say("w2", "waits for a replica").await;
    loop {
        match ann.recv().await {
            ServerMsg::Error {
                code: app::protocol::ErrorCode::Unavailable,
                ..
            } => break,
            ServerMsg::Message(m) if m.seq == 1 => continue,
            other => panic!("w2 refused, not {other:?}"),
        }
    }
    let quiet = tokio::time::Instant::now() + std::time::Duration::from_millis(300);
    while let Ok(msg) = tokio::time::timeout_at(quiet, bob.recv()).await {
        assert!(
            !matches!(msg, ServerMsg::Message(_)),
            "shown before a replica has it: {msg:?}"
        );
    }

    // The replica back: the page sends it again, it is stored once and shown once.
    replica.restart().await;
    until_replicated(&master, 1).await;
    let (seq, _) = post_until_acked(&mut ann, "w2", "waits for a replica").await;
    assert_eq!(seq, 2, "the seq it got the first time");
    let shown = bob.next_message().await;
    assert_eq!((shown.seq, shown.body.as_str()), (2, "waits for a replica"));
    assert_eq!(log_len(&replica).await.as_deref(), Some("2"));
    assert_eq!(post_until_acked(&mut ann, "w3", "and on").await.0, 3);
    assert_eq!(bob.next_message().await.seq, 3, "nothing shown twice");
}

#[tokio::test]
async fn a_wedged_bus_connection_is_found_and_replaced_and_what_it_held_back_is_filled() {
    let redis = RedisServer::start().await;
    let proxy = RedisProxy::start(&redis).await;
    let (a, _a) = node(&proxy).await;
    let (b, _b) = node(&redis).await;
    let mut reader = a.client_named("Ann").await;
    let mut sender = b.client_named("Bob").await;
    sender.post("w1", "before").await;
    assert_eq!(
        messages(&mut reader, 1).await,
        vec![(1, "before".to_string())]
    );
    // A's bus stays open and says nothing: no error will ever tell A.
    assert!(
        proxy.wedge_subscribers() >= 1,
        "A's bus goes through the proxy"
    );
    for i in 2..=5 {
        sender
            .post(&format!("w{i}"), &format!("while wedged {i}"))
            .await;
    }
    let expected: Vec<(u64, String)> = (2..=5).map(|i| (i, format!("while wedged {i}"))).collect();
    assert_eq!(
        messages(&mut reader, 4).await,
        expected,
        "A finds its bus silent, replaces it and fills what it held back, in order, once"
    );
    sender.post("w6", "after").await;
    assert_eq!(
        messages(&mut reader, 1).await,
        vec![(6, "after".to_string())]
    );
}

#[tokio::test]
async fn the_same_send_twice_at_once_is_stored_once_and_both_get_its_seq() {
    let redis = RedisServer::start().await;
    let (a, _a) = node(&redis).await;
    let mut reader = a.client_named("Bob").await;
    let mut ann = a.client_named("Ann").await;
    // A page that resent before the first answer came: both reach the log in one batch.
    ann.say("twice", "only once").await;
    ann.say("twice", "only once").await;
    ann.say("next", "then this").await;
    let mut acks = Vec::new();
    while acks.len() < 3 {
        if let ServerMsg::Ack { client_id, seq, .. } = ann.recv().await {
            acks.push((client_id, seq));
        }
    }
    acks.sort();
    assert_eq!(
        acks,
        [
            ("next".to_string(), 2),
            ("twice".to_string(), 1),
            ("twice".to_string(), 1)
        ]
    );
    assert_eq!(
        messages(&mut reader, 2).await,
        vec![(1, "only once".to_string()), (2, "then this".to_string())]
    );
    let quiet = tokio::time::Instant::now() + std::time::Duration::from_millis(300);
    while let Ok(msg) = tokio::time::timeout_at(quiet, reader.recv()).await {
        assert!(
            !matches!(msg, ServerMsg::Message(_)),
            "shown twice: {msg:?}"
        );
    }
}

#[tokio::test]
async fn a_bus_connection_redis_drops_for_overflowing_its_buffer_is_filled_without_a_hole() {
    // Every push bigger than 16 KiB (Redis's own per-client buffer) passes this limit at once:
    // Redis disconnects the subscriber, as it does a slow one.
    let redis = RedisServer::start_with(&["--client-output-buffer-limit", "pubsub 1kb 0 0"]).await;
    let url = redis.url();
    let flags = [
        "--redis",
        &url,
        "--session-secret",
        SECRET,
        "--max-body-bytes",
        "20000",
    ];
    let (a_data, b_data) = (TempDir::new(), TempDir::new());
    let a = TestServer::start_in(a_data.path(), &flags).await;
    let b = TestServer::start_in(b_data.path(), &flags).await;
    let mut reader = b.client_named("Bob").await;
    let mut sender = a.client_named("Ann").await;
    let connections = async || {
        let stats = redis.ask(&["INFO", "stats"]).await.unwrap_or_default();
        stats
            .lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = connections().await;
    let big = "x".repeat(18_000);
    let bodies: Vec<String> = (1..=30)
        .map(|i| {
            if i % 3 == 0 {
                format!("{i} {big}")
            } else {
                format!("{i} small")
            }
        })
        .collect();
    for (i, body) in bodies.iter().enumerate() {
        sender.say(&format!("o{i}"), body).await;
    }
    let got: Vec<(u64, String)> = messages(&mut reader, 30).await;
    let expected: Vec<(u64, String)> = (1..=30).zip(bodies.iter().cloned()).collect();
    assert!(got == expected, "once each, in order, no hole");
    assert_eq!(
        messages(&mut sender, 30).await,
        expected,
        "on the sender's node too"
    );
    // New connections since: the two nodes' buses coming back (the next `INFO` is one more).
    assert!(
        connections().await > before + 2,
        "Redis dropped the buses and they came back"
    );
}

#[tokio::test]
async fn an_api_tokens_rate_budget_is_one_for_the_whole_cluster() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let flags = [
        "--redis",
        url.as_str(),
        "--session-secret",
        SECRET,
        "--api-token",
        common::TOKEN,
        "--api-rate-per-sec",
        "0.01",
        "--api-rate-burst",
        "4",
    ];
    let (a_data, b_data) = (TempDir::new(), TempDir::new());
    let a = TestServer::start_in(a_data.path(), &flags).await;
    let b = TestServer::start_in(b_data.path(), &flags).await;
    let publish = async |node: &TestServer, i: u32| {
        let body = serde_json::json!({ "body": format!("b{i}"), "client_id": format!("b{i}") });
        let (status, head, _) = node
            .api(
                "POST",
                "/api/rooms/general/messages",
                Some(common::TOKEN),
                Some(&body.to_string()),
            )
            .await;
        (status, head)
    };
    // A burst of four, spent across both nodes; the fifth is refused whichever node it reaches.
    let mut statuses = Vec::new();
    for i in 0..4 {
        let node = if i % 2 == 0 { &a } else { &b };
        statuses.push(publish(node, i).await.0);
    }
    assert_eq!(statuses, [201, 201, 201, 201]);
    for (node, i) in [(&a, 4), (&b, 5)] {
        let (status, head) = publish(node, i).await;
        assert_eq!(status, 429, "one budget for the token, not one per node");
        assert!(
            head.to_ascii_lowercase().contains("retry-after:"),
            "says when to come back: {head}"
        );
    }
}

#[tokio::test]
async fn people_a_single_node_signed_in_stay_signed_in_on_the_cluster() {
    // A single node that made its own key (DATA_DIR/session.key).
    let data = TempDir::new();
    let mut single = TestServer::start_in(data.path(), &[]).await;
    let cookie = single.session("Ann").await;
    // A bot the owner made, in the room: its token works on the cluster too.
    let owner = single
        .sign_in(common::OWNER, common::OWNER_PASSWORD)
        .await
        .expect("owner");
    let (_, bot_token) = crate::bots::make_bot(&single, &owner, "helper", "").await;
    let add = common::form(&[("handle", "helper")]);
    assert_eq!(
        single
            .post_as("/r/general/members", Some(&owner), &add)
            .await
            .0,
        303
    );
    single.begin_shutdown();
    single.stopped().await;
    let redis = RedisServer::start().await;
    server::log::import::import_to_redis(std::path::Path::new(data.path()), &redis.url())
        .await
        .expect("imported");
    let link = server::redis_link::RedisLink::connect(&redis.url())
        .await
        .expect("Redis");
    let db = std::path::Path::new(data.path()).join(server::log::DB_FILE);
    server::people::import_to_redis(&db, &link, std::time::Duration::from_secs(86_400))
        .await
        .expect("people imported");

    // Each cluster node gets a copy of that key.
    let key = format!("{}/session.key", data.path());
    let url = redis.url();
    let flags = ["--redis", url.as_str(), "--session-key-file", key.as_str()];
    let (a_data, b_data) = (TempDir::new(), TempDir::new());
    let a = TestServer::start_in(a_data.path(), &flags).await;
    let b = TestServer::start_in(b_data.path(), &flags).await;
    let mut reader = b.client_named("Bob").await;
    let mut ann = Client::connect(a.addr, &cookie).await;
    ann.post("k1", "still me").await;
    let seen = reader.next_message().await;
    assert_eq!(
        (seen.author.name.as_str(), seen.body.as_str()),
        ("Ann", "still me")
    );
    // Every node knows her: B renders her page, not the sign-in page.
    let (status, _, html) = b.get_as("/", &cookie).await;
    assert_eq!(status, 200);
    assert!(html.contains("Ann"), "the page knows her");
    let (status, answer) = crate::bots::bot_posts(&b, &bot_token, "general", "still a bot").await;
    assert_eq!(status, 201, "{answer}");
}

#[tokio::test]
async fn a_person_s_send_budget_is_one_for_the_whole_cluster() {
    // One person, one socket on each node.
    budget_across_two_nodes(
        ["--rate-burst", "16", "--rate-per-sec", "0.01"],
        ["Flooder"; 2],
    )
    .await;
}

#[tokio::test]
async fn everyone_at_one_address_shares_one_send_budget_across_the_cluster() {
    // Two people (new names cost nothing) at one address, one on each node.
    let flags = [
        "--address-rate-burst",
        "16",
        "--address-rate-per-sec",
        "0.01",
    ];
    budget_across_two_nodes(flags, ["Flooder", "Accomplice"]).await;
}

/// A budget of 16 with nearly nothing after (nodes lease 2 at a time), spent by `names[0]` on
/// node A and `names[1]` on node B (one session if they are the same), twelve sends each after
/// their join: one budget for the cluster lets 12 to 14 through, one per node let 24.
async fn budget_across_two_nodes(budget: [&str; 4], names: [&str; 2]) {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let flags: Vec<&str> = ["--redis", url.as_str(), "--session-secret", SECRET]
        .into_iter()
        .chain(budget)
        .collect();
    let (data_a, data_b) = (TempDir::new(), TempDir::new());
    let a = TestServer::start_in(data_a.path(), &flags).await;
    let b = TestServer::start_in(data_b.path(), &flags).await;
    let first = a.session(names[0]).await;
    let second = if names[0] == names[1] {
        first.clone()
    } else {
        b.session(names[1]).await
    };
    // One socket on each node (each join takes one of the sixteen), twelve sends on each.
    let mut sockets = [
        Client::connect(a.addr, &first).await,
        Client::connect(b.addr, &second).await,
    ];
    for (n, socket) in sockets.iter_mut().enumerate() {
        for i in 0..12 {
            socket.say(&format!("s{n}-{i}"), "flood").await;
        }
    }
    let mut acked = 0;
    for socket in &mut sockets {
        acked += socket.answers(12).await.0;
    }
    // Fourteen are left after the joins; each node may hold one leased token unspent.
    assert!((12..=14).contains(&acked), "{acked} acked of 24");
}

#[tokio::test]
async fn a_room_that_never_held_a_message_is_forgotten_on_every_node_but_not_while_anyone_is_in_it()
{
    let redis = RedisServer::start().await;
    let (a, _a) = node(&redis).await;
    let (b, _b) = node(&redis).await;
    let ann_cookie = a.session("Ann").await;
    let bob_cookie = b.session("Bob").await;
    // Ann on A makes "typo"; Bob on B sits in "quiet", where nobody has said anything either.
    let mut ann = Client::connect_only(a.addr, &ann_cookie).await;
    ann.join("typo", None).await;
    let mut bob = Client::connect_only(b.addr, &bob_cookie).await;
    bob.join("quiet", None).await;
    let member = async |room: &str| {
        redis
            .ask(&["SISMEMBER", "herald:rooms", room])
            .await
            .unwrap_or_default()
    };
    assert_eq!(member("typo").await, "1");
    assert!(
        a.rooms_listed(&ann_cookie)
            .await
            .contains(&"typo".to_string())
    );

    // Ann leaves: a few seconds later the room is gone from Redis and from both nodes.
    ann.send(&ClientMsg::Leave {
        room: "typo".into(),
    })
    .await;
    let gone = async {
        loop {
            let in_redis = member("typo").await == "1"
                || redis
                    .ask(&["EXISTS", "herald:{typo}:meta"])
                    .await
                    .as_deref()
                    != Some("0");
            let on_a = a
                .rooms_listed(&ann_cookie)
                .await
                .contains(&"typo".to_string());
            let on_b = b
                .rooms_listed(&bob_cookie)
                .await
                .contains(&"typo".to_string());
            if !(in_redis || on_a || on_b) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), gone)
        .await
        .expect("the unused room is forgotten everywhere");
    // Meanwhile "quiet" was as unused on A (which knows it from the people B told of), but Bob is
    // in it on B: kept.
    assert_eq!(member("quiet").await, "1");
    assert_eq!(
        redis
            .ask(&["EXISTS", "herald:{quiet}:meta"])
            .await
            .as_deref(),
        Some("1")
    );

    // Ann comes back to "typo": it is made again, and what she says there reaches Bob on B.
    ann.join("typo", None).await;
    bob.join("typo", None).await;
    assert!(ann.try_say_in("typo", "t1", "back again").await);
    let heard = loop {
        if let ServerMsg::Message(m) = bob.recv().await {
            break m;
        }
    };
    assert_eq!(
        (heard.room.as_str(), heard.seq, heard.body.as_str()),
        ("typo", 1, "back again")
    );
    assert_eq!(member("typo").await, "1");
}

/// The append lane a node gives `room` (as `log/redis.rs` picks it: a fixed hash of the name over
/// its eight lanes), to make the worst case below on purpose.
fn append_lane(room: &str) -> u64 {
    use std::hash::BuildHasher;
    std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one(room)
        % 8
}

#[tokio::test]
async fn on_a_redis_cluster_no_room_waits_for_a_dead_masters_rooms() {
    let mut redis = RedisCluster::start(3).await;
    let (a, _a) = node(&redis).await;
    // Two rooms on different masters that the node appends to through one lane.
    let dead = "d0";
    let mut alive = None;
    for n in 0..200 {
        let room = format!("a{n}");
        if append_lane(&room) == append_lane(dead)
            && redis.master_of(&room).await != redis.master_of(dead).await
        {
            alive = Some(room);
            break;
        }
    }
    let alive = alive.expect("a room on another master in the same lane");
    let mut ann = Client::connect_only(a.addr, &a.session("Ann").await).await;
    for room in [dead, alive.as_str()] {
        ann.join(room, None).await;
        post_in_until_acked(&mut ann, room, &format!("{room}-first"), "before").await;
    }
    // A master that hangs (stopped: its connections open, nothing answered): a send into its room
    // waits out the command limit, then is refused; one sent a moment later into a room on a live
    // master is stored and shown at once, not after that refusal. (Its ack follows the refusal: a
    // connection's acks come in the order of its sends, docs/PROTOCOL.md.)
    let frozen = redis.freeze_room(dead).await;
    assert!(ann.try_say_in(dead, "d1", "into a hung master").await);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(ann.try_say_in(&alive, "a1", "into a live master").await);
    let first = loop {
        match ann.recv().await {
            ServerMsg::Message(m) => break format!("{} shown", m.client_id),
            ServerMsg::Error { code, .. } => break format!("{code} first"),
            _ => continue,
        }
    };
    assert_eq!(
        first, "a1 shown",
        "the live master's room did not wait for the hung one"
    );
    let refused = loop {
        match ann.recv().await {
            ServerMsg::Error { code, .. } => break code,
            ServerMsg::Ack { client_id, .. } => panic!("{client_id} acked before d1 was answered"),
            _ => continue,
        }
    };
    assert_eq!(refused, app::protocol::ErrorCode::Unavailable);
    redis.thaw(frozen);

    // A master that is gone refuses connections: its room's sends are refused, and past the
    // cluster's node timeout (2 s here), when Redis marks the master failed, the live masters'
    // rooms still take messages (`cluster-require-full-coverage no`).
    redis.kill_room(dead).await;
    assert!(ann.try_say_in(dead, "d2", "into a dead master").await);
    loop {
        match ann.recv().await {
            ServerMsg::Error { code, .. } => {
                assert_eq!(code, app::protocol::ErrorCode::Unavailable);
                break;
            }
            ServerMsg::Ack { client_id, .. } if client_id == "d2" => {
                panic!("acked on a dead master")
            }
            _ => continue,
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (_, refused) = post_in_until_acked(&mut ann, &alive, "a2", "still going").await;
    assert_eq!(refused, 0, "a live master's room took it at once");

    // Back again: the dead room's message goes in once, as the page sends it again.
    redis.restart_room(dead).await;
    for (client_id, seq) in [("d1", 2), ("d2", 3)] {
        let (stored, _) = post_in_until_acked(&mut ann, dead, client_id, "sent again").await;
        assert_eq!(stored, seq, "{client_id} stored once, in order");
    }
}

/// [`post_until_acked`] in `room`.
async fn post_in_until_acked(
    client: &mut Client,
    room: &str,
    client_id: &str,
    body: &str,
) -> (u64, u32) {
    let mut refused = 0;
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{client_id} never acknowledged"
        );
        assert!(client.try_say_in(room, client_id, body).await);
        loop {
            match client.recv().await {
                ServerMsg::Ack {
                    client_id: id, seq, ..
                } if id == client_id => return (seq, refused),
                ServerMsg::Error {
                    code: app::protocol::ErrorCode::Unavailable,
                    ..
                } => {
                    refused += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    break;
                }
                _ => continue,
            }
        }
    }
}

/// The bytes of room traffic `server`'s bus has brought it so far.
async fn room_bytes_heard(server: &TestServer) -> f64 {
    let scrape = common::scrape(server).await;
    common::value(
        &scrape,
        "herald_bus_received_bytes_total",
        &[("bus", "log")],
    )
}

/// Waits until Redis counts `want` subscribers of `room`'s channel.
async fn subscribers_become(redis: &impl Redis, room: &str, want: u64) {
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    loop {
        let now = redis.subscribers(room).await;
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{room}: {now} subscribers, not {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

on_one_redis_and_a_cluster!(
    a_node_hears_a_room_only_while_it_has_readers_of_it,
    on_a_redis_cluster_a_node_hears_a_room_only_while_it_has_readers_of_it,
    a_node_hears_a_room_only_while_it_has_readers_of_it_on
);

async fn a_node_hears_a_room_only_while_it_has_readers_of_it_on(redis: &impl Redis) {
    let linger = ["--bus-linger-secs", "1"];
    let (a, _a) = node_with(redis, &linger).await;
    let (b, _b) = node_with(redis, &linger).await;
    let mut ann = Client::connect_only(a.addr, &a.session("Ann").await).await;
    let joined = ann.join("a", None).await;
    let mut sender = Client::connect_only(a.addr, &a.session("Sam").await).await;
    sender.join("a", None).await;
    subscribers_become(redis, "a", 1).await;
    let heard_before = room_bytes_heard(&b).await;

    for i in 1..=1000 {
        sender
            .post_in("a", &format!("m{i}"), &format!("message {i}"))
            .await;
    }
    let got = messages(&mut ann, 1000).await;
    assert_eq!(got.last().map(|(seq, _)| *seq), Some(1000));
    // Only node A listens to room `a`: 1 000 messages into it reached B's bus not at all.
    assert_eq!(redis.subscribers("a").await, 1);
    assert_eq!(room_bytes_heard(&b).await, heard_before, "B heard room a");
    assert!(room_bytes_heard(&a).await > 0.0, "A heard its own room");

    // Bob joins `a` on B from a cursor half-way: B follows the room, and he gets everything after
    // his cursor, then what comes next, with no hole and nothing twice.
    let mut bob = Client::connect_only(b.addr, &b.session("Bob").await).await;
    let resumed = bob.resume("a", &joined.epoch, 500).await;
    assert_eq!(
        (resumed.mode, resumed.first_seq, resumed.last_seq),
        (JoinMode::Full, 501, 1000)
    );
    subscribers_become(redis, "a", 2).await;
    sender.post_in("a", "after", "and one more").await;
    let seqs: Vec<u64> = messages(&mut bob, 501)
        .await
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    assert_eq!(seqs, (501..=1001).collect::<Vec<_>>());
    assert_eq!(messages(&mut ann, 1).await[0].0, 1001);

    // Bob leaves: after its linger, B lets the room go; A, whose reader stays, does not.
    bob.send(&ClientMsg::Leave { room: "a".into() }).await;
    subscribers_become(redis, "a", 1).await;
    let heard = room_bytes_heard(&b).await;
    sender.post_in("a", "later", "said after Bob left").await;
    assert_eq!(messages(&mut ann, 1).await[0].0, 1002);
    assert_eq!(room_bytes_heard(&b).await, heard, "B hears room a no more");
}

on_one_redis_and_a_cluster!(
    a_reader_moving_between_nodes_while_messages_flow_misses_nothing_and_sees_nothing_twice,
    on_a_redis_cluster_a_reader_moving_between_nodes_misses_nothing_and_sees_nothing_twice,
    a_reader_moving_between_nodes_misses_nothing_and_sees_nothing_twice_on
);

async fn a_reader_moving_between_nodes_misses_nothing_and_sees_nothing_twice_on(
    redis: &impl Redis,
) {
    // No linger: each node lets the room go as soon as the reader has left it, and follows it
    // again when the reader comes back, while the messages go on.
    let linger = ["--bus-linger-secs", "0"];
    let (a, _a) = node_with(redis, &linger).await;
    let (b, _b) = node_with(redis, &linger).await;
    const N: u64 = 400;
    let mut sender = Client::connect_only(a.addr, &a.session("Ann").await).await;
    let epoch = sender.join("moving", None).await.epoch;
    let sending = tokio::spawn(async move {
        for i in 1..=N {
            sender
                .post_in("moving", &format!("m{i}"), &format!("message {i}"))
                .await;
            if i % 20 == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            }
        }
        sender
    });
    let cookie = b.session("Bob").await;
    let mut seen: Vec<u64> = Vec::new();
    let mut hops = 0;
    while seen.last().copied().unwrap_or(0) < N {
        let node = if hops % 2 == 0 { &b } else { &a };
        hops += 1;
        let mut bob = Client::connect_only(node.addr, &cookie).await;
        let since = Cursor {
            epoch: epoch.clone(),
            seq: seen.last().copied().unwrap_or(0),
        };
        bob.join("moving", Some(since)).await;
        // A few messages here, then on to the other node.
        for _ in 0..25 {
            if seen.last().copied().unwrap_or(0) >= N {
                break;
            }
            seen.push(bob.next_message().await.seq);
        }
        drop(bob);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    sending.await.expect("sent");
    assert!(hops >= 8, "the reader moved {hops} times");
    assert_eq!(seen, (1..=N).collect::<Vec<_>>(), "each once, in order");
}
