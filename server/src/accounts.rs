//! The account pages, rendered on the server alone (`plain.rs`; no script needed, so they work
//! before the chat loads and cost its WebAssembly nothing): the first run's setup (`/setup`),
//! signing in (`/sign-in`, which also lets a guest in under a name with `--guests`), signing up
//! (`/sign-up`, with `--sign-up open`), and one's own account (`/account`: who one is, the devices
//! signed in, a new password).
//!
//! Every form here is a plain POST checked for its origin (a form posted from another site is
//! refused, as the WebSocket's handshake is), and each answer is a redirect (a reload never posts
//! twice) that carries what went wrong as a code in the query, never as text from the request.
//!
//! Sign-ins are budgeted per client address and per account at that address (`--sign-in-*`): a
//! guesser is slowed at its own address, and nobody elsewhere can lock an account out. Password
//! hashing runs a bounded number at a time (`people::Hasher`).

use app::protocol::{MAX_NAME_CHARS, validate_name};
use axum::{
    Extension, Form, Router,
    extract::{FromRequestParts, Path, Query, Request, State},
    http::{HeaderMap, Method, StatusCode, request::Parts},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use leptos::{prelude::*, tachys::view::RenderHtml};
use serde::Deserialize;

use crate::{
    AppState,
    peer::Client,
    people::{
        Account, Invitation, NewAccount, PasswordError, PeopleError, Role, SessionInfo, SignedIn,
        check_new_password, valid_handle,
    },
    plain,
    rate::SharedBudgets,
    redis_link::RedisLink,
    session::{encode, ended_cookie, local_path, signed_in_to, unavailable},
};

/// Whoever the request's session signs in. A request from nobody is sent to sign in first, and
/// back after: to the page it asked for, or (after a form) to the account page.
pub struct Me(pub SignedIn);

impl FromRequestParts<AppState> for Me {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match state.sessions.signed_in(&parts.headers).await {
            Some(me) => Ok(Me(me)),
            None => {
                let back = match parts.method {
                    Method::GET => parts.uri.path(),
                    _ => "/account",
                };
                let to = format!("/sign-in?next={}", encode(back));
                Err(Redirect::to(&to).into_response())
            }
        }
    }
}

/// Who may make an account of their own (`--sign-up`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SignUp {
    /// Only with an invitation link.
    Invite,
    /// Anyone who reaches the server.
    Open,
    /// Nobody: an admin makes the accounts.
    Closed,
}

/// What the account pages need, from the config.
pub struct Settings {
    /// Hashes and checks passwords, a few at a time.
    pub hasher: crate::people::Hasher,
    /// See [`crate::Config::sign_up`].
    pub sign_up: SignUp,
    /// How long a session lasts after its last use (`--session-days`).
    pub session_ttl: std::time::Duration,
    /// What sign-ins (and the setup's code) may be tried, per address and per account there.
    pub sign_in_budgets: SignInBudgets,
    /// See [`crate::Config::room_makers`].
    pub room_makers: crate::access::WhoMay,
    /// See [`crate::Config::room_mentions`].
    pub room_mentions: crate::access::WhoMay,
}

/// What sign-ins may be tried. Each try spends from its client address's budget (a burst of
/// [`ADDRESS_BURST`], then one every [`ADDRESS_EVERY_SECS`] s) and, for an account, from that
/// account's budget at that address (a burst of [`ACCOUNT_BURST`], then one a minute): a guesser
/// is slowed where it is, and nobody can lock an account out from elsewhere. In a cluster the
/// budgets are the cluster's (Redis), as the send budgets are.
#[derive(Clone)]
pub struct SignInBudgets {
    address: SharedBudgets,
    account: SharedBudgets,
}

pub const ADDRESS_BURST: u32 = 50;
pub const ADDRESS_EVERY_SECS: f64 = 6.0;
pub const ACCOUNT_BURST: u32 = 5;

impl SignInBudgets {
    pub fn new() -> Self {
        Self {
            address: SharedBudgets::new(1.0 / ADDRESS_EVERY_SECS, ADDRESS_BURST),
            account: SharedBudgets::new(1.0 / 60.0, ACCOUNT_BURST),
        }
    }

    pub async fn shared_through(self, link: &RedisLink) -> redis::RedisResult<Self> {
        Ok(Self {
            address: self.address.shared_through(link.commands().await?),
            account: self.account.shared_through(link.commands().await?),
        })
    }
}

impl Default for SignInBudgets {
    fn default() -> Self {
        Self::new()
    }
}

/// Until the owner's account is made, a fresh server serves only its setup page and the health
/// and metrics endpoints: whoever reaches it first cannot use it, or make the owner's account
/// without the code Herald printed. A page asked for goes to `/setup`; anything else is told
/// `503 setup_required`.
pub async fn until_set_up(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if matches!(
        path,
        "/setup" | "/healthz" | "/readyz" | "/metrics" | "/favicon.svg" | "/sw.js"
    ) {
        return next.run(request).await;
    }
    match state.sessions.people.is_set_up().await {
        Ok(true) => next.run(request).await,
        Ok(false) if request.method() == Method::GET && !path.starts_with("/api/") && path != "/ws" => {
            Redirect::to("/setup").into_response()
        }
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "error": "setup_required",
                "message": "this Herald has no owner yet: open /setup in a browser and enter the setup code it printed at start",
            })),
        )
            .into_response(),
        Err(e) => unavailable(&e),
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/setup", get(setup_page).post(set_up))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-up", get(sign_up_page).post(sign_up))
        .route("/account", get(account_page))
        .route("/account/password", post(change_password))
        .route("/account/sessions/end", post(end_sessions))
        .route("/account/invitations", post(make_invitation))
        .route("/account/invitations/revoke", post(revoke_invitation))
        .route("/invite/{token}", get(invitation_page).post(join))
        .route("/admin/people", get(people_page))
        .route("/admin/people/active", post(set_active))
        .route("/admin/people/role", post(set_role))
        .route("/admin/audit", get(audit_page))
        .route("/admin/people/reset", post(issue_reset))
        .route("/reset/{token}", get(reset_page).post(reset_password))
}

/// What a page's query may say: where to go after, and what went wrong before.
#[derive(Deserialize, Default)]
pub struct Asked {
    next: Option<String>,
    error: Option<String>,
    /// With `error=slow`: seconds to wait.
    wait: Option<u64>,
    /// The handle typed before, so it need not be typed again.
    handle: Option<String>,
    /// What the account page just did (`password`, `ended`).
    done: Option<String>,
}

/// What a handle may be, as a form that refused one says it (`people::valid_handle`).
pub const HANDLE_RULE: &str = "A handle is 2 to 32 characters: letters a to z, digits, dots, dashes, underscores; it starts with a letter or digit, does not end with a dot, and is not a word that calls on a whole room (room, everyone, here, channel, all).";

