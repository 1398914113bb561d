//! `herald-bench bus`: what the Redis bus costs each node of a cluster whose rooms are each read on
//! one node only — the rooms spread over the nodes, each room's readers and its publisher on its
//! node. For every node: the bytes its bus brought it (its `herald_bus_received_bytes_total`; a
//! build without that counter subscribed to every room's channel with one pattern, so what it heard
//! is what a pattern subscriber of the bench's own hears) and the CPU it used while the messages
//! flowed. Whether a node's cost follows its own readers or the whole cluster's traffic.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::json;

use crate::{
    load::{Counters, Publisher, Target, pad, subscribers_in},
    report::Report,
};

/// What one node used while the messages flowed.
struct Used {
    bus_bytes: Option<f64>,
    cpu_secs: Option<f64>,
}

/// Runs the scenario on `nodes` (all on the Redis at `redis`): `rooms` rooms, room `i` read on
/// node `i % nodes` by `per_room` readers, `rate` messages a second into all of them together for
/// `seconds`.
pub async fn bus(
    nodes: &[&Target],
    redis: &str,
    rooms: usize,
    per_room: usize,
    rate: u32,
    seconds: f64,
) -> anyhow::Result<Report> {
    let names: Vec<String> = (0..rooms).map(|i| format!("bus-{i}")).collect();
    let of_node = |k: usize| -> Vec<String> {
        names
            .iter()
            .enumerate()
            .filter(|(i, _)| i % nodes.len() == k)
            .map(|(_, name)| name.clone())
            .collect()
    };
    let mut counters = Vec::new();
    let mut publishers = Vec::new();
    for (k, node) in nodes.iter().enumerate() {
        let mine = of_node(k);
        let counted = Arc::new(Counters::default());
        subscribers_in(node, &mine, 0..mine.len() * per_room, &counted).await?;
        counters.push(counted);
        let cookie = node.session(&format!("Bus publisher {k}")).await?;
        publishers.push(Publisher::open(node, &cookie, mine, k).await?);
    }
    // What a node subscribed to every room's channel hears: the bench's own pattern subscriber.
    let pattern_bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut pubsub = redis::Client::open(redis)?.get_async_pubsub().await?;
    pubsub.psubscribe("herald:{*}:live").await?;
    let heard = pattern_bytes.clone();
    let listening = tokio::spawn(async move {
        let mut stream = pubsub.into_on_message();
        while let Some(msg) = stream.next().await {
            heard.fetch_add(msg.get_payload_bytes().len() as u64, Ordering::Relaxed);
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;

    let before: Vec<Used> = futures::future::join_all(nodes.iter().map(|n| used(n))).await;
    let pattern_before = pattern_bytes.load(Ordering::Relaxed);
    let delivered_before: u64 = counters.iter().map(|c| c.delivered()).sum();
    let pad = pad();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let (mut due, mut next) = (0.0, 0usize);
    while started.elapsed().as_secs_f64() < seconds {
        tick.tick().await;
        due += f64::from(rate) / 100.0;
        while due >= 1.0 {
            let count = publishers.len();
            publishers[next % count].feed(&pad).await?;
            next += 1;
            due -= 1.0;
        }
        for p in &mut publishers {
            p.flush().await?;
        }
    }
    for p in &publishers {
        p.all_acked(Duration::from_secs(30)).await?;
    }
    let sent: u64 = publishers.iter().map(|p| p.sent()).sum();
    let expected = sent * per_room as u64;
    let waiting = Instant::now();
    let delivered = || counters.iter().map(|c| c.delivered()).sum::<u64>() - delivered_before;
    while delivered() < expected && waiting.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after: Vec<Used> = futures::future::join_all(nodes.iter().map(|n| used(n))).await;
    let pattern = (pattern_bytes.load(Ordering::Relaxed) - pattern_before) as f64;
    listening.abort();
    let lost: u64 = counters.iter().map(|c| c.lost()).sum();
    let duplicated: u64 = counters.iter().map(|c| c.duplicated()).sum();
    let delivered = delivered();

    let mut rows = Vec::new();
    let mut per_node = Vec::new();
    for (k, (b, a)) in before.iter().zip(&after).enumerate() {
        let bus = a.bus_bytes.zip(b.bus_bytes).map(|(a, b)| a - b);
        let cpu = a.cpu_secs.zip(b.cpu_secs).map(|(a, b)| a - b);
        rows.push(vec![
            k.to_string(),
            of_node(k).len().to_string(),
            bus.map_or(format!("({:.1})", pattern / 1e6), |b| {
                format!("{:.1}", b / 1e6)
            }),
            cpu.map_or("?".into(), |c| format!("{:.0}", c / elapsed * 100.0)),
        ]);
        per_node.push(json!({
            "node": k, "rooms": of_node(k).len(), "bus_bytes": bus,
            "pattern_bytes": pattern, "cpu_secs": cpu,
        }));
    }
    Ok(Report {
        scenario: "bus",
        columns: vec![
            "node",
            "rooms read there",
            "bus MB heard",
            "CPU % of a core",
        ],
        rows,
        summary: json!({
            "tool": "herald-bench", "scenario": "bus", "nodes": nodes.len(), "rooms": rooms,
            "per_room": per_room, "rate": rate, "seconds": elapsed, "sent": sent,
            "delivered": delivered, "lost": lost, "duplicated": duplicated,
            "per_node": per_node,
            "note": "bus MB in parentheses: the build counts none; what every room's pattern brings",
        }),
        ok: lost == 0 && duplicated == 0 && delivered == expected,
    })
}

/// A node's bus bytes (its metric, if it has it) and CPU seconds so far.
async fn used(node: &Target) -> Used {
    let bus_bytes = node
        .metric(r#"herald_bus_received_bytes_total{bus="log"}"#)
        .await;
    Used {
        bus_bytes,
        cpu_secs: node.cpu_secs(),
    }
}
