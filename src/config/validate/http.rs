//! Rules for a VirtualService's http routes, producing the checked route
//! (`checked::route::HttpRoute`): the action with typed codes and a decoded
//! body, the rewrite, header operations with built names and values, and
//! the timeout as a `Duration`. Matches are in `matching.rs`; retries and
//! mirrors in `retries.rs`; fault in `fault.rs`; CORS in `cors.rs`.

use bytes::Bytes;
use http::StatusCode;

use super::super::checked::MatchSource;
use super::super::checked::route::{
    Destination as CheckedDestination, DestinationHeaders, DirectResponse, HeaderOps,
    HttpRoute as CheckedRoute, Redirect, RedirectPort, RouteAction, Scheme,
};
use super::super::error::FieldErrors;
use super::super::virtual_service::{DirectBody, HttpDirectResponse, HttpRedirect, HttpRoute};
use super::destination::{destination, weight, weighted};
use super::header_ops::{header_text, headers};
use super::matching::http_match;
use super::retries::{mirrors, retries};
use super::rewrite::rewrite;
use super::{duration_ms, port};

/// Largest `directResponse` body Istio accepts.
const MAX_DIRECT_BODY: usize = 1024 * 1024;

/// A `match[]` entry's source conditions (checked by the match's rules).
pub(super) fn match_source(
    gateways: &[String],
    namespace: Option<&str>,
    labels: &std::collections::BTreeMap<String, String>,
    vs_namespace: &str,
) -> MatchSource {
    MatchSource {
        gateways: gateways
            .iter()
            .map(|g| MatchSource::gateway_ref(g, vs_namespace))
            .collect(),
        namespace: namespace.map(str::to_owned),
        labels: labels.clone(),
    }
}

/// Checks one route; `Some` only when it has no error.
pub(super) fn http_route(
    r: &HttpRoute,
    namespace: &str,
    p: &str,
    e: &mut FieldErrors,
) -> Option<CheckedRoute> {
    let before = e.0.len();
    exclusive_actions(r, p, e);
    let matches: Vec<_> = r
        .matches
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| {
            let mut m = http_match(raw, &format!("{p}.match[{i}]"), e)?;
            m.source = match_source(
                &raw.gateways,
                raw.source_namespace.as_deref(),
                &raw.source_labels,
                namespace,
            );
            Some(m)
        })
        .collect();
    let action = action(r, namespace, p, e);
    let timeout = r
        .timeout
        .as_ref()
        .and_then(|t| duration_ms(t, format!("{p}.timeout"), e));
    let fault = r
        .fault
        .as_ref()
        .and_then(|f| super::fault::fault(f, &format!("{p}.fault"), e));
    let cors = r
        .cors_policy
        .as_ref()
        .and_then(|c| super::cors::cors(c, &format!("{p}.corsPolicy"), e));
    let retries = retries(r, p, e);
    let mirrors = mirrors(r, namespace, p, e);
    let rewrite = rewrite(r, p, e);
    let (request_headers, response_headers) = match &r.headers {
        Some(h) => headers(h, &format!("{p}.headers"), e),
        None => (HeaderOps::default(), HeaderOps::default()),
    };
    if e.0.len() != before {
        return None;
    }
    Some(CheckedRoute {
        name: r.name.clone(),
        matches,
        action: action?,
        timeout,
        rewrite,
        request_headers,
        response_headers,
        fault,
        cors,
        retries,
        mirrors,
    })
}

