//! CORS (`http[].corsPolicy`) as a browser's requests meet it, sent with
//! curl over HTTP/1.1 and HTTP/2, following the Fetch standard's CORS
//! protocol and its examples: a preflight from an allowed origin is
//! answered by the gateway (the origin echoed, the methods, headers,
//! max-age and credentials) without reaching the backend; one from
//! another origin is forwarded (FORWARD, the default) or answered without
//! CORS headers (IGNORE); an actual request from an allowed origin gets
//! `Access-Control-Allow-Origin`, `-Credentials`, `-Expose-Headers` and
//! `Vary: Origin` on the backend's answer, and one from another origin
//! gets none; exact, prefix and (full-match) regex origins; bad policies
//! are refused at `apply` with the field named.

use crate::support::{
    CurlOut, FRONTEND, FRONTEND_BODY, Gateway, Site, Walkthrough, frontend_vs_with,
};

/// `/api`: the Fetch standard's example origin, a prefix and a regex, with
/// credentials; `/open`: any origin (`exact: "*"`), no credentials;
/// `/strict`: one origin, unmatched preflights answered here (IGNORE);
/// `/faulty`: a policy and a 100 % abort; `/own`: a policy on a route
/// whose answers already carry `Access-Control-Allow-Origin: *` (as a
/// backend's own would); `/plain`: no policy.
const ROUTES: &str = r#"  - match:
    - uri:
        prefix: /api
    corsPolicy:
      allowOrigins:
      - exact: https://foo.invalid
      - prefix: https://dev.
      - regex: "https://[a-z]+\\.shop\\.example"
      allowMethods:
      - GET
      - PUT
      - DELETE
      allowHeaders:
      - Content-Type
      - X-Custom-Header
      exposeHeaders:
      - X-Total-Count
      maxAge: 24h
      allowCredentials: true
    route:
    - destination:
        host: frontend.ux.svc.cluster.local
        port:
          number: 80
  - match:
    - uri:
        prefix: /open
    corsPolicy:
      allowOrigins:
      - exact: "*"
      allowMethods:
      - GET
    route:
    - destination:
        host: frontend.ux.svc.cluster.local
        port:
          number: 80
  - match:
    - uri:
        prefix: /strict
    corsPolicy:
      allowOrigins:
      - exact: https://foo.invalid
      unmatchedPreflights: IGNORE
    route:
    - destination:
        host: frontend.ux.svc.cluster.local
        port:
          number: 80
  - match:
    - uri:
        prefix: /faulty
    corsPolicy:
      allowOrigins:
      - exact: https://foo.invalid
    fault:
      abort:
        httpStatus: 503
        percentage:
          value: 100
    route:
    - destination:
        host: frontend.ux.svc.cluster.local
        port:
          number: 80
  - match:
    - uri:
        prefix: /own
    corsPolicy:
      allowOrigins:
      - exact: https://foo.invalid
    headers:
      response:
        set:
          access-control-allow-origin: "*"
    route:
    - destination:
        host: frontend.ux.svc.cluster.local
        port:
          number: 80
  - match:
    - uri:
        prefix: /plain
    route:
    - destination:
        host: frontend.ux.svc.cluster.local
        port:
          number: 80
"#;

const ACAO: &str = "access-control-allow-origin";
const ACAC: &str = "access-control-allow-credentials";
const ACAM: &str = "access-control-allow-methods";
const ACAH: &str = "access-control-allow-headers";
const ACMA: &str = "access-control-max-age";
const ACEH: &str = "access-control-expose-headers";

fn world() -> (Walkthrough, Gateway) {
    let w = Walkthrough::new();
    let applied = w.site.apply("traffic/cors.yaml", &frontend_vs_with(ROUTES));
    assert_eq!(applied.stderr, "", "apply warned");
    let gw = w.site.start_gateway(&[443]);
    (w, gw)
}

/// A preflight for `PUT` with two request headers from `origin`.
fn preflight(w: &Walkthrough, gw: &Gateway, path: &str, origin: &str, h2: bool) -> CurlOut {
    w.site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path(path)
        .http2_if(h2)
        .arg("-X")
        .arg("OPTIONS")
        .header(&format!("Origin: {origin}"))
        .header("Access-Control-Request-Method: PUT")
        .header("Access-Control-Request-Headers: content-type,x-custom-header")
        .run()
}

