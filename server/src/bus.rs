//! The node's one Redis bus (cluster mode, docs/CLUSTER.md): one pub/sub connection that carries
//! every channel this node listens to — each room it follows (its log, `log/redis`), the nodes'
//! presence channel (`cluster.rs`) and a probe of its own — and is watched and replaced the same
//! way for all of them.
//!
//! A room's channel is subscribed while the node has use for the room and let go after, so a node
//! hears the rooms its own readers are in, not every room of the cluster. On a Redis Cluster a
//! room's channel is a shard channel (`SSUBSCRIBE`; the append script `SPUBLISH`es): it travels
//! only inside the room's shard, to the nodes that follow the room. The presence channel stays an
//! ordinary one: every node needs all of it.
//!
//! What a subscription missed is the subscriber's to fetch: [`Heard::Resubscribed`] says when a
//! channel was subscribed again after a loss (every channel, after the connection was replaced;
//! one shard's, after redis-rs reconnected to its master by itself). A connection that stays open
//! but no longer delivers (a half-open TCP connection, a wedged proxy) is found by a probe this node
//! publishes on its own channel every [`PROBE_EVERY`]: not heard back within [`PROBE_PATIENCE`],
//! the connection is replaced as if lost. [`Bus::is_up`] says whether it is subscribed now (the
//! readiness check).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use redis::{AsyncCommands, PushInfo, PushKind, RedisResult, aio::PubSubSink};
use tokio::sync::{mpsc, oneshot};

use crate::redis_link::{Commands, RedisLink, timed};

/// How often a node puts a probe on its own bus channel, and how long the probe may take to come
/// back before the bus connection counts as wedged (open, but no longer delivering) and is replaced.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
pub const PROBE_PATIENCE: Duration = Duration::from_secs(5);

/// What a subscriber hears.
#[derive(Debug)]
pub enum Heard<'a> {
    /// A message on `channel`.
    Message { channel: &'a str, payload: &'a [u8] },
    /// Subscribed again after a loss: anything published meanwhile on `channel` (on every
    /// channel of this subscriber, for `None`) was not heard.
    Resubscribed { channel: Option<&'a str> },
}

/// Who hears a channel: what takes its messages — called on the bus's task, in the order they
/// came, so it only hands them on — and its name in the metrics (`log`, `cluster`).
#[derive(Clone)]
pub struct Listener {
    pub hear: Arc<dyn Fn(Heard<'_>) + Send + Sync>,
    pub name: &'static str,
}

/// How a channel is subscribed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An ordinary channel: on a Redis Cluster, every message reaches every node.
    Ordinary,
    /// A room's channel: a shard channel on a Redis Cluster, an ordinary one on one Redis.
    Room,
}

/// A handle to the bus task: cheap to clone.
#[derive(Clone)]
pub struct Bus {
    commands: mpsc::UnboundedSender<Command>,
    up: Arc<AtomicBool>,
    sharded: bool,
}

enum Command {
    Subscribe {
        channel: String,
        kind: Kind,
        listener: Listener,
        done: oneshot::Sender<RedisResult<()>>,
    },
    Unsubscribe {
        channel: String,
    },
}

/// One subscription, as the task keeps it to subscribe again.
struct Subscription {
    kind: Kind,
    listener: Listener,
    /// Its listener's count of bytes heard, found once.
    heard: prometheus::IntCounter,
}

