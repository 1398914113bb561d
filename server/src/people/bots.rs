//! Bots, as the people store keeps them: a bot is an account (role `bot`, a handle, no password)
//! with a webhook it may be told about messages at, that webhook's signing secret, and any number
//! of API tokens. A token is shown once, when made; the store keeps only its SHA-256, so a stolen
//! copy of the store lets nobody post as a bot. Revoking one leaves the bot's others working.

use super::{
    Account, NewAccount, People, PeopleError, REDIS_PATIENCE, Role, Store, now_ms, session_key,
};
use crate::ids::random_hex;

/// What marks a bot's token (before 64 hex digits): secret scanners and people can tell it for what
/// it is, and the API tells it from an operator's token without asking the store.
pub const BOT_TOKEN_PREFIX: &str = "herald_bot_";

/// A bot's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bot {
    /// Its account's id.
    pub account: String,
    /// Where Herald POSTs the messages that mention it or are written to it (docs/BOTS.md).
    pub webhook: Option<String>,
    /// The HMAC-SHA256 key each webhook request is signed with.
    pub secret: String,
}

/// One of a bot's API tokens, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BotToken {
    /// The SHA-256 of the token, as hex.
    pub id: String,
    /// The bot's account id.
    pub account: String,
    /// What the admin called it ("deploy server"), to tell tokens apart when revoking one.
    pub label: String,
    pub created_ms: u64,
}

/// Whether `value` has the shape of a bot's token; anything else is never looked up.
fn is_bot_token(value: &str) -> bool {
    value
        .strip_prefix(BOT_TOKEN_PREFIX)
        .is_some_and(super::is_token)
}

impl People {
    /// Makes a bot: its account, its settings (a fresh signing secret) and a first token, which is
    /// answered (and never again).
    pub async fn make_bot(
        &self,
        handle: String,
        name: String,
        webhook: Option<String>,
    ) -> Result<(Account, String), PeopleError> {
        let account = self
            .create(NewAccount {
                handle: Some(handle),
                name,
                role: Role::Bot,
                password: None,
            })
            .await?;
        let bot = Bot {
            account: account.id.clone(),
            webhook,
            secret: random_hex(32),
        };
        each!(self.save_bot(&bot))?;
        let token = self.issue_bot_token(&account.id, "first token").await?;
        Ok((account, token))
    }

    /// A bot's settings; `None` for an account that is not a bot.
    pub async fn bot(&self, account: &str) -> Result<Option<Bot>, PeopleError> {
        each!(self.bot(account))
    }

    /// Changes where a bot's webhook points (`None`: nowhere); its secret stays.
    pub async fn set_webhook(
        &self,
        account: &str,
        webhook: Option<String>,
    ) -> Result<(), PeopleError> {
        let bot = self.bot(account).await?.ok_or(PeopleError::NoSuchAccount)?;
        let bot = Bot { webhook, ..bot };
        each!(self.save_bot(&bot))
    }

    /// A new token for bot `account`, labelled `label`: answered once, stored hashed.
    pub async fn issue_bot_token(&self, account: &str, label: &str) -> Result<String, PeopleError> {
        let token = format!("{BOT_TOKEN_PREFIX}{}", random_hex(32));
        let stored = BotToken {
            id: session_key(&token),
            account: account.to_owned(),
            label: label.to_owned(),
            created_ms: now_ms(),
        };
        each!(self.add_bot_token(&stored))?;
        Ok(token)
    }

    /// A bot's tokens (their hashes and labels), the oldest first.
    pub async fn bot_tokens(&self, account: &str) -> Result<Vec<BotToken>, PeopleError> {
        each!(self.bot_tokens(account))
    }

    /// Revokes token `id` of bot `account`: whether it was one of its tokens.
    pub async fn revoke_bot_token(&self, account: &str, id: &str) -> Result<bool, PeopleError> {
        each!(self.revoke_bot_token(account, id))
    }

    /// The bot a request's token is for, while the token is not revoked and the bot is active.
    pub async fn bot_by_token(&self, token: &str) -> Result<Option<Account>, PeopleError> {
        if !is_bot_token(token) {
            return Ok(None);
        }
        let Some(stored) = each!(self.bot_token(&session_key(token)))? else {
            return Ok(None);
        };
        Ok(self
            .account(&stored.account)
            .await?
            .filter(|a| a.active && a.role == Role::Bot))
    }
}
