//! The client connection's bytes, as hyper reads and writes them, with two
//! guards of the edge:
//!
//! - **Slow read.** A write to the client that stays pending for
//!   `--stream-idle-timeout` (the client stopped reading: its window and
//!   our socket buffer are full) fails with `TimedOut`, which ends the
//!   connection. One timer per stall, armed only when a write is pending
//!   and reset when bytes move, never per byte.
//! - **Lingering close.** When the connection ends, its write side is
//!   shut down (TLS close_notify, then FIN) and what the client is still
//!   sending is read and discarded for a short while, as nginx's
//!   `lingering_close` does. Closing with unread bytes makes the kernel
//!   answer with a reset, and a client that is still sending (a 431 for
//!   its oversized head, a 413 for its body) may then fail its write and
//!   never read the answer that explains why.
//!
//! It never changes, holds or delays a byte.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::rt::{Read, ReadBuf, ReadBufCursor, Write};

use super::stall::StallTimer;

/// The longest a closed connection lingers, reading what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// The most bytes a lingering close reads before it gives up.
const LINGER_BYTES: usize = 256 * 1024;

/// `I` with its writes guarded and its close lingering (see the module doc).
#[derive(Debug)]
pub(super) struct Guarded<I: Read + Write + Unpin + Send + 'static> {
    /// `None` only once dropped (the lingering close takes it).
    io: Option<I>,
    /// Armed while a write is pending (slow read).
    stall: StallTimer,
}

impl<I: Read + Write + Unpin + Send + 'static> Guarded<I> {
    pub(super) fn new(io: I, idle: Duration) -> Guarded<I> {
        Guarded {
            io: Some(io),
            stall: StallTimer::new(idle),
        }
    }

    /// Polls one write-side operation under the stall timer.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut I>, &mut Context<'_>) -> Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        let Some(io) = self.io.as_mut() else {
            return Poll::Ready(Err(std::io::ErrorKind::NotConnected.into()));
        };
        if let Poll::Ready(r) = op(Pin::new(io), cx) {
            self.stall.moved();
            return Poll::Ready(r);
        }
        ready!(self.stall.poll_expired(cx));
        tracing::debug!("a write to the client stalled past --stream-idle-timeout");
        Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client did not read for --stream-idle-timeout",
        )))
    }
}

impl<I: Read + Write + Unpin + Send + 'static> Read for Guarded<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.io.as_mut() {
            Some(io) => Pin::new(io).poll_read(cx, buf),
            None => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }
}

impl<I: Read + Write + Unpin + Send + 'static> Write for Guarded<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.guard(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.guard(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(Write::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.guard(cx, Write::poll_flush)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.guard(cx, Write::poll_shutdown)
    }
}

impl<I: Read + Write + Unpin + Send + 'static> Drop for Guarded<I> {
    fn drop(&mut self) {
        let Some(io) = self.io.take() else { return };
        // Without a runtime (process exit) the socket just closes.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = tokio::time::timeout(LINGER, linger(io)).await;
            });
        }
    }
}

/// Shuts the write side down, then reads and discards until the client
/// closes, errs, or has sent [`LINGER_BYTES`] more.
async fn linger<I: Read + Write + Unpin>(mut io: I) {
    if std::future::poll_fn(|cx| Pin::new(&mut io).poll_shutdown(cx))
        .await
        .is_err()
    {
        return;
    }
    let mut scratch = [0u8; 4096];
    let mut read = 0;
    while read < LINGER_BYTES {
        let mut buf = ReadBuf::new(&mut scratch);
        let r = std::future::poll_fn(|cx| Pin::new(&mut io).poll_read(cx, buf.unfilled())).await;
        match (r, buf.filled().len()) {
            (Ok(()), 0) | (Err(_), _) => return,
            (Ok(()), n) => read += n,
        }
    }
}
