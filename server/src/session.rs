//! Who is talking. A request's session cookie holds a token that the people store (`people`)
//! knows by its hash: each door asks [`Sessions::signed_in`], so a session ended anywhere — signed
//! out, a new password, an account deactivated — is refused at its next request, on every node.
//! Every message's author comes from the session of the connection that sent it, so nobody can
//! post as someone else.
//!
//! Also owns `POST /session` (a guest picks a name, or anyone signed in changes theirs; a plain HTML
//! form, so it works before the page is hydrated), `POST /session/end` (sign out: the session is
//! ended in the store, not only forgotten by the browser), `GET /session` (who this browser is:
//! how the page learns that a refused WebSocket handshake was a session that ended, which a
//! browser's WebSocket cannot see), the cookie itself, and the origin check for WebSocket
//! handshakes and form posts.

use std::{io::Write, path::Path, sync::Arc};

mod cookie;

use app::protocol::{ErrorCode, Identity, ProtocolError, validate_name};
use axum::{
    Extension, Form, Router,
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Redirect, Response},
    routing::post,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{AppState, Config, peer::Client};

pub use cookie::COOKIE;
use cookie::Signer;

use crate::ids::{hex, unhex};

use crate::people::{NewAccount, People, Role, SignedIn};

/// The key file in `--data-dir`, when no secret is given.
const KEY_FILE: &str = "session.key";

/// Who asks, for every door; and the key for ids derived from secrets. Cheap to clone.
#[derive(Clone)]
pub struct Sessions(Arc<Inner>);

/// Behind one pointer: every connection's task holds a copy of the app's state.
pub struct Inner {
    signer: Signer,
    pub people: People,
    /// `--guests`: a name alone lets one in (open rooms only).
    pub guests: bool,
}

impl std::ops::Deref for Sessions {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Sessions {
    /// The key from `--session-secret`, from `--session-key-file`, or from DATA_DIR/session.key
    /// (created on first start).
    pub fn load(config: &Config, people: People) -> anyhow::Result<Self> {
        let key: [u8; 32] = match (&config.session_secret, &config.session_key_file) {
            (Some(secret), _) => Sha256::digest(strong_secret(secret)?.as_bytes()).into(),
            (None, Some(file)) => {
                read_key(file)?.ok_or_else(|| anyhow::anyhow!("cannot read {}", file.display()))?
            }
            (None, None) => load_or_create_key(&config.data_dir.join(KEY_FILE))?,
        };
        Ok(Self(Arc::new(Inner {
            signer: Signer::new(key),
            people,
            guests: config.guests,
        })))
    }

    /// The author id of the messages an API token publishes: stable across restarts and on every
    /// node (the same key), so a retried publish is still recognised, and keyed so that it cannot
    /// be checked against guessed tokens (an unkeyed digest of the token could).
    pub fn token_author_id(&self, token: &str) -> String {
        let keyed = self
            .signer
            .keyed("herald api token author", token.as_bytes());
        format!("api-{}", hex(&keyed[..6]))
    }

    /// Who the request's session cookie signs in, if anyone. A store that cannot be asked signs
    /// nobody in (and is logged): refusing is safe, letting in is not.
    pub async fn signed_in(&self, headers: &HeaderMap) -> Option<SignedIn> {
        let values = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        // A browser sends one; a few at most are looked up.
        for token in cookie::session_tokens(values).take(3) {
            match self.people.signed_in(token).await {
                Ok(Some(who)) => return Some(who),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("cannot check a session: {e}");
                    return None;
                }
            }
        }
        None
    }

    /// The identity of the request's session, if there is a live one.
    pub async fn from_headers(&self, headers: &HeaderMap) -> Option<Identity> {
        self.signed_in(headers)
            .await
            .map(|who| who.account.identity())
    }
}

/// The shortest `--session-secret` taken: 32 bytes, so that the key cannot be guessed from a cookie
/// (a secret of a few letters fell to 89 guesses, and then anyone could sign in as anyone).
pub const MIN_SECRET_BYTES: usize = 32;

