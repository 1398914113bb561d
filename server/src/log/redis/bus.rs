//! The bus: every room's channel, subscribed before the rooms are read, probed so that a silent
//! connection is found, and the pushes' format (`EPOCH` then a line per message, or `forget EPOCH`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use app::protocol::Entry;
use futures::StreamExt;
use redis::AsyncCommands;
use tokio::sync::{mpsc, oneshot};

use super::{Event, LogError, Stored, keys::*, new_epoch, timed};
use crate::redis_link::{Commands, RedisLink};

/// How often a node puts a probe on its own bus channel, and how long the probe may take to come
/// back before the bus connection counts as wedged (open, but no longer delivering) and is replaced.
pub(super) const PROBE_EVERY: Duration = Duration::from_secs(1);
pub(super) const PROBE_PATIENCE: Duration = Duration::from_secs(5);

/// Subscribes to every room's channel and forwards what arrives; resolves once first subscribed.
/// After a lost connection it subscribes again and tells the sequencer, which reads every room
/// from where it stands: a push lost meanwhile is never a silent gap. A connection that stays open
/// but stops delivering (a half-open TCP connection, a wedged proxy: no error ever comes) is found
/// by a probe this node publishes on a channel of its own through `commands` every
/// [`PROBE_EVERY`]: not heard back within [`PROBE_PATIENCE`], the connection is replaced as if lost.
pub(super) fn listen(
    link: RedisLink,
    commands: Commands,
    events: mpsc::UnboundedSender<Event>,
    up: Arc<AtomicBool>,
) -> impl Future<Output = Result<(), LogError>> {
    let (ready, subscribed) = oneshot::channel();
    let probe = format!("{PREFIX}:probe:{}", new_epoch());
    tokio::spawn(async move {
        let mut ready = Some(ready);
        let mut pause = Duration::from_millis(100);
        loop {
            let connected = async {
                let mut pubsub = timed(link.pubsub()).await?;
                timed(pubsub.psubscribe(LIVE_PATTERN)).await?;
                timed(pubsub.subscribe(&probe)).await?;
                Ok::<_, LogError>(pubsub)
            }
            .await;
            let pubsub = match connected {
                Ok(pubsub) => pubsub,
                Err(e) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(e));
                        return;
                    }
                    tracing::warn!("the Redis bus is unreachable: {e}; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            pause = Duration::from_millis(100);
            up.store(true, Ordering::Relaxed);
            match ready.take() {
                Some(ready) => {
                    let _ = ready.send(Ok(()));
                }
                None => {
                    link.counters.repaired("log");
                    tracing::info!("the Redis bus is back; filling what it may have missed");
                    if events.send(Event::Resubscribed).is_err() {
                        return;
                    }
                }
            }
            let mut stream = pubsub.into_on_message();
            let mut heard = Instant::now();
            let mut probed: Option<Instant> = None;
            let mut every = tokio::time::interval(PROBE_EVERY);
            loop {
                let msg = tokio::select! {
                    msg = stream.next() => match msg {
                        Some(msg) => msg,
                        None => break,
                    },
                    _ = every.tick() => {
                        if heard.elapsed() > PROBE_PATIENCE {
                            tracing::warn!(
                                "the Redis bus went silent (no probe back in {PROBE_PATIENCE:?}); \
                                 replacing its connection"
                            );
                            break;
                        }
                        probed.get_or_insert_with(Instant::now);
                        let (mut commands, probe) = (commands.clone(), probe.clone());
                        tokio::spawn(async move {
                            let _ = timed(commands.publish::<_, _, ()>(probe, "")).await;
                        });
                        continue;
                    }
                };
                if msg.get_channel_name() == probe {
                    heard = Instant::now();
                    if let Some(sent) = probed.take() {
                        link.counters.took("bus", sent);
                    }
                    continue;
                }
                let Some(room) = room_of_channel(msg.get_channel_name()) else {
                    continue;
                };
                if let Some(epoch) = forgotten_of_push(msg.get_payload_bytes()) {
                    let (room, epoch) = (room.to_owned(), epoch.to_owned());
                    if events.send(Event::Forgotten { room, epoch }).is_err() {
                        return;
                    }
                    continue;
                }
                let Some((epoch, entries)) = entries_of_push(room, msg.get_payload_bytes()) else {
                    tracing::warn!(%room, "a push that cannot be read was skipped");
                    continue;
                };
                if events.send(Event::Pushed { epoch, entries }).is_err() {
                    return;
                }
            }
            up.store(false, Ordering::Relaxed);
            tracing::warn!("the Redis bus connection was lost; reconnecting");
        }
    });
    async move { subscribed.await.map_err(|_| LogError::Closed)? }
}

