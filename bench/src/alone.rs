//! `herald-bench redis-alone`: what Redis itself does with Herald's own append script
//! (`server/src/log/redis/append.lua`, the same file), one message per call into random rooms, from many
//! connections each keeping a pipeline in flight, with a pattern subscriber on every room's channel
//! as each node has. The yardstick for `publish --redis`: stored messages per second that Redis
//! alone gives, on the same cores, in the same hour.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::json;

use crate::report::Report;

/// The script Herald runs for every append.
const APPEND: &str = include_str!("../../server/src/log/redis/append.lua");

/// Runs `clients` connections, each sending `depth` appends per round trip, for `duration`.
pub async fn redis_alone(
    url: &str,
    clients: usize,
    depth: usize,
    rooms: usize,
    duration: Duration,
) -> anyhow::Result<Report> {
    let client = redis::Client::open(url)?;
    let script = redis::Script::new(APPEND);
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(APPEND)
        .query_async(&mut conn)
        .await?;
    // A subscriber on every room's channel, as each node has: Redis pays for the pushes too.
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe("herald:{*}:live").await?;
    let pushed = Arc::new(AtomicU64::new(0));
    let heard = pushed.clone();
    let listening = tokio::spawn(async move {
        let mut stream = pubsub.into_on_message();
        while stream.next().await.is_some() {
            heard.fetch_add(1, Ordering::Relaxed);
        }
    });

    let stored = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, stored, hash) = (client.clone(), stored.clone(), script.get_hash().to_owned());
        tasks.push(tokio::spawn(async move {
            let mut conn = client.get_multiplexed_async_connection().await?;
            let mut n = 0u64;
            // A message as Herald stores it: author, client id, a short chat line.
            let body = format!("{} {}", 1_795_485_055_253_123u64, "x".repeat(48));
            while started.elapsed() < duration {
                let mut pipe = redis::pipe();
                for _ in 0..depth {
                    n += 1;
                    let room = format!("alone-{}", (c as u64 * 7919 + n) % rooms as u64);
                    let client_id = format!("c{c}-{n}");
                    let entry = json!({
                        "room": room, "author": {"id": "bench", "name": "Bench"},
                        "client_id": client_id, "body": body,
                    });
                    pipe.cmd("EVALSHA")
                        .arg(&hash)
                        .arg(5)
                        .arg(format!("herald:{{{room}}}:meta"))
                        .arg(format!("herald:{{{room}}}:log"))
                        .arg(format!("herald:{{{room}}}:once"))
                        .arg(format!("herald:{{{room}}}:state"))
                        .arg(format!("herald:{{{room}}}:gone"))
                        .arg(10_000)
                        .arg("bench-epoch")
                        .arg(format!("herald:{{{room}}}:live"))
                        .arg("1")
                        .arg(format!("bench\n{client_id}"))
                        .arg(entry.to_string())
                        .arg("1") // A message.
                        .ignore();
                }
                let _: () = pipe.query_async(&mut conn).await?;
                stored.fetch_add(depth as u64, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(200)).await;
    listening.abort();
    let stored = stored.load(Ordering::Relaxed);
    let per_sec = stored as f64 / seconds;
    let pushes = pushed.load(Ordering::Relaxed);
    Ok(Report {
        scenario: "redis-alone",
        columns: vec![
            "clients",
            "in flight",
            "rooms",
            "stored",
            "stored/s",
            "pushes heard",
        ],
        rows: vec![vec![
            clients.to_string(),
            depth.to_string(),
            rooms.to_string(),
            stored.to_string(),
            format!("{per_sec:.0}"),
            pushes.to_string(),
        ]],
        summary: json!({
            "tool": "herald-bench", "scenario": "redis-alone", "clients": clients, "depth": depth,
            "rooms": rooms, "stored": stored, "stored_per_sec": per_sec.round(), "pushes": pushes,
        }),
        ok: pushes == stored,
    })
}
