//! The page's reactive state: what the components render and what the socket client updates.
//!
//! One `ChatState` per chat page, shared through Leptos context. It is `Copy` (it holds only signal
//! handles), so components and the client take it by value.

use leptos::prelude::*;

use crate::protocol::{ChatMessage, Identity};

/// Who the page is rendered for, from the session cookie (server) or from the page itself (browser):
/// `None` means the visitor has not chosen a name yet.
#[derive(Clone, Debug)]
pub struct CurrentUser(pub Option<Identity>);

/// The `<meta name=...>` through which the server hands the current user to the hydrating client (the
/// session cookie is HttpOnly, so scripts cannot read it).
pub const USER_META: &str = "herald-user";

/// The current user, the same on the server and in the browser, so hydration sees the same page.
pub fn current_user() -> Option<Identity> {
    #[cfg(feature = "hydrate")]
    {
        let meta = leptos::prelude::document()
            .query_selector(&format!("meta[name={USER_META}]"))
            .ok()
            .flatten()?;
        serde_json::from_str(&meta.get_attribute("content")?).ok()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        use_context::<CurrentUser>().and_then(|user| user.0)
    }
}

/// Where the connection to the server stands, as the status pill shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// The page is server-rendered and the WASM has not taken over yet.
    Loading,
    /// Opening the WebSocket (first attempt or a retry that is under way).
    Connecting,
    /// The server welcomed us; sends go through.
    Connected,
    /// The socket dropped; the next attempt starts in this many seconds.
    Reconnecting { in_secs: u32 },
}

impl Connection {
    /// Machine-readable name, put in `data-state` for tests and styling.
    pub fn name(self) -> &'static str {
        match self {
            Connection::Loading => "loading",
            Connection::Connecting => "connecting",
            Connection::Connected => "connected",
            Connection::Reconnecting { .. } => "reconnecting",
        }
    }

    /// What the user reads.
    pub fn label(self) -> String {
        match self {
            Connection::Loading => "Loading…".into(),
            Connection::Connecting => "Connecting…".into(),
            Connection::Connected => "Connected".into(),
            Connection::Reconnecting { in_secs: 0 } => "Reconnecting…".into(),
            Connection::Reconnecting { in_secs } => format!("Reconnecting in {in_secs}s"),
        }
    }
}

#[derive(Clone, Copy)]
pub struct ChatState {
    /// True once the WASM has hydrated the page; until then nothing on it is interactive.
    pub hydrated: RwSignal<bool>,
    pub connection: RwSignal<Connection>,
    /// Who we are: from the page, confirmed by the server's `Welcome`.
    pub me: RwSignal<Option<Identity>>,
    /// Messages in the order received (seq order within one epoch).
    pub messages: RwSignal<Vec<Shown>>,
    /// The server's epoch from the latest `Welcome`: seqs are only comparable within one epoch.
    pub epoch: RwSignal<Option<String>>,
    /// The last refusal from the server, shown under the composer until the next successful send.
    pub last_error: RwSignal<Option<String>>,
    /// Sends a frame on the current connection; installed by the client once hydrated.
    pub outbox: StoredValue<Option<Outbox>, LocalStorage>,
}

/// A message on screen, with the server epoch it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    pub epoch: String,
    pub msg: ChatMessage,
}

impl Shown {
    /// Unique across epochs: the key the message list renders by.
    pub fn key(&self) -> String {
        format!("{}:{}", self.epoch, self.msg.seq)
    }
}

/// A handle the composer uses to hand a message to the socket client.
pub type Outbox = std::rc::Rc<dyn Fn(crate::protocol::ClientMsg)>;

impl ChatState {
    pub fn new(me: Option<Identity>) -> Self {
        Self {
            hydrated: RwSignal::new(false),
            connection: RwSignal::new(Connection::Loading),
            me: RwSignal::new(me),
            messages: RwSignal::new(Vec::new()),
            epoch: RwSignal::new(None),
            last_error: RwSignal::new(None),
            outbox: StoredValue::new_local(None),
        }
    }

    /// Appends a message of the current epoch unless it is already shown: the user must never see a
    /// duplicate, even if a reconnect delivers the same seq twice.
    pub fn push_message(&self, msg: ChatMessage) {
        let Some(epoch) = self.epoch.get_untracked() else {
            return; // The server always welcomes before it sends messages.
        };
        self.messages.update(|list| {
            let seen = list
                .iter()
                .rev()
                .take_while(|shown| shown.epoch == epoch)
                .any(|shown| shown.msg.seq >= msg.seq);
            if !seen {
                list.push(Shown { epoch, msg });
            }
        });
    }
}

impl ChatState {
    /// Hands a frame to the socket client. False if there is no connection to send it on.
    pub fn send(&self, msg: crate::protocol::ClientMsg) -> bool {
        self.outbox.with_value(|outbox| match outbox {
            Some(send) => {
                send(msg);
                true
            }
            None => false,
        })
    }

    /// A fresh idempotency key for one send: random per page load, then counting.
    pub fn next_client_id(&self) -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", page_nonce())
    }
}

/// Random per page load, so two tabs never pick the same `client_id`.
#[cfg(feature = "hydrate")]
fn page_nonce() -> &'static str {
    use std::sync::OnceLock;
    static NONCE: OnceLock<String> = OnceLock::new();
    NONCE.get_or_init(|| {
        format!(
            "{:013x}",
            (js_sys::Math::random() * (1u64 << 52) as f64) as u64
        )
    })
}

#[cfg(not(feature = "hydrate"))]
fn page_nonce() -> &'static str {
    "ssr"
}
