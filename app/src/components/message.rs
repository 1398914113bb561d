//! What a message row holds besides its author and time: the quote of the message it answers, its
//! text (or the box editing it, or "Message deleted"), its reactions, and its actions — react,
//! reply, edit, delete, link, report (the message's own page on the server,
//! `server/src/moderation.rs`; the page's inline script follows that button, `app/src/early.js`). The actions show on hover, and with the "…" button, which is always
//! there on a touch screen (no hover there) and reachable by keyboard; Escape closes them.
//!
//! Every part is drawn once for what the row is (its message, and what is open on it: the row's
//! key in the list says so, and a change draws the row again), with no handler of its own: the
//! list hands each click and key to [`act`] and [`key`], which find what was acted on by its
//! `data-act` and the row's `data-seq`. The actions are in every row, shown by the stylesheet
//! (the server renders a room's rows alike for every reader, so "edit" and "delete" are there too,
//! shown on the reader's own messages only). Each handler and reactive part is code in the page's
//! WebAssembly, and per row they cost more than the budget (BENCHMARKS.md, "The browser bundle").

use leptos::{either::Either, prelude::*};

use crate::{
    components::MessageBody,
    protocol::{ChatMessage, Quote},
    state::{Menu, Room},
};
#[cfg(feature = "hydrate")]
use crate::{keep::Op, state::Tab};

/// The emoji the picker offers; any other can be typed in it.
const COMMON_EMOJI: [&str; 8] = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];

/// What is open on a row: it is part of the row's key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Open {
    #[default]
    Nothing,
    Menu(Menu),
    Editing,
}

/// The quote above a reply (`data-act="quote"`: a click brings the original into view).
pub fn quote_view(quote: Quote) -> impl IntoView {
    let (author, text) = match (quote.author, quote.text) {
        (Some(author), Some(text)) => (Some(author.name), text),
        (Some(_), None) => (None, "Message deleted".to_owned()),
        _ => (None, "An earlier message".to_owned()),
    };
    view! {
        <button type="button" class="quote" data-testid="quote" data-act="quote" data-target=quote.seq
            title="Show the message this answers">
            {author.map(|name| view! { <span class="quote-author">{name}</span> })}
            <span class="quote-text">{text}</span>
        </button>
    }
}

