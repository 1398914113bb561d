//! Presence, typing and the room list across the nodes of a cluster (docs/CLUSTER.md): each node
//! owns its own people and tells the others, on one Redis channel, who is in each room here
//! (a replacement, so telling twice does no harm), who typed, and that it is alive. A node that
//! falls silent for [`NODE_TIMEOUT`] is forgotten: its people leave wherever they are not back
//! on another node. Nothing of it is stored: a node that starts, or lost track (a gap in another
//! node's numbered notes), asks and is told again.
//!
//! The hub stays free of I/O: it says what to share ([`Hub::tick`]) and takes what the others say.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    bus::{Bus, Heard, Kind, Listener},
    people::People,
    redis_link::{Commands, RedisLink},
};
use app::protocol::Identity;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::hub::{Hub, Shared};

/// The channel every node listens to and tells on.
const CHANNEL: &str = "herald:cluster";

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// A node not heard from for this long is taken for dead (three heartbeats missed, and a little):
/// its people leave the others' lists within this, a second's check and a tick.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(7);

/// What one node tells the others. `v` counts the node's notes that change state, so a listener
/// that missed one sees the gap and asks for everything again.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Note {
    node: String,
    v: u64,
    #[serde(flatten)]
    what: What,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum What {
    /// The node's people in `room` now (numbered).
    People { room: String, people: Vec<Identity> },
    /// Someone on the node is typing in `room` (numbered).
    Typing { room: String, who: Identity },
    /// Forget what the node said before: everything follows (numbered).
    Reset,
    /// Alive, having sent notes up to `v`.
    Beat,
    /// The node named (or every node, for `*`) should say everything again.
    Want { of: String },
    /// These sessions ended (their stored keys): close the sockets they let in.
    Ended { sessions: Vec<String> },
    /// An account's rooms changed (added to one, hid one, or removed from `removed_from`): send
    /// them their own rooms again, and close their sockets in a room they were removed from.
    Rooms {
        account: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        removed_from: Option<String>,
    },
    /// A room was archived or restored: its sockets close and come back through the door.
    Archived { room: String },
    /// Read positions that moved: each person's connections are told (`read`).
    Read { reads: Vec<crate::reading::Moved> },
    /// Rooms where the node stored messages or deletions in the last second: what is unread there
    /// is counted again for the people who count them (`reading`).
    Active { rooms: Vec<String> },
    /// Something to tell a person (`notify`): every connection of theirs shows it if hidden.
    Notify {
        account: String,
        notice: app::protocol::Notice,
    },
    /// Someone chose what they are told of `room`: who hears every message there is read again.
    Chose { room: String },
    /// Rooms whose log changed on the node since its last such note (entries stored, or the room
    /// deleted): every node reads them again into its own search index (docs/SEARCH.md).
    /// `rooms` come with where their logs end; those `again` are asked of the store.
    Logged {
        rooms: Vec<crate::search::Logged>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        again: Vec<String>,
    },
}

/// A handle for the server's ticker: what the hub says to share goes out from here.
#[derive(Clone)]
pub struct Cluster {
    out: mpsc::UnboundedSender<Outgoing>,
}

enum Outgoing {
    Shared(Vec<Shared>),
    /// Sessions that ended here: the other nodes close their sockets too.
    Ended(Vec<String>),
    /// Unnumbered notes of rooms and their people (`What::Rooms`, `What::Archived`, `What::Read`,
    /// `What::Active`, `What::Notify`, `What::Chose`, `What::Logged`).
    Note(What),
    /// Someone asked for everything this node knows of its people.
    Everything,
}

/// What of this node the other nodes' notes change.
pub struct Here {
    pub hub: Hub,
    pub people: People,
    pub positions: crate::reading::Positions,
    pub known: crate::notify::Known,
    pub search: Option<crate::search::Search>,
}