/// `secret` if it may sign cookies; an empty one (an unset variable in a unit file gives one) or a
/// short one is refused, saying how to make a good one.
fn strong_secret(secret: &str) -> anyhow::Result<&str> {
    let how = "make one with `openssl rand -hex 32`, or leave it unset and Herald keeps a generated \
               key in DATA_DIR/session.key";
    if secret.trim().is_empty() {
        anyhow::bail!("--session-secret (HERALD_SESSION_SECRET) is empty: {how}");
    }
    if secret.len() < MIN_SECRET_BYTES {
        anyhow::bail!(
            "--session-secret (HERALD_SESSION_SECRET) is {} bytes; it must be at least \
             {MIN_SECRET_BYTES}, or cookies can be forged: {how}",
            secret.len()
        );
    }
    Ok(secret)
}

/// The key in `path` (64 hex digits), `None` if the file cannot be read.
fn read_key(path: &Path) -> anyhow::Result<Option<[u8; 32]>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    unhex(text.trim())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .map(Some)
        .ok_or_else(|| anyhow::anyhow!("{} is not a 64-digit hex key", path.display()))
}

fn load_or_create_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    if let Some(key) = read_key(path)? {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    file.write_all(hex(&key).as_bytes())?;
    Ok(key)
}

/// Whether a WebSocket handshake with these headers comes from a page we serve (or an allowed one).
/// Browsers always send `Origin` on WebSocket handshakes; checking it stops other sites' pages from
/// using a visitor's cookie to open a socket in their name.
pub fn origin_allowed(headers: &HeaderMap, extra: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let own = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|host| {
            let origin = origin.to_ascii_lowercase();
            let host = host.to_ascii_lowercase();
            origin == format!("http://{host}") || origin == format!("https://{host}")
        });
    own || extra
        .iter()
        .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/session", post(start).get(whoami))
        .route("/session/end", post(end))
}

/// `200 {"you": {"id", "name"}, "handle", "role", "gone": {"deactivated", "deleted"}, "ignored",
/// "notify": {room: level}, "push_key"}` for a live
/// session, `401 {"error": "no_session"}` without one. Never cached: it changes when the visitor
/// signs in or out, in any tab.
async fn whoami(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    match state.sessions.signed_in(&headers).await {
        // The role too: the page shows a moderator the actions only moderators have; and what the
        // page marks beside names (the cached page is the same for every reader).
        Some(me) => {
            let people = &state.sessions.people;
            let (gone, ignored, levels) = tokio::join!(
                people.gone(),
                people.ignored(&me.account.id),
                people.notify_levels(&me.account.id)
            );
            let (gone, ignored, levels) = match (gone, ignored, levels) {
                (Ok(gone), Ok(ignored), Ok(levels)) => (gone, ignored, levels),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return unavailable(&e),
            };
            // What the person chose to be told, where not the default (docs/NOTIFICATIONS.md).
            let notify: serde_json::Map<String, serde_json::Value> = levels
                .into_iter()
                .map(|(room, level)| (room, level.as_str().into()))
                .collect();
            (
                no_store,
                axum::Json(serde_json::json!({
                    "you": me.account.identity(),
                    "handle": me.account.handle,
                    "role": me.account.role.as_str(),
                    "gone": *gone,
                    "ignored": ignored,
                    "notify": notify,
                    "push_key": state.push.public_key(),
                })),
            )
                .into_response()
        }
        None => (
            axum::http::StatusCode::UNAUTHORIZED,
            no_store,
            axum::Json(serde_json::json!({ "error": "no_session" })),
        )
            .into_response(),
    }
}

/// Whether a form was posted from another site. Such a post could sign a visitor in as the
/// poster's account, or sign them out; browsers say where a form comes from in `Origin`. A request
/// without one is not a browser's cross-site form, and goes through.
fn from_another_site(state: &AppState, headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN) && !origin_allowed(headers, &state.allowed_origins)
}

