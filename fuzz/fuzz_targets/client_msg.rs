//! `ClientMsg` decoding, as the server does it for every text frame: it never panics, and whatever
//! it accepts encodes back to something that decodes to the same message.
#![no_main]

use herald_fuzz::protocol::{ClientMsg, MAX_BODY_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // The frame decoder refuses non-UTF-8 text before this is reached.
    };
    if let Ok(msg) = ClientMsg::decode_with(text, MAX_BODY_BYTES) {
        let again = ClientMsg::decode_with(&msg.encode(), MAX_BODY_BYTES);
        assert_eq!(again.as_ref(), Ok(&msg));
    }
});
