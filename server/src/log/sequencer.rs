//! Per-room order for a log shared by several nodes ([`Sequencer`]): entries reach a node from its
//! own appends' replies, from the bus (Redis pub/sub) and from reading the log to fill a hole, in any
//! order and some more than once; the sequencer hands each room's messages on exactly once, in seq
//! order with no hole, and answers each local append once its message has been handed on ("the
//! message before its ack", as on one node).
//!
//! A hole — seq 7 arrived, 6 has not — is filled by reading the log (the caller does that when
//! [`Sequencer::holes`] names the room); a seq the log no longer holds (retention trimmed it) is
//! skipped, since no one can read it any more.
//!
//! Only the rooms this node follows are tracked (the bus brings a node only those rooms'
//! channels). Following a room begins [`Sequencer::pend`]ing: from its subscription on, what
//! arrives is held until [`Sequencer::know`] says where the room stood then, read after the
//! subscription — so nothing falls between the two. An entry of a room not followed is not handed
//! on here, and a local append to one is answered as soon as Redis has it.
//!
//! Pure: no I/O, no clock of its own; the Redis backend drives it from one task.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use app::protocol::Entry;

/// How long a hole may stay before the log is read to fill it: a push overtaken by another node's
/// reply usually arrives within a millisecond or two.
pub const HOLE_PATIENCE: Duration = Duration::from_millis(200);

/// Most messages held behind a hole per room; past that the room is re-read from the log at the
/// next look for holes, without waiting out [`HOLE_PATIENCE`].
const HELD_MAX: usize = 1024;

/// What the sequencer decided, to be carried out in this order.
#[derive(Debug, PartialEq)]
pub enum Step<R> {
    /// The room is known from here on, in `epoch`, its history ending at `last_seq` (a room created,
    /// or first heard of, elsewhere; one whose history began again; or one whose skipped seqs were
    /// trimmed).
    Start {
        room: String,
        epoch: String,
        last_seq: u64,
    },
    /// Hand this message on (to the hub).
    Publish(Entry),
    /// The local append waiting on this seq may be answered.
    Answer(R, u64),
}

struct Track<R> {
    /// Being followed, where the room stands not known yet: what arrives is held (with the epoch
    /// it came in) until [`Sequencer::know`].
    pending: bool,
    epoch: String,
    /// The seq to hand on next.
    next: u64,
    /// Arrived ahead of `next`.
    held: BTreeMap<u64, Entry>,
    /// Local appends whose seq is not yet handed on.
    waiting: Vec<(u64, R)>,
    /// Since when `next` has been missing while later seqs wait.
    hole_since: Option<Instant>,
}

pub struct Sequencer<R> {
    rooms: HashMap<String, Track<R>>,
}

impl<R> Default for Sequencer<R> {
    fn default() -> Self {
        Self {
            rooms: HashMap::new(),
        }
    }
}

impl<R> Sequencer<R> {
    /// Room `room` is about to be followed: from now on what arrives of it is held, until
    /// [`Self::know`] says where it stood once subscribed. A room followed already is left as it is.
    pub fn pend(&mut self, room: &str) {
        self.rooms.entry(room.to_owned()).or_insert_with(|| Track {
            pending: true,
            epoch: String::new(),
            next: 1,
            held: BTreeMap::new(),
            waiting: Vec::new(),
            hole_since: None,
        });
    }

    /// Room `room` (in `epoch`) has stored up to `last_seq`: start it there if it is new here or
    /// pending, and hand on what was held after that. A room followed already is left as it is
    /// (anything it missed arrives, or shows as a hole).
    pub fn know(
        &mut self,
        room: &str,
        epoch: &str,
        last_seq: u64,
        now: Instant,
        steps: &mut Vec<Step<R>>,
    ) {
        let held = match self.rooms.get_mut(room) {
            Some(track) if !track.pending => return,
            // Held of another epoch (the history began again meanwhile) is of no use.
            Some(track) if track.epoch == epoch => std::mem::take(&mut track.held),
            _ => BTreeMap::new(),
        };
        self.start(room, epoch, last_seq, steps);
        if let Some(track) = self.rooms.get_mut(room) {
            track.held = held;
            Self::advance(track, now, steps);
        }
    }

