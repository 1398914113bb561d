//! The scenarios: connecting subscribers and publishers, pacing, counting, and the server's memory.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::{
        Arc, LazyLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, anyhow};
use app::protocol::{ClientMsg, Cursor};
use futures::{SinkExt, StreamExt, stream};
use memchr::memmem;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpSocket, TcpStream},
    process::{Child, Command},
};
use tokio_tungstenite::{
    WebSocketStream, client_async_with_config,
    tungstenite::{
        Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig,
    },
};

use crate::{
    raw::{self, RawWs},
    report::{Histogram, Report},
};

pub(crate) type Socket = WebSocketStream<TcpStream>;

/// Connections opened at once while setting up: enough to be quick, few enough not to overflow the
/// server's accept queue.
const CONNECTING_AT_ONCE: usize = 256;

/// The setup code of the servers the bench starts.
const SETUP_CODE: &str = "HERALD-BENCH-SETUP-CODE";

/// Connections sharing one session (one person with many tabs, as far as presence goes).
const CONNECTIONS_PER_SESSION: usize = 100;

/// How often a reader says how far it has read while messages keep coming (`--read`), and how often
/// it looks: the page's pace (`READ_EVERY_MS` and `tell_read` in app/src/state.rs,
/// `TYPING_SWEEP_MS` in app/src/client.rs) — every 2 s, and in a room of more than 500 present as
/// much less often as it has more, up to ten times.
const READ_EVERY: Duration = Duration::from_secs(2);
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// The page's pace in a room where `present` people are (see [`READ_EVERY`]).
fn read_every(present: u32) -> Duration {
    READ_EVERY.mul_f64((f64::from(present) / 500.0).clamp(1.0, 10.0))
}

/// How many are in a room, from its `presence` frame.
#[derive(Deserialize)]
struct Present {
    count: u32,
}

/// Source addresses subscribers are spread over: 127.0.0.2 and the next ones.
const SOURCE_ADDRESSES: usize = 200;

/// How long a step waits for its last deliveries before counting the missing ones as lost.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// The longest a run waits for something it needs (all acks, the next frame of a catch-up) before
/// it reports what did not come instead of hanging.
const PATIENCE: Duration = Duration::from_secs(60);

/// Subscribers one process holds at most when the split is left to the tool: the open-files limit
/// here is about 20 000, and each process also needs a few files of its own.
const SUBSCRIBERS_PER_PROCESS: usize = 15_000;

/// What the servers the bench starts take for `--metrics-token`.
const METRICS_TOKEN: &str = "herald-bench-metrics";

/// The Herald under test.
pub struct Target {
    pub addr: SocketAddr,
    pid: Option<u32>,
    child: Option<Child>,
    dir: Option<PathBuf>,
    /// How many processes hold subscribers (0: one per [`SUBSCRIBERS_PER_PROCESS`]).
    pub processes: usize,
    /// The helper processes holding the other shares of the subscribers.
    workers: std::sync::Mutex<Vec<Child>>,
    /// Subscribers read what they receive, each a person of its own (`--read`).
    pub reading: bool,
}

