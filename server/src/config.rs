//! Everything an operator can set, in one struct: each field is a `--flag` with an environment twin
//! (`HERALD_*`), documented here and shown by `herald --help`.

use std::{net::SocketAddr, path::PathBuf};

use clap::Parser;

#[derive(Clone, Debug, Parser)]
#[command(
    name = "herald",
    version,
    // A flag given twice takes its last value, so a wrapper's defaults can be overridden after them.
    args_override_self = true,
    about = "Herald: a real-time chat and broadcast server in one binary.",
    long_about = "Herald: a real-time chat and broadcast server in one binary.\n\n\
        Serves the chat page at http://ADDR/ and its WebSocket at ws://ADDR/ws. Every flag can also \
        be set through the environment variable shown next to it; a flag wins over the variable."
)]
pub struct Config {
    /// Address and port to listen on. Use 0.0.0.0:PORT to accept connections from other machines.
    #[arg(long, env = "HERALD_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Folder for Herald's durable state: the message history (herald.db, SQLite). Created if it
    /// does not exist.
    #[arg(long, env = "HERALD_DATA_DIR", default_value = "herald-data")]
    pub data_dir: PathBuf,

    /// Secret that keys the ids Herald derives from secrets (the author id of an API token's
    /// messages): at least 32 bytes (`openssl rand -hex 32`); an empty or shorter one is refused.
    /// If unset, one is generated once and kept in DATA_DIR/session.key. Every node of a cluster
    /// needs the same.
    #[arg(long, env = "HERALD_SESSION_SECRET", hide_env_values = true)]
    pub session_secret: Option<String>,

