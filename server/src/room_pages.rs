//! The pages that make and keep rooms, rendered on the server alone (`plain.rs`): a new room, the
//! offer to make one when an unknown open name is visited, a room's page of details (topic,
//! members, leave or hide, archive), and starting a direct conversation. Who may do each is
//! `access.rs`'s rule; every page and form goes through its door first, so a private room someone
//! is not in answers here as it does everywhere: as a room that does not exist.

use app::protocol::{DEFAULT_ROOM, MAX_NAME_CHARS, normalize_room, validate_line};
use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use leptos::{prelude::*, tachys::view::RenderHtml};
use serde::Deserialize;

use crate::{
    AppState,
    access::{self, NotMade, Refused, Who},
    accounts::Me,
    people::{Account, Role, RoomKind, RoomRecord, notify::Level},
    plain,
    session::unavailable,
};

/// The way out of a page about a room that is not there.
const BACK: &str = "Back to #general";

/// The longest topic, in characters.
pub const MAX_TOPIC_CHARS: usize = 250;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rooms/new", get(new_room_page))
        .route("/rooms", post(make_room))
        .route("/direct", get(direct_page).post(start_direct))
        .route("/r/{room}/about", get(about_page))
        .route("/r/{room}/topic", post(set_topic))
        .route("/r/{room}/members", post(add_member))
        .route("/r/{room}/remove", post(remove_member))
        .route("/r/{room}/leave", post(leave))
        .route("/r/{room}/archive", post(archive))
        .route("/r/{room}/delete", post(delete_room))
}

/// How the chat page answers a room `me` may not open, or that does not exist: 404 — or, for an
/// open room's name and whoever may make rooms, a page offering to make it (200: it is a form, as
/// `/rooms/new` is). A private room's or a conversation's name gets the one answer whether it
/// exists or not.
pub fn missing(state: &AppState, me: &Account, room: &str) -> Response {
    let may_make = state.accounts.room_makers.allow(me.role, RoomKind::Open);
    let offered = may_make && RoomKind::of(room) == RoomKind::Open;
    let main = match RoomKind::of(room) {
        RoomKind::Open if may_make => view! {
            <div class="name-form" data-testid="no-room">
                <h1>{format!("No room #{room} yet")}</h1>
                <p>"Nobody has made this room. Make it, and everyone here can find and join it."</p>
                <form method="post" action="/rooms">
                    <input type="hidden" name="kind" value="open"/>
                    <input type="hidden" name="name" value=room.to_owned()/>
                    <button type="submit" data-testid="create-room">{format!("Create #{room}")}</button>
                </form>
                <p><a href="/rooms/new">"Make a private room instead"</a></p>
                <p><a href="/" data-testid="back">{BACK}</a></p>
            </div>
        }
        .to_html(),
        RoomKind::Open => view! {
            <div class="name-form" data-testid="no-room">
                <h1>{format!("No room #{room}")}</h1>
                <p>"There is no room of that name, and this server lets only some people make rooms."</p>
                <p><a href="/" data-testid="back">{BACK}</a></p>
            </div>
        }
        .to_html(),
        RoomKind::Private | RoomKind::Direct => view! {
            <div class="name-form" data-testid="no-room">
                <h1>"No such room"</h1>
                <p>"This room does not exist, or you are not one of its members."</p>
                <p><a href="/" data-testid="back">{BACK}</a></p>
            </div>
        }
        .to_html(),
    };
    let status = match offered {
        true => StatusCode::OK,
        false => StatusCode::NOT_FOUND,
    };
    plain::page(state, status, "No such room · Herald", "name-prompt", main)
}

/// What a form's page may be asked with: what was typed before, and what went wrong (a code, said
/// in words by [`said`]: a link cannot put words of its own on the page).
#[derive(Deserialize, Default)]
struct Asked {
    name: Option<String>,
    error: Option<String>,
    /// With `error=slow`: minutes to wait.
    wait: Option<u64>,
    /// With `error=nobody`: the handle that is nobody's.
    handle: Option<String>,
    /// `saved` after the notification setting was saved.
    notify: Option<String>,
}

