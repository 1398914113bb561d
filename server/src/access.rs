//! Who may open which room, asked the same way at every door: the chat page, the WebSocket's
//! `join`, the event streams, the HTTP API (history and publishing), the edit history page and the
//! room list. A room someone may not open answers exactly as a room that does not exist
//! ([`Refused::Missing`]), so that no door tells a private room's name from a made-up one
//! (docs/ACCOUNTS.md, "Rooms", has the table).
//!
//! Also here: making a room on purpose ([`make_open`], [`make_private`], [`make_direct`]), within
//! the role setting (`--room-makers`) and the budgets, and the list of a person's own rooms that
//! their connections are sent ([`mine`]).

use app::protocol::{DEFAULT_ROOM, ErrorCode, RoomSummary, ServerMsg};

use crate::{
    AppState,
    frame::Frame,
    hub::Hub,
    people::{Account, People, PeopleError, Role, RoomKind, RoomRecord, rooms},
    rooms::LogError,
};

/// Which roles may do something the operator decides (`--room-makers`, `--room-mentions`): each
/// value lets in the roles above it too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum WhoMay {
    /// Everyone who can write in an open room, guests too.
    Everyone,
    /// Members, moderators and admins (and bots).
    Members,
    Moderators,
    Admins,
}

impl WhoMay {
    /// Whether `role` is let in.
    pub fn allows(self, role: Role) -> bool {
        let least = match role {
            Role::Admin => WhoMay::Admins,
            Role::Moderator => WhoMay::Moderators,
            Role::Member | Role::Bot => WhoMay::Members,
            Role::Guest => WhoMay::Everyone,
        };
        self <= least
    }

    /// Whether `role` may make a room of `kind` (`--room-makers`): a guest an open one at most (a
    /// guest is never in a private room), a bot none.
    pub fn allow(self, role: Role, kind: RoomKind) -> bool {
        match role {
            Role::Bot => false,
            Role::Guest if kind != RoomKind::Open => false,
            _ => self.allows(role),
        }
    }
}

/// Whether someone of `role` may send `body`: a message that calls on the whole room (`@room`)
/// only from the roles `--room-mentions` lets in.
pub fn may_say(state: &AppState, role: Role, body: &str) -> bool {
    state.accounts.room_mentions.allows(role) || !app::protocol::mentions_room(body)
}

/// What someone who may not call on the whole room is told.
pub fn room_mention_refused(state: &AppState) -> String {
    let who = match state.accounts.room_mentions {
        WhoMay::Everyone | WhoMay::Members => "members",
        WhoMay::Moderators => "moderators and admins",
        WhoMay::Admins => "admins",
    };
    format!("only {who} may call on the whole room with @room here")
}

/// Who knocks.
#[derive(Clone, Copy, Debug)]
pub enum Who<'a> {
    /// A signed-in person (or guest, or bot): their account's id and role.
    Person(&'a str, Role),
    /// The operator's `--api-token`: open rooms only.
    Operator,
}

impl<'a> Who<'a> {
    pub fn of(account: &'a Account) -> Self {
        Who::Person(&account.id, account.role)
    }
}

/// The room behind a door that let the asker in.
#[derive(Debug)]
pub struct Opened {
    /// Its record: `None` for an open room made before rooms had records.
    pub record: Option<RoomRecord>,
}

impl Opened {
    /// Kept to be read, not written.
    pub fn archived(&self) -> bool {
        self.record.as_ref().is_some_and(|r| r.archived)
    }
}

/// Why a door stays shut.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No such room, or not one the asker may open: one answer for both.
    #[error("no such room")]
    Missing,
    #[error("{0}")]
    Unavailable(String),
}

impl From<PeopleError> for Refused {
    fn from(e: PeopleError) -> Self {
        Refused::Unavailable(e.to_string())
    }
}

impl From<LogError> for Refused {
    fn from(e: LogError) -> Self {
        Refused::Unavailable(e.to_string())
    }
}

