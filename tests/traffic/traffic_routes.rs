//! The rest of a VirtualService `http[]` route, as curl and the backend
//! see it: `redirect` with `derivePort`, `scheme`, `redirectCode` and the
//! query kept; `rewrite.uriRegexRewrite`; a destination's own `headers`
//! (applied before the route's, so the route's win); `headers.request.set`
//! of `:authority`; and `match[].gateways` / `sourceNamespace`, which
//! decide on which Gateway an entry applies.

use crate::support::{
    FRONTEND, FRONTEND_BODY, Gateway, INVENTORY_BODY, Walkthrough, frontend_vs_with,
};

const FRONTEND_DEST: &str = "    route:
    - destination:
        host: frontend.ux.svc.cluster.local
        port:
          number: 80
";

const REDIRECTS: &str = r#"  - match:
    - uri:
        prefix: /to-http
    redirect:
      uri: /new
      scheme: http
      derivePort: FROM_REQUEST_PORT
  - match:
    - uri:
        prefix: /default-port
    redirect:
      scheme: http
      derivePort: FROM_PROTOCOL_DEFAULT
      redirectCode: 308
  - match:
    - uri:
        prefix: /keep
    redirect:
      uri: /kept
  - match:
    - uri:
        prefix: /elsewhere
    redirect:
      authority: other.example
  - match:
    - uri:
        prefix: /port
    redirect:
      port: 8443
      redirectCode: 302
"#;

fn start(routes: &str) -> (Walkthrough, Gateway) {
    let w = Walkthrough::new();
    let applied = w
        .site
        .apply("traffic/routes.yaml", &frontend_vs_with(routes));
    assert_eq!(applied.stderr, "", "apply warned");
    let gw = w.start();
    (w, gw)
}

#[test]
fn redirects_derive_the_port_and_keep_the_query() {
    let (w, gw) = start(REDIRECTS);
    let port = gw.port(443);
    let location_for = |path: &str, host: &str, code: u16| {
        let out = w
            .site
            .walkthrough_curl(FRONTEND, port)
            .host_header(host)
            .path(path)
            .run();
        out.assert_status(code);
        out.headers
            .get("location")
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_default()
    };
    let location = |path: &str, code: u16| location_for(path, FRONTEND, code);
    // The port the request came in on: the Gateway's 443, shown because
    // it is not http's default.
    assert_eq!(
        location("/to-http?a=1", 301),
        "http://frontend.foocorp.com:443/new?a=1"
    );
    assert_eq!(
        location("/default-port/x?b=2", 308),
        "http://frontend.foocorp.com/default-port/x?b=2"
    );
    // No port asked for: the Host's own port is kept (the walkthrough's
    // curl names none)...
    assert_eq!(
        location("/keep?c=3", 301),
        "https://frontend.foocorp.com/kept?c=3"
    );
    assert_eq!(
        location_for("/keep?c=3", "frontend.foocorp.com:9443", 301),
        "https://frontend.foocorp.com:9443/kept?c=3"
    );
    // ...unless the authority is replaced.
    assert_eq!(
        location("/elsewhere", 301),
        "https://other.example/elsewhere"
    );
    assert_eq!(
        location("/port?d=4", 302),
        "https://frontend.foocorp.com:8443/port?d=4"
    );
    assert_eq!(w.frontend.hits(), 0, "a redirect reached the backend");
}

#[test]
fn a_regex_rewrite_changes_the_path_the_backend_sees() {
    let routes = format!(
        r#"  - match:
    - uri:
        prefix: /service/
    rewrite:
      uriRegexRewrite:
        match: ^/service/([^/]+)(/.*)$
        rewrite: \2/instance/\1
{FRONTEND_DEST}"#
    );
    let (w, gw) = start(&routes);
    let out = w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/service/foo/v1/api?x=1")
        .run();
    out.assert_body(FRONTEND_BODY);
    assert_eq!(w.frontend.last().path, "/v1/api/instance/foo?x=1");
}

#[test]
fn destination_headers_apply_and_the_route_headers_win() {
    let routes = r#"  - match:
    - uri:
        prefix: /headers
    headers:
      request:
        set:
          x-both: route
          x-route: r
          ":authority": rewritten.internal
      response:
        set:
          x-both-answer: route
    route:
    - destination:
        host: frontend.ux.svc.cluster.local
        port:
          number: 80
      headers:
        request:
          set:
            x-both: destination
            x-destination: d
          remove:
          - x-client-only
        response:
          add:
            x-destination-answer: d
          set:
            x-both-answer: destination
"#;
    let (w, gw) = start(routes);
    for h2 in [false, true] {
        let out = w
            .site
            .walkthrough_curl(FRONTEND, gw.port(443))
            .path("/headers")
            .http2_if(h2)
            .header("x-client-only: secret")
            .run();
        out.assert_body(FRONTEND_BODY);
        assert_eq!(out.headers["x-destination-answer"], ["d"]);
        assert_eq!(out.headers["x-both-answer"], ["route"]);
        let seen = w.frontend.last();
        assert_eq!(seen.one("x-destination"), "d");
        assert_eq!(seen.one("x-route"), "r");
        assert_eq!(seen.one("x-both"), "route");
        assert!(seen.all("x-client-only").is_empty());
        assert_eq!(seen.one("host"), "rewritten.internal");
    }
}

#[test]
fn match_gateways_and_source_namespace_decide_where_an_entry_applies() {
    let routes = format!(
        r#"  - match:
    - uri:
        prefix: /elsewhere-only
      gateways:
      - default/another-gateway
    route:
    - destination:
        host: inventory.corp-services.svc.cluster.local
        port:
          number: 80
  - match:
    - uri:
        prefix: /here
      gateways:
      - foocorp-gateway
      sourceNamespace: default
    route:
    - destination:
        host: inventory.corp-services.svc.cluster.local
        port:
          number: 80
  - match:
    - uri:
        prefix: /other-namespace
      sourceNamespace: istio-system
    route:
    - destination:
        host: inventory.corp-services.svc.cluster.local
        port:
          number: 80
  - match:
    - uri:
        prefix: /
{FRONTEND_DEST}"#
    );
    let (w, gw) = start(&routes);
    let get = |path: &str| {
        w.site
            .walkthrough_curl(FRONTEND, gw.port(443))
            .path(path)
            .run()
    };
    get("/here").assert_body(INVENTORY_BODY);
    // Entries for another Gateway, or another source namespace, are not
    // on this one: the request falls through to the next route.
    get("/elsewhere-only").assert_body(FRONTEND_BODY);
    get("/other-namespace").assert_body(FRONTEND_BODY);
    assert_eq!(w.inventory.hits(), 1);
}
