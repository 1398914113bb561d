//! Herald's server as a library: [`run`] serves the app on a listener until a shutdown future resolves.
//! `main.rs` calls it with the configured address and Ctrl-C/SIGTERM; tests call it on port 0.

pub mod accept;
pub mod access;
pub mod accounts;
pub mod assets;
pub mod bearer;
pub mod bot_pages;
pub mod bus;
pub mod cluster;
pub mod config;
pub mod edit_history;
pub mod frame;
pub mod guard;
pub mod health;
pub mod hub;
pub mod ids;
pub mod listen;
pub mod log;
pub mod mentions;
pub mod metrics;
pub mod moderation;
pub mod notify;
pub mod page_cache;
pub mod pages;
pub mod peer;
pub mod people;
pub mod personal;
pub mod plain;
pub mod push;
pub mod rate;
pub mod reach;
pub mod reading;
pub mod redis_link;
pub mod room_pages;
pub mod rooms;
pub mod search;
pub mod search_page;
pub mod session;
pub mod transport;
pub mod webhooks;

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use axum::{Router, extract::FromRef};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_http::{
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

pub use config::Config;
use hub::Hub;
use log::Log;
use session::Sessions;

/// How long shutdown waits for open connections to finish their close handshake.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What every handler can reach. Cheap to clone: all handles.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// The page's script, wasm and stylesheet, by their hashed names; `None` when the site has no
    /// [`app::SITE_FILES`] (not built by `cargo xtask`): then the unhashed names, never cached for good.
    pub site_files: Option<Arc<app::SiteFiles>>,
    /// The stylesheet's text, inlined in every page (see [`app::PageStyle`]).
    pub page_style: Option<app::PageStyle>,
    pub hub: Hub,
    /// Every accepted message goes here first; the log publishes it to the hub once stored.
    pub log: Log,
    /// The log and the hub as the transports reach them (the only way they do).
    pub rooms: rooms::Rooms,
    /// Cancelled when the server begins to shut down: long-lived connections close themselves.
    pub stop: CancellationToken,
    /// Cancelled when shutdown is asked for, `--drain-seconds` before `stop`: /readyz says 503.
    #[from_ref(skip)]
    pub draining: CancellationToken,
    /// Long-lived connection tasks, so shutdown can wait for them to say goodbye.
    pub tasks: TaskTracker,
    /// See [`Config::site_dir`].
    pub site_dir: Arc<PathBuf>,
    /// Who asks (their session, in the people store).
    pub sessions: Sessions,
    /// What the account pages need (behind one pointer: every connection's task holds a copy of
    /// this state).
    #[from_ref(skip)]
    pub accounts: Arc<accounts::Settings>,
    /// See [`Config::allowed_origins`].
    pub allowed_origins: Arc<[String]>,
    /// See [`Config::allowed_hosts`].
    pub allowed_hosts: guard::AllowedHosts,
    /// Per-connection limits from the config.
    pub limits: Limits,
    /// What each person may send over the WebSocket, shared by all their connections.
    pub send_budgets: rate::SharedBudgets,
    /// What all the people at one client address may send over the WebSocket together.
    #[from_ref(skip)]
    pub address_budgets: rate::SharedBudgets,
    /// New rooms each person, and each client address, may make (`--rooms-per-hour`).
    #[from_ref(skip)]
    pub room_budgets: rate::SharedBudgets,
    /// Connections held per client address (`--max-connections-per-address`).
    pub connections: peer::Connections,
    /// The HTTP API's tokens and their budgets.
    pub api: transport::auth::ApiAuth,
    /// What `/metrics` reports; every part that counts holds a clone.
    pub metrics: metrics::Metrics,
    /// The SHA-256 of `--metrics-token`: `/metrics` on the main address needs it.
    pub metrics_token: Option<[u8; 32]>,
    /// In cluster mode, how this node tells the others (sessions that ended, presence).
    #[from_ref(skip)]
    pub cluster: Option<cluster::Cluster>,
    /// Where bots are told about the messages meant for them.
    #[from_ref(skip)]
    pub webhooks: webhooks::Webhooks,
    /// Each room's chat page, as its latest state renders it.
    pub pages: Arc<page_cache::PageCache>,
    /// The search index (`search`), on every node; `None` with `--no-search`.
    pub search: Option<search::Search>,
    /// Read positions set here and not yet written (`reading`).
    #[from_ref(skip)]
    pub positions: reading::Positions,
    /// What notifications remember to decide quickly (`notify`).
    #[from_ref(skip)]
    pub notify: notify::Known,
    /// Web Push's key and client (`push`).
    #[from_ref(skip)]
    pub push: push::Push,
}

