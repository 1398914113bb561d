//! search-bench: how fast Herald's search answers over a large log (BENCHMARKS.md, "Search"). Fills
//! a fresh log in a temporary folder with messages whose words follow a long-tailed vocabulary
//! (one common word in about one message in ten, a rare word in one in a hundred thousand, a CJK
//! word in one in a hundred), lets the index (`server::search`, its own task, as in the server)
//! catch up, then asks each kind of query many times, timing `Search::find` — the SQL a search page
//! runs — and prints each kind's p50 and p99 as JSON. Never run by the tests: it takes minutes.
//!
//! `cargo run --release -p bench --bin search-bench -- --messages 2000000`

use std::{path::PathBuf, time::Instant};

use app::protocol::{Identity, MessageKind};
use clap::Parser;
use server::{
    log::{Log, NewEntry},
    search::{Query, Search},
};

#[derive(Parser)]
struct Args {
    /// Messages in the log.
    #[arg(long, default_value_t = 2_000_000)]
    messages: u64,
    /// Rooms they are spread over.
    #[arg(long, default_value_t = 100)]
    rooms: u64,
    /// Times each kind of query is asked.
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// Appends in flight while filling.
    #[arg(long, default_value_t = 512)]
    concurrency: u64,
}

/// A small deterministic generator (xorshift), so every run fills the same log.
struct Words(u64);

impl Words {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// One message: 6 to 14 words of a 20 000-word vocabulary, the low ranks far more often
    /// (a word's rank is the smaller of two draws, squared in effect), with the marked words
    /// mixed in at their rates.
    fn message(&mut self, n: u64) -> String {
        let count = 6 + self.next() % 9;
        let mut words: Vec<String> = (0..count)
            .map(|_| {
                let rank = (self.next() % 20_000).min(self.next() % 20_000);
                format!("w{rank}")
            })
            .collect();
        if n % 10 == 3 {
            words.push("deploy".into());
        }
        if n % 100_000 == 77 {
            words.push("zanzibar".into());
        }
        if n % 100 == 42 {
            words.push("東京で会議".into());
        }
        words.join(" ")
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir: PathBuf =
        std::env::temp_dir().join(format!("herald-search-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(args: &Args, dir: &std::path::Path) -> anyhow::Result<()> {
    // Every message kept: the default retention would keep 10 000 a room.
    let (log, _) = Log::open_sqlite(dir, args.messages, 64, |_| {})?;
    let search = Search::open(dir, args.messages)?;
    let stop = tokio_util::sync::CancellationToken::new();
    let author = Identity {
        id: "a0000000000000001".into(),
        name: "Ann".into(),
    };
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let (log, author) = (log.clone(), author.clone());
        let (messages, rooms, concurrency) = (args.messages, args.rooms, args.concurrency);
        workers.push(tokio::spawn(async move {
            let mut words = Words(0x9E37_79B9_7F4A_7C15 ^ (worker + 1));
            let mut n = worker;
            while n < messages {
                let entry = NewEntry::message(
                    format!("room{}", n % rooms),
                    author.clone(),
                    format!("c{n}"),
                    words.message(n),
                    MessageKind::User,
                );
                log.append(entry).await?;
                n += concurrency;
            }
            anyhow::Ok(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    // Last, one message in each room that only it holds a word of: the index has caught up when
    // every room's is found.
    for room in 0..args.rooms {
        let entry = NewEntry::message(
            format!("room{room}"),
            author.clone(),
            format!("last{room}"),
            "zzlast".into(),
            MessageKind::User,
        );
        log.append(entry).await?;
    }
    let filled = started.elapsed();
    // The index follows the log as it does in the server, from every room's start.
    let indexing = tokio::spawn(server::search::run(
        search.clone(),
        log.clone(),
        None,
        stop.clone(),
    ));
    let started = Instant::now();
    let mut waiting: Vec<u64> = (0..args.rooms).collect();
    while !waiting.is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let mut still = Vec::new();
        for room in waiting {
            let last = Query {
                words: "zzlast".into(),
                room: Some(format!("room{room}")),
                ..Query::default()
            };
            if search.find(&last, Vec::new()).await?.is_empty() {
                still.push(room);
            }
        }
        waiting = still;
    }
    let indexed = started.elapsed();
    let kinds: [(&str, Query); 5] = [
        (
            "common word",
            Query {
                words: "deploy".into(),
                ..Query::default()
            },
        ),
        (
            "rare word",
            Query {
                words: "zanzibar".into(),
                ..Query::default()
            },
        ),
        (
            "CJK word",
            Query {
                words: "会議".into(),
                ..Query::default()
            },
        ),
        (
            "filtered (room and person)",
            Query {
                words: "deploy".into(),
                room: Some("room3".into()),
                author: Some(author.id.clone()),
                ..Query::default()
            },
        ),
        // The worst case of a filter: a common word that the room never holds.
        (
            "filtered, nothing there",
            Query {
                words: "deploy".into(),
                room: Some("room7".into()),
                ..Query::default()
            },
        ),
    ];
    let mut report = serde_json::Map::new();
    for (name, query) in kinds {
        let mut times = Vec::with_capacity(args.queries);
        let mut results = 0;
        for _ in 0..args.queries {
            let asked = Instant::now();
            results = search.find(&query, Vec::new()).await?.len();
            times.push(asked.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        report.insert(
            name.into(),
            serde_json::json!({
                "results": results,
                "p50_ms": (percentile(&times, 0.5) * 100.0).round() / 100.0,
                "p99_ms": (percentile(&times, 0.99) * 100.0).round() / 100.0,
            }),
        );
    }
    stop.cancel();
    let _ = indexing.await;
    println!(
        "{}",
        serde_json::json!({
            "tool": "search-bench",
            "messages": args.messages,
            "rooms": args.rooms,
            "fill_secs": filled.as_secs_f64().round(),
            "index_secs": indexed.as_secs_f64().round(),
            "queries": report,
        })
    );
    Ok(())
}
