//! Herald's way to Redis in cluster mode (docs/CLUSTER.md), whether `--redis` names one Redis or any
//! node of a Redis Cluster (several masters, told apart at connect by `INFO cluster`):
//! [`Commands`] sends each command to the master holding its key's slot (every key Herald keeps for
//! a room carries the room as a hash tag, so a room's keys and its append script stay in one slot),
//! and the node's bus (`bus.rs`) subscribes through [`RedisLink::pubsub`] (one Redis) or
//! [`RedisLink::bus_client`] (a Redis Cluster: a room's shard channel on its master).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult,
    Value,
    aio::{ConnectionLike, ConnectionManager, PubSub},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
};

/// How long connecting to one node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a Redis Cluster command is tried again (a refused connection, a redirection), and the
/// least and most wait between tries, in milliseconds.
const CLUSTER_RETRIES: u32 = 3;
const CLUSTER_RETRY_WAIT_MS: (u64, u64) = (20, 200);

/// One Redis, or a Redis Cluster: cheap to clone.
#[derive(Clone)]
pub struct RedisLink {
    shape: Shape,
    /// Every node known (the one named first), for pub/sub and the settings check.
    nodes: Arc<[ConnectionInfo]>,
    /// The node the next pub/sub connection tries first: after a lost one, the next node.
    next: Arc<AtomicUsize>,
    /// What the log and the cluster's presence count about Redis (`metrics.rs` exports them).
    pub counters: RedisCounters,
}

/// Round trips to Redis and repaired subscriptions, counted by whoever uses the link.
#[derive(Clone)]
pub struct RedisCounters {
    /// By `op`: `append` (a batch's pipeline), `bus` (a probe published until heard back).
    pub round_trip: prometheus::HistogramVec,
    /// By `bus`: `log` (the rooms' channels), `cluster` (presence): a subscription replaced.
    pub repairs: prometheus::IntCounterVec,
    /// By `bus`, as `repairs`: the bytes of the messages the bus brought this node. A node hears
    /// the rooms it follows, so this follows its own readers, not the whole cluster's traffic.
    pub heard_bytes: prometheus::IntCounterVec,
}

impl Default for RedisCounters {
    /// Each bus's counts are there from the first scrape, at 0.
    fn default() -> Self {
        let counters = Self::unlabelled();
        for bus in ["log", "cluster"] {
            counters.repairs.with_label_values(&[bus]);
            counters.heard_bytes.with_label_values(&[bus]);
        }
        counters
    }
}

impl RedisCounters {
    fn unlabelled() -> Self {
        let opts = prometheus::HistogramOpts::new(
            "herald_redis_round_trip_seconds",
            "Cluster mode: round trips to Redis, by operation.",
        )
        .buckets(crate::metrics::LATENCY_BUCKETS.to_vec());
        Self {
            round_trip: prometheus::HistogramVec::new(opts, &["op"])
                .expect("a valid metric (constant)"),
            repairs: prometheus::IntCounterVec::new(
                prometheus::Opts::new(
                    "herald_bus_repairs_total",
                    "Cluster mode: pub/sub subscriptions replaced after a loss or a silence.",
                ),
                &["bus"],
            )
            .expect("a valid metric (constant)"),
            heard_bytes: prometheus::IntCounterVec::new(
                prometheus::Opts::new(
                    "herald_bus_received_bytes_total",
                    "Cluster mode: bytes of the messages the Redis bus brought this node.",
                ),
                &["bus"],
            )
            .expect("a valid metric (constant)"),
        }
    }
}

impl RedisCounters {
    /// Its metrics, for the registry (`Metrics::watch`).
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.round_trip.clone()),
            Box::new(self.repairs.clone()),
            Box::new(self.heard_bytes.clone()),
        ]
    }

    pub fn took(&self, op: &str, since: std::time::Instant) {
        self.round_trip
            .with_label_values(&[op])
            .observe(since.elapsed().as_secs_f64());
    }

    pub fn repaired(&self, bus: &str) {
        self.repairs.with_label_values(&[bus]).inc();
    }
}

#[derive(Clone)]
enum Shape {
    Single,
    Cluster(Box<ClusterClient>),
}

