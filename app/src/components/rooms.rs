//! The room list in the sidebar: the server's rooms and the rooms this tab has open, in a stable
//! order (`general` first, then by name: a list that reorders as people come and go, or as this tab
//! opens rooms, moves what the reader was about to click), each with how many messages arrived there
//! unseen (a filled badge, the room's name in bold) and how many people are in it (muted, after a
//! person icon). The two numbers never look alike, and a screen reader hears what each one counts.

use leptos::prelude::*;

use crate::{
    location::{here, room_path},
    protocol::DEFAULT_ROOM,
    state::Tab,
};

#[component]
pub fn RoomList() -> impl IntoView {
    let tab = expect_context::<Tab>();
    // Open and private rooms, then conversations (which the stylesheet puts under their title: one
    // keyed list, not two, is less of the page's WebAssembly); what the person hid is left out
    // unless it is on screen.
    let rooms = move || {
        let mut names: Vec<String> = tab.open.get();
        tab.counted
            .with(|counted| names.extend(counted.iter().cloned()));
        tab.directory
            .with(|dir| names.extend(dir.iter().map(|entry| entry.room.clone())));
        let current = tab.current.get();
        tab.mine.with(|mine| {
            names.extend(mine.iter().map(|entry| entry.room.clone()));
            names.retain(|name| {
                *name == current || !mine.iter().any(|entry| entry.hidden && entry.room == *name)
            });
        });
        sidebar_order(names)
    };
    // On a phone the list is a row that scrolls sideways: its edges fade where more rooms are hidden,
    // so the row says it scrolls, and the open room's chip is in view (the row is rebuilt with each
    // room and would start at its beginning). On a wide screen the classes do nothing. Plain DOM,
    // not signals: this is layout, and every signal type costs the wasm.
    Effect::new(move |_| {
        tab.current.track();
        tab.open.track();
        tab.directory.track();
        #[cfg(feature = "hydrate")]
        crate::components::before_next_paint(|| {
            if let Ok(Some(list)) = document().query_selector("[data-testid=room-list]") {
                if let Ok(Some(chip)) = list.query_selector(".room.current") {
                    show_chip(&list, &chip);
                }
                mark_hidden_rooms(&list);
            }
        });
    });
    view! {
        <ul class="room-list" data-testid="room-list" on:scroll=move |ev| more_hidden(ev.target())>
            <For each=rooms key=|name| name.clone() let:name>
                <RoomLink name/>
            </For>
            <li class="room-action new-room"><a href="/rooms/new" data-testid="new-room">"+ New room"</a></li>
            <li class="room-action read-all" class:none=move || tab.unread_total() == 0>
                <button type="button" data-testid="read-all" on:click=move |_| tab.mark_all_read()>"Mark all as read"</button>
            </li>
            <li class="list-title" aria-hidden="true">"Direct messages"</li>
            <li class="room-action new-direct"><a href="/direct" data-testid="new-direct">"+ New message"</a></li>
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
        tab.counted.track();
        name.with_value(|name| tab.room(name))
            .map_or(0, |room| room.unread.get())
    });
    // Of it, what mentions the reader.
    let mentions = Memo::new(move |_| {
        tab.open.track();
        tab.counted.track();
        name.with_value(|name| tab.room(name))
            .map_or(0, |room| room.mentions.get())
    });
    let mentioned = Memo::new(move |_| mentions.get() > 0);
    let current = Memo::new(move |_| {
        tab.current
            .with(|current| name.with_value(|n| n == current))
    });
    // What a screen reader says after the room's name (the link's label): the badges themselves are
    // hidden from it.
    let spoken = move || {
        let unread = match (unread.get(), mentions.get()) {
            (0, _) => String::new(),
            (1, 0) => ", 1 unread message".to_string(),
            (n, 0) => format!(", {n} unread messages"),
            (n, m) => format!(", {n} unread, {m} mentioning you"),
        };
        let here = match members.get() {
            0 => String::new(),
            1 => ", 1 person here".to_string(),
            n => format!(", {n} people here"),
        };
        format!("{unread}{here}")
    };
    view! {
        <li class=if name.with_value(|n| n.starts_with('@')) { "room direct" } else { "room" } class:current=current data-room=name.get_value()>
            <a
                href=href.clone()
                aria-label=move || format!("{}{}", tab.title(&name.get_value()), spoken())
                aria-current=move || current.get().then_some("page")
                on:click=move |ev| location.follow(&ev, &href)
            >
                <span class="room-title">{move || tab.title(&name.get_value())}</span>
                // The icon and the badge's look are the stylesheet's; their words are the link's.
                <span class="count" data-testid="member-count" aria-hidden="true" title="people here now"
                    class:none=move || members.get() == 0
                >
                    {members}
                </span>
                // Mentions show their count instead, stronger, as in Slack and Discord (the
                // stylesheet draws `data-mentions`).
                <span class="unread" data-testid="unread" aria-hidden="true" title="unread messages"
                    class:none=move || unread.get() == 0
                    class:mentioned=mentioned
                    data-mentions=mentions
                >
                    {unread}
                </span>
            </a>
        </li>
    }
}

