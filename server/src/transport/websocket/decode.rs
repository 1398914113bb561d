//! Reading a client's frames (RFC 6455 §5): bytes in, whole messages and control frames out, and
//! every violation refused with the close code the RFC asks for. Sans-IO, so it can be tested, fuzzed
//! (`fuzz/`) and compared with another implementation (`differential.rs`) on bytes alone.
//!
//! The frame header is parsed by tungstenite's public, sans-IO `FrameHeader::parse` (a well-kept
//! parser; Herald's own copy of it is what once panicked). What no crate offers is kept here: the
//! state machine that reassembles fragments over Herald's own read buffer, refuses a message over the
//! limit from its header alone (before any of it is buffered), and holds nothing between frames.
//!
//! Every length from the wire is a `u64` until it is checked against the limit; only then does it
//! become a `usize` offset, and every addition on it is checked.

use std::io::Cursor;

use tungstenite::protocol::frame::{
    FrameHeader,
    coding::{Control, Data, OpCode},
};

/// Close codes for a peer that broke the protocol itself (RFC 6455 §7.4.1), from the one list of
/// close codes (`app::protocol::Disconnect`).
pub mod violation_code {
    use app::protocol::Disconnect;
    /// The peer broke the framing rules.
    pub const PROTOCOL_ERROR: u16 = Disconnect::ProtocolError.code();
    /// A text message (or a close reason) that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = Disconnect::InvalidPayload.code();
}

/// Most bytes a control frame may carry (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// What the client sent: one whole message or a control frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    /// A binary message (Herald speaks text only), by length.
    Binary(usize),
    Ping(Vec<u8>),
    /// The client is closing, with its status code if it gave one (always one that may be sent).
    Close(Option<u16>),
    /// A message larger than the limit: its bytes are skipped, not kept; the connection should close
    /// with 1009.
    TooBig,
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

fn invalid_payload(reason: &'static str) -> Violation {
    Violation {
        code: violation_code::INVALID_PAYLOAD,
        reason,
    }
}

