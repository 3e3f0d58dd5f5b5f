//! Compiled HTTP routes and their selection: pure functions over data.
//!
//! `http[]` is ordered and the first match wins; entries of `match[]` are
//! ORed, fields inside one are ANDed. Several VirtualServices for one host
//! are merged in creation order, the most specific host winning. The typed
//! pieces (matchers, header operations, redirects) come checked from
//! `config::checked::route`; the data plane uses them through this module
//! and never sees the serde model.

use std::sync::Arc;
use std::time::Duration;

pub use crate::config::checked::cors::Cors;
pub use crate::config::checked::fault::{Abort, AbortWith, Delay, Fault, Share};
pub use crate::config::checked::retry::{NoAnswer, Outcome, RetryOn, RetryPolicy};
pub use crate::config::checked::route::{
    DirectResponse, HeaderOps, Matcher, Redirect, RequestView, Rewrite, RouteMatch, Scheme,
    UriMatch,
};
use crate::config::host;
use crate::upstream::Upstream;

/// A destination with its weight.
#[derive(Debug, Clone)]
pub struct WeightedUpstream {
    pub upstream: Arc<Upstream>,
    pub weight: u32,
    /// The destination's own `headers`, applied before the route's.
    pub headers: Option<Arc<crate::config::checked::route::DestinationHeaders>>,
}

/// What a matched route does.
#[derive(Debug, Clone)]
pub enum Action {
    Forward(Vec<WeightedUpstream>),
    Redirect(Redirect),
    Direct(DirectResponse),
}

/// Which `http[]` entry of which VirtualService a route is: what the
/// access log and the metrics name it by (config-controlled, so the
/// metrics' label values stay bounded).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RouteId {
    /// `namespace/name` of the VirtualService.
    pub virtual_service: Arc<str>,
    /// Its position in the VirtualService's `http[]`.
    pub index: usize,
    /// The entry's `name`, when it has one.
    pub name: Option<Arc<str>>,
}

impl std::fmt::Display for RouteId {
    /// `namespace/name/index`, or `namespace/name/route-name` when named.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}/{n}", self.virtual_service),
            None => write!(f, "{}/{}", self.virtual_service, self.index),
        }
    }
}

/// One compiled `http[]` entry.
#[derive(Debug, Clone)]
pub struct Route {
    pub id: Arc<RouteId>,
    pub name: Option<String>,
    pub matches: Vec<RouteMatch>,
    pub action: Action,
    pub timeout: Option<Duration>,
    pub rewrite: Rewrite,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    /// Injected before forwarding; `None` costs a request nothing.
    pub fault: Option<Fault>,
    /// Preflights answered, CORS headers added; `None` costs nothing.
    pub cors: Option<Cors>,
    /// `retries` (attempts > 0); `None`: one attempt, the body streamed.
    pub retries: Option<RetryPolicy>,
    /// Where copies of requests go (`mirror`, `mirrors`).
    pub mirrors: Vec<MirrorTarget>,
}

/// One mirror, resolved: its upstream and the share of requests copied
/// to it, in millionths.
#[derive(Debug, Clone)]
pub struct MirrorTarget {
    pub upstream: Arc<Upstream>,
    pub millionths: u32,
}

impl Route {
    /// Whether the body must be held to be sent more than once (retries
    /// or mirrors): only then is a small body buffered.
    pub fn replays(&self) -> bool {
        self.retries.is_some() || !self.mirrors.is_empty()
    }

    pub fn matches(&self, r: &RequestView<'_>) -> bool {
        self.matches.is_empty() || self.matches.iter().any(|m| m.matches(r))
    }