/// The row of chips scrolled: say again where more rooms are hidden.
fn more_hidden(target: Option<leptos::web_sys::EventTarget>) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if let Some(list) = target.and_then(|t| t.dyn_into::<web_sys::Element>().ok()) {
            mark_hidden_rooms(&list);
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = target;
}

/// Scrolls the row of chips sideways, if need be, until `chip` is in view (the list is its offset
/// parent: `position: relative` in the stylesheet).
#[cfg(feature = "hydrate")]
fn show_chip(list: &web_sys::Element, chip: &web_sys::Element) {
    use wasm_bindgen::JsCast;
    let Some(chip) = chip.dyn_ref::<web_sys::HtmlElement>() else {
        return;
    };
    let (start, width) = (chip.offset_left(), chip.offset_width());
    let (left, seen) = (list.scroll_left(), list.client_width());
    if start < left {
        list.set_scroll_left(start);
    } else if start + width > left + seen {
        list.set_scroll_left(start + width - seen);
    }
}

/// `more-before` / `more-after` on the list while rooms are scrolled out of view on that side.
#[cfg(feature = "hydrate")]
fn mark_hidden_rooms(list: &web_sys::Element) {
    let (left, width, seen) = (list.scroll_left(), list.scroll_width(), list.client_width());
    let classes = list.class_list();
    let _ = classes.toggle_with_force("more-before", left > 1);
    let _ = classes.toggle_with_force("more-after", left + seen < width - 1);
}

/// The sidebar's order for `names` (repeats dropped): `general` first, then by name. It depends on
/// nothing but the names, so it is the same in every tab, whichever rooms it has open or however busy
/// each is now. By insertion, not `sort`: a few dozen names, and the sort's code would cost the wasm
/// more than this whole component.
fn sidebar_order(names: Vec<String>) -> Vec<String> {
    let before = |a: &str, b: &str| (a != DEFAULT_ROOM, a) < (b != DEFAULT_ROOM, b);
    let mut ordered: Vec<String> = vec![DEFAULT_ROOM.to_string()];
    for name in names {
        if !ordered.contains(&name) {
            let at = ordered
                .iter()
                .position(|placed| before(&name, placed))
                .unwrap_or(ordered.len());
            ordered.insert(at, name);
        }
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::sidebar_order;

    #[test]
    fn general_comes_first_then_every_room_by_name_once() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            sidebar_order(names(&["ops", "design", "ops", "general", "alerts"])),
            names(&["general", "alerts", "design", "ops"])
        );
        // The same rooms in another order (another tab, another moment): the same list.
        assert_eq!(
            sidebar_order(names(&["alerts", "ops", "design"])),
            sidebar_order(names(&["design", "alerts", "ops", "general"]))
        );
    }
}
