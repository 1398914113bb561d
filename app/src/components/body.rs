//! A message's text as the reader sees it: its Markdown (`crate::markdown`) drawn as elements —
//! written as HTML by the server, built as the same elements by the browser — and whether it calls
//! on the reader by name. Text is never markup: only the subset's own tags are ever made.

use leptos::{either::Either, prelude::*};

use crate::markdown;

/// Whether `body` calls on `name` with an "@", or on the whole room (`@room`): `@Ann` or `@ann,`
/// mentions Ann, `@Annabel` and `ann@example.com` do not. Names may hold spaces (`@Mary Jane`);
/// case does not matter.
pub fn mentions(body: &str, name: &str) -> bool {
    // Compared a character at a time (`str::to_lowercase` would bring 4 KB of code to the page).
    let fold = |s: &str| s.chars().flat_map(char::to_lowercase).collect::<Vec<_>>();
    let body = fold(body);
    calls_on(&body, &fold(name)) || calls_on(&body, &ROOM)
}

/// `@room` ([`crate::protocol::ROOM_MENTION`]), as [`calls_on`] compares it.
const ROOM: [char; 4] = ['r', 'o', 'o', 'm'];

/// Whether the folded `body` has `@` and the folded `name` at word edges. Not inlined: the page
/// carries its code once for both callers (each copy cost the wasm over a kilobyte of brotli).
#[inline(never)]
fn calls_on(body: &[char], name: &[char]) -> bool {
    !name.is_empty()
        && (0..body.len()).any(|at| {
            body[at] == '@'
                && word_edge(at.checked_sub(1).map(|b| body[b]))
                && body[at + 1..].starts_with(name)
                && word_edge(body.get(at + 1 + name.len()).copied())
        })
}

/// Whether the character beside a spot (`None` at either end of the text) leaves it at the edge of a
/// word: what both a link and a mention must start at.
fn word_edge(beside: Option<char>) -> bool {
    beside.is_none_or(|c| !c.is_alphanumeric())
}

/// A message body. The server writes its elements into the page; the browser builds them from
/// the same events ([`fill`]), also over what the server wrote when it takes the page over (the
/// same elements again, so nothing shows a difference). A long body is folded behind "Show more"
/// (`data-act="fold"`) unless the reader unfolded it.
#[component]
pub fn MessageBody(text: String, unfolded: bool) -> impl IntoView {
    let long = markdown::is_long(&text);
    // `Either`, not `Option`: a `None` leaves a placeholder comment, and in a freshly built row
    // it lands inside the body (whose elements are built by hand), not beside it.
    let fold = if !long {
        Either::Left(())
    } else {
        Either::Right(view! {
            <button type="button" class="fold" data-act="fold" data-testid="fold" aria-expanded=unfolded.to_string()>
                {if unfolded { "Show less" } else { "Show more" }}
            </button>
        })
    };
    #[cfg(not(feature = "hydrate"))]
    let body = {
        let mut html = String::new();
        markdown::to_html(&markdown::parse(&text), &mut html);
        view! { <div class="body" data-testid="body" class:long=long class:unfolded=unfolded inner_html=html></div> }
    };
    #[cfg(feature = "hydrate")]
    let body = view! { <div class="body" data-testid="body" class:long=long class:unfolded=unfolded use:fill=text></div> };
    view! { {body} {fold} }
}

/// Builds a body's elements in `el` from its text (what [`markdown::to_html`] writes).
#[cfg(feature = "hydrate")]
fn fill(el: leptos::web_sys::Element, text: String) {
    use markdown::Event;
    let doc = document();
    el.set_text_content(None);
    let mut open = vec![el];
    for event in markdown::parse(&text) {
        let top = open.last().cloned();
        match (event, top) {
            (Event::Start(tag), Some(top)) => {
                let (name, attr) = markdown::element(&tag);
                let Ok(child) = doc.create_element(name) else {
                    continue;
                };
                if let Some((key, value)) = attr {
                    let _ = child.set_attribute(key, &value);
                }
                if name == "a" {
                    for (key, value) in markdown::LINK_ATTRIBUTES {
                        let _ = child.set_attribute(key, value);
                    }
                }
                let _ = top.append_child(&child);
                open.push(child);
            }
            (Event::End, _) if open.len() > 1 => {
                open.pop();
            }
            (Event::Text(text), Some(top)) => {
                let _ = top.append_with_str_1(&text);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mention_is_an_at_and_the_whole_name_or_the_room() {
        for (body, name, expected) in [
            ("hey @Ann, look", "Ann", true),
            ("@ann", "Ann", true),
            ("thanks (@Mary Jane)!", "Mary Jane", true),
            ("ping @Annabel", "Ann", false),
            ("mail ann@example.com", "Ann", false),
            ("Ann without an at", "Ann", false),
            ("@Änne?", "änne", true),
            ("@", "", false),
            ("@Room, lunch!", "Ann", true),
            ("@roomy", "Ann", false),
        ] {
            assert_eq!(mentions(body, name), expected, "{body:?} for {name:?}");
        }
        assert!(
            ROOM.iter()
                .copied()
                .eq(crate::protocol::ROOM_MENTION.chars())
        );
    }
}
