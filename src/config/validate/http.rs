//! Rules for a VirtualService's http routes: matches, destinations,
//! redirects, rewrites, retries, faults, headers and CORS.

use super::super::error::{FieldErrors, one_line};
use super::super::meta::is_dns1123_label;
use super::super::virtual_service::{
    CorsPolicy, Headers, HttpMatchRequest, HttpRoute, StringMatch,
};
use super::virtual_service::{all_zero, destination, gateway_ref, weight};
use super::{duration_ms, percentage, port_number};

/// Envoy's retry policies (`x-envoy-retry-on`, `x-envoy-retry-grpc-on`), as Istio lists them.
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

const CORS_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

/// Largest `directResponse` body Istio accepts.
const MAX_DIRECT_BODY: usize = 1024 * 1024;

pub(super) fn http_route(r: &HttpRoute, p: &str, e: &mut FieldErrors) {
    let actions = [
        !r.route.is_empty(),
        r.redirect.is_some(),
        r.direct_response.is_some(),
    ];
    match actions.iter().filter(|a| **a).count() {
        0 => e.push(p, "an http route needs route, redirect or directResponse"),
        1 => {}
        _ => e.push(
            p,
            "route, redirect and directResponse exclude each other: use one",
        ),
    }
    if r.redirect.is_some() || r.direct_response.is_some() {
        let what = if r.redirect.is_some() {
            "redirect"
        } else {
            "directResponse"
        };
        if r.rewrite.is_some() {
            e.push(
                format!("{p}.rewrite"),
                format!("rewrite is not allowed with {what}"),
            );
        }
        if r.fault.is_some() {
            e.push(
                format!("{p}.fault"),
                format!("fault is not allowed with {what}"),
            );
        }
    }
    for (i, m) in r.matches.iter().enumerate() {
        http_match(m, &format!("{p}.match[{i}]"), e);
    }
    for (i, d) in r.route.iter().enumerate() {
        destination(&d.destination, &format!("{p}.route[{i}].destination"), e);
        weight(d.weight, &format!("{p}.route[{i}].weight"), e);
        if let Some(h) = &d.headers {
            headers(h, &format!("{p}.route[{i}].headers"), e);
        }
    }
    all_zero(r.route.iter().map(|d| d.weight), &format!("{p}.route"), e);
    if let Some(t) = &r.timeout {
        duration_ms(t, format!("{p}.timeout"), e);
    }
    if let Some(retry) = &r.retries {
        let rp = format!("{p}.retries");
        if retry.attempts < 0 {
            e.push(format!("{rp}.attempts"), "attempts is negative");
        }
        if retry.attempts == 0
            && (retry.per_try_timeout.is_some()
                || retry.retry_on.is_some()
                || retry.retry_remote_localities.is_some())
        {
            e.push(
                format!("{rp}.attempts"),
                "a retry policy is set but attempts is 0 (retries disabled)",
            );
        }
        if let Some(t) = &retry.per_try_timeout {
            duration_ms(t, format!("{rp}.perTryTimeout"), e);
        }
        if let Some(on) = &retry.retry_on {
            for policy in on.split(',') {
                let status = policy
                    .parse::<u16>()
                    .ok()
                    .and_then(|c| http::StatusCode::from_u16(c).ok())
                    .is_some_and(|c| c.canonical_reason().is_some());
                if !status && !RETRY_ON.contains(&policy) {
                    e.push(
                        format!("{rp}.retryOn"),
                        format!("{policy:?} is not a retry policy or an HTTP status code"),
                    );
                }
            }
        }
    }
    if let Some(redirect) = &r.redirect {
        let rp = format!("{p}.redirect");
        if redirect.uri.is_none()
            && redirect.authority.is_none()
            && redirect.scheme.is_none()
            && redirect.port.is_none()
            && redirect.derive_port.is_none()
        {
            e.push(
                &rp,
                "a redirect must set uri, authority, scheme, port or derivePort",
            );
        }
        if let Some(code) = redirect.redirect_code
            && !matches!(code, 301 | 302 | 303 | 307 | 308)
        {
            e.push(
                format!("{rp}.redirectCode"),
                format!("{code} is not a redirect code (301, 302, 303, 307, 308)"),
            );
        }
        if let Some(scheme) = &redirect.scheme
            && !matches!(scheme.as_str(), "http" | "https")
        {
            e.push(
                format!("{rp}.scheme"),
                format!("{scheme:?}: the redirect scheme must be http or https"),
            );
        }
        if let Some(port) = redirect.port {
            port_number(port, format!("{rp}.port"), e);
        }
        if let Some(d) = &redirect.derive_port
            && !matches!(d.as_str(), "FROM_PROTOCOL_DEFAULT" | "FROM_REQUEST_PORT")
        {
            e.push(
                format!("{rp}.derivePort"),
                format!("{d:?}: expected FROM_PROTOCOL_DEFAULT or FROM_REQUEST_PORT"),
            );
        }
        if redirect.port.is_some() && redirect.derive_port.is_some() {
            e.push(&rp, "port and derivePort exclude each other");
        }
    }
    if let Some(d) = &r.direct_response {
        if !(200..=599).contains(&d.status) {
            e.push(
                format!("{p}.directResponse.status"),
                format!("{} is not an HTTP status (200-599)", d.status),
            );
        }
        let size = match &d.body {
            Some(super::super::virtual_service::DirectBody::String(s)) => s.len(),
            Some(super::super::virtual_service::DirectBody::Bytes(b)) => b.len() / 4 * 3,
            None => 0,
        };
        if size > MAX_DIRECT_BODY {
            e.push(
                format!("{p}.directResponse.body"),
                "a direct response body must be smaller than 1 MiB",
            );
        }
    }
    if let Some(rw) = &r.rewrite {
        if rw.uri.is_none() && rw.authority.is_none() && rw.uri_regex_rewrite.is_none() {
            e.push(
                format!("{p}.rewrite"),
                "a rewrite must set uri, authority or uriRegexRewrite",
            );
        }
        if let Some(rr) = &rw.uri_regex_rewrite {
            if rw.uri.is_some() {
                e.push(
                    format!("{p}.rewrite"),
                    "uri and uriRegexRewrite exclude each other",
                );
            }
            if rr.pattern.is_empty() {
                e.push(
                    format!("{p}.rewrite.uriRegexRewrite.match"),
                    "match is required",
                );
            } else if let Err(err) = regex::Regex::new(&rr.pattern) {
                e.push(
                    format!("{p}.rewrite.uriRegexRewrite.match"),
                    format!("invalid regex: {}", one_line(&err.to_string())),
                );
            }
        }
        if let Some(h) = &r.headers
            && rw.authority.is_some()
            && h.request.as_ref().is_some_and(|req| {
                req.set
                    .keys()
                    .chain(req.add.keys())
                    .any(|k| is_authority(k))
            })
        {
            e.push(
                format!("{p}.headers.request"),
                "the authority is already set by rewrite.authority",
            );
        }
    }
    if let Some(h) = &r.headers {
        headers(h, &format!("{p}.headers"), e);
    }
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
    if let Some(m) = &r.mirror {
        destination(m, &format!("{p}.mirror"), e);
    }
    if let Some(pct) = &r.mirror_percentage {
        percentage(pct.value, format!("{p}.mirrorPercentage.value"), e);
    }
    if let Some(c) = &r.cors_policy {
        cors(c, &format!("{p}.corsPolicy"), e);
    }
}

