//! The main listener's accept loop: each connection served by hyper (HTTP/1.1 and 2, with upgrades
//! for the WebSocket), and the limits that keep one client from holding the server's sockets:
//! - a time limit on reading a request head (axum's own `serve` sets no timer, so hyper's limit
//!   never applied), and before it on the first byte, so a connection that sends nothing, or a head
//!   a byte at a time, does not hold a socket and its task forever (bodies have theirs in the
//!   router, `lib.rs`);
//! - an idle limit: a keep-alive connection on which nothing moved for `--idle-timeout-secs` is
//!   closed (gracefully: a response under way is finished first);
//! - a cap on connections per client address (`peer::Connections`), checked before anything is
//!   read; connections from a trusted proxy are the proxy's and not counted here.
//!
//! Every request carries its peer (`ConnectInfo`) and its client (`peer::Client`: the address a
//! trusted proxy forwarded, or the peer's). On shutdown, HTTP connections finish what they are
//! answering and close; upgraded WebSockets are the hub's to close.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::{Pin, pin},
    sync::{
        Arc, LazyLock,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{Router, extract::ConnectInfo};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use crate::peer::{self, Client, Connections, Network};

/// How long a pause after a failed accept (out of file descriptors, say) before the next: a tight
/// loop of failures would take a core while nothing can be accepted anyway.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What a connection over its address's cap is told, if it can take it at once (it is closed
/// either way, before anything of it is read).
const OVER_CAP: &[u8] =
    b"HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: 10\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 58\r\n\r\n\
too many connections from this address: close some first\n";

/// The limits a listener applies to its connections.
#[derive(Clone)]
pub struct Listening {
    /// For the first byte, then for a request's head.
    pub head_timeout: Duration,
    /// For a keep-alive connection on which nothing is read or written.
    pub idle_timeout: Duration,
    /// Peers whose `X-Forwarded-For` / `-Proto` are believed (`--trusted-proxy`).
    pub trusted: Arc<[Network]>,
    /// Connections per client address.
    pub connections: Connections,
}

/// Serves `app` on `listener` until `shutdown` resolves, then waits for the HTTP connections to
/// finish (a request under way is answered; idle keep-alive connections close).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Listening,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout);
    builder.http2().timer(TokioTimer::new());
    let closing = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Decided once per connection. A proxy's connection carries many clients: only its
        // streams are counted, per client.
        let proxied = peer::is_trusted(peer.ip(), &limits.trusted);
        let slot = if proxied {
            None
        } else {
            match limits.connections.take(peer::address_key(peer.ip())) {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(%peer, "refused a connection over its address's cap");
                    // Never waits: a client that does not read this is closed all the same.
                    let _ = stream.try_write(OVER_CAP);
                    continue;
                }
            }
        };
        // A chat message is a small write that should leave at once: without TCP_NODELAY, Nagle's
        // algorithm holds it back until the previous one is acknowledged.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        let (app, builder, limits, closing) = (
            app.clone(),
            builder.clone(),
            limits.clone(),
            closing.clone(),
        );
        connections.spawn(async move {
            // hyper's limit starts with a head's first byte: a connection that sends none at all
            // is closed here once the same time has passed.
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(limits.head_timeout, stream.peek(&mut first)).await,
                Ok(Ok(1..))
            ) {
                return;
            }
            let peer = Peer {
                addr: peer,
                proxied,
                slot,
            };
            serve_connection(stream, peer, app, &builder, &limits, &closing).await;
        });
    }
    drop(listener);
    closing.cancel();
    connections.close();
    connections.wait().await;
}

/// Who a connection is from, as the accept loop found it.
struct Peer {
    addr: SocketAddr,
    /// A trusted proxy: each request says which client it carries.
    proxied: bool,
    /// Its place among its address's connections (none for a proxy's).
    slot: Option<peer::Slot>,
}

/// One connection, until it ends: closed gracefully once idle for the limit, or on shutdown.
async fn serve_connection(
    stream: TcpStream,
    peer: Peer,
    app: Router,
    builder: &Builder<TokioExecutor>,
    limits: &Listening,
    closing: &CancellationToken,
) {
    let (addr, proxied) = (peer.addr, peer.proxied);
    let trusted = limits.trusted.clone();
    let direct = Client::direct(addr.ip());
    let service = app.map_request(move |mut request: hyper::Request<Incoming>| {
        let client = if proxied {
            Client::forwarded(addr.ip(), request.headers(), &trusted)
        } else {
            direct
        };
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(addr));
        extensions.insert(client);
        request.map(axum::body::Body::new)
    });
    let io = Watched::new(stream, peer.slot);
    let activity = io.activity.clone();
    let connection =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    let mut connection = pin!(connection);
    let idle = tokio::time::sleep(limits.idle_timeout);
    let mut idle = pin!(idle);
    let mut ending = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(peer = %addr, "connection ended: {e}");
                }
                return;
            }
            () = closing.cancelled(), if !ending => {
                connection.as_mut().graceful_shutdown();
                ending = true;
            }
            () = idle.as_mut(), if !ending => {
                let quiet = activity.quiet_for();
                if quiet >= limits.idle_timeout {
                    tracing::trace!(peer = %addr, "closing a connection idle for {quiet:?}");
                    connection.as_mut().graceful_shutdown();
                    ending = true;
                } else {
                    let next = tokio::time::Instant::now() + (limits.idle_timeout - quiet);
                    idle.as_mut().reset(next);
                }
            }
        }
    }
}

/// When a connection last read or wrote a byte.
pub struct Activity(AtomicU64);

/// Milliseconds are counted from here.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64
}

impl Activity {
    fn touch(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }

    /// How long since a byte last moved.
    fn quiet_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.0.load(Ordering::Relaxed)))
    }
}

/// A connection's socket, noting when bytes move, and holding its address's slot for as long as
/// the socket lives (past an upgrade: the WebSocket keeps it).
struct Watched {
    /// First, so it is given back before the socket closes: a client that saw the close finds
    /// its place free.
    _slot: Option<peer::Slot>,
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl Watched {
    fn new(stream: TcpStream, slot: Option<peer::Slot>) -> Self {
        Self {
            stream,
            activity: Arc::new(Activity(AtomicU64::new(now_ms()))),
            _slot: slot,
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, bytes);
        if matches!(polled, Poll::Ready(Ok(1..))) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(1..))) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