    /// Room `room` is followed no more: nothing of it is handed on here, and its local appends
    /// still waiting are answered (Redis has them).
    pub fn unfollow(&mut self, room: &str, steps: &mut Vec<Step<R>>) {
        if let Some(track) = self.rooms.remove(room) {
            for (seq, reply) in track.waiting {
                steps.push(Step::Answer(reply, seq));
            }
        }
    }

    fn start(&mut self, room: &str, epoch: &str, last_seq: u64, steps: &mut Vec<Step<R>>) {
        let waiting = self
            .rooms
            .remove(room)
            .map(|track| track.waiting)
            .unwrap_or_default();
        self.rooms.insert(
            room.to_owned(),
            Track {
                pending: false,
                epoch: epoch.to_owned(),
                next: last_seq.saturating_add(1),
                held: BTreeMap::new(),
                waiting,
                hole_since: None,
            },
        );
        steps.push(Step::Start {
            room: room.to_owned(),
            epoch: epoch.to_owned(),
            last_seq,
        });
    }

    /// Room `room` of `epoch` was forgotten (it never held a message): known no more here. False
    /// (and nothing changes) if it is known in another epoch or holds anything: it began again
    /// meanwhile. True too for a room not known here at all.
    pub fn forget(&mut self, room: &str, epoch: &str) -> bool {
        let Some(track) = self.rooms.get(room) else {
            return true;
        };
        let unused = !track.pending
            && track.epoch == epoch
            && track.next == 1
            && track.held.is_empty()
            && track.waiting.is_empty();
        if unused {
            self.rooms.remove(room);
        }
        unused
    }

    /// A stored entry of `epoch`, from wherever it came. One of a room not followed here is
    /// dropped; one of a room being followed is held until it is known.
    pub fn offer(&mut self, epoch: &str, message: Entry, now: Instant, steps: &mut Vec<Step<R>>) {
        let room = message.room().to_owned();
        let Some(track) = self.rooms.get_mut(&room) else {
            return;
        };
        if track.pending {
            if track.epoch != epoch {
                track.held.clear();
                track.epoch = epoch.to_owned();
            }
            track.held.insert(message.seq(), message);
            return;
        }
        // The room's history was lost and began again (Redis wiped or restored): start over.
        if track.epoch != epoch {
            tracing::warn!(%room, "the room's epoch changed: its history starts over");
            self.start(&room, epoch, message.seq().saturating_sub(1), steps);
        }
        let Some(track) = self.rooms.get_mut(&room) else {
            return;
        };
        if message.seq() >= track.next {
            track.held.insert(message.seq(), message);
        }
        Self::advance(track, now, steps);
    }

    /// The local append waiting for `seq` of `room` is answered once that seq is handed on (at
    /// once if it has been).
    ///
    /// The log holds `seq`, so a seq at or past `next` that nothing here holds is a hole like any
    /// other: a resend answered as a duplicate of a message whose push this node never heard (its
    /// first store's answer timed out, and its push was lost with the connection) would otherwise
    /// wait for whatever next happened to fill the room.
    pub fn wait(&mut self, room: &str, seq: u64, reply: R, now: Instant, steps: &mut Vec<Step<R>>) {
        match self.rooms.get_mut(room) {
            Some(track) if track.pending => track.waiting.push((seq, reply)),
            Some(track) if seq >= track.next => {
                track.waiting.push((seq, reply));
                if track.hole_since.is_none() {
                    track.hole_since = Some(now);
                }
            }
            _ => steps.push(Step::Answer(reply, seq)),
        }
    }

