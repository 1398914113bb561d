//! The browser's side of `/ws` (feature `hydrate` only): opens the socket, joins every room the tab
//! has open with the cursor of what it already has, turns server frames into state changes, sends the
//! outboxes, and reconnects — with backoff after a drop, at once when the browser comes back online,
//! and as the server's close code says ([`Disconnect`]): at once after "going away", after a pause
//! when too slow, not at all after a refusal (the person is told, and can try again). A handshake
//! refused for want of a session (signed out in another tab, say) takes the page back to the name
//! form.
//!
//! One socket per tab, for all its rooms. The state it drives lives in [`Tab`] and its [`Room`]s;
//! components never touch the socket.

use std::rc::Rc;

use futures::{FutureExt, SinkExt, StreamExt, channel::mpsc};
use gloo_net::websocket::{Message, WebSocketError, futures::WebSocket};
use gloo_timers::future::TimeoutFuture;
use leptos::{ev, prelude::*};

use crate::{
    protocol::{ClientMsg, Disconnect, ErrorCode, Reconnect, ServerMsg, TYPING_TTL_MS},
    state::{SocketState, Tab},
};

/// First retry delay after a drop; doubles per failed attempt up to [`MAX_BACKOFF_MS`].
const BASE_BACKOFF_MS: u32 = 500;
/// Longest wait between attempts: a user coming back to the tab should not wait longer than this.
const MAX_BACKOFF_MS: u32 = 15_000;

/// How long an open socket may stay silent before the server's `welcome`: a socket that opens but
/// never answers (a proxy that swallows it, a server that hangs) is given up and tried again, so
/// "Connecting…" and "sending…" do not last for ever.
const WELCOME_TIMEOUT_MS: u32 = 8_000;

/// What the browser (or the reader) tells us about the network.
enum Network {
    Online,
    Offline,
    /// The reader asked to try again now rather than wait out the backoff.
    RetryNow,
}

/// How often expired typing indicators are cleared.
const TYPING_SWEEP_MS: u32 = 500;

/// Starts the socket client for this tab. Call once, after hydration.
pub fn connect(tab: Tab) {
    let (tx, rx) = mpsc::unbounded::<ClientMsg>();
    tab.sender.set_value(Some(Rc::new(move |msg| {
        // Only fails if the client task is gone, which happens only when the page is.
        let _ = tx.unbounded_send(msg);
    })));
    let (net_tx, net_rx) = mpsc::unbounded::<Network>();
    let online = net_tx.clone();
    let retry = net_tx.clone();
    tab.retry_now.set_value(Some(Rc::new(move || {
        let _ = retry.unbounded_send(Network::RetryNow);
    })));
    // The page lives as long as these listeners are needed: keep them for good.
    std::mem::forget(window_event_listener(ev::online, move |_| {
        let _ = online.unbounded_send(Network::Online);
    }));
    std::mem::forget(window_event_listener(ev::offline, move |_| {
        let _ = net_tx.unbounded_send(Network::Offline);
    }));
    leptos::task::spawn_local(run(tab, rx, net_rx));
    leptos::task::spawn_local(async move {
        loop {
            TimeoutFuture::new(TYPING_SWEEP_MS).await;
            let now = js_sys::Date::now();
            tab.rooms().iter().for_each(|room| room.expire_typing(now));
            tab.tell_read(now);
        }
    });
}

fn browser_online() -> bool {
    window().navigator().on_line()
}

async fn run(
    tab: Tab,
    mut outgoing: mpsc::UnboundedReceiver<ClientMsg>,
    mut network: mpsc::UnboundedReceiver<Network>,
) {
    let mut failures = 0u32;
    // "Going away" is answered at once, but only once in a row: a server in its shutdown grace
    // still says it to every new socket.
    let mut went_away = false;
    loop {
        if !browser_online() {
            tab.connection.set(SocketState::Offline);
            while !matches!(network.next().await, Some(Network::Online) | None) {}
        }
        // Whatever was handed over while disconnected is still in the outbox and is re-sent on join.
        while outgoing.try_recv().is_ok() {}

        tab.connection.set(SocketState::Connecting);
        let ended = connection(tab, &mut outgoing, &mut network).await;
        if ended.welcomed {
            failures = 0; // It worked for a while: start over with a short delay.
            tab.dropped();
        }
        if !browser_online() {
            continue;
        }
        let why = ended.close_code.and_then(Disconnect::from_code);
        match why.map(Disconnect::reconnect) {
            Some(Reconnect::AtOnce) if !went_away => {
                went_away = true;
                continue;
            }
            Some(Reconnect::AfterPause) => failures = failures.max(PAUSE_FAILURES),
            Some(Reconnect::Never) => {
                if let Some(why) = why {
                    tab.connection.set(SocketState::Stopped(why));
                }
                // Until the person asks (or the network comes back): looping would only be refused
                // again.
                network.next().await;
                continue;
            }
            _ => {}
        }
        went_away = false;
        if !ended.welcomed && session_ended().await {
            // Nothing to reconnect as: the page again, which asks to sign in and comes back
            // here (what waits in the outbox is kept in this browser meanwhile).
            tab.connection.set(SocketState::Loading);
            let _ = window().location().reload();
            return;
        }
        failures = failures.saturating_add(1);
        let mut wait_ms = backoff_ms(failures);
        while wait_ms > 0 {
            tab.connection.set(SocketState::Reconnecting {
                in_secs: wait_ms.div_ceil(1000),
            });
            let step = wait_ms.min(1000);
            futures::select! {
                _ = TimeoutFuture::new(step).fuse() => wait_ms -= step,
                // Back online, gone offline, or "Retry now": stop waiting and look again.
                _ = network.next() => wait_ms = 0,
            }
        }
    }
}

