//! The Markdown subset (`app::markdown`) held to an independent CommonMark parser, `pulldown-cmark`:
//! thousands of documents drawn at random from the subset's own grammar (emphasis of every kind,
//! nested and unbalanced, code spans, links, code blocks, quotes, lists) must give the same tree.
//! And text from outside the grammar — random bytes of the characters that matter — must never
//! panic, unbalance the tree, or come out as markup.

use app::markdown::{Event, MAX_DEPTH, Tag, parse, to_html};
use pulldown_cmark::{self as cm, Options, Parser};

/// A small deterministic generator (xorshift), so a failure can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

const WORDS: &[&str] = &["alpha", "beta", "gamma", "x", "ok", "tea", "b2", "ünï"];

/// Inline text of the subset: words, emphasis (closed or not), code spans, links, punctuation.
fn inline(rng: &mut Rng, depth: usize, out: &mut String) {
    for i in 0..1 + rng.below(5) {
        if i > 0 && rng.below(3) > 0 {
            out.push(' ');
        }
        match rng.below(if depth < 2 { 12 } else { 6 }) {
            0..=2 => out.push_str(rng.pick(WORDS)),
            3 => out.push_str(rng.pick(&[",", ".", "?", " -", "(", ")", ":"])), // ("![" is an image)
            4 => {
                let code = rng.pick(&["a*b", "x", "_y_", " s ", "**", "a b"]);
                out.push('`');
                out.push_str(code);
                out.push('`');
            }
            5 => {
                out.push('[');
                out.push_str(rng.pick(WORDS));
                out.push_str("](https://example.com/");
                out.push_str(rng.pick(WORDS));
                out.push(')');
            }
            6 => out.push_str(rng.pick(&["*", "_", "**", "__", "***"])), // unbalanced
            _ => {
                let delim = rng.pick(&["*", "_", "**", "__", "~~", "***"]);
                out.push_str(delim);
                inline(rng, depth + 1, out);
                out.push_str(delim);
            }
        }
    }
}

/// A line of inline text that cannot be read as the start of a block (it starts with a word).
fn line(rng: &mut Rng) -> String {
    let mut out = rng.pick(WORDS).to_owned();
    out.push(' ');
    inline(rng, 0, &mut out);
    out
}

fn document(rng: &mut Rng) -> String {
    let mut blocks = Vec::new();
    for _ in 0..1 + rng.below(4) {
        let block = match rng.below(5) {
            0 | 1 => (0..1 + rng.below(3))
                .map(|_| line(rng))
                .collect::<Vec<_>>()
                .join("\n"),
            2 => {
                let body: Vec<String> = (0..rng.below(3))
                    .map(|_| {
                        format!(
                            "{} *{}*  {}",
                            rng.pick(WORDS),
                            rng.pick(WORDS),
                            rng.pick(&["", "> x", "- y", "1. z"])
                        )
                    })
                    .collect();
                format!(
                    "```{}\n{}\n```",
                    rng.pick(&["", "rust", "js"]),
                    body.join("\n")
                )
                .replace("\n\n```", "\n```")
            }
            3 => (0..1 + rng.below(3))
                .map(|_| format!("> {}", line(rng)))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => {
                let ordered = rng.below(2) == 0;
                let mut items = Vec::new();
                for n in 0..1 + rng.below(3) {
                    let marker = if ordered {
                        format!("{}.", n + 1)
                    } else {
                        "-".to_owned()
                    };
                    items.push(format!("{marker} {}", line(rng)));
                    if rng.below(4) == 0 {
                        let indent = " ".repeat(marker.len() + 1);
                        items.push(format!("{indent}- {}", line(rng)));
                    }
                }
                items.join("\n")
            }
        };
        blocks.push(block);
    }
    blocks.join("\n\n")
}

/// pulldown-cmark's events in the subset's terms: code spans as tags, soft breaks as line breaks,
/// adjacent text joined.
fn reference(text: &str) -> Vec<Event> {
    let mut out = Vec::new();
    for event in Parser::new_ext(text, Options::ENABLE_STRIKETHROUGH) {
        match event {
            cm::Event::Start(tag) => out.push(Event::Start(match tag {
                cm::Tag::Paragraph => Tag::Paragraph,
                cm::Tag::CodeBlock(_) => Tag::CodeBlock,
                cm::Tag::BlockQuote(_) => Tag::Quote,
                cm::Tag::List(start) => Tag::List(start.map(|s| s as u32)),
                cm::Tag::Item => Tag::Item,
                cm::Tag::Strong => Tag::Strong,
                cm::Tag::Emphasis => Tag::Emphasis,
                cm::Tag::Strikethrough => Tag::Strike,
                cm::Tag::Link { dest_url, .. } => Tag::Link(dest_url.to_string()),
                other => panic!("outside the subset: {other:?} in {text:?}"),
            })),
            cm::Event::End(_) => out.push(Event::End),
            cm::Event::Text(t) => out.push(Event::Text(t.to_string())),
            cm::Event::Code(t) => out.extend([
                Event::Start(Tag::Code),
                Event::Text(t.to_string()),
                Event::End,
            ]),
            cm::Event::SoftBreak => out.push(Event::Text("\n".to_owned())),
            other => panic!("outside the subset: {other:?} in {text:?}"),
        }
    }
    joined(out)
}

