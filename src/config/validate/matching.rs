//! Rules for `http[].match[]`, producing the compiled matchers: each regex
//! is compiled here, once, and header names are built here.

use http::HeaderName;

use super::super::checked::route::{Matcher, RouteMatch, UriMatch};
use super::super::error::{FieldErrors, one_line};
use super::super::meta::is_dns1123_label;
use super::super::virtual_service::{HeaderMatch, HttpMatchRequest, StringMatch};
use super::destination::gateway_ref;
use super::port;

/// Longest regex Istio accepts (Envoy's program size, approximated by length).
const MAX_REGEX: usize = 1024;

/// A string match: a valid, non-empty regex; a non-empty prefix unless
/// `empty_prefix` (only the URI may match every path with `prefix: ""`).
fn string_match(
    sm: &StringMatch,
    p: String,
    empty_prefix: bool,
    e: &mut FieldErrors,
) -> Option<Matcher> {
    match sm {
        StringMatch::Regex(re) if re.is_empty() => e.push(p, "a regex match cannot be empty"),
        StringMatch::Regex(re) if re.len() > MAX_REGEX => {
            e.push(p, "a regex is at most 1024 characters long");
        }
        StringMatch::Regex(re) => match Matcher::regex(re) {
            Ok(m) => return Some(m),
            Err(err) => e.push(p, format!("invalid regex: {}", one_line(&err.to_string()))),
        },
        StringMatch::Prefix(s) if s.is_empty() && !empty_prefix => {
            e.push(p, "a prefix match cannot be empty");
        }
        StringMatch::Prefix(s) => return Some(Matcher::Prefix(s.clone())),
        StringMatch::Exact(s) => return Some(Matcher::Exact(s.clone())),
    }
    None
}

/// The URI match; with `ignoreUriCase`, exact and prefix strings are kept
/// lower-case (a regex keeps its case, as in Istio).
fn uri_match(m: &HttpMatchRequest, p: &str, e: &mut FieldErrors) -> Option<Option<UriMatch>> {
    let Some(sm) = &m.uri else {
        return Some(None);
    };
    let matcher = string_match(sm, format!("{p}.uri"), true, e)?;
    let matcher = match matcher {
        Matcher::Exact(s) if m.ignore_uri_case => Matcher::Exact(s.to_ascii_lowercase()),
        Matcher::Prefix(s) if m.ignore_uri_case => Matcher::Prefix(s.to_ascii_lowercase()),
        other => other,
    };
    Some(Some(UriMatch {
        matcher,
        ignore_case: m.ignore_uri_case,
    }))
}

fn header_name(k: &str, p: String, e: &mut FieldErrors) -> Option<HeaderName> {
    match HeaderName::from_bytes(k.as_bytes()) {
        Ok(n) if !k.is_empty() => Some(n),
        _ => {
            e.push(p, format!("{k:?} is not a header name"));
            None
        }
    }
}

/// `headers` or `withoutHeaders`. `{}` asks whether the header is present;
/// so does `regex: "*"` under `withoutHeaders`, where Istio reads it as
/// presence, not as an RE2 regex.
fn header_matches(
    map: &std::collections::BTreeMap<String, HeaderMatch>,
    group: &str,
    p: &str,
    e: &mut FieldErrors,
) -> Option<Vec<(HeaderName, Matcher)>> {
    let before = e.0.len();
    let mut out = Vec::new();
    for (k, sm) in map {
        let path = format!("{p}.{group}.{k}");
        let name = header_name(k, path.clone(), e);
        let m = match sm {
            HeaderMatch::Present => Some(Matcher::Present),
            HeaderMatch::Match(StringMatch::Regex(r)) if r == "*" && group == "withoutHeaders" => {
                Some(Matcher::Present)
            }
            HeaderMatch::Match(sm) => string_match(sm, path, false, e),
        };
        if let (Some(n), Some(m)) = (name, m) {
            out.push((n, m));
        }
    }
    (e.0.len() == before).then_some(out)
}

