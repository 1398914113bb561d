//! Passwords: which ones are taken, and how they are kept. Argon2id (RustCrypto's `argon2`: pure
//! Rust, so the static binary needs no C library) with OWASP's first recommended setting, 19 MiB
//! of memory, 2 passes, 1 lane — measured here at about 30 ms a hash (BENCHMARKS.md, "Sign-in"). The
//! parameters live in each stored hash (its PHC string), so raising them later leaves old hashes
//! checkable.
//!
//! Hashing is held to as many at once as the machine has cores: a flood of sign-ins waits its turn
//! instead of taking every core and 19 MiB per attempt (the sign-in limiter, `accounts.rs`, turns
//! most of a flood away before it gets here).

use std::{collections::HashSet, sync::Arc, sync::LazyLock};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::Semaphore;

/// The fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The most bytes a password may have: enough for any passphrase, and a bound on what is hashed.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The 10 000 most common passwords of 8 characters or more, lowercased (the file says where from).
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .collect()
});

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("A password has at least {MIN_PASSWORD_CHARS} characters.")]
    TooShort,
    #[error("A password has at most {MAX_PASSWORD_BYTES} bytes.")]
    TooLong,
    #[error(
        "That password is among the most common ones, the first any attacker tries. Choose another."
    )]
    Common,
}

/// Whether `password` may be chosen.
pub fn check_new_password(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    if COMMON.contains(password.to_lowercase().as_str()) {
        return Err(PasswordError::Common);
    }
    Ok(())
}

/// Hashes and checks passwords, a bounded number at a time. Cheap to clone.
#[derive(Clone)]
pub struct Hasher {
    argon2: Arc<Argon2<'static>>,
    turns: Arc<Semaphore>,
}

/// A hash of no one's password (24 random bytes, thrown away), with the parameters every hash
/// here has: checked against when a handle is unknown, so that the answer takes as long as for a
/// real account (the time does not tell which handles exist). Written here rather than made at
/// start, which held Argon2's 19 MiB of memory from the first second.
const DECOY: &str = "$argon2id$v=19$m=19456,t=2,p=1$jkx7wAsjbesWsUdDz9mCDw$EDOgrO2HmZwEDMBdfaHe7IxdqLimtezRBu14dggal8c";

impl Hasher {
    pub fn new() -> Self {
        let params = Params::new(
            Params::DEFAULT_M_COST,
            Params::DEFAULT_T_COST,
            Params::DEFAULT_P_COST,
            None,
        )
        .expect("the default parameters are valid");
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            argon2: Arc::new(argon2),
            turns: Arc::new(Semaphore::new(cores)),
        }
    }

    /// `password`'s PHC string, with a fresh salt.
    pub async fn hash(&self, password: &str) -> Option<String> {
        let _turn = self.turns.acquire().await.ok()?;
        let (argon2, password) = (self.argon2.clone(), password.to_owned());
        tokio::task::spawn_blocking(move || hash_with(&argon2, &password))
            .await
            .ok()
            .flatten()
    }

    /// Whether `password` is the one `phc` was made from; with `None` (no such account), checks
    /// against the decoy and says no.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> bool {
        let Ok(_turn) = self.turns.acquire().await else {
            return false;
        };
        let known = phc.is_some();
        let (argon2, password) = (self.argon2.clone(), password.to_owned());
        let phc = phc.unwrap_or(DECOY).to_owned();
        let matched = tokio::task::spawn_blocking(move || {
            argon2
                .verify_password(password.as_bytes(), phc.as_str())
                .is_ok()
        })
        .await
        .unwrap_or(false);
        known && matched
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &str) -> Option<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).ok()?;
    argon2
        .hash_password_with_salt(password.as_bytes(), &salt)
        .ok()
        .map(|hash| hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_long_and_common_passwords_are_refused() {
        assert_eq!(check_new_password("seven77"), Err(PasswordError::TooShort));
        assert_eq!(
            check_new_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(PasswordError::TooLong)
        );
        for common in ["password", "PASSWORD", "12345678", "iloveyou", "qwertyuiop"] {
            assert_eq!(
                check_new_password(common),
                Err(PasswordError::Common),
                "{common}"
            );
        }
        assert_eq!(check_new_password("correct horse battery staple"), Ok(()));
        // Counted in characters, not bytes.
        assert_eq!(check_new_password("пароль12"), Ok(()));
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = Hasher::new();
        let phc = hasher.hash("correct horse").await.expect("hashed");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(hasher.verify("correct horse", Some(&phc)).await);
        assert!(!hasher.verify("correct horsE", Some(&phc)).await);
        assert!(!hasher.verify("correct horse", Some("not a hash")).await);
        // Unknown account: never a match, against a decoy of the same parameters.
        assert!(!hasher.verify("correct horse", None).await);
        let params = |phc: &str| phc.split('$').nth(3).map(str::to_owned);
        assert_eq!(
            params(DECOY),
            params(&phc),
            "the decoy costs what a real check costs"
        );
        // Two hashes of one password differ (salted).
        assert_ne!(phc, hasher.hash("correct horse").await.expect("hashed"));
    }
}
