//! A per-connection budget for the HTTP/2 frames that make a server work
//! without asking it for anything: PING and SETTINGS (each must be
//! answered), RST_STREAM (rapid reset, CVE-2023-44487), PRIORITY, empty
//! frames and unknown extension frames (CVE-2019-9512, -9514, -9515,
//! -9518 and their kin).
//!
//! The h2 crate bounds some floods itself (streams reset before they are
//! accepted, CONTINUATION frames per header block, empty and small DATA
//! frames; see `handler::http_builder`), but answers every PING and
//! SETTINGS frame for as long as the client keeps reading, and ignores any
//! number of PRIORITY and unknown frames. [`Watched`] sits between TLS and
//! hyper on `h2` connections, reads the client's frame headers as they
//! pass (payloads are skipped by length, never looked at) and counts those
//! frames per second. Over the budget, it withholds the rest of the read,
//! writes a GOAWAY with ENHANCE_YOUR_CALM at the next frame boundary of
//! what the server writes, and ends the connection.
//!
//! It never changes a byte it passes on, and costs one comparison per
//! frame header plus a clock read per counted frame.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface (RFC 9113 §3.4), before the first frame.
pub(super) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEAD_LEN: usize = 9;
/// GOAWAY's error code for a peer that generates excessive load.
const ENHANCE_YOUR_CALM: u32 = 0xb;
/// The window the budget counts in.
const WINDOW: Duration = Duration::from_secs(1);

/// Where a byte stream of frames is: inside a frame head (how much of it
/// has been seen) or inside a payload (how much is left).
#[derive(Debug, Default)]
struct Cursor {
    head: [u8; FRAME_HEAD_LEN],
    have: usize,
    left: usize,
}

/// A frame head: payload length, type, flags, stream id.
#[derive(Debug, Clone, Copy)]
struct Head {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl Cursor {
    /// At a frame boundary: the next byte starts a frame head.
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.left == 0
    }

    /// Follows `bytes`; calls `on_head` for each complete frame head and
    /// stops (returning how many bytes it took) when `on_head` says so.
    fn feed(&mut self, bytes: &[u8], mut on_head: impl FnMut(Head) -> bool) -> usize {
        let mut at = 0;
        while at < bytes.len() {
            if self.left > 0 {
                let take = self.left.min(bytes.len() - at);
                self.left -= take;
                at += take;
                continue;
            }
            let take = (FRAME_HEAD_LEN - self.have).min(bytes.len() - at);
            self.head[self.have..self.have + take].copy_from_slice(&bytes[at..at + take]);
            self.have += take;
            at += take;
            if self.have < FRAME_HEAD_LEN {
                break;
            }
            self.have = 0;
            let h = &self.head;
            let head = Head {
                len: (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]),
                kind: h[3],
                flags: h[4],
                stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
            };
            self.left = head.len;
            if !on_head(head) {
                return at;
            }
        }
        at
    }
}

/// Whether a client frame is one that costs the server work for nothing.
fn costs_without_asking(h: Head) -> bool {
    const END_STREAM: u8 = 0x1;
    const ACK: u8 = 0x1;
    match h.kind {
        // DATA: an empty one that does not end its stream.
        0x0 => h.len == 0 && h.flags & END_STREAM == 0,
        // HEADERS, CONTINUATION: an empty fragment.
        0x1 | 0x9 => h.len == 0,
        // PRIORITY, RST_STREAM.
        0x2 | 0x3 => true,
        // SETTINGS and PING, unless they acknowledge ours.
        0x4 | 0x6 => h.flags & ACK == 0,
        // PUSH_PROMISE, GOAWAY, WINDOW_UPDATE: h2 refuses the first and
        // the others are bounded by the protocol.
        0x5 | 0x7 | 0x8 => false,
        // Unknown extension frames, which h2 drops unread.
        _ => true,
    }
}

/// What the watch has decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Fine,
    /// No preface: the client negotiated `h2` and speaks something else
    /// (HTTP/1.1, which would pass hyper's auto server without the HTTP/1
    /// byte watch). The connection ends.
    NotHttp2,
    /// Over budget: the GOAWAY goes out next (this many bytes of it so far).
    Flood(usize),
    /// The GOAWAY is out or could not be: the connection ends.
    Done,
}

/// `I` with its HTTP/2 frames counted (see the module doc).
#[derive(Debug)]
pub struct Watched<I> {
    io: I,
    peer: SocketAddr,
    /// Bytes of the preface seen so far.
    preface_seen: usize,
    read: Cursor,
    write: Cursor,
    /// Counted frames allowed per second.
    limit: u32,
    count: u32,
    window_start: Instant,
    /// The highest stream the client opened, for the GOAWAY.
    last_stream: u32,
    verdict: Verdict,
    goaway: [u8; FRAME_HEAD_LEN + 8],
}

