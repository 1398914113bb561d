//! How far each person has read each room: their read position, one per person and room — a seq
//! of the room's epoch then — kept with the person (not in the room's log: it is theirs, on every
//! device). The unread counts are the log's to count from it (`Log::unread`); telling a person's
//! other devices, and writing many positions at once, is `crate::reading`'s.

use serde::{Deserialize, Serialize};

use super::{People, PeopleError, REDIS_PATIENCE, Store};

/// A person's read position in one room: they have read up to entry `seq` of `epoch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadAt {
    pub room: String,
    pub epoch: String,
    pub seq: u64,
}

/// A position to store for `account`: it moves only forward within an epoch, unless `rewind`
/// ("mark unread" from a message moves it back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    pub account: String,
    pub at: ReadAt,
    pub rewind: bool,
}

impl People {
    /// Where `account` has read each room they have read anything of.
    pub async fn read_positions(&self, account: &str) -> Result<Vec<ReadAt>, PeopleError> {
        each!(self.read_positions(account))
    }

    /// Stores each position that moves its person's (a later one of the same epoch, one of
    /// another epoch, or one that rewinds), in one step; answers which did, in order.
    pub async fn set_read_positions(&self, batch: &[Reading]) -> Result<Vec<bool>, PeopleError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        each!(self.set_read_positions(batch))
    }
}
