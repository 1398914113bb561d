//! A minimal WebSocket client for subscribers: the upgrade by hand, then frames parsed straight out of
//! one read buffer. The load generator runs on the same cores as the server, so every microsecond it
//! spends per delivery is taken from what is being measured; a full WebSocket library task per
//! connection cost as much CPU per delivery as Herald itself.
//!
//! Only what a reader of Herald needs: text frames (unfragmented, as Herald sends them), close, and
//! masked client frames for the few it sends (join, rejoin).

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// How much one read asks for: many frames at once when they are waiting.
const READ_CHUNK: usize = 16 * 1024;

pub struct RawWs {
    stream: TcpStream,
    /// Allocated (and zeroed) once: data is read into `buf[end..]`.
    buf: Vec<u8>,
    /// Where unparsed data starts in `buf`.
    start: usize,
    /// Where read data ends in `buf`.
    end: usize,
}

/// One text frame's payload, as found in the read buffer.
pub enum Frame<'a> {
    Text(&'a str),
    Closed,
}

impl RawWs {
    /// Connects from `source`, upgrades `/ws` with the session `cookie`, and reads the answer.
    pub async fn connect(addr: SocketAddr, source: Ipv4Addr, cookie: &str) -> anyhow::Result<Self> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((source, 0)))?;
        let mut stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: aGVyYWxkLWJlbmNoLWtleQ==\r\nSec-WebSocket-Version: 13\r\n\
             Origin: http://{addr}\r\nCookie: {cookie}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut buf = Vec::with_capacity(READ_CHUNK);
        let head_end = loop {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("closed during the upgrade");
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]);
        if !head.starts_with("HTTP/1.1 101") {
            bail!(
                "upgrade refused: {}",
                head.lines().next().unwrap_or_default()
            );
        }
        let end = buf.len();
        buf.resize(end.max(READ_CHUNK), 0);
        Ok(Self {
            stream,
            buf,
            start: head_end,
            end,
        })
    }

    /// Sends a text frame (masked, as a client must).
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        let payload = text.as_bytes();
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x81);
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await?;
        Ok(())
    }

    /// Calls `each` for every frame that arrives with the next read (at least one, unless the
    /// connection ended); returns false once it has.
    pub async fn read_frames(&mut self, mut each: impl FnMut(Frame<'_>)) -> anyhow::Result<bool> {
        loop {
            let mut any = false;
            while let Some((consumed, frame)) = parse(&self.buf[self.start..self.end])? {
                let closed = matches!(frame, Frame::Closed);
                each(frame);
                self.start += consumed;
                any = true;
                if closed {
                    return Ok(false);
                }
            }
            if any {
                return Ok(true);
            }
            if self.fill().await.is_err() {
                return Ok(false);
            }
        }
    }

    /// The next frame's text, owned (for setting up, where speed does not matter); frames after
    /// it stay in the buffer for the next call.
    pub async fn next_text(&mut self) -> anyhow::Result<String> {
        loop {
            let found = match parse(&self.buf[self.start..self.end])? {
                Some((consumed, Frame::Text(text))) => Some((consumed, Some(text.to_owned()))),
                Some((consumed, Frame::Closed)) => Some((consumed, None)),
                None => None,
            };
            match found {
                Some((consumed, Some(text))) => {
                    self.start += consumed;
                    return Ok(text);
                }
                Some((_, None)) => bail!("connection closed"),
                None => self.fill().await?,
            }
        }
    }

    /// Moves the unparsed tail to the front and reads more after it.
    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // A frame larger than the buffer: grow it (rare: Herald's frames are small).
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self
            .stream
            .read(&mut self.buf[self.end..])
            .await
            .context("reading")?;
        if n == 0 {
            bail!("connection closed");
        }
        self.end += n;
        Ok(())
    }
}

/// One complete frame at the start of `data`, and how many bytes it takes; `None` if incomplete.
fn parse(data: &[u8]) -> anyhow::Result<Option<(usize, Frame<'_>)>> {
    if data.len() < 2 {
        return Ok(None);
    }
    let opcode = data[0] & 0x0f;
    let (len, mut at) = match data[1] & 0x7f {
        126 if data.len() >= 4 => (u16::from_be_bytes([data[2], data[3]]) as usize, 4),
        127 if data.len() >= 10 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&data[2..10]);
            (u64::from_be_bytes(n) as usize, 10)
        }
        126 | 127 => return Ok(None),
        n => (n as usize, 2),
    };
    if data[1] & 0x80 != 0 {
        at += 4; // A server never masks; skip a mask if one came anyway.
    }
    if data.len() < at + len {
        return Ok(None);
    }
    let payload = &data[at..at + len];
    let frame = match opcode {
        0x1 => Frame::Text(std::str::from_utf8(payload).context("text frame is not UTF-8")?),
        0x8 => Frame::Closed,
        // Pings are not sent by Herald, and binary frames are not part of its protocol.
        _ => Frame::Text(""),
    };
    Ok(Some((at + len, frame)))
}
