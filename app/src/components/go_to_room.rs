//! "go to room…" under the room list: a plain form (`GET /r?room=`, which the server turns into the
//! room's page) that works before the wasm; once hydrated, a move within the page. What is written
//! becomes a room's name by the one rule ([`normalize_room`](crate::protocol::normalize_room)): "Design Team" goes to `design-team`,
//! and the line under the field says so as it is typed, or says what a name may hold, before
//! anything is submitted. That line and the field's `aria-invalid` are set on the DOM as events
//! come, not through signals: nothing else reads them, and reactive attributes cost the wasm.

use leptos::prelude::*;

use crate::{
    location::{here, room_path},
    protocol::MAX_ROOM_CHARS,
};

/// What the line under the field says about what is typed: nothing while it is a room's name as it
/// stands, where it goes if it changes, or why it cannot be a room's name.
#[cfg(any(feature = "hydrate", test))]
fn hint(typed: &str) -> String {
    let typed = typed.trim();
    if typed.is_empty() {
        return String::new();
    }
    match crate::protocol::normalize_room(typed) {
        Ok(room) if room == typed => String::new(),
        Ok(room) => format!("Goes to #{room}"),
        Err(mut e) => {
            // "a room name is …" as a sentence of its own.
            if let Some(first) = e.message.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            e.message
        }
    }
}

#[component]
pub fn GoToRoom() -> impl IntoView {
    let location = here();
    view! {
        // A plain form: the server turns `/r?room=Design Team` into `/r/design-team` too.
        <form class="go-to-room" method="get" action="/r" on:submit=move |ev| {
            // Hydrated: never the browser's own "Please match the requested format".
            ev.prevent_default();
            if let Some(room) = submitted() {
                location.go(&room_path(&room));
            }
        }>
            <input
                name="room"
                id="room-input"
                data-testid="room-input"
                placeholder="go to room…"
                aria-label="Go to room"
                aria-describedby="room-hint"
                autocomplete="off"
                autocapitalize="none"
                spellcheck="false"
                // Spaces collapse into one `-`, so a name written with a few is still within bounds.
                maxlength=MAX_ROOM_CHARS * 2
                required
                on:input=move |ev| said(&event_target_value(&ev), false)
            />
            <p id="room-hint" class="room-hint" data-testid="room-hint" aria-live="polite"></p>
        </form>
    }
}

/// Puts the hint for `typed` under the field; `tried`: it was submitted, and a refusal marks the
/// field invalid.
fn said(typed: &str, tried: bool) {
    #[cfg(feature = "hydrate")]
    {
        let doc = document();
        let text = hint(typed);
        if let Some(hint) = doc.get_element_by_id("room-hint") {
            hint.set_text_content(Some(&text));
        }
        if let Some(input) = doc.get_element_by_id("room-input") {
            let invalid = tried && crate::protocol::normalize_room(typed).is_err();
            let _ = input.set_attribute("aria-invalid", if invalid { "true" } else { "false" });
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (typed, tried);
}

/// The room the field names, emptying it; or `None`, with the reason said under it.
fn submitted() -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let input = document()
            .get_element_by_id("room-input")?
            .dyn_into::<web_sys::HtmlInputElement>()
            .ok()?;
        let typed = input.value();
        match crate::protocol::normalize_room(&typed) {
            Ok(room) => {
                input.set_value("");
                said("", false);
                Some(room)
            }
            Err(_) => {
                said(&typed, true);
                None
            }
        }
    }
    #[cfg(not(feature = "hydrate"))]
    None
}

#[cfg(test)]
mod tests {
    use super::hint;

    #[test]
    fn the_field_says_where_a_name_goes_or_why_it_cannot() {
        assert_eq!(hint(""), "");
        assert_eq!(hint("ops"), "");
        assert_eq!(hint("Design Team"), "Goes to #design-team");
        let why = hint("a/b");
        assert!(
            why.starts_with("A room name is") && why.contains("spaces become -"),
            "{why}"
        );
    }
}
