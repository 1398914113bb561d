//! Webhooks: telling a bot about the messages meant for it, as Campfire's bots are told. When a
//! person's new message `@mentions` a bot that is a member of the room, or is written in a direct
//! conversation with a bot, the node that stored it POSTs it as JSON to the bot's webhook URL,
//! signed with the bot's secret (HMAC-SHA256, `X-Herald-Signature`); a 2xx answer's body, if any,
//! is posted as the bot's reply to it. docs/BOTS.md has the request, the signature and the rules.
//!
//! A bot's URL can point only at a host the operator allows (`--webhook-host`), over https unless
//! `--webhook-allow-http` says otherwise (tests): nobody who can make a bot can make Herald reach
//! an internal service. Redirects are not followed (they could lead anywhere). Delivery is off the
//! message's path: the sender's ack never waits for it, and a slow or dead bot holds up nothing
//! but its own deliveries (a time limit per try, a bounded number of tries and of deliveries
//! waiting per node).
//!
//! Each delivery has an id made from the room's epoch, the message's seq and the bot, claimed once
//! (in Redis in a cluster) before it is sent: a message re-sent after a reconnect, which the log
//! stores once and answers again, is not delivered twice; the reply is posted under that id too.

use std::{
    collections::{HashSet, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use app::protocol::{Identity, MessageKind, mentioned_handles, validate_body};
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{
    AppState, access,
    people::{Account, Role, RoomKind},
    redis_link::Commands,
    rooms::{Appending, Content, LogError, NewEntry},
};

/// What the operator allows (`--webhook-host`, `--webhook-allow-http`, `--webhook-timeout-secs`).
#[derive(Clone, Debug, Default)]
pub struct WebhookSettings {
    /// The hosts a bot's URL may name (lowercase; `host` or `host:port`). Empty: webhooks are off.
    pub hosts: Vec<String>,
    /// Whether `http://` URLs are allowed too (for tests against a local receiver).
    pub allow_http: bool,
    /// How long one try may take, connecting to the end of the answer.
    pub timeout: Duration,
}

/// The TLS of every HTTPS client Herald has (the webhooks', Web Push's): rustls, the web's roots.
pub fn tls_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // rustls 0.23.48 marks ring's provider deprecated for lacking post-quantum key exchange; the
    // provider that has it (aws-lc) needs cmake and a C build for the static binary.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls' default protocol versions (constant)")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Whether an answer from another server (a bot's webhook, a push service) is worth another try:
/// it says it is busy or failing (5xx, 429) or gave up waiting (408). Any other refusal would be
/// the same the next time.
pub fn worth_another_try(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// Why a webhook URL is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("webhooks are off on this server: the operator allows hosts with --webhook-host")]
    Off,
    #[error("a webhook URL is at most {MAX_URL_BYTES} bytes")]
    TooLong,
    #[error("that is not an absolute URL")]
    NotAUrl,
    #[error("a webhook URL must start with https://")]
    NotHttps,
    #[error("a webhook URL may not carry a user name or password")]
    Credentials,
    #[error("{0} is not a host this server sends webhooks to (--webhook-host)")]
    HostNotAllowed(String),
}

/// The longest webhook URL taken.
pub const MAX_URL_BYTES: usize = 2048;

/// Tries per delivery: the first and two retries (after [`RETRY_AFTER`]).
const TRIES: usize = 3;

/// Waits before the second and third tries.
const RETRY_AFTER: [Duration; TRIES - 1] = [Duration::from_secs(1), Duration::from_secs(4)];

/// Deliveries one node holds at once (sending or waiting to retry); past it, new ones are dropped
/// (counted, logged) rather than pile up behind a dead bot.
const MAX_WAITING: usize = 1000;

/// How long a delivery's id stays claimed: longer than any resend of the same message.
const CLAIM_KEPT: Duration = Duration::from_secs(24 * 3600);

/// The most delivery ids one node remembers (its own claims, on one node): past it the oldest are
/// let go first, whatever their age (a resend comes within minutes of its message, not a day).
const MAX_CLAIMS: usize = 100_000;

/// The most of an answer read: a reply is one message, at most the body limit (checked after).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The delivery ids one node claimed, and the same ids oldest first, with when.
#[derive(Default)]
struct Claims {
    ids: HashSet<String>,
    order: VecDeque<(Instant, String)>,
}

/// The webhooks' settings, client and bookkeeping. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks(Arc<Inner>);

struct Inner {
    settings: WebhookSettings,
    client: HttpsClient,
    /// Deliveries under way on this node.
    waiting: AtomicUsize,
    /// Delivery ids claimed on this node (one node).
    claimed: Mutex<Claims>,
    /// In cluster mode: claims in Redis, so two nodes never deliver one message twice.
    shared: Option<Commands>,
}

impl Webhooks {
    /// `shared`: in cluster mode, where deliveries are claimed (see [`Webhooks::claim`]).
    pub fn new(settings: WebhookSettings, shared: Option<Commands>) -> Self {
        let tls = tls_config();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(settings.timeout));
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        let connector = match settings.allow_http {
            true => builder.https_or_http(),
            false => builder.https_only(),
        }
        .enable_http1()
        .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Self(Arc::new(Inner {
            settings,
            client,
            waiting: AtomicUsize::new(0),
            claimed: Mutex::default(),
            shared,
        }))
    }

    /// The hosts the operator allows.
    pub fn allowed_hosts(&self) -> &[String] {
        &self.0.settings.hosts
    }

    /// Whether the operator allows any webhook at all.
    pub fn on(&self) -> bool {
        !self.0.settings.hosts.is_empty()
    }

    /// `url` if a bot's webhook may point there: an absolute https URL (or http, if allowed)
    /// without credentials, at an allowed host.
    pub fn check(&self, url: &str) -> Result<Uri, UrlRefused> {
        check_url(&self.0.settings, url)
    }

    /// Claims delivery `id`: true the first time, on whichever node asks.
    async fn claim(&self, id: &str) -> bool {
        if let Some(commands) = &self.0.shared {
            let mut conn = commands.clone();
            let set: Result<Option<String>, _> = redis::cmd("SET")
                .arg(format!("herald:webhook:{id}"))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(CLAIM_KEPT.as_millis() as u64)
                .query_async(&mut conn)
                .await;
            return match set {
                Ok(answer) => answer.is_some(),
                // Redis unreachable: delivered at most once is kept (the claim cannot be made).
                Err(e) => {
                    tracing::warn!("webhook delivery {id} not claimed: {e}");
                    false
                }
            };
        }
        let mut claims = self.0.claimed.lock().unwrap_or_else(|p| p.into_inner());
        let Claims { ids, order } = &mut *claims;
        let now = Instant::now();
        while let Some((at, old)) = order.front() {
            if ids.len() < MAX_CLAIMS && now.duration_since(*at) < CLAIM_KEPT {
                break;
            }
            ids.remove(old);
            order.pop_front();
        }
        let fresh = ids.insert(id.to_owned());
        if fresh {
            order.push_back((now, id.to_owned()));
        }
        fresh
    }
}

/// See [`Webhooks::check`].
fn check_url(settings: &WebhookSettings, url: &str) -> Result<Uri, UrlRefused> {
    if settings.hosts.is_empty() {
        return Err(UrlRefused::Off);
    }
    if url.len() > MAX_URL_BYTES {
        return Err(UrlRefused::TooLong);
    }
    let uri: Uri = url.trim().parse().map_err(|_| UrlRefused::NotAUrl)?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if settings.allow_http => {}
        Some(_) => return Err(UrlRefused::NotHttps),
        None => return Err(UrlRefused::NotAUrl),
    }
    let authority = uri.authority().ok_or(UrlRefused::NotAUrl)?;
    if authority.as_str().contains('@') {
        return Err(UrlRefused::Credentials);
    }
    let host = authority.host().to_ascii_lowercase();
    let with_port = authority.port_u16().map(|port| format!("{host}:{port}"));
    let allowed = settings
        .hosts
        .iter()
        .any(|h| *h == host || Some(h) == with_port.as_ref());
    if !allowed {
        return Err(UrlRefused::HostNotAllowed(host));
    }
    Ok(uri)
}

