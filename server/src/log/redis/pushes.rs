//! What the rooms' channels carry (`EPOCH` then a line per entry) and the notes of a room forgotten
//! (`forget ROOM EPOCH`) or deleted (`drop ROOM EPOCH`), as the append, forget and drop scripts
//! publish them, and what this node does with what the bus brings of them: each becomes the
//! sequencer's to put in order ([`event_of`]).

use app::protocol::Entry;

use super::{Event, Stored, keys::*};
use crate::bus::Heard;

/// What the bus brings on the rooms' channels (and of forgotten rooms), as the sequencer's event.
pub(super) fn event_of(heard: Heard<'_>) -> Option<Event> {
    Some(match heard {
        Heard::Resubscribed { channel: None } => Event::Resubscribed,
        Heard::Resubscribed {
            channel: Some(channel),
        } => Event::Refill {
            room: room_of_channel(channel)?.to_owned(),
        },
        Heard::Message { channel, payload } if channel == FORGOTTEN_CHANNEL => {
            let Some((note, room, epoch)) = room_note_of_push(payload) else {
                tracing::warn!("an unreadable note of a forgotten room was skipped");
                return None;
            };
            let (room, epoch) = (room.to_owned(), epoch.to_owned());
            match note {
                RoomNote::Forget => Event::Forgotten { room, epoch },
                RoomNote::Drop => Event::Dropped { room, epoch },
            }
        }
        Heard::Message { channel, payload } => {
            let room = room_of_channel(channel)?;
            let Some((epoch, entries)) = entries_of_push(room, payload) else {
                tracing::warn!(%room, "a push that cannot be read was skipped");
                return None;
            };
            Event::Pushed { epoch, entries }
        }
    })
}

/// What goes on a room's channel for stored messages, as the append script publishes it: the
/// room's epoch, then a [`push_line`] per message, each on its own line (JSON holds no raw newline).
pub(super) fn push_of(epoch: &str, lines: &[String]) -> String {
    let mut push = epoch.to_owned();
    for line in lines {
        push.push('\n');
        push.push_str(line);
    }
    push
}

/// One message of a push: `SEQ SENT_AT_MS JSON`.
pub(super) fn push_line(seq: u64, sent_at: impl std::fmt::Display, json: &str) -> String {
    format!("{seq} {sent_at} {json}")
}

/// What a note on [`FORGOTTEN_CHANNEL`] says of its room.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum RoomNote {
    /// `forget ROOM EPOCH`: the room never held an entry and is gone.
    Forget,
    /// `drop ROOM EPOCH`: an admin deleted the room and everything in it.
    Drop,
}

/// What a `forget ROOM EPOCH` or `drop ROOM EPOCH` note says, and of which room and epoch, if that
/// is what it is: a push of entries starts with its epoch and a line break, never with a word and
/// a space. The room must be a valid room name (an open room's, or a private room's or
/// conversation's id), the epoch letters and digits.
pub(super) fn room_note_of_push(payload: &[u8]) -> Option<(RoomNote, &str, &str)> {
    let (note, rest) = if let Some(rest) = payload.strip_prefix(b"forget ") {
        (RoomNote::Forget, rest)
    } else {
        (RoomNote::Drop, payload.strip_prefix(b"drop ")?)
    };
    let (room, epoch) = std::str::from_utf8(rest).ok()?.split_once(' ')?;
    let epoch_ok = !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_alphanumeric());
    (app::protocol::validate_room(room).is_ok() && epoch_ok).then_some((note, room, epoch))
}

/// The epoch and entries of a push on `room`'s channel; `None` if any of it cannot be read (or is
/// for another room).
pub(super) fn entries_of_push(room: &str, payload: &[u8]) -> Option<(String, Vec<Entry>)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut lines = text.split('\n');
    let epoch = lines.next()?.to_owned();
    let mut entries = Vec::new();
    for line in lines {
        let mut parts = line.splitn(3, ' ');
        let seq = parts.next()?.parse().ok()?;
        let sent_at = parts.next()?.parse().ok()?;
        let stored: Stored = serde_json::from_str(parts.next()?).ok()?;
        if stored.room != room {
            return None;
        }
        entries.push(stored.entry(seq, sent_at));
    }
    (!entries.is_empty()).then_some((epoch, entries))
}

