//! Herald's Leptos application, compiled twice: with `ssr` into the server, which renders the page, and
//! with `hydrate` into the WASM frontend, which takes that page over in the browser.
//!
//! It owns the page shell, the routes, the components, and [`protocol`] — the one definition of the
//! wire format both ends use.

#![recursion_limit = "256"]

pub mod components;
pub mod keep;
pub mod location;
pub mod markdown;
pub mod protocol;
pub mod state;

#[cfg(feature = "hydrate")]
pub mod client;

use leptos::{
    either::{Either, EitherOf3},
    prelude::*,
};

use components::{
    Composer, ConnectionStatus, GoToRoom, Members, MessageList, RoomList, SameName, TypingIndicator,
};
use location::{Page, here};
use protocol::MAX_NAME_CHARS;
use state::{LIMITS_META, ROOM_META, Tab, USER_META, current_user, initial_room};

/// The name the build gives the JS glue and the wasm (`pkg/herald.js`, `pkg/herald_bg.wasm`) and the
/// stylesheet (`pkg/herald.css`), before [`SiteFiles`] adds their hashes. `cargo xtask` uses it too.
pub const OUTPUT_NAME: &str = "herald";

/// Where the build writes [`SiteFiles`] (`cargo xtask` has the same constant).
pub const SITE_FILES: &str = "pkg/files.json";

/// The page's script, wasm and stylesheet by their site paths, each named after its content
/// (`pkg/herald.3f2a9c0d1e4b5a6f.js`): a new build is a new name, so browsers may keep a file for good.
/// The server reads them from [`SITE_FILES`] and provides them to [`shell`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SiteFiles {
    pub js: String,
    pub wasm: String,
    pub css: String,
}

/// The stylesheet's text, when the server has it: the page carries it inline, so the first paint
/// waits for no second request (a round trip is half a second on a slow phone network).
#[derive(Clone, Debug)]
pub struct PageStyle(pub std::sync::Arc<str>);

impl SiteFiles {
    /// The names before hashing: what a site built without `cargo xtask` holds. (cargo-leptos sets
    /// `LEPTOS_OUTPUT_NAME` and names the wasm without `_bg`.)
    pub fn unhashed() -> SiteFiles {
        let wasm = match option_env!("LEPTOS_OUTPUT_NAME") {
            Some(_) => format!("pkg/{OUTPUT_NAME}.wasm"),
            None => format!("pkg/{OUTPUT_NAME}_bg.wasm"),
        };
        SiteFiles {
            js: format!("pkg/{OUTPUT_NAME}.js"),
            wasm,
            css: format!("pkg/{OUTPUT_NAME}.css"),
        }
    }
}

/// The HTML document around the app, rendered on the server only.
pub fn shell() -> impl IntoView {
    let files = use_context::<SiteFiles>().unwrap_or_else(SiteFiles::unhashed);
    let (js, wasm, css) = (
        format!("/{}", files.js),
        format!("/{}", files.wasm),
        format!("/{}", files.css),
    );
    // What Leptos's `HydrationScripts` does, with the hashed names (it can only read those from a
    // file beside the binary at run time).
    // The inline script's early "sending…" rows go just before hydration, and what it adds to the
    // app's own parts just after (app/src/early.js).
    let hydrate = format!(
        "import init, {{ hydrate }} from {js:?}; init({{ module_or_path: {wasm:?} }})\
         .then(() => {{ window.heraldBeforeHydrate?.(); hydrate(); window.heraldAfterHydrate?.(); }});"
    );
    // The session cookie is HttpOnly; the hydrating client learns who it is from here.
    let user = current_user().and_then(|user| serde_json::to_string(&user).ok());
    // The room the page shows, with its cursor: the hydrating client continues from exactly there.
    let room = initial_room().and_then(|page| serde_json::to_string(&page).ok());
    // What the server accepts: the composer checks against it before the first `welcome`.
    let limits = serde_json::to_string(&state::page_limits()).ok();
    // The title is written here and kept by the page itself (`Chat`), not by leptos_meta: that
    // costs the browser's bundle ~1 KB (BENCHMARKS.md, "The browser bundle").
    let title = match (&user, initial_room()) {
        (Some(_), Some(page)) => page_title(&state::room_title(&page.room, None), 0),
        _ => "Herald".to_owned(),
    };
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <title>{title}</title>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <meta
                    name="description"
                    content="Herald: rooms of live chat, with their history, in one small server."
                />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                {match use_context::<PageStyle>() {
                    Some(PageStyle(style)) => Either::Left(view! { <style nonce=leptos::nonce::use_nonce()>{style.to_string()}</style> }),
                    None => Either::Right(view! { <link rel="stylesheet" href=css/> }),
                }}
                <link rel="modulepreload" href=js.clone()/>
                <link rel="preload" href=wasm r#as="fetch" r#type="application/wasm" crossorigin=""/>
                {user.map(|user| view! { <meta name=USER_META content=user/> })}
                {room.map(|room| view! { <meta name=ROOM_META content=room/> })}
                {limits.map(|limits| view! { <meta name=LIMITS_META content=limits/> })}
                <script type="module" nonce=leptos::nonce::use_nonce()>{hydrate}</script>
            </head>
            <body>
                <App/>
                // After the app, outside what is hydrated: the page works before the wasm has loaded.
                <script nonce=leptos::nonce::use_nonce()>{include_str!("early.js")}</script>
                <noscript>
                    <p class="noscript" data-testid="noscript">
                        "Herald shows a room's latest messages without JavaScript, but sending, live "
                        "updates and other rooms need it: turn JavaScript on for this site."
                    </p>
                </noscript>
            </body>
        </html>
    }
}

