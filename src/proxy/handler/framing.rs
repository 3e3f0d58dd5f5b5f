//! Framing and header hygiene, the first step of every request: one pass
//! over the request's header lines that refuses what RFC 9112 and RFC 9110
//! call malformed (a second `Host`, a second `Content-Length`, both
//! `Content-Length` and `Transfer-Encoding`, a coding other than `chunked`,
//! an absolute-form target whose authority is not `Host`, `_` in a name
//! unless `--headers-with-underscores` says otherwise), applies the limits
//! that need the parsed request (the header count, which hyper checks only
//! on HTTP/1, and a `Content-Length` over `--max-request-body`), and notes
//! whether the request carries headers only gatehouse or a
//! trusted proxy may set, which [`strip`] then removes before the
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
use crate::proxy::settings::UnderscoreAction;

/// What one pass over the headers found that later steps need.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Scan {
    /// Some header is one that only gatehouse or a trusted proxy may set.
    pub untrusted: bool,
    /// The body is chunked (`Transfer-Encoding: chunked`).
    pub chunked: bool,
    /// Some header name holds `_` and the action is to drop such headers.
    pub underscored: bool,
}

/// The request limits [`scan`] applies (from `Settings`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub max_headers: usize,
    /// 0: none.
    pub max_body: u64,
    pub underscores: UnderscoreAction,
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

/// Checks the request's framing headers and limits in one pass over its
/// header lines.
pub(super) fn scan<B>(req: &Request<B>, limits: Limits) -> Result<Scan, Refusal> {
    // hyper counts HTTP/1 header lines itself (431); h2 has no count limit,
    // only a size one. A `HeaderMap`'s length counts every value.
    if req.headers().len() > limits.max_headers {
        return Err(Refusal::TooManyHeaders);
    }
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
            // Digits only, so this fails only on overflow: far over any limit.
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            if limits.max_body > 0 && n > limits.max_body {
                return Err(Refusal::BodyTooLarge);
            }
        } else if *name == header::TRANSFER_ENCODING {
            codings += 1;
            if !value.as_bytes().eq_ignore_ascii_case(b"chunked") {
                // hyper has already refused codings where `chunked` is
                // not last: what is left names a coding we do not know.
                return Err(Refusal::UnknownCoding);
            }
            out.chunked = true;
        } else if limits.underscores != UnderscoreAction::Allow
            && name.as_str().as_bytes().contains(&b'_')
        {
            if limits.underscores == UnderscoreAction::Reject {
                return Err(Refusal::Underscore);
            }
            out.underscored = true;
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

/// Removes the headers no route may see: every one [`is_untrusted`]
/// names and, with `underscored` (`--headers-with-underscores drop`),
/// every one whose name holds `_`. Called only when [`scan`] found one,
/// so a clean request pays nothing more.
pub(super) fn strip(headers: &mut HeaderMap, underscored: bool) {
    let gone = |n: &HeaderName| is_untrusted(n) || (underscored && n.as_str().contains('_'));
    let names: Vec<HeaderName> = headers.keys().filter(|n| gone(n)).cloned().collect();
    for n in names {
        headers.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_headers: 100,
        max_body: 0,
        underscores: UnderscoreAction::Reject,
    };

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
            assert!(scan(r, LIMITS).is_ok(), "{r:?}");
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
            assert!(scan(r, LIMITS).is_err(), "{r:?}");
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
        assert!(scan(&r, LIMITS).map(|s| s.untrusted).unwrap_or(false));
        strip(r.headers_mut(), false);
        let left: Vec<&str> = r.headers().keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["host", "x-envoyish"]);
        assert!(!scan(&r, LIMITS).map(|s| s.untrusted).unwrap_or(true));
    }

    #[test]
    fn limits_table() {
        let h = ("host", "a.com");
        let many: Vec<(String, String)> =
            (0..100).map(|i| (format!("x-{i}"), "v".into())).collect();
        let mut fields: Vec<(&str, &str)> =
            many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let at_limit = req(Version::HTTP_2, "https://a.com/", &fields);
        assert!(scan(&at_limit, LIMITS).is_ok());
        fields.push(h);
        let over = req(Version::HTTP_2, "https://a.com/", &fields);
        assert_eq!(scan(&over, LIMITS).err(), Some(Refusal::TooManyHeaders));

        let body = Limits {
            max_body: 10,
            ..LIMITS
        };
        let len = |n: &str| req(Version::HTTP_11, "/", &[h, ("content-length", n)]);
        assert!(scan(&len("10"), body).is_ok());
        assert_eq!(scan(&len("11"), body).err(), Some(Refusal::BodyTooLarge));
        let huge = "99999999999999999999999";
        assert_eq!(scan(&len(huge), body).err(), Some(Refusal::BodyTooLarge));
        assert!(scan(&len(huge), LIMITS).is_ok(), "0 is no limit");

        let under = req(Version::HTTP_11, "/", &[h, ("x_team", "ux")]);
        let with = |underscores| Limits {
            underscores,
            ..LIMITS
        };
        assert_eq!(scan(&under, LIMITS).err(), Some(Refusal::Underscore));
        let dropped = scan(&under, with(UnderscoreAction::Drop));
        assert!(dropped.is_ok_and(|s| s.underscored));
        let allowed = scan(&under, with(UnderscoreAction::Allow));
        assert!(allowed.is_ok_and(|s| !s.underscored));
        let mut r = under;
        strip(r.headers_mut(), true);
        let left: Vec<&str> = r.headers().keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["host"]);
    }
}

#[cfg(test)]
#[path = "framing_prop.rs"]
mod prop;
