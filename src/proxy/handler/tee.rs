//! A copy of a streamed request body, kept as it goes upstream so that a
//! gRPC call on a route with `retries` can be sent again: gRPC clients
//! send no `Content-Length`, so their bodies are never held whole first
//! (that would stall a streaming call), and Envoy likewise buffers a
//! request for its retries while it forwards it.
//!
//! The copy is handed over (a oneshot) only once the body has ended,
//! whole and within [`REPLAY_MAX_BYTES`](super::body::REPLAY_MAX_BYTES);
//! a body that grows past that, carries trailers, fails, or is dropped
//! before its end gives nothing, and its request is not retried. It must
//! never hold more than that many bytes.

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::body::REPLAY_MAX_BYTES;

/// The copy being made.
#[derive(Debug)]
pub struct Copy {
    buf: BytesMut,
    tx: oneshot::Sender<Bytes>,
}

/// Where the whole copy arrives, if it is ever whole.
pub type Copied = oneshot::Receiver<Bytes>;

impl Copy {
    pub fn new() -> (Copy, Copied) {
        let (tx, rx) = oneshot::channel();
        (
            Copy {
                buf: BytesMut::new(),
                tx,
            },
            rx,
        )
    }

    /// Adds `data`; `None` once the copy has grown too large (it is
    /// dropped, and its receiver sees that).
    pub fn push(mut self, data: &Bytes) -> Option<Copy> {
        let len = (self.buf.len() + data.len()) as u64;
        if len > REPLAY_MAX_BYTES {
            return None;
        }
        self.buf.extend_from_slice(data);
        Some(self)
    }

    /// The body ended: the copy goes to its receiver.
    pub fn finish(self) {
        let _ = self.tx.send(self.buf.freeze());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_small_body_is_handed_over() {
        let (c, mut rx) = Copy::new();
        let c = c.push(&Bytes::from_static(b"ab")).unwrap();
        let c = c.push(&Bytes::from_static(b"cd")).unwrap();
        assert!(rx.try_recv().is_err(), "not before the end");
        c.finish();
        assert_eq!(rx.try_recv().unwrap(), Bytes::from_static(b"abcd"));
    }

    #[test]
    fn a_large_body_gives_nothing() {
        let (c, mut rx) = Copy::new();
        let big = Bytes::from(vec![0u8; REPLAY_MAX_BYTES as usize + 1]);
        assert!(c.push(&big).is_none());
        assert!(matches!(
            rx.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }
}
