//! Where the user types. Enter sends, Shift+Enter starts a new line. Disabled, and saying why, until the
//! page is hydrated and connected.

use leptos::{ev, prelude::*};

use crate::{
    protocol::MAX_BODY_BYTES,
    state::{Connection, Room, Tab},
};

#[component]
pub fn Composer() -> impl IntoView {
    let tab = expect_context::<Tab>();
    let room = expect_context::<Room>();
    // The room's, not the component's: switching rooms rebuilds the composer, not the draft.
    let draft = room.draft;
    // Usable as soon as the page is hydrated: while disconnected, messages wait in the outbox.
    let ready = move || tab.hydrated.get();
    let placeholder = move || match tab.connection.get() {
        Connection::Loading => "Loading…".to_string(),
        Connection::Connected => format!("Message #{}", room.name.get_value()),
        Connection::Connecting | Connection::Reconnecting { .. } | Connection::Offline => {
            "Offline: messages are sent when the connection is back".to_string()
        }
    };

    // The message box is where a reader lands: after choosing a name, after moving to a room —
    // unless they are typing somewhere else.
    let input = NodeRef::<leptos::html::Textarea>::new();
    Effect::new(move |_| {
        if !tab.hydrated.get() {
            return;
        }
        // Once the box is enabled in the DOM (an effect can run before that update lands).
        #[cfg(feature = "hydrate")]
        request_animation_frame(move || {
            let busy = document().active_element().is_some_and(|el| {
                matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                    && el.get_attribute("data-testid").as_deref() != Some("room-input")
            });
            if let Some(input) = input.get_untracked()
                && !busy
            {
                let _ = input.focus();
            }
        });
    });

    let send = move || {
        let body = draft.get_untracked();
        if body.trim().is_empty() {
            return; // Enter on an empty box is not an error worth a message.
        }
        // The server checks again; checking here tells the user before anything is sent.
        match tab.send_message(room, body) {
            Ok(()) => {
                draft.set(String::new());
                tab.last_error.set(None);
            }
            Err(err) => tab.last_error.set(Some(err.message)),
        }
    };

    let on_keydown = move |ev: ev::KeyboardEvent| {
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
            ev.prevent_default();
            send();
        }
    };
    let on_submit = move |ev: ev::SubmitEvent| {
        ev.prevent_default();
        send();
    };

    view! {
        <form class="composer" data-testid="composer" on:submit=on_submit>
            <textarea
                node_ref=input
                id="message-box"
                name="body"
                rows="1"
                aria-label="Message"
                autocomplete="off"
                data-testid="composer-input"
                placeholder=placeholder
                disabled=move || !ready()
                prop:value=move || draft.get()
                on:input=move |ev| {
                    draft.set(event_target_value(&ev));
                    // An error was about what was sent or typed before: the reader has moved on.
                    if tab.last_error.with_untracked(Option::is_some) {
                        tab.last_error.set(None);
                    }
                    #[cfg(feature = "hydrate")]
                    tab.typed(room, js_sys::Date::now());
                }
                on:keydown=on_keydown
            ></textarea>
            <button type="submit" disabled=move || !ready() || draft.with(|d| d.trim().is_empty())>
                "Send"
            </button>
        </form>
        <p class="composer-hint" role="alert" data-testid="composer-error">
            {move || tab.last_error.get()}
        </p>
        <p class="composer-limit" class:over=move || draft.with(|d| d.len() > MAX_BODY_BYTES)>
            {move || {
                let len = draft.with(String::len);
                (len > MAX_BODY_BYTES * 9 / 10).then(|| format!("{len} / {MAX_BODY_BYTES} bytes"))
            }}
        </p>
    }
}