/// The application: the same tree on the server and, after hydration, in the browser.
#[component]
pub fn App() -> impl IntoView {
    location::provide();
    // One per tab: it outlives moving between rooms, which happens without reloading the page.
    let tab = Tab::new(current_user());
    provide_context(tab);
    // Effects run only in the browser, after hydration: this is where the page comes alive.
    Effect::new(move |_| {
        tab.hydrated.set(true);
        #[cfg(feature = "hydrate")]
        {
            if tab.me.get_untracked().is_some() {
                // What was left written in this browser comes back before the first connection,
                // so it is sent with it.
                tab.rooms().into_iter().for_each(|room| tab.restore(room));
                client::connect(tab);
                // Leaving while something is unsent: the browser asks first.
                std::mem::forget(window_event_listener(leptos::ev::beforeunload, move |ev| {
                    if tab.has_unsent() {
                        ev.prevent_default();
                    }
                }));
            }
            // Whether anyone can see the page decides what counts as read.
            let hidden = || leptos::prelude::document().hidden();
            tab.set_visible(!hidden());
            let changed = leptos::ev::Custom::<leptos::ev::Event>::new("visibilitychange");
            // The page lives as long as the listener is needed: keep it for good.
            std::mem::forget(window_event_listener(changed, move |_| {
                tab.set_visible(!hidden());
            }));
        }
    });
    view! { <ChatPage/> }
}

/// The chat of the room in the URL (`/r/{room}`, or `general` at `/`) for someone who has chosen a
/// name; the name prompt for everyone else.
#[component]
fn ChatPage() -> impl IntoView {
    let here = here();
    let tab = expect_context::<Tab>();
    // A session that ends (signed out in another tab) brings the name form back.
    let signed_in = Memo::new(move |_| tab.me.with(Option::is_some));
    // Following a room link changes the URL without a page load. Keyed by the page, so the page for
    // another room is built afresh (with that room's state) rather than patched from this one.
    view! {
        <For each=move || [(here.page(), signed_in.get())] key=Clone::clone let:shown>
            {match shown {
                (Page::Room(room), true) => EitherOf3::A(view! { <Chat room/> }),
                (Page::Room(_), false) => EitherOf3::B(view! { <SignInNeeded/> }),
                (Page::BadRoom { room, why }, _) => EitherOf3::C(view! {
                    <NotFound why=format!("There is no room called “{room}”: {why}.")/>
                }),
                (Page::NotFound, _) => EitherOf3::C(view! { <NotFound/> }),
            }}
        </For>
    }
}

/// A room asked for by someone not signed in: the server sends them to sign in first, so this
/// shows only if the session ended while the page was open.
#[component]
fn SignInNeeded() -> impl IntoView {
    view! {
        <main class="app name-prompt" data-hydrated="false">
            <p><a href="/sign-in">"Sign in to chat"</a></p>
        </main>
    }
}

/// What a name must be, said when one was refused.
fn name_rule() -> String {
    format!(
        "Please choose a name of 1 to {MAX_NAME_CHARS} characters, some of them visible, without \
         hidden, control or text-direction characters, each word in one alphabet."
    )
}

