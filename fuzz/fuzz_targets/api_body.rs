//! The HTTP API's publish body: any bytes are parsed and checked without a panic, and what is
//! accepted keeps every rule (body within the limit, a valid author name and client id).
#![no_main]

use herald_fuzz::{
    protocol::{validate_body, validate_client_id, validate_name},
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
});
