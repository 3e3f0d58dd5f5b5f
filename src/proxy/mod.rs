//! Listeners and connections: accept, pick the server from the ClientHello,
//! finish the handshake with that server's config, then serve HTTP/1.1 and
//! HTTP/2 bound to that server.
//!
//! A connection belongs to the server its handshake chose: requests for
//! another server's host get 421, never that server's routes.

mod alert;
pub(crate) mod chance;
mod counted;
pub mod drain;
mod h1scan;
mod h2c;
mod h2watch;
pub(crate) mod handler;
mod hello;
mod l4;
pub mod overload;
pub mod path;
pub mod proxy_protocol;
pub mod settings;
pub mod transport;
mod xfcc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::LazyConfigAcceptor;

use crate::metrics::{Active, Metrics, Outcome};
use crate::snapshot::{Snapshot, TlsState};
pub use drain::Drain;
pub use settings::Settings;

/// What every connection of the process shares.
pub struct Shared {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub client: transport::HttpClient,
    /// HTTP/1.1 connections driven by the request's own task.
    pub direct: transport::Direct,
    /// HTTP/2 with prior knowledge to the clusters that speak it.
    pub h2c: h2c::H2c,
    pub settings: Settings,
    pub json_log: bool,
    /// The process-wide connection limit (see `overload`).
    pub connections: Arc<overload::Room>,
    /// HTTP/1.1 + HTTP/2 server settings, built once for every connection.
    pub http: hyper_util::server::conn::auto::Builder<TokioExecutor>,
    /// The shutdown switch and the count of open connections.
    pub drain: Arc<Drain>,
    /// The process's metrics (`/metrics`); the control loop records into
    /// them through this too.
    pub metrics: Arc<Metrics>,
    /// The data-plane runtime: listeners and connections run here, never
    /// on the control plane's thread.
    runtime: tokio::runtime::Handle,
}

impl Shared {
    /// Must be called on the data-plane runtime: its listeners will run there.
    pub fn new(snapshot: Arc<ArcSwap<Snapshot>>, settings: Settings, json_log: bool) -> Shared {
        let metrics = Arc::new(Metrics::new());
        let connector =
            transport::tcp_connector(settings.upstream_connect_timeout, metrics.upstream_gauge());
        let h2c = h2c::H2c::new(connector.clone());
        let direct = transport::direct(connector.clone());
        let client = transport::pooled(connector.into());
        let connections = overload::Room::new(settings.max_connections_total);
        let http = handler::http_builder(&settings);
        Shared {
            snapshot,
            client,
            direct,
            h2c,
            settings,
            json_log,
            connections,
            http,
            drain: Arc::new(Drain::default()),
            metrics,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Binds `addr` for the data plane, from any thread: the socket is
    /// registered with the data-plane runtime (SO_REUSEADDR, as
    /// `TcpListener::bind` does, so a restart finds its port free).
    pub fn bind(&self, addr: SocketAddr) -> std::io::Result<TcpListener> {
        let _on_data_plane = self.runtime.enter();
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(1024)
    }

    /// Serves `listener` on the data-plane runtime until `shutdown` turns
    /// true or the drain starts.
    pub fn spawn_listener(
        self: &Arc<Self>,
        listener: TcpListener,
        port: u16,
        shutdown: watch::Receiver<bool>,
    ) {
        self.runtime
            .spawn(serve_listener(listener, port, self.clone(), shutdown));
    }
}

/// Facts about a connection that every request on it carries.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub port: u16,
    pub peer: SocketAddr,
    pub sni: Option<String>,
    /// `Some` on TLS connections: the server the handshake chose.
    pub server_id: Option<Arc<str>>,
    pub tls: bool,
    /// `Some` on TLS connections: what the handshake agreed.
    pub handshake: Option<Handshake>,
    pub client_cert: Option<ClientCert>,
    /// HTTP/1 connections: what the byte watch found (see `h1scan`).
    pub h1: Option<Arc<h1scan::Verdicts>>,
    /// Its places under the connection limits; an idle connection gives
    /// its place up when a new one needs it (see `overload`).
    pub seats: Arc<overload::Seats>,
}

/// What a TLS handshake agreed, as logged.
#[derive(Debug, Clone, Copy)]
pub struct Handshake {
    /// `TLSv1_3`, `TLSv1_2`.
    pub version: &'static str,
    /// The IANA name of the cipher suite.
    pub cipher: &'static str,
    /// Whether a session was resumed (no certificates exchanged).
    pub resumed: bool,
}

impl Handshake {
    fn of(c: &rustls::ServerConnection) -> Handshake {
        Handshake {
            version: c.protocol_version().and_then(|v| v.as_str()).unwrap_or("-"),
            cipher: c
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("-"),
            resumed: c.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        }
    }
}

/// The verified client certificate, as forwarded and logged.
#[derive(Debug, Clone)]
pub enum ClientCert {
    /// Forwarded as `x-forwarded-client-cert` (Envoy's format).
    Forwarded(xfcc::PeerCert),
    /// A field a header cannot carry: every request on the connection is
    /// refused (400), never forwarded without the identity.
    Unrepresentable(xfcc::Unrepresentable),
}

impl ClientCert {
    fn from_der(der: &[u8]) -> ClientCert {
        match xfcc::peer_cert(der) {
            Ok(p) => ClientCert::Forwarded(p),
            Err(u) => ClientCert::Unrepresentable(u),
        }
    }

