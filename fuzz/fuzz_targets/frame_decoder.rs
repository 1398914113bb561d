//! The WebSocket frame decoder on any bytes, read in any pieces: it never panics, never holds more
//! than the limit allows, and decodes the same however the bytes are split.
#![no_main]

use herald_fuzz::decode::{Decoder, Incoming, Violation};
use libfuzzer_sys::fuzz_target;

/// A small limit, so that "too big" is reached often.
const LIMIT: usize = 1024;

fn decode(data: &[u8], pieces: &[usize]) -> Vec<Result<Incoming, Violation>> {
    let mut decoder = Decoder::default();
    let mut out = Vec::new();
    let mut rest = data;
    let mut sizes = pieces.iter().cycle();
    loop {
        match decoder.next(LIMIT) {
            Ok(Some(incoming)) => {
                if let Incoming::Text(text) = &incoming {
                    assert!(text.len() <= LIMIT);
                }
                let done = matches!(incoming, Incoming::Close(_) | Incoming::TooBig);
                out.push(Ok(incoming));
                if done {
                    return out;
                }
            }
            Err(violation) => {
                assert!(matches!(violation.code, 1002 | 1007));
                out.push(Err(violation));
                return out;
            }
            Ok(None) if rest.is_empty() => return out,
            Ok(None) => {
                let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
                decoder.feed(&rest[..n]);
                rest = &rest[n..];
                // What is held: at most one frame's header and payload under the limit, a fragmented
                // message under the limit, and the last read.
                assert!(
                    decoder.held() <= 2 * LIMIT + 14 + n,
                    "{} held",
                    decoder.held()
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks how the rest is split.
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let whole = decode(data, &[data.len().max(1)]);
    let pieces = [usize::from(split % 7) + 1, usize::from(split / 7) + 1, 3];
    assert_eq!(whole, decode(data, &pieces));
});
