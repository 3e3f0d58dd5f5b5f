//! Respond: the answers the gateway gives itself, without a backend:
//! errors as status codes, direct responses, and redirects (which keep the
//! request's query string, as Envoy does, unless the redirect's `uri`
//! carries its own).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::Body;
use crate::snapshot::routes::{DirectResponse, Redirect};

/// A short text answer of the gateway's own.
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
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
}

/// Where a redirect points: each part the redirect sets replaces the
/// request's. The query is kept unless the new `uri` has one (Envoy's
/// `path_redirect`).
pub(super) fn location(rd: &Redirect, o: &Origin<'_>) -> String {
    let authority = rd.authority.as_deref().unwrap_or(o.host);
    let port = rd.port.map(|p| format!(":{p}")).unwrap_or_default();
    let scheme = rd.scheme.map_or(o.scheme, |s| s.as_str());
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
            port: None,
            code: StatusCode::MOVED_PERMANENTLY,
        };
        assert_eq!(location(&rd(Some("/new")), &o), "https://a.com/new?x=1");
        assert_eq!(location(&rd(Some("/new?y=2")), &o), "https://a.com/new?y=2");
        let mut other = rd(None);
        other.scheme = Some(Scheme::Http);
        other.authority = Some("b.com".into());
        other.port = Some(8080);
        assert_eq!(location(&other, &o), "http://b.com:8080/old?x=1");
        let bare = Origin { query: None, ..o };
        assert_eq!(location(&rd(Some("/new")), &bare), "https://a.com/new");
    }
}