    /// The log was read for room `room` from the seq that was `next` then: `messages` are what it
    /// holds from there, oldest first, and `oldest` the oldest seq it held just after. Seqs before
    /// `oldest` were trimmed and are skipped; anything else missing stays a hole (it may have been
    /// stored after the read).
    pub fn filled(
        &mut self,
        room: &str,
        from: u64,
        oldest: Option<u64>,
        messages: Vec<Entry>,
        now: Instant,
        steps: &mut Vec<Step<R>>,
    ) {
        let Some(track) = self.rooms.get_mut(room).filter(|track| !track.pending) else {
            return;
        };
        if track.next == from
            && let Some(oldest) = oldest
            && oldest > track.next
        {
            track.next = oldest;
            steps.push(Step::Start {
                room: room.to_owned(),
                epoch: track.epoch.clone(),
                last_seq: oldest - 1,
            });
        }
        for message in messages {
            if message.seq() >= track.next {
                track.held.insert(message.seq(), message);
            }
        }
        track.hole_since = None;
        Self::advance(track, now, steps);
    }

    /// Rooms whose hole has waited [`HOLE_PATIENCE`] (or holds too much): read the log for each
    /// from its `next`. Each is named once per hole, until it is filled.
    pub fn holes(&mut self, now: Instant) -> Vec<(String, u64)> {
        let mut due = Vec::new();
        for (room, track) in &mut self.rooms {
            let Some(since) = track.hole_since else {
                continue;
            };
            if now >= since + HOLE_PATIENCE || track.held.len() >= HELD_MAX {
                due.push((room.clone(), track.next));
                // Not named again until this read is in (`filled`) or the hole moves.
                track.hole_since = Some(now + Duration::from_secs(3600));
            }
        }
        due
    }

    /// The seq a followed room hands on next (not while it is pending).
    pub fn next_of(&self, room: &str) -> Option<u64> {
        self.rooms
            .get(room)
            .filter(|track| !track.pending)
            .map(|track| track.next)
    }

    /// Every followed room with its `next`, to read the log from after the bus may have lost
    /// pushes (a pending one reads where it stands after its subscription anyway).
    pub fn every_room(&self) -> Vec<(String, u64)> {
        self.rooms
            .iter()
            .filter(|(_, track)| !track.pending)
            .map(|(room, track)| (room.clone(), track.next))
            .collect()
    }

