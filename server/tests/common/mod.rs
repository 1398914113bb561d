//! Test harness: a real Herald on 127.0.0.1:0 in this process, and WebSocket/HTTP clients for it.
#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::{net::SocketAddr, time::Duration};

use app::protocol::{ChatMessage, ClientMsg, Cursor, ErrorCode, JoinMode, ServerMsg};
use futures::{SinkExt, StreamExt};
use server::Config;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinHandle,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, protocol::CloseFrame},
};

/// The room the harness's clients join and post to.
pub const ROOM: &str = "general";

/// The setup code of the harness's servers, and the owner's account their setup makes.
pub const SETUP_CODE: &str = "HARNESS-SETUP-CODE-0001";
pub const OWNER: &str = "owner";
pub const OWNER_PASSWORD: &str = "owner's long password";

/// What every Herald the tests start is given (in-process or as its own process): the tests test
/// chatting, as guests (accounts have tests of their own), on a server set up with [`SETUP_CODE`].
pub const HARNESS_FLAGS: [&str; 5] = [
    "--guests",
    "--setup-code",
    SETUP_CODE,
    "--room-makers",
    "everyone",
];

/// Budgets no test reaches unless it sets its own: tests post far faster than people type, and
/// every test client has one address.
pub const GENEROUS_BUDGETS: [&str; 10] = [
    "--rate-per-sec",
    "1000000",
    "--rate-burst",
    "1000000",
    "--address-rate-per-sec",
    "1000000",
    "--address-rate-burst",
    "1000000",
    "--rooms-per-hour",
    "1000000",
];

/// The answer to a join.
#[derive(Debug)]
pub struct Joined {
    pub epoch: String,
    pub mode: JoinMode,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// A guard against a hang turning into a stuck CI run; never what a test asserts on.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _data: Option<TempDir>,
}

impl TestServer {
    /// A server with a fresh data dir of its own.
    pub async fn start() -> Self {
        let data = TempDir::new();
        let mut server = Self::start_in(data.path(), &[]).await;
        server._data = Some(data);
        server
    }

    /// A server on the data dir `dir` (kept by the caller, e.g. across a restart), with extra flags.
    /// Tests post far faster than people type, and every test client has one address, so the rate
    /// budgets (each person's, the address's, and new rooms) are generous unless `flags` set them.
    pub async fn start_in(dir: &str, flags: &[&str]) -> Self {
        let server = Self::start_unclaimed(dir, flags).await;
        server.claim_setup().await;
        server
    }

    /// [`Self::start_in`], with its setup left for the test to do (or not): only `/setup` and the
    /// health endpoints answer until then.
    pub async fn start_unclaimed(dir: &str, flags: &[&str]) -> Self {
        let all = ["--data-dir", dir]
            .into_iter()
            .chain(HARNESS_FLAGS)
            .chain(GENEROUS_BUDGETS)
            .chain(flags.iter().copied());
        let config = Config::from_flags(all).expect("valid flags");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(config, listener, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
            _data: None,
        }
    }

    /// Makes the owner's account ([`OWNER`], [`OWNER_PASSWORD`]) with the setup code, as the setup
    /// page does; a server set up before (restarted on its data dir, or a cluster's second node) is
    /// left as it is.
    pub async fn claim_setup(&self) {
        let body = format!(
            "code={SETUP_CODE}&handle={OWNER}&name=Owner&password={}",
            form_encode(OWNER_PASSWORD)
        );
        let (status, head, _) = self.post_form("/setup", &body).await;
        assert_eq!(status, 303, "{head}");
    }

    /// Signs in with a handle and password through the sign-in form: the session's `Cookie`
    /// header value, or `None` if refused.
    pub async fn sign_in(&self, handle: &str, password: &str) -> Option<String> {
        let body = format!(
            "handle={}&password={}&next=%2F",
            form_encode(handle),
            form_encode(password)
        );
        let (status, head, _) = self.post_form("/sign-in", &body).await;
        assert_eq!(status, 303, "{head}");
        head.to_ascii_lowercase()
            .contains("set-cookie: herald_session=")
            .then(|| set_cookie(&head))
    }

    /// A Herald running elsewhere (another process) at `addr`, for the HTTP and WebSocket helpers.
    pub fn external(addr: SocketAddr) -> Self {
        Self {
            addr,
            stop: None,
            task: None,
            _data: None,
        }
    }

    /// Triggers shutdown (like SIGTERM) without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits until `run` has returned, and checks it returned Ok.
    pub async fn stopped(&mut self) {
        if let Some(task) = self.task.take() {
            tokio::time::timeout(PATIENCE, task)
                .await
                .expect("server stops in time")
                .expect("server task")
                .expect("run returns Ok");
        }
    }

    /// A new user who chose a name, connected.
    pub async fn client(&self) -> Client {
        self.client_named("Tester").await
    }

    pub async fn client_named(&self, name: &str) -> Client {
        let cookie = self.session(name).await;
        Client::connect(self.addr, &cookie).await
    }

    /// Chooses a name through the same form the page posts; returns the `Cookie` header value.
    pub async fn session(&self, name: &str) -> String {
        let (status, head, _) = self
            .post_form("/session", &format!("name={}", form_encode(name)))
            .await;
        assert_eq!(status, 303, "{head}");
        set_cookie(&head)
    }

