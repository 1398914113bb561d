//! The session cookie's value, made and checked without I/O: `hex(JSON claims) "." hex(HMAC-SHA256
//! of that hex)`. Everything here reads bytes a browser (or anyone) sent, so it is also a fuzz target
//! (`fuzz/`, which includes this file).

use app::protocol::{Identity, validate_name};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The cookie's name.
pub const COOKIE: &str = "herald_session";

/// Longest cookie value looked at. A real one is about 200 bytes (a 16-digit id and a name of at most
/// 32 characters, hex-encoded, plus 64 digits of tag); a longer one is not ours and is not decoded.
pub const MAX_VALUE_BYTES: usize = 1024;

/// What the cookie carries.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    id: String,
    name: String,
}

/// Signs and checks cookie values with one key.
pub struct Signer {
    key: [u8; 32],
}

impl Signer {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// The cookie value naming `who`.
    pub fn value_for(&self, who: &Identity) -> String {
        let claims = Claims {
            id: who.id.clone(),
            name: who.name.clone(),
        };
        let payload = hex(serde_json::to_string(&claims)
            .unwrap_or_default()
            .as_bytes());
        let tag = hex(&self.mac(payload.as_bytes()).finalize().into_bytes());
        format!("{payload}.{tag}")
    }

    /// The identity in a cookie value, if it was signed with this key and is well-formed. The tag is
    /// checked (in constant time) before the claims are decoded.
    pub fn verify(&self, value: &str) -> Option<Identity> {
        if value.len() > MAX_VALUE_BYTES {
            return None;
        }
        let (payload, tag) = value.split_once('.')?;
        self.mac(payload.as_bytes())
            .verify_slice(&unhex(tag)?)
            .ok()?;
        let claims: Claims = serde_json::from_slice(&unhex(payload)?).ok()?;
        // Signed names were validated when issued; checking again costs nothing.
        let name = validate_name(&claims.name).ok()?;
        Some(Identity {
            id: claims.id,
            name,
        })
    }

    /// An HMAC of `data` under this key for `purpose` (a name no hex payload can start with, ended
    /// by a NUL no payload holds), so it is never a cookie's tag: an id derived from a secret that
    /// says nothing about it without the key.
    pub fn keyed(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        let mut mac = self.mac(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length; a 32-byte key cannot be refused.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(payload);
        mac
    }
}

/// The values of every [`COOKIE`] in `Cookie` header values (`a=1; herald_session=...; b=2`).
pub fn session_values<'a>(headers: impl Iterator<Item = &'a str>) -> impl Iterator<Item = &'a str> {
    headers
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Hex digits (either case) → bytes; `None` for anything else, an odd length included.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            let digit = |b: u8| char::from(b).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex("ABcd"), Some(vec![0xab, 0xcd]));
        for junk in ["a", "zz", "+1", "-1", " 1", "é1", "0x"] {
            assert_eq!(unhex(junk), None, "{junk}");
        }
    }

    #[test]
    fn a_value_over_the_limit_is_not_decoded() {
        let signer = Signer::new([1; 32]);
        let who = Identity {
            id: "x".repeat(600),
            name: "Ann".into(),
        };
        let value = signer.value_for(&who);
        assert!(value.len() > MAX_VALUE_BYTES);
        assert_eq!(signer.verify(&value), None);
    }
}
