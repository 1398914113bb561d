//! The main listener's accept loop: each connection served by hyper (HTTP/1.1 and 2, with upgrades
//! for the WebSocket), its peer's address handed to every request (`ConnectInfo`), and a time limit
//! on reading a request head, so a connection that sends nothing, or a head a byte at a time, does
//! not hold a socket and its task forever (axum's own `serve` sets no timer, so hyper's limit never
//! applied). Bodies have theirs in the router (`lib.rs`). On shutdown, HTTP connections finish what
//! they are answering and close; upgraded WebSockets are the hub's to close.

use std::{future::Future, pin::pin, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How long a pause after a failed accept (out of file descriptors, say) before the next: a tight
/// loop of failures would take a core while nothing can be accepted anyway.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` until `shutdown` resolves, then waits for the HTTP connections to
/// finish (a request under way is answered; idle keep-alive connections close).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    head_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
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
        // A chat message is a small write that should leave at once: without TCP_NODELAY, Nagle's
        // algorithm holds it back until the previous one is acknowledged.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        let (app, builder, watcher) = (app.clone(), builder.clone(), graceful.watcher());
        tokio::spawn(async move {
            // hyper's limit starts with a head's first byte: a connection that sends none at all
            // is closed here once the same time has passed.
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(head_timeout, stream.peek(&mut first)).await,
                Ok(Ok(1..))
            ) {
                return;
            }
            let service = app.map_request(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(axum::body::Body::new)
            });
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service),
            );
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::trace!(%peer, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
