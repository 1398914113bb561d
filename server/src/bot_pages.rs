//! The admin's pages for bots, rendered on the server alone (`plain.rs`): `/admin/bots` lists them
//! and makes one (a handle, a name, a webhook URL if the operator allows any host); a bot's own
//! page shows its tokens (made and revoked there; a token is shown once, when made), its webhook and
//! the secret its requests are signed with. A bot is deactivated like any account, on
//! `/admin/people`. Every change is noted in the audit log. docs/BOTS.md says what a bot can do.

use app::protocol::{MAX_NAME_CHARS, validate_name};
use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use leptos::{prelude::*, tachys::view::RenderHtml};
use serde::Deserialize;

use crate::{
    AppState,
    accounts::{Me, ago},
    people::{Account, PeopleError, Role, valid_handle},
    plain,
    session::unavailable,
};

/// The longest label a token may be given, in characters.
const MAX_LABEL_CHARS: usize = 60;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/bots", get(bots_page).post(make_bot))
        .route("/admin/bots/{id}", get(bot_page))
        .route("/admin/bots/{id}/tokens", post(make_token))
        .route("/admin/bots/{id}/tokens/revoke", post(revoke_token))
        .route("/admin/bots/{id}/webhook", post(set_webhook))
}

/// Only admins come here.
fn refused() -> Response {
    (StatusCode::FORBIDDEN, "Only admins see this page.").into_response()
}

#[derive(Deserialize, Default)]
struct Asked {
    error: Option<String>,
}

/// The sentence for an error code in the query (codes only: never text from a request).
fn said(state: &AppState, error: Option<&str>) -> Option<String> {
    Some(
        match error? {
            "handle" => crate::accounts::HANDLE_RULE,
            "taken" => "That handle is taken.",
            "name" => "A display name is 1 to 32 characters, with no control characters.",
            "label" => "A token's label is 1 to 60 characters.",
            "webhook" => return Some(webhook_rule(state)),
            _ => return None,
        }
        .to_owned(),
    )
}

/// What a webhook URL may be here.
fn webhook_rule(state: &AppState) -> String {
    match state.webhooks.allowed_hosts() {
        [] => "Webhooks are off on this server: the operator allows hosts with --webhook-host."
            .to_owned(),
        hosts => format!(
            "A webhook URL is https:// (no user name or password) at one of: {}.",
            hosts.join(", ")
        ),
    }
}

fn error_line(said: Option<String>) -> impl IntoView {
    said.map(|text| view! { <p class="error" role="alert" data-testid="error">{text}</p> })
}

/// The bot `id`, if it is one.
async fn bot_account(state: &AppState, id: &str) -> Result<Option<Account>, PeopleError> {
    Ok(state
        .sessions
        .people
        .account(id)
        .await?
        .filter(|a| a.role == Role::Bot))
}

/// `GET /admin/bots`
async fn bots_page(
    State(state): State<AppState>,
    Me(me): Me,
    Query(asked): Query<Asked>,
) -> Response {
    if me.account.role != Role::Admin {
        return refused();
    }
    let bots: Vec<Account> = match state.sessions.people.accounts().await {
        Ok(all) => all.into_iter().filter(|a| a.role == Role::Bot).collect(),
        Err(e) => return unavailable(&e),
    };
    let empty = bots.is_empty();
    let rows = bots
        .into_iter()
        .map(|bot| {
            let handle = bot.handle.clone().map(|h| format!("@{h}"));
            let state_text = (!bot.active).then_some(" (deactivated)");
            view! {
                <li class="session" data-testid="bot">
                    <span><strong>{bot.name.clone()}</strong>" "<span class="handle">{handle}</span>{state_text}</span>
                    <a href=format!("/admin/bots/{}", bot.id)>"Tokens and webhook"</a>
                </li>
            }
        })
        .collect_view();
    let hooks = state.webhooks.on();
    let main = view! {
        <h1>"Bots"</h1>
        <p class="hint">"A bot posts, edits and reacts through the HTTP API with its own tokens, in the rooms people add it to (on a room's About page). Mentioned, or written to directly, it is sent the message at its webhook, and what it answers is posted as its reply."</p>
        {empty.then_some(view! { <p>"No bots yet."</p> })}
        <ul class="sessions" data-testid="bots">{rows}</ul>
        <h2>"New bot"</h2>
        {error_line(said(&state, asked.error.as_deref()))}
        <form class="name-form" method="post" action="/admin/bots" data-testid="new-bot">
            <label for="handle">"Handle"</label>
            <input id="handle" name="handle" required autocapitalize="none" spellcheck="false" maxlength="32" data-testid="bot-handle"/>
            <label for="name">"Display name"</label>
            <input id="name" name="name" required maxlength=MAX_NAME_CHARS data-testid="bot-name"/>
            <label for="webhook">{if hooks { "Webhook URL (optional)" } else { "Webhook URL (off on this server)" }}</label>
            <input id="webhook" name="webhook" type="url" disabled=!hooks placeholder="https://" data-testid="bot-webhook"/>
            <button type="submit">"Make bot"</button>
        </form>
        <p><a href="/admin/people">"Back to the people"</a></p>
    }
    .to_html();
    plain::page(
        &state,
        StatusCode::OK,
        "Bots · Herald",
        "history-page account-page",
        main,
    )
}

