//! The page's reactive state: what the components render and what the socket client updates.
//!
//! One `ChatState` per chat page, shared through Leptos context. It is `Copy` (it holds only signal
//! handles), so components and the client take it by value.

use leptos::prelude::*;

use crate::protocol::{ChatMessage, ClientMsg, Cursor, Identity, JoinMode, ProtocolError};

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
    /// The browser says there is no network; we reconnect as soon as it is back.
    Offline,
}

impl Connection {
    /// Machine-readable name, put in `data-state` for tests and styling.
    pub fn name(self) -> &'static str {
        match self {
            Connection::Loading => "loading",
            Connection::Connecting => "connecting",
            Connection::Connected => "connected",
            Connection::Reconnecting { .. } => "reconnecting",
            Connection::Offline => "offline",
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
            Connection::Offline => "Offline".into(),
        }
    }
}

#[derive(Clone, Copy)]
pub struct ChatState {
    /// The room this page shows (from its URL).
    pub room: StoredValue<String>,
    /// True once the WASM has hydrated the page; until then nothing on it is interactive.
    pub hydrated: RwSignal<bool>,
    pub connection: RwSignal<Connection>,
    /// Who we are: from the page, confirmed by the server's `Welcome`.
    pub me: RwSignal<Option<Identity>>,
    /// Messages in the order received (seq order within one epoch).
    pub messages: RwSignal<Vec<Shown>>,
    /// The room's epoch from the latest `Joined`: seqs are only comparable within one epoch.
    pub epoch: RwSignal<Option<String>>,
    /// The last seq we hold of the room (in `epoch`); with it, the cursor we rejoin with.
    pub last_seq: RwSignal<u64>,
    /// Messages typed but not yet acknowledged, oldest first: shown as "sending…", re-sent (with the
    /// same `client_id`) after every reconnect until the server acks them.
    pub pending: RwSignal<Vec<Pending>>,
    /// Set when a rejoin could not replay everything we missed (the room no longer holds it).
    pub gap: RwSignal<bool>,
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

/// A message in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub client_id: String,
    pub body: String,
}

/// A handle the composer uses to hand a message to the socket client.
pub type Outbox = std::rc::Rc<dyn Fn(crate::protocol::ClientMsg)>;

impl ChatState {
    pub fn new(me: Option<Identity>, room: String) -> Self {
        Self {
            room: StoredValue::new(room),
            hydrated: RwSignal::new(false),
            connection: RwSignal::new(Connection::Loading),
            me: RwSignal::new(me),
            messages: RwSignal::new(Vec::new()),
            epoch: RwSignal::new(None),
            last_seq: RwSignal::new(0),
            pending: RwSignal::new(Vec::new()),
            gap: RwSignal::new(false),
            last_error: RwSignal::new(None),
            outbox: StoredValue::new_local(None),
        }
    }

    /// Shows a message unless it is already shown, and retires it from the outbox if it is ours.
    pub fn push_message(&self, msg: ChatMessage) {
        let Some(epoch) = self.epoch.get_untracked() else {
            return; // Messages only come after `Joined`, which sets the epoch.
        };
        if self
            .me
            .with_untracked(|me| me.as_ref().is_some_and(|me| me.id == msg.author.id))
        {
            self.settle(&msg.client_id);
        }
        // Within one epoch seqs only grow: anything at or below what we hold is a repeat.
        if msg.seq <= self.last_seq.get_untracked() {
            return;
        }
        self.last_seq.set(msg.seq);
        self.messages.update(|list| list.push(Shown { epoch, msg }));
    }

    /// The server's answer to our join: what follows is the replay from `first_seq`.
    pub fn joined(&self, epoch: String, mode: JoinMode, first_seq: u64) {
        let same_epoch = self.epoch.get_untracked().as_deref() == Some(epoch.as_str());
        if mode == JoinMode::Reset || !same_epoch {
            // Our copy belongs to a history that no longer exists.
            self.messages.update(Vec::clear);
        }
        self.gap
            .set(mode == JoinMode::Partial && self.messages.with_untracked(|m| !m.is_empty()));
        self.epoch.set(Some(epoch));
        self.last_seq.set(first_seq.saturating_sub(1));
    }

    /// Where our copy of the room ends, to rejoin from.
    pub fn cursor(&self) -> Option<Cursor> {
        Some(Cursor {
            epoch: self.epoch.get_untracked()?,
            seq: self.last_seq.get_untracked(),
        })
    }

    /// The acknowledged (or seen) message with this `client_id` leaves the outbox.
    pub fn settle(&self, client_id: &str) {
        if self
            .pending
            .with_untracked(|p| p.iter().any(|p| p.client_id == client_id))
        {
            self.pending
                .update(|p| p.retain(|p| p.client_id != client_id));
        }
    }
}

impl ChatState {
    /// Puts a message in the outbox and hands it to the socket client, which sends it now if it is
    /// connected, and again after each reconnect until it is acknowledged.
    pub fn send_message(&self, body: String) -> Result<(), ProtocolError> {
        let client_id = self.next_client_id();
        let msg = ClientMsg::Send {
            room: self.room.get_value(),
            client_id: client_id.clone(),
            body: body.clone(),
        };
        msg.validate()?;
        self.pending.update(|p| p.push(Pending { client_id, body }));
        self.outbox.with_value(|outbox| {
            if let Some(send) = outbox {
                send(msg);
            }
        });
        Ok(())
    }

    /// The frames that re-send the whole outbox, oldest first.
    pub fn resends(&self) -> Vec<ClientMsg> {
        self.pending.with_untracked(|pending| {
            pending
                .iter()
                .map(|p| ClientMsg::Send {
                    room: self.room.get_value(),
                    client_id: p.client_id.clone(),
                    body: p.body.clone(),
                })
                .collect()
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