    /// Changes the name of the session `cookie` through the same form; returns the cookie (the
    /// same session: renamed, a person stays signed in as who they are).
    pub async fn rename(&self, cookie: &str, name: &str) -> String {
        let body = format!("name={}", form_encode(name));
        let (status, head, _) = self
            .post_form_with("/session", &format!("Cookie: {cookie}\r\n"), &body)
            .await;
        assert_eq!(status, 303, "{head}");
        cookie.to_owned()
    }

    /// POSTs an already encoded `application/x-www-form-urlencoded` body.
    pub async fn post_form(&self, path: &str, body: &str) -> (u16, String, String) {
        self.post_form_with(path, "", body).await
    }

    /// [`Self::post_form`] with more header lines (each ending in `\r\n`).
    pub async fn post_form_with(
        &self,
        path: &str,
        headers: &str,
        body: &str,
    ) -> (u16, String, String) {
        self.request(&format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        ))
        .await
    }

    /// A plain HTTP/1.1 GET; returns the status code, the raw head and the body.
    pub async fn get(&self, path: &str) -> (u16, String, String) {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        ))
        .await
    }

    /// A GET as someone with the session `cookie` (a `Cookie` header value).
    pub async fn get_as(&self, path: &str, cookie: &str) -> (u16, String, String) {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
            self.addr
        ))
        .await
    }

    /// The rooms `GET /api/rooms` lists, read with `cookie`, by name.
    pub async fn rooms_listed(&self, cookie: &str) -> Vec<String> {
        let (status, _, body) = self.get_as("/api/rooms", cookie).await;
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        let mut rooms: Vec<String> = json["rooms"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|room| room["room"].as_str().expect("a name").to_owned())
            .collect();
        rooms.sort();
        rooms
    }

    /// Sends a raw HTTP/1.1 request; returns the status code, the raw head and the body.
    pub async fn request(&self, request: &str) -> (u16, String, String) {
        let (status, head, body) = self.request_bytes(request).await;
        (status, head, String::from_utf8_lossy(&body).into_owned())
    }

    /// [`Self::request`], with the body as the bytes that came (a compressed page, say).
    pub async fn request_bytes(&self, request: &str) -> (u16, String, Vec<u8>) {
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
            .await
            .expect("response in time")
            .expect("read");
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
        let (head, body) = match split {
            Some(at) => (&raw[..at], raw[at + 4..].to_vec()),
            None => (&raw[..], Vec::new()),
        };
        let head = String::from_utf8_lossy(head).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        (status, head, body)
    }
}

pub struct Client {
    pub name: String,
    pub id: String,
    /// What the server's `welcome` said this connection may send.
    pub limits: app::protocol::Limits,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Signals (`presence`, `typing`, `rooms`) read while waiting for something else, oldest first:
    /// they arrive whenever people come and go, so most tests look past them.
    signals: std::collections::VecDeque<ServerMsg>,
}

/// What a test can see on a socket.
#[derive(Debug)]
pub enum Seen {
    Msg(ServerMsg),
    Closed(Option<CloseFrame>),
}

impl Client {
    /// Connects as a browser page of ours would, and joins `general` without a cursor: the room's
    /// latest messages follow (left to the test).
    pub async fn connect(addr: SocketAddr, cookie: &str) -> Self {
        let mut client = Self::connect_only(addr, cookie).await;
        client.join(ROOM, None).await;
        client
    }

    /// Connects and reads the welcome; joins nothing.
    pub async fn connect_only(addr: SocketAddr, cookie: &str) -> Self {
        let request = handshake(addr, Some(cookie), Some(&format!("http://{addr}")));
        let (socket, _) = connect_async(request).await.expect("ws connect");
        Self::welcomed(socket).await
    }

    /// Connects and reads the welcome as a client behind a proxy that sent `X-Forwarded-For:
    /// forwarded_for`; the refusal's status if the handshake is refused.
    pub async fn connect_forwarded(
        addr: SocketAddr,
        cookie: &str,
        forwarded_for: &str,
    ) -> Result<Self, u16> {
        let mut request = handshake(addr, Some(cookie), Some(&format!("http://{addr}")));
        request.headers_mut().insert(
            "x-forwarded-for",
            forwarded_for.parse().expect("header value"),
        );
        match connect_async(request).await {
            Ok((socket, _)) => Ok(Self::welcomed(socket).await),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("ws connect: {e}"),
        }
    }