/// What each connection may send; see the matching [`Config`] fields.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub rate_per_sec: f64,
    pub rate_burst: u32,
    pub max_sockets_per_person: usize,
    pub max_rooms: usize,
}

impl Limits {
    /// As clients learn them (in `welcome` and the page).
    pub fn announced(&self) -> app::protocol::Limits {
        app::protocol::Limits {
            // At most 60 000 (the flag's range).
            max_body_bytes: u32::try_from(self.max_body_bytes).unwrap_or(u32::MAX),
            rate_per_sec: self.rate_per_sec,
            rate_burst: self.rate_burst,
            max_in_flight: app::protocol::MAX_IN_FLIGHT,
        }
    }
}

/// Serves Herald on `listener` until `shutdown` resolves, then closes every WebSocket with
/// "going away" (1001) and returns once they are closed (or after [`SHUTDOWN_GRACE`]).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    log::backup::create_data_dir(&config.data_dir)?;
    let local_addr = listener.local_addr()?;

    // The log and the hub know nothing of each other: what the log stores, in seq order and only
    // after its commit, is what the hub fans out.
    let hub = Hub::new();
    let metrics = metrics::Metrics::new(&hub);
    let positions = reading::Positions::default();
    // The index is a file in the data folder, on each node of a cluster too (docs/SEARCH.md).
    let search = match config.no_search {
        true => None,
        false => Some(search::Search::open(&config.data_dir, config.retention)?),
    };
    // What the log stores here is looked at for notifications by a task of their own.
    let known = notify::Known::default();
    let (notices, stored_messages) = notify::queue(known.clone());
    let publish = {
        let (hub, metrics, positions) = (hub.clone(), metrics.clone(), positions.clone());
        let notices = notices.clone();
        let search = search.clone();
        move |published: log::Published<'_>| match published {
            log::Published::Entry(entry) => hub.publish(entry),
            log::Published::StoredHere(entry) => {
                if let Some(message) = entry.message() {
                    metrics.stored(message.kind.as_str());
                }
                if reading::changes_unread(entry) {
                    positions.stored(entry.room());
                }
                if let app::protocol::Entry::Change(change) = entry
                    && change.change == app::protocol::Change::Delete
                {
                    positions.deleted(&change.room, change.target);
                }
                if let Some(search) = &search {
                    search.stored(entry.room(), entry.seq());
                }
                notices.stored(entry);
            }
            log::Published::Start { room, last_seq } => hub.set_last_seq(room, last_seq),
            log::Published::Forgotten { room } => {
                hub.forget(room);
            }
            log::Published::Dropped { room } => {
                hub.drop_room(room);
                // Its words leave the index (on every node of a cluster: each hears of it).
                if let Some(search) = &search {
                    search.heard([room.to_owned()]);
                }
            }
        }
    };
    if config.redis.is_some()
        && config.session_secret.is_none()
        && config.session_key_file.is_none()
    {
        // A key made up by each node would give an API token's messages another author on each.
        anyhow::bail!(
            "--redis needs --session-secret (HERALD_SESSION_SECRET) or --session-key-file, the \
             same on every node, so that what is derived from it is the same on all"
        );
    }
    // One way to Redis for the log, the cluster's presence and the API's budgets: the servers (one,
    // or a Redis Cluster's nodes) are found once.
    let redis = match &config.redis {
        Some(url) => Some(
            redis_link::RedisLink::connect(url)
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach Redis at {url}: {e}"))?,
        ),
        None => None,
    };
    if let Some(link) = &redis {
        metrics.watch(link.counters.collectors());
    }
    let (log, last_seqs) = match &redis {
        Some(link) => {
            log::redis::check_server(link, config.redis_accept_risk).await?;
            Log::open_redis(link, config.retention, config.redis_wait_replicas, publish).await?
        }
        None => Log::open_sqlite(
            &config.data_dir,
            config.retention,
            config.log_cache_mib,
            publish,
        )?,
    };
    for (room, seq) in last_seqs {
        hub.set_last_seq(&room, seq);
    }
    let session_ttl = Duration::from_secs(config.session_days.saturating_mul(24 * 3600));
    let people = match &redis {
        Some(link) => people::People::open_redis(link, session_ttl).await?,
        None => people::People::open_sqlite(&config.data_dir.join(log::DB_FILE), session_ttl)?,
    };
    if !people.is_set_up().await? {
        let code = people.setup_code(config.setup_code.as_deref()).await?;
        // On every interface, the page is at least at the loopback address, on this machine.
        let at = match local_addr.ip().is_unspecified() {
            true => std::net::SocketAddr::from(([127, 0, 0, 1], local_addr.port())),
            false => local_addr,
        };
        tracing::warn!(
            "Herald has no owner yet: open http://{at}/setup and enter the setup code {code} to \
             make the first account (an admin)"
        );
    }
    let sessions = Sessions::load(&config, people)?;
    let mut api = transport::auth::ApiAuth::new(
        &config.api_tokens,
        config.api_rate_per_sec,
        config.api_rate_burst,
        config.api_failures_per_min,
        &sessions,
    );
    let mut send_budgets = rate::SharedBudgets::new(config.rate_per_sec, config.rate_burst);
    let mut address_budgets =
        rate::SharedBudgets::new(config.address_rate_per_sec, config.address_rate_burst);
    let mut room_budgets = rate::SharedBudgets::new(
        f64::from(config.rooms_per_hour) / 3600.0,
        config.rooms_per_hour,
    );
    if let Some(link) = &redis {
        // One budget per token, per person and per address for the whole cluster, not one per node.
        api = api.shared_through(link.commands().await?);
        send_budgets = send_budgets.shared_through(link.commands().await?);
        address_budgets = address_budgets.shared_through(link.commands().await?);
        room_budgets = room_budgets.shared_through(link.commands().await?);
    }
    let mut sign_in_budgets = accounts::SignInBudgets::new();
    if let Some(link) = &redis {
        sign_in_budgets = sign_in_budgets.shared_through(link).await?;
    }
    let connections = peer::Connections::new(config.max_connections_per_address);
    let webhook_claims = match &redis {
        Some(link) => Some(link.commands().await?),
        None => None,
    };
    let webhooks = webhooks::Webhooks::new(
        webhooks::WebhookSettings {
            hosts: config
                .webhook_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            allow_http: config.webhook_allow_http,
            timeout: Duration::from_secs(config.webhook_timeout_secs),
        },
        webhook_claims,
    );
    known.load(&sessions.people).await?;
    let push = push::Push::start(
        &sessions.people,
        push::PushSettings {
            contact: config.push_contact.clone(),
            hold: Duration::from_millis(config.push_hold_ms),
            allow_local: config.push_allow_local,
            timeout: Duration::from_secs(config.webhook_timeout_secs),
        },
    )
    .await?;
    let mut state = AppState {
        site_files: None,
        page_style: None,
        rooms: rooms::Rooms::new(log.clone(), hub.clone()),
        hub,
        log,
        stop: CancellationToken::new(),
        draining: CancellationToken::new(),
        tasks: TaskTracker::new(),
        site_dir: Arc::new(config.site_dir.clone()),
        sessions,
        accounts: Arc::new(accounts::Settings {
            hasher: people::Hasher::new(),
            sign_up: config.sign_up,
            session_ttl,
            sign_in_budgets,
            room_makers: config.room_makers,
            room_mentions: config.room_mentions,
        }),
        allowed_origins: config.allowed_origins.clone().into(),
        allowed_hosts: guard::AllowedHosts::new(&config.allowed_hosts, &config.allowed_origins),
        limits: Limits {
            max_body_bytes: config.max_body_bytes,
            rate_per_sec: config.rate_per_sec,
            rate_burst: config.rate_burst,
            max_sockets_per_person: config.max_sockets_per_person,
            max_rooms: config.max_rooms,
        },
        send_budgets,
        address_budgets,
        room_budgets,
        connections: connections.clone(),
        api,
        metrics,
        metrics_token: config.metrics_token.as_deref().map(bearer::token_digest),
        pages: Arc::new(page_cache::PageCache::new(config.page_cache)),
        cluster: None,
        webhooks,
        positions,
        search,
        notify: known,
        push,
    };
    if !local_addr.ip().is_loopback() && config.allowed_hosts.is_empty() {
        tracing::warn!(
            "only requests for an IP address or localhost are answered: to let people in by a name \
             (chat.example.com), start with --allowed-host chat.example.com (HERALD_ALLOWED_HOSTS)"
        );
    }
    match assets::site_files(&state).await {
        Ok(files) => {
            state.page_style = assets::text(&state, &files.css).await.map(app::PageStyle);
            state.site_files = Some(Arc::new(files));
        }
        Err(problem) => tracing::warn!("{problem}"),
    }

    // In a cluster, presence, typing and the room list are shared with the other nodes.
    let cluster = match (&redis, state.log.bus()) {
        (Some(link), Some(bus)) => {
            let here = cluster::Here {
                hub: state.hub.clone(),
                people: state.sessions.people.clone(),
                positions: state.positions.clone(),
                known: state.notify.clone(),
                search: state.search.clone(),
            };
            Some(cluster::Cluster::start(link.clone(), bus, here, state.stop.clone()).await?)
        }
        _ => None,
    };
    state.cluster = cluster.clone();
    // Presence changes are announced in batches, a few times a second; unused rooms are forgotten.
    let bus_linger = Duration::from_secs(config.bus_linger_secs);
    if let Err(e) = access::make_default_room(&state).await {
        tracing::warn!("cannot make the room {}: {e}", app::protocol::DEFAULT_ROOM);
    }
    // Read positions are written a few times a second, and once more as the server stops.
    state.tasks.spawn(reading::run(state.clone()));
    state
        .tasks
        .spawn(notify::run(state.clone(), stored_messages));
    if let Some(search) = &state.search {
        let (search, log, stop) = (search.clone(), state.log.clone(), state.stop.clone());
        let others = cluster
            .clone()
            .map(|cluster| -> search::TellOthers { Box::new(move |rooms| cluster.logged(rooms)) });
        state.tasks.spawn(search::run(search, log, others, stop));
    }
    let ticker = {
        let hub = state.hub.clone();
        let rooms = state.rooms.clone();
        let stop = state.stop.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(hub::TICK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = every.tick() => {
                        let shared = hub.tick(std::time::Instant::now());
                        if let Some(cluster) = &cluster {
                            cluster.share(shared);
                        }
                        // In a cluster, the rooms nobody here has read for a while are heard
                        // no more (the bus lets their channels go).
                        rooms.let_go_unused(bus_linger);
                        let unused = hub.unused_rooms();
                        if !unused.is_empty() {
                            let (rooms, state) = (rooms.clone(), state.clone());
                            tokio::spawn(async move {
                                // Rooms made on purpose stay, used or not.
                                let unused = access::forgettable(&state, unused).await;
                                rooms.forget_unused(unused).await
                            });
                        }
                    }
                }
            }
        })
    };

    // For a request's head and for its body, on every listener.
    let request_timeout = Duration::from_secs(config.request_timeout_secs);
    let listening = listen::Listening {
        head_timeout: request_timeout,
        idle_timeout: Duration::from_secs(config.idle_timeout_secs),
        trusted: config.trusted_proxies.clone().into(),
        connections,
    };
    if let Some(addr) = config.metrics_addr {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {addr}: {e}"))?;
        tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
        let private = metrics::private_router(state.clone());
        let stop = state.stop.clone();
        tokio::spawn(listen::serve(
            listener,
            private,
            listening.clone(),
            stop.cancelled_owned(),
        ));
    }

    let app = router(state.clone(), request_timeout);
    let (stop, hub, draining) = (
        state.stop.clone(),
        state.hub.clone(),
        state.draining.clone(),
    );
    let drain = Duration::from_secs(config.drain_seconds);
    listen::serve(listener, app, listening, async move {
        shutdown.await;
        // Not ready any more: a balancer polling /readyz stops sending new visitors while
        // everything still works for those already here.
        draining.cancel();
        if !drain.is_zero() {
            tracing::info!("draining: /readyz answers 503 for {drain:?}, then connections close");
            tokio::time::sleep(drain).await;
        }
        tracing::info!("shutting down: closing connections");
        stop.cancel();
        hub.shutdown();
    })
    .await;

    ticker.abort();
    state.tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, state.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time");
    }
    Ok(())
}

