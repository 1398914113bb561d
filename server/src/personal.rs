//! What a person decides for themselves, beyond signing in: whom they ignore (the chat folds that
//! person's messages away for them: app/src/early.js, from `GET /session`), and deleting their own
//! account, with or without what they wrote. The forms' handlers, and the one on a message's page;
//! the account page (`accounts.rs`) shows the list and the deletion form. docs/ACCOUNTS.md,
//! "Leaving", says what each does.

use app::protocol::{Change, Identity, MessageKind};
use axum::{
    Extension, Form, Router,
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::post,
};
use leptos::{prelude::*, tachys::view::RenderHtml};
use serde::Deserialize;

use crate::{
    AppState,
    accounts::{Me, over_budget},
    peer::Client,
    people::Role,
    plain,
    rooms::{Content, LogError, NewEntry, PageAt},
    session::{ended_cookie, local_path, unavailable},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account/ignore", post(set_ignored))
        .route("/account/delete", post(delete_account))
}

#[derive(Deserialize)]
struct IgnoreForm {
    account: String,
    /// `1` to ignore, `0` to stop.
    ignore: u8,
    /// Where to go after (a path on this server).
    back: Option<String>,
}

/// `POST /account/ignore`: ignore someone (not oneself), or no longer.
async fn set_ignored(
    axum::extract::State(state): axum::extract::State<AppState>,
    Me(me): Me,
    Form(form): Form<IgnoreForm>,
) -> Response {
    if form.account == me.account.id {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "You cannot ignore yourself.",
        )
            .into_response();
    }
    let people = &state.sessions.people;
    let ignore = form.ignore == 1;
    // Only someone who is (or was) here: a made-up id would only fill the list.
    if ignore {
        match people.account(&form.account).await {
            Ok(Some(_)) => {}
            Ok(None) => return (StatusCode::NOT_FOUND, "No such person.").into_response(),
            Err(e) => return unavailable(&e),
        }
    }
    match people
        .set_ignored(&me.account.id, &form.account, ignore)
        .await
    {
        Ok(()) => Redirect::to(local_path(form.back.as_deref())).into_response(),
        Err(e) => unavailable(&e),
    }
}

