//! A WebSocket conformance suite for Herald's server side, modelled on the Autobahn|Testsuite case
//! groups 1–7 and 9 (framing, ping/pong, reserved bits, opcodes, fragmentation, UTF-8, close handling,
//! limits) and run against the real server over TCP, with frames written byte by byte where it
//! matters. The Autobahn suite itself is Python 2 code and cannot run here; docs/SECURITY.md maps
//! these cases to its groups.
//!
//! Herald is not an echo server, so "the message was delivered" is seen in its answer: a JSON frame
//! that is not a Herald message gets an `invalid_frame` error (the connection stays open), a binary
//! one `binary_frame`, a `join` a `joined`. Each violation must end the connection with the close code
//! RFC 6455 asks for, store nothing, and leave every other client served.

use crate::common;

use std::time::Duration;

use app::protocol::{ClientMsg, ErrorCode, ServerMsg};
use common::{PATIENCE, TestServer};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A frame the server sent: opcode and payload.
#[derive(Debug)]
struct ServerFrame {
    opcode: u8,
    payload: Vec<u8>,
}

/// A client speaking raw RFC 6455 over TCP, so it can send anything.
struct Raw {
    stream: TcpStream,
    read: Vec<u8>,
}

/// How a connection ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
enum Closed {
    /// A close frame with this code, then the end of the stream.
    With(u16),
    /// A close frame without a code.
    Empty,
}

