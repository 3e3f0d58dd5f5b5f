//! Properties of the HTTP/1 byte watch: it follows any pipeline of
//! well-formed requests (bodies by length or by chunks, whatever the bodies
//! hold) and flags exactly the heads with `Content-Length` and
//! `Transfer-Encoding` or with two `Content-Length`s; its verdicts never
//! depend on how the stream is split into reads; and arbitrary bytes never
//! make it panic. The bytes go through `poll_read`, as hyper reads them.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use proptest::prelude::*;
use tokio::io::{AsyncRead, ReadBuf};

use super::{Scanned, State, Verdicts};

/// A reader that hands out `data` in pieces of the given sizes.
struct Pieces {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<usize>,
    next: usize,
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = self.sizes.get(self.next % self.sizes.len().max(1)).copied();
        self.next += 1;
        let n = size
            .unwrap_or(usize::MAX)
            .min(buf.remaining())
            .min(self.data.len() - self.pos);
        let (from, to) = (self.pos, self.pos + n);
        buf.put_slice(&self.data[from..to]);
        self.pos = to;
        Poll::Ready(Ok(()))
    }
}

/// What the watch ends with: the first faulty head (1-based, 0: none),
/// its state, the heads it saw, and the verdict for each request taken.
type Outcome = (u64, State, u64, Vec<bool>);

/// Reads `data` through a [`Scanned`] in pieces of `sizes`, into buffers
/// that already hold `leftover` bytes (as hyper's read buffer may).
fn watch(data: &[u8], sizes: &[usize], leftover: usize, requests: usize) -> Outcome {
    let v = Arc::new(Verdicts::default());
    let io = Pieces {
        data: data.to_vec(),
        pos: 0,
        sizes: sizes.to_vec(),
        next: 0,
    };
    let mut s = Scanned::new(io, v.clone(), usize::MAX);
    let mut cx = Context::from_waker(Waker::noop());
    let mut storage = vec![0u8; leftover + data.len() + 1];
    // Each read moves at least one byte until the data is all read.
    for _ in 0..=data.len() {
        let mut buf = ReadBuf::new(&mut storage);
        buf.put_slice(&[b'x'; 64][..leftover.min(64)]);
        let _ = Pin::new(&mut s).poll_read(&mut cx, &mut buf);
        if s.io.pos == data.len() {
            break;
        }
    }
    let taken = (0..requests).map(|_| v.next_fault().is_some()).collect();
    (v.first_bad.load(Ordering::Relaxed), s.state, s.heads, taken)
}

/// How one request says where its body ends.
#[derive(Debug, Clone)]
enum Framing {
    None,
    Length(Vec<u8>),
    /// Chunks, each with an optional extension, then trailer lines.
    Chunked(Vec<(Vec<u8>, bool)>, Vec<String>),
    /// Faulty: `Content-Length` and `Transfer-Encoding`, with a chunked body.
    Both(Vec<(Vec<u8>, bool)>, usize),
    /// Faulty: the same `Content-Length` twice.
    TwoLengths(Vec<u8>),
}

impl Framing {
    fn faulty(&self) -> bool {
        matches!(self, Framing::Both(..) | Framing::TwoLengths(_))
    }
}

#[derive(Debug, Clone)]
struct Req {
    /// An empty line before the request line (RFC 9112 §2.2 allows it).
    blank: bool,
    /// `\r\n`, or a bare `\n` as hyper also accepts in a head.
    crlf: bool,
    /// Other header lines, among which the framing lines are placed.
    headers: Vec<String>,
    at: prop::sample::Index,
    /// The framing header names' spelling, and the whitespace around values.
    upper: bool,
    ows: bool,
    /// The framing lines in reverse order (`Transfer-Encoding` first).
    reverse: bool,
    framing: Framing,
}

/// Bytes a body may hold, including text that looks like a faulty head.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..8),
        prop::sample::select(vec![
            b"\r\n".to_vec(),
            b"\r\n\r\n".to_vec(),
            b"POST / HTTP/1.1\r\n".to_vec(),
            b"Content-Length: 3\r\n".to_vec(),
            b"Transfer-Encoding: chunked\r\n".to_vec(),
            b"0\r\n\r\n".to_vec(),
            b"PRI * HTTP/2.0\r\n".to_vec(),
        ]),
    ];
    prop::collection::vec(token, 0..5).prop_map(|t| t.concat())
}

fn chunks() -> impl Strategy<Value = Vec<(Vec<u8>, bool)>> {
    prop::collection::vec(
        (
            body().prop_filter("a chunk is not empty", |b| !b.is_empty()),
            any::<bool>(),
        ),
        0..4,
    )
}

fn framing() -> impl Strategy<Value = Framing> {
    let trailers = prop::collection::vec(
        prop::sample::select(vec!["T: v", "Content-Length: 9", "X-A: b"]).prop_map(str::to_owned),
        0..2,
    );
    prop_oneof![
        3 => Just(Framing::None),
        3 => body().prop_map(Framing::Length),
        3 => (chunks(), trailers).prop_map(|(c, t)| Framing::Chunked(c, t)),
        1 => (chunks(), 0usize..30).prop_map(|(c, n)| Framing::Both(c, n)),
        1 => body().prop_map(Framing::TwoLengths),
    ]
}

