//! Readers that stop reading cost the server a bounded amount of memory, and the readers that keep
//! up get everything. The server is the binary, in a process of its own, so nothing of the test's
//! own allocations is in what is measured.

use app::protocol::{ClientMsg, ServerMsg};

use crate::{
    common::{Client, GENEROUS_BUDGETS, TempDir, TestServer},
    operations::Running,
};

/// The resident memory of process `pid`, in bytes.
fn rss_bytes(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_hold_a_bounded_amount_of_server_memory() {
    const ROOMS: usize = 12;
    const EACH: usize = 120;
    const BODY: usize = 60_000;
    let data = TempDir::new();
    // The log's page cache at SQLite's own 2 MiB: it is memory too, but bounded by its flag, and
    // this test is about what the queues hold.
    let flags: Vec<&str> = ["--max-body-bytes", "60000", "--log-cache-mib", "2"]
        .into_iter()
        .chain(GENEROUS_BUDGETS)
        .collect();
    let running = Running::start(data.path(), &flags).await;
    let server = TestServer::external(running.addr);
    let pid = running.child.id();

    // In each room, one reader that never reads, and one that does.
    let mut stalled = Vec::new();
    let mut readers = Vec::new();
    for r in 0..ROOMS {
        let room = format!("room-{r}");
        let cookie = server.session(&format!("Stalled {r}")).await;
        let mut client = Client::connect_small_buffer(server.addr, &cookie).await;
        client.join(&room, None).await;
        stalled.push(client);
        let mut reader = server.client_named(&format!("Reader {r}")).await;
        reader.join(&room, None).await;
        readers.push(tokio::spawn(async move {
            let mut bodies = 0;
            let mut seqs = Vec::new();
            while seqs.len() < EACH {
                let msg = reader.next_message().await;
                if msg.room == room {
                    bodies += msg.body.len();
                    seqs.push(msg.seq);
                }
            }
            (seqs, bodies)
        }));
    }
    let before = rss_bytes(pid);

    // 12 rooms × 120 messages × 60 kB = 86 MB published, every message short of a queue's frame
    // bound: only the byte bound stops the stalled readers' queues from holding all of it.
    let body = "x".repeat(BODY);
    let mut posters = Vec::new();
    for r in 0..ROOMS {
        let mut poster = server.client_named(&format!("Poster {r}")).await;
        let room = format!("room-{r}");
        poster.join(&room, None).await;
        let body = body.clone();
        posters.push(tokio::spawn(async move {
            for i in 0..EACH {
                poster
                    .send(&ClientMsg::Send {
                        room: room.clone(),
                        client_id: format!("{i}"),
                        body: body.clone(),
                        reply_to: None,
                    })
                    .await;
                loop {
                    if let ServerMsg::Ack { .. } = poster.recv().await {
                        break;
                    }
                }
            }
        }));
    }
    for poster in posters {
        poster.await.expect("poster");
    }
    for reader in readers {
        let (seqs, bytes) = reader.await.expect("reader");
        assert_eq!(seqs, (1..=EACH as u64).collect::<Vec<_>>());
        assert_eq!(bytes, EACH * BODY);
    }
    let grown = rss_bytes(pid).saturating_sub(before);
    // Per stalled reader: its queue's bound, one write batch and the socket's buffers. Beside them,
    // the search index's working memory, which no reader changes: a round of at most 2 MiB of
    // text and a room's batch of 512 KiB (server/src/search.rs), and its two connections' caches
    // (with `HERALD_NO_SEARCH=true` this test grows by less than the rest of the bound alone).
    // And what is in flight and what the allocator keeps of it: 12 posters' 60 kB frames, write
    // batches, the readers' socket buffers. Measured here: the whole grows by 18–32 MiB alone,
    // 34 MiB once in the whole suite (other tests beside it: more in flight at once); bound 45 MiB.
    // With queues bounded by frames alone (`QUEUE_BYTES` 512 MiB), it grew by 66 MiB.
    let search = 8 * 1024 * 1024;
    let bound = ROOMS * (server::hub::QUEUE_BYTES + 256 * 1024) + 28 * 1024 * 1024 + search;
    assert!(
        grown < bound,
        "memory grew by {} MiB while {ROOMS} readers stalled (bound {} MiB)",
        grown >> 20,
        bound >> 20
    );
    drop(stalled);
}