impl Target {
    /// Starts `bin` in a fresh data dir on a free port, without rate limits (the load is the point);
    /// with `redis`, in cluster mode on that Redis.
    pub async fn start(bin: &Path, redis: Option<&str>) -> anyhow::Result<Self> {
        // One folder per node, as a cluster run starts several in this process.
        static STARTED: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "herald-bench-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let mut command = Command::new(bin);
        if let Some(url) = redis {
            command.args([
                "--redis",
                url,
                "--session-secret",
                "herald-bench: a secret of 32 bytes or more",
            ]);
        }
        let mut child = command
            .args(["--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--rate-per-sec", "1000000000", "--rate-burst", "1000000000"])
            // A session stands for many readers here (CONNECTIONS_PER_SESSION), and every reader
            // comes from one address.
            .args(["--max-sockets-per-person", "10000"])
            .args(["--address-rate-per-sec", "1000000000"])
            .args(["--address-rate-burst", "1000000000"])
            .args(["--max-connections-per-address", "1000000"])
            .args(["--rooms-per-hour", "1000000000", "--max-rooms", "100000000"])
            .args(["--log", "info"])
            .args(["--metrics-token", METRICS_TOKEN])
            // Readers come in as guests (a name is enough), on a server set up by the bench.
            .args([
                "--guests",
                "--setup-code",
                SETUP_CODE,
                "--room-makers",
                "everyone",
            ])
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("herald's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    return Ok::<_, anyhow::Error>(rest.trim().parse::<SocketAddr>()?);
                }
            }
            Err(anyhow!("herald exited before listening"))
        })
        .await
        .context("herald did not start in 15 s")??;
        // Keep reading its output, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let target = Self {
            addr,
            pid: child.id(),
            child: Some(child),
            dir: Some(dir),
            processes: 0,
            reading: false,
            workers: Default::default(),
        };
        // The owner's account, as a fresh server's first visitor makes it (a cluster's next
        // node finds it made: the form then answers with the sign-in page, also a 303).
        let body = format!(
            "code={SETUP_CODE}&handle=bench&name=Bench&password=herald-bench+owner+password"
        );
        let (status, response) = target.post_form("/setup", &body).await?;
        if status != 303 {
            return Err(anyhow!("setting herald up answered {status}: {response}"));
        }
        Ok(target)
    }

    pub fn existing(url: &str, pid: Option<u32>) -> anyhow::Result<Self> {
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .context("--url is http://IP:PORT")?;
        Ok(Self {
            addr,
            pid,
            child: None,
            dir: None,
            processes: 0,
            reading: false,
            workers: Default::default(),
        })
    }

    pub async fn stop(mut self) {
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for mut worker in workers {
            let _ = worker.start_kill();
            let _ = worker.wait().await;
        }
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// The CPU time (user and system) the server has used so far, in seconds, from `/proc`.
    pub fn cpu_secs(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid?)).ok()?;
        // After the command's name in parentheses: state is field 3, utime 14 and stime 15.
        let rest = stat.rsplit_once(") ")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // Linux counts these in clock ticks of 1/100 s (USER_HZ) on every architecture here.
        Some(ticks as f64 / 100.0)
    }

    /// The value of one series of the server's `/metrics` (`name{labels}` as printed), if it has it.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let mut stream = TcpStream::connect(self.addr).await.ok()?;
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {METRICS_TOKEN}\r\n\
             Connection: close\r\n\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        response.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
    }

    /// The server's resident memory in KiB, from `/proc`.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Posts a form (already encoded): the status and the whole response.
    async fn post_form(&self, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}",
            body.len()
        );
        self.request(&head, body).await
    }

    /// `GET path` as `cookie`: the status and the whole response.
    pub async fn get(&self, path: &str, cookie: &str) -> anyhow::Result<(u16, String)> {
        self.request(&format!("GET {path} HTTP/1.1\r\nCookie: {cookie}"), "")
            .await
    }

    /// Sends one request on a connection of its own — `head` (its request line and headers, with no
    /// line end after the last) then `body` — and reads the response to its end: its status and
    /// the whole of it.
    async fn request(&self, head: &str, body: &str) -> anyhow::Result<(u16, String)> {
        let mut stream = TcpStream::connect(self.addr).await?;
        let request = format!(
            "{head}\r\nHost: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok((status, response))
    }

    /// Chooses a name, as the guests' form does (a server started with `--guests`); returns the
    /// `Cookie` header value.
    pub async fn session(&self, name: &str) -> anyhow::Result<String> {
        let body = format!("name={}", name.replace(' ', "+"));
        let (_, response) = self.post_form("/session", &body).await?;
        response
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("set-cookie").then(|| {
                    value
                        .trim()
                        .split(';')
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                })
            })
            .ok_or_else(|| anyhow!("no session cookie in: {response}"))
    }

    /// Opens a WebSocket from source address number `n` and reads the welcome.
    pub async fn connect(&self, cookie: &str, n: usize) -> anyhow::Result<Socket> {
        let socket = TcpSocket::new_v4()?;
        let source = Ipv4Addr::new(127, 0, 0, 2 + (n % SOURCE_ADDRESSES) as u8);
        socket.bind(SocketAddr::from((source, 0)))?;
        let stream = socket.connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let mut request = format!("ws://{}/ws", self.addr).into_client_request()?;
        let headers = request.headers_mut();
        headers.insert("cookie", HeaderValue::from_str(cookie)?);
        headers.insert(
            "origin",
            HeaderValue::from_str(&format!("http://{}", self.addr))?,
        );
        // Small buffers, as a browser's are: the library's default 128 KiB read buffer is zeroed on
        // every read, which would make the load generator measure itself.
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(4 * 1024);
        let (mut ws, _) = client_async_with_config(request, stream, Some(config)).await?;
        match next_frame(&mut ws).await? {
            Some(frame) if frame.kind == "welcome" => Ok(ws),
            other => Err(anyhow!("expected welcome, got {other:?}")),
        }
    }

    /// Starts a helper process holding subscribers `first..first + count`; returns once they are
    /// all connected. Its counts are added to `counters` until it ends.
    async fn worker(
        &self,
        rooms: &[String],
        first: usize,
        count: usize,
        counters: &Arc<Counters>,
    ) -> anyhow::Result<Child> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--url", &format!("http://{}", self.addr), "worker"])
            .args(["--first", &first.to_string(), "--count", &count.to_string()])
            .args(["--rooms", &rooms.join(",")])
            .args(self.reading.then_some("--read"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting a herald-bench worker")?;
        let stdout = child.stdout.take().context("the worker's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        match lines.next_line().await? {
            Some(line) if line == WORKER_READY => {}
            other => anyhow::bail!("worker for {first}..: expected {WORKER_READY}, got {other:?}"),
        }
        let counters = counters.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(tally) = serde_json::from_str::<Tally>(&line) {
                    counters.add(&tally);
                }
            }
        });
        Ok(child)
    }

    /// How many connections share a session (a person): one each when they read (`--read`), as
    /// every reader's position is their own.
    fn per_session(&self) -> usize {
        match self.reading {
            true => 1,
            false => CONNECTIONS_PER_SESSION,
        }
    }

    /// Sessions for `connections` connections, [`Target::per_session`] to each.
    async fn sessions(&self, connections: usize) -> anyhow::Result<Vec<String>> {
        let mut cookies = Vec::new();
        for i in 0..connections.div_ceil(self.per_session()) {
            cookies.push(self.session(&format!("Bench {i}")).await?);
        }
        Ok(cookies)
    }
}

/// The fields of a server frame the bench reads while setting up.
#[derive(Debug, Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    last_seq: u64,
    #[serde(default)]
    epoch: String,
    #[serde(default)]
    room: String,
}

/// The fields of a `message` frame the bench reads while measuring (borrowed: no copy of the body).
#[derive(Deserialize)]
struct Timed<'a> {
    #[serde(default)]
    seq: u64,
    #[serde(borrow, default)]
    body: &'a str,
}

