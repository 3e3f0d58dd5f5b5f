//! The client's request body on its way upstream, with its two limits:
//! `--max-request-body` (what arrives, whatever `Content-Length` said or
//! did not say) and `--stream-idle-timeout` (how long the body may stall:
//! slow POST). Its errors are the client's fault (a bad chunk size or chunk
//! framing, a body over the limit, a stalled body), so they carry a type of
//! their own ([`ClientBodyError`]) that `forward` finds in the upstream
//! client's error and answers with 400, 413 or 408, not the 503 of a
//! backend failure.
//!
//! A chunked HTTP/1.1 body's first frame is read before the request leaves
//! ([`ClientBody::peeked`]), so a request whose chunk framing is bad from
//! the start, or whose first chunk is already over the limit, never
//! reaches a backend. A later error aborts the upstream request mid-body;
//! the backend never sees a complete request. It must never buffer more
//! than that one frame, and it costs one timer per stall, not per frame.
//! The exception is a route that retries or mirrors: a body that has
//! declared at most [`REPLAY_MAX_BYTES`] is read whole first
//! ([`read_whole`]) so that it can be sent again; and a gRPC call on a
//! route that retries keeps a copy of at most that many bytes as it
//! streams (`ClientBody::copied`, `tee`); no other body is held.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::stall::StallTimer;

/// Why the client's body failed.
#[derive(Debug)]
enum Fault {
    /// Bad framing, or the client went away.
    Client(hyper::Error),
    /// More bytes than `--max-request-body`.
    TooLarge,
    /// Nothing arrived for `--stream-idle-timeout`.
    Stalled,
}

/// The client's body failed: its fault, never the backend's.
#[derive(Debug)]
pub struct ClientBodyError(Fault);

impl std::fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Fault::Client(e) => write!(f, "client request body: {e}"),
            Fault::TooLarge => f.write_str("client request body over --max-request-body"),
            Fault::Stalled => f.write_str("client request body stalled (--stream-idle-timeout)"),
        }
    }
}

impl std::error::Error for ClientBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            Fault::Client(e) => Some(e),
            Fault::TooLarge | Fault::Stalled => None,
        }
    }
}

impl ClientBodyError {
    /// The client body error in `e`'s chain, if there is one.
    pub fn in_chain<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a ClientBodyError> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(found) = err.downcast_ref::<ClientBodyError>() {
                return Some(found);
            }
            cur = err.source();
        }
        None
    }

    /// Envoy's response flag: the client went away (`DC`), broke the
    /// body's framing or sent too much (`DPE`), or stalled (`SI`).
    pub fn flag(&self) -> super::facts::Flag {
        use super::facts::Flag;
        match &self.0 {
            Fault::Client(e) if e.is_incomplete_message() => Flag::DownstreamConnectionTermination,
            Fault::Client(_) | Fault::TooLarge => Flag::DownstreamProtocolError,
            Fault::Stalled => Flag::StreamIdleTimeout,
        }
    }

    /// The answer to the client, and why, for the log and the body.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self.0 {
            Fault::Client(_) => (StatusCode::BAD_REQUEST, "bad request body framing"),
            Fault::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            Fault::Stalled => (StatusCode::REQUEST_TIMEOUT, "request body timeout"),
        }
    }
}

/// The most of a refused HTTP/2 request's body that is read and thrown
/// away (one stream window), and for how long.
const DISCARD_BYTES: usize = 64 * 1024;
const DISCARD_FOR: Duration = Duration::from_secs(1);

/// An HTTP/2 request answered before its body was read (a 413 for its
/// `Content-Length`, a 431): the body is read and thrown away, a stream
/// window at most and for a second at most, as nginx discards the body of
/// an early answer. A client still uploading then finishes its stream
/// instead of meeting RST_STREAM, which some (curl 7.88) report as a
/// stream error in place of the answer. Past the bound the stream is reset.
pub fn discard(body: Incoming) {
    tokio::spawn(async move {
        let mut body = body;
        let mut left = DISCARD_BYTES;
        let drain = async {
            while let Some(Ok(frame)) = body.frame().await {
                let n = frame.data_ref().map_or(0, Bytes::len);
                match left.checked_sub(n) {
                    Some(l) => left = l,
                    None => return,
                }
            }
        };
        let _ = tokio::time::timeout(DISCARD_FOR, drain).await;
    });
}

/// The largest body held whole so that it can be sent again (a retry, a
/// mirror): one whose `Content-Length` says at most this. Any other body
/// streams, and its request is neither retried nor mirrored.
pub const REPLAY_MAX_BYTES: u64 = 64 * 1024;

/// Whether `body` can be held whole: it has ended already, or its declared
/// length is at most [`REPLAY_MAX_BYTES`] (the decoder holds the client to it).
pub fn replayable(body: &Incoming) -> bool {
    body.is_end_stream()
        || body
            .size_hint()
            .exact()
            .is_some_and(|n| n <= REPLAY_MAX_BYTES)
}

