//! Where a room lives in Redis: its keys and channel (each with the room as a hash tag, so a room is
//! one slot of a Redis Cluster), and the keys that are no room's.

/// The prefix of every key and channel.
pub(super) const PREFIX: &str = "herald";

/// Every room's name.
pub(super) const ROOMS_KEY: &str = "herald:rooms";

/// An ordinary channel every node listens to: `forget ROOM EPOCH` when a room that never held an
/// entry is deleted (rare), `drop ROOM EPOCH` when an admin deletes one, so that every node forgets
/// it, following it or not.
pub(super) const FORGOTTEN_CHANNEL: &str = "herald:forgotten";

pub(super) fn meta_key(room: &str) -> String {
    format!("{PREFIX}:{{{room}}}:meta")
}

pub(super) fn log_key(room: &str) -> String {
    format!("{PREFIX}:{{{room}}}:log")
}

pub(super) fn once_key(room: &str) -> String {
    format!("{PREFIX}:{{{room}}}:once")
}

/// What changes made of each changed message (sorted by the message's seq).
pub(super) fn state_key(room: &str) -> String {
    format!("{PREFIX}:{{{room}}}:state")
}

/// Each entry's JSON, by seq: its words, apart from the stream, so that a deletion can take them
/// back (what XDEL removes from a stream stays in its memory).
pub(super) fn text_key(room: &str) -> String {
    format!("{PREFIX}:{{{room}}}:text")
}

pub(super) fn live_channel(room: &str) -> String {
    format!("{PREFIX}:{{{room}}}:live")
}

/// The room a channel is for.
pub(super) fn room_of_channel(channel: &str) -> Option<&str> {
    channel.strip_prefix("herald:{")?.strip_suffix("}:live")
}