#[derive(Deserialize)]
struct NewBot {
    handle: String,
    name: String,
    #[serde(default)]
    webhook: String,
}

/// A webhook field's URL: `None` if blank, else what the operator allows.
fn webhook_of(state: &AppState, field: &str) -> Result<Option<String>, ()> {
    let url = field.trim();
    if url.is_empty() {
        return Ok(None);
    }
    state
        .webhooks
        .check(url)
        .map(|_| Some(url.to_owned()))
        .map_err(|_| ())
}

/// `POST /admin/bots`: makes the bot, and shows its first token once.
async fn make_bot(State(state): State<AppState>, Me(me): Me, Form(form): Form<NewBot>) -> Response {
    if me.account.role != Role::Admin {
        return refused();
    }
    let again = |code: &str| Redirect::to(&format!("/admin/bots?error={code}")).into_response();
    let Ok(handle) = valid_handle(&form.handle) else {
        return again("handle");
    };
    let Ok(name) = validate_name(&form.name) else {
        return again("name");
    };
    let Ok(webhook) = webhook_of(&state, &form.webhook) else {
        return again("webhook");
    };
    let people = &state.sessions.people;
    let (bot, token) = match people.make_bot(handle, name, webhook).await {
        Ok(made) => made,
        Err(PeopleError::HandleTaken) => return again("taken"),
        Err(e) => return unavailable(&e),
    };
    people
        .record(&me.account.id, "make_bot", "", &bot.id, "")
        .await;
    tracing::info!(by = %me.account.id, bot = %bot.id, "made a bot");
    token_shown(&state, &bot, &token)
}

/// The page that shows a new token, once.
fn token_shown(state: &AppState, bot: &Account, token: &str) -> Response {
    let main = view! {
        <h1>{format!("A token for {}", bot.name)}</h1>
        <p>"Programs send it as Authorization: Bearer TOKEN to the HTTP API (/api/openapi.json). It is shown only now: Herald keeps its hash alone. Copy it to where the bot runs."</p>
        <p><input class="invite-link" readonly value=token.to_owned() data-testid="bot-token" aria-label="The bot's token"/></p>
        <p><a href=format!("/admin/bots/{}", bot.id) data-testid="bot-page">"To the bot's page"</a></p>
    }
    .to_html();
    plain::page(
        state,
        StatusCode::OK,
        "New bot token · Herald",
        "history-page account-page",
        main,
    )
}

/// `GET /admin/bots/{id}`
async fn bot_page(
    State(state): State<AppState>,
    Me(me): Me,
    Path(id): Path<String>,
    Query(asked): Query<Asked>,
) -> Response {
    if me.account.role != Role::Admin {
        return refused();
    }
    let people = &state.sessions.people;
    let (bot, settings, tokens) = match async {
        let Some(bot) = bot_account(&state, &id).await? else {
            return Ok(None);
        };
        let settings = people.bot(&id).await?;
        let tokens = people.bot_tokens(&id).await?;
        Ok::<_, PeopleError>(Some((bot, settings, tokens)))
    }
    .await
    {
        Ok(Some(found)) => found,
        Ok(None) => return (StatusCode::NOT_FOUND, "No such bot.").into_response(),
        Err(e) => return unavailable(&e),
    };
    let now = crate::people::now_ms();
    let action = |what: &str| format!("/admin/bots/{id}/{what}");
    let token_rows = tokens
        .into_iter()
        .map(|token| {
            let made = format!(", made {}", ago(now.saturating_sub(token.created_ms)));
            view! {
                <li class="session" data-testid="token">
                    <span><strong>{token.label.clone()}</strong>{made}</span>
                    <form method="post" action=action("tokens/revoke")>
                        <input type="hidden" name="token" value=token.id.clone()/>
                        <button type="submit" class="link" aria-label=format!("Revoke {}", token.label)>"Revoke"</button>
                    </form>
                </li>
            }
        })
        .collect_view();
    let (webhook, secret) = settings
        .map(|s| (s.webhook.unwrap_or_default(), s.secret))
        .unwrap_or_default();
    let hooks = state.webhooks.on();
    let handle = bot
        .handle
        .clone()
        .map(|h| format!("@{h}"))
        .unwrap_or_default();
    let main = view! {
        <h1>{bot.name.clone()}" "<span class="handle">{handle}</span></h1>
        {(!bot.active).then(|| view! { <p><strong>"Deactivated: "</strong>"its tokens do nothing and it is sent nothing."</p> })}
        {error_line(said(&state, asked.error.as_deref()))}
        <section aria-labelledby="tokens-title">
            <h2 id="tokens-title">"Tokens"</h2>
            <ul class="sessions" data-testid="tokens">{token_rows}</ul>
            <form class="name-form" method="post" action=action("tokens")>
                <label for="label">"Label of a new token"</label>
                <input id="label" name="label" required maxlength=MAX_LABEL_CHARS placeholder="deploy server" data-testid="token-label"/>
                <button type="submit">"Make token"</button>
            </form>
        </section>
        <section aria-labelledby="webhook-title">
            <h2 id="webhook-title">"Webhook"</h2>
            <p class="hint">{webhook_rule(&state)}</p>
            <form class="name-form" method="post" action=action("webhook")>
                <label for="webhook">"Webhook URL (blank: none)"</label>
                <input id="webhook" name="webhook" type="url" value=webhook disabled=!hooks data-testid="bot-webhook"/>
                <button type="submit" disabled=!hooks>"Save webhook"</button>
            </form>
            <p>"Requests are signed: X-Herald-Signature is sha256= and the hex HMAC-SHA256 of the X-Herald-Timestamp value, a full stop, and the body, keyed with this secret:"</p>
            <p><input class="invite-link" readonly value=secret data-testid="bot-secret" aria-label="The webhook's signing secret"/></p>
        </section>
        <p><a href="/admin/bots">"Back to the bots"</a></p>
    }
    .to_html();
    plain::page(
        &state,
        StatusCode::OK,
        &format!("{} · Bots · Herald", bot.name),
        "history-page account-page",
        main,
    )
}