/// The form on a message's page (not one's own): ignore its author, or stop.
pub fn ignore_form(author: &Identity, ignored: bool, back: String) -> impl IntoView + use<> {
    let (value, label) = match ignored {
        true => ("0", format!("Stop ignoring {}", author.name)),
        false => ("1", format!("Ignore {}", author.name)),
    };
    let hint = (!ignored).then_some(
        "Their messages fold away for you, one line each, shown when you choose; they are not told.",
    );
    view! {
        <section aria-labelledby="ignore-title">
            <h2 id="ignore-title">"Ignore"</h2>
            <p class="hint">{hint}</p>
            <form method="post" action="/account/ignore">
                <input type="hidden" name="account" value=author.id.clone()/>
                <input type="hidden" name="ignore" value=value/>
                <input type="hidden" name="back" value=back/>
                <button type="submit" data-testid="ignore">{label}</button>
            </form>
        </section>
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    password: String,
    /// `keep` or `delete`.
    messages: String,
}

/// `POST /account/delete`: the password again, then the account is deleted — every session ends
/// (sockets close on every node), every membership goes — and, if asked, every message it wrote
/// that is still kept is deleted, room by room, after the answer.
async fn delete_account(
    axum::extract::State(state): axum::extract::State<AppState>,
    client: Option<Extension<Client>>,
    Me(me): Me,
    Form(form): Form<DeleteForm>,
) -> Response {
    let account = me.account;
    if matches!(account.role, Role::Admin | Role::Guest | Role::Bot) {
        return (
            StatusCode::FORBIDDEN,
            "An admin's, a guest's or a bot's account is not deleted here.",
        )
            .into_response();
    }
    let erase = match form.messages.as_str() {
        "keep" => false,
        "delete" => true,
        _ => return (StatusCode::UNPROCESSABLE_ENTITY, "Keep or delete?").into_response(),
    };
    let handle = account.handle.as_deref();
    if let Some(refused) = over_budget(&state, "/account", client.as_deref(), handle).await {
        return refused;
    }
    let hasher = &state.accounts.hasher;
    if !hasher
        .verify(&form.password, account.password.as_deref())
        .await
    {
        return Redirect::to("/account?error=delete#delete-title").into_response();
    }
    let people = &state.sessions.people;
    let done = async {
        let rooms = people.rooms_of(&account.id).await?;
        people.delete_account(&account.id).await?;
        let ended = people.end_sessions(&account.id, None).await?;
        for room in &rooms {
            people.remove_member(&room.name, &account.id).await?;
        }
        Ok::<_, crate::people::PeopleError>((rooms, ended))
    };
    let (rooms, ended) = match done.await {
        Ok(done) => done,
        Err(e) => return unavailable(&e),
    };
    crate::session::ended(&state, ended);
    people
        .record(
            &account.id,
            "delete_account",
            "",
            &account.id,
            &form.messages,
        )
        .await;
    tracing::info!(account = %account.id, erase, "an account was deleted by its owner");
    if erase {
        let mut all = match state.rooms.names().await {
            Ok(names) => names
                .into_iter()
                .filter(|n| !app::protocol::is_private(n))
                .collect(),
            Err(e) => {
                tracing::error!("the rooms to delete a deleted account's messages from: {e}");
                Vec::new()
            }
        };
        all.extend(rooms.into_iter().map(|r| r.name));
        let (state, author) = (state.clone(), account.identity());
        state.tasks.clone().spawn(async move {
            for room in all {
                match erase_in(&state, &author, &room).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(room = %room, n, "a deleted account's messages deleted")
                    }
                    Err(e) => tracing::error!(room = %room, "a deleted account's messages: {e}"),
                }
            }
        });
    }
    let main = view! {
        <h1>"Your account is deleted"</h1>
        <p data-testid="deleted">{if erase {
            "You are signed out everywhere. Your messages are being deleted from every room."
        } else {
            "You are signed out everywhere. Your messages stay, marked as from a deleted account."
        }}</p>
        <p><a href="/sign-in">"Sign in as someone else"</a></p>
    }
    .to_html();
    let mut page = plain::page(
        &state,
        StatusCode::OK,
        "Account deleted · Herald",
        "history-page account-page",
        main,
    );
    if let Ok(cookie) = ended_cookie().parse() {
        page.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    page
}

/// Most messages of a room read at once while looking for an author's.
const ERASE_PAGE: u64 = 200;

/// Deletes every message `author` wrote in `room` that is still kept and not deleted: how many.
async fn erase_in(state: &AppState, author: &Identity, room: &str) -> Result<usize, LogError> {
    // The room followed while it is read (in a cluster, its entries reach this node).
    let Some((_, _, _lease)) = state.rooms.open(room).await? else {
        return Ok(0);
    };
    let mut theirs = Vec::new();
    let mut after = 0;
    loop {
        let page = state
            .rooms
            .page(room, PageAt::After(after), ERASE_PAGE)
            .await?;
        theirs.extend(
            page.messages
                .iter()
                .filter(|m| m.author.id == author.id && m.deleted.is_none())
                .filter(|m| m.kind == MessageKind::User)
                .map(|m| m.seq),
        );
        match page.messages.last() {
            Some(last) if page.has_newer => after = last.seq,
            _ => break,
        }
    }
    for seq in &theirs {
        state
            .rooms
            .append(NewEntry {
                room: room.to_owned(),
                author: author.clone(),
                // The same key if it is done again (a retry stores nothing twice).
                client_id: format!("erase-{seq}"),
                kind: MessageKind::User,
                content: Content::Change {
                    target: *seq,
                    change: Change::Delete,
                },
            })
            .await?;
    }
    Ok(theirs.len())
}
