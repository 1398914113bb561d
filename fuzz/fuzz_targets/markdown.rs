//! A message's Markdown, as both ends parse every body they show: whatever the text, it never
//! panics, every tag it opens is closed, a link goes only to a web address, and the HTML written
//! from it holds no element but the subset's own (all else is escaped text).
#![no_main]

use herald_fuzz::markdown::{Event, Tag, parse, to_html};
use libfuzzer_sys::fuzz_target;

const OWN: &[&str] = &["p", "pre", "blockquote", "ul", "ol", "li", "strong", "em", "del", "code", "a"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // A body is UTF-8 (the protocol refuses anything else).
    };
    let events = parse(text);
    let mut depth = 0usize;
    for event in &events {
        match event {
            Event::Start(tag) => {
                if let Tag::Link(url) = tag {
                    assert!(url.starts_with("https://") || url.starts_with("http://"));
                }
                depth += 1;
            }
            Event::End => depth = depth.checked_sub(1).expect("an End without its Start"),
            Event::Text(_) => {}
        }
    }
    assert_eq!(depth, 0, "a tag left open");
    let mut html = String::new();
    to_html(&events, &mut html);
    for (at, _) in html.match_indices('<') {
        let rest = html[at + 1..].trim_start_matches('/');
        let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
        assert!(OWN.contains(&name.as_str()), "markup from text: {html}");
    }
});