/// A connection closed as too slow waits as if it had failed this often (4–8 s before the next try).
const PAUSE_FAILURES: u32 = 4;

/// Whether this browser's session is gone: asked of the server after a handshake that failed, since
/// a browser's WebSocket does not say why (a refused handshake and a dead server look the same).
async fn session_ended() -> bool {
    let Ok(answer) =
        wasm_bindgen_futures::JsFuture::from(window().fetch_with_str("/session")).await
    else {
        return false; // The server is not there: no news about the session.
    };
    use wasm_bindgen::JsCast;
    answer
        .dyn_into::<web_sys::Response>()
        .is_ok_and(|answer| answer.status() == 401)
}

/// Exponential backoff with jitter: half the window fixed, half random, so a server restart is not
/// met by every tab at the same instant.
fn backoff_ms(failures: u32) -> u32 {
    let window = BASE_BACKOFF_MS
        .saturating_mul(1 << failures.saturating_sub(1).min(10))
        .min(MAX_BACKOFF_MS);
    window / 2 + (js_sys::Math::random() * f64::from(window / 2)) as u32
}

/// How a connection ended.
struct Ended {
    /// Whether the server welcomed us.
    welcomed: bool,
    /// The code of the server's close frame, if it sent one.
    close_code: Option<u16>,
}

/// One connection, from open to close.
async fn connection(
    tab: Tab,
    outgoing: &mut mpsc::UnboundedReceiver<ClientMsg>,
    network: &mut mpsc::UnboundedReceiver<Network>,
) -> Ended {
    let mut ended = Ended {
        welcomed: false,
        close_code: None,
    };
    let Ok(socket) = WebSocket::open(&socket_url()) else {
        return ended;
    };
    let (mut sink, stream) = socket.split();
    let mut stream = stream.fuse();
    let mut welcome_due = TimeoutFuture::new(WELCOME_TIMEOUT_MS).fuse();
    loop {
        let mut to_send = Vec::new();
        futures::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => match ServerMsg::decode(&text) {
                    Ok(ServerMsg::Welcome { you, limits, .. }) => {
                        ended.welcomed = true;
                        tab.me.set(Some(you));
                        tab.limits.set(limits);
                        tab.connection.set(SocketState::Connected);
                        // Rejoin every open room where our copy ends, then re-send what was never
                        // acknowledged: the server stores each `client_id` once however often it
                        // arrives.
                        let rooms = tab.rooms();
                        to_send.extend(rooms.iter().map(|room| {
                            room.loading_older.set(false);
                            room.join()
                        }));
                        to_send.extend(rooms.iter().flat_map(|room| room.resends()));
                    }
                    Ok(msg) => to_send.extend(apply(tab, msg)),
                    Err(err) => leptos::logging::warn!("ignoring a frame from the server: {err}"),
                },
                Some(Ok(Message::Bytes(_))) => {}
                Some(Err(WebSocketError::ConnectionClose(close))) => {
                    // 1006 is the browser's own: no close frame came.
                    ended.close_code = (close.code != 1006).then_some(close.code);
                    break;
                }
                Some(Err(_)) | None => break,
            },
            msg = outgoing.next() => match msg {
                Some(msg) => to_send.push(msg),
                None => break,
            },
            event = network.next() => {
                if matches!(event, Some(Network::Offline)) {
                    break; // Dropping the socket closes it; the outbox keeps what was not acked.
                }
            }
            _ = welcome_due => {
                if !ended.welcomed {
                    leptos::logging::warn!("no welcome from the server in time; reconnecting");
                    break;
                }
            }
        }
        for msg in to_send {
            if sink.send(Message::Text(msg.encode())).await.is_err() {
                return ended;
            }
        }
    }
    ended
}