/// Whether `who` may open `room`, and its record. Open rooms: anyone signed in, if the room exists
/// (in the log); a bot only if it is a member. Private rooms and conversations: members only, never a guest or the operator's
/// token. A deleted account's session never gets this far (the session lookup refuses it).
pub async fn open(state: &AppState, who: Who<'_>, room: &str) -> Result<Opened, Refused> {
    let people = &state.sessions.people;
    match RoomKind::of(room) {
        RoomKind::Open => {
            if state.rooms.is_new(room).await? {
                return Err(Refused::Missing);
            }
            // A bot reads and writes only where a person added it, open rooms too.
            if let Who::Person(id, Role::Bot) = who
                && !people.is_member(room, id).await?
            {
                return Err(Refused::Missing);
            }
            Ok(Opened {
                record: people.room(room).await?,
            })
        }
        RoomKind::Private | RoomKind::Direct => {
            let Who::Person(id, role) = who else {
                return Err(Refused::Missing);
            };
            if role == Role::Guest {
                return Err(Refused::Missing);
            }
            let Some(record) = people.room(room).await? else {
                return Err(Refused::Missing);
            };
            if !people.is_member(room, id).await? {
                return Err(Refused::Missing);
            }
            Ok(Opened {
                record: Some(record),
            })
        }
    }
}

/// What `account` sees `room` called, if they may open it now (`None`: they may not, as if it did
/// not exist): `# name` for an open room, a private room's title, a conversation's people. For the
/// pages that list messages from many rooms (search results, mentions); `Err` if the stores could
/// not say.
pub async fn title_if_open(
    state: &AppState,
    account: &Account,
    room: &str,
) -> Result<Option<String>, String> {
    match open(state, Who::of(account), room).await {
        Ok(opened) => Ok(Some(match (&opened.record, RoomKind::of(room)) {
            (_, RoomKind::Open) => format!("# {room}"),
            (Some(record), _) => {
                let members = state
                    .sessions
                    .people
                    .members(room)
                    .await
                    .unwrap_or_default();
                record.title_for(&account.id, &members)
            }
            (None, _) => room.to_owned(),
        })),
        Err(Refused::Missing) => Ok(None),
        Err(Refused::Unavailable(e)) => Err(e),
    }
}

/// Why a bot may not write to a room.
#[derive(Debug, thiserror::Error)]
pub enum BotRefused {
    /// An open room it was not added to.
    #[error("the bot is not a member of that room")]
    NotAMember,
    /// A private room or conversation it is not in, or no such room: one answer for both.
    #[error("no such room")]
    Missing,
    #[error("the room is archived")]
    Archived,
    #[error("a moderator muted the bot in that room")]
    Muted,
    #[error("{0}")]
    Unavailable(String),
}

/// Whether `bot` may write to `room` (a valid name): only in a room it is a member of (a person
/// added it), not archived, where it is not muted. The API's door and the webhooks' replies ask.
pub async fn bot_may_write(state: &AppState, bot: &Account, room: &str) -> Result<(), BotRefused> {
    let people = &state.sessions.people;
    let unavailable = |e: PeopleError| BotRefused::Unavailable(e.to_string());
    if !people.is_member(room, &bot.id).await.map_err(unavailable)? {
        return Err(match app::protocol::is_private(room) {
            true => BotRefused::Missing,
            false => BotRefused::NotAMember,
        });
    }
    let opened = match open(state, Who::of(bot), room).await {
        Ok(opened) => opened,
        Err(Refused::Missing) => return Err(BotRefused::Missing),
        Err(Refused::Unavailable(e)) => return Err(BotRefused::Unavailable(e)),
    };
    if opened.archived() {
        return Err(BotRefused::Archived);
    }
    if people
        .muted_until(room, &bot.id)
        .await
        .map_err(unavailable)?
        .is_some()
    {
        return Err(BotRefused::Muted);
    }
    Ok(())
}