impl Cluster {
    /// Joins the cluster on the Redis at `link` as a node with a fresh id, hearing the others on
    /// the node's `bus`, for what is `here`, until `stop`. Resolves once the cluster's channel is
    /// subscribed.
    pub async fn start(
        link: RedisLink,
        bus: Bus,
        here: Here,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        let hub = here.hub.clone();
        let conn = link.commands().await?;
        let node = crate::ids::random_hex(8);
        hub.join_cluster();
        let (out, queue) = mpsc::unbounded_channel();
        let cluster = Self { out };
        let until = stop.clone();
        let (teller, hub_, commands) = (node.clone(), hub.clone(), conn.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = tell(commands, teller, hub_, queue) => {}
                () = until.cancelled() => {}
            }
        });
        let (to, heard) = mpsc::unbounded_channel();
        let listener = Listener {
            hear: Arc::new(move |heard| {
                let _ = to.send(match heard {
                    Heard::Message { payload, .. } => Some(payload.to_vec()),
                    Heard::Resubscribed { .. } => None,
                });
            }),
            name: "cluster",
        };
        bus.subscribe(CHANNEL, Kind::Ordinary, listener).await?;
        let cluster_ = cluster.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = listen(heard, conn, node, here, cluster_) => {}
                () = stop.cancelled() => {}
            }
        });
        Ok(cluster)
    }

    /// Sessions that ended on this node: every other node closes the sockets they let in. Told
    /// once (Redis pub/sub): a node that misses it refuses the socket's next handshake all the same.
    pub fn ended(&self, sessions: Vec<String>) {
        if !sessions.is_empty() {
            let _ = self.out.send(Outgoing::Ended(sessions));
        }
    }

    /// `account`'s rooms changed here: the other nodes tell their sockets too.
    pub fn rooms_changed(&self, account: &str, removed_from: Option<&str>) {
        let _ = self.out.send(Outgoing::Note(What::Rooms {
            account: account.to_owned(),
            removed_from: removed_from.map(str::to_owned),
        }));
    }

    /// `room` was archived or restored here.
    pub fn archived(&self, room: &str) {
        let _ = self.out.send(Outgoing::Note(What::Archived {
            room: room.to_owned(),
        }));
    }

    /// Rooms where this node stored what changes unread counts: the other nodes count them again.
    pub fn active(&self, rooms: Vec<String>) {
        let _ = self.out.send(Outgoing::Note(What::Active { rooms }));
    }

    /// Read positions written here: the other nodes tell their connections of those people.
    pub fn read(&self, reads: Vec<crate::reading::Moved>) {
        if !reads.is_empty() {
            let _ = self.out.send(Outgoing::Note(What::Read { reads }));
        }
    }

    /// `notice` for `account`: the other nodes tell their connections of theirs.
    pub fn notify(&self, account: &str, notice: &app::protocol::Notice) {
        let _ = self.out.send(Outgoing::Note(What::Notify {
            account: account.to_owned(),
            notice: notice.clone(),
        }));
    }

    /// Someone chose here what they are told of `room`.
    pub fn chose(&self, room: &str) {
        let _ = self.out.send(Outgoing::Note(What::Chose {
            room: room.to_owned(),
        }));
    }

    /// Rooms that took entries here: the other nodes read them into their search indexes.
    pub fn logged(&self, rooms: Vec<crate::search::Logged>) {
        let again = Vec::new();
        let _ = self.out.send(Outgoing::Note(What::Logged { rooms, again }));
    }

    /// A room deleted here: the other nodes look at it again (and find it gone).
    pub fn look_again(&self, room: &str) {
        let (rooms, again) = (Vec::new(), vec![room.to_owned()]);
        let _ = self.out.send(Outgoing::Note(What::Logged { rooms, again }));
    }

    /// What [`Hub::tick`] returned: told to the other nodes.
    pub fn share(&self, shared: Vec<Shared>) {
        if !shared.is_empty() {
            let _ = self.out.send(Outgoing::Shared(shared));
        }
    }
}

