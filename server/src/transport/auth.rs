//! Who may use the HTTP API and the Server-Sent Events streams — bearer tokens, each with its own rate
//! budget (kept in Redis in cluster mode, so a token has one budget however many nodes it uses) —
//! and [`ApiError`], the one JSON error both answer with: `{"error": {"code", "message"}}`, with the
//! status that fits; internal causes are logged, never shown. Shared by `api` and `sse` so that
//! neither transport imports the other.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use app::protocol::{ErrorCode, ProtocolError};
use axum::{
    Json,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{
    AppState, access,
    bearer::{bearer_digest, token_digest},
    peer::Client,
    rate::Buckets,
    redis_link::Commands,
    rooms::LogError,
    session,
};

/// The API's tokens and their rate budgets. Cheap to clone.
#[derive(Clone)]
pub struct ApiAuth {
    /// SHA-256 of each configured token → the id its messages carry.
    tokens: Arc<HashMap<[u8; 32], String>>,
    budgets: Arc<Mutex<Buckets<String>>>,
    rate_per_sec: f64,
    rate_burst: u32,
    /// In cluster mode: the budgets in Redis, shared by every node.
    shared: Option<Commands>,
    /// Wrong tokens per client address.
    guesses: Arc<Mutex<Buckets<IpAddr>>>,
}

/// A token's budget as a generic cell rate (GCRA): the key holds the theoretical arrival time of
/// the next request (µs). KEYS: the budget. ARGV: µs per request, burst. Returns 0 when the request
/// is taken, else the µs to wait.
const SPEND: &str = r#"
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - interval * (burst - 1) - now
if wait > 0 then return wait end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
return 0
"#;

/// How long a shared budget may take to answer before the node's own is used instead.
const SHARED_PATIENCE: Duration = Duration::from_secs(1);

impl ApiAuth {
    /// `sessions` names each token's messages (`Sessions::token_author_id`).
    pub fn new(
        tokens: &[String],
        rate_per_sec: f64,
        rate_burst: u32,
        failures_per_min: u32,
        sessions: &session::Sessions,
    ) -> Self {
        let tokens = tokens
            .iter()
            .filter(|t| !t.is_empty())
            .map(|token| (token_digest(token), sessions.token_author_id(token)))
            .collect();
        Self {
            tokens: Arc::new(tokens),
            budgets: Arc::new(Mutex::new(Buckets::new(rate_per_sec, rate_burst))),
            rate_per_sec,
            rate_burst,
            shared: None,
            guesses: Arc::new(Mutex::new(Buckets::new(
                f64::from(failures_per_min) / 60.0,
                failures_per_min,
            ))),
        }
    }

    /// How long `peer` must wait before its tokens are checked again, if its wrong ones are spent.
    fn guessing_wait(&self, peer: IpAddr) -> Option<Duration> {
        let mut guesses = self.guesses.lock().unwrap_or_else(|p| p.into_inner());
        guesses.empty_for(&peer, Instant::now())
    }

    /// Counts a wrong token from `peer` (past the budget there is nothing more to count).
    fn guessed_wrong(&self, peer: IpAddr) {
        let mut guesses = self.guesses.lock().unwrap_or_else(|p| p.into_inner());
        let _ = guesses.take(&peer, Instant::now());
    }

    /// Keeps the budgets in Redis (cluster mode): every node spends from the same one.
    pub fn shared_through(mut self, commands: Commands) -> Self {
        self.shared = Some(commands);
        self
    }

    /// The id of the request's bearer token, if it carries a configured one.
    fn token_id(&self, headers: &HeaderMap) -> Option<&str> {
        self.tokens
            .get(&bearer_digest(headers)?)
            .map(String::as_str)
    }

    /// Takes one request from the budget `id` (a token's, or a reader's: `reader:` and a person's
    /// id or an address): the cluster's, or while Redis does not answer (and on one node) this
    /// node's own. `whose` says whose budget is spent, in the answer.
    async fn spend(&self, id: &str, whose: &str) -> Result<(), ApiError> {
        let too_many = |wait: Duration| ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: format!("too many requests for {whose}; wait a moment"),
            retry_after_secs: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
        };
        if let Some(commands) = &self.shared {
            let mut conn = commands.clone();
            let interval = (1_000_000.0 / self.rate_per_sec.max(1e-6)).ceil() as u64;
            // Hashed once; sent by hash, and loaded again if Redis lost it.
            static SCRIPT: std::sync::LazyLock<redis::Script> =
                std::sync::LazyLock::new(|| redis::Script::new(SPEND));
            let mut call = SCRIPT.prepare_invoke();
            call.key(format!("herald:api:{id}"))
                .arg(interval)
                .arg(self.rate_burst.max(1));
            match tokio::time::timeout(SHARED_PATIENCE, call.invoke_async::<u64>(&mut conn)).await {
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(wait)) => return Err(too_many(Duration::from_micros(wait))),
                Ok(Err(e)) => tracing::warn!("the shared API budget failed: {e}; this node's used"),
                Err(_) => tracing::warn!("the shared API budget did not answer; this node's used"),
            }
        }
        let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        budgets
            .take(&id.to_owned(), Instant::now())
            .map_err(too_many)
    }
}

