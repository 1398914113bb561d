//! Where the page is: the path and query the server rendered, then, in the browser, the address bar
//! as the reader moves between rooms without reloading.
//!
//! Herald has two pages (a room's chat, or the name prompt in its place) and a "not found"; this is
//! all the routing they need. A general router would cost the browser bundle more than the rest of
//! the app does (every routed view type-erased, and its asynchronous hydration compiled in beside
//! the one that runs): 303 KiB of the 1 041 KiB wasm, measured in BENCHMARKS.md ("The browser
//! bundle").

use leptos::prelude::*;

use crate::protocol::{DEFAULT_ROOM, validate_room};

/// The requested URL, as the server saw it: provided by the server before it renders the page.
#[derive(Clone, Debug, Default)]
pub struct Requested {
    pub path: String,
    pub query: String,
}

/// Where this page is now; one per page, provided by [`provide`].
#[derive(Clone, Copy)]
pub struct Here {
    path: RwSignal<String>,
    query: RwSignal<String>,
}

/// What a path shows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Page {
    /// `/` (the default room) or `/r/{room}`.
    Room(String),
    /// `/r/{room}` with a name that cannot be a room: why not.
    BadRoom {
        room: String,
        why: String,
    },
    NotFound,
}

impl Page {
    /// What `path` (as it arrives: percent-encoded) shows.
    pub fn of(path: &str) -> Page {
        let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        let room = match path.as_ref() {
            "/" => DEFAULT_ROOM,
            _ => match path.strip_prefix("/r/") {
                Some(room) => room,
                None => return Page::NotFound,
            },
        };
        match validate_room(room) {
            Ok(()) => Page::Room(room.to_owned()),
            Err(e) => Page::BadRoom {
                room: room.to_owned(),
                why: e.message,
            },
        }
    }
}

/// The path of room `name`'s page: the default room lives at `/`.
pub fn room_path(name: &str) -> String {
    if name == DEFAULT_ROOM {
        "/".to_owned()
    } else {
        format!("/r/{name}")
    }
}

/// Makes [`Here`] available to the page: from the request on the server, from the address bar in
/// the browser (the same URL, so hydration sees the same page).
pub fn provide() -> Here {
    #[cfg(feature = "hydrate")]
    let requested = {
        let location = window().location();
        Requested {
            path: location.pathname().unwrap_or_default(),
            query: location
                .search()
                .unwrap_or_default()
                .trim_start_matches('?')
                .to_owned(),
        }
    };
    #[cfg(not(feature = "hydrate"))]
    let requested = use_context::<Requested>().unwrap_or_default();
    let here = Here {
        path: RwSignal::new(requested.path),
        query: RwSignal::new(requested.query),
    };
    provide_context(here);
    #[cfg(feature = "hydrate")]
    {
        // Back and forward move between rooms as links did.
        let popped = leptos::ev::Custom::<leptos::ev::Event>::new("popstate");
        std::mem::forget(window_event_listener(popped, move |_| {
            let location = window().location();
            here.path.set(location.pathname().unwrap_or_default());
            here.query.set(
                location
                    .search()
                    .unwrap_or_default()
                    .trim_start_matches('?')
                    .to_owned(),
            );
        }));
    }
    here
}

pub fn here() -> Here {
    expect_context::<Here>()
}

impl Here {
    /// The page the path shows (tracked).
    pub fn page(&self) -> Page {
        self.path.with(|path| Page::of(path))
    }

    /// The path (untracked: what a form posts back to).
    pub fn path(&self) -> String {
        self.path.get_untracked()
    }

    /// Whether the query has `key` (untracked: read once, by the page it was meant for).
    pub fn has_param(&self, key: &str) -> bool {
        self.query.with_untracked(|query| {
            query
                .split('&')
                .any(|pair| pair.split('=').next() == Some(key))
        })
    }

    /// The value of `key` in the query, if it is there (untracked, as [`Self::has_param`]).
    pub fn param(&self, key: &str) -> Option<String> {
        self.query.with_untracked(|query| {
            query.split('&').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                (name == key).then(|| value.to_owned())
            })
        })
    }

    /// Goes to `path` within the page: a new history entry, the address bar, and what is shown. The
    /// socket and the rooms already open stay.
    pub fn go(&self, path: &str) {
        #[cfg(feature = "hydrate")]
        {
            let history = window().history();
            if history
                .and_then(|h| h.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(path)))
                .is_err()
            {
                // No history to push onto: an ordinary page load does the same.
                let _ = window().location().set_href(path);
                return;
            }
        }
        self.query.set(String::new());
        self.path.set(path.to_owned());
    }

    /// A click on a link to `path` within the app: followed in the page, unless the reader asked
    /// for it elsewhere (a new tab or window: a modifier key, the middle button).
    pub fn follow(&self, ev: &leptos::ev::MouseEvent, path: &str) {
        if ev.button() != 0 || ev.ctrl_key() || ev.meta_key() || ev.shift_key() || ev.alt_key() {
            return;
        }
        ev.prevent_default();
        self.go(path);
    }
}

#[cfg(test)]
mod tests {
    use super::{Page, room_path};

    #[test]
    fn paths_name_their_page() {
        assert_eq!(Page::of("/"), Page::Room("general".into()));
        assert_eq!(Page::of("/r/design"), Page::Room("design".into()));
        assert_eq!(Page::of("/about"), Page::NotFound);
        assert!(matches!(Page::of("/r/no way"), Page::BadRoom { room, .. } if room == "no way"));
        assert!(
            matches!(Page::of("/r/no%20such!"), Page::BadRoom { room, .. } if room == "no such!")
        );
        assert!(matches!(Page::of("/r/%FF"), Page::BadRoom { room, .. } if room == "\u{FFFD}"));
        assert_eq!(
            Page::of(&room_path("general")),
            Page::Room("general".into())
        );
        assert_eq!(Page::of(&room_path("ops")), Page::Room("ops".into()));
    }
}
