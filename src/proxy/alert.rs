//! The fatal alert that ends a handshake gatehouse refuses before rustls
//! takes over: after `LazyConfigAcceptor` has read the ClientHello and no
//! server (or no usable credential) answers for its SNI, nothing is
//! encrypted yet, so the alert is one plaintext record (RFC 8446 §6,
//! RFC 5246 §7.2). Clients then say why (`tlsv1 unrecognized name`)
//! instead of seeing a bare TCP close.
//!
//! It never waits past the handshake deadline and never reads from the
//! client.

use std::time::Instant;

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// `unrecognized_name` (RFC 6066 §3): no server for the SNI (or no SNI
/// and no `*` server).
pub(super) const UNRECOGNIZED_NAME: u8 = 112;
/// `handshake_failure`: the server exists but cannot complete a handshake
/// (no usable credential).
pub(super) const HANDSHAKE_FAILURE: u8 = 40;

/// Writes a fatal alert record with `description` and closes the stream.
pub(super) async fn refuse<IO: AsyncWrite + Unpin>(mut io: IO, description: u8, deadline: Instant) {
    // content type alert (21), legacy record version TLS 1.2, length 2,
    // level fatal (2), description.
    let record = [21, 3, 3, 0, 2, 2, description];
    let send = async {
        io.write_all(&record).await?;
        io.shutdown().await
    };
    if let Ok(Err(e)) = tokio::time::timeout_at(deadline.into(), send).await {
        tracing::debug!(error = %e, "could not send the alert");
    }
}
