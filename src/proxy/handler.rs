//! One request: check the host against the connection's server, route,
//! forward with the gateway's headers, answer errors as status codes, log.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;

use super::{ConnInfo, Shared};
use crate::config::virtual_service::HeaderOperations;
use crate::snapshot::HostOwner;
use crate::snapshot::routes::{self, Action, RequestView};

pub type Body = BoxBody<Bytes, hyper::Error>;

/// Serves HTTP/1.1 or HTTP/2 (by ALPN or preface) on one connection.
pub async fn serve<I>(io: I, info: ConnInfo, shared: Arc<Shared>)
where
    I: Read + Write + Unpin + Send + 'static,
{
    let info = Arc::new(info);
    let activity = Arc::new(Activity::default());
    let svc_shared = shared.clone();
    let svc_activity = activity.clone();
    let service = hyper::service::service_fn(move |req| {
        let info = info.clone();
        let shared = svc_shared.clone();
        let activity = svc_activity.clone();
        async move {
            let _busy = activity.begin();
            Ok::<_, Infallible>(handle(req, &info, &shared).await)
        }
    });
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
        }
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), conn).await;
}

/// When a connection last started or finished a request, and how many it
/// has in flight: what the idle timeout looks at.
#[derive(Debug)]
struct Activity {
    epoch: Instant,
    last_ms: std::sync::atomic::AtomicU64,
    in_flight: std::sync::atomic::AtomicUsize,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            epoch: Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.touch();
        Busy(self.clone())
    }

    fn last(&self) -> Instant {
        self.epoch
            + std::time::Duration::from_millis(
                self.last_ms.load(std::sync::atomic::Ordering::Relaxed),
            )
    }

    fn idle_for(&self, idle: std::time::Duration) -> bool {
        self.in_flight.load(std::sync::atomic::Ordering::Relaxed) == 0
            && self.last().elapsed() >= idle
    }
}

/// A request in flight; its end counts as activity.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.0.touch();
    }
}

