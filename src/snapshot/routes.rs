//! Compiled HTTP routes and their matching: pure functions over data.
//!
//! `http[]` is ordered and the first match wins; entries of `match[]` are
//! ORed, fields inside one are ANDed. Several VirtualServices for one host
//! are merged in creation order, the most specific host winning.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use crate::config::host;
use crate::config::virtual_service::{HeaderOperations, HttpMatchRequest, StringMatch};
use crate::upstream::Upstream;

/// One string matcher; regexes are anchored (RE2 full match, as Istio).
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Prefix(String),
    Regex(regex::Regex),
}

impl Matcher {
    pub fn compile(m: &StringMatch, ignore_case: bool) -> Result<Matcher, regex::Error> {
        Ok(match m {
            StringMatch::Exact(s) if ignore_case => Matcher::Exact(s.to_ascii_lowercase()),
            StringMatch::Exact(s) => Matcher::Exact(s.clone()),
            StringMatch::Prefix(s) if ignore_case => Matcher::Prefix(s.to_ascii_lowercase()),
            StringMatch::Prefix(s) => Matcher::Prefix(s.clone()),
            StringMatch::Regex(r) => {
                let flags = if ignore_case { "(?i)" } else { "" };
                Matcher::Regex(regex::Regex::new(&format!("{flags}^(?:{r})$"))?)
            }
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(s) => value == s,
            Matcher::Prefix(s) => value.starts_with(s.as_str()),
            Matcher::Regex(r) => r.is_match(value),
        }
    }
}

/// One entry of `match[]`.
#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    pub uri: Option<Matcher>,
    pub ignore_uri_case: bool,
    pub scheme: Option<Matcher>,
    pub method: Option<Matcher>,
    pub authority: Option<Matcher>,
    pub headers: Vec<(HeaderName, Matcher)>,
    pub without_headers: Vec<(HeaderName, Matcher)>,
    pub query_params: Vec<(String, Matcher)>,
    pub port: Option<u16>,
}

/// What a matcher looks at: the request as seen by the gateway.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a str,
    pub scheme: &'a str,
    pub authority: &'a str,
    pub headers: &'a http::HeaderMap,
    pub port: u16,
}

impl RouteMatch {
    pub fn compile(m: &HttpMatchRequest) -> Result<RouteMatch, regex::Error> {
        let one = |sm: &Option<StringMatch>, ic: bool| {
            sm.as_ref().map(|s| Matcher::compile(s, ic)).transpose()
        };
        let headers = |map: &std::collections::BTreeMap<String, StringMatch>| {
            map.iter()
                .filter_map(|(k, v)| {
                    HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
                        .ok()
                        .map(|h| Matcher::compile(v, false).map(|m| (h, m)))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(RouteMatch {
            uri: one(&m.uri, m.ignore_uri_case)?,
            ignore_uri_case: m.ignore_uri_case,
            scheme: one(&m.scheme, false)?,
            method: one(&m.method, false)?,
            authority: one(&m.authority, false)?,
            headers: headers(&m.headers)?,
            without_headers: headers(&m.without_headers)?,
            query_params: m
                .query_params
                .iter()
                .map(|(k, v)| Matcher::compile(v, false).map(|m| (k.clone(), m)))
                .collect::<Result<_, _>>()?,
            port: m.port.and_then(|p| u16::try_from(p).ok()),
        })
    }

    pub fn matches(&self, r: &RequestView<'_>) -> bool {
        if let Some(m) = &self.uri {
            let ok = if self.ignore_uri_case {
                m.matches(&r.path.to_ascii_lowercase())
            } else {
                m.matches(r.path)
            };
            if !ok {
                return false;
            }
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
        for (name, m) in &self.headers {
            let ok = r
                .headers
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| m.matches(v)));
            if !ok {
                return false;
            }
        }
        for (name, m) in &self.without_headers {
            let present = r
                .headers
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| m.matches(v)));
            if present {
                return false;
            }
        }
        for (name, m) in &self.query_params {
            let ok = r.query.is_some_and(|q| {
                q.split('&').any(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    k == name && m.matches(v)
                })
            });
            if !ok {
                return false;
            }
        }
        true
    }
}

/// A destination with its weight.
#[derive(Debug, Clone)]
pub struct WeightedUpstream {
    pub upstream: Arc<Upstream>,
    pub weight: u32,
}

/// What a matched route does.
#[derive(Debug, Clone)]
pub enum Action {
    Forward(Vec<WeightedUpstream>),
    Redirect {
        uri: Option<String>,
        authority: Option<String>,
        scheme: Option<String>,
        port: Option<u16>,
        code: u16,
    },
    Direct {
        status: u16,
        body: bytes::Bytes,
    },
}

/// One compiled `http[]` entry.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: Option<String>,
    pub matches: Vec<RouteMatch>,
    pub action: Action,
    pub timeout: Option<Duration>,
    pub rewrite_uri: Option<String>,
    pub rewrite_authority: Option<String>,
    pub request_headers: Option<HeaderOperations>,
    pub response_headers: Option<HeaderOperations>,
}