    /// Like [`Self::connect_only`], with tiny kernel buffers: a client that stops reading then backs
    /// up into the server at once instead of into megabytes of loopback buffering, and what it
    /// sends reaches the server (or waits) instead of piling up in its own kernel.
    pub async fn connect_small_buffer(addr: SocketAddr, cookie: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        socket.set_send_buffer_size(4096).expect("SO_SNDBUF");
        let stream = socket.connect(addr).await.expect("connect");
        let request = handshake(addr, Some(cookie), Some(&format!("http://{addr}")));
        let (socket, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
            .await
            .expect("ws handshake");
        Self::welcomed(socket).await
    }

    async fn welcomed(socket: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        let mut client = Self {
            name: String::new(),
            id: String::new(),
            limits: Default::default(),
            socket,
            signals: Default::default(),
        };
        match client.recv().await {
            ServerMsg::Welcome { you, limits, .. } => {
                client.name = you.name;
                client.id = you.id;
                client.limits = limits;
                client
            }
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    /// The socket itself, for a test that reads and writes it at the same time (split it).
    pub fn into_socket(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.socket
    }

    /// Joins `room` and reads the answer (the replay after it is left to the test).
    /// Joins `room` from `since`, making it first if it does not exist (as a person who may make
    /// rooms does, on purpose: the harness lets everyone, guests too).
    pub async fn join(&mut self, room: &str, since: Option<Cursor>) -> Joined {
        self.send(&ClientMsg::Join {
            room: room.into(),
            since,
            create: true,
        })
        .await;
        loop {
            match self.recv().await {
                ServerMsg::Joined {
                    room: joined,
                    epoch,
                    mode,
                    first_seq,
                    last_seq,
                } if joined == room => {
                    return Joined {
                        epoch,
                        mode,
                        first_seq,
                        last_seq,
                    };
                }
                // Entries of rooms joined before may still arrive meanwhile.
                ServerMsg::Message(_)
                | ServerMsg::Change(_)
                | ServerMsg::Other(_)
                | ServerMsg::Ack { .. } => continue,
                other => panic!("expected joined, got {other:?}"),
            }
        }
    }

    /// Asks to join `room` (to make it first, with `create`): `Ok` once joined, or the refusal's
    /// code and words.
    pub async fn try_join(&mut self, room: &str, create: bool) -> Result<(), (ErrorCode, String)> {
        self.send(&ClientMsg::Join {
            room: room.into(),
            since: None,
            create,
        })
        .await;
        loop {
            match self.recv().await {
                ServerMsg::Joined { room: joined, .. } if joined == room => return Ok(()),
                ServerMsg::Error { code, message, .. } => return Err((code, message)),
                _ => continue,
            }
        }
    }

    /// Joins `room` again from the cursor `(epoch, seq)`, as a client resuming does.
    pub async fn resume(&mut self, room: &str, epoch: &str, seq: u64) -> Joined {
        let cursor = Cursor {
            epoch: epoch.to_owned(),
            seq,
        };
        self.join(room, Some(cursor)).await
    }

    /// Sends `body` and waits for its ack (skipping the broadcast of it); returns the seq.
    pub async fn post(&mut self, client_id: &str, body: &str) -> u64 {
        self.post_in(ROOM, client_id, body).await
    }

    /// [`Self::post`] into `room` (joined).
    pub async fn post_in(&mut self, room: &str, client_id: &str, body: &str) -> u64 {
        self.send(&ClientMsg::Send {
            room: room.into(),
            client_id: client_id.into(),
            body: body.into(),
            reply_to: None,
        })
        .await;
        loop {
            match self.recv().await {
                ServerMsg::Ack {
                    client_id: id, seq, ..
                } if id == client_id => return seq,
                // A poster that is not reading the room can fall behind in it: no matter here.
                ServerMsg::Message(_)
                | ServerMsg::Change(_)
                | ServerMsg::Ack { .. }
                | ServerMsg::Lagged { .. } => {
                    continue;
                }
                other => panic!("expected an ack, got {other:?}"),
            }
        }
    }

    /// Sends a `send`, `edit`, `delete` or `react` with `client_id` and waits for its answer: the
    /// seq it was stored as, or the code it was refused with. Entries arriving meanwhile are skipped.
    pub async fn store(&mut self, msg: &ClientMsg, client_id: &str) -> Result<u64, ErrorCode> {
        self.send(msg).await;
        loop {
            match self.recv().await {
                ServerMsg::Ack {
                    client_id: id, seq, ..
                } if id == client_id => return Ok(seq),
                ServerMsg::Error {
                    code,
                    client_id: Some(id),
                    ..
                } if id == client_id => return Err(code),
                ServerMsg::Error { code, .. } => return Err(code),
                _ => continue,
            }
        }
    }

    pub async fn send(&mut self, msg: &ClientMsg) {
        self.send_raw(Message::text(msg.encode())).await;
    }

    pub async fn say(&mut self, client_id: &str, body: &str) {
        self.send(&ClientMsg::Send {
            room: ROOM.into(),
            client_id: client_id.into(),
            body: body.into(),
            reply_to: None,
        })
        .await;
    }

    /// Sends `body` as `client_id` into `room`; false if the socket is gone (a node that died).
    pub async fn try_say_in(&mut self, room: &str, client_id: &str, body: &str) -> bool {
        let msg = ClientMsg::Send {
            room: room.into(),
            client_id: client_id.into(),
            body: body.into(),
            reply_to: None,
        };
        self.socket.send(Message::text(msg.encode())).await.is_ok()
    }

    /// The answers to the next `n` sends: how many were acknowledged, and the words of each one
    /// refused over a rate budget (which must say when to try again). Echoed messages are looked
    /// past; anything else fails the test.
    pub async fn answers(&mut self, n: usize) -> (usize, Vec<String>) {
        let (mut acked, mut limited) = (0, Vec::new());
        while acked + limited.len() < n {
            match self.recv().await {
                ServerMsg::Ack { .. } => acked += 1,
                ServerMsg::Error {
                    code: app::protocol::ErrorCode::RateLimited,
                    message,
                    retry_after_ms,
                    ..
                } => {
                    assert!(retry_after_ms.is_some(), "{message}: no retry-after");
                    limited.push(message);
                }
                ServerMsg::Message(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        (acked, limited)
    }

    /// The next frame, or the close — a broken socket (a node that died) counting as closed.
    pub async fn next_or_gone(&mut self) -> Seen {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    return Seen::Msg(
                        ServerMsg::decode(&text).expect("server frames are valid protocol"),
                    );
                }
                Some(Ok(Message::Close(frame))) => return Seen::Closed(frame),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Seen::Closed(None),
            }
        }
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.socket.send(msg).await.expect("ws send");
    }

    /// The next protocol frame or the close, setting signals aside; fails the test if nothing comes
    /// within [`PATIENCE`].
    pub async fn next(&mut self) -> Seen {
        loop {
            match self.next_any().await {
                Seen::Msg(
                    msg @ (ServerMsg::Presence { .. }
                    | ServerMsg::Typing { .. }
                    | ServerMsg::Rooms { .. }
                    | ServerMsg::Mine { .. }
                    | ServerMsg::Read { .. }
                    | ServerMsg::Notify { .. }),
                ) => self.signals.push_back(msg),
                seen => return seen,
            }
        }
    }

    /// The next signal (`presence`, `typing`, `rooms`, `mine`, `read`) matching `wanted`, skipping other frames.
    pub async fn signal(&mut self, wanted: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        self.signal_within(PATIENCE, wanted).await
    }

    /// [`Self::signal`], waiting up to `patience` for each frame (for what takes longer by design).
    pub async fn signal_within(
        &mut self,
        patience: Duration,
        wanted: impl Fn(&ServerMsg) -> bool,
    ) -> ServerMsg {
        loop {
            if let Some(at) = self.signals.iter().position(&wanted) {
                let found = self.signals.remove(at).expect("position is in range");
                self.signals.drain(..at);
                return found;
            }
            self.signals.clear();
            if let Seen::Msg(msg) = self.next_any_within(patience).await {
                self.signals.push_back(msg);
            }
        }
    }

    /// Signals set aside so far; forgets them.
    pub fn take_signals(&mut self) -> Vec<ServerMsg> {
        self.signals.drain(..).collect()
    }

    /// The next frame of any kind, or the close.
    pub async fn next_any(&mut self) -> Seen {
        self.next_any_within(PATIENCE).await
    }

    async fn next_any_within(&mut self, patience: Duration) -> Seen {
        loop {
            let frame = tokio::time::timeout(patience, self.socket.next())
                .await
                .expect("a frame in time");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Seen::Msg(
                        ServerMsg::decode(&text).expect("server frames are valid protocol"),
                    );
                }
                Some(Ok(Message::Close(frame))) => return Seen::Closed(frame),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("unexpected frame {other:?}"),
                Some(Err(e)) => panic!("socket error: {e}"),
                None => return Seen::Closed(None),
            }
        }
    }

    pub async fn recv(&mut self) -> ServerMsg {
        match self.next().await {
            Seen::Msg(msg) => msg,
            Seen::Closed(frame) => panic!("closed unexpectedly: {frame:?}"),
        }
    }

    /// The next chat message, skipping acks (which only the sender gets).
    pub async fn next_message(&mut self) -> ChatMessage {
        loop {
            match self.recv().await {
                ServerMsg::Message(msg) => return msg,
                ServerMsg::Ack { .. } => continue,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// The close frame the server sends next, skipping any frames still queued before it.
    pub async fn close_frame(&mut self) -> Option<CloseFrame> {
        loop {
            if let Seen::Closed(frame) = self.next().await {
                return frame;
            }
        }
    }
}

/// A WebSocket handshake request for `/ws`, with the given cookie and origin (if any).
pub fn handshake(
    addr: SocketAddr,
    cookie: Option<&str>,
    origin: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};
    let mut request = format!("ws://{addr}/ws")
        .into_client_request()
        .expect("request");
    if let Some(cookie) = cookie {
        request.headers_mut().insert(
            "cookie",
            HeaderValue::from_str(cookie).expect("cookie header"),
        );
    }
    if let Some(origin) = origin {
        request.headers_mut().insert(
            "origin",
            HeaderValue::from_str(origin).expect("origin header"),
        );
    }
    request
}

/// Two nodes of one cluster on a Redis of their own, each with a data dir of its own, the same
/// session secret, the API's [`TOKEN`] and open sign-up, and `flags`.
pub struct TwoNodes {
    pub a: TestServer,
    pub b: TestServer,
    /// The flags each node was started with.
    flags: Vec<String>,
    _redis: RedisServer,
    _data: (TempDir, TempDir),
}

impl TwoNodes {
    pub async fn start(flags: &[&str]) -> Self {
        let redis = RedisServer::start().await;
        let url = redis.url();
        let all: Vec<&str> = [
            "--redis",
            url.as_str(),
            "--session-secret",
            "the same secret on every node, 32+ bytes",
            "--sign-up",
            "open",
            "--api-token",
            TOKEN,
        ]
        .into_iter()
        .chain(flags.iter().copied())
        .collect();
        let data = (TempDir::new(), TempDir::new());
        let a = TestServer::start_in(data.0.path(), &all).await;
        let b = TestServer::start_in(data.1.path(), &all).await;
        Self {
            a,
            b,
            flags: all.iter().map(|f| f.to_string()).collect(),
            _redis: redis,
            _data: data,
        }
    }

    /// One more node of the cluster, in the data dir `dir` (a node that joins later).
    pub async fn another(&self, dir: &str) -> TestServer {
        let flags: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        TestServer::start_in(dir, &flags).await
    }
}

/// A form's body of `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl TestServer {
    /// Posts the form `body` to `path` (as `cookie`, if any): the status, where it sends the
    /// browser, and the session cookie it sets, if it sets one.
    pub async fn post_as(
        &self,
        path: &str,
        cookie: Option<&str>,
        body: &str,
    ) -> (u16, String, Option<String>) {
        let headers = cookie.map_or_else(String::new, |c| format!("Cookie: {c}\r\n"));
        let (status, head, _) = self.post_form_with(path, &headers, body).await;
        let location = header(&head, "location").unwrap_or_default().to_owned();
        let cookie = header(&head, "set-cookie")
            .and_then(|c| c.split(';').next())
            .filter(|c| c.len() > "herald_session=".len())
            .map(str::to_owned);
        (status, location, cookie)
    }

    /// Makes a private room named `title` as `maker` (who may), with the people of `handles` as
    /// members: its name (an id, as in its address).
    pub async fn private_room(&self, maker: &str, title: &str, handles: &[&str]) -> String {
        let made = form(&[("kind", "private"), ("name", title), ("topic", "")]);
        let (status, to, _) = self.post_as("/rooms", Some(maker), &made).await;
        assert_eq!(status, 303, "{to}");
        let room = to.strip_prefix("/r/").expect("to the room").to_owned();
        for handle in handles {
            let add = form(&[("handle", handle)]);
            let path = format!("/r/{room}/members");
            assert_eq!(self.post_as(&path, Some(maker), &add).await.0, 303);
        }
        room
    }

    /// `maker` (who may) removes the person `cookie` signs in from private room `room`.
    pub async fn remove_member(&self, maker: &str, room: &str, cookie: &str) {
        let who = self.who(cookie).await.expect("signed in");
        let remove = form(&[("account", who["id"].as_str().expect("an id"))]);
        let path = format!("/r/{room}/remove");
        assert_eq!(self.post_as(&path, Some(maker), &remove).await.0, 303);
    }

    /// Makes an account at `/sign-up` (a server with `--sign-up open`): its session cookie.
    pub async fn sign_up(&self, handle: &str, name: &str, password: &str) -> Option<String> {
        let body = form(&[("handle", handle), ("name", name), ("password", password)]);
        self.post_as("/sign-up", None, &body).await.2
    }

    /// Who a cookie signs in, as `GET /session` says: `None` for nobody.
    pub async fn who(&self, cookie: &str) -> Option<serde_json::Value> {
        let (status, _, body) = self.get_as("/session", cookie).await;
        (status == 200)
            .then(|| serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["you"].clone())
    }
}

/// `application/x-www-form-urlencoded` for one value.
pub fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A folder removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "herald-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The API token the API tests' servers accept.
pub const TOKEN: &str = "test-token-7f3a";

impl TestServer {
    /// A server (fresh data dir) accepting [`TOKEN`] on the HTTP API, with extra flags.
    pub async fn start_api(flags: &[&str]) -> (Self, TempDir) {
        let data = TempDir::new();
        let all: Vec<&str> = ["--api-token", TOKEN]
            .into_iter()
            .chain(flags.iter().copied())
            .collect();
        let server = Self::start_in(data.path(), &all).await;
        (server, data)
    }

    /// An HTTP request with a bearer token (if any) and a JSON body (if any); returns the status,
    /// the raw head and the body as JSON (`Null` if it is not JSON).
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String, serde_json::Value) {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let body = body.unwrap_or_default();
        let (status, head, text) = self
            .request(&format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                self.addr,
                body.len()
            ))
            .await;
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        (status, head, json)
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }
}

