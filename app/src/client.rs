//! The browser's side of `/ws` (feature `hydrate` only): opens the socket, turns server frames into
//! state changes, sends what the composer hands over, and reconnects with backoff when the socket drops.
//!
//! One socket per tab. The state it drives lives in [`ChatState`]; components never touch the socket.

use std::rc::Rc;

use futures::{SinkExt, StreamExt, channel::mpsc};
use gloo_net::websocket::{Message, futures::WebSocket};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;

use crate::{
    protocol::{ClientMsg, ServerMsg},
    state::{ChatState, Connection},
};

/// First retry delay after a drop; doubles per failed attempt up to [`MAX_BACKOFF_MS`].
const BASE_BACKOFF_MS: u32 = 500;
/// Longest wait between attempts: a user coming back to the tab should not wait longer than this.
const MAX_BACKOFF_MS: u32 = 15_000;

/// Starts the socket client for this page. Call once, after hydration.
pub fn connect(chat: ChatState) {
    let (tx, rx) = mpsc::unbounded::<ClientMsg>();
    chat.outbox.set_value(Some(Rc::new(move |msg| {
        // Only fails if the client task is gone, which happens only when the page is.
        let _ = tx.unbounded_send(msg);
    })));
    leptos::task::spawn_local(run(chat, rx));
}

async fn run(chat: ChatState, mut outgoing: mpsc::UnboundedReceiver<ClientMsg>) {
    let mut failures = 0u32;
    loop {
        chat.connection.set(Connection::Connecting);
        if session(chat, &mut outgoing).await {
            failures = 0; // It worked for a while: start over with a short delay.
        }
        failures = failures.saturating_add(1);
        let mut wait_ms = backoff_ms(failures);
        while wait_ms > 0 {
            chat.connection.set(Connection::Reconnecting {
                in_secs: wait_ms.div_ceil(1000),
            });
            let step = wait_ms.min(1000);
            TimeoutFuture::new(step).await;
            wait_ms -= step;
        }
    }
}

/// Exponential backoff with jitter: half the window fixed, half random, so a server restart is not
/// met by every tab at the same instant.
fn backoff_ms(failures: u32) -> u32 {
    let window = BASE_BACKOFF_MS
        .saturating_mul(1 << failures.saturating_sub(1).min(10))
        .min(MAX_BACKOFF_MS);
    window / 2 + (js_sys::Math::random() * f64::from(window / 2)) as u32
}

/// One connection, from open to close. Returns whether the server welcomed us.
async fn session(chat: ChatState, outgoing: &mut mpsc::UnboundedReceiver<ClientMsg>) -> bool {
    let Ok(socket) = WebSocket::open(&socket_url()) else {
        return false;
    };
    let (mut sink, stream) = socket.split();
    let mut stream = stream.fuse();
    let mut welcomed = false;
    loop {
        futures::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => match ServerMsg::decode(&text) {
                    Ok(msg) => {
                        welcomed |= matches!(msg, ServerMsg::Welcome { .. });
                        apply(chat, msg);
                    }
                    Err(err) => leptos::logging::warn!("ignoring a frame from the server: {err}"),
                },
                Some(Ok(Message::Bytes(_))) => {}
                Some(Err(_)) | None => break,
            },
            msg = outgoing.next() => {
                let Some(msg) = msg else { break };
                if sink.send(Message::Text(msg.encode())).await.is_err() {
                    chat.last_error.set(Some("Not sent: the connection dropped.".into()));
                    break;
                }
            }
        }
    }
    welcomed
}

fn apply(chat: ChatState, msg: ServerMsg) {
    match msg {
        ServerMsg::Welcome { you, epoch, .. } => {
            chat.me.set(Some(you));
            chat.epoch.set(Some(epoch));
            chat.connection.set(Connection::Connected);
        }
        ServerMsg::Message(message) => chat.push_message(message),
        ServerMsg::Ack { .. } => {}
        ServerMsg::Error { message, .. } => chat.last_error.set(Some(message)),
    }
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