/// Around the API's and the event streams' routes, the budgets of who knocks:
/// - a client address that has sent too many wrong tokens (`--api-failures-per-min`) gets 429 for
///   every request with a token, right or wrong, until its budget is back (were a right one let
///   through, each guess would still be answered). Counted from the answers: a 401 to a request
///   that carried `Authorization`;
/// - a person reading with their chat session spends from their own budget and their address's
///   (`--api-rate-per-sec`, `--api-rate-burst`, as a token does).
pub async fn door_budgets(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(peer) = request.extensions().get::<Client>().map(Client::key) else {
        return next.run(request).await;
    };
    if !request.headers().contains_key(header::AUTHORIZATION) {
        // A person reading with their chat session: sessions cost nothing to make, so the reads
        // are spent from the person's budget and from their address's (the tokens' rates).
        if let Some(person) = state.sessions.from_headers(request.headers()).await {
            let budgets = [
                (format!("reader:{}", person.id), "you"),
                (format!("reader:{peer}"), "this address"),
            ];
            for (id, whose) in budgets {
                if let Err(refused) = state.api.spend(&id, whose).await {
                    return refused.into_response();
                }
            }
        }
        return next.run(request).await;
    }
    if let Some(wait) = state.api.guessing_wait(peer) {
        return ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: "too many wrong tokens from this address; wait before trying again".into(),
            retry_after_secs: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
        }
        .into_response();
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        state.api.guessed_wrong(peer);
    }
    response
}

/// Who may call a route.
pub enum Caller {
    /// A configured API token (its id): the operator's, for open rooms.
    Token(String),
    /// Someone chatting in this browser (reads only), or a bot by its token: their account.
    Person(Box<crate::people::Account>),
}

/// Who may write through the API.
pub enum Writer {
    /// A configured API token (its id): the operator's, for open rooms, under any name.
    Operator(String),
    /// A bot, by one of its tokens: in the rooms it is a member of, as itself.
    Bot(Box<crate::people::Account>),
}

impl Writer {
    /// The author of what this writer writes: a bot is itself; the operator's messages carry the
    /// token's id under the name the request gives, or `default_name`.
    pub fn author(&self, name: Option<String>, default_name: &str) -> app::protocol::Identity {
        match self {
            Writer::Operator(id) => app::protocol::Identity {
                id: id.clone(),
                name: name.unwrap_or_else(|| default_name.to_owned()),
            },
            Writer::Bot(account) => account.identity(),
        }
    }

    /// Whether this writer may write to `room` (a valid name): the operator's token to open rooms
    /// that are not archived; a bot to rooms it is a member of (others answer as missing, or for an
    /// open room, 403 `not_a_member`), not archived, where it is not muted.
    pub async fn may_write(&self, state: &AppState, room: &str) -> Result<(), ApiError> {
        let bot = match self {
            Writer::Operator(_) => return operator_may_write(state, room).await,
            Writer::Bot(bot) => bot,
        };
        access::bot_may_write(state, bot, room)
            .await
            .map_err(|refused| match refused {
                access::BotRefused::NotAMember => ApiError::new(
                    StatusCode::FORBIDDEN,
                    "not_a_member",
                    "this bot is not a member of that room: a person in it adds the bot on the \
                     room's About page",
                ),
                access::BotRefused::Missing => ApiError::unknown_room(room),
                access::BotRefused::Archived => ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::Archived.as_str(),
                    ErrorCode::Archived.refusal(),
                ),
                access::BotRefused::Muted => ApiError::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::Muted.as_str(),
                    "a moderator muted this bot in that room for now",
                ),
                access::BotRefused::Unavailable(e) => ApiError::store_failed("room door", &e),
            })
    }

    /// The budget its requests spend from.
    fn budget(&self) -> String {
        match self {
            Writer::Operator(id) => id.clone(),
            Writer::Bot(bot) => bot_budget(&bot.id),
        }
    }
}

impl Caller {
    /// As the rooms' doors know them.
    pub fn who(&self) -> access::Who<'_> {
        match self {
            Caller::Token(_) => access::Who::Operator,
            Caller::Person(account) => access::Who::of(account),
        }
    }
}