/// Brotli or gzip for HTML and JSON of a useful size, at their fastest levels; anything else (site
/// files, compressed at build time; event streams; WebSocket upgrades) as it is.
fn compression()
-> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::{CompressionLayer, Predicate, predicate::SizeAbove};
    let text = |_: axum::http::StatusCode,
                _: axum::http::Version,
                headers: &axum::http::HeaderMap,
                _: &axum::http::Extensions| {
        headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/html") || t.starts_with("application/json"))
    };
    // The fastest level of each: a page is compressed anew for every request, and at gzip's default
    // (6) and brotli's quality 4 compressing took most of a compressed page's cost. Pages/s with
    // `herald-bench pages` (BENCHMARKS.md): gzip 1 324 → 2 700, brotli 1 408 → 2 540, for 15 KB
    // and 13 KB a page instead of 10.6 KB.
    CompressionLayer::new()
        .quality(tower_http::compression::CompressionLevel::Fastest)
        .br(true)
        .gzip(true)
        .no_deflate()
        .no_zstd()
        .compress_when(SizeAbove::new(512).and(text))
}

fn router(state: AppState, body_timeout: Duration) -> Router {
    // The executor Leptos renders on (a second call is harmless).
    let _ = any_spawner::Executor::init_tokio();
    Router::new()
        // The app's two kinds of page; `app::location` decides what each path shows.
        .route("/", axum::routing::get(pages::render))
        .route("/r/{room}", axum::routing::get(pages::render))
        .route(
            "/r/{room}/edits/{seq}",
            axum::routing::get(edit_history::page),
        )
        .merge(transport::ws::router())
        .merge(
            transport::api::router()
                .merge(transport::sse::router())
                // Every door that takes a token or a reader's session: guessing tokens is slow
                // from any one address, and reads are budgeted per person and per address.
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    transport::auth::door_budgets,
                )),
        )
        .merge(
            session::router()
                .merge(accounts::router())
                .merge(room_pages::router())
                .merge(moderation::router())
                .merge(search_page::router())
                .merge(mentions::router())
                .merge(notify::router())
                .merge(push::router())
                .merge(bot_pages::router())
                .merge(personal::router())
                // Forms are posted from this site's own pages only.
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    session::same_site_forms,
                )),
        )
        .merge(health::router())
        .merge(metrics::router())
        .route("/r", axum::routing::get(pages::go_to_room))
        .fallback(assets::serve)
        // A fresh server serves its setup page alone until the owner's account is made.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            accounts::until_set_up,
        ))
        // Outermost last: every response, a refused host's included, gets the protective headers.
        .layer(axum::middleware::from_fn_with_state(
            state.allowed_hosts.clone(),
            guard::check_host,
        ))
        .layer(axum::middleware::from_fn(guard::protective_headers))
        // A body sent a byte at a time does not hold its connection for good (heads have their
        // limit in `listen`).
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            body_timeout,
        ))
        // The page and API answers, compressed as the browser asks (site files are compressed at
        // build time and pass through; Server-Sent Events never are).
        .layer(compression())
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::count_requests,
        ))
        // Each request's span carries its id, which the answer echoes in `x-request-id` (one a
        // proxy in front set is kept).
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(NextRequestId::default()))
        // First of all: an id from outside is cut to what the logs keep, so the answer echoes no
        // more than that either (a 3 000-character one came back whole).
        .layer(axum::middleware::map_request(cut_request_id))
        .with_state(state)
}