/// A reader of `/api/rooms/{room}/events` over a plain socket, decoding the chunked HTTP body.
pub struct SseReader {
    pub status: u16,
    pub head: String,
    stream: tokio::io::BufReader<TcpStream>,
    /// Decoded body not yet parsed into events.
    pending: String,
    pub ended: bool,
}

impl SseReader {
    /// Opens `path` with extra header lines (each ending in `\r\n`); `small_buffer` makes a reader
    /// that, once it stops reading, backs up into the server at once.
    pub async fn open(addr: SocketAddr, path: &str, headers: &str, small_buffer: bool) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        if small_buffer {
            socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        }
        let mut stream = socket.connect(addr).await.expect("connect");
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nConnection: close\r\n{headers}\r\n")
                    .as_bytes(),
            )
            .await
            .expect("write");
        let mut stream = tokio::io::BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(
                PATIENCE,
                tokio::io::AsyncBufReadExt::read_line(&mut stream, &mut line),
            )
            .await
            .expect("head in time")
            .expect("read head");
            if n == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        Self {
            status,
            head,
            stream,
            pending: String::new(),
            ended: false,
        }
    }

    /// Reads the rest of a non-streaming answer (an error), decoded.
    pub async fn body(&mut self) -> String {
        let mut rest = String::new();
        let _ = tokio::time::timeout(PATIENCE, self.stream.read_to_string(&mut rest)).await;
        rest
    }

    /// The next event (comments skipped), or `None` once the stream has ended.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: "message".into(),
                    id: None,
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_owned();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if any || !event.data.is_empty() {
                            event.data.push('\n');
                        }
                        event.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        any = true;
                    }
                }
                event.data = event.data.trim_start_matches('\n').to_owned();
                if any {
                    return Some(event);
                }
                continue; // A comment (keep-alive).
            }
            if self.ended || !self.read_chunk().await {
                self.ended = true;
                return None;
            }
        }
    }

    /// Reads one chunk of the chunked body into `pending`; false at the end of the body.
    async fn read_chunk(&mut self) -> bool {
        use tokio::io::AsyncBufReadExt;
        let mut size_line = String::new();
        let read = tokio::time::timeout(PATIENCE, self.stream.read_line(&mut size_line))
            .await
            .expect("a chunk in time");
        if !matches!(read, Ok(n) if n > 0) {
            return false;
        }
        let size = usize::from_str_radix(size_line.trim(), 16).expect("chunk size");
        if size == 0 {
            return false;
        }
        let mut chunk = vec![0u8; size + 2];
        tokio::time::timeout(PATIENCE, self.stream.read_exact(&mut chunk))
            .await
            .expect("chunk body in time")
            .expect("read chunk");
        self.pending
            .push_str(&String::from_utf8_lossy(&chunk[..size]).replace("\r\n", "\n"));
        true
    }
}

