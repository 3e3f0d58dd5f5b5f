//! The connector every upstream client is built on: plain TCP (counted,
//! `counted.rs`), or TCP then TLS for a cluster whose DestinationRule says
//! SIMPLE or MUTUAL. A TLS connection that negotiated `h2` by ALPN tells
//! hyper-util's pool so, and the pool speaks HTTP/2 on it.
//!
//! A TLS connector whose material is unusable, or whose handshake fails,
//! returns a connect error (503 `UF` upstream of it) with a WARN line
//! naming the DestinationRule: it never falls back to plaintext or to an
//! unverified handshake.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

use crate::proxy::counted::{Connecting, Counted, CountingConnector};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Tcp = Counted<TokioIo<tokio::net::TcpStream>>;
type Tls = TokioIo<tokio_rustls::client::TlsStream<TokioIo<Tcp>>>;

/// How a client's connections are made.
#[derive(Clone)]
pub enum Connector {
    /// Plain TCP: HTTP/1.1 (or h2c where the client says so).
    Plain(CountingConnector),
    /// TCP, then TLS as one cluster's DestinationRule says.
    Tls(TlsConnector),
}

impl From<CountingConnector> for Connector {
    fn from(c: CountingConnector) -> Connector {
        Connector::Plain(c)
    }
}

/// TCP then TLS, with one cluster's config (or why there is none).
#[derive(Clone)]
pub struct TlsConnector {
    tcp: CountingConnector,
    tls: Result<(tokio_rustls::TlsConnector, ServerName<'static>), Arc<str>>,
    handshake_timeout: Duration,
    /// `namespace/name` of the DestinationRule, and the cluster, for the
    /// log lines of failures.
    rule: Arc<str>,
    cluster: Arc<str>,
}

impl TlsConnector {
    pub(super) fn new(
        tcp: CountingConnector,
        tls: Result<(Arc<rustls::ClientConfig>, ServerName<'static>), Arc<str>>,
        handshake_timeout: Duration,
        (rule, cluster): (Arc<str>, Arc<str>),
    ) -> TlsConnector {
        TlsConnector {
            tcp,
            tls: tls.map(|(c, n)| (tokio_rustls::TlsConnector::from(c), n)),
            handshake_timeout,
            rule,
            cluster,
        }
    }

    fn connect(&self, dst: Uri) -> ConnectFuture {
        let mut tcp = self.tcp.clone();
        let tls = self.tls.clone();
        let timeout = self.handshake_timeout;
        let (rule, cluster) = (self.rule.clone(), self.cluster.clone());
        let refused = move |why: &dyn std::fmt::Display| {
            tracing::warn!(
                destination_rule = %rule,
                cluster = %cluster,
                reason = %why,
                "upstream TLS failed: no request sent (fail closed)"
            );
        };
        ConnectFuture::Tls(Box::pin(async move {
            let (connector, name) = match tls {
                Ok(t) => t,
                Err(why) => {
                    refused(&why);
                    return Err(why.to_string().into());
                }
            };
            let io = tower_service::Service::call(&mut tcp, dst).await?;
            match tokio::time::timeout(timeout, connector.connect(name, TokioIo::new(io))).await {
                Ok(Ok(s)) => Ok(Conn::Tls(Box::new(TokioIo::new(s)))),
                Ok(Err(e)) => {
                    refused(&e);
                    Err(e.into())
                }
                Err(_) => {
                    refused(&"TLS handshake timed out");
                    Err("upstream TLS handshake timed out".into())
                }
            }
        }))
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Connector::Plain(c) => c.poll_ready(cx).map_err(Into::into),
            Connector::Tls(t) => t.tcp.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match self {
            Connector::Plain(c) => ConnectFuture::Plain(c.call(dst)),
            Connector::Tls(t) => t.connect(dst),
        }
    }
}

/// A connection attempt.
pub enum ConnectFuture {
    Plain(Connecting),
    Tls(Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>),
}

impl Future for ConnectFuture {
    type Output = Result<Conn, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            ConnectFuture::Plain(c) => Pin::new(c).poll(cx).map(|r| match r {
                Ok(io) => Ok(Conn::Plain(io)),
                Err(e) => Err(e.into()),
            }),
            ConnectFuture::Tls(f) => f.as_mut().poll(cx),
        }
    }
}

/// An upstream connection, plain or TLS.
#[derive(Debug)]
pub enum Conn {
    Plain(Tcp),
    Tls(Box<Tls>),
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        match self {
            Conn::Plain(io) => io.connected(),
            Conn::Tls(io) => {
                let (tcp, session) = io.inner().get_ref();
                let connected = tcp.inner().connected();
                if session.alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_flush(cx),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(io) => io.is_write_vectored(),
            Conn::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
}
