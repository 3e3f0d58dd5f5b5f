//! One connection and its requests. A request goes through named steps,
//! each in its own file: `framing` (RFC 9112 framing, header names, and
//! the headers a client may not set, stripped before anything looks at
//! them), `admit` (the connection's server, the host check, the path),
//! route selection (`snapshot::routes`, pure), `cors` (the route's CORS
//! policy: preflights answered, headers added), `respond` (redirects,
//! direct responses, errors as status codes), `fault` (the route's
//! injected delay and abort), `pick` (a destination, its circuit
//! breakers' admission and an endpoint by its load balancer), `forward`
//! (the upstream request with the gateway's headers; `body` carries the
//! client's body; `lease` counts each attempt on its endpoint and reports
//! its outcome to outlier detection; `retry` sends a held body again,
//! `mirror` copies it to the mirrors), `grpc` (a gRPC call's deadline, and
//! the gateway's own answers to it as gRPC statuses) and `log` (the access
//! log).
//! The data plane reads only the snapshot: never the serde config model.

mod activity;
mod admit;
pub(super) mod body;
mod conn_io;
mod cors;
pub(crate) mod facts;
mod fault;
mod forward;
mod framing;
mod grpc;
mod lease;
mod log;
mod mirror;
pub(crate) mod pick;
mod request_id;
mod respond;
mod retry;
mod stall;
mod tee;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use activity::{Activity, watch_for_shedding};

use bytes::Bytes;
use http::header;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;

use super::h1scan::Fault;
use super::{ConnInfo, Shared};
use crate::snapshot::routes::{self, Action, RequestView};
use facts::{Facts, Flag};
use log::LogLine;
use respond::local;

pub type Body = BoxBody<Bytes, hyper::Error>;

/// Serves HTTP/1.1 or HTTP/2 (by ALPN or preface) on one connection.
pub async fn serve<I>(io: I, info: ConnInfo, shared: Arc<Shared>)
where
    I: Read + Write + Unpin + Send + 'static,
{
    let seats = info.seats.clone();
    let info = Arc::new(info);
    let activity = Arc::new(Activity::default());
    let (mut asked_to_leave, _watcher) = watch_for_shedding(seats, activity.clone());
    let svc_shared = shared.clone();
    let svc_activity = activity.clone();
    let counted = Arc::new(crate::metrics::ConnCache::default());
    let service = hyper::service::service_fn(move |req| {
        let info = info.clone();
        let shared = svc_shared.clone();
        let activity = svc_activity.clone();
        let counted = counted.clone();
        async move {
            let _busy = activity.begin();
            // Boxed, so that a connection holds the request's large state
            // only while a request is in flight: hyper keeps a slot the
            // size of this future for every HTTP/1.1 connection, idle or
            // not (12 KiB of an idle connection's 52, bench/README.md).
            Ok::<_, Infallible>(Box::pin(handle(req, &info, &shared, &counted)).await)
        }
    });
    // Slow readers are cut off, and the close lingers (`conn_io`).
    let io = conn_io::Guarded::new(io, shared.settings.stream_idle_timeout);
    let idle = shared.settings.idle_timeout;
    let drain = shared.drain.clone();
    let mut conn = std::pin::pin!(shared.http.serve_connection(io, service));
    loop {
        let deadline = activity.last() + idle;
        tokio::select! {
            // Shutdown: the same graceful end as idle (see below), whatever
            // is in flight finishes first.
            () = drain.started() => {
                conn.as_mut().graceful_shutdown();
                break;
            }
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                if activity.idle_for(idle) {
                    // HTTP/2 gets a GOAWAY, HTTP/1.1 closes after the current exchange.
                    conn.as_mut().graceful_shutdown();
                    break;
                }
            }
            // A new connection needed this one's place while it was idle.
            Ok(shed) = &mut asked_to_leave => {
                tracing::info!(shed, "connection limit reached: idle connection closed to make room");
                conn.as_mut().graceful_shutdown();
                break;
            }
        }
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), conn).await;
}

