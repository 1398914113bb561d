//! Who is talking. A visitor picks a display name once; the server answers with a session: an
//! HMAC-signed, HttpOnly, SameSite=Lax cookie naming a user id and that name. Every message's author
//! comes from the session of the connection that sent it, so nobody can post as someone else.
//!
//! Also owns `POST /session` (pick a name; a plain HTML form, so it works before the page is
//! hydrated), `POST /session/end` (sign out), `GET /session` (who this browser is: how the page
//! learns that a refused WebSocket handshake was a session that ended, which a browser's WebSocket
//! cannot see), and the origin check for WebSocket handshakes.

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

pub use cookie::{COOKIE, hex};
use cookie::{Signer, unhex};
/// The key file in `--data-dir`, when no secret is given.
const KEY_FILE: &str = "session.key";
/// How long a browser keeps the session: a year; choosing a name again replaces it.
const MAX_AGE_SECS: u64 = 365 * 24 * 3600;

/// Signs and checks session cookies. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    signer: Arc<Signer>,
}

impl Sessions {
    /// The key from `--session-secret`, from `--session-key-file`, or from DATA_DIR/session.key
    /// (created on first start).
    pub fn load(config: &Config) -> anyhow::Result<Self> {
        let key: [u8; 32] = match (&config.session_secret, &config.session_key_file) {
            (Some(secret), _) => Sha256::digest(strong_secret(secret)?.as_bytes()).into(),
            (None, Some(file)) => {
                read_key(file)?.ok_or_else(|| anyhow::anyhow!("cannot read {}", file.display()))?
            }
            (None, None) => load_or_create_key(&config.data_dir.join(KEY_FILE))?,
        };
        Ok(Self::with_key(key))
    }

    fn with_key(key: [u8; 32]) -> Self {
        Self {
            signer: Arc::new(Signer::new(key)),
        }
    }

    /// A new session for someone who chose `name`: their identity and the cookie value.
    pub fn issue(&self, name: String) -> (Identity, String) {
        self.cookie_for(random_hex(8), name)
    }

    /// The session of `who` under a new display name: the same person (the same id, so what they
    /// said before is still theirs), newly named.
    pub fn renamed(&self, who: Identity, name: String) -> (Identity, String) {
        self.cookie_for(who.id, name)
    }

