//! Who is in the open room (live), and who of them is typing right now; and how people are told
//! apart until accounts give them handles: a mark of their own beside every name (their initial on a
//! colour derived from their id, the same on every device), a short tag after a name two people
//! share, and a word to whoever takes a name someone here already has.

use leptos::prelude::*;

use crate::{
    protocol::{Identity, PRESENCE_LIST_MAX},
    state::{Room, Tab},
};

/// How many colours people's marks come in (`.hue-0` … `.hue-11` in the stylesheet).
pub const HUES: u32 = 12;

/// The colour of `id`'s mark: FNV-1a of the id, so it is the same wherever the id is shown.
pub fn person_hue(id: &str) -> u32 {
    let hash = id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash % HUES
}

/// The first letter or digit of `name` ("?" if it has none), a capital if it is an ASCII letter.
/// ASCII rules only, on purpose: Unicode's letter and case tables would add ~15 KB to the wasm.
pub fn initial(name: &str) -> String {
    name.chars()
        .find(|c| c.is_ascii_alphanumeric() || !(c.is_ascii() || c.is_whitespace()))
        .map_or_else(|| "?".to_string(), |c| c.to_ascii_uppercase().to_string())
}

/// A short tag telling apart people who share a name: four characters of their id's hash.
pub fn tag(id: &str) -> String {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{:04x}", hash & 0xffff)
}

/// Whether two names would pass for each other (ASCII capitals aside: see [`initial`]).
fn same_name(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// A person's mark beside their name: their initial on their colour (a bot's is square).
#[component]
pub fn Avatar(who: Identity, #[prop(optional)] bot: bool) -> impl IntoView {
    let class = format!("avatar hue-{}", person_hue(&who.id));
    // The letter is drawn by the stylesheet (`::before`): it is no part of the name's text, to be
    // read out, copied or matched.
    view! { <span class=class class:bot=bot data-initial=initial(&who.name) aria-hidden="true"></span> }
}

/// "Someone here is already called Ann": to the person who took a name another person in the room
/// has, with the way to change it.
#[component]
pub fn SameName() -> impl IntoView {
    let room = expect_context::<Room>();
    let tab = expect_context::<Tab>();
    let shared = move || {
        let me = tab.me.get()?;
        room.members
            .with(|members| {
                members
                    .iter()
                    .flatten()
                    .any(|who| who.id != me.id && same_name(&who.name, &me.name))
            })
            .then_some(me.name)
    };
    let change = move |_| {
        #[cfg(feature = "hydrate")]
        {
            if let Ok(Some(me)) = document().query_selector("details.me") {
                let _ = me.set_attribute("open", "");
            }
            crate::components::focus_on("[data-testid=rename-input]");
        }
    };
    move || {
        shared().map(|name| {
            view! {
                <p class="same-name" data-testid="same-name" role="status">
                    {format!("Someone here is already called {name}: people cannot tell you apart. ")}
                    <button type="button" on:click=change>"Change your name"</button>
                </p>
            }
        })
    }
}

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
                // With whether someone else here has the same name: a tag from each one's id then
                // tells them apart. In the key (as the name is: someone who changes their name
                // keeps their id), so a row is drawn again when that changes.
                each=move || {
                    let members = room.members.get().unwrap_or_default();
                    let shares = |who: &Identity| {
                        members.iter().any(|other| other.id != who.id && same_name(&other.name, &who.name))
                    };
                    members.iter().map(|who| (who.clone(), shares(who))).collect::<Vec<_>>()
                }
                key=|(who, shared)| (who.id.clone(), who.name.clone(), *shared)
                let:((who, shared))
            >
                {
                    let me = tab.is_me(&who);
                    let tag = shared.then(|| format!("#{}", tag(&who.id)));
                    view! {
                        <li class:me=me>
                            <Avatar who=who.clone()/>
                            <span class="person-name">{who.name}</span>
                            {tag.map(|tag| view! { <span class="tag" title="two people here have this name">{tag}</span> })}
                        </li>
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_person_has_a_mark_of_their_own() {
        // Stable: the same id, the same colour and tag, on every device.
        assert_eq!(person_hue("3f2a9c"), person_hue("3f2a9c"));
        assert!(person_hue("anything") < HUES);
        // Different ids mostly get different colours: over many, every colour is used.
        let mut used = [false; HUES as usize];
        for n in 0..200 {
            used[person_hue(&format!("{n:016x}")) as usize] = true;
        }
        assert!(used.iter().all(|u| *u));
        assert_ne!(tag("a1"), tag("a2"));
        assert_eq!(tag("a1").len(), 4);
        assert_eq!(initial("ann"), "A");
        assert_eq!(initial("  ёлка"), "ё");
        assert_eq!(initial("-bob"), "B");
        assert_eq!(initial("@@@"), "?");
        assert!(same_name("Ann", " ann "));
        assert!(!same_name("Ann", "Anne"));
    }
}