/// The sentence for a form's error code. Unknown codes say nothing.
fn said(asked: &Asked) -> Option<String> {
    Some(match asked.error.as_deref()? {
        "name" => "An open room's name is 1 to 64 characters: a-z, 0-9, - and _.".into(),
        "title" => format!(
            "A room's name is 1 to {MAX_NAME_CHARS} characters, without control or text-direction characters."
        ),
        "topic" => format!(
            "A topic is at most {MAX_TOPIC_CHARS} characters, without control or text-direction characters."
        ),
        "kind" => "Choose open or private.".into(),
        "exists" => "A room of that name exists already: open it, or choose another name.".into(),
        "full" => "This server holds as many rooms as it may.".into(),
        "slow" => format!(
            "Slow down: you made many new rooms; another can be made in {} min.",
            asked.wait.unwrap_or(60).clamp(1, 24 * 60)
        ),
        "not-allowed" => "You may not make rooms of that kind on this server.".into(),
        "count" => format!("Name 1 to {MAX_DIRECT} people by their handles."),
        "nobody" => match asked
            .handle
            .as_deref()
            .and_then(|h| crate::people::valid_handle(h).ok())
        {
            Some(handle) => format!("Nobody here has the handle @{handle}."),
            None => "Nobody here has one of those handles.".into(),
        },
        "cannot" => "Guests and deactivated accounts cannot be in a conversation.".into(),
        _ => return None,
    })
}

/// The code (and its detail) a refusal to make a room is sent back to its form with.
fn code_of(not_made: &NotMade) -> String {
    match not_made {
        NotMade::NotAllowed => "not-allowed".into(),
        NotMade::Exists => "exists".into(),
        NotMade::Full(_) => "full".into(),
        NotMade::TooMany(wait, _) => format!("slow&wait={}", wait.as_secs().div_ceil(60).max(1)),
        NotMade::Invalid(_) => "cannot".into(),
        NotMade::Unavailable(_) => "unavailable".into(),
    }
}

/// `GET /rooms/new`: the form that makes a room.
async fn new_room_page(
    State(state): State<AppState>,
    Me(me): Me,
    Query(asked): Query<Asked>,
) -> Response {
    let state = &state;
    let me = &me.account;
    let makers = state.accounts.room_makers;
    let (open, private) = (
        makers.allow(me.role, RoomKind::Open),
        makers.allow(me.role, RoomKind::Private),
    );
    if !open && !private {
        return refused(state, "This server lets only some people make rooms.");
    }
    let main = view! {
        <form class="name-form" method="post" action="/rooms" data-testid="new-room-form">
            <h1>"New room"</h1>
            <fieldset>
                <legend>"Who may join"</legend>
                {open.then(|| view! {
                    <label class="choice">
                        <input type="radio" name="kind" value="open" checked data-testid="kind-open"/>
                        " Open: everyone here can find and join it"
                    </label>
                })}
                {private.then(|| view! {
                    <label class="choice">
                        <input type="radio" name="kind" value="private" checked=!open data-testid="kind-private"/>
                        " Private: only the people its members add"
                    </label>
                })}
            </fieldset>
            <label for="room-name">"Name"</label>
            <input id="room-name" name="name" required maxlength="64" data-testid="new-room-name" value=asked.name.clone()/>
            <p class="hint">"An open room's name is its address: a-z, 0-9, - and _ (spaces become -)."</p>
            <label for="room-topic">"Topic (optional)"</label>
            <input id="room-topic" name="topic" maxlength=MAX_TOPIC_CHARS data-testid="new-room-topic"/>
            <button type="submit">"Create room"</button>
            <p class="form-error" role="alert" data-testid="form-error">{said(&asked)}</p>
            <p><a href="/">"Back to the chat"</a></p>
        </form>
    }
    .to_html();
    plain::page(
        state,
        StatusCode::OK,
        "New room · Herald",
        "name-prompt",
        main,
    )
}

#[derive(Deserialize)]
struct NewRoom {
    kind: String,
    name: String,
    #[serde(default)]
    topic: String,
}

