//! Admit: which server a request is for, and whether it may be served on
//! this connection. A connection belongs to one server: another server's
//! host gets 421, nobody's 404, and neither reaches a backend. A verified
//! client whose identity a header cannot carry gets 400: it is never
//! forwarded without it. Also the request's host.

use std::sync::Arc;

use http::header;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::super::{ClientCert, ConnInfo, Shared};
use super::Body;
use super::respond::{close, local};
use crate::snapshot::{HostOwner, Server};

/// Why a request is not admitted: it knows its status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    MissingHost,
    Underscore,
    /// Malformed framing (RFC 9112): the reason, answered with 400.
    Framing(&'static str),
    /// A transfer coding other than `chunked`.
    UnknownCoding,
    /// More header fields than `max_request_headers` (HTTP/2; hyper
    /// answers HTTP/1 itself).
    TooManyHeaders,
    /// An HTTP/1 head longer than `max_request_header_bytes`.
    HeadTooLarge,
    /// A `Content-Length` over `--max-request-body`.
    BodyTooLarge,
    /// Nobody on this port serves the host (or the port has no listener).
    NoRoute,
    /// The connection's server is gone from the snapshot.
    ServerGone,
    /// Another server owns the host: the client must connect (and pass
    /// that server's TLS) for it.
    Misdirected,
}

impl Refusal {
    /// Envoy's response flag for it.
    pub(super) fn flag(self) -> super::facts::Flag {
        use super::facts::Flag;
        match self {
            Refusal::NoRoute | Refusal::ServerGone | Refusal::Misdirected => Flag::NoRoute,
            _ => Flag::DownstreamProtocolError,
        }
    }

    pub(super) fn response(self) -> Response<Body> {
        let (status, why) = match self {
            Refusal::MissingHost => (StatusCode::BAD_REQUEST, "missing Host"),
            Refusal::Underscore => (
                StatusCode::BAD_REQUEST,
                "header names with '_' are not accepted",
            ),
            Refusal::Framing(why) => (StatusCode::BAD_REQUEST, why),
            Refusal::UnknownCoding => (
                StatusCode::NOT_IMPLEMENTED,
                "only the chunked transfer coding is accepted",
            ),
            Refusal::TooManyHeaders => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many request header fields",
            ),
            Refusal::HeadTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request header section too large",
            ),
            Refusal::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            Refusal::NoRoute => (StatusCode::NOT_FOUND, "no route"),
            Refusal::ServerGone => (
                StatusCode::MISDIRECTED_REQUEST,
                "this connection's server is gone; reconnect",
            ),
            Refusal::Misdirected => (StatusCode::MISDIRECTED_REQUEST, "misdirected request"),
        };
        local(status, why)
    }
}

/// Finds the connection's server and makes sure it owns the request's
/// host (header names and framing were checked by `framing::scan`).
pub(super) fn admit(info: &ConnInfo, shared: &Shared, host: &str) -> Result<Arc<Server>, Refusal> {
    if host.is_empty() {
        return Err(Refusal::MissingHost);
    }
    let snapshot = shared.snapshot.load();
    let listener = snapshot.listeners.get(&info.port).ok_or(Refusal::NoRoute)?;
    let server = match &info.server_id {
        Some(id) => listener.server_by_id(id).ok_or(Refusal::ServerGone)?,
        None => listener.server_for_host(host).ok_or(Refusal::NoRoute)?,
    };
    match listener.owner_of(server, host) {
        HostOwner::This => Ok(server.clone()),
        HostOwner::Other => Err(Refusal::Misdirected),
        HostOwner::Nobody => Err(Refusal::NoRoute),
    }
}

/// `:authority` (HTTP/2, absolute-form) or the Host header, as sent.
pub(super) fn request_authority(req: &Request<Incoming>) -> Option<String> {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
}

/// Host or `:authority`, lower-cased, port removed.
pub(super) fn request_host(req: &Request<Incoming>) -> Option<String> {
    let raw = request_authority(req)?;
    let host = if raw.starts_with('[') {
        raw.split_once(']').map(|(h, _)| format!("{h}]"))?
    } else {
        raw.rsplit_once(':')
            .map_or(raw.clone(), |(h, _)| h.to_owned())
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// The refusal (400, logged; HTTP/1.1: connection closed) for a request
/// whose verified client certificate cannot be put in
/// `x-forwarded-client-cert` (`xfcc::Unrepresentable`); `None` otherwise.
pub(super) fn unforwardable_identity(info: &ConnInfo, http1: bool) -> Option<Response<Body>> {
    let Some(ClientCert::Unrepresentable(u)) = &info.client_cert else {
        return None;
    };
    tracing::warn!(client = %info.peer, sni = info.sni.as_deref().unwrap_or("-"), cert_sha256 = %u.sha256, subject = u.subject.as_str(), reason = u.why.as_str(), "request refused: the client certificate cannot be forwarded in x-forwarded-client-cert");
    let r = local(
        StatusCode::BAD_REQUEST,
        "the client certificate cannot be forwarded",
    );
    Some(if http1 { close(r) } else { r })
}
