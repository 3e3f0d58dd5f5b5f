//! Rules for a route's `corsPolicy`, producing its checked form
//! (`checked::cors::Cors`): origins as matchers (regexes compiled, full
//! match), methods from HTTP's list, header names, `maxAge` in whole
//! seconds, `unmatchedPreflights` FORWARD or IGNORE; the response header
//! values are built here, once.

use http::HeaderValue;

use super::super::checked::cors::Cors;
use super::super::checked::route::Matcher;
use super::super::error::{FieldErrors, one_line};
use super::super::virtual_service::{CorsPolicy, StringMatch};
use super::duration_ms;

const CORS_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

/// Checks `corsPolicy` at `p`; `Some` only when valid.
pub(super) fn cors(c: &CorsPolicy, p: &str, e: &mut FieldErrors) -> Option<Cors> {
    let before = e.0.len();
    let origins: Vec<_> = c
        .allow_origins
        .iter()
        .enumerate()
        .filter_map(|(i, o)| origin(o, format!("{p}.allowOrigins[{i}]"), e))
        .collect();
    for (i, m) in c.allow_methods.iter().enumerate() {
        if !CORS_METHODS.contains(&m.as_str()) {
            e.push(
                format!("{p}.allowMethods[{i}]"),
                format!("{m:?} is not an HTTP method ({})", CORS_METHODS.join(", ")),
            );
        }
    }
    for (field, names) in [
        ("allowHeaders", &c.allow_headers),
        ("exposeHeaders", &c.expose_headers),
    ] {
        for (i, n) in names.iter().enumerate() {
            if n != "*" && http::HeaderName::from_bytes(n.as_bytes()).is_err() {
                e.push(
                    format!("{p}.{field}[{i}]"),
                    format!("{n:?} is not a header name"),
                );
            }
        }
    }
    let max_age = c.max_age.as_ref().and_then(|age| max_age(age, p, e));
    let forward_unmatched_preflights = match c.unmatched_preflights.as_deref() {
        None | Some("UNSPECIFIED" | "FORWARD") => true,
        Some("IGNORE") => false,
        Some(u) => {
            e.push(
                format!("{p}.unmatchedPreflights"),
                format!("{u:?}: expected FORWARD or IGNORE"),
            );
            true
        }
    };
    if e.0.len() != before {
        return None;
    }
    Some(Cors {
        origins,
        allow_methods: joined(&c.allow_methods),
        allow_headers: joined(&c.allow_headers),
        expose_headers: joined(&c.expose_headers),
        max_age,
        allow_credentials: c.allow_credentials.unwrap_or(false),
        forward_unmatched_preflights,
    })
}

fn origin(o: &StringMatch, p: String, e: &mut FieldErrors) -> Option<Matcher> {
    match o {
        StringMatch::Exact(s) | StringMatch::Prefix(s) if s.is_empty() => {
            e.push(p, "an origin match cannot be empty");
            None
        }
        StringMatch::Exact(s) if s == "*" => Some(Matcher::Present),
        StringMatch::Exact(s) => Some(Matcher::Exact(s.clone())),
        StringMatch::Prefix(s) => Some(Matcher::Prefix(s.clone())),
        StringMatch::Regex(re) if re.is_empty() => {
            e.push(p, "a regex match cannot be empty");
            None
        }
        StringMatch::Regex(re) => match Matcher::regex(re) {
            Ok(m) => Some(m),
            Err(err) => {
                e.push(p, format!("invalid regex: {}", one_line(&err.to_string())));
                None
            }
        },
    }
}

/// `maxAge` as the header's whole seconds.
fn max_age(age: &str, p: &str, e: &mut FieldErrors) -> Option<HeaderValue> {
    let d = duration_ms(age, format!("{p}.maxAge"), e)?;
    if d.subsec_nanos() != 0 {
        e.push(format!("{p}.maxAge"), "maxAge is in whole seconds");
        return None;
    }
    Some(HeaderValue::from(d.as_secs()))
}

/// A list as one header value, joined by `,` (as Istio joins it); every
/// item was checked to be a method or header name, so the value is valid.
fn joined(items: &[String]) -> Option<HeaderValue> {
    if items.is_empty() {
        return None;
    }
    HeaderValue::from_str(&items.join(",")).ok()
}