/// Whether a new message may concern a bot, judged without a lookup: in a direct conversation, or
/// with an `@` in it, and webhooks on. Everything else (nearly every message) costs nothing more.
pub fn may_concern(state: &AppState, room: &str, body: &str) -> bool {
    state.webhooks.on() && (RoomKind::of(room) == RoomKind::Direct || body.contains('@'))
}

/// `answer` to a person's new message in `room`, which once stored is handed to the webhooks of
/// the bots it concerns (see [`may_concern`]). The answer is passed on first: the sender's ack
/// never waits for a bot.
pub fn after_stored(
    state: &AppState,
    room: String,
    author: Identity,
    body: String,
    answer: Appending,
) -> Appending {
    let (tell, told) = tokio::sync::oneshot::channel();
    let state = state.clone();
    tokio::spawn(async move {
        let stored = answer.await.unwrap_or(Err(LogError::Closed));
        let seq = stored.as_ref().ok().copied();
        let _ = tell.send(stored);
        if let Some(seq) = seq {
            let message = Told {
                room,
                seq,
                author,
                body,
            };
            notify(&state, message).await;
        }
    });
    told
}

/// A stored message, as the webhooks need it.
struct Told {
    room: String,
    seq: u64,
    author: Identity,
    body: String,
}

/// Finds the bots `message` concerns and delivers it to each one's webhook.
async fn notify(state: &AppState, message: Told) {
    let bots = match addressed(state, &message).await {
        Ok(bots) => bots,
        Err(e) => {
            tracing::warn!(room = %message.room, "bots for a message not looked up: {e}");
            return;
        }
    };
    let message = Arc::new(message);
    for (bot, url, secret) in bots {
        let (state, message) = (state.clone(), message.clone());
        tokio::spawn(async move { deliver(&state, &message, bot, url, secret).await });
    }
}