/// Why a room was not made.
#[derive(Debug, thiserror::Error)]
pub enum NotMade {
    /// The asker's role may not make rooms of this kind here (`--room-makers`).
    #[error("you may not make rooms on this server")]
    NotAllowed,
    /// An open room of that name exists already.
    #[error("a room of that name exists already")]
    Exists,
    /// The server holds `--max-rooms`.
    #[error("this server holds as many rooms as it may ({0})")]
    Full(usize),
    /// Over `--rooms-per-hour` for the person or their address: how long until one more may be
    /// made, and whose budget it is.
    #[error("Slow down: {who} made many new rooms; another can be made in {min} min", who = .1, min = minutes(*.0))]
    TooMany(std::time::Duration, &'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
}

fn minutes(wait: std::time::Duration) -> u64 {
    wait.as_secs().div_ceil(60).max(1)
}

impl From<PeopleError> for NotMade {
    fn from(e: PeopleError) -> Self {
        NotMade::Unavailable(e.to_string())
    }
}

impl From<LogError> for NotMade {
    fn from(e: LogError) -> Self {
        NotMade::Unavailable(e.to_string())
    }
}

impl NotMade {
    /// As a WebSocket `error` frame.
    pub fn to_frame(&self) -> ServerMsg {
        let (code, retry) = match self {
            NotMade::TooMany(wait, _) => (
                ErrorCode::RateLimited,
                Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1)),
            ),
            NotMade::Unavailable(_) => (ErrorCode::Unavailable, None),
            NotMade::NotAllowed => (ErrorCode::NoSuchRoom, None),
            _ => (ErrorCode::InvalidRoom, None),
        };
        ServerMsg::Error {
            code,
            message: self.to_string(),
            retry_after_ms: retry,
            client_id: None,
        }
    }
}

/// The budgets a new room spends from: the maker's, and everyone's at their address (`client`).
async fn spend_room_budget(
    state: &AppState,
    maker: &str,
    client: Option<std::net::IpAddr>,
) -> Result<(), NotMade> {
    let max = state.limits.max_rooms;
    if state.rooms.count().await? >= max {
        return Err(NotMade::Full(max));
    }
    let budgets = std::iter::once((format!("room:{maker}"), "you"))
        .chain(client.map(|ip| (format!("room:addr:{ip}"), "everyone at your address")));
    for (key, who) in budgets {
        let held = state.room_budgets.hold(&key);
        if let Err(wait) = state.room_budgets.take(&held.budget).await {
            return Err(NotMade::TooMany(wait, who));
        }
    }
    Ok(())
}

/// How an open room is made.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Making {
    /// With the new-room form or the offer on its page: kept, used or not.
    Kept,
    /// By a client's `join` with `create` (a program's, not the page's): like a room made by a
    /// visit before rooms were made on purpose, it is forgotten if it never holds a message once
    /// nobody has been in it a few seconds, so a client that makes rooms as it goes leaves nothing.
    ByJoin,
}

/// Makes the open room `name` (already a valid name) for `maker`, with `topic`.
pub async fn make_open(
    state: &AppState,
    (maker, role): (&str, Role),
    client: Option<std::net::IpAddr>,
    (name, topic): (&str, &str),
    making: Making,
) -> Result<(), NotMade> {
    if !state.accounts.room_makers.allow(role, RoomKind::Open) {
        return Err(NotMade::NotAllowed);
    }
    if !state.rooms.is_new(name).await? {
        return Err(NotMade::Exists);
    }
    spend_room_budget(state, maker, client).await?;
    let record = RoomRecord {
        name: name.to_owned(),
        kind: RoomKind::Open,
        title: name.to_owned(),
        topic: topic.to_owned(),
        created_by: maker.to_owned(),
        created_ms: crate::people::now_ms(),
        archived: false,
    };
    // The record first: the log's room is kept from being forgotten unused by it.
    if making == Making::Kept {
        state.sessions.people.create_room(&record, &[]).await?;
    }
    state.rooms.ensure(name).await?;
    tracing::info!(room = name, by = %maker, "made an open room");
    Ok(())
}

