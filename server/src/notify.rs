//! Notifications (docs/NOTIFICATIONS.md): who is told of a new message, and how. A stored message
//! concerns, of the people who may read its room, those it `@mentions`, the others in a direct
//! conversation, and those who chose to hear every message of the room — each unless they chose
//! to hear nothing of it, or ignore its author. Each of them gets a [`Notice`]: at once as a
//! `notify` frame on every connection of theirs on every node (the page shows it while its tab is
//! hidden), and, a few seconds later unless they have read it by then, as a Web Push message to
//! each browser of theirs without a tab open here (`push`).
//!
//! The node that stored the message decides, off the message's path: the log's publishing task
//! only queues it ([`Queue::stored`]), and one task here looks people up. The queue is bounded: a
//! burst beyond it is dropped from notifications (never from the chat), and counted in the log.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use app::protocol::{
    Entry, Identity, MessageKind, NOTICE_BODY_CHARS, Notice, ServerMsg, mentioned_handles,
};
use axum::{
    Form, Router,
    extract::{Path, State},
    response::{IntoResponse, Redirect, Response},
    routing::post,
};
use tokio::sync::mpsc;

use crate::{
    AppState,
    access::{self, Refused, Who},
    accounts::Me,
    frame::Frame,
    people::{Account, PeopleError, Role, RoomKind, notify::Level},
    session::unavailable,
};

/// Messages waiting to be looked at here, at most.
const QUEUED: usize = 4096;

/// How long who hears every message of a room is trusted as read: a choice made on any node is seen
/// at once ([`Known::chose`]; in a cluster, the note `chose`), so this only bounds what a note lost
/// would leave stale (and how often a cluster node reads the rooms of such choices again, [`run`]).
const EVERY_FOR: Duration = Duration::from_secs(5);

/// Direct conversations whose members are remembered, at most (they never change).
const DIRECT_KEPT: usize = 10_000;

/// A stored message, as notifications need it.
pub struct Stored {
    room: String,
    seq: u64,
    author: Identity,
    body: String,
}

/// Where the log's publishing task hands stored messages. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    queued: mpsc::Sender<Stored>,
    known: Known,
}

/// What this node knows to decide quickly: who hears every message of a room, who is in a
/// direct conversation.
#[derive(Clone, Default)]
pub struct Known {
    every: Arc<Mutex<HashMap<String, Heard>>>,
    direct: Arc<Mutex<HashMap<String, Arc<[Account]>>>>,
    /// The rooms where someone may hear every message (read at start, added to by every choice
    /// made since): a message elsewhere concerns only those it mentions or a conversation's people,
    /// which its room's name and its text say without a lookup.
    every_rooms: Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
}

impl Known {
    /// Someone chose what they are told of `room`: who hears all of it is read again.
    pub fn chose(&self, room: &str) {
        lock(&self.every).remove(room);
        self.every_rooms
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(room.to_owned());
    }

    /// Reads which rooms someone hears every message of (at start).
    pub async fn load(&self, people: &crate::people::People) -> Result<(), PeopleError> {
        let rooms = people.rooms_told_every().await?;
        self.every_rooms
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(rooms);
        Ok(())
    }

    /// Whether a message of `room` saying `body` may concern anyone: it mentions someone, it is in
    /// a conversation, or someone may hear every message there.
    fn may_concern(&self, room: &str, body: &str) -> bool {
        RoomKind::of(room) == RoomKind::Direct
            || body.contains('@')
            || self
                .every_rooms
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(room)
    }
}

/// Who hears every message of a room, as read then.
type Heard = (Instant, Arc<[String]>);

/// The queue (deciding with what `known` knows), and its other end for [`run`].
pub fn queue(known: Known) -> (Queue, mpsc::Receiver<Stored>) {
    let (queued, rx) = mpsc::channel(QUEUED);
    (Queue { queued, known }, rx)
}

impl Queue {
    /// `entry` was stored on this node: a message by someone is looked at for notices. Never waits.
    pub fn stored(&self, entry: &Entry) {
        let Some(message) = entry.message() else {
            return;
        };
        // Most messages concern nobody: they are not even queued (a clone and a wake-up each).
        if message.kind == MessageKind::Moderation
            || !self.known.may_concern(&message.room, &message.body)
        {
            return;
        }
        let stored = Stored {
            room: message.room.clone(),
            seq: message.seq,
            author: message.author.clone(),
            body: message.body.clone(),
        };
        if self.queued.try_send(stored).is_err() {
            tracing::debug!(room = %message.room, "notifications are behind: a message is not looked at");
        }
    }
}

