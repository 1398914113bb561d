//! Who was mentioned where: when a stored message `@mentions` people who may read its room, each of
//! them gets a mention (room, epoch, seq, when) kept with them — by account, so it names who was
//! called on whatever they are called later. Counted apart in what is unread (`crate::reading`),
//! listed newest first on the Mentions page (`crate::mentions`), gone when the message is
//! deleted, the room deleted, or the account deleted. Each person keeps their newest
//! [`KEPT_PER_PERSON`].

use super::{People, PeopleError, REDIS_PATIENCE, Store};

/// Most mentions kept per person: older ones leave the list and the counts.
pub const KEPT_PER_PERSON: usize = 500;

/// One mention of a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mention {
    pub room: String,
    pub epoch: String,
    pub seq: u64,
    /// When it was stored (ms since the Unix epoch).
    pub at: u64,
}

impl People {
    /// `accounts` are mentioned by message `mention.seq` of `mention.room`.
    pub async fn add_mentions(
        &self,
        accounts: &[String],
        mention: &Mention,
    ) -> Result<(), PeopleError> {
        if accounts.is_empty() {
            return Ok(());
        }
        each!(self.add_mentions(accounts, mention))
    }

    /// Message `seq` of `room` was deleted: nobody is mentioned by it any more.
    pub async fn forget_mentions(&self, room: &str, seqs: &[u64]) -> Result<(), PeopleError> {
        if seqs.is_empty() {
            return Ok(());
        }
        each!(self.forget_mentions(room, seqs))
    }

    /// `account`'s mentions, newest first, at most `limit`, older than `before` (ms) if given.
    pub async fn mentions_of(
        &self,
        account: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Mention>, PeopleError> {
        each!(self.mentions_of(account, before, limit))
    }

    /// How many of `account`'s mentions in `room`'s history `epoch` (the room's now) come after
    /// its entry `seq` (0 for a position of another history: all of them).
    pub async fn mentions_after(
        &self,
        account: &str,
        room: &str,
        epoch: &str,
        seq: u64,
    ) -> Result<u32, PeopleError> {
        each!(self.mentions_after(account, room, epoch, seq))
    }
}