/// Makes a private room called `title` for `maker`, who is its first member: its name.
pub async fn make_private(
    state: &AppState,
    maker: &Account,
    client: Option<std::net::IpAddr>,
    title: &str,
    topic: &str,
) -> Result<String, NotMade> {
    if !state
        .accounts
        .room_makers
        .allow(maker.role, RoomKind::Private)
    {
        return Err(NotMade::NotAllowed);
    }
    spend_room_budget(state, &maker.id, client).await?;
    let record = RoomRecord {
        name: rooms::private_name(),
        kind: RoomKind::Private,
        title: title.to_owned(),
        topic: topic.to_owned(),
        created_by: maker.id.clone(),
        created_ms: crate::people::now_ms(),
        archived: false,
    };
    state
        .sessions
        .people
        .create_room(&record, std::slice::from_ref(&maker.id))
        .await?;
    state.rooms.ensure(&record.name).await?;
    tracing::info!(room = %record.name, by = %maker.id, "made a private room");
    Ok(record.name)
}

/// The conversation between `starter` and `others` (accounts that may be in one: not guests),
/// made if it is new: its name. Anyone but a guest may start one; starting it again opens it.
pub async fn make_direct(
    state: &AppState,
    starter: &Account,
    others: &[Account],
) -> Result<String, NotMade> {
    if matches!(starter.role, Role::Guest) {
        return Err(NotMade::NotAllowed);
    }
    if others.iter().any(|a| a.role == Role::Guest || !a.active) {
        return Err(NotMade::Invalid(
            "guests and deactivated accounts cannot be in a conversation".into(),
        ));
    }
    let mut ids: Vec<String> = std::iter::once(&starter.id)
        .chain(others.iter().map(|a| &a.id))
        .cloned()
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let record = RoomRecord {
        name: rooms::direct_name(&ids),
        kind: RoomKind::Direct,
        title: String::new(),
        topic: String::new(),
        created_by: starter.id.clone(),
        created_ms: crate::people::now_ms(),
        archived: false,
    };
    let people = &state.sessions.people;
    if people.create_room(&record, &ids).await? {
        tracing::info!(room = %record.name, by = %starter.id, "started a conversation");
    }
    state.rooms.ensure(&record.name).await?;
    // Whoever hid it sees it again.
    for id in &ids {
        people.set_hidden(id, &record.name, false).await?;
    }
    Ok(record.name)
}

/// `general` exists from the start, with a record, so that it is never forgotten as unused.
pub async fn make_default_room(state: &AppState) -> Result<(), NotMade> {
    let record = RoomRecord {
        name: DEFAULT_ROOM.to_owned(),
        kind: RoomKind::Open,
        title: DEFAULT_ROOM.to_owned(),
        topic: String::new(),
        created_by: String::new(),
        created_ms: crate::people::now_ms(),
        archived: false,
    };
    state.sessions.people.create_room(&record, &[]).await?;
    state.rooms.ensure(DEFAULT_ROOM).await?;
    Ok(())
}

/// `account`'s own rooms, as their connections are sent them (`mine`): the private rooms and
/// conversations they are in, by title (a conversation is called by the others in it), and the
/// open rooms they hid.
pub async fn mine(people: &People, account: &str) -> Result<ServerMsg, PeopleError> {
    let hidden = people.hidden(account).await?;
    let mut rooms = Vec::new();
    for record in people.rooms_of(account).await? {
        let title = match record.kind {
            RoomKind::Direct => {
                let members = people.members(&record.name).await?;
                record.title_for(account, &members)
            }
            _ => record.title.clone(),
        };
        rooms.push(RoomSummary {
            hidden: hidden.contains(&record.name),
            room: record.name,
            members: 0,
            title: Some(title),
        });
    }
    rooms.sort_by(|a, b| a.title.cmp(&b.title));
    for room in hidden {
        if RoomKind::of(&room) == RoomKind::Open {
            rooms.push(RoomSummary {
                room,
                members: 0,
                title: None,
                hidden: true,
            });
        }
    }
    Ok(ServerMsg::Mine { rooms })
}