/// Applies a server frame to the tab's state; returns the frames to send in answer.
fn apply(tab: Tab, msg: ServerMsg) -> Vec<ClientMsg> {
    match msg {
        ServerMsg::Welcome { .. } => {}
        // Only where the server's side is built in too (the workspace's tests): the page's script
        // takes these frames before the wasm (app/src/early.js).
        #[cfg(feature = "ssr")]
        ServerMsg::Notify { .. } => {}
        ServerMsg::Joined {
            room,
            epoch,
            mode,
            first_seq,
            last_seq,
        } => {
            if let Some(room) = tab.room(&room) {
                room.joined(epoch, mode, first_seq, last_seq);
            }
        }
        ServerMsg::Message(message) => tab.message(message),
        ServerMsg::Change(change) => tab.changed(change),
        // A newer server's kind of entry: nothing to show, but our copy now reaches its seq.
        ServerMsg::Other(other) => {
            if let Some(room) = tab.room(&other.room) {
                room.pass(other.seq);
            }
        }
        ServerMsg::Ack {
            room, client_id, ..
        } => {
            if let Some(room) = tab.room(&room) {
                room.settle(&client_id);
            }
        }
        ServerMsg::Lagged { room, .. } => {
            // We fell behind and the server stopped queuing for us: catch up from the log.
            if let Some(room) = tab.room(&room) {
                return vec![room.join()];
            }
        }
        // Said in words under the box ("slow down: ..."), and what was refused is sent again once
        // the wait is over.
        ServerMsg::Error {
            code: ErrorCode::RateLimited,
            retry_after_ms,
            message,
            ..
        } => {
            tab.last_error.set(Some(message));
            resend_later(tab, retry_after_ms.unwrap_or(1000));
        }
        // A room this tab has open that does not exist, or that this person may no longer open
        // (removed from it): the server's page for this address says what is there now.
        ServerMsg::Error {
            code: ErrorCode::NoSuchRoom,
            ..
        } => {
            let _ = window().location().reload();
        }
        ServerMsg::Error {
            message, client_id, ..
        } => {
            // Refused for good (its message is gone, say): it leaves the outbox, or it would be
            // sent again forever.
            if let Some(client_id) = client_id {
                for room in tab.rooms() {
                    room.settle(&client_id);
                }
            }
            tab.last_error.set(Some(message));
        }
        // Who came and went (`joined`, `left`) is the people panel's to show, from `members`.
        ServerMsg::Presence {
            room,
            count,
            members,
            ..
        } => {
            if let Some(room) = tab.room(&room) {
                let me = tab
                    .me
                    .with_untracked(|me| me.as_ref().map(|me| me.id.clone()));
                room.presence(count, members, me.as_deref());
            }
        }
        ServerMsg::Typing { room, user } => {
            if let Some(room) = tab.room(&room)
                && !tab.is_me(&user)
            {
                room.typing(user, js_sys::Date::now() + f64::from(TYPING_TTL_MS));
            }
        }
        ServerMsg::Rooms { rooms } => tab.directory.set(rooms),
        ServerMsg::Mine { rooms } => tab.mine.set(rooms),
        ServerMsg::Read {
            room,
            seq,
            last_seq,
            unread,
            mentions,
            ..
        } => tab.read_elsewhere(&room, seq, last_seq, (unread, mentions)),
        ServerMsg::History {
            room,
            epoch,
            messages,
            has_more,
        } => {
            if let Some(room) = tab.room(&room) {
                room.prepend(epoch, messages, has_more);
            }
        }
    }
    Vec::new()
}

/// Re-sends every outbox after `wait_ms`: the refused sends are still in them.
fn resend_later(tab: Tab, wait_ms: u64) {
    // One re-send is enough however many sends were refused for going too fast; meanwhile what is
    // written waits in the outbox, so that it goes after what was refused, in the order written.
    // A long wait is not a send's (a person's send budget comes back in seconds; a new room's in
    // an hour, and a refused join leaves nothing in the outbox): nothing is held for it.
    if tab.holding.get_value() || wait_ms > 10_000 {
        return;
    }
    tab.holding.set_value(true);
    leptos::task::spawn_local(async move {
        TimeoutFuture::new(u32::try_from(wait_ms).unwrap_or(u32::MAX)).await;
        tab.holding.set_value(false);
        for room in tab.rooms() {
            room.resends().into_iter().for_each(|msg| tab.send(msg));
        }
    });
}

/// `ws://host/ws` or `wss://host/ws`, matching how the page itself was loaded.
fn socket_url() -> String {
    let location = window().location();
    let scheme = match location.protocol().as_deref() {
        Ok("https:") => "wss",
        _ => "ws",
    };
    let host = location.host().unwrap_or_default();
    format!("{scheme}://{host}/ws")
}