impl<'a> Timed<'a> {
    /// Reads `seq` and `body` off a `message` frame. At a million frames a second a full JSON parse
    /// was a fifth of the generator's time, so the two fields are found by scanning first: `seq` is
    /// the first `"seq":` key (the room before it is a plain string), `body` the first `"body":"`
    /// after it (strings before it cannot hold an unescaped quote). Anything unexpected falls back
    /// to the parser.
    fn scan(text: &'a str) -> Option<Self> {
        static SEQ: LazyLock<memmem::Finder<'static>> =
            LazyLock::new(|| memmem::Finder::new(br#""seq":"#));
        static BODY: LazyLock<memmem::Finder<'static>> =
            LazyLock::new(|| memmem::Finder::new(br#""body":""#));
        let bytes = text.as_bytes();
        let scanned = || {
            let at = SEQ.find(bytes)? + 6;
            let digits = bytes[at..].iter().position(|b| !b.is_ascii_digit())?;
            let seq = text.get(at..at + digits)?.parse().ok()?;
            let body = BODY.find(&bytes[at..])? + at + 8;
            let end = memchr::memchr(b'"', &bytes[body..])? + body;
            Some(Timed {
                seq,
                body: text.get(body..end)?,
            })
        };
        scanned().or_else(|| serde_json::from_str(text).ok())
    }

    /// The publisher's send time, from the start of the body.
    fn sent_micros(&self) -> Option<u64> {
        self.body.split(' ').next()?.parse().ok()
    }
}

async fn next_frame(ws: &mut Socket) -> anyhow::Result<Option<Frame>> {
    while let Some(msg) = ws.next().await {
        if let Message::Text(text) = msg? {
            return Ok(Some(serde_json::from_str(&text)?));
        }
    }
    Ok(None)
}

/// Reads `ws` up to the server's `ack` of the message sent with `client_id`; a refusal is an error.
pub(crate) async fn until_ack(ws: &mut Socket, client_id: &str) -> anyhow::Result<()> {
    while let Some(msg) = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .map_err(|_| anyhow!("no ack of {client_id} in time"))?
    {
        if let Message::Text(text) = msg? {
            let frame: serde_json::Value = serde_json::from_str(&text)?;
            match frame["type"].as_str() {
                Some("ack") if frame["client_id"] == client_id => return Ok(()),
                Some("error") => return Err(anyhow!("{client_id} refused: {text}")),
                _ => {}
            }
        }
    }
    Err(anyhow!("closed before the ack of {client_id}"))
}

/// Joins `room` from `since` and reads up to the `joined` answer; returns (epoch, last_seq).
pub(crate) async fn join(
    ws: &mut Socket,
    room: &str,
    since: Option<Cursor>,
) -> anyhow::Result<(String, u64)> {
    let join = ClientMsg::Join {
        room: room.to_owned(),
        since,
        create: true,
    };
    ws.send(Message::text(join.encode())).await?;
    loop {
        match next_frame(ws).await? {
            Some(f) if f.kind == "joined" && f.room == room => return Ok((f.epoch, f.last_seq)),
            Some(_) => continue,
            None => return Err(anyhow!("closed while joining {room}")),
        }
    }
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What every subscriber adds to.
#[derive(Default)]
pub struct Counters {
    delivered: AtomicU64,
    duplicated: AtomicU64,
    lost: AtomicU64,
    lagged: AtomicU64,
    latency: Histogram,
}

/// What a worker process's subscribers counted since its last report: one JSON line on its stdout.
#[derive(Serialize, Deserialize)]
struct Tally {
    delivered: u64,
    duplicated: u64,
    lost: u64,
    lagged: u64,
    latency: Vec<(usize, u64)>,
}

/// The line a worker prints once all its subscribers are connected.
const WORKER_READY: &str = "ready";

impl Counters {
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub fn duplicated(&self) -> u64 {
        self.duplicated.load(Ordering::Relaxed)
    }

    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Everything counted since the last call, leaving zeros.
    fn take(&self) -> Tally {
        Tally {
            delivered: self.delivered.swap(0, Ordering::Relaxed),
            duplicated: self.duplicated.swap(0, Ordering::Relaxed),
            lost: self.lost.swap(0, Ordering::Relaxed),
            lagged: self.lagged.swap(0, Ordering::Relaxed),
            latency: self.latency.take_counts(),
        }
    }

    fn add(&self, tally: &Tally) {
        self.delivered.fetch_add(tally.delivered, Ordering::Relaxed);
        self.duplicated
            .fetch_add(tally.duplicated, Ordering::Relaxed);
        self.lost.fetch_add(tally.lost, Ordering::Relaxed);
        self.lagged.fetch_add(tally.lagged, Ordering::Relaxed);
        self.latency.add_counts(&tally.latency);
    }
}

/// `herald-bench worker`: holds subscribers `first..first + count` for the process that started it,
/// prints [`WORKER_READY`] once they are connected, then what they counted every 100 ms, until its
/// stdin closes (the parent ended).
pub async fn worker(
    target: &Target,
    rooms: &[String],
    first: usize,
    count: usize,
) -> anyhow::Result<()> {
    let counters = Arc::new(Counters::default());
    subscribers_in(target, rooms, first..first + count, &counters).await?;
    let mut out = tokio::io::stdout();
    out.write_all(format!("{WORKER_READY}\n").as_bytes())
        .await?;
    out.flush().await?;
    let mut stdin = tokio::io::stdin();
    let mut every = tokio::time::interval(Duration::from_millis(100));
    let mut scratch = [0u8; 64];
    loop {
        tokio::select! {
            read = stdin.read(&mut scratch) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return Ok(());
                }
            }
            _ = every.tick() => {
                let line = serde_json::to_string(&counters.take())?;
                out.write_all(format!("{line}\n").as_bytes()).await?;
                out.flush().await?;
            }
        }
    }
}

/// Reads one subscriber's room until the socket closes: counts each message once, notes gaps and
/// repeats, records latency from the timestamp the body starts with, and rejoins after a lag.
async fn subscriber(
    mut ws: RawWs,
    room: String,
    mut epoch: String,
    mut last: u64,
    counters: Arc<Counters>,
    reading: bool,
) {
    // Messages up to `floor` are a join's replay, not deliveries being measured.
    let mut floor = last;
    // Tallied here and added to the shared counters once per read, not per frame: shared atomics
    // bounce between the cores.
    let (mut delivered, mut duplicated, mut lost) = (0, 0, 0);
    let mut sent_at = Vec::new();
    // A reader looks a few times a second, each on its own phase (they connected at different
    // moments), as the page does.
    let mut look = reading.then(|| tokio::time::interval(LOOK_EVERY));
    let (mut read_sent, mut read_at, mut present) = (last, None::<Instant>, 0);
    loop {
        let mut rejoin = false;
        let mut each = |frame: raw::Frame<'_>| {
            let raw::Frame::Text(text) = frame else {
                return;
            };
            if text.starts_with(r#"{"type":"message""#) {
                let Some(timed) = Timed::scan(text) else {
                    return;
                };
                if timed.seq <= floor {
                    return;
                }
                if timed.seq <= last {
                    duplicated += 1;
                    return;
                }
                lost += timed.seq - last - 1;
                last = timed.seq;
                delivered += 1;
                sent_at.extend(timed.sent_micros());
            } else if text.starts_with(r#"{"type":"lagged""#) {
                counters.lagged.fetch_add(1, Ordering::Relaxed);
                rejoin = true;
            } else if text.starts_with(r#"{"type":"joined""#)
                && let Ok(f) = serde_json::from_str::<Frame>(text)
            {
                epoch = f.epoch;
                floor = floor.max(last);
            } else if reading
                && text.starts_with(r#"{"type":"presence""#)
                && let Ok(p) = serde_json::from_str::<Present>(text)
            {
                present = p.count;
            }
        };
        let open = match look.as_mut() {
            None => ws.read_frames(&mut each).await,
            Some(look) => tokio::select! {
                open = ws.read_frames(&mut each) => open,
                _ = look.tick() => {
                    // Read up to the newest message received, as the page does: when it looks,
                    // at most every `read_every` while messages keep coming.
                    let due = read_at.is_none_or(|at| at.elapsed() >= read_every(present));
                    if last > read_sent && due {
                        read_at = Some(Instant::now());
                        read_sent = last;
                        let read = ClientMsg::Read {
                            room: room.clone(),
                            seq: last,
                            rewind: false,
                        };
                        if ws.send_text(&read.encode()).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
            },
        };
        // Every frame of one read arrived at the same moment.
        let now = now_micros();
        for sent in sent_at.drain(..) {
            counters.latency.record(now.saturating_sub(sent));
        }
        for (counter, n) in [
            (&counters.delivered, &mut delivered),
            (&counters.duplicated, &mut duplicated),
            (&counters.lost, &mut lost),
        ] {
            if *n > 0 {
                counter.fetch_add(std::mem::take(n), Ordering::Relaxed);
            }
        }
        if rejoin {
            let again = ClientMsg::Join {
                room: room.clone(),
                since: Some(Cursor {
                    epoch: epoch.clone(),
                    seq: last,
                }),
                create: true,
            };
            if ws.send_text(&again.encode()).await.is_err() {
                return;
            }
        }
        if !matches!(open, Ok(true)) {
            return;
        }
    }
}

/// Connects `count` subscribers spread evenly over `rooms`, each joined and reading in its own task.
/// Above [`SUBSCRIBERS_PER_PROCESS`] (or as `--processes` says) shares of them are held by helper
/// processes (`herald-bench worker`), whose counts are added to `counters` as they come.
async fn subscribers(
    target: &Target,
    rooms: &[String],
    count: usize,
    counters: &Arc<Counters>,
) -> anyhow::Result<()> {
    let processes = match target.processes {
        0 => count.div_ceil(SUBSCRIBERS_PER_PROCESS).max(1),
        n => n,
    };
    let share = count.div_ceil(processes);
    let mut helpers = Vec::new();
    for first in (share..count).step_by(share.max(1)) {
        helpers.push(target.worker(rooms, first, share.min(count - first), counters));
    }
    let (own, helped) = futures::join!(
        subscribers_in(target, rooms, 0..share.min(count), counters),
        futures::future::try_join_all(helpers)
    );
    own?;
    let mut workers = target.workers.lock().unwrap_or_else(|p| p.into_inner());
    workers.extend(helped?);
    Ok(())
}

/// Connects subscribers number `range` (of all, in every process) in this process.
pub async fn subscribers_in(
    target: &Target,
    rooms: &[String],
    range: std::ops::Range<usize>,
    counters: &Arc<Counters>,
) -> anyhow::Result<()> {
    let first = range.start;
    let cookies = target.sessions(range.len()).await?;
    let results: Vec<anyhow::Result<()>> = stream::iter(range)
        .map(|i| {
            let cookie = cookies[(i - first) / target.per_session()].clone();
            let room = rooms[i % rooms.len()].clone();
            let counters = counters.clone();
            let reading = target.reading;
            async move {
                let source = Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCE_ADDRESSES) as u8);
                let mut ws = RawWs::connect(target.addr, source, &cookie).await?;
                let welcome = ws.next_text().await?;
                if !welcome.starts_with(r#"{"type":"welcome""#) {
                    return Err(anyhow!("expected welcome, got {welcome}"));
                }
                let join = ClientMsg::Join {
                    room: room.clone(),
                    since: None,
                    create: true,
                };
                ws.send_text(&join.encode()).await?;
                let (epoch, last) = loop {
                    let text = ws.next_text().await?;
                    if text.starts_with(r#"{"type":"joined""#) {
                        let f: Frame = serde_json::from_str(&text)?;
                        break (f.epoch, f.last_seq);
                    }
                };
                tokio::spawn(subscriber(ws, room, epoch, last, counters, reading));
                Ok(())
            }
        })
        .buffer_unordered(CONNECTING_AT_ONCE)
        .collect()
        .await;
    results.into_iter().collect()
}

/// A publishing connection joined to `rooms`: sends, and counts the acks in a reader task.
pub struct Publisher {
    sink: futures::stream::SplitSink<Socket, Message>,
    acked: Arc<AtomicU64>,
    /// Why its connection ended, once it has (the server's close frame, if it sent one).
    ended: Arc<std::sync::Mutex<Option<String>>>,
    sent: u64,
    rooms: Vec<String>,
    name: usize,
    /// Edits this message of each room instead of sending new ones (`reconnect --edits`).
    pub edit_target: Option<u64>,
}

impl Publisher {
    pub async fn open(
        target: &Target,
        cookie: &str,
        rooms: Vec<String>,
        name: usize,
    ) -> anyhow::Result<Self> {
        let mut ws = target
            .connect(cookie, SOURCE_ADDRESSES - 1 - name % 16)
            .await?;
        for room in &rooms {
            join(&mut ws, room, None).await?;
        }
        let (sink, mut stream) = ws.split();
        let acked = Arc::new(AtomicU64::new(0));
        let counted = acked.clone();
        let ended = Arc::new(std::sync::Mutex::new(None));
        let why = ended.clone();
        tokio::spawn(async move {
            let end = loop {
                match stream.next().await {
                    Some(Ok(Message::Text(text))) if text.starts_with(r#"{"type":"ack""#) => {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Ok(Message::Close(frame))) => break format!("closed: {frame:?}"),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break format!("failed: {e}"),
                    None => break "ended".to_owned(),
                }
            };
            *why.lock().unwrap_or_else(|p| p.into_inner()) = Some(end);
        });
        Ok(Self {
            sink,
            acked,
            ended,
            sent: 0,
            rooms,
            name,
            edit_target: None,
        })
    }

    /// How many it has sent.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Queues one timestamped message to the next of its rooms (flushed by [`Self::flush`]).
    pub async fn feed(&mut self, body_pad: &str) -> anyhow::Result<()> {
        let room = self.rooms[(self.sent as usize) % self.rooms.len()].clone();
        let (client_id, body) = (
            format!("p{}-{}", self.name, self.sent),
            format!("{} {body_pad}", now_micros()),
        );
        let msg = match self.edit_target {
            None => ClientMsg::Send {
                room,
                client_id,
                body,
                reply_to: None,
            },
            Some(target) => ClientMsg::Edit {
                room,
                client_id,
                target,
                body,
            },
        };
        self.sent += 1;
        self.sink.feed(Message::text(msg.encode())).await?;
        Ok(())
    }

    pub async fn flush(&mut self) -> anyhow::Result<()> {
        self.sink.flush().await?;
        Ok(())
    }

    /// Waits until every send is acknowledged; an error if the connection ends first or `patience`
    /// passes (a benchmark that hangs measures nothing).
    pub async fn all_acked(&self, patience: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let acked = self.acked.load(Ordering::Relaxed);
            if acked >= self.sent {
                return Ok(());
            }
            let ended = self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(why) = ended {
                anyhow::bail!(
                    "publisher {}: {acked} of {} acked, then {why}",
                    self.name,
                    self.sent
                );
            }
            if started.elapsed() > patience {
                anyhow::bail!(
                    "publisher {}: {acked} of {} acked in {patience:?}",
                    self.name,
                    self.sent
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// `CLIENT KILL TYPE pubsub` on the Redis at `url`: every node's bus connection there drops.
async fn kill_subscribers(url: &str) -> anyhow::Result<()> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// Padding that makes a message body about as long as a short chat line.
pub fn pad() -> String {
    "x".repeat(48)
}

/// Where a fan-out's connections go: the publishers on one node, the subscribers shared evenly
/// over `subscribers` (that node alone, or every node of a cluster).
pub struct Placement<'a> {
    pub publishers: &'a Target,
    pub subscribers: Vec<&'a Target>,
    /// A Redis whose pub/sub connections (every node's bus) are killed halfway through each step:
    /// the step's max latency is then the time the nodes take to repair.
    pub cut_bus: Option<String>,
}

impl<'a> Placement<'a> {
    pub fn one(target: &'a Target) -> Self {
        Self {
            publishers: target,
            subscribers: vec![target],
            cut_bus: None,
        }
    }

    /// The resident memory of every node, in KiB.
    fn rss_kib(&self) -> Option<u64> {
        let mut nodes = self.subscribers.clone();
        if !nodes.iter().any(|t| std::ptr::eq(*t, self.publishers)) {
            nodes.push(self.publishers);
        }
        nodes.iter().map(|t| t.rss_kib()).sum()
    }
}

/// One room (or many small ones) with subscribers, and a publish rate that rises step by step. With
/// subscribers on several nodes, the latency is also told apart for the publishers' own node and
/// the others (publish→receive across the cluster's bus).
pub async fn fanout(
    on: &Placement<'_>,
    room_count: usize,
    per_room: usize,
    rates: &[u32],
    step: Duration,
    budget: Duration,
    scenario: &'static str,
) -> anyhow::Result<Report> {
    let target = on.publishers;
    let rooms: Vec<String> = (0..room_count).map(|i| format!("bench-{i}")).collect();
    let rss_start = on.rss_kib();
    let count = room_count * per_room;
    // One set of counters per node holding subscribers.
    let groups: Vec<Arc<Counters>> = on.subscribers.iter().map(|_| Arc::default()).collect();
    let several = groups.len() > 1;
    let connecting = Instant::now();
    for (i, (node, counters)) in on.subscribers.iter().zip(&groups).enumerate() {
        let share = count / groups.len() + usize::from(i < count % groups.len());
        subscribers(node, &rooms, share, counters).await?;
    }
    let connect_secs = connecting.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = on.rss_kib();
    let total = |of: fn(&Counters) -> &AtomicU64| -> u64 {
        groups.iter().map(|c| of(c).load(Ordering::Relaxed)).sum()
    };

    // A few publishing connections, each covering a share of the rooms.
    let cookie = target.session("Bench publisher").await?;
    let publisher_count = room_count.clamp(1, 8);
    let mut publishers = Vec::new();
    for p in 0..publisher_count {
        let mine: Vec<String> = rooms
            .iter()
            .skip(p)
            .step_by(publisher_count)
            .cloned()
            .collect();
        publishers.push(Publisher::open(target, &cookie, mine, p).await?);
    }
    let pad = pad();
    let mut rows = Vec::new();
    let mut steps = Vec::new();
    let mut best: Option<f64> = None;
    let mut ok = true;
    // A first, unreported step at the first rate: what the first messages into fresh rooms cost
    // (the log's first pages, each queue's first allocation) is start-up, not the rate's.
    let warm_up = rates.first().map(|&rate| (rate, true));
    for (rate, warming) in warm_up.into_iter().chain(rates.iter().map(|&r| (r, false))) {
        let step = if warming {
            step.min(Duration::from_secs(2))
        } else {
            step
        };
        for counters in &groups {
            counters.latency.reset();
        }
        let delivered_before = total(|c| &c.delivered);
        let lost_before = total(|c| &c.lost);
        let dup_before = total(|c| &c.duplicated);
        let sent_before: u64 = publishers.iter().map(|p| p.sent).sum();
        // The publishers' node's CPU over the step and its drain (what a change on the server
        // costs at a given rate, apart from latency).
        let cpu_before = (target.cpu_secs(), Instant::now());
        // Paced in 10 ms slices; each slice's messages go out in one flush per publisher.
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut due = 0.0;
        let mut next = 0usize;
        let mut cut = on.cut_bus.clone().filter(|_| !warming);
        // Under way beside the pacing, which must not wait for it; its outcome is checked below.
        let mut cutting = None;
        while started.elapsed() < step {
            tick.tick().await;
            if started.elapsed() >= step / 2
                && let Some(url) = cut.take()
            {
                cutting = Some(tokio::spawn(async move { kill_subscribers(&url).await }));
            }
            due += f64::from(rate) / 100.0;
            while due >= 1.0 {
                publishers[next % publisher_count].feed(&pad).await?;
                next += 1;
                due -= 1.0;
            }
            for p in &mut publishers {
                p.flush().await?;
            }
        }
        let sending = started.elapsed().as_secs_f64();
        if let Some(cutting) = cutting {
            // A step that meant to cut the bus and did not measured no repair.
            cutting.await?.context("cutting the bus")?;
        }
        let sent: u64 = publishers.iter().map(|p| p.sent).sum::<u64>() - sent_before;
        let expected = sent * per_room as u64;
        // Wait for the stragglers: everything sent must arrive (or be counted lost).
        let waiting = Instant::now();
        while total(|c| &c.delivered) - delivered_before < expected
            && waiting.elapsed() < DRAIN_GRACE
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let delivered = total(|c| &c.delivered) - delivered_before;
        let cpu = cpu_before
            .0
            .zip(target.cpu_secs())
            .map(|(before, after)| (after - before) / cpu_before.1.elapsed().as_secs_f64());
        let lost = expected
            .saturating_sub(delivered)
            .max(total(|c| &c.lost) - lost_before);
        let duplicated = total(|c| &c.duplicated) - dup_before;
        let per_sec = delivered as f64 / sending;
        // Every node's latencies together, and apart: the publishers' node (the first) and the rest.
        let (all, own, others) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for (i, counters) in groups.iter().enumerate() {
            let counts = counters.latency.take_counts();
            all.add_counts(&counts);
            if i == 0 { &own } else { &others }.add_counts(&counts);
        }
        let (p50, p99, max) = (
            all.quantile_ms(0.5),
            all.quantile_ms(0.99),
            all.quantile_ms(1.0),
        );
        let rss = on.rss_kib();
        let within = p99 <= budget.as_secs_f64() * 1000.0 && lost == 0 && duplicated == 0;
        ok &= lost == 0 && duplicated == 0;
        if warming {
            continue;
        }
        if within {
            best = Some(best.map_or(per_sec, |b: f64| b.max(per_sec)));
        }
        let mut row = vec![
            rate.to_string(),
            format!("{per_sec:.0}"),
            format!("{p50:.1}"),
            format!("{p99:.1}"),
            format!("{max:.1}"),
            lost.to_string(),
            duplicated.to_string(),
            total(|c| &c.lagged).to_string(),
            rss.map_or("?".into(), |r| format!("{:.1}", r as f64 / 1024.0)),
            cpu.map_or("?".into(), |c| format!("{:.0}", c * 100.0)),
            if within { "yes" } else { "no" }.into(),
        ];
        let mut json_step = json!({
            "rate": rate, "deliveries_per_sec": per_sec.round(), "p50_ms": p50, "p99_ms": p99,
            "max_ms": max, "lost": lost, "duplicated": duplicated, "rss_kib": rss,
            "cpu_percent": cpu.map(|c| c * 100.0),
        });
        if several {
            let apart = [
                own.quantile_ms(0.5),
                own.quantile_ms(0.99),
                others.quantile_ms(0.5),
                others.quantile_ms(0.99),
            ];
            row.extend(apart.iter().map(|ms| format!("{ms:.1}")));
            json_step["same_node_p50_ms"] = json!(apart[0]);
            json_step["same_node_p99_ms"] = json!(apart[1]);
            json_step["other_nodes_p50_ms"] = json!(apart[2]);
            json_step["other_nodes_p99_ms"] = json!(apart[3]);
        }
        rows.push(row);
        steps.push(json_step);
        if !within {
            break;
        }
    }
    let mut columns = vec![
        "msgs/s",
        "deliveries/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "lost",
        "dup",
        "lags",
        "RSS MiB",
        "CPU %",
        "within",
    ];
    if several {
        columns.extend(["same p50", "same p99", "other p50", "other p99"]);
    }
    Ok(Report {
        scenario,
        columns,
        rows,
        summary: json!({
            "tool": "herald-bench", "scenario": scenario, "rooms": room_count, "per_room": per_room,
            "subscribers": count, "nodes": groups.len(), "connect_secs": connect_secs,
            "rss_start_kib": rss_start, "rss_idle_kib": rss_idle,
            "best_deliveries_per_sec": best.map(f64::round),
            "p99_budget_ms": budget.as_millis() as u64, "steps": steps,
        }),
        ok,
    })
}

/// Connections that join a room and do nothing: what each costs the server.
pub async fn idle(target: &Target, connections: usize) -> anyhow::Result<Report> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = target.rss_kib();
    let counters = Arc::new(Counters::default());
    let rooms = vec!["idle".to_string()];
    let started = Instant::now();
    subscribers(target, &rooms, connections, &counters).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    // Let presence settle (it is announced every 500 ms).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = target.rss_kib();
    let per_connection = match (before, after) {
        (Some(b), Some(a)) => Some((a.saturating_sub(b)) as f64 * 1024.0 / connections as f64),
        _ => None,
    };
    Ok(Report {
        scenario: "idle",
        columns: vec![
            "connections",
            "RSS before MiB",
            "RSS after MiB",
            "bytes/connection",
        ],
        rows: vec![vec![
            connections.to_string(),
            before.map_or("?".into(), |r| format!("{:.1}", r as f64 / 1024.0)),
            after.map_or("?".into(), |r| format!("{:.1}", r as f64 / 1024.0)),
            per_connection.map_or("?".into(), |b| format!("{b:.0}")),
        ]],
        summary: json!({
            "tool": "herald-bench", "scenario": "idle", "connections": connections,
            "connect_secs": connect_secs, "rss_before_kib": before, "rss_after_kib": after,
            "bytes_per_connection": per_connection.map(f64::round),
        }),
        ok: true,
    })
}

/// Many publishers, each keeping `window` sends in flight: durable, acknowledged messages per second.
pub async fn publish(
    target: &Target,
    publishers: usize,
    room_count: usize,
    window: usize,
    duration: Duration,
) -> anyhow::Result<Report> {
    let cookies = target.sessions(publishers).await?;
    let rooms: Vec<String> = (0..room_count).map(|i| format!("pub-{i}")).collect();
    let opened: Vec<anyhow::Result<Publisher>> = stream::iter(0..publishers)
        .map(|i| {
            let cookie = cookies[i / target.per_session()].clone();
            let room = rooms[i % room_count].clone();
            async move { Publisher::open(target, &cookie, vec![room], i).await }
        })
        .buffer_unordered(CONNECTING_AT_ONCE)
        .collect()
        .await;
    let opened: Vec<Publisher> = opened.into_iter().collect::<anyhow::Result<_>>()?;
    let pad = pad();
    let started = Instant::now();
    let rss_before = target.rss_kib();
    let tasks: Vec<_> = opened
        .into_iter()
        .map(|mut p| {
            let pad = pad.clone();
            tokio::spawn(async move {
                while started.elapsed() < duration {
                    // Keep `window` unacknowledged sends in flight.
                    let in_flight = p.sent - p.acked.load(Ordering::Relaxed);
                    if in_flight < window as u64 {
                        for _ in in_flight..window as u64 {
                            p.feed(&pad).await?;
                        }
                        p.flush().await?;
                    } else {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                // Let the last ones be acknowledged.
                let waiting = Instant::now();
                while p.acked.load(Ordering::Relaxed) < p.sent && waiting.elapsed() < DRAIN_GRACE {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok::<_, anyhow::Error>((p.sent, p.acked.load(Ordering::Relaxed)))
            })
        })
        .collect();
    let measured = duration.as_secs_f64();
    let mut rss_peak = rss_before;
    let (mut sent, mut acked) = (0, 0);
    for task in tasks {
        let (s, a) = task.await??;
        sent += s;
        acked += a;
        rss_peak = rss_peak.max(target.rss_kib());
    }
    let per_sec = acked as f64 / measured;
    let unacked = sent - acked;
    Ok(Report {
        scenario: "publish",
        columns: vec![
            "publishers",
            "rooms",
            "window",
            "acked",
            "stored+acked/s",
            "unacked",
        ],
        rows: vec![vec![
            publishers.to_string(),
            room_count.to_string(),
            window.to_string(),
            acked.to_string(),
            format!("{per_sec:.0}"),
            unacked.to_string(),
        ]],
        summary: json!({
            "tool": "herald-bench", "scenario": "publish", "publishers": publishers, "rooms": room_count,
            "window": window, "seconds": measured, "sent": sent, "acked": acked,
            "acked_per_sec": per_sec.round(), "rss_kib": rss_peak,
        }),
        ok: unacked == 0,
    })
}

/// Clients drop, miss `missed` messages each, and reconnect all at once with their cursors.
pub async fn reconnect(
    target: &Target,
    back_to: &[&Target],
    clients: usize,
    room_count: usize,
    missed: u64,
    edits: bool,
) -> anyhow::Result<Report> {
    let rooms: Vec<String> = (0..room_count).map(|i| format!("back-{i}")).collect();
    let cookies = target.sessions(clients).await?;
    // With `edits`, what is missed is edits of each room's first message: posted now.
    let cookie = target.session("Bench publisher").await?;
    let mut publishers = Vec::new();
    for p in 0..room_count.clamp(1, 8) {
        let mine: Vec<String> = rooms
            .iter()
            .skip(p)
            .step_by(room_count.clamp(1, 8))
            .cloned()
            .collect();
        publishers.push(Publisher::open(target, &cookie, mine, p).await?);
    }
    let pad = pad();
    if edits {
        for p in &mut publishers {
            for _ in 0..p.rooms.len() {
                p.feed(&pad).await?;
            }
            p.flush().await?;
            p.all_acked(PATIENCE).await?;
            p.edit_target = Some(1);
        }
    }
    let kind = if edits {
        r#"{"type":"edit""#
    } else {
        r#"{"type":"message""#
    };
    // Everyone joins and notes their cursor, then drops.
    let cursors: Vec<anyhow::Result<(String, String, u64)>> = stream::iter(0..clients)
        .map(|i| {
            let cookie = cookies[i / target.per_session()].clone();
            let room = rooms[i % room_count].clone();
            async move {
                let mut ws = target.connect(&cookie, i).await?;
                let (epoch, last) = join(&mut ws, &room, None).await?;
                Ok((room, epoch, last))
            }
        })
        .buffer_unordered(CONNECTING_AT_ONCE)
        .collect()
        .await;
    let cursors: Vec<(String, String, u64)> = cursors.into_iter().collect::<anyhow::Result<_>>()?;

    // While they are away, `missed` messages (or edits) in every room.
    for p in &mut publishers {
        for _ in 0..missed * p.rooms.len() as u64 {
            p.feed(&pad).await?;
        }
        p.flush().await?;
    }
    for p in &publishers {
        p.all_acked(PATIENCE).await?;
    }

    // Everyone comes back at once; the clock runs until the last one has all it missed.
    let started = Instant::now();
    let caught_up: Vec<anyhow::Result<(u64, u64, u64)>> =
        stream::iter(cursors.into_iter().enumerate())
            .map(|(i, (room, epoch, last))| {
                let cookie = cookies[i / target.per_session()].clone();
                // Back to the same node, or spread over the others of a cluster.
                let node = back_to[i % back_to.len()];
                async move {
                    let mut ws = node.connect(&cookie, i).await?;
                    let since = Cursor { epoch, seq: last };
                    let join = ClientMsg::Join {
                        room: room.clone(),
                        since: Some(since),
                        create: true,
                    };
                    ws.send(Message::text(join.encode())).await?;
                    let (mut got, mut dup, mut seen) = (0u64, 0u64, last);
                    while got < missed {
                        // What has not come by then counts as lost.
                        let Ok(Some(Ok(msg))) = tokio::time::timeout(PATIENCE, ws.next()).await
                        else {
                            break;
                        };
                        let Message::Text(text) = msg else { continue };
                        if !text.starts_with(kind) {
                            continue;
                        }
                        let timed: Timed<'_> = serde_json::from_str(&text)?;
                        if timed.seq <= seen {
                            dup += 1;
                        } else {
                            seen = timed.seq;
                            got += 1;
                        }
                    }
                    Ok((got, dup, started.elapsed().as_micros() as u64))
                }
            })
            .buffer_unordered(CONNECTING_AT_ONCE * 2)
            .collect()
            .await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut lost = 0;
    let mut duplicated = 0;
    for result in caught_up {
        let (got, dup, _) = result?;
        lost += missed.saturating_sub(got);
        duplicated += dup;
    }
    Ok(Report {
        scenario: "reconnect",
        columns: vec![
            "clients",
            "rooms",
            "missed each",
            "all caught up in s",
            "lost",
            "dup",
        ],
        rows: vec![vec![
            clients.to_string(),
            room_count.to_string(),
            missed.to_string(),
            format!("{elapsed:.2}"),
            lost.to_string(),
            duplicated.to_string(),
        ]],
        summary: json!({
            "tool": "herald-bench", "scenario": "reconnect", "clients": clients, "rooms": room_count,
            "missed": missed, "back_to_nodes": back_to.len(), "caught_up_secs": elapsed, "lost": lost, "duplicated": duplicated,
            "rss_kib": target.rss_kib(),
        }),
        ok: lost == 0 && duplicated == 0,
    })
}

/// A small fan-out run that must lose and double nothing.
pub async fn smoke(target: &Target) -> anyhow::Result<Report> {
    let mut report = fanout(
        &Placement::one(target),
        3,
        100,
        &[30, 60],
        Duration::from_secs(1),
        Duration::from_secs(10),
        "smoke",
    )
    .await?;
    let delivered_all = report.rows.len() == 2;
    report.ok &= delivered_all;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use app::protocol::{ChatMessage, Identity, ServerMsg};

    use super::Timed;

    #[test]
    fn the_scan_finds_what_a_full_parse_finds_in_a_real_message_frame() {
        let frame = ServerMsg::Message(ChatMessage {
            room: "bench-7".into(),
            seq: 4711,
            author: Identity {
                id: "u1".into(),
                name: "Bench \"seq\":1 publisher".into(),
            },
            client_id: "p0-12".into(),
            body: "1795485055253123 ppppp".into(),
            sent_at: 0,
            kind: Default::default(),
            ..Default::default()
        })
        .encode();
        let timed = Timed::scan(&frame).expect("scanned");
        let parsed: Timed<'_> = serde_json::from_str(&frame).expect("parsed");
        assert_eq!((timed.seq, timed.body), (parsed.seq, parsed.body));
        assert_eq!(timed.sent_micros(), Some(1_795_485_055_253_123));
    }
}