/// The bots (with their webhook and secret) `message` concerns: in a direct conversation, the bots
/// in it; elsewhere the bots it `@mentions` that are members of the room. Never its own author.
async fn addressed(
    state: &AppState,
    message: &Told,
) -> Result<Vec<(Account, Uri, String)>, crate::people::PeopleError> {
    let people = &state.sessions.people;
    let direct = RoomKind::of(&message.room) == RoomKind::Direct;
    let candidates = if direct {
        people.members(&message.room).await?
    } else {
        let mut found = Vec::new();
        for handle in mentioned_handles(&message.body) {
            if let Some(account) = people.by_handle(&handle).await? {
                found.push(account);
            }
        }
        found
    };
    let mut bots = Vec::new();
    for account in candidates {
        if account.role != Role::Bot || !account.active || account.id == message.author.id {
            continue;
        }
        if !direct && !people.is_member(&message.room, &account.id).await? {
            continue;
        }
        let Some(bot) = people.bot(&account.id).await? else {
            continue;
        };
        let Some(url) = bot.webhook.as_deref() else {
            continue;
        };
        match state.webhooks.check(url) {
            Ok(uri) => bots.push((account, uri, bot.secret)),
            Err(refused) => {
                // Allowed when set, not any more (the operator changed the hosts).
                tracing::warn!(bot = %account.id, "webhook not sent: {refused}");
                state.metrics.webhook("dropped");
            }
        }
    }
    Ok(bots)
}

/// What a webhook request carries (docs/BOTS.md).
#[derive(Serialize)]
struct Payload<'a> {
    /// `mention` or `direct`.
    reason: &'static str,
    bot: PayloadBot<'a>,
    room: PayloadRoom<'a>,
    message: PayloadMessage<'a>,
}

#[derive(Serialize)]
struct PayloadBot<'a> {
    id: &'a str,
    handle: Option<&'a str>,
}

#[derive(Serialize)]
struct PayloadRoom<'a> {
    name: &'a str,
    /// `open`, `private` or `direct`.
    kind: &'static str,
}

#[derive(Serialize)]
struct PayloadMessage<'a> {
    /// Unique across rooms and lifetimes of a room's history, as the API's.
    id: String,
    seq: u64,
    author: &'a Identity,
    body: &'a str,
    /// Where a person reads it (path on this server).
    path: String,
}

/// The delivery id of `message` (in the room's history of `epoch`) to `bot`.
fn delivery_id(epoch: &str, message: &Told, bot: &str) -> String {
    let seed = format!("{}\n{epoch}\n{}\n{bot}", message.room, message.seq);
    crate::ids::hex(&Sha256::digest(seed.as_bytes())[..16])
}

/// `X-Herald-Signature`'s value for a request sent at `timestamp` (Unix seconds) with `body`:
/// `sha256=` and the hex HMAC-SHA256, keyed by the bot's secret, of `{timestamp}.{body}` (the time
/// is signed too, so a receiver can refuse an old request played again).
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", crate::ids::hex(&mac.finalize().into_bytes()))
}