#[cfg(test)]
mod tests {
    use super::{
        super::seq_of_id, RoomNote, entries_of_push, push_line, push_of, room_note_of_push,
    };
    use crate::log::redis::keys::room_of_channel;
    use app::protocol::Entry;

    #[test]
    fn a_room_note_names_its_room_and_epoch_and_is_never_a_message_push() {
        assert_eq!(
            room_note_of_push(b"forget design-team 0f3a9c2e11d4b7a8"),
            Some((RoomNote::Forget, "design-team", "0f3a9c2e11d4b7a8"))
        );
        assert_eq!(
            room_note_of_push(b"drop ~0123456789abcdef0123 e1"),
            Some((RoomNote::Drop, "~0123456789abcdef0123", "e1"))
        );
        assert_eq!(
            room_note_of_push(b"drop @0123456789abcdef0123 e1"),
            Some((RoomNote::Drop, "@0123456789abcdef0123", "e1"))
        );
        for not in [
            &b"forget "[..],
            b"forget e1",
            b"forget a b c",
            b"forget A e1",
            b"forget a e1\n1 2 {}",
            b"drop a e1\n1 2 {}",
            b"drop ~0123 e1",
            b"drop a e-1",
            b"drop  a e1",
            b"e1\n1 2 {}",
            b"forgot a e1",
            b"dropped a e1",
        ] {
            assert_eq!(
                room_note_of_push(not),
                None,
                "{:?}",
                String::from_utf8_lossy(not)
            );
        }
        assert!(entries_of_push("general", b"forget general 0f3a9c2e11d4b7a8").is_none());
        assert!(entries_of_push("general", b"drop general 0f3a9c2e11d4b7a8").is_none());
    }

    #[test]
    fn channels_pushes_and_ids_read_back() {
        assert_eq!(room_of_channel("herald:{general}:live"), Some("general"));
        assert_eq!(room_of_channel("herald:{general}:meta"), None);
        assert_eq!(seq_of_id("42-0"), Some(42));
        let json = |body: &str| {
            format!(
                r#"{{"room":"general","author":{{"id":"a","name":"Ann"}},"client_id":"c","body":"{body}"}}"#
            )
        };
        let push = push_of(
            "e1",
            &[
                push_line(7, 1_700_000_000_000_u64, &json("hi there")),
                push_line(8, 1_700_000_000_001_u64, &json("and \\n on")),
            ],
        );
        let (epoch, entries) = entries_of_push("general", push.as_bytes()).expect("a push");
        let read: Vec<(u64, u64, &str)> = entries
            .iter()
            .filter_map(|e| e.message())
            .map(|m| (m.seq, m.sent_at, m.body.as_str()))
            .collect();
        assert_eq!(epoch, "e1");
        assert_eq!(
            read,
            [
                (7, 1_700_000_000_000, "hi there"),
                (8, 1_700_000_000_001, "and \n on")
            ]
        );
        assert!(
            entries_of_push("other", push.as_bytes()).is_none(),
            "a push for another room's channel"
        );
        assert!(entries_of_push("general", b"e1\nx 1 {}").is_none());
        assert!(entries_of_push("general", b"e1").is_none(), "no message");
        // A type this build does not know (a newer node's) is read, and passed on whole.
        let newer = r#"{"room":"general","author":{"id":"a","name":"Ann"},"client_id":"c","body":"","type":"poll","fields":{"options":["x","y"]}}"#;
        let push = push_of("e1", &[push_line(9, 5_u64, newer)]);
        let (_, entries) = entries_of_push("general", push.as_bytes()).expect("a push");
        let [Entry::Other(other)] = &entries[..] else {
            panic!("{entries:?}")
        };
        assert_eq!((other.seq, other.entry_type.as_str()), (9, "poll"));
        let frame: serde_json::Value = serde_json::from_str(&other.frame).expect("json");
        assert_eq!(frame["type"], "poll");
        assert_eq!(frame["seq"], 9);
        assert_eq!(frame["options"][1], "y");
    }
}