/// The sentence for an error code in a page's query. Unknown codes say nothing.
fn said(error: Option<&str>, wait: Option<u64>) -> Option<String> {
    Some(
        match error? {
            "wrong" => "That handle and password do not match an account.",
            "code" => "That is not the setup code Herald printed when it started.",
            "taken" => "That handle is taken: choose another.",
            "handle" => HANDLE_RULE,
            "name" => "Please choose a name of 1 to 32 characters, some of them visible, without hidden, control or text-direction characters, each word in one alphabet.",
            "short" => "A password has at least 8 characters.",
            "long" => "A password has at most 1024 bytes.",
            "common" => "That password is among the most common ones, the first any attacker tries. Choose another.",
            "mismatch" => "The two passwords differ.",
            "current" => "That is not your current password.",
            "deactivated" => "This account is deactivated: ask an admin of this server.",
            "closed" => "This server does not take sign-ups: ask its admin for an account or an invitation.",
            "invite" => "This server takes new people by invitation: ask someone here for a link.",
            "invitation" => "This invitation is not valid any more: it expired, was used up, or was taken back. Ask for a new one.",
            "reset" => "This link is not valid any more: it was used, or it expired. Ask an admin for a new one.",
            "slow" => {
                let wait = wait.unwrap_or(60).clamp(1, 3600);
                return Some(format!(
                    "Too many tries from here: wait {wait} seconds before the next."
                ));
            }
            _ => return None,
        }
        .to_owned(),
    )
}

fn password_code(e: &PasswordError) -> &'static str {
    match e {
        PasswordError::TooShort => "short",
        PasswordError::TooLong => "long",
        PasswordError::Common => "common",
    }
}

/// Back to `page` with `error` (and the handle typed and where to go after, kept).
fn again(page: &str, error: &str, handle: Option<&str>, next: &str) -> Response {
    let mut to = format!("{page}?error={error}&next={}", encode(next));
    if let Some(handle) = handle {
        to.push_str(&format!("&handle={}", encode(handle)));
    }
    Redirect::to(&to).into_response()
}

/// The form's error line: always there (so the layout does not jump), read out when it has words.
fn error_line(error: Option<String>) -> impl IntoView {
    view! { <p class="form-error" role="alert" data-testid="form-error">{error}</p> }
}

fn password_input(
    id: &'static str,
    label: &'static str,
    autocomplete: &'static str,
) -> impl IntoView {
    view! {
        <label for=id>{label}</label>
        <input id=id name=id type="password" required autocomplete=autocomplete data-testid=id/>
    }
}

fn handle_input(value: Option<String>, autocomplete: &'static str) -> impl IntoView {
    view! {
        <label for="handle">"Handle"</label>
        <input
            id="handle"
            name="handle"
            data-testid="handle"
            required
            autocapitalize="none"
            spellcheck="false"
            maxlength="32"
            autocomplete=autocomplete
            value=value
        />
    }
}

fn name_input(value: Option<String>) -> impl IntoView {
    view! {
        <label for="name">"Display name"</label>
        <input
            id="name"
            name="name"
            data-testid="display-name"
            required
            maxlength=MAX_NAME_CHARS
            autocomplete="nickname"
            value=value
        />
    }
}

// ---- The first run ----

#[derive(Deserialize)]
struct SetupForm {
    code: String,
    handle: String,
    name: String,
    password: String,
}

/// `GET /setup`: the first account's form, until it is made.
async fn setup_page(State(state): State<AppState>, Query(asked): Query<Asked>) -> Response {
    match state.sessions.people.is_set_up().await {
        Ok(true) => return Redirect::to("/").into_response(),
        Ok(false) => {}
        Err(e) => return unavailable(&e),
    }
    let error = said(asked.error.as_deref(), None);
    let main = view! {
        <form class="name-form" method="post" action="/setup" data-testid="setup-form">
            <h1 class="brand">"Herald"</h1>
            <p>"Welcome. Make the owner's account: it will be this server's admin."</p>
            <label for="code">"Setup code"</label>
            <input id="code" name="code" data-testid="setup-code" required autocomplete="off"
                autocapitalize="characters" spellcheck="false" aria-describedby="code-help"/>
            <p id="code-help" class="hint">"Herald printed it when it started (in its log, or the terminal it runs in)."</p>
            {handle_input(asked.handle, "username")}
            {name_input(None)}
            {password_input("password", "Password (8 characters or more)", "new-password")}
            <button type="submit">"Create the owner's account"</button>
            {error_line(error)}
        </form>
    }
    .to_html();
    plain::page(&state, StatusCode::OK, "Set up Herald", "name-prompt", main)
}

/// `POST /setup`: the owner's account, once, and a session for it.
async fn set_up(
    State(state): State<AppState>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    Form(form): Form<SetupForm>,
) -> Response {
    // A guessed code is as slow to try as a guessed password.
    if let Some(refused) = over_budget(&state, "/setup", client.as_deref(), None).await {
        return refused;
    }
    let new = match new_account(&form.handle, &form.name, &form.password, Role::Admin) {
        Ok(new) => new,
        Err(code) => return again("/setup", code, Some(&form.handle), "/"),
    };
    let Some(new) = with_hash(&state, new, &form.password).await else {
        return unavailable(&PeopleError::Storage(
            "the password could not be hashed".into(),
        ));
    };
    match state.sessions.people.set_up(&form.code, new).await {
        Ok(owner) => {
            tracing::info!(user = %owner.id, handle = ?owner.handle, "the owner's account is made");
            signed_in_to(&state, &owner.id, &headers, client.as_deref(), "/").await
        }
        Err(PeopleError::WrongCode) => again("/setup", "code", Some(&form.handle), "/"),
        Err(PeopleError::AlreadySetUp) => Redirect::to("/sign-in").into_response(),
        Err(PeopleError::HandleTaken) => again("/setup", "taken", Some(&form.handle), "/"),
        Err(e) => unavailable(&e),
    }
}

/// A new account's fields, checked: the error code for the page, if one is not right.
fn new_account(
    handle: &str,
    name: &str,
    password: &str,
    role: Role,
) -> Result<NewAccount, &'static str> {
    let handle = valid_handle(handle).map_err(|_| "handle")?;
    let name = validate_name(name)
        .and_then(crate::session::one_alphabet_a_word)
        .map_err(|_| "name")?;
    check_new_password(password).map_err(|e| password_code(&e))?;
    Ok(NewAccount {
        handle: Some(handle),
        name,
        role,
        password: None,
    })
}

async fn with_hash(state: &AppState, mut new: NewAccount, password: &str) -> Option<NewAccount> {
    new.password = Some(state.accounts.hasher.hash(password).await?);
    Some(new)
}

// ---- Signing in ----

#[derive(Deserialize)]
struct SignInForm {
    handle: String,
    password: String,
    next: Option<String>,
}