    /// The path sent upstream: with `rewrite.uriRegexRewrite`, every match
    /// replaced (Envoy's `regex_rewrite`); with `rewrite.uri`, the part a
    /// matching prefix covered is replaced (Envoy's `prefix_rewrite`), else
    /// the whole path is.
    pub fn upstream_path(&self, path: &str) -> String {
        if let Some((re, with)) = &self.rewrite.uri_regex {
            return re.replace_all(path, with.as_str()).into_owned();
        }
        let Some(rw) = &self.rewrite.uri else {
            return path.to_owned();
        };
        let rest = self
            .matches
            .iter()
            .find_map(|m| m.uri.as_ref().and_then(|u| u.prefix_rest(path)));
        match rest {
            Some(rest) => format!("{rw}{rest}"),
            None => rw.clone(),
        }
    }
}

/// Picks a destination by weight; `n` is a uniform random number. Weights
/// were checked to add up to at most `u32::MAX`; the sum is taken in `u64`
/// all the same, so no input can overflow it.
pub fn pick_weighted(dests: &[WeightedUpstream], n: u32) -> Option<&WeightedUpstream> {
    if dests.len() <= 1 {
        return dests.first();
    }
    let total: u64 = dests.iter().map(|d| u64::from(d.weight)).sum();
    if total == 0 {
        return dests.first();
    }
    let mut n = u64::from(n) % total;
    for d in dests {
        if n < u64::from(d.weight) {
            return Some(d);
        }
        n -= u64::from(d.weight);
    }
    dests.last()
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
impl Route {
    /// A route named `name` that answers 200 with no body, for tests of
    /// route selection and of the path a route sees.
    pub(crate) fn answering_ok(name: &str, matches: Vec<RouteMatch>) -> Route {
        Route {
            id: Arc::default(),
            name: Some(name.into()),
            matches,
            action: Action::Direct(DirectResponse {
                status: http::StatusCode::OK,
                body: bytes::Bytes::new(),
            }),
            timeout: None,
            rewrite: Rewrite::default(),
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
            fault: None,
            cors: None,
            retries: None,
            mirrors: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Endpoints;

    fn route(name: &str, matches: Vec<RouteMatch>) -> Route {
        Route::answering_ok(name, matches)
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

    fn uri(matcher: Matcher) -> Option<UriMatch> {
        Some(UriMatch {
            matcher,
            ignore_case: false,
        })
    }

    #[test]
    fn first_match_wins_and_fields_are_anded() {
        let exact_root = RouteMatch {
            uri: uri(Matcher::Exact("/".into())),
            ..Default::default()
        };
        let api_post = RouteMatch {
            uri: uri(Matcher::Prefix("/api".into())),
            method: Some(Matcher::Exact("POST".into())),
            ..Default::default()
        };
        let api = RouteMatch {
            uri: uri(Matcher::regex("/api/v[0-9]+").unwrap()),
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
    fn rewrite_replaces_the_matched_prefix() {
        let mut r = route(
            "shop",
            vec![RouteMatch {
                uri: Some(UriMatch {
                    matcher: Matcher::Prefix("/shop".into()),
                    ignore_case: true,
                }),
                ..Default::default()
            }],
        );
        assert_eq!(r.upstream_path("/SHOP/a"), "/SHOP/a");
        r.rewrite.uri = Some("/store".into());
        assert_eq!(r.upstream_path("/SHOP/a"), "/store/a");
        assert_eq!(r.upstream_path("/shop"), "/store");
    }

    #[test]
    fn weights_never_overflow() {
        let up = |w: u32| WeightedUpstream {
            upstream: Arc::new(Upstream::new("h".into(), 80, Endpoints::Static(vec![]))),
            weight: w,
            headers: None,
        };
        let dests = [up(u32::MAX), up(u32::MAX), up(0)];
        assert!(pick_weighted(&dests, u32::MAX).is_some());
        let split = [up(1), up(3)];
        let picks: Vec<u32> = (0..4)
            .map(|n| pick_weighted(&split, n).map_or(9, |d| d.weight))
            .collect();
        assert_eq!(picks, [1, 3, 3, 3]);
        let zero = [up(0), up(7)];
        assert_eq!(pick_weighted(&zero, 0).map(|d| d.weight), Some(7));
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

#[cfg(test)]
#[path = "routes_prop.rs"]
mod prop;