/// The HTTP server settings every connection shares, built once.
pub fn http_builder(s: &super::Settings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(s.request_headers_timeout)
        .max_headers(s.max_request_headers)
        .max_buf_size(s.max_request_header_bytes.max(8192) + s.connection_buffer_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(s.h2_max_concurrent_streams)
        .initial_stream_window_size(s.h2_stream_window)
        .initial_connection_window_size(s.h2_connection_window)
        .max_header_list_size(u32::try_from(s.max_request_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(Some(50))
        .max_local_error_reset_streams(Some(1024));
    builder
}

fn local(status: StatusCode, body: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(format!("{body}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `:authority` (HTTP/2, absolute-form) or the Host header, as sent.
fn request_authority(req: &Request<Incoming>) -> Option<String> {
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
fn request_host(req: &Request<Incoming>) -> Option<String> {
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

/// Normalizes `.`, `..` and `//`; refuses encoded `/`, `\` and NUL.
pub fn normalize_path(path: &str) -> Result<String, &'static str> {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%00") {
        return Err("encoded '/', '\\' or NUL in the path");
    }
    if !path.starts_with('/') {
        return Err("the path must start with /");
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut p = String::with_capacity(path.len());
    for s in &out {
        p.push('/');
        p.push_str(s);
    }
    if p.is_empty() || (path.ends_with('/') && !out.is_empty()) {
        p.push('/');
    }
    Ok(p)
}

fn apply_header_ops(headers: &mut http::HeaderMap, ops: &HeaderOperations) {
    for name in &ops.remove {
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(n);
        }
    }
    for (k, v) in &ops.set {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.insert(n, v);
        }
    }
    for (k, v) in &ops.add {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(n, v);
        }
    }
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
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

/// A fresh `x-request-id` in UUID form: a random per-process prefix and a
/// counter, so ids are unique without asking the system for randomness on
/// every request.
fn request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<[u8; 8]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        if aws_lc_rs::rand::fill(&mut b).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            b = (t as u64).to_le_bytes();
        }
        b
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(prefix);
    b[8..].copy_from_slice(&n.to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::crypto::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn pick_weighted(dests: &[routes::WeightedUpstream]) -> Option<&routes::WeightedUpstream> {
    if dests.len() <= 1 {
        return dests.first();
    }
    let total: u32 = dests.iter().map(|d| d.weight).sum();
    if total == 0 {
        return dests.first();
    }
    let mut b = [0u8; 4];
    let _ = aws_lc_rs::rand::fill(&mut b);
    let mut n = u32::from_le_bytes(b) % total;
    for d in dests {
        if n < d.weight {
            return Some(d);
        }
        n -= d.weight;
    }
    dests.last()
}

struct LogLine<'a> {
    info: &'a ConnInfo,
    host: &'a str,
    method: String,
    path: String,
    upstream: Option<std::net::SocketAddr>,
}

impl LogLine<'_> {
    fn emit(&self, status: u16, bytes: Option<u64>, start: Instant, json: bool) {
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let subject = self
            .info
            .client_cert
            .as_ref()
            .map_or("-", |c| c.subject.as_str());
        let sni = self.info.sni.as_deref().unwrap_or("-");
        let upstream = self
            .upstream
            .map_or_else(|| "-".to_owned(), |a| a.to_string());
        let bytes = bytes.map_or_else(|| "-".to_owned(), |b| b.to_string());
        if json {
            tracing::info!(target: "access", client = %self.info.peer, sni, host = self.host, method = %self.method, path = %self.path, status, bytes = %bytes, duration_ms = ms, upstream = %upstream, client_cert = subject, "request");
        } else {
            tracing::info!(target: "access", "{} sni={} host={} \"{} {}\" {} {} {:.3}ms upstream={} cert=\"{}\"", self.info.peer, sni, self.host, self.method, self.path, status, bytes, ms, upstream, subject);
        }
    }
}

async fn handle(req: Request<Incoming>, info: &ConnInfo, shared: &Shared) -> Response<Body> {
    let host = request_host(&req).unwrap_or_default();
    let mut upstream = None;
    // With the access log off, a request pays nothing for it.
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return route(req, info, shared, &host, &mut upstream).await;
    }
    let start = Instant::now();
    let mut log = LogLine {
        info,
        host: &host,
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        upstream: None,
    };
    // The whole-request deadline is enforced where a request can wait: on
    // the upstream (see `route`), so a request costs one timer, not two.
    let resp = route(req, info, shared, &host, &mut upstream).await;
    log.upstream = upstream;
    let bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    log.emit(resp.status().as_u16(), bytes, start, shared.json_log);
    resp
}

async fn route(
    mut req: Request<Incoming>,
    info: &ConnInfo,
    shared: &Shared,
    host: &str,
    upstream_used: &mut Option<std::net::SocketAddr>,
) -> Response<Body> {
    if host.is_empty() {
        return local(StatusCode::BAD_REQUEST, "missing Host");
    }
    if req.headers().keys().any(|k| k.as_str().contains('_')) {
        return local(
            StatusCode::BAD_REQUEST,
            "header names with '_' are not accepted",
        );
    }
    let snapshot = shared.snapshot.load();
    let Some(listener) = snapshot.listeners.get(&info.port) else {
        return local(StatusCode::NOT_FOUND, "no route");
    };
    let server = match &info.server_id {
        Some(id) => match listener.server_by_id(id) {
            Some(s) => s.clone(),
            None => {
                return local(
                    StatusCode::MISDIRECTED_REQUEST,
                    "this connection's server is gone; reconnect",
                );
            }
        },
        None => match listener.server_for_host(host) {
            Some(s) => s.clone(),
            None => return local(StatusCode::NOT_FOUND, "no route"),
        },
    };
    match listener.owner_of(&server, host) {
        HostOwner::This => {}
        // The client must open a connection (and pass that server's TLS)
        // for this host.
        HostOwner::Other => {
            return local(StatusCode::MISDIRECTED_REQUEST, "misdirected request");
        }
        HostOwner::Nobody => return local(StatusCode::NOT_FOUND, "no route"),
    }
    let path = match normalize_path(req.uri().path()) {
        Ok(p) => p,
        Err(why) => return local(StatusCode::BAD_REQUEST, why),
    };
    let query = req.uri().query().map(str::to_owned);
    if server.https_redirect {
        let location = format!(
            "https://{host}{path}{}",
            query
                .as_deref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default()
        );
        let mut r = local(StatusCode::MOVED_PERMANENTLY, "moved");
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    let scheme = if info.tls { "https" } else { "http" };
    let candidates = routes::routes_for(&server.vhosts, host);
    let authority = request_authority(&req).unwrap_or_else(|| host.to_owned());
    let view = RequestView {
        path: &path,
        query: query.as_deref(),
        method: req.method().as_str(),
        scheme,
        authority: &authority,
        headers: req.headers(),
        port: info.port,
    };
    let Some(route) = routes::select(&candidates, &view) else {
        return local(StatusCode::NOT_FOUND, "no route");
    };
    let dests = match &route.action {
        Action::Direct { status, body } => {
            let mut r = Response::new(
                Full::new(body.clone())
                    .map_err(|never| match never {})
                    .boxed(),
            );
            *r.status_mut() =
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return r;
        }
        Action::Redirect {
            uri,
            authority: to_authority,
            scheme: to_scheme,
            port,
            code,
        } => {
            let a = to_authority.clone().unwrap_or_else(|| host.to_owned());
            let a = match port {
                Some(p) => format!("{a}:{p}"),
                None => a,
            };
            let location = format!(
                "{}://{a}{}",
                to_scheme.as_deref().unwrap_or(scheme),
                uri.as_deref().unwrap_or(&path)
            );
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::MOVED_PERMANENTLY);
            let mut r = local(status, "redirect");
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        Action::Forward(d) => d,
    };
    let Some(dest) = pick_weighted(dests) else {
        return local(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream");
    };
    let addr = match dest.upstream.pick().await {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(error = %e, "no upstream endpoint");
            return local(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream");
        }
    };
    *upstream_used = Some(addr);
    let new_path = match &route.rewrite_uri {
        Some(rw) => {
            let prefix = route.matches.iter().find_map(|m| match &m.uri {
                Some(routes::Matcher::Prefix(p)) if path.starts_with(p.as_str()) => Some(p.clone()),
                _ => None,
            });
            match prefix {
                Some(p) => format!("{rw}{}", &path[p.len()..]),
                None => rw.clone(),
            }
        }
        None => path.clone(),
    };
    let pq = match &query {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    };
    let uri: Uri = match format!("http://{addr}{pq}").parse() {
        Ok(u) => u,
        Err(_) => return local(StatusCode::BAD_REQUEST, "bad request target"),
    };
    *req.uri_mut() = uri;
    *req.version_mut() = http::Version::HTTP_11;
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    headers.remove("x-forwarded-client-cert");
    let outward_host = route.rewrite_authority.clone().unwrap_or(authority);
    if let Ok(v) = HeaderValue::from_str(&outward_host) {
        headers.insert(header::HOST, v);
    }
    let peer_ip = info.peer.ip().to_string();
    // Every x-forwarded-for line the client sent, in order, then the peer
    // (Envoy's form: comma-joined).
    let mut xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    xff.push(&peer_ip);
    let xff = xff.join(",");
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(if info.tls { "https" } else { "http" }),
    );
    if !headers.contains_key("x-request-id")
        && let Ok(v) = HeaderValue::from_str(&request_id())
    {
        headers.insert("x-request-id", v);
    }
    if let Some(cert) = &info.client_cert
        && let Ok(v) = HeaderValue::from_str(&cert.xfcc)
    {
        headers.insert("x-forwarded-client-cert", v);
    }
    if let Some(ops) = &route.request_headers {
        apply_header_ops(headers, ops);
    }
    let upstream_timeout = route
        .timeout
        .unwrap_or(shared.settings.upstream_response_timeout);
    let whole_request = shared.settings.request_timeout;
    let timeout = upstream_timeout.min(whole_request);
    let mut resp = match tokio::time::timeout(timeout, shared.client.request(req)).await {
        Err(_) if upstream_timeout <= whole_request => {
            return local(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout");
        }
        Err(_) => return local(StatusCode::REQUEST_TIMEOUT, "request timeout"),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, upstream = %addr, "upstream request failed");
            return local(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream connect error or disconnect/reset before headers",
            );
        }
        Ok(Ok(r)) => r,
    };
    strip_hop_by_hop(resp.headers_mut());
    if let Some(ops) = &route.response_headers {
        apply_header_ops(resp.headers_mut(), ops);
    }
    resp.map(|b| b.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let cases = [
            ("/", Ok("/")),
            ("/a/b", Ok("/a/b")),
            ("/a//b", Ok("/a/b")),
            ("/a/./b/../c", Ok("/a/c")),
            ("/../..", Ok("/")),
            ("/a/", Ok("/a/")),
            ("/a%2Fb", Err(())),
            ("/a%5cb", Err(())),
            ("/a%00", Err(())),
        ];
        for (input, want) in cases {
            assert_eq!(
                normalize_path(input).map_err(|_| ()),
                want.map(str::to_owned),
                "{input}"
            );
        }
    }
}
