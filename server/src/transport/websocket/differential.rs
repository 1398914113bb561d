//! Herald's frame decoder beside an independent implementation: tungstenite's server-side reader (its
//! `WebSocket` over an in-memory stream, not the header parser the decoder shares with it). Both read
//! the same generated and mutated client byte streams; they must deliver the same messages and refuse
//! the same streams with a close code of the same class.
//!
//! Where the two may rightly differ, the comparison says so by name (`KNOWN`):
//! - A stream that ends mid-frame: tungstenite waits for the rest, while Herald refuses what it can
//!   already tell is wrong from a header (a continuation of nothing, say). Only the messages
//!   delivered before are compared.
//! - A frame whose header claims more than 16 MiB: tungstenite refuses it for its size before it looks
//!   at anything else, Herald for whatever else is wrong with it first (a 64-bit length with its top
//!   bit set is a protocol error: RFC 6455 §5.2 says it "MUST be 0"). Both refuse from the header.
//! - Close code 1014 ("Bad Gateway", in the IANA registry since 2016) is accepted by Herald and refused
//!   by tungstenite's older table.

use std::io::{self, Read, Write};

use tungstenite::{
    Message, WebSocket,
    error::{CapacityError, Error},
    protocol::{Role, WebSocketConfig, frame::coding::CloseCode},
};

use super::decode::{
    Decoder, Incoming,
    tests::{client_frame, client_frame_with, noise},
};

/// The message limit both implementations are given: large enough for every length form.
const MAX: usize = 70_000;

/// Something a reader passed on.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Text(String),
    Binary(usize),
    Ping(Vec<u8>),
    Close(Option<u16>),
}

/// How reading a stream ended.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum End {
    /// The input ran out; the reader waits for more.
    Waiting,
    /// The client closed (the last `Got` is its close).
    Closed,
    /// The reader refused the stream with this close code.
    Refused(u16),
    /// tungstenite refused a frame from its header alone, for claiming more than [`FRAME_LIMIT`].
    FrameTooLong,
}

/// tungstenite's default frame limit (16 MiB), above every payload generated here: without one it
/// sets aside as much memory as a header claims.
const FRAME_LIMIT: usize = 16 << 20;

fn herald(bytes: &[u8], seed: &mut u64) -> (Vec<Got>, End) {
    let mut decoder = Decoder::default();
    let mut got = Vec::new();
    let mut rest = bytes;
    loop {
        match decoder.next(MAX) {
            Ok(Some(Incoming::Text(text))) => got.push(Got::Text(text)),
            Ok(Some(Incoming::Binary(len))) => got.push(Got::Binary(len)),
            Ok(Some(Incoming::Ping(payload))) => got.push(Got::Ping(payload)),
            Ok(Some(Incoming::Close(code))) => {
                got.push(Got::Close(code));
                return (got, End::Closed);
            }
            Ok(Some(Incoming::TooBig)) => return (got, End::Refused(1009)),
            Err(violation) => return (got, End::Refused(violation.code)),
            Ok(None) if rest.is_empty() => return (got, End::Waiting),
            Ok(None) => {
                // Reads of every size: a frame may be split anywhere.
                let n = (1 + noise(seed) % 700).min(rest.len() as u64) as usize;
                decoder.feed(&rest[..n]);
                rest = &rest[n..];
            }
        }
    }
}

/// The client's bytes as a stream: read as they come, then "would block"; writes are dropped.
struct Wire<'a>(&'a [u8]);

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tungstenite(bytes: &[u8]) -> (Vec<Got>, End) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX))
        .max_frame_size(Some(FRAME_LIMIT));
    let mut socket = WebSocket::from_raw_socket(Wire(bytes), Role::Server, Some(config));
    let mut got = Vec::new();
    loop {
        match socket.read() {
            Ok(Message::Text(text)) => got.push(Got::Text(text.as_str().to_owned())),
            Ok(Message::Binary(data)) => got.push(Got::Binary(data.len())),
            Ok(Message::Ping(data)) => got.push(Got::Ping(data.to_vec())),
            Ok(Message::Pong(_)) => {} // Herald passes pongs on to no one.
            Ok(Message::Close(None)) => {
                got.push(Got::Close(None));
                return (got, End::Closed);
            }
            // tungstenite answers a close code that may not be sent with 1002 and says so here.
            Ok(Message::Close(Some(close)))
                if close.code == CloseCode::Protocol && close.reason == "Protocol violation" =>
            {
                return (got, End::Refused(1002));
            }
            Ok(Message::Close(Some(close))) => {
                got.push(Got::Close(Some(close.code.into())));
                return (got, End::Closed);
            }
            Ok(Message::Frame(_)) => unreachable!("read never returns raw frames"),
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                return (got, End::Waiting);
            }
            Err(Error::Protocol(_)) => return (got, End::Refused(1002)),
            Err(Error::Utf8(_)) => return (got, End::Refused(1007)),
            Err(Error::Capacity(CapacityError::MessageTooLong { size, .. }))
                if size > FRAME_LIMIT =>
            {
                return (got, End::FrameTooLong);
            }
            Err(Error::Capacity(_)) => return (got, End::Refused(1009)),
            Err(other) => panic!("tungstenite: unexpected {other:?}"),
        }
    }
}

