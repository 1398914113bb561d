//! The server's side of the WebSocket protocol (RFC 6455), written for fan-out: the opening
//! handshake, reading the client's masked frames, and writing whole queues of shared [`Frame`]s with
//! one vectored write. No extensions, no subprotocols.
//!
//! Why not a general WebSocket library: fan-out is one message written to thousands of sockets. A
//! library copies each message into a buffer per connection and writes it from there; here a frame's
//! header is encoded with it once ([`Frame`]) and the kernel gathers every queued frame straight from
//! the shared bytes. An idle connection holds no buffer at all: reads go through a buffer on the stack
//! and only bytes of an unfinished frame are kept.

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

use crate::frame::{Frame, opcode};

/// Close codes for a peer that broke the protocol itself (RFC 6455 §7.4.1); Herald's own codes are in
/// `app::protocol::close_code`.
pub mod violation_code {
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_PAYLOAD: u16 = 1007;
}

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

/// What the client sent: one whole message or a control frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    /// A binary message (Herald speaks text only), by length.
    Binary(usize),
    Ping(Vec<u8>),
    /// The client is closing, with its status code if it gave one.
    Close(Option<u16>),
    /// A message larger than the limit: its bytes are skipped, not kept; the connection should close
    /// with 1009.
    TooBig,
}

/// The code to answer a client's close frame with: its own if it may be sent on the wire (RFC 6455
/// §7.4), otherwise 1000 ("normal"): 1005 and 1006, say, only ever describe a close locally.
pub fn answer_code(code: Option<u16>) -> u16 {
    code.filter(|code| matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999))
        .unwrap_or(1000)
}

/// The peer broke the protocol: the connection must close with `code`.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation {
    pub code: u16,
    pub reason: &'static str,
}

fn protocol_error(reason: &'static str) -> Violation {
    Violation {
        code: violation_code::PROTOCOL_ERROR,
        reason,
    }
}

/// Reassembles the client's frames into [`Incoming`] messages. Separate from the socket so that it
/// can be tested on bytes alone.
#[derive(Default)]
struct Decoder {
    /// Bytes read but not yet decoded: only ever part of one frame (and what followed it in the same
    /// read). Empty, without an allocation, between frames.
    input: Vec<u8>,
    /// A fragmented message being put together: its opcode and the payload so far.
    partial: Option<(u8, Vec<u8>)>,
    /// Bytes of an oversized frame still to be skipped as they arrive.
    skip: u64,
    /// A fragmented message was refused as too big before its last fragment: the continuation
    /// frames still to come are skipped the same way, up to and including the final one.
    discarding: bool,
}