impl Raw {
    async fn connect(server: &TestServer) -> Self {
        let cookie = server.session("Conformance").await;
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nCookie: {cookie}\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            addr = server.addr
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Self {
            stream,
            read: Vec::new(),
        };
        let head = loop {
            if let Some(end) = raw.read.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw.read[..end]).into_owned();
                raw.read.drain(..end + 4);
                break head;
            }
            assert!(raw.fill().await, "the handshake was not answered");
        };
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        // Every connection opens with `welcome` and the room list.
        for _ in 0..2 {
            let frame = raw.frame().await.expect("opening frames");
            assert_eq!(frame.opcode, 0x1);
        }
        raw
    }

    /// Reads more from the socket; false at its end.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(PATIENCE, self.stream.read(&mut chunk))
            .await
            .expect("the server answers in time")
            .unwrap_or(0);
        self.read.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// The next frame from the server (unmasked, never fragmented), or `None` at the end of the
    /// stream.
    async fn frame(&mut self) -> Option<ServerFrame> {
        loop {
            if self.read.len() >= 2 {
                assert_eq!(
                    self.read[0] & 0xf0,
                    0x80,
                    "server frames are final, no rsv bits"
                );
                assert_eq!(self.read[1] & 0x80, 0, "server frames are not masked");
                let (len, at) = match self.read[1] & 0x7f {
                    126 if self.read.len() >= 4 => (
                        usize::from(u16::from_be_bytes([self.read[2], self.read[3]])),
                        4,
                    ),
                    127 if self.read.len() >= 10 => {
                        let mut n = [0; 8];
                        n.copy_from_slice(&self.read[2..10]);
                        (usize::try_from(u64::from_be_bytes(n)).expect("length"), 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (usize::from(n), 2),
                };
                if len != usize::MAX && self.read.len() >= at + len {
                    let frame = ServerFrame {
                        opcode: self.read[0] & 0x0f,
                        payload: self.read[at..at + len].to_vec(),
                    };
                    self.read.drain(..at + len);
                    return Some(frame);
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next frame that is not a signal (presence, the room list and read positions come
    /// whenever they change).
    async fn answer(&mut self) -> ServerFrame {
        loop {
            let frame = self.frame().await.expect("a frame");
            let signal = frame.opcode == 0x1
                && matches!(
                    serde_json::from_slice(&frame.payload),
                    Ok(ServerMsg::Presence { .. }
                        | ServerMsg::Rooms { .. }
                        | ServerMsg::Mine { .. }
                        | ServerMsg::Typing { .. }
                        | ServerMsg::Read { .. })
                );
            if !signal {
                return frame;
            }
        }
    }

    /// The next text frame that is not a signal, as a Herald message.
    async fn message(&mut self) -> ServerMsg {
        let frame = self.answer().await;
        assert_eq!(frame.opcode, 0x1, "{frame:?}");
        serde_json::from_slice(&frame.payload).expect("a Herald message")
    }

    /// The next frame but signals, which must be a pong carrying `payload`.
    async fn pong(&mut self, payload: &[u8]) {
        let frame = self.answer().await;
        assert_eq!((frame.opcode, &frame.payload[..]), (0xA, payload));
    }

    async fn send(&mut self, bytes: &[u8]) {
        // The server may have closed already; that is for the test to see.
        let _ = self.stream.write_all(bytes).await;
    }

    /// Sends `bytes` in pieces of `size`, each its own write.
    async fn send_chopped(&mut self, bytes: &[u8], size: usize) {
        for piece in bytes.chunks(size) {
            let _ = self.stream.write_all(piece).await;
            let _ = self.stream.flush().await;
            tokio::task::yield_now().await;
        }
    }

    /// Reads until the server's close frame, skipping other frames; then the stream must end.
    async fn closed(&mut self) -> Closed {
        loop {
            let frame = self.frame().await.expect("a close frame before the end");
            if frame.opcode != 0x8 {
                continue;
            }
            let closed = match frame.payload[..] {
                [] => Closed::Empty,
                [a, b, ..] => Closed::With(u16::from_be_bytes([a, b])),
                _ => panic!("a one-byte close payload from the server"),
            };
            // Answer it, as a client should, and see the connection end.
            self.send(&frame_bytes(0x88, &frame.payload)).await;
            assert!(self.frame().await.is_none(), "nothing after the close");
            return closed;
        }
    }
}

/// A masked client frame with `first` as its first byte, its length in the shortest form.
fn frame_bytes(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x5a, 0x13, 0xc7, 0x01];
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

fn text(payload: &[u8]) -> Vec<u8> {
    frame_bytes(0x81, payload)
}

/// A JSON text that is not a Herald message, `len` bytes long: answered with `invalid_frame`.
fn filler(len: usize) -> Vec<u8> {
    let mut json = b"\"".to_vec();
    json.resize(len.saturating_sub(1), b'x');
    json.push(b'"');
    json.truncate(len);
    json
}

fn is_error(msg: &ServerMsg, code: ErrorCode) -> bool {
    matches!(msg, ServerMsg::Error { code: got, .. } if *got == code)
}

fn send_msg(room: &str, client_id: &str, body: &str) -> Vec<u8> {
    ClientMsg::Send {
        room: room.into(),
        client_id: client_id.into(),
        body: body.into(),
        reply_to: None,
    }
    .encode()
    .into_bytes()
}

fn join_msg(room: &str) -> Vec<u8> {
    ClientMsg::Join {
        room: room.into(),
        since: None,
        create: true,
    }
    .encode()
    .into_bytes()
}

/// After a violation: another client on the same server is still served, and nothing was stored
/// in `room`.
async fn others_still_served_and_nothing_stored(server: &TestServer, room: &str) {
    let mut other = server.client_named("Bystander").await;
    let joined = other.join(room, None).await;
    assert_eq!(
        joined.last_seq, 0,
        "nothing from the refused frames was stored"
    );
    let seq = other.post("still-here", "still served").await;
    assert_eq!(seq, 1);
}

/// Opens a connection, sends `bytes` (in pieces of `chop` bytes), and returns how it was closed.
async fn violation(server: &TestServer, bytes: &[u8], chop: usize) -> Closed {
    let mut raw = Raw::connect(server).await;
    raw.send_chopped(bytes, chop).await;
    raw.closed().await
}

// ---- 1. Framing -----------------------------------------------------------------------------------

#[tokio::test]
async fn case_1_text_and_binary_messages_of_every_length_form_are_read_whole_even_in_chops() {
    let server = TestServer::start().await;
    let mut raw = Raw::connect(&server).await;
    for len in [0usize, 1, 125, 126, 127, 128, 65_535, 65_536] {
        for chop in [usize::MAX, 997, 1] {
            if chop == 1 && len > 1000 {
                continue; // Byte by byte is for the small ones; the header forms are all covered.
            }
            let payload = if len == 0 { Vec::new() } else { filler(len) };
            raw.send_chopped(&text(&payload), chop.min(70_000)).await;
            let answer = raw.message().await;
            assert!(
                is_error(&answer, ErrorCode::InvalidFrame),
                "{len}: {answer:?}"
            );
            raw.send_chopped(&frame_bytes(0x82, &payload), chop.min(70_000))
                .await;
            let answer = raw.message().await;
            assert!(
                is_error(&answer, ErrorCode::BinaryFrame),
                "{len}: {answer:?}"
            );
        }
    }
    // And a real message, still on the same connection.
    raw.send(&text(&join_msg("framing"))).await;
    assert!(matches!(raw.message().await, ServerMsg::Joined { .. }));
}

// ---- 2. Pings and pongs ---------------------------------------------------------------------------

#[tokio::test]
async fn case_2_pings_are_answered_with_their_payload_and_pongs_are_ignored() {
    let server = TestServer::start().await;
    let mut raw = Raw::connect(&server).await;
    raw.send(&frame_bytes(0x89, b"")).await;
    raw.pong(b"").await;
    raw.send(&frame_bytes(0x89, b"Hello, world!")).await;
    raw.pong(b"Hello, world!").await;
    let binary: Vec<u8> = (0..=124u8).map(|b| b.wrapping_mul(37)).collect();
    raw.send(&frame_bytes(0x89, &binary)).await;
    raw.pong(&binary).await;
    let max = vec![0xfe; 125];
    raw.send_chopped(&frame_bytes(0x89, &max), 1).await;
    raw.pong(&max).await;
    // Unsolicited pongs: nothing comes back, and the connection goes on.
    raw.send(&frame_bytes(0x8A, b"unsolicited")).await;
    raw.send(&frame_bytes(0x8A, b"")).await;
    // Ten pings in one write: ten pongs, in order.
    let pings: Vec<u8> = (0..10u8)
        .flat_map(|i| frame_bytes(0x89, &[b'p', i]))
        .collect();
    raw.send(&pings).await;
    for i in 0..10u8 {
        raw.pong(&[b'p', i]).await;
    }
}

#[tokio::test]
async fn case_2_a_ping_over_125_bytes_is_a_protocol_error() {
    let server = TestServer::start().await;
    assert_eq!(
        violation(&server, &frame_bytes(0x89, &[b'x'; 126]), usize::MAX).await,
        Closed::With(1002)
    );
}

// ---- 3. Reserved bits -----------------------------------------------------------------------------

#[tokio::test]
async fn case_3_any_reserved_bit_is_a_protocol_error_and_the_frame_is_not_acted_on() {
    let server = TestServer::start().await;
    let room = "reserved";
    for (i, rsv) in [0x40u8, 0x20, 0x10, 0x60, 0x50, 0x30, 0x70]
        .into_iter()
        .enumerate()
    {
        let mut raw = Raw::connect(&server).await;
        raw.send(&text(&join_msg(room))).await;
        assert!(matches!(raw.message().await, ServerMsg::Joined { .. }));
        let opcode = [0x1u8, 0x2, 0x9][i % 3];
        let send = send_msg(room, &format!("rsv-{i}"), "must not be stored");
        let payload = if opcode == 0x9 {
            b"ping".to_vec()
        } else {
            send
        };
        // A good frame, then the bad one, then another good one: only the first is answered.
        let mut bytes = frame_bytes(0x89, b"before");
        bytes.extend(frame_bytes(0x80 | rsv | opcode, &payload));
        bytes.extend(frame_bytes(0x89, b"after"));
        raw.send(&bytes).await;
        raw.pong(b"before").await;
        assert_eq!(raw.closed().await, Closed::With(1002), "rsv {rsv:#x}");
    }
    others_still_served_and_nothing_stored(&server, room).await;
}

// ---- 4. Opcodes -----------------------------------------------------------------------------------

#[tokio::test]
async fn case_4_reserved_opcodes_are_protocol_errors() {
    let server = TestServer::start().await;
    for opcode in [0x3u8, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        for payload in [&b""[..], b"reserved opcode payload"] {
            assert_eq!(
                violation(&server, &frame_bytes(0x80 | opcode, payload), usize::MAX).await,
                Closed::With(1002),
                "opcode {opcode:#x}"
            );
        }
    }
    others_still_served_and_nothing_stored(&server, "opcodes").await;
}

// ---- 5. Fragmentation -----------------------------------------------------------------------------

#[tokio::test]
async fn case_5_fragments_make_one_message_with_control_frames_between_them() {
    let server = TestServer::start().await;
    let mut raw = Raw::connect(&server).await;
    let join = join_msg("fragments");
    // Two fragments, then one per byte, each also sent byte by byte.
    for (pieces, chop) in [(2usize, usize::MAX), (join.len(), usize::MAX), (3, 1)] {
        let size = join.len().div_ceil(pieces);
        let chunks: Vec<&[u8]> = join.chunks(size).collect();
        let mut bytes = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let first = match (i == 0, i + 1 == chunks.len()) {
                (true, true) => 0x81,
                (true, false) => 0x01,
                (false, true) => 0x80,
                (false, false) => 0x00,
            };
            bytes.extend(frame_bytes(first, chunk));
            if i == 0 {
                bytes.extend(frame_bytes(0x89, b"between"));
                bytes.extend(frame_bytes(0x8A, b"unsolicited, between"));
            }
        }
        raw.send_chopped(&bytes, chop).await;
        raw.pong(b"between").await;
        assert!(
            matches!(raw.message().await, ServerMsg::Joined { .. }),
            "{pieces}"
        );
    }
    // Empty fragments are fragments too.
    let bytes = [
        frame_bytes(0x01, b""),
        frame_bytes(0x00, &join),
        frame_bytes(0x80, b""),
    ]
    .concat();
    raw.send(&bytes).await;
    assert!(matches!(raw.message().await, ServerMsg::Joined { .. }));
}

#[tokio::test]
async fn case_5_broken_fragmentation_is_a_protocol_error_and_stores_nothing() {
    let server = TestServer::start().await;
    let room = "broken-fragments";
    let send = send_msg(room, "fragmented", "must not be stored");
    let (head, tail) = send.split_at(10);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "fragmented ping",
            [frame_bytes(0x09, b"a"), frame_bytes(0x80, b"b")].concat(),
        ),
        ("fragmented pong", frame_bytes(0x0A, b"a")),
        (
            "fragmented close",
            frame_bytes(0x08, &1000u16.to_be_bytes()),
        ),
        ("continuation first", frame_bytes(0x80, &send)),
        ("non-final continuation first", frame_bytes(0x00, &send)),
        (
            "text inside text",
            [frame_bytes(0x01, head), frame_bytes(0x81, tail)].concat(),
        ),
        (
            "binary inside text",
            [frame_bytes(0x01, head), frame_bytes(0x02, tail)].concat(),
        ),
        (
            "continuation after the end",
            [
                frame_bytes(0x81, &join_msg(room)),
                frame_bytes(0x80, b"more"),
            ]
            .concat(),
        ),
    ];
    for (what, bytes) in cases {
        for chop in [usize::MAX, 1] {
            let mut raw = Raw::connect(&server).await;
            raw.send(&text(&join_msg(room))).await;
            assert!(matches!(raw.message().await, ServerMsg::Joined { .. }));
            raw.send_chopped(&bytes, chop).await;
            assert_eq!(raw.closed().await, Closed::With(1002), "{what}");
        }
    }
    others_still_served_and_nothing_stored(&server, room).await;
}

// ---- 6. UTF-8 -------------------------------------------------------------------------------------

#[tokio::test]
async fn case_6_valid_utf8_is_accepted_even_split_inside_characters() {
    let server = TestServer::start().await;
    let mut raw = Raw::connect(&server).await;
    let room = "utf8";
    raw.send(&text(&join_msg(room))).await;
    assert!(matches!(raw.message().await, ServerMsg::Joined { .. }));
    let body = "κόσμε · 𝄞 · \u{FEFF} · \u{10FFFF}";
    let send = send_msg(room, "utf8-split", body);
    // Split at every byte between two fragments: only the first copy is stored (same client_id).
    for cut in 0..=send.len() {
        let bytes = [
            frame_bytes(0x01, &send[..cut]),
            frame_bytes(0x80, &send[cut..]),
        ]
        .concat();
        raw.send(&bytes).await;
        loop {
            match raw.message().await {
                ServerMsg::Ack { seq, .. } => {
                    assert_eq!(seq, 1, "cut at {cut}");
                    break;
                }
                ServerMsg::Message(m) => assert_eq!(m.body, body),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn case_6_invalid_utf8_is_refused_with_1007_and_stores_nothing() {
    let server = TestServer::start().await;
    let room = "bad-utf8";
    let invalid: [&[u8]; 9] = [
        &[0xff],                   // never in UTF-8
        &[0xc0, 0xaf],             // overlong '/'
        &[0xe0, 0x80, 0xaf],       // overlong, three bytes
        &[0xed, 0xa0, 0x80],       // a UTF-16 surrogate
        &[0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
        &[0xce, 0xba, 0xe1],       // ends inside a character
        &[0x80],                   // a lone continuation byte
        &[0xfe, 0xfe, 0xff, 0xff], // byte-order marks that are not UTF-8
        &[
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
        ],
    ];
    for bad in invalid {
        let mut body = send_msg(room, "bad", "x");
        let at = body.len() - 3; // Inside the body's string, before its `x`.
        body.splice(at..at, bad.iter().copied());
        let fault_end = at + bad.len();
        // In one frame, and in fragments where the fault is in the first one (refused at once:
        // no final fragment is ever sent).
        let mut raw = Raw::connect(&server).await;
        raw.send(&text(&body)).await;
        assert_eq!(raw.closed().await, Closed::With(1007), "{bad:02x?}");
        let mut raw = Raw::connect(&server).await;
        raw.send(&frame_bytes(0x01, &body[..fault_end])).await;
        if bad != [0xce, 0xba, 0xe1] {
            assert_eq!(
                raw.closed().await,
                Closed::With(1007),
                "fragment {bad:02x?}"
            );
        } else {
            // Only unfinished so far: the next fragment decides.
            raw.send(&frame_bytes(0x80, &body[fault_end..])).await;
            assert_eq!(
                raw.closed().await,
                Closed::With(1007),
                "fragment {bad:02x?}"
            );
        }
    }
    others_still_served_and_nothing_stored(&server, room).await;
}

// ---- 7. Close handling ----------------------------------------------------------------------------

#[tokio::test]
async fn case_7_a_close_is_answered_with_its_code_and_nothing_after_it_is_read() {
    let server = TestServer::start().await;
    let room = "closing";
    let mut raw = Raw::connect(&server).await;
    raw.send(&text(&join_msg(room))).await;
    assert!(matches!(raw.message().await, ServerMsg::Joined { .. }));
    // A close, then a message and a ping: neither is acted on.
    let mut bytes = frame_bytes(0x88, b"");
    bytes.extend(text(&send_msg(room, "after-close", "not stored")));
    bytes.extend(frame_bytes(0x89, b"after close"));
    raw.send(&bytes).await;
    let frame = raw.answer().await;
    assert_eq!(
        (frame.opcode, &frame.payload[..2]),
        (0x8, &1000u16.to_be_bytes()[..])
    );
    assert!(
        raw.frame().await.is_none(),
        "the server ends the connection"
    );

    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        for reason in ["", "a reason", &"r".repeat(123)] {
            let mut raw = Raw::connect(&server).await;
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(reason.as_bytes());
            raw.send_chopped(&frame_bytes(0x88, &payload), 3).await;
            let frame = raw.answer().await;
            assert_eq!(frame.opcode, 0x8);
            assert_eq!(frame.payload[..2], code.to_be_bytes(), "{code}");
            assert!(
                raw.frame().await.is_none(),
                "the server ends the connection"
            );
        }
    }
    others_still_served_and_nothing_stored(&server, room).await;
}

#[tokio::test]
async fn case_7_a_close_that_breaks_the_rules_is_a_protocol_error() {
    let server = TestServer::start().await;
    // One byte: half a code.
    assert_eq!(
        violation(&server, &frame_bytes(0x88, &[0x03]), 1).await,
        Closed::With(1002)
    );
    // Codes that may not be sent.
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        assert_eq!(
            violation(&server, &frame_bytes(0x88, &code.to_be_bytes()), usize::MAX).await,
            Closed::With(1002),
            "{code}"
        );
    }
    // A reason that is not UTF-8.
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(&[
        0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
    ]);
    assert_eq!(
        violation(&server, &frame_bytes(0x88, &payload), usize::MAX).await,
        Closed::With(1007)
    );
    // A close payload over 125 bytes.
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(&[b'r'; 124]);
    assert_eq!(
        violation(&server, &frame_bytes(0x88, &payload), usize::MAX).await,
        Closed::With(1002)
    );
    others_still_served_and_nothing_stored(&server, "bad-closes").await;
}

// ---- 9. Limits ------------------------------------------------------------------------------------

#[tokio::test]
async fn case_9_a_message_over_the_limit_is_refused_from_its_header_with_1009() {
    let server = TestServer::start().await;
    let room = "limits";
    let limit = app::protocol::MAX_FRAME_BYTES;
    // Exactly the limit is read.
    let mut raw = Raw::connect(&server).await;
    raw.send(&text(&filler(limit))).await;
    assert!(is_error(&raw.message().await, ErrorCode::InvalidFrame));
    // One byte over, in one frame or across fragments, is refused.
    assert_eq!(
        violation(&server, &text(&filler(limit + 1)), usize::MAX).await,
        Closed::With(1009)
    );
    let over = [
        frame_bytes(0x01, &filler(limit / 2)),
        frame_bytes(0x89, b"between"),
        frame_bytes(0x80, &vec![b'x'; limit / 2 + 1]),
    ]
    .concat();
    assert_eq!(
        violation(&server, &over, usize::MAX).await,
        Closed::With(1009)
    );
    // A header claiming 1 GiB is refused at once: the server does not wait for (or keep) the bytes.
    let mut raw = Raw::connect(&server).await;
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    raw.send(&header).await;
    assert_eq!(raw.closed().await, Closed::With(1009));
    others_still_served_and_nothing_stored(&server, room).await;
}

/// The report that opened this suite: 10 bytes of a fragmented text, then a continuation whose 64-bit
/// length is 2^64 − 5. It used to panic the connection's task, with no close frame.
#[tokio::test]
async fn case_9_a_length_near_two_to_the_64_closes_cleanly_and_the_server_goes_on() {
    let server = TestServer::start().await;
    for top in [0xffu8, 0x7f] {
        let mut bytes = frame_bytes(0x01, b"0123456789");
        bytes.extend([0x80, 0xff, top, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb]);
        bytes.extend([1, 2, 3, 4]);
        bytes.extend([0; 64]);
        let closed = violation(&server, &bytes, usize::MAX).await;
        // Top bit set: a protocol error (RFC 6455 §5.2); without it, merely too big.
        let expected = if top == 0xff { 1002 } else { 1009 };
        assert_eq!(closed, Closed::With(expected), "{top:#x}");
    }
    others_still_served_and_nothing_stored(&server, "huge-lengths").await;
}

#[tokio::test]
async fn case_9_unmasked_frames_are_protocol_errors() {
    let server = TestServer::start().await;
    let mut raw = Raw::connect(&server).await;
    raw.send(&[0x81, 0x02, b'h', b'i']).await;
    assert_eq!(raw.closed().await, Closed::With(1002));
    // Nothing was left behind: a new connection works at once.
    let mut raw = Raw::connect(&server).await;
    raw.send(&frame_bytes(0x89, b"ok")).await;
    tokio::time::timeout(Duration::from_secs(5), raw.pong(b"ok"))
        .await
        .expect("answered");
}