/// Publishes this node's notes, and a heartbeat every [`HEARTBEAT`].
async fn tell(
    mut conn: Commands,
    node: String,
    hub: Hub,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut v = 0u64;
    let mut beat = tokio::time::interval(HEARTBEAT);
    loop {
        let notes: Vec<What> = tokio::select! {
            outgoing = queue.recv() => match outgoing {
                None => return,
                Some(Outgoing::Shared(shared)) => shared.into_iter().map(what_of).collect(),
                Some(Outgoing::Ended(sessions)) => vec![What::Ended { sessions }],
                Some(Outgoing::Note(what)) => vec![what],
                Some(Outgoing::Everything) => std::iter::once(What::Reset)
                    .chain(hub.all_people().into_iter().map(what_of))
                    .collect(),
            },
            _ = beat.tick() => vec![What::Beat],
        };
        for what in notes {
            if !matches!(
                what,
                What::Beat
                    | What::Want { .. }
                    | What::Ended { .. }
                    | What::Rooms { .. }
                    | What::Archived { .. }
                    | What::Read { .. }
                    | What::Active { .. }
                    | What::Notify { .. }
                    | What::Chose { .. }
                    | What::Logged { .. }
            ) {
                v += 1;
            }
            let note = Note {
                node: node.clone(),
                v,
                what,
            };
            // If it is lost, the others see the gap in `v` once this node is heard again, and ask.
            publish(&mut conn, &note).await;
        }
    }
}

fn what_of(shared: Shared) -> What {
    match shared {
        Shared::People { room, people } => What::People { room, people },
        Shared::Typing { room, who } => What::Typing { room, who },
    }
}

/// What this node knows of another.
struct Peer {
    v: u64,
    heard: Instant,
}