impl Route {
    pub fn matches(&self, r: &RequestView<'_>) -> bool {
        self.matches.is_empty() || self.matches.iter().any(|m| m.matches(r))
    }
}

/// The routes one VirtualService gives one server.
#[derive(Debug, Clone)]
pub struct VirtualHost {
    /// The VirtualService's hosts that intersect the server's.
    pub hosts: Vec<String>,
    pub routes: Vec<Route>,
}

/// Picks the routes for `host`: VirtualServices naming it exactly win over
/// wildcards, longer wildcards over shorter; ties merge in creation order.
pub fn routes_for<'a>(vhosts: &'a [VirtualHost], host_name: &str) -> Vec<&'a Route> {
    let score = |pattern: &str| -> Option<usize> {
        if !host::matches(pattern, host_name) {
            return None;
        }
        Some(if pattern.starts_with('*') {
            pattern.len()
        } else {
            usize::MAX
        })
    };
    let best = vhosts
        .iter()
        .filter_map(|v| v.hosts.iter().filter_map(|h| score(h)).max())
        .max();
    let Some(best) = best else {
        return Vec::new();
    };
    vhosts
        .iter()
        .filter(|v| v.hosts.iter().filter_map(|h| score(h)).max() == Some(best))
        .flat_map(|v| v.routes.iter())
        .collect()
}

/// The first route that matches, in order.
pub fn select<'a>(routes: &[&'a Route], r: &RequestView<'_>) -> Option<&'a Route> {
    routes.iter().copied().find(|route| route.matches(r))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn route(name: &str, matches: Vec<RouteMatch>) -> Route {
        Route {
            name: Some(name.into()),
            matches,
            action: Action::Direct {
                status: 200,
                body: bytes::Bytes::new(),
            },
            timeout: None,
            rewrite_uri: None,
            rewrite_authority: None,
            request_headers: None,
            response_headers: None,
        }
    }

    fn view<'a>(path: &'a str, headers: &'a http::HeaderMap) -> RequestView<'a> {
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
    fn first_match_wins_and_fields_are_anded() {
        let exact_root = RouteMatch {
            uri: Some(Matcher::Exact("/".into())),
            ..Default::default()
        };
        let api_post = RouteMatch {
            uri: Some(Matcher::Prefix("/api".into())),
            method: Some(Matcher::Exact("POST".into())),
            ..Default::default()
        };
        let api = RouteMatch {
            uri: Some(Matcher::Regex(
                regex::Regex::new("^(?:/api/v[0-9]+)$").unwrap(),
            )),
            ..Default::default()
        };
        let routes = [
            route("root", vec![exact_root]),
            route("post", vec![api_post]),
            route("api", vec![api]),
        ];
        let refs: Vec<&Route> = routes.iter().collect();
        let h = http::HeaderMap::new();
        let cases = [
            ("/", Some("root")),
            ("/x", None),
            ("/api/v1", Some("api")),
            ("/api/v1/x", None),
            ("/api", None),
        ];
        for (path, want) in cases {
            let got = select(&refs, &view(path, &h)).and_then(|r| r.name.as_deref());
            assert_eq!(got, want, "{path}");
        }
    }

    #[test]
    fn headers_query_and_case() {
        let mut h = http::HeaderMap::new();
        h.insert("x-team", http::HeaderValue::from_static("ux"));
        let m = RouteMatch::compile(&HttpMatchRequest {
            uri: Some(StringMatch::Prefix("/Shop".into())),
            ignore_uri_case: true,
            headers: [("x-team".to_owned(), StringMatch::Exact("ux".into()))].into(),
            query_params: [("b".to_owned(), StringMatch::Exact("two".into()))].into(),
            ..Default::default()
        });
        let m = m.unwrap();
        assert!(m.matches(&view("/shop/cart", &h)));
        assert!(m.matches(&view("/SHOP", &h)));
        assert!(!m.matches(&view("/other", &h)));
        let empty = http::HeaderMap::new();
        assert!(!m.matches(&view("/shop", &empty)));
        let without = RouteMatch::compile(&HttpMatchRequest {
            without_headers: [("x-team".to_owned(), StringMatch::Prefix("u".into()))].into(),
            ..Default::default()
        });
        let without = without.unwrap();
        assert!(!without.matches(&view("/", &h)));
        assert!(without.matches(&view("/", &empty)));
    }

    #[test]
    fn most_specific_host_wins_and_merges() {
        let vh = |hosts: &[&str], name: &str| VirtualHost {
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            routes: vec![route(name, vec![])],
        };
        let v = vec![
            vh(&["*.foocorp.com"], "wild"),
            vh(&["frontend.foocorp.com"], "exact1"),
            vh(&["frontend.foocorp.com"], "exact2"),
        ];
        let names = |host: &str| -> Vec<String> {
            routes_for(&v, host)
                .iter()
                .filter_map(|r| r.name.clone())
                .collect()
        };
        assert_eq!(names("frontend.foocorp.com"), ["exact1", "exact2"]);
        assert_eq!(names("inventory.foocorp.com"), ["wild"]);
        assert!(names("other.com").is_empty());
    }
}