impl Bus {
    /// Connects the bus (resolving once it is first subscribed, or with why it could not be) and
    /// keeps it connected until every handle is gone. `commands` publishes the probe.
    pub async fn start(link: RedisLink, commands: Commands) -> RedisResult<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let up = Arc::new(AtomicBool::new(false));
        let (ready, first) = oneshot::channel();
        let bus = Self {
            commands: tx,
            up: up.clone(),
            sharded: link.is_cluster(),
        };
        tokio::spawn(run(link, commands, rx, up, ready));
        first.await.unwrap_or_else(|_| Err(closed()))?;
        Ok(bus)
    }

    /// Subscribes `channel`, its messages for `listener`; resolves once Redis has confirmed it, so
    /// that whatever is published from then on is heard.
    pub async fn subscribe(
        &self,
        channel: &str,
        kind: Kind,
        listener: Listener,
    ) -> RedisResult<()> {
        let (done, answer) = oneshot::channel();
        self.commands
            .send(Command::Subscribe {
                channel: channel.to_owned(),
                kind,
                listener,
                done,
            })
            .map_err(|_| closed())?;
        timed(async { answer.await.unwrap_or_else(|_| Err(closed())) }).await
    }

    /// Lets `channel` go: nothing more of it is heard.
    pub fn unsubscribe(&self, channel: &str) {
        let _ = self.commands.send(Command::Unsubscribe {
            channel: channel.to_owned(),
        });
    }

    /// Whether the bus is subscribed now: a node that cannot hear the others is not healthy, even
    /// while its commands get answers.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Whether rooms' channels are shard channels (a Redis Cluster): what publishes on one must
    /// use `SPUBLISH`.
    pub fn is_sharded(&self) -> bool {
        self.sharded
    }
}

fn closed() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "the bus has stopped"))
}

/// The bus's connection, on one Redis or on a Redis Cluster.
enum Connection {
    Single {
        sink: PubSubSink,
        stream: redis::aio::PubSubStream,
    },
    Cluster {
        conn: redis::cluster_async::ClusterConnection,
        pushes: mpsc::UnboundedReceiver<PushInfo>,
    },
}

/// What arrives on the connection.
enum Incoming {
    Message(redis::Msg),
    /// A shard of a Redis Cluster confirmed `channel` (again, after redis-rs reconnected to it).
    Subscribed {
        channel: String,
    },
    Nothing,
}

impl Connection {
    async fn open(link: &RedisLink) -> RedisResult<Self> {
        if link.is_cluster() {
            let (tx, pushes) = mpsc::unbounded_channel();
            let conn = timed(link.bus_client(tx)?.get_async_connection()).await?;
            Ok(Self::Cluster { conn, pushes })
        } else {
            // `pubsub` bounds its own connecting.
            let (sink, stream) = link.pubsub().await?.split();
            Ok(Self::Single { sink, stream })
        }
    }

    async fn subscribe(&mut self, channels: &[String], kind: Kind) -> RedisResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        match (self, kind) {
            (Self::Single { sink, .. }, _) => timed(sink.subscribe(channels)).await,
            (Self::Cluster { conn, .. }, Kind::Ordinary) => timed(conn.subscribe(channels)).await,
            (Self::Cluster { conn, .. }, Kind::Room) => {
                // One by one: each is for the master of its own slot.
                for channel in channels {
                    timed(conn.ssubscribe(channel)).await?;
                }
                Ok(())
            }
        }
    }

    async fn unsubscribe(&mut self, channel: &str, kind: Kind) -> RedisResult<()> {
        match (self, kind) {
            (Self::Single { sink, .. }, _) => timed(sink.unsubscribe(channel)).await,
            (Self::Cluster { conn, .. }, Kind::Ordinary) => timed(conn.unsubscribe(channel)).await,
            (Self::Cluster { conn, .. }, Kind::Room) => timed(conn.sunsubscribe(channel)).await,
        }
    }

    /// The next thing that arrives; `None` once the connection is gone.
    async fn next(&mut self) -> Option<Incoming> {
        match self {
            Self::Single { stream, .. } => Some(Incoming::Message(stream.next().await?)),
            Self::Cluster { pushes, .. } => {
                let push = pushes.recv().await?;
                Some(match push.kind {
                    PushKind::SSubscribe | PushKind::Subscribe => {
                        match push.data.first().map(redis::from_redis_value_ref::<String>) {
                            Some(Ok(channel)) => Incoming::Subscribed { channel },
                            _ => Incoming::Nothing,
                        }
                    }
                    PushKind::Message | PushKind::SMessage => redis::Msg::from_push_info(push)
                        .map_or(Incoming::Nothing, Incoming::Message),
                    _ => Incoming::Nothing,
                })
            }
        }
    }
}

