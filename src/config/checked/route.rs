//! A VirtualService `http[]` entry in its checked form, and the pure
//! matching over it: regexes compiled once, status codes typed, bodies
//! decoded, header names and values built, hosts qualified.
//!
//! Validation builds these; the compiler and the data plane read them and
//! never parse a string again. Nothing here does I/O or knows serde.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// One string matcher. Regexes are anchored (RE2 full match, as Istio).
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Prefix(String),
    Regex(regex::Regex),
    /// The value does not matter, only that the header is there (Istio's
    /// `regex: "*"` under `withoutHeaders`).
    Present,
}

impl Matcher {
    /// A full-match regex, as Istio's `regex` means it.
    pub fn regex(pattern: &str) -> Result<Matcher, regex::Error> {
        regex::Regex::new(&format!("^(?:{pattern})$")).map(Matcher::Regex)
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(s) => value == s,
            Matcher::Prefix(s) => value.starts_with(s.as_str()),
            Matcher::Regex(r) => r.is_match(value),
            Matcher::Present => true,
        }
    }
}

/// How the URI is matched. With `ignoreUriCase`, Istio (Envoy's
/// `case_sensitive: false`) ignores case for exact and prefix matches only;
/// a regex keeps its case.
#[derive(Debug, Clone)]
pub struct UriMatch {
    pub matcher: Matcher,
    /// Exact and prefix strings are then stored lower-case.
    pub ignore_case: bool,
}

impl UriMatch {
    pub fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Exact(s) if self.ignore_case => path.eq_ignore_ascii_case(s),
            Matcher::Prefix(s) if self.ignore_case => path
                .get(..s.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(s)),
            m => m.matches(path),
        }
    }

    /// The part of `path` after a matching prefix, which a `rewrite.uri`
    /// keeps (Envoy's `prefix_rewrite`): `None` unless this is a prefix
    /// match that matches `path`.
    pub fn prefix_rest<'p>(&self, path: &'p str) -> Option<&'p str> {
        match &self.matcher {
            Matcher::Prefix(s) if self.matches(path) => path.get(s.len()..),
            _ => None,
        }
    }
}

/// What a matcher looks at: the request as seen by the gateway.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a str,
    pub scheme: &'a str,
    pub authority: &'a str,
    pub headers: &'a HeaderMap,
    pub port: u16,
}

/// One entry of `match[]`: its fields are ANDed.
#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    pub uri: Option<UriMatch>,
    pub scheme: Option<Matcher>,
    pub method: Option<Matcher>,
    pub authority: Option<Matcher>,
    pub headers: Vec<(HeaderName, Matcher)>,
    pub without_headers: Vec<(HeaderName, Matcher)>,
    pub query_params: Vec<(String, Matcher)>,
    pub port: Option<u16>,
    /// Decided when routes are compiled for a Gateway, never per request.
    pub source: super::MatchSource,
}

fn header_matches(headers: &HeaderMap, name: &HeaderName, m: &Matcher) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| m.matches(v)))
}

impl RouteMatch {
    pub fn matches(&self, r: &RequestView<'_>) -> bool {
        if self.uri.as_ref().is_some_and(|m| !m.matches(r.path)) {
            return false;
        }
        let simple = [
            (&self.scheme, r.scheme),
            (&self.method, r.method),
            (&self.authority, r.authority),
        ];
        if simple
            .iter()
            .any(|(m, v)| m.as_ref().is_some_and(|m| !m.matches(v)))
        {
            return false;
        }
        if self.port.is_some_and(|p| p != r.port) {
            return false;
        }
        if !self
            .headers
            .iter()
            .all(|(n, m)| header_matches(r.headers, n, m))
        {
            return false;
        }
        if self
            .without_headers
            .iter()
            .any(|(n, m)| header_matches(r.headers, n, m))
        {
            return false;
        }
        self.query_params.iter().all(|(name, m)| {
            r.query.is_some_and(|q| {
                q.split('&').any(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    k == name && m.matches(v)
                })
            })
        })
    }
}

/// `headers.request` or `headers.response`, built once.
#[derive(Debug, Clone, Default)]
pub struct HeaderOps {
    pub remove: Vec<HeaderName>,
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// Envoy's order: remove, then set, then add.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for n in &self.remove {
            headers.remove(n);
        }
        for (n, v) in &self.set {
            headers.insert(n.clone(), v.clone());
        }
        for (n, v) in &self.add {
            headers.append(n.clone(), v.clone());
        }
    }
}

/// A redirect's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The port a redirect's Location names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RedirectPort {
    /// Neither `port` nor `derivePort`: the request's own (its Host's
    /// port, if it named one), unless `authority` replaces the host.
    #[default]
    Keep,
    /// `port`.
    Set(u16),
    /// `derivePort: FROM_REQUEST_PORT`: the port the request came in on
    /// (Istio generates it from the listener's port).
    FromRequest,
    /// `derivePort: FROM_PROTOCOL_DEFAULT`: none, the scheme's default.
    ProtocolDefault,
}

/// `redirect`: each part replaces the request's when set.
#[derive(Debug, Clone)]
pub struct Redirect {
    pub uri: Option<String>,
    pub authority: Option<String>,
    pub scheme: Option<Scheme>,
    pub port: RedirectPort,
    /// 301 unless `redirectCode` says otherwise.
    pub code: StatusCode,
}