/// Whether the two agree on `bytes`; the description of the disagreement if not.
fn compare(bytes: &[u8], seed: &mut u64) -> Result<(), String> {
    let (ours, our_end) = herald(bytes, seed);
    let (theirs, their_end) = tungstenite(bytes);
    let agree = match (our_end, their_end) {
        // KNOWN: a stream cut mid-frame; see the module doc.
        (End::Waiting, _) | (_, End::Waiting) => ours == theirs,
        // KNOWN: a frame claiming more than 16 MiB, refused by both; see the module doc.
        (End::Refused(_), End::FrameTooLong) => ours == theirs,
        // KNOWN: 1014 may be sent (IANA); tungstenite's table predates it.
        (End::Closed, End::Refused(1002)) if ours.last() == Some(&Got::Close(Some(1014))) => {
            ours[..ours.len() - 1] == theirs[..]
        }
        _ => ours == theirs && our_end == their_end,
    };
    if agree {
        Ok(())
    } else {
        Err(format!(
            "{:02x?}\n herald:      {ours:?} {our_end:?}\n tungstenite: {theirs:?} {their_end:?}",
            &bytes[..bytes.len().min(48)]
        ))
    }
}

/// Every first byte worth sending: each opcode, final or not, with and without reserved bits.
fn first_byte(seed: &mut u64) -> u8 {
    const COMMON: [u8; 8] = [0x81, 0x82, 0x01, 0x02, 0x00, 0x80, 0x88, 0x89];
    match noise(seed) % 4 {
        0 => noise(seed) as u8, // Anything, reserved opcodes and bits included.
        1 => 0x8A,
        _ => COMMON[(noise(seed) % COMMON.len() as u64) as usize],
    }
}

/// Payload lengths at the edges of each length form and of the limit.
fn payload_len(seed: &mut u64) -> usize {
    const EDGES: [usize; 14] = [
        0, 1, 2, 3, 124, 125, 126, 127, 65_535, 65_536, 69_999, 70_000, 70_001, 80_000,
    ];
    match noise(seed) % 3 {
        0 => EDGES[(noise(seed) % EDGES.len() as u64) as usize],
        _ => (noise(seed) % 40) as usize,
    }
}

/// Text, broken text, bytes, or a close payload, `len` long.
fn payload(first: u8, len: usize, seed: &mut u64) -> Vec<u8> {
    if first & 0x0f == 0x8 && len >= 2 && !noise(seed).is_multiple_of(4) {
        let codes = [
            1000u16, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1012, 1013, 1014, 1015, 1016,
            2999, 3000, 4999, 5000, 0, 999,
        ];
        let code = codes[(noise(seed) % codes.len() as u64) as usize];
        let mut out = code.to_be_bytes().to_vec();
        out.extend(text_bytes(len - 2, seed));
        return out;
    }
    text_bytes(len, seed)
}

/// `len` bytes, mostly UTF-8 with multi-byte characters, sometimes not UTF-8 at all.
fn text_bytes(len: usize, seed: &mut u64) -> Vec<u8> {
    const PIECES: [&[u8]; 7] = [
        b"a",
        b"hello ",
        "é".as_bytes(),
        "€".as_bytes(),
        "𝄞".as_bytes(),
        &[0xff],
        &[0xed, 0xa0, 0x80],
    ];
    let broken = noise(seed).is_multiple_of(5);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let piece = PIECES[(noise(seed) % if broken { 7 } else { 5 }) as usize];
        out.extend_from_slice(piece);
    }
    out.truncate(len); // May cut a character: the next fragment may or may not finish it.
    out
}