/// `POST /rooms`: makes an open or a private room, and goes there.
async fn make_room(
    State(state): State<AppState>,
    Me(me): Me,
    client: Option<axum::Extension<crate::peer::Client>>,
    Form(form): Form<NewRoom>,
) -> Response {
    // Refused: back to the form, with what was typed and why (post, redirect, get).
    let again = |error: &str| {
        let to = format!(
            "/rooms/new?name={}&error={error}",
            crate::session::encode(&form.name)
        );
        Redirect::to(&to).into_response()
    };
    let Ok(topic) = topic_of(&form.topic) else {
        return again("topic");
    };
    let address = client.map(|c| c.key());
    let made = match form.kind.as_str() {
        "open" => match normalize_room(&form.name) {
            Ok(name) => {
                let maker = (me.account.id.as_str(), me.account.role);
                access::make_open(
                    &state,
                    maker,
                    address,
                    (&name, &topic),
                    access::Making::Kept,
                )
                .await
                .map(|()| name)
            }
            Err(_) => return again("name"),
        },
        "private" => match validate_line(&form.name, MAX_NAME_CHARS) {
            Ok(title) => access::make_private(&state, &me.account, address, &title, &topic).await,
            Err(_) => return again("title"),
        },
        _ => return again("kind"),
    };
    match made {
        Ok(name) => {
            if RoomKind::of(&name) != RoomKind::Open {
                access::rooms_changed(&state, &me.account.id, None);
            }
            Redirect::to(&format!("/r/{name}")).into_response()
        }
        Err(NotMade::Unavailable(e)) => {
            tracing::warn!("making a room: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment.").into_response()
        }
        Err(not_made) => again(&code_of(&not_made)),
    }
}

/// A topic as typed → as kept (empty is none), or `Err` if it cannot be one.
fn topic_of(typed: &str) -> Result<String, ()> {
    if typed.trim().is_empty() {
        return Ok(String::new());
    }
    validate_line(typed, MAX_TOPIC_CHARS).map_err(|_| ())
}

