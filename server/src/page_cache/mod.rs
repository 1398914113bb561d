//! The chat page, rendered once per room state and kept: a crowd reloading a room after a deploy or
//! a network blip is a crowd of identical renders, all but a few words.
//!
//! A room's page is the same for every reader but for their id and name (the top bar, the rename
//! form, the `<meta>` the client starts from) and the CSP nonce. The rows are rendered alike for
//! everyone: a reader's own messages and mentions are marked in the browser (app/src/early.js). So
//! a page is rendered with stand-ins for those three values, cut where they appear into fixed
//! pieces, each compressed once for gzip and brotli ([`stitch`]), and a request writes the pieces
//! around the reader's own values, escaped as Leptos escapes them where they stand.
//!
//! A page is kept for one room state, `(epoch, last seq)`, and made again when the room changes. The
//! first request for a state is rendered afresh; the second makes the template (~7 ms: two renders
//! and the compression, off the connections' threads) while the requests arriving meanwhile wait
//! for it; every later one is served from it (~30 µs). A room that changes faster than its page is
//! asked for is rendered afresh each time, as without the cache.
//! The cut is checked: the page is rendered twice with different stand-ins, and if the two differ
//! anywhere but at the stand-ins (the page would depend on its reader in a way the cut cannot
//! carry) it is not cached: every such page is rendered afresh, and a warning says so once.
//! `--page-cache false` renders every page afresh. docs/ARCHITECTURE.md, "The page cache".

pub mod stitch;