pub(super) fn http_match(m: &HttpMatchRequest, p: &str, e: &mut FieldErrors) -> Option<RouteMatch> {
    let before = e.0.len();
    let uri = uri_match(m, p, e);
    let mut one = |sm: &Option<StringMatch>, name: &str| {
        sm.as_ref()
            .and_then(|sm| string_match(sm, format!("{p}.{name}"), false, e))
    };
    let (scheme, method, authority) = (
        one(&m.scheme, "scheme"),
        one(&m.method, "method"),
        one(&m.authority, "authority"),
    );
    let headers = header_matches(&m.headers, "headers", p, e);
    let without_headers = header_matches(&m.without_headers, "withoutHeaders", p, e);
    let mut query_params = Vec::new();
    for (k, sm) in &m.query_params {
        if let Some(matcher) = string_match(sm, format!("{p}.queryParams.{k}"), false, e) {
            query_params.push((k.clone(), matcher));
        }
    }
    let port = m.port.and_then(|n| port(n, format!("{p}.port"), e));
    for (i, g) in m.gateways.iter().enumerate() {
        gateway_ref(g, &format!("{p}.gateways[{i}]"), e);
    }
    if let Some(ns) = &m.source_namespace
        && !is_dns1123_label(ns)
    {
        e.push(
            format!("{p}.sourceNamespace"),
            format!("{ns:?} is not a namespace"),
        );
    }
    if e.0.len() != before {
        return None;
    }
    Some(RouteMatch {
        uri: uri?,
        scheme,
        method,
        authority,
        headers: headers?,
        without_headers: without_headers?,
        query_params,
        port,
        source: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_only_under_without_headers() {
        let star = || {
            [(
                "x-canary".to_owned(),
                HeaderMatch::Match(StringMatch::Regex("*".into())),
            )]
            .into()
        };
        let mut e = FieldErrors::default();
        let m = http_match(
            &HttpMatchRequest {
                without_headers: star(),
                ..Default::default()
            },
            "m",
            &mut e,
        )
        .unwrap();
        assert!(matches!(m.without_headers[0].1, Matcher::Present));
        let mut e = FieldErrors::default();
        let m = http_match(
            &HttpMatchRequest {
                headers: star(),
                ..Default::default()
            },
            "m",
            &mut e,
        );
        assert!(m.is_none());
        assert_eq!(e.0[0].0, "m.headers.x-canary");
        let mut e = FieldErrors::default();
        let present = || [("x-canary".to_owned(), HeaderMatch::Present)].into();
        let m = http_match(
            &HttpMatchRequest {
                headers: present(),
                without_headers: present(),
                ..Default::default()
            },
            "m",
            &mut e,
        )
        .unwrap();
        assert!(matches!(m.headers[0].1, Matcher::Present));
        assert!(matches!(m.without_headers[0].1, Matcher::Present));
    }

    #[test]
    fn header_match_yaml_forms() {
        let parse = |json: &str| serde_json::from_str::<HeaderMatch>(json);
        assert_eq!(parse("{}").unwrap(), HeaderMatch::Present);
        assert_eq!(
            parse(r#"{"exact":"a"}"#).unwrap(),
            HeaderMatch::Match(StringMatch::Exact("a".into()))
        );
        assert!(parse(r#"{"exct":"a"}"#).is_err());
        assert!(parse(r#"{"exact":"a","prefix":"b"}"#).is_err());
        assert_eq!(serde_json::to_string(&HeaderMatch::Present).unwrap(), "{}");
    }

    #[test]
    fn ignore_uri_case_lowers_exact_and_prefix_only() {
        let mut e = FieldErrors::default();
        let m = http_match(
            &HttpMatchRequest {
                uri: Some(StringMatch::Prefix("/Shop".into())),
                ignore_uri_case: true,
                ..Default::default()
            },
            "m",
            &mut e,
        )
        .unwrap();
        let uri = m.uri.unwrap();
        assert!(matches!(&uri.matcher, Matcher::Prefix(s) if s == "/shop"));
        assert!(uri.matches("/SHOP/x"));
    }
}
