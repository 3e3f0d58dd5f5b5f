//! Rules for the parts of an http route that are checked but not yet
//! applied by gatehouse (fault, CORS): Istio refuses these
//! values, so `apply` does too, whatever is served.

use super::super::error::FieldErrors;
use super::super::virtual_service::{CorsPolicy, HttpRoute, StringMatch};
use super::{duration_ms, percentage};

const CORS_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

/// Fault and CORS of one route (retries and mirrors: `retries.rs`).
pub(super) fn policies(r: &HttpRoute, _namespace: &str, p: &str, e: &mut FieldErrors) {
    fault(r, p, e);
    if let Some(c) = &r.cors_policy {
        cors(c, &format!("{p}.corsPolicy"), e);
    }
}

fn fault(r: &HttpRoute, p: &str, e: &mut FieldErrors) {
    if let Some(f) = &r.fault {
        let fp = format!("{p}.fault");
        if f.abort.is_none() && f.delay.is_none() {
            e.push(&fp, "a fault needs abort, delay or both");
        }
        if let Some(a) = &f.abort
            && let Some(s) = a.http_status
            && !(200..=599).contains(&s)
        {
            e.push(
                format!("{fp}.abort.httpStatus"),
                format!("{s} is not an HTTP status (200-599)"),
            );
        }
        for (name, pct) in [
            (
                "delay",
                f.delay.as_ref().and_then(|d| d.percentage.as_ref()),
            ),
            (
                "abort",
                f.abort.as_ref().and_then(|a| a.percentage.as_ref()),
            ),
        ] {
            if let Some(pct) = pct {
                percentage(pct.value, format!("{fp}.{name}.percentage.value"), e);
            }
        }
        if let Some(d) = &f.delay {
            if let Some(t) = &d.fixed_delay {
                duration_ms(t, format!("{fp}.delay.fixedDelay"), e);
            }
            if let Some(pct) = d.percent
                && !(0..=100).contains(&pct)
            {
                e.push(
                    format!("{fp}.delay.percent"),
                    format!("percentage {pct} is not between 0 and 100"),
                );
            }
        }
    }
}

fn cors(c: &CorsPolicy, p: &str, e: &mut FieldErrors) {
    for (i, o) in c.allow_origins.iter().enumerate() {
        if let StringMatch::Regex(re) = o
            && re.is_empty()
        {
            e.push(
                format!("{p}.allowOrigins[{i}]"),
                "a regex match cannot be empty",
            );
        } else if let StringMatch::Regex(re) = o
            && let Err(err) = regex::Regex::new(re)
        {
            e.push(
                format!("{p}.allowOrigins[{i}]"),
                format!(
                    "invalid regex: {}",
                    super::super::error::one_line(&err.to_string())
                ),
            );
        }
        if matches!(o, StringMatch::Exact(s) | StringMatch::Prefix(s) if s.is_empty()) {
            e.push(
                format!("{p}.allowOrigins[{i}]"),
                "an origin match cannot be empty",
            );
        }
    }
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
    if let Some(age) = &c.max_age {
        let before = e.0.len();
        duration_ms(age, format!("{p}.maxAge"), e);
        if e.0.len() == before
            && super::super::duration::parse(age).is_some_and(|d| d.subsec_nanos() > 1)
        {
            e.push(format!("{p}.maxAge"), "maxAge is in whole seconds");
        }
    }
    if let Some(u) = &c.unmatched_preflights
        && !matches!(u.as_str(), "UNSPECIFIED" | "FORWARD" | "IGNORE")
    {
        e.push(
            format!("{p}.unmatchedPreflights"),
            format!("{u:?}: expected FORWARD or IGNORE"),
        );
    }
}