/// A message's text, or the box editing it, or the mark of its deletion; then its reactions, and
/// the actions that are open on it. (`Either`, not `AnyView`: an erased view brings the second,
/// asynchronous copy of hydration into the WebAssembly, 18 KB; BENCHMARKS.md.)
pub fn message_parts(
    msg: &ChatMessage,
    open: Open,
    me: &str,
    unfolded: bool,
) -> impl IntoView + use<> {
    if let Some(by) = &msg.deleted {
        // Deleted by someone else than its author: a moderator removed it.
        let said = match by.id == msg.author.id {
            true => "Message deleted",
            false => "Removed by a moderator",
        };
        return Either::Left(view! { <p class="body deleted" data-testid="deleted">{said}</p> });
    }
    let text = if open == Open::Editing {
        Either::Left(view! {
            <div class="edit" data-testid="edit">
                <textarea id="edit-box" aria-label="Edit message" data-testid="edit-input">
                    {msg.body.clone()}
                </textarea>
                <p class="edit-hint">
                    "Enter to "<button type="button" data-act="save">"save"</button>
                    ", Escape to "<button type="button" data-act="cancel">"cancel"</button>
                </p>
            </div>
        })
    } else {
        Either::Right(view! {
            <MessageBody text=msg.body.clone() unfolded />
            // Its earlier texts are on a page of their own (server/src/edit_history.rs).
            {msg.edited.map(|at| view! {
                <a class="edited" data-testid="edited" href=format!("/r/{}/edits/{}", msg.room, msg.seq)
                    title=format!("Edited {}: see the earlier versions", crate::components::sent_at::iso(at))>"(edited)"</a>
            })}
        })
    };
    let reactions = (!msg.reactions.is_empty()).then(|| {
        let chips = msg
            .reactions
            .iter()
            .map(|reaction| {
                let ours = !cfg!(feature = "ssr") && reaction.by.iter().any(|who| who.id == me);
                let names = reaction
                    .by
                    .iter()
                    .map(|who| who.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                let count = reaction.by.len();
                view! {
                    <button type="button" class="reaction" data-testid="reaction" data-act="reaction"
                        data-emoji=reaction.emoji.clone() aria-pressed=ours.to_string()
                        aria-label=format!("{} {count}: {names}", reaction.emoji) title=names>
                        <span class="emoji">{reaction.emoji.clone()}</span>
                        <span class="count">{count}</span>
                    </button>
                }
            })
            .collect_view();
        view! { <div class="reactions" data-testid="reactions">{chips}</div> }
    });
    let menu = match open {
        Open::Menu(Menu::Picker) => Some(Either::Left(view! {
            <div class="picker" role="group" aria-label="Add a reaction" data-testid="picker">
                {COMMON_EMOJI
                    .into_iter()
                    .map(|emoji| view! {
                        <button type="button" data-act="reaction" data-emoji=emoji aria-label=format!("React with {emoji}")>
                            {emoji}
                        </button>
                    })
                    .collect_view()}
                <input type="text" id="emoji-input" aria-label="Any emoji" placeholder="Any emoji"
                    data-testid="emoji-input" maxlength="16" />
            </div>
        })),
        Open::Menu(Menu::Delete) => Some(Either::Right(view! {
            <div class="confirm" role="alertdialog" aria-label="Delete this message?" data-testid="confirm-delete">
                <span>"Delete this message for everyone?"</span>
                <button type="button" class="danger" data-testid="confirm" data-act="confirm-delete">"Delete"</button>
                <button type="button" data-act="close">"Cancel"</button>
            </div>
        })),
        _ => None,
    };
    Either::Right(view! {
        {text}
        {reactions}
        <div class="actions">
            <button type="button" class="more" data-testid="more" data-act="more" aria-label="Message actions">
                "…"
            </button>
            <div class="toolbar" role="group" aria-label="Message actions" data-testid="toolbar">
                <button type="button" data-testid="react" data-act="picker">"React"</button>
                <button type="button" data-testid="reply" data-act="reply">"Reply"</button>
                <button type="button" class="own" data-testid="edit-action" data-act="edit">"Edit"</button>
                <button type="button" class="own" data-testid="delete-action" data-act="delete">"Delete"</button>
                <button type="button" data-testid="permalink" data-act="link">"Link"</button>
                <button type="button" data-testid="unread-action" data-act="unread">"Mark unread"</button>
                <button type="button" data-testid="report-action" data-act="report">"Report"</button>
            </div>
            {menu}
        </div>
    })
}

/// A click in the conversation: what it acts on, by the `data-act` of the element clicked (or
/// its nearest ancestor) and the row's `data-seq`.
#[cfg(feature = "hydrate")]
pub fn act(tab: Tab, room: Room, ev: &leptos::ev::MouseEvent) {
    use wasm_bindgen::JsCast;
    let Some(target) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
    else {
        return;
    };
    let Ok(Some(acted)) = target.closest("[data-act]") else {
        return;
    };
    let what = acted.get_attribute("data-act").unwrap_or_default();
    // "Mark as read" on the "New messages" rule: of the room, not of a message.
    if what == "read" {
        tab.mark_read(room);
        return;
    }
    let Some(seq) = row_seq(&acted) else {
        return;
    };
    let data = |name: &str| acted.get_attribute(name).unwrap_or_default();
    let open = |menu: Menu| room.menu.set(Some((seq, menu)));
    match what.as_str() {
        "more" => {
            // The toolbar is in the row already: shown (by its class) or hidden again.
            if let Ok(Some(row)) = acted.closest("li") {
                let shown = row.class_list().toggle("open").unwrap_or(false);
                acted
                    .set_attribute("aria-expanded", &shown.to_string())
                    .ok();
                if shown {
                    crate::components::focus_on(&format!("li[data-seq=\"{seq}\"] .toolbar button"));
                }
            }
        }
        "picker" => {
            open(Menu::Picker);
            focus_later(format!("li[data-seq=\"{seq}\"] .picker button"));
        }
        "delete" => {
            open(Menu::Delete);
            focus_later(format!("li[data-seq=\"{seq}\"] .confirm button"));
        }
        "close" => room.menu.set(None),
        "reaction" => {
            room.menu.set(None);
            tab.toggle_reaction(room, seq, data("data-emoji"));
        }
        "reply" => {
            room.menu.set(None);
            room.replying.set(Some(seq));
            crate::components::focus_on("#message-box");
        }
        "edit" => {
            room.menu.set(None);
            room.editing.set(Some(seq));
        }
        "save" => save_edit(tab, room, seq),
        "cancel" => {
            room.editing.set(None);
            crate::components::focus_on("#message-box");
        }
        "confirm-delete" => {
            room.menu.set(None);
            if let Err(e) = tab.change(room, seq, Op::Delete, String::new()) {
                tab.last_error.set(Some(e.message));
            }
        }
        "link" => {
            // The message's own address in the address bar, to copy; and the message in view.
            room.menu.set(None);
            let link = format!("/r/{}?at={seq}", room.name.get_value());
            if let Ok(history) = window().history() {
                let _ =
                    history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&link));
            }
            room.seek.set(Some(seq));
        }
        "quote" => room.seek.set(data("data-target").parse().ok()),
        "unread" => {
            room.menu.set(None);
            tab.mark_unread(room, seq);
        }
        "fold" => {
            // Drawn by the DOM alone (redrawing the row would cost code per row), and kept for
            // when the row is drawn again.
            let Some(body) = acted.previous_element_sibling() else {
                return;
            };
            let open = body.class_list().toggle("unfolded").unwrap_or(false);
            acted.set_attribute("aria-expanded", &open.to_string()).ok();
            acted.set_text_content(Some(if open { "Show less" } else { "Show more" }));
            room.unfolded.update_value(|u| {
                u.retain(|s| *s != seq);
                if open {
                    u.push(seq);
                }
            });
        }
        _ => {}
    }
}

