//! `herald-bench pages`: a crowd of signed-in readers loading a room's page, as after a deploy or a
//! network blip: pages per second without compression, with gzip and with brotli, from keep-alive
//! connections, each request as a different one of `viewers` people (a cache for one person would
//! not be measured as one for a crowd). The room holds `messages` messages from several of those
//! people, some of them naming others, so each page has its reader's own messages and mentions.
//!
//! Responses are read as HTTP/1.1 (a length or chunks) and counted only if they are a 200 with a
//! body; anything else fails the run.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use app::protocol::ClientMsg;
use futures::SinkExt;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};
use tokio_tungstenite::tungstenite::Message;

use crate::{load::Target, report::Report};

/// The room the pages show.
const ROOM: &str = "bench-pages";

/// What `Accept-Encoding` asks for, by the name the report gives it.
const ENCODINGS: [(&str, Option<&str>); 3] = [
    ("none", None),
    ("gzip", Some("gzip")),
    ("brotli", Some("br")),
];

pub async fn pages(
    target: &Target,
    connections: usize,
    viewers: usize,
    messages: usize,
    seconds: f64,
) -> anyhow::Result<Report> {
    let viewers = viewers.max(1);
    let mut cookies = Vec::with_capacity(viewers);
    for i in 0..viewers {
        cookies.push(target.session(&format!("Reader {i}")).await?);
    }
    fill(target, &cookies, messages).await?;

    let mut rows = Vec::new();
    let mut summary = serde_json::Map::new();
    for (name, encoding) in ENCODINGS {
        let (pages, bytes, elapsed) =
            load(target, &cookies, encoding, connections, seconds).await?;
        let per_sec = pages as f64 / elapsed.as_secs_f64();
        let mean = bytes / pages.max(1);
        rows.push(vec![
            name.to_owned(),
            format!("{per_sec:.0}"),
            pages.to_string(),
            mean.to_string(),
        ]);
        summary.insert(
            name.to_owned(),
            serde_json::json!({ "pages_per_sec": per_sec.round(), "pages": pages, "mean_bytes": mean }),
        );
    }
    summary.insert("connections".into(), connections.into());
    summary.insert("viewers".into(), viewers.into());
    summary.insert("messages".into(), messages.into());
    Ok(Report {
        scenario: "pages",
        columns: vec!["encoding", "pages/s", "pages", "bytes/page"],
        rows,
        summary: serde_json::Value::Object(summary),
        ok: true,
    })
}

/// Puts `messages` messages in the room, from the first few readers in turn, every third one
/// naming the next reader (a mention on that reader's page). Waits for each to be acknowledged.
async fn fill(target: &Target, cookies: &[String], messages: usize) -> anyhow::Result<()> {
    let authors = cookies.len().min(5);
    let mut sockets = Vec::new();
    for (i, cookie) in cookies.iter().take(authors).enumerate() {
        let mut ws = target.connect(cookie, i).await?;
        crate::load::join(&mut ws, ROOM, None).await?;
        sockets.push(ws);
    }
    for n in 0..messages {
        let ws = &mut sockets[n % authors];
        let body = if n % 3 == 0 {
            format!(
                "@Reader {} have a look at step {n} of the rollout",
                (n + 1) % cookies.len()
            )
        } else {
            format!("step {n} of the rollout is done; the dashboards look normal so far")
        };
        let send = ClientMsg::Send {
            room: ROOM.into(),
            client_id: format!("fill-{n}"),
            body,
            reply_to: None,
        };
        ws.send(Message::text(send.encode())).await?;
        crate::load::until_ack(ws, &format!("fill-{n}")).await?;
    }
    Ok(())
}

/// `connections` keep-alive connections loading the page for `seconds`, each request as the next
/// reader; returns the pages loaded, their bytes and how long it took.
async fn load(
    target: &Target,
    cookies: &[String],
    encoding: Option<&'static str>,
    connections: usize,
    seconds: f64,
) -> anyhow::Result<(u64, u64, Duration)> {
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let cookies = cookies.to_vec();
        let addr = target.addr;
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut stream = BufReader::new(stream);
            let (mut pages, mut bytes) = (0u64, 0u64);
            let mut next = c;
            while Instant::now() < until {
                let cookie = &cookies[next % cookies.len()];
                next += connections;
                let accept = encoding
                    .map(|e| format!("Accept-Encoding: {e}\r\n"))
                    .unwrap_or_default();
                let request = format!(
                    "GET /r/{ROOM} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n{accept}\r\n"
                );
                stream.get_mut().write_all(request.as_bytes()).await?;
                let (status, got, body_encoding) = response(&mut stream).await?;
                if status != 200 || got == 0 {
                    bail!("GET /r/{ROOM} answered {status} with {got} bytes");
                }
                if body_encoding.as_deref() != encoding {
                    bail!("asked for {encoding:?}, got {body_encoding:?}");
                }
                pages += 1;
                bytes += got;
            }
            anyhow::Ok((pages, bytes))
        }));
    }
    let (mut pages, mut bytes) = (0, 0);
    for task in tasks {
        let (p, b) = task.await.context("a loading task")??;
        pages += p;
        bytes += b;
    }
    Ok((pages, bytes, started.elapsed()))
}

/// Reads one HTTP/1.1 response: its status, its body's length, and its `Content-Encoding`.
async fn response(stream: &mut BufReader<TcpStream>) -> anyhow::Result<(u16, u64, Option<String>)> {
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP response: {line:?}"))?;
    let (mut length, mut chunked, mut encoding) = (None, false, None);
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            bail!("closed in the headers");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<u64>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "content-encoding" => encoding = Some(value.to_owned()),
                _ => {}
            }
        }
    }
    let mut body = 0u64;
    if chunked {
        loop {
            line.clear();
            stream.read_line(&mut line).await?;
            let size = u64::from_str_radix(line.trim_end().split(';').next().unwrap_or(""), 16)
                .map_err(|_| anyhow!("not a chunk size: {line:?}"))?;
            if size == 0 {
                // The empty line after the last chunk (no trailers are sent).
                line.clear();
                stream.read_line(&mut line).await?;
                break;
            }
            skip(stream, size + 2).await?;
            body = body.checked_add(size).context("a body over u64")?;
        }
    } else if let Some(length) = length {
        skip(stream, length).await?;
        body = length;
    } else {
        bail!("a response with neither a length nor chunks");
    }
    Ok((status, body, encoding))
}

/// Reads and drops `n` bytes.
async fn skip(stream: &mut BufReader<TcpStream>, n: u64) -> anyhow::Result<()> {
    let copied = tokio::io::copy(&mut stream.take(n), &mut tokio::io::sink()).await?;
    if copied != n {
        bail!("closed {} bytes short", n - copied);
    }
    Ok(())
}
