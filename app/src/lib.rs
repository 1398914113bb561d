//! Herald's Leptos application, compiled twice: with `ssr` into the server, which renders the page, and
//! with `hydrate` into the WASM frontend, which takes that page over in the browser.
//!
//! It owns the page shell, the routes, the components, and [`protocol`] — the one definition of the
//! wire format both ends use.

#![recursion_limit = "256"]

pub mod components;
pub mod protocol;
pub mod state;

#[cfg(feature = "hydrate")]
pub mod client;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::{
    ParamSegment, StaticSegment,
    components::{Route, Router, Routes},
    hooks::{use_location, use_params_map, use_query_map},
};

use components::{Composer, ConnectionStatus, MessageList};
use protocol::{DEFAULT_ROOM, MAX_NAME_CHARS, MAX_ROOM_CHARS, validate_room};
use state::{ChatState, USER_META, current_user};

/// The name the build gives the JS glue and the wasm (`pkg/herald.js`, `pkg/herald_bg.wasm`) and the
/// stylesheet (`pkg/herald.css`). The server's `LeptosOptions` and `cargo xtask` both use it.
pub const OUTPUT_NAME: &str = "herald";

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let css = format!("/{}/{OUTPUT_NAME}.css", options.site_pkg_dir);
    // The session cookie is HttpOnly; the hydrating client learns who it is from here.
    let user = current_user().and_then(|user| serde_json::to_string(&user).ok());
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <link rel="stylesheet" href=css/>
                {user.map(|user| view! { <meta name=USER_META content=user/> })}
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application: the same tree on the server and, after hydration, in the browser.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="Herald"/>
        <Router>
            <Routes fallback=NotFound>
                <Route path=StaticSegment("") view=ChatPage/>
                <Route path=(StaticSegment("r"), ParamSegment("room")) view=ChatPage/>
            </Routes>
        </Router>
    }
}

/// The chat of the room in the URL (`/r/{room}`, or `general` at `/`) for someone who has chosen a
/// name; the name prompt for everyone else.
#[component]
fn ChatPage() -> impl IntoView {
    let room = use_params_map()
        .with_untracked(|params| params.get("room"))
        .unwrap_or_else(|| DEFAULT_ROOM.to_string());
    if validate_room(&room).is_err() {
        return view! { <NotFound/> }.into_any();
    }
    match current_user() {
        Some(_) => view! { <Chat room/> }.into_any(),
        None => view! { <NamePrompt/> }.into_any(),
    }
}

/// Asks a first-time visitor for a display name. A plain form posted to `/session`, so it works
/// before (and without) the WASM.
#[component]
fn NamePrompt() -> impl IntoView {
    let query = use_query_map();
    // After choosing a name, come back to this very page (a room's URL, say).
    let here = use_location().pathname.get_untracked();
    let error = move || {
        query.with(|q| q.get("name_error")).map(|_| {
            format!("Please choose a name of 1 to {MAX_NAME_CHARS} characters, without line breaks or control characters.")
        })
    };
    view! {
        <div class="app name-prompt" data-hydrated="false">
            <form class="name-form" method="post" action="/session" data-testid="name-form">
                <h1 class="brand">"Herald"</h1>
                <label for="name">"Choose a display name"</label>
                <input
                    id="name"
                    name="name"
                    data-testid="name-input"
                    required
                    autocomplete="nickname"
                    maxlength=MAX_NAME_CHARS
                    autofocus
                />
                <input type="hidden" name="next" value=here/>
                <button type="submit">"Start chatting"</button>
                <p class="form-error" role="alert" data-testid="name-error">{error}</p>
            </form>
        </div>
    }
}

/// The chat: header with who you are and the connection state, the rooms, the live message list, the
/// composer.
#[component]
fn Chat(room: String) -> impl IntoView {
    let chat = ChatState::new(current_user(), room.clone());
    provide_context(chat);

    // Effects run only in the browser, after hydration: this is where the page comes alive.
    Effect::new(move |_| {
        chat.hydrated.set(true);
        #[cfg(feature = "hydrate")]
        client::connect(chat);
    });

    view! {
        <div class="app" data-hydrated=move || chat.hydrated.get().to_string()>
            <header class="topbar">
                <h1 class="brand">"Herald"</h1>
                <span class="room-name" data-testid="room-name">"# " {room}</span>
                <span class="me" data-testid="me">
                    {move || chat.me.get().map(|me| me.name)}
                </span>
                <form class="sign-out" method="post" action="/session/end">
                    <button type="submit" title="Forget my name in this browser">"Sign out"</button>
                </form>
                <ConnectionStatus/>
            </header>
            <nav class="rooms" aria-label="Rooms">
                <a href="/">"# general"</a>
                // A plain form: the server turns `/r?room=name` into `/r/name`.
                <form class="go-to-room" method="get" action="/r">
                    <input
                        name="room"
                        data-testid="room-input"
                        placeholder="go to room…"
                        aria-label="Go to room"
                        pattern="[a-z0-9_\\-]+"
                        maxlength=MAX_ROOM_CHARS
                        required
                    />
                </form>
            </nav>
            <main class="conversation">
                <MessageList/>
            </main>
            <footer class="composer-bar">
                <Composer/>
            </footer>
        </div>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    // A wrong URL is a real 404 for crawlers and scripts, not a 200 with an error page.
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <div class="app not-found">
            <h1>"Not found"</h1>
            <p><a href="/">"Back to the chat"</a></p>
        </div>
    }
}
