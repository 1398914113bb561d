//! `herald-bench`: load for a running Herald, over its documented WebSocket protocol
//! (docs/PROTOCOL.md), and what came of it: deliveries per second, publish→receive latency (from a
//! timestamp in each message's body), lost and duplicated deliveries (both must be 0), and the
//! server's memory (from `/proc`, idle and under load). Each run prints a table for people and one
//! JSON line for scripts.
//!
//! With `--herald PATH` it starts that binary itself (in a fresh data dir, on a free port, without
//! rate limits); with `--url` and `--pid` it measures a Herald started by hand.
//!
//! Subscriber sockets are spread over the source addresses 127.0.0.2–127.0.0.201, so tens of
//! thousands of connections do not run out of ephemeral ports on one address pair. Above 15 000 (or
//! as `--processes` says) they are held by several processes — helpers started as `herald-bench
//! worker`, which report their counts to this one every 100 ms — so no process passes the
//! open-files limit.

mod alone;
mod bus;
mod follow;
mod load;
mod pages;
mod raw;
mod report;

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

use load::Target;
use report::Report;

#[derive(Parser)]
#[command(name = "herald-bench", about = "Load for Herald, and what came of it.")]
struct Args {
    /// The herald binary to start and measure (in a temporary data dir, on a free port).
    #[arg(long, conflicts_with = "url")]
    herald: Option<PathBuf>,
    /// A Herald already running (`http://127.0.0.1:3000`); give `--pid` too for its memory.
    #[arg(long)]
    url: Option<String>,
    /// The process id of the Herald at `--url`.
    #[arg(long)]
    pid: Option<u32>,
    /// Start the `--herald` binary in cluster mode, its log in the Redis at this URL (which must
    /// be empty of Herald's keys, or hold only what an earlier run of the same scenario left); for
    /// `redis-alone`, the Redis to measure.
    #[arg(long)]
    redis: Option<String>,
    /// Processes holding the subscribers (each opens its own sockets, so together they pass one
    /// process's open-files limit). 0: one per 15 000 subscribers.
    #[arg(long, default_value_t = 0)]
    processes: usize,
    /// Subscribers read what they receive, as a person's focused tab does: each is a person of its
    /// own, looks twice a second (each on its own phase) and says it has read up to the newest
    /// message (`read`) if one came, at most every 2 s while messages keep coming — less often in
    /// a room of more than 500 present (the page's pace).
    #[arg(long, global = true)]
    read: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Clone)]