#[derive(Deserialize)]
struct LabelForm {
    label: String,
}

/// `POST /admin/bots/{id}/tokens`: another token, shown once.
async fn make_token(
    State(state): State<AppState>,
    Me(me): Me,
    Path(id): Path<String>,
    Form(form): Form<LabelForm>,
) -> Response {
    if me.account.role != Role::Admin {
        return refused();
    }
    let label = form.label.trim();
    let label_ok = (1..=MAX_LABEL_CHARS).contains(&label.chars().count())
        && !label.chars().any(char::is_control);
    if !label_ok {
        return Redirect::to(&format!("/admin/bots/{id}?error=label")).into_response();
    }
    let bot = match bot_account(&state, &id).await {
        Ok(Some(bot)) => bot,
        Ok(None) => return (StatusCode::NOT_FOUND, "No such bot.").into_response(),
        Err(e) => return unavailable(&e),
    };
    let people = &state.sessions.people;
    match people.issue_bot_token(&bot.id, label).await {
        Ok(token) => {
            people
                .record(&me.account.id, "bot_token", "", &bot.id, label)
                .await;
            token_shown(&state, &bot, &token)
        }
        Err(e) => unavailable(&e),
    }
}

#[derive(Deserialize)]
struct TokenForm {
    token: String,
}

/// `POST /admin/bots/{id}/tokens/revoke`: that token stops working at once, on every node (each
/// request looks its token up).
async fn revoke_token(
    State(state): State<AppState>,
    Me(me): Me,
    Path(id): Path<String>,
    Form(form): Form<TokenForm>,
) -> Response {
    if me.account.role != Role::Admin {
        return refused();
    }
    let people = &state.sessions.people;
    match people.revoke_bot_token(&id, &form.token).await {
        Ok(true) => {
            people
                .record(&me.account.id, "revoke_bot_token", "", &id, "")
                .await;
            Redirect::to(&format!("/admin/bots/{id}")).into_response()
        }
        Ok(false) => (StatusCode::NOT_FOUND, "No such token of that bot.").into_response(),
        Err(e) => unavailable(&e),
    }
}

#[derive(Deserialize)]
struct WebhookForm {
    #[serde(default)]
    webhook: String,
}

/// `POST /admin/bots/{id}/webhook`: where the bot is told about messages (blank: nowhere).
async fn set_webhook(
    State(state): State<AppState>,
    Me(me): Me,
    Path(id): Path<String>,
    Form(form): Form<WebhookForm>,
) -> Response {
    if me.account.role != Role::Admin {
        return refused();
    }
    let Ok(webhook) = webhook_of(&state, &form.webhook) else {
        return Redirect::to(&format!("/admin/bots/{id}?error=webhook")).into_response();
    };
    match bot_account(&state, &id).await {
        Ok(Some(_)) => {}
        Ok(None) => return (StatusCode::NOT_FOUND, "No such bot.").into_response(),
        Err(e) => return unavailable(&e),
    }
    let people = &state.sessions.people;
    let detail = webhook.clone().unwrap_or_default();
    match people.set_webhook(&id, webhook).await {
        Ok(()) => {
            people
                .record(&me.account.id, "bot_webhook", "", &id, &detail)
                .await;
            Redirect::to(&format!("/admin/bots/{id}")).into_response()
        }
        Err(e) => unavailable(&e),
    }
}