fn is_authority(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// Header manipulation: names Envoy can set, never the pseudo-headers, and
/// the Host header only through the request (where it is the authority).
fn headers(h: &Headers, p: &str, e: &mut FieldErrors) {
    for (dir, ops) in [("request", &h.request), ("response", &h.response)] {
        let Some(ops) = ops else { continue };
        for (op, names) in [
            ("set", ops.set.keys().collect::<Vec<_>>()),
            ("add", ops.add.keys().collect()),
            ("remove", ops.remove.iter().collect()),
        ] {
            let sets_request = dir == "request" && op != "remove";
            for name in names {
                let np = format!("{p}.{dir}.{op}.{name}");
                if name.is_empty() {
                    e.push(np, "a header name is required");
                } else if sets_request && is_authority(name) {
                    // Setting the request authority is allowed.
                } else if name.eq_ignore_ascii_case("host") {
                    e.push(np, "the Host header cannot be changed here");
                } else if name.starts_with(':') {
                    e.push(np, format!("{name:?}: pseudo-headers cannot be changed"));
                } else if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    e.push(np, format!("{name:?} is not a header name"));
                }
            }
        }
        for (op, map) in [("set", &ops.set), ("add", &ops.add)] {
            for (name, value) in map {
                if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                    e.push(
                        format!("{p}.{dir}.{op}.{name}"),
                        "a header value cannot hold control characters",
                    );
                }
            }
        }
    }
}

fn cors(c: &CorsPolicy, p: &str, e: &mut FieldErrors) {
    for (i, o) in c.allow_origins.iter().enumerate() {
        string_match(o, format!("{p}.allowOrigins[{i}]"), false, e);
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

/// A string match: a valid, non-empty regex; a non-empty prefix unless
/// `empty_prefix` (only the URI may match every path with `prefix: ""`).
fn string_match(sm: &StringMatch, p: String, empty_prefix: bool, e: &mut FieldErrors) {
    match sm {
        StringMatch::Regex(re) if re.is_empty() => e.push(p, "a regex match cannot be empty"),
        StringMatch::Regex(re) => {
            if let Err(err) = regex::Regex::new(re) {
                e.push(p, format!("invalid regex: {}", one_line(&err.to_string())));
            }
        }
        StringMatch::Prefix(s) if s.is_empty() && !empty_prefix => {
            e.push(p, "a prefix match cannot be empty")
        }
        _ => {}
    }
}

fn http_match(m: &HttpMatchRequest, p: &str, e: &mut FieldErrors) {
    if let Some(sm) = &m.uri {
        string_match(sm, format!("{p}.uri"), true, e);
    }
    for (name, sm) in [
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = sm {
            string_match(sm, format!("{p}.{name}"), false, e);
        }
    }
    for (k, sm) in &m.headers {
        string_match(sm, format!("{p}.headers.{k}"), false, e);
    }
    for (k, sm) in &m.query_params {
        string_match(sm, format!("{p}.queryParams.{k}"), false, e);
    }
    for (k, sm) in &m.without_headers {
        // `regex: "*"` means "the header is present", not a regex.
        if !matches!(sm, StringMatch::Regex(r) if r == "*") {
            string_match(sm, format!("{p}.withoutHeaders.{k}"), false, e);
        }
    }
    for (group, map) in [
        ("headers", &m.headers),
        ("withoutHeaders", &m.without_headers),
    ] {
        for k in map.keys() {
            if k.is_empty() || http::HeaderName::from_bytes(k.as_bytes()).is_err() {
                e.push(
                    format!("{p}.{group}.{k}"),
                    format!("{k:?} is not a header name"),
                );
            }
        }
    }
    if let Some(port) = m.port {
        port_number(port, format!("{p}.port"), e);
    }
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
}