use std::{
    borrow::Cow,
    collections::HashMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use app::protocol::Identity;

use stitch::{Body, Encoding, Piece};

/// Rooms whose page is kept (the newest state of each). A page of 50 messages is ~63 KB of HTML
/// and ~25 KB compressed twice: at most ~11 MB.
const MAX_PAGES: usize = 128;

/// Room pages as rendered for their current state.
pub struct PageCache {
    enabled: bool,
    pages: Mutex<HashMap<String, Arc<Entry>>>,
    warned: AtomicBool,
}

/// One room page's state and, once rendered, its template (`None` if it could not be cut).
struct Entry {
    epoch: String,
    last: u64,
    /// A request for this state has been rendered afresh already.
    asked: AtomicBool,
    template: tokio::sync::OnceCell<Option<Arc<Template>>>,
}

impl PageCache {
    pub fn new(enabled: bool) -> PageCache {
        PageCache {
            enabled,
            pages: Mutex::new(HashMap::new()),
            warned: AtomicBool::new(false),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Lets go of the page kept for `path` (its room was deleted: its words go from memory too).
    pub fn forget(&self, path: &str) {
        self.pages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
    }

    /// The template of the page at `path` for the room state `(epoch, last)`: kept, or made by
    /// `render` (given two sets of stand-ins, it renders the page with each); `None` when the page
    /// is to be rendered afresh (the first request for a state, or a page that cannot be cut). A
    /// newer state already kept is used as it is (a page that shows more than asked for is as
    /// good: its cursor says where the live stream takes over).
    pub async fn template<F, Fut>(
        &self,
        path: &str,
        epoch: &str,
        last: u64,
        render: F,
    ) -> Option<Arc<Template>>
    where
        F: FnOnce([Standins; 2]) -> Fut,
        Fut: Future<Output = Option<[String; 2]>>,
    {
        let entry = {
            let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
            match pages.get(path) {
                Some(entry) if entry.epoch == epoch && entry.last >= last => {
                    // The first request for a state is rendered afresh (~1.5 ms); making the
                    // template (~7 ms) pays from the second on. A room that changes faster than
                    // its page is asked for never pays it.
                    if entry.template.initialized() || entry.asked.swap(true, Ordering::Relaxed) {
                        entry.clone()
                    } else {
                        return None;
                    }
                }
                _ => {
                    if pages.len() >= MAX_PAGES
                        && !pages.contains_key(path)
                        && let Some(any) = pages.keys().next().cloned()
                    {
                        pages.remove(&any);
                    }
                    let entry = Arc::new(Entry {
                        epoch: epoch.to_owned(),
                        last,
                        asked: AtomicBool::new(true),
                        template: tokio::sync::OnceCell::new(),
                    });
                    pages.insert(path.to_owned(), entry);
                    return None;
                }
            }
        };
        entry
            .template
            .get_or_init(|| async {
                let standins = [Standins::new(), Standins::new()];
                let [first, second] = render(standins.clone()).await?;
                // Compressing takes milliseconds: off the threads that serve connections.
                let cut = tokio::task::spawn_blocking(move || {
                    Template::cut(&first, &standins[0], &second, &standins[1])
                })
                .await
                .ok()?;
                match cut {
                    Ok(template) => Some(Arc::new(template)),
                    Err(why) => {
                        if !self.warned.swap(true, Ordering::Relaxed) {
                            tracing::warn!("chat pages are rendered afresh each time: {why}");
                        }
                        None
                    }
                }
            })
            .await
            .clone()
    }
}

/// What a page is rendered with in place of a reader's id, name and nonce: a random word no
/// message can hold (it is never sent), then a letter for which value it stands for.
#[derive(Clone)]
pub struct Standins {
    prefix: String,
}

impl Standins {
    fn new() -> Standins {
        Standins {
            prefix: format!("hRLD{}", crate::ids::random_hex(12)),
        }
    }

    pub fn reader(&self) -> Identity {
        Identity {
            id: format!("{}{}", self.prefix, Value::Id.letter()),
            name: format!("{}{}", self.prefix, Value::Name.letter()),
        }
    }

    pub fn nonce(&self) -> String {
        format!("{}{}", self.prefix, Value::Nonce.letter())
    }
}

/// Which of the reader's values a hole takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value {
    Id,
    Name,
    Nonce,
}

impl Value {
    fn letter(self) -> char {
        match self {
            Value::Id => 'i',
            Value::Name => 'n',
            Value::Nonce => 'c',
        }
    }

    fn from_letter(letter: u8) -> Option<Value> {
        [Value::Id, Value::Name, Value::Nonce]
            .into_iter()
            .find(|v| v.letter() as u8 == letter)
    }
}

/// Where in the HTML a hole is, which says how its value is escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Context {
    /// Between tags.
    Text,
    /// A double-quoted attribute's value.
    Attribute,
    /// A JSON string inside a double-quoted attribute (the `<meta>` the client starts from).
    JsonInAttribute,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hole {
    value: Value,
    context: Context,
}

impl Hole {
    fn text<'a>(self, reader: &'a Identity, nonce: &'a str) -> Cow<'a, str> {
        let raw = match self.value {
            Value::Id => reader.id.as_str(),
            Value::Name => reader.name.as_str(),
            Value::Nonce => nonce,
        };
        // The escaping Leptos (tachys) applies to text and to attribute values.
        match self.context {
            Context::Text => html_escape::encode_text(raw),
            Context::Attribute => html_escape::encode_double_quoted_attribute(raw),
            Context::JsonInAttribute => {
                let json = serde_json::Value::from(raw).to_string();
                let inner = &json[1..json.len() - 1];
                Cow::Owned(html_escape::encode_double_quoted_attribute(inner).into_owned())
            }
        }
    }
}

/// A page cut at its reader's values.
pub struct Template {
    parts: Vec<Part>,
}

enum Part {
    Fixed(Piece),
    Hole(Hole),
}

/// A page's text cut at the stand-ins: the fixed text between them, and what each one was.
fn cut<'a>(html: &'a str, standins: &Standins) -> Result<(Vec<&'a str>, Vec<Hole>), String> {
    let mut fixed = Vec::new();
    let mut holes = Vec::new();
    let mut from = 0;
    for (at, _) in html.match_indices(&standins.prefix) {
        let end = at + standins.prefix.len();
        let value = html
            .as_bytes()
            .get(end)
            .and_then(|&letter| Value::from_letter(letter))
            .ok_or("a stand-in without its letter")?;
        let before = &html[from..at];
        let context = if before.ends_with("&quot;") {
            Context::JsonInAttribute
        } else if before.ends_with("=\"") {
            Context::Attribute
        } else if before.ends_with('>') {
            Context::Text
        } else {
            return Err(format!(
                "the reader's {value:?} stands where it cannot be escaped: {:?}",
                &before[before.len().saturating_sub(40)..]
            ));
        };
        fixed.push(before);
        holes.push(Hole { value, context });
        from = end + 1;
    }
    fixed.push(&html[from..]);
    Ok((fixed, holes))
}

impl Template {
    /// The template of two renders of one page with different stand-ins; an error if they differ
    /// anywhere else.
    pub fn cut(
        first: &str,
        first_standins: &Standins,
        second: &str,
        second_standins: &Standins,
    ) -> Result<Template, String> {
        let (fixed, holes) = cut(first, first_standins)?;
        let (other_fixed, other_holes) = cut(second, second_standins)?;
        if fixed != other_fixed || holes != other_holes {
            return Err("the page depends on its reader beyond their id, name and nonce".into());
        }
        let mut parts = Vec::with_capacity(fixed.len() + holes.len());
        let mut holes = holes.into_iter();
        for text in fixed {
            if !text.is_empty() {
                parts.push(Part::Fixed(Piece::new(text.to_owned())));
            }
            if let Some(hole) = holes.next() {
                parts.push(Part::Hole(hole));
            }
        }
        Ok(Template { parts })
    }

    /// The page for `reader` with `nonce`, in `encoding`.
    pub fn body(&self, encoding: Encoding, reader: &Identity, nonce: &str) -> Vec<u8> {
        let mut body = Body::new(encoding, self.size_hint(encoding));
        for part in &self.parts {
            match part {
                Part::Fixed(piece) => body.piece(piece),
                Part::Hole(hole) => body.text(&hole.text(reader, nonce)),
            }
        }
        body.finish()
    }

    fn size_hint(&self, encoding: Encoding) -> usize {
        let fixed: usize = self
            .parts
            .iter()
            .map(|part| match part {
                Part::Fixed(piece) => piece.len(encoding),
                Part::Hole(_) => 200,
            })
            .sum();
        fixed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(standins: &Standins) -> String {
        let reader = standins.reader();
        let nonce = standins.nonce();
        let meta = html_escape::encode_double_quoted_attribute(
            &serde_json::json!({ "id": reader.id, "name": reader.name }).to_string(),
        )
        .into_owned();
        format!(
            "<style nonce=\"{nonce}\">p{{}}</style><meta name=\"herald-user\" content=\"{meta}\">\
             <summary>{}</summary><input value=\"{}\"><ol><li>hello</li></ol>",
            reader.name, reader.name
        )
    }

    #[test]
    fn a_reader_s_values_go_in_as_a_render_would_put_them() {
        let (a, b) = (Standins::new(), Standins::new());
        let template = Template::cut(&page(&a), &a, &page(&b), &b).expect("cut");
        let reader = Identity {
            id: "0a1b".into(),
            name: "Ann \"&\" <Bob> 'x' \\ é".into(),
        };
        let body = template.body(Encoding::Identity, &reader, "n0nce");
        let meta = html_escape::encode_double_quoted_attribute(
            &serde_json::json!({ "id": reader.id, "name": reader.name }).to_string(),
        )
        .into_owned();
        let expected = format!(
            "<style nonce=\"n0nce\">p{{}}</style><meta name=\"herald-user\" content=\"{meta}\">\
             <summary>{}</summary><input value=\"{}\"><ol><li>hello</li></ol>",
            html_escape::encode_text(&reader.name),
            html_escape::encode_double_quoted_attribute(&reader.name)
        );
        assert_eq!(String::from_utf8(body).expect("utf-8"), expected);
    }

    #[test]
    fn a_page_that_depends_on_its_reader_otherwise_is_not_cut() {
        let (a, b) = (Standins::new(), Standins::new());
        // The first letter of the name, as an avatar would show it: the stand-ins differ there.
        let initial = |s: &Standins| format!("{}<b>{}</b>", page(s), &s.reader().name[4..16]);
        assert!(Template::cut(&initial(&a), &a, &initial(&b), &b).is_err());
        // A name where it could not be escaped (inside a comment).
        let comment = |s: &Standins| format!("<!-- {} -->", s.reader().name);
        assert!(Template::cut(&comment(&a), &a, &comment(&b), &b).is_err());
    }
}