/// What goes on a room's channel for stored messages, as the append script publishes it: the
/// room's epoch, then a [`push_line`] per message, each on its own line (JSON holds no raw newline).
pub(super) fn push_of(epoch: &str, lines: &[String]) -> String {
    let mut push = epoch.to_owned();
    for line in lines {
        push.push('\n');
        push.push_str(line);
    }
    push
}

/// One message of a push: `SEQ SENT_AT_MS JSON`.
pub(super) fn push_line(seq: u64, sent_at: impl std::fmt::Display, json: &str) -> String {
    format!("{seq} {sent_at} {json}")
}

/// The epoch a `forget EPOCH` push names (the room it forgot is the channel's), if that is what
/// the push is: a message push starts with its epoch and a line break, never with `forget `.
pub(super) fn forgotten_of_push(payload: &[u8]) -> Option<&str> {
    let epoch = std::str::from_utf8(payload.strip_prefix(b"forget ")?).ok()?;
    (!epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(epoch)
}

/// The epoch and entries of a push on `room`'s channel; `None` if any of it cannot be read (or is
/// for another room).
pub(super) fn entries_of_push(room: &str, payload: &[u8]) -> Option<(String, Vec<Entry>)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut lines = text.split('\n');
    let epoch = lines.next()?.to_owned();
    let mut entries = Vec::new();
    for line in lines {
        let mut parts = line.splitn(3, ' ');
        let seq = parts.next()?.parse().ok()?;
        let sent_at = parts.next()?.parse().ok()?;
        let stored: Stored = serde_json::from_str(parts.next()?).ok()?;
        if stored.room != room {
            return None;
        }
        entries.push(stored.entry(seq, sent_at));
    }
    (!entries.is_empty()).then_some((epoch, entries))
}

#[cfg(test)]
mod tests {
    use super::{super::seq_of_id, entries_of_push, forgotten_of_push, push_line, push_of};
    use crate::log::redis::keys::room_of_channel;
    use app::protocol::Entry;

    #[test]
    fn a_forget_push_names_its_epoch_and_is_never_a_message_push() {
        assert_eq!(
            forgotten_of_push(b"forget 0f3a9c2e11d4b7a8"),
            Some("0f3a9c2e11d4b7a8")
        );
        for not in [
            &b"forget "[..],
            b"forget a b",
            b"forget e1\n1 2 {}",
            b"e1\n1 2 {}",
            b"forgot e1",
        ] {
            assert_eq!(
                forgotten_of_push(not),
                None,
                "{:?}",
                String::from_utf8_lossy(not)
            );
        }
        assert!(entries_of_push("general", b"forget 0f3a9c2e11d4b7a8").is_none());
    }

    #[test]
    fn channels_pushes_and_ids_read_back() {
        assert_eq!(room_of_channel("herald:{general}:live"), Some("general"));
        assert_eq!(room_of_channel("herald:{general}:meta"), None);
        assert_eq!(seq_of_id("42-0"), Some(42));
        let json = |body: &str| {
            format!(
                r#"{{"room":"general","author":{{"id":"a","name":"Ann"}},"client_id":"c","body":"{body}"}}"#
            )
        };
        let push = push_of(
            "e1",
            &[
                push_line(7, 1_700_000_000_000_u64, &json("hi there")),
                push_line(8, 1_700_000_000_001_u64, &json("and \\n on")),
            ],
        );
        let (epoch, entries) = entries_of_push("general", push.as_bytes()).expect("a push");
        let read: Vec<(u64, u64, &str)> = entries
            .iter()
            .filter_map(|e| e.message())
            .map(|m| (m.seq, m.sent_at, m.body.as_str()))
            .collect();
        assert_eq!(epoch, "e1");
        assert_eq!(
            read,
            [
                (7, 1_700_000_000_000, "hi there"),
                (8, 1_700_000_000_001, "and \n on")
            ]
        );
        assert!(
            entries_of_push("other", push.as_bytes()).is_none(),
            "a push for another room's channel"
        );
        assert!(entries_of_push("general", b"e1\nx 1 {}").is_none());
        assert!(entries_of_push("general", b"e1").is_none(), "no message");
        // A type this build does not know (a newer node's) is read, and passed on whole.
        let newer = r#"{"room":"general","author":{"id":"a","name":"Ann"},"client_id":"c","body":"","type":"poll","fields":{"options":["x","y"]}}"#;
        let push = push_of("e1", &[push_line(9, 5_u64, newer)]);
        let (_, entries) = entries_of_push("general", push.as_bytes()).expect("a push");
        let [Entry::Other(other)] = &entries[..] else {
            panic!("{entries:?}")
        };
        assert_eq!((other.seq, other.entry_type.as_str()), (9, "poll"));
        let frame: serde_json::Value = serde_json::from_str(&other.frame).expect("json");
        assert_eq!(frame["type"], "poll");
        assert_eq!(frame["seq"], 9);
        assert_eq!(frame["options"][1], "y");
    }
}
