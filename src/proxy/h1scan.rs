//! A watch on the bytes of an HTTP/1 connection for the framing faults that
//! hyper repairs silently and so hides from the request step: a request
//! with both `Content-Length` and `Transfer-Encoding` (hyper drops the
//! length) and a repeated `Content-Length` (hyper keeps one). RFC 9112
//! §6.3 lets a server refuse both, and behind a proxy they are the classic
//! request-smuggling pair, so gatehouse refuses them with 400. It also
//! measures each head against the header-size limit, which hyper applies
//! only loosely through hyper-util (its read buffer may hold, and parse, a
//! head well past the buffer cap), so the request step answers 431.
//!
//! [`Scanned`] follows the connection's requests as hyper reads them: each
//! head's `Content-Length` and `Transfer-Encoding` lines, then its body by
//! length or by chunks, so it knows where the next head starts. It records
//! the first faulty head's index in [`Verdicts`]; the request step asks
//! there before routing. When the bytes stop looking like HTTP/1 (HTTP/2's
//! preface, a malformed chunk that hyper will refuse anyway) it stops
//! watching. It never changes, holds or delays a byte.

use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the watch found, shared with the connection's request step.
#[derive(Debug, Default)]
pub struct Verdicts {
    /// 1 + the index of the first faulty head; 0: none so far.
    first_bad: AtomicU64,
    /// What was wrong with it: 1 for [`Fault::TooLarge`], else 0.
    fault: AtomicU8,
    /// Requests the request step has taken so far.
    taken: AtomicU64,
}

/// What is wrong with a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `Content-Length` with `Transfer-Encoding`, or repeated (400).
    Framing,
    /// Longer than the header-size limit (431).
    TooLarge,
}

impl Verdicts {
    /// Takes the next request: what was wrong with its head (or an earlier
    /// one; the connection ends there). Requests on an HTTP/1 connection
    /// come in order.
    pub fn next_fault(&self) -> Option<Fault> {
        let index = self.taken.fetch_add(1, Ordering::Relaxed);
        let bad = self.first_bad.load(Ordering::Relaxed);
        if bad == 0 || index + 1 < bad {
            return None;
        }
        Some(match self.fault.load(Ordering::Relaxed) {
            1 => Fault::TooLarge,
            _ => Fault::Framing,
        })
    }

    fn record(&self, head: u64, fault: Fault) {
        if self
            .first_bad
            .compare_exchange(0, head + 1, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.fault
                .store(u8::from(fault == Fault::TooLarge), Ordering::Relaxed);
        }
    }
}

/// Where in the request stream the watch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not watching any more.
    Off,
    /// In a head: `line` bytes into the current line.
    Head,
    /// This many body bytes left.
    Body(u64),
    /// In a chunk-size line (the size so far, whether past the digits).
    ChunkSize(u64, bool),
    /// This many chunk bytes left, then CRLF.
    ChunkData(u64),
    ChunkEnd,
    /// In the trailer section after the last chunk.
    Trailers,
}

/// The facts of the head being read.
#[derive(Debug, Default, Clone, Copy)]
struct Head {
    /// Bytes of the head so far, line ends included.
    bytes: usize,
    /// Bytes of the current line so far (0: at a line start).
    line: usize,
    /// Lines so far, the request line included.
    lines: u32,
    /// The current line's name, lower-cased, if it may be one we watch.
    name: [u8; 18],
    name_len: usize,
    /// Past the current line's colon.
    in_value: bool,
    value: u64,
    value_ok: bool,
    lengths: u32,
    length: u64,
    codings: u32,
}

/// `I` with its reads watched (see the module doc).
#[derive(Debug)]
pub struct Scanned<I> {
    io: I,
    state: State,
    head: Head,
    heads: u64,
    /// The longest head allowed (`max_request_header_bytes`).
    max_head: usize,
    verdicts: std::sync::Arc<Verdicts>,
    /// How many of the connection's first bytes matched `PRI ` (the HTTP/2
    /// preface); past 4 either way, nothing more is compared.
    opening: usize,
}

/// How much of the HTTP/2 connection preface (`PRI `) tells it apart from
/// any HTTP/1 request line.
const PREFACE_START: usize = 4;

impl<I> Scanned<I> {
    pub fn new(io: I, verdicts: std::sync::Arc<Verdicts>, max_head: usize) -> Scanned<I> {
        Scanned {
            io,
            state: State::Head,
            head: Head::default(),
            heads: 0,
            max_head,
            verdicts,
            opening: 0,
        }
    }

