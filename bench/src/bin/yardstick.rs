//! The yardstick: how many small frames per second this machine can move over loopback TCP at all,
//! with nothing of Herald in the way. Herald's figures in BENCHMARKS.md are given as a fraction of it.
//!
//! N connected socket pairs. One writer thread writes frames of `--frame-bytes` to every socket in
//! turn, either one `write` per frame or `--batch` frames per `writev`; one reader thread drains every
//! socket. The result is frames written per second in each mode (the reader keeps up, or the writer
//! would block). Two threads, because a hub's deliveries and its clients' reads share the same cores.

use std::{
    io::{ErrorKind, IoSlice, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;

#[derive(Parser)]
#[command(
    about = "This machine's raw loopback limit for small frames, one write each and batched."
)]
struct Args {
    /// Socket pairs.
    #[arg(long, default_value_t = 1000)]
    sockets: usize,
    /// Bytes per frame (a small chat message as Herald sends it is ~150–250 bytes).
    #[arg(long, default_value_t = 200)]
    frame_bytes: usize,
    /// Frames per `writev` in batched mode.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Seconds per mode.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Print only the JSON line.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let single = run(&args, 1)?;
    let batched = run(&args, args.batch)?;
    if !args.json {
        println!(
            "yardstick: {} loopback sockets, {}-byte frames",
            args.sockets, args.frame_bytes
        );
        println!("  one write per frame      {:>12.0} frames/s", single);
        println!(
            "  {:>3} frames per writev    {:>12.0} frames/s",
            args.batch, batched
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "tool": "yardstick",
            "sockets": args.sockets,
            "frame_bytes": args.frame_bytes,
            "batch": args.batch,
            "single_frames_per_sec": single.round(),
            "batched_frames_per_sec": batched.round(),
        })
    );
    Ok(())
}

/// Frames per second written (and read) with `batch` frames per write call.
fn run(args: &Args, batch: usize) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut writers = Vec::with_capacity(args.sockets);
    let mut readers = Vec::with_capacity(args.sockets);
    for _ in 0..args.sockets {
        let w = TcpStream::connect(addr)?;
        let (r, _) = listener.accept()?;
        w.set_nodelay(true)?;
        r.set_nonblocking(true)?;
        writers.push(w);
        readers.push(r);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let read_bytes = Arc::new(AtomicU64::new(0));
    let reader = {
        let stop = stop.clone();
        let read_bytes = read_bytes.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            while !stop.load(Ordering::Relaxed) {
                let mut any = false;
                for r in &mut readers {
                    loop {
                        match r.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                read_bytes.fetch_add(n as u64, Ordering::Relaxed);
                                any = true;
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(_) => break,
                        }
                    }
                }
                if !any {
                    std::thread::yield_now();
                }
            }
        })
    };
    let frame = vec![b'x'; args.frame_bytes];
    let slices: Vec<IoSlice<'_>> = (0..batch).map(|_| IoSlice::new(&frame)).collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.seconds);
    let mut written_bytes: u64 = 0;
    while Instant::now() < deadline {
        for w in &mut writers {
            // A short write leaves the rest for the next round; bytes are what is counted.
            let n = if batch == 1 {
                w.write(&frame)?
            } else {
                w.write_vectored(&slices)?
            };
            written_bytes += n as u64;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    let _ = read_bytes.load(Ordering::Relaxed);
    Ok(written_bytes as f64 / args.frame_bytes as f64 / elapsed)
}
