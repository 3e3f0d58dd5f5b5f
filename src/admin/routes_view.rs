//! The routes of one server as `/config_dump` and `proxy-config routes`
//! show them: which VirtualService and `http[]` entry, the hosts, a
//! one-line summary of each `match[]` entry, what the route does, its
//! retries and its mirrors.
//!
//! Read-only text over the compiled snapshot: it must never change what
//! is matched or show a header value a route sets (those may be tokens);
//! match values are shown because they are the route's own config.

use serde_json::{Value, json};

use crate::snapshot::Server;
use crate::snapshot::routes::{Action, Matcher, RetryOn, Route, RouteMatch};
use crate::upstream::Upstream;

/// Every route of `s`, in the order its VirtualServices give them.
pub fn routes(s: &Server) -> Vec<Value> {
    s.vhosts
        .iter()
        .flat_map(|v| v.routes.iter().map(move |r| route(&v.hosts, r)))
        .collect()
}

/// Every destination the routes of `s` forward to.
pub fn upstreams(s: &Server) -> impl Iterator<Item = &Upstream> {
    s.vhosts
        .iter()
        .flat_map(|v| &v.routes)
        .flat_map(|r| match &r.action {
            Action::Forward(to) => to.as_slice(),
            _ => &[],
        })
        .map(|w| w.upstream.as_ref())
        .chain(
            s.vhosts
                .iter()
                .flat_map(|v| &v.routes)
                .flat_map(|r| &r.mirrors)
                .map(|m| m.upstream.as_ref()),
        )
}

/// A route's `retries` as the dump shows them, or `null`.
fn retries(r: &Route) -> Value {
    let Some(p) = &r.retries else {
        return Value::Null;
    };
    json!({
        "attempts": p.attempts,
        "per_try_timeout_ms": p.per_try_timeout.map(|t| t.as_millis()),
        "retry_on": p.conditions().map(RetryOn::name).collect::<Vec<_>>(),
        "retriable_status_codes": p.status_codes,
    })
}

fn route(hosts: &[String], r: &Route) -> Value {
    let summary: Vec<String> = if r.matches.is_empty() {
        vec!["*".to_owned()]
    } else {
        r.matches.iter().map(match_summary).collect()
    };
    let (action, backends, status) = match &r.action {
        Action::Forward(to) => {
            let b: Vec<Value> = to
                .iter()
                .map(|w| json!({"host": w.upstream.host, "port": w.upstream.port, "weight": w.weight}))
                .collect();
            ("forward", b, None)
        }
        Action::Redirect(rd) => ("redirect", Vec::new(), Some(rd.code.as_u16())),
        Action::Direct(d) => ("direct", Vec::new(), Some(d.status.as_u16())),
    };
    json!({
        "virtual_service": r.id.virtual_service.as_ref(),
        "index": r.id.index,
        "name": r.id.name.as_deref(),
        "hosts": hosts,
        "match": summary,
        "action": action,
        "status": status,
        "backends": backends,
        "retries": retries(r),
        "mirrors": r.mirrors.iter().map(|m| json!({
            "host": m.upstream.host,
            "port": m.upstream.port,
            "percent": f64::from(m.millionths) / 10_000.0,
        })).collect::<Vec<_>>(),
    })
}

fn matcher(m: &Matcher) -> String {
    match m {
        Matcher::Exact(s) => format!("exact {s}"),
        Matcher::Prefix(s) => format!("prefix {s}"),
        Matcher::Regex(r) => {
            let full = r.as_str();
            // `Matcher::regex` anchors the user's pattern; show it as written.
            let written = full
                .strip_prefix("^(?:")
                .and_then(|s| s.strip_suffix(")$"))
                .unwrap_or(full);
            format!("regex {written}")
        }
        Matcher::Present => "present".to_owned(),
    }
}

/// One `match[]` entry on one line, its ANDed fields joined by `, `:
/// `prefix /api, method exact POST`. An entry with no field matches all: `*`.
pub fn match_summary(m: &RouteMatch) -> String {
    let mut parts = Vec::new();
    if let Some(u) = &m.uri {
        let case = if u.ignore_case { " (ignore case)" } else { "" };
        parts.push(format!("{}{case}", matcher(&u.matcher)));
    }
    for (name, f) in [
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(f) = f {
            parts.push(format!("{name} {}", matcher(f)));
        }
    }
    for (n, f) in &m.headers {
        parts.push(format!("header {n} {}", matcher(f)));
    }
    for (n, f) in &m.without_headers {
        parts.push(format!("without header {n} {}", matcher(f)));
    }
    for (n, f) in &m.query_params {
        parts.push(format!("query {n} {}", matcher(f)));
    }
    if let Some(p) = m.port {
        parts.push(format!("port {p}"));
    }
    if parts.is_empty() {
        "*".to_owned()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::routes::UriMatch;

    #[test]
    fn summaries_say_what_is_matched() {
        let m = RouteMatch {
            uri: Some(UriMatch {
                matcher: Matcher::regex("/api/v[0-9]+").unwrap(),
                ignore_case: false,
            }),
            method: Some(Matcher::Exact("POST".into())),
            headers: vec![(
                http::HeaderName::from_static("x-env"),
                Matcher::Prefix("dev".into()),
            )],
            port: Some(443),
            ..Default::default()
        };
        assert_eq!(
            match_summary(&m),
            "regex /api/v[0-9]+, method exact POST, header x-env prefix dev, port 443"
        );
        assert_eq!(match_summary(&RouteMatch::default()), "*");
    }
}