/// `caller` through the door of `room` (a valid name): a room they may not open answers 404 as
/// one that does not exist. What the room's record says (archived) comes back.
pub async fn through_door(
    state: &AppState,
    caller: &Caller,
    room: &str,
) -> Result<access::Opened, ApiError> {
    match access::open(state, caller.who(), room).await {
        Ok(opened) => Ok(opened),
        Err(access::Refused::Missing) => Err(ApiError::unknown_room(room)),
        Err(access::Refused::Unavailable(e)) => Err(ApiError::store_failed("room door", &e)),
    }
}

/// What the operator's token may write to: open rooms that are not archived. A private room's name
/// answers as a room that does not exist (it is never made by a post).
pub async fn operator_may_write(state: &AppState, room: &str) -> Result<(), ApiError> {
    if app::protocol::is_private(room) {
        return Err(ApiError::unknown_room(room));
    }
    match state.sessions.people.room(room).await {
        Ok(Some(record)) if record.archived => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Archived.as_str(),
            ErrorCode::Archived.refusal(),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(ApiError::store_failed("people store", &e)),
    }
}

/// The budget of bot `id`'s requests, whichever of its tokens they carry.
fn bot_budget(id: &str) -> String {
    format!("bot:{id}")
}

/// The bot whose token the request carries, if it carries a live one.
async fn bot_of(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Box<crate::people::Account>>, ApiError> {
    let Some(token) = crate::bearer::bearer(headers) else {
        return Ok(None);
    };
    if !token.starts_with(crate::people::BOT_TOKEN_PREFIX) {
        return Ok(None);
    }
    match state.sessions.people.bot_by_token(token).await {
        Ok(Some(bot)) => Ok(Some(Box::new(bot))),
        // A bot's token that is not (any more): refused, never taken for an operator's.
        Ok(None) => Err(ApiError::unauthorized()),
        Err(e) => Err(ApiError::store_failed("people store", &e)),
    }
}

/// Writing needs a token: the operator's, or a bot's.
pub async fn require_token(state: &AppState, headers: &HeaderMap) -> Result<Writer, ApiError> {
    if let Some(bot) = bot_of(state, headers).await? {
        let bot = Writer::Bot(bot);
        state.api.spend(&bot.budget(), "this token").await?;
        return Ok(bot);
    }
    if state.api.tokens.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "api_disabled",
            "the HTTP API is off: start Herald with --api-token TOKEN (or HERALD_API_TOKENS) and \
             send Authorization: Bearer TOKEN",
        ));
    }
    let id = state
        .api
        .token_id(headers)
        .ok_or_else(ApiError::unauthorized)?
        .to_owned();
    state.api.spend(&id, "this token").await?;
    Ok(Writer::Operator(id))
}

/// Reading needs a token (the operator's, or a bot's: the rooms it is a member of) or a chat
/// session (so the page's own scripts can read with its cookie).
pub async fn require_reader(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    if let Some(bot) = bot_of(state, headers).await? {
        state.api.spend(&bot_budget(&bot.id), "this token").await?;
        return Ok(Caller::Person(bot));
    }
    if let Some(id) = state.api.token_id(headers) {
        let id = id.to_owned();
        state.api.spend(&id, "this token").await?;
        return Ok(Caller::Token(id));
    }
    match state.sessions.signed_in(headers).await {
        Some(person) => Ok(Caller::Person(Box::new(person.account))),
        None => Err(ApiError::unauthorized()),
    }
}

/// An API error: the status, a stable code programs branch on, and a sentence for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// With 429: seconds until a retry is accepted (sent as `Retry-After`).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer TOKEN with a token Herald was started with (--api-token), \
             or a bot's token that is not revoked",
        )
    }

    /// The client's address holds `--max-connections-per-address` streams and sockets already.
    pub fn too_many_connections() -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "too_many_connections",
            message: "too many connections open from this address: close some first".into(),
            retry_after_secs: Some(10),
        }
    }

    pub fn unknown_room(room: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_room",
            format!("there is no room called {room}"),
        )
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unavailable(e: LogError) -> Self {
        if let LogError::Refused(code) = e {
            // The message a change or reply names does not take it: the caller's doing.
            let status = match code {
                ErrorCode::NoSuchMessage => StatusCode::NOT_FOUND,
                ErrorCode::NotYours => StatusCode::FORBIDDEN,
                _ => StatusCode::CONFLICT,
            };
            return Self::new(status, code.as_str(), code.refusal());
        }
        Self::store_failed("message log", &e)
    }

    /// A store (`which`) failed the request: logged, and answered 503 `unavailable`.
    pub fn store_failed(which: &str, e: &dyn std::fmt::Display) -> Self {
        tracing::error!("{which}: {e}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the server could not do that just now; try again",
        )
    }
}

impl From<ProtocolError> for ApiError {
    fn from(err: ProtocolError) -> Self {
        let status = match err.code {
            ErrorCode::BodyTooLong => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, err.code.as_str(), err.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
