//! Web Push (docs/NOTIFICATIONS.md, "Web Push"): a person's browsers without a Herald tab open
//! are told of a [`Notice`] through the push service each browser chose (RFC 8030). The page
//! subscribes with the server's VAPID public key and gives the subscription to
//! `POST /push/subscriptions`; a notice is held [`PushSettings::hold`] and dropped if the person
//! has read that far by then (on any device), else POSTed to each subscription's endpoint: the
//! notice encrypted for that browser alone (RFC 8291, `aes128gcm`), signed for the push service
//! with a JWT of the VAPID key (RFC 8292). A subscription the push service says is gone (404, 410)
//! is dropped, as is one whose session has ended; a push it did not take (busy, failing, no
//! answer) is tried again a few times, after the wait it asks for, while it is still unread.
//!
//! An endpoint is a URL a browser gave: it must be https and never reach an internal address —
//! checked when it is given, and again on every connection (a name that resolves to an internal
//! address is not connected to), so a subscription cannot make Herald POST into its own network.
//! `--push-allow-local` lifts both for tests against a local push service. Sending is off every
//! message's path: held pushes are tasks of their own, bounded in number; a slow or dead push
//! service holds up nothing but its own pushes (a time limit per request).

use std::{
    collections::HashSet,
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use app::protocol::Notice;
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{
        Client,
        connect::{HttpConnector, dns::Name},
    },
    rt::TokioExecutor,
};
use p256::ecdsa::{Signature, SigningKey, signature::Signer};

use crate::{
    AppState,
    accounts::Me,
    people::{People, PeopleError, notify::Subscription, now_ms},
    session::unavailable,
};

/// What the operator chose (`--push-contact`, `--push-hold-ms`, `--push-allow-local`).
#[derive(Clone, Debug)]
pub struct PushSettings {
    /// Who runs this server, for the push services (the JWT's `sub`): `mailto:` or `https:`.
    pub contact: String,
    /// How long a notice waits before it is pushed (read meanwhile, it is not).
    pub hold: Duration,
    /// Endpoints may be http:// and at internal addresses (tests against a local push service).
    pub allow_local: bool,
    /// How long one push may take, connecting to the end of the answer.
    pub timeout: Duration,
}

/// The longest endpoint taken.
pub const MAX_ENDPOINT_BYTES: usize = 2048;

/// Held pushes on this node, at most: beyond, a notice is not pushed (and the log says so).
const HELD: usize = 10_000;

/// How long a push service may keep a push for a browser that is offline.
const TTL: Duration = Duration::from_secs(6 * 3600);

/// How long the JWT for a push service is valid (RFC 8292 allows at most a day).
const JWT_FOR: Duration = Duration::from_secs(12 * 3600);

/// Tries per push and browser: the first and two more, while the push service says it is busy or
/// failing (5xx, 429, 408) or does not answer.
const TRIES: usize = 3;

/// Waits before the second and third tries, unless the push service asks for longer
/// (`Retry-After`, in seconds).
const RETRY_AFTER: [Duration; TRIES - 1] = [Duration::from_secs(1), Duration::from_secs(5)];

/// The longest a push service may ask a push to wait: one that asks for more is given up (a
/// mention told that late is news to nobody; the person sees it when they next open Herald).
const LONGEST_WAIT: Duration = Duration::from_secs(120);

/// How long the list of people with a subscription is trusted (a subscription made here is seen
/// at once; one made on another node of a cluster within this).
const SUBSCRIBERS_FOR: Duration = Duration::from_secs(5);

/// Why a subscription is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("a push endpoint is at most {MAX_ENDPOINT_BYTES} bytes")]
    TooLong,
    #[error("the endpoint is not an absolute URL")]
    NotAUrl,
    #[error("a push endpoint must start with https://")]
    NotHttps,
    #[error("a push endpoint may not carry a user name or password")]
    Credentials,
    #[error("a push endpoint may not be an internal address")]
    Internal,
    #[error("the subscription's p256dh is not a P-256 public key in base64url")]
    BadKey,
    #[error("the subscription's auth is not 16 bytes in base64url")]
    BadAuth,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type PushClient = Client<HttpsConnector<HttpConnector<PublicOnly>>, Full<Bytes>>;

/// The client's name lookup: a push service's name resolved, its internal addresses left out
/// (unless local endpoints are allowed), so that no name can lead the client inside.
#[derive(Clone)]
struct PublicOnly {
    allow_local: bool,
}