/// The HTTP server settings every connection shares, built once.
pub fn http_builder(s: &super::Settings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(s.request_headers_timeout)
        .max_headers(s.max_request_headers)
        // hyper-util's auto builder has no `max_header_size`: the read
        // buffer's cap is the head limit too (h1scan measures heads
        // exactly). A head hyper cannot finish reading gets hyper's 431;
        // bodies stream through the buffer in pieces, so it bounds
        // nothing else.
        .max_buf_size(s.max_request_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(s.h2_max_concurrent_streams)
        .initial_stream_window_size(s.h2_stream_window)
        .initial_connection_window_size(s.h2_connection_window)
        .max_header_list_size(u32::try_from(s.max_request_header_bytes).unwrap_or(u32::MAX))
        // Rapid reset (CVE-2023-44487): streams the client resets before
        // hyper takes them count here; over it, GOAWAY ENHANCE_YOUR_CALM.
        // Resets after that are counted by `h2watch` with PINGs and the rest.
        .max_pending_accept_reset_streams(Some(50))
        // Streams h2 itself resets for a client's protocol errors.
        .max_local_error_reset_streams(Some(1024))
        // A stream buffers at most one window of its response, not 400 KiB.
        .max_send_buf_size(s.h2_stream_window as usize);
    builder
}

async fn handle(
    req: Request<Incoming>,
    info: &ConnInfo,
    shared: &Shared,
    counted: &crate::metrics::ConnCache,
) -> Response<Body> {
    let host = admit::request_host(&req).unwrap_or_default();
    let mut facts = Facts::new(Instant::now());
    let method = crate::metrics::MethodClass::of(req.method());
    // With the access log off, a request pays nothing for it.
    let log = tracing::enabled!(target: "access", tracing::Level::INFO).then(|| LogLine {
        info,
        host: &host,
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        version: req.version(),
    });
    // The whole-request deadline is enforced where a request can wait: on
    // the upstream (see `forward`), so a request costs one timer, not two.
    let call = grpc::Call::of(req.headers());
    let resp = route(req, info, shared, &host, &mut facts).await;
    let resp = grpc::answer(call, facts.start, resp).await;
    if let Some(log) = log {
        // The body's length when known before it is sent: a local
        // answer's, or a backend's Content-Length.
        let bytes = hyper::body::Body::size_hint(resp.body())
            .exact()
            .or_else(|| {
                resp.headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
            });
        log.emit(resp.status().as_u16(), bytes, &facts, shared.json_log);
    }
    shared
        .metrics
        .request(facts, method, resp.status().as_u16(), counted);
    resp
}

/// The request path as named steps: admit (which server, may it be
/// served here), route (the first matching route of that server), the
/// route's CORS policy (a preflight answered here), then `act`. Each step
/// notes what it learns in `facts`.
async fn route(
    mut req: Request<Incoming>,
    info: &ConnInfo,
    shared: &Shared,
    host: &str,
    facts: &mut Facts,
) -> Response<Body> {
    let http1 = req.version() < http::Version::HTTP_2;
    facts.server.clone_from(&info.server_id);
    let scan = match framing_step(&mut req, info, shared, http1) {
        Ok(s) => s,
        Err(refusal) => return refuse_unframed(req, info, refusal, http1, facts),
    };
    if let Some(refused) = admit::unforwardable_identity(info, http1) {
        return refused;
    }
    let server = match admit::admit(info, shared, host) {
        Ok(s) => s,
        Err(refusal) => {
            facts.flags.set(refusal.flag());
            return refusal.response();
        }
    };
    // A TLS connection's server was noted from the connection already.
    if facts.server.is_none() {
        facts.server = Some(server.id.clone());
    }
    // The one path both matched and forwarded; the query as sent. (A
    // `Uri` clone shares its bytes: no allocation.)
    let uri = req.uri().clone();
    let path = match super::path::normalize(uri.path(), shared.settings.path_with_escaped_slashes) {
        Ok(p) => p,
        Err(why) => {
            facts.flags.set(Flag::DownstreamProtocolError);
            return local(StatusCode::BAD_REQUEST, &why.to_string());
        }
    };
    let query = uri.query();
    let scheme = if info.tls { "https" } else { "http" };
    let origin = respond::Origin {
        scheme,
        host,
        path: &path,
        query,
    };
    if server.https_redirect {
        let location = respond::https_location(&origin);
        return respond::redirect(StatusCode::MOVED_PERMANENTLY, &location);
    }
    let authority = admit::request_authority(&req).unwrap_or_else(|| host.to_owned());
    let candidates = routes::routes_for(&server.vhosts, host);
    let view = RequestView {
        path: &path,
        query,
        method: req.method().as_str(),
        scheme,
        authority: &authority,
        headers: req.headers(),
        port: info.port,
    };
    let Some(route) = routes::select(&candidates, &view) else {
        facts.flags.set(Flag::NoRoute);
        return local(StatusCode::NOT_FOUND, "no route");
    };
    facts.route = Some(route.id.clone());
    let routed = Routed {
        route,
        origin,
        authority: &authority,
        peek_body: scan.chunked && http1,
    };
    let Some(policy) = &route.cors else {
        return act(req, info, shared, routed, facts).await;
    };
    match cors::inspect(policy, req.method(), req.headers()) {
        cors::Step::Answer(r) => r,
        cors::Step::Pass => act(req, info, shared, routed, facts).await,
        cors::Step::Decorate(o) => {
            cors::decorate(policy, o, act(req, info, shared, routed, facts).await)
        }
    }
}

/// A request and the route it matched.
struct Routed<'a> {
    route: &'a routes::Route,
    /// The request as a redirect sees it.
    origin: respond::Origin<'a>,
    authority: &'a str,
    /// Read the body's first frame before forwarding (chunked HTTP/1.1).
    peek_body: bool,
}