    /// RFC 2253, control characters escaped: safe to log.
    pub fn subject(&self) -> &str {
        match self {
            ClientCert::Forwarded(p) => &p.subject,
            ClientCert::Unrepresentable(u) => &u.subject,
        }
    }

    /// SHA-256 of the certificate's DER, lower-case hex.
    pub fn sha256(&self) -> &str {
        match self {
            ClientCert::Forwarded(p) => &p.sha256,
            ClientCert::Unrepresentable(u) => &u.sha256,
        }
    }

    /// The URI and DNS SANs; none for a certificate a header cannot
    /// carry (its SANs may hold what a log line must not).
    pub fn sans(&self) -> (&[String], &[String]) {
        match self {
            ClientCert::Forwarded(p) => (&p.uri_sans, &p.dns_sans),
            ClientCert::Unrepresentable(_) => (&[], &[]),
        }
    }
}

/// Accepts connections for one Gateway port until `shutdown` turns true or
/// the drain starts; the listening socket closes then, so new connections
/// are refused.
pub async fn serve_listener(
    listener: TcpListener,
    port: u16,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let per_listener = overload::Room::new(shared.settings.max_connections_per_listener);
    let active = shared.metrics.downstream_gauge(port);
    let drain = shared.drain.clone();
    let draining = drain.started();
    tokio::pin!(draining);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
            () = &mut draining => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(port, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // At a limit, idle connections make room; refused only if none can.
        let shared = shared.clone();
        let total = shared.connections.clone();
        let active = active.clone();
        overload::admit(
            stream,
            peer,
            port,
            &per_listener,
            &total,
            move |stream, seats| {
                let open = shared.drain.connection();
                let counted = Active::new(&active);
                async move {
                    handle_connection(stream, peer, port, shared, Arc::new(seats)).await;
                    drop(counted);
                    drop(open);
                }
            },
        );
    }
}

async fn handle_connection(
    mut stream: TcpStream,
    mut peer: SocketAddr,
    port: u16,
    shared: Arc<Shared>,
    seats: Arc<overload::Seats>,
) {
    if shared.settings.proxy_protocol {
        let deadline = shared.settings.handshake_timeout;
        match proxy_protocol::accept(&mut stream, peer, deadline).await {
            Ok(client) => peer = client,
            Err(e) => {
                tracing::info!(%peer, port, error = %e, "connection closed: --proxy-protocol needs a PROXY header first");
                return;
            }
        }
    }
    let snapshot = shared.snapshot.load_full();
    let Some(listener) = snapshot.listeners.get(&port).cloned() else {
        return;
    };
    if listener.tcp {
        return l4::tcp(stream, peer, &listener, &shared).await;
    }
    if !listener.tls {
        let info = ConnInfo {
            port,
            peer,
            sni: None,
            server_id: None,
            tls: false,
            handshake: None,
            client_cert: None,
            h1: None,
            seats,
        };
        serve_watched(stream, info, shared).await;
        return;
    }
    if listener.passthrough {
        return l4::by_sni(stream, peer, (&listener, seats), shared).await;
    }
    let Some((tls, server, sni)) =
        handshake(stream, peer, &listener, &shared, Instant::now()).await
    else {
        return;
    };
    serve_tls(tls, server, sni, (peer, port, seats), shared).await;
}

/// A TLS connection after its handshake: HTTP/2 by ALPN, else HTTP/1.
async fn serve_tls<IO>(
    tls: tokio_rustls::server::TlsStream<IO>,
    server: Arc<crate::snapshot::Server>,
    sni: Option<String>,
    (peer, port, seats): (SocketAddr, u16, Arc<overload::Seats>),
    shared: Arc<Shared>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let client_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| ClientCert::from_der(c.as_ref()));
    let info = ConnInfo {
        port,
        peer,
        sni,
        server_id: Some(server.id.clone()),
        tls: true,
        handshake: Some(Handshake::of(tls.get_ref().1)),
        client_cert,
        h1: None,
        seats,
    };
    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
        let limit = shared.settings.h2_max_control_frames;
        let io = h2watch::Watched::new(tls, peer, limit);
        handler::serve(TokioIo::new(io), info, shared).await;
    } else {
        serve_watched(tls, info, shared).await;
    }
}