/// `directResponse`: the status and the body, decoded.
#[derive(Debug, Clone)]
pub struct DirectResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

/// One `route[]` destination: the qualified host, its port if named, and
/// its share (Istio's weight, an int32 that is never negative).
#[derive(Debug, Clone)]
pub struct Destination {
    pub host: String,
    pub port: Option<u16>,
    /// A DestinationRule subset of the host's endpoints.
    pub subset: Option<String>,
    pub weight: u32,
    /// `route[].headers`: this destination's own header operations, applied
    /// before the route's (Envoy's order: the route's win).
    pub headers: Option<std::sync::Arc<DestinationHeaders>>,
}

/// A destination's `headers.request` and `headers.response`.
#[derive(Debug, Clone, Default)]
pub struct DestinationHeaders {
    pub request: HeaderOps,
    pub response: HeaderOps,
}

/// What a matched route does.
#[derive(Debug, Clone)]
pub enum RouteAction {
    /// Destinations with their weights; weights of several add up to more
    /// than 0 and at most `u32::MAX`.
    Forward(Vec<Destination>),
    Redirect(Redirect),
    Direct(DirectResponse),
}

/// `rewrite`: a new URI (or URI prefix) and authority.
#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    pub uri: Option<String>,
    /// `uriRegexRewrite`: every match of the regex in the path is replaced
    /// (`\1` in the rewrite names a capture group, as RE2 and Envoy write
    /// it; stored here in the `regex` crate's `${1}` form).
    pub uri_regex: Option<(regex::Regex, String)>,
    pub authority: Option<HeaderValue>,
}

/// One checked `http[]` entry.
#[derive(Debug, Clone)]
pub struct HttpRoute {
    pub name: Option<String>,
    pub matches: Vec<RouteMatch>,
    pub action: RouteAction,
    pub timeout: Option<Duration>,
    pub rewrite: Rewrite,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    /// `fault`: only on a route that forwards.
    pub fault: Option<super::fault::Fault>,
    /// `corsPolicy`.
    pub cors: Option<super::cors::Cors>,
    /// `retries` with `attempts` > 0; `None`: one attempt.
    pub retries: Option<super::retry::RetryPolicy>,
    /// `mirror` (with `mirrorPercentage`) or `mirrors`.
    pub mirrors: Vec<super::retry::Mirror>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(path: &'a str, headers: &'a HeaderMap) -> RequestView<'a> {
        RequestView {
            path,
            query: Some("a=1&b=two"),
            method: "GET",
            scheme: "https",
            authority: "frontend.foocorp.com",
            headers,
            port: 443,
        }
    }

    #[test]
    fn uri_case() {
        let prefix = UriMatch {
            matcher: Matcher::Prefix("/shop".into()),
            ignore_case: true,
        };
        for (path, rest) in [
            ("/SHOP/cart", Some("/cart")),
            ("/Shop", Some("")),
            ("/shop/x", Some("/x")),
            ("/sho", None),
            ("/other", None),
        ] {
            assert_eq!(prefix.prefix_rest(path), rest, "{path}");
            assert_eq!(prefix.matches(path), rest.is_some(), "{path}");
        }
        // A multi-byte character where the prefix ends is no match, not a panic.
        assert!(!prefix.matches("/sh\u{e9}p"));
        let regex = UriMatch {
            matcher: Matcher::regex("/shop").unwrap(),
            ignore_case: true,
        };
        assert!(regex.matches("/shop") && !regex.matches("/SHOP"));
        let exact = UriMatch {
            matcher: Matcher::Exact("/shop".into()),
            ignore_case: true,
        };
        assert!(exact.matches("/ShOp") && exact.prefix_rest("/shop").is_none());
    }

    #[test]
    fn headers_query_and_presence() {
        let mut h = HeaderMap::new();
        h.insert("x-team", HeaderValue::from_static("ux"));
        let m = RouteMatch {
            headers: vec![(
                HeaderName::from_static("x-team"),
                Matcher::Exact("ux".into()),
            )],
            query_params: vec![("b".into(), Matcher::Exact("two".into()))],
            ..Default::default()
        };
        let empty = HeaderMap::new();
        assert!(m.matches(&view("/", &h)));
        assert!(!m.matches(&view("/", &empty)));
        let without = RouteMatch {
            without_headers: vec![(HeaderName::from_static("x-team"), Matcher::Present)],
            ..Default::default()
        };
        assert!(!without.matches(&view("/", &h)));
        assert!(without.matches(&view("/", &empty)));
    }

    #[test]
    fn header_ops_order() {
        let mut h = HeaderMap::new();
        h.insert("a", HeaderValue::from_static("old"));
        h.insert("b", HeaderValue::from_static("gone"));
        let ops = HeaderOps {
            remove: vec![HeaderName::from_static("b")],
            set: vec![(
                HeaderName::from_static("a"),
                HeaderValue::from_static("new"),
            )],
            add: vec![(
                HeaderName::from_static("a"),
                HeaderValue::from_static("more"),
            )],
        };
        ops.apply(&mut h);
        let a: Vec<_> = h.get_all("a").iter().collect();
        assert_eq!(a, ["new", "more"]);
        assert!(!h.contains_key("b"));
    }
}