    /// A file holding that key, as a node keeps it in DATA_DIR/session.key (64 hex digits): give a
    /// cluster's nodes a copy of a single node's, and its API tokens' messages keep their author
    /// after the move. Instead of --session-secret.
    #[arg(
        long,
        env = "HERALD_SESSION_KEY_FILE",
        conflicts_with = "session_secret"
    )]
    pub session_key_file: Option<PathBuf>,

    /// Cluster mode: keep the message log in the Redis at this URL (`redis://HOST:PORT`), shared by
    /// every node started with it, instead of SQLite in DATA_DIR. Every node needs the same
    /// --session-secret. Redis must keep what it acknowledged: `appendonly yes` and
    /// `maxmemory-policy noeviction` (checked at start; see --redis-accept-risk).
    #[arg(long, env = "HERALD_REDIS_URL", hide_env_values = true)]
    pub redis: Option<String>,

    /// Start against a Redis that can lose acknowledged messages (no AOF, eviction on, or fsync
    /// less often than every write) instead of refusing to: it is only warned about.
    #[arg(long, env = "HERALD_REDIS_ACCEPT_RISK")]
    pub redis_accept_risk: bool,

    /// Acknowledge a message only once this many replicas of its Redis master have it too (Redis
    /// `WAIT`, up to a second): what was acknowledged then survives the master's loss and a
    /// replica's promotion (Redis Cluster failover). Fewer replicas answering: the send gets
    /// `unavailable` and the client sends it again. 0: acknowledged once the master has it.
    #[arg(long, env = "HERALD_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,

    /// Cluster mode: seconds a node keeps hearing a room on the Redis bus after it was last read
    /// here (its last reader left, or a page or the API read it). A node hears only the rooms it
    /// has use for; this spares it subscribing again when a reader comes straight back.
    #[arg(long, env = "HERALD_BUS_LINGER_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub bus_linger_secs: u64,

    /// Another origin (http:// or https://, a host and maybe a port, nothing after) whose pages may
    /// open the WebSocket and post the name forms, besides Herald's own. `null` (sandboxed frames,
    /// files) and `*` are refused: either would let any page sign people in.
    /// Repeat the flag, or separate origins with commas in the variable.
    #[arg(
        long = "allowed-origin",
        env = "HERALD_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_parser = origin
    )]
    pub allowed_origins: Vec<String>,

    /// A name this server is reached by (`chat.example.com`, or `chat.example.com:8443` for that
    /// port only), besides IP addresses, `localhost` and the hosts of --allowed-origin. Requests for
    /// any other `Host` get 421: a page on a name re-pointed at this server (DNS rebinding) cannot
    /// use it. `*` turns the check off. Repeat the flag, or separate names with commas in the variable.
    #[arg(
        long = "allowed-host",
        env = "HERALD_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,

    /// How many entries (messages, and later edits and reactions) each room keeps; older ones are
    /// deleted as new ones arrive.
    #[arg(long, env = "HERALD_RETENTION", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub retention: u64,

    /// SQLite page cache of the message log's writer, in MiB: the hot pages of every busy room
    /// should fit (it fills only as the log is used).
    #[arg(long, env = "HERALD_LOG_CACHE_MIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub log_cache_mib: u32,

    /// Longest message body accepted, in bytes of UTF-8 (at most 60000: a frame is at most 64 KiB).
    #[arg(long, env = "HERALD_MAX_BODY_BYTES", default_value_t = app::protocol::MAX_BODY_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=60_000))]
    pub max_body_bytes: usize,

    /// Frames one person may send per second, on average, over all their connections (tabs,
    /// devices) together (a token bucket; see --rate-burst). Over it, frames are refused with
    /// `rate_limited` and a retry-after.
    #[arg(long, env = "HERALD_RATE_PER_SEC", default_value_t = app::protocol::DEFAULT_RATE_PER_SEC,
          value_parser = positive_rate)]
    pub rate_per_sec: f64,

    /// Frames one person may send at once, over all their connections, before --rate-per-sec
    /// applies.
    #[arg(long, env = "HERALD_RATE_BURST", default_value_t = app::protocol::DEFAULT_RATE_BURST,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_burst: u32,

    /// WebSockets one person may have open at once (tabs and devices together); one more is
    /// refused with 429 until one closes.
    #[arg(long, env = "HERALD_MAX_SOCKETS_PER_PERSON", default_value_t = 20,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub max_sockets_per_person: usize,

    /// Frames all the people at one client address may send per second together, on average, over
    /// the WebSocket (a token bucket; see --address-rate-burst): sessions cost nothing to make, so
    /// new names do not buy a new budget. An office behind one NAT address shares it: raise it for
    /// many people behind one address (and see --trusted-proxy). IPv6 addresses count by their /64.
    #[arg(long, env = "HERALD_ADDRESS_RATE_PER_SEC", default_value_t = 25.0, value_parser = positive_rate)]
    pub address_rate_per_sec: f64,

    /// Frames all the people at one client address may send at once before
    /// --address-rate-per-sec applies.
    #[arg(long, env = "HERALD_ADDRESS_RATE_BURST", default_value_t = 150,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub address_rate_burst: u32,

    /// New rooms one person may make per hour (all at once, then steadily), and everyone at one
    /// client address together: a room is made by being joined for the first time. Over it, the
    /// join is refused with `rate_limited` and a retry-after; rooms that exist are joined freely.
    #[arg(long, env = "HERALD_ROOMS_PER_HOUR", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rooms_per_hour: u32,

    /// Most rooms the server holds (in a cluster, all nodes together); past it a join of a room
    /// that does not exist is refused with `invalid_room`, and rooms that exist work as before.
    #[arg(long, env = "HERALD_MAX_ROOMS", default_value_t = 10_000,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_rooms: usize,

    /// Connections one client address may hold open at once; one more is closed at once (429 if
    /// it can take it). A client connecting directly counts each TCP connection (pages, its
    /// WebSocket, event streams); through a trusted proxy, which holds the TCP connections itself,
    /// each WebSocket and event stream counts. Keep it well under the open-files limit (`ulimit -n`).
    #[arg(long, env = "HERALD_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_connections_per_address: usize,

    /// A reverse proxy (an address, or a network like 10.0.0.0/8) whose `X-Forwarded-For` and
    /// `X-Forwarded-Proto` are believed: requests from it count against the client's address it
    /// forwarded, not its own. From any other peer those headers are ignored. Repeat the flag, or
    /// separate them with commas in the variable. Trust only proxies that set the header
    /// themselves (docs/OPERATIONS.md).
    #[arg(
        long = "trusted-proxy",
        env = "HERALD_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<crate::peer::Network>,

    /// A bearer token that may use the HTTP API (`Authorization: Bearer TOKEN`): publish to rooms,
    /// announce to all of them, read history and events. Repeat the flag, or separate tokens with
    /// commas in the variable. Without any, publishing through the API is off.
    #[arg(
        long = "api-token",
        env = "HERALD_API_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_tokens: Vec<String>,

    /// Requests per second one API token may make, on average (a token bucket; see
    /// --api-rate-burst). Over it, requests get 429 with Retry-After. The same budget holds for each
    /// person reading the API or an event stream with their chat session, and for each address
    /// such reads come from.
    #[arg(long, env = "HERALD_API_RATE_PER_SEC", default_value_t = 20.0, value_parser = positive_rate)]
    pub api_rate_per_sec: f64,

    /// Requests one API token may make at once before --api-rate-per-sec applies.
    #[arg(long, env = "HERALD_API_RATE_BURST", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub api_rate_burst: u32,

    /// Wrong API tokens one client address may send per minute (at once, then steadily) before
    /// every request with a token from it gets 429 until the budget is back: guessing tokens is
    /// slow. IPv6 addresses count by their /64.
    #[arg(long, env = "HERALD_API_FAILURES_PER_MIN", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub api_failures_per_min: u32,

    /// Folder holding the built site (pkg/, favicon, ...). Only read by a binary built without
    /// embedded assets; the release binary carries its own copy.
    #[arg(long, env = "HERALD_SITE_DIR", default_value = "target/site")]
    pub site_dir: PathBuf,

    /// What to log, as a tracing filter: `info`, `debug`, `server=debug,tower_http=info`, ...
    #[arg(long, env = "HERALD_LOG", default_value = "info")]
    pub log: String,

    /// How log lines are written (to stdout): `text` for people, `json` for log shippers (one JSON
    /// object per line; fields in docs/OPERATIONS.md).
    #[arg(long, env = "HERALD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Also serve `GET /metrics` (Prometheus) on this address, without a token: for a private
    /// network or loopback, e.g. `127.0.0.1:9100`. Nothing else is served there.
    #[arg(long, env = "HERALD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Serve `GET /metrics` on the main address to requests with `Authorization: Bearer TOKEN`.
    /// Without this (and on the main address), /metrics answers 404.
    #[arg(long, env = "HERALD_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// On SIGTERM, keep serving this many seconds with /readyz answering 503 before closing
    /// connections, so a load balancer stops sending new visitors first.
    #[arg(long, env = "HERALD_DRAIN_SECONDS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=600))]
    pub drain_seconds: u64,

    /// Seconds a client may take to send a request's head, and then its body (a form, an API
    /// call): a connection that sends nothing, or a byte at a time, is closed after it instead of
    /// holding a socket for good.
    #[arg(long, env = "HERALD_REQUEST_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub request_timeout_secs: u64,

    /// Seconds a keep-alive connection may stay open with nothing read or written; then it is
    /// closed (a response under way is finished first). Event streams send a keep-alive every 15 s
    /// and WebSockets are the hub's, so neither is cut by it.
    #[arg(long, env = "HERALD_IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout_secs: u64,

    /// Keep each room's chat page as its latest state renders it, cut around the reader's own
    /// name, and send that (precompressed) until the room changes. `false` renders every page
    /// afresh: the same page, at several times the cost (to rule the cache out).
    #[arg(long, env = "HERALD_PAGE_CACHE", default_value_t = true, action = clap::ArgAction::Set)]
    pub page_cache: bool,

    /// Who may make an account of their own: `invite` (with an invitation link), `open` (anyone
    /// who reaches the server), `closed` (nobody: an admin makes accounts).
    #[arg(long, env = "HERALD_SIGN_UP", value_enum, default_value_t = crate::accounts::SignUp::Invite)]
    pub sign_up: crate::accounts::SignUp,

    /// Who may make rooms: `everyone` (guests too, open rooms only), `members` (and moderators and
    /// admins), `moderators` (and admins), `admins`. Anyone but a guest may start a direct
    /// conversation.
    #[arg(long, env = "HERALD_ROOM_MAKERS", value_enum, default_value_t = crate::access::WhoMay::Members)]
    pub room_makers: crate::access::WhoMay,

    /// Who may call on a whole room with `@room` (everyone in it is mentioned): `everyone` (guests
    /// too), `members` (and bots), `moderators`, `admins`. A message with `@room` from anyone else
    /// is refused (`not_allowed`), and nothing of it is stored.
    #[arg(long, env = "HERALD_ROOM_MENTIONS", value_enum, default_value_t = crate::access::WhoMay::Members)]
    pub room_mentions: crate::access::WhoMay,

    /// Keep no search index (`search.db`): the search page says search is off, and nothing is
    /// indexed (for a server whose messages must be nowhere but the log, or to save its CPU).
    #[arg(long, env = "HERALD_NO_SEARCH")]
    pub no_search: bool,

    /// Also let people in with a display name alone, as guests (as Herald did before accounts):
    /// guests read and write the open rooms, nothing else, and are marked as guests.
    #[arg(long, env = "HERALD_GUESTS")]
    pub guests: bool,

    /// A host bots' webhooks may be sent to (`bots.example.com`, or `host:port` for one port only):
    /// a bot's webhook URL must name one of these, so nobody who can make a bot can have Herald
    /// reach an internal service. Repeat the flag, or separate hosts with commas in the variable.
    /// Without any, webhooks are off (bots still post through the API).
    #[arg(
        long = "webhook-host",
        env = "HERALD_WEBHOOK_HOSTS",
        value_delimiter = ','
    )]
    pub webhook_hosts: Vec<String>,

    /// Also send webhooks over plain http:// (for tests against a local receiver; never on a
    /// server people use: the message and its signature travel unencrypted).
    #[arg(long, env = "HERALD_WEBHOOK_ALLOW_HTTP")]
    pub webhook_allow_http: bool,

    /// Seconds one try of a webhook may take, connecting to the end of the bot's answer (a
    /// message is tried 3 times at most).
    #[arg(long, env = "HERALD_WEBHOOK_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub webhook_timeout_secs: u64,

    /// Who runs this server, for the Web Push services (a `mailto:` or `https:` URL they may use
    /// to reach the operator about its pushes).
    #[arg(
        long,
        env = "HERALD_PUSH_CONTACT",
        default_value = "mailto:postmaster@localhost"
    )]
    pub push_contact: String,

    /// Milliseconds a notification waits before it is pushed to a person's browsers that have no
    /// Herald tab open: read on another device meanwhile, it is not pushed.
    #[arg(long, env = "HERALD_PUSH_HOLD_MS", default_value_t = 4000,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub push_hold_ms: u64,

    /// Let push subscriptions name http:// endpoints and internal addresses (for tests against a
    /// local push service; never on a server people use).
    #[arg(long, env = "HERALD_PUSH_ALLOW_LOCAL")]
    pub push_allow_local: bool,

    /// Days a session (a device signed in) lasts after its last use.
    #[arg(long, env = "HERALD_SESSION_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub session_days: u64,

    /// The setup code a fresh server asks for before its first account (the owner, an admin) is
    /// made, instead of a random one printed at start: for an install that is scripted. At least
    /// 16 characters; used once.
    #[arg(long, env = "HERALD_SETUP_CODE", hide_env_values = true, value_parser = setup_code)]
    pub setup_code: Option<String>,

    /// Instead of serving: a one-off task, then exit.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// One-off tasks.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Command {
    /// Copy the message history in --data-dir (this node's SQLite) into the Redis at --redis, with
    /// each room's epoch, seqs and resend keys, so cursors and pages stay valid on the cluster. Run
    /// it before starting the cluster's nodes; a room Redis already has is not overwritten.
    ImportToRedis,
    /// Copy this node's message log (--data-dir) to DEST while Herald runs, consistent as of one
    /// moment (SQLite's `VACUUM INTO`). The copy gets new epochs: restored, it is a new lifetime of
    /// each room's history, so clients reload each room rather than trust seqs it never held.
    Backup {
        /// The file to write (it must not exist yet).
        dest: PathBuf,
    },
    /// Replace the message log in --data-dir with the backup SRC. Herald must be stopped (refused
    /// while it holds the data dir); the log it replaces is kept beside it as
    /// `herald.db.before-restore`.
    Restore {
        /// A file written by `herald backup`.
        src: PathBuf,
    },
}

