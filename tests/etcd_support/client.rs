//! [`Client`]: an in-process mTLS HTTP/1.1 client that reports the status,
//! the body and the serial of the certificate the server presented.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::try_poll;

/// What one request saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// Serial of the certificate the server presented (lowercase hex).
    pub serial: String,
}

/// An in-process mTLS HTTP/1.1 client: one new connection per request.
pub struct Client {
    rt: tokio::runtime::Runtime,
    config: Arc<rustls::ClientConfig>,
    host: String,
}

impl Client {
    pub fn new(host: &str, ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Client {
        let config =
            gatehouse::tls::client::mtls_config(ca_pem, Some((cert_pem, key_pem)), &[b"http/1.1"])
                .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Client {
            rt,
            config,
            host: host.to_owned(),
        }
    }

    /// `GET path` on a new connection to `addr`, SNI and Host = the host.
    pub fn get(&self, addr: SocketAddr, path: &str) -> Result<Answer, String> {
        let step = Duration::from_secs(5);
        let config = self.config.clone();
        let host = self.host.clone();
        self.rt.block_on(async move {
            let timed = |what: &'static str| move |_| format!("{what}: timed out");
            let tcp = tokio::time::timeout(step, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(timed("connect"))?
                .map_err(|e| format!("connect: {e}"))?;
            let name = rustls_pki_types::ServerName::try_from(host.clone()).unwrap();
            let tls = tokio::time::timeout(
                step,
                tokio_rustls::TlsConnector::from(config).connect(name, tcp),
            )
            .await
            .map_err(timed("handshake"))?
            .map_err(|e| format!("handshake: {e}"))?;
            let serial = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| serial_of_der(c.as_ref()))
                .unwrap_or_default();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| format!("http: {e}"))?;
            tokio::spawn(conn);
            let req = http::Request::get(path)
                .header(http::header::HOST, host.as_str())
                .body(Empty::<Bytes>::new())
                .unwrap();
            let resp = tokio::time::timeout(step, sender.send_request(req))
                .await
                .map_err(timed("request"))?
                .map_err(|e| format!("request: {e}"))?;
            let status = resp.status().as_u16();
            let body = tokio::time::timeout(step, resp.into_body().collect())
                .await
                .map_err(timed("body"))?
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok(Answer {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
                serial,
            })
        })
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

/// Lowercase hex of a certificate's serial, as `proxy-config secret` prints it.
fn serial_of_der(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
