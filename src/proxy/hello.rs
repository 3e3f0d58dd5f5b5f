//! The ClientHello, read and kept: on a port with a PASSTHROUGH server the
//! first TLS records are read into a buffer (bounded, under the handshake
//! deadline), their SNI is parsed by rustls, and the bytes are then either
//! written unchanged to a passthrough backend or replayed into gatehouse's
//! own TLS handshake through [`Prefixed`].
//!
//! It must never lose or reorder a byte it read (whatever the client sent
//! with its ClientHello goes on with it), never buffer much more than
//! [`MAX_HELLO`] bytes, and never decide anything from bytes rustls has
//! not parsed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The largest ClientHello accepted (handshake message, with its record
/// headers): more than any browser's, post-quantum key shares included.
pub(super) const MAX_HELLO: usize = 32 * 1024;

/// Why no SNI could be taken from a connection's first bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(super) enum HelloError {
    #[error("not a TLS handshake record")]
    NotHandshake,
    #[error("the first handshake message is not a ClientHello")]
    NotClientHello,
    #[error("ClientHello larger than {MAX_HELLO} bytes")]
    TooLarge,
    #[error("bad TLS record length")]
    BadRecord,
    #[error("the client closed before its ClientHello ended")]
    Closed,
    #[error("malformed ClientHello: {0}")]
    Malformed(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// How far `buf` gets towards a whole ClientHello: `Ok(Some(n))` when its
/// first `n` bytes are the records that carry all of it, `Ok(None)` when
/// more bytes are needed.
pub(super) fn complete(buf: &[u8]) -> Result<Option<usize>, HelloError> {
    let mut at = 0;
    let mut message_len: Option<usize> = None;
    let mut have = 0usize;
    let mut head = [0u8; 4];
    while let Some(header) = buf.get(at..at + 5) {
        if header[0] != 22 {
            return Err(HelloError::NotHandshake);
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > 16 * 1024 {
            return Err(HelloError::BadRecord);
        }
        let Some(payload) = buf.get(at + 5..at + 5 + len) else {
            break;
        };
        for b in payload {
            if have < 4 {
                head[have] = *b;
            }
            have += 1;
        }
        at += 5 + len;
        if message_len.is_none() && have >= 4 {
            if head[0] != 1 {
                return Err(HelloError::NotClientHello);
            }
            message_len = Some(
                4 + (usize::from(head[1]) << 16 | usize::from(head[2]) << 8 | usize::from(head[3])),
            );
        }
        if let Some(m) = message_len {
            if m + 5 > MAX_HELLO {
                return Err(HelloError::TooLarge);
            }
            if have >= m {
                return Ok(Some(at));
            }
        }
    }
    if buf.len() >= MAX_HELLO {
        return Err(HelloError::TooLarge);
    }
    Ok(None)
}

/// Reads the records that carry the ClientHello (and nothing after them
/// unless the client sent it in the same segment: those bytes are kept
/// too, in order).
pub(super) async fn read<I: AsyncRead + Unpin>(io: &mut I) -> Result<Vec<u8>, HelloError> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        if complete(&buf)?.is_some() {
            return Ok(buf);
        }
        let room = (MAX_HELLO + 16 * 1024)
            .saturating_sub(buf.len())
            .min(chunk.len());
        let n = io.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Err(HelloError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The SNI of the ClientHello in `hello`, parsed by rustls (lower-cased);
/// `None` when the client sent none.
pub(super) fn sni(hello: &[u8]) -> Result<Option<String>, HelloError> {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut rest = hello;
    loop {
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                return Ok(accepted
                    .client_hello()
                    .server_name()
                    .map(|s| s.trim_end_matches('.').to_ascii_lowercase()));
            }
            Ok(None) => {}
            Err((e, _alert)) => return Err(HelloError::Malformed(e.to_string())),
        }
        if rest.is_empty() {
            return Err(HelloError::Closed);
        }
        let n = acceptor.read_tls(&mut rest)?;
        if n == 0 {
            return Err(HelloError::Closed);
        }
    }
}

/// A stream whose first bytes are replayed from a buffer: the ClientHello
/// already read, handed to gatehouse's own TLS handshake.
pub(super) struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(super) fn new(prefix: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.at);
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "hello_tests.rs"]
mod tests;