/// Delivers `message` to `bot`'s webhook at `url` (tries, waits), and posts a reply it answers.
async fn deliver(state: &AppState, message: &Told, bot: Account, url: Uri, secret: String) {
    let hooks = &state.webhooks;
    let epoch = state.rooms.epoch(&message.room).unwrap_or_default();
    let id = delivery_id(&epoch, message, &bot.id);
    if !hooks.claim(&id).await {
        return;
    }
    if hooks.0.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING {
        hooks.0.waiting.fetch_sub(1, Ordering::Relaxed);
        tracing::warn!(bot = %bot.id, "webhook dropped: {MAX_WAITING} deliveries waiting already");
        state.metrics.webhook("dropped");
        return;
    }
    let kind = RoomKind::of(&message.room);
    let payload = Payload {
        reason: match kind {
            RoomKind::Direct => "direct",
            _ => "mention",
        },
        bot: PayloadBot {
            id: &bot.id,
            handle: bot.handle.as_deref(),
        },
        room: PayloadRoom {
            name: &message.room,
            kind: kind.as_str(),
        },
        message: PayloadMessage {
            id: format!("{epoch}-{}", message.seq),
            seq: message.seq,
            author: &message.author,
            body: &message.body,
            path: format!("/r/{}?at={}", message.room, message.seq),
        },
    };
    let body = Bytes::from(serde_json::to_vec(&payload).unwrap_or_default());
    let mut answer = None;
    for try_number in 0..TRIES {
        if let Some(wait) = try_number.checked_sub(1).and_then(|i| RETRY_AFTER.get(i)) {
            tokio::time::sleep(*wait).await;
        }
        match send(hooks, &url, &id, &secret, body.clone()).await {
            Ok(Sent::Done(reply)) => {
                answer = Some(reply);
                break;
            }
            Ok(Sent::Refused(status)) => {
                tracing::warn!(bot = %bot.id, %status, "webhook refused the message; not retried");
                break;
            }
            Err(why) => tracing::warn!(bot = %bot.id, try_number, "webhook try failed: {why}"),
        }
    }
    hooks.0.waiting.fetch_sub(1, Ordering::Relaxed);
    let Some(reply) = answer else {
        state.metrics.webhook("failed");
        return;
    };
    state.metrics.webhook("delivered");
    if let Some(reply) = reply {
        post_reply(state, message, bot, &id, reply).await;
    }
}

/// How one try ended, when the bot answered.
enum Sent {
    /// A 2xx; its reply's text, if it had one.
    Done(Option<String>),
    /// Another answer that a retry would not change (4xx but 408 and 429, or a redirect).
    Refused(StatusCode),
}

/// One try: the signed POST, within the time limit. An error is worth another try.
async fn send(
    hooks: &Webhooks,
    url: &Uri,
    id: &str,
    secret: &str,
    body: Bytes,
) -> Result<Sent, String> {
    let timestamp = crate::people::now_ms() / 1000;
    let request = Request::post(url.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "Herald-Webhook/1")
        .header("x-herald-delivery", id)
        .header("x-herald-timestamp", timestamp.to_string())
        .header("x-herald-signature", signature(secret, timestamp, &body))
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = hooks
            .0
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if worth_another_try(status) {
            return Err(format!("the bot answered {status}"));
        }
        if !status.is_success() {
            return Ok(Sent::Refused(status));
        }
        let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok(Sent::Done(reply_text(&bytes, json)))
    };
    tokio::time::timeout(hooks.0.settings.timeout, exchange)
        .await
        .map_err(|_| format!("no answer within {:?}", hooks.0.settings.timeout))?
}