/// Through the door of `room` for `me`, or the answer for a room that is not there.
pub(crate) async fn door(
    state: &AppState,
    me: &Account,
    room: &str,
) -> Result<Option<RoomRecord>, Response> {
    let valid = app::protocol::validate_room(room).is_ok();
    if !valid {
        return Err(missing(state, me, room));
    }
    match access::open(state, Who::of(me), room).await {
        Ok(opened) => Ok(opened.record),
        Err(Refused::Missing) => Err(missing(state, me, room)),
        Err(Refused::Unavailable(e)) => {
            tracing::warn!("room door: {e}");
            Err((StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment.").into_response())
        }
    }
}

/// `GET /r/{room}/about`: what the room is, who is in it, and what one can do to it.
async fn about_page(
    State(state): State<AppState>,
    Me(me): Me,
    Path(room): Path<String>,
    Query(asked): Query<Asked>,
) -> Response {
    let record = match door(&state, &me.account, &room).await {
        Ok(record) => record,
        Err(answer) => return answer,
    };
    let kind = RoomKind::of(&room);
    let people = &state.sessions.people;
    // An open room's members are the bots added to it (everyone else may come and go).
    let members = match people.members(&room).await {
        Ok(members) => members,
        Err(e) => return unavailable(&e),
    };
    let title = match &record {
        Some(record) => record.title_for(&me.account.id, &members),
        None => room.clone(),
    };
    let shown = match kind {
        RoomKind::Open => format!("#{title}"),
        _ => title.clone(),
    };
    let topic = record.as_ref().map(|r| r.topic.clone()).unwrap_or_default();
    let archived = record.as_ref().is_some_and(|r| r.archived);
    let may_moderate = matches!(me.account.role, Role::Admin | Role::Moderator);
    let what = match kind {
        RoomKind::Open => "An open room: everyone here can find and join it.",
        RoomKind::Private => {
            "A private room: only its members can find it, and any member can add others."
        }
        RoomKind::Direct => "A direct conversation: only the people in it can read it.",
    };
    let back = format!("/r/{room}");
    let action = |what: &str| format!("/r/{room}/{what}");
    let member_rows = members
        .iter()
        .map(|m| {
            let handle = m.handle.as_ref().map(|h| format!("@{h}"));
            let removable = kind == RoomKind::Private || m.role == Role::Bot;
            let remove =
                (kind != RoomKind::Direct && removable && may_moderate && m.id != me.account.id).then(|| {
                    view! {
                        <form method="post" action=action("remove") class="inline">
                            <input type="hidden" name="account" value=m.id.clone()/>
                            <button type="submit" class="link">"Remove"</button>
                        </form>
                    }
                });
            let bot = (m.role == Role::Bot).then(|| view! { <span class="badge">"bot"</span> });
            view! {
                <li class="session" data-testid="member">
                    <span><strong>{m.name.clone()}</strong>" "<span class="handle">{handle}</span>{bot}</span>{remove}
                </li>
            }
        })
        .collect_view();
    let topic_form = (me.account.role != Role::Guest && kind != RoomKind::Direct && !archived)
        .then(|| {
            view! {
                <form class="name-form" method="post" action=action("topic")>
                    <label for="topic">"Topic"</label>
                    <input id="topic" name="topic" maxlength=MAX_TOPIC_CHARS value=topic.clone() data-testid="topic-input"/>
                    <button type="submit">"Set topic"</button>
                </form>
            }
        });
    let add_label = match kind {
        RoomKind::Open => "Add a bot, by handle",
        _ => "Add someone, by handle",
    };
    let may_add = match kind {
        RoomKind::Open => me.account.role != Role::Guest,
        RoomKind::Private => true,
        RoomKind::Direct => false,
    };
    let add_form = (may_add && !archived).then(|| {
        view! {
            <form class="name-form" method="post" action=action("members") data-testid="add-member-form">
                <label for="handle">{add_label}</label>
                <input id="handle" name="handle" required autocapitalize="none" spellcheck="false" data-testid="add-member-handle"/>
                <button type="submit">"Add to room"</button>
            </form>
        }
    });
    // What the person is told of this room (docs/NOTIFICATIONS.md): theirs alone, so any reader
    // may choose, a guest too.
    let chosen = match people.notify_levels(&me.account.id).await {
        Ok(levels) => levels
            .into_iter()
            .find_map(|(r, level)| (r == room).then_some(level))
            .unwrap_or_default(),
        Err(e) => return unavailable(&e),
    };
    let mentions_label = match kind {
        // In a conversation every message is for its people: "every" is the default there.
        RoomKind::Direct => "Every new message (the default)",
        _ => "Mentions of me (the default)",
    };
    let notify_form = {
        let option = |level: Level, label: &'static str| {
            view! {
                <label>
                    <input type="radio" name="level" value=level.as_str() checked=chosen == level data-testid=format!("notify-{}", level.as_str())/>
                    {label}
                </label>
            }
        };
        let saved = (asked.notify.as_deref() == Some("saved"))
            .then(|| view! { <p role="status" data-testid="notify-saved">"Saved."</p> });
        view! {
            <section aria-labelledby="notify-title">
                <h2 id="notify-title">"Notifications"</h2>
                <form class="name-form" method="post" action=action("notify") data-testid="notify-form">
                    <fieldset>
                        <legend>"Tell me when there is"</legend>
                        {(kind != RoomKind::Direct).then(|| option(Level::Every, "Every new message"))}
                        {option(Level::Mentions, mentions_label)}
                        {option(Level::Nothing, "Nothing")}
                    </fieldset>
                    <p class="hint">"On every device you use, while its Herald tab is hidden or closed (the chat asks this browser's permission once)."</p>
                    <button type="submit" data-testid="notify-save">"Save"</button>
                    {saved}
                </form>
            </section>
        }
    };
    let leave_label = match kind {
        RoomKind::Private => "Leave this room",
        _ => "Hide from my list",
    };
    let archive_form = (me.account.role == Role::Admin && room != DEFAULT_ROOM && record.is_some())
        .then(|| {
            view! {
                <form method="post" action=action("archive")>
                    <input type="hidden" name="archived" value=if archived { "0" } else { "1" }/>
                    <button type="submit" data-testid="archive">
                        {if archived { "Restore this room" } else { "Archive this room" }}
                    </button>
                </form>
            }
        });
    // Deleting: for admins, any room but the default one, after a box is ticked (a slip of the
    // hand deletes nothing).
    let delete_form = (me.account.role == Role::Admin && room != DEFAULT_ROOM).then(|| {
        let sure = match kind {
            RoomKind::Open => format!("Yes, delete #{title} and everything in it"),
            _ => "Yes, delete it and everything in it".to_owned(),
        };
        let not_sure = (asked.error.as_deref() == Some("sure"))
            .then_some("Tick the box to say you mean it: nothing was deleted.");
        view! {
            <section class="danger-zone" aria-labelledby="delete-title">
                <h2 id="delete-title">"Delete this room"</h2>
                <p>"Its messages are deleted for everyone, at once and for good, and everyone in it is put out. A backup taken before still holds it."</p>
                <form method="post" action=action("delete") data-testid="delete-room-form">
                    <label class="choice">
                        <input type="checkbox" name="sure" value="yes" required data-testid="delete-room-sure"/>
                        " "{sure}
                    </label>
                    <button type="submit" class="danger" data-testid="delete-room">"Delete this room"</button>
                    {not_sure.map(|said| view! { <p class="form-error" role="alert" data-testid="form-error">{said}</p> })}
                </form>
            </section>
        }
    });
    let main = view! {
        <h1 data-testid="room-title">{shown.clone()}</h1>
        <p>{what}</p>
        {archived.then(|| view! { <p data-testid="archived"><strong>"Archived: "</strong>"it can be read, not written to."</p> })}
        <p data-testid="topic">{if topic.is_empty() { "No topic.".to_owned() } else { topic.clone() }}</p>
        {topic_form}
        {(!members.is_empty()).then(|| view! {
            <section aria-labelledby="members-title">
                <h2 id="members-title">{if kind == RoomKind::Open { "Bots in this room" } else { "Members" }}</h2>
                <ul class="sessions" data-testid="members">{member_rows}</ul>
            </section>
        })}
        {add_form}
        {notify_form}
        {(room != DEFAULT_ROOM).then(|| view! {
            <form method="post" action=action("leave")>
                <button type="submit" data-testid="leave">{leave_label}</button>
            </form>
        })}
        {archive_form}
        {delete_form}
        <p><a href=back data-testid="back">"Back to the room"</a></p>
    }
    .to_html();
    plain::page(
        &state,
        StatusCode::OK,
        &format!("{shown} · Herald"),
        "history-page account-page",
        main,
    )
}

#[derive(Deserialize)]
struct TopicForm {
    topic: String,
}

/// `POST /r/{room}/topic`: anyone but a guest who may open the room sets its topic.
async fn set_topic(
    State(state): State<AppState>,
    Me(me): Me,
    Path(room): Path<String>,
    Form(form): Form<TopicForm>,
) -> Response {
    let record = match door(&state, &me.account, &room).await {
        Ok(record) => record,
        Err(answer) => return answer,
    };
    if me.account.role == Role::Guest || RoomKind::of(&room) == RoomKind::Direct {
        return (StatusCode::FORBIDDEN, "You may not set this room's topic.").into_response();
    }
    let Ok(topic) = topic_of(&form.topic) else {
        let why = said(&Asked {
            error: Some("topic".into()),
            ..Asked::default()
        });
        return (StatusCode::UNPROCESSABLE_ENTITY, why.unwrap_or_default()).into_response();
    };
    let people = &state.sessions.people;
    let done = async {
        match record {
            Some(record) => people.update_room(&RoomRecord { topic, ..record }).await,
            // An open room from before records: it gets one now.
            None => {
                let record = RoomRecord {
                    topic,
                    ..open_record(&room)
                };
                people.create_room(&record, &[]).await.map(|_| ())
            }
        }
    };
    match done.await {
        Ok(()) => Redirect::to(&format!("/r/{room}/about")).into_response(),
        Err(e) => unavailable(&e),
    }
}

/// The record an open room made before rooms had records gets when it first needs one.
fn open_record(room: &str) -> RoomRecord {
    RoomRecord {
        name: room.to_owned(),
        kind: RoomKind::Open,
        title: room.to_owned(),
        topic: String::new(),
        created_by: String::new(),
        created_ms: crate::people::now_ms(),
        archived: false,
    }
}

#[derive(Deserialize)]
struct HandleForm {
    handle: String,
}

/// `POST /r/{room}/members`: a member of a private room adds someone (not a guest) by handle.
async fn add_member(
    State(state): State<AppState>,
    Me(me): Me,
    Path(room): Path<String>,
    Form(form): Form<HandleForm>,
) -> Response {
    let record = match door(&state, &me.account, &room).await {
        Ok(record) => record,
        Err(answer) => return answer,
    };
    let kind = RoomKind::of(&room);
    let may_add = match kind {
        RoomKind::Private => true,
        RoomKind::Open => me.account.role != Role::Guest,
        RoomKind::Direct => false,
    };
    if !may_add || record.as_ref().is_some_and(|r| r.archived) {
        return (
            StatusCode::FORBIDDEN,
            "People are added to private rooms, and bots to rooms, by their members.",
        )
            .into_response();
    }
    let people = &state.sessions.people;
    let handle = form
        .handle
        .trim()
        .trim_start_matches('@')
        .to_ascii_lowercase();
    let found = match people.by_handle(&handle).await {
        Ok(found) => found,
        Err(e) => return unavailable(&e),
    };
    // Anyone but a guest to a private room; to an open room (which everyone may join), bots only.
    let addable = |a: &Account| match kind {
        RoomKind::Open => a.role == Role::Bot,
        _ => a.role != Role::Guest,
    };
    let Some(added) = found.filter(|a| a.active && addable(a)) else {
        let who = match kind {
            RoomKind::Open => "no bot",
            _ => "nobody",
        };
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("There is {who} here with that handle who can be added."),
        )
            .into_response();
    };
    // An open room from before records gets one now: members are kept beside a record.
    if record.is_none()
        && let Err(e) = people.create_room(&open_record(&room), &[]).await
    {
        return unavailable(&e);
    }
    match people.add_member(&room, &added.id).await {
        Ok(_) => {
            tracing::info!(room = %room, by = %me.account.id, added = %added.id, "added a member");
            access::rooms_changed(&state, &added.id, None);
            Redirect::to(&format!("/r/{room}/about")).into_response()
        }
        Err(e) => unavailable(&e),
    }
}

