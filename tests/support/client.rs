//! The one in-process mTLS client of the tests: tokio, tokio-rustls and
//! hyper's HTTP/1.1 client against a running gateway.
//!
//! [`get`] (and [`Client`], a [`Target`] without an address yet) makes one
//! connection and one request and reports the status, the body and the
//! serial of the certificate the server presented. [`probe`] does the same
//! and also tells a full handshake from a resumed one, and [`Conn`] holds one
//! open keep-alive connection, for tests that need a single client in a
//! known state. The load runs of [`super::load`] use the same connection
//! code.
//!
//! With TLS 1.3 the client finishes its handshake before the server has
//! judged the client certificate, so a refused client only shows when it
//! reads: every probe sends a request and reads the answer before it calls
//! the connection good.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::Resumption;
use rustls::{ClientConfig, HandshakeKind};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{poll_every, try_poll};

/// Every network step of this client gives up after this long.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and as whom to connect.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// The SNI and the `Host` header.
    pub host: String,
    pub config: Arc<ClientConfig>,
}

impl Target {
    /// An mTLS target: trust `ca_pem`, present `cert_pem`/`key_pem`, HTTP/1.1.
    pub fn new(
        addr: SocketAddr,
        host: &str,
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Target {
        let config =
            gatehouse::tls::client::mtls_config(ca_pem, Some((cert_pem, key_pem)), &[b"http/1.1"])
                .unwrap();
        Target {
            addr,
            host: host.to_owned(),
            config,
        }
    }

    /// The same target with its client config changed by `f`.
    pub fn with_config(&self, f: impl FnOnce(&mut ClientConfig)) -> Target {
        let mut c = (*self.config).clone();
        f(&mut c);
        Target {
            config: Arc::new(c),
            ..self.clone()
        }
    }

    /// The same target with a client config that never resumes a session.
    pub fn without_resumption(&self) -> Target {
        self.with_config(|c| c.resumption = Resumption::disabled())
    }
}

/// The lowercase hex serial of the first certificate in `pem`, as
/// `proxy-config secret` and `gatehouse::pki::Issued::serial_hex` print it.
pub fn serial_of_pem(pem: &[u8]) -> String {
    let certs = gatehouse::secret::credential::parse_certs("cert", pem).unwrap();
    serial_of_der(certs[0].as_ref())
}

fn serial_of_der(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a handshake was full or resumed, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Full,
    Resumed,
}

/// How a request failed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    Connect,
    Handshake,
    /// Sending the request or reading the answer failed.
    Request,
    /// An answer other than 200.
    Status(u16),
    Timeout,
}

/// An open connection ready for requests, and what its handshake showed.
pub(crate) struct Opened {
    pub(crate) sender: SendRequest<Empty<Bytes>>,
    pub(crate) end: Instant,
    pub(crate) kind: Kind,
    pub(crate) serial: String,
}

/// How a step failed, and the message.
pub(crate) type Fail = (Failure, String);

async fn step<T, E: std::fmt::Display>(
    what: Failure,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, Fail> {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err((what.clone(), format!("{what:?}: {e}"))),
        Err(_) => Err((Failure::Timeout, format!("{what:?}: timed out"))),
    }
}

/// A TCP connection, TLS handshake and HTTP/1.1 handshake to `target`.
pub(crate) async fn connect(target: &Target) -> Result<Opened, Fail> {
    let tcp = step(Failure::Connect, TcpStream::connect(target.addr)).await?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(target.host.clone()).unwrap();
    let connector = TlsConnector::from(target.config.clone());
    let tls = step(Failure::Handshake, connector.connect(name, tcp)).await?;
    let end = Instant::now();
    let (_, conn) = tls.get_ref();
    let kind = match conn.handshake_kind() {
        Some(HandshakeKind::Resumed) => Kind::Resumed,
        _ => Kind::Full,
    };
    let serial = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| serial_of_der(c.as_ref()))
        .unwrap_or_default();
    let (sender, driver) = step(
        Failure::Request,
        hyper::client::conn::http1::handshake(TokioIo::new(tls)),
    )
    .await?;
    tokio::spawn(async move {
        let _ = driver.await;
    });
    Ok(Opened {
        sender,
        end,
        kind,
        serial,
    })
}

/// One `GET /`; the status once the whole body has arrived.
pub(crate) async fn request(
    sender: &mut SendRequest<Empty<Bytes>>,
    target: &Target,
) -> Result<u16, Fail> {
    request_path(sender, target, "/")
        .await
        .map(|(status, _)| status)
}

/// One `GET path` with the target's host as `Host`: the status and the body.
async fn request_path(
    sender: &mut SendRequest<Empty<Bytes>>,
    target: &Target,
    path: &str,
) -> Result<(u16, Bytes), Fail> {
    step(Failure::Request, sender.ready()).await?;
    let req = http::Request::get(path)
        .header(http::header::HOST, target.host.as_str())
        .body(Empty::new())
        .unwrap();
    let resp = step(Failure::Request, sender.send_request(req)).await?;
    let status = resp.status().as_u16();
    let body = step(Failure::Request, resp.into_body().collect()).await?;
    Ok((status, body.to_bytes()))
}