/// Cuts the `x-request-id` a request came with to [`MAX_REQUEST_ID_CHARS`]; one that is not
/// printable ASCII goes (and the request gets an id of ours).
async fn cut_request_id(mut request: axum::extract::Request) -> axum::extract::Request {
    let headers = request.headers_mut();
    let Some(value) = headers.get("x-request-id") else {
        return request;
    };
    let cut = value
        .to_str()
        .ok()
        .and_then(|id| axum::http::HeaderValue::from_str(request_id_cut(id)).ok());
    match cut {
        Some(cut) => {
            headers.insert("x-request-id", cut);
        }
        None => {
            headers.remove("x-request-id");
        }
    }
    request
}

/// The longest request id kept, logged and echoed.
const MAX_REQUEST_ID_CHARS: usize = 64;

/// `id` cut to [`MAX_REQUEST_ID_CHARS`] characters.
fn request_id_cut(id: &str) -> &str {
    match id.char_indices().nth(MAX_REQUEST_ID_CHARS) {
        Some((cut, _)) => &id[..cut],
        None => id,
    }
}

/// Request ids: this process's random prefix and a count, unique without a system call each.
#[derive(Clone)]
struct NextRequestId {
    prefix: Arc<str>,
    count: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for NextRequestId {
    fn default() -> Self {
        Self {
            prefix: crate::ids::random_hex(4).into(),
            count: Arc::default(),
        }
    }
}

impl MakeRequestId for NextRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self
            .count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::http::HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// What every log line about a request carries: its id, method and path (never the query: it may
/// hold a token someone pasted, or a person's words).
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = request_id(request.headers()),
        method = %request.method(),
        path = %request.uri().path(),
    )
}

/// The request's id as set by [`NextRequestId`] or a proxy in front (cut to
/// [`MAX_REQUEST_ID_CHARS`]: it came from outside).
pub fn request_id(headers: &axum::http::HeaderMap) -> &str {
    let id = headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    request_id_cut(id)
}