/// What a change to `account`'s rooms does on this node, whichever node made it: their sockets
/// in a room they were `removed_from` close ([`app::protocol::Disconnect::RoomsChanged`]: they come
/// back without it), and each of their sockets is sent their own rooms again.
/// `their_rooms` is handed the person's own rooms as they are now, before they are told them (a room
/// they were added to is counted for them from then on: `reading`).
pub fn rooms_changed_here(
    (hub, people): (&Hub, &People),
    account: &str,
    removed_from: Option<&str>,
    their_rooms: impl FnOnce(&[RoomSummary]) + Send + 'static,
) {
    if let Some(room) = removed_from {
        let closed = hub.remove_from_room(account, room);
        tracing::debug!(closed, room, "closed a removed member's sockets");
    }
    let (hub, people, account) = (hub.clone(), people.clone(), account.to_owned());
    tokio::spawn(async move {
        match mine(&people, &account).await {
            Ok(mine) => {
                if let ServerMsg::Mine { rooms } = &mine {
                    their_rooms(rooms);
                }
                hub.tell_account(&account, &Frame::of(&mine));
            }
            Err(e) => tracing::warn!("cannot list a person's own rooms: {e}"),
        }
    });
}

/// [`rooms_changed_here`], here and on every other node.
pub fn rooms_changed(state: &AppState, account: &str, removed_from: Option<&str>) {
    let (positions, who) = (state.positions.clone(), account.to_owned());
    rooms_changed_here(
        (&state.hub, &state.sessions.people),
        account,
        removed_from,
        move |rooms| positions.count_from_nothing(&who, rooms.iter().map(|r| r.room.as_str())),
    );
    if let Some(cluster) = &state.cluster {
        cluster.rooms_changed(account, removed_from);
    }
}

/// An archived room, or one archived no more, here: its sockets close, and come back through the
/// door, which tells them whether they may write.
pub fn archived_here(hub: &Hub, room: &str) {
    let closed = hub.close_room(room);
    tracing::debug!(
        closed,
        room,
        "closed the sockets in a room archived or restored"
    );
}

/// [`archived_here`], here and on every other node.
pub fn archived(state: &AppState, room: &str) {
    archived_here(&state.hub, room);
    if let Some(cluster) = &state.cluster {
        cluster.archived(room);
    }
}

/// Of the rooms the hub found unused, those that may be forgotten: not the ones with a record (made
/// with the form, given a topic), only those made by a client's join ([`Making::ByJoin`]) or by a
/// visit before rooms were made on purpose.
/// The ones with a record are kept by the hub from then on (asked about once, not at every offer).
pub async fn forgettable(state: &AppState, unused: Vec<String>) -> Vec<String> {
    let (mut forgettable, mut kept) = (Vec::new(), Vec::new());
    for room in unused {
        match state.sessions.people.room(&room).await {
            Ok(None) => forgettable.push(room),
            Ok(Some(_)) => kept.push(room),
            Err(e) => tracing::warn!(room = %room, "cannot tell whether a room was made: {e}"),
        }
    }
    state.hub.keep(&kept);
    forgettable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_setting_lets_in_the_roles_above_it_and_guests_only_into_open_rooms() {
        use RoomKind::{Open, Private};
        let roles = [Role::Guest, Role::Member, Role::Moderator, Role::Admin];
        let allowed = |makers: WhoMay, kind| {
            roles
                .iter()
                .filter(|role| makers.allow(**role, kind))
                .count()
        };
        assert_eq!(allowed(WhoMay::Everyone, Open), 4);
        assert_eq!(allowed(WhoMay::Everyone, Private), 3);
        assert_eq!(allowed(WhoMay::Members, Open), 3);
        assert_eq!(allowed(WhoMay::Moderators, Open), 2);
        assert_eq!(allowed(WhoMay::Admins, Private), 1);
        assert!(!WhoMay::Everyone.allow(Role::Bot, Open));
    }
}