/// What one request saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// Serial of the certificate the server presented (lowercase hex).
    pub serial: String,
}

/// `GET path` on a new connection to `target` (SNI and `Host` = its host).
pub fn get(target: &Target, path: &str) -> Result<Answer, String> {
    runtime().block_on(async {
        let mut c = connect(target).await.map_err(|(_, m)| m)?;
        let (status, body) = request_path(&mut c.sender, target, path)
            .await
            .map_err(|(_, m)| m)?;
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            serial: c.serial,
        })
    })
}

/// What one connection saw: its handshake and one request.
#[derive(Debug, Clone)]
pub struct Probe {
    pub kind: Option<Kind>,
    pub serial: Option<String>,
    /// The status of the request, or why the connection failed.
    pub result: Result<u16, String>,
}

impl Probe {
    pub fn ok(&self) -> bool {
        self.result == Ok(200)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One new connection to `target` with its config (and so its session
/// cache: a second probe with the same `Target` offers to resume), one
/// request, then a clean close.
pub fn probe(target: &Target) -> Probe {
    runtime().block_on(async {
        match connect(target).await {
            Err((_, msg)) => Probe {
                kind: None,
                serial: None,
                result: Err(msg),
            },
            Ok(mut c) => Probe {
                kind: Some(c.kind),
                serial: Some(c.serial.clone()),
                result: request(&mut c.sender, target).await.map_err(|(_, m)| m),
            },
        }
    })
}

/// Probes until `pred` holds, for at most `within`;
/// returns the last probe and how long it took.
pub fn probe_until(
    target: &Target,
    within: Duration,
    pred: impl Fn(&Probe) -> bool,
) -> (Probe, Duration, bool) {
    let start = Instant::now();
    let mut last = None;
    // A short step: callers assert how long the change took to show.
    let ok = poll_every(Duration::from_millis(5), within, || {
        let p = probe(target);
        let ok = pred(&p);
        last = Some(p);
        ok.then_some(())
    })
    .is_some();
    (last.unwrap(), start.elapsed(), ok)
}

/// One open keep-alive connection, used across test steps.
pub struct Conn {
    rt: tokio::runtime::Runtime,
    sender: SendRequest<Empty<Bytes>>,
    target: Target,
    pub serial: String,
    pub kind: Kind,
}

impl Conn {
    pub fn open(target: &Target) -> Result<Conn, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let c = rt.block_on(connect(target)).map_err(|(_, m)| m)?;
        Ok(Conn {
            rt,
            sender: c.sender,
            target: target.clone(),
            serial: c.serial,
            kind: c.kind,
        })
    }

    /// `GET path` on this connection: the status and the body.
    pub fn get_path(&mut self, path: &str) -> Result<(u16, String), String> {
        let target = self.target.clone();
        self.rt
            .block_on(request_path(&mut self.sender, &target, path))
            .map(|(status, body)| (status, String::from_utf8_lossy(&body).into_owned()))
            .map_err(|(_, m)| m)
    }

    /// One GET on this connection.
    pub fn get(&mut self) -> Result<u16, String> {
        let target = self.target.clone();
        self.rt
            .block_on(request(&mut self.sender, &target))
            .map_err(|(_, m)| m)
    }
}

/// A client of one host (its SNI and `Host`) with one client config, for
/// any address: one new connection per request. Its config keeps a session
/// cache, so later connections may resume.
pub struct Client {
    host: String,
    config: Arc<ClientConfig>,
}

impl Client {
    /// Trusts `ca_pem` and presents `cert_pem`/`key_pem`, over HTTP/1.1.
    pub fn new(host: &str, ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Client {
        let t = Target::new(([127, 0, 0, 1], 0).into(), host, ca_pem, cert_pem, key_pem);
        Client {
            host: t.host,
            config: t.config,
        }
    }

    /// This client aimed at `addr`.
    pub fn target(&self, addr: SocketAddr) -> Target {
        Target {
            addr,
            host: self.host.clone(),
            config: self.config.clone(),
        }
    }

    /// `GET path` on a new connection to `addr`.
    pub fn get(&self, addr: SocketAddr, path: &str) -> Result<Answer, String> {
        get(&self.target(addr), path)
    }

    /// The body of `GET path` if it answered 200, else `None`.
    pub fn body(&self, addr: SocketAddr, path: &str) -> Option<String> {
        match self.get(addr, path) {
            Ok(a) if a.status == 200 => Some(a.body),
            _ => None,
        }
    }

    /// Polls `GET path` until the body is `want`, for at most `timeout`;
    /// returns how long it took, or the last answer on failure.
    pub fn wait_body(
        &self,
        addr: SocketAddr,
        path: &str,
        want: &str,
        timeout: Duration,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        let mut last = Err(String::from("no request made"));
        match try_poll(timeout, || {
            last = self.get(addr, path);
            matches!(&last, Ok(a) if a.status == 200 && a.body == want).then_some(())
        }) {
            Some(()) => Ok(start.elapsed()),
            None => Err(format!("{last:?}")),
        }
    }
}
