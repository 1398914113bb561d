//! The moderators' pages, rendered on the server alone (`plain.rs`): a message's own page, where
//! anyone who may read it reports it and a moderator removes it or mutes its author in the room for
//! a while; and the queue of open reports. Every page goes through the room's door first
//! (`access.rs`), and every action a moderator takes is noted in the audit log (docs/ACCOUNTS.md,
//! "Moderation").

use app::protocol::{Change, MessageKind};
use axum::{
    Form, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use leptos::{prelude::*, tachys::view::RenderHtml};
use serde::Deserialize;

use crate::{
    AppState, access,
    accounts::Me,
    people::{Account, Report, Role, now_ms},
    plain,
    room_pages::door,
    rooms::{Content, NewEntry},
    session::unavailable,
};

/// The longest reason a report gives, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// How long a moderator may mute someone for, in minutes: an hour, a day, a week.
const MUTES: [(u64, &str); 3] = [(60, "1 hour"), (24 * 60, "1 day"), (7 * 24 * 60, "1 week")];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/r/{room}/messages/{seq}", get(message_page))
        .route("/r/{room}/messages/{seq}/report", post(report))
        .route("/r/{room}/messages/{seq}/remove", post(remove))
        .route("/r/{room}/messages/{seq}/mute", post(mute))
        .route("/moderation", get(queue))
        .route("/moderation/dismiss", post(dismiss))
}

fn may_moderate(account: &Account) -> bool {
    matches!(account.role, Role::Admin | Role::Moderator)
}