impl tower::Service<Name> for PublicOnly {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_local = self.allow_local;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let kept: Vec<SocketAddr> =
                found.filter(|a| allow_local || is_public(a.ip())).collect();
            if kept.is_empty() {
                return Err(format!("{name} has no public address").into());
            }
            Ok(kept.into_iter())
        })
    }
}

/// Web Push's settings, key, client and bookkeeping. Cheap to clone.
#[derive(Clone)]
pub struct Push(Arc<Inner>);

struct Inner {
    settings: PushSettings,
    key: SigningKey,
    /// The key's public half as browsers take it: an uncompressed point, base64url.
    public: String,
    /// Made on the first push (most servers never push: no TLS roots held for nothing).
    client: std::sync::OnceLock<PushClient>,
    held: AtomicUsize,
    /// The people with a subscription, as last read, and when.
    subscribers: Mutex<Option<(Instant, Arc<HashSet<String>>)>>,
}

impl Push {
    /// Web Push with the server's VAPID key (made now, if `people` has none yet).
    pub async fn start(people: &People, settings: PushSettings) -> Result<Self, PeopleError> {
        let made =
            B64.encode(SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng).to_bytes());
        let stored = people.vapid_key(&made).await?;
        let key = B64
            .decode(stored.as_bytes())
            .ok()
            .and_then(|bytes| SigningKey::from_slice(&bytes).ok())
            .ok_or_else(|| {
                PeopleError::Storage("the stored VAPID key is not a P-256 key".into())
            })?;
        let public = B64.encode(key.verifying_key().to_encoded_point(false).as_bytes());
        Ok(Self(Arc::new(Inner {
            settings,
            key,
            public,
            client: std::sync::OnceLock::new(),
            held: AtomicUsize::new(0),
            subscribers: Mutex::new(None),
        })))
    }

    /// The VAPID public key, for the page's `PushManager.subscribe`.
    pub fn public_key(&self) -> &str {
        &self.0.public
    }

    /// Holds `notice` for `account`, then pushes it to their browsers unless read by then. Never
    /// waits.
    pub fn hold(&self, state: &AppState, account: String, notice: Notice) {
        let push = self.clone();
        if push.0.held.fetch_add(1, Ordering::AcqRel) >= HELD {
            push.0.held.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("too many pushes held: one is not sent");
            return;
        }
        let state = state.clone();
        tokio::spawn(async move {
            if push.subscribed(&state.sessions.people, &account).await {
                tokio::select! {
                    () = tokio::time::sleep(push.0.settings.hold) => {
                        push.deliver(&state, &account, &notice).await;
                    }
                    () = state.stop.cancelled() => {}
                }
            }
            push.0.held.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// Whether `account` has a subscription (the list read at most [`SUBSCRIBERS_FOR`] ago).
    async fn subscribed(&self, people: &People, account: &str) -> bool {
        let known = self
            .0
            .subscribers
            .lock()
            .ok()
            .and_then(|known| known.clone());
        let subscribers = match known {
            Some((at, subscribers)) if at.elapsed() < SUBSCRIBERS_FOR => subscribers,
            _ => match people.subscribers().await {
                Ok(read) => {
                    let read = Arc::new(read.into_iter().collect::<HashSet<_>>());
                    if let Ok(mut known) = self.0.subscribers.lock() {
                        *known = Some((Instant::now(), read.clone()));
                    }
                    read
                }
                Err(e) => {
                    tracing::warn!("cannot read who has a push subscription: {e}");
                    return false;
                }
            },
        };
        subscribers.contains(account)
    }

    /// Forgets the list of subscribers: one changed here.
    fn changed(&self) {
        if let Ok(mut known) = self.0.subscribers.lock() {
            *known = None;
        }
    }

    /// Pushes `notice` to `account`'s browsers, unless they read it meanwhile: each browser whose
    /// session is live and has no connection here (one that has shows the `notify` frame itself).
    /// A push the push service did not take is tried again ([`TRIES`]), all of a round's after
    /// one wait, and only while the person has still not read it.
    async fn deliver(&self, state: &AppState, account: &str, notice: &Notice) {
        let people = &state.sessions.people;
        if read_by_now(state, account, notice).await {
            return;
        }
        let (subscriptions, sessions) =
            match tokio::try_join!(people.subscriptions(account), people.sessions(account)) {
                Ok(both) => both,
                Err(e) => {
                    tracing::warn!("cannot read a person's push subscriptions: {e}");
                    return;
                }
            };
        let mut due = Vec::with_capacity(subscriptions.len());
        for subscription in subscriptions {
            if sessions.iter().any(|s| s.id == subscription.session) {
                due.push(subscription);
            } else {
                // Signed out of that browser (or the session ran out): not theirs any more.
                self.drop_subscription(people, &subscription).await;
            }
        }
        let payload = Bytes::from(serde_json::to_vec(notice).unwrap_or_default());
        for try_number in 0..TRIES {
            due.retain(|subscription| !state.hub.has_session(&subscription.session));
            let mut again = Vec::new();
            let mut wait = RETRY_AFTER.get(try_number).copied();
            for subscription in due {
                match self.send(&subscription, payload.clone()).await {
                    Ok(Sent::Answered { status, .. })
                        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE =>
                    {
                        self.drop_subscription(people, &subscription).await;
                    }
                    Ok(Sent::Answered {
                        status,
                        retry_after,
                    }) if crate::webhooks::worth_another_try(status) => {
                        tracing::warn!(%status, try_number, "a push service did not take a push");
                        if let (Some(wait), Some(asked)) = (wait.as_mut(), retry_after) {
                            *wait = (*wait).max(asked);
                        }
                        again.push(subscription);
                    }
                    Ok(Sent::Answered { status, .. }) if !status.is_success() => {
                        tracing::warn!(%status, "a push service refused a push");
                    }
                    Ok(Sent::Answered { .. }) => {}
                    Ok(Sent::NoAnswer(why)) => {
                        tracing::warn!(try_number, "a push service did not answer: {why}");
                        again.push(subscription);
                    }
                    Err(e) => tracing::warn!("a push cannot be sent: {e}"),
                }
            }
            if again.is_empty() {
                return;
            }
            let Some(wait) = wait.filter(|wait| *wait <= LONGEST_WAIT) else {
                tracing::warn!(browsers = again.len(), "a push was given up");
                return;
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = state.stop.cancelled() => return,
            }
            if read_by_now(state, account, notice).await {
                return;
            }
            due = again;
        }
    }

    async fn drop_subscription(&self, people: &People, subscription: &Subscription) {
        match people
            .unsubscribe(&subscription.account, &subscription.endpoint)
            .await
        {
            Ok(()) => self.changed(),
            Err(e) => tracing::warn!("a spent push subscription was not dropped: {e}"),
        }
    }

    /// One push: `payload` encrypted for `subscription`, signed, POSTed within the time limit. An
    /// error: it cannot be sent at all (another try would fail the same).
    async fn send(&self, subscription: &Subscription, payload: Bytes) -> Result<Sent, String> {
        let endpoint =
            check_endpoint(&self.0.settings, &subscription.endpoint).map_err(|e| e.to_string())?;
        let (ua_public, auth) =
            keys_of(&subscription.p256dh, &subscription.auth).map_err(|e| e.to_string())?;
        let body = web_push_native::encrypt(payload.to_vec(), &ua_public, &auth)
            .map_err(|e| format!("encrypting: {e}"))?;
        let jwt = self.jwt(&endpoint)?;
        let request = Request::post(endpoint)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_ENCODING, "aes128gcm")
            .header("ttl", TTL.as_secs().to_string())
            .header("urgency", "high")
            .header(
                header::AUTHORIZATION,
                format!("vapid t={jwt}, k={}", self.0.public),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let timeout = self.0.settings.timeout;
        let client = self.0.client.get_or_init(|| client(&self.0.settings));
        let answer = match tokio::time::timeout(timeout, client.request(request)).await {
            Err(_) => return Ok(Sent::NoAnswer(format!("no answer within {timeout:?}"))),
            Ok(Err(e)) => return Ok(Sent::NoAnswer(e.to_string())),
            Ok(Ok(answer)) => answer,
        };
        // Only its delay in seconds: what RFC 8030's push services send (a date is not followed).
        let retry_after = answer
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Ok(Sent::Answered {
            status: answer.status(),
            retry_after,
        })
    }

    /// The VAPID JWT (ES256) for `endpoint`'s push service: its origin, a time limit, who we are.
    fn jwt(&self, endpoint: &Uri) -> Result<String, String> {
        let audience = origin(endpoint).ok_or("the endpoint has no origin")?;
        let expires = now_ms() / 1000 + JWT_FOR.as_secs();
        let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": audience,
            "exp": expires,
            "sub": self.0.settings.contact,
        });
        let claims = B64.encode(claims.to_string());
        let signed = format!("{header}.{claims}");
        let signature: Signature = self.0.key.sign(signed.as_bytes());
        Ok(format!("{signed}.{}", B64.encode(signature.to_bytes())))
    }
}