    /// Whether `new`, the next bytes read, completes an HTTP/2 preface at
    /// the start of the connection. HTTP/2 comes only by ALPN `h2`: on an
    /// HTTP/1.1 connection the preface would switch hyper to HTTP/2, past
    /// both this watch and the HTTP/2 frame budget (`h2watch`).
    fn opens_with_preface(&mut self, new: &[u8]) -> bool {
        for &b in new {
            if self.opening >= PREFACE_START {
                break;
            }
            if super::h2watch::PREFACE.get(self.opening) != Some(&b) {
                self.opening = usize::MAX;
                return false;
            }
            self.opening += 1;
        }
        self.opening == PREFACE_START
    }

    /// Feeds the bytes just read.
    fn feed(&mut self, mut bytes: &[u8]) {
        while let Some((&b, rest)) = bytes.split_first() {
            match self.state {
                State::Off => return,
                State::Body(n) | State::ChunkData(n) => {
                    let take = usize::try_from(n).map_or(bytes.len(), |n| n.min(bytes.len()));
                    let left = n - take as u64;
                    bytes = &bytes[take..];
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::Head,
                        (State::Body(_), l) => State::Body(l),
                        (_, 0) => State::ChunkEnd,
                        (_, l) => State::ChunkData(l),
                    };
                    continue;
                }
                State::Head => self.head_byte(b),
                State::ChunkSize(n, past) => self.size_byte(b, n, past),
                State::ChunkEnd => {
                    self.state = match b {
                        b'\r' => State::ChunkEnd,
                        b'\n' => State::ChunkSize(0, false),
                        _ => State::Off,
                    };
                }
                State::Trailers => self.trailer_byte(b),
            }
            bytes = rest;
        }
    }

    fn size_byte(&mut self, b: u8, n: u64, past: bool) {
        self.state = match b {
            b'\n' if n == 0 => {
                self.head = Head::default();
                State::Trailers
            }
            b'\n' => State::ChunkData(n),
            _ if past => State::ChunkSize(n, true),
            b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                match n.checked_mul(16) {
                    Some(v) => State::ChunkSize(v + digit, false),
                    None => State::Off,
                }
            }
            _ => State::ChunkSize(n, true),
        };
    }

    fn trailer_byte(&mut self, b: u8) {
        match b {
            b'\n' if self.head.line == 0 => {
                self.head = Head::default();
                self.state = State::Head;
            }
            b'\n' => self.head.line = 0,
            b'\r' => {}
            _ => self.head.line += 1,
        }
    }

    fn head_byte(&mut self, b: u8) {
        let h = &mut self.head;
        h.bytes += 1;
        match b {
            b'\n' => self.end_line(),
            b'\r' => {}
            _ => {
                if h.lines == 0 {
                    // The request line: only its first bytes matter.
                    if let Some(slot) = h.name.get_mut(h.line) {
                        *slot = b;
                    }
                    h.line += 1;
                    return;
                }
                h.line += 1;
                if h.in_value {
                    match b {
                        b'0'..=b'9' if h.value_ok => {
                            h.value = h
                                .value
                                .saturating_mul(10)
                                .saturating_add(u64::from(b - b'0'));
                        }
                        b' ' | b'\t' => {}
                        _ => h.value_ok = false,
                    }
                } else if b == b':' {
                    // Each line's value is its own: a number in an earlier
                    // header must never add to this one's.
                    h.in_value = true;
                    h.value_ok = true;
                    h.value = 0;
                } else if h.name_len < h.name.len() {
                    h.name[h.name_len] = b.to_ascii_lowercase();
                    h.name_len += 1;
                } else {
                    h.name_len = h.name.len() + 1;
                }
            }
        }
    }

    fn end_line(&mut self) {
        let h = &mut self.head;
        if h.lines == 0 {
            if h.line == 0 {
                h.bytes = 0;
                return; // empty lines before a request line are skipped
            }
            if h.name.starts_with(b"PRI ") {
                self.state = State::Off;
                return;
            }
            h.lines = 1;
            h.line = 0;
            return;
        }
        if h.line == 0 {
            self.end_head();
            return;
        }
        let name = h.name.get(..h.name_len).unwrap_or_default();
        if name == b"content-length" {
            h.lengths += 1;
            h.length = h.value;
        } else if name == b"transfer-encoding" {
            h.codings += 1;
        }
        h.lines += 1;
        h.line = 0;
        h.name_len = 0;
        h.in_value = false;
    }

    fn end_head(&mut self) {
        let h = self.head;
        if h.lengths > 1 || (h.lengths > 0 && h.codings > 0) {
            self.verdicts.record(self.heads, Fault::Framing);
        } else if h.bytes > self.max_head {
            self.verdicts.record(self.heads, Fault::TooLarge);
        }
        self.heads += 1;
        self.head = Head::default();
        self.state = if h.codings > 0 {
            State::ChunkSize(0, false)
        } else if h.lengths > 0 && h.length > 0 {
            State::Body(h.length)
        } else {
            State::Head
        };
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Scanned<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        let mut preface = false;
        if let Some(new) = buf.filled().get(before..) {
            preface = self.opening < PREFACE_START && self.opens_with_preface(new);
            if self.state != State::Off {
                self.feed(new);
            }
        }
        if preface {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "an HTTP/2 preface on a connection that did not negotiate h2",
            )));
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Scanned<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Feeds `stream` in pieces of `step` bytes; the index of the first
    /// faulty head (0: none) and the final state.
    fn run(stream: &[u8], step: usize) -> (u64, State) {
        let v = Arc::new(Verdicts::default());
        let mut s = Scanned::new((), v.clone(), 200);
        for piece in stream.chunks(step) {
            s.feed(piece);
        }
        (v.first_bad.load(Ordering::Relaxed), s.state)
    }

    #[test]
    fn follows_requests_and_finds_the_faulty_head() {
        let ok = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let cl = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\nhello\r\nworld";
        let te = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\nA\r\n0123456789\r\n0\r\nT: v\r\n\r\n";
        let both = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
        let twice = "POST / HTTP/1.1\r\nContent-length: 1\r\nContent-Length: 1\r\nHost: a\r\n\r\nx";
        for step in [1, 3, 7, 1000] {
            assert_eq!(
                run(format!("{ok}{cl}{te}{ok}").as_bytes(), step),
                (0, State::Head)
            );
            assert_eq!(run(format!("{ok}{cl}{te}{both}").as_bytes(), step).0, 4);
            assert_eq!(run(format!("\r\n{twice}{ok}").as_bytes(), step).0, 1);
            // A body that looks like a faulty head is a body.
            let hidden = format!(
                "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{both}",
                both.len()
            );
            assert_eq!(run(hidden.as_bytes(), step), (0, State::Head));
            assert_eq!(run(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", step).1, State::Off);
        }
    }

    #[test]
    fn heads_over_the_limit_are_found_whatever_the_reads() {
        // `run` allows 200 bytes: this head is exactly that, line ends included.
        let line = "GET / HTTP/1.1\r\nHost: a\r\n";
        let fill = "x".repeat(200 - line.len() - "X: \r\n\r\n".len());
        let at = format!("{line}X: {fill}\r\n\r\n");
        assert_eq!(at.len(), 200);
        let over = format!("{line}X: {fill}y\r\n\r\n");
        for step in [1, 7, 1000] {
            assert_eq!(run(format!("\r\n{at}{at}").as_bytes(), step).0, 0);
            assert_eq!(run(format!("{at}{over}").as_bytes(), step).0, 2);
            let v = Arc::new(Verdicts::default());
            let mut s = Scanned::new((), v.clone(), 200);
            for piece in over.as_bytes().chunks(step) {
                s.feed(piece);
            }
            assert_eq!(v.next_fault(), Some(Fault::TooLarge));
        }
    }

    /// Found by `prop_h1scan_flags_the_first_faulty_request_of_a_pipeline`:
    /// the digits of an earlier header's value were carried into
    /// `Content-Length` (`X-A: 5` then `Content-Length: 0` read as 50), so
    /// the watch took the next request for body and missed a smuggling
    /// pair in it.
    #[test]
    fn an_earlier_headers_digits_do_not_leak_into_content_length() {
        let first = "POST / HTTP/1.1\r\nHost: a\r\nX-A: 5\r\nContent-Length: 0\r\n\r\n";
        let smuggled = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        for step in [1, 5, 1000] {
            assert_eq!(
                run(format!("{first}{smuggled}").as_bytes(), step),
                (2, State::Head)
            );
        }
    }
}

#[cfg(test)]
#[path = "h1scan_prop.rs"]
mod prop;
