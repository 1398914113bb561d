//! A message's `@mentions` (`app::protocol::mentioned_handles`, `mentions_room`), which the server
//! reads on every message with an `@` in it: who may call on the whole room is decided by it, and
//! which bots are told. Never a panic; every handle found has a handle's shape; and both agree with
//! a reference written apart here, over bytes rather than characters.
#![no_main]

use herald_fuzz::protocol::{MAX_MENTIONS, mentioned_handles, mentions_room};
use libfuzzer_sys::fuzz_target;

/// The words after an `@` that starts a word, as the rule says them: an `@` not after a letter, a
/// digit or another `@`; then the longest run of ASCII letters, digits, `.`, `_`, `-`; without its
/// trailing full stops; lowercase; 2 to 32 bytes, starting with a letter or a digit.
fn reference(body: &str) -> Vec<String> {
    let chars: Vec<char> = body.chars().collect();
    let mut words = Vec::new();
    for (i, c) in chars.iter().enumerate() {
        let after_word = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '@');
        if *c != '@' || after_word {
            continue;
        }
        let run: String = chars[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .collect();
        let word = run.trim_end_matches('.').to_ascii_lowercase();
        let first_ok = word.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if first_ok && word.len() >= 2 && word.len() <= 32 {
            words.push(word);
        }
    }
    words
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return; // Bodies are UTF-8 (JSON strings) before this is reached.
    };
    let words = reference(body);
    let mut unique: Vec<String> = Vec::new();
    for word in &words {
        if !unique.contains(word) && unique.len() < MAX_MENTIONS {
            unique.push(word.clone());
        }
    }
    assert_eq!(mentioned_handles(body), unique);
    assert_eq!(mentions_room(body), words.iter().any(|w| w == "room"));
});