/// How one push ended, when it could be sent.
enum Sent {
    /// The push service answered.
    Answered {
        status: StatusCode,
        /// How long it asked to wait before another try.
        retry_after: Option<Duration>,
    },
    /// No answer (no connection, or none within the time limit).
    NoAnswer(String),
}

/// Whether `account` has read `notice`'s message by now, on any device.
async fn read_by_now(state: &AppState, account: &str, notice: &Notice) -> bool {
    let read = match state.sessions.people.read_positions(account).await {
        Ok(positions) => positions.into_iter().find(|at| at.room == notice.room),
        Err(e) => {
            tracing::warn!("cannot read a person's position: {e}");
            None
        }
    };
    let epoch = state.rooms.epoch(&notice.room);
    read.is_some_and(|at| Some(&at.epoch) == epoch.as_ref() && at.seq >= notice.seq)
}

/// `scheme://host[:port]` of `uri`.
fn origin(uri: &Uri) -> Option<String> {
    let (scheme, authority) = (uri.scheme_str()?, uri.authority()?);
    Some(format!(
        "{scheme}://{}",
        authority.as_str().to_ascii_lowercase()
    ))
}

/// The client: rustls on `ring`, https only (unless local endpoints are allowed), connecting only
/// to public addresses (unless allowed), no redirects followed (hyper's client follows none).
fn client(settings: &PushSettings) -> PushClient {
    let tls = crate::webhooks::tls_config();
    let mut http = HttpConnector::new_with_resolver(PublicOnly {
        allow_local: settings.allow_local,
    });
    http.enforce_http(false);
    http.set_connect_timeout(Some(settings.timeout));
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
    let connector = match settings.allow_local {
        true => builder.https_or_http(),
        false => builder.https_only(),
    }
    .enable_http1()
    .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Whether `ip` is on the internet: not loopback, private, link-local, shared (CGNAT),
/// documentation, multicast, broadcast, unspecified or reserved — in IPv6 too, and IPv4 mapped
/// into it.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
                    || first == 0x2001 && v6.segments()[1] == 0x0db8)
            }
        },
    }
}

