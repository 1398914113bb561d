//! The session cookie: any `Cookie` header is looked through without a panic and verifies only if
//! signed with the key; any valid name signed with the key verifies as itself.
#![no_main]

use herald_fuzz::{
    cookie::{Signer, session_values},
    protocol::{Identity, validate_name},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let signer = Signer::new([42; 32]);
    let other = Signer::new([43; 32]);
    let Ok(header) = std::str::from_utf8(data) else {
        return; // Not a header value the server reads (`to_str` refuses it first).
    };
    for value in session_values(std::iter::once(header)) {
        if let Some(who) = signer.verify(value) {
            // Only a value we signed verifies: the same bytes never verify under another key.
            assert_eq!(other.verify(value), None);
            assert_eq!(signer.value_for(&who), value);
        }
    }
    if let Ok(name) = validate_name(header) {
        let who = Identity {
            id: format!("{:016x}", data.len()),
            name,
        };
        let value = signer.value_for(&who);
        assert_eq!(signer.verify(&value), Some(who));
        assert_eq!(other.verify(&value), None);
    }
});