/// Around every route that takes a form (this module's and `accounts.rs`'s): a POST from another
/// site's page is refused before anything else is read of it.
pub async fn same_site_forms(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.method() == axum::http::Method::POST && from_another_site(&state, request.headers())
    {
        return (
            axum::http::StatusCode::FORBIDDEN,
            "Forms of this site can only be posted from its own pages.",
        )
            .into_response();
    }
    next.run(request).await
}

/// The session cookie for `token`, for as long as a session lasts unused. `Secure` over HTTPS (as
/// a trusted proxy in front says): the browser then never sends it over plain HTTP.
pub fn session_cookie(state: &AppState, token: &str, client: Option<&Client>) -> String {
    let max_age = state.accounts.session_ttl.as_secs();
    let secure = if client.is_some_and(|c| c.https) {
        "; Secure"
    } else {
        ""
    };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// Starts a session for `account` on this device and goes to `next` with its cookie.
pub async fn signed_in_to(
    state: &AppState,
    account: &str,
    headers: &HeaderMap,
    client: Option<&Client>,
    next: &str,
) -> Response {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match state.sessions.people.open_session(account, agent).await {
        Ok(token) => with_cookie(Redirect::to(next), &session_cookie(state, &token, client)),
        Err(e) => unavailable(&e),
    }
}

/// The answer when the people store cannot be reached: try again soon.
pub fn unavailable(e: &crate::people::PeopleError) -> Response {
    tracing::warn!("{e}");
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "2")],
        "Herald cannot reach its store of accounts just now; try again in a moment.",
    )
        .into_response()
}

#[derive(Deserialize)]
struct NameForm {
    name: String,
    /// The page to go back to; only a path on this site is followed.
    next: Option<String>,
}

/// `next` percent-encoded as a query's value: all but letters, digits, `-._~` and `/` (a path
/// reads as itself: `/sign-in?next=/r/ops`).
pub fn encode(next: &str) -> String {
    const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(next, QUERY_VALUE).to_string()
}

/// `next` if it is a path on this site, else the chat's front page. Only printable ASCII other than
/// a backslash is let through: browsers drop tabs and newlines anywhere in a URL and read `\` as
/// `/`, so `/<TAB>/evil.example` or `/\evil.example` would become `//evil.example` — another
/// site. What is left must start with one `/` (two make a protocol-relative URL).
pub fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            path
        }
        _ => "/",
    }
}

/// `POST /session` with form field `name`: from someone signed in, a change of display name (they
/// stay who they are); from someone who is not, with `--guests`, a guest's account under that name
/// and a session for it. Then back to the chat; a name that cannot be used goes back with
/// `?name_error=` saying why.
async fn start(
    State(state): State<AppState>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    Form(form): Form<NameForm>,
) -> Response {
    let next = local_path(form.next.as_deref());
    let name = validate_name(&form.name).and_then(one_alphabet_a_word);
    let people = &state.sessions.people;
    if let Some(me) = state.sessions.signed_in(&headers).await {
        let name = match name {
            Ok(name) => name,
            Err(err) => {
                let join = if next.contains('?') { '&' } else { '?' };
                let to = format!("{next}{join}name_error={}", err.code);
                return Redirect::to(&to).into_response();
            }
        };
        return match people.rename(&me.account.id, &name).await {
            Ok(()) => {
                tracing::info!(user = %me.account.id, name = %name, "renamed");
                Redirect::to(next).into_response()
            }
            Err(e) => unavailable(&e),
        };
    }
    let next = encode(next);
    if !state.sessions.guests {
        return Redirect::to(&format!("/sign-in?next={next}")).into_response();
    }
    let Ok(name) = name else {
        return Redirect::to(&format!("/sign-in?error=name&next={next}")).into_response();
    };
    let guest = NewAccount {
        handle: None,
        name,
        role: Role::Guest,
        password: None,
    };
    match people.create(guest).await {
        Ok(account) => {
            tracing::info!(user = %account.id, name = %account.name, "new guest");
            let client = client.as_ref().map(|Extension(c)| c);
            let next = local_path(form.next.as_deref());
            signed_in_to(&state, &account.id, &headers, client, next).await
        }
        Err(e) => unavailable(&e),
    }
}