/// Listens to the other nodes (`heard`, from the node's bus); asks every node for everything on
/// start and after the bus lost its connection (what was said meanwhile was not heard); forgets
/// nodes that fell silent. `conn` (shared with the teller) sends its requests. A connection that is
/// open but no longer delivers is the bus's to find (its probe) and replace.
async fn listen(
    mut heard: mpsc::UnboundedReceiver<Option<Vec<u8>>>,
    mut conn: Commands,
    node: String,
    here: Here,
    cluster: Cluster,
) {
    let Here {
        hub,
        people,
        positions,
        known,
        search,
    } = here;
    let mut peers: HashMap<String, Peer> = HashMap::new();
    // Whatever happened before this node listened, it hears again.
    want(&mut conn, &node, "*").await;
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        let payload = tokio::select! {
            heard = heard.recv() => match heard {
                None => return,
                Some(Some(payload)) => payload,
                // The bus was lost a while: what the others said meanwhile was not heard.
                Some(None) => {
                    want(&mut conn, &node, "*").await;
                    continue;
                }
            },
            _ = check.tick() => {
                let now = Instant::now();
                peers.retain(|peer, known| {
                    let alive = now < known.heard + NODE_TIMEOUT;
                    if !alive {
                        tracing::info!(%peer, "a node fell silent: its people leave");
                        hub.forget_node(peer);
                    }
                    alive
                });
                continue;
            }
        };
        let Ok(note) = serde_json::from_slice::<Note>(&payload) else {
            tracing::warn!("an unreadable note on the cluster channel was skipped");
            continue;
        };
        if note.node == node {
            continue;
        }
        let now = Instant::now();
        if let What::Ended { sessions } = &note.what {
            // Not trusted here any more (a reconnect must not be let in by what was looked up
            // before), and their sockets here closed.
            people.forget(sessions);
            let closed = hub.end_sessions(sessions);
            tracing::debug!(closed, "sessions ended on another node");
            continue;
        }
        if let What::Rooms {
            account,
            removed_from,
        } = &note.what
        {
            let (counting, who) = (positions.clone(), account.clone());
            crate::access::rooms_changed_here(
                (&hub, &people),
                account,
                removed_from.as_deref(),
                move |rooms| {
                    counting.count_from_nothing(&who, rooms.iter().map(|r| r.room.as_str()))
                },
            );
            continue;
        }
        if let What::Archived { room } = &note.what {
            crate::access::archived_here(&hub, room);
            continue;
        }
        if let What::Read { reads } = &note.what {
            for moved in reads {
                hub.tell_account(&moved.account, &crate::frame::Frame::of(&moved.frame()));
                positions.moved(moved);
            }
            continue;
        }
        if let What::Notify { account, notice } = note.what {
            hub.tell_account(&account, &crate::notify::frame(notice));
            continue;
        }
        if let What::Chose { room } = &note.what {
            known.chose(room);
            continue;
        }
        if let What::Active { rooms } = note.what {
            positions.heard_active(rooms);
            continue;
        }
        if let What::Logged { rooms, again } = note.what {
            if let Some(search) = &search {
                search.heard_logged(rooms);
                search.heard(again);
            }
            continue;
        }
        if let What::Want { of } = &note.what {
            if of == "*" || *of == node {
                let _ = cluster.out.send(Outgoing::Everything);
            }
            if let Some(peer) = peers.get_mut(&note.node) {
                peer.heard = now;
            }
            continue;
        }
        let numbered = !matches!(note.what, What::Beat);
        let known = peers.get(&note.node).map(|peer| peer.v);
        // A note missed, or a node not heard before that is not starting over: ask it.
        let in_order = match (&note.what, known) {
            (What::Reset, _) => true,
            (_, None) => false,
            (_, Some(v)) if numbered => note.v == v + 1,
            (_, Some(v)) => note.v == v,
        };
        peers.insert(
            note.node.clone(),
            Peer {
                v: note.v,
                heard: now,
            },
        );
        if !in_order {
            want(&mut conn, &node, &note.node).await;
        }
        match note.what {
            What::People { room, people } => hub.set_remote_people(&note.node, &room, people),
            What::Typing { room, who } => hub.remote_typing(&room, who, now),
            What::Reset => hub.forget_node(&note.node),
            What::Beat
            | What::Want { .. }
            | What::Ended { .. }
            | What::Rooms { .. }
            | What::Archived { .. }
            | What::Read { .. }
            | What::Active { .. }
            | What::Notify { .. }
            | What::Chose { .. }
            | What::Logged { .. } => {}
        }
    }
}

/// Asks node `of` (or every node, `*`) to say everything again.
async fn want(conn: &mut Commands, node: &str, of: &str) {
    let note = Note {
        node: node.to_owned(),
        v: 0,
        what: What::Want { of: of.to_owned() },
    };
    publish(conn, &note).await;
}

/// Puts `note` on the cluster channel; a failure is logged (what it costs is said at each caller).
async fn publish(conn: &mut Commands, note: &Note) {
    let Ok(json) = serde_json::to_string(note) else {
        return;
    };
    let sent: redis::RedisResult<()> = redis::cmd("PUBLISH")
        .arg(CHANNEL)
        .arg(json)
        .query_async(conn)
        .await;
    if let Err(e) = sent {
        tracing::warn!("telling the cluster failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use app::protocol::Identity;

    use super::{Note, What};

    #[test]
    fn notes_read_back() {
        let note = Note {
            node: "n1".into(),
            v: 3,
            what: What::People {
                room: "general".into(),
                people: vec![Identity {
                    id: "a".into(),
                    name: "Ann".into(),
                }],
            },
        };
        let json = serde_json::to_string(&note).expect("json");
        assert!(json.contains(r#""kind":"people""#), "{json}");
        assert_eq!(serde_json::from_str::<Note>(&json).expect("parse"), note);
        let beat: Note =
            serde_json::from_str(r#"{"node":"n2","v":7,"kind":"beat"}"#).expect("beat");
        assert_eq!(beat.what, What::Beat);
    }
}