/// What the matched route does: answer here (redirect, direct response,
/// an injected fault) or pick an upstream and forward.
async fn act(
    req: Request<Incoming>,
    info: &ConnInfo,
    shared: &Shared,
    r: Routed<'_>,
    facts: &mut Facts,
) -> Response<Body> {
    let dests = match &r.route.action {
        Action::Direct(d) => return respond::direct(d),
        Action::Redirect(rd) => {
            let ports = respond::Ports {
                listener: info.port,
                host: respond::authority_port(r.authority),
            };
            return respond::redirect(rd.code, &respond::location(rd, &r.origin, ports));
        }
        Action::Forward(d) => d,
    };
    if let Some(f) = &r.route.fault
        && let Some(aborted) = fault::inject(f, shared.settings.request_timeout, facts).await
    {
        return aborted;
    }
    let keys = pick::Keys {
        headers: Some(req.headers()),
        query: r.origin.query,
        peer: info.peer.ip(),
    };
    let picked = match pick::pick_upstream(dests, &keys).await {
        Ok(picked) => picked,
        Err(flag) => {
            facts.flags.set(flag);
            return local(StatusCode::SERVICE_UNAVAILABLE, flag_text(flag));
        }
    };
    let dest = &picked.dest.upstream;
    facts.destination = Some(dest.clone());
    let wait = forward::upstream_deadline(r.route, shared).0;
    let admission = match pick::admit(picked.dest, wait, facts).await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    facts.upstream = Some(picked.addr);
    let up = forward::Upstream {
        addr: picked.addr,
        dest,
        headers: picked.dest.headers.as_deref(),
        route: r.route,
        path: r.origin.path,
        query: r.origin.query,
        authority: r.authority,
        peek_body: r.peek_body,
        grpc: grpc::Call::of(req.headers()),
    };
    let resp = forward::forward(req, info, shared, up, facts).await;
    pick::answered(resp, picked.cookie, admission)
}

/// A request refused for its framing or size. One whose framing is in
/// doubt ends its HTTP/1 connection: where its body ends, and so where
/// the next request starts, is in doubt too. So does one refused for its
/// size: its body was never read. (HTTP/2 reads and drops the body.)
fn refuse_unframed(
    req: Request<Incoming>,
    info: &ConnInfo,
    refusal: admit::Refusal,
    http1: bool,
    facts: &mut Facts,
) -> Response<Body> {
    tracing::debug!(client = %info.peer, ?refusal, "request refused before routing");
    facts.flags.set(Flag::DownstreamProtocolError);
    let r = refusal.response();
    if http1 {
        return respond::close(r);
    }
    body::discard(req.into_body());
    r
}

/// Framing and limits, then the headers no route may see are removed:
/// the request as routing may look at it, or why it is refused.
fn framing_step(
    req: &mut Request<Incoming>,
    info: &ConnInfo,
    shared: &Shared,
    http1: bool,
) -> Result<framing::Scan, admit::Refusal> {
    // What hyper hid from the parsed request, seen in the raw bytes.
    let hidden_fault = info
        .h1
        .as_ref()
        .filter(|_| http1)
        .and_then(|v| v.next_fault());
    let scan = match hidden_fault {
        Some(Fault::Framing) => Err(admit::Refusal::Framing(
            "Content-Length with Transfer-Encoding, or repeated",
        )),
        Some(Fault::TooLarge) => Err(admit::Refusal::HeadTooLarge),
        None => framing::scan(req, limits(&shared.settings)),
    };
    let scan = scan?;
    // Before routing: matching must see only what the client may say.
    if scan.untrusted || scan.underscored {
        framing::strip(req.headers_mut(), scan.underscored);
    }
    Ok(scan)
}

/// The limits `framing::scan` applies.
fn limits(s: &super::Settings) -> framing::Limits {
    framing::Limits {
        max_headers: s.max_request_headers,
        max_body: s.max_request_body_bytes,
        underscores: s.headers_with_underscores,
    }
}

/// The body of a 503 for why no endpoint was picked.
fn flag_text(flag: Flag) -> &'static str {
    match flag {
        Flag::NoClusterFound => "no cluster found",
        _ => "no healthy upstream",
    }
}
