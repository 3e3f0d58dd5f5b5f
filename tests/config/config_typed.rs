//! The typed config pipeline, end to end: what `gatehouse apply` refuses
//! (exit code and the field it names) and what a running gateway serves for
//! configurations that used to be accepted and then served wrongly:
//! `withoutHeaders` presence, weights past `u32`, redirects and the query
//! string, `ignoreUriCase` prefixes, and short destination hosts.
#![allow(clippy::unwrap_used)]

use crate::support;

use support::{
    Backend, FRONTEND, FRONTEND_BODY, INVENTORY_BODY, VIRTUAL_SERVICES_YAML, Walkthrough,
    service_entry,
};

/// The walkthrough's frontend VirtualService with `extra` routes first.
fn frontend_vs(extra: &str) -> String {
    let (frontend, _) = VIRTUAL_SERVICES_YAML.split_once("---").unwrap();
    frontend.replacen("  http:\n", &format!("  http:\n{extra}"), 1)
}

/// A route to the inventory backend with `weights` over as many copies of
/// its destination (only the numbers matter here).
fn weighted_route(weights: &[&str]) -> String {
    let mut r = String::from("  - match:\n    - uri:\n        prefix: /split\n    route:\n");
    for w in weights {
        r.push_str(&format!(
            "    - destination:\n        host: inventory.corp-services.svc.cluster.local\n        port:\n          number: 80\n      weight: {w}\n"
        ));
    }
    r
}

#[test]
fn without_headers_presence_form_keeps_the_route() {
    let w = Walkthrough::new();
    // Istio reads `regex: "*"` under withoutHeaders as "the header is
    // present" (not an RE2 regex): requests without x-canary go to
    // inventory, requests with it fall through to the next route.
    w.site.apply(
        "frontend.yaml",
        &frontend_vs(
            "  - match:
    - uri:
        prefix: /stock
      withoutHeaders:
        x-canary:
          regex: \"*\"
    route:
    - destination:
        host: inventory.corp-services.svc.cluster.local
        port:
          number: 80
",
        ),
    );
    let gw = w.start();
    let port = gw.port(443);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .path("/stock")
        .run()
        .assert_body(INVENTORY_BODY);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .path("/stock")
        .header("x-canary: anything")
        .run()
        .assert_status(404);
    // The walkthrough's own route beside it is untouched.
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
    assert_eq!(w.inventory.hits(), 1);
}

#[test]
fn empty_header_match_means_the_header_is_present() {
    let w = Walkthrough::new();
    // Istio's presence form: `{}` under headers (and under withoutHeaders).
    w.site.apply(
        "frontend.yaml",
        &frontend_vs(
            "  - match:
    - uri:
        prefix: /stock
      headers:
        x-debug: {}
      withoutHeaders:
        x-canary: {}
    route:
    - destination:
        host: inventory.corp-services.svc.cluster.local
        port:
          number: 80
",
        ),
    );
    let gw = w.start();
    let port = gw.port(443);
    let curl = || w.site.walkthrough_curl(FRONTEND, port).path("/stock");
    curl().header("x-debug;").run().assert_body(INVENTORY_BODY);
    curl().run().assert_status(404);
    curl()
        .header("x-debug: 1")
        .header("x-canary: 1")
        .run()
        .assert_status(404);
    assert_eq!(w.inventory.hits(), 1);
}

