//! The app's pages, rendered on the server: who is asking (from the session cookie) and, for a chat
//! page, the room's cursor and latest messages, so the page shows the conversation before any script
//! runs and the hydrated client continues from exactly that point (docs/ARCHITECTURE.md). A chat
//! page is rendered once per room state and kept (`page_cache`).

use app::{
    location::Requested,
    protocol::{DEFAULT_ROOM, Identity, normalize_room, validate_room},
    state::{CurrentUser, InitialRoom, RoomPage},
};
use axum::{
    body::Body,
    extract::{Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use leptos::{nonce::Nonce, prelude::provide_context};

use crate::{
    AppState, accept, access, guard,
    page_cache::{Standins, Template, stitch::Encoding},
};

/// Renders whatever page of the app `request` asks for (the app's router decides which, including
/// its "not found"). A signed-in reader's chat page comes from the page cache (server/src/page_cache).
pub async fn render(State(state): State<AppState>, request: Request) -> Response {
    // Room names are lowercase words; a link written `/r/General` or `/r/Design%20Team` still leads
    // to the room (the one rule, `normalize_room`).
    if let Some(name) = request.uri().path().strip_prefix("/r/") {
        let written = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
        if let Ok(room) = normalize_room(&written)
            && room != name
        {
            return Redirect::permanent(&format!("/r/{room}")).into_response();
        }
    }
    let signed_in = state.sessions.signed_in(request.headers()).await;
    let user = signed_in.as_ref().map(|me| me.account.identity());
    // Someone not signed in is asked to, and comes back here after.
    if user.is_none() && chat_room(request.uri().path()).is_some() {
        let here = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let to = format!("/sign-in?next={}", crate::session::encode(here));
        return Redirect::to(&to).into_response();
    }
    // The room's door: one this reader may not open answers as one that does not exist.
    if let (Some(me), Some(room)) = (&signed_in, chat_room(request.uri().path())) {
        match access::open(&state, access::Who::of(&me.account), room).await {
            Ok(_) => {}
            Err(access::Refused::Missing) => {
                return crate::room_pages::missing(&state, &me.account, room);
            }
            Err(access::Refused::Unavailable(e)) => {
                tracing::warn!("room door: {e}");
                return (StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment.").into_response();
            }
        }
    }
    // A new nonce per page: the inline scripts and style run; any injected one would not.
    let nonce = crate::ids::random_hex(16);
    let csp = guard::page_csp(&nonce, guard::requested_host(&request));
    let path = request.uri().path().to_owned();
    // Only a signed-in reader is shown a room.
    let room = match user.as_ref().and(chat_room(&path)) {
        // A room the log cannot be asked about now is rendered without its history: the page
        // joins it and gets it over the socket.
        Some(room) => match state.rooms.open(room).await {
            Ok(Some((epoch, last, lease))) => Some((room.to_owned(), epoch, last, lease)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("rendering {room} without history: {e}");
                None
            }
        },
        None => None,
    };
    let mut response = match (&user, room) {
        (Some(reader), Some((room, epoch, last, _lease))) => {
            // A page with a query is rendered afresh: queries are endless, rooms are not.
            let template = if state.pages.enabled() && request.uri().query().is_none() {
                let render = |standins| render_twice(&state, &path, &room, &epoch, last, standins);
                state.pages.template(&path, &epoch, last, render).await
            } else {
                None
            };
            match template {
                Some(template) => cached(&template, request.headers(), reader, &nonce),
                None => {
                    let page = room_page(&state, &room, &epoch, last).await;
                    render_app(&state, request, user, page, nonce).await
                }
            }
        }
        _ => render_app(&state, request, user, None, nonce).await,
    };
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// The room a chat page at `path` shows, if it is one.
fn chat_room(path: &str) -> Option<&str> {
    let room = match path {
        "/" => DEFAULT_ROOM,
        _ => path.strip_prefix("/r/")?,
    };
    validate_room(room).ok()?;
    Some(room)
}

/// Renders the app for `request` as `user` with `nonce`, as Leptos streams it.
async fn render_app(
    state: &AppState,
    request: Request,
    user: Option<Identity>,
    room: Option<RoomPage>,
    nonce: String,
) -> Response {
    let requested = Requested {
        path: request.uri().path().to_owned(),
        query: request.uri().query().unwrap_or_default().to_owned(),
    };
    let files = state.site_files.as_deref().cloned();
    let style = state.page_style.clone();
    let limits = state.limits.announced();
    let render = leptos_axum::render_app_to_stream_with_context(
        move || {
            provide_context(CurrentUser(user.clone()));
            provide_context(InitialRoom(room.clone()));
            provide_context(requested.clone());
            provide_context(limits);
            if let Some(files) = files.clone() {
                provide_context(files);
            }
            if let Some(style) = style.clone() {
                provide_context(style);
            }
            provide_context(Nonce::from_value(nonce.as_str()));
        },
        app::shell,
    );
    render(request).await.into_response()
}

/// The chat page at `path` (no query) of `room` at `last`, rendered whole with each set of
/// stand-ins, for the page cache to cut; `None` unless both render as a 200.
async fn render_twice(
    state: &AppState,
    path: &str,
    room: &str,
    epoch: &str,
    last: u64,
    [first, second]: [Standins; 2],
) -> Option<[String; 2]> {
    let page = room_page(state, room, epoch, last).await;
    let (state, path) = (state.clone(), path.to_owned());
    // Rendered to the end on one thread: Leptos keeps a render's reactive arena in a thread-local,
    // and renders begun on one worker and finished on another panicked under the browser tests'
    // load (no arena; values dropped on the wrong thread).
    let rendered = tokio::task::spawn_blocking(move || {
        tokio::runtime::Handle::current().block_on(async {
            let one = render_text(&state, &path, first.reader(), page.clone(), first.nonce());
            let one = one.await?;
            let two = render_text(&state, &path, second.reader(), page, second.nonce());
            Some([one, two.await?])
        })
    });
    rendered.await.ok().flatten()
}

/// The chat page at `path` (no query) as `reader` with `nonce`, whole; `None` unless it renders as
/// a 200.
async fn render_text(
    state: &AppState,
    path: &str,
    reader: Identity,
    room: Option<RoomPage>,
    nonce: String,
) -> Option<String> {
    let request = Request::builder().uri(path).body(Body::empty()).ok()?;
    let response = render_app(state, request, Some(reader), room, nonce).await;
    if response.status() != StatusCode::OK {
        return None;
    }
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .ok()?;
    String::from_utf8(bytes.to_vec()).ok()
}

/// The kept page, for `reader` with `nonce`, in the encoding the request takes (brotli, then gzip,
/// as the site's files are chosen).
fn cached(template: &Template, request: &HeaderMap, reader: &Identity, nonce: &str) -> Response {
    let encoding = if accept::accepts(request, "br") {
        Encoding::Brotli
    } else if accept::accepts(request, "gzip") {
        Encoding::Gzip
    } else {
        Encoding::Identity
    };
    let mut response = template.body(encoding, reader, nonce).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(value) = encoding.header() {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(value));
    }
    response
}

/// The room's page as the log has it at `last`; `None` if the log cannot be read (then the client
/// joins without a cursor and gets the latest messages over the socket instead). The page shows
/// what a join without a cursor would.
async fn room_page(state: &AppState, room: &str, epoch: &str, last: u64) -> Option<RoomPage> {
    match state.rooms.replay(room, epoch, last, None).await {
        Ok(replay) => Some(RoomPage {
            room: room.to_owned(),
            epoch: epoch.to_owned(),
            has_more: replay.has_older,
            messages: replay.messages,
            last_seq: last,
        }),
        Err(e) => {
            tracing::warn!("rendering {room} without history: {e}");
            None
        }
    }
}

#[derive(serde::Deserialize)]
pub struct GoToRoom {
    room: String,
}

/// `GET /r?room=Name`: the "go to room" form's target without scripts; sends the browser to
/// `/r/name`.
pub async fn go_to_room(Query(GoToRoom { room }): Query<GoToRoom>) -> Response {
    match normalize_room(&room) {
        Ok(room) => Redirect::to(&format!("/r/{room}")).into_response(),
        Err(err) => (StatusCode::BAD_REQUEST, err.message).into_response(),
    }
}