/// A frame with a random mask, sometimes unmasked, sometimes with a longer length form than needed.
fn frame(first: u8, payload: &[u8], seed: &mut u64) -> Vec<u8> {
    let mask = (noise(seed) as u32).to_be_bytes();
    let mut bytes = client_frame_with(first, payload, mask);
    match noise(seed) % 20 {
        0 => {
            // Unmasked.
            let len_form = usize::from(bytes[1] & 0x7f);
            let header = 2 + [0, 2, 8][usize::from(len_form >= 126) + usize::from(len_form == 127)];
            bytes[1] &= 0x7f;
            bytes.drain(header..header + 4);
            for (i, b) in bytes[header..].iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        1 if payload.len() < 126 => {
            // The 64-bit form for a short payload (allowed by both; RFC 6455 asks for the shortest).
            let mut long = vec![first, 0x80 | 127];
            long.extend_from_slice(&(payload.len() as u64).to_be_bytes());
            long.extend_from_slice(&bytes[2..]);
            bytes = long;
        }
        _ => {}
    }
    bytes
}

#[test]
fn herald_and_tungstenite_agree_on_generated_and_mutated_streams() {
    let mut seed = 0x2545_f491_4f6c_dd1d;
    let mut failures = Vec::new();
    for round in 0..6000 {
        let mut bytes = Vec::new();
        for _ in 0..1 + noise(&mut seed) % 6 {
            let first = first_byte(&mut seed);
            let len = payload_len(&mut seed);
            let len = if first & 0x08 != 0 && !noise(&mut seed).is_multiple_of(3) {
                len.min(125) // Mostly valid control frames, so the stream goes on.
            } else {
                len
            };
            let payload = payload(first, len, &mut seed);
            bytes.extend(frame(first, &payload, &mut seed));
        }
        // A third of the streams mutated: header bytes flipped, or cut short.
        match round % 3 {
            0 => {
                for _ in 0..1 + noise(&mut seed) % 3 {
                    let at = (noise(&mut seed) % bytes.len().min(24) as u64) as usize;
                    bytes[at] ^= 1 << (noise(&mut seed) % 8);
                }
            }
            1 => bytes.truncate((noise(&mut seed) % (bytes.len() as u64 + 1)) as usize),
            _ => {}
        }
        if let Err(e) = compare(&bytes, &mut seed) {
            failures.push(format!("round {round}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n")
    );
}

#[test]
fn they_agree_on_every_length_encoding_at_its_boundaries() {
    let mut seed = 7;
    let mut failures = Vec::new();
    let lengths: [u64; 13] = [
        0,
        125,
        126,
        127,
        65_535,
        65_536,
        69_999,
        70_000,
        70_001,
        i64::MAX as u64,
        1 << 63,
        u64::MAX - 4,
        u64::MAX,
    ];
    for first in [0x81u8, 0x82, 0x01, 0x89] {
        for &len in &lengths {
            for form in [126u8, 127] {
                if form == 126 && len > 0xffff {
                    continue;
                }
                let mut bytes = vec![first, 0x80 | form];
                if form == 126 {
                    bytes.extend_from_slice(&(len as u16).to_be_bytes());
                } else {
                    bytes.extend_from_slice(&len.to_be_bytes());
                }
                bytes.extend_from_slice(&[1, 2, 3, 4]);
                // The whole payload when it is small enough to send, else a little of it.
                let sent = usize::try_from(len).map_or(64, |n| n.min(80_000));
                bytes.extend((0..sent).map(|i| b'a' ^ [1, 2, 3, 4][i % 4]));
                if let Err(e) = compare(&bytes, &mut seed) {
                    failures.push(e.chars().take(300).collect::<String>());
                }
            }
        }
        for len in 0..=125u8 {
            let bytes = [
                vec![first, 0x80 | len, 9, 9, 9, 9],
                vec![b'x' ^ 9; usize::from(len)],
            ]
            .concat();
            if let Err(e) = compare(&bytes, &mut seed) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn they_agree_on_text_split_at_every_byte_between_fragments() {
    let mut seed = 11;
    let text = "aé€𝄞z".as_bytes();
    for cut in 0..=text.len() {
        for second in [0x80u8, 0x00] {
            let mut bytes = client_frame(0x01, &text[..cut]);
            bytes.extend(client_frame(0x89, b"between"));
            bytes.extend(client_frame(second, &text[cut..]));
            if second == 0x00 {
                bytes.extend(client_frame(0x80, b""));
            }
            compare(&bytes, &mut seed).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        }
        // And text that is broken at that byte.
        let mut broken = text.to_vec();
        broken[cut.min(text.len() - 1)] = 0xff;
        let bytes = [
            client_frame(0x01, &broken[..cut]),
            client_frame(0x80, &broken[cut..]),
        ]
        .concat();
        compare(&bytes, &mut seed).unwrap_or_else(|e| panic!("broken at {cut}: {e}"));
    }
}

#[test]
fn they_agree_on_close_payloads_of_every_length_and_code() {
    let mut seed = 13;
    let mut failures = Vec::new();
    for code in 0..=5100u16 {
        let bytes = client_frame(0x88, &code.to_be_bytes());
        if let Err(e) = compare(&bytes, &mut seed) {
            failures.push(e);
        }
    }
    for len in 0..=125usize {
        for valid in [true, false] {
            let mut payload = 1000u16.to_be_bytes().to_vec();
            payload.extend(std::iter::repeat_n(b'r', len.saturating_sub(2)));
            payload.truncate(len);
            if !valid && len > 2 {
                payload[len - 1] = 0xfe;
            }
            // After a fragment, too: a close may come between a message's frames.
            let bytes = [client_frame(0x01, b"half"), client_frame(0x88, &payload)].concat();
            if let Err(e) = compare(&bytes, &mut seed) {
                failures.push(e);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n")
    );
}