/// A person's name keeps each word to one alphabet: "Аnn" with a Cyrillic А looks exactly like
/// "Ann", so a word that mixes alphabets is refused (Unicode's single-script test, UTS #39: digits,
/// punctuation and emoji go with any, and Japanese may mix its own scripts). Words apart may differ
/// ("Ann Москва"). Until accounts give people handles, this and each person's mark (its colour
/// from their id) are what tell look-alike names apart.
pub fn one_alphabet_a_word(name: String) -> Result<String, ProtocolError> {
    use unicode_security::MixedScript;
    if name.split_whitespace().all(|word| word.is_single_script()) {
        Ok(name)
    } else {
        Err(ProtocolError {
            code: ErrorCode::InvalidName,
            message: "each word of a name is in one alphabet".into(),
        })
    }
}

/// `POST /session/end`: signs this browser out. The session is ended in the store, so a copy of
/// the cookie kept anywhere signs nobody in either.
async fn end(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(me) = state.sessions.signed_in(&headers).await {
        match state
            .sessions
            .people
            .end_session(&me.account.id, &me.session)
            .await
        {
            Ok(_) => ended(&state, vec![me.session]),
            Err(e) => return unavailable(&e),
        }
    }
    with_cookie(Redirect::to("/"), &ended_cookie())
}

/// Sessions that ended: the sockets they let in close now, here and (in a cluster) on every node.
pub fn ended(state: &AppState, sessions: Vec<String>) {
    if sessions.is_empty() {
        return;
    }
    state.hub.end_sessions(&sessions);
    if let Some(cluster) = &state.cluster {
        cluster.ended(sessions);
    }
}

/// A cookie that the browser drops at once.
pub fn ended_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

pub fn with_cookie(redirect: Redirect, cookie: &str) -> Response {
    let mut response = redirect.into_response();
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_choosing_a_name_only_paths_on_this_site_are_followed() {
        assert_eq!(local_path(Some("/r/ops")), "/r/ops");
        assert_eq!(local_path(Some("/r/ops?x=1#end")), "/r/ops?x=1#end");
        assert_eq!(local_path(Some("/%2F/evil.example")), "/%2F/evil.example"); // A path here.
        for elsewhere in [
            None,
            Some(""),
            Some("https://evil.example"),
            Some("//evil.example"),
            Some("/\\evil.example"),
            Some("/a\r\nSet-Cookie: x=y"),
            Some("/\t/evil.example"),
            Some("/\n/evil.example"),
            Some("\t//evil.example"),
            Some("/ /evil.example"),
            Some("/\u{0}/evil.example"),
            Some("/a\\b"),
            Some("/r/caf\u{e9}"),
            Some("javascript:alert(1)"),
        ] {
            assert_eq!(local_path(elsewhere), "/", "{elsewhere:?}");
        }
    }

    #[test]
    fn only_our_own_origin_and_listed_ones_may_open_sockets() {
        let headers = |origin: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("chat.example:3000"));
            if let Some(o) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_str(o).expect("header"));
            }
            h
        };
        let extra = vec!["https://app.example".to_string()];
        assert!(origin_allowed(
            &headers(Some("http://chat.example:3000")),
            &[]
        ));
        assert!(origin_allowed(
            &headers(Some("https://app.example")),
            &extra
        ));
        assert!(!origin_allowed(
            &headers(Some("https://evil.example")),
            &extra
        ));
        assert!(!origin_allowed(
            &headers(Some("http://chat.example:3001")),
            &[]
        ));
        assert!(!origin_allowed(&headers(None), &extra));
    }
}