/// Exactly one of route, redirect and directResponse; rewrite and fault
/// only with route.
fn exclusive_actions(r: &HttpRoute, p: &str, e: &mut FieldErrors) {
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
    let what = match (&r.redirect, &r.direct_response) {
        (Some(_), _) => "redirect",
        (None, Some(_)) => "directResponse",
        (None, None) => return,
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

fn action(r: &HttpRoute, namespace: &str, p: &str, e: &mut FieldErrors) -> Option<RouteAction> {
    if let Some(rd) = &r.redirect {
        return redirect(rd, &format!("{p}.redirect"), e).map(RouteAction::Redirect);
    }
    if let Some(d) = &r.direct_response {
        return direct(d, &format!("{p}.directResponse"), e).map(RouteAction::Direct);
    }
    let before = e.0.len();
    let mut dests = Vec::new();
    for (i, d) in r.route.iter().enumerate() {
        let dp = format!("{p}.route[{i}]");
        let dest = destination(&d.destination, namespace, &format!("{dp}.destination"), e);
        let w = weight(d.weight, &format!("{dp}.weight"), e);
        let ops = d.headers.as_ref().map(|h| {
            let (request, response) = headers(h, &format!("{dp}.headers"), e);
            std::sync::Arc::new(DestinationHeaders { request, response })
        });
        if let (Some(dest), Some(w)) = (dest, w) {
            dests.push(CheckedDestination {
                weight: w,
                headers: ops,
                ..dest
            });
        }
    }
    if e.0.len() != before {
        return None;
    }
    weighted(dests, &format!("{p}.route"), e).map(RouteAction::Forward)
}

/// A string that goes into a header value (Location, Host) as it is.
fn redirect(rd: &HttpRedirect, p: &str, e: &mut FieldErrors) -> Option<Redirect> {
    let before = e.0.len();
    if rd.uri.is_none()
        && rd.authority.is_none()
        && rd.scheme.is_none()
        && rd.port.is_none()
        && rd.derive_port.is_none()
    {
        e.push(
            p,
            "a redirect must set uri, authority, scheme, port or derivePort",
        );
    }
    // Envoy's default is 301 (Moved Permanently).
    let code = match rd.redirect_code {
        None => Some(StatusCode::MOVED_PERMANENTLY),
        Some(c) => u16::try_from(c)
            .ok()
            .filter(|c| matches!(c, 301 | 302 | 303 | 307 | 308))
            .and_then(|c| StatusCode::from_u16(c).ok()),
    };
    if let (None, Some(c)) = (code, rd.redirect_code) {
        e.push(
            format!("{p}.redirectCode"),
            format!("{c} is not a redirect code (301, 302, 303, 307, 308)"),
        );
    }
    let scheme = match rd.scheme.as_deref() {
        None => None,
        Some("http") => Some(Scheme::Http),
        Some("https") => Some(Scheme::Https),
        Some(s) => {
            e.push(
                format!("{p}.scheme"),
                format!("{s:?}: the redirect scheme must be http or https"),
            );
            None
        }
    };
    let mut redirect_port = RedirectPort::Keep;
    if let Some(n) = rd.port.and_then(|n| port(n, format!("{p}.port"), e)) {
        redirect_port = RedirectPort::Set(n);
    }
    match rd.derive_port.as_deref() {
        None => {}
        Some("FROM_PROTOCOL_DEFAULT") => redirect_port = RedirectPort::ProtocolDefault,
        Some("FROM_REQUEST_PORT") => redirect_port = RedirectPort::FromRequest,
        Some(d) => e.push(
            format!("{p}.derivePort"),
            format!("{d:?}: expected FROM_PROTOCOL_DEFAULT or FROM_REQUEST_PORT"),
        ),
    }
    if rd.port.is_some() && rd.derive_port.is_some() {
        e.push(p, "port and derivePort exclude each other");
    }
    for (field, v) in [("uri", &rd.uri), ("authority", &rd.authority)] {
        if let Some(v) = v {
            header_text(v, format!("{p}.{field}"), e);
        }
    }
    if e.0.len() != before {
        return None;
    }
    Some(Redirect {
        uri: rd.uri.clone(),
        authority: rd.authority.clone(),
        scheme,
        port: redirect_port,
        code: code?,
    })
}

fn direct(d: &HttpDirectResponse, p: &str, e: &mut FieldErrors) -> Option<DirectResponse> {
    let status = u16::try_from(d.status)
        .ok()
        .filter(|s| (200..=599).contains(s))
        .and_then(|s| StatusCode::from_u16(s).ok());
    if status.is_none() {
        e.push(
            format!("{p}.status"),
            format!("{} is not an HTTP status (200-599)", d.status),
        );
    }
    let body = match &d.body {
        None => Some(Bytes::new()),
        Some(DirectBody::String(s)) => Some(Bytes::from(s.clone())),
        Some(DirectBody::Bytes(b)) => {
            use base64::Engine;
            match base64::engine::general_purpose::STANDARD.decode(b) {
                Ok(v) => Some(Bytes::from(v)),
                Err(err) => {
                    e.push(
                        format!("{p}.body.bytes"),
                        format!("not valid base64: {err}"),
                    );
                    None
                }
            }
        }
    };
    if body.as_ref().is_some_and(|b| b.len() > MAX_DIRECT_BODY) {
        e.push(
            format!("{p}.body"),
            "a direct response body must be smaller than 1 MiB",
        );
        return None;
    }
    Some(DirectResponse {
        status: status?,
        body: body?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(yaml: &str) -> (Option<CheckedRoute>, Vec<String>) {
        let r: HttpRoute = serde_json::from_value(serde_saphyr::from_str(yaml).unwrap()).unwrap();
        let mut e = FieldErrors::default();
        let c = http_route(&r, "default", "r", &mut e);
        (
            c,
            e.0.into_iter().map(|(p, m)| format!("{p}: {m}")).collect(),
        )
    }

    #[test]
    fn actions_are_typed() {
        let (c, e) = route("redirect: {uri: /new, redirectCode: 307, scheme: http, port: 8080}");
        assert!(e.is_empty(), "{e:?}");
        let RouteAction::Redirect(rd) = c.unwrap().action else {
            panic!("not a redirect")
        };
        assert_eq!(rd.code, StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(
            (rd.scheme, rd.port),
            (Some(Scheme::Http), RedirectPort::Set(8080))
        );
        let (c, _) = route("redirect: {authority: b.com}");
        let RouteAction::Redirect(rd) = c.unwrap().action else {
            panic!("not a redirect")
        };
        assert_eq!(rd.code, StatusCode::MOVED_PERMANENTLY);
        let (c, e) = route("directResponse: {status: 418, body: {bytes: aGk=}}");
        assert!(e.is_empty(), "{e:?}");
        let RouteAction::Direct(d) = c.unwrap().action else {
            panic!("not a direct response")
        };
        assert_eq!((d.status.as_u16(), &d.body[..]), (418, &b"hi"[..]));
        for (yaml, want) in [
            (
                "redirect: {uri: /x, redirectCode: 200}",
                "r.redirect.redirectCode",
            ),
            ("directResponse: {status: 99}", "r.directResponse.status"),
            (
                "directResponse: {status: 200, body: {bytes: '@@'}}",
                "r.directResponse.body.bytes",
            ),
        ] {
            let (c, e) = route(yaml);
            assert!(c.is_none(), "{yaml}");
            assert!(e.iter().any(|m| m.starts_with(want)), "{yaml}: {e:?}");
        }
    }

    #[test]
    fn header_operations_are_built_once() {
        let (c, e) = route(
            "route: [{destination: {host: a.b}}]
timeout: 1.5s
headers:
  request:
    set: {':authority': b.example.com, X-Team: ux}
    remove: [x-debug]
  response:
    add: {x-served-by: gatehouse}
",
        );
        assert!(e.is_empty(), "{e:?}");
        let c = c.unwrap();
        assert_eq!(c.timeout, Some(std::time::Duration::from_millis(1500)));
        let set: Vec<_> = c
            .request_headers
            .set
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(set, [("host", "b.example.com"), ("x-team", "ux")]);
        assert_eq!(c.request_headers.remove[0].as_str(), "x-debug");
        assert_eq!(c.response_headers.add[0].0.as_str(), "x-served-by");
        let (c, e) = route(
            "route: [{destination: {host: a.b}}]
headers: {response: {set: {':status': '200'}}}",
        );
        assert!(
            c.is_none() && e[0].starts_with("r.headers.response.set.:status"),
            "{e:?}"
        );
    }
}