/// Commands to the Redis (or to the master of each key's slot): cheap to clone, reconnects by
/// itself. A pipeline must keep to one room (one slot) on a Redis Cluster.
#[derive(Clone)]
pub enum Commands {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

impl RedisLink {
    /// Reaches the Redis at `url` and finds out whether it is one node of a Redis Cluster (then
    /// also every other node it knows of).
    pub async fn connect(url: &str) -> RedisResult<Self> {
        let first = url.into_connection_info()?;
        let mut conn =
            timed(redis::Client::open(first.clone())?.get_multiplexed_async_connection()).await?;
        let info: String = timed(redis::cmd("INFO").arg("cluster").query_async(&mut conn)).await?;
        let cluster_enabled = info.lines().any(|line| line.trim() == "cluster_enabled:1");
        if !cluster_enabled {
            return Ok(Self {
                shape: Shape::Single,
                nodes: vec![first].into(),
                next: Arc::default(),
                counters: RedisCounters::default(),
            });
        }
        let slots: Value = timed(redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut conn)).await?;
        let mut nodes = vec![first.clone()];
        for (host, port) in node_addresses(&slots) {
            let node = first.clone().set_addr(ConnectionAddr::Tcp(host, port));
            if !nodes.iter().any(|known| known.addr() == node.addr()) {
                nodes.push(node);
            }
        }
        let client = ClusterClient::builder(nodes.clone())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(CONNECT_TIMEOUT)
            // A master that refuses connections (down, restarting) is told at once, not after
            // redis-rs's default retries (16, the first after 1.28 s), which outlast the command
            // limit: its rooms answer `unavailable` in a few hundred ms, and the pages send again.
            // Redirections after a failover are retried as before, within these.
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(CLUSTER_RETRY_WAIT_MS.0)
            .max_retry_wait(CLUSTER_RETRY_WAIT_MS.1)
            .build()?;
        Ok(Self {
            shape: Shape::Cluster(Box::new(client)),
            nodes: nodes.into(),
            next: Arc::default(),
            counters: RedisCounters::default(),
        })
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.shape, Shape::Cluster(_))
    }

    /// Every node known, as `host:port` (or the socket's path).
    pub fn nodes(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| node.addr().to_string())
            .collect()
    }

    /// A plain connection to each node known, for what must be asked of every node (its settings).
    pub async fn each_node(&self) -> Vec<(String, RedisResult<redis::aio::MultiplexedConnection>)> {
        let mut all = Vec::new();
        for node in self.nodes.iter() {
            let conn = match redis::Client::open(node.clone()) {
                Ok(client) => timed(client.get_multiplexed_async_connection()).await,
                Err(e) => Err(e),
            };
            all.push((node.addr().to_string(), conn));
        }
        all
    }

    /// A connection for commands.
    pub async fn commands(&self) -> RedisResult<Commands> {
        match &self.shape {
            Shape::Single => {
                let client = redis::Client::open(self.nodes[0].clone())?;
                Ok(Commands::Single(
                    timed(client.get_connection_manager()).await?,
                ))
            }
            Shape::Cluster(client) => Ok(Commands::Cluster(
                timed(client.get_async_connection()).await?,
            )),
        }
    }

    /// A client for the bus on a Redis Cluster: RESP3, its subscriptions' messages (and their
    /// confirmations, again after a reconnection) sent to `pushes`; a shard channel is subscribed
    /// on the master of its slot, and subscribed again there by redis-rs after a loss.
    pub fn bus_client(
        &self,
        pushes: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> RedisResult<ClusterClient> {
        ClusterClient::builder(self.nodes.iter().cloned())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(CONNECT_TIMEOUT)
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(CLUSTER_RETRY_WAIT_MS.0)
            .max_retry_wait(CLUSTER_RETRY_WAIT_MS.1)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(pushes)
            .build()
    }

    /// A pub/sub connection to the first node that answers, starting after the one the last call
    /// reached (a node that went away is not tried first again).
    pub async fn pubsub(&self) -> RedisResult<PubSub> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for i in 0..self.nodes.len() {
            let node = &self.nodes[(start + i) % self.nodes.len()];
            let connected = match redis::Client::open(node.clone()) {
                Ok(client) => timed(client.get_async_pubsub()).await,
                Err(e) => Err(e),
            };
            match connected {
                Ok(pubsub) => {
                    // The next call after this one's loss starts at the node after this one.
                    self.next
                        .store((start + i + 1) % self.nodes.len(), Ordering::Relaxed);
                    return Ok(pubsub);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::Io, "no Redis node is known"))
        }))
    }
}

/// Runs `fut` within [`CONNECT_TIMEOUT`]; a timeout is an I/O error like a refused connection.
/// Also what the bus allows one subscription (`bus.rs`).
pub(crate) async fn timed<T>(fut: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
    match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
        Ok(result) => result,
        Err(_) => Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "Redis did not answer in time",
        ))),
    }
}

/// The `(host, port)` of every node in a `CLUSTER SLOTS` answer: for each slot range
/// `[start, end, [host, port, id, ..], replicas..]`. Anything not of that shape is passed over.
fn node_addresses(slots: &Value) -> Vec<(String, u16)> {
    let Value::Array(ranges) = slots else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for range in ranges {
        let Value::Array(parts) = range else { continue };
        for node in parts.iter().skip(2) {
            let Value::Array(fields) = node else { continue };
            let host = match fields.first() {
                Some(Value::BulkString(bytes)) => String::from_utf8(bytes.clone()).ok(),
                Some(Value::SimpleString(text)) => Some(text.clone()),
                _ => None,
            };
            let port = match fields.get(1) {
                Some(Value::Int(port)) => u16::try_from(*port).ok(),
                _ => None,
            };
            // An empty host or `?` is a node whose address its peers do not know.
            if let (Some(host), Some(port)) = (host, port)
                && !host.is_empty()
                && host != "?"
                && !found.contains(&(host.clone(), port))
            {
                found.push((host, port));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn every_master_and_replica_of_cluster_slots_is_found_once() {
        let node = |host: &str, port: i64, id: &str| {
            Value::Array(vec![bulk(host), Value::Int(port), bulk(id)])
        };
        let slots = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7000, "a"),
                node("127.0.0.1", 7003, "d"),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(10922),
                node("127.0.0.1", 7001, "b"),
            ]),
            // The same master again for a second range, and nodes whose address is not known.
            Value::Array(vec![
                Value::Int(10923),
                Value::Int(10999),
                node("127.0.0.1", 7000, "a"),
                node("", 7009, "x"),
                node("?", 7010, "y"),
                node("127.0.0.1", 70_000, "z"),
            ]),
            Value::Int(3),
        ]);
        assert_eq!(
            node_addresses(&slots),
            [
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7003),
                ("127.0.0.1".to_owned(), 7001)
            ]
        );
        assert!(node_addresses(&Value::Nil).is_empty());
    }
}