/// Looks at each stored message in turn until the server stops. On a cluster, also reads again
/// every [`EVERY_FOR`] which rooms someone hears every message of: a `chose` note lost on the way
/// would otherwise leave this node deaf to such a room until it restarts.
pub async fn run(state: AppState, mut queued: mpsc::Receiver<Stored>) {
    // From one period on: the server read them once at start (`Known::load`).
    let mut reload = tokio::time::interval_at(tokio::time::Instant::now() + EVERY_FOR, EVERY_FOR);
    reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stored = tokio::select! {
            () = state.stop.cancelled() => return,
            _ = reload.tick(), if state.cluster.is_some() => {
                if let Err(e) = state.notify.load(&state.sessions.people).await {
                    tracing::warn!("the rooms someone hears every message of were not read again: {e}");
                }
                continue;
            }
            stored = queued.recv() => match stored {
                Some(stored) => stored,
                None => return,
            },
        };
        if let Err(e) = tell(&state, &stored).await {
            tracing::warn!(room = %stored.room, "the people a message concerns were not told: {e}");
        }
    }
}

/// The `notify` frame of `notice`.
pub fn frame(notice: Notice) -> Frame {
    Frame::of(&ServerMsg::Notify { notice })
}

/// Tells everyone `stored` concerns.
async fn tell(state: &AppState, stored: &Stored) -> Result<(), PeopleError> {
    let kind = RoomKind::of(&stored.room);
    let mentioned = match stored.body.contains('@') {
        true => mentioned_people(state, &stored.room, &stored.author.id, &stored.body).await?,
        false => Vec::new(),
    };
    let direct = match kind {
        RoomKind::Direct => direct_members(state, &stored.room).await?,
        _ => Arc::from([]),
    };
    let every = told_every(state, &stored.room).await?;
    if mentioned.is_empty() && direct.is_empty() && every.is_empty() {
        return Ok(());
    }
    let people = &state.sessions.people;
    let mut concerned: Vec<(String, Level)> = Vec::new();
    let candidates = mentioned
        .iter()
        .map(|a| (a.clone(), Level::Mentions))
        .chain(direct.iter().map(|a| (a.id.clone(), Level::Mentions)))
        .chain(every.iter().map(|a| (a.clone(), Level::Every)));
    for (account, needs) in candidates {
        if account == stored.author.id || concerned.iter().any(|(a, _)| *a == account) {
            continue;
        }
        concerned.push((account, needs));
    }
    for (account_id, needs) in concerned {
        let chose = people
            .notify_levels(&account_id)
            .await?
            .into_iter()
            .find_map(|(room, level)| (room == stored.room).then_some(level))
            .unwrap_or_default();
        let wanted = match chose {
            Level::Nothing => false,
            Level::Mentions => needs == Level::Mentions,
            Level::Every => true,
        };
        if !wanted
            || people
                .ignored(&account_id)
                .await?
                .contains(&stored.author.id)
        {
            continue;
        }
        let Some(account) = people.account(&account_id).await? else {
            continue;
        };
        if !account.active || account.role == Role::Bot {
            continue;
        }
        // Asked again for each: who hears every message of a room may have left it since.
        let title = match access::title_if_open(state, &account, &stored.room).await {
            Ok(Some(title)) => title,
            Ok(None) => continue,
            Err(e) => return Err(PeopleError::Storage(e)),
        };
        let notice = notice(stored, kind, title);
        state.hub.tell_account(&account.id, &frame(notice.clone()));
        if let Some(cluster) = &state.cluster {
            cluster.notify(&account.id, &notice);
        }
        state.push.hold(state, account.id, notice);
    }
    Ok(())
}

/// What `stored` says to someone who sees its room called `title`.
fn notice(stored: &Stored, kind: RoomKind, title: String) -> Notice {
    let text: String = stored.body.chars().take(NOTICE_BODY_CHARS).collect();
    let text = match text.len() < stored.body.len() {
        true => format!("{}…", text.trim_end()),
        false => text,
    };
    // In a conversation of two it is called by who wrote: the title says it already.
    let body = match kind == RoomKind::Direct && title == stored.author.name {
        true => text,
        false => format!("{}: {text}", stored.author.name),
    };
    let title = match kind {
        RoomKind::Open => title.replacen("# ", "#", 1),
        _ => title,
    };
    Notice {
        url: format!("/r/{}?at={}", stored.room, stored.seq),
        room: stored.room.clone(),
        seq: stored.seq,
        title,
        body,
    }
}