/// The bus task: connect, subscribe everything wanted, pass on what arrives, take new
/// subscriptions; after a loss (or a silence), the same again, and tell every listener.
async fn run(
    link: RedisLink,
    commands: Commands,
    mut rx: mpsc::UnboundedReceiver<Command>,
    up: Arc<AtomicBool>,
    ready: oneshot::Sender<RedisResult<()>>,
) {
    let probe = format!("herald:probe:{}", crate::ids::random_hex(8));
    let mut ready = Some(ready);
    let mut subscriptions: HashMap<String, Subscription> = HashMap::new();
    let mut pause = Duration::from_millis(100);
    loop {
        let connected = async {
            let mut conn = Connection::open(&link).await?;
            conn.subscribe(std::slice::from_ref(&probe), Kind::Ordinary)
                .await?;
            for kind in [Kind::Ordinary, Kind::Room] {
                let channels: Vec<String> = subscriptions
                    .iter()
                    .filter(|(_, sub)| sub.kind == kind)
                    .map(|(channel, _)| channel.clone())
                    .collect();
                for chunk in channels.chunks(256) {
                    conn.subscribe(chunk, kind).await?;
                }
            }
            Ok::<_, redis::RedisError>(conn)
        }
        .await;
        let mut conn = match connected {
            Ok(conn) => conn,
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
                tracing::info!("the Redis bus is back; its listeners fetch what they missed");
                let mut told: Vec<&'static str> = Vec::new();
                for sub in subscriptions.values() {
                    if !told.contains(&sub.listener.name) {
                        told.push(sub.listener.name);
                        link.counters.repaired(sub.listener.name);
                        (sub.listener.hear)(Heard::Resubscribed { channel: None });
                    }
                }
            }
        }
        let mut heard = Instant::now();
        let mut probed: Option<Instant> = None;
        let mut every = tokio::time::interval(PROBE_EVERY);
        loop {
            tokio::select! {
                command = rx.recv() => match command {
                    None => return,
                    Some(Command::Subscribe { channel, kind, listener, done }) => {
                        let subscribed = conn.subscribe(std::slice::from_ref(&channel), kind).await;
                        let failed = subscribed.is_err();
                        if !failed {
                            let heard = link.counters.heard_bytes.with_label_values(&[listener.name]);
                            subscriptions.insert(channel, Subscription { kind, listener, heard });
                        }
                        let _ = done.send(subscribed);
                        if failed {
                            break;
                        }
                    }
                    Some(Command::Unsubscribe { channel }) => {
                        if let Some(sub) = subscriptions.remove(&channel)
                            && conn.unsubscribe(&channel, sub.kind).await.is_err()
                        {
                            break;
                        }
                    }
                },
                incoming = conn.next() => match incoming {
                    None => break,
                    Some(Incoming::Nothing) => {}
                    Some(Incoming::Message(msg)) => {
                        let (channel, payload) = (msg.get_channel_name(), msg.get_payload_bytes());
                        if channel == probe {
                            heard = Instant::now();
                            if let Some(sent) = probed.take() {
                                link.counters.took("bus", sent);
                            }
                        } else if let Some(sub) = subscriptions.get(channel) {
                            sub.heard.inc_by(payload.len() as u64);
                            (sub.listener.hear)(Heard::Message { channel, payload });
                        }
                    }
                    Some(Incoming::Subscribed { channel }) => {
                        if let Some(sub) = subscriptions.get(&channel) {
                            (sub.listener.hear)(Heard::Resubscribed { channel: Some(&channel) });
                        }
                    }
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
                }
            }
        }
        up.store(false, Ordering::Relaxed);
        tracing::warn!("the Redis bus connection was lost; reconnecting");
    }
}