/// The `name=value` of the session cookie a response head sets.
fn set_cookie(head: &str) -> String {
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie").then(|| {
                value
                    .trim()
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
        })
        .unwrap_or_else(|| panic!("no session cookie in {head}"))
}

/// What Herald requires of a Redis: it keeps what it acknowledges.
const DURABLE: [&str; 8] = [
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--save",
    "",
    "--maxmemory-policy",
    "noeviction",
];

/// A `redis-server` of the test's own, on a Unix socket in a temp dir (no port to collide on),
/// keeping what it acknowledges (`appendonly yes`, `appendfsync always`, no eviction), as
/// Herald requires. Stopped when dropped. `cargo xtask test` installs Debian's `redis-server`.
pub struct RedisServer {
    child: std::process::Child,
    dir: TempDir,
    settings: Vec<String>,
    /// Its loopback port, if it has one besides the socket (a replica reaches its master there).
    port: Option<u16>,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// With extra settings, e.g. `["--appendonly", "no"]`.
    pub async fn start_with(settings: &[&str]) -> Self {
        Self::start_on(None, settings).await
    }

    /// Listening on a free loopback port too (see [`Self::port`]).
    pub async fn start_with_port(settings: &[&str]) -> Self {
        Self::start_on(free_port_pairs(1).first().copied(), settings).await
    }

