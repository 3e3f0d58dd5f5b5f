//! Upstream: the request as it leaves for a backend (rewritten path and
//! authority, hop-by-hop headers removed, `x-forwarded-*`, `x-request-id`
//! and the client certificate's XFCC set by us, the route's header
//! operations), the route's deadline, and the answer as it comes back.
//! A route that retries or mirrors holds a small body whole and hands the
//! request to `retry` (and a copy to `mirror`); any other request streams
//! its body and is sent once.
//! A client's `x-forwarded-client-cert` never reaches a backend (`framing`
//! strips it before routing); its `x-request-id` is always replaced.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::super::transport::Answer;

use super::super::{ClientCert, ConnInfo, Shared};
use super::body::{BodyLimits, ClientBody, ClientBodyError};
use super::facts::{Facts, Flag};
use super::respond::{close, local};
use super::{Body, mirror, retry};
use crate::config::checked::route::DestinationHeaders;
use crate::snapshot::routes::Route;

// The gateway's own request headers, named once (a `&str` name is parsed
// again on every insert).
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_ENVOY_EXTERNAL_ADDRESS: HeaderName = HeaderName::from_static("x-envoy-external-address");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// Hop-by-hop headers (RFC 9110 §7.6.1), and `http2-settings`, which only
/// means something with `Upgrade: h2c` (RFC 7540 §3.2): an upgrade is
/// never passed on, so no backend is asked to switch to h2c.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "http2-settings",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// Whether the client's `te` names `trailers`.
fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("trailers")
        })
}

/// The client's address as Envoy's `xff_num_trusted_hops` decides it:
/// with `trusted_hops` N > 0 the Nth address from the right of the
/// client's `x-forwarded-for` (the one the last trusted proxy saw), else,
/// or when there are fewer or it is no address, the socket's peer.
fn client_address(headers: &HeaderMap, peer: IpAddr, trusted_hops: u32) -> IpAddr {
    let Some(skip) = trusted_hops.checked_sub(1) else {
        return peer;
    };
    let mut entries = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|v| v.as_bytes().rsplit(|b| *b == b','));
    entries
        .nth(skip as usize)
        .and_then(|e| std::str::from_utf8(e).ok())
        .and_then(|e| e.trim().parse().ok())
        .unwrap_or(peer)
}

/// The gateway's own headers on a request going upstream.
fn forwarded_headers(
    headers: &mut HeaderMap,
    info: &ConnInfo,
    outward_host: HeaderValue,
    trusted_hops: u32,
    facts: &mut Facts,
) {
    let trailers = accepts_trailers(headers);
    strip_hop_by_hop(headers);
    // `te: trailers` alone passes (as Envoy passes it): gRPC needs it, and
    // it is the one TE value HTTP/2 allows (RFC 9113 §8.2.2).
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    headers.insert(header::HOST, outward_host);
    let peer = info.peer.ip();
    let client = client_address(headers, peer, trusted_hops);
    // Every x-forwarded-for line the client sent, in order, then the peer
    // (Envoy's form: comma-joined).
    let peer_ip = peer.to_string();
    let mut xff: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    xff.push(&peer_ip);
    let xff = xff.join(",");
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    // As Envoy at the edge: the address `--trusted-hops` chose (the peer,
    // whose text is at hand, unless a trusted hop named another).
    let external = if client == peer {
        HeaderValue::from_str(&peer_ip)
    } else {
        HeaderValue::from_str(&client.to_string())
    };
    if let Ok(v) = external {
        headers.insert(X_ENVOY_EXTERNAL_ADDRESS, v);
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if info.tls { "https" } else { "http" }),
    );
    // Generated at the edge: a client-chosen id could collide with or
    // impersonate another request's trace.
    let id = super::request_id::new();
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(X_REQUEST_ID, v);
    }
    facts.request_id = Some(id);
    // An unrepresentable certificate never gets here (`handler::route`
    // refuses its requests); a value the encoder made is always a valid
    // header value, so nothing is dropped silently.
    if let Some(ClientCert::Forwarded(cert)) = &info.client_cert
        && let Ok(v) = HeaderValue::from_str(&cert.xfcc)
    {
        headers.insert(X_FORWARDED_CLIENT_CERT, v);
    }
}

/// Where and how one request goes upstream.
pub(super) struct Upstream<'a> {
    pub addr: SocketAddr,
    /// The destination `addr` was picked from: a retry picks there again.
    pub dest: &'a crate::upstream::Upstream,
    /// The destination's own `headers` (`route[].headers`).
    pub headers: Option<&'a DestinationHeaders>,
    pub route: &'a Route,
    /// The normalized path and the query, as the client sent it.
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The request's authority, sent on unless the route rewrites it.
    pub authority: &'a str,
    /// Read the body's first frame before forwarding (chunked HTTP/1.1).
    pub peek_body: bool,
    /// `Some` for a gRPC call: its `grpc-timeout` bounds the deadline.
    pub grpc: Option<super::grpc::Call>,
}

