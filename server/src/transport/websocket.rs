//! The server's side of the WebSocket protocol (RFC 6455), written for fan-out: the opening
//! handshake, reading the client's masked frames, and writing whole queues of shared [`Frame`]s with
//! one vectored write. No extensions, no subprotocols.
//!
//! Why Herald writes its own socket loop rather than use a WebSocket library's: memory and task shape.
//! An idle connection holds no buffer at all (reads go through a buffer on the stack and only bytes of
//! an unfinished frame are kept; tungstenite allocates its read buffer eagerly, fastwebsockets keeps
//! 8 KiB per connection), and one task reads and writes with cancel-safe polls. Each frame is encoded
//! once with its header ([`Frame`]) and the kernel gathers every queued frame straight from the shared
//! bytes. Reading frames is [`decode`]'s, which leaves header parsing to tungstenite.

use std::{
    collections::VecDeque,
    future::poll_fn,
    io::{self, IoSlice},
    mem::MaybeUninit,
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::frame::Frame;

mod decode;
#[cfg(test)]
mod differential;

use decode::Decoder;
pub use decode::{Incoming, Violation, violation_code};

/// How much one read takes from the kernel at most (a stack buffer, never kept).
const READ_CHUNK: usize = 8 * 1024;

/// Most frames given to one vectored write (Linux accepts 1024; a batch is smaller anyway).
const MAX_SLICES: usize = 64;

/// A valid WebSocket upgrade request, not yet answered.
pub struct Upgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let bad = |why: &'static str| (StatusCode::BAD_REQUEST, why).into_response();
        if parts.method != Method::GET {
            return Err(bad("a WebSocket handshake is a GET"));
        }
        if !has_token(&parts.headers, header::CONNECTION, "upgrade")
            || !has_token(&parts.headers, header::UPGRADE, "websocket")
        {
            return Err((
                StatusCode::UPGRADE_REQUIRED,
                [(header::UPGRADE, "websocket")],
                "this address speaks WebSocket only",
            )
                .into_response());
        }
        if !has_token(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return Err((
                StatusCode::UPGRADE_REQUIRED,
                [(header::SEC_WEBSOCKET_VERSION, "13")],
                "WebSocket version 13 only",
            )
                .into_response());
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or_else(|| bad("Sec-WebSocket-Key is missing"))?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or_else(|| bad("this connection cannot be upgraded"))?;
        Ok(Self { key, on_upgrade })
    }
}

/// Whether the comma-separated header `name` lists `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// `Sec-WebSocket-Accept` for a client's key (RFC 6455 §4.2.2).
fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

impl Upgrade {
    /// Answers `101 Switching Protocols` and, in a task of its own, runs `serve` on the socket once
    /// the upgrade completes.
    pub fn on_upgrade<F, Fut>(self, serve: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => serve(Socket::new(upgraded)).await,
                Err(e) => tracing::debug!("WebSocket upgrade failed: {e}"),
            }
        });
        (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, "upgrade".to_owned()),
                (header::UPGRADE, "websocket".to_owned()),
                (
                    header::SEC_WEBSOCKET_ACCEPT,
                    accept_key(self.key.as_bytes()),
                ),
            ],
        )
            .into_response()
    }
}

/// One upgraded connection: reads messages, writes frames. Reading and writing go on together in
/// one task ([`Socket::next_event`]): a client whose own reads wait for its writes (some libraries'
/// do) must not find the server waiting for it in turn.
pub struct Socket {
    io: TokioIo<Upgraded>,
    decoder: Decoder,
    /// Frames given to [`Socket::send`] and not yet all written, oldest first.
    out: VecDeque<Frame>,
    /// How much of the first frame in `out` is already written.
    out_offset: usize,
}

/// What happened next on a [`Socket`].
#[derive(Debug)]
pub enum Event {
    /// Everything given to [`Socket::send`] is written.
    Written,
    /// The client sent this (or broke the protocol).
    Incoming(Result<Incoming, Violation>),
    /// The client ended the stream.
    Ended,
}

impl Socket {
    fn new(upgraded: Upgraded) -> Self {
        Self {
            io: TokioIo::new(upgraded),
            decoder: Decoder::default(),
            out: VecDeque::new(),
            out_offset: 0,
        }
    }

    /// Adds frames to what is being written; they go out as [`Self::flush`] or
    /// [`Self::next_event`] run.
    pub fn send(&mut self, frames: VecDeque<Frame>) {
        if self.out.is_empty() {
            self.out = frames; // The queue's own storage: no copy.
        } else {
            self.out.extend(frames);
        }
    }

    /// Whether frames given to [`Self::send`] are still being written.
    pub fn is_writing(&self) -> bool {
        !self.out.is_empty()
    }

    /// Writes until everything given to [`Self::send`] is out. Cancel-safe: what is left stays.
    pub fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Unpin + '_ {
        poll_fn(|cx| self.poll_write(cx))
    }

    /// The next thing to happen: everything being written is out (if anything is being written),
    /// or a message arrived (if `read`). Cancel-safe.
    pub async fn next_event(&mut self, read: bool, max_message: usize) -> io::Result<Event> {
        poll_fn(|cx| {
            if self.is_writing() {
                match self.poll_write(cx) {
                    Poll::Ready(Ok(())) => return Poll::Ready(Ok(Event::Written)),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if !read {
                return Poll::Pending;
            }
            loop {
                match self.decoder.next(max_message) {
                    Ok(Some(incoming)) => return Poll::Ready(Ok(Event::Incoming(Ok(incoming)))),
                    Err(violation) => return Poll::Ready(Ok(Event::Incoming(Err(violation)))),
                    Ok(None) => {}
                }
                if !ready!(self.poll_fill(cx))? {
                    return Poll::Ready(Ok(Event::Ended));
                }
            }
        })
        .await
    }

    /// Reads what the peer has sent into the decoder; false at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        // On the stack for the length of one read: an idle connection keeps no read buffer.
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut chunk);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
        let read = buf.filled();
        if read.is_empty() {
            return Poll::Ready(Ok(false));
        }
        self.decoder.feed(read);
        Poll::Ready(Ok(true))
    }

    /// Writes what is in `out`, gathering as many frames as fit into each system call.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (slice, frame) in slices.iter_mut().zip(&self.out) {
                let skip = if count == 0 { self.out_offset } else { 0 };
                *slice = IoSlice::new(&frame.wire()[skip..]);
                count += 1;
            }
            let mut written =
                ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            while let Some(first) = self.out.front() {
                let left = first.len() - self.out_offset;
                if written < left {
                    self.out_offset += written;
                    break;
                }
                written -= left;
                self.out.pop_front();
                self.out_offset = 0;
            }
        }
        // Written: an idle connection keeps no storage for frames.
        self.out = VecDeque::new();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_is_the_rfc_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
