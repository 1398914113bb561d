//! A message's text as the reader sees it: plain text, with the web addresses in it made into links.
//! Nothing in a body is ever markup; only `http://` and `https://` addresses become links, so a
//! `javascript:` or `data:` address stays text.

use leptos::{either::Either, prelude::*};

/// Trailing characters that end a sentence or a quote rather than an address ("see
/// https://example.com.").
const TRAILING: &[char] = &['.', ',', ';', ':', '!', '?', '\'', '"', '»', '”', '’'];

/// A piece of a message's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    Text(&'a str),
    Link(&'a str),
}

/// Splits `body` into text and web addresses, in order; joined again they are `body` itself.
pub fn segments(body: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut done = 0; // Bytes of `body` already in `out`.
    let mut from = 0;
    while let Some(found) = body[from..].find("http") {
        let start = from + found;
        from = start + 4;
        // At the start of a word: "(see https://…)" is a link, "xhttps://…" is not.
        let after_boundary = word_edge(body[..start].chars().next_back());
        let rest = &body[start..];
        let scheme = if rest.starts_with("https://") {
            8
        } else if rest.starts_with("http://") {
            7
        } else {
            continue;
        };
        if !after_boundary {
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
            .unwrap_or(rest.len());
        let url = trim_end(&rest[..end]);
        if url.len() <= scheme {
            continue; // "https://" alone is no address.
        }
        if done < start {
            out.push(Segment::Text(&body[done..start]));
        }
        out.push(Segment::Link(url));
        done = start + url.len();
        from = done;
    }
    if done < body.len() {
        out.push(Segment::Text(&body[done..]));
    }
    out
}

/// Whether `body` calls on `name` with an "@": `@Ann` or `@ann,` mentions Ann, `@Annabel` and
/// `ann@example.com` do not. Names may hold spaces (`@Mary Jane`); case does not matter.
pub fn mentions(body: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let (body, name) = (body.to_lowercase(), name.to_lowercase());
    let mut from = 0;
    while let Some(at) = body[from..].find('@') {
        let start = from + at;
        from = start + 1;
        let rest = &body[start + 1..];
        if word_edge(body[..start].chars().next_back())
            && rest.starts_with(&name)
            && word_edge(rest[name.len()..].chars().next())
        {
            return true;
        }
    }
    false
}

/// Whether the character beside a spot (`None` at either end of the text) leaves it at the edge of a
/// word: what both a link and a mention must start at.
fn word_edge(beside: Option<char>) -> bool {
    beside.is_none_or(|c| !c.is_alphanumeric())
}

/// Drops the punctuation that follows an address in a sentence; a closing bracket stays when the
/// address opened one (`https://en.wikipedia.org/wiki/Rust_(programming_language)`).
fn trim_end(mut url: &str) -> &str {
    while let Some(last) = url.chars().next_back() {
        let unbalanced = |open: char| url.matches(open).count() < url.matches(last).count();
        let drop = TRAILING.contains(&last)
            || (last == ')' && unbalanced('('))
            || (last == ']' && unbalanced('['));
        if !drop {
            break;
        }
        url = &url[..url.len() - last.len_utf8()];
    }
    url
}

/// A message body: its text, with addresses as links that open in a new tab and tell the site
/// nothing about where they came from.
#[component]
pub fn MessageBody(text: String) -> impl IntoView {
    // `Either`, not `AnyView`: an erased view compiles its asynchronous hydration in (BENCHMARKS.md).
    let parts: Vec<_> = segments(&text)
        .into_iter()
        .map(|segment| match segment {
            Segment::Text(text) => Either::Left(text.to_owned()),
            Segment::Link(url) => Either::Right(view! {
                <a href=url.to_owned() target="_blank" rel="noopener noreferrer nofollow">
                    {url.to_owned()}
                </a>
            }),
        })
        .collect();
    view! { <p class="body">{parts}</p> }
}

#[cfg(test)]
mod tests {
    use super::{Segment::*, *};

    #[test]
    fn addresses_become_links_and_the_rest_stays_text() {
        assert_eq!(segments("no links here"), [Text("no links here")]);
        assert_eq!(segments(""), []);
        assert_eq!(
            segments("see https://example.com/a?b=1#c, then http://x.org."),
            [
                Text("see "),
                Link("https://example.com/a?b=1#c"),
                Text(", then "),
                Link("http://x.org"),
                Text(".")
            ]
        );
        assert_eq!(
            segments("(docs: https://en.wikipedia.org/wiki/Rust_(programming_language))"),
            [
                Text("(docs: "),
                Link("https://en.wikipedia.org/wiki/Rust_(programming_language)"),
                Text(")")
            ]
        );
        assert_eq!(
            segments("https://a.example\nnext line: «https://b.example/é» and zhttps://c.example"),
            [
                Link("https://a.example"),
                Text("\nnext line: «"),
                Link("https://b.example/é"),
                Text("» and zhttps://c.example")
            ],
            "an address glued to a word is not one"
        );
    }

    #[test]
    fn only_web_addresses_at_a_word_start_are_links() {
        for text in [
            "javascript:alert(1)",
            "data:text/html,<script>",
            "xhttps://example.com",
            "https://",
            "http://.",
            "httpx://example.com",
            "<a href=\"https://example.com\">",
        ] {
            let links: Vec<_> = segments(text)
                .into_iter()
                .filter(|s| matches!(s, Link(_)))
                .collect();
            let expected: &[Segment] = if text.starts_with("<a") {
                &[Link("https://example.com")]
            } else {
                &[]
            };
            assert_eq!(links, expected, "{text}");
        }
    }

    #[test]
    fn a_mention_is_an_at_and_the_whole_name() {
        for (body, name, expected) in [
            ("hey @Ann, look", "Ann", true),
            ("@ann", "Ann", true),
            ("thanks (@Mary Jane)!", "Mary Jane", true),
            ("ping @Annabel", "Ann", false),
            ("mail ann@example.com", "Ann", false),
            ("Ann without an at", "Ann", false),
            ("@Änne?", "änne", true),
            ("@", "", false),
        ] {
            assert_eq!(mentions(body, name), expected, "{body:?} for {name:?}");
        }
    }

    #[test]
    fn the_pieces_join_into_the_whole_text() {
        for text in [
            "a https://x.y b",
            "https://x.y",
            "«https://x.y» ok (https://z.w).",
            "http://a http://b",
        ] {
            let joined: String = segments(text)
                .into_iter()
                .map(|s| match s {
                    Text(t) | Link(t) => t,
                })
                .collect();
            assert_eq!(joined, text);
        }
    }
}