/// An actual `GET` from `origin` (none: no `Origin`).
fn get(w: &Walkthrough, gw: &Gateway, path: &str, origin: Option<&str>, h2: bool) -> CurlOut {
    let mut c = w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path(path)
        .http2_if(h2);
    if let Some(o) = origin {
        c = c.header(&format!("Origin: {o}"));
    }
    c.run()
}

/// No response header of the CORS protocol.
#[track_caller]
fn assert_no_cors(out: &CurlOut) {
    let cors: Vec<_> = out
        .headers
        .keys()
        .filter(|k| k.starts_with("access-control-"))
        .collect();
    assert!(cors.is_empty(), "CORS headers {cors:?} in {out:?}");
}

#[test]
fn an_allowed_preflight_is_answered_by_the_gateway() {
    let (w, gw) = world();
    for h2 in [false, true] {
        let out = preflight(&w, &gw, "/api/items", "https://foo.invalid", h2);
        out.assert_status(200);
        assert_eq!(out.body, "");
        assert_eq!(out.header(ACAO), Some("https://foo.invalid"));
        assert_eq!(out.header(ACAC), Some("true"));
        assert_eq!(out.header(ACAM), Some("GET,PUT,DELETE"));
        assert_eq!(out.header(ACAH), Some("Content-Type,X-Custom-Header"));
        assert_eq!(out.header(ACMA), Some("86400"));
        assert_eq!(out.header("vary"), Some("Origin"));
    }
    // Prefix and regex origins; the regex matches the whole origin only.
    for origin in ["https://dev.anything.example", "https://eu.shop.example"] {
        let out = preflight(&w, &gw, "/api", origin, false);
        assert_eq!(out.header(ACAO), Some(origin), "{out:?}");
    }
    assert_eq!(w.frontend.hits(), 0, "a preflight reached the backend");
}

#[test]
fn a_preflight_from_another_origin_is_forwarded_or_ignored() {
    let (w, gw) = world();
    for origin in [
        "https://bar.invalid",
        "http://foo.invalid",
        "https://foo.invalid.evil",
        "https://eu.shop.example.evil",
        "null",
    ] {
        let hits = w.frontend.hits();
        // FORWARD (the default): the backend answers, without CORS headers.
        let out = preflight(&w, &gw, "/api", origin, false);
        out.assert_body(FRONTEND_BODY);
        assert_no_cors(&out);
        assert_eq!(w.frontend.hits(), hits + 1, "{origin}");
        assert_eq!(w.frontend.last().method, "OPTIONS");
        // IGNORE: answered here, 200 without CORS headers.
        let out = preflight(&w, &gw, "/strict", origin, true);
        out.assert_status(200);
        assert_eq!(out.body, "");
        assert_no_cors(&out);
        assert_eq!(w.frontend.hits(), hits + 1, "{origin}");
    }
}

#[test]
fn an_actual_request_gets_the_headers_for_an_allowed_origin_only() {
    let (w, gw) = world();
    for h2 in [false, true] {
        // The Fetch standard's credentialed example: the exact origin,
        // never `*`, with Access-Control-Allow-Credentials.
        let out = get(&w, &gw, "/api/items", Some("https://foo.invalid"), h2);
        out.assert_body(FRONTEND_BODY);
        assert_eq!(out.header(ACAO), Some("https://foo.invalid"));
        assert_eq!(out.header(ACAC), Some("true"));
        assert_eq!(out.header(ACEH), Some("X-Total-Count"));
        assert_eq!(out.header("vary"), Some("Origin"));
        // Preflight-only headers are not on an actual response.
        assert_eq!(out.header(ACAM), None);
        assert_eq!(out.header(ACMA), None);
        let other = get(&w, &gw, "/api/items", Some("https://bar.invalid"), h2);
        other.assert_body(FRONTEND_BODY);
        assert_no_cors(&other);
        let none = get(&w, &gw, "/api/items", None, h2);
        none.assert_body(FRONTEND_BODY);
        assert_no_cors(&none);
        assert_eq!(none.header("vary"), None);
    }
    assert_eq!(w.frontend.hits(), 6);
}

