//! The conversation: the room's messages, oldest first, grouped by author and divided by the
//! reader's days (components/layout.rs), with notices of renames among them. Kept
//! scrolled to the newest while the reader is at the bottom; scrolling to the top loads the page
//! before what is shown, without moving what the reader is looking at.

use leptos::{either::Either, html, prelude::*};

use crate::{
    components::{
        Avatar, before_next_paint,
        layout::{Row, layout},
        mentions,
        message::{Open, message_parts, quote_view},
        sent_at::{day_label, iso, now_ms, reader_day, reader_today, sent_label},
    },
    keep::Op,
    protocol::{MessageKind, Quote},
    state::{Line, Room, Tab},
};

/// How close to the bottom (in CSS pixels) a reader's scrolling must stop for the list to keep
/// following the newest. Someone reading older messages further up is not yanked down.
const STICK_TO_BOTTOM_PX: i32 = 160;

/// How close to the top (in CSS pixels) scrolling must come for the older page to be asked for.
const LOAD_OLDER_PX: i32 = 80;

#[component]
pub fn MessageList() -> impl IntoView {
    let room = expect_context::<Room>();
    let tab = expect_context::<Tab>();
    let scroller = NodeRef::<html::Div>::new();
    // What the list looked like at the last change.
    let before = StoredValue::new(Seen::default());
    // Messages that came in below while the reader was further up: the "new messages" button.
    let unseen = RwSignal::new(0usize);
    let to_bottom = move || {
        if let Some(el) = scroller.get_untracked() {
            el.set_scroll_top(el.scroll_height());
        }
        unseen.set(0);
        room.follow(true);
    };

    // What a screen reader announces: the newest message from someone else, as it arrives.
    let announce = RwSignal::new(String::new());
    // A change is waiting for `settle`: scroll events meanwhile come from the browser adjusting to
    // the new content, not from the reader, and say nothing about whether they follow the newest.
    let settling = StoredValue::new(false);
    // What to do once a change has reached the layout: show the newest, keep the reader's place, or
    // tell them what came in below.
    let announce_newest = move |last: Option<&String>| {
        if last.is_none() || last == before.get_value().last.as_ref() {
            return;
        }
        let newest = room.lines.with_untracked(|lines| match lines.last() {
            Some(Line::Message(shown)) if !tab.is_me(&shown.msg.author) => {
                Some(format!("{}: {}", shown.msg.author.name, shown.msg.body))
            }
            _ => None,
        });
        if let Some(text) = newest {
            announce.set(text);
        }
    };
    let settle = move || {
        settling.set_value(false);
        let Some(el) = scroller.get_untracked() else {
            return;
        };
        let (first, last) = room
            .lines
            .with_untracked(|lines| (lines.first().map(Line::key), lines.last().map(Line::key)));
        let pending = room.pending.with_untracked(Vec::len);
        let was = before.get_value();
        if was.height == 0 || pending > was.pending {
            // First look at the room, or the reader just sent something: show the newest.
            to_bottom();
        } else if was.first.is_some() && first != was.first && last == was.last {
            // Older messages went in above: keep what the reader sees where it was.
            el.set_scroll_top(el.scroll_top() + el.scroll_height() - was.height);
            // The focus on the button (by click, Enter, or Tab): it goes to the newest of what was
            // loaded, just above where the reader was, so reading back by keyboard goes on from
            // there, rather than staying at the top.
            #[cfg(feature = "hydrate")]
            if let Some(was_first) = was.first.as_deref()
                && document()
                    .active_element()
                    .is_some_and(|el| el.get_attribute("data-testid").as_deref() == Some("older"))
            {
                focus_before(&el, was_first);
            }
        } else if room.is_following() {
            announce_newest(last.as_ref());
            // Following the conversation: a new message, the oldest lines trimmed, or the list
            // made shorter by a growing draft, and the newest stays in view.
            to_bottom();
        } else if last != was.last {
            announce_newest(last.as_ref());
            // Someone reading further up is not yanked down; they are told instead.
            let arrived = room.lines.with_untracked(|lines| {
                let after = lines
                    .iter()
                    .rposition(|line| Some(line.key()) == was.last)
                    .map_or(lines.len().saturating_sub(1), |i| i + 1);
                lines[after..]
                    .iter()
                    .filter(|line| matches!(line, Line::Message(_)))
                    .count()
            });
            unseen.update(|n| *n += arrived);
        }
        before.set_value(Seen {
            first,
            last,
            pending,
            height: el.scroll_height(),
        });
    };
    Effect::new(move |_| {
        room.lines.track();
        room.pending.track();
        // The composer grows with the draft and takes its height from the list.
        room.draft.track();
        // An effect may run before the list's own update has reached the DOM (measuring then put
        // the newest one message out of view): measure once it has, before the next paint.
        settling.set_value(true);
        before_next_paint(settle);
    });

    let load_older = move || {
        if let Some(request) = room.older() {
            tab.send(request);
        }
    };
    // Every row's actions, handled here (components/message.rs).
    let on_click = move |ev: leptos::ev::MouseEvent| {
        #[cfg(feature = "hydrate")]
        crate::components::message::act(tab, room, &ev);
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        #[cfg(feature = "hydrate")]
        crate::components::message::key(tab, room, &ev);
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };

    // The edit box takes the keyboard once it is drawn, the caret after the text.
    Effect::new(move |_| {
        if room.editing.get().is_some() {
            #[cfg(feature = "hydrate")]
            before_next_paint(crate::components::message::focus_edit_box);
        }
    });

    // A message to bring into view (a permalink's, a reply's original): once it is on the page,
    // centred, focused and marked a moment; until then, older pages are loaded.
    #[cfg(feature = "hydrate")]
    if let Some(at) = crate::location::here()
        .param("at")
        .and_then(|at| at.parse().ok())
    {
        room.seek.set(Some(at));
    }
    Effect::new(move |_| {
        let Some(seq) = room.seek.get() else {
            return;
        };
        room.lines.track();
        // Older pages are asked for over the socket: a permalink opened in a new page waits for it.
        tab.connection.track();
        before_next_paint(move || {
            let Some(list) = scroller.get_untracked() else {
                return;
            };
            if let Ok(Some(row)) = list.query_selector(&format!("li[data-seq=\"{seq}\"]")) {
                room.seek.set(None);
                room.follow(false);
                bring_into_view(row);
            } else if room.oldest_seq().is_some_and(|oldest| oldest > seq)
                && room.has_more.get_untracked()
            {
                load_older();
            } else if !room.loading_older.get_untracked() {
                room.seek.set(None);
                tab.last_error
                    .set(Some("That message is no longer kept".into()));
            }
        });
    });
    let on_scroll = move |_| {
        if settling.get_value() {
            return;
        }
        let Some(el) = scroller.get_untracked() else {
            return;
        };
        if el.scroll_top() <= LOAD_OLDER_PX {
            load_older();
        }
        let at_newest =
            el.scroll_height() - el.scroll_top() - el.client_height() <= STICK_TO_BOTTOM_PX;
        if at_newest {
            unseen.set(0);
        }
        room.follow(at_newest);
    };

    // Each line with how it sits (components/layout.rs): days only once hydrated, on both sides the
    // same. How a line sits is part of its key, so a line whose place changes (the first of a day
    // once the reader's zone is known, the head of a group once older lines go in above) is drawn
    // again, and no row needs a reactive class or divider of its own.
    //
    // What is drawn of each message besides: our own changes still in the outbox, applied as they
    // will be; a reply's quote from our copy of its original (it follows edits and deletion); what
    // is open on it. Each is in the row's key, so a row is drawn again when one changes.
    let lines = move || {
        let hydrated = tab.hydrated.get();
        let me = tab.me.get().unwrap_or_default();
        let (editing, menu) = (room.editing.get(), room.menu.get());
        let changes = room.pending.with(|pending| {
            pending
                .iter()
                .filter(|p| p.op != Op::Send)
                .cloned()
                .collect::<Vec<_>>()
        });
        room.lines.with(|lines| {
            let rows = layout(lines, |sent_at| reader_day(sent_at, hydrated));
            let mut lines: Vec<Line> = lines.to_vec();
            for change in &changes {
                let target = change.target.unwrap_or_default();
                if let Some(Line::Message(shown)) = lines
                    .iter_mut()
                    .find(|l| matches!(l, Line::Message(s) if s.msg.seq == target))
                {
                    let next = shown.msg.changed.max(shown.msg.seq) + 1;
                    let change = crate::state::change_of(change);
                    let _ =
                        shown
                            .msg
                            .apply(&change, (&me, MessageKind::User), next, now_ms() as u64);
                }
            }
            let originals: Vec<Option<(Quote, u64)>> = lines
                .iter()
                .map(|line| {
                    let Line::Message(shown) = line else {
                        return None;
                    };
                    let seq = shown.msg.reply_to.as_ref()?.seq;
                    lines.iter().find_map(|l| match l {
                        Line::Message(o) if o.msg.seq == seq => {
                            Some((Quote::of(&o.msg), o.msg.changed))
                        }
                        _ => None,
                    })
                })
                .collect();
            lines
                .into_iter()
                .zip(originals)
                .zip(rows)
                .map(|((mut line, original), row)| {
                    let mut drawn = (0, Open::Nothing);
                    if let Line::Message(shown) = &mut line {
                        let seq = shown.msg.seq;
                        if let Some((quote, changed)) = original {
                            shown.msg.reply_to = Some(Box::new(quote));
                            drawn.0 = changed;
                        }
                        if editing == Some(seq) {
                            drawn.1 = Open::Editing;
                        } else if let Some((_, menu)) = menu.filter(|(s, _)| *s == seq) {
                            drawn.1 = Open::Menu(menu);
                        }
                    }
                    (line, row, drawn)
                })
                .collect::<Vec<_>>()
        })
    };
    // "Today", "Yesterday", a date: above the first line of each of the reader's days.
    let day_divider = |row: Row| {
        row.day.map(|day| {
            view! {
                <li class="day" data-testid="day">
                    <span>{day_label(day, reader_today())}</span>
                </li>
            }
        })
    };

    view! {
        // A Tab stop (role `log`), so PageUp, PageDown, Home and End read back through it. Not a live
        // region itself (`aria-live` off): history pages and notices would all be read out; the
        // announcer below says what is new.
        <div
            class="messages-scroller"
            node_ref=scroller
            on:scroll=on_scroll
            data-testid="scroller"
            id="messages"
            role="log"
            aria-live="off"
            aria-label=format!("Messages in #{}", room.name.get_value())
            tabindex="0"
        >
            <Show when=move || room.has_more.get()>
                <button
                    type="button"
                    class="older"
                    data-testid="older"
                    // Not `disabled`: a disabled button loses the focus, which fell to the page.
                    aria-disabled=move || room.loading_older.get().to_string()
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
            // Not a live region itself: history pages and notices would all be read out.
            <ol class="messages" data-testid="messages" on:click=on_click on:keydown=on_key>
                // A row is drawn again when its message changes — but not while something is open
                // on it (the edit box, the picker, "Delete?"): a reaction from someone else would
                // throw away what the reader is typing there. It catches up once that closes; a
                // deletion shows at once all the same.
                <For
                    each=lines
                    key=|(line, row, drawn)| {
                        let version = if drawn.1 == Open::Nothing {
                            line.version()
                        } else {
                            u64::from(line.is_deleted())
                        };
                        (line.key(), version, *row, *drawn)
                    }
                    let:((line, row, (_, open)))
                >
                    {match line {
                        // One row for every kind of message, so each kind follows the same rules
                        // (groups, days, the "New messages" rule); an announcement to every room
                        // is not dressed as a chat message, and an integration's never as a person's.
                        Line::Message(shown) => {
                            let key = shown.key();
                            let data_key = key.clone();
                            let news_begin = move || {
                                room.first_unread.with(|first| first.as_deref() == Some(key.as_str()))
                            };
                            let kind = shown.msg.kind;
                            let announcement = kind == MessageKind::Announcement;
                            let bot = kind == MessageKind::Bot;
                            // The server renders every row alike for every reader, so a room's
                            // page is rendered once per change and cached (server/src/page_cache.rs);
                            // app/src/early.js marks the reader's own rows and mentions in the
                            // parsed page, the same way, before the wasm arrives.
                            let mine = !cfg!(feature = "ssr")
                                && kind == MessageKind::User
                                && tab.is_me(&shown.msg.author);
                            // Someone calling on the reader by name stands out.
                            let for_me = !cfg!(feature = "ssr")
                                && !mine
                                && !announcement
                                && tab.me.with_untracked(|me| {
                                    me.as_ref().is_some_and(|me| mentions(&shown.msg.body, &me.name))
                                });
                            let sent_at = shown.msg.sent_at;
                            let author = shown.msg.author.clone();
                            let deleted = shown.msg.deleted.is_some();
                            let me = tab.me.with_untracked(|me| me.as_ref().map(|me| me.id.clone())).unwrap_or_default();
                            let unfolded = room.unfolded.with_value(|u| u.contains(&shown.msg.seq));
                            let parts = message_parts(&shown.msg, open, &me, unfolded);
                            let quote = shown.msg.reply_to.map(|quote| quote_view(*quote));
                            Either::Left(view! {
                                {day_divider(row)}
                                <Show when=news_begin>
                                    <li class="news" data-testid="news">
                                        <span>"New messages"</span>
                                        <button type="button" data-testid="mark-read" data-act="read">"Mark as read"</button>
                                    </li>
                                </Show>
                                <li
                                    class=if announcement { "announcement" } else { "message" }
                                    data-testid=announcement.then_some("announcement")
                                    tabindex="-1"
                                    data-key=data_key
                                    data-author=author.id.clone()
                                    class:mine=mine
                                    class:bot=bot
                                    class:mention=for_me
                                    // The same author again within minutes: the body alone.
                                    class:continued=row.continued
                                    data-seq=shown.msg.seq
                                    class:deleted=deleted
                                >
                                    <div class="meta">
                                        {announcement.then(|| view! { <span class="label">"Announcement"</span> })}
                                        <Avatar who=author.clone() bot/>
                                        <span class="author">{author.name}</span>
                                        {bot.then(|| view! { <span class="badge" title="posted by an integration">"bot"</span> })}
                                        // The server cannot know the reader's time zone; the
                                        // browser puts its local time in once it has taken over
                                        // (and the full date on hover or focus: app/src/early.js).
                                        <time datetime=iso(sent_at)>{move || sent_label(sent_at, tab.hydrated.get())}</time>
                                    </div>
                                    {quote}
                                    // Text, never markup: Leptos escapes it.
                                    {parts}
                                </li>
                            })
                        }
                        Line::Notice { text, .. } => {
                            Either::Right(view! { <li class="notice" data-testid="notice">{text}</li> })
                        }
                    }}
                </For>
                <For
                    each=move || room.pending.with(|p| p.iter().filter(|p| p.op == Op::Send).cloned().collect::<Vec<_>>())
                    key=|p| p.client_id.clone()
                    let:pending
                >
                    <li class="message mine pending" data-testid="pending">
                        <div class="meta">
                            <span class="sending">"sending…"</span>
                        </div>
                        <p class="body">{pending.body}</p>
                    </li>
                </For>
            </ol>
            <p class="sr-only" aria-live="polite" data-testid="announcer">{move || announce.get()}</p>
            <Show when=move || { unseen.get() > 0 }>
                <button type="button" class="jump" data-testid="jump" on:click=move |_| to_bottom()>
                    {move || match unseen.get() {
                        1 => "1 new message ↓".to_string(),
                        n => format!("{n} new messages ↓"),
                    }}
                </button>
            </Show>
        </div>
    }
}

/// The list as the last change left it: what decides, after the next, whether to scroll.
#[derive(Clone, Default)]
struct Seen {
    first: Option<String>,
    last: Option<String>,
    pending: usize,
    height: i32,
}

/// Scrolls `row` into the list's view, focuses it and marks it a moment.
fn bring_into_view(row: leptos::web_sys::Element) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        row.scroll_into_view();
        let _ = row.class_list().add_1("sought");
        if let Ok(row) = row.dyn_into::<web_sys::HtmlElement>() {
            let _ = row.focus();
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = row;
}

/// Focuses the line just above the one keyed `key` in `list`.
#[cfg(feature = "hydrate")]
fn focus_before(list: &web_sys::HtmlDivElement, key: &str) {
    use wasm_bindgen::JsCast;
    let Ok(Some(line)) = list.query_selector(&format!("li[data-key=\"{key}\"]")) else {
        return;
    };
    let mut above = line.previous_element_sibling();
    // Past the "New messages" rule and notices: the newest loaded message itself.
    while let Some(el) = above.clone() {
        if el.has_attribute("data-key") {
            break;
        }
        above = el.previous_element_sibling();
    }
    if let Some(el) = above.and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok()) {
        let _ = el.focus();
    }
}