/// The reply in a bot's answer: the text of a `text/plain` (or any non-JSON) body, or a JSON
/// body's `"body"` field; `None` if blank.
fn reply_text(bytes: &[u8], json: bool) -> Option<String> {
    let text = if json {
        #[derive(serde::Deserialize)]
        struct Reply {
            body: Option<String>,
        }
        serde_json::from_slice::<Reply>(bytes).ok()?.body?
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    };
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Posts `reply` as `bot`'s answer to `message`, where the bot may still write (it may have been
/// removed meanwhile), under the delivery's id (stored once, whatever happens twice).
async fn post_reply(state: &AppState, message: &Told, bot: Account, id: &str, reply: String) {
    if let Err(e) = validate_body(&reply, state.limits.max_body_bytes) {
        tracing::warn!(bot = %bot.id, "a bot's reply not posted: {}", e.message);
        return;
    }
    if let Err(e) = access::bot_may_write(state, &bot, &message.room).await {
        tracing::warn!(room = %message.room, "a bot's reply not posted: {e}");
        return;
    }
    let author = bot.identity();
    let stored = state
        .rooms
        .append(NewEntry {
            room: message.room.clone(),
            author,
            client_id: format!("hook-{id}"),
            kind: MessageKind::Bot,
            content: Content::Message {
                body: reply,
                reply_to: Some(message.seq),
            },
        })
        .await;
    if let Err(e) = stored {
        tracing::warn!(room = %message.room, "a bot's reply not stored: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(hosts: &[&str], allow_http: bool) -> WebhookSettings {
        WebhookSettings {
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            allow_http,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_webhook_url_names_an_allowed_host_over_https() {
        let allowed = settings(&["bots.example.com", "127.0.0.1:9000"], false);
        assert!(check_url(&allowed, "https://bots.example.com/hook").is_ok());
        assert!(check_url(&allowed, "https://BOTS.example.com:8443/hook").is_ok());
        assert!(check_url(&allowed, "https://127.0.0.1:9000/x").is_ok());
        let refused = [
            ("http://bots.example.com/hook", UrlRefused::NotHttps),
            ("ftp://bots.example.com/hook", UrlRefused::NotHttps),
            (
                "https://127.0.0.1:9001/x",
                UrlRefused::HostNotAllowed("127.0.0.1".into()),
            ),
            (
                "https://169.254.169.254/latest",
                UrlRefused::HostNotAllowed("169.254.169.254".into()),
            ),
            (
                "https://bots.example.com.evil.net/",
                UrlRefused::HostNotAllowed("bots.example.com.evil.net".into()),
            ),
            ("https://user:pw@bots.example.com/", UrlRefused::Credentials),
            ("/relative", UrlRefused::NotAUrl),
            ("not a url", UrlRefused::NotAUrl),
        ];
        for (url, why) in refused {
            assert_eq!(check_url(&allowed, url), Err(why), "{url}");
        }
        let long = format!("https://bots.example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert_eq!(check_url(&allowed, &long), Err(UrlRefused::TooLong));
        assert_eq!(
            check_url(&settings(&[], true), "https://bots.example.com/"),
            Err(UrlRefused::Off)
        );
        let testing = settings(&["127.0.0.1"], true);
        assert!(check_url(&testing, "http://127.0.0.1:1234/hook").is_ok());
    }

    #[test]
    fn the_signature_is_the_hmac_of_the_time_and_the_body() {
        // As Python's `hmac.new(b"Jefe", b"1700000000.{\"a\":1}", hashlib.sha256).hexdigest()`
        // computes it (an implementation apart from this one), the way a bot checks it.
        let signed = signature("Jefe", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            signed,
            "sha256=fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a"
        );
        assert_ne!(signature("Jefe", 1_700_000_001, br#"{"a":1}"#), signed);
        assert_ne!(signature("other", 1_700_000_000, br#"{"a":1}"#), signed);
    }

    #[tokio::test]
    async fn a_delivery_is_claimed_once_and_the_oldest_claims_go_first() {
        let hooks = Webhooks::new(settings(&["127.0.0.1"], true), None);
        assert!(hooks.claim("a").await);
        assert!(
            !hooks.claim("a").await,
            "a resent message is not delivered again"
        );
        for i in 0..MAX_CLAIMS {
            assert!(hooks.claim(&format!("n{i}")).await);
        }
        let claims = hooks.0.claimed.lock().expect("lock");
        assert_eq!(
            (claims.ids.len(), claims.order.len()),
            (MAX_CLAIMS, MAX_CLAIMS)
        );
        assert!(!claims.ids.contains("a"), "the oldest let go");
    }

    #[test]
    fn a_reply_is_the_text_or_the_json_body_field() {
        assert_eq!(reply_text(b"  hello  ", false).as_deref(), Some("hello"));
        assert_eq!(reply_text(b"   ", false), None);
        assert_eq!(
            reply_text(br#"{"body": "from json"}"#, true).as_deref(),
            Some("from json")
        );
        assert_eq!(reply_text(br#"{"other": 1}"#, true), None);
        assert_eq!(reply_text(b"not json", true), None);
    }
}
