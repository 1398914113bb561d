//! What a reader's page marks beside people's names and messages, beyond what each message says:
//! accounts deactivated or deleted since they wrote ("(deactivated)", "(account deleted)"), and the
//! people this reader ignores (their messages folded away). Guests need no list: their ids say so
//! ([`GUEST_ID_PREFIX`]). Also here: ignoring someone, and deleting one's own account.

use std::sync::Arc;

use serde::Serialize;

use super::{Account, People, PeopleError, REDIS_PATIENCE, Role, Store};

/// How a guest's id starts: pages mark a guest's messages from the id alone (`style/`), so no
/// list of every guest that ever was is needed. Accounts with a handle have plain hex ids.
pub const GUEST_ID_PREFIX: &str = "guest-";

/// The name a deleted account keeps in lists (its messages keep the name they were written under).
pub const DELETED_NAME: &str = "Deleted account";

/// Accounts no longer active, as pages mark them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Gone {
    /// Deactivated by an admin.
    pub deactivated: Vec<String>,
    /// Deleted by their owner.
    pub deleted: Vec<String>,
}

impl Gone {
    /// Those of `accounts` deactivated or deleted (guests never are: their ids say what they are).
    pub fn of(accounts: &[Account]) -> Self {
        let mut gone = Self::default();
        for account in accounts {
            if account.active || account.role == Role::Guest {
                continue;
            }
            match is_deleted(account) {
                true => gone.deleted.push(account.id.clone()),
                false => gone.deactivated.push(account.id.clone()),
            }
        }
        gone
    }
}

/// Whether a stored account is a deleted one (not merely deactivated): no handle, no password, not
/// active, and not a guest (whose accounts never had either).
pub fn is_deleted(account: &Account) -> bool {
    !account.active
        && account.handle.is_none()
        && account.password.is_none()
        && account.role != Role::Guest
}

impl People {
    /// The ids of the people `account` ignores.
    pub async fn ignored(&self, account: &str) -> Result<Vec<String>, PeopleError> {
        each!(self.ignored(account))
    }

    /// `account` ignores `other` (or, with `false`, no longer).
    pub async fn set_ignored(
        &self,
        account: &str,
        other: &str,
        ignored: bool,
    ) -> Result<(), PeopleError> {
        each!(self.set_ignored(account, other, ignored))
    }

    /// Deletes an account: its handle is free for someone else, it has no password and signs
    /// nobody in; its record stays (under [`DELETED_NAME`]) so what it wrote still names someone.
    /// Its sessions and memberships are the caller's to end.
    pub async fn delete_account(&self, id: &str) -> Result<(), PeopleError> {
        let deleted = each!(self.delete_account(id, DELETED_NAME));
        self.forget_account(id);
        deleted
    }

    /// The accounts deactivated or deleted, as of at most a few seconds ago (this node's own
    /// changes at once): [`People::directory`].
    pub async fn gone(&self) -> Result<Arc<Gone>, PeopleError> {
        Ok(self.directory().await?.gone.clone())
    }
}
