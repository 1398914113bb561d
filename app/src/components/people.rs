//! Who is in the open room (live), and who of them is typing right now.

use leptos::prelude::*;

use crate::{
    protocol::PRESENCE_LIST_MAX,
    state::{Room, Tab},
};

/// The people in the room, by name, with the count.
#[component]
pub fn Members() -> impl IntoView {
    let room = expect_context::<Room>();
    let tab = expect_context::<Tab>();
    view! {
        <h2 class="people-title">
            "Here now "
            <span class="people-count" data-testid="people-count">{move || room.member_count.get()}</span>
        </h2>
        <ul class="people-list" data-testid="people">
            <For
                each=move || room.members.get().unwrap_or_default()
                // By name too: someone who changes their name keeps their id.
                key=|who| (who.id.clone(), who.name.clone())
                let:who
            >
                {
                    let me = tab.is_me(&who);
                    view! { <li class:me=me>{who.name}</li> }
                }
            </For>
        </ul>
        <Show when=move || room.members.with(Option::is_none) && (room.member_count.get() > 0)>
            <p class="people-many">{format!("More than {PRESENCE_LIST_MAX} people: too many to list.")}</p>
        </Show>
    }
}

/// "Ann is typing…", "Ann and Bob are typing…", "Several people are typing…".
#[component]
pub fn TypingIndicator() -> impl IntoView {
    let room = expect_context::<Room>();
    let text = move || {
        room.typing.with(|typing| {
            let names: Vec<&str> = typing.iter().map(|t| t.who.name.as_str()).collect();
            match names.as_slice() {
                [] => String::new(),
                [one] => format!("{one} is typing…"),
                [one, two] => format!("{one} and {two} are typing…"),
                _ => "Several people are typing…".to_string(),
            }
        })
    };
    view! { <p class="typing" data-testid="typing" aria-live="polite">{text}</p> }
}