/// Message `seq` of `room` as it reads now: its author and text, or `None` if it is gone
/// (deleted, never posted, no longer kept).
async fn message_of(
    state: &AppState,
    room: &str,
    seq: u64,
) -> Option<(app::protocol::Identity, String)> {
    let (author, versions) = crate::transport::api::message_versions(state, room, seq)
        .await
        .ok()?;
    let text = versions.last()?.body.clone();
    Some((author, text))
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

/// `GET /r/{room}/messages/{seq}`: the message, "Report", and for a moderator "Remove" and "Mute".
async fn message_page(
    State(state): State<AppState>,
    Me(me): Me,
    Path((room, seq)): Path<(String, u64)>,
    axum::extract::Query(done): axum::extract::Query<Done>,
) -> Response {
    if let Err(answer) = door(&state, &me.account, &room).await {
        return answer;
    }
    let action = |what: &str| format!("/r/{room}/messages/{seq}/{what}");
    let said = match done.done.as_deref() {
        Some("reported") => Some("Thank you: the moderators will look at it."),
        Some("removed") => Some("Removed. Everyone now sees it as removed by a moderator."),
        Some("muted") => Some("Muted in this room."),
        _ => None,
    };
    let Some((author, text)) = message_of(&state, &room, seq).await else {
        let main = view! {
            <h1>"Message"</h1>
            <p role="status" data-testid="done">{said}</p>
            <p data-testid="why">"This message is gone: deleted, or no longer kept."</p>
            <p><a href=format!("/r/{room}")>"Back to the room"</a></p>
        }
        .to_html();
        return plain::page(
            &state,
            StatusCode::OK,
            "Message · Herald",
            "history-page",
            main,
        );
    };
    let tools = may_moderate(&me.account).then(|| {
        let mutes = MUTES
            .iter()
            .map(|(minutes, label)| view! { <option value=minutes.to_string()>{*label}</option> })
            .collect_view();
        view! {
            <section aria-labelledby="moderate-title">
                <h2 id="moderate-title">"Moderate"</h2>
                <form method="post" action=action("remove")>
                    <button type="submit" class="danger" data-testid="remove">"Remove this message"</button>
                </form>
                <form class="name-form" method="post" action=action("mute")>
                    <label for="minutes">{format!("Mute {} in this room for", author.name)}</label>
                    <select id="minutes" name="minutes" data-testid="mute-for">{mutes}</select>
                    <button type="submit" data-testid="mute">"Mute"</button>
                </form>
            </section>
        }
    });
    let ignore = match author.id != me.account.id {
        true => match state.sessions.people.ignored(&me.account.id).await {
            Ok(ignored) => Some(crate::personal::ignore_form(
                &author,
                ignored.contains(&author.id),
                format!("/r/{room}/messages/{seq}"),
            )),
            Err(e) => return unavailable(&e),
        },
        false => None,
    };
    let main = view! {
        <h1>"Message"</h1>
        <p role="status" data-testid="done">{said}</p>
        <blockquote class="quoted" data-testid="message">
            <p><strong>{author.name.clone()}</strong></p>
            <p class="body">{text}</p>
        </blockquote>
        <section aria-labelledby="report-title">
            <h2 id="report-title">"Report it to the moderators"</h2>
            <form class="name-form" method="post" action=action("report") data-testid="report-form">
                <label for="reason">"What is wrong with it?"</label>
                <textarea id="reason" name="reason" required maxlength=MAX_REASON_CHARS data-testid="reason"></textarea>
                <button type="submit">"Report"</button>
            </form>
        </section>
        {ignore}
        {tools}
        <p><a href=format!("/r/{room}?at={seq}") data-testid="back">"Back to the room"</a></p>
    }
    .to_html();
    plain::page(
        &state,
        StatusCode::OK,
        "Message · Herald",
        "history-page account-page",
        main,
    )
}

#[derive(Deserialize)]
struct ReasonForm {
    reason: String,
}

/// `POST …/report`: anyone who may read the message reports it, once.
async fn report(
    State(state): State<AppState>,
    Me(me): Me,
    Path((room, seq)): Path<(String, u64)>,
    Form(form): Form<ReasonForm>,
) -> Response {
    if let Err(answer) = door(&state, &me.account, &room).await {
        return answer;
    }
    let Ok(reason) = app::protocol::validate_line(&form.reason, MAX_REASON_CHARS) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Say in 1 to 500 characters what is wrong with it.",
        )
            .into_response();
    };
    if message_of(&state, &room, seq).await.is_none() {
        return (StatusCode::NOT_FOUND, "That message is gone.").into_response();
    }
    let filed = Report {
        id: Report::id_of(&room, seq, &me.account.id),
        room: room.clone(),
        seq,
        by: me.account.id.clone(),
        reason,
        at_ms: now_ms(),
    };
    match state.sessions.people.report(&filed).await {
        Ok(_) => {
            tracing::info!(room = %room, seq, by = %me.account.id, "a message was reported");
            Redirect::to(&format!("/r/{room}/messages/{seq}?done=reported")).into_response()
        }
        Err(e) => unavailable(&e),
    }
}

/// `POST …/remove`: a moderator removes the message: stored as a delete of kind `moderation`, as
/// the chat's own "Delete" is from a moderator, so every reader shows it removed by a moderator.
async fn remove(
    State(state): State<AppState>,
    Me(me): Me,
    Path((room, seq)): Path<(String, u64)>,
) -> Response {
    if let Err(answer) = door(&state, &me.account, &room).await {
        return answer;
    }
    if !may_moderate(&me.account) {
        return (StatusCode::FORBIDDEN, "Moderators remove messages.").into_response();
    }
    let removal = NewEntry {
        room: room.clone(),
        author: me.account.identity(),
        client_id: format!("remove-{}", crate::ids::random_hex(8)),
        kind: MessageKind::Moderation,
        content: Content::Change {
            target: seq,
            change: Change::Delete,
        },
    };
    match state.rooms.append(removal).await {
        Ok(_) => {
            let people = &state.sessions.people;
            people
                .record(
                    &me.account.id,
                    "remove_message",
                    &room,
                    &seq.to_string(),
                    "",
                )
                .await;
            if let Err(e) = people.close_reports(&room, seq).await {
                tracing::warn!("closing the reports of a removed message: {e}");
            }
            Redirect::to(&format!("/r/{room}/messages/{seq}?done=removed")).into_response()
        }
        Err(e) => crate::transport::auth::ApiError::unavailable(e).into_response(),
    }
}

#[derive(Deserialize)]
struct MuteForm {
    minutes: u64,
}

