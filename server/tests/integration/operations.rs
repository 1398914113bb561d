//! What an operator relies on: `/metrics` (checked by Prometheus's own `promtool`, counters moving
//! with the work), `/healthz` and `/readyz`, JSON logs, and backups taken while people chat.

use crate::common;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use app::protocol::{ClientMsg, JoinMode, ServerMsg};
use common::{Client, METRICS_TOKEN, PATIENCE, ROOM, TempDir, TestServer, scrape, value};

/// Prometheus's own checker: the format parses, and the names follow its conventions.
fn promtool_accepts(scrape: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus, installed by `cargo xtask test`)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(scrape.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool ran");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{scrape}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_fresh_server_shows_every_known_series_at_zero_from_the_first_scrape() {
    let data = TempDir::new();
    let server = TestServer::start_in(data.path(), &["--metrics-token", METRICS_TOKEN]).await;
    let scrape = scrape(&server).await;
    promtool_accepts(&scrape);
    let mut expected = vec![
        r#"herald_connections{transport="websocket"} 0"#.to_string(),
        r#"herald_connections{transport="sse"} 0"#.to_string(),
        r#"herald_rate_limited_total{transport="websocket"} 0"#.to_string(),
        r#"herald_rate_limited_total{transport="http"} 0"#.to_string(),
        r#"herald_disconnects_total{reason="client_gone",transport="websocket"} 0"#.to_string(),
        r#"herald_disconnects_total{reason="too_slow",transport="websocket"} 0"#.to_string(),
        r#"herald_disconnects_total{reason="unavailable",transport="sse"} 0"#.to_string(),
    ];
    for kind in ["user", "bot", "announcement"] {
        expected.push(format!(
            r#"herald_messages_stored_total{{kind="{kind}"}} 0"#
        ));
    }
    for line in expected {
        assert!(
            scrape.lines().any(|l| l == line),
            "no `{line}` in\n{scrape}"
        );
    }
}