#[derive(Deserialize)]
struct AccountForm {
    account: String,
}

/// `POST /r/{room}/remove`: a moderator or admin removes someone from a private room: their
/// sockets in it close at once, on every node, and the room is gone for them.
async fn remove_member(
    State(state): State<AppState>,
    Me(me): Me,
    Path(room): Path<String>,
    Form(form): Form<AccountForm>,
) -> Response {
    if let Err(answer) = door(&state, &me.account, &room).await {
        return answer;
    }
    // From a private room anyone; from an open room, the bots in it.
    let removable = match RoomKind::of(&room) {
        RoomKind::Private => true,
        RoomKind::Open => matches!(
            state.sessions.people.account(&form.account).await,
            Ok(Some(a)) if a.role == Role::Bot
        ),
        RoomKind::Direct => false,
    };
    if !removable || !matches!(me.account.role, Role::Admin | Role::Moderator) {
        return (
            StatusCode::FORBIDDEN,
            "Moderators remove people from private rooms, and bots from rooms.",
        )
            .into_response();
    }
    match state
        .sessions
        .people
        .remove_member(&room, &form.account)
        .await
    {
        Ok(_) => {
            tracing::info!(room = %room, by = %me.account.id, removed = %form.account, "removed a member");
            let people = &state.sessions.people;
            people
                .record(&me.account.id, "remove_member", &room, &form.account, "")
                .await;
            access::rooms_changed(&state, &form.account, Some(&room));
            Redirect::to(&format!("/r/{room}/about")).into_response()
        }
        Err(e) => unavailable(&e),
    }
}

