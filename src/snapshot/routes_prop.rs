//! Properties of route selection, checked against a reference model of
//! Istio's `http[]` rules written plainly: the first route with a matching
//! `match[]` entry (or none) wins; entries are ORed, their fields ANDed;
//! exact, prefix and full-match regex on strings; `ignoreUriCase` folds
//! ASCII case for exact and prefix URIs only; headers match if any of their
//! values (visible ASCII) does; query parameters are `&`-separated
//! `key=value` pairs. And of host selection: the most specific host wins
//! and ties merge in creation order.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

use super::{
    Matcher, RequestView, Route, RouteMatch, UriMatch, VirtualHost, WeightedUpstream,
    pick_weighted, routes_for, select,
};
use crate::upstream::Endpoints;

/// A string matcher and what it means, side by side: regexes are built
/// from literals so the model knows what they must match.
#[derive(Debug, Clone)]
enum Spec {
    Exact(String),
    Prefix(String),
    /// `^(?:literal)$`: the same as `Exact`, unless anchoring is wrong.
    RegexExact(String),
    /// `literal.*`: the same as `Prefix`.
    RegexPrefix(String),
    Present,
}

impl Spec {
    fn matcher(&self) -> Matcher {
        let regex = |p: String| Matcher::regex(&p).unwrap_or(Matcher::Present);
        match self {
            Spec::Exact(s) => Matcher::Exact(s.clone()),
            Spec::Prefix(s) => Matcher::Prefix(s.clone()),
            Spec::RegexExact(s) => regex(regex::escape(s)),
            Spec::RegexPrefix(s) => regex(format!("{}.*", regex::escape(s))),
            Spec::Present => Matcher::Present,
        }
    }

    /// The model; `fold`: ASCII case is ignored (exact and prefix only).
    fn holds(&self, value: &str, fold: bool) -> bool {
        let (v, low) = (value.to_ascii_lowercase(), fold);
        match self {
            Spec::Exact(s) if low => v == *s,
            Spec::Prefix(s) if low => v.starts_with(s.as_str()),
            Spec::Exact(s) | Spec::RegexExact(s) => value == s,
            Spec::Prefix(s) | Spec::RegexPrefix(s) => value.starts_with(s.as_str()),
            Spec::Present => true,
        }
    }
}

/// Text over a few characters (`.` to catch an unescaped regex, `é` to
/// put a multi-byte character where a prefix ends).
fn text(chars: &'static str, max: usize) -> impl Strategy<Value = String> {
    let set: Vec<char> = chars.chars().collect();
    prop::collection::vec(prop::sample::select(set), 0..max).prop_map(|c| c.into_iter().collect())
}

fn spec(chars: &'static str) -> impl Strategy<Value = Spec> {
    prop_oneof![
        text(chars, 4).prop_map(Spec::Exact),
        text(chars, 3).prop_map(Spec::Prefix),
        text(chars, 4).prop_map(Spec::RegexExact),
        text(chars, 3).prop_map(Spec::RegexPrefix),
        Just(Spec::Present),
    ]
}

const PATH: &str = "/aAb.é";
const HEADERS: [&str; 3] = ["x-team", "x-env", "cookie"];
const VALUE: &str = "uxUX.";

/// One `match[]` entry, as specs.
#[derive(Debug, Clone)]
struct MatchSpec {
    uri: Option<(Spec, bool)>,
    method: Option<Spec>,
    authority: Option<Spec>,
    headers: Vec<(usize, Spec)>,
    without: Vec<(usize, Spec)>,
    query: Vec<(String, Spec)>,
    port: Option<u16>,
}

fn match_spec() -> impl Strategy<Value = MatchSpec> {
    let uri = (spec(PATH), any::<bool>()).prop_map(|(s, fold)| {
        // Validation stores exact and prefix strings lower-case with ignoreUriCase.
        let s = match s {
            Spec::Exact(v) if fold => Spec::Exact(v.to_ascii_lowercase()),
            Spec::Prefix(v) if fold => Spec::Prefix(v.to_ascii_lowercase()),
            s => s,
        };
        (s, fold)
    });
    let header = || (0..HEADERS.len(), spec(VALUE));
    (
        prop::option::of(uri),
        prop::option::of(spec("GETPOS")),
        prop::option::of(spec("ab.")),
        prop::collection::vec(header(), 0..2),
        prop::collection::vec(header(), 0..2),
        prop::collection::vec((text("ab", 2), spec("12x")), 0..2),
        prop::option::of(prop::sample::select(vec![443u16, 8443])),
    )
        .prop_map(
            |(uri, method, authority, headers, without, query, port)| MatchSpec {
                uri,
                method,
                authority,
                headers,
                without,
                query,
                port,
            },
        )
}

