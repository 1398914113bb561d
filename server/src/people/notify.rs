//! What each person wants to be told, and where (docs/NOTIFICATIONS.md): a [`Level`] per room
//! (every message, mentions and direct messages — the default, kept by storing nothing — or
//! nothing), and the Web Push subscriptions of their browsers, each tied to the session that made
//! it (a subscription whose session has ended is dropped when next used: its browser is no longer
//! signed in as them). The server's VAPID key is kept here too, made once: a browser's
//! subscription is bound to that key, so every node of a cluster must sign with the same one.

use super::{People, PeopleError, REDIS_PATIENCE, Store};

/// Most subscriptions one person keeps (a browser each): a new one beyond it drops the oldest.
pub const SUBSCRIPTIONS_PER_PERSON: usize = 10;

/// What a person is told of a room's new messages, when they are not looking at it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Level {
    /// Every message from someone else.
    Every,
    /// Messages that `@mention` them, and every message of a direct conversation.
    #[default]
    Mentions,
    /// Nothing.
    Nothing,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Every, Level::Mentions, Level::Nothing];

    /// The name a form, `/session` and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Every => "every",
            Level::Mentions => "mentions",
            Level::Nothing => "nothing",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|level| level.as_str() == text)
    }
}

/// A browser's push subscription (what `PushManager.subscribe` gave the page).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// Where to POST (the push service's URL for this browser): the subscription's identity.
    pub endpoint: String,
    pub account: String,
    /// The stored key of the session that subscribed.
    pub session: String,
    /// The browser's P-256 public key, base64url (RFC 8291's `ua_public`).
    pub p256dh: String,
    /// The browser's authentication secret, base64url (16 bytes).
    pub auth: String,
    /// When it was made (ms since the Unix epoch).
    pub at: u64,
}

impl People {
    /// The rooms where `account` chose other than the default, with what they chose.
    pub async fn notify_levels(&self, account: &str) -> Result<Vec<(String, Level)>, PeopleError> {
        each!(self.notify_levels(account))
    }

    /// `account` wants to be told `level` of `room`'s messages.
    pub async fn set_notify_level(
        &self,
        account: &str,
        room: &str,
        level: Level,
    ) -> Result<(), PeopleError> {
        each!(self.set_notify_level(account, room, level))
    }

    /// The people who want to be told of every message of `room`.
    pub async fn told_every(&self, room: &str) -> Result<Vec<String>, PeopleError> {
        each!(self.told_every(room))
    }

    /// The rooms where someone chose to hear every message (and, in Redis, some where nobody does
    /// any more: a room is let go of when it is deleted).
    pub async fn rooms_told_every(&self) -> Result<Vec<String>, PeopleError> {
        each!(self.rooms_told_every())
    }

    /// Keeps `subscription` (replacing one of the same endpoint, whoever's it was).
    pub async fn subscribe(&self, subscription: &Subscription) -> Result<(), PeopleError> {
        each!(self.subscribe(subscription))
    }

    /// `account`'s subscriptions, oldest first.
    pub async fn subscriptions(&self, account: &str) -> Result<Vec<Subscription>, PeopleError> {
        each!(self.subscriptions(account))
    }

    /// Drops `account`'s subscription at `endpoint`, if there is one.
    pub async fn unsubscribe(&self, account: &str, endpoint: &str) -> Result<(), PeopleError> {
        each!(self.unsubscribe(account, endpoint))
    }

    /// The people with at least one subscription.
    pub async fn subscribers(&self) -> Result<Vec<String>, PeopleError> {
        each!(self.subscribers())
    }

    /// The server's VAPID private key: the one stored, or `made` if there was none (which is then
    /// stored: the first node to ask makes it for all).
    pub async fn vapid_key(&self, made: &str) -> Result<String, PeopleError> {
        each!(self.vapid_key(made))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_read_back_from_their_names() {
        for level in Level::ALL {
            assert_eq!(Level::parse(level.as_str()), Some(level));
        }
        assert_eq!(Level::parse("loud"), None);
        assert_eq!(Level::default(), Level::Mentions);
    }
}