/// `GET /sign-in`: handle and password; with `--guests`, a name alone too; a link to sign up when
/// anyone may.
async fn sign_in_page(State(state): State<AppState>, Query(asked): Query<Asked>) -> Response {
    let next = local_path(asked.next.as_deref()).to_owned();
    // A guest's name that was refused is said under the guest's form.
    let (error, name_error) = match asked.error.as_deref() {
        Some("name") if state.sessions.guests => (None, said(Some("name"), None)),
        error => (said(error, asked.wait), None),
    };
    let sign_up = (state.accounts.sign_up == SignUp::Open).then(|| {
        let href = format!("/sign-up?next={}", encode(&next));
        view! { <p class="hint">"New here? "<a href=href data-testid="sign-up-link">"Create an account"</a></p> }
    });
    // The name form the chat had before accounts, for guests (`POST /session`).
    let guests = state.sessions.guests.then(|| {
        let next = next.clone();
        view! {
            <form class="name-form guest" method="post" action="/session" data-testid="name-form">
                <h2>"Or join as a guest"</h2>
                <label for="guest-name">"Choose a display name"</label>
                <input id="guest-name" name="name" data-testid="name-input" required
                    autocomplete="nickname" maxlength=MAX_NAME_CHARS/>
                <input type="hidden" name="next" value=next/>
                <button type="submit">"Start chatting"</button>
                <p class="form-error" role="alert" data-testid="name-error">{name_error}</p>
                <p class="hint">"Guests read and write the open rooms, and are marked as guests."</p>
            </form>
        }
    });
    let main = view! {
        <div class="sign-in">
            <form class="name-form" method="post" action="/sign-in" data-testid="sign-in-form">
                <h1 class="brand">"Herald"</h1>
                <p>"Sign in to chat."</p>
                {handle_input(asked.handle, "username")}
                {password_input("password", "Password", "current-password")}
                <input type="hidden" name="next" value=next/>
                <button type="submit">"Sign in"</button>
                {error_line(error)}
                {sign_up}
            </form>
            {guests}
        </div>
    }
    .to_html();
    plain::page(
        &state,
        StatusCode::OK,
        "Sign in · Herald",
        "name-prompt",
        main,
    )
}

/// `POST /sign-in`.
async fn sign_in(
    State(state): State<AppState>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = local_path(form.next.as_deref()).to_owned();
    let handle = form.handle.trim().to_lowercase();
    if let Some(refused) = over_budget(&state, "/sign-in", client.as_deref(), Some(&handle)).await {
        return refused;
    }
    let account = match valid_handle(&handle) {
        Ok(handle) => match state.sessions.people.by_handle(&handle).await {
            Ok(account) => account,
            Err(e) => return unavailable(&e),
        },
        Err(_) => None,
    };
    // Unknown or not: the same work, so the time taken says nothing.
    let phc = account.as_ref().and_then(|a| a.password.as_deref());
    if !state.accounts.hasher.verify(&form.password, phc).await {
        return again("/sign-in", "wrong", Some(&handle), &next);
    }
    let Some(account) = account else {
        return again("/sign-in", "wrong", Some(&handle), &next);
    };
    // Said only to whoever knows the password.
    if !account.active {
        return again("/sign-in", "deactivated", Some(&handle), &next);
    }
    tracing::info!(user = %account.id, "signed in");
    signed_in_to(&state, &account.id, &headers, client.as_deref(), &next).await
}

/// Spends a try from the client address's budget, and from the account's at that address: the
/// answer when either is empty.
pub async fn over_budget(
    state: &AppState,
    page: &str,
    client: Option<&Client>,
    handle: Option<&str>,
) -> Option<Response> {
    let address = client.map_or_else(|| "unknown".to_owned(), |c| c.key().to_string());
    let mut keys = vec![(
        state.accounts.sign_in_budgets.address.clone(),
        format!("signin:{address}"),
    )];
    if let Some(handle) = handle {
        keys.push((
            state.accounts.sign_in_budgets.account.clone(),
            format!("signin:{address}:{handle}"),
        ));
    }
    for (budgets, key) in keys {
        let held = budgets.hold(&key);
        if let Err(wait) = budgets.take(&held.budget).await {
            let wait = wait.as_secs().max(1);
            tracing::info!(%address, "{page}: refused, over budget");
            return Some(Redirect::to(&format!("{page}?error=slow&wait={wait}")).into_response());
        }
    }
    None
}

// ---- Signing up ----

#[derive(Deserialize)]
struct SignUpForm {
    handle: String,
    name: String,
    password: String,
    next: Option<String>,
}

/// `GET /sign-up`: with `--sign-up open`, anyone's form; otherwise a sentence on how to get in.
async fn sign_up_page(State(state): State<AppState>, Query(asked): Query<Asked>) -> Response {
    let next = local_path(asked.next.as_deref()).to_owned();
    match state.accounts.sign_up {
        SignUp::Open => {
            let form = sign_up_form("/sign-up", "Create your account.", asked, Some(next));
            plain::page(
                &state,
                StatusCode::OK,
                "Sign up · Herald",
                "name-prompt",
                form,
            )
        }
        SignUp::Invite => refused(&state, StatusCode::FORBIDDEN, "Sign up · Herald", "invite"),
        SignUp::Closed => refused(&state, StatusCode::FORBIDDEN, "Sign up · Herald", "closed"),
    }
}

/// A card saying why one cannot go on here (`why`, a code for [`said`]), and the way to sign in.
fn refused(state: &AppState, status: StatusCode, title: &str, why: &str) -> Response {
    let main = view! {
        <div class="name-form">
            <h1 class="brand">"Herald"</h1>
            <p data-testid="why">{said(Some(why), None)}</p>
            <p><a href="/sign-in">"Sign in"</a></p>
        </div>
    }
    .to_html();
    plain::page(state, status, title, "name-prompt", main)
}

/// The form that makes an account (`/sign-up`, or an invitation's page), posted to `action`.
fn sign_up_form(action: &str, intro: &'static str, asked: Asked, next: Option<String>) -> String {
    let error = said(asked.error.as_deref(), None);
    let next = next.map(|next| view! { <input type="hidden" name="next" value=next/> });
    view! {
        <form class="name-form" method="post" action=action.to_owned() data-testid="sign-up-form">
            <h1 class="brand">"Herald"</h1>
            <p>{intro}</p>
            {handle_input(asked.handle, "username")}
            <p class="hint">"What you sign in with, and what @mentions call you."</p>
            {name_input(None)}
            {password_input("password", "Password (8 characters or more)", "new-password")}
            {next}
            <button type="submit">"Create account"</button>
            {error_line(error)}
            <p class="hint">"Have one? "<a href="/sign-in">"Sign in"</a></p>
        </form>
    }
    .to_html()
}