/// The people whose `@handle` `body` holds who may read `room`: not its author, not a bot, not
/// deactivated. (Also what `mentions` records.)
pub async fn mentioned_people(
    state: &AppState,
    room: &str,
    author: &str,
    body: &str,
) -> Result<Vec<String>, PeopleError> {
    let people = &state.sessions.people;
    let mut accounts = Vec::new();
    for handle in mentioned_handles(body) {
        let Some(account) = people.by_handle(&handle).await? else {
            continue;
        };
        if account.id == author || account.role == Role::Bot || !account.active {
            continue;
        }
        match access::open(state, Who::of(&account), room).await {
            Ok(_) => accounts.push(account.id),
            Err(Refused::Missing) => {}
            Err(Refused::Unavailable(e)) => return Err(PeopleError::Storage(e)),
        }
    }
    Ok(accounts)
}

/// Who is in direct conversation `room` (remembered: its people are its name).
async fn direct_members(state: &AppState, room: &str) -> Result<Arc<[Account]>, PeopleError> {
    let known = &state.notify.direct;
    if let Some(members) = lock(known).get(room) {
        return Ok(members.clone());
    }
    let members: Arc<[Account]> = state.sessions.people.members(room).await?.into();
    let mut known = lock(known);
    if known.len() >= DIRECT_KEPT {
        known.clear();
    }
    known.insert(room.to_owned(), members.clone());
    Ok(members)
}

/// Who hears every message of `room` (as read in the last [`EVERY_FOR`]).
async fn told_every(state: &AppState, room: &str) -> Result<Arc<[String]>, PeopleError> {
    let known = &state.notify.every;
    if let Some((at, every)) = lock(known).get(room)
        && at.elapsed() < EVERY_FOR
    {
        return Ok(every.clone());
    }
    let every: Arc<[String]> = state.sessions.people.told_every(room).await?.into();
    let mut known = lock(known);
    // Rooms not asked of lately are let go, so that this stays as small as the busy rooms.
    known.retain(|_, (at, _)| at.elapsed() < EVERY_FOR);
    known.insert(room.to_owned(), (Instant::now(), every.clone()));
    Ok(every)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn router() -> Router<AppState> {
    Router::new().route("/r/{room}/notify", post(set_level))
}

#[derive(serde::Deserialize)]
struct LevelForm {
    level: String,
}

/// `POST /r/{room}/notify` (`level`: `every`, `mentions` or `nothing`): what the person is told of
/// the room, through the room's door; back to its About page.
async fn set_level(
    State(state): State<AppState>,
    Me(me): Me,
    Path(room): Path<String>,
    Form(form): Form<LevelForm>,
) -> Response {
    if let Err(answer) = crate::room_pages::door(&state, &me.account, &room).await {
        return answer;
    }
    let Some(level) = Level::parse(&form.level) else {
        return (
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "Choose every message, mentions and direct messages, or nothing.",
        )
            .into_response();
    };
    if let Err(e) = state
        .sessions
        .people
        .set_notify_level(&me.account.id, &room, level)
        .await
    {
        return unavailable(&e);
    }
    state.notify.chose(&room);
    if let Some(cluster) = &state.cluster {
        cluster.chose(&room);
    }
    Redirect::to(&format!("/r/{room}/about?notify=saved")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(room: &str, body: &str) -> Stored {
        Stored {
            room: room.to_owned(),
            seq: 7,
            author: Identity {
                id: "a1".into(),
                name: "Ann".into(),
            },
            body: body.to_owned(),
        }
    }

    #[test]
    fn a_notice_names_the_room_who_wrote_and_links_to_the_message() {
        let n = notice(
            &stored("ops", "deploy is done"),
            RoomKind::Open,
            "# ops".into(),
        );
        assert_eq!(n.title, "#ops");
        assert_eq!(n.body, "Ann: deploy is done");
        assert_eq!(n.url, "/r/ops?at=7");
        // In a conversation of two, the title is who wrote.
        let n = notice(&stored("!x", "hi"), RoomKind::Direct, "Ann".into());
        assert_eq!((n.title.as_str(), n.body.as_str()), ("Ann", "hi"));
    }

    #[test]
    fn a_long_message_is_cut_on_a_character() {
        let long = "é".repeat(NOTICE_BODY_CHARS + 5);
        let n = notice(&stored("ops", &long), RoomKind::Open, "# ops".into());
        assert!(n.body.ends_with('…'));
        assert_eq!(
            n.body.chars().count(),
            "Ann: ".len() + NOTICE_BODY_CHARS + 1
        );
    }
}
