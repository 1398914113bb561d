//! Mentions (docs/READING.md, "Mentions"): a stored message that `@mentions` people records, for
//! each of them who may read its room, that they were called on there (`people::mentions`) —
//! before its sender's ack, so an acknowledged message's mentions are kept. Counted apart in what
//! is unread (`reading`), and listed on `GET /mentions`: a person's mentions across rooms, newest
//! first, each with its words and a link to it in its room. `GET /r/{room}/people?q=` answers the
//! composer's `@` completion (app/src/early.js): who may be mentioned there whose handle or name
//! begins so.

use axum::{
    Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use leptos::{prelude::*, tachys::view::RenderHtml};
use serde::Deserialize;

use crate::{
    AppState, access,
    accounts::Me,
    log::{Appending, LogError},
    people::{PeopleError, Role, RoomKind, mentions::Mention, now_ms},
    plain,
    session::unavailable,
};

/// Whether `body` may mention anyone (the handles are looked up only then).
pub fn may_mention(body: &str) -> bool {
    body.contains('@')
}

/// `answer` to a message of `room` by `author` (an account id) with `body`: once it is stored, the
/// people it mentions are recorded, then the answer is passed on.
pub fn after_stored(
    state: &AppState,
    room: String,
    author: String,
    body: String,
    answer: Appending,
) -> Appending {
    let (tell, told) = tokio::sync::oneshot::channel();
    let state = state.clone();
    tokio::spawn(async move {
        let stored = answer.await.unwrap_or(Err(LogError::Closed));
        if let Ok(seq) = &stored
            && let Err(e) = record(&state, &room, &author, *seq, &body).await
        {
            tracing::warn!(%room, "the people a message mentions were not recorded: {e}");
        }
        let _ = tell.send(stored);
    });
    told
}

/// Records that message `seq` of `room`, by `author`, mentions the people whose `@handle` it
/// holds — each one who is not its author, not a bot, and may open the room now (a private room's
/// member). Their counts are counted again.
pub async fn record(
    state: &AppState,
    room: &str,
    author: &str,
    seq: u64,
    body: &str,
) -> Result<(), PeopleError> {
    let accounts = crate::notify::mentioned_people(state, room, author, body).await?;
    let Some(epoch) = state.rooms.epoch(room) else {
        return Ok(());
    };
    if accounts.is_empty() {
        return Ok(());
    }
    let mention = Mention {
        room: room.to_owned(),
        epoch,
        seq,
        at: now_ms(),
    };
    state
        .sessions
        .people
        .add_mentions(&accounts, &mention)
        .await?;
    for account in &accounts {
        crate::reading::tell_now(state, account, room).await;
    }
    Ok(())
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/mentions", get(mentions_page))
        .route("/r/{room}/people", get(people_to_mention))
}

/// Most people the completion offers at once.
const OFFERED: usize = 8;

#[derive(Debug, Default, Deserialize)]
struct Typed {
    #[serde(default)]
    q: String,
}

/// One person the completion offers.
#[derive(Debug, serde::Serialize)]
struct Offered {
    handle: String,
    name: String,
}

/// `GET /r/{room}/people?q=`: who may be mentioned in `room` (its door first: a room the asker may
/// not open answers as one that does not exist) whose handle, or a word of whose name, begins with
/// `q` (case aside) — handles first; never the asker; at most [`OFFERED`]. A private room's or a
/// conversation's members; in an open room everyone with an account who may read it, and the bots
/// added to it.
async fn people_to_mention(
    State(state): State<AppState>,
    Me(me): Me,
    axum::extract::Path(room): axum::extract::Path<String>,
    Query(typed): Query<Typed>,
) -> Response {
    if let Err(answer) = crate::room_pages::door(&state, &me.account, &room).await {
        return answer;
    }
    let people = &state.sessions.people;
    let members = match people.members(&room).await {
        Ok(members) => members,
        Err(e) => return unavailable(&e),
    };
    // Borrowed from, not copied: this runs on every keystroke after an `@`.
    let directory;
    let candidates: Vec<&crate::people::Account> = match RoomKind::of(&room) {
        RoomKind::Open => {
            // Every account, as this node read them a moment ago: not a read per keystroke.
            directory = match people.directory().await {
                Ok(directory) => directory,
                Err(e) => return unavailable(&e),
            };
            directory
                .accounts
                .iter()
                .filter(|a| a.role != Role::Bot || members.iter().any(|m| m.id == a.id))
                .collect()
        }
        _ => members.iter().collect(),
    };
    let typed: String = typed
        .q
        .chars()
        .take(32)
        .flat_map(char::to_lowercase)
        .collect();
    let begins = |text: &str| text.to_lowercase().starts_with(&typed);
    let mut offered: Vec<(bool, Offered)> = candidates
        .into_iter()
        .filter(|a| a.active && a.id != me.account.id && a.role != Role::Guest)
        .filter_map(|a| {
            let handle = a.handle.as_ref()?;
            let by_handle = begins(handle);
            (by_handle || a.name.split_whitespace().any(begins)).then(|| {
                let (handle, name) = (handle.clone(), a.name.clone());
                (by_handle, Offered { handle, name })
            })
        })
        .collect();
    offered.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.handle.cmp(&b.1.handle)));
    let offered: Vec<Offered> = offered.into_iter().take(OFFERED).map(|(_, o)| o).collect();
    (
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(offered),
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
struct Asked {
    /// The next page: mentions older than this (ms).
    before: Option<u64>,
}

/// Mentions on a page.
const PAGE: usize = 30;

/// `GET /mentions`: where the person was called on by name, newest first, in the rooms they may
/// read now; each with who wrote what (as it reads now: edited, or gone) and a link to it.
async fn mentions_page(
    State(state): State<AppState>,
    Me(me): Me,
    Query(asked): Query<Asked>,
) -> Response {
    let account = &me.account;
    let people = &state.sessions.people;
    let mentions = match people
        .mentions_of(&account.id, asked.before, PAGE + 1)
        .await
    {
        Ok(mentions) => mentions,
        Err(e) => return unavailable(&e),
    };
    let more = (mentions.len() > PAGE).then(|| mentions[PAGE - 1].at);
    let mut rows = Vec::new();
    for mention in mentions.into_iter().take(PAGE) {
        let title = match access::title_if_open(&state, account, &mention.room).await {
            Ok(Some(title)) => title,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("mentions door: {e}");
                return (StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment.").into_response();
            }
        };
        // Of another history (a restore): not the message it named.
        if state.rooms.epoch(&mention.room).as_deref() != Some(mention.epoch.as_str()) {
            continue;
        }
        let said = state
            .rooms
            .range(&mention.room, mention.seq, mention.seq)
            .await
            .ok()
            .and_then(|mut entries| entries.pop())
            .and_then(|entry| match entry {
                app::protocol::Entry::Message(message) if message.deleted.is_none() => {
                    Some((message.author.name, message.body))
                }
                _ => None,
            });
        let Some((name, body)) = said else {
            continue;
        };
        let link = format!("/r/{}?at={}", mention.room, mention.seq);
        rows.push(view! {
            <li class="search-result" data-testid="mention" data-room=mention.room.clone() data-seq=mention.seq.to_string()>
                <div class="meta">
                    <span class="room-title">{title}</span>
                    <span class="author">{name}</span>
                    {crate::plain::moment(mention.at)}
                </div>
                <a href=link class="body">{body}</a>
            </li>
        });
    }
    let none = rows
        .is_empty()
        .then(|| view! { <p data-testid="no-mentions">"Nobody has mentioned you yet."</p> });
    let next = more.map(|before| {
        let next = format!("/mentions?before={before}");
        view! { <p><a href=next data-testid="next-page">"Older mentions"</a></p> }
    });
    let main = view! {
        <h1>"Mentions"</h1>
        <p class="hint">"Messages that call on you by your @handle, newest first."</p>
        {none}
        <ol class="search-results" data-testid="mentions">{rows}</ol>
        {next}
        <p><a href="/">"Back to the chat"</a></p>
    }
    .to_html();
    plain::page(
        &state,
        StatusCode::OK,
        "Mentions · Herald",
        "history-page search-page",
        main,
    )
}
