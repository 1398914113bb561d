//! Rooms as the people store knows them: what kind each is, who made it, what it is about, whether
//! it is archived, who its members are, and which rooms each person hid from their list. The log
//! holds a room's messages; this holds who may read them (docs/ACCOUNTS.md, "Rooms").
//!
//! An open room has a record when it was made on purpose (rooms from before accounts have none,
//! and are open); a private room or a direct conversation exists only if it has one. Members are
//! kept for private rooms and conversations only: every signed-in person may open an open room.

use app::protocol::{DIRECT_MARK, PRIVATE_MARK, ROOM_ID_DIGITS};
use sha2::{Digest, Sha256};

/// What kind of room, by who may open it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomKind {
    /// Every signed-in person, guests too, may find, open and write in it.
    Open,
    /// Members only; a member adds others. To everyone else it does not exist.
    Private,
    /// A conversation between two or a few people, named by who is in it.
    Direct,
}

impl RoomKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Open => "open",
            RoomKind::Private => "private",
            RoomKind::Direct => "direct",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "open" => RoomKind::Open,
            "private" => RoomKind::Private,
            "direct" => RoomKind::Direct,
            _ => return None,
        })
    }

    /// The kind a room's name says it is: the marks are never part of an open room's name.
    pub fn of(name: &str) -> Self {
        match name.as_bytes().first() {
            Some(&PRIVATE_MARK) => RoomKind::Private,
            Some(&DIRECT_MARK) => RoomKind::Direct,
            _ => RoomKind::Open,
        }
    }
}

/// One room's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomRecord {
    /// As the log and the wire name it: an open room's word, or a mark and an id.
    pub name: String,
    pub kind: RoomKind,
    /// What people call it: an open room's name, a private room's chosen title; empty for a
    /// conversation (its people name it, differently for each of them).
    pub title: String,
    pub topic: String,
    /// The account that made it (empty for rooms Herald made itself, such as `general`).
    pub created_by: String,
    pub created_ms: u64,
    /// Kept to be read, no longer written to.
    pub archived: bool,
}

impl RoomRecord {
    /// What `reader` sees this room called, given its members' names (a conversation is called by
    /// the others in it).
    pub fn title_for(&self, reader: &str, members: &[super::Account]) -> String {
        match self.kind {
            RoomKind::Direct => {
                let others: Vec<&str> = members
                    .iter()
                    .filter(|m| m.id != reader)
                    .map(|m| m.name.as_str())
                    .collect();
                if others.is_empty() {
                    "Just you".to_owned()
                } else {
                    others.join(", ")
                }
            }
            _ => self.title.clone(),
        }
    }
}

/// A fresh private room's name: the mark and 80 random bits, so that no name can be guessed.
pub fn private_name() -> String {
    format!(
        "{}{}",
        char::from(PRIVATE_MARK),
        crate::ids::random_hex(ROOM_ID_DIGITS / 2)
    )
}

/// The one conversation between exactly `people` (account ids, in any order, repeats ignored):
/// the same name whoever starts it, so starting it again opens it.
pub fn direct_name(people: &[String]) -> String {
    let mut ids: Vec<&str> = people.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    let digest = Sha256::digest(ids.join(",").as_bytes());
    let hex = crate::ids::hex(&digest);
    format!("{}{}", char::from(DIRECT_MARK), &hex[..ROOM_ID_DIGITS])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_has_one_name_whoever_starts_it_and_private_names_are_fresh() {
        let (a, b, c) = ("a1".to_owned(), "b2".to_owned(), "c3".to_owned());
        let ab = direct_name(&[a.clone(), b.clone()]);
        assert_eq!(ab, direct_name(&[b.clone(), a.clone(), b.clone()]));
        assert_ne!(ab, direct_name(&[a, b, c]));
        assert_eq!(RoomKind::of(&ab), RoomKind::Direct);
        assert!(app::protocol::validate_room(&ab).is_ok());
        let (one, two) = (private_name(), private_name());
        assert_ne!(one, two);
        assert_eq!(RoomKind::of(&one), RoomKind::Private);
        assert!(app::protocol::validate_room(&one).is_ok());
        assert_eq!(RoomKind::of("general"), RoomKind::Open);
    }
}