impl MatchSpec {
    fn build(&self) -> RouteMatch {
        let name = |i: usize| HeaderName::from_static(HEADERS[i % HEADERS.len()]);
        RouteMatch {
            uri: self.uri.as_ref().map(|(s, fold)| UriMatch {
                matcher: s.matcher(),
                ignore_case: *fold,
            }),
            scheme: None,
            method: self.method.as_ref().map(Spec::matcher),
            authority: self.authority.as_ref().map(Spec::matcher),
            headers: self
                .headers
                .iter()
                .map(|(i, s)| (name(*i), s.matcher()))
                .collect(),
            without_headers: self
                .without
                .iter()
                .map(|(i, s)| (name(*i), s.matcher()))
                .collect(),
            query_params: self
                .query
                .iter()
                .map(|(k, s)| (k.clone(), s.matcher()))
                .collect(),
            port: self.port,
            source: Default::default(),
        }
    }

    fn holds(&self, r: &Req) -> bool {
        let header = |i: usize, s: &Spec| {
            r.headers.iter().any(|(j, v)| {
                *j == i % HEADERS.len()
                    && v.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
                    && s.holds(&String::from_utf8_lossy(v), false)
            })
        };
        let query = |k: &str, s: &Spec| {
            r.query.as_deref().is_some_and(|q| {
                q.split('&').any(|pair| match pair.find('=') {
                    Some(at) => pair[..at] == *k && s.holds(&pair[at + 1..], false),
                    None => pair == k && s.holds("", false),
                })
            })
        };
        self.uri
            .as_ref()
            .is_none_or(|(s, fold)| s.holds(&r.path, *fold))
            && self
                .method
                .as_ref()
                .is_none_or(|s| s.holds(&r.method, false))
            && self
                .authority
                .as_ref()
                .is_none_or(|s| s.holds(&r.authority, false))
            && self.port.is_none_or(|p| p == r.port)
            && self.headers.iter().all(|(i, s)| header(*i, s))
            && !self.without.iter().any(|(i, s)| header(*i, s))
            && self.query.iter().all(|(k, s)| query(k, s))
    }
}

/// A request as the model sees it.
#[derive(Debug, Clone)]
struct Req {
    path: String,
    query: Option<String>,
    method: String,
    authority: String,
    headers: Vec<(usize, Vec<u8>)>,
    port: u16,
}

fn req() -> impl Strategy<Value = Req> {
    // Header values: mostly the matchers' letters, sometimes obs-text.
    let value = prop::collection::vec(
        prop_oneof![9 => prop::sample::select(VALUE.as_bytes().to_vec()), 1 => Just(0xe9u8)],
        0..4,
    );
    (
        text(PATH, 6),
        prop::option::of(text("ab=&12x", 8)),
        text("GETPOS", 4),
        text("ab.", 4),
        prop::collection::vec((0..HEADERS.len(), value), 0..4),
        prop::sample::select(vec![443u16, 8443]),
    )
        .prop_map(|(path, query, method, authority, headers, port)| Req {
            path,
            query,
            method,
            authority,
            headers,
            port,
        })
}

fn route(name: String, matches: Vec<RouteMatch>) -> Route {
    Route::answering_ok(&name, matches)
}