impl Decoder {
    /// The next whole message or control frame in what was read, if there is one.
    fn next(&mut self, max_message: usize) -> Result<Option<Incoming>, Violation> {
        loop {
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(self.input.len());
                self.consume(n);
                self.skip -= n as u64;
                if self.skip > 0 {
                    return Ok(None);
                }
            }
            let buf = &self.input[..];
            if buf.len() < 2 {
                return Ok(None);
            }
            let (fin, op) = (buf[0] & 0x80 != 0, buf[0] & 0x0f);
            if buf[0] & 0x70 != 0 {
                return Err(protocol_error("reserved bits set"));
            }
            if buf[1] & 0x80 == 0 {
                return Err(protocol_error("client frames must be masked"));
            }
            let (len, at) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
                127 if buf.len() >= 10 => {
                    let mut n = [0; 8];
                    n.copy_from_slice(&buf[2..10]);
                    (u64::from_be_bytes(n), 10)
                }
                126 | 127 => return Ok(None),
                n => (u64::from(n), 2),
            };
            if buf.len() < at + 4 {
                return Ok(None); // The mask is still to come.
            }
            let control = op & 0x8 != 0;
            if control && (!fin || len > 125) {
                return Err(protocol_error("control frames are short and whole"));
            }
            if self.discarding && !control {
                if op != 0x0 {
                    return Err(protocol_error("message inside a message"));
                }
                // More of a message already reported as too big.
                self.consume(at + 4);
                self.skip = len;
                self.discarding = !fin;
                continue;
            }
            let so_far = self.partial.as_ref().map_or(0, |(_, p)| p.len() as u64);
            if !control && so_far + len > max_message as u64 {
                // Skipped as it arrives rather than buffered: the size alone decides.
                self.consume(at + 4);
                self.skip = len;
                self.partial = None;
                self.discarding = !fin;
                return Ok(Some(Incoming::TooBig));
            }
            let end = at + 4 + len as usize;
            if buf.len() < end {
                self.input.reserve(end - buf.len());
                return Ok(None);
            }
            let mask = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
            let mut payload = buf[at + 4..end].to_vec();
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
            self.consume(end);
            let whole = match (op, self.partial.take()) {
                (0x0, Some((first, mut so_far))) => {
                    so_far.extend_from_slice(&payload);
                    if !fin {
                        self.partial = Some((first, so_far));
                        continue;
                    }
                    (first, so_far)
                }
                (0x0, None) => return Err(protocol_error("continuation of nothing")),
                (0x1 | 0x2, Some(_)) => return Err(protocol_error("message inside a message")),
                (0x1 | 0x2, None) if !fin => {
                    self.partial = Some((op, payload));
                    continue;
                }
                (0x1 | 0x2, None) => (op, payload),
                (opcode::CLOSE, partial) => {
                    self.partial = partial;
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return Ok(Some(Incoming::Close(code)));
                }
                (opcode::PING, partial) => {
                    self.partial = partial;
                    return Ok(Some(Incoming::Ping(payload)));
                }
                (opcode::PONG, partial) => {
                    self.partial = partial;
                    continue;
                }
                _ => return Err(protocol_error("unknown opcode")),
            };
            return match whole {
                (0x1, bytes) => String::from_utf8(bytes)
                    .map(Incoming::Text)
                    .map(Some)
                    .map_err(|_| Violation {
                        code: violation_code::INVALID_PAYLOAD,
                        reason: "text must be UTF-8",
                    }),
                (_, bytes) => Ok(Some(Incoming::Binary(bytes.len()))),
            };
        }
    }

    /// Drops the first `n` bytes read; gives the buffer back once it is empty.
    fn consume(&mut self, n: usize) {
        if n >= self.input.len() {
            self.input = Vec::new();
        } else {
            self.input.drain(..n);
        }
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
        self.decoder.input.extend_from_slice(read);
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

    /// A client frame: masked, as browsers send them.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn decode_all(bytes: &[u8], max: usize) -> Vec<Result<Incoming, Violation>> {
        let mut decoder = Decoder::default();
        let mut out = Vec::new();
        // One byte at a time: a frame split anywhere must decode the same.
        for b in bytes {
            decoder.input.push(*b);
            loop {
                match decoder.next(max) {
                    Ok(Some(incoming)) => out.push(Ok(incoming)),
                    Ok(None) => break,
                    Err(v) => {
                        out.push(Err(v));
                        return out;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn a_close_is_answered_with_its_code_unless_that_code_may_not_be_sent() {
        assert_eq!(answer_code(Some(1001)), 1001);
        assert_eq!(answer_code(Some(4000)), 4000);
        for reserved in [
            None,
            Some(0),
            Some(1005),
            Some(1006),
            Some(1015),
            Some(2999),
            Some(5000),
        ] {
            assert_eq!(answer_code(reserved), 1000, "{reserved:?}");
        }
    }

    #[test]
    fn the_accept_key_is_the_rfc_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn masked_frames_of_every_length_form_decode_even_split_byte_by_byte() {
        for len in [0, 5, 125, 126, 300, 70_000] {
            let text = "h".repeat(len);
            let got = decode_all(&client_frame(0x81, text.as_bytes()), 100_000);
            assert_eq!(got, vec![Ok(Incoming::Text(text))], "{len}");
        }
    }

    #[test]
    fn fragments_join_and_control_frames_may_come_between_them() {
        let mut bytes = client_frame(0x01, b"hel");
        bytes.extend(client_frame(0x89, b"are you there"));
        bytes.extend(client_frame(0x8A, b"ignored pong"));
        bytes.extend(client_frame(0x00, b"lo "));
        bytes.extend(client_frame(0x80, "wörld".as_bytes()));
        bytes.extend(client_frame(0x82, &[1, 2, 3]));
        bytes.extend(client_frame(0x88, &1000u16.to_be_bytes()));
        assert_eq!(
            decode_all(&bytes, 1024),
            vec![
                Ok(Incoming::Ping(b"are you there".to_vec())),
                Ok(Incoming::Text("hello wörld".into())),
                Ok(Incoming::Binary(3)),
                Ok(Incoming::Close(Some(1000))),
            ]
        );
    }

    #[test]
    fn an_oversized_message_is_reported_and_skipped_without_being_kept() {
        let mut bytes = client_frame(0x81, &[b'x'; 2000]);
        bytes.extend(client_frame(0x81, b"after"));
        let mut decoder = Decoder::default();
        decoder.input.extend_from_slice(&bytes[..100]);
        assert_eq!(decoder.next(1000), Ok(Some(Incoming::TooBig)));
        assert!(
            decoder.input.capacity() < 1000,
            "the payload is not buffered"
        );
        decoder.input.extend_from_slice(&bytes[100..]);
        assert_eq!(decoder.next(1000), Ok(Some(Incoming::Text("after".into()))));
        // Fragments count together, and the rest of a refused message is skipped to its end.
        let mut bytes = client_frame(0x01, &[b'x'; 600]);
        bytes.extend(client_frame(0x80, &[b'x'; 600]));
        assert_eq!(decode_all(&bytes, 1000), vec![Ok(Incoming::TooBig)]);
        let bytes = [
            client_frame(0x01, &[b'x'; 600]),
            client_frame(0x00, &[b'x'; 600]),
            client_frame(0x89, b"still here?"),
            client_frame(0x00, &[b'x'; 600]),
            client_frame(0x80, &[b'x'; 10]),
            client_frame(0x81, b"after"),
        ]
        .concat();
        assert_eq!(
            decode_all(&bytes, 1000),
            vec![
                Ok(Incoming::TooBig),
                Ok(Incoming::Ping(b"still here?".to_vec())),
                Ok(Incoming::Text("after".into()))
            ]
        );
    }

    /// A tiny xorshift generator: the same "random" bytes on every run, no dependency.
    fn noise(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn no_input_makes_the_decoder_panic_or_buffer_past_its_limit() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for round in 0..2000 {
            // Half plain noise; half real frames with a byte or two flipped, which get further in.
            let mut bytes = Vec::new();
            if round % 2 == 0 {
                bytes.extend((0..noise(&mut seed) % 300).map(|_| noise(&mut seed) as u8));
            } else {
                for _ in 0..noise(&mut seed) % 6 {
                    let first = [0x01, 0x00, 0x80, 0x81, 0x82, 0x88, 0x89, 0x8a]
                        [(noise(&mut seed) % 8) as usize];
                    let len = (noise(&mut seed) % 200) as usize;
                    bytes.extend(client_frame(first, &vec![b'y'; len]));
                }
                for _ in 0..noise(&mut seed) % 3 {
                    if !bytes.is_empty() {
                        let at = (noise(&mut seed) % bytes.len() as u64) as usize;
                        bytes[at] ^= noise(&mut seed) as u8;
                    }
                }
            }
            let mut decoder = Decoder::default();
            let mut rest = &bytes[..];
            'feed: while !rest.is_empty() {
                let n = (1 + noise(&mut seed) % 64).min(rest.len() as u64) as usize;
                decoder.input.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                loop {
                    match decoder.next(256) {
                        Ok(Some(Incoming::Text(text))) => assert!(text.len() <= 256),
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed, // The connection is closed here.
                    }
                }
                let held = decoder.partial.as_ref().map_or(0, |(_, p)| p.len());
                assert!(held <= 256, "round {round}: {held} bytes of a message held");
                assert!(
                    decoder.input.len() <= 256 + 14 + 64,
                    "round {round}: {} bytes unread",
                    decoder.input.len()
                );
            }
        }
    }

    #[test]
    fn protocol_violations_are_refused_with_their_close_code() {
        let unmasked = vec![0x81, 2, b'h', b'i'];
        let reserved = client_frame(0xC1, b"hi");
        let long_ping = client_frame(0x89, &[0; 126]);
        let split_ping = client_frame(0x09, b"p");
        let orphan = client_frame(0x80, b"x");
        let nested = [client_frame(0x01, b"a"), client_frame(0x81, b"b")].concat();
        let unknown = client_frame(0x83, b"");
        for bytes in [
            unmasked, reserved, long_ping, split_ping, orphan, nested, unknown,
        ] {
            let got = decode_all(&bytes, 1024);
            assert!(
                matches!(got.last(), Some(Err(v)) if v.code == violation_code::PROTOCOL_ERROR),
                "{bytes:?}: {got:?}"
            );
        }
        let invalid = client_frame(0x81, &[0xff, 0xfe]);
        assert_eq!(
            decode_all(&invalid, 1024),
            vec![Err(Violation {
                code: violation_code::INVALID_PAYLOAD,
                reason: "text must be UTF-8"
            })]
        );
    }
}
