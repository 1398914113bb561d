//! A request's body that writes to a room (`POST /api/rooms/{room}/messages`, `POST /api/broadcast`,
//! an edit, a reaction): JSON bytes in, a checked request out, no I/O — so what a program sends can
//! be fuzzed (`fuzz/`, which includes this file). Nothing here decides who the author is: that comes
//! from the request's token.

use app::protocol::{
    ProtocolError, validate_body, validate_client_id, validate_emoji, validate_name,
};
use serde::Deserialize;

/// A message to publish, as checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    pub body: String,
    /// The name shown as the author (1–32 characters); the caller's default if absent.
    pub author_name: Option<String>,
    /// An idempotency key: the same key from the same token stores one message.
    pub client_id: Option<String>,
    /// The seq of the room's message it answers.
    pub reply_to: Option<u64>,
}

/// A reaction to add or take back (`POST …/messages/{seq}/reactions`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct React {
    pub emoji: String,
    #[serde(default)]
    pub remove: bool,
    pub client_id: Option<String>,
}

/// Parses a reaction body and checks every field.
pub fn parse_reaction(bytes: &[u8]) -> Result<React, Refused> {
    let request: React = serde_json::from_slice(bytes).map_err(|e| Refused::Json(e.to_string()))?;
    validate_emoji(&request.emoji).map_err(Refused::Invalid)?;
    if let Some(id) = &request.client_id {
        validate_client_id(id).map_err(Refused::Invalid)?;
    }
    Ok(request)
}

/// Why a body was refused.
#[derive(Debug)]
pub enum Refused {
    /// Not the JSON object the route takes (serde's explanation).
    Json(String),
    /// A field that breaks its rule.
    Invalid(ProtocolError),
}

/// Parses a publish body and checks every field; the author's name comes back normalised.
pub fn parse(bytes: &[u8], max_body_bytes: usize) -> Result<Publish, Refused> {
    let request: Publish =
        serde_json::from_slice(bytes).map_err(|e| Refused::Json(e.to_string()))?;
    validate_body(&request.body, max_body_bytes).map_err(Refused::Invalid)?;
    let author_name = request
        .author_name
        .as_deref()
        .map(validate_name)
        .transpose()
        .map_err(Refused::Invalid)?;
    if let Some(id) = &request.client_id {
        validate_client_id(id).map_err(Refused::Invalid)?;
    }
    Ok(Publish {
        author_name,
        ..request
    })
}
