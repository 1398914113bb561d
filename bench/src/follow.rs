//! How soon what is done in one place is known in another:
//! - `herald-bench read-follow`: one person with two devices in a room — with `--redis`, the second
//!   on another node of the cluster — and another person writing: the first device reads each
//!   message as it arrives (`read`), and the time until the second device is told so (its `read`
//!   frame with that seq) is measured. The design's bound is the 200 ms in which positions wait
//!   to be written together (`FLUSH` in server/src/reading.rs), and on a cluster one note on the
//!   cluster's channel.
//! - `herald-bench search-follow`: a message is written (on the first node) and searched for (on
//!   the second, with `--redis`) until it is found: how far the search index lags the log. The
//!   design's bound is a round of the indexer (250 ms, `EVERY` in server/src/search.rs), and on a
//!   cluster the storing node's round before it (docs/SEARCH.md).

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use app::protocol::ClientMsg;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    load::{Socket, Target, join, until_ack},
    report::{Histogram, Report},
};

/// How long a device waits for what it expects before the run is called failed.
const PATIENCE: Duration = Duration::from_secs(10);

/// Reads `ws` until a text frame that `wanted` accepts (skipping the rest); it, parsed.
async fn until(
    ws: &mut Socket,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    loop {
        let msg = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .map_err(|_| anyhow!("nothing expected came in time"))?
            .context("the connection ended")??;
        if let Message::Text(text) = msg {
            let frame: serde_json::Value = serde_json::from_str(&text)?;
            if wanted(&frame) {
                return Ok(frame);
            }
        }
    }
}

/// `samples` messages, each read on the device on `first` and followed on the one on `second`.
pub async fn read_follow(
    first: &Target,
    second: &Target,
    samples: usize,
) -> anyhow::Result<Report> {
    let room = "follow";
    let reader = first.session("Follow reader").await?;
    let writer = first.session("Follow writer").await?;
    let mut pen = first.connect(&writer, 1).await?;
    let mut laptop = first.connect(&reader, 2).await?;
    let mut phone = second.connect(&reader, 3).await?;
    for ws in [&mut pen, &mut laptop, &mut phone] {
        join(ws, room, None).await?;
    }
    let took = Histogram::default();
    let mut max = Duration::ZERO;
    for i in 0..samples {
        let client_id = format!("f{i}");
        let send = ClientMsg::Send {
            room: room.into(),
            client_id: client_id.clone(),
            body: format!("message {i}"),
            reply_to: None,
        };
        pen.send(Message::text(send.encode())).await?;
        until_ack(&mut pen, &client_id).await?;
        let message = until(&mut laptop, |f| {
            f["type"] == "message" && f["client_id"] == client_id.as_str()
        })
        .await?;
        let seq = message["seq"].as_u64().context("a message's seq")?;
        let read = ClientMsg::Read {
            room: room.into(),
            seq,
            rewind: false,
        };
        let asked = Instant::now();
        laptop.send(Message::text(read.encode())).await?;
        until(&mut phone, |f| {
            f["type"] == "read" && f["room"] == room && f["seq"].as_u64() >= Some(seq)
        })
        .await?;
        let elapsed = asked.elapsed();
        took.record(elapsed.as_micros() as u64);
        max = max.max(elapsed);
        apart(i).await;
    }
    let nodes = if std::ptr::eq(first, second) { 1 } else { 2 };
    Ok(lag_report("read-follow", nodes, samples, &took, max))
}

/// `samples` messages written on `first`, each searched for on `second` (every 5 ms) until found.
pub async fn search_follow(
    first: &Target,
    second: &Target,
    samples: usize,
) -> anyhow::Result<Report> {
    let room = "follow-search";
    let writer = first.session("Search writer").await?;
    let finder = second.session("Search finder").await?;
    let mut pen = first.connect(&writer, 1).await?;
    join(&mut pen, room, None).await?;
    let took = Histogram::default();
    let mut max = Duration::ZERO;
    // A word no other run has written: found only once this run's message is indexed.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    for i in 0..samples {
        let word = format!("probe{run}x{i}");
        let client_id = format!("s{i}");
        let send = ClientMsg::Send {
            room: room.into(),
            client_id: client_id.clone(),
            body: format!("looking for {word} here"),
            reply_to: None,
        };
        pen.send(Message::text(send.encode())).await?;
        until_ack(&mut pen, &client_id).await?;
        let stored = Instant::now();
        loop {
            let (status, page) = second.get(&format!("/search?q={word}"), &finder).await?;
            if status != 200 {
                return Err(anyhow!("/search answered {status}"));
            }
            if page.contains("data-testid=\"search-result\"") {
                break;
            }
            if stored.elapsed() > PATIENCE {
                return Err(anyhow!("{word} not found in {PATIENCE:?}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let elapsed = stored.elapsed();
        took.record(elapsed.as_micros() as u64);
        max = max.max(elapsed);
        apart(i).await;
    }
    let nodes = if std::ptr::eq(first, second) { 1 } else { 2 };
    Ok(lag_report("search-follow", nodes, samples, &took, max))
}

/// A pause of 20–270 ms, another each sample: samples a fixed time apart fall into step with the
/// server's own rounds (every 200 or 250 ms) and would all measure the same moment of them.
async fn apart(sample: usize) {
    let ms = 20 + (sample as u64).wrapping_mul(7919) % 250;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// One row: where, how many, and how long they took.
fn lag_report(
    scenario: &'static str,
    nodes: usize,
    samples: usize,
    took: &Histogram,
    max: Duration,
) -> Report {
    let (p50, p99) = (took.quantile_ms(0.5), took.quantile_ms(0.99));
    let max_ms = max.as_secs_f64() * 1000.0;
    Report {
        scenario,
        columns: vec!["nodes", "samples", "p50 ms", "p99 ms", "max ms"],
        rows: vec![vec![
            nodes.to_string(),
            samples.to_string(),
            format!("{p50:.1}"),
            format!("{p99:.1}"),
            format!("{max_ms:.1}"),
        ]],
        summary: json!({
            "tool": "herald-bench", "scenario": scenario, "nodes": nodes, "samples": samples,
            "p50_ms": p50, "p99_ms": p99, "max_ms": max_ms,
        }),
        ok: true,
    }
}