/// The client's body as it goes upstream: held whole (a route that
/// retries or mirrors, a small declared body) or streamed.
enum Held {
    Whole(Bytes),
    Streamed(ClientBody),
}

/// The URI a request is sent to: the endpoint, then the path and query.
pub(super) fn upstream_uri(addr: SocketAddr, path_and_query: &str) -> Option<Uri> {
    format!("http://{addr}{path_and_query}").parse().ok()
}

/// Sends the request to `up.addr` and returns the backend's answer, or
/// the status code for why there is none.
pub(super) async fn forward(
    req: Request<Incoming>,
    info: &ConnInfo,
    shared: &Shared,
    up: Upstream<'_>,
    facts: &mut Facts,
) -> Response<Body> {
    let route = up.route;
    let new_path = route.upstream_path(up.path);
    let pq = match up.query {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    };
    let Some(uri) = upstream_uri(up.addr, &pq) else {
        return local(StatusCode::BAD_REQUEST, "bad request target");
    };
    let http1 = req.version() < http::Version::HTTP_2;
    let (mut parts, body) = req.into_parts();
    let body = match take_body(body, shared, route.replays(), up.peek_body, http1, facts).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let outward_host = match &route.rewrite.authority {
        Some(a) => a.clone(),
        None => match HeaderValue::from_str(up.authority) {
            Ok(v) => v,
            Err(_) => return local(StatusCode::BAD_REQUEST, "bad authority"),
        },
    };
    forwarded_headers(
        &mut parts.headers,
        info,
        outward_host,
        shared.settings.trusted_hops,
        facts,
    );
    if let Some(h) = up.headers {
        h.request.apply(&mut parts.headers);
    }
    route.request_headers.apply(&mut parts.headers);
    let answer = match body {
        Held::Whole(body) => {
            let head = retry::Head {
                method: parts.method,
                version: parts.version,
                headers: parts.headers,
                path_and_query: pq,
            };
            mirror::copy(route, &head, &body, shared);
            retry::send(&head, retry::Replay::Whole(body), shared, &up, facts).await
        }
        // A gRPC call on a route that retries: sent as it streams, a copy
        // kept for the retries (`tee`).
        Held::Streamed(body) if up.grpc.is_some() && route.retries.is_some() => {
            let head = retry::Head {
                method: parts.method,
                version: parts.version,
                headers: parts.headers,
                path_and_query: pq,
            };
            let (body, copied) = body.copied();
            let replay = retry::Replay::Copied(body, copied);
            retry::send(&head, replay, shared, &up, facts).await
        }
        Held::Streamed(body) => {
            let mut req = Request::from_parts(parts, body);
            *req.uri_mut() = uri;
            send(req, shared, &up, http1, facts).await
        }
    };
    let mut resp = match answer {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    strip_hop_by_hop(resp.headers_mut());
    if let Some(h) = up.headers {
        h.response.apply(resp.headers_mut());
    }
    route.response_headers.apply(resp.headers_mut());
    resp.map(|b| b.boxed())
}

/// The client's body, held whole when the route sends it more than once
/// and it is small enough (`body::replayable`), else streamed (its first
/// frame read ahead for a chunked HTTP/1.1 body); or the answer to a body
/// that failed on the way.
async fn take_body(
    body: Incoming,
    shared: &Shared,
    replays: bool,
    peek: bool,
    http1: bool,
    facts: &mut Facts,
) -> Result<Held, Response<Body>> {
    let limits = BodyLimits {
        max_bytes: shared.settings.max_request_body_bytes,
        idle: shared.settings.stream_idle_timeout,
    };
    let timeout = shared.settings.request_timeout;
    let read = if replays && super::body::replayable(&body) {
        match tokio::time::timeout(timeout, super::body::read_whole(body, limits)).await {
            Ok(r) => r.map(Held::Whole).map_err(Some),
            Err(_) => Err(None),
        }
    } else if peek {
        match tokio::time::timeout(timeout, ClientBody::peeked(body, limits)).await {
            Ok(r) => r.map(Held::Streamed).map_err(Some),
            Err(_) => Err(None),
        }
    } else {
        return Ok(Held::Streamed(ClientBody::streamed(body, limits)));
    };
    read.map_err(|e| match e {
        Some(e) => bad_body(&e, http1, facts),
        None => {
            facts.flags.set(Flag::StreamIdleTimeout);
            local(StatusCode::REQUEST_TIMEOUT, "request timeout")
        }
    })
}

/// How long the backend may take to answer (the route's timeout, else
/// `--upstream-response-timeout`, within the whole-request one), and
/// whether that limit is the upstream's (504 `UT`) rather than the whole
/// request's (408 `SI`).
pub(super) fn upstream_deadline(route: &Route, shared: &Shared) -> (std::time::Duration, bool) {
    let upstream_timeout = route
        .timeout
        .unwrap_or(shared.settings.upstream_response_timeout);
    let whole_request = shared.settings.request_timeout;
    (
        upstream_timeout.min(whole_request),
        upstream_timeout <= whole_request,
    )
}

/// The deadline of one request going to `up`: [`upstream_deadline`], but
/// for a gRPC call the route's timeout only if it sets one (Istio's
/// default is none, so that long streams live; the whole-request timeout
/// still bounds the wait for the response headers), and its
/// `grpc-timeout` within that (504, a gRPC DEADLINE_EXCEEDED, when it
/// passes).
pub(super) fn deadline(up: &Upstream<'_>, shared: &Shared) -> (std::time::Duration, bool) {
    let Some(call) = up.grpc else {
        return upstream_deadline(up.route, shared);
    };
    let whole_request = shared.settings.request_timeout;
    let asked = match (up.route.timeout, call.timeout) {
        (Some(r), Some(g)) => Some(r.min(g)),
        (r, g) => r.or(g),
    };
    match asked {
        Some(t) if t <= whole_request => (t, true),
        _ => (whole_request, false),
    }
}

/// The answer when the deadline of [`upstream_deadline`] passed.
pub(super) fn timed_out(upstream_bound: bool, facts: &mut Facts) -> Response<Body> {
    if upstream_bound {
        facts.flags.set(Flag::UpstreamTimeout);
        local(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout")
    } else {
        facts.flags.set(Flag::StreamIdleTimeout);
        local(StatusCode::REQUEST_TIMEOUT, "request timeout")
    }
}

/// The answer when the backend could not be reached or broke off before
/// its response headers: 503 with `UF` or `UC`.
pub(super) fn unreachable(connect: bool, facts: &mut Facts) -> Response<Body> {
    facts.flags.set(if connect {
        Flag::UpstreamConnectFailure
    } else {
        Flag::UpstreamConnectionTermination
    });
    local(
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream connect error or disconnect/reset before headers",
    )
}

/// The request sent under the route's deadline (or the whole-request
/// one): the backend's answer, or the gateway's for why there is none,
/// with its response flag and the upstream's time noted in `facts`.
async fn send(
    req: Request<ClientBody>,
    shared: &Shared,
    up: &Upstream<'_>,
    http1: bool,
    facts: &mut Facts,
) -> Result<Response<Answer>, Response<Body>> {
    let (timeout, upstream_bound) = deadline(up, shared);
    let sent = std::time::Instant::now();
    let answer =
        tokio::time::timeout(timeout, super::lease::send(shared, up.dest, up.addr, req)).await;
    facts.upstream_time = Some(sent.elapsed());
    match answer {
        Ok(Ok(r)) => Ok(r),
        Err(_) => {
            super::lease::timed_out(up.dest, up.addr);
            Err(timed_out(upstream_bound, facts))
        }
        Ok(Err(e)) => {
            if let Some(body) = ClientBodyError::in_chain(&e) {
                return Err(bad_body(body, http1, facts));
            }
            tracing::debug!(error = %e, upstream = %up.addr, "upstream request failed");
            Err(unreachable(e.is_connect(), facts))
        }
    }
}

/// The client's body broke off, was badly framed, grew over the limit or
/// stalled: its fault, so 400, 413 or 408, and the HTTP/1 connection is
/// closed (where the body ends, and so its framing, is no longer known).
fn bad_body(e: &ClientBodyError, http1: bool, facts: &mut Facts) -> Response<Body> {
    tracing::debug!(error = %e, "client request body failed");
    let (status, why) = e.status();
    facts.flags.set(e.flag());
    let r = local(status, why);
    if http1 { close(r) } else { r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_hops_choose_the_client() {
        let peer: IpAddr = [192, 0, 2, 5].into();
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.128, 203.0.113.10"),
        );
        h.append("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        let at = |n| client_address(&h, peer, n).to_string();
        assert_eq!(at(0), "192.0.2.5");
        assert_eq!(at(1), "192.0.2.1");
        assert_eq!(at(2), "203.0.113.10");
        assert_eq!(at(3), "203.0.113.128");
        assert_eq!(at(4), "192.0.2.5");
        h.insert("x-forwarded-for", HeaderValue::from_static("not-an-ip"));
        assert_eq!(client_address(&h, peer, 1), peer);
    }
}