/// `endpoint` if a subscription may name it: an absolute https URL (http too if local endpoints
/// are allowed) without credentials, whose host is not an internal address.
pub fn check_endpoint(settings: &PushSettings, endpoint: &str) -> Result<Uri, Refused> {
    if endpoint.len() > MAX_ENDPOINT_BYTES {
        return Err(Refused::TooLong);
    }
    let uri: Uri = endpoint.parse().map_err(|_| Refused::NotAUrl)?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if settings.allow_local => {}
        Some(_) => return Err(Refused::NotHttps),
        None => return Err(Refused::NotAUrl),
    }
    let authority = uri.authority().ok_or(Refused::NotAUrl)?;
    if authority.as_str().contains('@') {
        return Err(Refused::Credentials);
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(Refused::NotAUrl);
    }
    let internal = match host.parse::<IpAddr>() {
        Ok(ip) => !is_public(ip),
        // A name: its addresses are checked on every connection (see [`client`]).
        Err(_) => {
            let host = host.to_ascii_lowercase();
            host == "localhost" || host.ends_with(".localhost") || !host.contains('.')
        }
    };
    if internal && !settings.allow_local {
        return Err(Refused::Internal);
    }
    Ok(uri)
}

/// A subscription's keys, read: the browser's public key and its 16-byte secret.
fn keys_of(p256dh: &str, auth: &str) -> Result<(p256::PublicKey, web_push_native::Auth), Refused> {
    let key = B64
        .decode(p256dh.trim_end_matches('=').as_bytes())
        .ok()
        .and_then(|bytes| p256::PublicKey::from_sec1_bytes(&bytes).ok())
        .ok_or(Refused::BadKey)?;
    let auth = B64
        .decode(auth.trim_end_matches('=').as_bytes())
        .ok()
        .filter(|bytes| bytes.len() == 16)
        .ok_or(Refused::BadAuth)?;
    Ok((key, web_push_native::Auth::clone_from_slice(&auth)))
}

pub fn router() -> Router<AppState> {
    Router::new().route("/push/subscriptions", post(subscribe).delete(unsubscribe))
}

/// A subscription as `PushSubscription.toJSON()` gives it.
#[derive(serde::Deserialize)]
struct Given {
    endpoint: String,
    keys: GivenKeys,
}

#[derive(serde::Deserialize)]
struct GivenKeys {
    p256dh: String,
    auth: String,
}

#[derive(serde::Deserialize)]
struct GivenEndpoint {
    endpoint: String,
}