/// `POST /sign-up`.
async fn sign_up(
    State(state): State<AppState>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    Form(form): Form<SignUpForm>,
) -> Response {
    let next = local_path(form.next.as_deref()).to_owned();
    if state.accounts.sign_up != SignUp::Open {
        return again("/sign-up", "closed", None, &next);
    }
    make_member(
        &state,
        client.as_deref(),
        &headers,
        &form,
        "/sign-up",
        &next,
        None,
    )
    .await
}

/// A member's account from a sign-up form posted to `page` (with one use of the invitation of
/// `token`, if given), signed in and sent to `next`; or back to `page` saying why not.
async fn make_member(
    state: &AppState,
    client: Option<&Client>,
    headers: &HeaderMap,
    form: &SignUpForm,
    page: &str,
    next: &str,
    token: Option<&str>,
) -> Response {
    // Making accounts costs a hash each: budgeted like sign-ins.
    if let Some(refused) = over_budget(state, page, client, None).await {
        return refused;
    }
    let new = match new_account(&form.handle, &form.name, &form.password, Role::Member) {
        Ok(new) => new,
        Err(code) => return again(page, code, Some(&form.handle), next),
    };
    let Some(new) = with_hash(state, new, &form.password).await else {
        return unavailable(&PeopleError::Storage(
            "the password could not be hashed".into(),
        ));
    };
    let people = &state.sessions.people;
    let made = match token {
        Some(token) => people.join(token, new).await,
        None => people.create(new).await,
    };
    match made {
        Ok(account) => {
            tracing::info!(user = %account.id, handle = ?account.handle, invited = token.is_some(), "signed up");
            signed_in_to(state, &account.id, headers, client, next).await
        }
        Err(PeopleError::HandleTaken) => again(page, "taken", Some(&form.handle), next),
        // The invitation was used up or taken back meanwhile: its page says so.
        Err(PeopleError::NoSuchInvitation) => Redirect::to(page).into_response(),
        Err(e) => unavailable(&e),
    }
}

// ---- One's own account ----

/// `GET /account`: who one is, every device signed in (this one marked), a new password.
async fn account_page(
    State(state): State<AppState>,
    Me(me): Me,
    Query(asked): Query<Asked>,
) -> Response {
    let sessions = match state.sessions.people.sessions(&me.account.id).await {
        Ok(sessions) => sessions,
        Err(e) => return unavailable(&e),
    };
    let now = crate::people::now_ms();
    let error = said(asked.error.as_deref(), None);
    let done = match asked.done.as_deref() {
        Some("password") => Some("Your password is changed; every other device is signed out."),
        Some("ended") => Some("Signed out there."),
        Some("revoked") => Some("That invitation's link lets nobody else in."),
        _ => None,
    };
    let others = sessions.len().saturating_sub(1);
    let rows = sessions
        .into_iter()
        .map(|s| {
            let this = s.id == me.session;
            session_row(&s, this, now)
        })
        .collect_view();
    let password = me.account.password.is_some().then(|| {
        view! {
            <section aria-labelledby="password-title">
                <h2 id="password-title">"Password"</h2>
                <form class="name-form" method="post" action="/account/password" data-testid="password-form">
                    {password_input("current", "Current password", "current-password")}
                    {password_input("password", "New password (8 characters or more)", "new-password")}
                    {password_input("again", "New password again", "new-password")}
                    <button type="submit">"Change password"</button>
                    {error_line(error)}
                </form>
            </section>
        }
    });
    let wrong_password = asked.error.as_deref() == Some("delete");
    let personal = match personal_sections(&state, &me.account, wrong_password).await {
        Ok(sections) => sections,
        Err(answer) => return answer,
    };
    let invitations = match may_invite(&me.account) {
        true => match state.sessions.people.invitations().await {
            Ok(live) => Some(invitations_section(live, now)),
            Err(e) => return unavailable(&e),
        },
        false => None,
    };
    let main = view! {
        <h1>"Your account"</h1>
        <p role="status" data-testid="done">{done}</p>
        {who_line(&me.account)}
        <section aria-labelledby="sessions-title">
            <h2 id="sessions-title">"Where you are signed in"</h2>
            <ul class="sessions" data-testid="sessions">{rows}</ul>
            {(others > 0).then(|| view! {
                <form method="post" action="/account/sessions/end">
                    <input type="hidden" name="session" value="others"/>
                    <button type="submit" class="link" data-testid="end-others">"Sign out everywhere else"</button>
                </form>
            })}
        </section>
        {password}
        {invitations}
        <div inner_html=personal></div>
        {matches!(me.account.role, Role::Admin | Role::Moderator).then(|| view! {
            <p><a href="/moderation" data-testid="moderation-link">"Reported messages"</a></p>
        })}
        {(me.account.role == Role::Admin).then(|| view! {
            <p><a href="/admin/people" data-testid="people-link">"People on this server"</a></p>
        })}
        <p><a href="/" data-testid="back">"Back to the chat"</a></p>
    }
    .to_html();
    plain::page(
        &state,
        StatusCode::OK,
        "Your account · Herald",
        "history-page account-page",
        main,
    )
}

/// The account page's sections on what one decides for oneself (`personal.rs` takes the forms):
/// the people one ignores, and deleting the account.
/// `wrong_password`: the last try to delete it gave a wrong one.
async fn personal_sections(
    state: &AppState,
    me: &Account,
    wrong_password: bool,
) -> Result<String, Response> {
    let people = &state.sessions.people;
    let ignored = people.ignored(&me.id).await.map_err(|e| unavailable(&e))?;
    let mut names = Vec::with_capacity(ignored.len());
    for id in ignored {
        if let Some(account) = people.account(&id).await.map_err(|e| unavailable(&e))? {
            names.push(account);
        }
    }
    let empty = names.is_empty();
    let rows = names
        .into_iter()
        .map(|a| {
            let handle = a.handle.as_ref().map(|h| format!(" @{h}"));
            view! {
                <li class="session" data-testid="ignored">
                    <span><strong>{a.name.clone()}</strong>{handle}</span>
                    <form method="post" action="/account/ignore">
                        <input type="hidden" name="account" value=a.id.clone()/>
                        <input type="hidden" name="ignore" value="0"/>
                        <input type="hidden" name="back" value="/account"/>
                        <button type="submit" class="link" aria-label=format!("Stop ignoring {}", a.name)>"Stop ignoring"</button>
                    </form>
                </li>
            }
        })
        .collect_view();
    let deletable = !matches!(me.role, Role::Admin | Role::Guest | Role::Bot);
    let section = view! {
        <section aria-labelledby="ignored-title">
            <h2 id="ignored-title">"People you ignore"</h2>
            <p class="hint">{if empty { "Nobody. " } else { "" }}"Ignore someone from one of their messages (its \"Report\" page)."</p>
            <ul class="sessions" data-testid="ignored-list">{rows}</ul>
        </section>
        {deletable.then(|| view! {
            <section aria-labelledby="delete-title">
                <h2 id="delete-title">"Delete your account"</h2>
                <p>"You are signed out everywhere, your handle is free for someone else, and you leave every room. This cannot be undone."</p>
                <form class="name-form" method="post" action="/account/delete" data-testid="delete-form">
                    <fieldset>
                        <legend>"What you wrote"</legend>
                        <label><input type="radio" name="messages" value="keep" checked/>" Keep my messages, marked as from a deleted account"</label>
                        <label><input type="radio" name="messages" value="delete" data-testid="delete-messages"/>" Delete my messages too"</label>
                    </fieldset>
                    <label for="delete-password">"Your password"</label>
                    <input id="delete-password" name="password" type="password" required autocomplete="current-password" data-testid="delete-password"/>
                    <button type="submit" class="danger" data-testid="delete-account">"Delete my account"</button>
                    {wrong_password.then(|| view! { <p class="error" role="alert">"That is not your password: nothing was deleted."</p> })}
                </form>
            </section>
        })}
    }
    .to_html();
    Ok(section)
}