/// See [`Config::log_format`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A rate: a number above 0 and finite (`nan`, `inf` and `0` parse as floats but mean nothing here,
/// and the rate reaches clients in their `welcome`, where JSON has no NaN).
fn positive_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a rate: a number above 0, such as 5 or 0.5"
        )),
    }
}

/// An origin a browser would send: `http://` or `https://`, then a host (and a port), nothing
/// after; kept lowercase, as it is compared.
fn origin(text: &str) -> Result<String, String> {
    let origin = text.trim().to_ascii_lowercase();
    let host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| {
            format!(
                "{text:?} is not an origin: it starts with http:// or https:// \
                 (`null` and `*` would let any page in)"
            )
        })?;
    let fine = |b: u8| b.is_ascii_alphanumeric() || b".-:[]".contains(&b);
    if host.is_empty() || !host.bytes().all(fine) {
        return Err(format!(
            "{text:?} is not an origin: after the scheme, a host and maybe :port, nothing else"
        ));
    }
    Ok(origin)
}

impl Config {
    /// The defaults with the given flags applied: for tests and tools that start Herald in-process.
    pub fn from_flags<I, T>(flags: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::try_parse_from(
            std::iter::once("herald".into()).chain(flags.into_iter().map(Into::into)),
        )
    }
}

/// A setup code an operator names: long enough not to be guessed, kept as the page compares it
/// (capitals, no spaces).
fn setup_code(code: &str) -> Result<String, String> {
    let code: String = code
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if code.chars().count() < 16 {
        return Err("a setup code has at least 16 characters (`openssl rand -hex 12`)".into());
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn an_allowed_origin_is_one_a_browser_sends() {
        let allowed =
            |o: &str| Config::from_flags(["--allowed-origin", o]).map(|c| c.allowed_origins);
        assert_eq!(
            allowed("https://Chat.Example.com").ok(),
            Some(vec!["https://chat.example.com".into()])
        );
        assert_eq!(
            allowed("http://10.0.0.5:8080").ok(),
            Some(vec!["http://10.0.0.5:8080".into()])
        );
        for bad in [
            "null",
            "*",
            "chat.example.com",
            "https://",
            "https://a.example/path",
            "ftp://a.example",
        ] {
            let refused = allowed(bad).expect_err(bad).to_string();
            assert!(refused.contains("is not an origin"), "{bad}: {refused}");
        }
    }
}
