//! The session cookie's value, read without I/O: a session's token, 64 lowercase hex digits (32
//! random bytes) that the people store knows by its SHA-256 (`people`). Everything here reads bytes
//! a browser (or anyone) sent, so it is also a fuzz target (`fuzz/`, which includes this file).
//!
//! Also the key that derives ids from secrets ([`Signer::keyed`]): an API token's author id.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The cookie's name.
pub const COOKIE: &str = "herald_session";

/// How many hex digits a session token has.
pub const TOKEN_DIGITS: usize = 64;

/// Derives keyed ids with one key.
pub struct Signer {
    key: [u8; 32],
}

impl Signer {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// An HMAC of `data` under this key for `purpose` (ended by a NUL no purpose holds): an id
    /// derived from a secret that says nothing about it without the key.
    pub fn keyed(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        // HMAC takes keys of any length; a 32-byte key cannot be refused.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}

/// `value` if it has the shape of a session token (what else a cookie holds is never looked up).
pub fn token(value: &str) -> Option<&str> {
    (value.len() == TOKEN_DIGITS
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(value)
}

/// The session tokens in `Cookie` header values (`a=1; herald_session=...; b=2`), in order.
pub fn session_tokens<'a>(headers: impl Iterator<Item = &'a str>) -> impl Iterator<Item = &'a str> {
    session_values(headers).filter_map(token)
}

/// The values of every [`COOKIE`] in `Cookie` header values (`a=1; herald_session=...; b=2`).
pub fn session_values<'a>(headers: impl Iterator<Item = &'a str>) -> impl Iterator<Item = &'a str> {
    headers
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_token_shaped_value_is_a_token() {
        let good = "0123456789abcdef".repeat(4);
        let header = format!("theme=dark; {COOKIE}=nope; {COOKIE}={good}; x=y");
        assert_eq!(
            session_tokens(std::iter::once(header.as_str())).collect::<Vec<_>>(),
            vec![good.as_str()]
        );
        for junk in [
            &good[1..],
            &good.to_uppercase(),
            &format!("{good}0"),
            "",
            "zz",
        ] {
            assert_eq!(token(junk), None, "{junk}");
        }
    }

    #[test]
    fn keyed_ids_depend_on_key_purpose_and_data() {
        let (one, two) = (Signer::new([1; 32]), Signer::new([2; 32]));
        assert_eq!(one.keyed("a", b"x"), one.keyed("a", b"x"));
        assert_ne!(one.keyed("a", b"x"), two.keyed("a", b"x"));
        assert_ne!(one.keyed("a", b"x"), one.keyed("b", b"x"));
        assert_ne!(one.keyed("a", b"x"), one.keyed("a", b"y"));
    }
}
