//! The room list in the sidebar: the server's rooms, busiest first, with how many people are in each
//! (live), plus the rooms this tab has open, with how many messages arrived there unseen.

use leptos::prelude::*;

use crate::{
    location::{here, room_path},
    protocol::DEFAULT_ROOM,
    state::Tab,
};

#[component]
pub fn RoomList() -> impl IntoView {
    let tab = expect_context::<Tab>();
    // The rooms this tab has open first (in the order opened), then the rest of the server's list.
    let rooms = move || {
        let mut names: Vec<String> = vec![DEFAULT_ROOM.to_string()];
        for name in tab.open.get() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        tab.directory.with(|dir| {
            for entry in dir {
                if !names.contains(&entry.room) {
                    names.push(entry.room.clone());
                }
            }
        });
        names
    };
    view! {
        <ul class="room-list" data-testid="room-list">
            <For each=rooms key=|name| name.clone() let:name>
                <RoomLink name/>
            </For>
        </ul>
    }
}

#[component]
fn RoomLink(name: String) -> impl IntoView {
    let tab = expect_context::<Tab>();
    let location = here();
    let href = room_path(&name);
    let name = StoredValue::new(name);
    let members = Memo::new(move |_| {
        tab.directory.with(|dir| {
            name.with_value(|name| {
                dir.iter()
                    .find(|entry| entry.room == *name)
                    .map_or(0, |entry| entry.members)
            })
        })
    });
    let unread = Memo::new(move |_| {
        tab.open.track();
        name.with_value(|name| tab.room(name))
            .map_or(0, |room| room.unread.get())
    });
    let current = Memo::new(move |_| {
        tab.current
            .with(|current| name.with_value(|n| n == current))
    });
    view! {
        <li class="room" class:current=current data-room=name.get_value()>
            <a
                href=href.clone()
                aria-current=move || current.get().then_some("page")
                on:click=move |ev| location.follow(&ev, &href)
            >
                <span class="room-title">"# " {name.get_value()}</span>
                <span class="unread" data-testid="unread" class:none=move || unread.get() == 0>
                    {unread}
                </span>
                <span class="count" data-testid="member-count" title="people here now">
                    {members}
                </span>
            </a>
        </li>
    }
}
