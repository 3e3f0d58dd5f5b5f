//! CORS: a route's `corsPolicy` as Envoy's CORS filter applies it, after
//! the Fetch standard's CORS protocol. A preflight (`OPTIONS` with
//! `Origin` and a non-empty `Access-Control-Request-Method`) from an
//! allowed origin is answered here, 200 with the policy's headers; from
//! another origin it is forwarded, or answered here without CORS headers
//! (`unmatchedPreflights: IGNORE`). Any other request from an allowed
//! origin gets `Access-Control-Allow-Origin` (the origin, echoed),
//! `-Credentials`, `-Expose-Headers` and `Vary: Origin` on its answer.
//!
//! It must never add a CORS header for an origin the policy does not
//! allow, and never answer `*` for an origin: an allowed origin is echoed.
//! It costs a request nothing when its route has no `corsPolicy`.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::Body;
use crate::snapshot::routes::Cors;

/// What the policy makes of one request.
pub(super) enum Step {
    /// Not a CORS request, or one from an origin the policy does not
    /// allow that is not an answered preflight: serve it as it is.
    Pass,
    /// A preflight the gateway answers itself.
    Answer(Response<Body>),
    /// A request from this allowed origin: serve it, then [`decorate`].
    Decorate(HeaderValue),
}

/// Classifies a request by its method and headers.
pub(super) fn inspect(policy: &Cors, method: &Method, headers: &HeaderMap) -> Step {
    let Some(origin) = headers.get(header::ORIGIN).filter(|o| !o.is_empty()) else {
        return Step::Pass;
    };
    let allowed = origin.to_str().is_ok_and(|o| policy.allows(o));
    let preflight = method == Method::OPTIONS
        && headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .is_some_and(|m| !m.is_empty());
    match (preflight, allowed) {
        (true, true) => Step::Answer(preflight_answer(policy, Some(origin))),
        (true, false) if !policy.forward_unmatched_preflights => {
            Step::Answer(preflight_answer(policy, None))
        }
        (false, true) => Step::Decorate(origin.clone()),
        _ => Step::Pass,
    }
}

/// The answer to a preflight: 200 and no body; for an allowed origin, the
/// policy's headers.
fn preflight_answer(policy: &Cors, origin: Option<&HeaderValue>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed());
    *r.status_mut() = StatusCode::OK;
    let Some(origin) = origin else {
        return r;
    };
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if policy.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    for (name, v) in [
        (header::ACCESS_CONTROL_ALLOW_METHODS, &policy.allow_methods),
        (header::ACCESS_CONTROL_ALLOW_HEADERS, &policy.allow_headers),
        (header::ACCESS_CONTROL_MAX_AGE, &policy.max_age),
    ] {
        if let Some(v) = v {
            h.insert(name, v.clone());
        }
    }
    vary_origin(h);
    r
}

/// Adds the actual request's CORS headers to its answer (whoever made
/// it: the backend, or the gateway for an error). They replace any the
/// backend set, as Envoy's do.
pub(super) fn decorate(
    policy: &Cors,
    origin: HeaderValue,
    mut r: Response<Body>,
) -> Response<Body> {
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if policy.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if let Some(v) = &policy.expose_headers {
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
    }
    vary_origin(h);
    r
}

/// `Vary: Origin`, unless the answer already varies by origin or by
/// everything (`*`).
fn vary_origin(h: &mut HeaderMap) {
    let covered = h
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            let v = v.trim();
            v == "*" || v.eq_ignore_ascii_case("origin")
        });
    if !covered {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::routes::Matcher;

    fn policy(forward: bool) -> Cors {
        Cors {
            origins: vec![Matcher::Exact("https://a.example".into())],
            allow_methods: Some(HeaderValue::from_static("GET,PUT")),
            allow_headers: None,
            expose_headers: Some(HeaderValue::from_static("x-total")),
            max_age: Some(HeaderValue::from(600u64)),
            allow_credentials: true,
            forward_unmatched_preflights: forward,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    header::HeaderName::from_static(n),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn steps() {
        let p = policy(true);
        let pre = headers(&[
            ("origin", "https://a.example"),
            ("access-control-request-method", "PUT"),
        ]);
        let Step::Answer(r) = inspect(&p, &Method::OPTIONS, &pre) else {
            panic!("an allowed preflight is answered");
        };
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://a.example"
        );
        assert_eq!(r.headers()["access-control-allow-methods"], "GET,PUT");
        assert_eq!(r.headers()["access-control-max-age"], "600");
        assert_eq!(r.headers()["access-control-allow-credentials"], "true");
        let other = headers(&[
            ("origin", "https://b.example"),
            ("access-control-request-method", "PUT"),
        ]);
        assert!(matches!(inspect(&p, &Method::OPTIONS, &other), Step::Pass));
        let Step::Answer(r) = inspect(&policy(false), &Method::OPTIONS, &other) else {
            panic!("IGNORE answers an unmatched preflight");
        };
        assert!(r.headers().is_empty());
        // OPTIONS without Access-Control-Request-Method is an actual request.
        let plain = headers(&[("origin", "https://a.example")]);
        assert!(matches!(
            inspect(&p, &Method::OPTIONS, &plain),
            Step::Decorate(_)
        ));
        assert!(matches!(
            inspect(&p, &Method::GET, &HeaderMap::new()),
            Step::Pass
        ));
    }

    #[test]
    fn vary_is_added_once() {
        let mut h = headers(&[("vary", "Accept-Encoding")]);
        vary_origin(&mut h);
        vary_origin(&mut h);
        let all: Vec<_> = h.get_all("vary").iter().collect();
        assert_eq!(all, ["Accept-Encoding", "Origin"]);
        let mut star = headers(&[("vary", "*")]);
        vary_origin(&mut star);
        assert_eq!(star.get_all("vary").iter().count(), 1);
    }
}
