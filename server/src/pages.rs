//! The app's pages, rendered on the server for each request: who is asking (from the session cookie)
//! and, for a chat page, the room's cursor and latest messages, so the page shows the conversation
//! before any script runs and the hydrated client continues from exactly that point
//! (docs/ARCHITECTURE.md).

use app::{
    location::Requested,
    protocol::{DEFAULT_ROOM, normalize_room, validate_room},
    state::{CurrentUser, InitialRoom, RoomPage},
};
use axum::{
    extract::{Query, Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use leptos::{nonce::Nonce, prelude::provide_context};

use crate::{AppState, guard, rooms, session};

/// Renders whatever page of the app `request` asks for (the app's router decides which, including
/// its "not found").
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
    let user = state.sessions.from_headers(request.headers());
    let room = match user {
        Some(_) => room_page(&state, request.uri().path()).await,
        None => None,
    };
    let requested = Requested {
        path: request.uri().path().to_owned(),
        query: request.uri().query().unwrap_or_default().to_owned(),
    };
    let files = state.site_files.as_deref().cloned();
    let style = state.page_style.clone();
    let limits = state.limits.announced();
    // A new nonce per page: the one inline script (hydration) runs; any injected one would not.
    let nonce = session::random_hex(16);
    let csp = guard::page_csp(&nonce, guard::requested_host(&request));
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
    let mut response = render(request).await.into_response();
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// The room a chat page at `path` shows, as the log has it now; `None` if the path is not a chat
/// page, the room does not exist yet, or the log cannot be read (then the client joins without a
/// cursor and gets the latest messages over the socket instead).
async fn room_page(state: &AppState, path: &str) -> Option<RoomPage> {
    let room = match path {
        "/" => DEFAULT_ROOM,
        _ => path.strip_prefix("/r/")?,
    };
    validate_room(room).ok()?;
    let epoch = state.log.epoch(room)?;
    // Everything up to the hub's last published seq is committed: the page and the live stream
    // meet exactly there. The page shows what a join without a cursor would.
    let last = state.hub.last_seq(room).unwrap_or(0);
    match rooms::replay(&state.log, room, &epoch, last, None).await {
        Ok(replay) => Some(RoomPage {
            room: room.to_owned(),
            epoch,
            has_more: replay.has_older,
            messages: replay.messages,
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
