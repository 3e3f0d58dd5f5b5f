//! Framing and header hygiene, the first step of every request: one pass
//! over the request's header lines that refuses what RFC 9112 and RFC 9110
//! call malformed (a second `Host`, a second `Content-Length`, both
//! `Content-Length` and `Transfer-Encoding`, a coding other than `chunked`,
//! an absolute-form target whose authority is not `Host`, `_` in a name)
//! and notes whether the request carries headers only gatehouse or a
//! trusted proxy may set, which [`strip_untrusted`] then removes before the
//! request is routed.
//!
//! hyper (httparse) refuses by itself, with 400 and a closed connection,
//! what never becomes a `Request`: obs-fold, whitespace before the colon,
//! empty or space-holding names, NUL, bare CR and other control bytes in a
//! value, a signed, list-valued or non-decimal `Content-Length`,
//! `Transfer-Encoding` on HTTP/1.0 or with `chunked` not last. This step
//! checks the rest, and must never let a refused request reach a backend
//! or keep its HTTP/1 connection open.

use http::header::{self, HeaderMap, HeaderName};
use http::{Request, Version};

use super::admit::Refusal;

/// What one pass over the headers found that later steps need.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Scan {
    /// Some header is one that only gatehouse or a trusted proxy may set.
    pub untrusted: bool,
    /// The body is chunked (`Transfer-Encoding: chunked`).
    pub chunked: bool,
}

/// Whether `name` is a header the client may never set: gatehouse sets it
/// itself (`x-forwarded-client-cert`, `x-forwarded-proto`), or it is an
/// Envoy-internal header (`x-envoy-*`) or an RFC 9440 client certificate
/// that only a proxy in front of gatehouse could vouch for, and there is
/// none.
fn is_untrusted(name: &HeaderName) -> bool {
    let n = name.as_str();
    // Names are lower-case in `HeaderName`: byte comparisons suffice.
    n.starts_with("x-envoy-")
        || matches!(
            n,
            "x-forwarded-client-cert" | "x-forwarded-proto" | "client-cert" | "client-cert-chain"
        )
}

/// Checks the request's framing headers in one pass over its header lines.
pub(super) fn scan<B>(req: &Request<B>) -> Result<Scan, Refusal> {
    let mut out = Scan::default();
    let (mut hosts, mut lengths, mut codings) = (0u32, 0u32, 0u32);
    for (name, value) in req.headers() {
        if *name == header::HOST {
            hosts += 1;
        } else if *name == header::CONTENT_LENGTH {
            lengths += 1;
            let v = value.as_bytes();
            if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
                return Err(Refusal::Framing("bad Content-Length"));
            }
        } else if *name == header::TRANSFER_ENCODING {
            codings += 1;
            if !value.as_bytes().eq_ignore_ascii_case(b"chunked") {
                // hyper has already refused codings where `chunked` is
                // not last: what is left names a coding we do not know.
                return Err(Refusal::UnknownCoding);
            }
            out.chunked = true;
        } else if name.as_str().as_bytes().contains(&b'_') {
            return Err(Refusal::Underscore);
        } else if is_untrusted(name) {
            out.untrusted = true;
        }
    }
    if hosts > 1 {
        return Err(Refusal::Framing("more than one Host"));
    }
    if lengths > 1 {
        return Err(Refusal::Framing("more than one Content-Length"));
    }
    if codings > 1 || (codings == 1 && lengths == 1) {
        return Err(Refusal::Framing(
            "Transfer-Encoding with Content-Length or repeated",
        ));
    }
    if hosts == 0 && req.version() == Version::HTTP_11 {
        return Err(Refusal::MissingHost);
    }
    // An absolute-form target (HTTP/1) or `:authority` (HTTP/2) names the
    // host the router sees: a `Host` that names another is ambiguous. The
    // port is ignored, as everywhere hosts are compared (`a.com:443` and
    // `a.com` are one host to a client that adds the default port).
    if let Some(authority) = req.uri().authority() {
        let host = req.headers().get(header::HOST).map(|h| h.as_bytes());
        let target = without_port(authority.as_str().as_bytes());
        if host.is_some_and(|h| !without_port(h).eq_ignore_ascii_case(target)) {
            return Err(Refusal::Framing(
                "the request target's authority is not Host",
            ));
        }
    }
    Ok(out)
}

