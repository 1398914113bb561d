//! Bearer tokens as Herald keeps and compares them: by their SHA-256, so how long a comparison
//! takes says nothing about a token. A leaf module: the API's doors (`transport::auth`) and
//! `/metrics` (`metrics.rs`) read tokens the same way without importing each other.

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};

/// The SHA-256 of a token.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The request's `Authorization: Bearer TOKEN`'s token, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?
        .trim();
    Some(token)
}

/// The digest of the request's `Authorization: Bearer TOKEN`, if it has one.
pub fn bearer_digest(headers: &HeaderMap) -> Option<[u8; 32]> {
    bearer(headers).map(token_digest)
}
