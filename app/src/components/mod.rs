//! The chat page's building blocks. Each reads the tab's [`Tab`](crate::state::Tab) and the open
//! [`Room`](crate::state::Room) from context; none talks to the network itself.

mod body;
mod composer;
mod go_to_room;
mod layout;
mod message;
mod message_list;
mod people;
mod rooms;
pub mod sent_at;
mod status;

pub use body::{MessageBody, mentions};
pub use composer::Composer;
pub use go_to_room::GoToRoom;
pub use message::ReplyingTo;
pub use message_list::MessageList;
pub use people::{Avatar, Members, SameName, TypingIndicator};
pub use rooms::RoomList;
pub use status::ConnectionStatus;

use leptos::prelude::{GetValue, StoredValue, request_animation_frame};

/// Moves the keyboard's focus to the first element matching `selector`, if there is one.
#[cfg(feature = "hydrate")]
pub(crate) fn focus_on(selector: &str) {
    use wasm_bindgen::JsCast;
    if let Some(el) = leptos::prelude::document()
        .query_selector(selector)
        .ok()
        .flatten()
        .and_then(|el| el.dyn_into::<leptos::web_sys::HtmlElement>().ok())
    {
        let _ = el.focus();
    }
}

/// Runs `f` before the next paint, when the DOM has the latest update (an effect can run before it
/// lands) — unless the component that asked is gone by then: a reader who moves to another room
/// in between disposes the signals `f` would read, and reading a disposed signal panics.
pub(crate) fn before_next_paint(f: impl FnOnce() + 'static) {
    // Disposed with the component (or the effect run) that asked.
    let alive = StoredValue::new(());
    request_animation_frame(move || {
        if alive.try_get_value().is_some() {
            f();
        }
    });
}
