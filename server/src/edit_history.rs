//! A message's edit history page, `/r/{room}/edits/{seq}`: every text it has had, oldest first,
//! each with when it was written, formatted as in the chat — what the chat's "(edited)" opens.
//! Rendered on the server alone (`plain.rs`: the chat's WebAssembly stays within its budget), for
//! whoever may read the room, through the same rule as the API's `…/versions`
//! (`transport::api::message_versions`). A deleted message has no history left to show.

use app::{
    markdown,
    protocol::{Identity, normalize_room},
};
use axum::{
    extract::{Path, Request, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use leptos::{prelude::*, tachys::view::RenderHtml};

use crate::{AppState, plain, rooms::Version, transport::api::message_versions};

/// `GET /r/{room}/edits/{seq}`.
pub async fn page(
    State(state): State<AppState>,
    Path((room, seq)): Path<(String, String)>,
    request: Request,
) -> Response {
    let Ok(room) = normalize_room(&room) else {
        return shown(
            &state,
            StatusCode::NOT_FOUND,
            "Not found",
            None,
            room_gone(),
        );
    };
    let back = format!("/r/{room}");
    // Who has not chosen a name is asked for one, on the room's page.
    let Some(me) = state.sessions.signed_in(request.headers()).await else {
        return Redirect::to(&back).into_response();
    };
    // The room's door: one this reader may not open is answered as one that does not exist.
    let caller = crate::transport::auth::Caller::Person(Box::new(me.account));
    if let Err(e) = crate::transport::auth::through_door(&state, &caller, &room).await {
        let why = view! { <p data-testid="why">{e.message}</p> }.to_html();
        return shown(&state, e.status, "Edit history", None, why);
    }
    let Ok(seq) = seq.parse::<u64>() else {
        return shown(
            &state,
            StatusCode::NOT_FOUND,
            "Not found",
            Some(&back),
            room_gone(),
        );
    };
    let back = format!("/r/{room}?at={seq}");
    match message_versions(&state, &room, seq).await {
        Ok((author, versions)) => {
            let title = format!("Edit history · #{room}");
            let view = history(&room, &author, versions, &back);
            shown(&state, StatusCode::OK, &title, Some(&back), view)
        }
        Err(e) => {
            let why = view! { <p data-testid="why">{e.message}</p> }.to_html();
            shown(&state, e.status, "Edit history", Some(&back), why)
        }
    }
}

fn room_gone() -> String {
    view! { <p data-testid="why">"There is no such message."</p> }.to_html()
}

/// The versions, oldest first, the one shown now marked.
fn history(room: &str, author: &Identity, versions: Vec<Version>, back: &str) -> String {
    let edits = versions.len().saturating_sub(1);
    let last = versions.len().saturating_sub(1);
    let rows = versions
        .into_iter()
        .enumerate()
        .map(|(n, version)| {
            let label = match n {
                0 => "Posted".to_owned(),
                n if n == last => format!("Edit {n} (now)"),
                n => format!("Edit {n}"),
            };
            let mut body = String::new();
            markdown::to_html(&markdown::parse(&version.body), &mut body);
            view! {
                <li class="version" data-testid="version">
                    <p class="meta"><span class="author">{label}</span>{crate::plain::moment(version.at)}</p>
                    <div class="body" inner_html=body></div>
                </li>
            }
        })
        .collect_view();
    let said = match edits {
        1 => "edited once".to_owned(),
        n => format!("edited {n} times"),
    };
    view! {
        <h1>"Edit history"</h1>
        <p>"A message by "<strong>{author.name.clone()}</strong>" in "<a href=back.to_owned()>"#"{room.to_owned()}</a>", "{said}"."</p>
        <ol class="versions">{rows}</ol>
    }
    .to_html()
}

/// The page around `main`, with a way back.
fn shown(
    state: &AppState,
    status: StatusCode,
    title: &str,
    back: Option<&str>,
    main: String,
) -> Response {
    let back = back.map(|back| {
        view! { <p><a href=back.to_owned() data-testid="back">"Back to the conversation"</a></p> }
    });
    let main = format!("{main}{}", back.to_html());
    plain::page(state, status, title, "history-page", main)
}