/// The chat: header with who you are and the connection state, the room list, the open room's
/// conversation and the people in it, the composer.
#[component]
fn Chat(room: String) -> impl IntoView {
    let tab = expect_context::<Tab>();
    let open = tab.show(&room);
    provide_context(open);
    #[cfg(feature = "hydrate")]
    {
        let room = room.clone();
        Effect::new(move || {
            document().set_title(&page_title(&tab.title(&room), tab.unread_total()))
        });
        on_cleanup(|| document().set_title("Herald"));
    }
    // After a change of name, back to this room.
    let here = format!("/r/{room}");
    let room_title = room.clone();
    let my_name = tab.me.get_untracked().map(|me| me.name).unwrap_or_default();
    // A refused change of name comes back here with `?name_error=`: say why, with the form open.
    let location = location::here();
    let rename_error = location.has_param("name_error").then(name_rule);
    let renaming = rename_error.is_some();
    // On a phone the people panel is a drop-down under this button (on a wide screen it is always
    // shown, and the button is not).
    let people_open = RwSignal::new(false);
    let close_people = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Escape" && people_open.get_untracked() {
            people_open.set(false);
        }
    };
    // Following the link would only scroll; the focus must move too.
    let skip_to_box = move |ev: leptos::ev::MouseEvent| {
        #[cfg(feature = "hydrate")]
        {
            ev.prevent_default();
            components::focus_on("#message-box");
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let close_on_escape = move |ev: leptos::ev::KeyboardEvent| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            if ev.key() != "Escape" {
                return;
            }
            let Some(details) = ev
                .current_target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            else {
                return;
            };
            let _ = details.remove_attribute("open");
            if let Some(summary) = details
                .query_selector("summary")
                .ok()
                .flatten()
                .and_then(|s| s.dyn_into::<web_sys::HtmlElement>().ok())
            {
                let _ = summary.focus();
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };

    view! {
        <div
            class="app"
            class:people-open=move || people_open.get()
            data-hydrated=move || tab.hydrated.get().to_string()
            on:keydown=close_people
        >
            <a class="skip-link" href="#message-box" data-testid="skip-link" on:click=skip_to_box>
                "Skip to the message box"
            </a>
            <header class="topbar">
                <h1 class="brand">"Herald"</h1>
                <a class="room-name" data-testid="room-name" href=format!("/r/{room}/about") title="About this room">
                    {move || tab.title(&room_title)}
                </a>
                <button
                    type="button"
                    class="people-toggle"
                    data-testid="people-toggle"
                    aria-controls="people"
                    aria-expanded=move || people_open.get().to_string()
                    title="Who is here"
                    on:click=move |_| people_open.update(|open| *open = !*open)
                >
                    {move || open.member_count.get()}
                    " here"
                </button>
                // Your name; open it to change it or to sign out (plain forms: they work before the
                // page is hydrated; renamed, you stay who you are, so what you said is still yours).
                // Escape closes it, and puts the focus back on the name.
                <details class="me" open=renaming on:keydown=close_on_escape>
                    <summary data-testid="me" title="Change your name, or sign out">
                        {move || tab.me.get().map(|me| me.name)}
                    </summary>
                    <div class="me-panel">
                    <form class="rename" method="post" action="/session">
                        <input
                            name="name"
                            data-testid="rename-input"
                            aria-label="New display name"
                            value=my_name
                            required
                            maxlength=MAX_NAME_CHARS
                        />
                        <input type="hidden" name="next" value=here/>
                        <button type="submit">"Change name"</button>
                        {rename_error.map(|error| view! {
                            <p class="form-error" role="alert" data-testid="rename-error">{error}</p>
                        })}
                    </form>
                    <a class="account-link" href="/account" data-testid="account-link">"Your account and devices"</a>
                    <form class="sign-out" method="post" action="/session/end">
                        <button type="submit" title="Sign out on this device">"Sign out"</button>
                    </form>
                    </div>
                </details>
                <ConnectionStatus/>
            </header>
            <nav class="sidebar" aria-label="Rooms">
                <RoomList/>
                // Pages of their own, rendered by the server (server/src/search_page.rs,
                // mentions.rs). Not in the room list: on a phone that is a row that scrolls, and
                // these stay in sight before it.
                <ul class="sidebar-links">
                    <li class="room-action search"><a href="/search" data-testid="search">"Search messages"</a></li>
                    <li class="room-action mentions-link"><a href="/mentions" data-testid="mentions">"Mentions"</a></li>
                </ul>
                <GoToRoom/>
            </nav>
            <main class="conversation">
                <SameName/>
                <MessageList/>
                <TypingIndicator/>
            </main>
            <aside class="people" id="people" aria-label="People in this room">
                <Members/>
            </aside>
            <footer class="composer-bar">
                <Composer/>
            </footer>
        </div>
    }
}

/// A 404 page, saying `why` when there is more to say than "not found".
#[component]
fn NotFound(#[prop(optional, into)] why: Option<String>) -> impl IntoView {
    // A wrong URL is a real 404 for crawlers and scripts, not a 200 with an error page.
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <div class="app not-found">
            <h1>"Not found"</h1>
            {why.map(|why| view! { <p data-testid="not-found-why">{why}</p> })}
            <p><a href="/">"Back to the chat"</a></p>
        </div>
    }
}

/// The tab's title: the room on screen, after how many messages wait unread in the open rooms, so a
/// background tab shows that something was said ("(3) # general · Herald").
/// The tab's title: the room as it is called (`state::room_title`), after what is unread.
fn page_title(shown: &str, unread: u32) -> String {
    match unread {
        0 => format!("{shown} · Herald"),
        n => format!("({n}) {shown} · Herald"),
    }
}

#[cfg(test)]
mod tests {
    use super::page_title;

    #[test]
    fn the_title_names_the_room_and_counts_what_is_unread() {
        assert_eq!(page_title("# general", 0), "# general · Herald");
        assert_eq!(page_title("# ops", 12), "(12) # ops · Herald");
        assert_eq!(
            page_title(
                &crate::state::room_title("~0123456789abcdef0123", Some("Plans".into())),
                1
            ),
            "(1) 🔒 Plans · Herald"
        );
    }
}
