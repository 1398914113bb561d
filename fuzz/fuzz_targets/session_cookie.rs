//! The session cookie: any `Cookie` header is looked through without a panic, and what it yields as
//! a session token is always a token's shape (64 lowercase hex digits), the only thing ever looked
//! up in the people store; a token put in a header is found again.
#![no_main]

use herald_fuzz::cookie::{COOKIE, TOKEN_DIGITS, session_tokens};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return; // Not a header value the server reads (`to_str` refuses it first).
    };
    for token in session_tokens(std::iter::once(header)) {
        assert_eq!(token.len(), TOKEN_DIGITS);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
    let mut bytes = [0u8; 32];
    for (slot, b) in bytes.iter_mut().zip(data) {
        *slot = *b;
    }
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let sent = format!("{header}; {COOKIE}={token}");
    assert!(session_tokens(std::iter::once(sent.as_str())).any(|t| t == token));
});