fn who_line(account: &Account) -> impl IntoView {
    let handle = account.handle.as_ref().map(|h| format!("@{h}"));
    let role = match account.role {
        Role::Guest => "a guest",
        Role::Admin => "an admin",
        Role::Moderator => "a moderator",
        Role::Member => "a member",
        Role::Bot => "a bot",
    };
    view! {
        <p data-testid="who">
            <strong>{account.name.clone()}</strong>" "
            <span class="handle">{handle}</span>", "{role}"."
        </p>
    }
}

fn session_row(session: &SessionInfo, this: bool, now: u64) -> impl IntoView + use<> {
    let device = device_of(&session.agent);
    let seen = if this {
        "this device".to_owned()
    } else {
        format!(
            "last seen {}",
            ago(now.saturating_sub(session.last_seen_ms))
        )
    };
    let end = (!this).then(|| {
        view! {
            <form method="post" action="/account/sessions/end">
                <input type="hidden" name="session" value=session.id.clone()/>
                <button type="submit" class="link" aria-label=format!("Sign out {device}")>"Sign out"</button>
            </form>
        }
    });
    view! {
        <li class="session" data-testid="session" data-this=this.to_string()>
            <span>{device.clone()}", "{seen}</span>
            {end}
        </li>
    }
}

/// "Chromium on Linux", from a `User-Agent`: enough to tell one's devices apart.
pub fn device_of(agent: &str) -> String {
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chromium/", "Chromium"),
        ("HeadlessChrome/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ]
    .iter()
    .find(|(mark, _)| agent.contains(mark))
    .map_or("A browser", |(_, name)| name);
    let system = [
        ("Android", "a phone (Android)"),
        ("iPhone", "an iPhone"),
        ("iPad", "an iPad"),
        ("Windows", "Windows"),
        ("Mac OS X", "a Mac"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(mark, _)| agent.contains(mark))
    .map(|(_, name)| *name);
    match system {
        Some(system) => format!("{browser} on {system}"),
        None => browser.to_owned(),
    }
}

/// "2 min ago", roughly.
pub fn ago(ms: u64) -> String {
    let minutes = ms / 60_000;
    match minutes {
        0 => "just now".to_owned(),
        1..=59 => format!("{minutes} min ago"),
        60..=2879 => format!("{} h ago", minutes / 60),
        _ => format!("{} days ago", minutes / 1440),
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    current: String,
    password: String,
    again: String,
}

/// `POST /account/password`: needs the current one; ends every other session.
async fn change_password(
    State(state): State<AppState>,
    client: Option<Extension<Client>>,
    Me(me): Me,
    Form(form): Form<PasswordForm>,
) -> Response {
    let handle = me.account.handle.clone();
    if let Some(refused) =
        over_budget(&state, "/account", client.as_deref(), handle.as_deref()).await
    {
        return refused;
    }
    if !state
        .accounts
        .hasher
        .verify(&form.current, me.account.password.as_deref())
        .await
    {
        return Redirect::to("/account?error=current").into_response();
    }
    if form.password != form.again {
        return Redirect::to("/account?error=mismatch").into_response();
    }
    if let Err(e) = check_new_password(&form.password) {
        return Redirect::to(&format!("/account?error={}", password_code(&e))).into_response();
    }
    let Some(phc) = state.accounts.hasher.hash(&form.password).await else {
        return unavailable(&PeopleError::Storage(
            "the password could not be hashed".into(),
        ));
    };
    let people = &state.sessions.people;
    let changed = async {
        people.set_password(&me.account.id, &phc).await?;
        people.end_sessions(&me.account.id, Some(&me.session)).await
    };
    match changed.await {
        Ok(others) => {
            tracing::info!(user = %me.account.id, "password changed; other sessions ended");
            crate::session::ended(&state, others);
            Redirect::to("/account?done=password").into_response()
        }
        Err(e) => unavailable(&e),
    }
}

#[derive(Deserialize)]
struct EndForm {
    /// A session's id from the account page, or `others`.
    session: String,
}

/// `POST /account/sessions/end`: signs out one of one's devices, or all but this one.
async fn end_sessions(
    State(state): State<AppState>,
    Me(me): Me,
    Form(form): Form<EndForm>,
) -> Response {
    let people = &state.sessions.people;
    let ended = if form.session == "others" {
        people.end_sessions(&me.account.id, Some(&me.session)).await
    } else {
        // Only the account's own: a session of someone else's is not touched.
        let session = form.session.clone();
        people
            .end_session(&me.account.id, &form.session)
            .await
            .map(|was| if was { vec![session] } else { Vec::new() })
    };
    let ended = ended.map(|sessions| crate::session::ended(&state, sessions));
    match ended {
        Ok(()) if form.session == me.session => {
            let mut response = Redirect::to("/sign-in").into_response();
            if let Ok(cookie) = axum::http::HeaderValue::from_str(&ended_cookie()) {
                response
                    .headers_mut()
                    .insert(axum::http::header::SET_COOKIE, cookie);
            }
            response
        }
        Ok(()) => Redirect::to("/account?done=ended").into_response(),
        Err(e) => unavailable(&e),
    }
}

// ---- Invitations ----

/// Who may make invitations: admins and moderators.
fn may_invite(account: &Account) -> bool {
    matches!(account.role, Role::Admin | Role::Moderator)
}

/// The longest an invitation lasts, and the most people one lets in.
const MAX_INVITATION_DAYS: u64 = 30;
const MAX_INVITATION_USES: u32 = 100;

fn invitations_section(live: Vec<Invitation>, now: u64) -> impl IntoView {
    let rows = live
        .into_iter()
        .map(|i| {
            let left = match i.uses_left {
                1 => "1 more person".to_owned(),
                n => format!("{n} more people"),
            };
            let expires = format!("expires {}", within(i.expires_ms.saturating_sub(now)));
            view! {
                <li class="session" data-testid="invitation">
                    <span>{left}", "{expires}</span>
                    <form method="post" action="/account/invitations/revoke">
                        <input type="hidden" name="id" value=i.id.clone()/>
                        <button type="submit" class="link">"Revoke"</button>
                    </form>
                </li>
            }
        })
        .collect_view();
    view! {
        <section aria-labelledby="invitations-title">
            <h2 id="invitations-title">"Invitations"</h2>
            <p class="hint">"A link lets people make an account here. Anyone with it can use it: send it to whom you mean."</p>
            <ul class="sessions" data-testid="invitations">{rows}</ul>
            <form class="invite-form" method="post" action="/account/invitations" data-testid="invite-form">
                <label for="uses">"For"</label>
                <select id="uses" name="uses">
                    <option value="1">"1 person"</option>
                    <option value="5">"5 people"</option>
                    <option value="25">"25 people"</option>
                    <option value="100">"100 people"</option>
                </select>
                <label for="days">"for"</label>
                <select id="days" name="days">
                    <option value="1">"1 day"</option>
                    <option value="7" selected>"7 days"</option>
                    <option value="30">"30 days"</option>
                </select>
                <button type="submit" class="link" data-testid="make-invitation">"Make an invitation link"</button>
            </form>
        </section>
    }
}

/// "in 6 days", roughly.
fn within(ms: u64) -> String {
    let hours = ms / 3_600_000;
    match hours {
        0 => "within the hour".to_owned(),
        1..=47 => format!("in {hours} h"),
        _ => format!("in {} days", hours / 24),
    }
}

#[derive(Deserialize)]
struct InvitationForm {
    uses: u32,
    days: u64,
}

/// `POST /account/invitations`: a new link, shown once (only its hash is kept).
async fn make_invitation(
    State(state): State<AppState>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    Me(me): Me,
    Form(form): Form<InvitationForm>,
) -> Response {
    if !may_invite(&me.account) {
        return (
            StatusCode::FORBIDDEN,
            "Only admins and moderators make invitations.",
        )
            .into_response();
    }
    let uses = form.uses.clamp(1, MAX_INVITATION_USES);
    let days = form.days.clamp(1, MAX_INVITATION_DAYS);
    let ttl = std::time::Duration::from_secs(days * 24 * 3600);
    let token = match state
        .sessions
        .people
        .invite(&me.account.id, uses, ttl)
        .await
    {
        Ok(token) => token,
        Err(e) => return unavailable(&e),
    };
    tracing::info!(user = %me.account.id, uses, days, "invitation made");
    let link = link_here(client.as_deref(), &headers, &format!("/invite/{token}"));
    let people = if uses == 1 {
        "1 person".to_owned()
    } else {
        format!("{uses} people")
    };
    let main = view! {
        <h1>"Invitation link"</h1>
        <p>"This link lets "{people}" make an account here, for "{days}" days. It is shown only now: copy it and send it to whom you mean."</p>
        <p><input class="invite-link" readonly value=link data-testid="invitation-link" aria-label="Invitation link"/></p>
        <p><a href="/account" data-testid="back">"Back to your account"</a></p>
    }
    .to_html();
    plain::page(
        &state,
        StatusCode::OK,
        "Invitation · Herald",
        "history-page account-page",
        main,
    )
}

#[derive(Deserialize)]
struct RevokeForm {
    id: String,
}

/// `POST /account/invitations/revoke`.
async fn revoke_invitation(
    State(state): State<AppState>,
    Me(me): Me,
    Form(form): Form<RevokeForm>,
) -> Response {
    if !may_invite(&me.account) {
        return (
            StatusCode::FORBIDDEN,
            "Only admins and moderators revoke invitations.",
        )
            .into_response();
    }
    match state.sessions.people.revoke_invitation(&form.id).await {
        Ok(()) => {
            tracing::info!(user = %me.account.id, "invitation revoked");
            Redirect::to("/account?done=revoked").into_response()
        }
        Err(e) => unavailable(&e),
    }
}

/// `GET /invite/{token}`: the sign-up form, while the invitation lets someone in.
async fn invitation_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(asked): Query<Asked>,
) -> Response {
    match state.sessions.people.invitation(&token).await {
        Ok(Some(_)) => {
            let action = format!("/invite/{token}");
            let form = sign_up_form(&action, "You are invited. Make your account.", asked, None);
            plain::page(&state, StatusCode::OK, "Join · Herald", "name-prompt", form)
        }
        Ok(None) => refused(
            &state,
            StatusCode::NOT_FOUND,
            "Invitation · Herald",
            "invitation",
        ),
        Err(e) => unavailable(&e),
    }
}

/// `POST /invite/{token}`: the account, with one use of the invitation.
async fn join(
    State(state): State<AppState>,
    Path(token): Path<String>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    Form(form): Form<SignUpForm>,
) -> Response {
    let page = format!("/invite/{}", encode(&token));
    make_member(
        &state,
        client.as_deref(),
        &headers,
        &form,
        &page,
        "/",
        Some(&token),
    )
    .await
}

// ---- The admin's people page ----

/// `GET /admin/people`: every account, with a way to deactivate or reactivate each. Admins only.
async fn people_page(State(state): State<AppState>, Me(me): Me) -> Response {
    if me.account.role != Role::Admin {
        return (StatusCode::FORBIDDEN, "Only admins see this page.").into_response();
    }
    let all = match state.sessions.people.accounts().await {
        Ok(all) => all,
        Err(e) => return unavailable(&e),
    };
    let rows = all
        .into_iter()
        .map(|account| {
            let me = account.id == me.account.id;
            let deleted = crate::people::is_deleted(&account);
            let handle = match (&account.handle, deleted) {
                (Some(h), _) => format!("@{h}"),
                (None, true) => "no handle".to_owned(),
                (None, false) => "guest".to_owned(),
            };
            let state_text = match (account.active, deleted) {
                (true, _) => "",
                (false, false) => " (deactivated)",
                (false, true) => " (deleted by its owner)",
            };
            let action = (!me && !deleted).then(|| {
                let (value, label) = if account.active {
                    ("0", "Deactivate")
                } else {
                    ("1", "Reactivate")
                };
                view! {
                    <form method="post" action="/admin/people/active">
                        <input type="hidden" name="account" value=account.id.clone()/>
                        <input type="hidden" name="active" value=value/>
                        <button type="submit" class="link" aria-label=format!("{label} {}", account.name)>{label}</button>
                    </form>
                }
            });
            // A member can be made a moderator, and back (guests, bots and admins stay as they are).
            let promote = match account.role {
                Role::Member => Some(("moderator", "Make moderator")),
                Role::Moderator => Some(("member", "Make member")),
                _ => None,
            };
            let role_action = promote.filter(|_| !me).map(|(role, label)| {
                view! {
                    <form method="post" action="/admin/people/role">
                        <input type="hidden" name="account" value=account.id.clone()/>
                        <input type="hidden" name="role" value=role/>
                        <button type="submit" class="link" data-testid="set-role" aria-label=format!("{label}: {}", account.name)>{label}</button>
                    </form>
                }
            });
            // A password forgotten: a one-time link to choose another (no e-mail needed).
            let reset = (!me && account.password.is_some()).then(|| {
                view! {
                    <form method="post" action="/admin/people/reset">
                        <input type="hidden" name="account" value=account.id.clone()/>
                        <button type="submit" class="link" data-testid="reset" aria-label=format!("New password link for {}", account.name)>"New password link"</button>
                    </form>
                }
            });
            view! {
                <li class="session" data-testid="person" data-active=account.active.to_string()>
                    <span>
                        <strong>{account.name.clone()}</strong>" "
                        <span class="handle">{handle}</span>
                        ", "{account.role.as_str()}{state_text}
                    </span>
                    {role_action}
                    {reset}
                    {action}
                </li>
            }
        })
        .collect_view();
    let main = view! {
        <h1>"People on this server"</h1>
        <p class="hint">"A deactivated account is signed out everywhere at once and cannot sign in; what it wrote stays. Reactivated, it signs in again."</p>
        <ul class="sessions" data-testid="people">{rows}</ul>
        <p><a href="/admin/bots" data-testid="bots-link">"Bots"</a></p>
        <p><a href="/admin/audit" data-testid="audit-link">"What moderators and admins did"</a></p>
        <p><a href="/account">"Back to your account"</a></p>
    }
    .to_html();
    plain::page(
        &state,
        StatusCode::OK,
        "People · Herald",
        "history-page account-page",
        main,
    )
}

#[derive(Deserialize)]
struct ActiveForm {
    account: String,
    active: u8,
}

/// `POST /admin/people/active`: deactivates (`active=0`: every session of it ends, its sockets
/// close on every node) or reactivates (`1`) an account. Not one's own.
async fn set_active(
    State(state): State<AppState>,
    Me(me): Me,
    Form(form): Form<ActiveForm>,
) -> Response {
    if me.account.role != Role::Admin || form.account == me.account.id {
        return (
            StatusCode::FORBIDDEN,
            "Only admins do this, and not to themselves.",
        )
            .into_response();
    }
    let active = form.active == 1;
    let people = &state.sessions.people;
    let done = async {
        people.set_active(&form.account, active).await?;
        match active {
            true => Ok(Vec::new()),
            false => people.end_sessions(&form.account, None).await,
        }
    };
    match done.await {
        Ok(ended) => {
            tracing::info!(by = %me.account.id, account = %form.account, active, "account (de)activated");
            let action = if active { "reactivate" } else { "deactivate" };
            people
                .record(&me.account.id, action, "", &form.account, "")
                .await;
            crate::session::ended(&state, ended);
            Redirect::to("/admin/people").into_response()
        }
        Err(PeopleError::NoSuchAccount) => {
            (StatusCode::NOT_FOUND, "No such account.").into_response()
        }
        Err(e) => unavailable(&e),
    }
}

/// A link to `path` on this server as the asker reached it (its scheme and host), to hand on.
fn link_here(client: Option<&Client>, headers: &HeaderMap, path: &str) -> String {
    let scheme = if client.is_some_and(|c| c.https) {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("{scheme}://{host}{path}")
}

/// How long a password reset link works.
const RESET_HOURS: u64 = 24;

#[derive(Deserialize)]
struct AccountForm {
    account: String,
}

/// `POST /admin/people/reset`: a one-time link that lets an account's owner choose a new password
/// within a day, shown once to the admin, who gives it to them. Not for oneself (the account page
/// changes one's password), not for accounts without one.
async fn issue_reset(
    State(state): State<AppState>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    Me(me): Me,
    Form(form): Form<AccountForm>,
) -> Response {
    if me.account.role != Role::Admin || form.account == me.account.id {
        return (
            StatusCode::FORBIDDEN,
            "Only admins do this, and not for themselves.",
        )
            .into_response();
    }
    let people = &state.sessions.people;
    let account = match people.account(&form.account).await {
        Ok(Some(account)) if account.password.is_some() => account,
        Ok(_) => {
            return (StatusCode::NOT_FOUND, "No such account with a password.").into_response();
        }
        Err(e) => return unavailable(&e),
    };
    let ttl = std::time::Duration::from_secs(RESET_HOURS * 3600);
    let token = match people.issue_reset(&account.id, ttl).await {
        Ok(token) => token,
        Err(e) => return unavailable(&e),
    };
    people
        .record(&me.account.id, "reset_password", "", &account.id, "")
        .await;
    let link = link_here(client.as_deref(), &headers, &format!("/reset/{token}"));
    let main = view! {
        <h1>"New password link"</h1>
        <p>{format!("This link lets {} choose a new password, once, within {RESET_HOURS} hours; their devices are then signed out. It is shown only now: copy it and give it to them.", account.name)}</p>
        <p><input class="invite-link" readonly value=link data-testid="reset-link" aria-label="New password link"/></p>
        <p><a href="/admin/people">"Back to the people"</a></p>
    }
    .to_html();
    plain::page(
        &state,
        StatusCode::OK,
        "New password link · Herald",
        "history-page account-page",
        main,
    )
}

/// `GET /reset/{token}`: the form for a new password, while the link is live.
async fn reset_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(asked): Query<Asked>,
) -> Response {
    let account = match state.sessions.people.reset_for(&token).await {
        Ok(Some(id)) => match state.sessions.people.account(&id).await {
            Ok(found) => found,
            Err(e) => return unavailable(&e),
        },
        Ok(None) => None,
        Err(e) => return unavailable(&e),
    };
    let Some(account) = account else {
        return refused(
            &state,
            StatusCode::NOT_FOUND,
            "New password · Herald",
            "reset",
        );
    };
    let error = said(asked.error.as_deref(), None);
    let handle = account.handle.map(|h| format!("@{h}")).unwrap_or_default();
    let main = view! {
        <form class="name-form" method="post" action=format!("/reset/{token}") data-testid="reset-form">
            <h1 class="brand">"Herald"</h1>
            <p>{format!("A new password for {} ({handle}).", account.name)}</p>
            {password_input("password", "New password (8 characters or more)", "new-password")}
            {password_input("again", "New password again", "new-password")}
            <button type="submit">"Set password and sign in"</button>
            {error_line(error)}
        </form>
    }
    .to_html();
    plain::page(
        &state,
        StatusCode::OK,
        "New password · Herald",
        "name-prompt",
        main,
    )
}

#[derive(Deserialize)]
struct ResetForm {
    password: String,
    again: String,
}

/// `POST /reset/{token}`: the new password; the link is used up, every session of the account
/// ends (its sockets close on every node), and this browser is signed in.
async fn reset_password(
    State(state): State<AppState>,
    Path(token): Path<String>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    Form(form): Form<ResetForm>,
) -> Response {
    let again = |error: &str| {
        Redirect::to(&format!("/reset/{}?error={error}", encode(&token))).into_response()
    };
    if form.password != form.again {
        return again("mismatch");
    }
    if let Err(e) = check_new_password(&form.password) {
        return again(password_code(&e));
    }
    let Some(phc) = state.accounts.hasher.hash(&form.password).await else {
        return unavailable(&PeopleError::Storage(
            "the password could not be hashed".into(),
        ));
    };
    let people = &state.sessions.people;
    let account = match people.use_reset(&token).await {
        Ok(Some(account)) => account,
        Ok(None) => {
            return refused(
                &state,
                StatusCode::NOT_FOUND,
                "New password · Herald",
                "reset",
            );
        }
        Err(e) => return unavailable(&e),
    };
    let changed = async {
        people.set_password(&account, &phc).await?;
        people.end_sessions(&account, None).await
    };
    match changed.await {
        Ok(ended) => {
            tracing::info!(account = %account, "password reset with a link; every session ended");
            crate::session::ended(&state, ended);
            signed_in_to(&state, &account, &headers, client.as_deref(), "/").await
        }
        Err(e) => unavailable(&e),
    }
}

/// Most entries the audit page shows.
const AUDIT_SHOWN: usize = 500;

/// `GET /admin/audit`: the moderators' and admins' actions, the newest first. Admins only.
async fn audit_page(State(state): State<AppState>, Me(me): Me) -> Response {
    if me.account.role != Role::Admin {
        return (StatusCode::FORBIDDEN, "Only admins see this page.").into_response();
    }
    let people = &state.sessions.people;
    let (entries, accounts) = match (people.audit(AUDIT_SHOWN).await, people.accounts().await) {
        (Ok(entries), Ok(accounts)) => (entries, accounts),
        (Err(e), _) | (_, Err(e)) => return unavailable(&e),
    };
    let name = |id: &str| {
        accounts.iter().find(|a| a.id == id).map_or_else(
            || id.to_owned(),
            |a| match &a.handle {
                Some(handle) => format!("{} (@{handle})", a.name),
                None => format!("{} (guest)", a.name),
            },
        )
    };
    let now = crate::people::now_ms();
    let rows = entries
        .iter()
        .map(|entry| {
            let what = match entry.action.as_str() {
                "remove_message" => format!("removed message {} in {}", entry.target, entry.room),
                "remove_member" => format!("removed {} from {}", name(&entry.target), entry.room),
                "archive" => format!("archived {}", entry.room),
                "restore" => format!("restored {}", entry.room),
                "delete_room" => match entry.detail.as_str() {
                    "" => format!("deleted the room {}", entry.room),
                    title => format!("deleted the room {} (\"{title}\")", entry.room),
                },
                "deactivate" => format!("deactivated {}", name(&entry.target)),
                "reactivate" => format!("reactivated {}", name(&entry.target)),
                "role" => format!("made {} a {}", name(&entry.target), entry.detail),
                "mute" => format!(
                    "muted {} in {} for {} min",
                    name(&entry.target),
                    entry.room,
                    entry.detail
                ),
                "dismiss" => format!("let message {} in {} be", entry.target, entry.room),
                "reset_password" => format!("made a new password link for {}", name(&entry.target)),
                "make_bot" => format!("made the bot {}", name(&entry.target)),
                "bot_token" => format!(
                    "made a token \"{}\" for {}",
                    entry.detail,
                    name(&entry.target)
                ),
                "revoke_bot_token" => format!("revoked a token of {}", name(&entry.target)),
                "bot_webhook" => match entry.detail.as_str() {
                    "" => format!("took the webhook of {} away", name(&entry.target)),
                    url => format!("pointed the webhook of {} at {url}", name(&entry.target)),
                },
                other => format!("{other} {} {}", entry.room, entry.target),
            };
            view! {
                <li class="session" data-testid="audit-entry" data-action=entry.action.clone()>
                    <span><strong>{name(&entry.by)}</strong>" "{what}</span>
                    <span class="hint">{ago(now.saturating_sub(entry.at_ms))}</span>
                </li>
            }
        })
        .collect_view();
    let main = view! {
        <h1>"What moderators and admins did"</h1>
        <p class="hint">"Removed messages, people removed from rooms, rooms archived, accounts deactivated, roles given: the newest first, kept 90 days."</p>
        <ul class="sessions" data-testid="audit">{rows}</ul>
        <p><a href="/admin/people">"Back to the people"</a></p>
    }
    .to_html();
    plain::page(
        &state,
        StatusCode::OK,
        "Audit log · Herald",
        "history-page account-page",
        main,
    )
}

#[derive(Deserialize)]
struct RoleForm {
    account: String,
    role: String,
}

/// `POST /admin/people/role`: makes a member a moderator (`role=moderator`) or a moderator a
/// member again. Admins only; not themselves, not a guest, a bot or another admin. The new role
/// counts from the account's next request (and its sockets' next connection).
async fn set_role(
    State(state): State<AppState>,
    Me(me): Me,
    Form(form): Form<RoleForm>,
) -> Response {
    let wanted = match form.role.as_str() {
        "moderator" => Role::Moderator,
        "member" => Role::Member,
        _ => return (StatusCode::UNPROCESSABLE_ENTITY, "No such role to give.").into_response(),
    };
    if me.account.role != Role::Admin || form.account == me.account.id {
        return (
            StatusCode::FORBIDDEN,
            "Only admins do this, and not to themselves.",
        )
            .into_response();
    }
    let people = &state.sessions.people;
    match people.account(&form.account).await {
        Ok(Some(account)) if matches!(account.role, Role::Member | Role::Moderator) => {}
        Ok(_) => return (StatusCode::NOT_FOUND, "No such member.").into_response(),
        Err(e) => return unavailable(&e),
    }
    match people.set_role(&form.account, wanted).await {
        Ok(()) => {
            tracing::info!(by = %me.account.id, account = %form.account, role = wanted.as_str(), "role changed");
            people
                .record(&me.account.id, "role", "", &form.account, wanted.as_str())
                .await;
            Redirect::to("/admin/people").into_response()
        }
        Err(e) => unavailable(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_named_from_their_user_agent() {
        let chromium = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/148.0.0.0 Safari/537.36";
        assert_eq!(device_of(chromium), "Chromium on Linux");
        let phone = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/148.0 Mobile Safari/537.36";
        assert_eq!(device_of(phone), "Chrome on a phone (Android)");
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1";
        assert_eq!(device_of(iphone), "Safari on an iPhone");
        assert_eq!(device_of("curl/8.0"), "A browser");
    }

    #[test]
    fn only_known_error_codes_are_said() {
        assert!(said(Some("wrong"), None).is_some());
        assert_eq!(said(Some("<script>"), None), None);
        assert_eq!(said(None, None), None);
        assert!(said(Some("slow"), Some(u64::MAX)).is_some_and(|s| s.contains("3600")));
    }
}