/// `POST /r/{room}/leave`: out of a private room for good (until a member adds them back); an
/// open room or a conversation is only hidden from the list, until it is opened again.
async fn leave(State(state): State<AppState>, Me(me): Me, Path(room): Path<String>) -> Response {
    if let Err(answer) = door(&state, &me.account, &room).await {
        return answer;
    }
    let people = &state.sessions.people;
    let (done, removed) = match RoomKind::of(&room) {
        RoomKind::Private => (
            people
                .remove_member(&room, &me.account.id)
                .await
                .map(|_| ()),
            Some(room.as_str()),
        ),
        _ => (
            people
                .set_hidden(&me.account.id, &room, true)
                .await
                .map(|_| ()),
            None,
        ),
    };
    match done {
        Ok(()) => {
            access::rooms_changed(&state, &me.account.id, removed);
            Redirect::to("/").into_response()
        }
        Err(e) => unavailable(&e),
    }
}

#[derive(Deserialize)]
struct ArchiveForm {
    archived: u8,
}

/// `POST /r/{room}/archive`: an admin archives a room (read, not written) or restores it.
async fn archive(
    State(state): State<AppState>,
    Me(me): Me,
    Path(room): Path<String>,
    Form(form): Form<ArchiveForm>,
) -> Response {
    let record = match door(&state, &me.account, &room).await {
        Ok(record) => record,
        Err(answer) => return answer,
    };
    let (true, Some(record)) = (
        me.account.role == Role::Admin && room != DEFAULT_ROOM,
        record,
    ) else {
        return (StatusCode::FORBIDDEN, "Admins archive rooms.").into_response();
    };
    let archived = form.archived == 1;
    match state
        .sessions
        .people
        .update_room(&RoomRecord { archived, ..record })
        .await
    {
        Ok(()) => {
            tracing::info!(room = %room, by = %me.account.id, archived, "room archived or restored");
            let action = if archived { "archive" } else { "restore" };
            let people = &state.sessions.people;
            people.record(&me.account.id, action, &room, "", "").await;
            access::archived(&state, &room);
            Redirect::to(&format!("/r/{room}/about")).into_response()
        }
        Err(e) => unavailable(&e),
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    /// The box "yes, delete it and everything in it", ticked.
    #[serde(default)]
    sure: Option<String>,
}

/// `POST /r/{room}/delete`: an admin deletes a room and everything in it, for everyone, at once
/// (docs/ACCOUNTS.md, "Deleting a room"): its messages from the log, its record, members, mutes
/// and reports from the people store; its sockets close on every node and come back to a room
/// that does not exist. A backup taken before still holds it.
async fn delete_room(
    State(state): State<AppState>,
    Me(me): Me,
    Path(room): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Response {
    let record = match door(&state, &me.account, &room).await {
        Ok(record) => record,
        Err(answer) => return answer,
    };
    if me.account.role != Role::Admin || room == DEFAULT_ROOM {
        return (StatusCode::FORBIDDEN, "Admins delete rooms.").into_response();
    }
    if form.sure.as_deref() != Some("yes") {
        return Redirect::to(&format!("/r/{room}/about?error=sure#delete-title")).into_response();
    }
    // The log first: should the people store fail after, the room is still there to delete again
    // (its record lets its members in, to an empty room), never a record gone with its messages
    // left where no door leads to them.
    let held = match state.rooms.drop_room(&room).await {
        Ok(held) => held,
        Err(e) => {
            tracing::warn!(room = %room, "deleting a room: {e}");
            return (StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment.").into_response();
        }
    };
    let people = &state.sessions.people;
    let members = match people.delete_room(&room).await {
        Ok(members) => members,
        Err(e) => return unavailable(&e),
    };
    state.pages.forget(&format!("/r/{room}"));
    // Its words leave the search index too (the index would find the room gone, but only when
    // it next looked at it), and the other nodes' (a node that does not know the room hears of
    // no deletion from the log).
    if let Some(search) = &state.search
        && let Err(e) = search.forget(&room).await
    {
        tracing::warn!(room = %room, "taking a deleted room's words out of the search index: {e}");
    }
    if let Some(cluster) = &state.cluster {
        cluster.look_again(&room);
    }
    // A private room's name is an id: its title says which it was.
    let title = record
        .filter(|r| r.kind == RoomKind::Private)
        .map(|r| r.title)
        .unwrap_or_default();
    people
        .record(&me.account.id, "delete_room", &room, "", &title)
        .await;
    tracing::info!(room = %room, by = %me.account.id, held, "room deleted");
    for member in &members {
        access::rooms_changed(&state, member, Some(&room));
    }
    Redirect::to("/").into_response()
}

/// `GET /direct`: start a conversation with one person or a few, by handle.
async fn direct_page(
    State(state): State<AppState>,
    Me(me): Me,
    Query(asked): Query<Asked>,
) -> Response {
    if me.account.role == Role::Guest {
        return refused(&state, "Guests write in open rooms only.");
    }
    let main = view! {
        <form class="name-form" method="post" action="/direct" data-testid="direct-form">
            <h1>"New direct message"</h1>
            <label for="handles">"To (handles, separated by spaces or commas)"</label>
            <input id="handles" name="handles" required autocapitalize="none" spellcheck="false" data-testid="direct-handles"/>
            <p class="hint">"Only the people you name, and you, can read it. Starting it again opens the same conversation."</p>
            <button type="submit">"Start"</button>
            <p class="form-error" role="alert" data-testid="form-error">{said(&asked)}</p>
            <p><a href="/">"Back to the chat"</a></p>
        </form>
    }
    .to_html();
    plain::page(
        &state,
        StatusCode::OK,
        "New direct message · Herald",
        "name-prompt",
        main,
    )
}

#[derive(Deserialize)]
struct DirectForm {
    handles: String,
}

/// Most people in one conversation besides its starter.
const MAX_DIRECT: usize = 8;

/// `POST /direct`: opens the conversation between the asker and the people named (made if new);
/// it appears in every one of their lists at once.
async fn start_direct(
    State(state): State<AppState>,
    Me(me): Me,
    Form(form): Form<DirectForm>,
) -> Response {
    let again = |error: &str| Redirect::to(&format!("/direct?error={error}")).into_response();
    let handles: Vec<String> = form
        .handles
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(|h| h.trim_start_matches('@').to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    if handles.is_empty() || handles.len() > MAX_DIRECT {
        return again("count");
    }
    let people = &state.sessions.people;
    let mut others = Vec::new();
    for handle in &handles {
        match people.by_handle(handle).await {
            Ok(Some(account)) if account.id != me.account.id => others.push(account),
            Ok(Some(_)) => {}
            Ok(None) => {
                return again(&format!("nobody&handle={}", crate::session::encode(handle)));
            }
            Err(e) => return unavailable(&e),
        }
    }
    match access::make_direct(&state, &me.account, &others).await {
        Ok(name) => {
            for account in std::iter::once(&me.account).chain(&others) {
                access::rooms_changed(&state, &account.id, None);
            }
            Redirect::to(&format!("/r/{name}")).into_response()
        }
        Err(NotMade::Unavailable(e)) => {
            tracing::warn!("starting a conversation: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment.").into_response()
        }
        Err(not_made) => again(&code_of(&not_made)),
    }
}

fn refused(state: &AppState, why: &str) -> Response {
    let main = view! {
        <div class="name-form">
            <p data-testid="why">{why.to_owned()}</p>
            <p><a href="/">"Back to the chat"</a></p>
        </div>
    }
    .to_html();
    plain::page(
        state,
        StatusCode::FORBIDDEN,
        "Not here · Herald",
        "name-prompt",
        main,
    )
}