    fn advance(track: &mut Track<R>, now: Instant, steps: &mut Vec<Step<R>>) {
        let before = track.next;
        while let Some(message) = track.held.remove(&track.next) {
            track.next += 1;
            steps.push(Step::Publish(message));
        }
        // Anything below `next` that was held is a copy of what went out.
        let next = track.next;
        track.held.retain(|&seq, _| seq > next);
        // A hole: later seqs held, or a local append answered with a seq not handed on yet.
        let hole = !track.held.is_empty() || track.waiting.iter().any(|&(seq, _)| seq >= next);
        if track.next != before || !hole {
            track.hole_since = None;
        }
        if hole && track.hole_since.is_none() {
            track.hole_since = Some(now);
        }
        let mut i = 0;
        while i < track.waiting.len() {
            if track.waiting[i].0 < track.next {
                let (seq, reply) = track.waiting.swap_remove(i);
                steps.push(Step::Answer(reply, seq));
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use app::protocol::{ChatMessage, Entry, Identity, MessageKind};

    use super::{HOLE_PATIENCE, Sequencer, Step};

    fn message(room: &str, seq: u64) -> Entry {
        Entry::Message(ChatMessage {
            room: room.into(),
            seq,
            author: Identity {
                id: "a".into(),
                name: "Ann".into(),
            },
            client_id: format!("c{seq}"),
            body: format!("m{seq}"),
            sent_at: 0,
            kind: MessageKind::User,
            ..Default::default()
        })
    }

    fn published(steps: &[Step<u32>]) -> Vec<u64> {
        steps
            .iter()
            .filter_map(|step| match step {
                Step::Publish(m) => Some(m.seq()),
                _ => None,
            })
            .collect()
    }

    fn answered(steps: &[Step<u32>]) -> Vec<u32> {
        steps
            .iter()
            .filter_map(|step| match step {
                Step::Answer(reply, _) => Some(*reply),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn out_of_order_and_repeated_arrivals_go_out_once_in_order_and_acks_wait_for_their_message() {
        let now = Instant::now();
        let mut seq = Sequencer::<u32>::default();
        let mut steps = Vec::new();
        seq.know("r", "e", 4, now, &mut steps);
        assert_eq!(
            steps,
            vec![Step::Start {
                room: "r".into(),
                epoch: "e".into(),
                last_seq: 4
            }]
        );
        steps.clear();
        // This node's append got seq 7; 5 and 6 (other nodes') are still on the bus.
        seq.offer("e", message("r", 7), now, &mut steps);
        seq.wait("r", 7, 70, now, &mut steps);
        assert!(steps.is_empty(), "7 waits for 5 and 6, and so does its ack");
        seq.offer("e", message("r", 6), now, &mut steps);
        seq.offer("e", message("r", 5), now, &mut steps);
        seq.offer("e", message("r", 7), now, &mut steps); // Its push, after the reply.
        seq.offer("e", message("r", 3), now, &mut steps); // Long since handed on.
        assert_eq!(published(&steps), vec![5, 6, 7]);
        assert_eq!(answered(&steps), vec![70]);
        let ack_after_message = steps
            .iter()
            .position(|s| matches!(s, Step::Answer(..)))
            .expect("answered")
            > steps
                .iter()
                .position(|s| matches!(s, Step::Publish(m) if m.seq() == 7))
                .expect("published");
        assert!(ack_after_message);
        // A resend of 7 (a duplicate) is answered at once: its message went out.
        steps.clear();
        seq.wait("r", 7, 71, now, &mut steps);
        assert_eq!(answered(&steps), vec![71]);
        assert!(seq.holes(now + HOLE_PATIENCE).is_empty());
    }

    #[test]
    fn a_hole_that_stays_is_named_once_and_filled_from_the_log_skipping_what_it_trimmed() {
        let now = Instant::now();
        let mut seq = Sequencer::<u32>::default();
        let mut steps = Vec::new();
        seq.know("r", "e", 10, now, &mut steps);
        seq.offer("e", message("r", 14), now, &mut steps);
        assert!(
            seq.holes(now + Duration::from_millis(10)).is_empty(),
            "not yet"
        );
        let later = now + HOLE_PATIENCE;
        assert_eq!(seq.holes(later), vec![("r".to_string(), 11)]);
        assert!(seq.holes(later).is_empty(), "named once");
        // The log holds 12 and 13 (11 was trimmed meanwhile).
        steps.clear();
        let read = vec![message("r", 12), message("r", 13)];
        seq.filled("r", 11, Some(12), read, later, &mut steps);
        assert_eq!(
            steps[0],
            Step::Start {
                room: "r".into(),
                epoch: "e".into(),
                last_seq: 11
            }
        );
        assert_eq!(published(&steps), vec![12, 13, 14]);
        assert_eq!(seq.next_of("r"), Some(15));
    }

    #[test]
    fn a_resend_answered_with_a_seq_never_heard_is_a_hole_filled_from_the_log() {
        let now = Instant::now();
        let mut seq = Sequencer::<u32>::default();
        let mut steps = Vec::new();
        seq.know("r", "e", 1, now, &mut steps);
        steps.clear();
        // Seq 2 was stored, but its answer timed out and its push was lost: the resend is
        // answered as a duplicate of 2, with nothing to offer.
        seq.wait("r", 2, 20, now, &mut steps);
        assert!(steps.is_empty(), "its message has not gone out here yet");
        let later = now + HOLE_PATIENCE;
        assert_eq!(
            seq.holes(later),
            vec![("r".to_string(), 2)],
            "read from the log, not left waiting for the room's next message"
        );
        seq.filled("r", 2, Some(1), vec![message("r", 2)], later, &mut steps);
        assert_eq!((published(&steps), answered(&steps)), (vec![2], vec![20]));
        assert!(seq.holes(later + HOLE_PATIENCE).is_empty());
        // A read that does not hold it yet leaves the hole to be named again.
        steps.clear();
        seq.wait("r", 3, 30, later, &mut steps);
        assert_eq!(seq.holes(later + HOLE_PATIENCE), vec![("r".to_string(), 3)]);
        seq.filled("r", 3, Some(1), vec![], later + HOLE_PATIENCE, &mut steps);
        assert!(steps.is_empty());
        let again = later + HOLE_PATIENCE * 2;
        assert_eq!(seq.holes(again), vec![("r".to_string(), 3)]);
    }

    #[test]
    fn a_read_that_misses_what_was_stored_after_it_skips_nothing() {
        let now = Instant::now();
        let mut seq = Sequencer::<u32>::default();
        let mut steps = Vec::new();
        seq.know("r", "e", 4, now, &mut steps);
        // This node's reply for 6 came before the bus's push of 5; a read from 5 ran before
        // either was stored and found nothing, the log still holding seq 1 on.
        seq.offer("e", message("r", 6), now, &mut steps);
        seq.filled("r", 5, Some(1), Vec::new(), now, &mut steps);
        assert_eq!(seq.next_of("r"), Some(5), "5 is not given up");
        seq.offer("e", message("r", 5), now, &mut steps);
        assert_eq!(published(&steps), vec![5, 6]);
    }

    #[test]
    fn a_hole_from_the_start_is_read_and_an_epoch_change_starts_over() {
        let now = Instant::now();
        let mut seq = Sequencer::<u32>::default();
        let mut steps = Vec::new();
        seq.pend("new");
        seq.know("new", "e", 0, now, &mut steps);
        steps.clear();
        seq.offer("e", message("new", 3), now, &mut steps);
        assert!(published(&steps).is_empty(), "1 and 2 come first");
        assert_eq!(seq.holes(now + HOLE_PATIENCE), vec![("new".to_string(), 1)]);
        steps.clear();
        let read = (1..=3).map(|s| message("new", s)).collect();
        seq.filled("new", 1, Some(1), read, now, &mut steps);
        assert_eq!(published(&steps), vec![1, 2, 3]);

        steps.clear();
        seq.offer("other", message("new", 1), now, &mut steps);
        assert_eq!(
            steps[0],
            Step::Start {
                room: "new".into(),
                epoch: "other".into(),
                last_seq: 0
            }
        );
        assert_eq!(published(&steps), vec![1]);
    }

    #[test]
    fn a_room_followed_holds_what_arrives_until_known_then_hands_on_only_what_is_after() {
        let now = Instant::now();
        let mut seq = Sequencer::<u32>::default();
        let mut steps = Vec::new();
        // Not followed: nothing of it is handed on, and a local append is answered at once.
        seq.offer("e", message("r", 1), now, &mut steps);
        seq.wait("r", 1, 10, now, &mut steps);
        assert_eq!((published(&steps), answered(&steps)), (vec![], vec![10]));
        steps.clear();
        // Followed: subscribed, and 9 and 10 arrive before where the room stood is read (8).
        seq.pend("r");
        seq.offer("e", message("r", 10), now, &mut steps);
        seq.offer("e", message("r", 8), now, &mut steps);
        seq.offer("e", message("r", 9), now, &mut steps);
        seq.wait("r", 10, 11, now, &mut steps);
        assert!(steps.is_empty(), "held while pending");
        assert_eq!(seq.next_of("r"), None);
        assert!(seq.every_room().is_empty(), "nothing to fill while pending");
        seq.know("r", "e", 8, now, &mut steps);
        assert_eq!(
            published(&steps),
            vec![9, 10],
            "8 was in the read: not twice"
        );
        assert_eq!(answered(&steps), vec![11]);
        steps.clear();
        // Known again (another join): left as it is.
        seq.pend("r");
        seq.know("r", "e", 5, now, &mut steps);
        assert!(steps.is_empty());
        assert_eq!(seq.next_of("r"), Some(11));
        // Let go: an append waiting for it is answered, and what arrives after is dropped.
        seq.offer("e", message("r", 12), now, &mut steps);
        seq.wait("r", 12, 12, now, &mut steps);
        seq.unfollow("r", &mut steps);
        assert_eq!(answered(&steps), vec![12]);
        steps.clear();
        seq.offer("e", message("r", 11), now, &mut steps);
        assert!(steps.is_empty() && seq.next_of("r").is_none());
        // Held of an epoch the room no longer has is dropped when it is known.
        seq.pend("r");
        seq.offer("old", message("r", 3), now, &mut steps);
        seq.know("r", "new", 2, now, &mut steps);
        assert!(published(&steps).is_empty());
        assert_eq!(seq.next_of("r"), Some(3));
    }
}
