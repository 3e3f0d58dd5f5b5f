//! Connections passed on whole: a PASSTHROUGH server's TLS connection (its
//! ClientHello already read, `hello.rs`) or a TCP server's connection,
//! copied both ways to the backend of its `tls[]`/`tcp[]` route under the
//! idle timeout, then logged once (one access-log line: client, SNI,
//! server, route, upstream, bytes each way, duration, Envoy's flags).
//!
//! It must never terminate or alter the client's TLS, never look inside
//! the bytes it copies, and never keep a connection past the idle timeout.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::Shared;
use crate::metrics::Outcome;
use crate::snapshot::l4::L4Route;
use crate::upstream::limits::Admission;

/// A connection to a port with a PASSTHROUGH server: its ClientHello is
/// read and kept, its SNI picks the server (exact, longest wildcard, `*`);
/// a PASSTHROUGH server passes the connection on whole to its `tls[]`
/// route, any other server gets the ClientHello replayed into its own
/// handshake. An SNI with no server, or a PASSTHROUGH server with no route
/// for it, is refused at once with `unrecognized_name`.
pub(super) async fn by_sni(
    mut stream: TcpStream,
    peer: SocketAddr,
    (listener, seats): (&crate::snapshot::Listener, Arc<super::overload::Seats>),
    shared: Arc<Shared>,
) {
    let start = Instant::now();
    let deadline = start + shared.settings.handshake_timeout;
    let read = tokio::time::timeout_at(deadline.into(), super::hello::read(&mut stream));
    let first = match read.await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "bad ClientHello");
            shared.metrics.handshake(None, Outcome::Protocol);
            return;
        }
        Err(_) => {
            shared.metrics.handshake(None, Outcome::Timeout);
            return;
        }
    };
    let sni = match super::hello::sni(&first) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "bad ClientHello");
            shared.metrics.handshake(None, Outcome::Protocol);
            return;
        }
    };
    let server = listener.server_for_sni(sni.as_deref()).cloned();
    if let Some(server) = &server
        && let Some(l4) = &server.l4
    {
        let conn = Conn {
            peer,
            sni: sni.clone(),
            server: server.id.clone(),
            start,
        };
        let Some(route) = crate::snapshot::l4::select(l4.routes(), sni.as_deref()) else {
            tracing::info!(%peer, sni = sni.as_deref().unwrap_or("-"), "handshake refused: no tls route for this SNI");
            no_route(&conn, &shared);
            super::alert::refuse(stream, super::alert::UNRECOGNIZED_NAME, deadline).await;
            return;
        };
        return forward(stream, first, route, conn, &shared).await;
    }
    let io = super::hello::Prefixed::new(first, stream);
    let Some((tls, server, sni)) = super::handshake(io, peer, listener, &shared, start).await
    else {
        return;
    };
    super::serve_tls(tls, server, sni, (peer, listener.port, seats), shared).await;
}

/// A TCP server's connection, passed on whole to its first `tcp[]` route.
pub(super) async fn tcp(
    stream: TcpStream,
    peer: SocketAddr,
    listener: &crate::snapshot::Listener,
    shared: &Shared,
) {
    let Some(server) = listener.servers.first() else {
        return;
    };
    let conn = Conn {
        peer,
        sni: None,
        server: server.id.clone(),
        start: Instant::now(),
    };
    let routes = server.l4.as_ref().map_or(&[][..], |l| l.routes());
    match crate::snapshot::l4::select(routes, None) {
        Some(route) => forward(stream, Vec::new(), route, conn, shared).await,
        None => no_route(&conn, shared),
    }
}

/// What one passed-on connection is, for its log line.
pub(super) struct Conn {
    pub peer: SocketAddr,
    pub sni: Option<String>,
    pub server: Arc<str>,
    pub start: Instant,
}

/// A connection to `addr` of `up`, admitted by the cluster's circuit
/// breakers (`maxConnections`; waiting as `http1MaxPendingRequests` allows,
/// at most the connect timeout: else `UO`) and made under its
/// `connectTimeout` (else `--upstream-connect-timeout`: else `UF`);
/// outlier detection hears how the connect went. The admission is held
/// as long as the connection.
async fn connect(
    up: &crate::upstream::Upstream,
    addr: SocketAddr,
    shared: &Shared,
) -> Result<(TcpStream, Option<Admission>), &'static str> {
    let timeout = up
        .policy
        .connection_pool
        .as_ref()
        .and_then(|p| p.connect_timeout)
        .unwrap_or(shared.settings.upstream_connect_timeout);
    let admission = match up.limits() {
        Some(l) => Some(l.admit(timeout).await.map_err(|_| "UO")?),
        None => None,
    };
    let connected = tokio::time::timeout(timeout, TcpStream::connect(addr)).await;
    if let Some(e) = up.endpoint_of(addr) {
        let ok = matches!(connected, Ok(Ok(_)));
        up.report(e, crate::upstream::outlier::connect_outcome(ok));
    }
    match connected {
        Ok(Ok(s)) => Ok((s, admission)),
        Ok(Err(e)) => {
            tracing::debug!(%addr, error = %e, "upstream connect failed");
            Err("UF")
        }
        Err(_) => Err("UF"),
    }
}

