//! The conversation: the room's messages, oldest first, with join/leave notices among them. Kept
//! scrolled to the newest while the reader is at the bottom; scrolling to the top loads the page
//! before what is shown, without moving what the reader is looking at.

use leptos::{html, prelude::*};

use crate::{
    components::{
        MessageBody,
        sent_at::{iso, sent_label},
    },
    protocol::MessageKind,
    state::{Line, Room, Tab},
};

/// How close to the bottom (in CSS pixels) the reader must be for a new message to scroll the list.
/// Someone reading older messages further up is not yanked down.
const STICK_TO_BOTTOM_PX: i32 = 160;

/// How close to the top (in CSS pixels) scrolling must come for the older page to be asked for.
const LOAD_OLDER_PX: i32 = 80;

#[component]
pub fn MessageList() -> impl IntoView {
    let room = expect_context::<Room>();
    let tab = expect_context::<Tab>();
    let scroller = NodeRef::<html::Div>::new();
    // What the list looked like at the last change: its first line and its height.
    let before = StoredValue::new((None::<String>, 0));

    // Runs after each change of the list has reached the DOM.
    Effect::new(move |_| {
        let first = room.lines.with(|lines| lines.first().map(Line::key));
        room.pending.track();
        let Some(el) = scroller.get() else {
            return;
        };
        let (first_before, height_before) = before.get_value();
        if height_before == 0 {
            // First look at the room: start at the newest message.
            el.set_scroll_top(el.scroll_height());
        } else if first_before.is_some() && first != first_before {
            // Older messages went in above: keep what the reader sees where it was.
            el.set_scroll_top(el.scroll_top() + el.scroll_height() - height_before);
        } else {
            let from_bottom = el.scroll_height() - el.scroll_top() - el.client_height();
            // The newest message is already laid out, so allow for its own height too.
            let newest = el
                .query_selector("ol > li:last-child")
                .ok()
                .flatten()
                .map_or(0, |li| li.client_height());
            if from_bottom <= STICK_TO_BOTTOM_PX + newest {
                el.set_scroll_top(el.scroll_height());
            }
        }
        before.set_value((first, el.scroll_height()));
    });

    let load_older = move || {
        if let Some(request) = room.older() {
            tab.send(request);
        }
    };
    let on_scroll = move |_| {
        if scroller
            .get()
            .is_some_and(|el| el.scroll_top() <= LOAD_OLDER_PX)
        {
            load_older();
        }
    };

    view! {
        <div class="messages-scroller" node_ref=scroller on:scroll=on_scroll data-testid="scroller">
            <Show when=move || room.has_more.get()>
                <button
                    type="button"
                    class="older"
                    data-testid="older"
                    disabled=move || room.loading_older.get()
                    on:click=move |_| load_older()
                >
                    {move || {
                        if room.loading_older.get() { "Loading older messages…" } else { "Older messages" }
                    }}
                </button>
            </Show>
            <Show when=move || room.lines.with(Vec::is_empty) && room.pending.with(Vec::is_empty)>
                <p class="empty">"No messages yet. Say hello!"</p>
            </Show>
            <Show when=move || room.gap.get()>
                <p class="gap" data-testid="gap">
                    "Some messages from while you were away are no longer kept and are not shown."
                </p>
            </Show>
            <ol class="messages" data-testid="messages" aria-live="polite">
                <For each=move || room.lines.get() key=Line::key let:line>
                    {match line {
                        Line::Message(shown) if shown.msg.kind == MessageKind::Announcement => {
                            let sent_at = shown.msg.sent_at;
                            view! {
                                <li class="announcement" data-testid="announcement" data-seq=shown.msg.seq>
                                    <div class="meta">
                                        <span class="label">"Announcement"</span>
                                        <span class="author">{shown.msg.author.name}</span>
                                        <time datetime=iso(sent_at)>{move || sent_label(sent_at, tab.hydrated.get())}</time>
                                    </div>
                                    <MessageBody text=shown.msg.body />
                                </li>
                            }
                            .into_any()
                        }
                        Line::Message(shown) => {
                            // An integration's message: never dressed as a person's.
                            let bot = shown.msg.kind == MessageKind::Bot;
                            let mine = !bot && tab.is_me(&shown.msg.author);
                            let sent_at = shown.msg.sent_at;
                            view! {
                                <li class="message" class:mine=mine class:bot=bot data-seq=shown.msg.seq>
                                    <div class="meta">
                                        <span class="author">{shown.msg.author.name}</span>
                                        {bot.then(|| view! { <span class="badge" title="posted by an integration">"bot"</span> })}
                                        // The server cannot know the reader's time zone; the
                                        // browser puts its local time in once it has taken over.
                                        <time datetime=iso(sent_at)>{move || sent_label(sent_at, tab.hydrated.get())}</time>
                                    </div>
                                    // Text, never markup: Leptos escapes it.
                                    <MessageBody text=shown.msg.body />
                                </li>
                            }
                            .into_any()
                        }
                        Line::Notice { text, .. } => {
                            view! { <li class="notice" data-testid="notice">{text}</li> }.into_any()
                        }
                    }}
                </For>
                <For each=move || room.pending.get() key=|p| p.client_id.clone() let:pending>
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
