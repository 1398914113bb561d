//! A room's newest published entries, as the frames the hub already encoded for them ([`Recent`]).
//! A join whose replay starts among them takes them from here — no read from the log, no encoding —
//! which is what a crowd reconnecting at once after a blip needs: each missed only the last few
//! messages, and all of them the same ones.
//!
//! Only a cache: the log stays the record, and a replay that starts before the oldest frame kept
//! here is read from it as before.

use std::{collections::VecDeque, time::Duration};

use crate::frame::{Frame, Kind};

/// Most messages a room keeps encoded: more than a join without a cursor shows
/// (`HISTORY_ON_JOIN`), and more than a short disconnection misses in a busy room.
pub const RECENT_FRAMES: usize = 128;

/// Most bytes a room keeps encoded: with long messages, fewer than [`RECENT_FRAMES`].
pub const RECENT_BYTES: usize = 64 * 1024;

/// How long a room no one is in keeps its frames: long enough for everyone to come back after a
/// server-side blip or a network change, not so long that every room ever used holds memory.
pub const RECENT_KEEP: Duration = Duration::from_secs(60);

/// The newest messages of one room, oldest first, with seqs dense up to the room's last.
#[derive(Default)]
pub(super) struct Recent {
    frames: VecDeque<Frame>,
    bytes: usize,
}

fn seq_of(frame: &Frame) -> u64 {
    match frame.kind() {
        Kind::Entry { seq, .. } => seq,
        _ => 0,
    }
}

impl Recent {
    /// Keeps the frame of message `seq`, the room's newest; the oldest go past either bound. A seq
    /// that does not follow the last kept starts afresh, so what is kept never has a hole.
    pub(super) fn push(&mut self, seq: u64, frame: &Frame) {
        if self
            .frames
            .back()
            .is_some_and(|last| seq_of(last) + 1 != seq)
        {
            self.clear();
        }
        self.bytes += frame.len();
        self.frames.push_back(frame.clone());
        while self.frames.len() > RECENT_FRAMES
            || (self.bytes > RECENT_BYTES && self.frames.len() > 1)
        {
            if let Some(old) = self.frames.pop_front() {
                self.bytes -= old.len();
            }
        }
    }

    /// The frames of seqs `from..=last` (`last` is the room's newest published seq), if every one
    /// of them is kept; none when `from > last`.
    pub(super) fn since(&self, from: u64, last: u64) -> Option<Vec<Frame>> {
        if from > last {
            return Some(Vec::new());
        }
        let newest = self.frames.back().map(seq_of)?;
        let oldest = self.frames.front().map(seq_of)?;
        if newest != last || from < oldest {
            return None;
        }
        let skip = usize::try_from(from - oldest).ok()?;
        Some(self.frames.iter().skip(skip).cloned().collect())
    }

    pub(super) fn clear(&mut self) {
        self.frames = VecDeque::new();
        self.bytes = 0;
    }

    pub(super) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use app::protocol::{ChatMessage, Identity, MessageKind, ServerMsg};

    use super::{RECENT_BYTES, RECENT_FRAMES, Recent, seq_of};
    use crate::frame::Frame;

    fn message(seq: u64, body: &str) -> Frame {
        Frame::of(&ServerMsg::Message(ChatMessage {
            room: "r".into(),
            seq,
            author: Identity {
                id: "a".into(),
                name: "Ann".into(),
            },
            client_id: format!("c{seq}"),
            body: body.into(),
            sent_at: 0,
            kind: MessageKind::User,
            ..Default::default()
        }))
    }

    fn seqs(frames: &[Frame]) -> Vec<u64> {
        frames.iter().map(seq_of).collect()
    }

    #[test]
    fn what_is_kept_is_the_newest_without_a_hole() {
        let mut recent = Recent::default();
        assert_eq!(recent.since(1, 0).map(|f| f.len()), Some(0));
        assert!(recent.since(1, 1).is_none(), "nothing kept yet");
        for seq in 1..=RECENT_FRAMES as u64 + 10 {
            recent.push(seq, &message(seq, "hi"));
        }
        let last = RECENT_FRAMES as u64 + 10;
        assert_eq!(
            seqs(&recent.since(last - 2, last).expect("kept")),
            vec![last - 2, last - 1, last]
        );
        assert_eq!(recent.since(11, last).expect("kept").len(), RECENT_FRAMES);
        assert!(recent.since(10, last).is_none(), "dropped as too old");
        assert!(
            recent.since(last, last + 1).is_none(),
            "not the room's newest"
        );
        // A seq that does not follow: what was kept cannot continue it.
        recent.push(last + 5, &message(last + 5, "hi"));
        assert!(recent.since(last, last + 5).is_none());
        assert_eq!(
            seqs(&recent.since(last + 5, last + 5).expect("kept")),
            vec![last + 5]
        );
    }

    #[test]
    fn long_messages_are_kept_within_the_byte_bound() {
        let mut recent = Recent::default();
        let body = "x".repeat(10_000);
        for seq in 1..=20 {
            recent.push(seq, &message(seq, &body));
        }
        let kept = recent.frames.len();
        assert!(kept < 20 && kept > 1, "{kept}");
        assert!(recent.bytes <= RECENT_BYTES);
        assert_eq!(
            recent.since(21 - kept as u64, 20).map(|f| f.len()),
            Some(kept)
        );
        // One message over the bound on its own is still kept: it is the newest.
        recent.push(21, &message(21, &"y".repeat(RECENT_BYTES)));
        assert_eq!(seqs(&recent.since(21, 21).expect("kept")), vec![21]);
    }
}
