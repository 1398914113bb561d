//! [`Frame`]: one server frame, encoded once and shared by everyone it goes to, whatever their
//! transport — the JSON text with the WebSocket header in front of it (RFC 6455 §5.2; a server's
//! frames are not masked), and what a transport needs to know of it without parsing it ([`Kind`]: an
//! entry's seq and event name). A WebSocket writer hands the very same bytes to the kernel for every
//! subscriber; a Server-Sent Events stream writes the JSON part under its `id:` and `event:`.
//!
//! The header lives in the same allocation as the JSON, just before it, rather than as a slice of
//! its own: one I/O vector per frame, so one `writev` carries twice as many frames.

use app::protocol::{Entry, MessageKind, ServerMsg};
use bytes::{BufMut, Bytes, BytesMut};

/// WebSocket opcodes the server sends.
pub(crate) mod opcode {
    pub const TEXT: u8 = 0x1;
    pub const CLOSE: u8 = 0x8;
    pub const PONG: u8 = 0xA;
}

/// What a frame is, for transports that do not speak WebSocket frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A room's entry at `seq`; `event` names it for an event stream: `message`, `announcement`,
    /// `edit`, `delete`, `react`, or `entry` for a type unknown here.
    Entry {
        seq: u64,
        event: &'static str,
    },
    Joined,
    Presence,
    /// Anything else (typing, the room list, replies, control frames).
    Other,
}

/// An encoded server frame, cheap to clone: the bytes are reference-counted, never copied per reader.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Header then payload, exactly as they go on the wire.
    wire: Bytes,
    /// Where the payload starts in `wire`.
    header: u8,
    kind: Kind,
}

impl Frame {
    /// A final frame with `opcode` carrying `payload`.
    pub(crate) fn new(opcode: u8, payload: &[u8]) -> Self {
        let len = payload.len();
        let mut wire = BytesMut::with_capacity(len + 10);
        wire.put_u8(0x80 | opcode); // FIN: the server never fragments.
        if len < 126 {
            wire.put_u8(len as u8);
        } else if let Ok(len) = u16::try_from(len) {
            wire.put_u8(126);
            wire.put_u16(len);
        } else {
            wire.put_u8(127);
            wire.put_u64(len as u64);
        }
        let header = wire.len() as u8;
        wire.put_slice(payload);
        Self {
            wire: wire.freeze(),
            header,
            kind: Kind::Other,
        }
    }

    /// `msg`, encoded once, knowing what it is.
    pub fn of(msg: &ServerMsg) -> Self {
        let kind = match msg {
            ServerMsg::Message(message) => Kind::Entry {
                seq: message.seq,
                event: if message.kind == MessageKind::Announcement {
                    "announcement"
                } else {
                    "message"
                },
            },
            ServerMsg::Change(change) => Kind::Entry {
                seq: change.seq,
                event: change.change.entry_type().as_str(),
            },
            ServerMsg::Joined { .. } => Kind::Joined,
            ServerMsg::Presence { .. } => Kind::Presence,
            _ => Kind::Other,
        };
        Self {
            kind,
            ..Self::text(&msg.encode())
        }
    }

    /// The frame of a room's entry: a type this build does not know goes as it was stored.
    pub fn of_entry(entry: &Entry) -> Self {
        match entry {
            Entry::Message(message) => Self::of(&ServerMsg::Message(message.clone())),
            Entry::Change(change) => Self {
                kind: Kind::Entry {
                    seq: change.seq,
                    event: change.change.entry_type().as_str(),
                },
                ..Self::text(&change.encode())
            },
            Entry::Other(other) => Self {
                kind: Kind::Entry {
                    seq: other.seq,
                    event: "entry",
                },
                ..Self::text(&other.frame)
            },
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// A text frame: what every Herald message is.
    pub fn text(json: &str) -> Self {
        Self::new(opcode::TEXT, json.as_bytes())
    }

    /// A close frame with `code` and a short `reason` (at most 123 bytes are kept: control frames
    /// carry at most 125).
    pub(crate) fn close(code: u16, reason: &str) -> Self {
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut payload = Vec::with_capacity(2 + end);
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(&reason.as_bytes()[..end]);
        Self::new(opcode::CLOSE, &payload)
    }

    /// The bytes to write: header and payload.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// The payload as text (empty for a frame that is not text).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.wire[usize::from(self.header)..]).unwrap_or_default()
    }

    /// Bytes on the wire: what a queue holding it is charged.
    pub fn len(&self) -> usize {
        self.wire.len()
    }

    pub fn is_empty(&self) -> bool {
        self.wire.is_empty()
    }
}

impl From<String> for Frame {
    fn from(json: String) -> Self {
        Self::text(&json)
    }
}

impl From<&str> for Frame {
    fn from(json: &str) -> Self {
        Self::text(json)
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Frame").field(&self.as_str()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_uses_the_shortest_length_form() {
        for (len, header) in [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            let frame = Frame::text(&"x".repeat(len));
            assert_eq!(frame.len(), len + header, "{len}");
            assert_eq!(frame.wire()[0], 0x81, "final text frame");
            assert_eq!(frame.as_str().len(), len);
        }
        let frame = Frame::text(&"y".repeat(300));
        assert_eq!(&frame.wire()[1..4], &[126, 1, 44]);
    }

    #[test]
    fn a_close_frame_carries_its_code_and_a_reason_cut_to_fit() {
        let frame = Frame::close(1009, &"é".repeat(100));
        assert_eq!(frame.wire()[0], 0x88);
        assert!(frame.len() <= 2 + 125);
        assert_eq!(&frame.wire()[2..4], &1009u16.to_be_bytes());
    }
}