#[test]
fn weights_past_istios_range_are_refused_with_the_field() {
    let w = Walkthrough::new();
    // Each weight is an int32 in Istio's API.
    for (weights, field, words) in [
        (
            &["9223372036854775807", "1"][..],
            "spec.http[0].route[0].weight",
            "out of range",
        ),
        (
            &["4294967296", "0"][..],
            "spec.http[0].route[0].weight",
            "out of range",
        ),
        (&["-1", "2"][..], "spec.http[0].route[0].weight", "negative"),
        // Each fits, the sum does not fit the 32 bits Envoy's weights have.
        (
            &["2147483647", "2147483647", "2"][..],
            "spec.http[0].route",
            "add up to more than",
        ),
    ] {
        w.site
            .write("weights.yaml", frontend_vs(&weighted_route(weights)));
        let out = w.site.cli(&["apply", "-f", "weights.yaml"]);
        assert_eq!(out.code, Some(1), "{weights:?}: {out:?}");
        assert!(
            out.stderr.contains(&format!("{field}: ")) && out.stderr.contains(words),
            "{weights:?}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    // The largest legal split is served.
    w.site.apply(
        "weights.yaml",
        &frontend_vs(&weighted_route(&["2147483647", "2147483647", "1"])),
    );
    let gw = w.start();
    w.site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/split")
        .run()
        .assert_body(INVENTORY_BODY);
}

#[test]
fn redirects_keep_the_query_string() {
    let w = Walkthrough::new();
    w.site.apply(
        "frontend.yaml",
        &frontend_vs(
            "  - match:
    - uri:
        prefix: /old
    redirect:
      uri: /new
  - match:
    - uri:
        prefix: /replace
    redirect:
      uri: /new?from=redirect
      redirectCode: 308
",
        ),
    );
    let gw = w.start();
    let port = gw.port(443);
    let out = w
        .site
        .walkthrough_curl(FRONTEND, port)
        .path("/old?sku=42&q=a%20b")
        .run();
    out.assert_status(301);
    assert_eq!(
        out.redirect_url.as_deref(),
        Some(format!("https://{FRONTEND}/new?sku=42&q=a%20b").as_str()),
        "{out:?}"
    );
    // A redirect whose uri carries a query replaces the request's (Envoy).
    let out = w
        .site
        .walkthrough_curl(FRONTEND, port)
        .path("/replace?sku=42")
        .run();
    out.assert_status(308);
    assert_eq!(
        out.redirect_url.as_deref(),
        Some(format!("https://{FRONTEND}/new?from=redirect").as_str()),
        "{out:?}"
    );
    assert_eq!(w.backend_hits(), 0);
}

#[test]
fn ignore_uri_case_prefix_is_replaced_by_the_rewrite() {
    let w = Walkthrough::new();
    w.site.apply(
        "frontend.yaml",
        &frontend_vs(
            "  - match:
    - uri:
        prefix: /Shop
      ignoreUriCase: true
    rewrite:
      uri: /store
    route:
    - destination:
        host: inventory.corp-services.svc.cluster.local
        port:
          number: 80
",
        ),
    );
    let gw = w.start();
    let port = gw.port(443);
    for (path, want) in [
        ("/SHOP/items?id=1", "/store/items?id=1"),
        ("/shop/items", "/store/items"),
        ("/Shop", "/store"),
    ] {
        w.site
            .walkthrough_curl(FRONTEND, port)
            .path(path)
            .run()
            .assert_body(INVENTORY_BODY);
        assert_eq!(w.inventory.last().path, want, "{path}");
    }
}

#[test]
fn short_destination_hosts_expand_in_the_virtual_services_namespace() {
    let w = Walkthrough::new();
    let httpbin = Backend::start("httpbin");
    // istio.io's ingress tasks: `host: httpbin` in namespace default is
    // httpbin.default.svc.cluster.local, which this ServiceEntry serves.
    w.site.apply(
        "httpbin.yaml",
        &format!(
            "{}---\n{}",
            service_entry(
                "httpbin",
                "httpbin.default.svc.cluster.local",
                httpbin.port()
            ),
            frontend_vs(
                "  - match:
    - uri:
        prefix: /headers
    route:
    - destination:
        host: httpbin
        port:
          number: 80
"
            )
        ),
    );
    let gw = w.start();
    w.site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/headers")
        .run()
        .assert_body("httpbin");
    assert_eq!(httpbin.hits(), 1);
}

#[test]
fn values_the_compiler_used_to_replace_are_refused_at_apply() {
    let w = support::Site::new();
    // Accepted before, then served as an empty body and a dropped Host
    // rewrite; now `apply` names each field and stores nothing.
    w.write(
        "bad.yaml",
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: x, namespace: default}
spec:
  hosts: [a.example.com]
  http:
  - directResponse:
      status: 200
      body:
        bytes: \"not*base64!\"
  - match:
    - uri: {prefix: /r}
    rewrite: {authority: \"bad\\u0001host\"}
    route:
    - destination: {host: a.b}
",
    );
    let out = w.cli(&["apply", "-f", "bad.yaml"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    for field in [
        "spec.http[0].directResponse.body.bytes: not valid base64",
        "spec.http[1].rewrite.authority: ",
    ] {
        assert!(out.stderr.contains(field), "{field}: {}", out.stderr);
    }
    let got = w.cli(&["get", "vs", "x", "-n", "default"]);
    assert_eq!(got.code, Some(1), "{got:?}");
    assert!(got.stderr.contains("not found"), "{got:?}");
}

#[test]
fn short_virtual_service_hosts_expand_in_their_namespace() {
    let w = Walkthrough::new();
    let httpbin = Backend::start("httpbin");
    // A plain-HTTP server for every host, and a VirtualService that names
    // its host as istio.io's tasks do: `httpbin` in namespace default.
    w.site.apply(
        "httpbin.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: plain
  namespace: default
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - \"*\"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
  namespace: default
spec:
  hosts:
  - httpbin
  gateways:
  - plain
  http:
  - route:
    - destination:
        host: httpbin
---
{}",
            service_entry(
                "httpbin",
                "httpbin.default.svc.cluster.local",
                httpbin.port()
            )
        ),
    );
    let gw = w.site.start_gateway(&[80]);
    let port = gw.port(80);
    let fqdn = "httpbin.default.svc.cluster.local";
    let out = w
        .site
        .curl(&format!("http://{fqdn}:{port}/get"))
        .resolve(fqdn, port)
        .run();
    out.assert_body("httpbin");
    // The short name itself is no host of that VirtualService.
    let out = w
        .site
        .curl(&format!("http://httpbin:{port}/get"))
        .resolve("httpbin", port)
        .run();
    out.assert_status(404);
    assert_eq!(httpbin.hits(), 1);
}