proptest! {
    #[test]
    fn prop_select_is_the_first_matching_route_of_the_model(
        specs in prop::collection::vec(prop::collection::vec(match_spec(), 0..3), 0..5),
        requests in prop::collection::vec(req(), 1..6),
    ) {
        let routes: Vec<Route> = specs
            .iter()
            .enumerate()
            .map(|(i, ms)| route(i.to_string(), ms.iter().map(MatchSpec::build).collect()))
            .collect();
        let refs: Vec<&Route> = routes.iter().collect();
        for r in &requests {
            let mut headers = HeaderMap::new();
            for (i, v) in &r.headers {
                let v = HeaderValue::from_bytes(v).unwrap_or(HeaderValue::from_static(""));
                headers.append(HeaderName::from_static(HEADERS[*i]), v);
            }
            let view = RequestView {
                path: &r.path,
                query: r.query.as_deref(),
                method: &r.method,
                scheme: "https",
                authority: &r.authority,
                headers: &headers,
                port: r.port,
            };
            let got = select(&refs, &view).and_then(|route| route.name.clone());
            let want = specs
                .iter()
                .position(|ms| ms.is_empty() || ms.iter().any(|m| m.holds(r)))
                .map(|i| i.to_string());
            prop_assert_eq!(got, want, "{:?}", r);
        }
    }

    /// The most specific host pattern wins (exact, then the longest
    /// `*.suffix`, then `*`); every VirtualService tied at that level
    /// contributes its routes, in creation order.
    #[test]
    fn prop_routes_for_takes_the_most_specific_hosts_in_order(
        vhosts in prop::collection::vec(
            prop::collection::vec(host_pattern(), 1..3), 0..6),
        name in host_name(),
    ) {
        let vh: Vec<VirtualHost> = vhosts
            .iter()
            .enumerate()
            .map(|(i, hosts)| VirtualHost {
                hosts: hosts.clone(),
                routes: vec![route(format!("{i}a"), vec![]), route(format!("{i}b"), vec![])],
            })
            .collect();
        let got: Vec<String> =
            routes_for(&vh, &name).iter().filter_map(|r| r.name.clone()).collect();
        let rank = |hosts: &Vec<String>| hosts.iter().filter_map(|h| specificity(h, &name)).max();
        let best = vhosts.iter().filter_map(rank).max();
        let want: Vec<String> = vhosts
            .iter()
            .enumerate()
            .filter(|(_, hosts)| best.is_some() && rank(hosts) == best)
            .flat_map(|(i, _)| [format!("{i}a"), format!("{i}b")])
            .collect();
        prop_assert_eq!(got, want);
    }

    /// Over `n` in `0..total`, each destination is picked exactly its
    /// weight's number of times; no input panics or picks nothing.
    #[test]
    fn prop_pick_weighted_gives_each_destination_its_share(
        weights in prop::collection::vec(0u32..6, 1..5),
        big in prop::collection::vec(any::<u32>(), 1..4),
        n in any::<u32>(),
    ) {
        let dests: Vec<WeightedUpstream> = weights.iter().map(|w| upstream(*w)).collect();
        let total: u32 = weights.iter().sum();
        if dests.len() > 1 && total > 0 {
            let mut seen = vec![0u32; dests.len()];
            for k in 0..total {
                let pick = pick_weighted(&dests, k).map(|d| Arc::as_ptr(&d.upstream));
                let at = dests.iter().position(|d| Some(Arc::as_ptr(&d.upstream)) == pick);
                prop_assert!(at.is_some());
                seen[at.unwrap_or(0)] += 1;
            }
            prop_assert_eq!(seen, weights);
        }
        let huge: Vec<WeightedUpstream> = big.iter().map(|w| upstream(*w)).collect();
        prop_assert!(pick_weighted(&huge, n).is_some());
    }
}

fn upstream(weight: u32) -> WeightedUpstream {
    WeightedUpstream {
        upstream: Arc::new(crate::upstream::Upstream::new(
            "h".into(),
            80,
            Endpoints::Static(vec![]),
        )),
        weight,
        headers: None,
    }
}

fn host_name() -> impl Strategy<Value = String> {
    let label = prop::sample::select(vec!["a", "b", "foo", "A"]);
    prop::collection::vec(label, 1..4).prop_map(|l| l.join("."))
}

fn host_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => host_name(),
        3 => host_name().prop_map(|n| format!("*.{n}")),
        1 => Just("*".to_owned()),
    ]
}

/// How specifically `pattern` names `name`, if it covers it: `*` least,
/// then wildcards by the length of their suffix, then an exact name.
fn specificity(pattern: &str, name: &str) -> Option<(u8, usize)> {
    let (p, n) = (pattern.to_ascii_lowercase(), name.to_ascii_lowercase());
    if p == "*" {
        return Some((0, 0));
    }
    if let Some(suffix) = p.strip_prefix("*.") {
        let head = n.strip_suffix(suffix)?.strip_suffix('.')?;
        return (!head.is_empty()).then_some((1, suffix.len()));
    }
    (p == n).then_some((2, 0))
}
