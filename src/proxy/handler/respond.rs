//! Respond: the answers the gateway gives itself, without a backend:
//! errors as status codes, direct responses, and redirects (which keep the
//! request's query string, as Envoy does, unless the redirect's `uri`
//! carries its own).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::Body;
use crate::config::checked::route::RedirectPort;
use crate::snapshot::routes::{DirectResponse, Redirect};

/// A short text answer of the gateway's own (for a gRPC request, turned
/// into a gRPC status by `grpc::answer`).
pub(super) fn local(status: StatusCode, body: &str) -> Response<Body> {
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
    // A gRPC client gets it as a gRPC status (`grpc::answer`).
    r.extensions_mut().insert(super::grpc::Local);
    r
}

/// `r` with `Connection: close`: hyper closes an HTTP/1 connection after
/// writing it. Only for HTTP/1 (HTTP/2 forbids the header).
pub(super) fn close(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// A route's `directResponse`.
pub(super) fn direct(d: &DirectResponse) -> Response<Body> {
    let mut r = Response::new(
        Full::new(d.body.clone())
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = d.status;
    r
}

/// The request as a redirect sees it.
pub(super) struct Origin<'a> {
    pub scheme: &'a str,
    /// The Host, its port stripped.
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
}

/// Where a request came in, for a redirect's port: the listener's port,
/// and the port its Host named, if any.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ports {
    pub listener: u16,
    pub host: Option<u16>,
}

/// The port a Host or `:authority` names (`a.com:8443`, `[::1]:8443`).
pub(super) fn authority_port(authority: &str) -> Option<u16> {
    let (_, port) = authority.rsplit_once(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse().ok()
}

/// Where a redirect points: each part the redirect sets replaces the
/// request's. The query is kept unless the new `uri` has one (Envoy's
/// `path_redirect`). The port is the redirect's (`port`, `derivePort`),
/// else the request Host's unless `authority` replaced the host; a port
/// that is the scheme's default is left out, as Envoy does.
pub(super) fn location(rd: &Redirect, o: &Origin<'_>, ports: Ports) -> String {
    let authority = rd.authority.as_deref().unwrap_or(o.host);
    let scheme = rd.scheme.map_or(o.scheme, |s| s.as_str());
    let port = match rd.port {
        RedirectPort::Set(p) => Some(p),
        RedirectPort::FromRequest => Some(ports.listener),
        RedirectPort::ProtocolDefault => None,
        RedirectPort::Keep if rd.authority.is_some() => None,
        RedirectPort::Keep => ports.host,
    };
    let default = if scheme == "https" { 443 } else { 80 };
    let port = match port {
        Some(p) if p != default => format!(":{p}"),
        _ => String::new(),
    };
    let path = rd.uri.as_deref().unwrap_or(o.path);
    let query = match o.query {
        Some(q) if !path.contains('?') => format!("?{q}"),
        _ => String::new(),
    };
    format!("{scheme}://{authority}{port}{path}{query}")
}

/// The same request over https: a plain-HTTP server's `httpsRedirect`.
pub(super) fn https_location(o: &Origin<'_>) -> String {
    let query = o.query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("https://{}{}{query}", o.host, o.path)
}

/// A redirect answer to `location`.
pub(super) fn redirect(code: StatusCode, location: &str) -> Response<Body> {
    let mut r = local(code, "redirect");
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::routes::Scheme;

    #[test]
    fn locations() {
        let o = Origin {
            scheme: "https",
            host: "a.com",
            path: "/old",
            query: Some("x=1"),
        };
        let rd = |uri: Option<&str>| Redirect {
            uri: uri.map(str::to_owned),
            authority: None,
            scheme: None,
            port: RedirectPort::Keep,
            code: StatusCode::MOVED_PERMANENTLY,
        };
        let p = Ports {
            listener: 8443,
            host: None,
        };
        assert_eq!(location(&rd(Some("/new")), &o, p), "https://a.com/new?x=1");
        assert_eq!(
            location(&rd(Some("/new?y=2")), &o, p),
            "https://a.com/new?y=2"
        );
        let mut other = rd(None);
        other.scheme = Some(Scheme::Http);
        other.authority = Some("b.com".into());
        other.port = RedirectPort::Set(8080);
        assert_eq!(location(&other, &o, p), "http://b.com:8080/old?x=1");
        let bare = Origin { query: None, ..o };
        assert_eq!(location(&rd(Some("/new")), &bare, p), "https://a.com/new");
        // The request's port is kept, its scheme's default left out.
        let with_port = Ports {
            listener: 8443,
            host: Some(8443),
        };
        assert_eq!(
            location(&rd(None), &bare, with_port),
            "https://a.com:8443/old"
        );
        let mut derive = rd(None);
        derive.port = RedirectPort::FromRequest;
        assert_eq!(location(&derive, &bare, p), "https://a.com:8443/old");
        derive.port = RedirectPort::ProtocolDefault;
        assert_eq!(location(&derive, &bare, with_port), "https://a.com/old");
        derive.scheme = Some(Scheme::Http);
        derive.port = RedirectPort::Set(80);
        assert_eq!(location(&derive, &bare, p), "http://a.com/old");
        assert_eq!(authority_port("a.com:8443"), Some(8443));
        assert_eq!(authority_port("[::1]:9"), Some(9));
        assert_eq!(authority_port("[::1]"), None);
        assert_eq!(authority_port("a.com"), None);
    }
}