impl<I> Watched<I> {
    /// `limit`: the counted frames a client may send per second.
    pub fn new(io: I, peer: SocketAddr, limit: u32) -> Watched<I> {
        Watched {
            io,
            peer,
            preface_seen: 0,
            read: Cursor::default(),
            write: Cursor::default(),
            limit,
            count: 0,
            window_start: Instant::now(),
            last_stream: 0,
            verdict: Verdict::Fine,
            goaway: [0; FRAME_HEAD_LEN + 8],
        }
    }

    /// Follows the bytes just read; returns how many of them may be passed
    /// on (all, unless the budget ran out inside them).
    fn feed(&mut self, bytes: &[u8]) -> usize {
        let skip = (PREFACE.len() - self.preface_seen).min(bytes.len());
        if bytes[..skip] != PREFACE[self.preface_seen..self.preface_seen + skip] {
            self.verdict = Verdict::NotHttp2;
            return 0;
        }
        self.preface_seen += skip;
        let Watched {
            read,
            limit,
            count,
            window_start,
            last_stream,
            ..
        } = self;
        let mut over = false;
        let took = read.feed(&bytes[skip..], |h| {
            if h.kind == 0x1 && h.stream % 2 == 1 {
                *last_stream = (*last_stream).max(h.stream);
            }
            if !costs_without_asking(h) {
                return true;
            }
            let now = Instant::now();
            if now.duration_since(*window_start) >= WINDOW {
                *window_start = now;
                *count = 0;
            }
            *count += 1;
            over = *count > *limit;
            !over
        });
        if over {
            tracing::info!(
                client = %self.peer,
                limit = self.limit,
                "HTTP/2 frame flood (PING, SETTINGS, RST_STREAM, PRIORITY or empty frames over the budget): GOAWAY ENHANCE_YOUR_CALM, connection closed"
            );
            self.start_goaway();
            // The frame that broke the budget is withheld with what follows.
            return skip + took.saturating_sub(FRAME_HEAD_LEN);
        }
        bytes.len()
    }

    fn start_goaway(&mut self) {
        let g = &mut self.goaway;
        // Length 8, type GOAWAY, no flags, stream 0.
        g[..FRAME_HEAD_LEN].copy_from_slice(&[0, 0, 8, 0x7, 0, 0, 0, 0, 0]);
        g[FRAME_HEAD_LEN..FRAME_HEAD_LEN + 4].copy_from_slice(&self.last_stream.to_be_bytes());
        g[FRAME_HEAD_LEN + 4..].copy_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
        self.verdict = Verdict::Flood(0);
    }

    /// Once the GOAWAY has started, nothing of h2's may follow it.
    fn refuses_writes(&self) -> bool {
        matches!(self.verdict, Verdict::Flood(n) if n > 0) || self.verdict == Verdict::Done
    }

    fn flood_error() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, "HTTP/2 frame flood")
    }
}

impl<I: AsyncWrite + Unpin> Watched<I> {
    /// Writes the GOAWAY if the server's own frames are at a boundary, then
    /// ends the connection with an error (so h2 writes nothing more).
    fn poll_goaway(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Verdict::Flood(mut sent) = self.verdict {
            if sent == 0 && !self.write.at_boundary() {
                self.verdict = Verdict::Done;
                return Poll::Ready(Err(Self::flood_error()));
            }
            while sent < self.goaway.len() {
                match Pin::new(&mut self.io).poll_write(cx, &self.goaway[sent..]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => break,
                    Poll::Ready(Ok(n)) => sent += n,
                    Poll::Pending => {
                        self.verdict = Verdict::Flood(sent);
                        return Poll::Pending;
                    }
                }
            }
            self.verdict = Verdict::Flood(self.goaway.len());
            ready!(Pin::new(&mut self.io).poll_flush(cx)).ok();
            self.verdict = Verdict::Done;
        }
        Poll::Ready(Err(Self::flood_error()))
    }
}

fn not_http2() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "negotiated h2 without the HTTP/2 preface",
    )
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.verdict {
            Verdict::NotHttp2 => return Poll::Ready(Err(not_http2())),
            Verdict::Fine => {}
            Verdict::Flood(_) | Verdict::Done => return this.poll_goaway(cx),
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let passed = this.feed(&buf.filled()[before..]);
        buf.set_filled(before + passed);
        if this.verdict == Verdict::NotHttp2 {
            tracing::debug!(client = %this.peer, "ALPN h2 without the HTTP/2 preface: connection closed");
            return Poll::Ready(Err(not_http2()));
        }
        if passed == 0 && matches!(this.verdict, Verdict::Flood(_)) {
            return this.poll_goaway(cx);
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.refuses_writes() {
            return Poll::Ready(Err(Self::flood_error()));
        }
        let n = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        this.write.feed(&buf[..n], |_| true);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.refuses_writes() {
            return Poll::Ready(Err(Self::flood_error()));
        }
        let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for b in bufs {
            if left == 0 {
                break;
            }
            let take = left.min(b.len());
            this.write.feed(&b[..take], |_| true);
            left -= take;
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