/// Whether a peer may put `code` in a close frame (RFC 6455 §7.4 and the IANA registry): 1004–1006
/// and 1015 only ever describe a close locally, 1016–2999 are reserved, below 1000 is unused.
pub fn may_be_sent(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A fragmented message being put together.
struct Partial {
    text: bool,
    payload: Vec<u8>,
    /// How much of a text payload is known to be UTF-8: each fragment is checked as it arrives (a
    /// character may still be split across fragments), so a bad one is refused at once.
    checked: usize,
}

impl Partial {
    fn check_utf8(&mut self) -> Result<(), Violation> {
        if !self.text {
            return Ok(());
        }
        match std::str::from_utf8(&self.payload[self.checked..]) {
            Ok(_) => self.checked = self.payload.len(),
            // Only the end is unfinished: it may be completed by the next fragment.
            Err(e) if e.error_len().is_none() => self.checked += e.valid_up_to(),
            Err(_) => return Err(invalid_payload("text must be UTF-8")),
        }
        Ok(())
    }
}

/// Reassembles the client's frames into [`Incoming`] messages.
#[derive(Default)]
pub struct Decoder {
    /// Bytes read but not yet decoded: only ever part of one frame (and what followed it in the same
    /// read). Empty, without an allocation, between frames.
    input: Vec<u8>,
    /// A fragmented message being put together.
    partial: Option<Partial>,
    /// Bytes of an oversized frame still to be skipped as they arrive.
    skip: u64,
    /// A fragmented message was refused as too big before its last fragment: the continuation
    /// frames still to come are skipped the same way, up to and including the final one.
    discarding: bool,
}

impl Decoder {
    /// Adds bytes read from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// Bytes held: read and not yet decoded, plus a fragmented message so far. For the tests and
    /// the fuzz targets (`fuzz/`, which include this file) to check the bound.
    #[allow(dead_code)]
    pub fn held(&self) -> usize {
        self.input.len() + self.partial.as_ref().map_or(0, |p| p.payload.len())
    }

    /// The next whole message or control frame in what was read, if there is one. After an `Err`
    /// the connection is to be closed: the decoder is not used again.
    pub fn next(&mut self, max_message: usize) -> Result<Option<Incoming>, Violation> {
        loop {
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(self.input.len());
                self.consume(n);
                self.skip -= n as u64; // n <= skip
                if self.skip > 0 {
                    return Ok(None);
                }
            }
            let mut cursor = Cursor::new(&self.input[..]);
            let (header, len) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return Ok(None), // The header is still to come.
                Err(_) => return Err(protocol_error("unknown opcode")),
            };
            // At most 14: the header's own bytes.
            let at = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return Err(protocol_error("reserved bits set"));
            }
            let Some(mask) = header.mask else {
                return Err(protocol_error("client frames must be masked"));
            };
            if len > i64::MAX as u64 {
                return Err(protocol_error(
                    "a 64-bit length must have its top bit clear",
                ));
            }
            let fin = header.is_final;
            match header.opcode {
                OpCode::Control(_) if !fin || len > MAX_CONTROL_PAYLOAD => {
                    return Err(protocol_error("control frames are short and whole"));
                }
                OpCode::Control(_) => {}
                OpCode::Data(Data::Continue) if self.discarding => {
                    // More of a message already reported as too big.
                    self.consume(at);
                    self.skip = len;
                    self.discarding = !fin;
                    continue;
                }
                OpCode::Data(Data::Continue) if self.partial.is_none() => {
                    return Err(protocol_error("continuation of nothing"));
                }
                OpCode::Data(Data::Text | Data::Binary)
                    if self.partial.is_some() || self.discarding =>
                {
                    return Err(protocol_error("message inside a message"));
                }
                OpCode::Data(_) => {
                    let so_far = self.partial.as_ref().map_or(0, |p| p.payload.len() as u64);
                    if so_far
                        .checked_add(len)
                        .is_none_or(|n| n > max_message as u64)
                    {
                        // Skipped as it arrives rather than buffered: the size alone decides.
                        self.consume(at);
                        self.skip = len;
                        self.partial = None;
                        self.discarding = !fin;
                        return Ok(Some(Incoming::TooBig));
                    }
                }
            }
            // Within the limit (or 125 for a control frame), so it fits a usize.
            let end = usize::try_from(len)
                .ok()
                .and_then(|len| at.checked_add(len))
                .ok_or_else(|| protocol_error("frame too long"))?;
            if self.input.len() < end {
                // Not reserved ahead from the claimed length: the buffer grows only with what
                // actually arrives.
                return Ok(None);
            }
            let mut payload = self.input[at..end].to_vec();
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
            self.consume(end);
            let whole = match header.opcode {
                OpCode::Control(Control::Close) => return close(&payload).map(Some),
                OpCode::Control(Control::Ping) => return Ok(Some(Incoming::Ping(payload))),
                OpCode::Control(Control::Pong) => continue,
                OpCode::Data(Data::Continue) => {
                    let Some(mut partial) = self.partial.take() else {
                        return Err(protocol_error("continuation of nothing"));
                    };
                    partial.payload.extend_from_slice(&payload);
                    partial.check_utf8()?;
                    if !fin {
                        self.partial = Some(partial);
                        continue;
                    }
                    partial
                }
                OpCode::Data(kind @ (Data::Text | Data::Binary)) => {
                    let mut partial = Partial {
                        text: kind == Data::Text,
                        payload,
                        checked: 0,
                    };
                    if !fin {
                        partial.check_utf8()?;
                        self.partial = Some(partial);
                        continue;
                    }
                    partial
                }
                // FrameHeader::parse refuses reserved opcodes; should it ever not, so does this.
                OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                    return Err(protocol_error("unknown opcode"));
                }
            };
            return if whole.text {
                String::from_utf8(whole.payload)
                    .map(|text| Some(Incoming::Text(text)))
                    .map_err(|_| invalid_payload("text must be UTF-8"))
            } else {
                Ok(Some(Incoming::Binary(whole.payload.len())))
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

/// A close frame's payload (RFC 6455 §5.5.1): empty, or a code that may be sent and a UTF-8 reason.
fn close(payload: &[u8]) -> Result<Incoming, Violation> {
    match payload {
        [] => Ok(Incoming::Close(None)),
        [_] => Err(protocol_error(
            "a close payload starts with a two-byte code",
        )),
        [high, low, reason @ ..] => {
            std::str::from_utf8(reason).map_err(|_| invalid_payload("a close reason is UTF-8"))?;
            let code = u16::from_be_bytes([*high, *low]);
            if !may_be_sent(code) {
                return Err(protocol_error("that close code may not be sent"));
            }
            Ok(Incoming::Close(Some(code)))
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A client frame: masked, as browsers send them, with its length in the shortest form.
    pub fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        client_frame_with(first, payload, [0x37, 0xfa, 0x21, 0x3d])
    }

    pub fn client_frame_with(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
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
            decoder.feed(&[*b]);
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

    fn last_code(got: &[Result<Incoming, Violation>]) -> Option<u16> {
        match got.last() {
            Some(Err(v)) => Some(v.code),
            _ => None,
        }
    }

    #[test]
    fn masked_frames_of_every_length_form_decode_even_split_byte_by_byte() {
        for len in [0, 5, 125, 126, 300, 65_535, 65_536, 70_000] {
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
        decoder.feed(&bytes[..100]);
        assert_eq!(decoder.next(1000), Ok(Some(Incoming::TooBig)));
        assert!(
            decoder.input.capacity() < 1000,
            "the payload is not buffered"
        );
        decoder.feed(&bytes[100..]);
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

    /// The report's two frames: 10 bytes of a fragmented text, then a continuation claiming
    /// 2^64 − 5 bytes. The running size overflowed (a panic in debug builds, a slice out of range in
    /// release builds); now it is a message over the limit, refused from its header.
    #[test]
    fn a_continuation_claiming_nearly_two_to_the_64_bytes_is_refused_not_a_panic() {
        let mut bytes = client_frame(0x01, b"0123456789");
        bytes.extend([0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb]);
        bytes.extend([1, 2, 3, 4]);
        bytes.extend([0; 32]);
        // The top bit is set: a protocol error, whatever the limit.
        assert_eq!(last_code(&decode_all(&bytes, 1 << 20)), Some(1002));
        // Without the top bit (2^63 − 5), it is merely far over the limit: 1009, nothing buffered.
        bytes[18] = 0x7f;
        let mut decoder = Decoder::default();
        decoder.feed(&bytes);
        assert_eq!(decoder.next(1 << 20), Ok(Some(Incoming::TooBig)));
        assert_eq!(decoder.next(1 << 20), Ok(None));
        assert_eq!(
            decoder.held(),
            0,
            "the claimed payload is skipped as it comes"
        );
        // Under a limit as large as can be, it is waited for; nothing is set aside for it.
        let mut decoder = Decoder::default();
        decoder.feed(&bytes);
        assert_eq!(decoder.next(usize::MAX), Ok(None));
        assert!(decoder.input.capacity() < 1024);
    }

    #[test]
    fn close_frames_are_checked_before_they_are_answered() {
        let close = |payload: &[u8]| decode_all(&client_frame(0x88, payload), 1024);
        assert_eq!(close(&[]), vec![Ok(Incoming::Close(None))]);
        for code in [
            1000u16, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 3999, 4000, 4999,
        ] {
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice("bye, ünd".as_bytes());
            assert_eq!(
                close(&payload),
                vec![Ok(Incoming::Close(Some(code)))],
                "{code}"
            );
        }
        assert_eq!(last_code(&close(&[0x03])), Some(1002), "one byte");
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ] {
            assert_eq!(last_code(&close(&code.to_be_bytes())), Some(1002), "{code}");
        }
        let mut bad_reason = 1000u16.to_be_bytes().to_vec();
        bad_reason.extend_from_slice(&[0xce, 0xba, 0xff]);
        assert_eq!(last_code(&close(&bad_reason)), Some(1007));
    }

    #[test]
    fn invalid_utf8_in_a_fragment_is_refused_before_the_message_ends() {
        // A character split across fragments is fine.
        let euro = "€".as_bytes();
        let bytes = [
            client_frame(0x01, &euro[..1]),
            client_frame(0x00, &euro[1..2]),
            client_frame(0x80, &euro[2..]),
        ]
        .concat();
        assert_eq!(
            decode_all(&bytes, 1024),
            vec![Ok(Incoming::Text("€".into()))]
        );
        // A byte that can never be UTF-8 ends it at that fragment, with no final fragment needed.
        let bytes = [client_frame(0x01, b"ok"), client_frame(0x00, &[0xc0, 0x80])].concat();
        assert_eq!(last_code(&decode_all(&bytes, 1024)), Some(1007));
        // A message that ends mid-character is not UTF-8 either.
        let bytes = [client_frame(0x01, b"ok"), client_frame(0x80, &euro[..2])].concat();
        assert_eq!(last_code(&decode_all(&bytes, 1024)), Some(1007));
        // Binary messages are not text.
        let bytes = [client_frame(0x02, &[0xff]), client_frame(0x80, &[0xfe])].concat();
        assert_eq!(decode_all(&bytes, 1024), vec![Ok(Incoming::Binary(2))]);
    }

    /// A tiny xorshift generator: the same "random" bytes on every run, no dependency.
    pub fn noise(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn no_input_makes_the_decoder_panic_or_buffer_past_its_limit() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for round in 0..4000 {
            // A third plain noise; the rest real frames with a byte or two flipped, which get further
            // in, some of them with 64-bit lengths.
            let mut bytes = Vec::new();
            if round % 3 == 0 {
                bytes.extend((0..noise(&mut seed) % 300).map(|_| noise(&mut seed) as u8));
            } else {
                for _ in 0..noise(&mut seed) % 6 {
                    let first = [0x01, 0x00, 0x80, 0x81, 0x82, 0x88, 0x89, 0x8a]
                        [(noise(&mut seed) % 8) as usize];
                    let len = match noise(&mut seed) % 4 {
                        0 => 65_536 + (noise(&mut seed) % 300) as usize,
                        _ => (noise(&mut seed) % 200) as usize,
                    };
                    bytes.extend(client_frame(first, &vec![b'y'; len]));
                }
                for _ in 0..noise(&mut seed) % 3 {
                    if !bytes.is_empty() {
                        let at = (noise(&mut seed) % bytes.len().min(40) as u64) as usize;
                        bytes[at] ^= noise(&mut seed) as u8;
                    }
                }
            }
            let mut decoder = Decoder::default();
            let mut rest = &bytes[..];
            'feed: while !rest.is_empty() {
                let n = (1 + noise(&mut seed) % 4096).min(rest.len() as u64) as usize;
                decoder.feed(&rest[..n]);
                rest = &rest[n..];
                loop {
                    match decoder.next(256) {
                        Ok(Some(Incoming::Text(text))) => assert!(text.len() <= 256),
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed, // The connection is closed here.
                    }
                }
                let held = decoder.partial.as_ref().map_or(0, |p| p.payload.len());
                assert!(held <= 256, "round {round}: {held} bytes of a message held");
                assert!(
                    decoder.input.len() <= 256 + 14 + 4096,
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
        let unknown_control = client_frame(0x8B, b"");
        for bytes in [
            unmasked,
            reserved,
            long_ping,
            split_ping,
            orphan,
            nested,
            unknown,
            unknown_control,
        ] {
            let got = decode_all(&bytes, 1024);
            assert_eq!(last_code(&got), Some(1002), "{bytes:?}: {got:?}");
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
