//! Log: the access-log line of one request, as text (one line, `text`) or
//! JSON: the client and its TLS (SNI, version, cipher, resumed or not),
//! its certificate (subject, URI and DNS SANs, SHA-256), the host and
//! request line, status, size and time, the Gateway server, route,
//! upstream cluster and address, the upstream's time, Envoy's response
//! flags and the request id. `docs/access-log.md` maps each field to
//! Envoy's access-log operator.
//!
//! It must never log a header value other than the host, nor any key, and
//! no value may split or forge a text line. It runs only when the access
//! log is on: with it off, a request allocates nothing for it.

mod text;

use std::fmt::{self, Display};
use std::net::SocketAddr;

use super::super::{ClientCert, ConnInfo, Handshake};
use super::facts::{Facts, Flags};
use crate::snapshot::routes::RouteId;
use crate::upstream::Upstream;

/// What the access log keeps of a request before it is handed on.
pub(super) struct LogLine<'a> {
    pub info: &'a ConnInfo,
    pub host: &'a str,
    pub method: String,
    pub path: String,
    pub version: http::Version,
}

impl LogLine<'_> {
    /// Logs the request's line: `status` and `bytes` (the response's
    /// `Content-Length`, when it has one) and what `facts` gathered.
    pub fn emit(&self, status: u16, bytes: Option<u64>, facts: &Facts, json: bool) {
        // A request answered here never got an id for a backend: it gets
        // one now, as Envoy gives every request one.
        let generated;
        let request_id = match &facts.request_id {
            Some(id) => id.as_str(),
            None => {
                generated = super::request_id::new();
                generated.as_str()
            }
        };
        let entry = Entry {
            peer: self.info.peer,
            sni: self.info.sni.as_deref().unwrap_or("-"),
            host: self.host,
            method: &self.method,
            path: &self.path,
            protocol: protocol(self.version),
            status,
            bytes,
            duration_ms: millis(facts.start.elapsed()),
            server: facts.server.as_deref().unwrap_or("-"),
            route: facts.route.as_deref(),
            cluster: facts.destination.as_deref(),
            upstream: facts.upstream,
            upstream_ms: facts.upstream_time.map(millis),
            flags: facts.flags,
            request_id,
            tls: self.info.handshake,
            cert: self.info.client_cert.as_ref(),
        };
        if json {
            entry.json();
        } else {
            tracing::info!(target: "access", "{}", text::Line(&entry));
        }
    }
}

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Envoy's `%PROTOCOL%`.
fn protocol(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "-",
    }
}

/// Everything one line says, borrowed from the connection and the facts.
struct Entry<'a> {
    peer: SocketAddr,
    sni: &'a str,
    host: &'a str,
    method: &'a str,
    path: &'a str,
    protocol: &'static str,
    status: u16,
    bytes: Option<u64>,
    duration_ms: f64,
    server: &'a str,
    route: Option<&'a RouteId>,
    cluster: Option<&'a Upstream>,
    upstream: Option<SocketAddr>,
    upstream_ms: Option<f64>,
    flags: Flags,
    request_id: &'a str,
    tls: Option<Handshake>,
    cert: Option<&'a ClientCert>,
}

impl Entry<'_> {
    fn tls_version(&self) -> &'static str {
        self.tls.map_or("-", |h| h.version)
    }

    fn cipher(&self) -> &'static str {
        self.tls.map_or("-", |h| h.cipher)
    }

    fn subject(&self) -> &str {
        self.cert.map_or("-", ClientCert::subject)
    }

    fn sha256(&self) -> &str {
        self.cert.map_or("-", ClientCert::sha256)
    }

    /// The URI and DNS SANs (empty without a certificate).
    fn sans(&self) -> (&[String], &[String]) {
        self.cert.map_or((&[], &[]), ClientCert::sans)
    }

    /// One event whose fields the JSON formatter writes as typed values:
    /// a string with no value is `-` (Envoy's text form), a number or a
    /// boolean with no value is left out.
    fn json(&self) {
        let (uri_sans, dns_sans) = self.sans();
        tracing::info!(
            target: "access",
            client = %self.peer,
            sni = self.sni,
            host = self.host,
            method = self.method,
            path = self.path,
            protocol = self.protocol,
            status = self.status,
            bytes = self.bytes,
            duration_ms = self.duration_ms,
            server = self.server,
            route = %Dash(self.route),
            upstream_cluster = %Dash(self.cluster.map(Upstream::cluster)),
            upstream = %Dash(self.upstream),
            upstream_ms = self.upstream_ms,
            response_flags = %self.flags,
            request_id = self.request_id,
            tls_version = self.tls_version(),
            cipher = self.cipher(),
            resumed = self.tls.map(|h| h.resumed),
            client_subject = self.subject(),
            client_sha256 = self.sha256(),
            client_uri_san = %Joined(uri_sans),
            client_dns_san = %Joined(dns_sans),
            "request"
        );
    }
}

/// A value, or `-` when there is none.
struct Dash<T>(Option<T>);

impl<T: Display> Display for Dash<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// SANs joined by `,` as Envoy's `%DOWNSTREAM_PEER_URI_SAN%` joins them,
/// or `-` for none.
struct Joined<'a>(&'a [String]);

impl Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(v)?;
        }
        Ok(())
    }
}
