//! The HTTP API's publish and reaction bodies: any bytes are parsed and checked without a panic,
//! and what is accepted keeps every rule (body within the limit, a valid author name and client
//! id, one emoji of at most 32 bytes).
#![no_main]

use herald_fuzz::{
    protocol::{MAX_EMOJI_BYTES, validate_body, validate_client_id, validate_emoji, validate_name},
    publish,
};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 256;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = publish::parse(data, LIMIT) {
        assert!(validate_body(&request.body, LIMIT).is_ok());
        assert!(request.body.len() <= LIMIT);
        if let Some(name) = &request.author_name {
            assert_eq!(validate_name(name).as_deref(), Ok(name.as_str()));
        }
        if let Some(id) = &request.client_id {
            assert!(validate_client_id(id).is_ok());
        }
    }
    if let Ok(reaction) = publish::parse_reaction(data) {
        assert!(validate_emoji(&reaction.emoji).is_ok());
        assert!(!reaction.emoji.is_empty() && reaction.emoji.len() <= MAX_EMOJI_BYTES);
        if let Some(id) = &reaction.client_id {
            assert!(validate_client_id(id).is_ok());
        }
    }
});