/// Connects to `route`'s backend, writes `first` (the ClientHello, or
/// nothing), then copies both ways until either side closes or the
/// connection is idle for the cluster's `tcp.idleTimeout` (else
/// `--idle-timeout`).
pub(super) async fn forward(
    client: TcpStream,
    first: Vec<u8>,
    route: &L4Route,
    conn: Conn,
    shared: &Shared,
) {
    let mut line = Line {
        conn: &conn,
        route: Some(&route.name),
        upstream: None,
        received: first.len() as u64,
        sent: 0,
        flags: "-",
    };
    let keys = super::handler::pick::Keys::peer(conn.peer.ip());
    let (picked, addr) = match super::handler::pick::pick_upstream(&route.upstreams, &keys).await {
        Ok(p) => (p.dest, p.addr),
        Err(flag) => {
            line.flags = flag.code();
            return line.emit(shared);
        }
    };
    let up = &picked.upstream;
    line.upstream = Some((up, addr));
    let (mut upstream, _admission) = match connect(up, addr, shared).await {
        Ok(c) => c,
        Err(flag) => {
            line.flags = flag;
            return line.emit(shared);
        }
    };
    let _ = upstream.set_nodelay(true);
    if let Some(version) = up.policy.proxy_protocol {
        // The client as the gateway saw it (or as the balancer in front
        // said, with --proxy-protocol), and where it connected.
        let local = client.local_addr().unwrap_or(conn.peer);
        let header = super::proxy_protocol::encode(version, conn.peer, local);
        if upstream.write_all(&header).await.is_err() {
            line.flags = "UC";
            return line.emit(shared);
        }
    }
    if upstream.write_all(&first).await.is_err() {
        line.flags = "UC";
        return line.emit(shared);
    }
    let counts = Arc::new(Counts::default());
    let mut client = Counted {
        inner: client,
        counts: counts.clone(),
        origin: conn.start,
    };
    // The DestinationRule's `tcp.idleTimeout`, else `--idle-timeout`.
    let idle = up
        .policy
        .connection_pool
        .as_ref()
        .and_then(|p| p.tcp_idle_timeout)
        .unwrap_or(shared.settings.idle_timeout);
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    loop {
        let last = Duration::from_millis(counts.last_ms.load(Ordering::Relaxed));
        let deadline = conn.start + last + idle;
        tokio::select! {
            _ = &mut copy => break,
            () = tokio::time::sleep_until(deadline.into()) => {
                let last = Duration::from_millis(counts.last_ms.load(Ordering::Relaxed));
                if Instant::now() >= conn.start + last + idle {
                    line.flags = "SI";
                    break;
                }
            }
        }
    }
    line.received += counts.received.load(Ordering::Relaxed);
    line.sent = counts.sent.load(Ordering::Relaxed);
    line.emit(shared);
}

/// Refuses a connection no route takes: logged with `NR`, then closed.
pub(super) fn no_route(conn: &Conn, shared: &Shared) {
    Line {
        conn,
        route: None,
        upstream: None,
        received: 0,
        sent: 0,
        flags: "NR",
    }
    .emit(shared);
}

/// The access-log line of one passed-on connection.
struct Line<'a> {
    conn: &'a Conn,
    route: Option<&'a Arc<str>>,
    /// (cluster host, cluster port, address)
    upstream: Option<(&'a crate::upstream::Upstream, SocketAddr)>,
    /// Bytes from the client, ClientHello included.
    received: u64,
    /// Bytes to the client.
    sent: u64,
    flags: &'static str,
}

impl Line<'_> {
    fn emit(&self, shared: &Shared) {
        let json = shared.json_log;
        let c = self.conn;
        shared.metrics.tcp_connection(
            &c.server,
            self.route,
            self.flags,
            (self.received, self.sent),
        );
        let duration_ms = c.start.elapsed().as_secs_f64() * 1000.0;
        let sni = c.sni.as_deref().unwrap_or("-");
        let route = self.route.map_or("-", |r| &**r);
        let (cluster, upstream) = match self.upstream {
            Some((up, a)) => (up.cluster_name(), a.to_string()),
            None => ("-".to_owned(), "-".to_owned()),
        };
        if json {
            tracing::info!(
                target: "access",
                client = %c.peer,
                sni,
                server = &*c.server,
                route,
                upstream_cluster = cluster,
                upstream,
                bytes_received = self.received,
                bytes_sent = self.sent,
                duration_ms,
                response_flags = self.flags,
                "connection"
            );
        } else {
            // SNI and route names are DNS names and config names: nothing
            // here can hold a space or a line break.
            tracing::info!(
                target: "access",
                "{} sni={sni} \"CONNECTION\" server={} route=\"{route}\" upstream_cluster={cluster} upstream={upstream} bytes_received={} bytes_sent={} {duration_ms:.3}ms response_flags={}",
                c.peer,
                c.server,
                self.received,
                self.sent,
                self.flags
            );
        }
    }
}

#[derive(Default)]
struct Counts {
    received: AtomicU64,
    sent: AtomicU64,
    /// Milliseconds from the connection's start to its last byte.
    last_ms: AtomicU64,
}

/// The client side, counting bytes each way and the time of the last one.
struct Counted<S> {
    inner: S,
    counts: Arc<Counts>,
    origin: Instant,
}

impl<S> Counted<S> {
    fn touched(&self, n: usize, which: &AtomicU64) {
        which.fetch_add(n as u64, Ordering::Relaxed);
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.counts.last_ms.store(ms, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.touched(n, &self.counts.received);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            self.touched(n, &self.counts.sent);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
