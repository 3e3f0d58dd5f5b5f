//! The client's request body on its way upstream. Its errors are the
//! client's fault (a bad chunk size or chunk framing), so they carry a type
//! of their own ([`ClientBodyError`]) that `forward` finds in the upstream
//! client's error and answers with 400, not the 503 of a backend failure.
//!
//! A chunked HTTP/1.1 body's first frame is read before the request leaves
//! ([`ClientBody::peeked`]), so a request whose chunk framing is bad from
//! the start never reaches a backend. A later framing error aborts the
//! upstream request mid-body; the backend never sees a complete request.
//! It must never buffer more than that one frame.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// The client's body failed: bad framing, or the client went away.
#[derive(Debug)]
pub struct ClientBodyError(hyper::Error);

impl std::fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "client request body: {}", self.0)
    }
}

impl std::error::Error for ClientBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl ClientBodyError {
    /// Whether `e`, or an error it wraps, is the client's body failing.
    pub fn in_chain(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if err.is::<ClientBodyError>() {
                return true;
            }
            cur = err.source();
        }
        false
    }
}

/// A request body as it is forwarded: maybe one frame read ahead, then the
/// rest as the client sends it.
#[derive(Debug)]
pub struct ClientBody {
    first: Option<Frame<Bytes>>,
    rest: Incoming,
}

impl ClientBody {
    /// The body as is, nothing read ahead.
    pub fn streamed(rest: Incoming) -> ClientBody {
        ClientBody { first: None, rest }
    }

    /// Reads the first frame now: a framing error shows before anything
    /// is sent upstream.
    pub async fn peeked(mut rest: Incoming) -> Result<ClientBody, ClientBodyError> {
        let first = rest.frame().await.transpose().map_err(ClientBodyError)?;
        Ok(ClientBody { first, rest })
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
        Pin::new(&mut self.rest)
            .poll_frame(cx)
            .map_err(ClientBodyError)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.rest.size_hint();
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