/// The TLS handshake of a new connection: the ClientHello, the server its
/// SNI names, then that server's config, all within the handshake
/// deadline. Every outcome is counted (`gatehouse_tls_handshakes_total`).
async fn handshake<IO>(
    stream: IO,
    peer: SocketAddr,
    listener: &crate::snapshot::Listener,
    shared: &Shared,
    accepted: Instant,
) -> Option<(
    tokio_rustls::server::TlsStream<IO>,
    Arc<crate::snapshot::Server>,
    Option<String>,
)>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let metrics = &shared.metrics;
    // From accept: a ClientHello read first (`hello.rs`) counts too.
    let deadline = accepted + shared.settings.handshake_timeout;
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = match tokio::time::timeout_at(deadline.into(), acceptor).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "bad ClientHello");
            metrics.handshake(None, Outcome::Protocol);
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "handshake deadline passed");
            metrics.handshake(None, Outcome::Timeout);
            return None;
        }
    };
    let sni = start.client_hello().server_name().map(str::to_owned);
    let (start, server, config) =
        choose_server(start, listener, sni.as_deref(), peer, deadline, metrics).await?;
    let tls = match tokio::time::timeout_at(deadline.into(), start.into_stream(config)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            let outcome = Outcome::of_io(&e);
            tracing::info!(%peer, server = %server.id, error = %e, result = outcome.as_str(), "handshake failed");
            metrics.handshake(Some(&server.id), outcome);
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "handshake deadline passed");
            metrics.handshake(Some(&server.id), Outcome::Timeout);
            return None;
        }
    };
    metrics.handshake(Some(&server.id), Outcome::Success);
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    metrics.session(&server.id, resumed);
    Some((tls, server, sni))
}

/// The server for the ClientHello's SNI and its TLS config. Fail closed: no
/// server for this name, or a server without a usable credential, ends the
/// handshake with a fatal alert that says which. There is no default
/// certificate.
async fn choose_server<IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    start: tokio_rustls::StartHandshake<IO>,
    listener: &crate::snapshot::Listener,
    sni: Option<&str>,
    peer: SocketAddr,
    deadline: Instant,
    metrics: &Metrics,
) -> Option<(
    tokio_rustls::StartHandshake<IO>,
    Arc<crate::snapshot::Server>,
    Arc<rustls::ServerConfig>,
)> {
    let Some(server) = listener.server_for_sni(sni).cloned() else {
        tracing::info!(%peer, sni = sni.unwrap_or("-"), "handshake refused: no server for this SNI");
        metrics.handshake(None, Outcome::UnknownSni);
        alert::refuse(start.io, alert::UNRECOGNIZED_NAME, deadline).await;
        return None;
    };
    let config = match &server.tls {
        Some(TlsState::Ready(c)) => c.clone(),
        Some(TlsState::Unavailable(why)) => {
            tracing::info!(%peer, server = %server.id, reason = %why, "handshake refused: server has no usable credential");
            metrics.handshake(Some(&server.id), Outcome::NoCredential);
            alert::refuse(start.io, alert::HANDSHAKE_FAILURE, deadline).await;
            return None;
        }
        None => {
            metrics.handshake(Some(&server.id), Outcome::NoCredential);
            alert::refuse(start.io, alert::HANDSHAKE_FAILURE, deadline).await;
            return None;
        }
    };
    Some((start, server, config))
}

/// Serves an HTTP/1 (or plain-text) connection with its bytes watched for
/// the framing faults hyper hides (`h1scan`).
async fn serve_watched<I>(io: I, mut info: ConnInfo, shared: Arc<Shared>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let verdicts = info.h1.get_or_insert_with(Arc::default).clone();
    let io = h1scan::Scanned::new(io, verdicts, shared.settings.max_request_header_bytes);
    handler::serve(TokioIo::new(io), info, shared).await;
}
