//! A TLS client that writes exact bytes: the walkthrough's mTLS client
//! certificate over rustls, then whatever a test wants to send, then
//! everything the gateway answers until it closes or a deadline passes.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;

use crate::support::Walkthrough;

/// What came back for raw bytes.
#[derive(Debug)]
pub struct Raw {
    /// Everything the gateway wrote, lossily as text.
    pub text: String,
    /// The gateway closed the connection within the deadline.
    pub closed: bool,
}

impl Raw {
    /// The status code of every response, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.text
            .split("HTTP/1.")
            .skip(1)
            .filter_map(|r| r.get(2..5))
            .filter_map(|s| s.parse().ok())
            .collect()
    }
}

/// Sends `bytes` to `port` as the walkthrough's client of `host` (SNI
/// `host`, HTTP/1.1 by ALPN) and reads until the gateway closes, for at
/// most 5 s.
pub fn send(w: &Walkthrough, port: u16, host: &str, bytes: &[u8]) -> Raw {
    send_alpn(w, port, host, b"http/1.1", bytes)
}

/// As [`send`], offering only `alpn` in the handshake.
pub fn send_alpn(w: &Walkthrough, port: u16, host: &str, alpn: &[u8], bytes: &[u8]) -> Raw {
    let mut tls = tls_to(w, port, host, alpn);
    tls.write_all(bytes).unwrap();
    tls.flush().unwrap();
    let (got, closed) = read_to_close(&mut tls, Duration::from_secs(5));
    Raw {
        text: String::from_utf8_lossy(&got).into_owned(),
        closed,
    }
}

/// A TLS connection as the walkthrough's client of `host` (HTTP/1.1 by
/// ALPN), for a test that paces its own writes and reads; reads time out
/// after 200 ms.
pub fn connect(w: &Walkthrough, port: u16, host: &str) -> StreamOwned<ClientConnection, TcpStream> {
    tls_to(w, port, host, b"http/1.1")
}

/// The walkthrough's client of `host` connected to `port`, offering
/// `alpn`; reads time out after 200 ms.
fn tls_to(
    w: &Walkthrough,
    port: u16,
    host: &str,
    alpn: &[u8],
) -> StreamOwned<ClientConnection, TcpStream> {
    let pki = w.site.pki(host);
    let read = |p: &std::path::Path| std::fs::read(w.site.path(p)).unwrap();
    let config = gatehouse::tls::client::mtls_config(
        &read(&pki.ca_chain),
        Some((&read(&pki.client_cert), &read(&pki.client_key))),
        &[alpn],
    )
    .unwrap();
    let name = ServerName::try_from(host.to_owned()).unwrap();
    let conn = ClientConnection::new(Arc::clone(&config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    StreamOwned::new(conn, tcp)
}

/// Reads from `tls` until the gateway closes or `within` passes: what
/// arrived, and whether it closed.
pub fn read_to_close(
    tls: &mut StreamOwned<ClientConnection, TcpStream>,
    within: Duration,
) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let start = Instant::now();
    let closed = loop {
        if start.elapsed() > within {
            break false;
        }
        match tls.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break true,
        }
    };
    (got, closed)
}

/// What one connection made with a given client config saw: whether its
/// handshake resumed, what came back for one `GET /`, and the error that
/// ended it (with TLS 1.3 a refused client certificate shows only here,
/// as the alert that arrives instead of the answer).
#[derive(Debug)]
pub struct Seen {
    /// `None` when the handshake itself failed.
    pub resumed: Option<bool>,
    pub response: String,
    pub error: Option<String>,
}

impl Seen {
    /// Answered 200.
    pub fn ok(&self) -> bool {
        self.response.starts_with("HTTP/1.1 200 ")
    }
}

/// One connection to `port` with `config` (and so its session cache: a
/// second call offers to resume), SNI and `Host` `host`, one
/// `GET / Connection: close`, read until the gateway closes or fails it
/// (at most 5 s).
pub fn exchange(config: &Arc<rustls::ClientConfig>, port: u16, host: &str) -> Seen {
    let name = ServerName::try_from(host.to_owned()).unwrap();
    let mut conn = ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    while conn.is_handshaking() && start.elapsed() < Duration::from_secs(5) {
        if let Err(e) = conn.complete_io(&mut tcp) {
            return Seen {
                resumed: None,
                response: String::new(),
                error: Some(e.to_string()),
            };
        }
    }
    let resumed = Some(conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed));
    let mut tls = StreamOwned::new(conn, tcp);
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let mut error = tls
        .write_all(request.as_bytes())
        .and_then(|()| tls.flush())
        .err()
        .map(|e| e.to_string());
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while error.is_none() && start.elapsed() < Duration::from_secs(5) {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => error = Some(e.to_string()),
        }
    }
    Seen {
        resumed,
        response: String::from_utf8_lossy(&got).into_owned(),
        error,
    }
}
