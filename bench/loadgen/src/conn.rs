//! One mutual-TLS HTTP connection of the load generator: TCP connect, TLS
//! handshake with a client certificate and one key exchange group, then
//! HTTP/1.1 or HTTP/2 over it.
//!
//! Every step has a deadline, and it only ever connects to the one address
//! it was given (loopback unless the user said `--allow-remote`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use gatehouse::secret::credential;

use crate::cli::{Group, Target};
use crate::report::{ErrorKind, Failure};

/// Refuses a non-loopback address unless the user allowed it.
pub fn check_address(addr: SocketAddr, allow_remote: bool) -> anyhow::Result<()> {
    if addr.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        anyhow::bail!(
            "{addr} is not a loopback address; pass --allow-remote to load a remote host on purpose"
        )
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// A client config that trusts `ca`, presents `cert`/`key`, offers only
/// `group`, and resumes sessions only when asked.
pub fn client_config(target: &Target, resume: bool) -> anyhow::Result<Arc<ClientConfig>> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = vec![match target.group {
        Group::X25519 => rustls::crypto::aws_lc_rs::kx_group::X25519,
        Group::Secp256r1 => rustls::crypto::aws_lc_rs::kx_group::SECP256R1,
    }];
    let mut roots = rustls::RootCertStore::empty();
    for c in credential::parse_certs("--ca", &read(&target.ca)?)? {
        roots.add(c)?;
    }
    let chain = credential::parse_certs("--cert", &read(&target.cert)?)?;
    let key = credential::parse_key("--key", &read(&target.key)?)?;
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = if target.http2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    if !resume {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

/// An open connection: its request sender and the task driving it.
pub struct Conn {
    sender: Sender,
    task: JoinHandle<()>,
    /// Whether the handshake resumed an earlier session.
    pub resumed: bool,
    /// Serial number (hex) of the server certificate it was given.
    pub serial: String,
}

impl Conn {
    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        !self.task.is_finished()
    }

    /// Another handle on an HTTP/2 connection, for one more stream in
    /// flight; `None` on HTTP/1.1.
    pub fn stream(&self) -> Option<Stream> {
        match &self.sender {
            Sender::H2(s) => Some(Stream(Sender::H2(s.clone()))),
            Sender::H1(_) => None,
        }
    }
}

/// One of several request handles on a shared HTTP/2 connection
/// ([`Conn::stream`]); the connection lives as long as its [`Conn`].
pub struct Stream(Sender);

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What to connect to and what to ask for; shared by every task of a run.
pub struct Client {
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    name: ServerName<'static>,
    authority: String,
    path: String,
    http2: bool,
    timeout: Duration,
}

impl Client {
    pub fn new(target: &Target, resume: bool) -> anyhow::Result<Client> {
        check_address(target.connect, target.allow_remote)?;
        if !(target.timeout > 0.0 && target.timeout <= 600.0) {
            anyhow::bail!("--timeout must be between 0 and 600 seconds");
        }
        let name = ServerName::try_from(target.sni.clone())
            .map_err(|e| anyhow::anyhow!("--sni {:?}: {e}", target.sni))?;
        let authority = target.host.clone().unwrap_or_else(|| target.sni.clone());
        let uri = format!("https://{authority}{}", target.path);
        uri.parse::<http::Uri>()
            .map_err(|e| anyhow::anyhow!("--host/--path make no valid URI {uri:?}: {e}"))?;
        Ok(Client {
            config: client_config(target, resume)?,
            addr: target.connect,
            name,
            authority,
            path: target.path.clone(),
            http2: target.http2,
            timeout: Duration::from_secs_f64(target.timeout),
        })
    }

    /// TCP connect, TLS handshake and the HTTP connection handshake.
    pub async fn connect(&self) -> Result<Conn, Failure> {
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(self.addr))
            .await
            .map_err(|_| Failure::new(ErrorKind::Timeout, "connect"))?
            .map_err(|e| Failure::new(ErrorKind::Connect, e))?;
        // Requests are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        let connector = TlsConnector::from(self.config.clone());
        let tls = tokio::time::timeout(self.timeout, connector.connect(self.name.clone(), tcp))
            .await
            .map_err(|_| Failure::new(ErrorKind::Timeout, "TLS handshake"))?
            .map_err(|e| Failure::new(ErrorKind::Tls, e))?;
        let session = tls.get_ref().1;
        // A server that ignores ALPN would be spoken to in the wrong
        // protocol: with --http2, anything but h2 is an error of its own.
        if self.http2 && session.alpn_protocol() != Some(b"h2") {
            let got = session
                .alpn_protocol()
                .map_or("none".into(), |p| String::from_utf8_lossy(p).into_owned());
            return Err(Failure::new(
                ErrorKind::Alpn,
                format!("asked for h2, the server chose {got}"),
            ));
        }
        let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let serial = session
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| credential::CertInfo::parse(c).ok())
            .map(|i| i.serial_hex)
            .unwrap_or_default();
        let io = TokioIo::new(tls);
        let (sender, task) = if self.http2 {
            let (s, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| Failure::new(ErrorKind::Http, e))?;
            (
                Sender::H2(s),
                tokio::spawn(async move {
                    let _ = conn.await;
                }),
            )
        } else {
            let (s, conn) = http1::handshake(io)
                .await
                .map_err(|e| Failure::new(ErrorKind::Http, e))?;
            (
                Sender::H1(s),
                tokio::spawn(async move {
                    let _ = conn.await;
                }),
            )
        };
        Ok(Conn {
            sender,
            task,
            resumed,
            serial,
        })
    }

    fn request(&self, close: bool) -> Result<http::Request<Empty<Bytes>>, Failure> {
        let builder = if self.http2 {
            http::Request::get(format!("https://{}{}", self.authority, self.path))
        } else {
            let b = http::Request::get(self.path.as_str())
                .header(http::header::HOST, self.authority.as_str());
            if close {
                b.header(http::header::CONNECTION, "close")
            } else {
                b
            }
        };
        builder
            .body(Empty::new())
            .map_err(|e| Failure::new(ErrorKind::Http, e))
    }

    /// One GET on `conn`; the whole response is read. `close` asks an
    /// HTTP/1.1 server to close the connection after it.
    pub async fn get(&self, conn: &mut Conn, close: bool) -> Result<(), Failure> {
        self.exchange(&mut conn.sender, close).await
    }

    /// One GET on a stream of a shared HTTP/2 connection.
    pub async fn get_stream(&self, stream: &mut Stream) -> Result<(), Failure> {
        self.exchange(&mut stream.0, false).await
    }

    async fn exchange(&self, sender: &mut Sender, close: bool) -> Result<(), Failure> {
        let req = self.request(close)?;
        let exchange = async {
            let resp = match sender {
                Sender::H1(s) => {
                    s.ready()
                        .await
                        .map_err(|e| Failure::new(ErrorKind::Http, e))?;
                    s.send_request(req).await
                }
                Sender::H2(s) => {
                    s.ready()
                        .await
                        .map_err(|e| Failure::new(ErrorKind::Http, e))?;
                    s.send_request(req).await
                }
            }
            .map_err(|e| Failure::new(ErrorKind::Http, e))?;
            let status = resp.status();
            resp.into_body()
                .collect()
                .await
                .map_err(|e| Failure::new(ErrorKind::Body, e))?;
            if status.is_success() {
                Ok(())
            } else {
                Err(Failure::new(
                    ErrorKind::Status(status.as_u16()),
                    format!("{status}"),
                ))
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Failure::new(ErrorKind::Timeout, "request"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_without_allow_remote() {
        let lo: SocketAddr = "127.0.0.1:443".parse().unwrap_or_else(|_| unreachable!());
        let lo6: SocketAddr = "[::1]:443".parse().unwrap_or_else(|_| unreachable!());
        let remote: SocketAddr = "192.0.2.1:443".parse().unwrap_or_else(|_| unreachable!());
        assert!(check_address(lo, false).is_ok());
        assert!(check_address(lo6, false).is_ok());
        assert!(check_address(remote, false).is_err());
        assert!(check_address(remote, true).is_ok());
    }
}
