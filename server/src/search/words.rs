//! How search reads words in any script (docs/SEARCH.md, "Words in any script"): the text FTS5
//! indexes for a message ([`index_text`]) and the FTS5 expression for what a person typed
//! ([`match_expression`]). Apart from the index so that the fuzz target `search_words` (fuzz/) can
//! hold them to their rules: what anyone types becomes quoted terms only, never FTS5 syntax.

/// Whether `c` is written without spaces between words: Chinese, Japanese and Korean.
pub fn unspaced(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3400..=0x4DBF   // CJK Extension A
        | 0x4E00..=0x9FFF   // CJK Unified Ideographs
        | 0xAC00..=0xD7AF   // Hangul syllables
        | 0xF900..=0xFAFF   // CJK Compatibility Ideographs
        | 0x20000..=0x2FFFF // CJK Extensions B and on
    )
}

/// The text FTS5 indexes for `body`: as it is, but every run of [`unspaced`] characters written as
/// its overlapping pairs (東京都 → 東京 京都), each a word of its own; a run of one stays one.
pub fn index_text(body: &str) -> String {
    let mut out = String::with_capacity(body.len() * 2);
    let chars: Vec<char> = body.chars().collect();
    let mut at = 0;
    while at < chars.len() {
        if !unspaced(chars[at]) {
            out.push(chars[at]);
            at += 1;
            continue;
        }
        let end = chars[at..]
            .iter()
            .position(|c| !unspaced(*c))
            .map_or(chars.len(), |n| at + n);
        out.push(' ');
        out.push_str(&pairs(&chars[at..end]));
        out.push(' ');
        at = end;
    }
    out
}

/// A run of [`unspaced`] characters as its overlapping pairs, spaced; one character alone.
fn pairs(run: &[char]) -> String {
    if run.len() == 1 {
        return run[0].to_string();
    }
    run.windows(2)
        .map(|pair| pair.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Most terms a search looks for.
pub const MAX_TERMS: usize = 16;

/// What a person typed as an FTS5 expression: each term (split at spaces and punctuation) quoted,
/// all of them required; a run of [`unspaced`] characters as the phrase of its pairs, and one such
/// character alone as a prefix (it is the first of the pairs it begins). `None` if nothing is left
/// to look for. Nothing typed is FTS5 syntax: a quote inside a term is doubled.
pub fn match_expression(typed: &str) -> Option<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in typed.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        if word.is_empty() || terms.len() >= MAX_TERMS {
            continue;
        }
        let chars: Vec<char> = word.chars().collect();
        let mut at = 0;
        while at < chars.len() {
            let cjk = unspaced(chars[at]);
            let end = chars[at..]
                .iter()
                .position(|c| unspaced(*c) != cjk)
                .map_or(chars.len(), |n| at + n);
            let run = &chars[at..end];
            let term = match (cjk, run.len()) {
                (true, 1) => format!("\"{}\"*", run[0]),
                (true, _) => format!("\"{}\"", pairs(run)),
                (false, _) => format!(
                    "\"{}\"",
                    run.iter().collect::<String>().replace('"', "\"\"")
                ),
            };
            if terms.len() < MAX_TERMS {
                terms.push(term);
            }
            at = end;
        }
    }
    (!terms.is_empty()).then(|| terms.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_japanese_and_korean_are_indexed_as_overlapping_pairs_and_latin_as_it_is() {
        assert_eq!(
            index_text("meet in 東京都 at 3"),
            "meet in  東京 京都  at 3"
        );
        assert_eq!(index_text("会議"), " 会議 ");
        assert_eq!(index_text("a 京 b"), "a  京  b");
        assert_eq!(index_text("Crème brûlée"), "Crème brûlée");
    }

    #[test]
    fn what_a_person_types_is_quoted_terms_never_fts_syntax() {
        assert_eq!(
            match_expression("Crème brûlée").as_deref(),
            Some("\"Crème\" \"brûlée\"")
        );
        assert_eq!(match_expression("東京").as_deref(), Some("\"東京\""));
        assert_eq!(match_expression("東京都").as_deref(), Some("\"東京 京都\""));
        assert_eq!(match_expression("京").as_deref(), Some("\"京\"*"));
        assert_eq!(
            match_expression("a\"b OR c*").as_deref(),
            Some("\"a\" \"b\" \"OR\" \"c\"")
        );
        assert_eq!(match_expression("  ;:()*\" "), None);
        assert_eq!(
            match_expression("x".repeat(3).as_str()).as_deref(),
            Some("\"xxx\"")
        );
        let many = "w ".repeat(100);
        assert_eq!(
            match_expression(&many).map(|e| e.matches('"').count()),
            Some(2 * MAX_TERMS)
        );
    }
}