#[tokio::test]
async fn metrics_pass_promtool_and_count_what_was_done() {
    let data = TempDir::new();
    let server = TestServer::start_in(data.path(), &["--metrics-token", METRICS_TOKEN]).await;
    let mut ann = server.client_named("Ann").await;
    let mut bob = server.client_named("Bob").await;
    let before = scrape(&server).await;
    promtool_accepts(&before);
    assert_eq!(
        value(&before, "herald_connections", &[("transport", "websocket")]),
        2.0
    );

    const N: u64 = 7;
    for i in 0..N {
        ann.post(&format!("m{i}"), "hello").await;
    }
    for _ in 0..N {
        bob.next_message().await;
    }
    assert_eq!(server.get("/healthz").await.0, 200);
    bob.into_socket().close(None).await.expect("close");

    let deadline = tokio::time::Instant::now() + PATIENCE;
    let after = loop {
        let after = scrape(&server).await;
        let closed = ("reason", "client_closed");
        if value(
            &after,
            "herald_disconnects_total",
            &[("transport", "websocket"), closed],
        ) == 1.0
        {
            break after;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no disconnect counted:\n{after}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    promtool_accepts(&after);
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let user = [("kind", "user")];
    assert_eq!(moved("herald_messages_stored_total", &user), N as f64);
    // Each message to both: Ann's own copy and Bob's.
    assert_eq!(moved("herald_deliveries_total", &[]), 2.0 * N as f64);
    assert_eq!(moved("herald_log_append_seconds_count", &[]), N as f64);
    assert_eq!(
        moved(
            "herald_http_requests_total",
            &[("route", "/healthz"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        value(&after, "herald_connections", &[("transport", "websocket")]),
        1.0
    );
    assert_eq!(value(&after, "herald_rooms", &[]), 1.0);
    assert!(value(&after, "process_resident_memory_bytes", &[]) > 0.0);
}

#[tokio::test]
async fn one_write_in_sixteen_is_timed_from_queue_to_socket() {
    let data = TempDir::new();
    let server = TestServer::start_in(data.path(), &["--metrics-token", METRICS_TOKEN]).await;
    let mut ann = server.client_named("Ann").await;
    let timed = |scraped: &str| value(scraped, "herald_publish_to_delivery_seconds_count", &[]);
    assert_eq!(timed(&scrape(&server).await), 0.0);
    // Each post waits for its answers: at least one batch written per post, 64 posts.
    for i in 0..64 {
        ann.post(&format!("t{i}"), "timed").await;
    }
    let count = timed(&scrape(&server).await);
    // Timed at all, and not every write (that would be 64 or more).
    assert!(
        (1.0..=16.0).contains(&count),
        "{count} timed writes of at least 64"
    );
}

#[tokio::test]
async fn metrics_need_their_token_on_the_main_address() {
    let plain = TestServer::start().await;
    let (status, _, body) = plain.get("/metrics").await;
    assert_eq!(status, 404);
    assert!(body.contains("--metrics-token"), "{body}");

    let data = TempDir::new();
    let guarded = TestServer::start_in(data.path(), &["--metrics-token", METRICS_TOKEN]).await;
    let (status, head, _) = guarded.get("/metrics").await;
    assert_eq!(status, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    let (status, _, _) = guarded
        .request(&format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer wrong\r\n\
             Connection: close\r\n\r\n",
            guarded.addr
        ))
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_metrics_address_serves_metrics_alone_without_a_token() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let data = TempDir::new();
    let _server = TestServer::start_in(data.path(), &["--metrics-addr", &addr]).await;
    let private = TestServer::external(addr.parse().expect("addr"));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(&addr).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "metrics listener");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _, body) = private.get("/metrics").await;
    assert_eq!(status, 200);
    promtool_accepts(&body);
    assert_eq!(
        private.get("/").await.0,
        404,
        "only /metrics is served there"
    );
}

#[tokio::test]
async fn the_rate_limit_and_its_refusals_are_counted() {
    let data = TempDir::new();
    let flags = [
        "--metrics-token",
        METRICS_TOKEN,
        "--rate-per-sec",
        "1",
        "--rate-burst",
        "2",
    ];
    let server = TestServer::start_in(data.path(), &flags).await;
    let mut ann = server.client_named("Ann").await;
    for i in 0..4 {
        ann.say(&format!("r{i}"), "quick").await;
    }
    let refused = loop {
        match ann.recv().await {
            ServerMsg::Error { code, .. } => break code,
            _ => continue,
        }
    };
    assert_eq!(refused, app::protocol::ErrorCode::RateLimited);
    let scraped = scrape(&server).await;
    assert!(
        value(
            &scraped,
            "herald_rate_limited_total",
            &[("transport", "websocket")]
        ) >= 1.0
    );
}

#[tokio::test]
async fn readyz_turns_503_as_shutdown_begins_while_healthz_and_chat_go_on() {
    let data = TempDir::new();
    let mut server = TestServer::start_in(data.path(), &["--drain-seconds", "2"]).await;
    let (status, _, body) = server.get("/readyz").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ready"}"#));
    let mut ann = server.client_named("Ann").await;

    server.begin_shutdown();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, _, body) = server.get("/readyz").await;
        if status == 503 {
            assert_eq!(body, r#"{"status":"stopping"}"#);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "readyz stays 200");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Draining: alive, and those already here still chat (and new visitors still get in).
    let (status, _, body) = server.get("/healthz").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""status":"stopping""#), "{body}");
    ann.post("during-drain", "still here").await;
    let _late = server.client_named("Late").await;
    server.stopped().await;
}

#[tokio::test]
async fn readyz_turns_503_while_the_log_cannot_be_written_and_back() {
    let data = TempDir::new();
    let server = TestServer::start_in(data.path(), &[]).await;
    assert_eq!(server.get("/readyz").await.0, 200);
    // Another process makes every write to the log fail, as a full or read-only disk would.
    let outside =
        rusqlite::Connection::open(Path::new(data.path()).join("herald.db")).expect("open the log");
    outside
        .execute_batch(
            "CREATE TRIGGER no_writes BEFORE UPDATE ON health
             BEGIN SELECT RAISE(ABORT, 'the disk says no'); END;",
        )
        .expect("trigger");
    let (status, _, body) = server.get("/readyz").await;
    assert_eq!(
        (status, body.as_str()),
        (503, r#"{"status":"log_unavailable"}"#)
    );
    assert_eq!(server.get("/healthz").await.0, 200, "alive all the same");
    outside
        .execute_batch("DROP TRIGGER no_writes")
        .expect("drop");
    assert_eq!(server.get("/readyz").await.0, 200);
}

/// A port nobody listens on (bound and let go: a race only with other tests doing the same).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The binary, started in `dir` with `flags`, listening on a port of its own; killed when dropped
/// (a failed test leaves nothing running).
pub struct Running {
    pub child: Child,
    pub addr: std::net::SocketAddr,
    /// Its log (stdout), a line at a time; the lines up to "listening" are in `early`.
    log: tokio::sync::mpsc::UnboundedReceiver<String>,
    early: Vec<String>,
}

impl Running {
    /// The binary in `dir` on `addr` with `flags`, its log lines coming in as they are written.
    fn spawn(dir: &str, addr: &str, flags: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["--data-dir", dir, "--addr", addr])
            .args(common::HARNESS_FLAGS)
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start herald");
        let out = child.stdout.take().expect("stdout");
        let (tx, log) = tokio::sync::mpsc::unbounded_channel();
        // Read to the end, whatever the test still wants: a full pipe would stall the server.
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            addr: "0.0.0.0:0".parse().expect("addr"),
            log,
            early: Vec::new(),
        }
    }

    pub async fn start(dir: &str, flags: &[&str]) -> Self {
        let mut running = Self::spawn(dir, "127.0.0.1:0", flags);
        loop {
            let line = running.next_line().await;
            let found = line
                .split("Herald is listening on http://")
                .nth(1)
                .and_then(|rest| rest.split(['"', ' ']).next())
                .and_then(|addr| addr.parse().ok());
            running.early.push(line);
            if let Some(addr) = found {
                running.addr = addr;
                break;
            }
        }
        // Listening comes before the log is open: ready is when it answers /readyz.
        let server = TestServer::external(running.addr);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while server.get("/readyz").await.0 != 200 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "herald never got ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.claim_setup().await;
        running
    }

    async fn next_line(&mut self) -> String {
        tokio::time::timeout(PATIENCE, self.log.recv())
            .await
            .expect("a log line in time")
            .expect("herald still running")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `herald <args>` to its end; its combined output if it failed.
fn herald_command(args: &[&str]) -> Result<(), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .output()
        .expect("run herald");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_with_ids_and_never_a_message_body() {
    let data = TempDir::new();
    let flags = ["--log-format", "json", "--log", "info,tower_http=debug"];
    let mut herald = Running::start(data.path(), &flags).await;
    let json = |line: &str| -> serde_json::Value {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    let mut seen: Vec<serde_json::Value> = herald.early.iter().map(|l| json(l)).collect();
    let addr = herald.addr;
    let server = TestServer::external(addr);
    let cookie = server.session("Ann").await;
    let mut ann = Client::connect(addr, &cookie).await;
    ann.post("secret", "words nobody may log 7c1e").await;
    ann.send(&ClientMsg::Leave { room: ROOM.into() }).await;
    ann.into_socket().close(None).await.expect("close");

    // Until the connection's end is logged: everything before it is in by then.
    loop {
        let line = json(&herald.next_line().await);
        let done = line["message"] == "disconnected";
        seen.push(line);
        if done {
            break;
        }
    }

    let everything = serde_json::to_string(&seen).expect("json");
    assert!(!everything.contains("7c1e"), "a message body was logged");
    for line in &seen {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
    }
    let with = |message: &str| -> &serde_json::Value {
        seen.iter()
            .find(|line| line["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in {everything}"))
    };
    // The spans a line happened in, by name: {"name": "request", "request_id": ..., ...}.
    let span = |line: &serde_json::Value, name: &str| -> serde_json::Value {
        line["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|s| s["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no {name} span in {line}"))
    };
    let connected = with("connected");
    assert!(connected["connection"].is_u64(), "{connected}");
    assert!(connected["user"].is_string(), "{connected}");
    assert_eq!(connected["transport"], "websocket");
    assert!(
        connected["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{connected}"
    );
    // Every line about the connection says which one.
    for message in ["joined", "left", "disconnected"] {
        assert_eq!(
            with(message)["connection"],
            connected["connection"],
            "{message}"
        );
    }
    assert_eq!(with("joined")["room"], ROOM);
    assert_eq!(with("left")["room"], ROOM);
    assert_eq!(with("disconnected")["reason"], "client_closed");
    let session = seen
        .iter()
        .filter(|line| line["spans"].is_array())
        .map(|line| span(line, "request"))
        .find(|request| request["path"] == "/session")
        .unwrap_or_else(|| panic!("no request span for /session in {everything}"));
    assert!(session["request_id"].is_string(), "{session}");
}

#[tokio::test]
async fn a_backup_taken_while_people_chat_restores_whole_and_resets_every_cursor() {
    let data = TempDir::new();
    let backups = TempDir::new();
    let copy = Path::new(backups.path()).join("herald-backup.db");
    let copy = copy.to_str().expect("utf-8");
    let mut server = TestServer::start_in(data.path(), &[]).await;
    let mut ann = server.client_named("Ann").await;

    // Messages keep coming while the backup is taken.
    let mut acked = BTreeMap::new();
    for i in 0..50 {
        let body = format!("before {i}");
        acked.insert(ann.post(&format!("b{i}"), &body).await, body);
    }
    let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
    let sending = tokio::spawn(async move {
        let mut sent = BTreeMap::new();
        for i in 0.. {
            let body = format!("during {i}");
            sent.insert(ann.post(&format!("d{i}"), &body).await, body);
            if stop.try_recv().is_ok() {
                break;
            }
        }
        (ann, sent)
    });
    let dir = data.path().to_owned();
    let backup_to = copy.to_owned();
    let backed_up = tokio::task::spawn_blocking(move || {
        herald_command(&["--data-dir", &dir, "backup", &backup_to])
    })
    .await
    .expect("backup ran");
    backed_up.expect("herald backup");
    let _ = stop_tx.send(());
    let (mut ann, during) = sending.await.expect("sender");
    acked.extend(during);
    let last = ann.post("after", "after the backup").await;
    acked.insert(last, "after the backup".into());

    // A backup is never written over.
    let dir = data.path().to_owned();
    assert!(herald_command(&["--data-dir", &dir, "backup", copy]).is_err());

    let epoch_before = {
        let cookie = server.session("Reader").await;
        let mut reader = Client::connect_only(server.addr, &cookie).await;
        reader.join(ROOM, None).await.epoch
    };
    drop(ann);
    server.begin_shutdown();
    server.stopped().await;

    herald_command(&["--data-dir", data.path(), "restore", copy]).expect("herald restore");
    assert!(
        Path::new(data.path())
            .join("herald.db.before-restore")
            .exists()
    );

    let server = TestServer::start_in(data.path(), &[]).await;
    let cookie = server.session("Reader").await;
    let mut reader = Client::connect_only(server.addr, &cookie).await;
    // Someone who had read everything comes back: told to start over, not "nothing missed".
    let back = reader.resume(ROOM, &epoch_before, last).await;
    assert_eq!(back.mode, JoinMode::Reset);
    assert_ne!(back.epoch, epoch_before);
    // The restored history is a prefix of what was acknowledged: dense seqs from 1, each with the
    // very message that had that seq, and it ends somewhere among the sends made during the backup.
    let restored_last = back.last_seq;
    assert!(
        restored_last >= 50 && restored_last < last,
        "{restored_last} of {last}"
    );
    let mut history = Vec::new();
    let mut before = restored_last + 1;
    while before > 1 {
        reader
            .send(&ClientMsg::History {
                room: ROOM.into(),
                before,
                limit: Some(100),
            })
            .await;
        let page = loop {
            match reader.recv().await {
                ServerMsg::History { messages, .. } => break messages,
                _ => continue,
            }
        };
        before = page.first().map_or(1, |m| m.seq);
        history.splice(0..0, page);
    }
    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=restored_last).collect::<Vec<_>>());
    for message in &history {
        assert_eq!(
            Some(&message.body),
            acked.get(&message.seq),
            "seq {}",
            message.seq
        );
    }
    // And the room goes on from there under its new epoch.
    let mut writer = server.client_named("Writer").await;
    assert_eq!(
        writer.post("new", "a new lifetime").await,
        restored_last + 1
    );
}

#[tokio::test]
async fn a_restore_is_refused_while_herald_runs_on_the_data_dir() {
    let data = TempDir::new();
    let backups = TempDir::new();
    let copy = Path::new(backups.path()).join("b.db");
    let copy = copy.to_str().expect("utf-8");
    let herald = Running::start(data.path(), &[]).await;
    herald_command(&["--data-dir", data.path(), "backup", copy]).expect("backup while running");
    let refused = herald_command(&["--data-dir", data.path(), "restore", copy])
        .expect_err("a restore under a running Herald");
    assert!(
        refused.contains("stop Herald before restoring"),
        "{refused}"
    );
    let second = herald_command(&["--data-dir", data.path()]).expect_err("a second Herald");
    assert!(
        second.contains("another Herald is using the data dir"),
        "{second}"
    );
    drop(herald);
    // Stopped (however it stopped: here killed), the restore goes through.
    herald_command(&["--data-dir", data.path(), "restore", copy]).expect("restore once stopped");
    // The same restore again keeps the log it replaces beside the first one kept, never over it.
    let dir = Path::new(data.path());
    let first_kept = std::fs::read(dir.join("herald.db.before-restore")).expect("the first kept");
    herald_command(&["--data-dir", data.path(), "restore", copy]).expect("restore again");
    assert_eq!(
        std::fs::read(dir.join("herald.db.before-restore")).expect("still there"),
        first_kept,
        "the first kept log was written over"
    );
    assert!(dir.join("herald.db.before-restore.2").exists());
}

#[tokio::test]
async fn in_cluster_mode_redis_round_trips_and_bus_repairs_are_counted() {
    let redis = common::RedisServer::start().await;
    let data = TempDir::new();
    let url = redis.url();
    let flags = [
        "--redis",
        url.as_str(),
        "--session-secret",
        "a metrics test secret of 32 bytes or more",
        "--metrics-token",
        METRICS_TOKEN,
    ];
    let server = TestServer::start_in(data.path(), &flags).await;
    // From the first scrape each bus's series is there (the node's own first note on the cluster
    // channel may have come back already; nothing else has happened).
    let first = scrape(&server).await;
    for family in [
        "herald_bus_repairs_total",
        "herald_bus_received_bytes_total",
    ] {
        for bus in ["log", "cluster"] {
            let series = format!(r#"{family}{{bus="{bus}"}} "#);
            assert!(first.contains(&series), "no {series} in:\n{first}");
        }
    }
    assert_eq!(
        value(&first, "herald_bus_repairs_total", &[("bus", "log")]),
        0.0
    );
    assert_eq!(
        value(&first, "herald_bus_received_bytes_total", &[("bus", "log")]),
        0.0
    );
    let mut ann = server.client_named("Ann").await;
    for i in 0..5 {
        ann.post(&format!("c{i}"), "through Redis").await;
    }
    let scraped = scrape(&server).await;
    promtool_accepts(&scraped);
    // Ann's room is followed here: its messages came on the bus.
    assert!(
        value(
            &scraped,
            "herald_bus_received_bytes_total",
            &[("bus", "log")]
        ) > 0.0
    );
    assert_eq!(
        value(
            &scraped,
            "herald_messages_stored_total",
            &[("kind", "user")]
        ),
        5.0
    );
    let appends = value(
        &scraped,
        "herald_redis_round_trip_seconds_count",
        &[("op", "append")],
    );
    assert!(
        (1.0..=5.0).contains(&appends),
        "{appends} append round trips for 5 sends"
    );

    // Redis drops every subscriber: the node's bus is replaced, and each of its listeners (the
    // rooms' log, the cluster's presence) says so; the probe's round trip is timed once it is back.
    let killed = redis.ask(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    assert!(killed.is_some_and(|n| n != "0"), "no subscriber to kill");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let scraped = scrape(&server).await;
        let repaired = |bus: &str| value(&scraped, "herald_bus_repairs_total", &[("bus", bus)]);
        let probed = value(
            &scraped,
            "herald_redis_round_trip_seconds_count",
            &[("op", "bus")],
        );
        if repaired("log") >= 1.0 && repaired("cluster") >= 1.0 && probed >= 1.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not counted:\n{scraped}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Started on every interface, the start-up lines name addresses people can open (this machine's
/// first) and never `0.0.0.0`, and say how to let people in by a name.
#[tokio::test]
async fn started_on_every_interface_it_says_where_people_can_open_it() {
    let data = TempDir::new();
    let mut herald = Running::spawn(data.path(), "0.0.0.0:0", &[]);
    let mut lines = Vec::new();
    let said = |lines: &[String], what: &str| lines.iter().any(|l| l.contains(what));
    while !(said(&lines, "(this machine only)") && said(&lines, "--allowed-host")) {
        lines.push(herald.next_line().await);
    }
    let log = lines.join("\n");
    // The loopback address with the port it really listens on: it answers there.
    let url = lines
        .iter()
        .find_map(|l| l.split("http://127.0.0.1:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no loopback address: {log}"));
    let port: u16 = url.parse().unwrap_or_else(|_| panic!("not a port: {url}"));
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok(),
        "nothing at 127.0.0.1:{port}: {log}"
    );
    assert!(
        log.contains("of every IPv4 interface; open it at:"),
        "{log}"
    );
    assert!(!log.contains("http://0.0.0.0"), "{log}");
    // Any other address said is one of this machine's, with the same port.
    for line in lines.iter().filter(|l| l.contains("(from other machines")) {
        assert!(line.contains(&format!(":{port}  (")), "{line}");
    }
    assert!(
        log.contains("start with --allowed-host chat.example.com"),
        "{log}"
    );
}

/// An empty session secret (an unset variable in a unit file) or a short one would let anyone forge
/// anyone's cookie: Herald refuses to start, saying why and how to make a good one.
#[test]
fn an_empty_or_short_session_secret_is_refused_at_start() {
    let data = TempDir::new();
    let start = |secret: &str| {
        Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["--data-dir", data.path(), "--addr", "127.0.0.1:0"])
            .env("HERALD_SESSION_SECRET", secret)
            .stdin(Stdio::null())
            .output()
            .expect("run herald")
    };
    for (secret, says) in [
        ("", "is empty"),
        ("   ", "is empty"),
        ("x", "is 1 bytes; it must be at least 32"),
        (&"s".repeat(31), "is 31 bytes; it must be at least 32"),
    ] {
        let out = start(secret);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "started with {secret:?}: {said}");
        assert!(
            said.contains(says) && said.contains("openssl rand -hex 32"),
            "{secret:?}: {said}"
        );
        // Refused before anything was written: no key file was made in its place.
        assert!(!Path::new(data.path()).join("session.key").exists());
    }
}

/// A secret of 32 bytes or more signs cookies that the server then takes.
#[tokio::test]
async fn a_long_enough_session_secret_signs_cookies() {
    let data = TempDir::new();
    let secret = "a secret of thirty-two bytes, ok";
    assert_eq!(secret.len(), 32);
    let server = TestServer::start_in(data.path(), &["--session-secret", secret]).await;
    let cookie = server.session("Ann").await;
    let (status, _, body) = server.get_as("/session", &cookie).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Ann"), "{body}");
}

/// A request id from outside is kept (a proxy's), but never longer than the logs keep it: the answer
/// does not echo 3 000 characters back. One that is not printable ASCII is replaced by one of ours.
#[tokio::test]
async fn a_request_id_from_outside_is_echoed_cut_to_64_characters() {
    let server = TestServer::start().await;
    let ask = |id: String| {
        let server = &server;
        async move {
            let (status, head, _) = server
                .request(&format!(
                    "GET /healthz HTTP/1.1\r\nHost: {}\r\nX-Request-Id: {id}\r\nConnection: close\r\n\r\n",
                    server.addr
                ))
                .await;
            assert_eq!(status, 200, "{head}");
            common::header(&head, "x-request-id")
                .unwrap_or_default()
                .to_owned()
        }
    };
    assert_eq!(ask("proxy-7f3a".into()).await, "proxy-7f3a");
    let long = "r".repeat(3000);
    assert_eq!(ask(long.clone()).await, long[..64]);
    let ours = ask("caf\u{e9}".into()).await;
    assert!(
        !ours.is_empty() && ours.is_ascii() && ours != "caf\u{e9}",
        "{ours}"
    );
}

#[tokio::test]
async fn the_data_dir_its_log_and_backups_are_for_herald_s_user_alone_and_never_made_through_a_link()
 {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| {
        std::fs::symlink_metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let root = TempDir::new();
    let dir = Path::new(root.path()).join("data");
    let dir_str = dir.to_str().expect("utf-8 path");
    // Herald makes the data dir, its log and the log's WAL, readable by its user alone.
    let mut server = TestServer::start_in(dir_str, &[]).await;
    server.client().await.post("a", "a private message").await;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("herald.db")), 0o600);
    assert_eq!(mode(&dir.join("herald.db-wal")), 0o600);

    // A backup too, taken while it runs.
    let copy = Path::new(root.path()).join("backup.db");
    let copy_str = copy.to_str().expect("utf-8 path");
    herald_command(&["--data-dir", dir_str, "backup", copy_str]).expect("herald backup");
    assert_eq!(mode(&copy), 0o600);

    // A backup to a link someone planted, pointing nowhere yet: refused, and nothing is made
    // where it points.
    let planted = Path::new(root.path()).join("where-the-link-points.db");
    let link = Path::new(root.path()).join("link.db");
    std::os::unix::fs::symlink(&planted, &link).expect("symlink");
    let refused = herald_command(&[
        "--data-dir",
        dir_str,
        "backup",
        link.to_str().expect("utf-8"),
    ])
    .expect_err("a backup through a link is refused");
    assert!(refused.contains("exists already"), "{refused}");
    assert!(
        std::fs::symlink_metadata(&planted).is_err(),
        "nothing made through the link"
    );

    // Restored from a backup someone made readable to all: the log is 0600 again.
    server.begin_shutdown();
    server.stopped().await;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    herald_command(&["--data-dir", dir_str, "restore", copy_str]).expect("herald restore");
    assert_eq!(mode(&dir.join("herald.db")), 0o600);
}