fn joined(events: Vec<Event>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for event in events {
        match (out.last_mut(), event) {
            (Some(Event::Text(last)), Event::Text(more)) => last.push_str(&more),
            (_, event) => out.push(event),
        }
    }
    out
}

#[test]
fn the_subset_parses_as_commonmark_does() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for case in 0..5_000 {
        let text = document(&mut rng);
        assert_eq!(
            joined(parse(&text)),
            reference(&text),
            "case {case}: {text:?}"
        );
    }
}

#[test]
fn hand_picked_cases_agree_with_commonmark() {
    for text in [
        "*a **b** c*",
        "**a *b* c**",
        "***a***",
        "*a**b*",
        "a*b*c",
        "snake_case_word",
        "_a_b_",
        "__a__b",
        "**a**b",
        "*(a)*",
        "a * b * c",
        "~~a **b**~~",
        "`a*b`*c*",
        "*a `*` b*",
        "[a](https://x.org/p_q_r) _b_",
        "```\n*not*\n```",
        "> a\n> > b",
        "- a\n- b\n\n1. c\n2. d",
        "3. three\n4. four",
        "- a\n  - b\n    - c",
    ] {
        assert_eq!(joined(parse(text)), reference(text), "{text:?}");
    }
}

/// Whether `html` holds no element but the subset's own.
fn only_own_elements(html: &str) -> bool {
    const OWN: &[&str] = &[
        "p",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "strong",
        "em",
        "del",
        "code",
        "a",
    ];
    html.match_indices('<').all(|(at, _)| {
        let rest = html[at + 1..].trim_start_matches('/');
        let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
        OWN.contains(&name.as_str()) && rest[name.len()..].starts_with([' ', '>'])
    })
}

#[test]
fn hostile_text_neither_panics_nor_becomes_markup() {
    const PIECES: &[&str] = &[
        "*",
        "_",
        "~",
        "`",
        "[",
        "]",
        "(",
        ")",
        ">",
        "<",
        "&",
        "\"",
        "'",
        "\\",
        "-",
        "+",
        "1.",
        "9)",
        " ",
        "  ",
        "\n",
        "\n\n",
        "\t",
        "\r",
        "```",
        "~~~",
        "http://",
        "https://x.y",
        "javascript:",
        "<script>",
        "é",
        "👍🏽",
        "\u{202e}",
        "a",
        "b",
        "\0",
    ];
    let mut rng = Rng(0xdead_beef_0bad_f00d);
    for case in 0..20_000 {
        let text: String = (0..rng.below(60)).map(|_| rng.pick(PIECES)).collect();
        let events = parse(&text);
        let mut depth = 0usize;
        for event in &events {
            match event {
                Event::Start(Tag::Link(url)) => {
                    assert!(
                        url.starts_with("http://") || url.starts_with("https://"),
                        "{text:?}"
                    );
                    depth += 1;
                }
                Event::Start(_) => depth += 1,
                Event::End => depth = depth.checked_sub(1).expect("an End without a Start"),
                Event::Text(_) => {}
            }
        }
        assert_eq!(depth, 0, "case {case}: unbalanced for {text:?}");
        let mut html = String::new();
        to_html(&events, &mut html);
        assert!(
            only_own_elements(&html),
            "case {case}: {text:?} gave {html}"
        );
    }
}

#[test]
fn deep_nesting_is_cut_off_not_followed() {
    for text in [
        ">".repeat(100_000),
        "- ".repeat(50_000) + "x",
        "*".repeat(100_000),
        "[".repeat(50_000) + "](https://x.y)",
        "`".repeat(10_000) + "x" + &"`".repeat(9_999),
    ] {
        let events = parse(&text);
        let quotes = events
            .iter()
            .filter(|e| matches!(e, Event::Start(Tag::Quote | Tag::Item)))
            .count();
        assert!(quotes <= MAX_DEPTH, "{quotes}");
    }
}