    async fn start_on(port: Option<u16>, settings: &[&str]) -> Self {
        let dir = TempDir::new();
        let mut settings: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
        settings.extend(["--port".to_owned(), port.unwrap_or(0).to_string()]);
        let child = Self::spawn(&dir, &settings);
        let server = Self {
            child,
            dir,
            settings,
            port,
        };
        server.answering().await;
        server
    }

    pub fn port(&self) -> u16 {
        self.port.expect("started with start_with_port")
    }

    /// A command's answer, as text (`None` if it failed).
    pub async fn ask(&self, command: &[&str]) -> Option<String> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let mut cmd = redis::cmd(command[0]);
        for arg in &command[1..] {
            cmd.arg(*arg);
        }
        cmd.query_async(&mut conn).await.ok()
    }

    fn socket(dir: &TempDir) -> String {
        format!("{}/redis.sock", dir.path())
    }

    fn spawn(dir: &TempDir, settings: &[String]) -> std::process::Child {
        std::process::Command::new("redis-server")
            .args(["--unixsocket", &Self::socket(dir), "--dir", dir.path()])
            .args(DURABLE)
            .args(settings)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect(
                "redis-server runs (cargo xtask test installs it: apt-get install redis-server)",
            )
    }

    async fn answering(&self) {
        let socket = Self::socket(&self.dir);
        let ready = async {
            loop {
                if let Ok(mut stream) = tokio::net::UnixStream::connect(&socket).await
                    && stream.write_all(b"PING\r\n").await.is_ok()
                {
                    let mut reply = [0u8; 7];
                    if stream.read_exact(&mut reply).await.is_ok() && &reply == b"+PONG\r\n" {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(PATIENCE, ready)
            .await
            .expect("redis-server answers");
    }

    /// `kill -9`: no chance to write anything more.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same folder (its append-only file) and socket.
    pub async fn restart(&mut self) {
        self.child = Self::spawn(&self.dir, &self.settings);
        self.answering().await;
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", Self::socket(&self.dir))
    }

    /// The folder it keeps its files in (its append-only file, its snapshot).
    pub fn dir(&self) -> &str {
        self.dir.path()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where a cluster test's nodes keep their log: one Redis or a Redis Cluster.
pub trait Redis {
    /// What `--redis` is given.
    fn url(&self) -> String;

    /// How many connections (nodes' buses) subscribe `room`'s channel now, as Redis counts them
    /// (`PUBSUB NUMSUB`; on a Redis Cluster `PUBSUB SHARDNUMSUB`, asked of the room's master).
    async fn subscribers(&self, room: &str) -> u64;
}

/// The count in a `PUBSUB NUMSUB`/`SHARDNUMSUB` answer for one channel: `[channel, count]`.
async fn numsub(url: &str, command: &str, room: &str) -> u64 {
    let client = redis::Client::open(url).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let (_, count): (String, u64) = redis::cmd("PUBSUB")
        .arg(command)
        .arg(format!("herald:{{{room}}}:live"))
        .query_async(&mut conn)
        .await
        .expect("PUBSUB answers");
    count
}

impl Redis for RedisServer {
    fn url(&self) -> String {
        RedisServer::url(self)
    }

    async fn subscribers(&self, room: &str) -> u64 {
        numsub(&self.url(), "NUMSUB", room).await
    }
}

/// Redis that a test can `kill -9` under a room and start again on its append-only file.
pub trait RestartableRedis: Redis {
    /// Kills the server holding `room`'s keys.
    fn kill_room(&mut self, room: &str) -> impl Future<Output = ()>;
    /// Starts it again; back once it answers (a cluster: once every slot is served).
    fn restart_room(&mut self, room: &str) -> impl Future<Output = ()>;
    /// Whether other masters go on serving their rooms meanwhile (a Redis Cluster).
    fn other_masters(&self) -> bool;
}

impl RestartableRedis for RedisServer {
    async fn kill_room(&mut self, _room: &str) {
        self.kill();
    }

    async fn restart_room(&mut self, _room: &str) {
        self.restart().await;
    }

    fn other_masters(&self) -> bool {
        false
    }
}

/// A Redis Cluster of the test's own: `masters` `redis-server`s on free loopback ports (a cluster
/// needs TCP, and each node a second port 10 000 above its own for the cluster bus), joined with
/// `redis-cli --cluster create`, keeping what they acknowledge as Herald requires. Stopped when
/// dropped.
pub struct RedisCluster {
    nodes: Vec<(std::process::Child, u16)>,
    dir: TempDir,
    /// The master [`RestartableRedis::kill_room`] killed.
    killed: Option<usize>,
}

impl RedisCluster {
    pub async fn start(masters: usize) -> Self {
        let dir = TempDir::new();
        let ports = free_port_pairs(masters);
        let nodes: Vec<_> = ports
            .iter()
            .map(|&port| (Self::spawn(&dir, port), port))
            .collect();
        let cluster = Self {
            nodes,
            dir,
            killed: None,
        };
        for &(_, port) in &cluster.nodes {
            cluster.answering(port).await;
        }
        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = std::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("redis-cli runs (it comes with redis-server)");
        assert!(created.success(), "redis-cli --cluster create");
        for &port in &ports {
            cluster.until_ok(port).await;
        }
        cluster
    }

    fn spawn(dir: &TempDir, port: u16) -> std::process::Child {
        let own = format!("{}/{port}", dir.path());
        std::fs::create_dir_all(&own).expect("node dir");
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
                &own,
            ])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                // As README's recipe: the other masters' slots are served while one is down past
                // the node timeout (by default every slot answers CLUSTERDOWN then), and a short
                // node timeout, so a test can outlast it.
                "--cluster-require-full-coverage",
                "no",
                "--cluster-node-timeout",
                "2000",
            ])
            .args(DURABLE)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (cargo xtask test installs it)")
    }

    async fn ask(port: u16, command: &[&str]) -> Option<String> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let mut cmd = redis::cmd(command[0]);
        for arg in &command[1..] {
            cmd.arg(*arg);
        }
        cmd.query_async(&mut conn).await.ok()
    }

    async fn answering(&self, port: u16) {
        let ready = async {
            while Self::ask(port, &["PING"]).await.as_deref() != Some("PONG") {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(PATIENCE, ready)
            .await
            .expect("redis-server answers");
    }

    /// Until the node at `port` says every slot is served.
    async fn until_ok(&self, port: u16) {
        let ok = async {
            loop {
                let info = Self::ask(port, &["CLUSTER", "INFO"]).await;
                if info.is_some_and(|info| info.contains("cluster_state:ok")) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(PATIENCE * 3, ok)
            .await
            .expect("the Redis Cluster comes up");
    }

    /// How many keys master `i` holds.
    pub async fn keys_on(&self, i: usize) -> u64 {
        let port = self.nodes[i].1;
        let count = Self::ask(port, &["DBSIZE"]).await;
        count.and_then(|n| n.parse().ok()).unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// `kill -9` of master `i`.
    pub fn kill(&mut self, i: usize) {
        let _ = self.nodes[i].0.kill();
        let _ = self.nodes[i].0.wait();
    }

    /// Starts master `i` again on its append-only file and cluster config; back once every slot
    /// is served again.
    pub async fn restart(&mut self, i: usize) {
        let port = self.nodes[i].1;
        self.nodes[i].0 = Self::spawn(&self.dir, port);
        self.answering(port).await;
        for &(_, port) in &self.nodes {
            self.until_ok(port).await;
        }
    }
}

impl Redis for RedisCluster {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.nodes[0].1)
    }

    async fn subscribers(&self, room: &str) -> u64 {
        let master = self.master_of(room).await;
        let url = format!("redis://127.0.0.1:{}", self.nodes[master].1);
        numsub(&url, "SHARDNUMSUB", room).await
    }
}

impl RedisCluster {
    /// The master holding `room`'s keys (by `CLUSTER KEYSLOT` and `CLUSTER SLOTS`).
    pub async fn master_of(&self, room: &str) -> usize {
        let key = format!("herald:{{{room}}}:meta");
        let port = self.nodes[0].1;
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("a node answers");
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("its slot");
        let ranges: Vec<(i64, i64, i64)> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async::<Vec<redis::Value>>(&mut conn)
            .await
            .expect("the slots")
            .into_iter()
            .filter_map(|range| {
                let redis::Value::Array(parts) = range else {
                    return None;
                };
                // [first, last, [host, port, id, ..], replicas..]
                match (parts.first()?, parts.get(1)?, parts.get(2)?) {
                    (
                        redis::Value::Int(first),
                        redis::Value::Int(last),
                        redis::Value::Array(master),
                    ) => match master.get(1)? {
                        redis::Value::Int(port) => Some((*first, *last, *port)),
                        _ => None,
                    },
                    _ => None,
                }
            })
            .collect();
        let (_, _, master_port) = ranges
            .into_iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .expect("the slot is served");
        self.nodes
            .iter()
            .position(|(_, port)| i64::from(*port) == master_port)
            .expect("a node of this cluster")
    }
}

impl RedisCluster {
    /// Stops (`SIGSTOP`) the master holding `room`'s keys: its connections stay open and nothing is
    /// answered, as with a master that hangs. Returns it, for [`Self::thaw`].
    pub async fn freeze_room(&self, room: &str) -> usize {
        let master = self.master_of(room).await;
        self.signal(master, "-STOP");
        master
    }

    /// Lets a master [`Self::freeze_room`] stopped go on (`SIGCONT`).
    pub fn thaw(&self, master: usize) {
        self.signal(master, "-CONT");
    }

    fn signal(&self, node: usize, signal: &str) {
        let pid = self.nodes[node].0.id().to_string();
        let sent = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill {signal} {pid}");
    }
}

impl RestartableRedis for RedisCluster {
    async fn kill_room(&mut self, room: &str) {
        let master = self.master_of(room).await;
        self.kill(master);
        self.killed = Some(master);
    }

    async fn restart_room(&mut self, _room: &str) {
        let master = self.killed.take().expect("a master was killed");
        self.restart(master).await;
    }

    fn other_masters(&self) -> bool {
        self.nodes.len() > 1
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (child, _) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A TCP proxy in front of a [`RedisServer`] that can wedge pub/sub connections: after
/// [`Self::wedge_subscribers`], every connection that had sent a `SUBSCRIBE` or `PSUBSCRIBE`
/// stays open but delivers nothing more — no error, no close, as a half-open TCP connection or a
/// stuck proxy does. Connections made after it work.
pub struct RedisProxy {
    port: u16,
    connections: std::sync::Arc<std::sync::Mutex<Vec<std::sync::Arc<Proxied>>>>,
    accepting: JoinHandle<()>,
}

#[derive(Default)]
struct Proxied {
    subscriber: std::sync::atomic::AtomicBool,
    wedged: std::sync::atomic::AtomicBool,
}

impl RedisProxy {
    pub async fn start(redis: &RedisServer) -> Self {
        use std::sync::{Arc, atomic::Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let port = listener.local_addr().expect("its address").port();
        let socket = RedisServer::socket(&redis.dir);
        let connections: Arc<std::sync::Mutex<Vec<Arc<Proxied>>>> = Arc::default();
        let known = connections.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::UnixStream::connect(&socket).await else {
                    continue;
                };
                let state = Arc::new(Proxied::default());
                known.lock().expect("lock").push(state.clone());
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                let upward = state.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                        let said = String::from_utf8_lossy(&buf[..n]).to_ascii_uppercase();
                        if said.contains("SUBSCRIBE") {
                            upward.subscriber.store(true, Ordering::Relaxed);
                        }
                        if to_server.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n @ 1..) = from_server.read(&mut buf).await {
                        if state.wedged.load(Ordering::Relaxed) {
                            continue; // Swallowed: the client hears nothing, and no error.
                        }
                        if to_client.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            port,
            connections,
            accepting,
        }
    }

    /// Every pub/sub connection open now delivers nothing from here on; returns how many.
    pub fn wedge_subscribers(&self) -> usize {
        use std::sync::atomic::Ordering;
        let connections = self.connections.lock().expect("lock");
        let mut wedged = 0;
        for connection in connections.iter() {
            if connection.subscriber.load(Ordering::Relaxed) {
                connection.wedged.store(true, Ordering::Relaxed);
                wedged += 1;
            }
        }
        wedged
    }
}

impl Redis for RedisProxy {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn subscribers(&self, room: &str) -> u64 {
        numsub(&self.url(), "NUMSUB", room).await
    }
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// `n` loopback ports free now, each with the port 10 000 above it free too.
fn free_port_pairs(n: usize) -> Vec<u16> {
    use std::hash::{BuildHasher, Hasher};
    // Below the kernel's ephemeral range (32768 and up, here and by default), both the port and its
    // bus port: a killed node's port is then never taken meanwhile as the source port of some other
    // test's connection, or by a `bind(0)`, so the node can come back on it (a node restarted on a
    // taken port never came back, and its rooms' sends waited out the test).
    const LOWEST: u16 = 12_000;
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let span = u64::from(ephemeral.saturating_sub(10_000).saturating_sub(LOWEST)).max(1_000);
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let port = LOWEST + u16::try_from(random % span).expect("within the span");
        let bus = port + 10_000;
        if let (Ok(first), Ok(second)) = (
            std::net::TcpListener::bind(("127.0.0.1", port)),
            std::net::TcpListener::bind(("127.0.0.1", bus)),
        ) {
            ports.push(port);
            held.push((first, second));
        }
    }
    ports
}

/// The value of header `name` in a raw response head (case-insensitive), if present.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// Whether the server closes `stream` (after any answer it gives) within `within`, reading what
/// comes; `false` if it is still open then.
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut sink = [0u8; 1024];
    let read_all = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(within, read_all).await.is_ok()
}

/// The `--metrics-token` of the tests that scrape `/metrics`.
pub const METRICS_TOKEN: &str = "metrics-token-51c2";

/// `/metrics` as Prometheus would scrape it from the main address.
pub async fn scrape(server: &TestServer) -> String {
    let (status, head, body) = server
        .request(&format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {METRICS_TOKEN}\r\n\
             Connection: close\r\n\r\n",
            server.addr
        ))
        .await;
    assert_eq!(status, 200, "{head}{body}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body
}

/// The value of the series `name{labels}` in a scrape, whatever order its labels are printed in;
/// 0 when the series is not there yet (a labelled counter appears on its first count).
pub fn value(scrape: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: std::collections::BTreeMap<&str, &str> = labels.iter().copied().collect();
    for line in scrape.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, number)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let found: std::collections::BTreeMap<&str, &str> = series_labels
            .split(',')
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                Some((k, v.trim_matches('"')))
            })
            .collect();
        if found == wanted {
            return number.parse().expect("a number");
        }
    }
    0.0
}