fn req() -> impl Strategy<Value = Req> {
    let header = prop::sample::select(vec![
        "Host: a.com",
        "Accept: */*",
        "X-Note: Content-Length: 5",
        "X-Content-Length: 5",
        "Content-Type: text/plain",
        "Transfer-Encodings: x",
        "Content-Lengthy: 7",
        "A-Very-Long-Header-Name-Indeed: 1",
    ])
    .prop_map(str::to_owned);
    (
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(header, 0..4),
        any::<prop::sample::Index>(),
        any::<bool>(),
        (any::<bool>(), any::<bool>(), framing()),
    )
        .prop_map(
            |(blank, crlf, headers, at, upper, (ows, reverse, framing))| Req {
                blank,
                crlf,
                headers,
                at,
                upper,
                ows,
                reverse,
                framing,
            },
        )
}

fn chunked_body(chunks: &[(Vec<u8>, bool)], trailers: &[String], upper: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (data, ext) in chunks {
        let size = if upper {
            format!("{:X}", data.len())
        } else {
            format!("{:x}", data.len())
        };
        out.extend_from_slice(size.as_bytes());
        if *ext {
            out.extend_from_slice(b";name=\"v 1\"");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    for t in trailers {
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

impl Req {
    fn render(&self) -> Vec<u8> {
        let eol = if self.crlf { "\r\n" } else { "\n" };
        let (cl, te) = if self.upper {
            ("CONTENT-LENGTH", "TRANSFER-ENCODING")
        } else {
            ("Content-Length", "transfer-encoding")
        };
        let ows = if self.ows { " \t" } else { "" };
        let length = |n: usize| format!("{cl}:{ows}{n}{ows}");
        let chunked = format!("{te}:{ows}chunked{ows}");
        let (mut framing, body): (Vec<String>, Vec<u8>) = match &self.framing {
            Framing::None => (vec![], vec![]),
            Framing::Length(b) => (vec![length(b.len())], b.clone()),
            Framing::Chunked(c, t) => (vec![chunked], chunked_body(c, t, self.upper)),
            Framing::Both(c, n) => (vec![length(*n), chunked], chunked_body(c, &[], false)),
            Framing::TwoLengths(b) => (vec![length(b.len()), length(b.len())], b.clone()),
        };
        if self.reverse {
            framing.reverse();
        }
        let mut lines = self.headers.clone();
        let at = self.at.index(lines.len() + 1);
        for (k, f) in framing.into_iter().enumerate() {
            // The second line goes anywhere after the first.
            let at = match k {
                0 => at,
                _ => at + 1 + self.at.index(lines.len() - at),
            };
            lines.insert(at, f);
        }
        let mut out = String::new();
        if self.blank {
            out.push_str(eol);
        }
        out.push_str("POST /upload HTTP/1.1");
        out.push_str(eol);
        for l in &lines {
            out.push_str(l);
            out.push_str(eol);
        }
        out.push_str(eol);
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    }
}

fn sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..40, 1..8)
}

proptest! {
    /// A pipeline of requests: the watch flags exactly the first faulty
    /// one, and every request from there on, however the reads split.
    #[test]
    fn prop_h1scan_flags_the_first_faulty_request_of_a_pipeline(
        reqs in prop::collection::vec(req(), 1..6),
        sizes in sizes(),
        leftover in 0usize..8,
    ) {
        let stream: Vec<u8> = reqs.iter().flat_map(Req::render).collect();
        let first = reqs.iter().position(|r| r.framing.faulty());
        let (bad, state, heads, taken) = watch(&stream, &sizes, leftover, reqs.len());
        prop_assert_eq!(bad, first.map_or(0, |i| i as u64 + 1));
        prop_assert_eq!(heads, reqs.len() as u64);
        prop_assert_eq!(state, State::Head);
        let want: Vec<bool> = (0..reqs.len()).map(|i| first.is_some_and(|f| i >= f)).collect();
        prop_assert_eq!(taken, want);
    }

    /// `Content-Length` with `Transfer-Encoding`, in either order and any
    /// spelling, behind any number of good requests, split anywhere.
    #[test]
    fn prop_h1scan_always_flags_content_length_with_transfer_encoding(
        before in prop::collection::vec(req(), 0..3),
        smuggler in (req(), chunks(), 0usize..99999).prop_map(|(mut r, c, n)| {
            r.framing = Framing::Both(c, n);
            r
        }),
        sizes in sizes(),
    ) {
        let good: Vec<Req> = before.into_iter().filter(|r| !r.framing.faulty()).collect();
        let stream: Vec<u8> = good.iter().chain([&smuggler]).flat_map(Req::render).collect();
        let (bad, ..) = watch(&stream, &sizes, 0, 0);
        prop_assert_eq!(bad, good.len() as u64 + 1);
    }

    /// Any bytes at all, split anywhere: no panic, and the same verdict,
    /// state and head count as when read in one piece.
    #[test]
    fn prop_h1scan_verdicts_do_not_depend_on_read_sizes(
        data in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            prop::collection::vec(req(), 1..4).prop_map(|r| r.iter().flat_map(Req::render).collect()),
            (prop::collection::vec(req(), 1..4), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4))
                .prop_map(|(r, edits)| {
                    let mut b: Vec<u8> = r.iter().flat_map(Req::render).collect();
                    for (at, byte) in edits {
                        let i = at.index(b.len());
                        b[i] = byte;
                    }
                    b
                }),
        ],
        sizes in sizes(),
        leftover in 0usize..8,
    ) {
        let whole = watch(&data, &[usize::MAX], 0, 4);
        let split = watch(&data, &sizes, leftover, 4);
        prop_assert_eq!(whole, split);
    }
}