/// A key in the conversation: Enter saves an edit and adds a typed reaction, Escape closes what
/// is open.
#[cfg(feature = "hydrate")]
pub fn key(tab: Tab, room: Room, ev: &leptos::ev::KeyboardEvent) {
    use wasm_bindgen::JsCast;
    let Some(target) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
    else {
        return;
    };
    let Some(seq) = row_seq(&target) else {
        return;
    };
    let enter = ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing();
    match (target.id().as_str(), ev.key().as_str()) {
        ("edit-box", _) if enter => {
            ev.prevent_default();
            save_edit(tab, room, seq);
        }
        ("edit-box", "Escape") => {
            ev.prevent_default();
            room.editing.set(None);
            crate::components::focus_on("#message-box");
        }
        ("emoji-input", _) if enter => {
            ev.prevent_default();
            let emoji = value_of(&target);
            if !emoji.trim().is_empty() {
                room.menu.set(None);
                tab.toggle_reaction(room, seq, emoji.trim().to_owned());
            }
        }
        (_, "Escape") => {
            room.menu.set(None);
            if let Ok(Some(row)) = target.closest("li") {
                let _ = row.class_list().remove_1("open");
            }
            crate::components::focus_on(&format!("li[data-seq=\"{seq}\"] .more"));
        }
        _ => {}
    }
}

/// The seq of the row `el` is in.
#[cfg(feature = "hydrate")]
fn row_seq(el: &web_sys::Element) -> Option<u64> {
    el.closest("li[data-seq]")
        .ok()
        .flatten()?
        .get_attribute("data-seq")?
        .parse()
        .ok()
}

/// What an input or text box holds.
#[cfg(feature = "hydrate")]
fn value_of(el: &web_sys::Element) -> String {
    use wasm_bindgen::JsCast;
    if let Some(area) = el.dyn_ref::<web_sys::HtmlTextAreaElement>() {
        return area.value();
    }
    el.dyn_ref::<web_sys::HtmlInputElement>()
        .map(web_sys::HtmlInputElement::value)
        .unwrap_or_default()
}

/// Sends the edit box's text as message `seq`'s new text, if it changed.
#[cfg(feature = "hydrate")]
fn save_edit(tab: Tab, room: Room, seq: u64) {
    let Some(text) = document()
        .get_element_by_id("edit-box")
        .map(|el| value_of(&el))
    else {
        return;
    };
    // An empty text is refused by the frame's own check (`tab.change`), and said.
    let changed = room.shown(seq).is_some_and(|msg| msg.body != text);
    if changed && let Err(e) = tab.change(room, seq, Op::Edit, text) {
        tab.last_error.set(Some(e.message));
        return;
    }
    room.editing.set(None);
    crate::components::focus_on("#message-box");
}

/// Puts the keyboard in the edit box.
#[cfg(feature = "hydrate")]
pub fn focus_edit_box() {
    use wasm_bindgen::JsCast;
    if let Some(area) = document()
        .get_element_by_id("edit-box")
        .and_then(|el| el.dyn_into::<web_sys::HtmlTextAreaElement>().ok())
    {
        let _ = area.focus();
    }
}

/// Focuses the first element matching `selector` once the row is drawn again.
#[cfg(feature = "hydrate")]
fn focus_later(selector: String) {
    crate::components::before_next_paint(move || crate::components::focus_on(&selector));
}

/// The bar above the composer while writing a reply: whom it answers, and a way out of it.
#[component]
pub fn ReplyingTo() -> impl IntoView {
    let room = expect_context::<Room>();
    move || {
        room.replying.get().map(|seq| {
            let about = room.shown(seq).map(|m| {
                let quote = Quote::of(&m);
                format!("{}: {}", m.author.name, quote.text.unwrap_or_default())
            });
            view! {
                <div class="replying" data-testid="replying">
                    <span>"Replying to "{about}</span>
                    <button type="button" aria-label="Cancel the reply" on:click=move |_| room.replying.set(None)>"×"</button>
                </div>
            }
        })
    }
}