/// `POST /push/subscriptions` (JSON, as the browser gave it): this browser's subscription, kept
/// with the person and this session. `422 {"error"}` when refused; nothing is kept then.
async fn subscribe(
    State(state): State<AppState>,
    Me(me): Me,
    Json(given): Json<Given>,
) -> Response {
    let checked = check_endpoint(&state.push.0.settings, &given.endpoint)
        .and_then(|_| keys_of(&given.keys.p256dh, &given.keys.auth));
    if let Err(refused) = checked {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({ "error": refused.to_string() })),
        )
            .into_response();
    }
    let subscription = Subscription {
        endpoint: given.endpoint,
        account: me.account.id.clone(),
        session: me.session.clone(),
        p256dh: given.keys.p256dh,
        auth: given.keys.auth,
        at: now_ms(),
    };
    match state.sessions.people.subscribe(&subscription).await {
        Ok(()) => {
            state.push.changed();
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => unavailable(&e),
    }
}

/// `DELETE /push/subscriptions` (`{"endpoint"}`): the browser unsubscribed.
async fn unsubscribe(
    State(state): State<AppState>,
    Me(me): Me,
    Json(given): Json<GivenEndpoint>,
) -> Response {
    match state
        .sessions
        .people
        .unsubscribe(&me.account.id, &given.endpoint)
        .await
    {
        Ok(()) => {
            state.push.changed();
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => unavailable(&e),
    }
}

#[cfg(test)]
mod tests {
    use p256::elliptic_curve::sec1::ToEncodedPoint;

    use super::*;

    fn settings(allow_local: bool) -> PushSettings {
        PushSettings {
            contact: "mailto:ops@example.com".into(),
            hold: Duration::ZERO,
            allow_local,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn an_endpoint_is_https_and_never_internal() {
        let strict = settings(false);
        for fine in [
            "https://fcm.googleapis.com/fcm/send/abc",
            "https://updates.push.services.mozilla.com/wpush/v2/x",
            "https://web.push.apple.com/Qx",
            "https://8.8.8.8/x",
            "https://[2606:4700::1111]/x",
        ] {
            assert!(check_endpoint(&strict, fine).is_ok(), "{fine}");
        }
        for (endpoint, why) in [
            ("http://fcm.googleapis.com/x", Refused::NotHttps),
            ("ftp://fcm.googleapis.com/x", Refused::NotHttps),
            ("/relative", Refused::NotAUrl),
            ("https://user:pw@fcm.googleapis.com/x", Refused::Credentials),
            ("https://127.0.0.1/x", Refused::Internal),
            ("https://10.1.2.3/x", Refused::Internal),
            ("https://192.168.0.1/x", Refused::Internal),
            ("https://169.254.169.254/latest", Refused::Internal),
            ("https://100.64.0.1/x", Refused::Internal),
            ("https://[::1]/x", Refused::Internal),
            ("https://[fd00::1]/x", Refused::Internal),
            ("https://[::ffff:127.0.0.1]/x", Refused::Internal),
            ("https://localhost/x", Refused::Internal),
            ("https://redis/x", Refused::Internal),
            ("https://0.0.0.0/x", Refused::Internal),
        ] {
            assert_eq!(check_endpoint(&strict, endpoint), Err(why), "{endpoint}");
        }
        let long = format!(
            "https://push.example.com/{}",
            "a".repeat(MAX_ENDPOINT_BYTES)
        );
        assert_eq!(check_endpoint(&strict, &long), Err(Refused::TooLong));
        // The test flag lets a local push service in.
        assert!(check_endpoint(&settings(true), "http://127.0.0.1:4000/push/1").is_ok());
    }

    #[test]
    fn keys_must_be_a_point_and_sixteen_bytes() {
        let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let point = B64.encode(secret.public_key().to_encoded_point(false).as_bytes());
        let auth = B64.encode([7u8; 16]);
        assert!(keys_of(&point, &auth).is_ok());
        assert_eq!(keys_of("AAAA", &auth).err(), Some(Refused::BadKey));
        assert_eq!(
            keys_of(&point, &B64.encode([7u8; 15])).err(),
            Some(Refused::BadAuth)
        );
        assert_eq!(keys_of(&point, "!!").err(), Some(Refused::BadAuth));
    }

    #[test]
    fn the_origin_keeps_a_port() {
        let uri: Uri = "https://Push.Example.com:8443/a/b".parse().expect("a URI");
        assert_eq!(
            origin(&uri).as_deref(),
            Some("https://push.example.com:8443")
        );
    }
}
