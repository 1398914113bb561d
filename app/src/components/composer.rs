//! Where the user types. Enter sends, Shift+Enter starts a new line; PageUp and PageDown move the
//! conversation above; ↑ in an empty box edits one's last message and Escape drops a reply, as in
//! Slack and Discord.
//!
//! The box works from the first paint, before the wasm has arrived: the page's inline script
//! (`app/src/early.js`) enables it and holds what is sent with Enter; the composer takes both over
//! when it hydrates, and sends what was held. Without JavaScript it stays disabled (and the page says
//! why).

use leptos::{ev, prelude::*};

use crate::state::{Room, SocketState, Tab};

#[component]
pub fn Composer() -> impl IntoView {
    let tab = expect_context::<Tab>();
    let room = expect_context::<Room>();
    // The room's, not the component's: switching rooms rebuilds the composer, not the draft.
    let draft = room.draft;
    // Usable as soon as the page is hydrated: while disconnected, messages wait in the outbox.
    // (Before that, the inline script enables the box; see the module's note.)
    let ready = move || tab.hydrated.get();
    #[cfg(feature = "hydrate")]
    {
        let (typed, held) = take_early();
        // Before the view hydrates, so the box keeps the text rather than being set to "".
        if !typed.is_empty() && draft.with_untracked(String::is_empty) {
            draft.set(typed);
        }
        // After hydration: sending shows the message in the list, which must first match the page.
        let mut held = Some(held);
        Effect::new(move |_| {
            for body in held.take().unwrap_or_default() {
                if let Err(err) = tab.send_message(room, body.clone()) {
                    tab.last_error.set(Some(err.message));
                    // Kept for the reader to mend, unless they have written on since.
                    if draft.with_untracked(|d| d.trim().is_empty()) {
                        draft.set(body);
                    }
                }
            }
        });
    }
    let placeholder = move || match tab.connection.get() {
        SocketState::Loading => "Loading…".to_string(),
        SocketState::Connected => format!("Message {}", addressee(&tab, &room.name.get_value())),
        SocketState::Connecting
        | SocketState::Reconnecting { .. }
        | SocketState::Offline
        | SocketState::Stopped(_) => {
            "Offline: messages are sent when the connection is back".to_string()
        }
    };

    // As the server was started: the page says, and each `welcome` again.
    let max_body = move || tab.limits.with(|limits| limits.max_body_bytes as usize);

    // The message box is where a reader lands: after choosing a name, after moving to a room —
    // unless they are typing somewhere else.
    let input = NodeRef::<leptos::html::Textarea>::new();
    Effect::new(move |_| {
        // Once the box is enabled in the DOM (an effect can run before that update lands).
        #[cfg(feature = "hydrate")]
        if tab.hydrated.get() {
            crate::components::before_next_paint(move || {
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
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (tab, input);
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
        if ev.key() == "Escape" && room.replying.get_untracked().is_some() {
            ev.prevent_default();
            room.replying.set(None);
        }
        if ev.key() == "ArrowUp"
            && draft.with_untracked(String::is_empty)
            && let Some(seq) = room.last_own(&tab)
        {
            ev.prevent_default();
            room.editing.set(Some(seq));
        }
        // Reading back without leaving the box, as in Slack and Discord: PageUp and PageDown move
        // the conversation, not the caret.
        #[cfg(feature = "hydrate")]
        if matches!(ev.key().as_str(), "PageUp" | "PageDown")
            && !(ev.shift_key() || ev.ctrl_key() || ev.alt_key() || ev.meta_key())
            && let Some(list) = document().get_element_by_id("messages")
        {
            ev.prevent_default();
            let page = f64::from(list.client_height()) * 0.9;
            let by = if ev.key() == "PageUp" { -page } else { page };
            list.scroll_by_with_x_and_y(0.0, by);
        }
    };
    let on_submit = move |ev: ev::SubmitEvent| {
        ev.prevent_default();
        send();
    };

    view! {
        <crate::components::ReplyingTo />
        <form class="composer" data-testid="composer" on:submit=on_submit>
            <textarea
                node_ref=input
                id="message-box"
                name="body"
                rows="1"
                aria-label="Message"
                autocomplete="off"
                data-testid="composer-input"
                // The inline script's placeholder once it has enabled the box.
                data-placeholder=format!("Message {}", addressee(&tab, &room.name.get_value()))
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
        <p class="composer-limit" class:over=move || { draft.with(String::len) > max_body() }>
            {move || {
                let (len, max) = (draft.with(String::len), max_body());
                (len > max * 9 / 10).then(|| format!("{len} / {max} bytes"))
            }}
        </p>
    }
}

/// What was written before the wasm took over, as the inline script left it: the box's text and the
/// messages sent with Enter. Only the first composer finds them; the script stops holding from here.
#[cfg(feature = "hydrate")]
fn take_early() -> (String, Vec<String>) {
    use wasm_bindgen::{JsCast, JsValue};
    let window = window();
    let key = JsValue::from_str(EARLY);
    let Some(held) = js_sys::Reflect::get(&window, &key)
        .ok()
        .filter(js_sys::Array::is_array)
        .map(|held| js_sys::Array::from(&held))
    else {
        return Default::default();
    };
    let _ = js_sys::Reflect::set(&window, &key, &JsValue::NULL);
    let typed = document()
        .get_element_by_id("message-box")
        .and_then(|el| el.dyn_into::<web_sys::HtmlTextAreaElement>().ok())
        .map(|b| b.value())
        .unwrap_or_default();
    (typed, held.iter().filter_map(|b| b.as_string()).collect())
}

/// The global the inline script holds early messages in (`app/src/early.js`).
#[cfg(feature = "hydrate")]
const EARLY: &str = "heraldEarly";

/// Whom the box writes to, in its placeholder: `#general`, or a private room's or a
/// conversation's title.
fn addressee(tab: &Tab, room: &str) -> String {
    match crate::protocol::is_private(room) {
        true => tab.title(room),
        false => format!("#{room}"),
    }
}