pub enum Scenario {
    /// One room, many subscribers, a rising publish rate: the highest deliveries/s with p99 ≤ the
    /// latency budget and nothing lost.
    Fanout {
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        /// Messages per second to try, in order; stops at the first that misses the budget.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "1,2,5,8,10,12,15,20,30,50"
        )]
        rates: Vec<u32>,
        #[command(flatten)]
        steps: Steps,
    },
    /// Many connections that join a room and then do nothing: the server's memory per connection.
    Idle {
        #[arg(long, default_value_t = 15_000)]
        connections: usize,
    },
    /// Many small rooms at once: deliveries/s and latency, to compare per delivery with one big room.
    Rooms {
        #[arg(long, default_value_t = 1000)]
        rooms: usize,
        #[arg(long, default_value_t = 10)]
        per_room: usize,
        /// Messages per second (over all rooms) to try, in order.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "1000,2000,4000,5000,6000,8000,10000"
        )]
        rates: Vec<u32>,
        #[command(flatten)]
        steps: Steps,
    },
    /// Many publishers sending as fast as they are acknowledged: durable, acked messages per second.
    Publish {
        #[arg(long, default_value_t = 1000)]
        publishers: usize,
        #[arg(long, default_value_t = 100)]
        rooms: usize,
        /// Sends each publisher keeps in flight.
        #[arg(long, default_value_t = 4)]
        window: usize,
        #[arg(long, default_value_t = 8.0)]
        seconds: f64,
    },
    /// Clients that drop, miss messages, and all reconnect at once with their cursors: time until
    /// every one has caught up.
    Reconnect {
        #[arg(long, default_value_t = 10_000)]
        clients: usize,
        #[arg(long, default_value_t = 100)]
        rooms: usize,
        #[arg(long, default_value_t = 100)]
        missed: u64,
        /// With `--redis`: start this many more nodes, and bring the clients back to them instead
        /// of the node they left (a cluster's node lost, its clients spread over the others).
        #[arg(long, default_value_t = 0, requires = "redis")]
        other_nodes: usize,
        /// What they miss is edits of a message they have, not new messages.
        #[arg(long)]
        edits: bool,
    },
    /// Several nodes on one Redis (`--herald` and `--redis`): subscribers shared over the nodes, the
    /// publishers on the first, a rising rate as in `fanout`; latency apart for the publishers' node
    /// and the others. Compare with `fanout` on one node with as many subscribers.
    Cluster {
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[arg(long, default_value_t = 9_000)]
        subscribers: usize,
        #[arg(long, default_value_t = 1)]
        rooms: usize,
        #[arg(long, value_delimiter = ',', default_value = "1,2,5,8,10,12,15,20")]
        rates: Vec<u32>,
        /// Kill every node's bus connection (`CLIENT KILL TYPE pubsub` on `--redis`) halfway
        /// through each step: its max latency is then the time to repair.
        #[arg(long)]
        cut_bus: bool,
        #[command(flatten)]
        steps: Steps,
    },
    /// Several nodes on one Redis (`--herald` and `--redis`), `rooms` rooms each read on one node
    /// only (room `i` on node `i % nodes`, its publisher there too), `rate` messages a second into
    /// them all: the bytes each node's bus brought it and the CPU it used.
    Bus {
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[arg(long, default_value_t = 1_000)]
        rooms: usize,
        #[arg(long, default_value_t = 2)]
        per_room: usize,
        #[arg(long, default_value_t = 2_000)]
        rate: u32,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// Redis alone (`--redis`, no herald): Herald's append script, one message per call into
    /// random rooms, from `clients` connections with `depth` calls in flight each, and a pattern
    /// subscriber: the stored messages/s `publish --redis` is measured against.
    RedisAlone {
        #[arg(long, default_value_t = 50)]
        clients: usize,
        #[arg(long, default_value_t = 16)]
        depth: usize,
        #[arg(long, default_value_t = 100)]
        rooms: usize,
        #[arg(long, default_value_t = 8.0)]
        seconds: f64,
    },
    /// Signed-in readers loading a room's page over keep-alive connections, each request as the
    /// next of `viewers` people: pages/s without compression, with gzip and with brotli.
    Pages {
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 200)]
        viewers: usize,
        /// Messages in the room (the page shows the latest 50).
        #[arg(long, default_value_t = 50)]
        messages: usize,
        /// Seconds of loading per encoding.
        #[arg(long, default_value_t = 8.0)]
        seconds: f64,
    },
    /// A few hundred subscribers for a couple of seconds; fails unless nothing was lost or doubled.
    /// One person on two devices in a room (with `--redis`, the second on another node): the first
    /// reads each message another person writes; how soon the second is told where they read.
    ReadFollow {
        #[arg(long, default_value_t = 200)]
        samples: usize,
    },
    /// A message written (with `--redis`, on one node) and searched for (on another) until found:
    /// how far the search index lags the log.
    SearchFollow {
        #[arg(long, default_value_t = 200)]
        samples: usize,
    },
    /// Run by `cargo xtask test`, so the tool keeps working.
    Smoke,
    /// Holds a share of another herald-bench's subscribers (started by it; not for people).
    #[command(hide = true)]
    Worker {
        #[arg(long, value_delimiter = ',')]
        rooms: Vec<String>,
        #[arg(long)]
        first: usize,
        #[arg(long)]
        count: usize,
    },
}

/// How each step of a rising-rate scenario runs, and what counts as keeping up.
#[derive(clap::Args, Clone)]
pub struct Steps {
    /// Seconds of publishing per step.
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// A step keeps up if 99 % of its deliveries take at most this long (and none is lost).
    #[arg(long, default_value_t = 100)]
    p99_budget_ms: u64,
}

impl Steps {
    fn step(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }

    fn budget(&self) -> Duration {
        Duration::from_millis(self.p99_budget_ms)
    }
}

/// `n` more nodes of the `--herald` binary on the same `--redis`.
/// Runs `scenario` from `target` to a second node started for it (with `--redis`), or to `target`
/// itself (without); the second node is stopped after.
async fn between_two(
    args: &Args,
    target: &Target,
    scenario: impl AsyncFnOnce(&Target, &Target) -> anyhow::Result<Report>,
) -> anyhow::Result<Report> {
    let others = match args.redis {
        Some(_) => more_nodes(args, 1).await?,
        None => Vec::new(),
    };
    let outcome = scenario(target, others.first().unwrap_or(target)).await;
    for node in others {
        node.stop().await;
    }
    outcome
}