    fn cookie_for(&self, id: String, name: String) -> (Identity, String) {
        let identity = Identity { id, name };
        let value = self.signer.value_for(&identity);
        (identity, value)
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

    /// The identity in a cookie value, if it was signed by us and is well-formed.
    pub fn verify(&self, value: &str) -> Option<Identity> {
        self.signer.verify(value)
    }

    /// The identity of the request's session cookie, if there is a valid one.
    pub fn from_headers(&self, headers: &HeaderMap) -> Option<Identity> {
        let values = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        cookie::session_values(values).find_map(|value| self.verify(value))
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

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // Without an OS random source nothing else would work either; a zero id is still unique enough
    // to not crash on.
    let _ = getrandom::fill(&mut bytes);
    hex(&bytes)
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

/// `200 {"you": {"id", "name"}}` for a valid session, `401 {"error": "no_session"}` without one.
/// Never cached: it changes when the visitor signs in or out, in any tab.
async fn whoami(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    match state.sessions.from_headers(&headers) {
        Some(you) => (no_store, axum::Json(serde_json::json!({ "you": you }))).into_response(),
        None => (
            axum::http::StatusCode::UNAUTHORIZED,
            no_store,
            axum::Json(serde_json::json!({ "error": "no_session" })),
        )
            .into_response(),
    }
}

/// Whether a form was posted from another site. Such a post could sign a visitor in under a name
/// of the poster's choosing, or sign them out; browsers say where a form comes from in `Origin`.
/// A request without one is not a browser's cross-site form, and goes through.
fn from_another_site(state: &AppState, headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN) && !origin_allowed(headers, &state.allowed_origins)
}

fn refused_from_another_site() -> Response {
    (
        axum::http::StatusCode::FORBIDDEN,
        "Forms of this site can only be posted from its own pages.",
    )
        .into_response()
}

#[derive(Deserialize)]
struct NameForm {
    name: String,
    /// The page to go back to; only a path on this site is followed.
    next: Option<String>,
}

/// `next` if it is a path on this site, else the chat's front page. Only printable ASCII other than
/// a backslash is let through: browsers drop tabs and newlines anywhere in a URL and read `\` as
/// `/`, so `/<TAB>/evil.example` or `/\evil.example` would become `//evil.example` — another
/// site. What is left must start with one `/` (two make a protocol-relative URL).
fn local_path(next: Option<&str>) -> &str {
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

/// `POST /session` with form field `name`: sets the session cookie and goes back to the chat; a name
/// that cannot be used goes back with `?name_error=` saying why. From someone who already has a
/// session it is a change of name: they stay who they are.
async fn start(
    State(state): State<AppState>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    Form(form): Form<NameForm>,
) -> Response {
    if from_another_site(&state, &headers) {
        return refused_from_another_site();
    }
    let next = local_path(form.next.as_deref());
    let name = match validate_name(&form.name).and_then(one_alphabet_a_word) {
        Ok(name) => name,
        Err(err) => {
            let join = if next.contains('?') { '&' } else { '?' };
            return Redirect::to(&format!("{next}{join}name_error={}", err.code)).into_response();
        }
    };
    let ((identity, value), what) = match state.sessions.from_headers(&headers) {
        Some(me) => (state.sessions.renamed(me, name), "renamed"),
        None => (state.sessions.issue(name), "new session"),
    };
    tracing::info!(user = %identity.id, name = %identity.name, "{what}");
    // Over HTTPS (as a trusted proxy in front says), the browser never sends it over plain HTTP.
    let secure = if client.is_some_and(|Extension(c)| c.https) {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={MAX_AGE_SECS}{secure}");
    with_cookie(Redirect::to(next), &cookie)
}

/// A person's name keeps each word to one alphabet: "Аnn" with a Cyrillic А looks exactly like
/// "Ann", so a word that mixes alphabets is refused (Unicode's single-script test, UTS #39: digits,
/// punctuation and emoji go with any, and Japanese may mix its own scripts). Words apart may differ
/// ("Ann Москва"). Until accounts give people handles, this and each person's mark (its colour
/// from their id) are what tell look-alike names apart.
fn one_alphabet_a_word(name: String) -> Result<String, ProtocolError> {
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

/// `POST /session/end`: forgets the session in this browser.
async fn end(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if from_another_site(&state, &headers) {
        return refused_from_another_site();
    }
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    with_cookie(Redirect::to("/"), &cookie)
}

fn with_cookie(redirect: Redirect, cookie: &str) -> Response {
    let mut response = redirect.into_response();
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::with_key([7; 32])
    }

    #[test]
    fn an_issued_session_verifies_and_a_tampered_one_does_not() {
        let sessions = sessions();
        let (identity, value) = sessions.issue("Ann".into());
        assert_eq!(sessions.verify(&value), Some(identity.clone()));

        // Claim another name with the old signature.
        let (_, tag) = value.split_once('.').expect("two parts");
        let forged = hex(br#"{"id":"x","name":"Admin"}"#);
        assert_eq!(sessions.verify(&format!("{forged}.{tag}")), None);
        // Signed with another key.
        let other = Sessions::with_key([8; 32]);
        assert_eq!(other.verify(&value), None);
        for junk in ["", ".", "zz.zz", "abc"] {
            assert_eq!(sessions.verify(junk), None);
        }
    }

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
    fn the_cookie_is_found_among_others() {
        let sessions = sessions();
        let (identity, value) = sessions.issue("Bo".into());
        let mut headers = HeaderMap::new();
        let cookie = format!("theme=dark; {COOKIE}={value}; x=y");
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&cookie).expect("header"),
        );
        assert_eq!(sessions.from_headers(&headers), Some(identity));
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
