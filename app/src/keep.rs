//! What a person wrote and the server does not have yet — each room's draft and its unacknowledged
//! messages — kept in the browser's `localStorage`, so a reload, a closed tab or a browser restart
//! loses none of it. Restored once the page is hydrated (restoring earlier would make the page differ
//! from the server's), and re-sent after the next `welcome` with the same `client_id`s: the server's
//! dedupe stores each once. Keyed by the user's id as well as the room, so another person signing in
//! in this browser never sends someone else's words.

use serde::{Deserialize, Serialize};

/// A message, edit, deletion or reaction sent and not yet acknowledged: what a room shows as
/// "sending…" (or already applied to its message) and what is kept of it here. Defined with what
/// keeps it, so the kept format and the page's state import one way (state → keep). A message's
/// is as before changes existed (`op` and the rest absent), so what older pages kept reads alike.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub client_id: String,
    /// A message's or an edit's text; a reaction's emoji.
    pub body: String,
    #[serde(default, skip_serializing_if = "Op::is_send")]
    pub op: Op,
    /// The message it changes (or, for a message, answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u64>,
}

/// What a [`Pending`] does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    #[default]
    Send,
    Edit,
    Delete,
    React,
    Unreact,
}

impl Op {
    fn is_send(&self) -> bool {
        *self == Op::Send
    }
}

/// What is kept for one room.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub draft: String,
    pub unacknowledged: Vec<Pending>,
}

impl Kept {
    /// Nothing to keep: the room's key is removed rather than written.
    pub fn is_empty(&self) -> bool {
        self.draft.is_empty() && self.unacknowledged.is_empty()
    }
}

/// The storage key of `room` for user `user_id` (versioned: a later format takes a new key).
pub fn key(user_id: &str, room: &str) -> String {
    format!("herald:v1:{user_id}:{room}")
}

#[cfg(feature = "hydrate")]
fn storage() -> Option<web_sys::Storage> {
    // Unavailable in some private modes, or refused: then nothing is kept, and nothing breaks.
    leptos::prelude::window().local_storage().ok().flatten()
}

/// What was kept for `room`, if anything (and it can still be read).
pub fn load(user_id: &str, room: &str) -> Kept {
    #[cfg(feature = "hydrate")]
    {
        storage()
            .and_then(|s| s.get_item(&key(user_id, room)).ok().flatten())
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (user_id, room);
        Kept::default()
    }
}

/// Keeps `kept` for `room` (forgets the room when there is nothing to keep).
pub fn save(user_id: &str, room: &str, kept: &Kept) {
    #[cfg(feature = "hydrate")]
    {
        let Some(storage) = storage() else {
            return;
        };
        let key = key(user_id, room);
        let _ = if kept.is_empty() {
            storage.remove_item(&key)
        } else {
            match serde_json::to_string(kept) {
                // A full storage refuses the write; the page still has it in memory.
                Ok(json) => storage.set_item(&key, &json),
                Err(_) => Ok(()),
            }
        };
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (user_id, room, kept);
    }
}