async fn more_nodes(args: &Args, n: usize) -> anyhow::Result<Vec<Target>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let (Some(bin), Some(redis)) = (&args.herald, &args.redis) else {
        anyhow::bail!("more than one node needs --herald PATH and --redis URL");
    };
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(Target::start(bin, Some(redis)).await?);
    }
    Ok(nodes)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        if let Scenario::RedisAlone {
            clients,
            depth,
            rooms,
            seconds,
        } = &args.scenario
        {
            let Some(url) = &args.redis else {
                anyhow::bail!("redis-alone needs --redis URL");
            };
            let duration = Duration::from_secs_f64(*seconds);
            let report = alone::redis_alone(url, *clients, *depth, *rooms, duration).await?;
            report.print();
            if !report.ok {
                anyhow::bail!("a stored message was not pushed: see above");
            }
            return Ok(());
        }
        if args.redis.is_some() && args.herald.is_none() {
            anyhow::bail!("--redis starts the --herald binary on it: give --herald PATH");
        }
        let mut target = match (&args.herald, &args.url, &args.scenario) {
            (_, Some(url), Scenario::Worker { .. }) => Target::existing(url, None)?,
            (Some(bin), _, _) => Target::start(bin, args.redis.as_deref()).await?,
            (None, Some(url), _) => Target::existing(url, args.pid)?,
            (None, None, _) => anyhow::bail!("give --herald PATH, or --url URL --pid PID"),
        };
        target.processes = args.processes;
        target.reading = args.read;
        if let Scenario::Worker {
            rooms,
            first,
            count,
        } = &args.scenario
        {
            return load::worker(&target, rooms, *first, *count).await;
        }
        let outcome = match args.scenario.clone() {
            Scenario::Fanout {
                subscribers,
                rates,
                steps,
            } => {
                let (step, budget) = (steps.step(), steps.budget());
                let on = load::Placement::one(&target);
                load::fanout(&on, 1, subscribers, &rates, step, budget, "fanout").await
            }
            Scenario::Rooms {
                rooms,
                per_room,
                rates,
                steps,
            } => {
                let (step, budget) = (steps.step(), steps.budget());
                let on = load::Placement::one(&target);
                load::fanout(&on, rooms, per_room, &rates, step, budget, "rooms").await
            }
            Scenario::Idle { connections } => load::idle(&target, connections).await,
            Scenario::Publish {
                publishers,
                rooms,
                window,
                seconds,
            } => {
                load::publish(
                    &target,
                    publishers,
                    rooms,
                    window,
                    Duration::from_secs_f64(seconds),
                )
                .await
            }
            Scenario::Reconnect {
                clients,
                rooms,
                missed,
                other_nodes,
                edits,
            } => {
                let others = more_nodes(&args, other_nodes).await?;
                let back_to: Vec<&Target> = if others.is_empty() {
                    vec![&target]
                } else {
                    others.iter().collect()
                };
                let outcome =
                    load::reconnect(&target, &back_to, clients, rooms, missed, edits).await;
                for node in others {
                    node.stop().await;
                }
                outcome
            }
            Scenario::Cluster {
                nodes,
                subscribers,
                rooms,
                rates,
                cut_bus,
                steps,
            } => {
                let others = more_nodes(&args, nodes.saturating_sub(1)).await?;
                let on = load::Placement {
                    publishers: &target,
                    subscribers: std::iter::once(&target).chain(&others).collect(),
                    cut_bus: args.redis.clone().filter(|_| cut_bus),
                };
                let (step, budget) = (steps.step(), steps.budget());
                let per_room = subscribers / rooms.max(1);
                let outcome =
                    load::fanout(&on, rooms, per_room, &rates, step, budget, "cluster").await;
                for node in others {
                    node.stop().await;
                }
                outcome
            }
            Scenario::Bus {
                nodes,
                rooms,
                per_room,
                rate,
                seconds,
            } => {
                let redis = args
                    .redis
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("bus needs --redis"))?;
                let others = more_nodes(&args, nodes.saturating_sub(1)).await?;
                let all: Vec<&load::Target> = std::iter::once(&target).chain(&others).collect();
                let outcome = bus::bus(&all, &redis, rooms, per_room, rate, seconds).await;
                for node in others {
                    node.stop().await;
                }
                outcome
            }
            Scenario::Pages {
                connections,
                viewers,
                messages,
                seconds,
            } => pages::pages(&target, connections, viewers, messages, seconds).await,
            Scenario::ReadFollow { samples } => {
                between_two(&args, &target, async |a, b| {
                    follow::read_follow(a, b, samples).await
                })
                .await
            }
            Scenario::SearchFollow { samples } => {
                between_two(&args, &target, async |a, b| {
                    follow::search_follow(a, b, samples).await
                })
                .await
            }
            Scenario::Smoke => load::smoke(&target).await,
            Scenario::Worker { .. } | Scenario::RedisAlone { .. } => {
                Err(anyhow::anyhow!("not a scenario for a running herald"))
            }
        };
        target.stop().await;
        let report = outcome?;
        report.print();
        if !report.ok {
            anyhow::bail!("lost or duplicated deliveries: see above");
        }
        Ok(())
    })
}
