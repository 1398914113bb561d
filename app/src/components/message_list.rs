//! The conversation: every message received, oldest first, kept scrolled to the newest while the reader
//! is at the bottom.

use leptos::{html, prelude::*};

use crate::state::ChatState;

/// How close to the bottom (in CSS pixels) the reader must be for a new message to scroll the list.
/// Someone reading older messages further up is not yanked down.
const STICK_TO_BOTTOM_PX: i32 = 160;

#[component]
pub fn MessageList() -> impl IntoView {
    let chat = expect_context::<ChatState>();
    let scroller = NodeRef::<html::Div>::new();

    // Runs after each change of the list has reached the DOM.
    Effect::new(move |_| {
        chat.messages.track();
        chat.pending.track();
        if let Some(el) = scroller.get() {
            let from_bottom = el.scroll_height() - el.scroll_top() - el.client_height();
            // The newest message is already laid out, so allow for its own height too.
            let newest = el.last_element_child().map_or(0, |li| li.client_height());
            if from_bottom <= STICK_TO_BOTTOM_PX + newest {
                el.set_scroll_top(el.scroll_height());
            }
        }
    });

    let me = chat.me;
    view! {
        <div class="messages-scroller" node_ref=scroller>
            <Show when=move || chat.messages.with(Vec::is_empty)>
                <p class="empty">"No messages yet. Say hello!"</p>
            </Show>
            <Show when=move || chat.gap.get()>
                <p class="gap" data-testid="gap">
                    "Some messages from while you were away are no longer kept and are not shown."
                </p>
            </Show>
            <ol class="messages" data-testid="messages" aria-live="polite">
                <For each=move || chat.messages.get() key=|shown| shown.key() let:shown>
                    {
                        let mine = me.with_untracked(|me| me.as_ref().is_some_and(|me| me.id == shown.msg.author.id));
                        view! {
                            <li class="message" class:mine=mine data-seq=shown.msg.seq>
                                <div class="meta">
                                    <span class="author">{shown.msg.author.name}</span>
                                    <time>{clock(shown.msg.sent_at)}</time>
                                </div>
                                // Text, never markup: Leptos escapes it.
                                <p class="body">{shown.msg.body}</p>
                            </li>
                        }
                    }
                </For>
                <For each=move || chat.pending.get() key=|p| p.client_id.clone() let:pending>
                    <li class="message mine pending" data-testid="pending">
                        <div class="meta">
                            <span class="sending">"sending…"</span>
                        </div>
                        <p class="body">{pending.body}</p>
                    </li>
                </For>
            </ol>
        </div>
    }
}

/// `HH:MM` in the reader's own time zone.
#[cfg(feature = "hydrate")]
fn clock(sent_at_ms: u64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(sent_at_ms as f64));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}

/// On the server the reader's time zone is unknown; messages are only rendered in the browser anyway.
#[cfg(not(feature = "hydrate"))]
fn clock(sent_at_ms: u64) -> String {
    let minutes_of_day = (sent_at_ms / 60_000) % (24 * 60);
    format!("{:02}:{:02} UTC", minutes_of_day / 60, minutes_of_day % 60)
}