/// Reads a [`replayable`] body whole, under the limits (the stall, the
/// most bytes), into one buffer of at most [`REPLAY_MAX_BYTES`].
pub async fn read_whole(body: Incoming, limits: BodyLimits) -> Result<Bytes, ClientBodyError> {
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let body = ClientBody::streamed(body, limits);
    Ok(body.collect().await?.to_bytes())
}

/// The limits a body is read under.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// The most bytes (0: no limit).
    pub max_bytes: u64,
    /// The longest a read may stay pending.
    pub idle: Duration,
}

/// A request body as it is forwarded: maybe one frame read ahead, then the
/// rest as the client sends it, counted and timed.
#[derive(Debug)]
pub struct ClientBody {
    first: Option<Frame<Bytes>>,
    /// `None` for a body held whole ([`ClientBody::replay`]).
    rest: Option<Incoming>,
    /// Bytes the body may still send.
    left: u64,
    /// Armed while a read is pending (slow POST).
    stall: StallTimer,
    /// A copy kept for a retry (`ClientBody::copied`), until the end.
    copy: Option<super::tee::Copy>,
}

impl ClientBody {
    /// The body as is, nothing read ahead.
    pub fn streamed(rest: Incoming, limits: BodyLimits) -> ClientBody {
        ClientBody {
            first: None,
            rest: Some(rest),
            left: match limits.max_bytes {
                0 => u64::MAX,
                n => n,
            },
            stall: StallTimer::new(limits.idle),
            copy: None,
        }
    }

    /// A body held whole (read by [`read_whole`]), sent again as it is:
    /// what a retry and a mirror send.
    pub fn replay(body: Bytes) -> ClientBody {
        ClientBody {
            first: (!body.is_empty()).then(|| Frame::data(body)),
            rest: None,
            left: u64::MAX,
            // Never armed: a held body is never pending.
            stall: StallTimer::new(DISCARD_FOR),
            copy: None,
        }
    }

    /// The body, keeping a copy of what it sends (see `tee`): whole, it
    /// arrives at the receiver once the body has ended.
    pub fn copied(mut self) -> (ClientBody, super::tee::Copied) {
        let (copy, copied) = super::tee::Copy::new();
        let mut copy = Some(copy);
        if let Some(f) = &self.first {
            copy = match f.data_ref() {
                Some(d) => copy.and_then(|c| c.push(d)),
                None => None,
            };
        }
        self.copy = copy;
        self.finish_copy_at_end();
        (self, copied)
    }

    /// Hands the copy over if the body has no more to send.
    fn finish_copy_at_end(&mut self) {
        if self.rest.as_ref().is_none_or(Body::is_end_stream)
            && let Some(c) = self.copy.take()
        {
            c.finish();
        }
    }

    /// Reads the first frame now: a framing error, or a first chunk over
    /// the limit, shows before anything is sent upstream.
    pub async fn peeked(rest: Incoming, limits: BodyLimits) -> Result<ClientBody, ClientBodyError> {
        let mut body = ClientBody::streamed(rest, limits);
        let first = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        body.first = first.transpose()?;
        Ok(body)
    }

    /// Adds `frame` to the copy; hands the copy over if that was the end
    /// (the sender may not poll again once `is_end_stream` says so).
    fn keep_copy(&mut self, frame: &Frame<Bytes>) {
        let copy = self.copy.take();
        self.copy = match frame.data_ref() {
            Some(d) => copy.and_then(|c| c.push(d)),
            // Trailers: a held body cannot carry them again.
            None => None,
        };
        self.finish_copy_at_end();
    }

    /// The read is pending: fails once the stall has lasted the idle time.
    fn stalled(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        ready!(self.stall.poll_expired(cx));
        Poll::Ready(Some(Err(ClientBodyError(Fault::Stalled))))
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        if let Some(f) = self.first.take() {
            return Poll::Ready(Some(Ok(f)));
        }
        let Some(rest) = self.rest.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = match Pin::new(rest).poll_frame(cx) {
            Poll::Pending => return self.stalled(cx),
            Poll::Ready(Some(Ok(f))) => f,
            Poll::Ready(Some(Err(e))) => {
                return Poll::Ready(Some(Err(ClientBodyError(Fault::Client(e)))));
            }
            Poll::Ready(None) => {
                if let Some(c) = self.copy.take() {
                    c.finish();
                }
                return Poll::Ready(None);
            }
        };
        self.stall.moved();
        if let Some(d) = frame.data_ref() {
            let n = d.len() as u64;
            if n > self.left {
                return Poll::Ready(Some(Err(ClientBodyError(Fault::TooLarge))));
            }
            self.left -= n;
        }
        if self.copy.is_some() {
            self.keep_copy(&frame);
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint);
        let held = self
            .first
            .as_ref()
            .and_then(Frame::data_ref)
            .map_or(0, |d| d.len() as u64);
        if held > 0 {
            let mut h = SizeHint::new();
            h.set_lower(hint.lower().saturating_add(held));
            if let Some(u) = hint.upper() {
                h.set_upper(u.saturating_add(held));
            }
            hint = h;
        }
        hint
    }
}