/// `host[:port]` or `[v6][:port]` without the port.
fn without_port(authority: &[u8]) -> &[u8] {
    if authority.first() == Some(&b'[') {
        let end = authority.iter().position(|b| *b == b']');
        return end.map_or(authority, |e| &authority[..=e]);
    }
    match authority.iter().rposition(|b| *b == b':') {
        Some(colon) => &authority[..colon],
        None => authority,
    }
}

/// Removes every header [`is_untrusted`] names. Called only when [`scan`]
/// found one, so a clean request pays nothing more.
pub(super) fn strip_untrusted(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_untrusted(n))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().version(version).uri(uri);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap_or_default()
    }

    #[test]
    fn framing_table() {
        use Version as V;
        let h = ("host", "a.com");
        let ok = [
            req(V::HTTP_11, "/", &[h]),
            req(V::HTTP_11, "/", &[h, ("content-length", "5")]),
            req(V::HTTP_11, "/", &[h, ("transfer-encoding", "Chunked")]),
            req(V::HTTP_11, "http://A.com/", &[h]),
            req(V::HTTP_11, "http://a.com:443/", &[h]),
            req(V::HTTP_2, "https://a.com/", &[("host", "a.com:443")]),
            req(V::HTTP_11, "http://[::1]:80/", &[("host", "[::1]")]),
            req(V::HTTP_2, "https://a.com/", &[]),
            req(V::HTTP_10, "/", &[]),
        ];
        for r in &ok {
            assert!(scan(r).is_ok(), "{r:?}");
        }
        let bad = [
            req(V::HTTP_11, "/", &[]),
            req(V::HTTP_11, "/", &[h, h]),
            req(
                V::HTTP_11,
                "/",
                &[h, ("content-length", "5"), ("content-length", "5")],
            ),
            req(V::HTTP_11, "/", &[h, ("content-length", "+5")]),
            req(V::HTTP_11, "/", &[h, ("content-length", "5, 5")]),
            req(
                V::HTTP_11,
                "/",
                &[h, ("content-length", "5"), ("transfer-encoding", "chunked")],
            ),
            req(
                V::HTTP_11,
                "/",
                &[h, ("transfer-encoding", "gzip, chunked")],
            ),
            req(
                V::HTTP_11,
                "/",
                &[
                    h,
                    ("transfer-encoding", "chunked"),
                    ("transfer-encoding", "chunked"),
                ],
            ),
            req(V::HTTP_11, "http://b.com/", &[h]),
            req(V::HTTP_2, "https://b.com/", &[h]),
            req(V::HTTP_11, "http://[::2]/", &[("host", "[::1]")]),
            req(V::HTTP_11, "/", &[h, ("x_forwarded_for", "1.2.3.4")]),
        ];
        for r in &bad {
            assert!(scan(r).is_err(), "{r:?}");
        }
    }

    #[test]
    fn untrusted_headers_are_found_and_stripped() {
        let mut r = req(
            Version::HTTP_11,
            "/",
            &[
                ("host", "a.com"),
                ("x-envoy-original-path", "/admin"),
                ("X-Envoy-Internal", "true"),
                ("x-forwarded-client-cert", "Hash=00"),
                ("x-forwarded-proto", "http"),
                ("client-cert", ":AA==:"),
                ("client-cert-chain", ":AA==:"),
                ("x-envoyish", "kept"),
            ],
        );
        assert!(scan(&r).map(|s| s.untrusted).unwrap_or(false));
        strip_untrusted(r.headers_mut());
        let left: Vec<&str> = r.headers().keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["host", "x-envoyish"]);
        assert!(!scan(&r).map(|s| s.untrusted).unwrap_or(true));
    }
}

#[cfg(test)]
#[path = "framing_prop.rs"]
mod prop;
