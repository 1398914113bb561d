//! What a person types into search (`server/src/search/words.rs`), which becomes an FTS5 MATCH
//! expression, and what a message becomes in the index. Never a panic; the expression is read back
//! by a reader of FTS5's quoted-string syntax written apart here: only quoted terms (a quote inside
//! doubled), each non-empty, a `*` only after a single Chinese, Japanese or Korean character, at
//! most `MAX_TERMS`, and nothing in them but the letters, digits and `_` that were typed (and the
//! spaces between a phrase's pairs) — so nothing typed is ever an FTS5 operator. Indexing keeps
//! every character outside those scripts, in order.
#![no_main]

use herald_fuzz::words::{MAX_TERMS, index_text, match_expression, unspaced};
use libfuzzer_sys::fuzz_target;

/// The terms of `expression`, unquoted, each with whether it ends in `*`; `None` if it is not a
/// row of quoted strings separated by single spaces.
fn terms(expression: &str) -> Option<Vec<(String, bool)>> {
    let mut out = Vec::new();
    let mut chars = expression.chars().peekable();
    loop {
        if chars.next()? != '"' {
            return None;
        }
        let mut term = String::new();
        loop {
            match chars.next()? {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    term.push('"');
                }
                '"' => break,
                c => term.push(c),
            }
        }
        let star = chars.peek() == Some(&'*');
        if star {
            chars.next();
        }
        out.push((term, star));
        match chars.next() {
            None => return Some(out),
            Some(' ') => continue,
            Some(_) => return None,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(typed) = std::str::from_utf8(data) else {
        return; // A query string is UTF-8 once decoded.
    };
    let typed_anything = typed.chars().any(|c| c.is_alphanumeric() || c == '_');
    match match_expression(typed) {
        None => assert!(!typed_anything, "{typed:?} looked for nothing"),
        Some(expression) => {
            let terms = terms(&expression).unwrap_or_else(|| panic!("not quoted terms: {expression:?}"));
            assert!(!terms.is_empty() && terms.len() <= MAX_TERMS, "{expression:?}");
            for (term, star) in terms {
                assert!(!term.is_empty(), "{expression:?}");
                assert!(
                    term.chars().all(|c| c.is_alphanumeric() || c == '_' || c == ' '),
                    "{expression:?}"
                );
                assert!(term.chars().all(|c| c == ' ' || typed.contains(c)), "{expression:?}");
                if star {
                    let mut chars = term.chars();
                    let one = chars.next().expect("non-empty");
                    assert!(unspaced(one) && chars.next().is_none(), "{expression:?}");
                }
            }
        }
    }
    let indexed = index_text(typed);
    let kept = |text: &str| -> String { text.chars().filter(|c| !unspaced(*c) && *c != ' ').collect() };
    assert_eq!(kept(&indexed), kept(typed));
});