#[test]
fn any_origin_is_echoed_and_a_route_without_a_policy_is_left_alone() {
    let (w, gw) = world();
    let out = get(&w, &gw, "/open", Some("https://anyone.example"), false);
    out.assert_body(FRONTEND_BODY);
    assert_eq!(out.header(ACAO), Some("https://anyone.example"));
    assert_eq!(out.header(ACAC), None, "no credentials asked for");
    let pre = preflight(&w, &gw, "/open", "https://anyone.example", false);
    pre.assert_status(200);
    assert_eq!(pre.header(ACAM), Some("GET"));
    assert_eq!(pre.header(ACMA), None);
    assert_eq!(pre.header(ACAH), None);
    // No corsPolicy: a preflight is just an OPTIONS request for the backend.
    let hits = w.frontend.hits();
    let plain = preflight(&w, &gw, "/plain", "https://foo.invalid", false);
    plain.assert_body(FRONTEND_BODY);
    assert_no_cors(&plain);
    assert_eq!(w.frontend.hits(), hits + 1);
}

/// CORS comes before fault (Istio's filter order): a preflight is answered
/// on a route whose every request is aborted, and the abort's answer
/// carries the CORS headers, so a page can read it. An allowed origin's
/// headers replace those already on the answer; another origin's answer
/// keeps them as they were.
#[test]
fn cors_comes_before_fault_and_replaces_headers_for_allowed_origins_only() {
    let (w, gw) = world();
    let pre = preflight(&w, &gw, "/faulty", "https://foo.invalid", false);
    pre.assert_status(200);
    assert_eq!(pre.header(ACAO), Some("https://foo.invalid"));
    let aborted = get(&w, &gw, "/faulty", Some("https://foo.invalid"), true);
    aborted.assert_status(503);
    assert_eq!(aborted.body, "fault filter abort\n");
    assert_eq!(aborted.header(ACAO), Some("https://foo.invalid"));
    assert_eq!(aborted.header("vary"), Some("Origin"));
    assert_eq!(w.frontend.hits(), 0);
    let allowed = get(&w, &gw, "/own", Some("https://foo.invalid"), false);
    allowed.assert_body(FRONTEND_BODY);
    assert_eq!(allowed.header(ACAO), Some("https://foo.invalid"));
    let other = get(&w, &gw, "/own", Some("https://bar.invalid"), false);
    other.assert_body(FRONTEND_BODY);
    assert_eq!(other.header(ACAO), Some("*"));
    assert_eq!(other.header("vary"), None);
}

#[test]
fn bad_cors_policies_are_refused_at_apply_with_the_field_named() {
    let site = Site::new();
    let route = |policy: &str| {
        format!(
            "  - corsPolicy:\n{policy}    route:\n    - destination:\n        host: frontend.ux.svc.cluster.local\n"
        )
    };
    let cases = [
        (
            "      allowOrigins:\n      - regex: \"https://(\"\n",
            "spec.http[0].corsPolicy.allowOrigins[0]",
            "invalid regex",
        ),
        (
            "      allowOrigins:\n      - exact: \"\"\n",
            "spec.http[0].corsPolicy.allowOrigins[0]",
            "an origin match cannot be empty",
        ),
        (
            "      unmatchedPreflights: DROP\n",
            "spec.http[0].corsPolicy.unmatchedPreflights",
            "\"DROP\": expected FORWARD or IGNORE",
        ),
        (
            "      maxAge: 1500ms\n",
            "spec.http[0].corsPolicy.maxAge",
            "maxAge is in whole seconds",
        ),
        (
            "      exposeHeaders: [\"x total\"]\n",
            "spec.http[0].corsPolicy.exposeHeaders[0]",
            "is not a header name",
        ),
        (
            "      allowMethods: [FETCH]\n",
            "spec.http[0].corsPolicy.allowMethods[0]",
            "\"FETCH\" is not an HTTP method",
        ),
    ];
    for (i, (policy, field, why)) in cases.iter().enumerate() {
        let before = site.snapshot();
        let file = format!("bad-{i}.yaml");
        site.write(&file, frontend_vs_with(&route(policy)));
        let out = site.cli(&["apply", "-f", &file]);
        let line = out.one_error();
        assert!(
            line.contains(&file) && line.contains(field) && line.contains(why),
            "{file}: {line}"
        );
        assert_eq!(site.snapshot(), before, "{file} changed the store");
    }
}