/// `POST …/mute`: a moderator mutes the message's author in the room for a while: their sockets in
/// it close (4003) and come back read-only until then, on every node.
async fn mute(
    State(state): State<AppState>,
    Me(me): Me,
    Path((room, seq)): Path<(String, u64)>,
    Form(form): Form<MuteForm>,
) -> Response {
    if let Err(answer) = door(&state, &me.account, &room).await {
        return answer;
    }
    if !may_moderate(&me.account) || !MUTES.iter().any(|(m, _)| *m == form.minutes) {
        return (
            StatusCode::FORBIDDEN,
            "Moderators mute, for an hour, a day or a week.",
        )
            .into_response();
    }
    let Some((author, _)) = message_of(&state, &room, seq).await else {
        return (StatusCode::NOT_FOUND, "That message is gone.").into_response();
    };
    let until = now_ms().saturating_add(form.minutes.saturating_mul(60_000));
    let people = &state.sessions.people;
    match people.mute(&room, &author.id, until).await {
        Ok(()) => {
            let minutes = form.minutes.to_string();
            people
                .record(&me.account.id, "mute", &room, &author.id, &minutes)
                .await;
            access::rooms_changed(&state, &author.id, Some(&room));
            Redirect::to(&format!("/r/{room}/messages/{seq}?done=muted")).into_response()
        }
        Err(e) => unavailable(&e),
    }
}

/// `GET /moderation`: the open reports, the oldest first, each with its message and a way to it.
async fn queue(State(state): State<AppState>, Me(me): Me) -> Response {
    if !may_moderate(&me.account) {
        return (StatusCode::FORBIDDEN, "Moderators see this page.").into_response();
    }
    let people = &state.sessions.people;
    let reports = match people.reports().await {
        Ok(reports) => reports,
        Err(e) => return unavailable(&e),
    };
    let mut rows = Vec::new();
    for report in reports {
        let text = message_of(&state, &report.room, report.seq)
            .await
            .map_or_else(
                || "(gone)".to_owned(),
                |(author, text)| format!("{}: {text}", author.name),
            );
        let reporter = match people.account(&report.by).await {
            Ok(Some(account)) => account.name,
            _ => report.by.clone(),
        };
        let link = format!("/r/{}/messages/{}", report.room, report.seq);
        rows.push(view! {
            <li class="session" data-testid="report">
                <span>
                    <a href=link>{text}</a>
                    <br/>
                    <span class="hint">{format!("{reporter}: {}", report.reason)}</span>
                </span>
                <form method="post" action="/moderation/dismiss">
                    <input type="hidden" name="room" value=report.room.clone()/>
                    <input type="hidden" name="seq" value=report.seq.to_string()/>
                    <button type="submit" class="link">"Let it be"</button>
                </form>
            </li>
        });
    }
    let empty = rows
        .is_empty()
        .then(|| view! { <p data-testid="no-reports">"Nothing reported."</p> });
    let main = view! {
        <h1>"Reported messages"</h1>
        {empty}
        <ul class="sessions" data-testid="reports">{rows}</ul>
        <p><a href="/">"Back to the chat"</a></p>
    }
    .to_html();
    plain::page(
        &state,
        StatusCode::OK,
        "Reported messages · Herald",
        "history-page account-page",
        main,
    )
}

#[derive(Deserialize)]
struct DismissForm {
    room: String,
    seq: u64,
}

/// `POST /moderation/dismiss`: a moderator closes a message's reports without removing it.
async fn dismiss(
    State(state): State<AppState>,
    Me(me): Me,
    Form(form): Form<DismissForm>,
) -> Response {
    if !may_moderate(&me.account) {
        return (StatusCode::FORBIDDEN, "Moderators do this.").into_response();
    }
    let people = &state.sessions.people;
    match people.close_reports(&form.room, form.seq).await {
        Ok(_) => {
            let seq = form.seq.to_string();
            people
                .record(&me.account.id, "dismiss", &form.room, &seq, "")
                .await;
            Redirect::to("/moderation").into_response()
        }
        Err(e) => unavailable(&e),
    }
}
